//! A case's record, saved as `result.json`: the verdict and its reasons, what ran (route,
//! accelerator, kernel), phase timings, what the dump showed; the PASS rule; the one-line summary.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::case::error::CaseError;
pub use crate::case::phases::{DebianPhases, MinimalPhases, PhaseView, Phases};
use crate::case::plan::Plan;
use crate::case::shape::ShapeRecord;
use crate::host::interrupt::Stop;
use crate::spec::scenario::Trigger;
use crate::vm::accel::Accel;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    Pass,
    Fail,
    /// Not run: the kernel entry declares the route cannot work there (the reason is in `reasons`).
    Skip,
    /// Stopped before it could be judged: a signal, a lost test runner, or (written at the start
    /// and never replaced) a run that was killed outright.
    Interrupted,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Skip => "SKIP",
            Verdict::Interrupted => "INTERRUPTED",
        }
    }
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
    /// The kind of the first failure (`CaseError::kind`: `timeout`, `guest-failed`, `no-dump`, …).
    #[serde(default)]
    pub failure: Option<String>,
    /// How the case was stopped, when it was (`SIGTERM`, `SIGINT`, `SIGHUP`, `parent exited`;
    /// `killed` when kdrill died without a word, e.g. SIGKILL).
    #[serde(default)]
    pub interrupted: Option<String>,
    pub accel: Option<Accel>,
    pub accel_reason: Option<String>,
    pub kernel_release: Option<String>,
    /// The Debian package the kernel came from, as this case used it (a tracking entry's
    /// resolution included): name, version and the sha256 of the `.deb` downloaded.
    #[serde(default)]
    pub kernel_package: Option<KernelPackage>,
    pub phases: Phases,
    /// The minimal image's own phases (`kexec -p`, makedumpfile, the consoles' first lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimal: Option<MinimalPhases>,
    /// Size of the dump file in bytes.
    pub dump_bytes: Option<u64>,
    /// The pages the dump holds and leaves out, and makedumpfile's own warnings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<crate::dumpcheck::facts::CaptureFacts>,
    /// The crash route (the scenario's trigger).
    pub route: Option<Trigger>,
    /// Whose busybox, kexec-tools and makedumpfile captured (minimal image): the release or
    /// `host`, and the package versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userspace: Option<crate::fetch::userspace::Used>,
    /// Which makedumpfile re-read the dump's log for the byte-for-byte cross-check, and in which
    /// of its formats (`null`: none did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_check: Option<String>,
    /// How the case booted: its mode, restore or not, kexec's and makedumpfile's options.
    #[serde(default)]
    pub plan: Option<Plan>,
    /// `booted`, or `restored from <shape key>`.
    #[serde(default)]
    pub boot: Option<String>,
    /// The shape a restored case started from: its own boot, verified and timed once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<ShapeRecord>,
    /// Each expected regex and the first line of the dump's log it matched (`null`: none).
    pub expectations: BTreeMap<String, Option<String>>,
    /// The panic message read from the dump.
    pub panic_message: Option<String>,
    /// What kdrill read deep from the dump (the crashed CPU's backtrace, its task, the
    /// modules) and which expected frames matched.
    #[serde(default)]
    pub deep: Option<crate::dumpcheck::deep::DeepSeen>,
    /// Debian image: the image, each boot phase, the in-guest check, the dump folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub production: Option<crate::case::production::record::Production>,
    /// This attempt's evidence folder.
    pub artifacts: String,
    /// When the case started, seconds since the epoch (the summary keeps the attempts of one run).
    #[serde(default)]
    pub started: f64,
    /// Which try this was: nextest's `NEXTEST_ATTEMPT` (1 outside nextest). A PASS on a later try is FLAKY.
    #[serde(default = "first_attempt")]
    pub attempt: u32,
}

/// Which kernel package a case booted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelPackage {
    pub package: String,
    pub version: String,
    pub sha256: String,
    /// Resolved from `version: track` when the run started.
    pub tracked: bool,
    /// The kernel's series (`6.1`, `7.3`): for a tracking entry the one it resolved to (an
    /// entry that follows the newest series records which that was).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<String>,
    /// The other packages of a kernel Debian splits (6.19 and later: modules and base), each
    /// with its version and sha256.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<crate::spec::kernel::DebPackage>,
}

impl KernelPackage {
    /// `package version (sha256 <first 12>…)`, with `tracked` when it was resolved.
    pub fn describe(&self) -> String {
        format!(
            "{} {} (sha256 {}…{})",
            self.package,
            self.version,
            self.sha256.get(..12).unwrap_or(&self.sha256),
            if self.tracked { ", tracked" } else { "" }
        )
    }
}

fn first_attempt() -> u32 {
    1
}

impl CaseResult {
    pub fn new(kernel: &str, scenario: &str, artifacts: &Path) -> CaseResult {
        CaseResult {
            kernel: kernel.into(),
            scenario: scenario.into(),
            verdict: Verdict::Fail,
            reasons: Vec::new(),
            failure: None,
            interrupted: None,
            notes: Vec::new(),
            accel: None,
            accel_reason: None,
            kernel_release: None,
            kernel_package: None,
            userspace: None,
            log_check: None,
            phases: Phases::default(),
            minimal: None,
            dump_bytes: None,
            capture: None,
            route: None,
            plan: None,
            boot: None,
            shape: None,
            expectations: BTreeMap::new(),
            panic_message: None,
            deep: None,
            production: None,
            artifacts: artifacts.display().to_string(),
            started: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
            attempt: std::env::var("NEXTEST_ATTEMPT")
                .ok()
                .and_then(|a| a.parse().ok())
                .unwrap_or(1),
        }
    }

    pub fn id(&self) -> String {
        format!("{}/{}", self.kernel, self.scenario)
    }

    /// Records a failure: its reason, and its kind when it is the first. An interruption makes
    /// the verdict INTERRUPTED, whatever else failed.
    pub fn fail(&mut self, error: CaseError) {
        if let Some(stop) = error.stop() {
            self.interrupted = Some(stop.name().into());
        }
        self.failure.get_or_insert_with(|| error.kind().into());
        self.reasons.push(error.to_string());
    }

    /// Records what reading the dump back found: each figure it set, and a reason for each
    /// expectation the dump did not meet.
    pub fn record(&mut self, found: crate::dumpcheck::Findings) {
        let crate::dumpcheck::Findings {
            dump_bytes,
            log_check,
            capture,
            panic_message,
            expectations,
            deep,
            unmet,
        } = found;
        self.dump_bytes = dump_bytes.or(self.dump_bytes);
        self.log_check = log_check.or(self.log_check.take());
        self.capture = capture.or(self.capture.take());
        self.panic_message = panic_message.or(self.panic_message.take());
        self.expectations.extend(expectations);
        self.deep = deep.or(self.deep.take());
        for error in unmet {
            self.fail(error.into());
        }
    }

    /// What `result.json` says while the case runs: if kdrill dies without a word (SIGKILL, the
    /// machine going down), this is what is left.
    pub fn placeholder(&self) -> CaseResult {
        let mut placeholder = self.clone();
        placeholder.verdict = Verdict::Interrupted;
        placeholder.interrupted = Some("killed".into());
        placeholder.failure = Some("interrupted".into());
        placeholder.reasons = vec![
            "interrupted: kdrill stopped before the case finished (killed with SIGKILL, or the machine went down)".into(),
        ];
        placeholder
    }

    /// The PASS rule: no failure, and at least one expectation checked, every one of them met.
    /// An interruption (a reason recorded by [`CaseResult::fail`], or `stop`) is INTERRUPTED.
    pub fn judge(&mut self, stop: Option<Stop>) {
        if let Some(stop) = stop {
            if self.interrupted.is_none() {
                self.fail(CaseError::interrupted(stop));
            }
        }
        if self.interrupted.is_some() {
            self.verdict = Verdict::Interrupted;
            return;
        }
        let checked = !self.expectations.is_empty();
        if self.reasons.is_empty() && checked && self.expectations.values().all(Option::is_some) {
            self.verdict = Verdict::Pass;
            return;
        }
        self.verdict = Verdict::Fail;
        if self.reasons.is_empty() {
            self.fail(CaseError::NothingChecked);
        }
    }

    /// `PASS debian-6.1/sysrq  tcg faithful  boot 4.5s  kexec 0.9s  crash→capture 4.8s  makedumpfile 3.9s  dump 30 MB  total 15.0s`
    pub fn summary_line(&self) -> String {
        let verdict = self.verdict.label();
        let mut line = format!("{verdict} {}", self.id());
        if let Some(accel) = self.accel {
            line.push_str(&format!("  {}", accel.qemu_name()));
        }
        if let Some(plan) = &self.plan {
            line.push_str(&format!(" {}", plan.mode.word()));
            if self.shape.is_some() {
                line.push_str(", restored");
            }
        }
        let p = self.phase_view();
        let (m, d) = (
            p.minimal.cloned().unwrap_or_default(),
            p.debian.cloned().unwrap_or_default(),
        );
        for (label, value) in [
            ("shape", p.shared.shape),
            ("restore", p.shared.restore),
            ("boot", p.shared.boot),
            ("ready", d.ready),
            ("kexec", m.kexec),
            ("crash→capture", p.shared.crash_to_capture),
            ("makedumpfile", m.makedumpfile),
            ("crash→saved", d.crash_to_saved),
            ("ready again", d.ready_again),
            ("dump-guest-memory", m.vm_dump),
        ] {
            if let Some(secs) = value {
                line.push_str(&format!("  {label} {secs:.1}s"));
            }
        }
        if let Some(bytes) = self.dump_bytes {
            line.push_str(&format!("  dump {} MB", (bytes as f64 / 1e6).round()));
        }
        if let Some(capture) = &self.capture {
            line.push_str(&format!(" ({} % of pages)", capture.dumped_percent));
        }
        if let Some(total) = self.phases.total {
            line.push_str(&format!("  total {total:.1}s"));
        }
        if let Some(used) = &self.userspace {
            line.push_str(&format!("\n  userspace {}", used.short()));
        }
        for note in &self.notes {
            line.push_str(&format!("\n  note: {note}"));
        }
        let said = self
            .capture
            .iter()
            .filter_map(|c| c.makedumpfile_said.as_ref());
        for message in said.flatten() {
            line.push_str(&format!("\n  makedumpfile: {message}"));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line_shows_phases_and_reason() {
        let mut r = CaseResult::new(
            "debian-6.1",
            "sysrq",
            Path::new("target/kdrill/runs/debian-6.1/sysrq"),
        );
        r.verdict = Verdict::Pass;
        r.accel = Some(Accel::Tcg);
        r.phases = Phases {
            boot: Some(4.52),
            crash_to_capture: Some(4.8),
            verify: Some(0.4),
            total: Some(15.04),
            ..Phases::default()
        };
        r.minimal = Some(MinimalPhases {
            first_line: Some(2.1),
            capture_first_line: Some(3.0),
            kexec: Some(0.91),
            makedumpfile: Some(3.9),
            ..MinimalPhases::default()
        });
        r.dump_bytes = Some(30_200_000);
        assert_eq!(
            r.summary_line(),
            "PASS debian-6.1/sysrq  tcg  boot 4.5s  kexec 0.9s  crash→capture 4.8s  makedumpfile 3.9s  dump 30 MB  total 15.0s"
        );
        r.userspace = Some(crate::fetch::userspace::Used {
            name: "bookworm".into(),
            own: true,
            packages: [
                ("makedumpfile", "1:1.7.2-1"),
                ("busybox-static", "1:1.35.0-4+b7"),
            ]
            .map(|(p, v)| (p.to_string(), v.to_string()))
            .into(),
            sysroot: None,
        });
        assert!(r.summary_line().ends_with(
            "total 15.0s\n  userspace bookworm: makedumpfile 1.7.2, busybox-static 1.35.0"
        ));
        r.capture = Some(crate::dumpcheck::facts::CaptureFacts {
            dumped_percent: 14.5,
            makedumpfile_said: Some(vec!["The kernel version is not supported.".into()]),
            ..Default::default()
        });
        assert!(r.summary_line().ends_with(
            "dump 30 MB (14.5 % of pages)  total 15.0s\n  userspace bookworm: makedumpfile 1.7.2, busybox-static 1.35.0\n  makedumpfile: The kernel version is not supported."
        ));
        r.verdict = Verdict::Fail;
        r.reasons = vec!["expected log line absent from the dump: `x`".into()];
        assert!(r
            .summary_line()
            .ends_with("\n  reason: expected log line absent from the dump: `x`"));
    }

    fn judged(
        expectations: &[(&str, bool)],
        errors: Vec<CaseError>,
        stop: Option<Stop>,
    ) -> CaseResult {
        let mut r = CaseResult::new("k", "s", Path::new("d"));
        for (pattern, found) in expectations {
            r.expectations
                .insert(pattern.to_string(), found.then(|| "line".to_string()));
        }
        for e in errors {
            r.fail(e);
        }
        r.judge(stop);
        r
    }

    #[test]
    fn the_pass_rule() {
        assert_eq!(judged(&[("a", true)], vec![], None).verdict, Verdict::Pass);
        // An unmet expectation, a failure, or nothing checked: FAIL.
        assert_eq!(judged(&[("a", false)], vec![], None).verdict, Verdict::Fail);
        let r = judged(
            &[("a", true)],
            vec![CaseError::Read(crate::dumpcheck::DumpError::NoDump)],
            None,
        );
        assert_eq!(
            (r.verdict, r.failure.as_deref()),
            (Verdict::Fail, Some("no-dump"))
        );
        let r = judged(&[], vec![], None);
        assert_eq!(r.verdict, Verdict::Fail);
        assert_eq!(r.reasons, ["no expectation was checked"]);
        // A stop outranks everything and is named.
        let r = judged(
            &[("a", true)],
            vec![CaseError::Read(crate::dumpcheck::DumpError::NoDump)],
            Some(Stop::Term),
        );
        assert_eq!(r.verdict, Verdict::Interrupted);
        assert_eq!(r.interrupted.as_deref(), Some("SIGTERM"));
        assert_eq!(r.failure.as_deref(), Some("no-dump"));
        assert!(r
            .reasons
            .contains(&"interrupted (SIGTERM); guests killed".to_string()));
    }

    #[test]
    fn the_placeholder_says_interrupted() {
        let r = CaseResult::new("k", "s", Path::new("d")).placeholder();
        assert_eq!(r.verdict, Verdict::Interrupted);
        assert_eq!(r.interrupted.as_deref(), Some("killed"));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["verdict"], "INTERRUPTED");
    }
}
