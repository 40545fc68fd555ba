//! Reading `apt-get update`'s failure lines: which suite of the archives each names (an expired
//! or unreachable suite fails only the entries of its release) and which concern the whole tree.
//! Pure: the text in, the split out.

use crate::spec::archive::Archives;

/// A suite `apt-get update` could not refresh, and apt's line saying why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuiteFailure {
    pub suite: String,
    pub line: String,
}

/// apt-get update's failure lines (`E:`, `W: Failed…`, `NO_PUBKEY`; it exits 0 on some, an
/// unreachable archive is only a warning), split into those naming one suite of `archives`
/// (`<url>/dists/<suite>/…` or `<url> <suite> …`) and those naming none (the whole tree's).
pub fn failures(stderr: &str, archives: &Archives) -> (Vec<SuiteFailure>, Vec<String>) {
    let mut suites = Vec::new();
    let mut tree = Vec::new();
    for line in stderr
        .lines()
        .filter(|l| l.starts_with("E:") || l.starts_with("W: Failed") || l.contains("NO_PUBKEY"))
    {
        let named = archives.list.iter().find_map(|a| {
            let url = a.url.trim_end_matches('/');
            a.suites.iter().find(|s| {
                line.contains(&format!("{url}/dists/{s}/")) || line.contains(&format!("{url} {s} "))
            })
        });
        match named {
            Some(suite) => suites.push(SuiteFailure {
                suite: suite.clone(),
                line: line.trim().to_string(),
            }),
            None => tree.push(line.trim().to_string()),
        }
    }
    (suites, tree)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::spec::archive;

    /// apt's own lines (2026-12-06, from a tree listing the frozen forky/sid/experimental
    /// without `check_valid_until: false`, and an unreachable mirror).
    #[test]
    fn a_failing_suite_is_told_apart_from_a_failing_tree() {
        let archives = Archives {
            list: vec![
                archive::Archive {
                    url: "http://deb.debian.org/debian".into(),
                    suites: vec![
                        "bookworm".into(),
                        "trixie".into(),
                        "trixie-backports".into(),
                    ],
                    components: vec!["main".into()],
                    keyring: PathBuf::from("/k.gpg"),
                    check_valid_until: true,
                },
                archive::Archive {
                    url: "http://deb.debian.org/debian".into(),
                    suites: vec!["sid".into(), "experimental".into()],
                    components: vec!["main".into()],
                    keyring: PathBuf::from("/k.gpg"),
                    check_valid_until: true,
                },
            ],
            from: PathBuf::from("archives.yaml"),
        };
        let stderr = "\
Get:1 http://deb.debian.org/debian bookworm InRelease [151 kB]
E: Release file for http://deb.debian.org/debian/dists/sid/InRelease is expired (invalid since 30d 12h 35min 35s). Updates for this repository will not be applied.
W: GPG error: http://deb.debian.org/debian experimental InRelease: The following signatures couldn't be verified because the public key is not available: NO_PUBKEY 762F67A0B2C39DE4
W: Failed to fetch http://deb.debian.org/debian/dists/trixie-backports/InRelease  Could not resolve 'deb.debian.org'
E: Could not get lock /var/lib/apt/lists/lock
";
        let (suites, tree) = failures(stderr, &archives);
        let named: Vec<&str> = suites.iter().map(|f| f.suite.as_str()).collect();
        assert_eq!(named, ["sid", "experimental", "trixie-backports"]);
        assert!(suites[0].line.starts_with(
            "E: Release file for http://deb.debian.org/debian/dists/sid/InRelease is expired"
        ));
        assert_eq!(tree, ["E: Could not get lock /var/lib/apt/lists/lock"]);
        // `trixie` is not taken for `trixie-backports`.
        assert!(!named.contains(&"trixie"));
    }
}
