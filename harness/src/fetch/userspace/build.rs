//! The sysroot's mmdebstrap run as pure functions: the apt source lines of a release (its
//! suites, each from the archive of `archives.yaml` that lists it, with that archive's keyring
//! and `Valid-Until` rule), mmdebstrap's arguments, and the keys a sysroot is cached under.

use std::collections::BTreeMap;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::spec::archive::Archives;

/// Bumped when the build steps change what they make, so older sysroots are not reused.
pub const BUILD_VERSION: &str = "kdrill-userspace 1";

/// One-line apt sources for `suites`, in their order: `deb [signed-by=… check-valid-until=no]
/// <url> <suite> <components>`. A suite that no archive lists is an error naming the file.
pub fn source_lines(archives: &Archives, suites: &[String]) -> Result<Vec<String>, String> {
    suites
        .iter()
        .map(|suite| {
            let archive = archives
                .list
                .iter()
                .find(|a| a.suites.iter().any(|s| s == suite))
                .ok_or_else(|| {
                    format!(
                        "no archive in {} lists suite `{suite}`: add it there (or to the file KDRILL_ARCHIVES names)",
                        archives.from.display()
                    )
                })?;
            let mut options = format!("signed-by={}", archive.keyring.display());
            if !archive.check_valid_until {
                options.push_str(" check-valid-until=no");
            }
            Ok(format!(
                "deb [{options}] {} {suite} {}",
                archive.url.trim_end_matches('/'),
                archive.components.join(" ")
            ))
        })
        .collect()
}

/// What goes into one sysroot.
#[derive(Debug, Clone)]
pub struct Spec<'a> {
    /// The release (mmdebstrap's suite argument; the sources say where packages come from).
    pub release: &'a str,
    pub packages: &'a [String],
    pub sources: &'a [String],
}

/// mmdebstrap's arguments: the `essential` variant (dpkg, a shell, coreutils: what maintainer
/// scripts and kbuild's shell lines need) plus `packages`, as a tarball `out` without device
/// nodes (an ordinary user's tar cannot make them; the programs never need them) and without
/// documentation.
pub fn mmdebstrap_args(spec: &Spec, out: &Path) -> Vec<String> {
    let mut args = vec![
        "--variant=essential".to_string(),
        "--format=tar".into(),
        "--skip=output/dev".into(),
        format!("--include={}", spec.packages.join(",")),
    ];
    for excluded in ["doc", "man", "info", "locale"] {
        args.push(format!("--dpkgopt=path-exclude=/usr/share/{excluded}/*"));
    }
    args.push(spec.release.to_string());
    args.push(out.display().to_string());
    args.extend(spec.sources.iter().cloned());
    args
}

/// 12 hex digits of sha256 over `lines` (each ended by a newline).
pub fn key(lines: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for line in lines {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    hasher.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The key of a package set of a release from given sources (what stays the same while the
/// archive moves on).
pub fn set_key(spec: &Spec) -> String {
    let mut packages: Vec<&str> = spec.packages.iter().map(String::as_str).collect();
    packages.sort_unstable();
    let mut lines = vec![BUILD_VERSION, spec.release];
    lines.extend(packages);
    lines.extend(spec.sources.iter().map(String::as_str));
    key(&lines)
}

/// The key of the archive's versions of the packages named (the newest of each in the
/// release's suites): a new upload makes a new sysroot.
pub fn versions_key(versions: &BTreeMap<String, String>) -> String {
    let lines: Vec<String> = versions.iter().map(|(p, v)| format!("{p}={v}")).collect();
    key(&lines.iter().map(String::as_str).collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archives() -> Archives {
        let text = "archives:\n  - url: http://deb.debian.org/debian/\n    suites: [bookworm, trixie]\n  - url: http://deb.debian.org/debian-security\n    suites: [trixie-security]\n  - url: http://deb.debian.org/debian\n    suites: [sid]\n    check_valid_until: false\n";
        crate::spec::archive::parse(Path::new("archives.yaml"), text).unwrap()
    }

    #[test]
    fn each_suite_comes_from_the_archive_that_lists_it() {
        let a = archives();
        let suites = ["trixie".to_string(), "trixie-security".to_string()];
        assert_eq!(
            source_lines(&a, &suites).unwrap(),
            [
                "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main",
                "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security trixie-security main",
            ]
        );
        let sid = source_lines(&a, &["sid".to_string()]).unwrap();
        assert!(sid[0].contains(" check-valid-until=no] "), "{sid:?}");
        let err = source_lines(&a, &["forky".to_string()]).unwrap_err();
        assert!(
            err.starts_with("no archive in archives.yaml lists suite `forky`"),
            "{err}"
        );
    }

    #[test]
    fn mmdebstrap_makes_a_tarball_of_the_packages() {
        let packages = vec!["busybox-static".to_string(), "makedumpfile".to_string()];
        let sources = vec!["deb [signed-by=/k.gpg] http://m/debian trixie main".to_string()];
        let spec = Spec {
            release: "trixie",
            packages: &packages,
            sources: &sources,
        };
        let args = mmdebstrap_args(&spec, Path::new("/c/u/root.tar"));
        assert_eq!(
            &args[..4],
            [
                "--variant=essential",
                "--format=tar",
                "--skip=output/dev",
                "--include=busybox-static,makedumpfile"
            ]
        );
        let tail = &args[args.len() - 3..];
        assert_eq!(tail, ["trixie", "/c/u/root.tar", sources[0].as_str()]);
        assert!(args.contains(&"--dpkgopt=path-exclude=/usr/share/man/*".to_string()));
    }

    #[test]
    fn keys_follow_the_set_and_the_versions() {
        let (a, b) = (
            vec!["x".to_string(), "y".to_string()],
            vec!["y".to_string(), "x".to_string()],
        );
        let sources = vec!["deb http://m/debian trixie main".to_string()];
        let spec = |p| Spec {
            release: "trixie",
            packages: p,
            sources: &sources,
        };
        assert_eq!(
            set_key(&spec(&a)),
            set_key(&spec(&b)),
            "order does not matter"
        );
        assert_ne!(set_key(&spec(&a)), set_key(&spec(&a[..1])));
        let mut v = BTreeMap::from([("makedumpfile".to_string(), "1:1.7.6-1".to_string())]);
        let before = versions_key(&v);
        assert_eq!(before.len(), 12);
        v.insert("makedumpfile".into(), "1:1.7.6-2".into());
        assert_ne!(before, versions_key(&v));
    }
}
