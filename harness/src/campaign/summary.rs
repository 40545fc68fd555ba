//! The run summary people and machines read: `summary.md` (kernel x scenario table, each FAIL,
//! FLAKY, SKIP and INTERRUPTED with its reason, and the failed attempt's evidence folder) and
//! `summary.json`, built from the `result.json` of each attempt of this run and from the cases'
//! declared skips.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::SystemTime;

use serde::Serialize;

use crate::campaign::matrix::Case;
use crate::case::verdict::{CaseResult, KernelPackage, Verdict};

/// A case's place in the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Pass,
    /// Passed, but only on a retry.
    Flaky,
    Fail,
    Skip,
    /// Stopped before it was judged (a signal, or the run was killed).
    Interrupted,
    /// Selected, but no result from this run (filtered out of the test run, or never started).
    #[serde(rename = "NOT RUN")]
    NotRun,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Flaky => "FLAKY",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
            Status::Interrupted => "INTERRUPTED",
            Status::NotRun => "NOT RUN",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub kernel: String,
    pub scenario: String,
    pub status: Status,
    pub total_seconds: Option<f64>,
    /// Why: a FAIL's or INTERRUPTED's first reason, a SKIP's declared reason, a FLAKY's failed
    /// attempt's reason.
    pub reason: Option<String>,
    /// The evidence to look at: the failed attempt's folder for FAIL and FLAKY, else the last one.
    pub artifacts: Option<String>,
    /// How many attempts this run made.
    pub attempts: usize,
    /// The kernel package the last attempt booted.
    pub kernel_package: Option<KernelPackage>,
    /// Whose busybox, kexec-tools and makedumpfile captured in the last attempt.
    #[serde(default)]
    pub userspace: Option<crate::fetch::userspace::Used>,
    /// How the last attempt booted: `faithful`, `fast`, or `restored` (fast, from a saved shape).
    #[serde(default)]
    pub boot: Option<String>,
}

/// A case's row from its attempts in this run, oldest first.
fn row_of(case: &Case, attempts: &[&CaseResult]) -> Row {
    let mut row = Row {
        kernel: case.kernel.id.clone(),
        scenario: case.label(),
        status: Status::NotRun,
        total_seconds: None,
        reason: None,
        artifacts: None,
        attempts: attempts.len(),
        kernel_package: None,
        userspace: None,
        boot: None,
    };
    if let Some(why) = case.skip_reason() {
        row.status = Status::Skip;
        row.reason = Some(why.to_string());
        return row;
    }
    let Some(last) = attempts.last() else {
        return row;
    };
    row.total_seconds = last.phases.total;
    row.kernel_package = last.kernel_package.clone();
    row.userspace = last.userspace.clone();
    row.boot = last.plan.as_ref().map(|plan| {
        if last.shape.is_some() {
            "restored".to_string()
        } else {
            plan.mode.word().to_string()
        }
    });
    row.artifacts = Some(last.artifacts.clone());
    row.reason = last.reasons.first().cloned();
    let failed_before = attempts[..attempts.len() - 1]
        .iter()
        .rev()
        .find(|r| r.verdict != Verdict::Pass);
    row.status = match last.verdict {
        Verdict::Pass => match failed_before {
            Some(failed) => {
                row.artifacts = Some(failed.artifacts.clone());
                row.reason = Some(format!(
                    "passed on a retry; attempt {} failed: {}",
                    failed.attempt,
                    failed
                        .reasons
                        .first()
                        .map(String::as_str)
                        .unwrap_or("no reason recorded")
                ));
                Status::Flaky
            }
            // nextest retried in a folder this run no longer sees: still a flake.
            None if last.attempt > 1 => {
                row.reason = Some("passed on a retry".into());
                Status::Flaky
            }
            None => Status::Pass,
        },
        Verdict::Fail => Status::Fail,
        Verdict::Skip => Status::Skip,
        Verdict::Interrupted => Status::Interrupted,
    };
    row
}

/// One row per case, from the results given (a case without one is NOT RUN, unless it is
/// declared skipped).
pub fn rows(cases: &[Case], results: &[CaseResult]) -> Vec<Row> {
    cases
        .iter()
        .map(|case| {
            let mut mine: Vec<&CaseResult> = results
                .iter()
                .filter(|r| r.kernel == case.kernel.id && r.scenario == case.label())
                .collect();
            mine.sort_by(|a, b| a.started.total_cmp(&b.started));
            row_of(case, &mine)
        })
        .collect()
}

/// Reads the `result.json` of every attempt of each case that started at or after `since`
/// (older ones belong to another run and are left out), oldest first.
pub fn load_results(out_dir: &Path, cases: &[Case], since: SystemTime) -> Vec<CaseResult> {
    let since = since
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let mut results = Vec::new();
    for case in cases {
        let dir = crate::host::paths::case_dir(out_dir, &case.kernel.id, &case.label());
        for attempt in crate::case::evidence::attempts(&dir) {
            let Ok(bytes) = std::fs::read(attempt.join("result.json")) else {
                continue;
            };
            if let Ok(result) = serde_json::from_slice::<CaseResult>(&bytes) {
                // One second of slack: `since` and `started` come from clocks read apart.
                if result.started + 1.0 >= since {
                    results.push(result);
                }
            }
        }
    }
    results
}

/// The Markdown summary: a kernel x scenario table, then the failures with reason and evidence.
pub fn markdown(rows: &[Row]) -> String {
    let kernels: Vec<&str> = unique(rows.iter().map(|r| r.kernel.as_str()));
    let scenarios: Vec<&str> = unique(rows.iter().map(|r| r.scenario.as_str()));
    let count = |s: Status| rows.iter().filter(|r| r.status == s).count();
    let mut out = String::from("# kdrill summary\n\n");
    out.push_str(&format!(
        "{} cases: {} passed, {} flaky, {} failed, {} skipped, {} interrupted, {} not run\n\n",
        rows.len(),
        count(Status::Pass),
        count(Status::Flaky),
        count(Status::Fail),
        count(Status::Skip),
        count(Status::Interrupted),
        count(Status::NotRun)
    ));
    out.push_str(
        "Each case's boot: `faithful` (firmware, bzImage, purgatory's checks), `fast` (PVH vmlinux, \
         `kexec -p -i`, LZO) or `restored` (fast, from its saved guest shape); see README, \
         \"Boot modes\".\n\n",
    );
    out.push_str(&format!("| kernel | {} |\n", scenarios.join(" | ")));
    out.push_str(&format!("|---|{}\n", "---|".repeat(scenarios.len())));
    for kernel in &kernels {
        let cells: Vec<String> = scenarios
            .iter()
            .map(|scenario| {
                match rows
                    .iter()
                    .find(|r| r.kernel == *kernel && r.scenario == *scenario)
                {
                    Some(row) => match row.total_seconds {
                        Some(secs) if row.status != Status::Skip => {
                            let boot = row.boot.as_deref().map(|b| format!(" {b}"));
                            format!(
                                "{} {secs:.0}s{}",
                                row.status.label(),
                                boot.unwrap_or_default()
                            )
                        }
                        _ => row.status.label().to_string(),
                    },
                    None => "–".to_string(),
                }
            })
            .collect();
        out.push_str(&format!("| {kernel} | {} |\n", cells.join(" | ")));
    }
    let notable: Vec<&Row> = rows
        .iter()
        .filter(|r| {
            matches!(
                r.status,
                Status::Fail | Status::Flaky | Status::Skip | Status::Interrupted
            )
        })
        .collect();
    let mut packages: Vec<(&str, String)> = Vec::new();
    for row in rows {
        if let Some(p) = &row.kernel_package {
            let line = p.describe();
            if !packages.iter().any(|(k, l)| *k == row.kernel && *l == line) {
                packages.push((&row.kernel, line));
            }
        }
    }
    if !packages.is_empty() {
        out.push_str("\n## Kernels\n\n");
        for (kernel, line) in packages {
            out.push_str(&format!("- {kernel}: {line}\n"));
        }
    }
    out.push_str(&crate::fetch::userspace::used::summary_section(
        rows.iter()
            .filter_map(|r| Some((r.kernel.as_str(), r.userspace.as_ref()?))),
    ));
    if !notable.is_empty() {
        out.push_str("\n## Failures, flakes, skips and interruptions\n\n");
        for row in notable {
            let reason = row.reason.as_deref().unwrap_or("");
            let link = match (&row.artifacts, row.status) {
                (Some(dir), Status::Fail | Status::Flaky | Status::Interrupted) => {
                    format!(" ([evidence]({dir}))")
                }
                _ => String::new(),
            };
            out.push_str(&format!(
                "- **{}** {}/{}: {reason}{link}\n",
                row.status.label(),
                row.kernel,
                row.scenario
            ));
        }
    }
    out
}

fn unique<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = BTreeSet::new();
    items.filter(|i| seen.insert(*i)).collect()
}

/// Writes `summary.md` and `summary.json` into `out_dir` and returns the Markdown.
pub fn write(out_dir: &Path, rows: &[Row]) -> std::io::Result<String> {
    let dir = out_dir;
    std::fs::create_dir_all(dir)?;
    let md = markdown(rows);
    std::fs::write(dir.join("summary.md"), &md)?;
    let json =
        serde_json::to_string_pretty(&serde_json::json!({ "cases": rows })).unwrap_or_default();
    std::fs::write(dir.join("summary.json"), json + "\n")?;
    Ok(md)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::spec::kernel::KernelSpec;
    use crate::spec::scenario::Scenario;

    fn case(kernel: &str, scenario: &str, skip: Option<&str>) -> Case {
        let kernel: KernelSpec = crate::spec::yaml::parse(
            Path::new("k.yaml"),
            &format!("id: {kernel}\nwhy: w\nsource:\n  kind: local\n  vmlinuz: v\n  modules: m\n"),
        )
        .unwrap();
        let scenario: Scenario = crate::spec::yaml::parse(
            Path::new("s.yaml"),
            &format!("id: {scenario}\ndescription: d\ntrigger: sysrq\nexpect:\n  log: [x]\n"),
        )
        .unwrap();
        let mut case = Case::new(kernel, scenario);
        if let Some(why) = skip {
            case.kernel
                .skip
                .insert(case.scenario.id.clone(), why.into());
        }
        case
    }

    fn result(
        case: &Case,
        verdict: Verdict,
        attempt: u32,
        started: f64,
        reason: Option<&str>,
    ) -> CaseResult {
        let dir = format!("runs/{}/a{attempt}", case.id());
        let mut r = CaseResult::new(&case.kernel.id, &case.scenario.id, Path::new(&dir));
        r.verdict = verdict;
        r.attempt = attempt;
        r.started = started;
        r.phases.total = Some(21.4);
        r.reasons = reason.into_iter().map(String::from).collect();
        r
    }

    #[test]
    fn markdown_table_and_notable_rows() {
        let pass = case("debian-6.1", "sysrq", None);
        let fail = case("debian-6.1", "nmi", None);
        let flaky = case("debian-6.12", "sysrq", None);
        let skip = case("debian-6.12", "nmi", Some("no NMI on this flavour"));
        let results = vec![
            result(&pass, Verdict::Pass, 1, 1.0, None),
            result(
                &fail,
                Verdict::Fail,
                1,
                2.0,
                Some("no sign of the capture kernel to boot within 120s"),
            ),
            result(
                &flaky,
                Verdict::Fail,
                1,
                3.0,
                Some("guest reported failure in phase boot: oops"),
            ),
            result(&flaky, Verdict::Pass, 2, 4.0, None),
        ];
        let mut results = results;
        results[0].plan = Some(crate::case::plan::plan(
            &crate::case::Case::new(pass.kernel.clone(), pass.scenario.clone()),
            crate::case::plan::Overrides {
                mode: Some(crate::spec::scenario::BootMode::Faithful),
                no_restore: false,
            },
        ));
        let used = r#"{"name":"bookworm","own":true,"packages":{"makedumpfile":"1:1.7.2-1"}}"#;
        results[0].userspace = Some(serde_json::from_str(used).unwrap());
        let rows = rows(&[pass, fail, flaky, skip], &results);
        insta::assert_snapshot!(markdown(&rows), @r#"
        # kdrill summary

        4 cases: 1 passed, 1 flaky, 1 failed, 1 skipped, 0 interrupted, 0 not run

        Each case's boot: `faithful` (firmware, bzImage, purgatory's checks), `fast` (PVH vmlinux, `kexec -p -i`, LZO) or `restored` (fast, from its saved guest shape); see README, "Boot modes".

        | kernel | sysrq | nmi |
        |---|---|---|
        | debian-6.1 | PASS 21s faithful | FAIL 21s |
        | debian-6.12 | FLAKY 21s | SKIP |

        ## Capture userspaces

        - debian-6.1: bookworm: makedumpfile 1.7.2

        ## Failures, flakes, skips and interruptions

        - **FAIL** debian-6.1/nmi: no sign of the capture kernel to boot within 120s ([evidence](runs/debian-6.1/nmi/a1))
        - **FLAKY** debian-6.12/sysrq: passed on a retry; attempt 1 failed: guest reported failure in phase boot: oops ([evidence](runs/debian-6.12/sysrq/a1))
        - **SKIP** debian-6.12/nmi: no NMI on this flavour
        "#);
    }

    #[test]
    fn a_declared_skip_is_a_skip_row_without_any_result() {
        let skip = case("debian-6.1-cloud", "watchdog", Some("no i6300esb driver"));
        let rows = rows(&[skip], &[]);
        assert_eq!(rows[0].status, Status::Skip);
        assert_eq!(rows[0].reason.as_deref(), Some("no i6300esb driver"));
    }

    #[test]
    fn the_last_attempt_decides_and_a_missing_one_is_not_run() {
        let c = case("k", "s", None);
        let results = vec![
            result(&c, Verdict::Pass, 1, 1.0, None),
            result(
                &c,
                Verdict::Interrupted,
                1,
                5.0,
                Some("interrupted (SIGTERM); guests killed"),
            ),
        ];
        let rows = rows(std::slice::from_ref(&c), &results);
        assert_eq!(rows[0].status, Status::Interrupted);
        assert_eq!(rows[0].attempts, 2);
        assert_eq!(super::rows(&[c], &[])[0].status, Status::NotRun);
    }

    #[test]
    fn a_pass_on_nextests_retry_alone_is_flaky() {
        let c = case("k", "s", None);
        let rows = rows(
            std::slice::from_ref(&c),
            &[result(&c, Verdict::Pass, 2, 1.0, None)],
        );
        assert_eq!(rows[0].status, Status::Flaky);
    }

    #[test]
    fn results_of_earlier_runs_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let c = case("k", "s", None);
        let case_dir = crate::host::paths::case_dir(dir.path(), "k", "s");
        let old =
            crate::case::evidence::Attempt::create(&case_dir, 1, std::time::UNIX_EPOCH).unwrap();
        let mut r = result(&c, Verdict::Fail, 1, 10.0, Some("old"));
        old.write(&mut r);
        let new = crate::case::evidence::Attempt::create(&case_dir, 1, SystemTime::now()).unwrap();
        let mut r = result(&c, Verdict::Pass, 1, 2_000_000_000.0, None);
        new.write(&mut r);
        let since = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
        let got = load_results(dir.path(), &[c], since);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].verdict, Verdict::Pass);
    }
}
