//! A Debian image (a recipe of kind `debian`: `images/debian-bookworm.yaml`,
//! `images/debian-trixie.yaml`): built once per recipe + kernel + overlay,
//! keyed by their hashes, under the per-user cache, and shared by every case that boots it (each
//! boots a qcow2 overlay of it). Two stages (`build.rs`): the base tarball (packages and the
//! kernel's `.deb`, keyed by the recipe's sources and packages and the `.deb`'s sha256), then
//! the image (kdrill's files, the overlay, both initrds, the raw ext4 disk). A changed overlay
//! rebuilds only the second stage.

pub mod build;
pub mod casedisk;
pub mod package;
pub mod tree;
pub mod unshare;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::fetch::kernel::KernelFiles;
use crate::host::lock::{FileLock, LockError};
use crate::host::packages::mirror;
use crate::host::tools::{self, MissingTool};
use crate::spec::debian::DebianRecipe;
use build::BuildError;
use tree::TreeError;

/// Bumped when the build steps change what they make, so older cached images are not reused.
const BUILD_VERSION: &str = "kdrill-debian-image 3";

/// The longest a build can take (both stages; a wait for another run building the same image
/// stands in for it).
pub const BUILD_WORST: Duration =
    Duration::from_secs(build::BASE_DEADLINE.as_secs() + build::IMAGE_DEADLINE.as_secs());

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    MissingTool(#[from] MissingTool),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("the Debian image installs the kernel's .deb, and {entry} has none cached (a local kernel, or the fetch did not keep it)")]
    NoDeb { entry: String },
    #[error("overlay {path}: {detail}")]
    Overlay { path: PathBuf, detail: String },
    #[error("not root, mmdebstrap builds the image in a user namespace whose hooks run as a subordinate uid, and it cannot enter {dir} (mode {mode:o}): point KDRILL_CACHE at a folder others may enter (`chmod o+x` on each folder of its path), or run as root")]
    Unenterable { dir: PathBuf, mode: u32 },
    #[error("the Debian image's initramfs needs: {0}")]
    Needs(#[from] crate::guest::needs::NeedError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ImageError + '_ {
    move |source| ImageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// How an image was built, kept beside it (`build.json`) and shown when it is reused.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildRecord {
    pub key: String,
    pub release: String,
    pub sources: Vec<String>,
    pub packages: Vec<String>,
    pub kernel_deb_sha256: String,
    /// The overlay's hash (`None`: no overlay).
    pub overlay: Option<String>,
    /// Seconds for stage 1 (`None`: the base was already cached).
    pub base_seconds: Option<f64>,
    pub image_seconds: f64,
    /// The raw disk's size and what its files take.
    pub disk_bytes: u64,
    pub disk_used_bytes: u64,
    pub initrd_bytes: u64,
    /// Seconds since the epoch.
    pub built_at: f64,
}

/// A built image, ready to be booted through an overlay.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub dir: PathBuf,
    /// The raw ext4 root disk (never written by a case).
    pub disk: PathBuf,
    /// The boot initrd built in the image.
    pub initrd: PathBuf,
    pub record: BuildRecord,
    /// The versions the image runs of the recipe's packages (its dpkg status, `dpkg-status`).
    pub packages: std::collections::BTreeMap<String, String>,
    /// Built by this call (else reused from the cache).
    pub fresh: bool,
}

/// The versions `dir`'s image runs of `wanted` (read from its `dpkg-status`; none if absent).
fn image_packages(dir: &Path, wanted: &[String]) -> std::collections::BTreeMap<String, String> {
    let status = std::fs::read_to_string(dir.join("dpkg-status")).unwrap_or_default();
    let mut installed = crate::fetch::userspace::status::installed(&status);
    installed.retain(|name, _| wanted.contains(name));
    installed
}

impl BuiltImage {
    /// The text of the image's `/etc/default/grub.d/kdump-tools.cfg`, where Debian's kdump-tools
    /// sets its `crashkernel=` default (read off the raw disk with debugfs); empty without one.
    pub fn kdump_tools_cfg(&self) -> Result<String, crate::guest::dumpdisk::DiskError> {
        crate::guest::dumpdisk::cat(&self.disk, "/etc/default/grub.d/kdump-tools.cfg")
    }

    /// "Debian image 1a2b3c4d… for 6.1.0-47-amd64: built in 82 s (base 61 s), disk 1.7 GB (812 MB used)".
    pub fn describe(&self) -> String {
        let r = &self.record;
        let mb = |b: u64| format!("{:.0} MB", b as f64 / 1e6);
        let how = if self.fresh {
            match r.base_seconds {
                Some(base) => format!(
                    "built in {:.0} s (packages {base:.0} s, image {:.0} s)",
                    base + r.image_seconds,
                    r.image_seconds
                ),
                None => format!("built in {:.0} s (packages cached)", r.image_seconds),
            }
        } else {
            "cached".to_string()
        };
        format!(
            "Debian image {}… for {}{}: {how}; disk {} ({} used), initrd {}, in {}",
            &r.key[..12],
            r.release,
            r.overlay
                .as_ref()
                .map(|h| format!(" with overlay {}…", &h[..12]))
                .unwrap_or_default(),
            mb(r.disk_bytes),
            mb(r.disk_used_bytes),
            mb(r.initrd_bytes),
            self.dir.display()
        )
    }
}

/// An overlay folder, walked and hashed.
pub struct Overlay {
    pub dir: PathBuf,
    pub items: Vec<tree::Item>,
    pub hash: String,
}

impl Overlay {
    pub fn read(dir: &Path) -> Result<Overlay, ImageError> {
        let items = tree::walk(dir).map_err(|e| ImageError::Overlay {
            path: dir.into(),
            detail: e.to_string(),
        })?;
        let hash = tree::hash(dir, &items)?;
        Ok(Overlay {
            dir: dir.into(),
            items,
            hash,
        })
    }
}

fn sha256_lines(lines: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for line in lines {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    tree::hex(&hasher.finalize())
}

/// The image for `kernel` (with `overlay`), from the cache or built now. `progress` hears each step.
pub fn image(
    recipe: &DebianRecipe,
    kernel: &KernelFiles,
    overlay: Option<&Overlay>,
    cache: &Path,
    progress: &dyn Fn(&str),
) -> Result<BuiltImage, ImageError> {
    let pinned = kernel.packages.as_ref().ok_or_else(|| ImageError::NoDeb {
        entry: kernel.release.clone(),
    })?;
    let deb = crate::fetch::kernel::cached_deb(cache, &pinned.image).ok_or_else(|| {
        ImageError::NoDeb {
            entry: pinned.entry.clone(),
        }
    })?;
    let sources = mirror::source_lines(
        &recipe.suite,
        &recipe.components,
        &recipe.mirror,
        &recipe.security,
        &mirror::host_sources(Path::new("/etc/apt")),
    );
    let packages = recipe.all_packages();
    let deb_sha = pinned.image.sha256.to_ascii_lowercase();
    let mut base_key: Vec<&str> = vec![BUILD_VERSION, "base", &recipe.suite, &deb_sha];
    base_key.extend(sources.iter().map(String::as_str));
    base_key.extend(packages.iter().map(String::as_str));
    let base_key = sha256_lines(&base_key);

    let files = recipe.files_dir();
    // kdrill's files are root/ and finish; nothing else in that folder goes into the image.
    let files_hash = format!(
        "{} {}",
        tree::hash_dir(&files.join("root"))?,
        crate::fetch::kernel::sha256_file(&files.join("finish")).map_err(|e| ImageError::Io {
            path: files.join("finish"),
            source: std::io::Error::other(e.to_string()),
        })?
    );
    let free = recipe.free_mib.to_string();
    let overlay_hash = overlay.map(|o| o.hash.clone());
    let mut image_key: Vec<&str> = vec![
        BUILD_VERSION,
        "image",
        &base_key,
        &files_hash,
        &recipe.hostname,
        &free,
        overlay_hash.as_deref().unwrap_or("no overlay"),
    ];
    // MODULES=list: what this kernel takes for the recipe's needs, derived here from its own
    // module lists (the build chroot has no modules.dep to ask until the kernel is installed).
    let index = crate::guest::modules::ModuleIndex::scan(&kernel.modules, &kernel.release)
        .map_err(crate::guest::needs::NeedError::from)?
        .with_alias_cache(cache);
    let initramfs_modules = crate::guest::needs::resolve(&index, &recipe.initramfs_needs)?.order;
    image_key.extend(initramfs_modules.iter().map(String::as_str));
    let image_key = sha256_lines(&image_key);

    let root = cache.join("images").join(recipe.name());
    let dir = root.join(&image_key[..24]);
    std::fs::create_dir_all(&root).map_err(io(&root))?;
    let _lock = FileLock::acquire(&dir.with_extension("lock"), BUILD_WORST)?;
    let record_path = dir.join("build.json");
    if let Some(record) = std::fs::read(&record_path)
        .ok()
        .and_then(|b| serde_json::from_slice::<BuildRecord>(&b).ok())
        .filter(|r| r.key == image_key)
    {
        let files = ["disk.raw", "initrd.img", "dpkg-status"];
        if files.iter().all(|f| dir.join(f).is_file()) {
            return Ok(BuiltImage {
                disk: dir.join("disk.raw"),
                initrd: dir.join("initrd.img"),
                packages: image_packages(&dir, &recipe.all_packages()),
                dir,
                record,
                fresh: false,
            });
        }
    }
    // Scratch beside the cache, so the finished disk is renamed rather than copied (a copy would
    // lose its holes); in /tmp when the cache's path has a blank, which mmdebstrap's hooks split on.
    let mut scratch = tempfile::Builder::new();
    scratch.prefix(".kdrill-image-");
    let scratch = if root.to_string_lossy().contains(char::is_whitespace) {
        scratch.tempdir()
    } else {
        scratch.tempdir_in(&root)
    }
    .map_err(io(&root))?;
    let s = scratch.path();

    // Stage 1, shared by every overlay of this kernel and recipe.
    let base_dir = root.join(format!("base-{}", &base_key[..24]));
    let base_tar = base_dir.join("base.tar");
    let base_seconds = {
        std::fs::create_dir_all(&base_dir).map_err(io(&base_dir))?;
        let _base_lock = FileLock::acquire(&base_dir.join("lock"), BUILD_WORST)?;
        if base_tar.is_file() {
            None
        } else {
            progress("installing packages (mmdebstrap)");
            let started = Instant::now();
            let deb_link = s.join("kernel.deb");
            std::os::unix::fs::symlink(&deb, &deb_link).map_err(io(&deb_link))?;
            let partial = s.join("base.tar");
            let args = build::base_args(
                &build::BaseSpec {
                    suite: &recipe.suite,
                    sources: &sources,
                    packages: &packages,
                    kernel_deb: &deb_link,
                },
                &partial,
            );
            build::run(
                "packages",
                &args,
                &base_dir.join("build-base.log"),
                build::BASE_DEADLINE,
            )?;
            move_file(&partial, &base_tar)?;
            Some(started.elapsed().as_secs_f64())
        }
    };

    // Stage 2.
    progress("building the image (initrds, disk)");
    let started = Instant::now();
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let _ = std::fs::remove_file(&record_path);
    let base_link = s.join("base.tar");
    let _ = std::fs::remove_file(&base_link);
    std::os::unix::fs::symlink(&base_tar, &base_link).map_err(io(&base_link))?;
    let files_root = files.join("root");
    let files_tar = s.join("files.tar");
    tree::pack(&files_root, &tree::walk(&files_root)?, &files_tar)?;
    let overlay_tar = match overlay {
        Some(o) => {
            let out = s.join("overlay.tar");
            tree::pack(&o.dir, &o.items, &out)?;
            Some(out)
        }
        None => None,
    };
    let finish = s.join("finish");
    std::fs::copy(files.join("finish"), &finish).map_err(io(&finish))?;
    let disk_partial = s.join("disk.raw");
    if !tools::is_root() {
        unshare::can_write(s, &disk_partial)?;
    }
    let mkfs_hook = s.join("mkfs");
    let mkfs = tools::require("mkfs.ext4")?;
    std::fs::write(
        &mkfs_hook,
        build::mkfs_script(&mkfs, &disk_partial, recipe.free_mib),
    )
    .map_err(io(&mkfs_hook))?;
    set_mode(&mkfs_hook, 0o755)?;
    let initrd_partial = s.join("initrd.img");
    let status_partial = s.join("dpkg-status");
    let mut finish_args = vec![kernel.release.clone(), recipe.hostname.clone()];
    finish_args.extend(initramfs_modules);
    let args = build::image_args(&build::ImageSpec {
        suite: &recipe.suite,
        sources: &sources,
        base_tar: &base_link,
        files_tar: &files_tar,
        overlay_tar: overlay_tar.as_deref(),
        finish: &finish,
        finish_args,
        release: &kernel.release,
        initrd_out: &initrd_partial,
        status_out: &status_partial,
        mkfs_hook: &mkfs_hook,
    });
    build::run(
        "image",
        &args,
        &dir.join("build-image.log"),
        build::IMAGE_DEADLINE,
    )?;
    set_mode(&disk_partial, 0o644)?;
    move_file(&disk_partial, &dir.join("disk.raw"))?;
    move_file(&initrd_partial, &dir.join("initrd.img"))?;
    move_file(&status_partial, &dir.join("dpkg-status"))?;
    let disk_meta = std::fs::metadata(dir.join("disk.raw")).map_err(io(&dir))?;
    let record = BuildRecord {
        key: image_key,
        release: kernel.release.clone(),
        sources,
        packages,
        kernel_deb_sha256: deb_sha,
        overlay: overlay_hash,
        base_seconds,
        image_seconds: started.elapsed().as_secs_f64(),
        disk_bytes: disk_meta.len(),
        disk_used_bytes: {
            use std::os::unix::fs::MetadataExt;
            disk_meta.blocks() * 512
        },
        initrd_bytes: std::fs::metadata(dir.join("initrd.img"))
            .map(|m| m.len())
            .unwrap_or(0),
        built_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0),
    };
    let json = serde_json::to_vec_pretty(&record).unwrap_or_default();
    std::fs::write(&record_path, json).map_err(io(&record_path))?;
    Ok(BuiltImage {
        disk: dir.join("disk.raw"),
        initrd: dir.join("initrd.img"),
        packages: image_packages(&dir, &recipe.all_packages()),
        dir,
        record,
        fresh: true,
    })
}

/// Renames `from` to `to`, copying when they are on different filesystems (scratch is in /tmp).
fn move_file(from: &Path, to: &Path) -> Result<(), ImageError> {
    if std::fs::rename(from, to).is_ok() {
        return Ok(());
    }
    let partial = to.with_extension("partial");
    std::fs::copy(from, &partial).map_err(io(to))?;
    std::fs::rename(&partial, to).map_err(io(to))?;
    let _ = std::fs::remove_file(from);
    Ok(())
}

/// Sets `path`'s permission bits.
fn set_mode(path: &Path, mode: u32) -> Result<(), ImageError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io(path))
}
