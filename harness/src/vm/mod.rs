//! Running a guest: the QEMU command line and process, QMP, the accelerator, the console and status channel, waiting on them, and the host's side of the crash routes.

pub mod accel;
pub mod console;
pub mod qemu;
pub mod qmp;
pub mod routes;
pub mod status;
pub mod watch;
