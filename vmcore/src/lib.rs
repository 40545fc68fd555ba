//! Reader for Linux crash dumps: ELF vmcores, kdump-compressed and flattened files, and the kernel log inside them.
