//! What the guest boots and writes: the minimal initramfs image, kernel modules, and the dump disk.

pub mod dumpdisk;
pub mod initramfs;
pub mod minimal;
pub mod modules;
