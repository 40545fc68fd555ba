//! Golden disk images for the `disk` image kind's tests: an operator's own Debian disk, built by a
//! real image builder from Debian's packages (`tests/disks/*.sh`: mmdebstrap for the tree,
//! libguestfs for the disk), never by kdrill's recipe, and cached by the hash of its scripts.
//!
//! A test binary includes this file with `#[path = "support_disks.rs"] mod support_disks;` and
//! calls [`golden`]. The image is `<cache>/testdisks/<name>-<hash>.qcow2` (`<cache>`:
//! `KDRILL_CACHE`, else `~/.cache/kdrill`; `<hash>`: the first 16 hex digits of the SHA-256 of
//! its builder scripts, a variant's base's first), built when absent under a lock in that folder
//! (two test processes never build it twice), written under a temporary name and renamed on
//! success, its build log kept beside it as `<name>-<hash>.log`. Under TCG on 2 cores:
//! golden-bios and golden-uefi 3–5 min each, a variant under 20 s (docs/measurements.md).
//! Tests treat the image as read-only: boot it through a qcow2 overlay.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// One golden image: its builder script (`tests/disks/<name>.sh`), the image a variant is made
/// from, and the deadline on its whole build.
struct Recipe {
    name: &'static str,
    base: Option<&'static str>,
    limit: Duration,
}

/// The scripts' own `timeout`s end a stuck step first; these end the script as a whole.
const RECIPES: &[Recipe] = &[
    // Debian 13, BIOS + GPT + bios_grub, LVM (XFS root, ext4 /var/crash), cloud-init.
    Recipe {
        name: "golden-bios",
        base: None,
        limit: Duration::from_secs(3900),
    },
    // Debian 12, UEFI (ESP, grub-efi at the removable path), ext4 root, no cloud-init.
    Recipe {
        name: "golden-uefi",
        base: None,
        limit: Duration::from_secs(3900),
    },
    // golden-bios with USE_KDUMP=0.
    Recipe {
        name: "golden-bios-nokdump",
        base: Some("golden-bios"),
        limit: Duration::from_secs(2000),
    },
    // golden-bios with no crashkernel= on its command line (kdump-tools still on).
    Recipe {
        name: "golden-bios-nocrashkernel",
        base: Some("golden-bios"),
        limit: Duration::from_secs(2000),
    },
];

/// The kernel entry whose cached package boots libguestfs' appliance (the project's default).
const APPLIANCE_KERNEL: &str = "debian-6.1";

/// The cached golden image `name`, built first when absent. Panics with the build's last lines.
pub fn golden(name: &str) -> PathBuf {
    build(name).unwrap_or_else(|e| panic!("golden disk image {name}: {e}"))
}

fn recipe(name: &str) -> Result<&'static Recipe, String> {
    RECIPES.iter().find(|r| r.name == name).ok_or_else(|| {
        let known: Vec<&str> = RECIPES.iter().map(|r| r.name).collect();
        format!("no such image (known: {})", known.join(", "))
    })
}

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn script(name: &str) -> PathBuf {
    manifest().join("tests/disks").join(format!("{name}.sh"))
}

/// The first 16 hex digits of the SHA-256 over the image's scripts, its base's first.
fn key(name: &str) -> Result<String, String> {
    let mut chain = vec![recipe(name)?];
    while let Some(base) = chain.last().unwrap().base {
        chain.push(recipe(base)?);
    }
    let mut hash = Sha256::new();
    for r in chain.iter().rev() {
        let path = script(r.name);
        let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        hash.update(r.name.as_bytes());
        hash.update([0]);
        hash.update((text.len() as u64).to_le_bytes());
        hash.update(&text);
    }
    Ok(hash
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn build(name: &str) -> Result<PathBuf, String> {
    let recipe = recipe(name)?;
    // The base first, under its own lock: no lock is held while waiting for another.
    let base = recipe.base.map(build).transpose()?;
    let cache = kdrill::host::paths::cache_dir();
    let dir = cache.join("testdisks");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let stem = format!("{name}-{}", key(name)?);
    let image = dir.join(format!("{stem}.qcow2"));
    if image.is_file() {
        return Ok(image);
    }
    let lock_path = dir.join(format!("{name}.lock"));
    let _lock = kdrill::host::lock::FileLock::acquire(&lock_path, recipe.limit + recipe.limit)
        .map_err(|e| e.to_string())?;
    if image.is_file() {
        return Ok(image);
    }
    let log = dir.join(format!("{stem}.log"));
    eprintln!(
        "golden disk image {name}: building {} (mmdebstrap and libguestfs, minutes under TCG); log {}",
        image.display(),
        log.display()
    );
    let started = Instant::now();
    let guestfs = appliance(&cache)?;
    let pid = std::process::id();
    let temp = dir.join(format!(".{stem}.qcow2.{pid}"));
    let work = dir.join(format!(".{stem}.work.{pid}"));
    let out = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let mut command = guestfs.command("bash");
    command.arg(script(name));
    command.args(base.as_deref());
    command
        .arg(&temp)
        .arg(&work)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    let status = kdrill::host::process::run_status(&mut command, recipe.limit);
    let _ = std::fs::remove_dir_all(&work);
    let failed = match status {
        Ok(status) if status.success() && temp.is_file() => None,
        Ok(status) => Some(format!("its script ended with {status}")),
        Err(e) => Some(e.to_string()),
    };
    if let Some(why) = failed {
        let _ = std::fs::remove_file(&temp);
        let tail = kdrill::host::process::last_lines(&log, 30).join("\n");
        return Err(format!(
            "building it failed: {why}; the log's last lines ({}):\n{tail}",
            log.display()
        ));
    }
    std::fs::rename(&temp, &image).map_err(|e| format!("{}: {e}", image.display()))?;
    eprintln!(
        "golden disk image {name}: built in {} s",
        started.elapsed().as_secs()
    );
    Ok(image)
}

/// libguestfs' environment, its appliance booting the default kernel entry's cached package.
fn appliance(cache: &Path) -> Result<kdrill::guest::guestfs::Guestfs, String> {
    let workspace = manifest().parent().expect("workspace root").to_path_buf();
    let kernel = kdrill::spec::kernel::load(&workspace, APPLIANCE_KERNEL)
        .map_err(|e| format!("kernel entry {APPLIANCE_KERNEL}: {e}"))?;
    let files = kdrill::fetch::kernel::resolve(&kernel, cache)
        .map_err(|e| format!("kernel entry {APPLIANCE_KERNEL}: {e}"))?;
    kdrill::guest::guestfs::Guestfs::prepare(cache, &files).map_err(|e| e.to_string())
}
