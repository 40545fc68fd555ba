//! Rendering a [`Report`] as Prometheus metrics in node_exporter's textfile-collector format
//! (pure): the verdict, each check's status as a state set, the reservation against kdrill's
//! recommendation, and the last drill when there is one.

use std::fmt::Write as _;

use crate::readiness::{Report, Status, Verdict};

/// Every status, in the order their series are written (a state set has one series per state).
const STATUSES: [Status; 5] = [
    Status::Pass,
    Status::Info,
    Status::Skip,
    Status::Warn,
    Status::Fail,
];

/// A status as a label value: the JSON's word (`pass`, `warn`, …).
fn label(status: Status) -> &'static str {
    match status {
        Status::Pass => "pass",
        Status::Info => "info",
        Status::Skip => "skip",
        Status::Warn => "warn",
        Status::Fail => "fail",
    }
}

/// One metric's `# HELP` and `# TYPE` lines (every kdrill metric is a gauge).
fn header(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
}

/// A label value escaped as the exposition format asks (backslash, double quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', r#"\""#)
        .replace('\n', r"\n")
}

/// The textfile (`kdrill.prom`), ending with a newline. Series with no value on this host (no
/// reservation read, no drill on record) are left out, their `# HELP` kept, so an alert on
/// `absent(…)` can tell "unknown" from 0.
pub fn prometheus(report: &Report) -> String {
    let mut out = String::new();
    header(
        &mut out,
        "kdrill_ready",
        "Whether a crash now would leave a usable dump, by kdrill check's verdict: 1 READY or \
         READY WITH WARNINGS (exit 0 or 1: a WARN or SKIP row, see kdrill_check_status), 0 NOT \
         READY (exit 2: a FAIL row).",
    );
    let ready = report.verdict != Verdict::NotReady;
    let _ = writeln!(out, "kdrill_ready {}", u8::from(ready));

    header(
        &mut out,
        "kdrill_check_status",
        "Each kdrill check row's status as a state set: 1 for its current status \
         (pass, info, skip, warn or fail), 0 for the others.",
    );
    for check in &report.checks {
        for status in STATUSES {
            let _ = writeln!(
                out,
                "kdrill_check_status{{check=\"{}\",status=\"{}\"}} {}",
                escape(check.id),
                label(status),
                u8::from(check.status == status)
            );
        }
    }

    let facts = &report.facts;
    header(
        &mut out,
        "kdrill_crashkernel_reserved_bytes",
        "Memory reserved for the capture kernel (crashkernel=), in bytes; absent when it could \
         not be read.",
    );
    if let Some(bytes) = facts.crash_reserved_bytes {
        let _ = writeln!(out, "kdrill_crashkernel_reserved_bytes {bytes}");
    }
    header(
        &mut out,
        "kdrill_crashkernel_recommended_bytes",
        "The crashkernel= size kdrill check recommends for this kernel and RAM, in bytes (the \
         figure check crashkernel-size's fix names): kdrill's measured minimum with its margin \
         when a calibration file covers this kernel, else the largest of kdrill's estimate, \
         the architecture's default and another release's measurement.",
    );
    if let Some(bytes) = facts.crashkernel_recommended_bytes {
        let _ = writeln!(out, "kdrill_crashkernel_recommended_bytes {bytes}");
    }

    last_drill(&mut out, report);
    out
}

/// The last drill's series (their `# HELP` always, their samples when a drill is on record).
fn last_drill(out: &mut String, report: &Report) {
    let drill = report.last_drill.as_ref();
    header(
        out,
        "kdrill_last_drill_timestamp_seconds",
        "When the last kdrill drill on record finished collecting, in seconds since the epoch; \
         absent when this host has no drill on record.",
    );
    if let Some(drill) = drill {
        let _ = writeln!(
            out,
            "kdrill_last_drill_timestamp_seconds {}",
            drill.finished_unix
        );
    }
    header(
        out,
        "kdrill_last_drill_success",
        "Whether the last kdrill drill on record passed (its dump was found, opened and held \
         that crash): 1 or 0; absent when this host has no drill on record.",
    );
    if let Some(drill) = drill {
        let _ = writeln!(out, "kdrill_last_drill_success {}", u8::from(drill.success));
    }
    header(
        out,
        "kdrill_last_drill_stale",
        "1 when the last drill no longer counts (the running kernel, the capture kernel or \
         initrd, or the kdump configuration changed after it), else 0; absent when this host \
         has no drill on record.",
    );
    if let Some(drill) = drill {
        let _ = writeln!(
            out,
            "kdrill_last_drill_stale {}",
            u8::from(drill.stale.is_some())
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::lastdrill::LastDrill;
    use crate::readiness::{Area, Check, Facts};

    fn report(verdict: Verdict, statuses: &[Status]) -> Report {
        let checks = statuses
            .iter()
            .zip(["crashkernel-param", "sysrq", "tools"])
            .enumerate()
            .map(|(i, (status, id))| Check {
                id,
                number: i as u8 + 1,
                area: Area::Memory,
                title: "t",
                status: *status,
                seen: String::new(),
                why: String::new(),
                fix: None,
                follows_from: None,
                details: Vec::new(),
            })
            .collect();
        Report {
            root: "/".into(),
            live: true,
            hostname: None,
            machine_id: None,
            verdict,
            facts: Facts::default(),
            checks,
            last_drill: None,
        }
    }

    fn samples(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    #[test]
    fn ready_with_warnings_counts_as_ready_and_each_row_is_a_state_set() {
        let text = prometheus(&report(
            Verdict::ReadyWithWarnings,
            &[Status::Pass, Status::Warn],
        ));
        let lines = samples(&text);
        assert_eq!(lines[0], "kdrill_ready 1");
        assert_eq!(
            &lines[1..6],
            [
                r#"kdrill_check_status{check="crashkernel-param",status="pass"} 1"#,
                r#"kdrill_check_status{check="crashkernel-param",status="info"} 0"#,
                r#"kdrill_check_status{check="crashkernel-param",status="skip"} 0"#,
                r#"kdrill_check_status{check="crashkernel-param",status="warn"} 0"#,
                r#"kdrill_check_status{check="crashkernel-param",status="fail"} 0"#,
            ]
        );
        assert!(lines.contains(&r#"kdrill_check_status{check="sysrq",status="warn"} 1"#));
        assert_eq!(lines.len(), 11, "{text}");
        let not_ready = prometheus(&report(Verdict::NotReady, &[Status::Fail]));
        assert_eq!(samples(&not_ready)[0], "kdrill_ready 0");
    }

    #[test]
    fn figures_and_the_last_drill_are_left_out_when_unknown() {
        let mut r = report(Verdict::Ready, &[Status::Pass]);
        let text = prometheus(&r);
        assert!(
            !text.contains("\nkdrill_crashkernel_reserved_bytes "),
            "{text}"
        );
        assert!(!text.contains("\nkdrill_last_drill_success "), "{text}");
        assert!(text.contains("# HELP kdrill_last_drill_success "), "{text}");
        r.facts.crash_reserved_bytes = Some(268435456);
        r.facts.crashkernel_recommended_bytes = Some(402653184);
        r.last_drill = Some(LastDrill {
            id: "20261207T124400Z-3f2a".into(),
            finished_unix: 1796647440,
            success: true,
            stale: Some("the running kernel changed".into()),
        });
        let text = prometheus(&r);
        let lines = samples(&text);
        for want in [
            "kdrill_crashkernel_reserved_bytes 268435456",
            "kdrill_crashkernel_recommended_bytes 402653184",
            "kdrill_last_drill_timestamp_seconds 1796647440",
            "kdrill_last_drill_success 1",
            "kdrill_last_drill_stale 1",
        ] {
            assert!(lines.contains(&want), "{want} missing from\n{text}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), r#"a\"b\\c\nd"#);
    }
}
