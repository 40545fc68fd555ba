//! Judging one calibration probe from its evidence (pure): the case's result and its serial
//! console. Only what happened at or after loading the capture kernel can say "too small"; a
//! failure before it (the first boot, the host, the setup) is unrelated and the probe is retried.

use crate::calibrate::{FailureMode, Outcome};
use crate::case::verdict::{CaseResult, Verdict};

/// Console lines that mean the capture kernel ran out of memory.
const OOM: [&str; 4] = [
    "Out of memory",
    "System is deadlocked on memory",
    "oom-kill",
    "invoked oom-killer",
];

/// The verdict of a probe whose case ended with `result`, `console` being its serial log.
pub fn classify(result: &CaseResult, console: &str) -> Outcome {
    if result.verdict == Verdict::Pass {
        return Outcome::Works;
    }
    let reasons = result.reasons.join("; ");
    if result.verdict == Verdict::Interrupted {
        return Outcome::Unrelated(format!("interrupted: {reasons}"));
    }
    // The Debian image: kdump-tools could not load the capture kernel into the reservation.
    if result.failure.as_deref() == Some("not-ready") && reasons.contains("boot 1") {
        return Outcome::TooSmall(FailureMode::KexecCannotLoad);
    }
    // A disk image: its own kdump service could not load the capture kernel, or the kernel
    // reserved nothing at this size.
    if result.failure.as_deref() == Some("kdump-service") && reasons.contains("boot 1") {
        return Outcome::TooSmall(FailureMode::KexecCannotLoad);
    }
    if result.failure.as_deref() == Some("no-crashkernel") {
        return Outcome::TooSmall(FailureMode::NoReservation);
    }
    if reasons.contains("phase kexec") {
        if reasons.contains("kexec_crash_size is 0") {
            return Outcome::TooSmall(FailureMode::NoReservation);
        }
        return Outcome::TooSmall(FailureMode::KexecCannotLoad);
    }
    // What the capture kernel printed: the console after its banner (the second one).
    let capture = console
        .match_indices("Linux version ")
        .nth(1)
        .map(|(at, _)| &console[at..]);
    if let Some(capture) = capture {
        if capture.contains("makedumpfile") && capture.contains("Killed")
            || reasons.contains("makedumpfile exited 137")
        {
            return Outcome::TooSmall(FailureMode::MakedumpfileKilled);
        }
        if OOM.iter().any(|line| capture.contains(line)) {
            return Outcome::TooSmall(FailureMode::CaptureOom);
        }
        if result.failure.as_deref() == Some("expectation-missing")
            || result.failure.as_deref() == Some("log-mismatch")
        {
            // A dump was written and read: the reservation did its job; the expectation is wrong.
            return Outcome::Unrelated(reasons);
        }
        let panic = capture
            .lines()
            .find(|l| l.contains("Kernel panic"))
            .map(|l| {
                l.split_once("] ")
                    .map_or(l, |(_, text)| text)
                    .trim()
                    .to_string()
            });
        return Outcome::TooSmall(FailureMode::CaptureFailed(
            panic.unwrap_or_else(|| reasons.clone()),
        ));
    }
    // No capture kernel banner: did the crash happen with a capture kernel loaded?
    match result.failure.as_deref() {
        Some("capture-never-ran") => Outcome::TooSmall(FailureMode::CaptureNeverBooted),
        _ => Outcome::Unrelated(if reasons.is_empty() {
            "failed without a reason".into()
        } else {
            reasons
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::case::error::CaseError;
    use crate::vm::watch::WatchError;

    const FIRST: &str = "[    0.000000] Linux version 6.1.0-47-amd64 (debian-kernel@lists.debian.org)\nKDRILL kexec-loaded\n[    5.1] sysrq: Trigger a crash\n";

    fn failed(error: CaseError) -> CaseResult {
        let mut r = CaseResult::new("debian-6.1", "calibrate", Path::new("d"));
        r.fail(error);
        r.judge(None);
        r
    }

    fn guest(phase: &str, reason: &str) -> CaseError {
        WatchError::GuestFailed {
            phase: phase.into(),
            reason: reason.into(),
        }
        .into()
    }

    #[test]
    fn a_pass_works() {
        let mut r = CaseResult::new("k", "s", Path::new("d"));
        r.expectations.insert("x".into(), Some("x".into()));
        r.judge(None);
        assert_eq!(classify(&r, ""), Outcome::Works);
    }

    #[test]
    fn kexec_and_reservation_failures_are_too_small() {
        let r = failed(guest("kexec", "kexec -p exited 1: locate_hole failed"));
        assert_eq!(
            classify(&r, FIRST),
            Outcome::TooSmall(FailureMode::KexecCannotLoad)
        );
        let r = failed(guest(
            "kexec",
            "no crashkernel reservation (kexec_crash_size is 0)",
        ));
        assert_eq!(
            classify(&r, FIRST),
            Outcome::TooSmall(FailureMode::NoReservation)
        );
    }

    #[test]
    fn a_debian_guest_whose_kdump_tools_cannot_load_is_too_small() {
        let r = failed(CaseError::NotReady {
            boot: 1,
            reason: "kdump-config status: Not ready to kdump".into(),
        });
        assert_eq!(
            classify(&r, FIRST),
            Outcome::TooSmall(FailureMode::KexecCannotLoad)
        );
    }

    #[test]
    fn what_the_capture_kernel_printed_names_the_failure() {
        let timeout = || {
            failed(
                WatchError::Timeout {
                    event: crate::vm::status::EventName::Makedumpfile,
                    what: "makedumpfile to finish",
                    after: std::time::Duration::from_secs(180),
                }
                .into(),
            )
        };
        let oom = format!("{FIRST}[    0.000000] Linux version 6.1.0-47-amd64\n[    2.1] Kernel panic - not syncing: System is deadlocked on memory\n");
        assert_eq!(
            classify(&timeout(), &oom),
            Outcome::TooSmall(FailureMode::CaptureOom)
        );
        let killed = format!("{FIRST}[    0.0] Linux version 6.1.0-47-amd64\n/init: line 170: 93 Killed makedumpfile -c -d 31\n");
        assert_eq!(
            classify(&timeout(), &killed),
            Outcome::TooSmall(FailureMode::MakedumpfileKilled)
        );
        let other = format!("{FIRST}[    0.0] Linux version 6.1.0-47-amd64\n[    1.2] Kernel panic - not syncing: VFS: Unable to mount root fs\n");
        assert_eq!(
            classify(&timeout(), &other),
            Outcome::TooSmall(FailureMode::CaptureFailed(
                "Kernel panic - not syncing: VFS: Unable to mount root fs".into()
            ))
        );
        // The same OOM line from the first kernel says nothing about the reservation.
        let first_oom = format!("{FIRST}[    3.0] Out of memory: Killed process 1\n");
        assert!(matches!(
            classify(&timeout(), &first_oom),
            Outcome::Unrelated(_)
        ));
    }

    #[test]
    fn a_capture_that_never_ran_is_too_small_a_first_boot_flake_is_not() {
        let r = failed(CaseError::CaptureNeverRan {
            after: std::time::Duration::from_secs(120),
            panic: "sysrq triggered crash".into(),
        });
        assert_eq!(
            classify(&r, FIRST),
            Outcome::TooSmall(FailureMode::CaptureNeverBooted)
        );
        let r = failed(
            WatchError::Timeout {
                event: crate::vm::status::EventName::Boot,
                what: "the first boot's init to start",
                after: std::time::Duration::from_secs(120),
            }
            .into(),
        );
        assert!(matches!(classify(&r, ""), Outcome::Unrelated(why) if why.contains("first boot")));
    }
}
