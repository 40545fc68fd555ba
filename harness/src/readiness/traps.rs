//! Check 12: the capture kernel's command line avoids known traps (graphics drivers without
//! `nomodeset`, proprietary GPU drivers, no `nr_cpus=1`, `crashkernel=` left in); SKIP when the
//! command line could not be known.

use crate::readiness::kdumpconf::Flavour;
use crate::readiness::{check, Check, Context, Status};
use crate::spec::cmdline::cmdline_words;

/// Modules that drive a display; a capture kernel re-initialising one without `nomodeset` may hang.
const GPU_MODULES: &[&str] = &[
    "i915",
    "xe",
    "amdgpu",
    "radeon",
    "nouveau",
    "nvidia",
    "nvidia_drm",
    "mgag200",
    "ast",
    "qxl",
    "bochs",
    "bochs_drm",
    "virtio_gpu",
    "vmwgfx",
    "cirrus",
    "hibmc_drm",
    "matrox",
    "udl",
];

const WHY_CMDLINE: &str = "the capture kernel boots on hardware the crashed kernel left running; some drivers hang there unless told not to touch it";

/// Check 12: known-bad capture command lines (graphics drivers without `nomodeset`, proprietary GPU drivers).
pub fn cmdline(cx: &Context) -> Check {
    let snap = cx.snap;
    let loaded: Vec<&str> = snap
        .modules
        .as_deref()
        .map(|text| {
            text.lines()
                .filter_map(|l| l.split_whitespace().next())
                .filter(|m| GPU_MODULES.contains(m))
                .collect()
        })
        .unwrap_or_default();
    let cards = snap
        .drm
        .as_ref()
        .map(|names| names.iter().any(|n| n.starts_with("card")))
        .unwrap_or(false);
    let mut details = Vec::new();
    let (words, source) = match &cx.capture_cmdline {
        Some(cmdline) => {
            details.push(format!("capture command line: {cmdline}"));
            let source = if snap.kexec_cmd.is_ok() {
                "recorded kexec_cmd"
            } else {
                "configured"
            };
            (cmdline_words(cmdline), source)
        }
        None if cx.config.is_none() => (Vec::new(), "unknown (no kdump configuration)"),
        None => (
            Vec::new(),
            "unknown (the running command line is unreadable)",
        ),
    };
    let has = |name: &str| {
        words
            .iter()
            .any(|w| w == name || w.starts_with(&format!("{name}=")))
    };
    let mut warnings: Vec<String> = Vec::new();
    let mut fixes: Vec<String> = Vec::new();
    let append_in = match cx.config.as_ref().map(|c| c.flavour) {
        Some(Flavour::KdumpTools) => "KDUMP_CMDLINE_APPEND in /etc/default/kdump-tools",
        Some(Flavour::Kdumpctl) => "KDUMP_COMMANDLINE_APPEND in /etc/sysconfig/kdump",
        Some(Flavour::Suse) => "KDUMP_COMMANDLINE_APPEND in /etc/sysconfig/kdump",
        None => "the kdump service's capture command line",
    };
    if (!loaded.is_empty() || cards) && !has("nomodeset") {
        let what = if loaded.is_empty() {
            "a DRM device".to_string()
        } else {
            loaded.join(", ")
        };
        warnings.push(format!(
            "graphics driver loaded ({what}) and no nomodeset for the capture kernel"
        ));
        fixes.push(format!("add `nomodeset` to {append_in}"));
    }
    if loaded.iter().any(|m| m.starts_with("nvidia"))
        && !has("modprobe.blacklist")
        && !has("rd.driver.blacklist")
    {
        warnings.push(
            "proprietary nvidia driver loaded and not blacklisted for the capture kernel"
                .to_string(),
        );
        fixes.push(format!(
            "add `rd.driver.blacklist=nvidia modprobe.blacklist=nvidia` to {append_in}"
        ));
    }
    if cx.capture_cmdline.is_some() {
        if has("crashkernel") {
            warnings.push("the capture command line still carries crashkernel=".to_string());
            fixes.push("remove crashkernel= from the capture command line".to_string());
        }
        if !has("nr_cpus") && !has("maxcpus") {
            warnings.push(
                "no nr_cpus=1: the capture kernel brings up every CPU inside the small reservation"
                    .to_string(),
            );
            fixes.push(format!("add `nr_cpus=1` to {append_in}"));
        }
    }
    if !fixes.is_empty() {
        fixes.push(format!("then `{}`", cx.family.reload()));
    }
    // Nothing to warn about in a command line never seen is no PASS: it could not be judged.
    let (status, unknown_fix) = match (&cx.capture_cmdline, warnings.is_empty()) {
        (_, false) => (Status::Warn, None),
        (Some(_), true) => (Status::Pass, None),
        (None, true) if cx.config.is_none() => (
            Status::Skip,
            Some("configure the kdump service (see kdump-service): kdrill reads the capture command line from its configuration and /proc/cmdline"),
        ),
        (None, true) => (
            Status::Skip,
            Some("run as root on the host, or include proc/cmdline in the captured tree"),
        ),
    };
    if let Some(fix) = unknown_fix {
        fixes.push(fix.to_string());
    }
    let gpu = if loaded.is_empty() && !cards {
        "no graphics driver loaded".to_string()
    } else {
        format!(
            "graphics: {}",
            if loaded.is_empty() {
                "DRM device".to_string()
            } else {
                loaded.join(", ")
            }
        )
    };
    let seen = if warnings.is_empty() {
        format!("capture command line {source}; {gpu}")
    } else {
        warnings.join("; ")
    };
    check(12, status, seen, WHY_CMDLINE)
        .details(details)
        .fix(fixes.join("\n"))
}
