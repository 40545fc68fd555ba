//! The installed makedumpfile's version, for `gather`: dpkg's record, a sosreport's
//! `installed-rpms`, or on the live host `makedumpfile -v` under a deadline.

use crate::readiness::makedumpfile;
use crate::readiness::snapshot::Snapshot;
use crate::readiness::source::{Got, Problem, Root};

/// How long `makedumpfile -v` may take on the live host.
const VERSION_RUN: std::time::Duration = std::time::Duration::from_secs(10);

/// makedumpfile's version: dpkg's record, a sosreport's `installed-rpms`, or on the live host
/// `makedumpfile -v` (RPM hosts: whichever package carries it, the program knows its version).
pub(crate) fn makedumpfile_version(root: &Root, snap: &Snapshot) -> Got<(String, String)> {
    const DPKG: &str = "/var/lib/dpkg/status";
    if let Ok(status) = root.text(DPKG) {
        let installed = crate::fetch::userspace::status::installed(&status);
        if let Some(version) = installed.get("makedumpfile") {
            return Ok((version.clone(), DPKG.to_string()));
        }
    }
    if !root.is_live() {
        let rpms = root.text("/installed-rpms").ok();
        return match rpms.as_deref().and_then(makedumpfile::rpm_version) {
            Some(version) => Ok((version, "installed-rpms".to_string())),
            None => Err(Problem::Missing),
        };
    }
    match snap.tools.get("makedumpfile").cloned().flatten() {
        Some(program) => version_of(&program),
        None => Err(Problem::Missing),
    }
}

/// `PROGRAM -v`'s version, under a deadline.
fn version_of(program: &str) -> Got<(String, String)> {
    let mut command = std::process::Command::new(program);
    command.arg("-v");
    let shown = format!("`{program} -v`");
    match crate::host::process::run(&mut command, VERSION_RUN) {
        Ok(done) => {
            let output = String::from_utf8_lossy(&done.stdout).into_owned()
                + &String::from_utf8_lossy(&done.stderr);
            makedumpfile::version_line(&output)
                .map(|version| (version, shown.clone()))
                .ok_or_else(|| {
                    Problem::Odd(format!(
                        "{shown} printed no version: {}",
                        crate::spec::excerpt::excerpt(&output)
                    ))
                })
        }
        Err(err) => Err(Problem::Odd(format!("{shown} failed: {err}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The live host's way: the program asked (kdrill's host packages include makedumpfile).
    #[test]
    fn makedumpfile_says_its_version() {
        let program = crate::host::tools::find("makedumpfile").expect("makedumpfile on this host");
        let (version, source) = version_of(&program.display().to_string()).unwrap();
        assert!(version.starts_with("1."), "{version}");
        assert_eq!(source, format!("`{} -v`", program.display()));
        let err = version_of("/bin/false").unwrap_err();
        assert!(
            matches!(&err, Problem::Odd(why) if why.contains("printed no version") || why.contains("failed")),
            "{err:?}"
        );
    }
}
