//! Why a case failed, as one typed value rendered once: the reason in `result.json`, the summary
//! and the result line, and the `failure` kind machines (the summary, calibration) match on.

use std::time::Duration;

use crate::dumpcheck::DumpError;
use crate::host::interrupt::Stop;
use crate::vm::status::EventName;
use crate::vm::watch::{stderr_note, WatchError};

/// Everything that can make a case FAIL (or stop it).
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    /// Preparing the case failed before any guest ran: a missing tool, the kernel fetch, the
    /// crasher build, the guest image, the dump disk, the evidence folder.
    #[error("{what}: {detail}")]
    Setup { what: &'static str, detail: String },
    /// The guest's init reported a failure on its status channel.
    #[error("guest reported failure in phase {phase}: {reason}")]
    GuestFailed { phase: String, reason: String },
    /// An awaited status event did not come in time.
    #[error("no sign of {what} within {}s", .after.as_secs())]
    Timeout {
        event: EventName,
        what: &'static str,
        after: Duration,
    },
    /// The capture kernel never started although the console shows the kernel panicked: the
    /// failure kdump exists to catch.
    #[error("no sign of the capture kernel to boot (did the crash reach kexec?) within {}s; the kernel panicked (`{panic}`) but the capture kernel never ran", .after.as_secs())]
    CaptureNeverRan { after: Duration, panic: String },
    /// QEMU ended while an event was awaited.
    #[error("QEMU exited ({status}) while waiting for {what}{}", stderr_note(.stderr))]
    QemuExited {
        status: String,
        event: EventName,
        what: &'static str,
        stderr: String,
    },
    /// QEMU stayed up after the capture boot powered off.
    #[error("QEMU did not exit within {}s of the capture boot powering off", .after.as_secs())]
    NoPowerOff { after: Duration },
    /// Talking to QEMU (QMP) failed.
    #[error("{during}: {detail}")]
    Qmp {
        during: &'static str,
        detail: String,
    },
    /// The host's side of a crash route could not be performed.
    #[error("{0}")]
    Route(String),
    /// Reading the dump back failed, or found the dump wrong (`dumpcheck`): its words and kind.
    #[error(transparent)]
    Read(#[from] DumpError),
    /// kdump-tools was not ready to kdump in the Debian guest (boot 1, or boot 3 after the crash).
    #[error("kdump-tools is not ready to kdump in boot {boot}: {reason}")]
    NotReady { boot: u8, reason: String },
    /// The Debian guest's capture boot saved no dump; the reason says what its console showed.
    #[error("the capture saved no dump: {reason}")]
    CaptureFailed { reason: String },
    /// The dump folder read off the Debian guest's disk is not what a good capture leaves.
    #[error("dump folder {folder}: {problem}")]
    DumpFolder { folder: String, problem: String },
    /// The case ran, but checked nothing.
    #[error("no expectation was checked")]
    NothingChecked,
    /// The saved guest shape this case starts from could not be booted or saved.
    #[error("the guest shape (its evidence: {dir}) failed: {cause}")]
    Shape { dir: String, cause: Box<CaseError> },
    /// Starting from the saved shape, or handing the restored guest its case, failed.
    #[error("restoring the saved shape: {0}")]
    Restore(String),
    /// Killing QEMU left something behind.
    #[error("teardown: {0}")]
    Teardown(String),
    /// kdrill was stopped (a signal, or its test runner went away).
    #[error("interrupted ({0}); guests killed")]
    Interrupted(Stop),
}

/// A wait on the guest that ended without its event fails the case with the same words and the
/// matching kind.
impl From<WatchError> for CaseError {
    fn from(e: WatchError) -> Self {
        match e {
            WatchError::GuestFailed { phase, reason } => CaseError::GuestFailed { phase, reason },
            WatchError::Timeout { event, what, after } => CaseError::Timeout { event, what, after },
            WatchError::QemuExited {
                status,
                event,
                what,
                stderr,
            } => CaseError::QemuExited {
                status,
                event,
                what,
                stderr,
            },
            WatchError::NoPowerOff { after } => CaseError::NoPowerOff { after },
            WatchError::Interrupted(stop) => CaseError::Interrupted(stop),
        }
    }
}

impl CaseError {
    /// A short stable name for the kind of failure (`result.json`'s `failure`).
    pub fn kind(&self) -> &'static str {
        match self {
            CaseError::Setup { .. } => "setup",
            CaseError::GuestFailed { .. } => "guest-failed",
            CaseError::Timeout { .. } => "timeout",
            CaseError::CaptureNeverRan { .. } => "capture-never-ran",
            CaseError::QemuExited { .. } => "qemu-exited",
            CaseError::NoPowerOff { .. } => "no-poweroff",
            CaseError::Qmp { .. } => "qmp",
            CaseError::Route(_) => "route",
            CaseError::Read(finding) => finding.kind(),
            CaseError::NotReady { .. } => "not-ready",
            CaseError::CaptureFailed { .. } => "capture-failed",
            CaseError::DumpFolder { .. } => "dump-folder",
            CaseError::NothingChecked => "nothing-checked",
            CaseError::Shape { .. } => "shape",
            CaseError::Restore(_) => "restore",
            CaseError::Teardown(_) => "teardown",
            CaseError::Interrupted(_) => "interrupted",
        }
    }

    /// Refines a timeout waiting for the capture kernel with what the console shows: a panic
    /// that never reached the capture kernel. `panic` is the console's last panic message.
    pub fn diagnose(self, panic: impl FnOnce() -> Option<String>) -> CaseError {
        match self {
            CaseError::Timeout {
                event: EventName::CaptureStart,
                after,
                ..
            } => match panic() {
                Some(panic) => CaseError::CaptureNeverRan { after, panic },
                None => self,
            },
            other => other,
        }
    }
}

/// Turns any displayable error into a [`CaseError::Setup`] naming the step.
pub trait SetupContext<T> {
    fn setup(self, what: &'static str) -> Result<T, CaseError>;
}

impl<T, E: std::fmt::Display> SetupContext<T> for Result<T, E> {
    fn setup(self, what: &'static str) -> Result<T, CaseError> {
        self.map_err(|e| CaseError::Setup {
            what,
            detail: format!("{e:#}").trim_end().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture_timeout() -> CaseError {
        CaseError::Timeout {
            event: EventName::CaptureStart,
            what: "the capture kernel to boot (did the crash reach kexec?)",
            after: Duration::from_secs(120),
        }
    }

    #[test]
    fn a_capture_timeout_after_a_panic_says_the_capture_never_ran() {
        let err = capture_timeout().diagnose(|| Some("sysrq triggered crash".into()));
        assert_eq!(err.kind(), "capture-never-ran");
        assert_eq!(
            err.to_string(),
            "no sign of the capture kernel to boot (did the crash reach kexec?) within 120s; the kernel panicked (`sysrq triggered crash`) but the capture kernel never ran"
        );
    }

    #[test]
    fn other_timeouts_and_errors_are_not_rediagnosed() {
        let err = capture_timeout().diagnose(|| None);
        assert_eq!(err.kind(), "timeout");
        let boot = CaseError::Timeout {
            event: EventName::Boot,
            what: "the first boot's init to start",
            after: Duration::from_secs(120),
        };
        let err = boot.diagnose(|| Some("x".into()));
        assert_eq!(
            err.to_string(),
            "no sign of the first boot's init to start within 120s"
        );
        let failed = CaseError::GuestFailed {
            phase: "kexec".into(),
            reason: "kexec -p exited 1: Cannot load".into(),
        };
        assert_eq!(
            failed.to_string(),
            "guest reported failure in phase kexec: kexec -p exited 1: Cannot load"
        );
    }

    #[test]
    fn qemu_exit_carries_its_stderr_only_when_there_is_some() {
        let err = |stderr: &str| CaseError::QemuExited {
            status: "exit status: 1".into(),
            event: EventName::Boot,
            what: "the first boot's init to start",
            stderr: stderr.into(),
        };
        assert_eq!(
            err("").to_string(),
            "QEMU exited (exit status: 1) while waiting for the first boot's init to start"
        );
        assert!(err("no kvm").to_string().ends_with("; QEMU stderr: no kvm"));
    }

    #[test]
    fn a_failed_wait_reads_the_same_as_a_case_failure() {
        let waits = [
            WatchError::GuestFailed {
                phase: "kexec".into(),
                reason: "kexec -p exited 1: Cannot load".into(),
            },
            WatchError::Timeout {
                event: EventName::Boot,
                what: "the first boot's init to start",
                after: Duration::from_secs(120),
            },
            WatchError::QemuExited {
                status: "exit status: 1".into(),
                event: EventName::Boot,
                what: "the first boot's init to start",
                stderr: "no kvm".into(),
            },
            WatchError::NoPowerOff {
                after: Duration::from_secs(30),
            },
            WatchError::Interrupted(Stop::Term),
        ];
        let kinds = [
            "guest-failed",
            "timeout",
            "qemu-exited",
            "no-poweroff",
            "interrupted",
        ];
        for (wait, kind) in waits.into_iter().zip(kinds) {
            let words = wait.to_string();
            let case = CaseError::from(wait);
            assert_eq!(case.to_string(), words);
            assert_eq!(case.kind(), kind);
        }
    }

    #[test]
    fn a_dump_finding_reads_the_same_as_a_case_failure() {
        let s = || "x".to_string();
        let findings = [
            (DumpError::NoDump, "no-dump"),
            (DumpError::EmptyDump, "empty-dump"),
            (DumpError::Dump(s()), "dump-unreadable"),
            (
                DumpError::LogMismatch {
                    at: 7,
                    ours: s(),
                    theirs: s(),
                },
                "log-mismatch",
            ),
            (
                DumpError::ExpectedLineMissing {
                    from: s(),
                    pattern: s(),
                },
                "expectation-missing",
            ),
            (
                DumpError::ForbiddenLine {
                    text: s(),
                    pattern: s(),
                    line: s(),
                },
                "forbidden-line",
            ),
            (DumpError::DeepUnreadable(s()), "deep-unreadable"),
            (
                DumpError::FrameMissing {
                    pattern: s(),
                    frames: s(),
                },
                "backtrace-mismatch",
            ),
            (
                DumpError::WrongTask {
                    want: s(),
                    got: s(),
                },
                "task-mismatch",
            ),
            (DumpError::ModuleMissing(s()), "module-missing"),
            (
                DumpError::DumpNotReduced {
                    percent: 90.5,
                    max: 10.0,
                    dumped: 9,
                    ram: 10,
                    why: s(),
                },
                "dump-not-reduced",
            ),
        ];
        for (finding, kind) in findings {
            let words = finding.to_string();
            let case = CaseError::from(finding);
            assert_eq!(case.to_string(), words);
            assert_eq!(case.kind(), kind);
        }
    }

    #[test]
    fn setup_errors_name_their_step() {
        let got: Result<(), CaseError> = Err::<(), _>("apt-get failed").setup("kernel debian-6.1");
        assert_eq!(
            got.unwrap_err().to_string(),
            "kernel debian-6.1: apt-get failed"
        );
    }
}
