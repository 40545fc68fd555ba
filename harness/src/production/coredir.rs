//! The dump folder kdump-tools wrote (`<KDUMP_COREDIR>/<YYYYMMDDHHMM>/dump.<stamp>` and
//! `dmesg.<stamp>`), read back from the guest's disk without mounting it (or from the SSH
//! target's folder on the host), and judged: the dump opens with kdrill's reader, its log holds
//! the route's lines and equals kdump-tools' own `dmesg.<stamp>`, and other users can read
//! nothing of it (Debian's kdump-tools 1.8.1 writes `dump.<stamp>` mode 644 into a 755
//! `/var/crash`: only a closed dump folder keeps a crashed kernel's memory from every local user).

use std::path::{Path, PathBuf};

use crate::case::error::CaseError;
use crate::case::verdict::CaseResult;
use crate::dumpcheck::{expect, log};
use crate::guest::dumpdisk;
use crate::spec::scenario::Scenario;

/// The dump folder kdump-config named (`KDUMP_COREDIR:` in `kdump-config show`), `/var/crash`
/// by default.
pub fn coredir(show: &str) -> String {
    show.lines()
        .find_map(|l| l.trim().strip_prefix("KDUMP_COREDIR:"))
        .map(|v| v.trim().trim_matches('"').to_string())
        .filter(|v| v.starts_with('/'))
        .unwrap_or_else(|| "/var/crash".into())
}

/// The stamp of a capture's folder: `YYYYMMDDHHMM`, or `<host>-YYYYMMDDHHMM` on a network
/// target (kdump-tools' `HOSTTAG`).
pub fn stamp_of(folder: &str) -> Option<&str> {
    if folder.len() < 12 {
        return None;
    }
    let stamp = folder.rsplit('-').next()?;
    let plain = folder.len() == 12 || folder[..folder.len() - 12].ends_with('-');
    (stamp.len() == 12 && stamp.bytes().all(|b| b.is_ascii_digit()) && plain).then_some(stamp)
}

/// The capture folders among `names`, oldest first.
pub fn stamps(names: &[String]) -> Vec<String> {
    let mut stamps: Vec<String> = names
        .iter()
        .filter(|n| stamp_of(n).is_some())
        .cloned()
        .collect();
    stamps.sort_by_key(|n| stamp_of(n).unwrap_or_default().to_string());
    stamps
}

/// The files other users can read: readable by others, in folders all of which others may
/// enter (`dirs`: the dump folder and the capture's folder, with their modes); named with the
/// modes that expose them.
pub fn exposed(dirs: &[(u32, String)], files: &[(u32, String)]) -> Vec<String> {
    if dirs.iter().any(|(mode, _)| mode & 0o001 == 0) {
        return Vec::new();
    }
    let path: Vec<String> = dirs
        .iter()
        .map(|(mode, name)| format!("{name} {:o}", mode & 0o7777))
        .collect();
    files
        .iter()
        .filter(|(mode, _)| mode & 0o004 != 0)
        .map(|(mode, name)| format!("{name} (mode {:o}, in {})", mode & 0o7777, path.join(", ")))
        .collect()
}

/// What one capture left in the dump folder.
#[derive(Debug, Clone)]
pub struct Found {
    pub stamp: String,
    /// The copy on the host, in the evidence folder.
    pub folder: PathBuf,
    pub dump: Option<PathBuf>,
    pub dmesg: Option<PathBuf>,
    /// The dump folder and the capture's folder, with their modes in the guest.
    pub dirs: Vec<(u32, String)>,
    /// Each file's mode in the guest.
    pub modes: Vec<(u32, String)>,
}

/// The newest stamp folder of `folder` on the host (an SSH target's), if any.
pub fn find_on_host(folder: &Path) -> Option<Found> {
    use std::os::unix::fs::PermissionsExt;
    let names: Vec<String> = std::fs::read_dir(folder)
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let stamp = stamps(&names).pop()?;
    let dir = folder.join(&stamp);
    let modes = std::fs::read_dir(&dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let mode = e.metadata().ok()?.permissions().mode();
            Some((mode, e.file_name().to_string_lossy().into_owned()))
        })
        .collect();
    Some(found(stamp, dir, Vec::new(), modes))
}

fn found(
    name: String,
    folder: PathBuf,
    dirs: Vec<(u32, String)>,
    modes: Vec<(u32, String)>,
) -> Found {
    let stamp = stamp_of(&name).unwrap_or(&name).to_string();
    let named = |prefix: &str| {
        let path = folder.join(format!("{prefix}.{stamp}"));
        path.is_file().then_some(path)
    };
    Found {
        dump: named("dump"),
        dmesg: named("dmesg"),
        stamp,
        folder,
        dirs,
        modes,
    }
}

/// The mode of `name` in the disk's folder `parent`.
fn mode_in(disk: &Path, parent: &str, name: &str) -> Result<Option<u32>, CaseError> {
    let listing = dumpdisk::modes(disk, if parent.is_empty() { "/" } else { parent })
        .map_err(|e| CaseError::Dump(e.to_string()))?;
    Ok(listing.into_iter().find(|(_, n)| n == name).map(|(m, _)| m))
}

/// Copies the guest's dump folder `coredir` off the raw disk `disk` into `out` and finds the
/// newest capture in it; `Ok(None)` when the folder holds none.
pub fn read_from_disk(disk: &Path, coredir: &str, out: &Path) -> Result<Option<Found>, CaseError> {
    let err = |e: dumpdisk::DiskError| CaseError::Dump(e.to_string());
    if !dumpdisk::extract_tree(disk, coredir, out).map_err(err)? {
        return Ok(None);
    }
    let name = coredir.rsplit('/').next().unwrap_or("crash");
    let copy = out.join(name);
    let names: Vec<String> = std::fs::read_dir(&copy)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let Some(stamp) = stamps(&names).pop() else {
        return Ok(None);
    };
    let modes = dumpdisk::modes(disk, &format!("{coredir}/{stamp}")).map_err(err)?;
    let (parent, base) = coredir.rsplit_once('/').unwrap_or(("", coredir));
    let mut dirs = Vec::new();
    if let Some(mode) = mode_in(disk, parent, base)? {
        dirs.push((mode, coredir.to_string()));
    }
    if let Some(mode) = mode_in(disk, coredir, &stamp)? {
        dirs.push((mode, format!("{coredir}/{stamp}")));
    }
    Ok(Some(found(stamp.clone(), copy.join(&stamp), dirs, modes)))
}

/// Judges a capture: the dump read by kdrill's reader (and makedumpfile), the route's lines in
/// its log, kdump-tools' `dmesg.<stamp>` equal to that log, no file readable by others.
pub fn check(
    found: &Found,
    dir: &Path,
    scenario: &Scenario,
    result: &mut CaseResult,
) -> Result<(), CaseError> {
    let dump = found.dump.as_ref().ok_or(CaseError::NoDump)?;
    crate::case::evidence::restrict(dump)
        .map_err(|e| CaseError::Dump(format!("chmod {}: {e}", dump.display())))?;
    let size = std::fs::metadata(dump).map(|m| m.len()).unwrap_or(0);
    result.dump_bytes = Some(size);
    if size == 0 {
        return Err(CaseError::EmptyDump);
    }
    let ours = log::read_cross_checked(dump, &dir.join("dmesg.txt"))?;
    result.panic_message = expect::panic_message(&ours);
    result.expectations = expect::check_log(&ours, &scenario.expect.log);
    let missing: Vec<String> = result
        .expectations
        .iter()
        .filter(|(_, found)| found.is_none())
        .map(|(pattern, _)| pattern.clone())
        .collect();
    for pattern in missing {
        result.fail(CaseError::ExpectedLineMissing {
            from: "the dump".into(),
            pattern,
        });
    }
    // Deep: the crashed CPU's backtrace, its task and the modules, as for every capture.
    match crate::dumpcheck::deep::read(dump, &ours) {
        Ok(mut seen) => {
            for error in crate::dumpcheck::deep::check(scenario, &mut seen) {
                result.fail(error);
            }
            result.deep = Some(seen);
        }
        Err(e) => result.fail(CaseError::DeepUnreadable(e)),
    }
    match &found.dmesg {
        None => result.fail(CaseError::Dump(format!(
            "kdump-tools left no dmesg.{} beside the dump",
            found.stamp
        ))),
        Some(theirs) => {
            let theirs = std::fs::read(theirs).unwrap_or_default();
            if theirs != ours.as_bytes() {
                result.fail(CaseError::Dump(format!(
                    "kdump-tools' dmesg.{} ({} bytes) differs from the log kdrill reads from its dump ({} bytes): compare {} with {}",
                    found.stamp,
                    theirs.len(),
                    ours.len(),
                    found.folder.join(format!("dmesg.{}", found.stamp)).display(),
                    dir.join("dmesg.txt").display()
                )));
            }
        }
    }
    let exposed = exposed(&found.dirs, &found.modes);
    if !exposed.is_empty() {
        result.fail(CaseError::Dump(format!(
            "the dump folder is readable by other users: {}",
            exposed.join(", ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_folder_and_its_stamps() {
        assert_eq!(coredir("KDUMP_COREDIR:\t\t/srv/crash\n"), "/srv/crash");
        assert_eq!(coredir("nothing"), "/var/crash");
        let names = [
            "202612051031",
            "kexec_cmd",
            "202612050959",
            "20261205",
            "10.0.2.15-202612051101",
        ]
        .map(String::from);
        assert_eq!(
            stamps(&names),
            ["202612050959", "202612051031", "10.0.2.15-202612051101"]
        );
        assert_eq!(stamp_of("10.0.2.15-202612051101"), Some("202612051101"));
        assert_eq!(stamp_of("x202612051101"), None);
        let modes = [
            (0o100600, "dmesg.1".to_string()),
            (0o100644, "dump.1".to_string()),
        ];
        let open = [
            (0o40755, "/var/crash".to_string()),
            (0o40755, "/var/crash/1".to_string()),
        ];
        assert_eq!(
            exposed(&open, &modes),
            ["dump.1 (mode 644, in /var/crash 755, /var/crash/1 755)"]
        );
        // A closed dump folder keeps everything in it from other users.
        let closed = [
            (0o40700, "/var/crash".to_string()),
            (0o40755, "/var/crash/1".to_string()),
        ];
        assert!(exposed(&closed, &modes).is_empty());
    }
}
