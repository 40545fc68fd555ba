//! Resolution cases: hand-made indexes, and real `Packages` paragraphs of every layout
//! (`../fixtures/`, taken from the Debian archive on 2026-12-06).

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
    // The rt image is listed without its headers: no complete rt kernel.
    assert!(index.newest_image("6.1", "rt-amd64").is_none());
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
    let image = index
        .find("linux-image-6.1.0-50-amd64-unsigned", "6.1.180-1")
        .unwrap()
        .clone();
    let err = index.headers_for(&image).unwrap_err();
    assert_eq!(err, "linux-headers-6.1.0-50-amd64 needs linux-kbuild-6.1 (>= 6.1.180-1), which no configured archive serves");
}

/// The real paragraphs of `suites` (`../fixtures/<suite>.Packages`), as kdrill's tree reads them.
fn real(suites: &[&str]) -> Index {
    let mut records = Vec::new();
    for suite in suites {
        let text = match *suite {
            "bookworm" => include_str!("../fixtures/bookworm.Packages"),
            "trixie" => include_str!("../fixtures/trixie.Packages"),
            "trixie-security" => include_str!("../fixtures/trixie-security.Packages"),
            "trixie-backports" => include_str!("../fixtures/trixie-backports.Packages"),
            "sid" => include_str!("../fixtures/sid.Packages"),
            "experimental" => include_str!("../fixtures/experimental.Packages"),
            other => panic!("no fixture {other}"),
        };
        for mut record in crate::fetch::apt::index::parse(text, suite, &wanted) {
            record.suite = suite.to_string();
            records.push(record);
        }
    }
    Index { records }
}

fn names(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| format!("{} {}", r.package, r.version))
        .collect()
}

/// `package version` of the image, its parts and headers, the release and the series.
fn check(
    kernel: &Kernel,
    image: &str,
    parts: &[&str],
    headers: &[&str],
    release: &str,
    series: &str,
) {
    assert_eq!(
        format!("{} {}", kernel.image.package, kernel.image.version),
        image
    );
    assert_eq!(names(&kernel.parts), parts);
    assert_eq!(names(&kernel.headers), headers);
    assert_eq!(kernel.release, release);
    assert_eq!(kernel.series, series);
}

#[test]
fn bookworm_boot_layout() {
    let index = real(&["bookworm"]);
    let kernel = index.newest_kernel(Series::Fixed("6.1"), "amd64").unwrap();
    check(
        &kernel,
        "linux-image-6.1.0-50-amd64-unsigned 6.1.176-1",
        &[],
        &[
            "linux-headers-6.1.0-50-amd64 6.1.176-1",
            "linux-headers-6.1.0-50-common 6.1.176-1",
            "linux-kbuild-6.1 6.1.176-1",
        ],
        "6.1.0-50-amd64",
        "6.1",
    );
    assert_eq!(
        kernel.image.sha256,
        "439422e41d2dbb840b60b81e3bf5e5955bfa56b7a8c268aec83c9ff882d421e6"
    );
    assert!(kernel.skipped.is_empty(), "{:?}", kernel.skipped);
    // The rt image is listed, its headers are not in this index: not a complete kernel.
    let err = index
        .newest_kernel(Series::Fixed("6.1"), "rt-amd64")
        .unwrap_err();
    assert!(
        err.starts_with("no 6.1 rt-amd64 kernel is complete in the archive: linux-image-6.1.0-50-rt-amd64-unsigned 6.1.176-1: linux-headers-6.1.0-50-rt-amd64 6.1.176-1 is not in the archive"),
        "{err}"
    );
}

#[test]
fn trixie_merged_usr_layout_from_trixie_and_its_security_suite() {
    let index = real(&["trixie", "trixie-security"]);
    let kernel = index.newest_kernel(Series::Fixed("6.12"), "amd64").unwrap();
    check(
        &kernel,
        "linux-image-6.12.118+deb13-amd64-unsigned 6.12.118-1",
        &[],
        &[
            "linux-headers-6.12.118+deb13-amd64 6.12.118-1",
            "linux-headers-6.12.118+deb13-common 6.12.118-1",
            "linux-kbuild-6.12.118+deb13 6.12.118-1",
        ],
        "6.12.118+deb13-amd64",
        "6.12",
    );
    assert_eq!(
        kernel.image.sha256,
        "c86cba92a78c0ae7fe9fc937b4f757af2d5c5eab31cb0d8182eb636cabd78d59"
    );
    // trixie (main) alone: its point release's kernel.
    let main = real(&["trixie"]);
    let kernel = main.newest_kernel(Series::Fixed("6.12"), "amd64").unwrap();
    assert_eq!(kernel.image.version, "6.12.117-1");
    assert_eq!(main.series("amd64"), ["6.12"]);
}

/// `6.12.115+deb13.1` (6.12.115-2, an ABI bump within one upstream version) is a kernel like any
/// other, and newer than `6.12.115+deb13` (6.12.115-1).
#[test]
fn an_abi_with_a_dot_is_a_kernel_too() {
    let mut index = real(&["trixie-security"]);
    index.records.retain(|r| !r.package.contains("6.12.118"));
    let kernel = index.newest_kernel(Series::Fixed("6.12"), "amd64").unwrap();
    check(
        &kernel,
        "linux-image-6.12.115+deb13.1-amd64-unsigned 6.12.115-2",
        &[],
        &[
            "linux-headers-6.12.115+deb13.1-amd64 6.12.115-2",
            "linux-headers-6.12.115+deb13.1-common 6.12.115-2",
            "linux-kbuild-6.12.115+deb13.1 6.12.115-2",
        ],
        "6.12.115+deb13.1-amd64",
        "6.12",
    );
    assert!(is_image_of(
        "linux-image-6.12.115+deb13.1-amd64-unsigned",
        "6.12",
        "amd64"
    ));
}

#[test]
fn trixie_backports_split_layout_newest_series_and_leftovers() {
    let index = real(&["trixie-backports"]);
    let newest = index.newest_kernel(Series::Newest, "amd64").unwrap();
    check(
        &newest,
        "linux-binary-unsigned-7.3.4+deb13-amd64 7.3.4-1~bpo13+1",
        &[
            "linux-modules-7.3.4+deb13-amd64 7.3.4-1~bpo13+1",
            "linux-base-7.3.4+deb13-amd64 7.3.4-1~bpo13+1",
        ],
        &[
            "linux-headers-7.3.4+deb13-amd64 7.3.4-1~bpo13+1",
            "linux-headers-7.3.4+deb13-common 7.3.4-1~bpo13+1",
            "linux-kbuild-7.3.4+deb13 7.3.4-1~bpo13+1",
        ],
        "7.3.4+deb13-amd64",
        "7.3",
    );
    let shas: Vec<&str> = std::iter::once(&newest.image)
        .chain(&newest.parts)
        .map(|r| &r.sha256[..8])
        .collect();
    assert_eq!(shas, ["f7192653", "b3ea0192", "56635054"]);
    assert!(newest.skipped.is_empty(), "{:?}", newest.skipped);
    assert_eq!(
        index.newest_kernel(Series::Fixed("7.3"), "amd64").unwrap(),
        newest
    );
    let older = index.newest_kernel(Series::Fixed("7.2"), "amd64").unwrap();
    assert_eq!(
        older.image.package,
        "linux-binary-unsigned-7.2.12+deb13-amd64"
    );
    assert_eq!(index.series("amd64"), ["7.2", "7.3"]);
    // An entry of 7.2 hears that 7.3 has appeared; one of 7.3 hears nothing.
    assert_eq!(index.newer_series("7.2", "amd64"), Some(newest.clone()));
    assert_eq!(index.newer_series("7.3", "amd64"), None);
    assert_eq!(
        index.newer_series("7.10", "amd64"),
        None,
        "7.10 is newer than 7.3"
    );

    // 7.1 is listed only as signed leftovers (no unsigned binary, modules, base, headers).
    let err = index
        .newest_kernel(Series::Fixed("7.1"), "amd64")
        .unwrap_err();
    assert_eq!(err, "no 7.1 amd64 kernel is complete in the archive: linux-binary-7.1.13+deb13-amd64 7.1.13-1~bpo13+1 is listed only signed (Debian keeps the unsigned image, modules and headers of its last uploads only)");
    // The rt flavour's binary is listed here without its modules, base and headers.
    let err = index.newest_kernel(Series::Newest, "rt-amd64").unwrap_err();
    assert_eq!(err, "no newest-series rt-amd64 kernel is complete in the archive: linux-binary-unsigned-7.3.4+deb13-rt-amd64 7.3.4-1~bpo13+1 lacks linux-modules-7.3.4+deb13-rt-amd64, linux-base-7.3.4+deb13-rt-amd64, linux-headers-7.3.4+deb13-rt-amd64 at that version");
    assert!(index.newest_kernel(Series::Fixed("6.12"), "amd64").unwrap_err().starts_with(
        "no 6.12 amd64 kernel is listed (no linux-binary-unsigned-<release> or linux-image-<release>-unsigned of that series and flavour)"
    ));
}

/// A newer upload whose modules are not (yet, or any more) listed is skipped for the newest
/// complete one, and named.
#[test]
fn an_incomplete_newer_kernel_is_skipped_and_named() {
    let mut index = real(&["trixie-backports"]);
    index
        .records
        .retain(|r| r.package != "linux-modules-7.3.4+deb13-amd64");
    let kernel = index.newest_kernel(Series::Newest, "amd64").unwrap();
    assert_eq!(kernel.image.version, "7.2.12-1~bpo13+1");
    assert_eq!(kernel.series, "7.2");
    assert_eq!(
        kernel.skipped,
        ["linux-binary-unsigned-7.3.4+deb13-amd64 7.3.4-1~bpo13+1 lacks linux-modules-7.3.4+deb13-amd64 at that version"]
    );
    let mut index = real(&["trixie-backports"]);
    index
        .records
        .retain(|r| r.package != "linux-headers-7.3.4+deb13-common");
    let kernel = index.newest_kernel(Series::Newest, "amd64").unwrap();
    assert_eq!(kernel.image.version, "7.2.12-1~bpo13+1");
    assert!(kernel.skipped[0].contains("needs linux-headers-7.3.4+deb13-common (= 7.3.4-1~bpo13+1), which no configured archive serves"), "{:?}", kernel.skipped);
}

#[test]
fn sid_split_layout() {
    let index = real(&["sid"]);
    let kernel = index.newest_kernel(Series::Newest, "amd64").unwrap();
    check(
        &kernel,
        "linux-binary-unsigned-7.2.13+deb14-amd64 7.2.13-1",
        &[
            "linux-modules-7.2.13+deb14-amd64 7.2.13-1",
            "linux-base-7.2.13+deb14-amd64 7.2.13-1",
        ],
        &[
            "linux-headers-7.2.13+deb14-amd64 7.2.13-1",
            "linux-headers-7.2.13+deb14-common 7.2.13-1",
            "linux-kbuild-7.2.13+deb14 7.2.13-1",
        ],
        "7.2.13+deb14-amd64",
        "7.2",
    );
    // The `linux-base` tools package (not linux-base-<release>) is not read at all.
    assert!(!index.records.iter().any(|r| r.package == "linux-base"));
}

/// experimental: release `7.3-amd64` (no patch level, no +debNN), version `7.3~rc7-1~exp1`.
#[test]
fn experimental_release_candidate() {
    let index = real(&["experimental"]);
    let kernel = index.newest_kernel(Series::Newest, "amd64").unwrap();
    check(
        &kernel,
        "linux-binary-unsigned-7.3-amd64 7.3~rc7-1~exp1",
        &[
            "linux-modules-7.3-amd64 7.3~rc7-1~exp1",
            "linux-base-7.3-amd64 7.3~rc7-1~exp1",
        ],
        &[
            "linux-headers-7.3-amd64 7.3~rc7-1~exp1",
            "linux-headers-7.3-common 7.3~rc7-1~exp1",
            "linux-kbuild-7.3 7.3~rc7-1~exp1",
        ],
        "7.3-amd64",
        "7.3",
    );
    // Its signed metapackage `linux-image-7.3-amd64` is no leftover: the kernel is complete.
    assert!(kernel.skipped.is_empty(), "{:?}", kernel.skipped);
    assert!(is_image_of(
        "linux-binary-unsigned-7.3-amd64",
        "7.3",
        "amd64"
    ));
    assert!(!is_image_of(
        "linux-binary-unsigned-7.3-cloud-amd64",
        "7.3",
        "amd64"
    ));
}
