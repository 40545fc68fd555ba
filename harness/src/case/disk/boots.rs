//! The three boots of an operator's disk image, followed by its agent's status events; each wait
//! is a phase with its deadline, time and failure in `result.json`: boot 1 to the agent (a boot
//! that never gets there is said with the console's last lines), the image's kdump service ready
//! (or its own words why not, or no `crashkernel=`), the crash by the route, the image's own
//! capture and reboot to boot 3's agent, the service ready again with the dump copied, power off.

use std::path::Path;
use std::time::Instant;

use crate::case::budget::disk as limits;
use crate::case::error::CaseError;
use crate::case::verdict::CaseResult;
use crate::host::process::last_lines;
use crate::spec::scenario::Scenario;
use crate::vm::qemu::GuestConfig;
use crate::vm::routes;
use crate::vm::status::{Event, EventName};
use crate::vm::watch::{Wait, Watch, WatchError};

/// Where the console log was (bytes) at the crash and when boot 3's agent spoke: the three
/// boots' consoles (a distribution's `quiet` hides the kernels' banners, so they are cut by time).
#[derive(Debug, Clone, Default)]
pub struct Cuts {
    pub crash: Option<u64>,
    pub boot3: Option<u64>,
}

pub struct Boots<'a> {
    pub watch: &'a mut Watch,
    pub config: &'a GuestConfig,
    pub scenario: &'a Scenario,
    pub result: &'a mut CaseResult,
    pub progress: &'a dyn Fn(&str),
    pub started: Instant,
    pub last: Instant,
    pub cuts: Cuts,
}

/// The console line kdump-tools prints once the dump is saved (timing only).
const SAVED: &str = "saved vmcore in";

/// Console lines shown with a failure.
const LAST_LINES: usize = 8;

impl Boots<'_> {
    fn phase(
        &mut self,
        name: &str,
        wait: Wait,
        also: &[EventName],
    ) -> Result<(Instant, Event), CaseError> {
        let (progress, last) = (self.progress, &mut self.last);
        crate::case::production::boots::timed_phase(
            self.watch,
            progress,
            last,
            self.result,
            name,
            wait,
            also,
        )
    }

    fn serial_len(&self) -> Option<u64> {
        std::fs::metadata(&self.config.serial_log)
            .ok()
            .map(|m| m.len())
    }

    fn console_tail(&self) -> String {
        let lines: Vec<String> = last_lines(&self.config.serial_log, LAST_LINES)
            .into_iter()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        if lines.is_empty() {
            "(the console is empty: nothing reached ttyS0 — does the image's bootloader and kernel write to the serial console? `console=ttyS0`)".into()
        } else {
            lines.join(" | ")
        }
    }

    /// Boot 1 to power-off. A failed capture the image rebooted from is the `Ok` value.
    pub fn run(&mut self) -> Result<Option<CaseError>, CaseError> {
        self.watch.mark(SAVED);
        let mut qmp = crate::case::flow::connect_qmp(self.config, self.watch, self.result)?;
        let boot = self.phase(
            "boot 1: the image boots to kdrill's agent",
            limits::BOOT,
            &[],
        );
        let (_, boot) = boot.map_err(|e| self.no_agent(e))?;
        self.result.phases.boot = Some((self.last - self.started).as_secs_f64());
        self.result.phases.guest_boot = Some(boot.uptime);
        self.result.kernel_release = boot.field("kernel").map(String::from);
        if boot.field("crashed") == Some("yes") {
            return Err(CaseError::Setup {
                what: "image",
                detail: "boot 1 found kdrill's crash mark in the image: the image file was written by an earlier test boot (kdrill boots it only through an overlay)".into(),
            });
        }
        // The agent may set `--crashkernel` through the bootloader and boot once more.
        let mut rebooted = false;
        let ready_at = loop {
            let got = self.phase(
                "boot 1: the image's kdump service is ready",
                limits::READY,
                &[EventName::Boot],
            );
            let (at, event) = got.map_err(|e| refine(e, 1))?;
            if event.name == EventName::Ready {
                break at;
            }
            if rebooted {
                return Err(CaseError::NoReservation("the image booted a third time before its kdump service was ready: the agent's bootloader change did not hold".into()));
            }
            rebooted = true;
            self.result.notes.push(format!(
                "the agent set crashkernel={} through the image's bootloader (in the overlay) and rebooted",
                self.result.production.as_ref().map(|p| p.crashkernel.as_str()).unwrap_or("?")
            ));
        };
        self.result.debian_phases().ready = Some((ready_at - self.started).as_secs_f64());

        let crashed_at = if routes::host_presses(self.scenario.trigger) {
            let (scenario, config, progress) = (self.scenario, self.config, self.progress);
            self.cuts.crash = self.serial_len();
            let pressed = routes::crash_from_host(
                scenario.trigger,
                scenario.hang_seconds,
                &mut qmp,
                config.console_socket.as_deref(),
                progress,
                || Ok::<(), CaseError>(()),
            )?;
            self.last = pressed.at;
            pressed.at
        } else {
            let (at, _) = self.phase(
                "boot 1: the agent crashes the image",
                crate::case::budget::disk::TRIGGER,
                &[],
            )?;
            self.cuts.crash = self.serial_len();
            at
        };
        let back = self.phase(
            "crash → the image's capture, reboot and boot 3's agent",
            limits::CAPTURE,
            &[],
        );
        let (back_at, back) = match back {
            Ok(got) => got,
            Err(CaseError::Watch(WatchError::Timeout { after, .. })) => {
                return Ok(Some(CaseError::CaptureFailed {
                    reason: format!(
                        "the image did not boot to kdrill's agent again within {}s of the crash; the console's last lines: {}",
                        after.as_secs(),
                        self.console_tail()
                    ),
                }))
            }
            Err(other) => return Err(other),
        };
        self.cuts.boot3 = self.serial_len();
        // kdump-tools says on the console when the dump is saved; else the image is back.
        let saved = self
            .watch
            .marked(SAVED)
            .filter(|at| *at > crashed_at)
            .unwrap_or(back_at);
        self.result.debian_phases().crash_to_saved = Some((saved - crashed_at).as_secs_f64());
        if back.field("crashed") != Some("yes") {
            return Ok(Some(CaseError::CaptureFailed {
                reason: "the image booted again but the agent found no mark of the crash: the overlay lost what boot 1 wrote".into(),
            }));
        }
        let boot3 = self.last;
        let again = self.phase(
            "boot 3: the kdump service is ready again and the dump copied",
            limits::READY_AGAIN,
            &[],
        );
        let (again_at, again) = again.map_err(|e| refine(e, 3))?;
        self.result.debian_phases().ready_again = Some((again_at - boot3).as_secs_f64());
        if let Some(dumps) = again.field("dumps") {
            self.result
                .notes
                .push(format!("boot 3: the agent copied {dumps} dump folder(s)"));
        }
        self.phase("boot 3: kdrill's agent done", limits::DONE, &[])?;
        self.watch.power_off(limits::POWEROFF)?;
        Ok(None)
    }

    /// Boot 1 never reached the agent: the console's last lines say how far it got.
    fn no_agent(&self, error: CaseError) -> CaseError {
        match error {
            CaseError::Watch(WatchError::Timeout { after, .. }) => CaseError::NoAgent {
                reason: format!("no word from it within {}s", after.as_secs()),
                lines: self.console_tail(),
            },
            CaseError::Watch(WatchError::QemuExited { status, stderr, .. }) => CaseError::NoAgent {
                reason: format!(
                    "QEMU exited ({status}){}",
                    crate::vm::watch::stderr_note(&stderr)
                ),
                lines: self.console_tail(),
            },
            other => refine(other, 1),
        }
    }
}

/// The agent's failures as their own kinds: no `crashkernel=`, the kdump service.
fn refine(error: CaseError, boot: u8) -> CaseError {
    match error {
        CaseError::Watch(WatchError::GuestFailed { phase, reason }) => match phase.as_str() {
            "crashkernel" => CaseError::NoReservation(reason),
            "kdump-service" | "boot3" => CaseError::Service { boot, reason },
            _ => CaseError::Watch(WatchError::GuestFailed { phase, reason }),
        },
        other => other,
    }
}

/// serial-boot1.log (to the crash), serial-boot2.log (the capture and the reboot) and
/// serial-boot3.log beside serial.log, cut where the console was at the crash and at boot 3.
pub fn split_serial(dir: &Path, cuts: &Cuts) {
    let Ok(serial) = std::fs::read(dir.join("serial.log")) else {
        return;
    };
    for (n, part) in split(&serial, cuts).into_iter().enumerate() {
        let _ = std::fs::write(dir.join(format!("serial-boot{}.log", n + 1)), part);
    }
}

fn split<'a>(serial: &'a [u8], cuts: &Cuts) -> Vec<&'a [u8]> {
    let len = serial.len() as u64;
    let at = |c: Option<u64>| c.map(|c| c.min(len) as usize);
    match (at(cuts.crash), at(cuts.boot3)) {
        (Some(crash), Some(boot3)) if boot3 >= crash => {
            vec![&serial[..crash], &serial[crash..boot3], &serial[boot3..]]
        }
        (Some(crash), _) => vec![&serial[..crash], &serial[crash..]],
        _ => vec![serial],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_is_cut_at_the_crash_and_at_boot_3() {
        let serial = b"grub\nboot1\nsysrq: Trigger a crash\ncapture\nreboot\ngrub\nboot3\n";
        let cuts = Cuts {
            crash: Some(11),
            boot3: Some(54),
        };
        let parts = split(serial, &cuts);
        assert_eq!(parts[0], b"grub\nboot1\n");
        assert!(parts[1].starts_with(b"sysrq") && parts[1].ends_with(b"grub\n"));
        assert_eq!(parts[2], b"boot3\n");
        assert_eq!(
            split(
                serial,
                &Cuts {
                    crash: Some(11),
                    boot3: None
                }
            )
            .len(),
            2
        );
        assert_eq!(split(serial, &Cuts::default()), vec![&serial[..]]);
    }

    #[test]
    fn the_agents_failures_become_their_own_kinds() {
        let failed = |phase: &str| {
            CaseError::Watch(WatchError::GuestFailed {
                phase: phase.into(),
                reason: "why".into(),
            })
        };
        assert_eq!(refine(failed("crashkernel"), 1).kind(), "no-crashkernel");
        assert_eq!(refine(failed("kdump-service"), 1).kind(), "kdump-service");
        let boot3 = refine(failed("boot3"), 3);
        assert_eq!(
            boot3.to_string(),
            "the image's kdump service in boot 3: why"
        );
        assert_eq!(refine(failed("trigger"), 1).kind(), "guest-failed");
    }
}
