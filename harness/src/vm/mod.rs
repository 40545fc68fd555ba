//! Running a guest: the QEMU command line and process, QMP, the accelerator, the console and status channel, waiting on them, the host's words to the guest, saving and restoring a guest's state, and the host's side of the crash routes.

pub mod accel;
pub mod console;
pub mod control;
pub mod qemu;
pub mod qmp;
pub mod routes;
pub mod snapshot;
pub mod status;
pub mod watch;
