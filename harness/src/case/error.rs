//! Why a case failed, as one typed value rendered once: the reason in `result.json`, the summary
//! and the result line, and the `failure` kind machines (the summary, calibration) match on.

use std::time::Duration;

use crate::dumpcheck::DumpError;
use crate::host::interrupt::Stop;
use crate::vm::routes::RouteError;
use crate::vm::status::EventName;
use crate::vm::watch::WatchError;

/// Everything that can make a case FAIL (or stop it).
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    /// Preparing the case failed before any guest ran: a missing tool, the kernel fetch, the
    /// crasher build, the guest image, the dump disk, the evidence folder.
    #[error("{what}: {detail}")]
    Setup { what: &'static str, detail: String },
    /// A wait on the guest ended without its event: the guest's init reported a failure, the
    /// event did not come in time, QEMU exited or stayed up, or kdrill was stopped (a signal,
    /// or its test runner went away). Its words and kind are the watch's.
    #[error(transparent)]
    Watch(#[from] WatchError),
    /// The capture kernel never started although the console shows the kernel panicked: the
    /// failure kdump exists to catch.
    #[error("no sign of the capture kernel to boot (did the crash reach kexec?) within {}s; the kernel panicked (`{panic}`) but the capture kernel never ran", .after.as_secs())]
    CaptureNeverRan { after: Duration, panic: String },
    /// Talking to QEMU (QMP) failed.
    #[error("{during}: {detail}")]
    Qmp {
        during: &'static str,
        detail: String,
    },
    /// The host's side of a crash route could not be performed.
    #[error(transparent)]
    Route(#[from] RouteError),
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
    /// `kdrill drill` in the guest: its record says it failed, or it left none, or it disagrees
    /// with the dump kdrill read on the host.
    #[error("the drill in the guest: {0}")]
    Drill(String),
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

    /// A disk image that cannot be booted at all (found before QEMU starts).
    #[error("{0}")]
    NotBootable(String),

    /// A disk image booted but kdrill's agent never reported: the console's last lines say how
    /// far it got.
    #[error(
        "the image did not boot to kdrill's agent: {reason}; the console's last lines: {lines}"
    )]
    NoAgent { reason: String, lines: String },

    /// A disk image whose command line reserves no memory for a capture kernel.
    #[error("{0}")]
    NoReservation(String),

    /// A disk image's own kdump service is missing or not ready (its own words).
    #[error("the image's kdump service in boot {boot}: {reason}")]
    Service { boot: u8, reason: String },

    /// The operator's disk image file changed while kdrill ran it.
    #[error("the image file {path} changed while the case ran (sha256 {before} before, {after} after): kdrill boots it only through an overlay, so something else wrote it; rerun with a file nothing else uses")]
    ImageChanged {
        path: String,
        before: String,
        after: String,
    },
}

impl CaseError {
    /// A short stable name for the kind of failure (`result.json`'s `failure`).
    pub fn kind(&self) -> &'static str {
        match self {
            CaseError::Setup { .. } => "setup",
            CaseError::Watch(ended) => ended.kind(),
            CaseError::CaptureNeverRan { .. } => "capture-never-ran",
            CaseError::Qmp { .. } => "qmp",
            CaseError::Route(_) => "route",
            CaseError::Read(finding) => finding.kind(),
            CaseError::NotReady { .. } => "not-ready",
            CaseError::CaptureFailed { .. } => "capture-failed",
            CaseError::DumpFolder { .. } => "dump-folder",
            CaseError::Drill(_) => "drill",
            CaseError::NothingChecked => "nothing-checked",
            CaseError::Shape { .. } => "shape",
            CaseError::Restore(_) => "restore",
            CaseError::Teardown(_) => "teardown",
            CaseError::NotBootable(_) => "not-bootable",
            CaseError::NoAgent { .. } => "no-agent",
            CaseError::NoReservation(_) => "no-crashkernel",
            CaseError::Service { .. } => "kdump-service",
            CaseError::ImageChanged { .. } => "image-changed",
        }
    }

    /// kdrill was stopped: the case ends as a wait that a stop ended does.
    pub fn interrupted(stop: Stop) -> CaseError {
        CaseError::Watch(WatchError::Interrupted(stop))
    }

    /// The stop that ended the case, if it was stopped.
    pub fn stop(&self) -> Option<Stop> {
        match self {
            CaseError::Watch(WatchError::Interrupted(stop)) => Some(*stop),
            _ => None,
        }
    }

    /// Refines a timeout waiting for the capture kernel with what the console shows: a panic
    /// that never reached the capture kernel. `panic` is the console's last panic message.
    pub fn diagnose(self, panic: impl FnOnce() -> Option<String>) -> CaseError {
        match self {
            CaseError::Watch(WatchError::Timeout {
                event: EventName::CaptureStart,
                after,
                ..
            }) => match panic() {
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
    use std::path::Path;

    use super::*;

    fn capture_timeout() -> CaseError {
        WatchError::Timeout {
            event: EventName::CaptureStart,
            what: "the capture kernel to boot (did the crash reach kexec?)",
            after: Duration::from_secs(120),
        }
        .into()
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
        let boot = CaseError::from(WatchError::Timeout {
            event: EventName::Boot,
            what: "the first boot's init to start",
            after: Duration::from_secs(120),
        });
        let err = boot.diagnose(|| Some("x".into()));
        assert_eq!(err.kind(), "timeout");
        assert_eq!(
            err.to_string(),
            "no sign of the first boot's init to start within 120s"
        );
        let failed = CaseError::from(WatchError::GuestFailed {
            phase: "kexec".into(),
            reason: "kexec -p exited 1: Cannot load".into(),
        });
        assert_eq!(failed.diagnose(|| Some("x".into())).kind(), "guest-failed");
    }

    #[test]
    fn qemu_exit_carries_its_stderr_only_when_there_is_some() {
        let err = |stderr: &str| {
            CaseError::from(WatchError::QemuExited {
                status: "exit status: 1".into(),
                event: EventName::Boot,
                what: "the first boot's init to start",
                stderr: stderr.into(),
            })
        };
        assert_eq!(
            err("").to_string(),
            "QEMU exited (exit status: 1) while waiting for the first boot's init to start"
        );
        assert!(err("no kvm").to_string().ends_with("; QEMU stderr: no kvm"));
    }

    /// The words and kinds `result.json`, the summaries and the calibration files hold: a wait
    /// that ended without its event fails the case with exactly these.
    #[test]
    fn a_failed_wait_fails_the_case_with_its_words_and_kind() {
        let waits = [
            (
                WatchError::GuestFailed {
                    phase: "kexec".into(),
                    reason: "kexec -p exited 1: Cannot load".into(),
                },
                "guest-failed",
                "guest reported failure in phase kexec: kexec -p exited 1: Cannot load",
            ),
            (
                WatchError::Timeout {
                    event: EventName::Boot,
                    what: "the first boot's init to start",
                    after: Duration::from_secs(120),
                },
                "timeout",
                "no sign of the first boot's init to start within 120s",
            ),
            (
                WatchError::QemuExited {
                    status: "exit status: 1".into(),
                    event: EventName::Boot,
                    what: "the first boot's init to start",
                    stderr: "no kvm".into(),
                },
                "qemu-exited",
                "QEMU exited (exit status: 1) while waiting for the first boot's init to start; QEMU stderr: no kvm",
            ),
            (
                WatchError::NoPowerOff {
                    after: Duration::from_secs(30),
                },
                "no-poweroff",
                "QEMU did not exit within 30s of the capture boot powering off",
            ),
            (
                WatchError::Interrupted(Stop::Term),
                "interrupted",
                "interrupted (SIGTERM); guests killed",
            ),
        ];
        for (wait, kind, words) in waits {
            let case = CaseError::from(wait);
            assert_eq!(case.to_string(), words);
            assert_eq!(case.kind(), kind);
            let mut result = crate::case::verdict::CaseResult::new("k", "s", Path::new("d"));
            result.fail(case);
            assert_eq!(result.failure.as_deref(), Some(kind));
            assert_eq!(result.reasons, [words]);
        }
    }

    #[test]
    fn a_stop_is_one_failure_however_it_was_seen() {
        let direct = CaseError::interrupted(Stop::Int);
        let waited = CaseError::from(WatchError::Interrupted(Stop::Int));
        assert_eq!(direct.to_string(), waited.to_string());
        assert_eq!(direct.kind(), waited.kind());
        assert_eq!(direct.stop(), Some(Stop::Int));
        assert_eq!(waited.stop(), Some(Stop::Int));
        assert_eq!(capture_timeout().stop(), None);
        let mut result = crate::case::verdict::CaseResult::new("k", "s", Path::new("d"));
        result.fail(waited);
        result.judge(None);
        assert_eq!(result.verdict, crate::case::verdict::Verdict::Interrupted);
        assert_eq!(result.interrupted.as_deref(), Some(Stop::Int.name()));
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
