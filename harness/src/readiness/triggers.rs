//! Checks 6–9, all sysctls: the SysRq crash key, NMIs that panic, oops and hangs that panic, and what
//! happens after the dump (reboot, notification).

use crate::readiness::distro::{set_sysctl, Family};
use crate::readiness::kdumpconf::{Flavour, Target};
use crate::readiness::snapshot::sysctl_path;
use crate::readiness::source::Problem;
use crate::readiness::{check, unread, Check, Context, Status};
use crate::spec::cmdline::cmdline_words;

/// `SYSRQ_ENABLE_DUMP`: the mask bit the crash key (`c`) needs.
const SYSRQ_DUMP: i64 = 0x8;

const WHY_SYSRQ: &str =
    "SysRq-c is how an operator forces a dump of a host that hangs without panicking";
const WHY_NMI: &str = "an NMI from the BMC or hypervisor is the last way into a hard-hung host; unless it panics, it only logs \"Uhhuh. NMI received\"";
const WHY_OOPS: &str = "an oops or a hang that does not panic never reaches kdump: no dump, and the host runs on in a damaged state";
const WHY_AFTER: &str =
    "after a dump the host must come back by itself, and someone must learn that a dump is waiting";

/// A numeric sysctl, or why it could not be read.
enum Value {
    Num(i64),
    Absent,
    Bad(String),
}

fn value(cx: &Context, name: &str) -> Value {
    match cx.snap.sysctl(name) {
        Ok(text) => match text.parse::<i64>() {
            Ok(n) => Value::Num(n),
            Err(_) => Value::Bad(format!(
                "{} holds `{}`, not a number",
                sysctl_path(name),
                crate::spec::excerpt::excerpt(&text)
            )),
        },
        Err(Problem::Missing) => Value::Absent,
        Err(problem) => Value::Bad(unread(&sysctl_path(name), &problem)),
    }
}

fn shown(cx: &Context, name: &str) -> String {
    match value(cx, name) {
        Value::Num(n) => format!("{name} = {n}"),
        Value::Absent => format!("{name}: absent"),
        Value::Bad(why) => why,
    }
}

/// Check 6: `kernel.sysrq` permits the crash key; which routes would work.
pub fn sysrq(cx: &Context) -> Check {
    let words = cx
        .snap
        .cmdline
        .as_deref()
        .map(cmdline_words)
        .unwrap_or_default();
    let always = words
        .iter()
        .any(|w| w == "sysrq_always_enabled" || w == "sysrq_always_enabled=1");
    let serial = words
        .iter()
        .filter_map(|w| w.strip_prefix("console="))
        .find(|c| c.starts_with("ttyS") || c.starts_with("ttyAMA"));
    let serial = serial.map(|c| c.split(',').next().unwrap_or(c).to_string());
    let routes = |allowed: bool| {
        let mut routes =
            vec!["`echo c > /proc/sysrq-trigger` as root (always, whatever the mask)".to_string()];
        if allowed {
            routes.push("keyboard Alt+SysRq+c on a local console".to_string());
            match &serial {
                Some(tty) => routes.push(format!("serial break then `c` on {tty}")),
                None => routes.push("serial: no serial console on the command line".to_string()),
            }
        }
        routes
    };
    let n = match value(cx, "kernel.sysrq") {
        Value::Num(n) => n,
        Value::Absent => {
            let built_without = cx.kconfig("CONFIG_MAGIC_SYSRQ") == Some("n");
            if built_without || cx.snap.live {
                let why = if built_without {
                    format!("CONFIG_MAGIC_SYSRQ is not set in {}", cx.kconfig_path())
                } else {
                    "no /proc/sys/kernel/sysrq".to_string()
                };
                return check(6, Status::Warn, format!("this kernel has no SysRq ({why}): no key or /proc/sysrq-trigger can force a dump"), WHY_SYSRQ)
                    .fix("rely on an NMI route (see nmi-panic), or run a kernel built with CONFIG_MAGIC_SYSRQ");
            }
            return check(6, Status::Skip, "/proc/sys/kernel/sysrq missing", WHY_SYSRQ)
                .fix("include proc/sys/kernel/sysrq in the captured tree");
        }
        Value::Bad(why) => {
            return check(6, Status::Skip, why, WHY_SYSRQ)
                .fix("read the value on the host: `sysctl kernel.sysrq`")
        }
    };
    let allowed = always || n == 1 || (n > 1 && n & SYSRQ_DUMP != 0);
    let mask = format!("kernel.sysrq = {n} ({n:#x})");
    if allowed {
        let seen = if always {
            format!("{mask}, sysrq_always_enabled on the command line")
        } else {
            format!("{mask} permits the crash key")
        };
        return check(6, Status::Pass, seen, WHY_SYSRQ).details(routes(true));
    }
    let suggested = if n == 0 { SYSRQ_DUMP } else { n | SYSRQ_DUMP };
    let seen = if n == 0 {
        format!("{mask}: SysRq disabled, keyboard and serial crash keys ignored")
    } else {
        format!("{mask} lacks bit 0x8: keyboard and serial crash keys ignored")
    };
    check(6, Status::Warn, seen, WHY_SYSRQ)
        .details(routes(false))
        .fix(format!(
            "{} (bit 0x8 allows the crash key; 1 allows every key)",
            set_sysctl("kernel.sysrq", &suggested.to_string())
        ))
}

/// Check 7: an external NMI panics (`unknown_nmi_panic`, `panic_on_unrecovered_nmi`), plus `panic_on_io_nmi` and the NMI watchdog.
pub fn nmi(cx: &Context) -> Check {
    let names = [
        "kernel.unknown_nmi_panic",
        "kernel.panic_on_unrecovered_nmi",
        "kernel.panic_on_io_nmi",
        "kernel.nmi_watchdog",
    ];
    let details: Vec<String> = names.iter().map(|n| shown(cx, n)).collect();
    let (unknown, unrecovered) = (value(cx, names[0]), value(cx, names[1]));
    let on = |v: &Value| matches!(v, Value::Num(n) if *n != 0);
    if on(&unknown) || on(&unrecovered) {
        return check(7, Status::Pass, "an external NMI panics (BMC NMI button, `ipmitool chassis power diag`, `virsh inject-nmi`)", WHY_NMI)
            .details(details);
    }
    match (&unknown, &unrecovered) {
        (Value::Absent, Value::Absent) => {
            let arch = cx.snap.arch.as_deref().unwrap_or("");
            if !arch.is_empty() && !["x86_64", "i386", "i686"].contains(&arch) {
                let seen = format!("not applicable on {arch}: the NMI panic sysctls are x86 only");
                return check(7, Status::Info, seen, WHY_NMI).details(details);
            }
            return check(
                7,
                Status::Skip,
                "no NMI panic sysctls on this kernel or architecture (or not captured)",
                WHY_NMI,
            )
            .details(details)
            .fix("include proc/sys/kernel in the captured tree");
        }
        (Value::Bad(why), _) | (_, Value::Bad(why)) => {
            return check(7, Status::Skip, why.clone(), WHY_NMI)
                .details(details)
                .fix("read the values on the host: `sysctl -a | grep nmi`");
        }
        _ => {}
    }
    check(7, Status::Warn, "an external NMI does not panic: kernel.unknown_nmi_panic = 0, kernel.panic_on_unrecovered_nmi = 0", WHY_NMI)
        .details(details)
        .fix(set_sysctl("kernel.unknown_nmi_panic", "1"))
}

/// Check 8: oops and hangs panic. A legitimate choice either way, so WARN with the trade-off, never FAIL.
pub fn oops_hang(cx: &Context) -> Check {
    let hangs = [
        "kernel.softlockup_panic",
        "kernel.hardlockup_panic",
        "kernel.hung_task_panic",
    ];
    let mut details: Vec<String> = std::iter::once("kernel.panic_on_oops")
        .chain(hangs)
        .map(|n| shown(cx, n))
        .collect();
    let oops = value(cx, "kernel.panic_on_oops");
    let hang_on: Vec<&str> = hangs
        .iter()
        .copied()
        .filter(|n| matches!(value(cx, n), Value::Num(v) if v != 0))
        .collect();
    if matches!(value(cx, "kernel.hardlockup_panic"), Value::Num(v) if v != 0)
        && matches!(value(cx, "kernel.nmi_watchdog"), Value::Num(0))
    {
        details.push(
            "kernel.hardlockup_panic has no effect while kernel.nmi_watchdog = 0".to_string(),
        );
    }
    let mut gaps = Vec::new();
    let mut fixes = Vec::new();
    match oops {
        Value::Num(0) => {
            gaps.push("an oops does not panic (kernel.panic_on_oops = 0)");
            fixes.push(format!(
                "{} — trade-off: every oops then reboots the host through kdump, instead of killing one task and running on possibly corrupted",
                set_sysctl("kernel.panic_on_oops", "1")
            ));
        }
        Value::Num(_) => {}
        Value::Absent => {
            return check(
                8,
                Status::Skip,
                "/proc/sys/kernel/panic_on_oops missing",
                WHY_OOPS,
            )
            .details(details)
            .fix("include proc/sys/kernel in the captured tree")
        }
        Value::Bad(why) => {
            return check(8, Status::Skip, why, WHY_OOPS)
                .details(details)
                .fix("read the values on the host: `sysctl -a | grep panic`")
        }
    }
    if hang_on.is_empty() {
        gaps.push("no lockup or hung task panics");
        fixes.push(format!(
            "{} (and/or kernel.hardlockup_panic=1, kernel.hung_task_panic=1) — trade-off: a long stall, even one that would have recovered, reboots the host",
            set_sysctl("kernel.softlockup_panic", "1")
        ));
    }
    if gaps.is_empty() {
        let seen = format!("an oops panics; so do: {}", hang_on.join(", "));
        return check(8, Status::Pass, seen, WHY_OOPS).details(details);
    }
    check(8, Status::Warn, gaps.join("; "), WHY_OOPS)
        .details(details)
        .fix(fixes.join("\n"))
}

/// Check 9: `kernel.panic` brings the host back, the capture kernel reboots on failure, and a notification exists.
pub fn aftermath(cx: &Context) -> Check {
    let mut parts: Vec<(Status, String)> = Vec::new();
    let mut fixes = Vec::new();
    let mut details = Vec::new();
    match value(cx, "kernel.panic") {
        Value::Num(0) => {
            parts.push((Status::Warn, "kernel.panic = 0: a panic without a capture kernel hangs the host until someone power-cycles it".to_string()));
            fixes.push(set_sysctl("kernel.panic", "10"));
        }
        Value::Num(n) if n < 0 => {
            details.push(format!("kernel.panic = {n}: reboots at once after a panic"))
        }
        Value::Num(n) => details.push(format!("kernel.panic = {n}: reboots {n} s after a panic")),
        Value::Absent => parts.push((Status::Skip, "/proc/sys/kernel/panic missing".to_string())),
        Value::Bad(why) => parts.push((Status::Skip, why)),
    }
    if let Some(cmdline) = &cx.capture_cmdline {
        let panic = cmdline_words(cmdline)
            .into_iter()
            .find(|w| w.starts_with("panic="));
        match panic {
            Some(word) => details.push(format!(
                "capture kernel has {word}: a failed capture reboots"
            )),
            None => {
                parts.push((
                    Status::Warn,
                    "the capture kernel has no panic=: a capture that fails hangs forever"
                        .to_string(),
                ));
                fixes.push(format!(
                    "add `panic=10` to the capture command line ({})",
                    append_var(cx)
                ));
            }
        }
    }
    let mut notify: Vec<String> = cx
        .config
        .as_ref()
        .map(|c| c.notify.clone())
        .unwrap_or_default();
    for service in cx.snap.services.iter().filter(|s| s.installed) {
        if ["abrt-vmcore.service", "apport.service"].contains(&service.unit.as_str())
            && service.enabled.as_deref() == Some("enabled")
        {
            notify.push(format!("{} enabled (reports new dumps)", service.unit));
        }
    }
    let dump_dir = match cx.config.as_ref().map(|c| &c.target) {
        Some(Target::Local(dir)) => dir.trim_end_matches('/').to_string(),
        Some(Target::Remote { .. }) => String::new(),
        None => "/var/crash".to_string(),
    };
    for unit in cx
        .snap
        .path_units
        .iter()
        .filter(|u| u.enabled && !dump_dir.is_empty())
    {
        let Ok(text) = &unit.text else { continue };
        let watches = text
            .lines()
            .filter_map(|l| l.trim().split_once('='))
            .any(|(key, value)| {
                [
                    "PathChanged",
                    "PathModified",
                    "DirectoryNotEmpty",
                    "PathExistsGlob",
                ]
                .contains(&key.trim())
                    && value.trim().trim_end_matches('/').starts_with(&dump_dir)
            });
        if watches {
            notify.push(format!("{} watches {dump_dir}", unit.name));
        }
    }
    if notify.is_empty() {
        parts.push((
            Status::Warn,
            "nothing announces a new dump: the host reboots silently".to_string(),
        ));
        fixes.push(notify_fix(cx));
    } else {
        details.push(format!("after a dump: {}", notify.join(", ")));
    }
    let status = parts.iter().map(|(s, _)| *s).max().unwrap_or(Status::Pass);
    let seen = if parts.is_empty() {
        format!("reboots after a panic; notified by {}", notify.join(", "))
    } else {
        super::joined(&parts)
    };
    check(9, status, seen, WHY_AFTER)
        .details(details)
        .fix(fixes.join("\n"))
}

fn append_var(cx: &Context) -> &'static str {
    match cx.config.as_ref().map(|c| c.flavour) {
        Some(Flavour::KdumpTools) => "KDUMP_CMDLINE_APPEND in /etc/default/kdump-tools",
        Some(Flavour::Kdumpctl | Flavour::Suse) => {
            "KDUMP_COMMANDLINE_APPEND in /etc/sysconfig/kdump"
        }
        None => "the kdump service's config",
    }
}

fn notify_fix(cx: &Context) -> String {
    match (cx.config.as_ref().map(|c| c.flavour), cx.family) {
        (Some(Flavour::Kdumpctl), _) | (None, Family::Rhel) => {
            "add `kdump_post /usr/local/sbin/kdump-notify` (a script that alerts you) to /etc/kdump.conf, or enable abrt-vmcore.service".to_string()
        }
        (Some(Flavour::Suse), _) | (None, Family::Suse) => "set KDUMP_NOTIFICATION_TO=\"ops@example.com\" in /etc/sysconfig/kdump".to_string(),
        _ => "have something alert you when a dump appears: an enabled systemd .path unit in /etc/systemd/system with `PathChanged=/var/crash` that starts your notifier, your monitoring watching /var/crash, or apport on Ubuntu".to_string(),
    }
}
