//! From a kernel entry to the exact packages a case uses: a pinned entry as written (no network
//! needed while its packages are cached), a `version: track` entry (of a series, or of the
//! newest series of its suite) resolved once per process against fresh lists. Looking a pin up
//! in the archive, and the "gone, newest is …" error.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use crate::fetch::apt::index::Record;
use crate::fetch::apt::resolve::{Index, Kernel, Series};
use crate::fetch::apt::tree::{Tree, MAX_AGE};
use crate::fetch::kernel::FetchError;
use crate::spec::archive::{self, Archives};
use crate::spec::kernel::{DebPackage, KernelSource, KernelSpec};

/// The packages of one Debian kernel entry, as this run uses them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    pub entry: String,
    pub image: DebPackage,
    /// The other packages of a split kernel (`linux-modules-<release>`, `linux-base-<release>`).
    pub parts: Vec<DebPackage>,
    pub headers: Vec<DebPackage>,
    /// Resolved from `version: track` (the entry pins nothing itself).
    pub tracked: bool,
    pub suite: String,
    /// The entry's series; for a tracking entry the series it resolved to (`newest` → `7.3`).
    pub series: Option<String>,
    pub flavour: Option<String>,
    pub archives: Archives,
}

/// Resolutions of tracking entries in this process: every case of a run uses the same kernel,
/// even if the archive moves on while it runs.
static TRACKED: Mutex<BTreeMap<String, Pinned>> = Mutex::new(BTreeMap::new());

/// The packages of `spec` (`None` for a local kernel). Tracking entries query the archive
/// (lists at most an hour old); pinned ones do not.
pub fn pin(spec: &KernelSpec, cache: &Path) -> Result<Option<Pinned>, FetchError> {
    let KernelSource::Debian {
        suite,
        series,
        flavour,
        parts,
        headers,
        ..
    } = &spec.source
    else {
        return Ok(None);
    };
    let archives = archive::load(spec.project_root())?;
    if let Some(image) = spec.source.pinned_image() {
        check_parts(&image, parts).map_err(|detail| FetchError::Resolve {
            entry: spec.id.clone(),
            detail,
        })?;
        return Ok(Some(Pinned {
            entry: spec.id.clone(),
            image,
            parts: parts.clone(),
            headers: headers.clone(),
            tracked: false,
            suite: suite.clone(),
            series: series.clone(),
            flavour: flavour.clone(),
            archives,
        }));
    }
    let key = format!("{}\n{}\n{}", spec.path.display(), suite, archives.sources());
    if let Some(done) = TRACKED.lock().ok().and_then(|m| m.get(&key).cloned()) {
        return Ok(Some(done));
    }
    let (series, flavour) = (
        series.clone().unwrap_or_default(),
        flavour.clone().unwrap_or_default(),
    );
    let index = Tree::new(cache, &archives).index(suite, MAX_AGE)?;
    let kernel = newest(&index, &spec.id, suite, &series, &flavour, &archives)?;
    for note in &kernel.skipped {
        eprintln!("kdrill: {} skips {note}", spec.id);
    }
    let pinned = Pinned {
        entry: spec.id.clone(),
        image: deb(&kernel.image),
        parts: kernel.parts.iter().map(deb).collect(),
        headers: kernel.headers.iter().map(deb).collect(),
        tracked: true,
        suite: suite.clone(),
        series: Some(kernel.series.clone()),
        flavour: Some(flavour.clone()),
        archives,
    };
    eprintln!(
        "kdrill: {} tracks {} {} in {suite}: {} {} (series {})",
        spec.id, series, flavour, pinned.image.package, pinned.image.version, kernel.series
    );
    if let Ok(mut map) = TRACKED.lock() {
        map.insert(key, pinned.clone());
    }
    Ok(Some(pinned))
}

/// The newest complete kernel of `series` (or the newest series) and `flavour` in `index`.
fn newest(
    index: &Index,
    entry: &str,
    suite: &str,
    series: &str,
    flavour: &str,
    archives: &Archives,
) -> Result<Kernel, FetchError> {
    index
        .newest_kernel(Series::parse(series), flavour)
        .map_err(|detail| FetchError::NoSeries {
            entry: entry.into(),
            suite: suite.into(),
            archives: archives.describe_release(suite),
            detail,
        })
}

/// A pinned image of a split layout needs its other packages, named for its release and at its
/// version; a one-package layout has none.
fn check_parts(image: &DebPackage, parts: &[DebPackage]) -> Result<(), String> {
    let wanted = crate::fetch::layout::parts_of(&image.package);
    let named: Vec<&str> = parts.iter().map(|p| p.package.as_str()).collect();
    if named != wanted.iter().map(String::as_str).collect::<Vec<_>>() {
        return Err(if wanted.is_empty() {
            format!(
                "{} is a one-package kernel: remove `parts:` ({})",
                image.package,
                named.join(", ")
            )
        } else {
            format!(
                "{} is one of several packages of its kernel: `parts:` must list {} (`cargo xtask kernels --repin` fills them in)",
                image.package,
                wanted.join(" and ")
            )
        });
    }
    match parts.iter().find(|p| p.version != image.version) {
        Some(p) => Err(format!(
            "`parts:` pins {} {}, the image is {}: the packages of one kernel share its version",
            p.package, p.version, image.version
        )),
        None => Ok(()),
    }
}

fn deb(record: &Record) -> DebPackage {
    DebPackage {
        package: record.package.clone(),
        version: record.version.clone(),
        sha256: record.sha256.clone(),
    }
}

/// The archive's record of `pkg`, one of `pinned`'s packages: it must be served (else
/// [`FetchError::Gone`], naming the newest of the series and the re-pin command) and list the
/// sha256 the entry pins.
pub fn lookup(pkg: &DebPackage, pinned: &Pinned, cache: &Path) -> Result<Record, FetchError> {
    let tree = Tree::new(cache, &pinned.archives);
    let index = tree.index_with(&pinned.suite, &pkg.package, &pkg.version)?;
    let Some(record) = index.find(&pkg.package, &pkg.version) else {
        let newest = match (&pinned.series, &pinned.flavour) {
            (Some(series), Some(flavour)) => index
                .newest_image(series, flavour)
                .map(|r| format!("{} {}", r.package, r.version)),
            _ => index
                .newest(&pkg.package, None)
                .map(|r| format!("{} {}", r.package, r.version)),
        };
        return Err(FetchError::Gone {
            package: pkg.package.clone(),
            version: pkg.version.clone(),
            archives: pinned.archives.describe_release(&pinned.suite),
            newest: newest
                .unwrap_or_else(|| "none: no configured archive serves this series".into()),
            entry: pinned.entry.clone(),
        });
    };
    if !record.sha256.eq_ignore_ascii_case(&pkg.sha256) {
        return Err(FetchError::Listed {
            package: pkg.package.clone(),
            version: pkg.version.clone(),
            listed: record.sha256.clone(),
            pinned: pkg.sha256.clone(),
            origin: record.origin.clone(),
        });
    }
    Ok(record.clone())
}

/// What `--repin` did to an entry.
#[derive(Debug, Clone)]
pub struct Repinned {
    pub from: String,
    pub to: String,
    pub changed: bool,
    pub notes: Vec<String>,
}

/// Rewrites the entry at `path` to the newest complete kernel of its series and flavour (that
/// kernel's other packages and header packages too), from lists fetched within the last
/// minute; comments stay.
pub fn repin_file(path: &Path, cache: &Path) -> Result<Repinned, FetchError> {
    let spec = crate::spec::kernel::from_file(path)?;
    let fail = |detail: String| FetchError::Resolve {
        entry: spec.id.clone(),
        detail,
    };
    let (
        KernelSource::Debian {
            suite,
            series: Some(series),
            flavour: Some(flavour),
            ..
        },
        Some(old),
    ) = (&spec.source, spec.source.pinned_image())
    else {
        return Err(fail(if spec.source.is_tracking() {
            "it tracks its series (`version: track`): there is nothing to re-pin".into()
        } else {
            "only a pinned Debian entry with `series` and `flavour` can be re-pinned".into()
        }));
    };
    let archives = archive::load(spec.project_root())?;
    let index = Tree::new(cache, &archives).index(suite, std::time::Duration::from_secs(60))?;
    let kernel = newest(&index, &spec.id, suite, series, flavour, &archives)?;
    let new = deb(&kernel.image);
    let parts: Vec<DebPackage> = kernel.parts.iter().map(deb).collect();
    let headers: Vec<DebPackage> = kernel.headers.iter().map(deb).collect();
    let text = crate::spec::yaml::read(path)?;
    let (rewritten, notes) = crate::fetch::apt::repin::rewrite(
        &text,
        &crate::fetch::apt::repin::Repin {
            old_image: &old,
            new_image: &new,
            new_parts: &parts,
            new_headers: &headers,
            flavour,
        },
    )
    .map_err(fail)?;
    let changed = rewritten != text;
    if changed {
        let partial = path.with_extension("yaml.partial");
        let io = |source| FetchError::Io {
            path: partial.clone(),
            source,
        };
        std::fs::write(&partial, &rewritten).map_err(io)?;
        // What was written must still be a valid entry before it replaces the old one.
        if let Err(err) =
            crate::spec::yaml::parse::<crate::spec::kernel::KernelSpec>(path, &rewritten)
        {
            let _ = std::fs::remove_file(&partial);
            return Err(err.into());
        }
        std::fs::rename(&partial, path).map_err(io)?;
    }
    Ok(Repinned {
        from: format!("{} {}", old.package, old.version),
        to: format!("{} {}", new.package, new.version),
        changed,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deb(package: &str, version: &str) -> DebPackage {
        DebPackage {
            package: package.into(),
            version: version.into(),
            sha256: "0".into(),
        }
    }

    #[test]
    fn a_split_pin_lists_its_parts_at_its_version() {
        let image = deb("linux-binary-unsigned-7.3.4+deb13-amd64", "7.3.4-1~bpo13+1");
        let modules = deb("linux-modules-7.3.4+deb13-amd64", "7.3.4-1~bpo13+1");
        let base = deb("linux-base-7.3.4+deb13-amd64", "7.3.4-1~bpo13+1");
        check_parts(&image, &[modules.clone(), base.clone()]).unwrap();
        let err = check_parts(&image, std::slice::from_ref(&modules)).unwrap_err();
        assert_eq!(err, "linux-binary-unsigned-7.3.4+deb13-amd64 is one of several packages of its kernel: `parts:` must list linux-modules-7.3.4+deb13-amd64 and linux-base-7.3.4+deb13-amd64 (`cargo xtask kernels --repin` fills them in)");
        let old_base = deb("linux-base-7.3.4+deb13-amd64", "7.3.3-1~bpo13+1");
        let err = check_parts(&image, &[modules.clone(), old_base]).unwrap_err();
        assert!(
            err.contains("the packages of one kernel share its version"),
            "{err}"
        );
        let single = deb("linux-image-6.12.118+deb13-amd64-unsigned", "6.12.118-1");
        check_parts(&single, &[]).unwrap();
        let err = check_parts(&single, &[modules]).unwrap_err();
        assert!(
            err.contains("is a one-package kernel: remove `parts:`"),
            "{err}"
        );
    }
}
