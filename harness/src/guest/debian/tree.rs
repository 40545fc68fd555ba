//! A folder of files going into the image (kdrill's `root/`, the operator's overlay): its hash
//! (paths, types, modes, contents, link targets), and a tarball of it owned by root, for
//! mmdebstrap's `tar-in`. Directories that already exist in the image keep their owner and
//! mode (`/etc` stays `/etc`); only a folder's files, links and empty directories are packed.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::host::process::{self, RunError};
use crate::host::tools::{self, MissingTool};

/// `tar` of an overlay: seconds.
pub const TAR_DEADLINE: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error(transparent)]
    MissingTool(#[from] MissingTool),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("{path}: {detail}")]
    Refused { path: PathBuf, detail: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One entry of a folder, by its path relative to the folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub rel: String,
    pub kind: Kind,
    pub mode: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File,
    Link(String),
    /// A directory with nothing in it (a mount point, say): packed as itself.
    EmptyDir,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TreeError + '_ {
    move |source| TreeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The files, links and empty directories under `dir`, sorted by path. Devices, FIFOs and
/// sockets are refused; so are names with a newline (tar's file list is one per line).
pub fn walk(dir: &Path) -> Result<Vec<Item>, TreeError> {
    if !dir.is_dir() {
        return Err(TreeError::Refused {
            path: dir.into(),
            detail: "not a folder".into(),
        });
    }
    let mut items = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        let mut children = 0;
        for entry in std::fs::read_dir(&folder).map_err(io(&folder))? {
            let entry = entry.map_err(io(&folder))?;
            children += 1;
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
            let rel = path
                .strip_prefix(dir)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            if rel.contains('\n') {
                return Err(TreeError::Refused {
                    path,
                    detail: "a name with a newline".into(),
                });
            }
            let mode = meta.permissions().mode() & 0o7777;
            let kind = if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).map_err(io(&path))?;
                Kind::Link(target.to_string_lossy().into_owned())
            } else if meta.is_dir() {
                stack.push(path);
                continue;
            } else if meta.is_file() {
                Kind::File
            } else {
                return Err(TreeError::Refused {
                    path,
                    detail: "not a file, link or folder (a device, FIFO or socket)".into(),
                });
            };
            items.push(Item { rel, kind, mode });
        }
        if children == 0 && folder != dir {
            let meta = std::fs::metadata(&folder).map_err(io(&folder))?;
            items.push(Item {
                rel: folder
                    .strip_prefix(dir)
                    .unwrap_or(&folder)
                    .to_string_lossy()
                    .into_owned(),
                kind: Kind::EmptyDir,
                mode: meta.mode() & 0o7777,
            });
        }
    }
    items.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(items)
}

/// sha256 over every item's path, type, mode and content (or link target).
pub fn hash(dir: &Path, items: &[Item]) -> Result<String, TreeError> {
    let mut hasher = Sha256::new();
    for item in items {
        hasher.update(item.rel.as_bytes());
        hasher.update(format!("\0{:o}\0", item.mode));
        match &item.kind {
            Kind::File => {
                let path = dir.join(&item.rel);
                let bytes = std::fs::read(&path).map_err(io(&path))?;
                hasher.update(b"file\0");
                hasher.update(Sha256::digest(&bytes));
            }
            Kind::Link(target) => {
                hasher.update(b"link\0");
                hasher.update(target.as_bytes());
            }
            Kind::EmptyDir => hasher.update(b"dir\0"),
        }
        hasher.update(b"\n");
    }
    Ok(hex(&hasher.finalize()))
}

/// The hash of a whole folder.
pub fn hash_dir(dir: &Path) -> Result<String, TreeError> {
    hash(dir, &walk(dir)?)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Packs `items` of `dir` into `out`, every entry owned by root (uid and gid 0), modes kept.
pub fn pack(dir: &Path, items: &[Item], out: &Path) -> Result<(), TreeError> {
    let tar = tools::require("tar")?;
    let list = out.with_extension("list");
    let names: String = items.iter().map(|i| format!("./{}\n", i.rel)).collect();
    std::fs::write(&list, names).map_err(io(&list))?;
    let mut command = Command::new(tar);
    command
        .arg("--create")
        .arg("--file")
        .arg(out)
        .arg("--directory")
        .arg(dir)
        .args([
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "--no-recursion",
            "--verbatim-files-from",
        ])
        .arg("--files-from")
        .arg(&list);
    let done = process::run(&mut command, TAR_DEADLINE)?;
    let _ = std::fs::remove_file(&list);
    if !done.status.success() {
        return Err(TreeError::Refused {
            path: dir.into(),
            detail: format!("tar failed: {}", done.last_line()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("etc/default")).unwrap();
        std::fs::create_dir_all(root.join("var/crash")).unwrap();
        std::fs::write(root.join("etc/default/kdump-tools"), "USE_KDUMP=1\n").unwrap();
        std::os::unix::fs::symlink("/lib/x.service", root.join("etc/x.service")).unwrap();
        dir
    }

    #[test]
    fn files_links_and_empty_folders_are_walked_in_order() {
        let dir = folder();
        let items = walk(dir.path()).unwrap();
        let rels: Vec<&str> = items.iter().map(|i| i.rel.as_str()).collect();
        assert_eq!(
            rels,
            ["etc/default/kdump-tools", "etc/x.service", "var/crash"]
        );
        assert_eq!(items[1].kind, Kind::Link("/lib/x.service".into()));
        assert_eq!(items[2].kind, Kind::EmptyDir);
    }

    #[test]
    fn the_hash_follows_content_and_mode() {
        let dir = folder();
        let before = hash_dir(dir.path()).unwrap();
        assert_eq!(before, hash_dir(dir.path()).unwrap());
        let file = dir.path().join("etc/default/kdump-tools");
        std::fs::write(&file, "USE_KDUMP=0\n").unwrap();
        let changed = hash_dir(dir.path()).unwrap();
        assert_ne!(before, changed);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_ne!(changed, hash_dir(dir.path()).unwrap());
    }

    #[test]
    fn packing_makes_a_root_owned_tar_without_parent_folders() {
        let dir = folder();
        let out = tempfile::tempdir().unwrap();
        let tarball = out.path().join("overlay.tar");
        pack(dir.path(), &walk(dir.path()).unwrap(), &tarball).unwrap();
        let listed =
            process::run(Command::new("tar").arg("-tvf").arg(&tarball), TAR_DEADLINE).unwrap();
        let text = String::from_utf8_lossy(&listed.stdout);
        assert!(text.contains("0/0"), "{text}");
        assert!(text.contains("./etc/default/kdump-tools"), "{text}");
        assert!(!text.lines().any(|l| l.ends_with("./etc/")), "{text}");
    }

    #[test]
    fn a_fifo_is_refused() {
        let dir = folder();
        let fifo = dir.path().join("etc/pipe");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let err = walk(dir.path()).unwrap_err().to_string();
        assert!(err.contains("a device, FIFO or socket"), "{err}");
    }
}
