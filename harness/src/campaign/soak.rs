//! Soak runs: one case N times back to back, every attempt's evidence kept; then the pass/fail
//! counts, the flake rate and each phase's median and spread. The statistics are pure functions
//! of the results; [`run`] is the loop.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::case::verdict::{CaseResult, Verdict};
use crate::case::{Case, RunOptions};
use crate::host::interrupt;

/// The spread of one phase over the runs that reached it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spread {
    pub runs: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// The 10th and 90th percentiles (nearest rank).
    pub p10: f64,
    pub p90: f64,
}

/// What a soak found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub case: String,
    pub runs: usize,
    pub passed: usize,
    pub failed: usize,
    pub interrupted: usize,
    /// Failed ÷ judged runs (interrupted ones are not judged).
    pub flake_rate: f64,
    /// Each failure kind and how often it happened.
    pub failures: BTreeMap<String, usize>,
    /// Each failed run's evidence folder and first reason.
    pub failed_runs: Vec<(String, String)>,
    pub phases: BTreeMap<&'static str, Spread>,
}

/// How many phase figures a soak spreads.
const PHASES: usize = 11;

/// A run's phase figures, by name: the shared ones and its image kind's own.
fn phase_values(r: &CaseResult) -> [(&'static str, Option<f64>); PHASES] {
    let p = r.phase_view();
    let m = p.minimal.cloned().unwrap_or_default();
    let d = p.debian.cloned().unwrap_or_default();
    let s = p.shared;
    [
        ("boot", s.boot),
        ("guest_boot", s.guest_boot),
        ("kexec", m.kexec),
        ("ready", d.ready),
        ("crash_to_capture", s.crash_to_capture),
        ("capture_boot", s.capture_boot),
        ("makedumpfile", m.makedumpfile),
        ("crash_to_saved", d.crash_to_saved),
        ("ready_again", d.ready_again),
        ("verify", s.verify),
        ("total", s.total),
    ]
}

/// The spread of `values` (`None` when empty).
pub fn spread(values: &[f64]) -> Option<Spread> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let rank = |p: f64| sorted[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    Some(Spread {
        runs: n,
        median,
        min: sorted[0],
        max: sorted[n - 1],
        p10: rank(0.1),
        p90: rank(0.9),
    })
}

/// Summarises the results of one case's runs.
pub fn report(case: &str, results: &[CaseResult]) -> Report {
    let count = |v: Verdict| results.iter().filter(|r| r.verdict == v).count();
    let (passed, failed, interrupted) = (
        count(Verdict::Pass),
        count(Verdict::Fail),
        count(Verdict::Interrupted),
    );
    let judged = passed + failed;
    let mut failures = BTreeMap::new();
    let mut failed_runs = Vec::new();
    for r in results.iter().filter(|r| r.verdict == Verdict::Fail) {
        *failures
            .entry(r.failure.clone().unwrap_or_else(|| "unknown".into()))
            .or_insert(0) += 1;
        failed_runs.push((
            r.artifacts.clone(),
            r.reasons.first().cloned().unwrap_or_default(),
        ));
    }
    let mut phases = BTreeMap::new();
    let figures: Vec<_> = results
        .iter()
        .filter(|r| r.verdict == Verdict::Pass)
        .map(phase_values)
        .collect();
    for i in 0..PHASES {
        let values: Vec<f64> = figures.iter().filter_map(|run| run[i].1).collect();
        if let (Some(s), Some(run)) = (spread(&values), figures.first()) {
            phases.insert(run[i].0, s);
        }
    }
    Report {
        case: case.to_string(),
        runs: results.len(),
        passed,
        failed,
        interrupted,
        flake_rate: if judged == 0 {
            0.0
        } else {
            failed as f64 / judged as f64
        },
        failures,
        failed_runs,
        phases,
    }
}

/// The report as text: counts, the flake rate, failures, then one line per phase.
pub fn render(report: &Report) -> String {
    let mut out = format!(
        "soak {}: {} runs, {} passed, {} failed, {} interrupted; flake rate {:.1}%\n",
        report.case,
        report.runs,
        report.passed,
        report.failed,
        report.interrupted,
        report.flake_rate * 100.0
    );
    for (kind, n) in &report.failures {
        out.push_str(&format!("  failure {kind}: {n}\n"));
    }
    for (dir, reason) in &report.failed_runs {
        out.push_str(&format!("  FAIL {dir}: {reason}\n"));
    }
    out.push_str("  phase (passing runs)   median     min     p10     p90     max\n");
    for (name, s) in &report.phases {
        out.push_str(&format!(
            "  {name:<20} {:>7.2}s {:>6.2}s {:>6.2}s {:>6.2}s {:>6.2}s\n",
            s.median, s.min, s.p10, s.p90, s.max
        ));
    }
    out
}

/// Runs `case` `runs` times back to back (stopping early on Ctrl-C/SIGTERM), printing each
/// result line, and returns the results.
pub fn run(case: &Case, options: &RunOptions, runs: usize) -> Vec<CaseResult> {
    interrupt::install();
    let mut results = Vec::new();
    for n in 1..=runs {
        if interrupt::interrupted().is_some() {
            break;
        }
        eprintln!("soak: run {n}/{runs}");
        results.push(crate::campaign::verify::run_one(
            case,
            options,
            crate::campaign::stream::Format::Text,
        ));
    }
    results
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn result(verdict: Verdict, total: f64, failure: Option<&str>) -> CaseResult {
        let mut r = CaseResult::new("k", "s", Path::new("d"));
        r.verdict = verdict;
        r.phases.total = Some(total);
        r.phases.boot = Some(total / 4.0);
        r.failure = failure.map(String::from);
        if verdict == Verdict::Fail {
            r.reasons.push("boom".into());
        }
        r
    }

    #[test]
    fn spreads_of_odd_and_even_counts() {
        let s = spread(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let s = spread(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!(s.median, 2.5);
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        let s = spread(&ten).unwrap();
        assert_eq!((s.p10, s.p90), (1.0, 9.0));
        assert_eq!(spread(&[]), None);
    }

    #[test]
    fn the_report_counts_flakes_and_times_only_passing_runs() {
        let results = vec![
            result(Verdict::Pass, 20.0, None),
            result(Verdict::Pass, 22.0, None),
            result(Verdict::Fail, 300.0, Some("timeout")),
            result(Verdict::Interrupted, 5.0, Some("interrupted")),
        ];
        let r = report("k/s", &results);
        assert_eq!((r.runs, r.passed, r.failed, r.interrupted), (4, 2, 1, 1));
        assert!((r.flake_rate - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(r.failures["timeout"], 1);
        assert_eq!(r.phases["total"].median, 21.0);
        assert_eq!(r.phases["boot"].max, 5.5);
        let text = render(&r);
        assert!(
            text.starts_with(
                "soak k/s: 4 runs, 2 passed, 1 failed, 1 interrupted; flake rate 33.3%\n"
            ),
            "{text}"
        );
        assert!(text.contains("  FAIL d: boom\n"), "{text}");
    }
}
