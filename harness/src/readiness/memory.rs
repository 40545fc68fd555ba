//! Checks 1–3: `crashkernel=` on the command line, memory actually reserved, and whether it is large enough.

use crate::readiness::ram::{ABOVE_THE_ESTIMATE, X86_64_DEFAULT};
use crate::readiness::source::Problem;
use crate::readiness::{check, unread, Check, Context, Status, Support};
use crate::spec::cmdline::{figure, over_limit, paste};
use crate::spec::crashkernel::Resolution;

const WHY_PARAM: &str = "without crashkernel= the kernel reserves no memory at boot, so there is nowhere to load a capture kernel";
const WHY_RESERVED: &str =
    "a crashkernel= value the kernel could not place reserves nothing, and kdump cannot load";
const WHY_SIZE: &str = "a capture kernel that runs out of memory in its reservation dies before writing the dump (\"System is deadlocked on memory\")";

/// Check 1: `crashkernel=` on /proc/cmdline, and what it resolves to for this RAM; a RAM figure
/// refused as absurd makes it a WARN naming the figure.
pub fn param(cx: &Context) -> Check {
    warned(
        param_judged(cx),
        &cx.mem.absurd,
        "check /proc/iomem and /proc/meminfo: a captured tree holding made-up figures is not this host",
    )
}

/// A check raised to at least WARN by `notes` (each named on its seen line), with `fix` when it
/// has none.
fn warned(mut check: Check, notes: &[String], fix: &str) -> Check {
    if notes.is_empty() {
        return check;
    }
    check.status = check.status.max(Status::Warn);
    check.seen = format!("{}; {}", check.seen, notes.join("; "));
    if check.fix.is_none() {
        check.fix = Some(fix.to_string());
    }
    check
}

fn param_judged(cx: &Context) -> Check {
    let mem = &cx.mem;
    let Some(params) = &mem.params else {
        let problem = cx
            .snap
            .cmdline
            .as_ref()
            .err()
            .cloned()
            .unwrap_or(Problem::Missing);
        return check(
            1,
            Status::Skip,
            unread("/proc/cmdline", &problem),
            WHY_PARAM,
        )
        .fix("run as root on the host, or include proc/cmdline in the captured tree");
    };
    let (bytes, why) = mem.recommendation(cx);
    let recommended = format!("crashkernel={}", paste(bytes));
    let add = cx.set_crashkernel(&recommended, params.is_empty());
    if let Support::No(reason) = &cx.support {
        let seen = if params.is_empty() {
            format!("no crashkernel= on /proc/cmdline; this kernel could not use one ({reason})")
        } else {
            format!(
                "crashkernel={} is set, but this kernel cannot dump ({reason})",
                params.raw.join(" crashkernel=")
            )
        };
        return check(1, Status::Fail, seen, WHY_PARAM).fix(cx.kernel_without_dump_fix());
    }
    if params.is_empty() {
        return check(
            1,
            Status::Fail,
            "no crashkernel= on /proc/cmdline",
            WHY_PARAM,
        )
        .details(vec![recommended_detail(&recommended, &why)])
        .fix(add);
    }
    let ram_text = match mem.ram() {
        Some((ram, source)) => format!("{} of RAM ({source})", figure(ram)),
        None => "an unknown RAM size".to_string(),
    };
    let mut details: Vec<String> = params
        .raw
        .iter()
        .zip(&params.parsed)
        .filter_map(|(raw, parsed)| {
            parsed
                .as_ref()
                .err()
                .map(|err| format!("crashkernel={raw} is ignored by the kernel: {err}"))
        })
        .collect();
    let shown = format!("crashkernel={}", params.raw.join(" crashkernel="));
    let (status, seen, fix) = match mem.resolution() {
        None if mem.ram().is_none() => (
            Status::Skip,
            format!("{shown}, but the RAM size is unknown (/proc/meminfo, /proc/iomem)"),
            Some("include proc/meminfo and proc/iomem in the captured tree".to_string()),
        ),
        None => (
            Status::Fail,
            format!("{shown} does not parse"),
            Some(add.clone()),
        ),
        Some(Resolution::Reserve { size: s, low }) => {
            let low = low
                .map(|l| format!(" + {} low", figure(l)))
                .unwrap_or_default();
            let status = if details.is_empty() {
                Status::Pass
            } else {
                Status::Warn
            };
            (
                status,
                format!("{shown} asks for {}{low} with {ram_text}", figure(s)),
                Some("remove the crashkernel= values the kernel ignores".to_string()),
            )
        }
        Some(Resolution::NoRangeMatches) => (
            Status::Fail,
            format!("{shown} has no range covering {ram_text}: nothing is reserved"),
            Some(format!("add a range that covers this RAM size, or {add}")),
        ),
        Some(Resolution::TooLarge { size: s }) => (
            Status::Fail,
            format!(
                "{shown} asks for {}, not less than {ram_text}: the kernel refuses",
                figure(s)
            ),
            Some(add.clone()),
        ),
        Some(Resolution::Auto) => {
            details.push("RHEL/CentOS 7 and 8 kernels read `auto` as 1G-4G:160M,4G-64G:192M,64G-1T:256M,1T-:512M on x86_64; mainline and other kernels ignore it".to_string());
            (
                Status::Warn,
                format!("{shown}: only RHEL/CentOS 7–8 kernels understand `auto`"),
                Some(format!(
                    "replace crashkernel=auto with an explicit size: {add}"
                )),
            )
        }
        Some(Resolution::Zero) => (
            Status::Fail,
            format!("{shown} asks for 0 bytes with {ram_text}: nothing is reserved"),
            Some(add.clone()),
        ),
        Some(Resolution::NothingMain) => (
            Status::Fail,
            format!("{shown} has only a ,low or ,cma part and no main size: nothing is reserved"),
            Some(add.clone()),
        ),
    };
    let mut result = check(1, status, seen, WHY_PARAM).details(details);
    if let Some(fix) = fix {
        result = result.fix(fix);
    }
    result
}

/// Check 2: `/sys/kernel/kexec_crash_size` > 0 and a "Crash kernel" range in /proc/iomem; the
/// two disagreeing is a WARN naming both.
pub fn reserved(cx: &Context) -> Check {
    let disagreement: Vec<String> = cx.mem.crash_disagreement().into_iter().collect();
    warned(
        reserved_judged(cx),
        &disagreement,
        "read /sys/kernel/kexec_crash_size and /proc/iomem again as root on the host: the kernel's own figure (kexec_crash_size) is the one judged",
    )
}

fn reserved_judged(cx: &Context) -> Check {
    let mem = &cx.mem;
    if let Support::No(reason) = &cx.support {
        return check(
            2,
            Status::Fail,
            format!("nothing reserved: this kernel has no crash dump support ({reason})"),
            WHY_RESERVED,
        )
        .fix(cx.kernel_without_dump_fix());
    }
    let mut details = Vec::new();
    match &mem.crash_size {
        Ok(bytes) => details.push(format!(
            "/sys/kernel/kexec_crash_size = {bytes} ({})",
            figure(*bytes)
        )),
        Err(problem) => details.push(unread("/sys/kernel/kexec_crash_size", problem)),
    }
    match (&mem.iomem_crash, mem.iomem_hidden) {
        (_, true) => details.push("/proc/iomem shows zero addresses (read it as root)".to_string()),
        (Some(ranges), false) if !ranges.is_empty() => {
            for (start, end) in ranges {
                details.push(format!(
                    "/proc/iomem: {start:08x}-{end:08x} : Crash kernel ({})",
                    figure((end - start).saturating_add(1))
                ));
            }
        }
        (Some(_), false) => details.push("/proc/iomem has no \"Crash kernel\" range".to_string()),
        (None, false) => details.push(unread(
            "/proc/iomem",
            cx.snap.iomem.as_ref().err().unwrap_or(&Problem::Missing),
        )),
    }
    let Some(reserved) = mem.reserved() else {
        return check(2, Status::Skip, "cannot tell: /sys/kernel/kexec_crash_size and /proc/iomem unreadable", WHY_RESERVED)
            .details(details)
            .fix("run as root on the host, or include sys/kernel/kexec_crash_size and proc/iomem in the captured tree");
    };
    if reserved > 0 {
        let seen = format!("{} reserved for the capture kernel", figure(reserved));
        return check(2, Status::Pass, seen, WHY_RESERVED).details(details);
    }
    let (seen, fix) = match mem.resolution() {
        Some(Resolution::Reserve { size: s, .. }) => (
            format!("crashkernel= asks for {} but nothing was reserved", figure(s)),
            "find the reason with `dmesg | grep -i crashkernel`; try a smaller size, or on x86_64 `crashkernel=<size>,high crashkernel=72M,low` to reserve above 4G".to_string(),
        ),
        Some(Resolution::Auto) => (
            "crashkernel=auto reserved nothing: this kernel does not understand `auto`".to_string(),
            format!("replace it with an explicit size: {}", cx.set_crashkernel(&format!("crashkernel={}", paste(mem.recommended(cx))), false)),
        ),
        _ => ("nothing reserved for a capture kernel".to_string(), "set crashkernel= first (see crashkernel-param)".to_string()),
    };
    check(2, Status::Fail, seen, WHY_RESERVED)
        .details(details)
        .fix(fix)
}

/// Check 3: the reservation against an estimate, the arch default, and any calibrated figure; a
/// calibration file that could not be used is a WARN naming it, even when it is the only one.
pub fn large_enough(cx: &Context) -> Check {
    let ignored: Vec<String> = cx
        .snap
        .calibrations
        .iter()
        .filter_map(|f| {
            f.parsed
                .as_ref()
                .err()
                .map(|e| format!("ignored calibration file {}: {e}", f.source))
        })
        .collect();
    warned(
        large_enough_judged(cx),
        &ignored,
        "fix or remove the calibration file: `kdrill calibrate` writes one that reads back",
    )
}

fn large_enough_judged(cx: &Context) -> Check {
    let mem = &cx.mem;
    let reserved = match mem.reserved() {
        Some(bytes) if bytes > 0 => bytes,
        _ => {
            return check(
                3,
                Status::Skip,
                "nothing reserved to size (see crashkernel-reserved)",
                WHY_SIZE,
            )
        }
    };
    let Some(estimate) = mem.estimate(cx) else {
        return check(
            3,
            Status::Skip,
            format!(
                "{} reserved; no estimate: the kernel release or image size is unknown",
                figure(reserved)
            ),
            WHY_SIZE,
        )
        .fix("include proc/sys/kernel/osrelease, proc/iomem and boot/ in the captured tree");
    };
    if let Some(why) = over_limit("the estimate", estimate.total_bytes) {
        return check(
            3,
            Status::Warn,
            format!("{} reserved; {why}", figure(reserved)),
            WHY_SIZE,
        )
        .fix(
            "check the sizes of the kernel image, /proc/modules and the capture initrd in the tree",
        );
    }
    let mut details = vec![format!(
        "estimate {} = kernel {} ({}) + modules {} (all loaded, /proc/modules) + initrd {} × {} ({}) + runtime {}",
        figure(estimate.total_bytes),
        figure(estimate.kernel_bytes),
        estimate.kernel_source,
        figure(estimate.modules_bytes),
        figure(estimate.initrd_bytes),
        estimate.initrd_factor,
        estimate.initrd_source,
        figure(estimate.runtime_bytes),
    )];
    let mut need = estimate.total_bytes;
    let mut basis = format!("estimate {}", figure(estimate.total_bytes));
    let mut other_release = None;
    if let Some(calibrated) = &cx.snap.calibrated {
        details.push(format!(
            "kdrill measured a {} minimum ({})",
            figure(calibrated.min_bytes),
            calibrated.source
        ));
        details.extend(calibrated.notes.iter().cloned());
        // A measurement of this very kernel replaces the estimate; one of another release
        // only raises the bar.
        if calibrated.other_release.is_none() || calibrated.min_bytes > need {
            need = calibrated.min_bytes;
            basis = format!("measured minimum {}", figure(calibrated.min_bytes));
        }
        other_release = calibrated.other_release.clone();
    }
    // A calibration file that could not be used is named, even when no other one is usable.
    let unusable: Vec<(&str, &str)> = cx
        .snap
        .calibrations
        .iter()
        .filter_map(|f| Some((f.source.as_str(), f.parsed.as_ref().err()?.as_str())))
        .collect();
    if cx.snap.calibrated.is_none() {
        details.extend(
            unusable
                .iter()
                .map(|(source, err)| format!("ignored {source}: {err}")),
        );
    }
    if let Some(default) = mem.arch_default(cx) {
        details.push(format!(
            "x86_64 default for this RAM ({X86_64_DEFAULT}): {}",
            figure(default)
        ));
    }
    let release = cx.snap.release.as_deref().unwrap_or("this kernel");
    if reserved >= need {
        match other_release {
            None if !unusable.is_empty() => check(
                3,
                Status::Warn,
                format!(
                    "{} reserved ≥ {basis}, but calibration file {} was ignored: {}",
                    figure(reserved),
                    unusable[0].0,
                    unusable[0].1
                ),
                WHY_SIZE,
            )
            .details(details)
            .fix("fix or remove the ignored calibration file (`kdrill calibrate` writes one)"),
            None => check(
                3,
                Status::Pass,
                format!("{} reserved ≥ {basis}", figure(reserved)),
                WHY_SIZE,
            )
            .details(details),
            Some(measured_on) => check(
                3,
                Status::Warn,
                format!(
                    "{} reserved ≥ {basis}, but that was measured on {measured_on}, not {release}",
                    figure(reserved)
                ),
                WHY_SIZE,
            )
            .details(details)
            .fix(format!(
                "measure this kernel: `kdrill calibrate --kernel <its entry>` (a {release} entry in kernels/), and give the file to `kdrill check --calibration`"
            )),
        }
    } else {
        let (bytes, why) = mem.recommendation(cx);
        let want = format!("crashkernel={}", paste(bytes));
        details.push(recommended_detail(&want, &why));
        check(
            3,
            Status::Warn,
            format!("{} reserved < {basis}", figure(reserved)),
            WHY_SIZE,
        )
        .details(details)
        .fix(format!(
            "raise the reservation to {}, {why}: {}",
            paste(bytes),
            cx.set_crashkernel(&want, false)
        ))
    }
}

/// The detail line that says why a `crashkernel=` value is recommended.
fn recommended_detail(value: &str, why: &str) -> String {
    if why.contains("above the estimate") {
        format!("{value}: {why}; {ABOVE_THE_ESTIMATE}")
    } else {
        format!("{value}: {why}")
    }
}
