//! Files the checks could not use, named in the report (pure): every [`Problem`] other than a
//! missing file — binary content, a symlink loop, no permission, a read cap — that a check would
//! otherwise have judged as if the file were absent becomes a WARN on that check, naming the file
//! and why ("could not read /etc/default/kdump-tools: binary content (NUL bytes), not a text
//! file").

use crate::readiness::kdumpconf;
use crate::readiness::snapshot::{Snapshot, Unread};
use crate::readiness::source::{Got, Problem};
use crate::readiness::{Check, Status};

/// The checks that read the kdump configuration (and judge "no configuration" without it).
const CONFIG_CHECKS: [&str; 3] = ["kdump-service", "capture-cmdline", "dump-target"];

/// `could not read /etc/x: why`, the path said once.
pub(crate) fn could_not_read(path: &str, problem: &Problem) -> String {
    let why = match problem {
        Problem::Missing => "missing".to_string(),
        Problem::Unreadable(why) => why.clone(),
        Problem::Odd(why) => why
            .strip_prefix(path)
            .map(|rest| rest.trim_start_matches([':', ' ']).to_string())
            .unwrap_or_else(|| why.clone()),
    };
    format!("could not read {path}: {why}")
}

/// Every problem to name: the snapshot's files the checks read as optional, and what `gather`
/// recorded ([`Snapshot::unread`]).
pub(crate) fn problems(snap: &Snapshot) -> Vec<Unread> {
    let mut found = Vec::new();
    let mut add = |path: &str, got: &Got<String>, checks: &[&'static str]| {
        if let Err(problem) = got {
            if *problem != Problem::Missing {
                found.extend(checks.iter().map(|check| Unread {
                    path: path.to_string(),
                    problem: problem.clone(),
                    check,
                }));
            }
        }
    };
    add(kdumpconf::KDUMP_TOOLS, &snap.kdump_tools, &CONFIG_CHECKS);
    add(kdumpconf::KDUMP_CONF, &snap.kdump_conf, &CONFIG_CHECKS);
    add(
        kdumpconf::SYSCONFIG_KDUMP,
        &snap.sysconfig_kdump,
        &CONFIG_CHECKS,
    );
    add("/proc/modules", &snap.modules, &["crashkernel-size"]);
    if let Some(target) = &snap.target {
        let path = format!("{}/kexec_cmd", target.path.trim_end_matches('/'));
        add(&path, &snap.kexec_cmd, &["capture-cmdline"]);
    }
    // The kernel image and initrds whose sizes and ages the estimate and check 5 use.
    for (path, meta) in &snap.files {
        let config = [
            kdumpconf::KDUMP_TOOLS,
            kdumpconf::KDUMP_CONF,
            kdumpconf::SYSCONFIG_KDUMP,
        ];
        if let (Err(problem), false) = (meta, config.contains(&path.as_str())) {
            if *problem != Problem::Missing {
                found.extend(["crashkernel-size", "kdump-service"].map(|check| Unread {
                    path: path.clone(),
                    problem: problem.clone(),
                    check,
                }));
            }
        }
    }
    found.extend(snap.unread.iter().cloned());
    found
}

/// Raises each check a problem belongs to to at least WARN, naming the file on its seen line
/// (unless the check already names that path), with a fix when it has none.
pub(crate) fn attach(checks: &mut [Check], snap: &Snapshot) {
    for unread in problems(snap) {
        let Some(check) = checks.iter_mut().find(|c| c.id == unread.check) else {
            continue;
        };
        let named = check.seen.contains(&unread.path)
            || check.details.iter().any(|d| d.contains(&unread.path));
        if named && check.status >= Status::Skip {
            continue;
        }
        let line = could_not_read(&unread.path, &unread.problem);
        check.status = check.status.max(Status::Warn);
        check.seen = format!("{}; {line}", check.seen);
        check
            .details
            .push(format!("{line}: judged as if it were absent"));
        let fix = format!(
            "make {} readable and whole (check it as root: its mode, a symlink loop, its content), or capture it again",
            unread.path
        );
        check.fix = Some(match check.fix.take() {
            Some(old) if !old.contains(&fix) => format!("{old}\n{fix}"),
            Some(old) => old,
            None => fix,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::evaluate;

    fn said(snap: &Snapshot, id: &str) -> Check {
        evaluate(snap)
            .checks
            .into_iter()
            .find(|c| c.id == id)
            .unwrap()
    }

    /// A kdump config read as non-root with mode 000 (the tests run as root, so the problem is
    /// built by hand): named on every check that reads the config, never "no configuration".
    #[test]
    fn an_unreadable_kdump_config_is_named_not_absent() {
        let mut snap = Snapshot::empty("/tree");
        snap.cmdline = Ok("ro crashkernel=256M".to_string());
        snap.kdump_tools = Err(Problem::Unreadable(
            "Permission denied (os error 13)".to_string(),
        ));
        for id in CONFIG_CHECKS {
            let check = said(&snap, id);
            assert!(check.status >= Status::Warn, "{id}: {check:?}");
            assert!(
                check.seen.contains(
                    "could not read /etc/default/kdump-tools: Permission denied (os error 13)"
                ),
                "{id}: {}",
                check.seen
            );
        }
        // A missing file is not a problem to name.
        snap.kdump_tools = Err(Problem::Missing);
        assert!(!said(&snap, "capture-cmdline")
            .seen
            .contains("could not read"));
    }

    /// A capture initrd behind a symlink loop was "no initrd found" in the estimate.
    #[test]
    fn an_unusable_initrd_is_named_on_the_estimate() {
        let mut snap = Snapshot::empty("/tree");
        let loop_ = Problem::Odd(
            "/var/lib/kdump/initrd.img: a symlink loop (over 40 links on the way)".into(),
        );
        snap.files
            .insert("/var/lib/kdump/initrd.img".into(), Err(loop_));
        snap.files
            .insert("/boot/initrd.img-6.1".into(), Err(Problem::Missing));
        let names: Vec<(String, &str)> = problems(&snap)
            .into_iter()
            .map(|u| (u.path, u.check))
            .collect();
        assert_eq!(
            names,
            [
                ("/var/lib/kdump/initrd.img".to_string(), "crashkernel-size"),
                ("/var/lib/kdump/initrd.img".to_string(), "kdump-service"),
            ]
        );
    }

    #[test]
    fn the_path_is_said_once() {
        let odd = Problem::Odd("/etc/x: binary content (NUL bytes), not a text file".into());
        assert_eq!(
            could_not_read("/etc/x", &odd),
            "could not read /etc/x: binary content (NUL bytes), not a text file"
        );
    }
}
