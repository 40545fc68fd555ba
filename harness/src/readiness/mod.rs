//! Field readiness checklist: pure checks over a host's /proc, /sys and /etc files, read through one root.
//!
//! [`gather`] is the only I/O (it reads a [`Snapshot`] through a [`source::Root`]); [`evaluate`] turns a
//! snapshot into a [`Report`] of the checks of [`CHECKS`]; [`report`] renders it as a table or as JSON,
//! [`metrics`] as Prometheus metrics, [`fleet`] many hosts' JSON as one table.

mod calibration;
mod capture;
mod causes;
mod context;
pub mod distro;
pub mod fleet;
mod gather;
pub mod identity;
pub mod initramfs;
mod initrd;
pub mod kdumpconf;
pub mod lastdrill;
mod makedumpfile;
mod memory;
pub mod metrics;
mod platform;
mod probe;
mod ram;
pub mod report;
pub mod snapshot;
pub mod source;
mod target;
mod tools;
mod traps;
pub mod tree;
mod triggers;
mod units;
mod unread;

pub use calibration::{CalibrationFile, CALIBRATION_DIR, SHIPPED_CALIBRATION_DIR};
pub use gather::{gather, gather_with, RootError};
pub use snapshot::{Calibrated, Snapshot};

pub(crate) use context::{Context, Support};

use crate::exit;
use crate::readiness::distro::Family;
use crate::spec::crashkernel::Resolution;

/// Outcome of one check. Ordered by severity: the worst one decides the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Ready in this respect.
    Pass,
    /// Worth knowing, never a problem (the hypervisor check).
    Info,
    /// Could not be judged (a file missing from a captured tree, unreadable, or odd); counts like a warning.
    Skip,
    /// Works, but a choice or a gap may cost the dump.
    Warn,
    /// A crash today would not leave a usable dump.
    Fail,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Info => "INFO",
            Status::Skip => "SKIP",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// The groups the table is printed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Area {
    Memory,
    Capture,
    Triggers,
    Aftermath,
    Tools,
    Platform,
}

impl Area {
    pub fn title(self) -> &'static str {
        match self {
            Area::Memory => "Memory reservation",
            Area::Capture => "Capture kernel",
            Area::Triggers => "Crash triggers",
            Area::Aftermath => "After the crash",
            Area::Tools => "Tools",
            Area::Platform => "Platform",
        }
    }
}

/// One line of the checklist.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    /// Stable identifier (`crashkernel-param`); never renamed once released.
    pub id: &'static str,
    /// Its number in [`CHECKS`] (1–16), as `docs/check.md` lists them; never reused.
    pub number: u8,
    pub area: Area,
    pub title: &'static str,
    pub status: Status,
    /// What was seen, in one line.
    pub seen: String,
    /// Why it matters for getting a dump.
    pub why: String,
    /// The exact fix, for anything not PASS/INFO; `None` too when the check follows from another.
    pub fix: Option<String>,
    /// The id of the check whose finding this one only follows from (`capture-loaded` when the
    /// kernel cannot dump at all): fixing that one is the fix, so this one's own is left out.
    pub follows_from: Option<&'static str>,
    /// Further observations (values, paths, assumptions).
    pub details: Vec<String>,
}

/// Overall answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ready,
    ReadyWithWarnings,
    NotReady,
}

impl Verdict {
    /// The process exit code (`kdrill::exit`): 0 ready, 1 ready with warnings (or checks that
    /// could not run), 2 not ready. A check that could not be made at all (a root that is missing,
    /// unreadable or not a captured tree, a bad calibration file) is an error instead: 3, and a bad
    /// command line 64.
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Ready => exit::SUCCESS,
            Verdict::ReadyWithWarnings => exit::PARTIAL,
            Verdict::NotReady => exit::NEGATIVE,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Verdict::Ready => "READY",
            Verdict::ReadyWithWarnings => "READY WITH WARNINGS",
            Verdict::NotReady => "NOT READY",
        }
    }
}

/// Figures the checks computed, for machines (`facts` in the JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Facts {
    pub kernel_release: Option<String>,
    pub arch: Option<String>,
    pub distro: Option<Family>,
    pub mem_total_bytes: Option<u64>,
    pub system_ram_bytes: Option<u64>,
    pub crashkernel: Vec<String>,
    pub crashkernel_requested_bytes: Option<u64>,
    pub crash_reserved_bytes: Option<u64>,
    pub estimate: Option<ram::Estimate>,
    pub arch_default_bytes: Option<u64>,
    /// Hook for a later issue: the minimum kdrill measured for this kernel.
    pub calibrated_bytes: Option<u64>,
    /// The `crashkernel=` size check 3's fix recommends (`Memory::recommended`): the measured
    /// minimum with its margin, else the largest of the estimate, the arch default and another
    /// release's measurement; `None` when the kernel release is unknown.
    pub crashkernel_recommended_bytes: Option<u64>,
    pub capture_loaded: Option<bool>,
    pub kdump_service: Option<String>,
    pub dump_target: Option<String>,
    pub dump_estimate_bytes: Option<u64>,
    pub dump_free_bytes: Option<u64>,
}

/// The whole checklist for one host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    pub root: String,
    pub live: bool,
    /// The checked host's name (`/proc/sys/kernel/hostname`, else `/etc/hostname`), if known.
    pub hostname: Option<String>,
    /// Its `/etc/machine-id` (32 hex digits), if known.
    pub machine_id: Option<String>,
    pub verdict: Verdict,
    pub facts: Facts,
    pub checks: Vec<Check>,
    /// The last `kdrill drill` on record, if any.
    pub last_drill: Option<lastdrill::LastDrill>,
}

impl Report {
    pub fn exit_code(&self) -> i32 {
        self.verdict.exit_code()
    }
}

/// Runs the checks of [`CHECKS`] over a snapshot.
pub fn evaluate(snap: &Snapshot) -> Report {
    let cx = Context::new(snap);
    let mut checks = vec![
        memory::param(&cx),
        memory::reserved(&cx),
        memory::large_enough(&cx),
        capture::loaded(&cx),
        capture::service(&cx),
        triggers::sysrq(&cx),
        triggers::nmi(&cx),
        triggers::oops_hang(&cx),
        triggers::aftermath(&cx),
        target::dump_target(&cx),
        tools::present(&cx),
        traps::cmdline(&cx),
        platform::hypervisor(&cx),
        makedumpfile::ceiling(&cx),
        initrd::contents(&cx),
        lastdrill::check_row(&snap.drill, snap.release.as_deref().ok(), snap.taken_unix),
    ];
    causes::group(&mut checks, &cx);
    unread::attach(&mut checks, snap);
    let worst = checks
        .iter()
        .map(|c| c.status)
        .max()
        .unwrap_or(Status::Pass);
    let verdict = match worst {
        Status::Fail => Verdict::NotReady,
        Status::Warn | Status::Skip => Verdict::ReadyWithWarnings,
        Status::Pass | Status::Info => Verdict::Ready,
    };
    Report {
        root: snap.root.clone(),
        live: snap.live,
        hostname: snap.hostname.clone(),
        machine_id: snap.machine_id.clone(),
        verdict,
        facts: facts(&cx),
        checks,
        last_drill: lastdrill::last(&snap.drill, snap.release.as_deref().ok()),
    }
}

fn facts(cx: &Context) -> Facts {
    let snap = cx.snap;
    let requested = match cx.mem.resolution() {
        Some(Resolution::Reserve { size, low }) => Some(size + low.unwrap_or(0)),
        _ => None,
    };
    let target = target::Target::new(cx);
    Facts {
        kernel_release: snap.release.clone().ok(),
        arch: snap.arch.clone().ok(),
        distro: Some(cx.family),
        mem_total_bytes: cx.mem.mem_total,
        system_ram_bytes: cx.mem.system_ram,
        crashkernel: cx
            .mem
            .params
            .as_ref()
            .map(|p| p.raw.clone())
            .unwrap_or_default(),
        crashkernel_requested_bytes: requested,
        crash_reserved_bytes: cx.mem.reserved(),
        estimate: cx.mem.estimate(cx),
        arch_default_bytes: cx.mem.arch_default(cx),
        calibrated_bytes: snap.calibrated.as_ref().map(|c| c.min_bytes),
        crashkernel_recommended_bytes: snap.release.is_ok().then(|| cx.mem.recommended(cx)),
        capture_loaded: snap
            .kexec_crash_loaded
            .as_deref()
            .ok()
            .map(|v| v.trim() == "1"),
        kdump_service: cx.config.as_ref().map(|c| c.flavour.unit().to_string()),
        dump_target: Some(target.place.clone()),
        dump_estimate_bytes: target.dump_estimate.map(|(bytes, _)| bytes),
        dump_free_bytes: target.free,
    }
}

/// Builds a [`Check`] with the fixed fields of check `number`.
pub(crate) fn check(
    number: u8,
    status: Status,
    seen: impl Into<String>,
    why: impl Into<String>,
) -> Check {
    let (_, id, area, title) = *CHECKS
        .iter()
        .find(|(n, ..)| *n == number)
        .expect("every check's number is in CHECKS");
    Check {
        id,
        number,
        area,
        title,
        status,
        seen: seen.into(),
        why: why.into(),
        fix: None,
        follows_from: None,
        details: Vec::new(),
    }
}

impl Check {
    pub(crate) fn fix(mut self, fix: impl Into<String>) -> Self {
        let fix = fix.into();
        if !matches!(self.status, Status::Pass | Status::Info) && !fix.is_empty() {
            self.fix = Some(fix);
        }
        self
    }

    pub(crate) fn details(mut self, details: Vec<String>) -> Self {
        self.details = details;
        self
    }
}

/// Number, id, area and title of each check, in the order. A number is never reused
/// (14 is `kdrill drill`'s last drill on record).
pub const CHECKS: [(u8, &str, Area, &str); 16] = [
    (
        1,
        "crashkernel-param",
        Area::Memory,
        "crashkernel= on the kernel command line",
    ),
    (
        2,
        "crashkernel-reserved",
        Area::Memory,
        "memory actually reserved",
    ),
    (
        3,
        "crashkernel-size",
        Area::Memory,
        "reservation large enough",
    ),
    (4, "capture-loaded", Area::Capture, "capture kernel loaded"),
    (
        5,
        "kdump-service",
        Area::Capture,
        "kdump service and capture initrd",
    ),
    (6, "sysrq", Area::Triggers, "SysRq crash key"),
    (7, "nmi-panic", Area::Triggers, "NMI panics"),
    (8, "oops-hang-panic", Area::Triggers, "oops and hangs panic"),
    (
        9,
        "after-dump",
        Area::Aftermath,
        "reboot and notification after a dump",
    ),
    (10, "dump-target", Area::Aftermath, "dump target"),
    (11, "tools", Area::Tools, "dump and analysis tools"),
    (
        12,
        "capture-cmdline",
        Area::Capture,
        "capture kernel command line",
    ),
    (13, "hypervisor", Area::Platform, "hypervisor-side dumps"),
    (
        14,
        "last-drill",
        Area::Aftermath,
        "the last drill, and whether it still counts",
    ),
    (
        15,
        "makedumpfile-kernel",
        Area::Tools,
        "makedumpfile knows the running kernel",
    ),
    (
        16,
        "capture-initrd",
        Area::Capture,
        "capture initrd holds what the dump target needs",
    ),
];

/// A check's findings as one line: their texts joined with "; ".
pub(crate) fn joined(parts: &[(Status, String)]) -> String {
    parts
        .iter()
        .map(|(_, text)| text.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

/// A file's problem, worded for a `seen` line: `/proc/cmdline missing`.
pub(crate) fn unread(path: &str, problem: &source::Problem) -> String {
    match problem {
        source::Problem::Odd(why) if why.contains(path) => why.clone(),
        other => format!("{path} {other}"),
    }
}
