//! Checks 4 and 5: the capture kernel is loaded (and if it cannot be, why: a kernel without kexec
//! is the root cause of every capture check), the kdump service and its initrd are in order.

use crate::readiness::kdumpconf::Flavour;
use crate::readiness::snapshot;
use crate::readiness::source::Problem;
use crate::readiness::{check, unread, Check, Context, Status, Support};
use crate::spec::excerpt::excerpt;

const WHY_LOADED: &str =
    "a panic only jumps to a capture kernel that was loaded beforehand with `kexec -p`";
const WHY_SERVICE: &str = "the kdump service loads the capture kernel at every boot; without it the next reboot silently disarms kdump";

/// Check 4: `/sys/kernel/kexec_crash_loaded` = 1, and if not, what stops it.
pub fn loaded(cx: &Context) -> Check {
    let snap = cx.snap;
    let unit = cx.unit();
    let value = match &snap.kexec_crash_loaded {
        Ok(value) => value.trim().to_string(),
        Err(problem) => {
            if let Support::No(reason) = &cx.support {
                let built = match cx.shipped() {
                    Some(false) => {
                        format!("; {} was not built by {}", cx.release(), cx.family.name())
                    }
                    _ => String::new(),
                };
                return check(
                    4,
                    Status::Fail,
                    format!("this kernel cannot load a capture kernel: {reason}{built}"),
                    WHY_LOADED,
                )
                .fix(cx.kernel_without_dump_fix());
            }
            return check(
                4,
                Status::Skip,
                unread("/sys/kernel/kexec_crash_loaded", problem),
                WHY_LOADED,
            )
            .fix("run on the host, or include sys/kernel/kexec_crash_loaded in the captured tree");
        }
    };
    if value == "1" {
        return check(
            4,
            Status::Pass,
            "capture kernel loaded (/sys/kernel/kexec_crash_loaded = 1)",
            WHY_LOADED,
        );
    }
    if value != "0" {
        return check(
            4,
            Status::Skip,
            format!(
                "/sys/kernel/kexec_crash_loaded holds `{}`, not 0 or 1",
                excerpt(&value)
            ),
            WHY_LOADED,
        )
        .fix("read it on the host: `cat /sys/kernel/kexec_crash_loaded`");
    }
    let mut details = Vec::new();
    let mut fixes = Vec::new();
    if cx.mem.reserved() == Some(0) {
        details.push("no memory is reserved (see crashkernel-reserved)".to_string());
        fixes.push("reserve memory first (see crashkernel-param)".to_string());
    }
    match snap.tools.get("kexec").cloned().flatten() {
        Some(path) => details.push(format!("kexec: {path}")),
        None if snap.has_usr => {
            details.push("kexec is not installed".to_string());
            fixes.push(
                cx.family
                    .install("kexec-tools", "kexec-tools", "kexec-tools"),
            );
        }
        None => {}
    }
    let disabled = snap.sysctl("kernel.kexec_load_disabled");
    match disabled.as_deref() {
        Ok("1") => {
            details.push(
                "kernel.kexec_load_disabled = 1: no kexec load is possible until reboot"
                    .to_string(),
            );
            fixes.push("remove kernel.kexec_load_disabled=1 from /etc/sysctl.d (or set it only after the kdump service has loaded) and reboot".to_string());
        }
        Ok(value) => details.push(format!("kernel.kexec_load_disabled = {value}")),
        Err(Problem::Missing) => {}
        Err(problem) => details.push(unread("/proc/sys/kernel/kexec_load_disabled", problem)),
    }
    let lockdown = snap.lockdown.as_deref().ok().and_then(lockdown_mode);
    let secure_boot = snap
        .secure_boot
        .as_ref()
        .ok()
        .and_then(|bytes| bytes.get(4))
        .map(|b| *b == 1);
    let locked = lockdown.is_some_and(|mode| mode != "none") || secure_boot == Some(true);
    if let Some(mode) = lockdown {
        details.push(format!("kernel lockdown: {mode}"));
    }
    if secure_boot == Some(true) {
        details.push("Secure Boot is on".to_string());
    }
    let file_load = cx.config.as_ref().is_some_and(|c| {
        c.kexec_args
            .split_whitespace()
            .any(|a| a == "-s" || a == "--kexec-file-syscall")
    });
    if locked && !file_load {
        details.push("under lockdown / Secure Boot only kexec_file_load (`kexec -s`) with a signed kernel works".to_string());
        fixes.push(
            match cx.config.as_ref().map(|c| c.flavour) {
                Some(Flavour::KdumpTools) => {
                    "set KDUMP_KEXEC_ARGS=\"-s\" in /etc/default/kdump-tools"
                }
                Some(Flavour::Kdumpctl) => "set KEXEC_ARGS=\"-s\" in /etc/sysconfig/kdump",
                _ => "make the kdump service load with `kexec -s` (kexec_file_load)",
            }
            .to_string(),
        );
    }
    fixes.push(format!("start the service: `systemctl enable --now {unit}` (or `{}`), then check `journalctl -b -u {unit}`", cx.family.reload()));
    check(
        4,
        Status::Fail,
        "no capture kernel loaded (/sys/kernel/kexec_crash_loaded = 0)",
        WHY_LOADED,
    )
    .details(details)
    .fix(fixes.join("\n"))
}

/// The bracketed mode of /sys/kernel/security/lockdown: `none [integrity] confidentiality` → `integrity`.
pub fn lockdown_mode(text: &str) -> Option<&str> {
    let start = text.find('[')? + 1;
    let end = start + text[start..].find(']')?;
    Some(&text[start..end])
}

/// Check 5: the kdump unit is enabled and active, and its capture initrd exists and is newer than the kernel.
///
/// When a capture kernel is loaded right now, a crash today is still caught: gaps here only bite at the
/// next boot, so they are WARN rather than FAIL.
pub fn service(cx: &Context) -> Check {
    let snap = cx.snap;
    let unit = cx.unit();
    let loaded_now = snap
        .kexec_crash_loaded
        .as_deref()
        .is_ok_and(|v| v.trim() == "1");
    let broken = if loaded_now {
        Status::Warn
    } else {
        Status::Fail
    };
    let after_reboot = if loaded_now {
        " (a capture kernel is loaded now: a crash today is still caught, but the next boot may not load one)"
    } else {
        ""
    };
    let mut downgraded = false;
    let installed: Vec<&snapshot::Service> = snap
        .services
        .iter()
        .filter(|s| s.installed && snapshot::KDUMP_UNITS.contains(&s.unit.as_str()))
        .collect();
    let Some(service) = installed
        .iter()
        .find(|s| s.unit == unit)
        .or(installed.first())
        .copied()
    else {
        return check(
            5,
            broken,
            format!(
                "no kdump service installed (kdump-tools.service, kdump.service){after_reboot}"
            ),
            WHY_SERVICE,
        )
        .fix(format!(
            "{}, then `systemctl enable --now {unit}`",
            cx.family.install_kdump()
        ));
    };
    let name = service.unit.as_str();
    let mut parts: Vec<(Status, String)> = Vec::new();
    let mut fixes: Vec<String> = Vec::new();
    if let Some(config) = cx.config.as_ref().filter(|c| c.disabled) {
        parts.push((broken, format!("USE_KDUMP is not 1 in {}", config.path)));
        downgraded = loaded_now;
        fixes.push(format!("set USE_KDUMP=1 in {}", config.path));
    }
    match service.enabled.as_deref() {
        Some("enabled" | "enabled-runtime" | "static" | "alias" | "indirect" | "generated")
        | None => {}
        Some(state) => {
            parts.push((broken, format!("{name} is {state}")));
            downgraded = loaded_now;
            fixes.push(if state == "masked" {
                format!("`systemctl unmask {name}`")
            } else {
                format!("`systemctl enable {name}`")
            });
        }
    }
    if let Some(why) = &service.unanswered {
        parts.push((
            Status::Warn,
            format!("systemd did not answer for {name} ({why}); judged from its unit files"),
        ));
        fixes.push(format!(
            "find why `systemctl is-active {name}` hangs or fails (`systemctl status`, `journalctl -b`): a host whose systemd does not answer may not run its kdump service either"
        ));
    }
    match service.active.as_deref() {
        Some("active") => {}
        Some(state) => {
            parts.push((broken, format!("{name} is {state}")));
            downgraded = loaded_now;
            fixes.push(format!(
                "`systemctl restart {name}` and read `journalctl -b -u {name}`"
            ));
        }
        None => {}
    }
    let known = match (&service.enabled, &service.active) {
        (Some(enabled), Some(active)) => format!("{name}: {enabled}, {active}"),
        (Some(enabled), None) => format!(
            "{name}: {enabled} (active state not known here: {})",
            if service.unanswered.is_some() {
                "systemd did not answer"
            } else if snap.live {
                "systemd is not running"
            } else {
                "captured tree"
            }
        ),
        _ => format!("{name}: state unknown"),
    };

    let release = snap.release.as_deref().ok();
    let initrd = release.and_then(|r| {
        snapshot::capture_initrds(r)
            .into_iter()
            .find_map(|p| snap.file(&p).ok().map(|m| (p, m)))
    });
    let kernel = release.and_then(|r| snap.file(&snapshot::kernel_image(r)).ok());
    let initrd_text = match (&initrd, release) {
        (_, None) => {
            parts.push((
                Status::Skip,
                "the kernel release is unknown, so the capture initrd cannot be found".to_string(),
            ));
            "capture initrd: unknown".to_string()
        }
        (None, Some(release)) => {
            parts.push((broken, "no capture initrd".to_string()));
            downgraded = loaded_now;
            fixes.push(format!("build it: `{}`", cx.family.rebuild_initrd(release)));
            "capture initrd: none found".to_string()
        }
        (Some((path, meta)), Some(release)) => match kernel {
            Some(kernel) if meta.mtime < kernel.mtime => {
                parts.push((
                    Status::Warn,
                    format!("{path} is older than {}", snapshot::kernel_image(release)),
                ));
                fixes.push(format!(
                    "rebuild it: `{}`",
                    cx.family.rebuild_initrd(release)
                ));
                format!("capture initrd {path} older than the kernel image")
            }
            Some(_) => format!("capture initrd {path}"),
            None => format!("capture initrd {path} (kernel image not found to compare ages)"),
        },
    };
    let status = parts.iter().map(|(s, _)| *s).max().unwrap_or(Status::Pass);
    let seen = if parts.is_empty() {
        format!("{known}; {initrd_text}")
    } else {
        let gaps: Vec<&str> = parts.iter().map(|(_, text)| text.as_str()).collect();
        let tail = if downgraded { after_reboot } else { "" };
        format!("{}{tail}", gaps.join("; "))
    };
    let mut details = vec![known, initrd_text];
    if let Some(path) = release.map(snapshot::capture_initrds) {
        details.push(format!("capture initrds looked for: {}", path.join(", ")));
    }
    check(5, status, seen, WHY_SERVICE)
        .details(details)
        .fix(fixes.join("\n"))
}
