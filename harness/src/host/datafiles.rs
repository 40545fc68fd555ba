//! Which files of a project folder are kdrill's data (kernel entries, scenarios and their guest overlays, image recipes, calibrations, `matrix.yaml`, `archives.yaml`), walked the same way by `build.rs` (to compile them in) and by `host::bundle` (to merge `--root DIR` over them); std only.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// One data file, by its path relative to the project folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFile {
    /// `/`-separated, e.g. `scenarios/overlays/ssh/etc/default/kdump-tools`.
    pub rel: String,
    /// Permission bits as found (`0o644`, `0o755`; a link's are not used).
    pub mode: u32,
    pub kind: DataKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataKind {
    /// A regular file, read from here.
    File(PathBuf),
    /// A symbolic link inside a guest tree, kept as a link with this target.
    Link(String),
}

/// The top-level files that are data.
pub const DATA_FILES: &[&str] = &["matrix.yaml", "archives.yaml"];

/// Folders whose `*.yaml` files (not their subfolders) are data.
pub const YAML_FOLDERS: &[&str] = &["kernels", "scenarios", "calibration"];

/// Folders taken whole: trees that go into guests (links stay links) and the image recipes.
pub const WHOLE_FOLDERS: &[&str] = &["images", "scenarios/overlays"];

/// The data files under `root`, sorted by path: nothing else of the folder (a `target/`, a
/// kernel build beside an entry) is taken. A missing folder is no error. Outside the whole
/// folders a link is followed (an entry may be a link to a shared file); a name that is not
/// UTF-8 or has a newline is an error, as is anything that is not a file, link or folder.
pub fn walk(root: &Path) -> std::io::Result<Vec<DataFile>> {
    let mut files = Vec::new();
    for name in DATA_FILES {
        let path = root.join(name);
        if path.is_file() {
            files.push(file(&path, name)?);
        }
    }
    for folder in YAML_FOLDERS {
        let Ok(entries) = std::fs::read_dir(root.join(folder)) else {
            continue;
        };
        for entry in entries {
            let path = entry?.path();
            let rel = relative(root, &path)?;
            if rel.ends_with(".yaml") && path.is_file() {
                files.push(file(&path, &rel)?);
            }
        }
    }
    for folder in WHOLE_FOLDERS {
        let top = root.join(folder);
        if std::fs::symlink_metadata(&top).is_ok_and(|m| m.is_dir()) {
            whole(root, &top, &mut files)?;
        }
    }
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    files.dedup_by(|a, b| a.rel == b.rel);
    Ok(files)
}

/// Every file and link under `dir`, links kept as links.
fn whole(root: &Path, dir: &Path, files: &mut Vec<DataFile>) -> std::io::Result<()> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder)? {
            let path = entry?.path();
            let meta = std::fs::symlink_metadata(&path)?;
            let rel = relative(root, &path)?;
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path)?;
                let target = target
                    .to_str()
                    .ok_or_else(|| odd(&path, "a link target that is not UTF-8"))?;
                files.push(DataFile {
                    rel,
                    mode: 0o777,
                    kind: DataKind::Link(target.to_string()),
                });
            } else if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                files.push(file(&path, &rel)?);
            } else {
                return Err(odd(&path, "not a file, link or folder"));
            }
        }
    }
    Ok(())
}

fn file(path: &Path, rel: &str) -> std::io::Result<DataFile> {
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o7777;
    Ok(DataFile {
        rel: rel.to_string(),
        mode,
        kind: DataKind::File(path.to_path_buf()),
    })
}

fn relative(root: &Path, path: &Path) -> std::io::Result<String> {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let rel = rel
        .to_str()
        .ok_or_else(|| odd(path, "a name that is not UTF-8"))?;
    if rel.contains('\n') {
        return Err(odd(path, "a name with a newline"));
    }
    Ok(rel.to_string())
}

fn odd(path: &Path, what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{}: {what}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_data_is_taken_and_guest_links_stay_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for folder in [
            "kernels/build",
            "scenarios/overlays/ops/etc",
            "images/minimal",
            "target/debug",
            "shared",
        ] {
            std::fs::create_dir_all(root.join(folder)).unwrap();
        }
        std::fs::write(root.join("kernels/mine.yaml"), "id: mine\n").unwrap();
        std::fs::write(root.join("kernels/build/bzImage"), "big").unwrap();
        std::fs::write(root.join("kernels/notes.txt"), "n").unwrap();
        std::fs::write(root.join("shared/x.yaml"), "id: x\n").unwrap();
        std::os::unix::fs::symlink("../shared/x.yaml", root.join("scenarios/x.yaml")).unwrap();
        std::fs::write(root.join("scenarios/overlays/ops/etc/conf"), "c").unwrap();
        std::os::unix::fs::symlink("/lib/a.service", root.join("scenarios/overlays/ops/etc/a"))
            .unwrap();
        std::fs::write(root.join("images/minimal/init"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            root.join("images/minimal/init"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::write(root.join("target/debug/kdrill"), "elf").unwrap();
        std::fs::write(root.join("matrix.yaml"), "sets: {}\n").unwrap();
        let files = walk(root).unwrap();
        let rels: Vec<&str> = files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(
            rels,
            [
                "images/minimal/init",
                "kernels/mine.yaml",
                "matrix.yaml",
                "scenarios/overlays/ops/etc/a",
                "scenarios/overlays/ops/etc/conf",
                "scenarios/x.yaml",
            ]
        );
        assert_eq!(files[0].mode, 0o755);
        assert_eq!(files[3].kind, DataKind::Link("/lib/a.service".into()));
        // An entry that is a link is read through it.
        assert_eq!(files[5].kind, DataKind::File(root.join("scenarios/x.yaml")));
        assert_eq!(
            std::fs::read(root.join("scenarios/x.yaml")).unwrap(),
            b"id: x\n"
        );
    }

    #[test]
    fn a_folder_without_data_gives_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(walk(dir.path()).unwrap().is_empty());
    }
}
