//! `calibrate --format json` (pure renderers): a `kdrill-calibrate-probe/1` object per probe as it finishes, then one `kdrill-calibrate-result/1` with the calibration written, each on one line.

use serde::Serialize;

use crate::calibrate::bisect::Probe;
use crate::calibrate::file::Calibration;
use crate::calibrate::Outcome;
use crate::campaign::stream::line;

pub const PROBE_SCHEMA: &str = "kdrill-calibrate-probe/1";
pub const RESULT_SCHEMA: &str = "kdrill-calibrate-result/1";

/// One probe: a case at one memory size and `crashkernel=`.
#[derive(Debug, Serialize)]
struct ProbeLine<'a> {
    schema: &'static str,
    kernel: &'a str,
    scenario: &'a str,
    memory_mib: u64,
    crashkernel_mib: u64,
    /// `works`, `too-small` (the capture failed for lack of memory) or `unrelated` (failed
    /// for another reason: retried, says nothing about the size).
    outcome: &'static str,
    /// How a too-small reservation showed itself (`capture-oom`, `kexec-cannot-load`, …).
    failure_mode: Option<&'a str>,
    /// For a reader: what happened (a too-small's description, an unrelated failure's reason).
    detail: Option<String>,
    seconds: f64,
    /// The probe's attempt folder.
    evidence: &'a str,
}

/// The probe's line, with its newline.
pub fn probe_line(kernel: &str, scenario: &str, memory_mib: u64, probe: &Probe) -> String {
    let (outcome, failure_mode, detail) = match &probe.outcome {
        Outcome::Works => ("works", None, None),
        Outcome::TooSmall(mode) => ("too-small", Some(mode.word()), Some(mode.describe())),
        Outcome::Unrelated(why) => ("unrelated", None, Some(why.clone())),
    };
    line(&ProbeLine {
        schema: PROBE_SCHEMA,
        kernel,
        scenario,
        memory_mib,
        crashkernel_mib: probe.crashkernel_mib,
        outcome,
        failure_mode,
        detail,
        seconds: probe.seconds,
        evidence: &probe.evidence,
    })
}

/// The end of a calibration.
#[derive(Debug, Serialize)]
struct ResultLine<'a> {
    schema: &'static str,
    kdrill_version: &'static str,
    /// 0 every memory size has an answer, 1 one has none (unfinished, or nothing worked).
    exit_code: i32,
    /// The calibration file written.
    file: &'a str,
    /// A `crashkernel=` covering every measured size, ready to paste (`null` without one).
    range: Option<&'a str>,
    /// The calibration as written to `file` (sizes in MiB, bytes as numbers).
    calibration: &'a Calibration,
}

pub fn result_line(calibration: &Calibration, file: &str, exit_code: i32) -> String {
    line(&ResultLine {
        schema: RESULT_SCHEMA,
        kdrill_version: crate::VERSION,
        exit_code,
        file,
        range: calibration.range.as_deref(),
        calibration,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibrate::FailureMode;

    #[test]
    fn a_probe_is_one_line_with_its_outcome_split_into_words() {
        let probe = Probe {
            crashkernel_mib: 80,
            outcome: Outcome::TooSmall(FailureMode::CaptureOom),
            seconds: 41.5,
            evidence: "/out/runs/debian-6.1/calibrate-sysrq-1024M-80M/1".into(),
        };
        let text = probe_line("debian-6.1", "sysrq", 1024, &probe);
        assert_eq!(text.matches('\n').count(), 1);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["schema"], "kdrill-calibrate-probe/1");
        assert_eq!(
            (v["memory_mib"].as_u64(), v["crashkernel_mib"].as_u64()),
            (Some(1024), Some(80))
        );
        assert_eq!(v["outcome"], "too-small");
        assert_eq!(v["failure_mode"], "capture-oom");
        assert_eq!(v["detail"], "capture kernel out of memory");
        let works = Probe {
            outcome: Outcome::Works,
            ..probe
        };
        let v: serde_json::Value =
            serde_json::from_str(&probe_line("debian-6.1", "sysrq", 1024, &works)).unwrap();
        assert_eq!(v["outcome"], "works");
        assert!(v["failure_mode"].is_null() && v["detail"].is_null());
    }

    #[test]
    fn the_result_carries_the_calibration_its_file_and_range() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../calibration/debian-6.1-minimal.yaml");
        let calibration = crate::calibrate::file::load(&path).unwrap();
        let text = result_line(&calibration, "/x/debian-6.1-minimal.yaml", 0);
        assert_eq!(text.matches('\n').count(), 1);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["schema"], "kdrill-calibrate-result/1");
        assert_eq!(v["exit_code"], 0);
        assert_eq!(v["file"], "/x/debian-6.1-minimal.yaml");
        assert_eq!(v["calibration"]["kernel"], "debian-6.1");
        assert_eq!(v["range"], v["calibration"]["range"]);
        assert!(v["range"].as_str().is_some_and(|r| r.contains("M")), "{v}");
    }
}
