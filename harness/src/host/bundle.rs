//! kdrill's own data compiled into the binary (`harness/build.rs`) and materialised into the cache on first use, so an installed `kdrill` needs no checkout; `--root DIR` files merged over it.
//!
//! A materialised root is `<cache>/roots/<hash>/`, the hash taken over every file's path, mode
//! and content (and the `--root` folder's path, for a merged one). It is written in a scratch
//! folder beside it and renamed into place, so a root that exists is complete; two runs racing
//! to make the same root both end up using the one that won. Its files are read-only
//! afterwards (write bits removed, the execute bits kept). A merged root records which files came
//! from `--root` in `.kdrill-origin`, so that errors and relative paths in those files (a local
//! kernel's `vmlinuz: bzImage`) refer to where the operator wrote them.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::host::datafiles::{self, DataKind};

/// One data file compiled into kdrill.
#[derive(Debug)]
pub struct Embedded {
    pub rel: &'static str,
    pub mode: u32,
    pub data: Data,
}

#[derive(Debug)]
pub enum Data {
    File(&'static [u8]),
    Link(&'static str),
}

include!(concat!(env!("OUT_DIR"), "/embedded.rs"));

/// Every data file compiled into this binary, sorted by path.
pub fn embedded() -> &'static [Embedded] {
    EMBEDDED
}

/// The file in a merged root that names the `--root` folder and the files that came from it.
pub const ORIGIN_FILE: &str = ".kdrill-origin";

/// A scratch folder older than this was left by a run that died: removed.
const STALE_SCRATCH: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("--root {}: no such folder: pass a folder holding kernels/, scenarios/ or images/ files to add to kdrill's own", .dir.display())]
    NoRoot { dir: PathBuf },
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BundleError + '_ {
    move |source| BundleError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What one path of a root holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Content {
    Bytes(Cow<'static, [u8]>),
    Link(Cow<'static, str>),
}

/// The files of a root to be, by relative path, with their modes.
type Tree = BTreeMap<String, (u32, Content)>;

fn builtin_tree() -> Tree {
    EMBEDDED
        .iter()
        .map(|e| {
            let content = match e.data {
                Data::File(bytes) => Content::Bytes(Cow::Borrowed(bytes)),
                Data::Link(target) => Content::Link(Cow::Borrowed(target)),
            };
            (e.rel.to_string(), (e.mode, content))
        })
        .collect()
}

/// kdrill's built-in data as a folder: `<cache>/roots/<hash>/`, made on first use.
pub fn builtin(cache: &Path) -> Result<PathBuf, BundleError> {
    materialise(cache, &builtin_tree(), None)
}

/// kdrill's built-in data with the data files of `over` added or replacing theirs (a file at
/// the same relative path wins), as a folder in the cache.
pub fn merged(cache: &Path, over: &Path) -> Result<PathBuf, BundleError> {
    if !over.is_dir() {
        return Err(BundleError::NoRoot { dir: over.into() });
    }
    let over = std::path::absolute(over).map_err(io(over))?;
    let mut tree = builtin_tree();
    let mut ours = Vec::new();
    for file in datafiles::walk(&over).map_err(io(&over))? {
        let content = match file.kind {
            DataKind::File(path) => {
                Content::Bytes(Cow::Owned(std::fs::read(&path).map_err(io(&path))?))
            }
            DataKind::Link(target) => Content::Link(Cow::Owned(target)),
        };
        ours.push(file.rel.clone());
        tree.insert(file.rel, (file.mode, content));
    }
    materialise(cache, &tree, Some((&over, &ours)))
}

/// sha256 of a tree (and of where its `--root` files came from), hex.
fn key(tree: &Tree, origin: Option<(&Path, &[String])>) -> String {
    let mut hasher = Sha256::new();
    for (rel, (mode, content)) in tree {
        hasher.update(rel.as_bytes());
        hasher.update(format!("\0{mode:o}\0"));
        match content {
            Content::Bytes(bytes) => {
                hasher.update(b"file\0");
                hasher.update(Sha256::digest(bytes));
            }
            Content::Link(target) => {
                hasher.update(b"link\0");
                hasher.update(target.as_bytes());
            }
        }
        hasher.update(b"\n");
    }
    if let Some((dir, _)) = origin {
        hasher.update(b"origin\0");
        hasher.update(dir.as_os_str().as_encoded_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn materialise(
    cache: &Path,
    tree: &Tree,
    origin: Option<(&Path, &[String])>,
) -> Result<PathBuf, BundleError> {
    let roots = cache.join("roots");
    let dir = roots.join(&key(tree, origin)[..16]);
    if dir.is_dir() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&roots).map_err(io(&roots))?;
    sweep(&roots);
    let scratch = tempfile::Builder::new()
        .prefix(".partial-")
        .tempdir_in(&roots)
        .map_err(io(&roots))?;
    write_tree(scratch.path(), tree, origin)?;
    let scratch = scratch.keep();
    match std::fs::rename(&scratch, &dir) {
        Ok(()) => Ok(dir),
        // Another run made the same root first: use that one.
        Err(_) if dir.is_dir() => {
            let _ = std::fs::remove_dir_all(&scratch);
            Ok(dir)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&scratch);
            Err(io(&dir)(e))
        }
    }
}

/// Writes every file and link under `top`, then takes the files' write bits away.
fn write_tree(
    top: &Path,
    tree: &Tree,
    origin: Option<(&Path, &[String])>,
) -> Result<(), BundleError> {
    set_mode(top, 0o755)?;
    for (rel, (mode, content)) in tree {
        let path = top.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        match content {
            Content::Bytes(bytes) => {
                std::fs::write(&path, bytes).map_err(io(&path))?;
                set_mode(&path, mode & 0o7555)?;
            }
            Content::Link(target) => {
                std::os::unix::fs::symlink(target.as_ref(), &path).map_err(io(&path))?;
            }
        }
    }
    if let Some((dir, ours)) = origin {
        let mut text = format!(
            "# kdrill: its built-in data with these files of --root over it, from\n{}\n",
            dir.display()
        );
        for rel in ours {
            text.push_str(rel);
            text.push('\n');
        }
        let path = top.join(ORIGIN_FILE);
        std::fs::write(&path, text).map_err(io(&path))?;
        set_mode(&path, 0o444)?;
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<(), BundleError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io(path))
}

/// Removes scratch folders that runs which died left behind (best effort).
fn sweep(roots: &Path) {
    let Ok(entries) = std::fs::read_dir(roots) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > STALE_SCRATCH);
        if stale && entry.file_name().to_string_lossy().starts_with(".partial-") {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Where the operator wrote a file of a merged root: `Some(<--root folder>/<rel>)` when `path`
/// lies in a merged root and came from `--root`, else `None`.
pub fn origin_of(path: &Path) -> Option<PathBuf> {
    let top = path
        .ancestors()
        .skip(1)
        .find(|d| d.join(ORIGIN_FILE).is_file())?;
    let rel = path.strip_prefix(top).ok()?.to_str()?;
    let text = std::fs::read_to_string(top.join(ORIGIN_FILE)).ok()?;
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    let dir = PathBuf::from(lines.next()?);
    lines.any(|l| l == rel).then(|| dir.join(rel))
}

/// A relative path written in a data file (a local kernel's `vmlinuz:`, a scenario's overlay),
/// from the file's own folder: in the root when it is there, else beside the file the operator
/// wrote (a kernel built next to a `--root` entry is not copied into the cache).
pub fn beside(file: &Path, written: &Path) -> PathBuf {
    let base = file.parent().unwrap_or(Path::new("."));
    let here = base.join(written);
    if here.exists() || written.is_absolute() {
        return here;
    }
    origin_of(file)
        .and_then(|o| Some(o.parent()?.join(written)))
        .unwrap_or(here)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn the_builtin_root_is_made_once_read_only_with_modes_and_links() {
        let cache = tempfile::tempdir().unwrap();
        let root = builtin(cache.path()).unwrap();
        assert_eq!(
            builtin(cache.path()).unwrap(),
            root,
            "made once, found after"
        );
        assert_eq!(root.parent().unwrap(), cache.path().join("roots"));
        // Execute bits kept, write bits gone.
        assert_eq!(mode(&root.join("images/minimal/init")), 0o555);
        assert_eq!(
            mode(
                &root
                    .join("images/debian/root/etc/initramfs-tools/scripts/init-top/kdrill-capture")
            ),
            0o555
        );
        assert_eq!(mode(&root.join("images/debian/root/etc/fstab")), 0o444);
        assert_eq!(mode(&root), 0o755);
        let link = root.join(
            "scenarios/overlays/ssh/etc/systemd/system/sockets.target.wants/systemd-networkd.socket",
        );
        assert_eq!(
            std::fs::read_link(link).unwrap(),
            Path::new("/lib/systemd/system/systemd-networkd.socket")
        );
        // The Debian recipe finds its files there.
        let recipe = crate::spec::debian::load(
            &root,
            &crate::spec::images::test_registry()
                .find("debian-bookworm")
                .unwrap(),
        )
        .unwrap();
        assert!(recipe.files_dir().join("finish").is_file());
        assert!(!root.join(ORIGIN_FILE).exists());
    }

    #[test]
    fn runs_racing_to_make_the_same_root_share_the_winners() {
        let cache = tempfile::tempdir().unwrap();
        let made: Vec<PathBuf> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4).map(|_| s.spawn(|| builtin(cache.path()))).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap().unwrap())
                .collect()
        });
        assert!(made.iter().all(|d| *d == made[0]), "{made:?}");
        let left: Vec<_> = std::fs::read_dir(cache.path().join("roots"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 1, "scratch folders left behind: {left:?}");
    }

    #[test]
    fn a_stale_scratch_folder_is_swept() {
        let cache = tempfile::tempdir().unwrap();
        let stale = cache.path().join("roots/.partial-dead");
        std::fs::create_dir_all(&stale).unwrap();
        let old = SystemTime::now() - 2 * STALE_SCRATCH;
        std::fs::File::open(&stale)
            .unwrap()
            .set_modified(old)
            .unwrap();
        builtin(cache.path()).unwrap();
        assert!(!stale.exists());
    }

    #[test]
    fn root_files_add_and_replace_and_keep_their_origin() {
        let cache = tempfile::tempdir().unwrap();
        let ops = tempfile::tempdir().unwrap();
        let over = ops.path();
        std::fs::create_dir_all(over.join("kernels/build/lib/modules/6.6.0")).unwrap();
        std::fs::create_dir_all(over.join("scenarios/overlays/ops/etc")).unwrap();
        std::fs::write(
            over.join("kernels/mine.yaml"),
            "id: mine\nwhy: test\nsource:\n  kind: local\n  vmlinuz: build/bzImage\n  modules: build/lib/modules/6.6.0\n",
        )
        .unwrap();
        std::fs::write(over.join("kernels/build/bzImage"), "kernel").unwrap();
        let sysrq =
            "id: sysrq\ndescription: the operator's own\ntrigger: sysrq\nexpect:\n  log: [mine]\n";
        std::fs::write(over.join("scenarios/sysrq.yaml"), sysrq).unwrap();
        std::fs::write(over.join("scenarios/overlays/ops/etc/x"), "x").unwrap();
        let root = merged(cache.path(), over).unwrap();
        assert_ne!(root, builtin(cache.path()).unwrap());
        assert_eq!(merged(cache.path(), over).unwrap(), root);
        // Added, replaced, kept.
        assert!(root.join("kernels/mine.yaml").is_file());
        assert!(root.join("kernels/debian-6.1.yaml").is_file());
        assert!(
            !root.join("kernels/build").exists(),
            "a kernel build is not data"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("scenarios/sysrq.yaml")).unwrap(),
            sysrq
        );
        assert!(root.join("scenarios/overlays/ops/etc/x").is_file());
        assert!(root
            .join("scenarios/overlays/ssh/etc/default/kdump-tools")
            .is_file());
        // Where each file came from.
        assert_eq!(
            origin_of(&root.join("scenarios/sysrq.yaml")),
            Some(over.join("scenarios/sysrq.yaml"))
        );
        assert_eq!(origin_of(&root.join("scenarios/nmi.yaml")), None);
        // A local kernel's relative paths find the kernel beside the operator's entry.
        let mine = crate::spec::kernel::load(&root, "mine").unwrap();
        let crate::spec::kernel::KernelSource::Local { vmlinuz, modules } = mine.source else {
            panic!("a local entry");
        };
        assert_eq!(vmlinuz, over.join("kernels/build/bzImage"));
        assert_eq!(modules, over.join("kernels/build/lib/modules/6.6.0"));
        // Changing a file makes another root.
        std::fs::write(over.join("scenarios/overlays/ops/etc/x"), "y").unwrap();
        assert_ne!(merged(cache.path(), over).unwrap(), root);
    }

    #[test]
    fn a_root_that_is_not_there_is_an_error_naming_it() {
        let cache = tempfile::tempdir().unwrap();
        let err = merged(cache.path(), Path::new("/nonexistent/ops")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("--root /nonexistent/ops: no such folder"),
            "{err}"
        );
    }
}
