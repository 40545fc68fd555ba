//! The kdump units' states, for `gather`: `systemctl is-enabled/is-active` on a live host booted
//! with systemd (under a deadline), else the unit files and `.wants` links in the root.

use std::path::Path;
use std::time::Duration;

use crate::readiness::snapshot::{self, PathUnit, Service};
use crate::readiness::source::{Problem, Root};

/// The kdump units: `systemctl` on a live host booted with systemd, else the unit files and `.wants` links.
pub(crate) fn services(root: &Root) -> Vec<Service> {
    let systemd = root.is_live() && root.exists("/run/systemd/system");
    snapshot::KDUMP_UNITS
        .iter()
        .chain(snapshot::NOTIFY_UNITS)
        .map(|unit| {
            if systemd {
                match systemctl("is-enabled", unit)
                    .and_then(|enabled| Ok((enabled, systemctl("is-active", unit)?)))
                {
                    Ok((enabled, active)) => {
                        let installed = !enabled.is_empty() && enabled != "not-found";
                        return Service {
                            unit: unit.to_string(),
                            installed,
                            enabled: Some(enabled),
                            active: Some(active),
                            unanswered: None,
                        };
                    }
                    Err(why) => {
                        return Service {
                            unanswered: Some(why),
                            ..unit_files(root, unit)
                        }
                    }
                }
            }
            unit_files(root, unit)
        })
        .collect()
}

/// `.path` units under /etc/systemd/system (where an operator's own units live).
pub(crate) fn path_units(root: &Root) -> Vec<PathUnit> {
    let dir = "/etc/systemd/system";
    let names = root.list(dir).unwrap_or_default();
    let wants: Vec<&String> = names.iter().filter(|n| n.ends_with(".wants")).collect();
    names
        .iter()
        .filter(|name| name.ends_with(".path"))
        .map(|name| PathUnit {
            name: name.clone(),
            text: root.text(&format!("{dir}/{name}")),
            enabled: wants
                .iter()
                .any(|w| root.entry_exists(&format!("{dir}/{w}/{name}"))),
        })
        .collect()
}

/// How long `systemctl is-enabled`/`is-active` may take: instant on a healthy host; a systemd
/// that does not answer in this time is itself a finding on a host that must survive a crash.
const SYSTEMCTL_DEADLINE: Duration = Duration::from_secs(10);

fn systemctl(verb: &str, unit: &str) -> Result<String, String> {
    ask_systemctl(Path::new("systemctl"), verb, unit, SYSTEMCTL_DEADLINE)
}

/// systemd's one-word answer, or why there is none (cannot run, timed out, interrupted).
fn ask_systemctl(
    program: &Path,
    verb: &str,
    unit: &str,
    limit: Duration,
) -> Result<String, String> {
    let mut command = std::process::Command::new(program);
    command.args([verb, unit]);
    let out = crate::host::process::run(&mut command, limit).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    // `is-enabled` of an unknown unit prints nothing on stdout and "No such file" on stderr.
    if text.is_empty() && String::from_utf8_lossy(&out.stderr).contains("No such file") {
        return Ok("not-found".to_string());
    }
    Ok(text)
}

fn unit_files(root: &Root, unit: &str) -> Service {
    let etc = format!("/etc/systemd/system/{unit}");
    let masked = root
        .read_link(&etc)
        .is_ok_and(|target| target == "/dev/null");
    let installed = snapshot::UNIT_DIRS
        .iter()
        .any(|dir| root.exists(&format!("{dir}/{unit}")));
    // A folder that exists but cannot be listed (a symlink loop, no permission) leaves the state
    // unknown, never "disabled"; `gather` records the problem for the report.
    let listing = match root.list("/etc/systemd/system") {
        Err(Problem::Missing) => Some(Vec::new()),
        other => other.ok(),
    };
    let wanted = listing.as_ref().map(|names| {
        names
            .iter()
            .filter(|name| name.ends_with(".wants"))
            .any(|wants| root.entry_exists(&format!("/etc/systemd/system/{wants}/{unit}")))
    });
    let enabled = if masked {
        Some("masked")
    } else {
        match wanted {
            Some(true) => Some("enabled"),
            Some(false) if installed => Some("disabled"),
            Some(false) => Some("not-found"),
            None => None,
        }
    };
    Service {
        unit: unit.to_string(),
        installed: installed || masked,
        enabled: enabled.map(str::to_string),
        active: None,
        unanswered: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, body: &str) -> std::path::PathBuf {
        let path = dir.join("systemctl");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// A wedged systemd (here a `systemctl` that never answers) costs `kdrill check` the
    /// deadline, not forever, and the reason names the command.
    #[test]
    fn a_systemctl_that_never_answers_is_a_reason_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let hung = script(dir.path(), "exec sleep 60");
        let started = std::time::Instant::now();
        let err = ask_systemctl(
            &hung,
            "is-active",
            "kdump-tools.service",
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "waited {:?}",
            started.elapsed()
        );
        assert!(err.contains("did not finish within"), "{err}");
        assert!(err.contains("is-active kdump-tools.service"), "{err}");
        let quick = script(dir.path(), "echo active");
        assert_eq!(
            ask_systemctl(&quick, "is-active", "x", Duration::from_secs(10)).as_deref(),
            Ok("active")
        );
        let missing = script(
            dir.path(),
            "echo 'Failed to get unit file state: No such file' >&2",
        );
        assert_eq!(
            ask_systemctl(&missing, "is-enabled", "x", Duration::from_secs(10)).as_deref(),
            Ok("not-found")
        );
    }
}
