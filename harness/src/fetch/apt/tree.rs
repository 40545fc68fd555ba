//! kdrill's own apt tree in the cache (`<cache>/apt/`): its sources (from the archives list),
//! lists, keyring reference and config, so `apt-get update` and `apt-helper download-file` run
//! without root and without reading or changing the host's apt. `InRelease` is checked against
//! each archive's keyring by apt itself; a `.deb` by the sha256 its signed index lists. A suite
//! that fails to update (expired, unreachable, badly signed) fails only the entries of its
//! release, which use its earlier lists with a warning when there are some.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::fetch::apt::failures::{failures, SuiteFailure};
use crate::fetch::apt::index;
use crate::fetch::apt::resolve::{self, Index};
use crate::host::lock::{FileLock, LockError};
use crate::host::process::{self, RunError};
use crate::spec::archive::{self, Archives};

/// `apt-get update` of the tree: a Debian `Packages` index is ~9 MB compressed.
pub const UPDATE_DEADLINE: Duration = Duration::from_secs(300);
/// One `.deb`: a bookworm image is ~70 MB, trixie's ~108 MB, a trixie-backports 7.2 modules
/// package up to 163 MB (5 minutes at 550 kB/s; seconds on Debian's mirrors).
pub const DOWNLOAD_DEADLINE: Duration = Duration::from_secs(300);
/// `apt-get indextargets`: reads the lists' names, no network.
const LOCAL_DEADLINE: Duration = Duration::from_secs(60);
/// Lists older than this are fetched again before a package is looked up.
pub const MAX_AGE: Duration = Duration::from_secs(3600);
/// A package missing from lists at least this old is looked up again in fresh lists before it
/// is declared gone.
const RECHECK_AGE: Duration = Duration::from_secs(60);
/// Waiting for another kdrill updating the same tree.
const LOCK_WAIT: Duration = Duration::from_secs(UPDATE_DEADLINE.as_secs() + 60);
const APT_HELPER: &str = "/usr/lib/apt/apt-helper";

#[derive(Debug, thiserror::Error)]
pub enum AptError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("{path}: no such keyring, so the archive's signature cannot be checked: install the debian-archive-keyring package (`apt-get install debian-archive-keyring`, Debian and Ubuntu both carry it) or set `keyring:` in {archives}")]
    Keyring { path: PathBuf, archives: PathBuf },
    #[error("{tool} is missing: kdrill fetches kernels with apt (install the apt package)")]
    NoApt { tool: String },
    #[error("`apt-get update` of kdrill's apt tree ({archives}) failed: {detail}; check the network or the archives list ({file}, or KDRILL_ARCHIVES)")]
    Update {
        archives: String,
        file: PathBuf,
        detail: String,
    },
    #[error("downloading {url} failed: {detail}")]
    Download { url: String, detail: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AptError + '_ {
    move |source| AptError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The apt tree for one archives list.
#[derive(Debug, Clone)]
pub struct Tree {
    dir: PathBuf,
    archives: Archives,
}

impl Tree {
    pub fn new(cache: &Path, archives: &Archives) -> Tree {
        Tree {
            dir: cache.join("apt"),
            archives: archives.clone(),
        }
    }

    /// The kernel records of the suites of `release` (`bookworm`: bookworm, bookworm-security,
    /// …), from lists no older than `max_age` (fetched again when older, or when the archives
    /// list changed). When the lists cannot be fetched but older ones exist, those are used
    /// with a warning.
    pub fn index(&self, release: &str, max_age: Duration) -> Result<Index, AptError> {
        let _lock = self.fresh(max_age)?;
        let failed = self.failed_suites();
        self.read(release, &failed)
    }

    /// Locks the tree and fetches its lists again when they are older than `max_age` (or
    /// when they cannot be fetched but older ones exist, keeps those, with a warning).
    fn fresh(&self, max_age: Duration) -> Result<FileLock, AptError> {
        let lock = FileLock::acquire(&self.dir.with_extension("lock"), LOCK_WAIT)?;
        self.write_config()?;
        if self.age().is_none_or(|age| age > max_age) {
            if let Err(err) = self.update() {
                if self.age().is_none() {
                    return Err(err);
                }
                eprintln!("kdrill: {err}; using the lists fetched earlier");
            }
        }
        Ok(lock)
    }

    /// The records named by `keep` in the indexes of exactly `suites` (the capture userspace's
    /// packages), from lists as fresh as [`Tree::index`] makes them.
    pub fn records_of(
        &self,
        suites: &[String],
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<index::Record>, AptError> {
        let _lock = self.fresh(MAX_AGE)?;
        let failed = self.failed_suites();
        let suite_ok = |suite: &str| suites.iter().any(|s| s == suite);
        self.read_where(&suite_ok, keep, &failed, &suites.join(", "))
    }

    /// [`Tree::index`], and if `package=version` is not in it, once more from lists fetched
    /// now (unless they are under a minute old): a pin is declared gone only on fresh lists.
    pub fn index_with(
        &self,
        release: &str,
        package: &str,
        version: &str,
    ) -> Result<Index, AptError> {
        let index = self.index(release, MAX_AGE)?;
        if index.find(package, version).is_some() || self.age().is_some_and(|a| a < RECHECK_AGE) {
            return Ok(index);
        }
        self.index(release, RECHECK_AGE)
    }

    /// How long ago the lists were fetched for the current archives list (`None`: never).
    fn age(&self) -> Option<Duration> {
        let stamp = self.dir.join("updated");
        let recorded = std::fs::read_to_string(&stamp).ok()?;
        if recorded != self.archives.sources() {
            return None;
        }
        let modified = std::fs::metadata(&stamp).and_then(|m| m.modified()).ok()?;
        Some(
            SystemTime::now()
                .duration_since(modified)
                .unwrap_or_default(),
        )
    }

    /// The tree's folders, `sources` and `apt.conf` (rewritten each time: cheap, and always
    /// what the archives list says).
    fn write_config(&self) -> Result<(), AptError> {
        for archive in &self.archives.list {
            if !archive.keyring.is_file() {
                return Err(AptError::Keyring {
                    path: archive.keyring.clone(),
                    archives: self.archives.from.clone(),
                });
            }
        }
        for sub in [
            "etc/apt.conf.d",
            "etc/preferences.d",
            "etc/trusted.gpg.d",
            "etc/sources.list.d",
            "state/lists/partial",
            "cache/archives/partial",
        ] {
            let path = self.dir.join(sub);
            std::fs::create_dir_all(&path).map_err(io(&path))?;
        }
        let sources = self.dir.join("etc/sources.list.d/kdrill.sources");
        std::fs::write(&sources, self.archives.sources()).map_err(io(&sources))?;
        let conf = self.dir.join("apt.conf");
        std::fs::write(&conf, config_text(&self.dir, crate::host::tools::is_root()))
            .map_err(io(&conf))?;
        Ok(())
    }

    fn apt(&self, tool: &str) -> Result<Command, AptError> {
        // `find` takes an absolute path (apt-helper) as it is.
        let path =
            crate::host::tools::find(tool).ok_or_else(|| AptError::NoApt { tool: tool.into() })?;
        let mut command = Command::new(path);
        command.env("APT_CONFIG", self.dir.join("apt.conf"));
        // apt's messages in English, whatever the host's locale: they are quoted in errors.
        command.env("LC_ALL", "C");
        Ok(command)
    }

    fn update(&self) -> Result<(), AptError> {
        eprintln!(
            "kdrill: fetching package lists of {} into {}",
            self.archives.describe(),
            self.dir.display()
        );
        let mut command = self.apt("apt-get")?;
        command.args(["update", "-q"]);
        let out = process::run(&mut command, UPDATE_DEADLINE)?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let (suites, tree) = failures(&stderr, &self.archives);
        let every = self
            .archives
            .list
            .iter()
            .map(|a| a.suites.len())
            .sum::<usize>();
        let whole = !tree.is_empty()
            || (!out.status.success() && suites.is_empty())
            || suites
                .iter()
                .map(|f| &f.suite)
                .collect::<BTreeSet<_>>()
                .len()
                >= every;
        if whole {
            let mut lines = tree;
            lines.extend(suites.into_iter().map(|f| f.line));
            return Err(AptError::Update {
                archives: self.archives.describe(),
                file: self.archives.from.clone(),
                detail: if lines.is_empty() {
                    out.last_line()
                } else {
                    lines.join("; ")
                },
            });
        }
        // Some suites failed, the others are fresh: the failed ones are recorded, and only the
        // entries of their release hear about it (`read`).
        let failed = self.dir.join("failed");
        let text: String = suites
            .iter()
            .map(|f| format!("{}\t{}\n", f.suite, f.line))
            .collect();
        std::fs::write(&failed, text).map_err(io(&failed))?;
        let stamp = self.dir.join("updated");
        std::fs::write(&stamp, self.archives.sources()).map_err(io(&stamp))
    }

    /// The suites the last `apt-get update` could not refresh.
    fn failed_suites(&self) -> Vec<SuiteFailure> {
        std::fs::read_to_string(self.dir.join("failed"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(suite, line)| SuiteFailure {
                suite: suite.into(),
                line: line.into(),
            })
            .collect()
    }

    /// Parses the `Packages` lists of `release`'s suites (`apt-get indextargets` names them). A
    /// suite in `failed` is read from its earlier lists, with a warning; without them, its
    /// failure is the error.
    fn read(&self, release: &str, failed: &[SuiteFailure]) -> Result<Index, AptError> {
        let records = self.read_where(
            &|suite| archive::suite_matches(release, suite),
            &resolve::wanted,
            failed,
            &self.archives.describe_release(release),
        )?;
        Ok(Index { records })
    }

    /// The records `keep` names in the `Packages` lists of the suites `suite_ok` accepts
    /// (`described` in an error), as [`Tree::read`] reads them.
    fn read_where(
        &self,
        suite_ok: &dyn Fn(&str) -> bool,
        keep: &dyn Fn(&str) -> bool,
        failed: &[SuiteFailure],
        described: &str,
    ) -> Result<Vec<index::Record>, AptError> {
        let mut command = self.apt("apt-get")?;
        command.args([
            "indextargets",
            "--format",
            "$(FILENAME)\t$(RELEASE)\t$(SITE)",
            "Created-By: Packages",
        ]);
        let out = process::run(&mut command, LOCAL_DEADLINE)?;
        let mut records = Vec::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let mut fields = line.split('\t');
            let (Some(file), Some(suite), Some(site)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            if !suite_ok(suite) {
                continue;
            }
            let path = Path::new(file);
            let failure = failed.iter().find(|f| f.suite == suite);
            let text = match std::fs::read(path) {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => match failure {
                    Some(f) => {
                        return Err(AptError::Update {
                            archives: described.to_string(),
                            file: self.archives.from.clone(),
                            detail: f.line.clone(),
                        })
                    }
                    // An index the archive does not have (a component it lacks) is not there.
                    None => continue,
                },
                Err(e) => return Err(io(path)(e)),
            };
            if let Some(f) = failure {
                warn_once(&format!(
                    "kdrill: {}; using the {suite} lists fetched earlier",
                    f.line
                ));
            }
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            for mut record in index::parse(&text, &name, keep) {
                record.site = site.to_string();
                record.suite = suite.to_string();
                records.push(record);
            }
        }
        Ok(records)
    }

    /// Downloads `url` to `dest`, checked by apt against `sha256` (a mismatch fails).
    pub fn download(&self, url: &str, sha256: &str, dest: &Path) -> Result<(), AptError> {
        let mut command = self.apt(APT_HELPER)?;
        command
            .args(["download-file", url])
            .arg(dest)
            .arg(format!("SHA256:{sha256}"));
        let out = process::run(&mut command, DOWNLOAD_DEADLINE)?;
        if !out.status.success() {
            let text = String::from_utf8_lossy(&out.stderr);
            let detail = text
                .lines()
                .find(|l| l.starts_with("E:") || l.contains("mismatch"))
                .map(str::trim)
                .map(String::from)
                .unwrap_or_else(|| out.last_line());
            return Err(AptError::Download {
                url: url.into(),
                detail,
            });
        }
        Ok(())
    }
}

/// Prints `message` on stderr once per process (every case reads the lists again).
fn warn_once(message: &str) {
    static SAID: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    if SAID
        .lock()
        .is_ok_and(|mut said| said.insert(message.to_string()))
    {
        eprintln!("{message}");
    }
}

/// The tree's `apt.conf`: every `Dir::Etc` path inside the tree, so the host's sources,
/// preferences, trusted keys and `apt.conf.d` are out of view; no dpkg status; indexes kept
/// uncompressed so kdrill can read them. As root, downloads run as root (the `_apt` user cannot
/// write into a user's cache).
pub fn config_text(dir: &Path, root: bool) -> String {
    let d = dir.display();
    let mut text = format!(
        "Dir::Etc \"{d}/etc\";\n\
         Dir::Etc::Main \"/dev/null\";\n\
         Dir::Etc::Parts \"{d}/etc/apt.conf.d\";\n\
         Dir::Etc::SourceList \"/dev/null\";\n\
         Dir::Etc::SourceParts \"{d}/etc/sources.list.d\";\n\
         Dir::Etc::Preferences \"/dev/null\";\n\
         Dir::Etc::PreferencesParts \"{d}/etc/preferences.d\";\n\
         Dir::Etc::Trusted \"/dev/null\";\n\
         Dir::Etc::TrustedParts \"{d}/etc/trusted.gpg.d\";\n\
         Dir::State \"{d}/state\";\n\
         Dir::State::status \"/dev/null\";\n\
         Dir::Cache \"{d}/cache\";\n\
         APT::Architecture \"amd64\";\n\
         Acquire::Languages \"none\";\n\
         Acquire::GzipIndexes \"false\";\n\
         Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled \"false\";\n\
         Debug::NoLocking \"true\";\n"
    );
    if root {
        text.push_str("APT::Sandbox::User \"root\";\n");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_keeps_the_host_apt_out_of_view() {
        let text = config_text(Path::new("/c/apt"), false);
        for line in [
            "Dir::Etc::SourceList \"/dev/null\";",
            "Dir::Etc::SourceParts \"/c/apt/etc/sources.list.d\";",
            "Dir::Etc::Parts \"/c/apt/etc/apt.conf.d\";",
            "Dir::Etc::TrustedParts \"/c/apt/etc/trusted.gpg.d\";",
            "Dir::State::status \"/dev/null\";",
            "Acquire::GzipIndexes \"false\";",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(!text.contains("Sandbox"));
        assert!(config_text(Path::new("/c/apt"), true).contains("APT::Sandbox::User \"root\";"));
    }

    #[test]
    fn a_missing_keyring_is_named_before_apt_runs() {
        let cache = tempfile::tempdir().unwrap();
        let mut archives = archive::load(None).unwrap();
        archives.list[0].keyring = PathBuf::from("/nonexistent/keyring.gpg");
        let err = Tree::new(cache.path(), &archives)
            .index("bookworm", MAX_AGE)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/nonexistent/keyring.gpg: no such keyring")
                && err.contains("debian-archive-keyring"),
            "{err}"
        );
    }
}
