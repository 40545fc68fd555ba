//! The run summary people and machines read: `target/kdrill/summary.md` (kernel x scenario table,
//! each FAIL with its reason and evidence folder) and `summary.json`, built from each case's
//! `result.json`.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::SystemTime;

use serde::Serialize;

use crate::campaign::matrix::Case;
use crate::case::verdict::{CaseResult, Verdict};

/// A case's place in the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Pass,
    /// Passed, but only on a retry.
    Flaky,
    Fail,
    Skip,
    /// Selected, but no result from this run (interrupted, or filtered out of the test run).
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
    /// The first reason of a FAIL or SKIP.
    pub reason: Option<String>,
    pub artifacts: Option<String>,
}

pub fn status_of(result: &CaseResult) -> Status {
    match result.verdict {
        Verdict::Pass if result.attempt > 1 => Status::Flaky,
        Verdict::Pass => Status::Pass,
        Verdict::Fail => Status::Fail,
        Verdict::Skip => Status::Skip,
    }
}

/// One row per case, from the results given (a case without one is NOT RUN).
pub fn rows(cases: &[Case], results: &[CaseResult]) -> Vec<Row> {
    cases
        .iter()
        .map(|case| {
            let found = results
                .iter()
                .find(|r| r.kernel == case.kernel.id && r.scenario == case.scenario.id);
            match found {
                Some(r) => Row {
                    kernel: r.kernel.clone(),
                    scenario: r.scenario.clone(),
                    status: status_of(r),
                    total_seconds: r.phases.total,
                    reason: r.reasons.first().cloned(),
                    artifacts: Some(r.artifacts.clone()),
                },
                None => Row {
                    kernel: case.kernel.id.clone(),
                    scenario: case.scenario.id.clone(),
                    status: Status::NotRun,
                    total_seconds: None,
                    reason: None,
                    artifacts: None,
                },
            }
        })
        .collect()
}

/// Reads the `result.json` of each case written at or after `since` (older ones belong to
/// another run and are left out).
pub fn load_results(target_dir: &Path, cases: &[Case], since: SystemTime) -> Vec<CaseResult> {
    cases
        .iter()
        .filter_map(|case| {
            let path = crate::host::paths::case_dir(target_dir, &case.kernel.id, &case.scenario.id)
                .join("result.json");
            let fresh = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t >= since);
            if !fresh {
                return None;
            }
            serde_json::from_slice(&std::fs::read(&path).ok()?).ok()
        })
        .collect()
}

/// The Markdown summary: a kernel x scenario table, then the failures with reason and evidence.
pub fn markdown(rows: &[Row]) -> String {
    let kernels: Vec<&str> = unique(rows.iter().map(|r| r.kernel.as_str()));
    let scenarios: Vec<&str> = unique(rows.iter().map(|r| r.scenario.as_str()));
    let count = |s: Status| rows.iter().filter(|r| r.status == s).count();
    let mut out = String::from("# kdrill summary\n\n");
    out.push_str(&format!(
        "{} cases: {} passed, {} flaky, {} failed, {} skipped, {} not run\n\n",
        rows.len(),
        count(Status::Pass),
        count(Status::Flaky),
        count(Status::Fail),
        count(Status::Skip),
        count(Status::NotRun)
    ));
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
                            format!("{} {secs:.0}s", row.status.label())
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
        .filter(|r| matches!(r.status, Status::Fail | Status::Flaky | Status::Skip))
        .collect();
    if !notable.is_empty() {
        out.push_str("\n## Failures, flakes and skips\n\n");
        for row in notable {
            let reason = row
                .reason
                .as_deref()
                .unwrap_or(if row.status == Status::Flaky {
                    "passed on a retry"
                } else {
                    ""
                });
            let link = match (&row.artifacts, row.status) {
                (Some(dir), Status::Fail | Status::Flaky) => format!(" ([evidence]({dir}))"),
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

/// Writes `summary.md` and `summary.json` into `<target>/kdrill/` and returns the Markdown.
pub fn write(target_dir: &Path, rows: &[Row]) -> std::io::Result<String> {
    let dir = target_dir.join("kdrill");
    std::fs::create_dir_all(&dir)?;
    let md = markdown(rows);
    std::fs::write(dir.join("summary.md"), &md)?;
    let json =
        serde_json::to_string_pretty(&serde_json::json!({ "cases": rows })).unwrap_or_default();
    std::fs::write(dir.join("summary.json"), json + "\n")?;
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kernel: &str, scenario: &str, status: Status, reason: Option<&str>) -> Row {
        Row {
            kernel: kernel.into(),
            scenario: scenario.into(),
            status,
            total_seconds: Some(21.4),
            reason: reason.map(String::from),
            artifacts: Some(format!("target/kdrill/runs/{kernel}/{scenario}")),
        }
    }

    #[test]
    fn markdown_table_and_failures() {
        let rows = vec![
            row("debian-6.1", "sysrq", Status::Pass, None),
            row(
                "debian-6.1",
                "nmi",
                Status::Fail,
                Some("no sign of the capture kernel to boot within 120s"),
            ),
            row("debian-6.12", "sysrq", Status::Flaky, None),
            row(
                "debian-6.12",
                "nmi",
                Status::Skip,
                Some("no NMI on this flavour"),
            ),
        ];
        insta::assert_snapshot!(markdown(&rows), @r"
        # kdrill summary

        4 cases: 1 passed, 1 flaky, 1 failed, 1 skipped, 0 not run

        | kernel | sysrq | nmi |
        |---|---|---|
        | debian-6.1 | PASS 21s | FAIL 21s |
        | debian-6.12 | FLAKY 21s | SKIP |

        ## Failures, flakes and skips

        - **FAIL** debian-6.1/nmi: no sign of the capture kernel to boot within 120s ([evidence](target/kdrill/runs/debian-6.1/nmi))
        - **FLAKY** debian-6.12/sysrq: passed on a retry ([evidence](target/kdrill/runs/debian-6.12/sysrq))
        - **SKIP** debian-6.12/nmi: no NMI on this flavour
        ");
    }

    #[test]
    fn pass_on_a_retry_is_flaky() {
        let mut r = CaseResult::new("k", "s", "dir");
        r.verdict = Verdict::Pass;
        r.attempt = 2;
        assert_eq!(status_of(&r), Status::Flaky);
        r.attempt = 1;
        assert_eq!(status_of(&r), Status::Pass);
    }
}
