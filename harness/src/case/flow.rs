//! The minimal image's flow of a case (`case::image`): boot, `kexec -p`, the route's crash, the
//! capture boot and makedumpfile, by the guest's status events; after teardown, reading the dump
//! back off the dump disk.

use std::path::Path;
use std::time::Instant;

use crate::case::budget;
use crate::case::error::CaseError;
use crate::case::image::{ImageFlow, Launch, PreparedGuest};
use crate::case::prepare::{self, Prepared};
use crate::case::verdict::CaseResult;
use crate::case::{vmdump, Case, RunOptions};
use crate::dumpcheck::{self, DumpError};
use crate::host::interrupt;
use crate::spec::scenario::Trigger;
use crate::vm::control::Control;
use crate::vm::qemu::GuestConfig;
use crate::vm::qmp::Qmp;
use crate::vm::routes;
use crate::vm::status::EventName;
use crate::vm::watch::Watch;

/// What one case's run needs throughout.
pub struct Run<'a> {
    pub case: &'a Case,
    pub options: &'a RunOptions,
    /// This attempt's evidence folder.
    pub dir: &'a Path,
    pub progress: &'a dyn Fn(&str),
}

/// A booted guest and what its flow records.
pub struct Guesting<'a, 'r> {
    pub run: &'a Run<'a>,
    pub watch: &'r mut Watch,
    pub config: &'a GuestConfig,
    pub result: &'r mut CaseResult,
    /// When QEMU was started.
    pub boot_started: Instant,
    /// For a guest restored from a shape: the case's settings to hand it.
    pub case_settings: Option<&'a str>,
}

/// The minimal image's kind: kdrill's initramfs, two boots, the dump on the dump disk.
pub struct MinimalFlow;

impl ImageFlow for MinimalFlow {
    fn prepare(
        &self,
        run: &Run,
        result: &mut CaseResult,
    ) -> Result<Box<dyn PreparedGuest>, CaseError> {
        let prepared = prepare::prepare(run.case, run.options, run.dir, result, run.progress)?;
        Ok(Box::new(prepared))
    }
}

impl PreparedGuest for Prepared {
    fn launch(&self) -> Launch {
        Launch {
            qemu: self.qemu.clone(),
            args: self.args.clone(),
            serial_log: self.config.serial_log.clone(),
        }
    }

    fn follow(
        &mut self,
        run: &Run,
        watch: &mut Watch,
        started: Instant,
        result: &mut CaseResult,
    ) -> Result<(), CaseError> {
        let mut guesting = Guesting {
            run,
            watch,
            config: &self.config,
            result,
            boot_started: started,
            case_settings: self.shape.as_ref().map(|_| self.case_settings.as_str()),
        };
        match run.case.scenario.trigger {
            Trigger::VmDump => vmdump::dump(&mut guesting),
            _ => crash_and_capture(&mut guesting),
        }
    }

    /// Reads the dump off the dump disk; the guest's failure, when it failed, comes first.
    fn collect(
        self: Box<Self>,
        run: &Run,
        followed: Result<(), CaseError>,
        result: &mut CaseResult,
    ) -> Result<(), CaseError> {
        let serial = &self.config.serial_log;
        let outcome = followed.map_err(|e| e.diagnose(|| console_panic(serial)));
        if run.case.scenario.trigger == Trigger::VmDump {
            return outcome;
        }
        if let Some(stop) = interrupt::interrupted() {
            return outcome.and(Err(CaseError::interrupted(stop)));
        }
        let guest_failed = outcome.is_err();
        if let Err(error) = outcome {
            result.fail(error);
        }
        (run.progress)("reading the dump");
        let started = Instant::now();
        let mut found = dumpcheck::Findings::default();
        let checked = dumpcheck::check_capture(
            &self.disk,
            run.dir,
            &run.case.scenario,
            &self.reader,
            &mut found,
        );
        result.record(found);
        result.phases.verify = Some(started.elapsed().as_secs_f64());
        // The dump disk and the sockets go with the scratch folder, once read.
        drop(self.scratch);
        match checked {
            // The guest's failure is the reason; "no dump" after it would only point the wrong way.
            Err(DumpError::NoDump) if guest_failed => Ok(()),
            other => Ok(other?),
        }
    }
}

/// The console's last panic message, for a capture that never came.
fn console_panic(serial_log: &Path) -> Option<String> {
    let serial =
        String::from_utf8_lossy(&std::fs::read(serial_log).unwrap_or_default()).into_owned();
    dumpcheck::expect::panic_message(&serial)
}

impl Guesting<'_, '_> {
    fn progress(&self, what: &str) {
        (self.run.progress)(what)
    }

    /// Connects QMP, records which accelerator really runs, and waits for the first boot's init,
    /// timing it by the host's clock and the guest's own.
    pub fn first_boot(&mut self) -> Result<Qmp, CaseError> {
        let qmp = connect_qmp(self.config, self.watch, self.result)?;
        let (seen, booted) = self.watch.until(budget::BOOT)?;
        self.result.phases.boot = Some((seen - self.boot_started).as_secs_f64());
        self.result.phases.guest_boot = Some(booted.uptime);
        self.result.minimal_phases().first_line = self
            .watch
            .banners()
            .first()
            .map(|at| (*at - self.boot_started).as_secs_f64());
        Ok(qmp)
    }

    /// Lets a guest restored from its shape run on and hands it its case (`shape::restore`).
    pub fn restore(&mut self, settings: &str) -> Result<(Qmp, Control, Instant), CaseError> {
        let restored = crate::case::shape::restore(
            self.watch,
            self.config,
            settings,
            self.boot_started,
            self.run.progress,
        )?;
        self.result.accel = Some(restored.accel);
        self.result.phases.restore = Some(restored.running.as_secs_f64());
        Ok((restored.qmp, restored.control, restored.case_at))
    }
}

/// Follows the guest through both boots, crashing it by the scenario's route; fills in phase
/// times. Errors say which step did not happen.
fn crash_and_capture(g: &mut Guesting) -> Result<(), CaseError> {
    let scenario = &g.run.case.scenario;
    let (mut qmp, loaded_at, _control) = match g.case_settings {
        Some(settings) => {
            let (qmp, control, at) = g.restore(settings)?;
            (qmp, at, Some(control))
        }
        None => {
            let qmp = g.first_boot()?;
            g.progress("loading the capture kernel (kexec -p)");
            let (loaded_at, loaded) = g.watch.until(budget::KEXEC)?;
            g.result.minimal_phases().kexec = loaded.seconds("secs");
            (qmp, loaded_at, None)
        }
    };

    if scenario.guest.dirty_mib.is_some() {
        g.progress("guest dirtying and freeing its memory");
        let (_, dirtied) = g.watch.until(budget::DIRTY)?;
        g.result.minimal_phases().dirty = dirtied.seconds("secs");
    }
    let mut crashed_at = None;
    let mut _console = None;
    if routes::host_presses(scenario.trigger) {
        // A hanging guest says `hanging` instead of `ready`.
        if scenario.trigger != Trigger::HangThenNmi {
            g.watch.until(budget::READY)?;
        }
        let (socket, progress) = (g.config.console_socket.as_deref(), g.run.progress);
        let pressed = routes::crash_from_host(
            scenario.trigger,
            scenario.hang_seconds,
            &mut qmp,
            socket,
            progress,
            || -> Result<(), CaseError> {
                g.watch.until(budget::HANGING)?;
                g.progress("guest hung; waiting before pressing NMI");
                Ok(())
            },
        )?;
        crashed_at = Some(pressed.at);
        _console = pressed.console;
    }
    g.progress("crashed; capture kernel booting");
    let (capture_at, capture) = g.watch.until(budget::CAPTURE)?;
    // A guest-side trigger line is written just before the crash; if it was lost, the crash is
    // timed from the capture kernel being loaded, which precedes it at once.
    let crashed_at = crashed_at
        .or_else(|| g.watch.seen(EventName::Trigger))
        .unwrap_or(loaded_at);
    g.result.phases.crash_to_capture = Some((capture_at - crashed_at).as_secs_f64());
    // The capture kernel's banner: the second a booted guest shows, the first of a restored one.
    let capture_banner = g
        .watch
        .banners()
        .get(usize::from(g.case_settings.is_none()));
    g.result.minimal_phases().capture_first_line =
        capture_banner.map(|at| at.saturating_duration_since(crashed_at).as_secs_f64());
    g.result.phases.capture_boot = Some(capture.uptime);
    g.progress("makedumpfile writing the dump");
    let (_, saved) = g.watch.until(budget::SAVE)?;
    g.result.minimal_phases().makedumpfile = saved.seconds("secs");
    g.watch.until(budget::DONE)?;
    g.watch.power_off(budget::POWEROFF)?;
    Ok(())
}

/// Connects QMP (the host's crash routes) and records which accelerator really runs.
pub fn connect_qmp(
    config: &GuestConfig,
    watch: &Watch,
    result: &mut CaseResult,
) -> Result<Qmp, CaseError> {
    let socket = config.qmp_socket.as_deref().ok_or(CaseError::Qmp {
        during: "QMP",
        detail: "the guest has no QMP socket".into(),
    })?;
    let qmp_err = |e: crate::vm::qmp::QmpError| CaseError::Qmp {
        during: "QMP",
        detail: e.to_string(),
    };
    let mut qmp = Qmp::connect(
        socket,
        watch.scaled(budget::QMP_CONNECT),
        watch.scaled(budget::QMP_REPLY),
    )
    .map_err(qmp_err)?;
    result.accel = Some(crate::vm::accel::running(&mut qmp).map_err(qmp_err)?);
    Ok(qmp)
}
