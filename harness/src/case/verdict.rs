//! Judging a case: the result record saved as `result.json`, the expectation check over the log
//! read from the dump, and the one-line summary.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    Pass,
    Fail,
    /// Not run: the kernel entry declares the route cannot work there (the reason is in `reasons`).
    Skip,
}

/// Phase durations in seconds; absent when the phase did not happen.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Phases {
    /// QEMU start → the first boot's init running (host clock).
    pub boot: Option<f64>,
    /// The first kernel's own uptime when its init started (guest clock).
    #[serde(default)]
    pub guest_boot: Option<f64>,
    /// The capture kernel's own uptime when its init started (guest clock).
    #[serde(default)]
    pub capture_boot: Option<f64>,
    /// `kexec -p` (guest clock).
    pub kexec: Option<f64>,
    /// Crash trigger → the capture kernel's init running (host clock).
    pub crash_to_capture: Option<f64>,
    /// makedumpfile in the capture kernel (guest clock).
    pub makedumpfile: Option<f64>,
    /// `dump-guest-memory`, all formats together (vm-dump route; host clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_dump: Option<f64>,
    /// Reading the dump back on the host.
    pub verify: Option<f64>,
    /// The whole case.
    pub total: Option<f64>,
}

/// Everything known about one case, written to `result.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseResult {
    pub kernel: String,
    pub scenario: String,
    pub verdict: Verdict,
    /// Why the case failed; empty on PASS.
    pub reasons: Vec<String>,
    /// What was left out and why, without failing the case (e.g. a dump format QEMU does not offer).
    pub notes: Vec<String>,
    pub accel: Option<String>,
    pub accel_reason: Option<String>,
    pub kernel_release: Option<String>,
    pub phases: Phases,
    /// Size of the dump file in bytes.
    pub dump_bytes: Option<u64>,
    /// The crash route (the scenario's trigger).
    pub route: Option<String>,
    /// Each expected regex and the first line of the dump's log it matched (`null`: none).
    pub expectations: BTreeMap<String, Option<String>>,
    /// The panic message read from the dump.
    pub panic_message: Option<String>,
    pub artifacts: String,
    /// Which try this was: nextest's `NEXTEST_ATTEMPT` (1 outside nextest). A PASS on a later try is FLAKY.
    #[serde(default = "first_attempt")]
    pub attempt: u32,
}

fn first_attempt() -> u32 {
    1
}

impl Phases {
    /// What the guest itself spent, by its own clocks: first boot, `kexec -p`, capture boot,
    /// makedumpfile. `None` unless all four are known.
    pub fn guest_seconds(&self) -> Option<f64> {
        Some(self.guest_boot? + self.kexec? + self.capture_boot? + self.makedumpfile?)
    }
}

impl CaseResult {
    pub fn new(kernel: &str, scenario: &str, artifacts: &str) -> CaseResult {
        CaseResult {
            kernel: kernel.into(),
            scenario: scenario.into(),
            verdict: Verdict::Fail,
            reasons: Vec::new(),
            notes: Vec::new(),
            accel: None,
            accel_reason: None,
            kernel_release: None,
            phases: Phases::default(),
            dump_bytes: None,
            route: None,
            expectations: BTreeMap::new(),
            panic_message: None,
            artifacts: artifacts.into(),
            attempt: std::env::var("NEXTEST_ATTEMPT")
                .ok()
                .and_then(|a| a.parse().ok())
                .unwrap_or(1),
        }
    }

    pub fn id(&self) -> String {
        format!("{}/{}", self.kernel, self.scenario)
    }

    /// `PASS debian-6.1/sysrq  tcg  boot 4.5s  kexec 0.9s  crash→capture 4.8s  makedumpfile 3.9s  dump 30 MB  total 15.0s`
    pub fn summary_line(&self) -> String {
        let verdict = match self.verdict {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Skip => "SKIP",
        };
        let mut line = format!("{verdict} {}", self.id());
        if let Some(accel) = &self.accel {
            line.push_str(&format!("  {accel}"));
        }
        let p = &self.phases;
        for (label, value) in [
            ("boot", p.boot),
            ("kexec", p.kexec),
            ("crash→capture", p.crash_to_capture),
            ("makedumpfile", p.makedumpfile),
            ("dump-guest-memory", p.vm_dump),
        ] {
            if let Some(secs) = value {
                line.push_str(&format!("  {label} {secs:.1}s"));
            }
        }
        if let Some(bytes) = self.dump_bytes {
            line.push_str(&format!("  dump {} MB", (bytes as f64 / 1e6).round()));
        }
        if let Some(total) = p.total {
            line.push_str(&format!("  total {total:.1}s"));
        }
        for note in &self.notes {
            line.push_str(&format!("\n  note: {note}"));
        }
        if !self.reasons.is_empty() {
            let label = if self.verdict == Verdict::Skip {
                "skipped"
            } else {
                "reason"
            };
            line.push_str(&format!("\n  {label}: {}", self.reasons.join("; ")));
        }
        line
    }
}

/// For each pattern, the first line of `log` it matches. Patterns were validated when the
/// scenario was loaded; an invalid one matches nothing.
pub fn check_log(log: &str, patterns: &[String]) -> BTreeMap<String, Option<String>> {
    patterns
        .iter()
        .map(|pattern| {
            let found = regex::Regex::new(pattern).ok().and_then(|re| {
                log.lines()
                    .find(|line| re.is_match(line))
                    .map(|l| l.trim_end().to_string())
            });
            (pattern.clone(), found)
        })
        .collect()
}

/// Reasons for each `absent` pattern that matches a line of one of the named texts.
pub fn check_absent(texts: &[(&str, &str)], patterns: &[String]) -> Vec<String> {
    let mut reasons = Vec::new();
    for pattern in patterns {
        let Ok(re) = regex::Regex::new(pattern) else {
            continue;
        };
        for (name, text) in texts {
            if let Some(line) = text.lines().find(|line| re.is_match(line)) {
                reasons.push(format!(
                    "{name} holds a line it must not (`{pattern}`): {}",
                    line.trim_end()
                ));
            }
        }
    }
    reasons
}

/// The last `Kernel panic - not syncing:` message in a dmesg text.
pub fn panic_message(log: &str) -> Option<String> {
    let marker = "Kernel panic - not syncing: ";
    log.lines().rev().find_map(|line| {
        line.find(marker)
            .map(|at| line[at + marker.len()..].trim_end().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "[   10.250000] sysrq: Trigger a crash\n\
                       [   10.260000] Kernel panic - not syncing: sysrq triggered crash\n\
                       [   10.270000] CPU: 0 PID: 1 Comm: sh\n";

    #[test]
    fn expected_lines_found_and_missing() {
        let patterns = [
            "sysrq: Trigger a crash".into(),
            "NMI received".into(),
            r"CPU: \d+ PID".into(),
        ];
        let got = check_log(LOG, &patterns);
        assert_eq!(
            got["sysrq: Trigger a crash"].as_deref(),
            Some("[   10.250000] sysrq: Trigger a crash")
        );
        assert_eq!(got["NMI received"], None);
        assert_eq!(
            got[r"CPU: \d+ PID"].as_deref(),
            Some("[   10.270000] CPU: 0 PID: 1 Comm: sh")
        );
    }

    #[test]
    fn absent_patterns_name_the_text_and_line() {
        let texts = [
            ("serial.log", "ok\nshould have crashed\n"),
            ("dmesg.txt", LOG),
        ];
        let reasons = check_absent(&texts, &["should have crashed".into(), "Dazed".into()]);
        assert_eq!(
            reasons,
            ["serial.log holds a line it must not (`should have crashed`): should have crashed"]
        );
    }

    #[test]
    fn panic_message_is_the_last_one() {
        assert_eq!(panic_message(LOG).as_deref(), Some("sysrq triggered crash"));
        assert_eq!(panic_message("no panic here"), None);
    }

    #[test]
    fn summary_line_shows_phases_and_reason() {
        let mut r = CaseResult::new("debian-6.1", "sysrq", "target/kdrill/runs/debian-6.1/sysrq");
        r.verdict = Verdict::Pass;
        r.accel = Some("tcg".into());
        r.phases = Phases {
            boot: Some(4.52),
            kexec: Some(0.91),
            crash_to_capture: Some(4.8),
            makedumpfile: Some(3.9),
            vm_dump: None,
            guest_boot: None,
            capture_boot: None,
            verify: Some(0.4),
            total: Some(15.04),
        };
        r.dump_bytes = Some(30_200_000);
        assert_eq!(
            r.summary_line(),
            "PASS debian-6.1/sysrq  tcg  boot 4.5s  kexec 0.9s  crash→capture 4.8s  makedumpfile 3.9s  dump 30 MB  total 15.0s"
        );
        r.verdict = Verdict::Fail;
        r.reasons = vec!["expected log line absent from the dump: `x`".into()];
        assert!(r
            .summary_line()
            .ends_with("\n  reason: expected log line absent from the dump: `x`"));
    }
}
