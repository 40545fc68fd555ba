//! Building the Debian image once and caching it: `<cache>/images/debian-<key>/` holds the raw
//! ext4 root disk (`root.img`), its boot initrd and `image.json` (inputs, build time, size). The
//! key hashes the recipe, the mirror, the kernel's `.deb`, kdrill's guest files and the
//! overlay's files, so the image is rebuilt only when one of them changes. Built under a file
//! lock (parallel cases share one build); every command under a deadline.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::host::lock::FileLock;
use crate::host::process;
use crate::host::tools;
use crate::production::hooks;
use crate::spec::debian::{self, DebianRecipe};

/// mmdebstrap of ~230 packages (~35 s here with a warm network; the download dominates).
pub const BUILD_DEADLINE: Duration = Duration::from_secs(1200);
/// `mkfs.ext4 -d` of a ~700 MB tree.
pub const MKFS_DEADLINE: Duration = Duration::from_secs(300);
/// Waiting for another run building the same image.
pub const LOCK_WAIT: Duration = Duration::from_secs(1500);

/// What a built image records about itself (`image.json`, and `result.json`'s `image`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub key: String,
    pub suite: String,
    pub mirror: String,
    pub release: String,
    /// sha256 of the kernel's `.deb` installed in it.
    pub kernel_deb_sha256: String,
    /// sha256 over the overlay's files (modes, names, contents), when there is one.
    pub overlay_sha256: Option<String>,
    pub overlay: Option<String>,
    /// Sysctl keys the overlay sets (a route's own do not override them).
    pub operator_sysctls: Vec<String>,
    pub build_seconds: f64,
    /// Bytes the root disk holds (its apparent size is the recipe's disk size).
    pub used_bytes: u64,
}

/// A built image.
#[derive(Debug, Clone)]
pub struct DebianImage {
    pub root: PathBuf,
    pub initrd: PathBuf,
    pub record: ImageRecord,
    /// Built by this case rather than found.
    pub built_now: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("building the Debian image needs root (mmdebstrap --mode=root, and mkfs.ext4 -d keeps the files' owners): run as root, or use the minimal image")]
    NotRoot,
    #[error(transparent)]
    MissingTool(#[from] tools::MissingTool),
    #[error(transparent)]
    Lock(#[from] crate::host::lock::LockError),
    #[error(transparent)]
    Run(#[from] process::RunError),
    #[error("{step} failed ({status}); its output: {log}")]
    Step {
        step: &'static str,
        status: String,
        log: String,
    },
    #[error("{path}: {detail}")]
    Io { path: PathBuf, detail: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ImageError + '_ {
    move |e| ImageError::Io {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The overlay's files: (relative path, mode, contents or link target), sorted.
fn overlay_files(dir: &Path) -> Result<Vec<(String, u32, Vec<u8>)>, ImageError> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).map_err(io(&folder))? {
            let entry = entry.map_err(io(&folder))?;
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
            let relative = path
                .strip_prefix(dir)
                .unwrap_or(&path)
                .display()
                .to_string();
            if meta.is_dir() {
                stack.push(path);
            } else if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).map_err(io(&path))?;
                out.push((
                    relative,
                    0o120777,
                    target.display().to_string().into_bytes(),
                ));
            } else if meta.is_file() {
                let data = std::fs::read(&path).map_err(io(&path))?;
                out.push((relative, meta.permissions().mode() & 0o7777, data));
            } else {
                return Err(ImageError::Io {
                    path,
                    detail: "not a file, folder or link: an overlay holds only those".into(),
                });
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The host's apt sources, to find its Debian mirror.
fn host_sources() -> String {
    let mut text = std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    if let Ok(entries) = std::fs::read_dir("/etc/apt/sources.list.d") {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".list") || name.ends_with(".sources") {
                text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
    }
    text
}

/// The image for `recipe` with the kernel `deb` (its `release`) and `overlay`, built into
/// `cache` when no run built it before.
pub fn ensure(
    recipe: &DebianRecipe,
    deb: &Path,
    deb_sha256: &str,
    release: &str,
    overlay: Option<&Path>,
    cache: &Path,
    progress: &dyn Fn(&str),
) -> Result<DebianImage, ImageError> {
    let mirror = debian::mirror(recipe, &host_sources());
    let overlay_files = match overlay {
        Some(dir) => Some(overlay_files(dir)?),
        None => None,
    };
    let overlay_sha256 = overlay_files.as_ref().map(|files| {
        let mut h = Sha256::new();
        for (path, mode, data) in files {
            h.update(hooks::manifest_line(path, *mode, &hex(&Sha256::digest(data))).as_bytes());
        }
        hex(&h.finalize())
    });
    let operator_sysctls: Vec<String> = hooks::sysctl_keys(
        &overlay_files
            .iter()
            .flatten()
            .map(|(p, _, d)| (p.clone(), String::from_utf8_lossy(d).into_owned()))
            .collect::<Vec<_>>(),
    )
    .into_iter()
    .collect();
    let mut h = Sha256::new();
    h.update(b"kdrill-debian-image/1\n");
    h.update(format!("{recipe:?}\n{mirror}\n{deb_sha256}\n{release}\n").as_bytes());
    // How the image is made: the hooks and the staged files (with stand-in paths).
    for arg in hooks::mmdebstrap_args(
        recipe,
        &mirror,
        Path::new("/staged"),
        overlay.map(|_| Path::new("/overlay")),
        Path::new("/kernel.deb"),
        release,
        Path::new("/target"),
    ) {
        h.update(arg.as_bytes());
        h.update(b"\0");
    }
    for (path, mode, data) in hooks::staged_files(recipe, debian::GUEST_UNIT, debian::GUEST_SCRIPT)
    {
        h.update(format!("{path} {mode:o}\n").as_bytes());
        h.update(&data);
    }
    h.update(overlay_sha256.as_deref().unwrap_or("no overlay").as_bytes());
    let key = hex(&h.finalize());
    let dir = cache.join("images").join(format!("debian-{}", &key[..16]));
    let record_path = dir.join("image.json");
    let (root, initrd) = (dir.join("root.img"), dir.join("initrd.img"));
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let _lock = FileLock::acquire(&dir.join("lock"), LOCK_WAIT)?;
    if let Some(record) = std::fs::read(&record_path)
        .ok()
        .and_then(|b| serde_json::from_slice::<ImageRecord>(&b).ok())
        .filter(|r| r.key == key && root.is_file() && initrd.is_file())
    {
        return Ok(DebianImage {
            root,
            initrd,
            record,
            built_now: false,
        });
    }
    if !tools::is_root() {
        return Err(ImageError::NotRoot);
    }
    let mmdebstrap = tools::require("mmdebstrap")?;
    let mkfs = tools::require("mkfs.ext4")?;
    progress("building the Debian image (mmdebstrap, once per recipe, kernel and overlay)");
    let started = Instant::now();
    let work = dir.join("build");
    let _ = std::fs::remove_dir_all(&work);
    let staged = work.join("staged");
    for (path, mode, data) in hooks::staged_files(recipe, debian::GUEST_UNIT, debian::GUEST_SCRIPT)
    {
        let at = staged.join(path);
        std::fs::create_dir_all(at.parent().unwrap_or(&staged)).map_err(io(&staged))?;
        std::fs::write(&at, data).map_err(io(&at))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&at, std::fs::Permissions::from_mode(mode)).map_err(io(&at))?;
    }
    let target = work.join("root");
    let args = hooks::mmdebstrap_args(recipe, &mirror, &staged, overlay, deb, release, &target);
    let out = process::run(Command::new(&mmdebstrap).args(&args), BUILD_DEADLINE)?;
    std::fs::write(
        dir.join("mmdebstrap.log"),
        [&out.stdout[..], &out.stderr[..]].concat(),
    )
    .map_err(io(&dir))?;
    if !out.status.success() {
        return Err(ImageError::Step {
            step: "mmdebstrap",
            status: out.status.to_string(),
            log: format!(
                "{} (whole log: {})",
                out.last_line(),
                dir.join("mmdebstrap.log").display()
            ),
        });
    }
    let boot_initrd = target.join(format!("boot/initrd.img-{release}"));
    std::fs::copy(&boot_initrd, &initrd).map_err(io(&boot_initrd))?;
    let _ = std::fs::remove_file(&root);
    let file = std::fs::File::create(&root).map_err(io(&root))?;
    file.set_len(recipe.disk_mib << 20).map_err(io(&root))?;
    drop(file);
    let out = process::run(
        Command::new(&mkfs)
            .args([
                "-q",
                "-F",
                "-L",
                "kdrill-root",
                "-E",
                "lazy_itable_init=0",
                "-d",
            ])
            .arg(&target)
            .arg(&root),
        MKFS_DEADLINE,
    )?;
    if !out.status.success() {
        return Err(ImageError::Step {
            step: "mkfs.ext4 -d",
            status: out.status.to_string(),
            log: out.last_line(),
        });
    }
    let used_bytes = du(&target);
    let _ = std::fs::remove_dir_all(&work);
    let record = ImageRecord {
        key,
        suite: recipe.suite.clone(),
        mirror,
        release: release.to_string(),
        kernel_deb_sha256: deb_sha256.to_string(),
        overlay_sha256,
        overlay: overlay.map(|o| o.display().to_string()),
        operator_sysctls,
        build_seconds: started.elapsed().as_secs_f64(),
        used_bytes,
    };
    let json = serde_json::to_vec_pretty(&record).map_err(|e| ImageError::Io {
        path: record_path.clone(),
        detail: e.to_string(),
    })?;
    std::fs::write(&record_path, json).map_err(io(&record_path))?;
    eprintln!(
        "kdrill: built the Debian image {} in {:.0} s: {} MB used of a {} MB disk",
        dir.display(),
        record.build_seconds,
        record.used_bytes / 1_000_000,
        recipe.disk_mib
    );
    Ok(DebianImage {
        root,
        initrd,
        record,
        built_now: true,
    })
}

/// Bytes of the regular files under `dir` (the size of what the root disk holds).
fn du(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(t) if t.is_file() => total += entry.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}
