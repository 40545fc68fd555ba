//! Fetching Debian kernel packages into the per-user cache, checked by sha256, and resolving
//! local kernels. A kernel Debian splits in several packages (`fetch/layout.rs`) is merged into
//! one tree of hard links, itself checked at each use.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::fetch::apt::pin::{self, Pinned};
use crate::fetch::apt::tree::{self, AptError};
use crate::fetch::layout;
use crate::host::lock::{FileLock, LockError};
use crate::host::process::{self, RunError};
use crate::host::tools;
use crate::spec::kernel::{DebPackage, KernelSource, KernelSpec};
use crate::spec::yaml::YamlError;

/// `dpkg-deb -x` of one package: a few seconds here.
pub const DPKG_DEADLINE: Duration = Duration::from_secs(120);
/// The longest fetching one package can take: the download and the extraction. (The package
/// lists are fetched at most once per case, [`tree::UPDATE_DEADLINE`], counted apart.)
pub const PACKAGE_WORST: Duration =
    Duration::from_secs(tree::DOWNLOAD_DEADLINE.as_secs() + DPKG_DEADLINE.as_secs());
/// The most packages one kernel is made of (6.19 and later: binary, modules, base).
const KERNEL_PACKAGES: u64 = 3;
/// The longest fetching a kernel can take: each of its packages, and merging them.
pub const KERNEL_WORST: Duration =
    Duration::from_secs(KERNEL_PACKAGES * PACKAGE_WORST.as_secs() + DPKG_DEADLINE.as_secs());
/// Waiting for another kdrill fetching the same package: what its fetch may take, lists
/// included. A waiter does not fetch when the holder succeeded, so in the case budget the wait
/// stands in for the work.
const LOCK_WAIT: Duration =
    Duration::from_secs(PACKAGE_WORST.as_secs() + tree::UPDATE_DEADLINE.as_secs());

/// A kernel ready to boot: its bzImage and its modules folder (`[/usr]/lib/modules/<release>`,
/// with `modules.builtin`), and for a Debian entry the packages it came from.
#[derive(Debug, Clone)]
pub struct KernelFiles {
    pub release: String,
    pub vmlinuz: PathBuf,
    pub modules: PathBuf,
    pub packages: Option<Pinned>,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    MissingTool(#[from] tools::MissingTool),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Apt(#[from] AptError),
    #[error(transparent)]
    Spec(#[from] YamlError),
    #[error("{package} {version} is no longer served by any configured archive ({archives}); the newest is {newest}: re-pin with `cargo xtask kernels --repin {entry}`")]
    Gone {
        package: String,
        version: String,
        archives: String,
        newest: String,
        entry: String,
    },
    #[error("kernel entry `{entry}`: {detail} in {suite} ({archives}): check `series`, `flavour` and `suite`")]
    NoSeries {
        entry: String,
        suite: String,
        archives: String,
        detail: String,
    },
    #[error("kernel entry `{entry}`: {detail}")]
    Resolve { entry: String, detail: String },
    #[error("{package} {version}: the archive's signed index ({origin}) lists sha256 {listed}, the kernel entry pins {pinned}: the archive serves another file under this version; check the entry")]
    Listed {
        package: String,
        version: String,
        listed: String,
        pinned: String,
        origin: String,
    },
    #[error("{path}: sha256 is {actual}, the kernel entry pins {expected}: the archive served another file; check the entry's version and sha256")]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("`dpkg-deb -x {deb}` failed: {detail}")]
    Extract { deb: PathBuf, detail: String },
    #[error("{path}: {detail}")]
    Layout { path: PathBuf, detail: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
    move |source| FetchError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Makes the kernel of `spec` available, fetching and caching it under `cache` when needed.
pub fn resolve(spec: &KernelSpec, cache: &Path) -> Result<KernelFiles, FetchError> {
    match &spec.source {
        KernelSource::Local { vmlinuz, modules } => resolve_local(vmlinuz, modules),
        KernelSource::Image => Err(FetchError::Resolve {
            entry: spec.id.clone(),
            detail: "a disk image boots the kernel inside it: there is nothing to fetch".into(),
        }),
        KernelSource::Debian { .. } => {
            let pinned = pin::pin(spec, cache)?.ok_or_else(|| FetchError::Resolve {
                entry: spec.id.clone(),
                detail: "no packages".into(),
            })?;
            let image = fetch_package(&pinned.image, &pinned, cache)?;
            let root = if pinned.parts.is_empty() {
                image
            } else {
                let mut roots = vec![image];
                for part in &pinned.parts {
                    roots.push(fetch_package(part, &pinned, cache)?);
                }
                merged(&pinned, &roots, cache)?
            };
            let found = layout::find(&root, &pinned.image.package)?;
            Ok(KernelFiles {
                release: found.release,
                vmlinuz: found.vmlinuz,
                modules: found.modules,
                packages: Some(pinned),
            })
        }
    }
}

fn resolve_local(vmlinuz: &Path, modules: &Path) -> Result<KernelFiles, FetchError> {
    if !vmlinuz.is_file() {
        return Err(FetchError::Layout {
            path: vmlinuz.into(),
            detail: "vmlinuz of the local kernel entry does not exist".into(),
        });
    }
    if !modules.is_dir() {
        return Err(FetchError::Layout {
            path: modules.into(),
            detail: "modules folder of the local kernel entry does not exist (give its /lib/modules/<release> folder)".into(),
        });
    }
    let release = modules
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    Ok(KernelFiles {
        release,
        vmlinuz: vmlinuz.into(),
        modules: modules.into(),
        packages: None,
    })
}

/// Where a Debian package version lives in the cache.
pub fn package_dir(cache: &Path, package: &str, version: &str) -> PathBuf {
    cache
        .join("debs")
        .join(format!("{package}_{}", version.replace(':', "%3a")))
}

/// Is this kernel available without fetching? (A tracking entry: never known without asking
/// the archive, so `false`.)
pub fn is_cached(spec: &KernelSpec, cache: &Path) -> bool {
    match &spec.source {
        KernelSource::Debian { parts, .. } => spec.source.pinned_image().is_some_and(|image| {
            std::iter::once(&image)
                .chain(parts)
                .all(|p| cached_deb(cache, p).is_some_and(|deb| deb.is_file()))
        }),
        KernelSource::Local { vmlinuz, modules } => vmlinuz.is_file() && modules.is_dir(),
        KernelSource::Image => true,
    }
}

/// Written last, after extraction: its presence means the folder is complete. Its first line
/// names the kept `.deb` and its sha256 (checked when it was downloaded); then the sha256 of
/// the kernel image files ([`layout::MANIFEST`]: `boot/*`, `usr/lib/modules/*/vmlinuz*`),
/// checked again at each use.
const STAMP: &str = "complete";
/// The downloaded package, kept beside its extracted tree (a guest image installs it whole).
pub const DEB_FILE: &str = "package.deb";

/// The cached `.deb` of a package fetched before, and its sha256 as verified at download.
pub fn cached_deb(cache: &Path, pkg: &DebPackage) -> Option<PathBuf> {
    let dir = package_dir(cache, &pkg.package, &pkg.version);
    let stamp = std::fs::read_to_string(dir.join(STAMP)).ok()?;
    let first = stamp.lines().next()?;
    (first == deb_line(&pkg.sha256)).then(|| dir.join(DEB_FILE))
}

fn deb_line(sha256: &str) -> String {
    format!("{}  {DEB_FILE}", sha256.to_ascii_lowercase())
}

/// Fetches a Debian package of `pinned` into the cache once (download checked by the sha256 of
/// the archive's signed index and of the entry, `dpkg-deb -x`) and returns the folder it is
/// extracted in. A damaged cache is fetched again.
pub fn fetch_package(
    pkg: &DebPackage,
    pinned: &Pinned,
    cache: &Path,
) -> Result<PathBuf, FetchError> {
    let dir = package_dir(cache, &pkg.package, &pkg.version);
    std::fs::create_dir_all(dir.parent().unwrap_or(cache)).map_err(io(cache))?;
    // Several test processes may ask for the same package at once: one fetches, the others wait.
    let _lock = FileLock::acquire(&dir.with_extension("lock"), LOCK_WAIT)?;
    let root = dir.join("root");
    let stamp = dir.join(STAMP);
    if stamp.is_file() {
        let recorded = std::fs::read_to_string(&stamp).map_err(io(&stamp))?;
        let expected = format!("{}\n{}", deb_line(&pkg.sha256), boot_manifest(&root)?);
        if recorded == expected && dir.join(DEB_FILE).is_file() {
            return Ok(root);
        }
        eprintln!(
            "kdrill: cached {} changed since it was fetched (or predates the kept .deb); fetching it again",
            dir.display()
        );
    }
    let record = pin::lookup(pkg, pinned, cache)?;
    download_and_extract(pkg, &record, pinned, cache, &dir)?;
    Ok(root)
}

/// `<sha256>  <path>` for each kernel image file under `root` ([`layout::MANIFEST`]), sorted.
fn boot_manifest(root: &Path) -> Result<String, FetchError> {
    let mut manifest = String::new();
    for path in layout::manifest_files(root) {
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        manifest.push_str(&format!("{}  {rel}\n", sha256_file(&path)?));
    }
    Ok(manifest)
}

fn download_and_extract(
    pkg: &DebPackage,
    record: &crate::fetch::apt::index::Record,
    pinned: &Pinned,
    cache: &Path,
    dir: &Path,
) -> Result<(), FetchError> {
    let dpkg_deb = tools::require("dpkg-deb")?;
    let staging = dir.with_extension("partial");
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io(&staging))?;
    }
    std::fs::create_dir_all(&staging).map_err(io(&staging))?;
    eprintln!(
        "kdrill: fetching {} {} ({:.1} MB) from {}",
        pkg.package,
        pkg.version,
        record.size as f64 / 1e6,
        record.site
    );
    let deb = staging.join(DEB_FILE);
    tree::Tree::new(cache, &pinned.archives).download(&record.url(), &pkg.sha256, &deb)?;
    // apt checked the sha256; so does kdrill, on the bytes it keeps.
    let actual = sha256_file(&deb)?;
    if !actual.eq_ignore_ascii_case(&pkg.sha256) {
        return Err(FetchError::Checksum {
            path: deb,
            expected: pkg.sha256.clone(),
            actual,
        });
    }
    let root = staging.join("root");
    let mut extract = Command::new(&dpkg_deb);
    extract.arg("-x").arg(&deb).arg(&root);
    let out = process::run(&mut extract, DPKG_DEADLINE)?;
    if !out.status.success() {
        return Err(FetchError::Extract {
            deb,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let manifest = boot_manifest(&root)?;
    std::fs::write(
        staging.join(STAMP),
        format!("{}\n{manifest}", deb_line(&pkg.sha256)),
    )
    .map_err(io(&staging))?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::rename(&staging, dir).map_err(io(dir))?;
    Ok(())
}

/// The packages of a split kernel merged into one tree, `<cache>/kernels/<image>_<version>/root`
/// (hard links into each package's extracted tree), made once. Its stamp names every package's
/// `.deb` sha256 and the kernel image's sha256, checked at each use like a package's.
fn merged(pinned: &Pinned, roots: &[PathBuf], cache: &Path) -> Result<PathBuf, FetchError> {
    let name = package_dir(cache, &pinned.image.package, &pinned.image.version)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let folder = cache.join("kernels");
    std::fs::create_dir_all(&folder).map_err(io(&folder))?;
    let _lock = FileLock::acquire(&folder.join(format!("{name}.lock")), LOCK_WAIT)?;
    let dir = folder.join(&name);
    let packages: String = std::iter::once(&pinned.image)
        .chain(&pinned.parts)
        .map(|p| format!("{} {}\n", deb_line(&p.sha256), p.package))
        .collect();
    let stamp = dir.join(STAMP);
    if let Ok(recorded) = std::fs::read_to_string(&stamp) {
        if recorded == format!("{packages}{}", boot_manifest(&dir.join("root"))?) {
            return Ok(dir.join("root"));
        }
        eprintln!(
            "kdrill: merged kernel {} changed since it was made; making it again",
            dir.display()
        );
    }
    let staging = folder.join(format!("{name}.partial"));
    for stale in [&staging, &dir] {
        if stale.exists() {
            std::fs::remove_dir_all(stale).map_err(io(stale))?;
        }
    }
    layout::merge(roots, &staging.join("root"))?;
    let manifest = boot_manifest(&staging.join("root"))?;
    std::fs::write(staging.join(STAMP), format!("{packages}{manifest}")).map_err(io(&staging))?;
    std::fs::rename(&staging, &dir).map_err(io(&dir))?;
    Ok(dir.join("root"))
}

/// Hex sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String, FetchError> {
    let mut file = File::open(path).map_err(io(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(
            sha256_file(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn the_stamp_covers_the_kernel_image_of_every_layout() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for rel in [
            "boot/vmlinuz-6.12.118+deb13-amd64",
            "usr/lib/modules/7.3-amd64/vmlinuz.unsigned",
            "usr/lib/modules/7.3-amd64/modules.builtin",
        ] {
            std::fs::create_dir_all(root.join(rel).parent().unwrap()).unwrap();
            std::fs::write(root.join(rel), rel).unwrap();
        }
        let manifest = boot_manifest(root).unwrap();
        assert!(
            manifest.contains("  boot/vmlinuz-6.12.118+deb13-amd64\n"),
            "{manifest}"
        );
        assert!(
            manifest.contains("  usr/lib/modules/7.3-amd64/vmlinuz.unsigned\n"),
            "{manifest}"
        );
        assert!(!manifest.contains("modules.builtin"), "{manifest}");
        // A changed 7.x image changes the manifest, so a damaged cache is fetched again.
        std::fs::write(
            root.join("usr/lib/modules/7.3-amd64/vmlinuz.unsigned"),
            b"x",
        )
        .unwrap();
        assert_ne!(boot_manifest(root).unwrap(), manifest);
    }
}
