//! kdrill: boot guests, crash them by every route, capture and open the dump; check hosts for kdump readiness.

pub mod accel;
pub mod case;
pub mod console;
pub mod crasher;
pub mod deadline;
pub mod dumpdisk;
pub mod guest_image;
pub mod host_tools;
pub mod image;
pub mod initramfs;
pub mod kernel;
pub mod kernel_cache;
pub mod matrix;
pub mod modules;
pub mod paths;
pub mod qemu;
pub mod qmp;
pub mod readiness;
pub mod routes;
pub mod scenario;
pub mod status;
pub mod summary;
pub mod verdict;
pub mod verify;
pub mod watch;
pub mod yaml;
