//! The dump disk: a raw ext4 image the capture kernel writes the dump onto, and reading files back
//! out of it on the host without mounting (debugfs), so no root or loop device is needed.
//!
//! ext4 rather than makedumpfile's flattened stream on the raw device: the capture boot also leaves
//! makedumpfile's log and its own dmesg there, each a separate file we can read back.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::host::process::{self, RunError};
use crate::host::tools::{self, MissingTool};

/// mkfs.ext4 of a sparse image, or one debugfs request (a dump of up to a GiB): seconds here.
pub const DISK_TOOL_DEADLINE: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error(transparent)]
    MissingTool(#[from] MissingTool),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("cannot create the dump disk {path}: {detail}")]
    Create { path: PathBuf, detail: String },
    #[error("cannot read {name} from the dump disk {disk}: {detail}")]
    Extract {
        disk: PathBuf,
        name: String,
        detail: String,
    },
}

/// Creates a sparse ext4 image of `size_mib` MiB at `path`, holding `files` (paths relative to
/// its root, e.g. `kdrill/capture.env`: what the capture boot reads there).
pub fn create(path: &Path, size_mib: u64, files: &[(&str, &[u8])]) -> Result<(), DiskError> {
    let fail = |detail: String| DiskError::Create {
        path: path.into(),
        detail,
    };
    // mkfs.ext4 copies a folder's contents into the new filesystem (`-d`): no mount needed.
    let contents = tempfile::tempdir().map_err(|e| fail(e.to_string()))?;
    for (name, data) in files {
        let at = contents.path().join(name);
        if let Some(parent) = at.parent() {
            std::fs::create_dir_all(parent).map_err(|e| fail(e.to_string()))?;
        }
        std::fs::write(&at, data).map_err(|e| fail(format!("{}: {e}", at.display())))?;
    }
    make(path, size_mib, "kdrill-dump", Some(contents.path()))
}

/// Creates a sparse ext4 image of `size_mib` MiB labelled `label`, holding the files of `from`
/// (`mkfs.ext4 -d`: no mount, no root).
pub fn create_from(path: &Path, size_mib: u64, label: &str, from: &Path) -> Result<(), DiskError> {
    make(path, size_mib, label, Some(from))
}

fn make(path: &Path, size_mib: u64, label: &str, from: Option<&Path>) -> Result<(), DiskError> {
    let mkfs = tools::require("mkfs.ext4")?;
    let fail = |detail: String| DiskError::Create {
        path: path.into(),
        detail,
    };
    let file = std::fs::File::create(path).map_err(|e| fail(e.to_string()))?;
    file.set_len(size_mib << 20)
        .map_err(|e| fail(e.to_string()))?;
    drop(file);
    // No journal: one writer, synced before power-off. Inode tables are initialised here, on the
    // host, so the guest spends no time on it.
    let mut command = Command::new(mkfs);
    command.args([
        "-q",
        "-F",
        "-O",
        "^has_journal",
        "-E",
        "lazy_itable_init=0",
        "-L",
        label,
    ]);
    if let Some(from) = from {
        command.arg("-d").arg(from);
    }
    command.arg(path);
    let out = process::run(&mut command, DISK_TOOL_DEADLINE)?;
    if !out.status.success() {
        return Err(fail(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(())
}

/// Lists the names in the disk's root folder.
pub fn list(disk: &Path) -> Result<Vec<String>, DiskError> {
    let out = debugfs(disk, "ls -l /", "/")?;
    // debugfs `ls -l` lines end with the file name.
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter(|n| !matches!(*n, "." | ".." | "lost+found"))
        .map(String::from)
        .collect())
}

/// Copies `/name` from the disk to `out`; `Ok(false)` when the disk has no such file.
///
/// debugfs splits its request on blanks and has no quoting for them, so the host path never
/// goes into the request: debugfs runs in `out`'s folder and dumps to a plain relative name,
/// which is then renamed to `out` (a checkout under `/home/me/my projects/` works).
pub fn extract(disk: &Path, name: &str, out: &Path) -> Result<bool, DiskError> {
    let fail = |detail: String| DiskError::Extract {
        disk: disk.into(),
        name: name.into(),
        detail,
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '"' && c != '/')
    {
        return Err(fail("not a plain file name".into()));
    }
    if !list(disk)?.iter().any(|n| n == name) {
        return Ok(false);
    }
    let folder = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let partial = format!(".{name}.extracting");
    let staged = folder.join(&partial);
    let _ = std::fs::remove_file(&staged);
    let _ = std::fs::remove_file(out);
    debugfs_in(disk, &format!("dump /{name} {partial}"), name, Some(folder))?;
    if !staged.is_file() {
        return Err(fail("debugfs wrote nothing".into()));
    }
    std::fs::rename(&staged, out).map_err(|e| fail(format!("{}: {e}", out.display())))?;
    Ok(true)
}

/// One entry of a folder on the disk, as `debugfs ls -l` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    /// `st_mode`: type and permission bits (`0o100644` a file, `0o040700` a folder).
    pub mode: u32,
    pub size: u64,
}

/// The entries of folder `inside` (an absolute path in the filesystem), `.` and `..` left out.
pub fn list_dir(disk: &Path, inside: &str) -> Result<Vec<Listed>, DiskError> {
    check_inside(disk, inside)?;
    let out = debugfs(disk, &format!("ls -l {inside}"), inside)?;
    Ok(parse_ls(&out))
}

/// `debugfs ls -l` lines: ` <inode> <mode octal> (<n>) <uid> <gid> <size> <date> <time> <name>`.
pub fn parse_ls(text: &str) -> Vec<Listed> {
    text.lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let mode = u32::from_str_radix(words.get(1)?, 8).ok()?;
            let paren = words
                .iter()
                .position(|w| w.starts_with('(') && w.ends_with(')'))?;
            let size = words.get(paren + 3)?.parse().ok()?;
            let name = words.last()?.to_string();
            (name != "." && name != "..").then_some(Listed { name, mode, size })
        })
        .collect()
}

/// The text of file `inside` (an absolute path in the filesystem); empty when there is no such
/// file (debugfs says so on stderr only).
pub fn cat(disk: &Path, inside: &str) -> Result<String, DiskError> {
    check_inside(disk, inside)?;
    debugfs(disk, &format!("cat {inside}"), inside)
}

/// The permission bits of `inside` (`debugfs stat`: `Mode:  0700`).
pub fn mode_of(disk: &Path, inside: &str) -> Result<u32, DiskError> {
    check_inside(disk, inside)?;
    let out = debugfs(disk, &format!("stat {inside}"), inside)?;
    parse_stat_mode(&out).ok_or_else(|| DiskError::Extract {
        disk: disk.into(),
        name: inside.into(),
        detail: "debugfs stat shows no mode".into(),
    })
}

fn parse_stat_mode(text: &str) -> Option<u32> {
    let rest = &text[text.find("Mode:")? + "Mode:".len()..];
    u32::from_str_radix(rest.split_whitespace().next()?, 8).ok()
}

/// Copies folder `inside` of the disk, recursively, into `out_dir` (as `out_dir/<its name>`).
pub fn rdump(disk: &Path, inside: &str, out_dir: &Path) -> Result<(), DiskError> {
    check_inside(disk, inside)?;
    debugfs_in(disk, &format!("rdump {inside} ."), inside, Some(out_dir))?;
    Ok(())
}

/// debugfs requests have no quoting: a path inside the disk must be absolute and plain.
fn check_inside(disk: &Path, inside: &str) -> Result<(), DiskError> {
    if !inside.starts_with('/') || !inside.chars().all(|c| c.is_ascii_graphic() && c != '"') {
        return Err(DiskError::Extract {
            disk: disk.into(),
            name: inside.into(),
            detail: "not a plain absolute path".into(),
        });
    }
    Ok(())
}

fn debugfs(disk: &Path, request: &str, name: &str) -> Result<String, DiskError> {
    debugfs_in(disk, request, name, None)
}

/// Runs one debugfs request on `disk` (an absolute or cwd-relative path, passed as its own
/// argument), in `folder` when given.
fn debugfs_in(
    disk: &Path,
    request: &str,
    name: &str,
    folder: Option<&Path>,
) -> Result<String, DiskError> {
    let debugfs = tools::require("debugfs")?;
    let disk_arg = match folder {
        Some(_) => std::path::absolute(disk).map_err(|e| DiskError::Extract {
            disk: disk.into(),
            name: name.into(),
            detail: e.to_string(),
        })?,
        None => disk.to_path_buf(),
    };
    let mut command = Command::new(debugfs);
    command.args(["-R", request]).arg(&disk_arg);
    if let Some(folder) = folder {
        command.current_dir(folder);
    }
    let out = process::run(&mut command, DISK_TOOL_DEADLINE)?;
    if !out.status.success() {
        return Err(DiskError::Extract {
            disk: disk.into(),
            name: name.into(),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debugfs_stat_gives_the_mode() {
        let text = "Inode: 14039   Type: directory    Mode:  0700   Flags: 0x80000\n";
        assert_eq!(parse_stat_mode(text), Some(0o700));
        assert_eq!(parse_stat_mode("nothing"), None);
    }

    #[test]
    fn debugfs_listings_give_names_modes_and_sizes() {
        let text = "      2   40700 (2)      0      0    4096  5-Dec-2026 10:39 .\n      2   40755 (2)      0      0    4096  5-Dec-2026 10:39 ..\n     14  100644 (1)      0      0 27012280  5-Dec-2026 11:08 dump.202612051108\n     15   40755 (2)      0      0    1024  5-Dec-2026 11:20 202612051120\n";
        let listed = parse_ls(text);
        assert_eq!(
            listed,
            [
                Listed {
                    name: "dump.202612051108".into(),
                    mode: 0o100644,
                    size: 27012280
                },
                Listed {
                    name: "202612051120".into(),
                    mode: 0o40755,
                    size: 1024
                }
            ]
        );
    }

    /// A real ext4 image holding `vmcore`, extracted into a folder whose path has a space (and
    /// a relative disk path), as a checkout under `/home/me/my projects/` would.
    #[test]
    fn extracts_into_a_folder_whose_path_has_a_space() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("my projects/kdrill run");
        std::fs::create_dir_all(&work).unwrap();
        let disk = work.join("dump disk.img");
        create(&disk, 8, &[("kdrill/capture.env", b"X='1'\n")]).unwrap();
        // Put a file on it with debugfs `write` (run where the source is, by relative name).
        std::fs::write(work.join("src"), b"dump bytes\n").unwrap();
        let mut put = Command::new(tools::require("debugfs").unwrap());
        put.args(["-w", "-R", "write src vmcore"])
            .arg(&disk)
            .current_dir(&work);
        assert!(process::run(&mut put, DISK_TOOL_DEADLINE)
            .unwrap()
            .status
            .success());
        assert_eq!(list(&disk).unwrap(), ["kdrill", "vmcore"]);
        let out = work.join("the dump");
        assert!(extract(&disk, "vmcore", &out).unwrap());
        assert_eq!(std::fs::read(&out).unwrap(), b"dump bytes\n");
        assert!(!work.join(".vmcore.extracting").exists());
        assert!(!extract(&disk, "absent", &out).unwrap());
        assert!(extract(&disk, "a b", &out).is_err());
        assert_eq!(cat(&disk, "/kdrill/capture.env").unwrap(), "X='1'\n");
        assert_eq!(cat(&disk, "/kdrill/absent").unwrap(), "");
        assert!(cat(&disk, "kdrill/capture.env").is_err(), "a relative path");
    }
}
