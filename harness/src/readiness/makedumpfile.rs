//! Check 15: the installed makedumpfile against the running kernel, by the one table of
//! makedumpfile releases (`images/userspace.yaml`, `spec::userspace`): each release's
//! `LATEST_VERSION` (above it makedumpfile says "The kernel version is not supported" and the
//! dump may be incomplete), the pairs known to write a wrong dump, and what kdrill measured.

use std::sync::LazyLock;

use crate::host::packages::version;
use crate::readiness::source::Problem;
use crate::readiness::{check, Check, Context, Status};
use crate::spec::userspace::{self, MakedumpfileRelease, UserspaceData};

const WHY: &str = "makedumpfile reads the crashed kernel's memory by that kernel's layout: a kernel newer than it knows may be filtered wrongly, leaving a dump that is incomplete or far too large";

/// Where a live host's version comes from when no package database answers.
pub const VERSION_COMMAND: &str = "makedumpfile -v";

/// kdrill's built-in table (the same data `verify` and `compat` use).
static DATA: LazyLock<Result<UserspaceData, String>> =
    LazyLock::new(|| userspace::load(None).map_err(|e| e.to_string()));

/// The version in `makedumpfile -v`'s first line: `makedumpfile: version 1.7.2 (released on …)`.
pub fn version_line(output: &str) -> Option<String> {
    let rest = output.lines().next()?.split("version").nth(1)?;
    let word = rest.split_whitespace().next()?;
    word.starts_with(|c: char| c.is_ascii_digit())
        .then(|| word.to_string())
}

/// The version of `makedumpfile-1.7.4-2.fc40.x86_64` in a sosreport's `installed-rpms`.
pub fn rpm_version(installed_rpms: &str) -> Option<String> {
    installed_rpms.lines().find_map(|line| {
        let word = line.split_whitespace().next()?;
        let rest = word.strip_prefix("makedumpfile-")?;
        rest.starts_with(|c: char| c.is_ascii_digit())
            .then(|| rest.to_string())
    })
}

/// Check 15.
pub fn ceiling(cx: &Context) -> Check {
    let snap = cx.snap;
    let data = match &*DATA {
        Ok(data) => data,
        Err(why) => {
            return check(
                15,
                Status::Skip,
                format!("kdrill's makedumpfile table did not load: {why}"),
                WHY,
            )
        }
    };
    let (installed, source) = match &snap.makedumpfile {
        Ok(found) => found,
        Err(problem) => return unknown(cx, problem),
    };
    let Ok(release) = snap.release.as_deref() else {
        return check(
            15,
            Status::Skip,
            format!("makedumpfile {installed} ({source}); the running kernel's release is unknown"),
            WHY,
        )
        .fix("include proc/sys/kernel/osrelease in the captured tree");
    };
    let upstream = userspace::upstream_version(installed);
    let named = format!("makedumpfile {upstream} ({source})");
    let newest = data
        .makedumpfile
        .iter()
        .max_by(|a, b| version::compare(&a.version, &b.version));
    let Some(entry) = data.makedumpfile(installed) else {
        let first = data.makedumpfile.first();
        return match first.filter(|f| userspace::above(release, &f.latest_kernel) == Some(true)) {
            Some(first) => check(
                15,
                Status::Warn,
                format!(
                    "{named} is older than {}, whose ceiling {} is already below {release}",
                    first.version, first.latest_kernel
                ),
                WHY,
            )
            .fix(upgrade(cx, data, release)),
            None => check(
                15,
                Status::Info,
                format!(
                    "{named} is older than kdrill's table ({}): not judged against {release}",
                    first.map_or("", |f| f.version.as_str())
                ),
                WHY,
            ),
        };
    };
    if let Some(newest) = newest.filter(|n| beyond(upstream, &n.version)) {
        return check(15, Status::Info, format!("{named} is newer than kdrill's table (up to {}, which knows kernels up to {}): not judged against {release}", newest.version, newest.latest_kernel), WHY);
    }
    let Some(above) = userspace::above(release, &entry.latest_kernel) else {
        return check(
            15,
            Status::Skip,
            format!("{named}; the kernel release {release} does not start with a version"),
            WHY,
        );
    };
    let bad: Vec<_> = data
        .known_bad
        .iter()
        .filter(|b| {
            !userspace::above(&b.kernels_from, release).unwrap_or(true)
                && version::compare(upstream, &b.makedumpfile_up_to) != std::cmp::Ordering::Greater
        })
        .collect();
    let knows = format!("{named} knows kernels up to {}", entry.latest_kernel);
    if !bad.is_empty() {
        let what: Vec<&str> = bad.iter().map(|b| b.what.as_str()).collect();
        let mut details = Vec::new();
        for b in &bad {
            details.push(format!("{}: {}", b.what, b.source));
            if let Some(measured) = &b.measured {
                details.push(format!("measured: {measured}"));
            }
        }
        return check(
            15,
            Status::Warn,
            format!("{knows}; this host runs {release}: {}", what.join("; ")),
            WHY,
        )
        .details(details)
        .fix(upgrade(cx, data, release));
    }
    if !above {
        return check(
            15,
            Status::Pass,
            format!("{knows}; this host runs {release}"),
            WHY,
        );
    }
    if let Some(series) = entry.verified.iter().find(|s| in_series(release, s)) {
        return check(15, Status::Pass, format!("{knows}, below {release}, but kdrill's own drills capture {series} kernels with it"), WHY)
            .details(vec![format!("makedumpfile prints \"The kernel version is not supported\" on {release}; kdrill's verify cases read those dumps back whole (images/userspace.yaml, `verified`)")]);
    }
    check(15, Status::Warn, format!("{knows}; this host runs {release}: it will say \"The kernel version is not supported\" and the dump may be incomplete"), WHY)
        .fix(upgrade(cx, data, release))
}

/// No version to judge: why, and what to run or copy.
fn unknown(cx: &Context, problem: &Problem) -> Check {
    let snap = cx.snap;
    let tool = snap.tools.get("makedumpfile").cloned().flatten();
    if tool.is_none() && snap.has_usr && *problem == Problem::Missing {
        return check(
            15,
            Status::Skip,
            "no makedumpfile installed (see tools)",
            WHY,
        )
        .fix("install makedumpfile (see tools)");
    }
    if let Problem::Odd(why) = problem {
        return check(15, Status::Skip, why.clone(), WHY).fix(format!(
            "run `{VERSION_COMMAND}` on the host to see which makedumpfile it has"
        ));
    }
    let seen = if snap.live {
        format!("makedumpfile's version is unknown: no dpkg record, and `{VERSION_COMMAND}` could not be run")
    } else {
        format!("the captured tree holds no record of makedumpfile's version (/var/lib/dpkg/status, a sosreport's installed-rpms); `{VERSION_COMMAND}` is only run on the live host")
    };
    check(15, Status::Skip, seen, WHY).fix(format!(
        "run `{VERSION_COMMAND}` on the host (on RPM hosts also `rpm -qf $(command -v makedumpfile)`), or include var/lib/dpkg/status in the captured tree"
    ))
}

/// The fix: a release that knows this kernel and has none of the known-bad pairs for it.
fn upgrade(cx: &Context, data: &UserspaceData, release: &str) -> String {
    let good: Option<&MakedumpfileRelease> = data.makedumpfile.iter().find(|m| {
        userspace::above(release, &m.latest_kernel) == Some(false)
            && !data.known_bad.iter().any(|b| {
                !userspace::above(&b.kernels_from, release).unwrap_or(true)
                    && version::compare(&m.version, &b.makedumpfile_up_to)
                        != std::cmp::Ordering::Greater
            })
    });
    let rebuild = cx.family.rebuild_initrd(release);
    match good {
        Some(m) => format!(
            "install makedumpfile {} or newer (it knows kernels up to {}), then rebuild the capture initrd: `{rebuild}`; or boot a kernel the installed makedumpfile knows",
            m.version, m.latest_kernel
        ),
        None => format!(
            "no makedumpfile release kdrill knows covers {release} yet: boot a kernel one does, or install a newer makedumpfile when there is one (then `{rebuild}`)"
        ),
    }
}

/// Whether `release` (`6.1.0-47-amd64`) belongs to `series` (`6.1`).
fn in_series(release: &str, series: &str) -> bool {
    match (
        userspace::release_numbers(release),
        userspace::release_numbers(series),
    ) {
        (Some(r), Some(s)) => r[..2] == s[..2],
        _ => false,
    }
}

/// Whether upstream version `a` is past release `b`'s line (1.8.0 past 1.7.9; 1.7.9.1 is not).
fn beyond(a: &str, b: &str) -> bool {
    let three = |v: &str| -> Vec<u64> {
        v.split('.')
            .take(3)
            .map(|n| n.parse().unwrap_or(0))
            .collect()
    };
    three(a) > three(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::Snapshot;

    fn judge(installed: &str, release: &str) -> Check {
        let mut snap = Snapshot::empty("/t");
        snap.makedumpfile = Ok((installed.to_string(), "/var/lib/dpkg/status".to_string()));
        snap.release = Ok(release.to_string());
        snap.os_release = Ok("ID=debian\n".to_string());
        ceiling(&Context::new(&snap))
    }

    #[test]
    fn the_ceiling_against_the_running_kernel() {
        let c = judge("1:1.7.6-1", "6.6.15-amd64");
        assert_eq!(c.status, Status::Pass, "{c:?}");
        assert!(
            c.seen
                .contains("makedumpfile 1.7.6 (/var/lib/dpkg/status) knows kernels up to 6.11.4"),
            "{}",
            c.seen
        );
        // Debian 12 on the 6.12 backports kernel: above 1.7.2's ceiling, and the free-pages pair.
        let c = judge("1:1.7.2-1", "6.12.57+deb12-amd64");
        assert_eq!(c.status, Status::Warn);
        assert!(c.seen.contains("knows kernels up to 6.0.1; this host runs 6.12.57+deb12-amd64: free pages are not excluded"), "{}", c.seen);
        assert!(
            c.details.iter().any(|d| d.contains("323,037 pages dumped")),
            "{:?}",
            c.details
        );
        assert!(
            c.fix
                .as_deref()
                .unwrap()
                .contains("install makedumpfile 1.7.7 or newer (it knows kernels up to 6.14.2)"),
            "{:?}",
            c.fix
        );
        // 7.1 and later with 1.7.9 or older: the tail pages, and no release to install yet.
        let c = judge("1.7.9", "7.3.4+deb13-amd64");
        assert_eq!(c.status, Status::Warn);
        assert!(
            c.seen.contains("compound tail pages are mis-excluded"),
            "{}",
            c.seen
        );
        assert!(c
            .fix
            .as_deref()
            .unwrap()
            .contains("no makedumpfile release kdrill knows covers 7.3.4+deb13-amd64"));
        // Above the ceiling, no known pair: makedumpfile's own warning.
        let c = judge("1:1.7.4-1", "6.8.1-amd64");
        assert_eq!(c.status, Status::Warn);
        assert!(
            c.seen.contains("The kernel version is not supported"),
            "{}",
            c.seen
        );
        // Above, but kdrill's drills capture that series with it.
        let c = judge("1:1.7.2-1", "6.1.0-47-amd64");
        assert_eq!(c.status, Status::Pass, "{c:?}");
        assert!(
            c.seen
                .contains("kdrill's own drills capture 6.1 kernels with it"),
            "{}",
            c.seen
        );
    }

    #[test]
    fn versions_outside_the_table_are_not_judged() {
        assert_eq!(judge("1:1.8.0-1", "7.3.4-amd64").status, Status::Info);
        assert_eq!(judge("1.6.9", "5.10.0-30-amd64").status, Status::Info);
        assert_eq!(judge("1.6.9", "6.1.0-47-amd64").status, Status::Warn);
    }

    #[test]
    fn versions_from_each_source() {
        assert_eq!(
            version_line("makedumpfile: version 1.7.2 (released on 20 Oct 2022)\nlzo\tenabled\n")
                .as_deref(),
            Some("1.7.2")
        );
        assert_eq!(version_line("usage: makedumpfile\n"), None);
        assert_eq!(
            rpm_version(
                "kexec-tools-2.0.28-1.el9.x86_64 Mon\nmakedumpfile-1.7.4-2.fc40.x86_64 Tue\n"
            )
            .as_deref(),
            Some("1.7.4-2.fc40.x86_64")
        );
        assert_eq!(userspace::upstream_version("1.7.4-2.fc40.x86_64"), "1.7.4");
        assert_eq!(rpm_version("makedumpfile-devel-x\n"), None);
    }
}
