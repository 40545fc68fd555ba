//! Getting what a case needs onto this machine once: kernel and header packages into the per-user cache, the crasher module built against them, the capture userspace of a Debian release (a sysroot), the uncompressed vmlinux for `fast` boots.

pub mod apt;
pub mod crasher;
pub mod debug;
pub mod kernel;
pub mod layout;
pub mod mmdebstrap;
pub mod userspace;
pub mod vmlinux;
