//! What the host's package tools say, parsed (pure): dpkg's installed packages
//! (`dpkg-query -W -f` [`DPKG_FORMAT`]), the versions apt can offer and the suites serving them
//! (`apt-cache policy`, in the C locale), and the release (`/etc/os-release`).

use super::mirror::Entry;

/// The `dpkg-query -W -f` format [`parse_dpkg`] reads.
pub const DPKG_FORMAT: &str = "${Package}\t${Version}\t${db:Status-Abbrev}\t${source:Package}\n";

/// A package dpkg has installed (status `ii` or held `hi`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub package: String,
    pub version: String,
    /// The source package (`qemu` for every QEMU binary package).
    pub source: String,
}

/// One version of a package apt knows, and the suites whose lists carry it (empty: only dpkg's
/// status file, i.e. installed from somewhere apt no longer sees).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub version: String,
    pub suites: Vec<String>,
}

/// `apt-cache policy PACKAGE`: what is installed, apt's candidate, every version it knows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    pub package: String,
    pub installed: Option<String>,
    pub candidate: Option<String>,
    pub offers: Vec<Offer>,
}

/// The host's release, from `/etc/os-release`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Release {
    /// `debian`, `ubuntu`, …
    pub id: String,
    /// `12`, `24.04`, …
    pub version_id: String,
    /// `bookworm`, `noble`, …
    pub codename: String,
}

/// Everything the planner decides from: installed packages, apt's view of the packages that
/// matter, the release and the host's apt sources.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub installed: Vec<Installed>,
    pub policies: Vec<Policy>,
    pub release: Release,
    pub sources: Vec<Entry>,
}

impl View {
    pub fn policy(&self, package: &str) -> Option<&Policy> {
        self.policies.iter().find(|p| p.package == package)
    }

    pub fn installed(&self, package: &str) -> Option<&Installed> {
        self.installed.iter().find(|i| i.package == package)
    }

    /// Whether the host's apt sources list `suite` (its lists may still be missing).
    pub fn lists_suite(&self, suite: &str) -> bool {
        self.sources
            .iter()
            .any(|e| e.suites.iter().any(|s| s == suite))
    }
}

/// The installed packages of `dpkg-query -W -f` [`DPKG_FORMAT`] output.
pub fn parse_dpkg(text: &str) -> Vec<Installed> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let (package, version, status) = (fields.next()?, fields.next()?, fields.next()?);
            let source = fields.next().filter(|s| !s.is_empty()).unwrap_or(package);
            let installed = status.starts_with("ii") || status.starts_with("hi");
            installed.then(|| Installed {
                // `pkg:amd64` for multi-arch libraries: the name alone is what apt takes.
                package: package.split(':').next().unwrap_or(package).to_string(),
                version: version.to_string(),
                // `${source:Package}` may carry a version in parentheses.
                source: source
                    .split_whitespace()
                    .next()
                    .unwrap_or(source)
                    .to_string(),
            })
        })
        .collect()
}

/// The policies of `LC_ALL=C apt-cache policy PKG…` output (packages apt does not know are
/// absent).
pub fn parse_policy(text: &str) -> Vec<Policy> {
    let mut policies: Vec<Policy> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(' ') {
            if let Some(name) = line.strip_suffix(':') {
                policies.push(Policy {
                    package: name.trim().to_string(),
                    ..Policy::default()
                });
            }
            continue;
        }
        let Some(policy) = policies.last_mut() else {
            continue;
        };
        let trimmed = line.trim();
        let none = |v: &str| (v != "(none)").then(|| v.to_string());
        if let Some(v) = trimmed.strip_prefix("Installed:") {
            policy.installed = none(v.trim());
        } else if let Some(v) = trimmed.strip_prefix("Candidate:") {
            policy.candidate = none(v.trim());
        } else if trimmed.starts_with("Version table:") {
        } else if is_version_line(line) {
            let version = trimmed.trim_start_matches("***").split_whitespace().next();
            if let Some(version) = version {
                policy.offers.push(Offer {
                    version: version.to_string(),
                    suites: Vec::new(),
                });
            }
        } else if let Some(offer) = policy.offers.last_mut() {
            // `500 http://deb.debian.org/debian bookworm/main amd64 Packages`, or
            // `100 /var/lib/dpkg/status` (no suite).
            let words: Vec<&str> = trimmed.split_whitespace().collect();
            if words.len() >= 3 && words[1].contains("://") {
                let suite = words[2].split('/').next().unwrap_or(words[2]);
                if !offer.suites.iter().any(|s| s == suite) {
                    offer.suites.push(suite.to_string());
                }
            }
        }
    }
    policies
}

/// A version line of a version table: ` *** VERSION PRIO` or five spaces then `VERSION PRIO`
/// (the lines naming where a version comes from are indented deeper).
fn is_version_line(line: &str) -> bool {
    let indent = line.len() - line.trim_start().len();
    line.trim_start().starts_with("***") || indent == 5
}

/// `ID`, `VERSION_ID` and `VERSION_CODENAME` of an os-release file (quotes removed).
pub fn parse_os_release(text: &str) -> Release {
    let mut release = Release::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value
            .trim()
            .trim_matches('"')
            .trim_matches('\'')
            .to_string();
        match key.trim() {
            "ID" => release.id = value,
            "VERSION_ID" => release.version_id = value,
            "VERSION_CODENAME" => release.codename = value,
            _ => {}
        }
    }
    release
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This project's fresh machine, as its apt saw it (December 2026).
    pub const FRESH_POLICY: &str = "qemu-utils:
  Installed: 1:10.0.2+ds-2+deb13u1~bpo12+1
  Candidate: 1:10.0.2+ds-2+deb13u1~bpo12+1
  Version table:
 *** 1:10.0.2+ds-2+deb13u1~bpo12+1 100
        100 /var/lib/dpkg/status
     1:7.2+dfsg-7+deb12u18+b2 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
     1:7.2+dfsg-7+deb12u15 500
        500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
qemu-system-x86:
  Installed: (none)
  Candidate: 1:7.2+dfsg-7+deb12u18+b2
  Version table:
     1:7.2+dfsg-7+deb12u18+b2 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
        500 http://mirror.example/debian bookworm/main amd64 Packages
";

    #[test]
    fn policy_gives_installed_candidate_and_the_suites_of_each_version() {
        let policies = parse_policy(FRESH_POLICY);
        assert_eq!(policies.len(), 2);
        let utils = &policies[0];
        assert_eq!(utils.package, "qemu-utils");
        assert_eq!(
            utils.installed.as_deref(),
            Some("1:10.0.2+ds-2+deb13u1~bpo12+1")
        );
        assert_eq!(
            utils.offers,
            [
                Offer {
                    version: "1:10.0.2+ds-2+deb13u1~bpo12+1".into(),
                    suites: vec![]
                },
                Offer {
                    version: "1:7.2+dfsg-7+deb12u18+b2".into(),
                    suites: vec!["bookworm".into()]
                },
                Offer {
                    version: "1:7.2+dfsg-7+deb12u15".into(),
                    suites: vec!["bookworm-security".into()]
                },
            ]
        );
        let system = &policies[1];
        assert_eq!(system.installed, None);
        assert_eq!(
            system.candidate.as_deref(),
            Some("1:7.2+dfsg-7+deb12u18+b2")
        );
        assert_eq!(system.offers[0].suites, ["bookworm"], "one suite, twice");
    }

    #[test]
    fn dpkg_lines_keep_installed_packages_with_their_source() {
        let text = "qemu-utils\t1:10.0.2+ds-2+deb13u1~bpo12+1\tii \tqemu\n\
                    libc6:amd64\t2.36-9\tii \tglibc\n\
                    gone\t1.0\trc \tgone\n\
                    held\t2.0\thi \t\n\
                    libfoo1\t1.2-3+b1\tii \tfoo (1.2-3)\n";
        let installed = parse_dpkg(text);
        let names: Vec<(&str, &str)> = installed
            .iter()
            .map(|i| (i.package.as_str(), i.source.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("qemu-utils", "qemu"),
                ("libc6", "glibc"),
                ("held", "held"),
                ("libfoo1", "foo")
            ]
        );
    }

    #[test]
    fn os_release_gives_id_version_and_codename() {
        let text = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n";
        assert_eq!(
            parse_os_release(text),
            Release {
                id: "debian".into(),
                version_id: "12".into(),
                codename: "bookworm".into()
            }
        );
    }
}
