//! What the guest boots and writes: the minimal initramfs image, the Debian image built from
//! packages, the kernel modules its needs take, and the dump disk.

pub mod agent;
pub mod caseenv;
pub mod debian;
pub mod diskimage;
pub mod dumpdisk;
pub mod guestfs;
pub mod initramfs;
pub mod minimal;
pub mod modalias;
pub mod modules;
pub mod needs;
