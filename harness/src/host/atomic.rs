//! Replacing a file in one step: a temporary file in the same folder, written, flushed to disk,
//! then renamed over the old one, so a reader (node_exporter's textfile collector, a scraper, a
//! `kdrill report` run) never sees half a file, and a crash leaves the old file or the new one.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// Why a file could not be replaced; the message names the file.
#[derive(Debug, thiserror::Error)]
pub enum AtomicError {
    #[error("cannot write a temporary file in {dir} (beside {path})")]
    Temp {
        dir: PathBuf,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot replace {path}")]
    Replace {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Every filesystem's dirty data to its disk (`sync(2)`), before a crash on purpose.
pub fn flush_all() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
}

/// Writes `bytes` to `path` atomically. The new file keeps the mode of the file it replaces, else
/// it is 0644: world-readable, as node_exporter (user `prometheus`) must read a file root wrote.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), AtomicError> {
    write_mode(path, bytes, 0o644)
}

/// [`write`], with `new_mode` for a file that does not exist yet (0600 for one only root reads).
pub fn write_mode(path: &Path, bytes: &[u8], new_mode: u32) -> Result<(), AtomicError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let temp_error = |source| AtomicError::Temp {
        dir: dir.clone(),
        path: path.to_path_buf(),
        source,
    };
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(new_mode);
    // A dot name, so a collector that reads `*.prom` never reads the temporary file.
    let mut temp = tempfile::Builder::new()
        .prefix(".kdrill-")
        .suffix(".partial")
        .tempfile_in(&dir)
        .map_err(temp_error)?;
    temp.write_all(bytes).map_err(temp_error)?;
    temp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(temp_error)?;
    temp.as_file().sync_all().map_err(temp_error)?;
    temp.persist(path).map_err(|e| AtomicError::Replace {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    // The rename itself reaches the disk with the folder's own flush (best effort: some
    // filesystems refuse to fsync a folder).
    if let Ok(folder) = std::fs::File::open(&dir) {
        let _ = folder.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_keeps_its_mode_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kdrill.prom");
        write(&path, b"one\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"one\n");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o644, "readable by node_exporter");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        write(&path, b"two\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two\n");
        assert_eq!(mode(&path), 0o640, "the old file's mode is kept");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["kdrill.prom"]);
    }

    #[test]
    fn a_missing_folder_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/kdrill.prom");
        let err = write(&path, b"x").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot write a temporary file in "),
            "{err}"
        );
        assert!(err.to_string().contains("kdrill.prom"), "{err}");
    }
}
