//! Rendering a [`Report`]: the human table grouped by area with the fixes after it (status words
//! and the verdict in colour when asked), the verdict line alone, and the stable JSON document.

use std::fmt::Write as _;

use crate::readiness::causes;
use crate::readiness::{Area, Check, Facts, Report, Status, Verdict};

/// Identifies the JSON layout; bumped only on incompatible changes (fields are only ever added within a version).
///
/// Added within `kdrill-check/1`: `hostname` and `machine_id` (top level, `null` when the root
/// has none), and each check's `follows_from` (the id of the check it only follows from, whose
/// fix is the fix; its own `fix` is then `null`), and `facts.crashkernel_recommended_bytes` (the
/// `crashkernel=` size check 3's fix recommends, `null` when the kernel release is unknown).
pub const SCHEMA: &str = "kdrill-check/1";

/// How the table is drawn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Style {
    /// Every check's details under its line, not only those of checks to fix.
    pub verbose: bool,
    /// ANSI colour on the status words and the verdict (the caller decides: `--color`, `NO_COLOR`, a terminal).
    pub colour: bool,
}

/// When to colour the table (`kdrill check --color`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColourWhen {
    /// Only on a terminal, and only when `NO_COLOR` is unset or empty.
    Auto,
    /// Always, whatever `NO_COLOR` says (a command-line flag overrides it, as no-color.org asks).
    Always,
    Never,
}

/// Whether to colour: `no_color` is the `NO_COLOR` variable (set and non-empty: no colour in
/// `Auto`, https://no-color.org), `terminal` whether stdout is one.
pub fn colour(when: ColourWhen, no_color: Option<&std::ffi::OsStr>, terminal: bool) -> bool {
    match when {
        ColourWhen::Always => true,
        ColourWhen::Never => false,
        ColourWhen::Auto => terminal && no_color.is_none_or(|v| v.is_empty()),
    }
}

/// `text` in the SGR colour `code` when `on`.
fn paint(text: &str, code: &str, on: bool) -> String {
    if on {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

fn status_word(status: Status, colour: bool) -> String {
    let code = match status {
        Status::Pass => "32",
        Status::Info => "36",
        Status::Skip | Status::Warn => "33",
        Status::Fail => "1;31",
    };
    paint(status.label(), code, colour)
}

fn verdict_word(verdict: Verdict, colour: bool) -> String {
    let code = match verdict {
        Verdict::Ready => "1;32",
        Verdict::ReadyWithWarnings => "1;33",
        Verdict::NotReady => "1;31",
    };
    paint(verdict.label(), code, colour)
}

/// The verdict line (what `--quiet` prints), with its newline.
pub fn verdict_line(report: &Report, colour: bool) -> String {
    let summary = Summary::of(report);
    format!(
        "Verdict: {} (exit {}): {} fail, {} warn, {} skip, {} pass, {} info\n",
        verdict_word(report.verdict, colour),
        report.exit_code(),
        summary.fail,
        summary.warn,
        summary.skip,
        summary.pass,
        summary.info
    )
}

/// A check's finding as the table shows it: prefixed by the check it follows from.
fn seen(check: &Check) -> String {
    match check.follows_from {
        Some(cause) => format!("follows from {cause}: {}", check.seen),
        None => check.seen.clone(),
    }
}

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
    hostname: Option<&'a str>,
    machine_id: Option<&'a str>,
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
        hostname: report.hostname.as_deref(),
        machine_id: report.machine_id.as_deref(),
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

/// The human table without colour: one line per check grouped by area, the verdict, then the
/// fixes (and, with `verbose`, every check's details under its line).
pub fn table(report: &Report, verbose: bool) -> String {
    table_with(
        report,
        Style {
            verbose,
            colour: false,
        },
    )
}

/// The human table drawn in `style`.
pub fn table_with(report: &Report, style: Style) -> String {
    let Style { verbose, colour } = style;
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
        .map(|m| format!(", {} RAM", crate::spec::cmdline::figure(m)))
        .unwrap_or_default();
    let place = if report.live {
        "this host".to_string()
    } else {
        format!("captured tree {}", report.root)
    };
    let root = match &report.hostname {
        Some(name) => format!("host {name} ({place})"),
        None => place,
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
                status_word(check.status, colour),
                check.id,
                seen(check)
            );
            if verbose {
                for detail in &check.details {
                    let _ = writeln!(out, "        {:width$}  · {detail}", "");
                }
            }
        }
    }
    let _ = write!(out, "\n{}", verdict_line(report, colour));
    // A check that follows from another is listed under that one, not as a fix of its own.
    let mut to_fix: Vec<&Check> = report
        .checks
        .iter()
        .filter(|c| matches!(c.status, Status::Fail | Status::Warn | Status::Skip))
        .filter(|c| c.follows_from.is_none())
        .collect();
    to_fix.sort_by_key(|c| (std::cmp::Reverse(c.status), c.number));
    if !to_fix.is_empty() {
        let _ = writeln!(out, "\nFixes, most urgent first");
        for check in to_fix {
            let _ = writeln!(
                out,
                "\n  {} {}: {}",
                status_word(check.status, colour),
                check.id,
                check.seen
            );
            let _ = writeln!(out, "    why: {}", check.why);
            if let Some(fix) = &check.fix {
                for (i, step) in fix.lines().enumerate() {
                    let _ = writeln!(out, "    {} {step}", if i == 0 { "fix:" } else { "    " });
                }
            }
            let following = causes::consequences(&report.checks, check.id);
            if !following.is_empty() {
                let ids: Vec<&str> = following.iter().map(|c| c.id).collect();
                let _ = writeln!(
                    out,
                    "    follow from this (their own fixes wait for this one): {}",
                    ids.join(", ")
                );
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_when_asked_or_on_a_terminal_without_no_color() {
        use ColourWhen::*;
        assert!(colour(Auto, None, true));
        assert!(
            colour(Auto, Some(OsStr::new("")), true),
            "an empty NO_COLOR is unset"
        );
        assert!(!colour(Auto, Some(OsStr::new("1")), true));
        assert!(!colour(Auto, None, false), "not a terminal");
        assert!(
            colour(Always, Some(OsStr::new("1")), false),
            "the flag wins"
        );
        assert!(!colour(Never, None, true));
        assert_eq!(paint("FAIL", "1;31", true), "\x1b[1;31mFAIL\x1b[0m");
        assert_eq!(paint("FAIL", "1;31", false), "FAIL");
    }
}
