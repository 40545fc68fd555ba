//! The archives kernel packages come from (`archives.yaml`, or the file `KDRILL_ARCHIVES` names):
//! URL, suites, components, the keyring their `InRelease` must be signed with.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::spec::yaml::{self, YamlError};

/// The project's list, compiled in: used when neither `KDRILL_ARCHIVES` nor a project
/// `archives.yaml` is there (a kernel entry copied elsewhere).
const DEFAULT: &str = include_str!("../../../archives.yaml");
/// The environment variable naming a replacement list (a mirror, a snapshot, a private archive).
pub const ENV: &str = "KDRILL_ARCHIVES";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArchivesFile {
    archives: Vec<Archive>,
}

/// One archive: `deb <url> <suite> <components>` signed by `keyring`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Archive {
    pub url: String,
    pub suites: Vec<String>,
    #[serde(default = "default_components")]
    pub components: Vec<String>,
    #[serde(default = "default_keyring")]
    pub keyring: PathBuf,
    /// `false` for a snapshot archive, whose Release file's `Valid-Until` has passed.
    #[serde(default = "yes")]
    pub check_valid_until: bool,
}

fn default_components() -> Vec<String> {
    vec!["main".into()]
}
fn default_keyring() -> PathBuf {
    PathBuf::from("/usr/share/keyrings/debian-archive-keyring.gpg")
}
fn yes() -> bool {
    true
}

/// The archives in use and the file they were read from (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archives {
    pub list: Vec<Archive>,
    pub from: PathBuf,
}

impl Archives {
    /// `url suite, url suite, …`, for messages.
    pub fn describe(&self) -> String {
        self.list
            .iter()
            .flat_map(|a| a.suites.iter().map(move |s| format!("{} {s}", a.url)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `url suite, …` of the suites `release` covers (see [`suite_matches`]), for messages about
    /// where a kernel was looked for; every archive when none matches.
    pub fn describe_release(&self, release: &str) -> String {
        let suites: Vec<String> = self
            .list
            .iter()
            .flat_map(|a| {
                a.suites
                    .iter()
                    .filter(|s| suite_matches(release, s))
                    .map(move |s| format!("{} {s}", a.url))
            })
            .collect();
        if suites.is_empty() {
            self.describe()
        } else {
            suites.join(", ")
        }
    }

    /// The deb822 `sources` file apt reads for these archives.
    pub fn sources(&self) -> String {
        self.list
            .iter()
            .map(|a| {
                let mut s = format!(
                    "Types: deb\nURIs: {}\nSuites: {}\nComponents: {}\nArchitectures: amd64\nSigned-By: {}\n",
                    a.url,
                    a.suites.join(" "),
                    a.components.join(" "),
                    a.keyring.display()
                );
                if !a.check_valid_until {
                    s.push_str("Check-Valid-Until: no\n");
                }
                s
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Does the archive suite `suite` belong to the entry's `wanted` release (`bookworm` covers
/// `bookworm`, `bookworm-security`, `bookworm-updates`, …)?
pub fn suite_matches(wanted: &str, suite: &str) -> bool {
    suite == wanted
        || suite
            .strip_prefix(wanted)
            .is_some_and(|rest| rest.starts_with('-'))
}

/// The archives for kernel entries under `project_root` (`None`: not known): `KDRILL_ARCHIVES`,
/// else `<root>/archives.yaml`, else the compiled-in default.
pub fn load(project_root: Option<&Path>) -> Result<Archives, YamlError> {
    if let Some(file) = std::env::var_os(ENV).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(file);
        return parse(&path, &yaml::read(&path)?);
    }
    if let Some(path) = project_root
        .map(|r| r.join("archives.yaml"))
        .filter(|p| p.is_file())
    {
        return parse(&path, &yaml::read(&path)?);
    }
    parse(Path::new("archives.yaml (built in)"), DEFAULT)
}

/// Parses an archives list read from `path`.
pub(crate) fn parse(path: &Path, text: &str) -> Result<Archives, YamlError> {
    let file: ArchivesFile = yaml::parse(path, text)?;
    let invalid = |message: String| YamlError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    if file.archives.is_empty() {
        return Err(invalid("no archives: list at least one".into()));
    }
    for a in &file.archives {
        if !(a.url.starts_with("http://")
            || a.url.starts_with("https://")
            || a.url.starts_with("file:/"))
        {
            return Err(invalid(format!(
                "archive `{}`: the url must start with http://, https:// or file:/",
                a.url
            )));
        }
        if a.suites.is_empty() || a.components.is_empty() {
            return Err(invalid(format!(
                "archive `{}`: give at least one suite and one component",
                a.url
            )));
        }
    }
    Ok(Archives {
        list: file.archives,
        from: path.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_debian_and_its_security_archive() {
        let archives = parse(Path::new("archives.yaml"), DEFAULT).unwrap();
        assert_eq!(
            archives.describe(),
            "http://deb.debian.org/debian bookworm, http://deb.debian.org/debian trixie, \
             http://deb.debian.org/debian trixie-backports, http://deb.debian.org/debian forky, \
             http://deb.debian.org/debian sid, http://deb.debian.org/debian experimental, \
             http://deb.debian.org/debian-security bookworm-security, \
             http://deb.debian.org/debian-security trixie-security"
        );
        let sources = archives.sources();
        assert!(sources.contains(
            "URIs: http://deb.debian.org/debian-security\nSuites: bookworm-security trixie-security\nComponents: main\n"
        ));
        assert!(sources.contains("Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"));
        // Only the frozen suites skip Valid-Until, in a stanza of their own.
        assert_eq!(sources.matches("Check-Valid-Until: no").count(), 1);
        let frozen = sources
            .split("\n\n")
            .find(|s| s.contains("Check-Valid-Until: no"))
            .unwrap();
        assert!(
            frozen.contains("Suites: forky sid experimental\n"),
            "{frozen}"
        );
    }

    #[test]
    fn a_release_is_described_by_its_own_suites() {
        let archives = parse(Path::new("archives.yaml"), DEFAULT).unwrap();
        assert_eq!(
            archives.describe_release("trixie"),
            "http://deb.debian.org/debian trixie, http://deb.debian.org/debian trixie-backports, \
             http://deb.debian.org/debian-security trixie-security"
        );
        assert_eq!(
            archives.describe_release("sid"),
            "http://deb.debian.org/debian sid"
        );
        // A release no archive serves: every archive, so the message says where kdrill looked.
        assert_eq!(archives.describe_release("buster"), archives.describe());
    }

    #[test]
    fn a_snapshot_archive_skips_valid_until() {
        let text = "archives:\n  - url: http://snapshot.debian.org/archive/debian/20261201T000000Z\n    suites: [bookworm]\n    check_valid_until: false\n";
        let archives = parse(Path::new("a.yaml"), text).unwrap();
        assert!(archives.sources().ends_with("Check-Valid-Until: no\n"));
    }

    #[test]
    fn bad_lists_say_what_to_fix() {
        let err = parse(Path::new("a.yaml"), "archives: []\n").unwrap_err();
        assert_eq!(err.to_string(), "a.yaml: no archives: list at least one");
        let err = parse(
            Path::new("a.yaml"),
            "archives:\n  - url: deb.debian.org/debian\n    suites: [bookworm]\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("must start with http://"), "{err}");
        let err = parse(
            Path::new("a.yaml"),
            "archives:\n  - url: http://x\n    suite: [bookworm]\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("a.yaml:3:"), "{err}");
    }

    #[test]
    fn suites_of_a_release() {
        assert!(suite_matches("bookworm", "bookworm"));
        assert!(suite_matches("bookworm", "bookworm-security"));
        assert!(!suite_matches("bookworm", "bookwormy"));
        assert!(!suite_matches("bookworm-security", "bookworm"));
    }
}
