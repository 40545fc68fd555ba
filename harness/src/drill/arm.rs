//! Arming a drill and crashing: the preflight (`check` must not say NOT READY; the dump must land
//! in a local folder; systemd must be there to collect), the operator's confirmation, the state
//! file, the collect unit, the marker in the kernel log, then the route.

use std::io::BufRead;
use std::path::Path;
use std::time::Duration;

use crate::drill::route::Route;
use crate::drill::{io, now_unix, write_durably, DrillError};
use crate::host::clock::Civil;
use crate::readiness::kdumpconf::Target;
use crate::readiness::lastdrill::{self, Armed, ARMED, DRILL_DIR};
use crate::readiness::source::Root;
use crate::readiness::{self, report, Context, Verdict};

/// The collect unit as the package ships it (`/usr/bin/kdrill`); a kdrill run from elsewhere
/// writes it to /etc/systemd/system with its own path.
pub const COLLECT_UNIT: &str = include_str!("../../../dist/systemd/kdrill-drill-collect.service");
pub const UNIT_NAME: &str = "kdrill-drill-collect.service";
const PACKAGED_UNITS: [&str; 2] = ["/usr/lib/systemd/system", "/lib/systemd/system"];
const LOCAL_UNITS: &str = "/etc/systemd/system";

/// What the operator asked for.
#[derive(Debug, Clone)]
pub struct Plan {
    pub route: Route,
    /// Skip the typed hostname.
    pub yes: bool,
    /// Seconds between arming and the crash (Ctrl-C in between disarms).
    pub delay: u64,
    pub notify: Option<String>,
}

/// Everything the preflight found, before anything is written.
pub struct Preflight {
    pub hostname: String,
    pub release: String,
    pub service: String,
    pub dump_dir: String,
    /// Ready with warnings: the check's verdict line.
    pub verdict: String,
}

/// Runs `check` on this host and refuses unless a crash now would leave a dump kdrill can read back.
pub fn preflight(root: &Root) -> Result<Preflight, DrillError> {
    if let Ok(armed) = std::fs::read_to_string(root.base().join(ARMED.trim_start_matches('/'))) {
        return Err(DrillError::Armed {
            id: armed.trim().to_string(),
            path: ARMED.to_string(),
        });
    }
    let snap = readiness::gather(root).map_err(|e| DrillError::BadState {
        path: root.base().display().to_string(),
        why: e.to_string(),
    })?;
    let report = readiness::evaluate(&snap);
    if report.verdict == Verdict::NotReady {
        return Err(DrillError::NotReady {
            fixes: report::table(&report, false),
        });
    }
    let cx = Context::new(&snap);
    let config = cx.config.as_ref().ok_or(DrillError::NoService)?;
    let dump_dir = match &config.target {
        Target::Local(dir) => dir.clone(),
        Target::Remote { kind, place } => {
            return Err(DrillError::RemoteTarget {
                place: format!("{kind} {place}"),
            })
        }
    };
    if root.is_live() && !Path::new("/run/systemd/system").is_dir() {
        return Err(DrillError::NoSystemd);
    }
    Ok(Preflight {
        hostname: report
            .hostname
            .clone()
            .unwrap_or_else(|| "this host".into()),
        release: snap.release.clone().unwrap_or_default(),
        service: config.flavour.unit().to_string(),
        dump_dir,
        verdict: report::verdict_line(&report, false).trim().to_string(),
    })
}

/// Asks the operator to type the host's name.
pub fn confirm(pre: &Preflight, input: &mut dyn BufRead) -> Result<(), DrillError> {
    eprint!("type this host's name ({}) to crash it now: ", pre.hostname);
    let mut line = String::new();
    input
        .read_line(&mut line)
        .map_err(io("read the answer from", Path::new("stdin")))?;
    let given = line.trim().to_string();
    if given != pre.hostname {
        return Err(DrillError::NotConfirmed {
            given,
            host: pre.hostname.clone(),
        });
    }
    Ok(())
}

/// A drill id: the arming time and four hex digits.
pub fn new_id(now: i64, salt: u32) -> String {
    format!("{}-{:04x}", Civil::from_unix(now).stamp(), salt & 0xffff)
}

/// Writes the armed state and the collect unit; returns the state.
pub fn arm(root: &Root, pre: &Preflight, plan: &Plan) -> Result<Armed, DrillError> {
    let now = now_unix();
    let salt = std::process::id()
        ^ (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos()));
    let id = new_id(now, salt);
    let mut before = root.list(&pre.dump_dir).unwrap_or_default();
    before.sort();
    let paths = lastdrill::fingerprint_paths(root, &pre.release);
    let armed = Armed {
        marker: format!(
            "kdrill drill {id}: crashing this host on purpose by {}",
            plan.route.word()
        ),
        id,
        route: plan.route.word().to_string(),
        armed_unix: now,
        crash_unix: None,
        hostname: Some(pre.hostname.clone()),
        kernel_release: pre.release.clone(),
        service: pre.service.clone(),
        dump_dir: pre.dump_dir.clone(),
        before,
        fingerprints: lastdrill::fingerprints(root, &paths),
        notify: plan.notify.clone(),
    };
    save_state(root, &armed)?;
    let at = |p: &str| root.base().join(p.trim_start_matches('/'));
    write_durably(&at(ARMED), format!("{}\n", armed.id).as_bytes())?;
    install_unit(root)?;
    Ok(armed)
}

/// `<DRILL_DIR>/<id>.armed.json`.
pub fn state_path(root: &Root, id: &str) -> std::path::PathBuf {
    root.base()
        .join(DRILL_DIR.trim_start_matches('/'))
        .join(format!("{id}.armed.json"))
}

pub fn save_state(root: &Root, armed: &Armed) -> Result<(), DrillError> {
    let text = serde_json::to_string_pretty(armed).unwrap_or_default();
    write_durably(&state_path(root, &armed.id), text.as_bytes())
}

/// Removes the armed state (a drill aborted or one that did not crash).
pub fn disarm(root: &Root, id: &str) {
    let _ = std::fs::remove_file(root.base().join(ARMED.trim_start_matches('/')));
    let _ = std::fs::remove_file(state_path(root, id));
}

/// The unit text for a kdrill at `exe` (the package's unit names /usr/bin/kdrill).
pub fn unit_for(exe: &str) -> String {
    COLLECT_UNIT.replace("/usr/bin/kdrill", exe)
}

/// Enables the packaged collect unit, or writes one naming this kdrill, then reloads systemd.
fn install_unit(root: &Root) -> Result<(), DrillError> {
    let at = |p: &str| root.base().join(p.trim_start_matches('/'));
    let packaged = PACKAGED_UNITS
        .iter()
        .map(|dir| format!("{dir}/{UNIT_NAME}"))
        .find(|path| at(path).is_file());
    let unit = match packaged {
        Some(path) => path,
        None => {
            let exe =
                std::env::current_exe().map_err(io("find the running", Path::new("kdrill")))?;
            let path = format!("{LOCAL_UNITS}/{UNIT_NAME}");
            write_durably(&at(&path), unit_for(&exe.display().to_string()).as_bytes())?;
            path
        }
    };
    let wants = at(&format!(
        "{LOCAL_UNITS}/multi-user.target.wants/{UNIT_NAME}"
    ));
    if std::fs::symlink_metadata(&wants).is_err() {
        std::fs::create_dir_all(wants.parent().unwrap_or(Path::new("/")))
            .map_err(io("create", &wants))?;
        std::os::unix::fs::symlink(&unit, &wants).map_err(io("link", &wants))?;
    }
    if root.is_live() {
        let mut reload = std::process::Command::new("systemctl");
        reload.arg("daemon-reload");
        // The link is what enables the unit at the next boot; a reload that fails is only noted.
        if let Err(e) = crate::host::process::run(&mut reload, Duration::from_secs(60)) {
            eprintln!("kdrill: systemctl daemon-reload: {e} (the unit is linked; it runs at the next boot)");
        }
    }
    Ok(())
}

/// Waits `delay` seconds (Ctrl-C disarms), writes the marker to the kernel log, records the crash
/// time, flushes the disks and crashes. Returns only if the host did not crash.
pub fn crash(root: &Root, mut armed: Armed, route: Route, delay: u64) -> DrillError {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone());
    let _ = signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone());
    for left in (1..=delay).rev() {
        eprintln!("kdrill: crashing in {left} s (Ctrl-C disarms the drill)");
        std::thread::sleep(Duration::from_secs(1));
        if stop.load(std::sync::atomic::Ordering::SeqCst) {
            disarm(root, &armed.id);
            return DrillError::DidNotCrash {
                route: route.word().into(),
                why: "interrupted before the crash".into(),
            };
        }
    }
    armed.crash_unix = Some(now_unix());
    if let Err(e) = save_state(root, &armed) {
        disarm(root, &armed.id);
        return e;
    }
    eprintln!("kdrill: {}", armed.marker);
    // Priority 2 (critical): the line reaches the log and the consoles.
    let kmsg = format!("<2>{}\n", armed.marker);
    if let Err(e) = std::fs::write("/dev/kmsg", kmsg) {
        disarm(root, &armed.id);
        return DrillError::DidNotCrash {
            route: route.word().into(),
            why: format!("cannot write the marker to /dev/kmsg: {e}"),
        };
    }
    crate::host::atomic::flush_all();
    let (file, word) = route.trigger();
    let why = match std::fs::write(file, word) {
        Ok(()) => {
            std::thread::sleep(Duration::from_secs(30));
            format!("{file} took `{word}` and the host still runs 30 s later")
        }
        Err(e) => format!("cannot write `{word}` to {file}: {e}"),
    };
    disarm(root, &armed.id);
    DrillError::DidNotCrash {
        route: route.word().into(),
        why,
    }
}

/// The whole drill from the command line: preflight, confirmation, arm, crash.
pub fn run(root: &Root, plan: &Plan) -> Result<std::convert::Infallible, DrillError> {
    if root.is_live() && unsafe { libc::geteuid() } != 0 {
        return Err(DrillError::NotRoot);
    }
    let pre = preflight(root)?;
    eprintln!(
        "kdrill: {} ({}): {}; the dump goes to {} by {}",
        pre.hostname, pre.release, pre.verdict, pre.dump_dir, pre.service
    );
    eprintln!(
        "kdrill: this host will crash now by {} and reboot through kdump; after the reboot `kdrill drill --collect` checks the dump",
        plan.route.word()
    );
    if !plan.yes {
        confirm(&pre, &mut std::io::stdin().lock())?;
    }
    let armed = arm(root, &pre, plan)?;
    eprintln!(
        "kdrill: armed drill {} ({})",
        armed.id,
        state_path(root, &armed.id).display()
    );
    Err(crash(root, armed, plan.route, plan.delay))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_and_the_unit_names_this_kdrill() {
        assert_eq!(new_id(1_796_000_000, 0x1_3f2a), "20261130T005320Z-3f2a");
        let unit = unit_for("/opt/kdrill/bin/kdrill");
        assert!(
            unit.contains("ExecStart=/opt/kdrill/bin/kdrill drill --collect"),
            "{unit}"
        );
        assert!(unit.contains("ConditionPathExists=/var/lib/kdrill/drill/armed"));
    }

    fn preflight_db1() -> Preflight {
        Preflight {
            hostname: "db1".into(),
            release: "6.1.0".into(),
            service: "kdump-tools.service".into(),
            dump_dir: "/var/crash".into(),
            verdict: String::new(),
        }
    }

    #[test]
    fn a_wrong_hostname_arms_nothing() {
        let pre = preflight_db1();
        let err = confirm(&pre, &mut &b"db2\n"[..]).unwrap_err();
        assert!(
            err.to_string()
                .contains("\"db2\" is not this host's name \"db1\""),
            "{err}"
        );
        assert!(confirm(&pre, &mut &b"db1\n"[..]).is_ok());
    }

    #[test]
    fn arming_a_tree_writes_the_state_the_marker_and_the_unit() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("var/crash/202612010000")).unwrap();
        std::fs::create_dir_all(dir.path().join("etc/default")).unwrap();
        std::fs::write(dir.path().join("etc/default/kdump-tools"), "USE_KDUMP=1\n").unwrap();
        let root = Root::new(dir.path());
        let pre = preflight_db1();
        let plan = Plan {
            route: Route::Sysrq,
            yes: true,
            delay: 0,
            notify: Some("true".into()),
        };
        let armed = arm(&root, &pre, &plan).unwrap();
        assert_eq!(armed.before, ["202612010000"]);
        assert!(armed.fingerprints["/etc/default/kdump-tools"].starts_with("sha256:"));
        assert_eq!(armed.fingerprints["/etc/kdump.conf"], "absent");
        let id = std::fs::read_to_string(dir.path().join("var/lib/kdrill/drill/armed")).unwrap();
        assert_eq!(id.trim(), armed.id);
        let wants = dir
            .path()
            .join("etc/systemd/system/multi-user.target.wants")
            .join(UNIT_NAME);
        // The link names the unit as the host sees it, inside the root.
        let unit = std::fs::read_link(wants).unwrap();
        assert_eq!(unit, Path::new(LOCAL_UNITS).join(UNIT_NAME));
        let text =
            std::fs::read_to_string(dir.path().join("etc/systemd/system").join(UNIT_NAME)).unwrap();
        assert!(text.contains("drill --collect"), "{text}");
        // A second drill while this one is armed is refused before anything else.
        assert!(matches!(preflight(&root), Err(DrillError::Armed { .. })));
        disarm(&root, &armed.id);
        assert!(!state_path(&root, &armed.id).exists());
    }
}
