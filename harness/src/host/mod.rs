//! The host side of every run: child processes with deadlines, waiting, host programs and their packages, paths, file locks.

pub mod bundle;
pub mod clock;
pub mod datafiles;
pub mod deadline;
pub mod interrupt;
pub mod lock;
pub mod paths;
pub mod process;
pub mod sshd;
pub mod tools;
