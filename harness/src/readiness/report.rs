//! Rendering a [`Report`]: the human table grouped by area with the fixes after it, and the stable JSON document.

use std::fmt::Write as _;

use crate::readiness::{Area, Check, Facts, Report, Status, Verdict};

/// Identifies the JSON layout; bumped only on incompatible changes (fields are only ever added within a version).
pub const SCHEMA: &str = "kdrill-check/1";

/// Counts of checks by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub pass: usize,
    pub info: usize,
    pub skip: usize,
    pub warn: usize,
    pub fail: usize,
}

impl Summary {
    pub fn of(report: &Report) -> Self {
        let mut summary = Summary::default();
        for check in &report.checks {
            *match check.status {
                Status::Pass => &mut summary.pass,
                Status::Info => &mut summary.info,
                Status::Skip => &mut summary.skip,
                Status::Warn => &mut summary.warn,
                Status::Fail => &mut summary.fail,
            } += 1;
        }
        summary
    }
}

#[derive(serde::Serialize)]
struct Document<'a> {
    schema: &'static str,
    kdrill_version: &'static str,
    root: &'a str,
    live: bool,
    verdict: Verdict,
    exit_code: i32,
    summary: Summary,
    facts: &'a Facts,
    checks: &'a [Check],
}

/// The `--format json` document (pretty-printed, with a final newline).
pub fn json(report: &Report) -> String {
    let document = Document {
        schema: SCHEMA,
        kdrill_version: env!("CARGO_PKG_VERSION"),
        root: &report.root,
        live: report.live,
        verdict: report.verdict,
        exit_code: report.exit_code(),
        summary: Summary::of(report),
        facts: &report.facts,
        checks: &report.checks,
    };
    let mut text = serde_json::to_string_pretty(&document)
        .unwrap_or_else(|err| format!("{{\"error\": \"{err}\"}}"));
    text.push('\n');
    text
}

/// The human table: one line per check grouped by area, the verdict, then the fixes (and, with `verbose`,
/// every check's details under its line).
pub fn table(report: &Report, verbose: bool) -> String {
    let mut out = String::new();
    let facts = &report.facts;
    let kernel = facts.kernel_release.as_deref().unwrap_or("unknown kernel");
    let arch = facts
        .arch
        .as_deref()
        .map(|a| format!(" ({a})"))
        .unwrap_or_default();
    let ram = facts
        .mem_total_bytes
        .map(|m| format!(", {} RAM", crate::readiness::cmdline::size(m)))
        .unwrap_or_default();
    let root = if report.live {
        "this host".to_string()
    } else {
        format!("captured tree {}", report.root)
    };
    let _ = writeln!(out, "kdrill check: {root}, kernel {kernel}{arch}{ram}");
    let width = report.checks.iter().map(|c| c.id.len()).max().unwrap_or(0);
    let mut areas: Vec<Area> = report.checks.iter().map(|c| c.area).collect();
    areas.sort();
    areas.dedup();
    for area in areas {
        let _ = writeln!(out, "\n{}", area.title());
        for check in report.checks.iter().filter(|c| c.area == area) {
            let _ = writeln!(
                out,
                "  {}  {:width$}  {}",
                check.status.label(),
                check.id,
                check.seen
            );
            if verbose {
                for detail in &check.details {
                    let _ = writeln!(out, "        {:width$}  · {detail}", "");
                }
            }
        }
    }
    let summary = Summary::of(report);
    let _ = writeln!(
        out,
        "\nVerdict: {} (exit {}): {} fail, {} warn, {} skip, {} pass, {} info",
        report.verdict.label(),
        report.exit_code(),
        summary.fail,
        summary.warn,
        summary.skip,
        summary.pass,
        summary.info
    );
    let mut to_fix: Vec<&Check> = report
        .checks
        .iter()
        .filter(|c| matches!(c.status, Status::Fail | Status::Warn | Status::Skip))
        .collect();
    to_fix.sort_by_key(|c| (std::cmp::Reverse(c.status), c.number));
    if !to_fix.is_empty() {
        let _ = writeln!(out, "\nFixes, most urgent first");
        for check in to_fix {
            let _ = writeln!(
                out,
                "\n  {} {}: {}",
                check.status.label(),
                check.id,
                check.seen
            );
            let _ = writeln!(out, "    why: {}", check.why);
            if let Some(fix) = &check.fix {
                for (i, step) in fix.lines().enumerate() {
                    let _ = writeln!(out, "    {} {step}", if i == 0 { "fix:" } else { "    " });
                }
            }
            if !verbose {
                for detail in &check.details {
                    let _ = writeln!(out, "    · {detail}");
                }
            }
        }
    }
    let notes: Vec<&Check> = report
        .checks
        .iter()
        .filter(|c| c.status == Status::Info && !c.details.is_empty())
        .collect();
    if !notes.is_empty() && !verbose {
        let _ = writeln!(out, "\nNotes");
        for check in notes {
            for detail in &check.details {
                let _ = writeln!(out, "  {}: {detail}", check.id);
            }
        }
    }
    out
}
