//! What the guest boots and writes: the minimal initramfs image, the Debian image built from
//! packages, kernel modules, and the dump disk.

pub mod debian;
pub mod dumpdisk;
pub mod initramfs;
pub mod minimal;
pub mod modules;
pub mod rootfs;
