//! The capture userspaces (`images/userspace.yaml`): which Debian release's tools capture a
//! kernel (the entry's own release by default, `userspace:` to choose another, or `host`), the
//! archive suites each release's sysroot is made of, the packages that build the crasher, and
//! makedumpfile's releases (the newest kernel each knows, the series kdrill verified above it,
//! how its `--dump-dmesg` writes a record) and the kernel × makedumpfile pairs known to write a
//! wrong dump, which `kdrill check` judges a host's makedumpfile by.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::host::packages::version;
use crate::spec::yaml::{self, YamlError};

/// The word for the machine kdrill runs on.
pub const HOST: &str = "host";

/// The data file compiled into kdrill, used when the project has none.
pub const USERSPACE_YAML: &str = include_str!("../../../images/userspace.yaml");

/// Whose programs capture a case: the host's, or a Debian release's sysroot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Userspace {
    /// The machine kdrill runs on (`host`).
    Host,
    /// A release named in `images/userspace.yaml` (`bookworm`, `trixie`, …).
    Release(String),
}

impl Userspace {
    /// `host` or a release name; anything that is not one lowercase word is an error.
    pub fn parse(word: &str) -> Result<Userspace, String> {
        if word == HOST {
            return Ok(Userspace::Host);
        }
        let ok = word.starts_with(|c: char| c.is_ascii_lowercase())
            && word
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok {
            Ok(Userspace::Release(word.to_string()))
        } else {
            Err(format!(
                "userspace `{word}` must be `host` or a Debian release name such as trixie"
            ))
        }
    }

    /// The word in YAML, on the command line and in case ids.
    pub fn name(&self) -> &str {
        match self {
            Userspace::Host => HOST,
            Userspace::Release(name) => name,
        }
    }

    /// The release of a Debian suite: its name up to the first `-` (`trixie-backports` →
    /// `trixie`, `bookworm-security` → `bookworm`).
    pub fn of_suite(suite: &str) -> Userspace {
        Userspace::Release(suite.split('-').next().unwrap_or(suite).to_string())
    }
}

impl std::fmt::Display for Userspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl From<Userspace> for String {
    fn from(u: Userspace) -> String {
        u.name().to_string()
    }
}

impl TryFrom<String> for Userspace {
    type Error = String;
    fn try_from(word: String) -> Result<Userspace, String> {
        Userspace::parse(&word)
    }
}

/// The chosen userspace among the places that may name one, highest precedence first (the
/// command line, a matrix block, the scenario, the kernel entry); `default` when none does.
pub fn choose(named: &[Option<&Userspace>], default: Userspace) -> Userspace {
    named.iter().find_map(|u| u.cloned()).unwrap_or(default)
}

/// `images/userspace.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserspaceData {
    pub releases: BTreeMap<String, Release>,
    /// Packages that build the crasher besides the compiler the headers name.
    pub build: Vec<String>,
    pub makedumpfile: Vec<MakedumpfileRelease>,
    /// Kernel × makedumpfile pairs known to write a wrong dump.
    #[serde(default)]
    pub known_bad: Vec<KnownBad>,
}

/// A kernel × makedumpfile pair known to write a wrong dump (`known_bad:`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnownBad {
    /// The first kernel (`6.12`) it hits.
    pub kernels_from: String,
    /// The last makedumpfile release (`1.7.6`) that has it.
    pub makedumpfile_up_to: String,
    /// What goes wrong.
    pub what: String,
    /// Where that is known from.
    pub source: String,
    /// What kdrill measured of it, if it did.
    #[serde(default)]
    pub measured: Option<String>,
}

/// One release's sysroot: the archive suites its packages come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    pub suites: Vec<String>,
}

/// One upstream makedumpfile release.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MakedumpfileRelease {
    /// Upstream version, e.g. `1.7.6`.
    pub version: String,
    /// Its `LATEST_VERSION`: the newest kernel it knows.
    pub latest_kernel: String,
    pub dmesg: DmesgFormat,
    /// Kernel series above `latest_kernel` that kdrill's own drills capture with it (`6.1`).
    #[serde(default)]
    pub verified: Vec<String>,
}

/// How `makedumpfile --dump-dmesg` writes one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DmesgFormat {
    /// `[%5lld.%06ld] ` and the text (1.7.2 to 1.7.4).
    Plain,
    /// `[%5lld.%06ld] [%8s] `: the caller id when the kernel exports it (1.7.5 on).
    Caller,
}

impl DmesgFormat {
    /// The word in `images/userspace.yaml`.
    pub fn word(self) -> &'static str {
        match self {
            DmesgFormat::Plain => "plain",
            DmesgFormat::Caller => "caller",
        }
    }
}

impl UserspaceData {
    /// The release `name` of the data, or an error naming the known ones.
    pub fn release(&self, name: &str) -> Result<&Release, String> {
        self.releases.get(name).ok_or_else(|| {
            format!(
                "no userspace `{name}` in images/userspace.yaml: known are {}, host",
                self.releases.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
    }

    /// The makedumpfile release of a Debian version (`1:1.7.6-1` → the `1.7.6` entry): the
    /// newest entry not newer than its upstream version (a later bug-fix release keeps its
    /// line's format); `None` below the first entry.
    pub fn makedumpfile(&self, debian_version: &str) -> Option<&MakedumpfileRelease> {
        let upstream = upstream_version(debian_version);
        self.makedumpfile
            .iter()
            .filter(|m| version::compare(&m.version, upstream) != std::cmp::Ordering::Greater)
            .max_by(|a, b| version::compare(&a.version, &b.version))
    }
}

/// The upstream part of a Debian version: `1:1.7.6-1` → `1.7.6`, `1:1.37.0-6+b9` → `1.37.0`.
pub fn upstream_version(debian: &str) -> &str {
    let without_epoch = debian.split_once(':').map_or(debian, |(_, rest)| rest);
    without_epoch
        .rsplit_once('-')
        .map_or(without_epoch, |(upstream, _)| upstream)
}

/// Does a kernel release (`6.12.117+deb13-amd64`) lie above `latest` (`6.11.4`)? Compared by
/// their first three numbers; `None` when the release does not start with numbers.
pub fn above(kernel_release: &str, latest: &str) -> Option<bool> {
    Some(release_numbers(kernel_release)? > release_numbers(latest)?)
}

/// A kernel release's first three numbers (`6.12.117+deb13-amd64` → 6, 12, 117; `7.3-amd64` →
/// 7, 3, 0: a missing patch level is 0); `None` when it does not start with two numbers.
pub fn release_numbers(text: &str) -> Option<[u64; 3]> {
    let mut out = [0u64; 3];
    let mut parts = text.split(['.', '-', '+', '~']);
    for (i, slot) in out.iter_mut().enumerate() {
        match parts.next().map(str::parse::<u64>) {
            Some(Ok(n)) => *slot = n,
            _ if i == 2 => break,
            _ => return None,
        }
    }
    Some(out)
}

/// `<root>/images/userspace.yaml` when the project has one, else the built-in data.
pub fn load(root: Option<&Path>) -> Result<UserspaceData, YamlError> {
    let data: UserspaceData = match root
        .map(|r| r.join("images/userspace.yaml"))
        .filter(|p| p.is_file())
    {
        Some(path) => yaml::load(&path)?,
        None => yaml::parse(Path::new("images/userspace.yaml"), USERSPACE_YAML)?,
    };
    if let Some((name, _)) = data.releases.iter().find(|(_, r)| r.suites.is_empty()) {
        return Err(YamlError::Invalid {
            path: "images/userspace.yaml".into(),
            message: format!("release `{name}` lists no suites"),
        });
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> UserspaceData {
        load(None).unwrap()
    }

    #[test]
    fn the_built_in_data_knows_each_release_and_makedumpfile() {
        let data = data();
        for release in ["bookworm", "trixie", "forky", "sid", "experimental"] {
            assert!(data.release(release).is_ok(), "{release}");
        }
        assert_eq!(
            data.release("trixie").unwrap().suites,
            ["trixie", "trixie-security"]
        );
        let err = data.release("trixy").unwrap_err();
        assert!(
            err.contains("known are bookworm, experimental, forky, sid, trixie, host"),
            "{err}"
        );
        assert!(data.build.iter().any(|p| p == "make"));
    }

    #[test]
    fn a_release_is_its_suite_up_to_the_first_dash() {
        let release = |s: &str| Userspace::of_suite(s).name().to_string();
        assert_eq!(release("bookworm"), "bookworm");
        assert_eq!(release("bookworm-security"), "bookworm");
        assert_eq!(release("trixie-backports"), "trixie");
        assert_eq!(release("experimental"), "experimental");
    }

    #[test]
    fn names_are_host_or_one_lowercase_word() {
        assert_eq!(Userspace::parse("host"), Ok(Userspace::Host));
        assert_eq!(
            Userspace::parse("trixie"),
            Ok(Userspace::Release("trixie".into()))
        );
        for bad in ["", "Trixie", "trixie bookworm", "../x", "-x"] {
            assert!(Userspace::parse(bad).is_err(), "{bad:?}");
        }
        let yaml: Userspace = yaml::parse(Path::new("u.yaml"), "sid\n").unwrap();
        assert_eq!(yaml, Userspace::Release("sid".into()));
        assert!(yaml::parse::<Userspace>(Path::new("u.yaml"), "Sid\n").is_err());
    }

    #[test]
    fn the_first_place_that_names_one_wins() {
        let (trixie, sid) = (
            Userspace::Release("trixie".into()),
            Userspace::Release("sid".into()),
        );
        let bookworm = Userspace::Release("bookworm".into());
        assert_eq!(choose(&[None, None], bookworm.clone()), bookworm);
        assert_eq!(choose(&[None, Some(&trixie)], bookworm.clone()), trixie);
        assert_eq!(choose(&[Some(&sid), Some(&trixie)], bookworm), sid);
    }

    #[test]
    fn makedumpfile_versions_pick_their_line() {
        let data = data();
        let pick = |v: &str| data.makedumpfile(v).map(|m| (m.version.as_str(), m.dmesg));
        assert_eq!(pick("1:1.7.2-1"), Some(("1.7.2", DmesgFormat::Plain)));
        assert_eq!(pick("1:1.7.4-2"), Some(("1.7.4", DmesgFormat::Plain)));
        assert_eq!(pick("1:1.7.6-1"), Some(("1.7.6", DmesgFormat::Caller)));
        assert_eq!(pick("1:1.7.8-1"), Some(("1.7.8", DmesgFormat::Caller)));
        // A later bug-fix release keeps its line; a newer one than the data knows, the newest.
        assert_eq!(pick("1.7.6.1-1"), Some(("1.7.6", DmesgFormat::Caller)));
        assert_eq!(pick("1:1.8.0-1"), Some(("1.7.9", DmesgFormat::Caller)));
        assert_eq!(pick("1:1.6.9-1"), None);
        assert_eq!(
            data.makedumpfile("1:1.7.6-1").unwrap().latest_kernel,
            "6.11.4"
        );
    }

    #[test]
    fn the_known_bad_pairs_name_their_source() {
        let data = data();
        let free_pages = data
            .known_bad
            .iter()
            .find(|b| b.kernels_from == "6.12")
            .unwrap();
        assert_eq!(free_pages.makedumpfile_up_to, "1.7.6");
        assert!(free_pages
            .measured
            .as_deref()
            .unwrap()
            .contains("323,037 pages dumped"));
        assert!(data.known_bad.iter().all(|b| !b.source.is_empty()));
        let bookworm = data.makedumpfile("1:1.7.2-1").unwrap();
        assert_eq!(bookworm.verified, ["6.1"]);
    }

    #[test]
    fn upstream_versions_drop_epoch_and_revision() {
        assert_eq!(upstream_version("1:1.7.6-1"), "1.7.6");
        assert_eq!(upstream_version("1:1.37.0-6+b9"), "1.37.0");
        assert_eq!(upstream_version("1:2.0.25-3+deb12u3"), "2.0.25");
        assert_eq!(upstream_version("2.36"), "2.36");
    }

    #[test]
    fn kernels_above_a_makedumpfile_ceiling() {
        assert_eq!(above("6.12.117+deb13-amd64", "6.11.4"), Some(true));
        assert_eq!(above("6.1.0-47-amd64", "6.0.1"), Some(true));
        assert_eq!(above("6.1.0-47-amd64", "6.8.4"), Some(false));
        assert_eq!(above("6.0.1", "6.0.1"), Some(false));
        assert_eq!(above("7.3-amd64", "7.0.0"), Some(true));
        assert_eq!(above("vmlinuz", "7.0.0"), None);
    }
}
