//! The host side of every run: child processes with deadlines, waiting, host programs and their packages (installed as one consistent set), `kdrill doctor`, paths, file locks.

pub mod atomic;
pub mod bundle;
pub mod clock;
pub mod datafiles;
pub mod deadline;
pub mod deb;
pub mod doctor;
pub mod elf;
pub mod interrupt;
pub mod lock;
pub mod packages;
pub mod paths;
pub mod process;
pub mod rootfs;
pub mod sshd;
pub mod tools;
