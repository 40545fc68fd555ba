//! The capture userspace: a Debian release's own busybox, kexec-tools and makedumpfile (and the
//! compiler and make that build the crasher for its kernels), in a sysroot made by mmdebstrap
//! from the archives of `archives.yaml` and cached per release, package set and the archive's
//! versions of those packages under `<cache>/userspace/<release>-<set>-<versions>/`; or the
//! host's own programs (`host`). The versions installed are read from the sysroot's dpkg status.
//!
//! A sysroot is complete once its `sysroot.json` exists (written last, after the tree was renamed
//! into place) and is never written again: a new upload of a named package is a new folder.

pub mod build;
pub mod run;
pub mod status;
pub mod used;

pub use used::Used;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::fetch::apt::tree::{AptError, Tree};
use crate::fetch::mmdebstrap::BuildError;
use crate::host::lock::{FileLock, LockError};
use crate::host::process::RunError;
use crate::spec::userspace::{self, Userspace, UserspaceData};
use crate::spec::yaml::YamlError;

/// mmdebstrap of a sysroot: ~40 s here for the capture tools (160 MB), more for a compiler; a
/// slow mirror takes longer.
pub const BUILD_DEADLINE: Duration = Duration::from_secs(600);
/// Unpacking its tarball.
pub const UNPACK_DEADLINE: Duration = Duration::from_secs(120);
/// The longest getting one sysroot can take (a wait for another run building it stands in).
pub const BUILD_WORST: Duration =
    Duration::from_secs(BUILD_DEADLINE.as_secs() + UNPACK_DEADLINE.as_secs());
/// Folders made empty in every sysroot: mount points for running its programs in a chroot
/// (`/dev` is left out of the tarball; `/kdrill` is where a build's scratch folder appears).
pub const MOUNT_POINTS: &[&str] = &["dev", "proc", "tmp", "kdrill"];

#[derive(Debug, thiserror::Error)]
pub enum UserspaceError {
    #[error(transparent)]
    Yaml(#[from] YamlError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("userspace {release}: {detail}")]
    Data { release: String, detail: String },
    #[error("userspace {release}: the archives' package lists cannot be read ({source}), and no sysroot of it was built before")]
    Offline {
        release: String,
        #[source]
        source: AptError,
    },
    #[error(
        "userspace {release}: {package} is not installed in {root} after mmdebstrap (see {log})"
    )]
    NotInstalled {
        release: String,
        package: String,
        root: PathBuf,
        log: PathBuf,
    },
    #[error("unpacking the {release} sysroot failed ({status}): {last}")]
    Unpack {
        release: String,
        status: String,
        last: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> UserspaceError + '_ {
    move |source| UserspaceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// How a sysroot was made, kept beside it (`sysroot.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SysrootRecord {
    pub release: String,
    /// The packages asked for.
    pub packages: Vec<String>,
    /// The apt source lines it was made from.
    pub sources: Vec<String>,
    /// Every package installed in it, with its version.
    pub installed: BTreeMap<String, String>,
    pub seconds: f64,
    /// What its files take on disk.
    pub bytes: u64,
    /// Seconds since the epoch.
    pub built_at: f64,
}

/// A sysroot ready to use.
#[derive(Debug, Clone)]
pub struct Sysroot {
    /// Its folder in the cache (`root/`, `sysroot.json`, the mmdebstrap log).
    pub dir: PathBuf,
    /// The root of its tree.
    pub root: PathBuf,
    pub record: SysrootRecord,
    /// Built by this call (else from the cache).
    pub fresh: bool,
}

impl Sysroot {
    /// "trixie sysroot 1a2b…: built in 39 s, 165 MB, in <dir>".
    pub fn describe(&self) -> String {
        let how = if self.fresh {
            format!("built in {:.0} s", self.record.seconds)
        } else {
            "cached".into()
        };
        format!(
            "{} sysroot ({}): {how}, {:.0} MB, in {}",
            self.record.release,
            self.record.packages.join(" "),
            self.record.bytes as f64 / 1e6,
            self.dir.display()
        )
    }
}

/// The sysroot of `release` holding `packages`, from the cache or made now. Its folder follows
/// the archive's newest versions of `packages` in the release's suites; when the package lists
/// cannot be read, the newest sysroot of the same set built before is used, with a warning.
pub fn sysroot(
    release: &str,
    packages: &[String],
    project_root: Option<&Path>,
    cache: &Path,
    progress: &dyn Fn(&str),
) -> Result<Sysroot, UserspaceError> {
    let data = userspace::load(project_root)?;
    let data_err = |detail: String| UserspaceError::Data {
        release: release.into(),
        detail,
    };
    let suites = &data.release(release).map_err(data_err)?.suites;
    let archives = crate::spec::archive::load(project_root)?;
    let sources = build::source_lines(&archives, suites).map_err(data_err)?;
    let spec = build::Spec {
        release,
        packages,
        sources: &sources,
    };
    let set = format!("{release}-{}", build::set_key(&spec));
    let top = cache.join("userspace");
    std::fs::create_dir_all(&top).map_err(io(&top))?;
    let wanted = |name: &str| packages.iter().any(|p| p == name);
    let newest = match Tree::new(cache, &archives).records_of(suites, &wanted) {
        Ok(records) => {
            let mut newest: BTreeMap<String, String> = BTreeMap::new();
            for r in records {
                let entry = newest.entry(r.package).or_insert_with(|| r.version.clone());
                if crate::host::packages::version::compare(&r.version, entry).is_gt() {
                    *entry = r.version;
                }
            }
            if let Some(missing) = packages.iter().find(|p| !newest.contains_key(*p)) {
                return Err(data_err(format!(
                    "no package {missing} in {}",
                    suites.join(", ")
                )));
            }
            newest
        }
        Err(source) => {
            return match built_before(&top, &set) {
                Some(found) => {
                    eprintln!("kdrill: {source}; using the {release} sysroot built before");
                    Ok(found)
                }
                None => Err(UserspaceError::Offline {
                    release: release.into(),
                    source,
                }),
            }
        }
    };
    let dir = top.join(format!("{set}-{}", build::versions_key(&newest)));
    let _lock = FileLock::acquire(&dir.with_extension("lock"), BUILD_WORST)?;
    if let Some(found) = complete(&dir) {
        return Ok(found);
    }
    progress(&format!("making the {release} sysroot (mmdebstrap)"));
    make(&spec, &dir)
}

/// The sysroot in `dir`, when it is complete.
fn complete(dir: &Path) -> Option<Sysroot> {
    let record: SysrootRecord =
        serde_json::from_slice(&std::fs::read(dir.join("sysroot.json")).ok()?).ok()?;
    dir.join("root").is_dir().then(|| Sysroot {
        dir: dir.to_path_buf(),
        root: dir.join("root"),
        record,
        fresh: false,
    })
}

/// The newest complete sysroot of the package set `set` (`<release>-<set key>`) in `top`.
fn built_before(top: &Path, set: &str) -> Option<Sysroot> {
    std::fs::read_dir(top)
        .ok()?
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&format!("{set}-")) && !n.ends_with(".lock"))
        })
        .filter_map(|e| complete(&e.path()))
        .max_by(|a, b| a.record.built_at.total_cmp(&b.record.built_at))
}

/// Makes the sysroot of `spec` in `dir`: mmdebstrap into a tarball in a scratch folder beside
/// it, unpacked into `root.partial`, the mount points made, the packages checked, then renamed
/// into place and `sysroot.json` written.
fn make(spec: &build::Spec, dir: &Path) -> Result<Sysroot, UserspaceError> {
    let started = Instant::now();
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    // mmdebstrap splits nothing here, but tar and a chroot prefer a path without blanks.
    let scratch = tempfile::Builder::new()
        .prefix(".kdrill-sysroot-")
        .tempdir_in(if dir.to_string_lossy().contains(char::is_whitespace) {
            std::env::temp_dir()
        } else {
            dir.to_path_buf()
        })
        .map_err(io(dir))?;
    let tar = scratch.path().join("root.tar");
    let log = dir.join("mmdebstrap.log");
    crate::fetch::mmdebstrap::run(
        "userspace",
        &build::mmdebstrap_args(spec, &tar),
        &log,
        BUILD_DEADLINE,
    )?;
    let partial = dir.join("root.partial");
    std::fs::create_dir_all(&partial).map_err(io(&partial))?;
    run::unpack(&tar, &partial, UNPACK_DEADLINE).map_err(|(status, last)| {
        UserspaceError::Unpack {
            release: spec.release.into(),
            status,
            last,
        }
    })?;
    drop(scratch);
    for point in MOUNT_POINTS {
        let path = partial.join(point);
        if std::fs::symlink_metadata(&path).is_err() {
            std::fs::create_dir_all(&path).map_err(io(&path))?;
        }
    }
    let status_file = partial.join("var/lib/dpkg/status");
    let installed =
        status::installed(&std::fs::read_to_string(&status_file).map_err(io(&status_file))?);
    if let Some(package) = spec.packages.iter().find(|p| !installed.contains_key(*p)) {
        return Err(UserspaceError::NotInstalled {
            release: spec.release.into(),
            package: package.clone(),
            root: partial,
            log,
        });
    }
    let root = dir.join("root");
    std::fs::rename(&partial, &root).map_err(io(&root))?;
    let record = SysrootRecord {
        release: spec.release.into(),
        packages: spec.packages.to_vec(),
        sources: spec.sources.to_vec(),
        installed,
        seconds: started.elapsed().as_secs_f64(),
        bytes: run::disk_usage(&root),
        built_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0),
    };
    let json = dir.join("sysroot.json");
    let partial_json = dir.join("sysroot.json.partial");
    std::fs::write(
        &partial_json,
        serde_json::to_vec_pretty(&record).unwrap_or_default(),
    )
    .map_err(io(&partial_json))?;
    std::fs::rename(&partial_json, &json).map_err(io(&json))?;
    Ok(Sysroot {
        dir: dir.to_path_buf(),
        root,
        record,
        fresh: true,
    })
}

/// A capture userspace ready for a case's image: where its programs are, and what it is.
#[derive(Debug, Clone)]
pub struct Capture {
    /// The root its programs and libraries come from: a sysroot's, or `/`.
    pub root: PathBuf,
    pub used: Used,
}

/// The capture userspace `chosen` (the kernel's own is `own`) with the recipe's `packages`: the
/// host's programs, or the release's sysroot.
pub fn capture(
    chosen: &Userspace,
    own: &Userspace,
    packages: &[String],
    project_root: Option<&Path>,
    cache: &Path,
    progress: &dyn Fn(&str),
) -> Result<Capture, UserspaceError> {
    let recorded = |installed: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        installed
            .iter()
            .filter(|(p, _)| packages.contains(p) || *p == "libc6")
            .map(|(p, v)| (p.clone(), v.clone()))
            .collect()
    };
    match chosen {
        Userspace::Host => {
            let host = std::fs::read_to_string("/var/lib/dpkg/status").unwrap_or_default();
            Ok(Capture {
                root: PathBuf::from("/"),
                used: Used {
                    name: chosen.name().into(),
                    own: chosen == own,
                    packages: recorded(&status::installed(&host)),
                    sysroot: None,
                },
            })
        }
        Userspace::Release(release) => {
            let sysroot = sysroot(release, packages, project_root, cache, progress)?;
            if sysroot.fresh {
                eprintln!("kdrill: {}", sysroot.describe());
            }
            Ok(Capture {
                used: Used {
                    name: release.clone(),
                    own: chosen == own,
                    packages: recorded(&sysroot.record.installed),
                    sysroot: Some(sysroot.dir.display().to_string()),
                },
                root: sysroot.root,
            })
        }
    }
}

/// The userspace data of a project (for callers that have no case).
pub fn data(project_root: Option<&Path>) -> Result<UserspaceData, UserspaceError> {
    Ok(userspace::load(project_root)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_complete_sysroot_is_found_again() {
        let top = tempfile::tempdir().unwrap();
        let record = |built_at: f64| SysrootRecord {
            release: "trixie".into(),
            packages: vec!["makedumpfile".into()],
            sources: Vec::new(),
            installed: BTreeMap::new(),
            seconds: 1.0,
            bytes: 0,
            built_at,
        };
        for (name, built_at, whole) in [
            ("trixie-aaaa-0001", 10.0, true),
            ("trixie-aaaa-0002", 20.0, true),
            ("trixie-aaaa-0003", 30.0, false),
            ("trixie-bbbb-0001", 40.0, true),
        ] {
            let dir = top.path().join(name);
            std::fs::create_dir_all(dir.join("root")).unwrap();
            if whole {
                let json = serde_json::to_vec(&record(built_at)).unwrap();
                std::fs::write(dir.join("sysroot.json"), json).unwrap();
            }
        }
        let found = built_before(top.path(), "trixie-aaaa").unwrap();
        assert_eq!(found.dir, top.path().join("trixie-aaaa-0002"));
        assert!(complete(&top.path().join("trixie-aaaa-0003")).is_none());
        assert!(built_before(top.path(), "sid-aaaa").is_none());
    }
}
