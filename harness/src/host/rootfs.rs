//! Finding a root's programs and the libraries they load: a release's sysroot
//! (`fetch/userspace/`) or the host's `/`. Every symlink is followed inside the root, absolute
//! ones too, so a sysroot's files never resolve to the host's.

use std::collections::{BTreeMap, VecDeque};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::host::elf::elf_needs;
use crate::host::tools;

/// Why a program's files could not be gathered from a root.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("{path}: {detail}")]
    Elf { path: PathBuf, detail: String },
    #[error("shared library `{name}` needed by {needed_by} is not in {dirs} of {root}")]
    MissingLibrary {
        name: String,
        needed_by: PathBuf,
        dirs: String,
        root: PathBuf,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Folders the dynamic loader searches on Debian amd64 (multiarch first); the guest's `/init`
/// puts the same on `LD_LIBRARY_PATH`.
pub const LIBRARY_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// Folders a root's programs are looked for in, as a root user's `PATH` orders them.
const PROGRAM_DIRS: &[&str] = &["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// The longest chain of symlinks [`resolve_in`] follows (the kernel's own limit).
const MAX_LINKS: u32 = 40;

/// Where `path` (absolute, as seen from inside `root`) really is on this machine: every symlink
/// on the way is followed inside `root`, absolute ones too, so a sysroot's `/lib64 -> usr/lib64`
/// and `ld-linux-x86-64.so.2 -> /usr/lib/x86_64-linux-gnu/…` lead to its own files, never the
/// host's. `None` when something on the way is missing or the links loop. With `root` = `/`,
/// the host's own path.
pub fn resolve_in(root: &Path, path: &Path) -> Option<PathBuf> {
    fn parts(path: &Path) -> impl Iterator<Item = OsString> + '_ {
        path.components().filter_map(|c| match c {
            std::path::Component::Normal(name) => Some(name.to_os_string()),
            std::path::Component::ParentDir => Some("..".into()),
            _ => None,
        })
    }
    let mut todo: VecDeque<OsString> = parts(path).collect();
    let mut done = PathBuf::new();
    let mut links = 0;
    while let Some(part) = todo.pop_front() {
        if part == ".." {
            done.pop();
            continue;
        }
        let here = root.join(&done).join(&part);
        let meta = std::fs::symlink_metadata(&here).ok()?;
        if !meta.file_type().is_symlink() {
            done.push(part);
            continue;
        }
        links += 1;
        if links > MAX_LINKS {
            return None;
        }
        let target = std::fs::read_link(&here).ok()?;
        if target.is_absolute() {
            done = PathBuf::new();
        }
        let mut next: VecDeque<OsString> = parts(&target).collect();
        next.extend(todo.drain(..));
        todo = next;
    }
    Some(root.join(done))
}

/// The program `name` of `root`: on the host (`/`) as [`tools::find`] finds it, in a sysroot
/// the first of `/usr/sbin`, `/usr/bin`, `/sbin`, `/bin` that has it. The real path.
pub fn locate(root: &Path, name: &str) -> Option<PathBuf> {
    if root == Path::new("/") {
        return tools::find(name);
    }
    PROGRAM_DIRS
        .iter()
        .filter_map(|dir| resolve_in(root, &Path::new(dir).join(name)))
        .find(|real| real.is_file())
}

/// Every file the programs (real paths) need from `root`, as guest path → real path: their
/// interpreters and the transitive closure of their shared libraries, each looked up in the
/// loader's folders inside `root`. In the guest a file sits at the path the loader asks for.
pub fn library_closure(
    root: &Path,
    programs: &[PathBuf],
) -> Result<BTreeMap<PathBuf, PathBuf>, RootError> {
    let mut found: BTreeMap<PathBuf, PathBuf> = BTreeMap::new();
    let mut todo: Vec<PathBuf> = programs.to_vec();
    while let Some(real) = todo.pop() {
        let data = read(&real)?;
        let (interp, needed) = elf_needs(&data).map_err(|detail| RootError::Elf {
            path: real.clone(),
            detail,
        })?;
        let missing = |name: &str, dirs: String| RootError::MissingLibrary {
            name: name.into(),
            needed_by: real.clone(),
            dirs,
            root: root.into(),
        };
        let mut wanted: Vec<(PathBuf, PathBuf)> = Vec::new();
        if let Some(interp) = interp {
            let guest = PathBuf::from(&interp);
            let real = resolve_in(root, &guest).ok_or_else(|| missing(&interp, interp.clone()))?;
            wanted.push((guest, real));
        }
        for name in needed {
            let (guest, real) = LIBRARY_DIRS
                .iter()
                .map(|d| Path::new(d).join(&name))
                .find_map(|guest| {
                    let real = resolve_in(root, &guest).filter(|r| r.is_file())?;
                    Some((guest, real))
                })
                .ok_or_else(|| missing(&name, LIBRARY_DIRS.join(", ")))?;
            wanted.push((guest, real));
        }
        for (guest, real) in wanted {
            if let std::collections::btree_map::Entry::Vacant(slot) = found.entry(guest) {
                slot.insert(real.clone());
                todo.push(real);
            }
        }
    }
    Ok(found)
}

fn read(path: &Path) -> Result<Vec<u8>, RootError> {
    std::fs::read(path).map_err(|source| RootError::Io {
        path: path.into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_closure_includes_loader_and_libc() {
        let libs = library_closure(Path::new("/"), &[PathBuf::from("/bin/sh")]).unwrap();
        assert!(libs.keys().any(|p| p.ends_with("libc.so.6")), "{libs:?}");
        assert!(
            libs.keys()
                .any(|p| p == Path::new("/lib64/ld-linux-x86-64.so.2")),
            "{libs:?}"
        );
    }

    /// A sysroot laid out as a merged-/usr release is: `lib`, `lib64` and `bin` are links into
    /// `usr`, the loader a link with an absolute target; the host's dash, libc and loader copied
    /// in as its own.
    fn fake_sysroot(dir: &Path) -> PathBuf {
        let root = dir.join("sysroot");
        let multiarch = root.join("usr/lib/x86_64-linux-gnu");
        std::fs::create_dir_all(&multiarch).unwrap();
        std::fs::create_dir_all(root.join("usr/lib64")).unwrap();
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        for (link, target) in [
            ("lib", "usr/lib"),
            ("lib64", "usr/lib64"),
            ("bin", "usr/bin"),
        ] {
            std::os::unix::fs::symlink(target, root.join(link)).unwrap();
        }
        let host_libc = resolve_in(Path::new("/"), Path::new("/lib/x86_64-linux-gnu/libc.so.6"));
        std::fs::copy(host_libc.unwrap(), multiarch.join("libc.so.6")).unwrap();
        let host_loader = resolve_in(Path::new("/"), Path::new("/lib64/ld-linux-x86-64.so.2"));
        std::fs::copy(host_loader.unwrap(), multiarch.join("ld-linux-x86-64.so.2")).unwrap();
        std::os::unix::fs::symlink(
            "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            root.join("usr/lib64/ld-linux-x86-64.so.2"),
        )
        .unwrap();
        let sh = resolve_in(Path::new("/"), Path::new("/bin/sh")).unwrap();
        std::fs::copy(sh, root.join("usr/bin/dash")).unwrap();
        std::os::unix::fs::symlink("dash", root.join("usr/bin/sh")).unwrap();
        root
    }

    #[test]
    fn a_sysroots_links_resolve_inside_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = fake_sysroot(dir.path());
        assert_eq!(
            resolve_in(&root, Path::new("/lib64/ld-linux-x86-64.so.2")),
            Some(root.join("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"))
        );
        assert_eq!(
            resolve_in(&root, Path::new("/bin/../lib/x86_64-linux-gnu/libc.so.6")),
            Some(root.join("usr/lib/x86_64-linux-gnu/libc.so.6"))
        );
        assert_eq!(resolve_in(&root, Path::new("/usr/bin/nothing")), None);
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert_eq!(resolve_in(&root, Path::new("/loop/x")), None);
        assert_eq!(locate(&root, "sh"), Some(root.join("usr/bin/dash")));
        assert_eq!(locate(&root, "kexec"), None);
    }

    #[test]
    fn the_closure_in_a_sysroot_takes_its_own_loader_and_libc() {
        let dir = tempfile::tempdir().unwrap();
        let root = fake_sysroot(dir.path());
        let sh = locate(&root, "sh").unwrap();
        let libs = library_closure(&root, &[sh]).unwrap();
        // The guest paths the loader asks for, each filled from the sysroot, none from the host.
        assert_eq!(
            libs.get(Path::new("/lib64/ld-linux-x86-64.so.2")),
            Some(&root.join("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"))
        );
        assert_eq!(
            libs.get(Path::new("/lib/x86_64-linux-gnu/libc.so.6")),
            Some(&root.join("usr/lib/x86_64-linux-gnu/libc.so.6"))
        );
        assert!(
            libs.values().all(|real| real.starts_with(&root)),
            "{libs:?}"
        );
        // Without its libc the sysroot is incomplete, whatever the host has.
        std::fs::remove_file(root.join("usr/lib/x86_64-linux-gnu/libc.so.6")).unwrap();
        let err = library_closure(&root, &[locate(&root, "sh").unwrap()])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("shared library `libc.so.6` needed by"),
            "{err}"
        );
        assert!(err.ends_with(&format!("of {}", root.display())), "{err}");
    }
}
