//! Reading the dump folder kdump-tools wrote, on the host and without mounting: off the guest's
//! root disk (the qcow2 overlay converted to raw by `qemu-img`), off an extra disk, or out of the
//! network target's receive folder; copied into the evidence (`dump-folder/`, owner-only).
//! Judged as a good capture must leave it: `dmesg.<stamp>` and `dump.<stamp>` (flattened) exist,
//! the dump opens with kdrill's reader and holds the scenario's lines, makedumpfile reads the
//! same log, `dmesg.<stamp>` agrees with it, and no other user of the guest can read the files.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::case::budget::debian as limits;
use crate::case::error::CaseError;
use crate::case::evidence;
use crate::case::production::diagnose;
use crate::case::production::record::{DumpFolder, FileSeen};
use crate::case::verdict::CaseResult;
use crate::dumpcheck::{log, makedumpfile};
use crate::guest::dumpdisk::{self, Listed};
use crate::host::{process, tools};
use crate::spec::scenario::Scenario;
use crate::spec::userspace::{DmesgFormat, UserspaceData};

/// Where the dump folder can be read.
pub enum Source<'a> {
    /// Disks in `/dev/vd*` order: the root overlay (qcow2), then raw disks.
    Disks {
        root_qcow2: &'a Path,
        raw: &'a [PathBuf],
        scratch: &'a Path,
    },
    /// kdrill's sshd received it here.
    Received(&'a Path),
    /// A disk image's agent copied it onto the case disk; the host extracted that copy here.
    Agent(&'a Path),
}

/// Finds, copies and judges the crash's folder; fills `result` (dump size, expectations, the
/// panic, `production.dump_folder`). The error is the first thing a good capture would not leave;
/// `later` gets what is wrong beside it (files other users can read).
pub fn read(
    source: Source,
    coredir: &str,
    coredir_mount: Option<&str>,
    dir: &Path,
    scenario: &Scenario,
    result: &mut CaseResult,
    later: &mut Vec<CaseError>,
) -> Result<(), CaseError> {
    let folder_err = |problem: String| CaseError::DumpFolder {
        folder: coredir.to_string(),
        problem,
    };
    let copied = dir.join("dump-folder");
    std::fs::create_dir_all(&copied).map_err(|e| folder_err(e.to_string()))?;
    let (name, files, from) = match source {
        Source::Received(receive) | Source::Agent(receive) => {
            let agent = matches!(source, Source::Agent(_));
            let base = receive.join(coredir.trim_start_matches('/'));
            let name = newest_stamp(list_host(&base).iter().map(|l| l.name.as_str())).ok_or_else(
                || {
                    folder_err(if agent {
                        "the agent found no folder holding a dump after the crash (boot3-copy.txt, boot3-coredir-listing.txt)".to_string()
                    } else {
                        format!("nothing arrived at the ssh target ({})", base.display())
                    })
                },
            )?;
            let files = list_host(&base.join(&name));
            copy_tree(&base.join(&name), &copied.join(&name)).map_err(folder_err)?;
            let from = if agent { "agent" } else { "ssh" };
            (name, files, from.to_string())
        }
        Source::Disks {
            root_qcow2,
            raw,
            scratch,
        } => {
            let (device, inside) = coredir_mount
                .and_then(|m| diagnose::coredir_on_disk(coredir, m))
                .unwrap_or_else(|| ("/dev/vda".into(), coredir.to_string()));
            let index = diagnose::virtio_index(&device).ok_or_else(|| {
                folder_err(format!("on {device}, not one of kdrill's virtio disks"))
            })?;
            let disk = match index {
                0 => to_raw(root_qcow2, &scratch.join("root.raw")).map_err(folder_err)?,
                n => raw.get(n - 1).cloned().ok_or_else(|| {
                    folder_err(format!("on {device}, which kdrill did not attach"))
                })?,
            };
            let listing =
                dumpdisk::list_dir(&disk, &inside).map_err(|e| folder_err(e.to_string()))?;
            let name = newest_stamp(listing.iter().map(|l| l.name.as_str())).ok_or_else(|| {
                folder_err(format!(
                    "no crash folder (<YYYYMMDDHHMM>) after the reboot; it holds {}",
                    names(&listing)
                ))
            })?;
            let folder = format!("{}/{name}", inside.trim_end_matches('/'));
            let files =
                dumpdisk::list_dir(&disk, &folder).map_err(|e| folder_err(e.to_string()))?;
            dumpdisk::rdump(&disk, &folder, &copied).map_err(|e| folder_err(e.to_string()))?;
            // Other users reach a file only through folders they may enter (o+x).
            let top = dumpdisk::mode_of(&disk, &inside).ok();
            let modes = dumpdisk::mode_of(&disk, &folder).ok();
            let shut = |mode: Option<u32>| mode.is_some_and(|m| m & 0o001 == 0);
            if let Some(file) = files
                .iter()
                .find(|f| f.mode & 0o004 != 0 && f.mode & 0o170000 == 0o100000)
            {
                if !shut(top) && !shut(modes) {
                    later.push(folder_err(format!(
                        "{} is readable by every user of the guest (mode {:o}, folders {} and {} open to them): a dump holds all of the guest's memory",
                        file.name,
                        file.mode & 0o7777,
                        coredir,
                        name
                    )));
                }
            }
            let _ = std::fs::remove_file(scratch.join("root.raw"));
            (name, files, device)
        }
    };
    for file in walk_files(&copied) {
        let _ = evidence::restrict(&file);
    }
    let record = DumpFolder {
        coredir: coredir.into(),
        source: from,
        folder: Some(format!("{}/{name}", coredir.trim_end_matches('/'))),
        files: files
            .iter()
            .map(|f| FileSeen {
                name: f.name.clone(),
                mode: f.mode & 0o7777,
                bytes: f.size,
            })
            .collect(),
        copied_to: Some(copied.join(&name).display().to_string()),
    };
    if let Some(p) = result.production.as_mut() {
        p.dump_folder = Some(record);
    }
    judge(&copied.join(&name), &name, &files, dir, scenario, result)
        .map_err(|problem| folder_err(format!("{name}: {problem}")))
}

/// The files of a good capture, then the dump's log against the scenario and `dmesg.<stamp>`.
fn judge(
    folder: &Path,
    name: &str,
    files: &[Listed],
    dir: &Path,
    scenario: &Scenario,
    result: &mut CaseResult,
) -> Result<(), String> {
    let stamp = diagnose::stamp_of(name).unwrap_or(name);
    let (dmesg, dump) = (format!("dmesg.{stamp}"), format!("dump.{stamp}"));
    let has = |n: &str| files.iter().any(|f| f.name == n);
    if !has(&dump) {
        return Err(format!("no {dump}: it holds {}", names(files)));
    }
    let dump_path = folder.join(&dump);
    let size = std::fs::metadata(&dump_path).map(|m| m.len()).unwrap_or(0);
    result.dump_bytes = Some(size);
    if size == 0 {
        return Err(format!("{dump} is empty"));
    }
    if !crate::dumpcheck::makedumpfile::is_flattened(&dump_path) {
        result.notes.push(format!(
            "{dump} is not in makedumpfile's flattened format (kdump-tools writes it with -F)"
        ));
    }
    let userspace = crate::spec::userspace::load(None).ok();
    let reader = host_reader(result, userspace.as_ref());
    let log = log::read_cross_checked(&dump_path, &dir.join("dmesg.txt"), reader.as_ref())
        .map_err(|e| e.to_string())?;
    let mut found = crate::dumpcheck::Findings::default();
    crate::dumpcheck::judge(
        &dump_path,
        &log.text,
        &format!("the dump ({dump})"),
        dir,
        scenario,
        &mut found,
    );
    result.record(found);
    if !has(&dmesg) {
        return Err(format!("no {dmesg} beside {dump}"));
    }
    let theirs = std::fs::read(folder.join(&dmesg)).map_err(|e| format!("{dmesg}: {e}"))?;
    // The image's own makedumpfile wrote it, in its release's format (1.7.5 on adds a caller
    // column): kdrill's records are rendered the same way before the bytes are compared.
    let format = image_dmesg_format(result, userspace.as_ref());
    let ours = match format {
        DmesgFormat::Plain => log.text,
        format => {
            let ours = crate::dumpcheck::dmesgformat::render(&log.records, format);
            let path = dir.join(format!("dmesg.kdrill-{}.txt", format.word()));
            std::fs::write(&path, &ours).map_err(|e| format!("{}: {e}", path.display()))?;
            ours
        }
    };
    if theirs != ours.as_bytes() {
        let at = theirs
            .iter()
            .zip(ours.as_bytes())
            .position(|(a, b)| a != b)
            .unwrap_or(theirs.len().min(ours.len()));
        return Err(format!(
            "{dmesg} (written by makedumpfile in the capture kernel, {} format) differs from the log kdrill reads from {dump} from byte {at} on (compare dmesg.txt)",
            format.word()
        ));
    }
    Ok(())
}

/// How the image's makedumpfile writes `--dump-dmesg` (`images/userspace.yaml`'s table, by the
/// version the image runs); `plain` when the version is unknown, with a note.
fn image_dmesg_format(result: &mut CaseResult, userspace: Option<&UserspaceData>) -> DmesgFormat {
    let version = result
        .production
        .as_ref()
        .and_then(|p| p.packages.get("makedumpfile").cloned());
    let release = version
        .as_deref()
        .and_then(|v| userspace?.makedumpfile(v).map(|r| r.dmesg));
    match release {
        Some(format) => format,
        None => {
            result.notes.push(format!(
                "the image's makedumpfile {} is not in images/userspace.yaml: its dmesg file is read as `plain`",
                version.as_deref().unwrap_or("(version unknown)")
            ));
            DmesgFormat::Plain
        }
    }
}

/// The host's makedumpfile re-reads the dump's log only where it knows the kernel (its
/// `LATEST_VERSION` covers it); else the log is cross-checked against `dmesg.<stamp>` alone,
/// which the image's own makedumpfile wrote in the capture kernel. Recorded in `result`.
fn host_reader(
    result: &mut CaseResult,
    userspace: Option<&UserspaceData>,
) -> Option<makedumpfile::Reader> {
    let reader = makedumpfile::Reader::host(userspace?)?;
    let release = result.kernel_release.clone().unwrap_or_default();
    if reader.beyond(&release) != Some(false) {
        result.notes.push(format!(
            "the host's {} does not know kernel {release}: the log is cross-checked only with the capture kernel's own dmesg file",
            reader.label
        ));
        return None;
    }
    result.log_check = Some(crate::dumpcheck::log_check(&reader));
    Some(reader)
}

/// The newest `<YYYYMMDDHHMM>` (or `<host>-<stamp>`) folder name.
fn newest_stamp<'n>(names: impl Iterator<Item = &'n str>) -> Option<String> {
    names
        .filter(|n| diagnose::stamp_of(n).is_some())
        .max_by_key(|n| diagnose::stamp_of(n).map(String::from))
        .map(String::from)
}

fn names(listing: &[Listed]) -> String {
    if listing.is_empty() {
        return "nothing".into();
    }
    listing
        .iter()
        .map(|l| l.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `qemu-img convert` of the overlay (with its backing image) into a sparse raw file.
fn to_raw(qcow2: &Path, out: &Path) -> Result<PathBuf, String> {
    let qemu_img = tools::require("qemu-img").map_err(|e| e.to_string())?;
    let mut command = Command::new(qemu_img);
    command.args(["convert", "-O", "raw"]).arg(qcow2).arg(out);
    let done = process::run(&mut command, limits::QEMU_IMG).map_err(|e| e.to_string())?;
    if !done.status.success() {
        return Err(format!("qemu-img convert: {}", done.last_line()));
    }
    Ok(out.to_path_buf())
}

/// A host folder's entries as debugfs would list them.
fn list_host(dir: &Path) -> Vec<Listed> {
    use std::os::unix::fs::MetadataExt;
    let mut out: Vec<Listed> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some(Listed {
                name: e.file_name().to_string_lossy().into_owned(),
                mode: meta.mode(),
                size: meta.len(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| e.to_string())?;
    for entry in std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))? {
        let entry = entry.map_err(|e| e.to_string())?;
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            std::fs::copy(entry.path(), to.join(entry.file_name())).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_images_makedumpfile_decides_how_its_dmesg_file_reads() {
        let with = |version: Option<&str>| {
            let mut result = CaseResult::new("k", "s", Path::new("."));
            let mut production = crate::case::production::record::Production::default();
            if let Some(v) = version {
                production.packages.insert("makedumpfile".into(), v.into());
            }
            result.production = Some(production);
            let data = crate::spec::userspace::load(None).unwrap();
            let format = image_dmesg_format(&mut result, Some(&data));
            (format, result.notes)
        };
        // Debian 13's 1.7.6 writes the caller column; Debian 12's 1.7.2 does not.
        assert_eq!(with(Some("1:1.7.6-1")).0, DmesgFormat::Caller);
        assert_eq!(with(Some("1:1.7.2-1")), (DmesgFormat::Plain, vec![]));
        let (format, notes) = with(None);
        assert_eq!(format, DmesgFormat::Plain);
        assert!(notes[0].contains("version unknown"), "{notes:?}");
    }

    #[test]
    fn the_newest_crash_folder_is_picked() {
        let names = ["kexec_cmd", "202612051042", "202612051101", "lost+found"];
        assert_eq!(
            newest_stamp(names.iter().copied()).as_deref(),
            Some("202612051101")
        );
        assert_eq!(newest_stamp(["kexec_cmd"].iter().copied()), None);
    }
}
