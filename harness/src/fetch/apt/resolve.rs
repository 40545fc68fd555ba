//! Choosing packages from an archive index: a pinned `package=version`, the newest kernel of a
//! series and flavour (`version: track`), and the header packages that kernel's headers depend on.

use std::cmp::Ordering;

use crate::fetch::apt::index::Record;
use crate::fetch::apt::version::{self, Constraint};

/// The kernel-related records of every index of one release's suites.
#[derive(Debug, Clone, Default)]
pub struct Index {
    pub records: Vec<Record>,
}

/// Names kdrill reads from an index: kernel images, headers, kbuild.
pub fn wanted(name: &str) -> bool {
    name.starts_with("linux-image-")
        || name.starts_with("linux-headers-")
        || name.starts_with("linux-kbuild-")
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

    /// The newest unsigned kernel image of `series` (`6.1`, `6.12`) and `flavour` (`amd64`,
    /// `cloud-amd64`, `rt-amd64`): `linux-image-6.1.0-<abi>-amd64-unsigned` with the highest
    /// version, `linux-image-6.12.<n>+deb12-amd64-unsigned` likewise.
    pub fn newest_image(&self, series: &str, flavour: &str) -> Option<&Record> {
        self.records
            .iter()
            .filter(|r| is_image_of(&r.package, series, flavour))
            .max_by(|a, b| version::compare(&a.version, &b.version))
    }

    /// The header packages to build modules against `image`: `linux-headers-<release>` at the
    /// image's version, then, depth first, every `linux-headers-*` and `linux-kbuild-*` it
    /// depends on, each the newest version its constraint allows.
    pub fn headers_for(&self, image: &Record) -> Result<Vec<Record>, String> {
        let release = release_of(&image.package).ok_or_else(|| {
            format!(
                "{} is not named linux-image-<release>[-unsigned]",
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

/// `linux-image-6.1.0-47-amd64-unsigned` → `6.1.0-47-amd64`.
pub fn release_of(image: &str) -> Option<&str> {
    let rest = image.strip_prefix("linux-image-")?;
    Some(rest.strip_suffix("-unsigned").unwrap_or(rest))
}

/// Is `name` the unsigned image of a kernel of `series` and `flavour`? Between the series and
/// the flavour: a patch level, then `-<abi>` (6.1: `0-47`) or `+<tag>` (6.12: `117+deb12`).
pub fn is_image_of(name: &str, series: &str, flavour: &str) -> bool {
    let Some(middle) = name
        .strip_prefix("linux-image-")
        .and_then(|r| r.strip_prefix(series))
        .and_then(|r| r.strip_prefix('.'))
        .and_then(|r| r.strip_suffix("-unsigned"))
        .and_then(|r| r.strip_suffix(flavour))
        .and_then(|r| r.strip_suffix('-'))
    else {
        return false;
    };
    let digits_end = middle
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(middle.len());
    if digits_end == 0 {
        return false;
    }
    match &middle[digits_end..] {
        "" => true,
        rest if rest.starts_with('-') => {
            rest.len() > 1 && rest[1..].bytes().all(|b| b.is_ascii_digit())
        }
        rest if rest.starts_with('+') => {
            rest.len() > 1 && rest[1..].bytes().all(|b| b.is_ascii_alphanumeric())
        }
        _ => false,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::fetch::apt::index::parse_depends;

    pub(crate) fn record(package: &str, version: &str, depends: &str) -> Record {
        Record {
            package: package.into(),
            version: version.into(),
            sha256: format!("{:0>64}", package.len() + version.len()),
            size: 1,
            filename: format!("pool/main/l/linux/{package}_{version}_amd64.deb"),
            depends: parse_depends(depends),
            origin: "test".into(),
            site: "http://deb.debian.org/debian".into(),
            suite: "bookworm".into(),
        }
    }

    /// A bookworm-like index: 6.1.0-47 (point release) and -50 (security), 6.12.117.
    pub(crate) fn bookworm() -> Index {
        Index {
            records: vec![
                record("linux-image-6.1.0-47-amd64-unsigned", "6.1.170-3", "kmod"),
                record(
                    "linux-headers-6.1.0-47-amd64",
                    "6.1.170-3",
                    "linux-headers-6.1.0-47-common (= 6.1.170-3), linux-kbuild-6.1 (>= 6.1.170-3), linux-compiler-gcc-12-x86",
                ),
                record("linux-headers-6.1.0-47-common", "6.1.170-3", ""),
                record("linux-image-6.1.0-50-amd64-unsigned", "6.1.180-1", "kmod"),
                record("linux-image-6.1.0-50-rt-amd64-unsigned", "6.1.180-1", "kmod"),
                record("linux-image-6.1.0-50-cloud-amd64-unsigned", "6.1.180-1", ""),
                record(
                    "linux-headers-6.1.0-50-amd64",
                    "6.1.180-1",
                    "linux-headers-6.1.0-50-common (= 6.1.180-1), linux-kbuild-6.1 (>= 6.1.180-1), linux-compiler-gcc-12-x86",
                ),
                record("linux-headers-6.1.0-50-common", "6.1.180-1", ""),
                record("linux-kbuild-6.1", "6.1.176-1", ""),
                record("linux-kbuild-6.1", "6.1.180-1", ""),
                record("linux-image-6.1.0-9-amd64-unsigned", "6.1.27-1", ""),
                record(
                    "linux-image-6.12.117+deb12-amd64-unsigned",
                    "6.12.117-1~deb12u1",
                    "",
                ),
                record(
                    "linux-headers-6.12.117+deb12-amd64",
                    "6.12.117-1~deb12u1",
                    "linux-base (>= 4.12~), linux-headers-6.12.117+deb12-common (= 6.12.117-1~deb12u1), linux-image-6.12.117+deb12-amd64 (= 6.12.117-1~deb12u1) | linux-image-6.12.117+deb12-amd64-unsigned (= 6.12.117-1~deb12u1), linux-kbuild-6.12.117+deb12, gcc-12",
                ),
                record(
                    "linux-headers-6.12.117+deb12-common",
                    "6.12.117-1~deb12u1",
                    "",
                ),
                record("linux-kbuild-6.12.117+deb12", "6.12.117-1~deb12u1", ""),
            ],
        }
    }

    #[test]
    fn the_newest_image_of_a_series_and_flavour() {
        let index = bookworm();
        let six_one = index.newest_image("6.1", "amd64").unwrap();
        assert_eq!(six_one.package, "linux-image-6.1.0-50-amd64-unsigned");
        assert_eq!(
            index.newest_image("6.1", "rt-amd64").unwrap().package,
            "linux-image-6.1.0-50-rt-amd64-unsigned"
        );
        assert_eq!(
            index.newest_image("6.12", "amd64").unwrap().version,
            "6.12.117-1~deb12u1"
        );
        assert!(index.newest_image("6.6", "amd64").is_none());
    }

    #[test]
    fn image_names_by_series_and_flavour() {
        assert!(is_image_of(
            "linux-image-6.1.0-47-amd64-unsigned",
            "6.1",
            "amd64"
        ));
        assert!(is_image_of(
            "linux-image-6.12.117+deb12-cloud-amd64-unsigned",
            "6.12",
            "cloud-amd64"
        ));
        assert!(!is_image_of(
            "linux-image-6.1.0-47-rt-amd64-unsigned",
            "6.1",
            "amd64"
        ));
        assert!(!is_image_of(
            "linux-image-6.12.117+deb12-amd64-unsigned",
            "6.1",
            "amd64"
        ));
        assert!(!is_image_of("linux-image-6.1.0-47-amd64", "6.1", "amd64"));
        assert!(!is_image_of(
            "linux-image-6.1.0-47-amd64-dbg",
            "6.1",
            "amd64"
        ));
    }

    #[test]
    fn headers_follow_the_headers_package_dependencies() {
        let index = bookworm();
        let image = index.newest_image("6.1", "amd64").unwrap().clone();
        let headers = index.headers_for(&image).unwrap();
        let got: Vec<(&str, &str)> = headers
            .iter()
            .map(|r| (r.package.as_str(), r.version.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("linux-headers-6.1.0-50-amd64", "6.1.180-1"),
                ("linux-headers-6.1.0-50-common", "6.1.180-1"),
                ("linux-kbuild-6.1", "6.1.180-1"),
            ]
        );
        let image = index.newest_image("6.12", "amd64").unwrap().clone();
        let names: Vec<String> = index
            .headers_for(&image)
            .unwrap()
            .into_iter()
            .map(|r| r.package)
            .collect();
        assert_eq!(
            names,
            [
                "linux-headers-6.12.117+deb12-amd64",
                "linux-headers-6.12.117+deb12-common",
                "linux-kbuild-6.12.117+deb12"
            ]
        );
    }

    #[test]
    fn missing_headers_are_named() {
        let index = bookworm();
        let image = index
            .find("linux-image-6.1.0-9-amd64-unsigned", "6.1.27-1")
            .unwrap()
            .clone();
        let err = index.headers_for(&image).unwrap_err();
        assert_eq!(err, "linux-headers-6.1.0-9-amd64 6.1.27-1 is not in the archive: the kernel's headers were not published with it");
        let mut index = bookworm();
        index.records.retain(|r| r.package != "linux-kbuild-6.1");
        let image = index.newest_image("6.1", "amd64").unwrap().clone();
        let err = index.headers_for(&image).unwrap_err();
        assert_eq!(err, "linux-headers-6.1.0-50-amd64 needs linux-kbuild-6.1 (>= 6.1.180-1), which no configured archive serves");
    }
}
