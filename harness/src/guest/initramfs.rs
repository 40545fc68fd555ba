//! Writing the guest's initramfs: newc cpio archives of busybox, kexec, makedumpfile, their shared
//! libraries, the needed kernel modules and kdrill's `/init`. The programs come from a root: a
//! release's sysroot (`fetch/userspace/`), or the host's `/`; their libraries are looked up, and
//! every symlink followed, inside that root.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::guest::modules::{ModuleError, ModuleIndex};
use crate::guest::needs::{self, NeedError};
use crate::host::rootfs::{library_closure, locate, RootError};
use crate::host::tools;
use crate::spec::image::ImageRecipe;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    MissingTool(#[from] tools::MissingTool),
    #[error(transparent)]
    Module(#[from] ModuleError),
    #[error(transparent)]
    Need(#[from] NeedError),
    #[error(transparent)]
    Root(#[from] RootError),
    #[error("`{tool}` (package {package}) is not in the capture userspace {root}: add the package to the sysroot, or name it among the recipe's `binaries:`")]
    NotInRoot {
        tool: String,
        package: String,
        root: PathBuf,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A newc cpio archive built in memory. Entries get fixed owners and times so the same inputs
/// always give the same bytes; parent folders are added on demand.
pub struct Cpio {
    out: Vec<u8>,
    dirs: BTreeSet<String>,
    next_ino: u32,
}

impl Default for Cpio {
    fn default() -> Self {
        Cpio {
            out: Vec::new(),
            dirs: BTreeSet::new(),
            next_ino: 1,
        }
    }
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        let ino = self.next_ino;
        self.next_ino += 1;
        let builder = cpio::newc::Builder::new(name)
            .ino(ino)
            .mode(mode)
            .uid(0)
            .gid(0)
            .nlink(1)
            .mtime(0);
        let mut writer = builder.write(&mut self.out, data.len() as u32);
        // Writing into a Vec cannot fail.
        writer.write_all(data).expect("write to Vec");
        writer.finish().expect("write to Vec");
    }

    fn parents(&mut self, path: &str) {
        let mut prefix = String::new();
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            if self.dirs.insert(prefix.clone()) {
                self.entry(&prefix.clone(), 0o040755, &[]);
            }
        }
    }

    /// Adds a folder (and its parents).
    pub fn dir(&mut self, path: &str) {
        let path = path.trim_start_matches('/');
        self.parents(&format!("{path}/x"));
    }

    /// Adds a regular file with permission bits `perm` (e.g. 0o755).
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) {
        let path = path.trim_start_matches('/');
        self.parents(path);
        self.entry(path, 0o100000 | (perm & 0o7777), data);
    }

    /// Adds a symbolic link `path` → `target`.
    pub fn symlink(&mut self, path: &str, target: &str) {
        let path = path.trim_start_matches('/');
        self.parents(path);
        self.entry(path, 0o120777, target.as_bytes());
    }

    /// Closes the archive with its trailer and returns the bytes.
    pub fn finish(mut self) -> Vec<u8> {
        cpio::newc::trailer(&mut self.out).expect("write to Vec");
        self.out
    }
}

/// The part of the guest image shared by both boots, for one kernel.
pub struct BaseImage {
    pub cpio: Vec<u8>,
    /// Modules in load order, as guest paths.
    pub modules: Vec<String>,
}

/// Builds the base archive: init, the recipe's programs from `root` (a sysroot, or the host's
/// `/`) with their libraries, and the modules `modules`' kernel takes for the recipe's needs.
pub fn build_base(
    recipe: &ImageRecipe,
    init: &[u8],
    modules: &ModuleIndex,
    root: &Path,
) -> Result<BaseImage, ImageError> {
    let mut cpio = Cpio::default();
    for dir in [
        "dev",
        "proc",
        "sys",
        "tmp",
        "mnt",
        "bin",
        "sbin",
        "etc/kdrill",
    ] {
        cpio.dir(dir);
    }
    cpio.file("init", 0o755, init);
    let mut programs = Vec::new();
    for binary in &recipe.binaries {
        let real = match locate(root, &binary.name) {
            Some(real) => real,
            None if root == Path::new("/") => {
                return Err(tools::MissingTool {
                    tool: binary.name.clone(),
                    package: binary.package.clone(),
                }
                .into())
            }
            None => {
                return Err(ImageError::NotInRoot {
                    tool: binary.name.clone(),
                    package: binary.package.clone(),
                    root: root.into(),
                })
            }
        };
        let data = read(&real)?;
        // Programs go to /bin, first on the guest's PATH, so no busybox applet shadows them.
        cpio.file(&format!("bin/{}", binary.name), 0o755, &data);
        programs.push(real);
    }
    for (guest, real) in library_closure(root, &programs)? {
        let data = read(&real)?;
        cpio.file(&guest.to_string_lossy(), 0o755, &data);
    }
    let order = needs::resolve(modules, &recipe.needs)?.order;
    let mut guest_paths = Vec::new();
    for name in &order {
        let guest = format!("/lib/modules/{}/{name}.ko", modules.release);
        cpio.file(&guest, 0o644, &modules.read(name)?);
        guest_paths.push(guest);
    }
    let list: String = guest_paths.iter().map(|p| format!("{p}\n")).collect();
    cpio.file("etc/kdrill/modules", 0o644, list.as_bytes());
    Ok(BaseImage {
        cpio: cpio.finish(),
        modules: guest_paths,
    })
}

fn read(path: &Path) -> Result<Vec<u8>, ImageError> {
    std::fs::read(path).map_err(|source| ImageError::Io {
        path: path.into(),
        source,
    })
}

/// A one-file archive segment, appended after the base (the kernel unpacks concatenated archives).
pub fn segment(files: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut cpio = Cpio::default();
    for (path, perm, data) in files {
        cpio.file(path, *perm, data);
    }
    cpio.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(archive: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        use std::io::Read;
        let mut out = Vec::new();
        let mut rest = archive;
        loop {
            let mut reader = cpio::newc::Reader::new(rest).unwrap();
            if reader.entry().is_trailer() {
                break;
            }
            let (name, mode) = (reader.entry().name().to_string(), reader.entry().mode());
            let mut data = Vec::new();
            reader.read_to_end(&mut data).unwrap();
            out.push((name, mode, data));
            rest = reader.finish().unwrap();
        }
        out
    }

    #[test]
    fn cpio_round_trips_with_parents_first() {
        let mut cpio = Cpio::default();
        cpio.file("/usr/bin/tool", 0o755, b"#!x");
        cpio.symlink("lib64", "usr/lib64");
        cpio.file("usr/share/a", 0o644, b"");
        let archive = cpio.finish();
        assert_eq!(archive.len() % 4, 0);
        let got: Vec<(String, u32)> = entries(&archive)
            .into_iter()
            .map(|(n, m, _)| (n, m))
            .collect();
        assert_eq!(
            got,
            [
                ("usr".to_string(), 0o040755),
                ("usr/bin".to_string(), 0o040755),
                ("usr/bin/tool".to_string(), 0o100755),
                ("lib64".to_string(), 0o120777),
                ("usr/share".to_string(), 0o040755),
                ("usr/share/a".to_string(), 0o100644),
            ]
        );
        assert_eq!(entries(&archive)[2].2, b"#!x");
    }

    #[test]
    fn same_inputs_same_bytes() {
        let build = || segment(&[("etc/kdrill/case.env", 0o644, b"A=1\n")]);
        assert_eq!(build(), build());
    }
}
