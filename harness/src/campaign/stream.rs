//! `verify --format json`: one JSON object per line on stdout for tools (pure renderers): a `kdrill-verify-case/1` object per finished case, built from its `CaseResult`, then one `kdrill-verify-summary/1`; `--list` gives `kdrill-verify-list/1` objects.
//!
//! Numbers that can pass 2^53 (a dump's size in bytes) are strings, as a JSON consumer keeps
//! no more than a double. The objects are a contract: fields are added, never renamed or
//! removed within a schema's `/1`.

use serde::Serialize;

use crate::campaign::matrix::Case;
use crate::case::verdict::{CaseResult, KernelPackage, PhaseView, Verdict};
use crate::fetch::userspace::Used;

/// How `verify` and `calibrate` print: `text` for people, `json` for tools.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// Lines for people (progress on stderr)
    #[default]
    Text,
    /// One JSON object per line on stdout (progress and people's lines on stderr)
    Json,
}

pub const CASE_SCHEMA: &str = "kdrill-verify-case/1";
pub const SUMMARY_SCHEMA: &str = "kdrill-verify-summary/1";
pub const LIST_SCHEMA: &str = "kdrill-verify-list/1";

/// One finished case.
#[derive(Debug, Serialize)]
pub struct CaseLine<'a> {
    pub schema: &'static str,
    /// `<kernel>/<scenario label>`, as `--list` and the text lines name it.
    pub id: String,
    pub kernel: &'a str,
    pub scenario: &'a str,
    /// `PASS`, `FAIL`, `SKIP` or `INTERRUPTED`.
    pub verdict: &'static str,
    /// The failure's stable kind (`CaseError::kind`: `timeout`, `no-dump`, …; `not-run` for a
    /// selected case this run has no result for); `null` unless FAIL or INTERRUPTED.
    pub failure: Option<&'a str>,
    /// The first reason (a SKIP's declared reason too); `reasons` has them all.
    pub reason: Option<&'a str>,
    pub reasons: &'a [String],
    /// How the case was stopped (`SIGTERM`, …), when it was.
    pub interrupted: Option<&'a str>,
    /// Which try this was (nextest's retries), and whether it passed only on a retry.
    pub attempt: u32,
    pub flaky: bool,
    /// Seconds since the epoch when the case started (0 when it never did).
    pub started: f64,
    /// The whole case, in seconds.
    pub seconds: Option<f64>,
    /// Each phase in seconds: `result.json`'s `phases` with the image kind's own beside them
    /// (its `minimal`, or a Debian image's `production` times).
    pub phases: PhaseView<'a>,
    /// The dump file's size in bytes, as a decimal string.
    pub dump_bytes: Option<String>,
    /// The pages the dump holds and leaves out, and what makedumpfile warned (`null` without a
    /// dump read back).
    pub capture: Option<&'a crate::dumpcheck::facts::CaptureFacts>,
    pub route: Option<String>,
    /// `kvm` or `tcg`.
    pub accel: Option<&'static str>,
    /// `faithful`, `fast` or `restored` (fast, from a saved guest shape).
    pub boot: Option<String>,
    pub kernel_release: Option<&'a str>,
    pub kernel_package: Option<&'a KernelPackage>,
    /// Whose busybox, kexec-tools and makedumpfile captured, with their versions (as in
    /// `result.json`; `null` for the Debian image, whose own kdump-tools capture).
    pub userspace: Option<&'a Used>,
    /// Which makedumpfile re-read the dump's log for the byte-for-byte cross-check.
    pub log_check: Option<&'a str>,
    pub panic_message: Option<&'a str>,
    pub notes: &'a [String],
    /// This attempt's evidence folder (its `result.json` has everything).
    pub evidence: Option<&'a str>,
}

impl<'a> CaseLine<'a> {
    pub fn of(result: &'a CaseResult) -> CaseLine<'a> {
        let judged = matches!(result.verdict, Verdict::Fail | Verdict::Interrupted);
        CaseLine {
            schema: CASE_SCHEMA,
            id: result.id(),
            kernel: &result.kernel,
            scenario: &result.scenario,
            verdict: result.verdict.label(),
            failure: result.failure.as_deref().filter(|_| judged),
            reason: result.reasons.first().map(String::as_str),
            reasons: &result.reasons,
            interrupted: result.interrupted.as_deref(),
            attempt: result.attempt,
            flaky: false,
            started: result.started,
            seconds: result.phases.total,
            phases: result.phase_view(),
            dump_bytes: result.dump_bytes.map(|b| b.to_string()),
            capture: result.capture.as_ref(),
            route: result
                .route
                .and_then(|r| serde_json::to_value(r).ok())
                .and_then(|v| v.as_str().map(String::from)),
            accel: result.accel.map(|a| a.qemu_name()),
            boot: result.plan.as_ref().map(|plan| {
                if result.shape.is_some() {
                    "restored".into()
                } else {
                    plan.mode.word().to_string()
                }
            }),
            kernel_release: result.kernel_release.as_deref(),
            kernel_package: result.kernel_package.as_ref(),
            userspace: result.userspace.as_ref(),
            log_check: result.log_check.as_deref(),
            panic_message: result.panic_message.as_deref(),
            notes: &result.notes,
            evidence: Some(result.artifacts.as_str()).filter(|a| !a.is_empty()),
        }
    }

    /// The line, with its newline.
    pub fn render(&self) -> String {
        line(self)
    }
}

/// One line for a result.
pub fn case_line(result: &CaseResult) -> String {
    CaseLine::of(result).render()
}

/// The lines of a run read back from its results after the fact (the nextest path): each case's
/// last attempt (`flaky` when it passed only on a retry), or, without a result, its SKIP or
/// NOT RUN line ([`unfinished_line`]).
pub fn run_lines(cases: &[Case], results: &[CaseResult]) -> String {
    let rows = crate::campaign::summary::rows(cases, results);
    let mut out = String::new();
    for (case, row) in cases.iter().zip(&rows) {
        let last = results
            .iter()
            .filter(|r| r.kernel == case.kernel.id && r.scenario == case.label())
            .max_by(|a, b| a.started.total_cmp(&b.started));
        match last {
            Some(result) => {
                let mut line = CaseLine::of(result);
                line.flaky = row.status == crate::campaign::summary::Status::Flaky;
                out.push_str(&line.render());
            }
            None => out.push_str(&unfinished_line(case)),
        }
    }
    out
}

/// The lines of the selected cases that have no result.
pub fn unfinished_lines(cases: &[Case], results: &[CaseResult]) -> String {
    cases
        .iter()
        .filter(|case| {
            !results
                .iter()
                .any(|r| r.kernel == case.kernel.id && r.scenario == case.label())
        })
        .map(unfinished_line)
        .collect()
}

/// A selected case this run has no result for: a FAIL of kind `not-run` (a declared skip is
/// a SKIP with its reason).
pub fn unfinished_line(case: &Case) -> String {
    let mut result = CaseResult::new(&case.kernel.id, &case.label(), std::path::Path::new(""));
    result.artifacts.clear();
    match case.skip_reason() {
        Some(why) => {
            result.verdict = Verdict::Skip;
            result.reasons.push(why);
        }
        None => {
            result.failure = Some("not-run".into());
            result
                .reasons
                .push("selected, but this run has no result for it (stopped, or filtered out of the test run)".into());
        }
    }
    result.attempt = 0;
    case_line(&result)
}

/// The totals, after the last case.
#[derive(Debug, Serialize)]
pub struct SummaryLine<'a> {
    pub schema: &'static str,
    pub kdrill_version: &'static str,
    pub passed: usize,
    /// FAIL and NOT RUN together, as the text line counts them.
    pub failed: usize,
    pub skipped: usize,
    pub interrupted: usize,
    /// Passed only on a retry (counted in `passed` too).
    pub flaky: usize,
    pub not_run: usize,
    /// The process's exit code: 0 every case passed or was declared skipped, 1 one failed, did
    /// not run or was interrupted, 128 + the signal when the run was stopped.
    pub exit_code: i32,
    pub out_dir: &'a str,
    /// `summary.md` (its twin `summary.json` beside it).
    pub summary: String,
}

impl SummaryLine<'_> {
    pub fn render(&self) -> String {
        line(self)
    }
}

/// One selected case of `--list`.
#[derive(Debug, Serialize)]
pub struct ListLine {
    pub schema: &'static str,
    pub id: String,
    pub kernel: String,
    pub scenario: String,
    pub image: String,
    /// The declared reason it will be skipped, if it will.
    pub skip: Option<String>,
}

pub fn list_line(case: &Case) -> String {
    line(&ListLine {
        schema: LIST_SCHEMA,
        id: case.id(),
        kernel: case.kernel.id.clone(),
        scenario: case.label(),
        image: case.setup.image.name().to_string(),
        skip: case.skip_reason(),
    })
}

/// One JSON line (a value that cannot be written becomes a `kdrill-error/1` line).
pub(crate) fn line<T: Serialize>(value: &T) -> String {
    let mut text = serde_json::to_string(value)
        .unwrap_or_else(|err| format!("{{\"schema\":\"kdrill-error/1\",\"error\":\"{err}\"}}"));
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed() -> CaseResult {
        let mut r = CaseResult::new(
            "debian-6.1",
            "broken",
            std::path::Path::new("/out/runs/debian-6.1/broken"),
        );
        r.artifacts = "/out/runs/debian-6.1/broken/20261206T120000Z-1".into();
        r.verdict = Verdict::Fail;
        r.failure = Some("expectation-missing".into());
        r.reasons = vec![
            "expected log line absent from the dump: `kdrill: this line never appears`".into(),
        ];
        r.started = 1_796_000_000.5;
        r.phases.total = Some(36.25);
        r.phases.boot = Some(10.5);
        r.minimal_phases().kexec = Some(0.9);
        r.dump_bytes = Some(u64::MAX);
        r.route = Some(crate::spec::scenario::Trigger::Sysrq);
        r.accel = Some(crate::vm::accel::Accel::Tcg);
        r.kernel_release = Some("6.1.0-47-amd64".into());
        r.panic_message = Some("sysrq triggered crash".into());
        r
    }

    #[test]
    fn a_failed_case_is_one_line_with_its_kind_reason_and_evidence() {
        let text = case_line(&failed());
        assert!(
            text.ends_with('\n') && text.matches('\n').count() == 1,
            "{text}"
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["schema"], "kdrill-verify-case/1");
        assert_eq!(v["id"], "debian-6.1/broken");
        assert_eq!(v["verdict"], "FAIL");
        assert_eq!(v["failure"], "expectation-missing");
        assert_eq!(
            v["reason"],
            "expected log line absent from the dump: `kdrill: this line never appears`"
        );
        assert_eq!(
            v["evidence"],
            "/out/runs/debian-6.1/broken/20261206T120000Z-1"
        );
        assert_eq!(v["route"], "sysrq");
        assert_eq!(v["accel"], "tcg");
        assert_eq!(v["seconds"], 36.25);
        assert_eq!(v["phases"]["boot"], 10.5);
        // The image kind's own phases sit beside the shared ones, as before they had a key.
        assert_eq!(v["phases"]["kexec"], 0.9);
        assert!(v["phases"]["makedumpfile"].is_null(), "{v}");
        assert!(v.get("minimal").is_none(), "{v}");
        // Beyond 2^53: a string keeps every digit.
        assert_eq!(v["dump_bytes"], "18446744073709551615");
        assert_eq!(v["panic_message"], "sysrq triggered crash");
        assert!(v["userspace"].is_null() && v["log_check"].is_null(), "{v}");
    }

    #[test]
    fn a_case_line_names_the_capture_userspace_and_its_versions() {
        let mut r = failed();
        r.userspace = Some(Used {
            name: "bookworm".into(),
            own: true,
            packages: [
                ("makedumpfile", "1:1.7.2-1"),
                ("kexec-tools", "1:2.0.25-3+deb12u2"),
            ]
            .map(|(p, v)| (p.to_string(), v.to_string()))
            .into(),
            sysroot: Some("/c/userspace/bookworm-1-2".into()),
        });
        r.log_check = Some("makedumpfile 1:1.7.2-1 (bookworm) --dump-dmesg, plain format".into());
        let v: serde_json::Value = serde_json::from_str(&case_line(&r)).unwrap();
        assert_eq!(v["userspace"]["name"], "bookworm");
        assert_eq!(v["userspace"]["own"], true);
        assert_eq!(v["userspace"]["packages"]["makedumpfile"], "1:1.7.2-1");
        assert_eq!(
            v["log_check"],
            "makedumpfile 1:1.7.2-1 (bookworm) --dump-dmesg, plain format"
        );
    }

    #[test]
    fn a_pass_has_no_failure_kind_and_a_skip_keeps_its_reason() {
        let mut pass = failed();
        pass.verdict = Verdict::Pass;
        pass.reasons.clear();
        pass.capture = Some(crate::dumpcheck::facts::CaptureFacts {
            dumped_pages: 28_559,
            ..Default::default()
        });
        let v: serde_json::Value = serde_json::from_str(&case_line(&pass)).unwrap();
        assert_eq!(v["verdict"], "PASS");
        assert_eq!(v["capture"]["dumped_pages"], 28_559);
        assert!(v["failure"].is_null() && v["reason"].is_null(), "{v}");
        let mut skip = CaseResult::new("k", "s", std::path::Path::new("/o"));
        skip.verdict = Verdict::Skip;
        skip.reasons = vec!["no crasher for this kernel".into()];
        let v: serde_json::Value = serde_json::from_str(&case_line(&skip)).unwrap();
        assert_eq!(
            (v["verdict"].as_str(), v["reason"].as_str()),
            (Some("SKIP"), Some("no crasher for this kernel"))
        );
        assert!(v["dump_bytes"].is_null());
        assert!(v["capture"].is_null());
    }

    #[test]
    fn the_summary_names_its_schema_counts_and_exit_code() {
        let line = SummaryLine {
            schema: SUMMARY_SCHEMA,
            kdrill_version: "0.1.0",
            passed: 1,
            failed: 1,
            skipped: 0,
            interrupted: 0,
            flaky: 0,
            not_run: 0,
            exit_code: 1,
            out_dir: "/out",
            summary: "/out/summary.md".into(),
        }
        .render();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["schema"], "kdrill-verify-summary/1");
        assert_eq!(
            (v["passed"].as_u64(), v["failed"].as_u64()),
            (Some(1), Some(1))
        );
        assert_eq!(v["exit_code"], 1);
    }

    fn case(kernel: &str, scenario: &str, skip: Option<&str>) -> Case {
        let p = std::path::Path::new;
        let text =
            format!("id: {kernel}\nwhy: w\nsource:\n  kind: local\n  vmlinuz: v\n  modules: m\n");
        let mut kernel: crate::spec::kernel::KernelSpec =
            crate::spec::yaml::parse(p("k.yaml"), &text).unwrap();
        let text = format!("id: {scenario}\ndescription: d\ntrigger: sysrq\nexpect:\n  log: [x]\n");
        let scenario: crate::spec::scenario::Scenario =
            crate::spec::yaml::parse(p("s.yaml"), &text).unwrap();
        if let Some(why) = skip {
            kernel.skip.insert(scenario.id.clone(), why.into());
        }
        Case::new(kernel, scenario)
    }

    fn attempt(case: &Case, verdict: Verdict, n: u32) -> CaseResult {
        let mut r = CaseResult::new(&case.kernel.id, &case.label(), std::path::Path::new("/o"));
        r.artifacts = format!("/o/runs/{}/a{n}", case.id());
        r.verdict = verdict;
        r.attempt = n;
        r.started = f64::from(n);
        r
    }

    /// The nextest path: results read back after the run, one line per selected case, in order.
    #[test]
    fn a_finished_run_reads_back_as_one_line_per_case() {
        let pass = case("k", "a", None);
        let flaky = case("k", "b", None);
        let not_run = case("k", "c", None);
        let skip = case("k", "d", Some("no such route here"));
        let results = [
            attempt(&pass, Verdict::Pass, 1),
            attempt(&flaky, Verdict::Fail, 1),
            attempt(&flaky, Verdict::Pass, 2),
        ];
        let text = run_lines(&[pass, flaky, not_run, skip], &results);
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let got: Vec<(&str, &str, bool)> = lines
            .iter()
            .map(|v| {
                (
                    v["id"].as_str().unwrap(),
                    v["verdict"].as_str().unwrap(),
                    v["flaky"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("k/a", "PASS", false),
                ("k/b", "PASS", true),
                ("k/c", "FAIL", false),
                ("k/d", "SKIP", false)
            ]
        );
        assert_eq!(lines[1]["attempt"], 2);
        assert_eq!(lines[1]["evidence"], "/o/runs/k/b/a2");
        assert_eq!(lines[2]["failure"], "not-run");
        assert!(lines[2]["evidence"].is_null());
        assert_eq!(lines[3]["reason"], "no such route here");
        assert!(lines.iter().all(|v| v["schema"] == CASE_SCHEMA));
    }
}
