//! The dump disk: a raw ext4 image the capture kernel writes the dump onto, and reading files back
//! out of it on the host without mounting (debugfs), so no root or loop device is needed.
//!
//! ext4 rather than makedumpfile's flattened stream on the raw device: the capture boot also leaves
//! makedumpfile's log and its own dmesg there, each a separate file we can read back.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::host::tools::{self, MissingTool};

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error(transparent)]
    MissingTool(#[from] MissingTool),
    #[error("cannot create the dump disk {path}: {detail}")]
    Create { path: PathBuf, detail: String },
    #[error("cannot read {name} from the dump disk {disk}: {detail}")]
    Extract {
        disk: PathBuf,
        name: String,
        detail: String,
    },
}

/// Creates a sparse ext4 image of `size_mib` MiB at `path`.
pub fn create(path: &Path, size_mib: u64) -> Result<(), DiskError> {
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
    let out = Command::new(mkfs)
        .args([
            "-q",
            "-F",
            "-O",
            "^has_journal",
            "-E",
            "lazy_itable_init=0",
            "-L",
            "kdrill-dump",
        ])
        .arg(path)
        .output()
        .map_err(|e| fail(e.to_string()))?;
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
pub fn extract(disk: &Path, name: &str, out: &Path) -> Result<bool, DiskError> {
    if !list(disk)?.iter().any(|n| n == name) {
        return Ok(false);
    }
    let _ = std::fs::remove_file(out);
    debugfs(disk, &format!("dump /{name} {}", out.display()), name)?;
    if !out.is_file() {
        return Err(DiskError::Extract {
            disk: disk.into(),
            name: name.into(),
            detail: "debugfs wrote nothing".into(),
        });
    }
    Ok(true)
}

fn debugfs(disk: &Path, request: &str, name: &str) -> Result<String, DiskError> {
    let debugfs = tools::require("debugfs")?;
    let out = Command::new(debugfs)
        .args(["-R", request])
        .arg(disk)
        .output()
        .map_err(|e| DiskError::Extract {
            disk: disk.into(),
            name: name.into(),
            detail: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(DiskError::Extract {
            disk: disk.into(),
            name: name.into(),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
