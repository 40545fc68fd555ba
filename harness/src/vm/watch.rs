//! Waiting for the guest's status events: each wait has a deadline, and ends early with a typed
//! reason when the guest reports a failure, QEMU exits, or kdrill is asked to stop.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::host::interrupt::{self, Stop};
use crate::host::process::last_lines;
use crate::vm::console::LineTail;
use crate::vm::qemu::Guest;
use crate::vm::status::{Event, EventName, StatusReader};

/// Why a wait ended without its event. A case that fails by one carries it as it is: its words
/// are the case's reason and [`WatchError::kind`] its `failure` kind in `result.json`.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The guest's init reported a failure on its status channel.
    #[error("guest reported failure in phase {phase}: {reason}")]
    GuestFailed { phase: String, reason: String },
    /// The awaited status event did not come in time.
    #[error("no sign of {what} within {}s", .after.as_secs())]
    Timeout {
        event: EventName,
        what: &'static str,
        after: Duration,
    },
    /// QEMU ended while the event was awaited.
    #[error("QEMU exited ({status}) while waiting for {what}{}", stderr_note(.stderr))]
    QemuExited {
        status: String,
        event: EventName,
        what: &'static str,
        stderr: String,
    },
    /// QEMU stayed up after the guest powered off.
    #[error("QEMU did not exit within {}s of the capture boot powering off", .after.as_secs())]
    NoPowerOff { after: Duration },
    /// kdrill was stopped (a signal, or its test runner went away).
    #[error("interrupted ({0}); guests killed")]
    Interrupted(Stop),
}

impl WatchError {
    /// A short stable name for the kind of failure (`result.json`'s `failure`, which the
    /// summary and calibration match on).
    pub fn kind(&self) -> &'static str {
        match self {
            WatchError::GuestFailed { .. } => "guest-failed",
            WatchError::Timeout { .. } => "timeout",
            WatchError::QemuExited { .. } => "qemu-exited",
            WatchError::NoPowerOff { .. } => "no-poweroff",
            WatchError::Interrupted(_) => "interrupted",
        }
    }
}

/// Keeps the guest as it is for `how_long` (a simulated hang), ending early on a stop.
pub fn hold(how_long: Duration) -> Result<(), WatchError> {
    match crate::host::deadline::wait_until(how_long, interrupt::interrupted) {
        Some(stop) => Err(WatchError::Interrupted(stop)),
        None => Ok(()),
    }
}

/// `; QEMU stderr: …` when QEMU wrote any, else nothing.
pub fn stderr_note(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!("; QEMU stderr: {stderr}")
    }
}

/// One awaited event: what it is, how long it may take, and how a failure describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    pub event: EventName,
    pub limit: Duration,
    /// "the first boot's init to start": completes "no sign of … within Ns".
    pub what: &'static str,
}

/// The guest and its two output files, followed as they grow.
pub struct Watch {
    guest: Guest,
    status: StatusReader,
    console: LineTail,
    echo: bool,
    scale: f64,
    stderr: PathBuf,
    /// Every status event seen so far, with the host time it arrived.
    history: Vec<(Instant, EventName)>,
    /// Events read but not yet consumed by a wait.
    pending: VecDeque<(Instant, Event)>,
    /// When each kernel's banner (`Linux version …`, among its first console lines) arrived:
    /// one per kernel that booted, in order.
    banners: Vec<Instant>,
    /// Console text to time: each needle and when a line holding it was first read.
    marks: Vec<(&'static str, Option<Instant>)>,
}

impl Watch {
    /// Follows `status_log` and `serial_log` of `guest`; deadlines are multiplied by `scale`.
    pub fn new(
        guest: Guest,
        status_log: &Path,
        serial_log: &Path,
        stderr: &Path,
        echo: bool,
        scale: f64,
    ) -> Self {
        Watch {
            guest,
            status: StatusReader::new(status_log),
            console: LineTail::new(serial_log),
            echo,
            scale,
            stderr: stderr.into(),
            history: Vec::new(),
            pending: VecDeque::new(),
            banners: Vec::new(),
            marks: Vec::new(),
        }
    }

    /// Times the first console line holding `needle` (read while waiting), for [`Watch::marked`].
    /// Only for timing: what happened is decided by status events and the disk.
    pub fn mark(&mut self, needle: &'static str) {
        self.marks.push((needle, None));
    }

    /// When a console line holding a [`Watch::mark`]ed needle was first read.
    pub fn marked(&self, needle: &str) -> Option<Instant> {
        self.marks
            .iter()
            .find(|(n, _)| *n == needle)
            .and_then(|(_, at)| *at)
    }

    /// The guest being watched.
    pub fn guest(&mut self) -> &mut Guest {
        &mut self.guest
    }

    /// `limit` stretched by this watch's scale.
    pub fn scaled(&self, limit: Duration) -> Duration {
        limit.mul_f64(self.scale)
    }

    /// Reads new status events and consumes them up to the first of `names` or a `fail` event;
    /// later events stay queued for the next wait.
    fn take(&mut self, names: &[EventName]) -> Option<Result<(Instant, Event), WatchError>> {
        for (at, event) in self.status.poll() {
            self.history.push((at, event.name));
            self.pending.push_back((at, event));
        }
        while let Some((at, event)) = self.pending.pop_front() {
            if event.name == EventName::Fail {
                return Some(Err(WatchError::GuestFailed {
                    phase: event.field("phase").unwrap_or("?").into(),
                    reason: event.field("reason").unwrap_or("no reason given").into(),
                }));
            }
            if names.contains(&event.name) {
                return Some(Ok((at, event)));
            }
        }
        None
    }

    /// When event `name` was last seen, if ever.
    pub fn seen(&self, name: EventName) -> Option<Instant> {
        self.history
            .iter()
            .rev()
            .find(|(_, n)| *n == name)
            .map(|(at, _)| *at)
    }

    /// When each kernel that booted printed its banner (seen on the console), in order.
    pub fn banners(&self) -> &[Instant] {
        &self.banners
    }

    /// Waits for QEMU to exit once the guest powered off, for `limit` stretched by this watch's
    /// scale; a stop ends the wait.
    pub fn power_off(&mut self, limit: Duration) -> Result<(), WatchError> {
        let limit = self.scaled(limit);
        if self.guest.wait_exit(limit).is_some() {
            return Ok(());
        }
        match interrupt::interrupted() {
            Some(stop) => Err(WatchError::Interrupted(stop)),
            None => Err(WatchError::NoPowerOff { after: limit }),
        }
    }

    /// Waits for `wait.event`; a `fail` event, QEMU exiting, a stop or the deadline ends the
    /// wait with the matching [`WatchError`].
    pub fn until(&mut self, wait: Wait) -> Result<(Instant, Event), WatchError> {
        self.until_first(wait, &[])
    }

    /// Waits for `wait.event` or any of `also`, whichever the guest says first (a new boot while
    /// the capture was awaited, say); ends as [`Watch::until`] does otherwise.
    pub fn until_first(
        &mut self,
        wait: Wait,
        also: &[EventName],
    ) -> Result<(Instant, Event), WatchError> {
        let timeout = self.scaled(wait.limit);
        let deadline = Instant::now() + timeout;
        let mut names = vec![wait.event];
        names.extend_from_slice(also);
        loop {
            for line in self.console.poll() {
                if line.contains("Linux version ") {
                    self.banners.push(Instant::now());
                }
                if self.echo {
                    eprintln!("  | {line}");
                }
                for (needle, at) in &mut self.marks {
                    if at.is_none() && line.contains(*needle) {
                        *at = Some(Instant::now());
                    }
                }
            }
            if let Some(stop) = interrupt::interrupted() {
                return Err(WatchError::Interrupted(stop));
            }
            if let Some(found) = self.take(&names) {
                return found;
            }
            if let Some(status) = self.guest.try_exit() {
                // The file may hold a last event written just before QEMU exited.
                if let Some(found) = self.take(&names) {
                    return found;
                }
                return Err(WatchError::QemuExited {
                    status: status.to_string(),
                    event: wait.event,
                    what: wait.what,
                    stderr: last_lines(&self.stderr, 5).join(" | "),
                });
            }
            if Instant::now() >= deadline {
                return Err(WatchError::Timeout {
                    event: wait.event,
                    what: wait.what,
                    after: timeout,
                });
            }
            std::thread::sleep(crate::host::deadline::POLL);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;
    use crate::host::process::GroupChild;

    /// A fake guest: a shell that writes status lines, as QEMU writes the guest's ttyS1.
    fn watch(script: &str, dir: &Path) -> Watch {
        let status = dir.join("status.log");
        let script = script.replace("STATUS", &status.display().to_string());
        let guest = GroupChild::start(Command::new("/bin/sh").args(["-c", &script])).unwrap();
        Watch::new(
            guest,
            &status,
            &dir.join("serial.log"),
            &dir.join("stderr.log"),
            false,
            1.0,
        )
    }

    const BOOT: Wait = Wait {
        event: EventName::Boot,
        limit: Duration::from_secs(10),
        what: "the first boot's init to start",
    };

    #[test]
    fn an_event_ends_the_wait_and_later_ones_stay_queued() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = watch(
            "printf 'KDRILL boot t=1.0\\nKDRILL ready t=2.0\\n' > STATUS; sleep 30",
            dir.path(),
        );
        let (_, boot) = w.until(BOOT).unwrap();
        assert_eq!(boot.uptime, 1.0);
        let ready = Wait {
            event: EventName::Ready,
            ..BOOT
        };
        assert_eq!(w.until(ready).unwrap().1.uptime, 2.0);
        assert!(w.seen(EventName::Boot).is_some());
    }

    #[test]
    fn another_awaited_event_ends_the_wait_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = watch(
            "printf 'KDRILL boot t=1.0 crashed=yes\\nKDRILL capture-start t=2.0\\n' > STATUS; sleep 30",
            dir.path(),
        );
        let capture = Wait {
            event: EventName::CaptureStart,
            ..BOOT
        };
        let (_, got) = w.until_first(capture, &[EventName::Boot]).unwrap();
        assert_eq!(got.name, EventName::Boot);
        assert_eq!(got.field("crashed"), Some("yes"));
        // The later event is still there for the next wait.
        assert_eq!(w.until(capture).unwrap().1.name, EventName::CaptureStart);
    }

    #[test]
    fn console_marks_time_the_first_matching_line() {
        let dir = tempfile::tempdir().unwrap();
        let serial = dir.path().join("serial.log");
        let mut w = watch(
            &format!(
                "printf 'kdump-tools: saved vmcore in /var/crash/1\\n' > {}; printf 'KDRILL boot t=1.0\\n' > STATUS; sleep 30",
                serial.display()
            ),
            dir.path(),
        );
        w.mark("saved vmcore in");
        assert!(w.marked("saved vmcore in").is_none());
        w.until(BOOT).unwrap();
        // The console may be read on a later poll: wait for one more event-less moment.
        let _ = w.until(Wait {
            limit: Duration::from_millis(300),
            ..BOOT
        });
        assert!(w.marked("saved vmcore in").is_some());
    }

    #[test]
    fn a_guest_failure_is_typed() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = watch(
            "printf 'KDRILL fail t=1.0 phase=kexec reason=kexec -p exited 1\\n' > STATUS; sleep 30",
            dir.path(),
        );
        let err = w.until(BOOT).unwrap_err();
        assert!(
            matches!(&err, WatchError::GuestFailed { phase, reason } if phase == "kexec" && reason == "kexec -p exited 1"),
            "{err:?}"
        );
    }

    #[test]
    fn qemu_exiting_and_the_deadline_end_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = watch("exit 3", dir.path());
        let err = w.until(BOOT).unwrap_err();
        assert!(matches!(err, WatchError::QemuExited { .. }), "{err}");
        let mut w = watch("sleep 30", dir.path());
        let short = Wait {
            limit: Duration::from_millis(200),
            ..BOOT
        };
        let err = w.power_off(Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, WatchError::NoPowerOff { .. }), "{err:?}");
        let err = w.until(short).unwrap_err();
        assert!(
            matches!(
                err,
                WatchError::Timeout {
                    event: EventName::Boot,
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
