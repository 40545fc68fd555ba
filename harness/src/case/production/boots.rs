//! The three boots of a Debian guest, followed by its status events, each wait a phase with its
//! own deadline, time and failure in `result.json`: boot 1 until kdump-tools is ready, the crash
//! by the route, the capture kernel and kdump-tools-dump.service, the reboot after the save,
//! boot 3 until kdump-tools is ready again, power off. A capture that fails is recorded and the
//! flow goes on through boot 3 when the guest reboots, so the dump folder and boot 3's evidence
//! are still read.

use std::time::Instant;

use crate::case::budget::debian as limits;
use crate::case::error::CaseError;
use crate::case::production::record::Phase;
use crate::case::shape;
use crate::case::verdict::CaseResult;
use crate::spec::scenario::Scenario;
use crate::vm::control::Control;
use crate::vm::qemu::GuestConfig;
use crate::vm::qmp::Qmp;
use crate::vm::routes;
use crate::vm::status::{Event, EventName};
use crate::vm::watch::{Wait, Watch, WatchError};

/// The console line kdump-tools prints once the dump is saved (timing only).
const SAVED: &str = "saved vmcore in";

/// A booted Debian guest and what its flow records.
pub struct Boots<'a> {
    pub watch: &'a mut Watch,
    pub config: &'a GuestConfig,
    pub scenario: &'a Scenario,
    pub result: &'a mut CaseResult,
    pub progress: &'a dyn Fn(&str),
    /// The image's waits (its recipe's `deadlines:` over kdrill's).
    pub deadlines: limits::Deadlines,
    /// When QEMU was started.
    pub started: Instant,
    /// A guest started from its shape: the shape's short key and the case's settings to hand it.
    pub restore: Option<(&'a str, &'a str)>,
    /// The end of the last phase (the next one is timed from it).
    last: Instant,
    /// A restored guest's status channel, open while it runs.
    control: Option<Control>,
}

/// How the capture went: its failure, when the guest rebooted without saving a dump.
pub struct Outcome {
    pub capture_failed: Option<CaseError>,
}

impl<'a> Boots<'a> {
    pub fn new(
        watch: &'a mut Watch,
        config: &'a GuestConfig,
        scenario: &'a Scenario,
        result: &'a mut CaseResult,
        progress: &'a dyn Fn(&str),
        deadlines: limits::Deadlines,
        started: Instant,
    ) -> Boots<'a> {
        Boots {
            watch,
            config,
            scenario,
            result,
            progress,
            deadlines,
            started,
            restore: None,
            last: started,
            control: None,
        }
    }

    /// Waits for `wait.event` (or one of `also`) as the phase `name`, and records it.
    fn phase(
        &mut self,
        name: &str,
        wait: Wait,
        also: &[EventName],
    ) -> Result<(Instant, Event), CaseError> {
        let (progress, last) = (self.progress, &mut self.last);
        timed_phase(self.watch, progress, last, self.result, name, wait, also)
    }

    /// Records a phase's failure found after its wait ended (a wrong event).
    fn fail_last(&mut self, error: &CaseError) {
        if let Some(phase) = self
            .result
            .production
            .as_mut()
            .and_then(|p| p.phases.last_mut())
        {
            phase.failure = Some(error.to_string());
        }
    }

    /// Boot 1 to power-off. Errors are what stopped the flow; a failed capture followed by a
    /// reboot is returned in the outcome.
    pub fn run(&mut self) -> Result<Outcome, CaseError> {
        self.watch.mark(SAVED);
        let mut qmp = match self.restore {
            Some((key, settings)) => self.restored(key, settings)?,
            None => self.booted()?,
        };
        let ready = self.phase(
            "boot 1: kdump-tools ready to kdump",
            self.deadlines.ready,
            &[],
        );
        let (ready_at, _) = ready.map_err(|e| not_ready(e, 1))?;
        self.result.debian_phases().ready = Some((ready_at - self.started).as_secs_f64());

        let mut crashed_at = None;
        let mut _console = None;
        if routes::host_presses(self.scenario.trigger) {
            let (scenario, config, progress) = (self.scenario, self.config, self.progress);
            let pressed = routes::crash_from_host(
                scenario.trigger,
                scenario.hang_seconds,
                &mut qmp,
                config.console_socket.as_deref(),
                progress,
                || {
                    self.phase("boot 1: the guest hangs a CPU", limits::HANGING, &[])
                        .map(drop)
                },
            )?;
            crashed_at = Some(pressed.at);
            _console = pressed.console;
            self.last = pressed.at;
        }
        let capture = self.phase(
            "crash → the capture kernel's initrd",
            self.deadlines.capture,
            &[EventName::Boot],
        )?;
        let crashed_at = crashed_at
            .or_else(|| self.watch.seen(EventName::Trigger))
            .unwrap_or(ready_at);
        let mut capture_failed = None;
        if capture.1.name == EventName::Boot {
            let error = CaseError::CaptureFailed {
                reason: "the guest booted again before the capture kernel's initrd ran".into(),
            };
            self.fail_last(&error);
            capture_failed = Some(error);
        } else {
            self.result.phases.crash_to_capture = Some((capture.0 - crashed_at).as_secs_f64());
            self.result.phases.capture_boot = Some(capture.1.uptime);
            let saving = self.phase(
                "capture kernel → kdump-tools-dump.service",
                self.deadlines.saving,
                &[EventName::Boot],
            )?;
            let rebooted = if saving.1.name == EventName::Boot {
                let error = CaseError::CaptureFailed {
                    reason: "the capture kernel rebooted before kdump-tools-dump.service started"
                        .into(),
                };
                self.fail_last(&error);
                capture_failed = Some(error);
                saving
            } else {
                self.phase(
                    "kdump-tools saves the dump, the guest reboots",
                    self.deadlines.reboot,
                    &[],
                )?
            };
            let saved = self.watch.marked(SAVED).unwrap_or(rebooted.0);
            self.result.debian_phases().crash_to_saved = Some((saved - crashed_at).as_secs_f64());
        }
        let boot3 = self.last;
        let again = self.phase(
            "boot 3: kdump-tools ready to kdump again",
            self.deadlines.ready_again,
            &[],
        );
        let (again_at, again) = again.map_err(|e| not_ready(e, 3))?;
        self.result.debian_phases().ready_again = Some((again_at - boot3).as_secs_f64());
        let local = self.scenario.image.dump_target == crate::spec::setup::DumpTarget::Local;
        if let Some(dumps) = again.field("dumps").filter(|_| local) {
            self.result.notes.push(format!(
                "boot 3: {dumps} dump(s) in the dump folder after the reboot"
            ));
        }
        self.phase("boot 3: kdrill's unit done", limits::DONE, &[])?;
        self.watch.power_off(limits::POWEROFF)?;
        Ok(Outcome { capture_failed })
    }

    /// Boot 1 from QEMU's start: systemd starts kdrill's unit on a disk no crash marked.
    fn booted(&mut self) -> Result<Qmp, CaseError> {
        let qmp = crate::case::flow::connect_qmp(self.config, self.watch, self.result)?;
        let (_, boot) = self.phase(
            "boot 1: systemd starts kdrill's unit",
            self.deadlines.boot,
            &[],
        )?;
        self.result.phases.boot = Some((self.last - self.started).as_secs_f64());
        self.result.phases.guest_boot = Some(boot.uptime);
        unmarked(&boot)?;
        Ok(qmp)
    }

    /// Boot 1 from its shape (`key`): the saved guest runs on and takes the case's settings.
    fn restored(&mut self, key: &str, settings: &str) -> Result<Qmp, CaseError> {
        let got = shape::restore(
            self.watch,
            self.config,
            settings,
            self.started,
            self.progress,
        );
        let phase = Phase {
            name: format!("boot 1: restored from {key}, the guest takes its case"),
            deadline_seconds: self
                .watch
                .scaled(crate::case::budget::RESTORING)
                .as_secs_f64(),
            seconds: got
                .as_ref()
                .ok()
                .map(|r| (r.case_at - self.last).as_secs_f64()),
            failure: got.as_ref().err().map(ToString::to_string),
        };
        if let Some(p) = self.result.production.as_mut() {
            p.phases.push(phase);
        }
        let restored = got?;
        self.result.accel = Some(restored.accel);
        self.result.phases.restore = Some(restored.running.as_secs_f64());
        self.last = restored.case_at;
        self.control = Some(restored.control);
        Ok(restored.qmp)
    }
}

/// Waits for `wait.event` (or one of `also`) as the phase `name` of a guest that reboots, timed
/// from `last` (moved to its end), and records it in `result.production.phases`.
pub(crate) fn timed_phase(
    watch: &mut Watch,
    progress: &dyn Fn(&str),
    last: &mut Instant,
    result: &mut CaseResult,
    name: &str,
    wait: Wait,
    also: &[EventName],
) -> Result<(Instant, Event), CaseError> {
    progress(name);
    let got = watch.until_first(wait, also);
    let now = Instant::now();
    let phase = Phase {
        name: name.into(),
        deadline_seconds: watch.scaled(wait.limit).as_secs_f64(),
        seconds: got.as_ref().ok().map(|(at, _)| (*at - *last).as_secs_f64()),
        failure: got.as_ref().err().map(ToString::to_string),
    };
    *last = got.as_ref().map(|(at, _)| *at).unwrap_or(now);
    if let Some(p) = result.production.as_mut() {
        p.phases.push(phase);
    }
    Ok(got?)
}

/// Boot 1's `boot` event from a disk no crash of kdrill's marked: a written image disk is refused.
pub(super) fn unmarked(boot: &Event) -> Result<(), CaseError> {
    if boot.field("crashed") == Some("yes") {
        return Err(CaseError::Setup {
            what: "image",
            detail: "boot 1 found kdrill's crash marker: the image's disk was written (it must only be booted through an overlay)".into(),
        });
    }
    Ok(())
}

/// The guest's "kdump-tools not ready" failure as its own kind; other errors unchanged.
fn not_ready(error: CaseError, boot: u8) -> CaseError {
    match error {
        CaseError::Watch(WatchError::GuestFailed { phase, reason })
            if phase == "kdump-tools" || phase == "boot3" =>
        {
            CaseError::NotReady { boot, reason }
        }
        other => other,
    }
}
