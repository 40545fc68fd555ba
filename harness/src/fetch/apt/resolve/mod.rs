//! Choosing packages from an archive index: a pinned `package=version`, the newest complete
//! kernel of a series (or of the newest series) and flavour, in any of Debian's layouts
//! (`fetch/layout.rs`), with the other packages of that kernel and the header packages its
//! headers depend on. Leftovers (a release whose modules, base or headers are not listed) are
//! skipped and named.

use std::cmp::Ordering;

use crate::fetch::apt::index::Record;
use crate::fetch::layout::{self, LAYOUTS};
use crate::host::packages::version::{self, Constraint};

/// The kernel-related records of every index of one release's suites.
#[derive(Debug, Clone, Default)]
pub struct Index {
    pub records: Vec<Record>,
}

/// Names kdrill reads from an index: kernel images (signed and unsigned, every layout), their
/// modules and base packages, headers, kbuild.
pub fn wanted(name: &str) -> bool {
    [
        "linux-image-",
        "linux-binary-",
        "linux-modules-",
        "linux-base-",
        "linux-headers-",
        "linux-kbuild-",
    ]
    .iter()
    .any(|prefix| name.starts_with(prefix))
}

/// Which series a tracking entry follows: one (`6.12`, `7.3`), or the newest its suite has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Series<'a> {
    Fixed(&'a str),
    Newest,
}

impl<'a> Series<'a> {
    /// `newest` (see `spec::kernel::NEWEST`) or a series.
    pub fn parse(series: &'a str) -> Series<'a> {
        if series == crate::spec::kernel::NEWEST {
            Series::Newest
        } else {
            Series::Fixed(series)
        }
    }

    fn allows(&self, series: &str) -> bool {
        match self {
            Series::Fixed(wanted) => *wanted == series,
            Series::Newest => true,
        }
    }

    fn describe(&self) -> String {
        match self {
            Series::Fixed(series) => series.to_string(),
            Series::Newest => "newest-series".into(),
        }
    }
}

/// One kernel as the archive lists it: its image package, the other packages of its layout and
/// its header packages, all present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kernel {
    pub image: Record,
    /// The other packages of a split kernel (modules, base), at the image's version.
    pub parts: Vec<Record>,
    pub headers: Vec<Record>,
    pub release: String,
    /// From the Version: `7.3~rc7-1~exp1` → `7.3`.
    pub series: String,
    /// Newer kernels of the series passed over, and why (a part not listed).
    pub skipped: Vec<String>,
}

impl Index {
    /// The record of `package` at exactly `version`.
    pub fn find(&self, package: &str, version: &str) -> Option<&Record> {
        self.records.iter().find(|r| {
            r.package == package && version::compare(&r.version, version) == Ordering::Equal
        })
    }

    /// The newest version of `package` allowed by `constraint`.
    pub fn newest(&self, package: &str, constraint: Option<&Constraint>) -> Option<&Record> {
        self.records
            .iter()
            .filter(|r| r.package == package && constraint.is_none_or(|c| c.allows(&r.version)))
            .max_by(|a, b| version::compare(&a.version, &b.version))
    }

    /// The newest complete kernel of `series` and `flavour` (`amd64`, `cloud-amd64`,
    /// `rt-amd64`): its unsigned image, the other packages of its layout and its headers, each
    /// listed at the image's version. An incomplete newer one is skipped (and named in
    /// [`Kernel::skipped`]); when none is complete, the error says what each lacks.
    pub fn newest_kernel(&self, series: Series, flavour: &str) -> Result<Kernel, String> {
        let mut images: Vec<&Record> = self
            .records
            .iter()
            .filter(|r| {
                image_series(&r.package, &r.version, flavour).is_some_and(|s| series.allows(&s))
            })
            .collect();
        images.sort_by(|a, b| version::compare(&b.version, &a.version));
        let mut skipped = Vec::new();
        for image in images {
            match self.kernel_of(image) {
                Ok(mut kernel) => {
                    skipped.extend(self.signed_only(series, flavour, &kernel.image.version));
                    kernel.skipped = skipped;
                    return Ok(kernel);
                }
                Err(why) => skipped.push(why),
            }
        }
        let wanted = format!("{} {flavour}", series.describe());
        if !skipped.is_empty() {
            return Err(format!(
                "no {wanted} kernel is complete in the archive: {}",
                skipped.join("; ")
            ));
        }
        let signed = self.signed_only(series, flavour, "0");
        if !signed.is_empty() {
            return Err(format!(
                "no {wanted} kernel is complete in the archive: {}",
                signed.join("; ")
            ));
        }
        Err(format!(
            "no {wanted} kernel is listed (no {} of that series and flavour)",
            LAYOUTS
                .iter()
                .map(|l| layout::fill(l.image, "<release>"))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(" or ")
        ))
    }

    /// The image of the newest complete kernel of `series` and `flavour`.
    pub fn newest_image(&self, series: &str, flavour: &str) -> Option<Record> {
        self.newest_kernel(Series::parse(series), flavour)
            .ok()
            .map(|k| k.image)
    }

    /// Every series with a complete `flavour` kernel, oldest first.
    pub fn series(&self, flavour: &str) -> Vec<String> {
        let mut all: Vec<String> = self
            .records
            .iter()
            .filter_map(|r| image_series(&r.package, &r.version, flavour))
            .collect();
        all.sort_by(|a, b| version::compare(a, b));
        all.dedup();
        all.retain(|s| self.newest_kernel(Series::Fixed(s), flavour).is_ok());
        all
    }

    /// The newest complete `flavour` kernel of a series newer than `series`: Debian has moved
    /// on (backports and sid go 7.2 → 7.3 → 7.4) and an entry of a fixed series stays behind.
    pub fn newer_series(&self, series: &str, flavour: &str) -> Option<Kernel> {
        let newest = self.newest_kernel(Series::Newest, flavour).ok()?;
        (version::compare(&newest.series, series) == Ordering::Greater).then_some(newest)
    }

    /// Releases newer than `than` that are listed only as signed packages (Debian keeps the
    /// unsigned image, modules, base and headers of the last uploads only).
    fn signed_only(&self, series: Series, flavour: &str, than: &str) -> Vec<String> {
        let mut out: Vec<&Record> = self
            .records
            .iter()
            .filter(|r| version::compare(&r.version, than) == Ordering::Greater)
            .filter(|r| {
                LAYOUTS.iter().any(|l| {
                    signed_release(l.signed, &r.package).is_some_and(|release| {
                        kernel_series(release, &r.version, flavour)
                            .is_some_and(|s| series.allows(&s))
                            && LAYOUTS.iter().all(|any| {
                                self.find(&layout::fill(any.image, release), &r.version)
                                    .is_none()
                            })
                    })
                })
            })
            .collect();
        out.sort_by(|a, b| version::compare(&b.version, &a.version));
        out.dedup_by(|a, b| a.version == b.version);
        out.iter()
            .map(|r| {
                format!(
                    "{} {} is listed only signed (Debian keeps the unsigned image, modules and headers of its last uploads only)",
                    r.package, r.version
                )
            })
            .collect()
    }

    /// The whole kernel of `image`: the other packages of its layout and its header packages at
    /// its version, or what is missing.
    pub fn kernel_of(&self, image: &Record) -> Result<Kernel, String> {
        let release = layout::release_of(&image.package)
            .ok_or_else(|| format!("{} is no kernel image package", image.package))?;
        let mut missing = Vec::new();
        let mut parts = Vec::new();
        for name in layout::parts_of(&image.package) {
            match self.find(&name, &image.version) {
                Some(record) => parts.push(record.clone()),
                None => missing.push(name),
            }
        }
        let headers = self.headers_for(image);
        if let Err(why) = &headers {
            if missing.is_empty() {
                return Err(format!("{} {}: {why}", image.package, image.version));
            }
            missing.push(format!("linux-headers-{release}"));
        }
        if !missing.is_empty() {
            return Err(format!(
                "{} {} lacks {} at that version",
                image.package,
                image.version,
                missing.join(", ")
            ));
        }
        Ok(Kernel {
            image: image.clone(),
            parts,
            headers: headers?,
            release: release.to_string(),
            series: series_of_version(&image.version).unwrap_or_default(),
            skipped: Vec::new(),
        })
    }

    /// The header packages to build modules against `image`: `linux-headers-<release>` at the
    /// image's version, then, depth first, every `linux-headers-*` and `linux-kbuild-*` it
    /// depends on, each the newest version its constraint allows.
    pub fn headers_for(&self, image: &Record) -> Result<Vec<Record>, String> {
        let release = release_of(&image.package).ok_or_else(|| {
            format!(
                "{} is not named linux-image-<release>-unsigned or linux-binary-unsigned-<release>",
                image.package
            )
        })?;
        let name = format!("linux-headers-{release}");
        let first = self.find(&name, &image.version).ok_or_else(|| {
            format!(
                "{name} {} is not in the archive: the kernel's headers were not published with it",
                image.version
            )
        })?;
        let mut out = vec![first.clone()];
        let mut next = 0;
        while next < out.len() {
            let depends = out[next].depends.clone();
            next += 1;
            for alternatives in depends {
                let Some(dep) = alternatives.iter().find(|d| {
                    d.package.starts_with("linux-headers-")
                        || d.package.starts_with("linux-kbuild-")
                }) else {
                    continue;
                };
                if out.iter().any(|r| r.package == dep.package) {
                    continue;
                }
                let record = self
                    .newest(&dep.package, dep.constraint.as_ref())
                    .ok_or_else(|| {
                        format!(
                            "{} needs {}{}, which no configured archive serves",
                            out[next - 1].package,
                            dep.package,
                            dep.constraint
                                .as_ref()
                                .map(|c| format!(" ({} {})", c.op, c.version))
                                .unwrap_or_default()
                        )
                    })?;
                out.push(record.clone());
            }
        }
        Ok(out)
    }
}

/// The release of a kernel image package of any layout (`linux-image-6.1.0-47-amd64-unsigned`
/// → `6.1.0-47-amd64`, `linux-binary-unsigned-7.3-amd64` → `7.3-amd64`).
pub fn release_of(image: &str) -> Option<&str> {
    layout::release_of(image)
}

/// The series of a Debian kernel version: its upstream part up to the second dot, any `~rc`
/// left out (`6.1.170-3` → `6.1`, `6.12.117-1~deb12u1` → `6.12`, `7.3~rc7-1~exp1` → `7.3`).
pub fn series_of_version(version: &str) -> Option<String> {
    let version = version.split_once(':').map_or(version, |(_, v)| v);
    let upstream = version.rsplit_once('-').map_or(version, |(u, _)| u);
    let numeric = upstream
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .next()?;
    let mut fields = numeric.split('.');
    let (major, minor) = (fields.next()?, fields.next()?);
    (!major.is_empty() && !minor.is_empty()).then(|| format!("{major}.{minor}"))
}

/// Does the ABI part of a release (`6.1.0-47`, `6.12.115+deb13.1`, `7.3.4+deb13`, `7.3`) belong
/// to `series`? After the series: more `.<n>`, then maybe `-<abi number>`, then maybe
/// `+<tag>[.<n>]`. (`7.3-rt` is the rt flavour's, not an amd64 ABI.)
fn abi_fits(abi: &str, series: &str) -> bool {
    let Some(mut rest) = abi.strip_prefix(series) else {
        return false;
    };
    let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    while let Some(after) = rest.strip_prefix('.') {
        let n = digits(after);
        if n == 0 {
            return false;
        }
        rest = &after[n..];
    }
    if let Some(after) = rest.strip_prefix('-') {
        let n = digits(after);
        if n == 0 {
            return false;
        }
        rest = &after[n..];
    }
    match rest.strip_prefix('+') {
        None => rest.is_empty(),
        Some(tag) => {
            tag.starts_with(|c: char| c.is_ascii_alphanumeric())
                && tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
        }
    }
}

/// The series of `release` at `version` if it is a `flavour` kernel whose name fits its version.
fn kernel_series(release: &str, version: &str, flavour: &str) -> Option<String> {
    let abi = release.strip_suffix(flavour)?.strip_suffix('-')?;
    let series = series_of_version(version)?;
    abi_fits(abi, &series).then_some(series)
}

/// The series of an unsigned kernel image of `flavour` (`None`: not one).
fn image_series(package: &str, version: &str, flavour: &str) -> Option<String> {
    kernel_series(release_of(package)?, version, flavour)
}

/// The release a signed package of `pattern` names (`linux-binary-unsigned-…` is not signed).
fn signed_release<'a>(pattern: &str, package: &'a str) -> Option<&'a str> {
    if release_of(package).is_some() {
        return None;
    }
    let (head, tail) = pattern.split_once("{release}")?;
    let release = package.strip_prefix(head)?.strip_suffix(tail)?;
    (!release.is_empty()).then_some(release)
}

/// Is `name` the unsigned image of a kernel of `series` and `flavour`? Between the series and
/// the flavour: more version numbers, then `-<abi>` (6.1: `0-47`) or `+<tag>` (6.12:
/// `117+deb12`, `115+deb13.1`), or nothing (experimental's `7.3`).
pub fn is_image_of(name: &str, series: &str, flavour: &str) -> bool {
    release_of(name)
        .and_then(|r| r.strip_suffix(flavour))
        .and_then(|r| r.strip_suffix('-'))
        .is_some_and(|abi| abi_fits(abi, series))
}

#[cfg(test)]
mod tests;

/// The series and ABI rules, alone (`tests.rs` runs whole indexes).
#[cfg(test)]
mod series_tests {
    use super::*;

    #[test]
    fn series_from_the_version() {
        for (version, series) in [
            ("6.1.170-3", Some("6.1")),
            ("6.12.117-1~deb12u1", Some("6.12")),
            ("7.3~rc7-1~exp1", Some("7.3")),
            ("7.3.4-1~bpo13+1", Some("7.3")),
            ("1:7.10.2-1", Some("7.10")),
            ("7-1", None),
        ] {
            assert_eq!(series_of_version(version).as_deref(), series, "{version}");
        }
        for (abi, fits) in [
            ("6.1.0-47", true),
            ("6.12.117+deb12", true),
            ("6.12.115+deb13.1", true),
            ("7.3", true),
            ("7.3-rt", false),
            ("7.3.4+", false),
            ("6.12.117", true),
            ("6.123", false),
        ] {
            let series = if abi.starts_with("6.1.") {
                "6.1"
            } else if abi.starts_with("6.12") || abi.starts_with("6.123") {
                "6.12"
            } else {
                "7.3"
            };
            assert_eq!(abi_fits(abi, series), fits, "{abi} in {series}");
        }
    }
}
