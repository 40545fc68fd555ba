//! The image kinds' part of a case, behind one trait (cloud-hypervisor's `test_infra` has one
//! `DiskConfig` per guest OS): `case::run` always walks the same steps — the kind prepares its
//! guest ([`ImageFlow`]) and says how to start it ([`PreparedGuest`]), one QEMU is spawned in a process group of its own and watched,
//! the kind follows it on that `Watch`, the guest is killed and reaped, the kind collects what it
//! left — then `case::run` judges. [`flow_for`] is the one place a kind picks its flow.

use std::path::PathBuf;
use std::time::Instant;

use crate::case::error::{CaseError, SetupContext};
use crate::case::flow::Run;
use crate::case::verdict::CaseResult;
use crate::spec::images::{Image, ImageKind};
use crate::vm::qemu::Guest;
use crate::vm::watch::Watch;

/// How to start a prepared guest.
pub struct Launch {
    pub qemu: PathBuf,
    pub args: Vec<String>,
    /// The console's log, which the watch follows (QEMU writes it).
    pub serial_log: PathBuf,
}

/// One image kind's part of a case.
pub trait ImageFlow {
    /// Builds what the guest needs (kernel, image, disks, shape) and records it in `result`.
    fn prepare(
        &self,
        run: &Run,
        result: &mut CaseResult,
    ) -> Result<Box<dyn PreparedGuest>, CaseError>;
}

/// A guest its kind prepared: how to start it, how to follow it, what to collect after it.
pub trait PreparedGuest {
    fn launch(&self) -> Launch;
    /// Follows the started guest on `watch` (QEMU started at `started`) until it is done.
    fn follow(
        &mut self,
        run: &Run,
        watch: &mut Watch,
        started: Instant,
        result: &mut CaseResult,
    ) -> Result<(), CaseError>;
    /// With the guest gone: reads what it left, given how following it ended. Errors are the
    /// case's first reason; later ones are recorded in `result`.
    fn collect(
        self: Box<Self>,
        run: &Run,
        followed: Result<(), CaseError>,
        result: &mut CaseResult,
    ) -> Result<(), CaseError>;
}

/// The flow of `image`'s kind.
pub fn flow_for(image: &Image) -> &'static dyn ImageFlow {
    match image.kind() {
        ImageKind::Minimal => &crate::case::flow::MinimalFlow,
        ImageKind::Debian => &crate::case::production::DebianFlow,
        ImageKind::Disk => &crate::case::disk::DiskFlow,
    }
}

/// Prepare, spawn, follow, teardown, collect: the same steps for every kind.
pub fn drive(flow: &dyn ImageFlow, run: &Run, result: &mut CaseResult) -> Result<(), CaseError> {
    let mut guest = flow.prepare(run, result)?;
    let launch = guest.launch();
    (run.progress)("booting");
    let started = Instant::now();
    let stderr = run.dir.join("qemu-stderr.log");
    let qemu = Guest::spawn(&launch.qemu, &launch.args, &stderr).setup("QEMU")?;
    let mut watch = Watch::new(
        qemu,
        &run.dir.join("status.log"),
        &launch.serial_log,
        &stderr,
        run.options.echo_console,
        run.options.timeout_scale,
    );
    let followed = guest.follow(run, &mut watch, started, result);
    if let Err(err) = watch.guest().kill() {
        result.fail(CaseError::Teardown(err));
    }
    drop(watch);
    guest.collect(run, followed, result)
}
