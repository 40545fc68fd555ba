//! The host-package step, decided (pure): which packages to install, QEMU's pinned to the version
//! of the QEMU already installed so they stay one consistent set; the apt source to add when the
//! host's apt cannot see the suite that serves it; or, when no suite does, why (with the
//! commands that fix it). A QEMU package the user installed is never removed or downgraded.

use std::path::PathBuf;

use super::mirror;
use super::version;
use super::view::{Installed, View};

/// Where an added apt source is written, one file per suite.
pub const SOURCES_DIR: &str = "/etc/apt/sources.list.d";
/// The key an added Debian source is checked with (Debian's base system has it).
const DEBIAN_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// Packages a QEMU system emulator needs at its own version (`qemu-system-common (=
/// ${binary:Version})`, `qemu-system-data (>> upstream)`): installed and pinned with it.
pub const EMULATOR_COMPANIONS: &[&str] = &["qemu-system-common", "qemu-system-data"];

/// A binary package built from QEMU's source (they must all come from one QEMU version: newer
/// `qemu-utils` *Breaks* older `qemu-system-common`).
pub fn is_qemu(package: &str) -> bool {
    matches!(
        package,
        "qemu-utils" | "qemu-block-extra" | "qemu-guest-agent"
    ) || package.starts_with("qemu-system-")
        || package.starts_with("qemu-user")
}

/// A QEMU system emulator (`qemu-system-x86`), not one of its common parts.
fn is_emulator(package: &str) -> bool {
    package.starts_with("qemu-system-")
        && !EMULATOR_COMPANIONS.contains(&package)
        && package != "qemu-system-gui"
        && !package.starts_with("qemu-system-modules-")
}

/// One `apt-get install`: the packages (`name` or `name=version`) and the release to take them
/// from (`-t`, so their dependencies come from there too when the default release's are too old).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub release: Option<String>,
    pub packages: Vec<String>,
}

impl Step {
    /// apt-get's arguments. `--no-remove`: apt stops rather than remove anything installed.
    pub fn apt_args(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            "--no-remove",
        ]
        .map(String::from)
        .to_vec();
        if let Some(release) = &self.release {
            args.extend(["-t".to_string(), release.clone()]);
        }
        args.extend(self.packages.iter().cloned());
        args
    }

    /// The command a root shell runs.
    pub fn command(&self) -> String {
        format!("apt-get {}", self.apt_args().join(" "))
    }
}

/// An apt source for one suite, in a file of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddSource {
    pub suite: String,
    pub path: PathBuf,
    /// The one-line `deb` entry written to `path`.
    pub line: String,
}

impl AddSource {
    pub fn command(&self) -> String {
        format!("echo '{}' > {}", self.line, self.path.display())
    }
}

/// A package to install whose candidate is not the installed QEMU's version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The installed QEMU package and its version (the newest of QEMU's installed packages).
    pub installed: String,
    pub installed_version: String,
    /// The package to install and apt's candidate for it.
    pub package: String,
    pub candidate: String,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} is installed, but apt's candidate for {} is {}: QEMU's packages must come from one version, so a plain install would remove or break {}",
            self.installed, self.installed_version, self.package, self.candidate, self.installed
        )
    }
}

/// What the host-package step does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// A source to add first (then `apt-get update` and plan again: the versions in `steps` are
    /// the installed QEMU's until the suite's lists are there).
    pub source: Option<AddSource>,
    pub steps: Vec<Step>,
    pub conflicts: Vec<Conflict>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.source.is_none() && self.steps.is_empty()
    }

    /// The commands, in order, that carry the plan out as root.
    pub fn commands(&self) -> Vec<String> {
        let mut commands = Vec::new();
        if let Some(source) = &self.source {
            commands.push(source.command());
        }
        if !self.steps.is_empty() {
            commands.push("apt-get update".to_string());
        }
        commands.extend(self.steps.iter().map(Step::command));
        commands
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{installed} {version} is installed, but no apt source of this host serves {} at QEMU {version}{}, and kdrill never removes or downgrades a QEMU you installed; either add the apt source that served {installed} {version} and run `kdrill doctor --install` again, or replace it with the release's own QEMU (this downgrades {installed}):\n  {fix}", .wanted.join(", "), .suite.as_ref().map(|s| format!(" ({s} does not)")).unwrap_or_default())]
pub struct Unserved {
    pub installed: String,
    pub version: String,
    /// The suite that should serve it, when kdrill could tell.
    pub suite: Option<String>,
    pub wanted: Vec<String>,
    /// The install line that replaces QEMU with the release's candidates.
    pub fix: String,
}

/// Decides how to install `missing` (packages, in table order) on the host `view` describes.
pub fn plan(missing: &[String], view: &View) -> Result<Plan, Unserved> {
    let mut plan = Plan::default();
    if missing.is_empty() {
        return Ok(plan);
    }
    let (qemu, other): (Vec<String>, Vec<String>) =
        missing.iter().cloned().partition(|p| is_qemu(p));
    let family: Vec<&Installed> = view
        .installed
        .iter()
        .filter(|i| is_qemu(&i.package) || i.source == "qemu")
        .collect();
    let newest = family
        .iter()
        .max_by(|a, b| version::compare(&a.version, &b.version));
    let Some(newest) = newest.filter(|_| !qemu.is_empty()) else {
        // No QEMU installed (or none wanted): the default release decides, as for anything else.
        plan.steps.push(Step {
            release: None,
            packages: missing.to_vec(),
        });
        return Ok(plan);
    };
    if !other.is_empty() {
        plan.steps.push(Step {
            release: None,
            packages: other,
        });
    }
    let mut set = qemu.clone();
    if qemu.iter().any(|p| is_emulator(p)) {
        for companion in EMULATOR_COMPANIONS {
            if view.installed(companion).is_none() && !set.iter().any(|p| p == companion) {
                set.push(companion.to_string());
            }
        }
    }
    plan.conflicts = conflicts(&qemu, newest, view);
    let fix = replace_line(&family, &set, view);
    let unserved = |suite: Option<&str>, wanted: &[String]| Unserved {
        installed: newest.package.clone(),
        version: newest.version.clone(),
        suite: suite.map(String::from),
        wanted: wanted.to_vec(),
        fix: fix.clone(),
    };
    let Some(home) = home_suite(newest, view) else {
        return Err(unserved(None, &qemu));
    };
    let release = (home != view.release.codename).then(|| home.clone());
    let suites = suites_of(&home);
    let seen = view.lists_suite(&home)
        || view
            .policies
            .iter()
            .flat_map(|p| &p.offers)
            .any(|o| o.suites.iter().any(|s| suites.contains(s)));
    if !seen {
        // The host's apt cannot see the suite yet: add it; the versions become final once its
        // lists are fetched and the step is planned again.
        plan.source = Some(add_source(&home, view));
        let pin = |p: &String| match p.as_str() {
            // Architecture-independent: never rebuilt alone, so it has no `+bN`.
            "qemu-system-data" => format!("{p}={}", base(&newest.version)),
            _ => format!("{p}={}", newest.version),
        };
        plan.steps.push(Step {
            release,
            packages: set.iter().map(pin).collect(),
        });
        return Ok(plan);
    }
    // The installed version when the suite still serves it, else its newest successor there.
    let want = base(&newest.version);
    let lead: Vec<&str> = offers_in(view, &qemu[0], &suites);
    let target = if lead.iter().any(|v| base(v) == want) {
        want.to_string()
    } else {
        lead.iter()
            .map(|v| base(v))
            .filter(|v| version::compare(v, want).is_ge())
            .max_by(|a, b| version::compare(a, b))
            .map(String::from)
            .ok_or_else(|| unserved(Some(&home), &qemu))?
    };
    for installed in &family {
        let older = version::compare(base(&installed.version), &target).is_lt();
        if older && !set.contains(&installed.package) {
            set.push(installed.package.clone());
        }
    }
    let mut packages = Vec::new();
    for package in &set {
        let version = offers_in(view, package, &suites)
            .into_iter()
            .filter(|v| base(v) == target)
            .max_by(|a, b| version::compare(a, b))
            .ok_or_else(|| unserved(Some(&home), std::slice::from_ref(package)))?;
        packages.push(format!("{package}={version}"));
    }
    plan.steps.push(Step { release, packages });
    Ok(plan)
}

/// The missing QEMU packages whose candidate is another QEMU version than the installed one.
fn conflicts(qemu: &[String], newest: &Installed, view: &View) -> Vec<Conflict> {
    qemu.iter()
        .filter_map(|package| {
            let candidate = view.policy(package)?.candidate.clone()?;
            (base(&candidate) != base(&newest.version)).then(|| Conflict {
                installed: newest.package.clone(),
                installed_version: newest.version.clone(),
                package: package.clone(),
                candidate,
            })
        })
        .collect()
}

/// The suite group the installed QEMU comes from: where apt sees its version, else what the
/// version says (`~bpo12+1`: the backports of Debian 12, when this host is Debian 12), else the
/// release itself. `-updates` and `-security` belong to their release.
fn home_suite(installed: &Installed, view: &View) -> Option<String> {
    let seen = view
        .policies
        .iter()
        .flat_map(|p| &p.offers)
        .filter(|o| o.version == installed.version)
        .flat_map(|o| &o.suites)
        .next();
    if let Some(suite) = seen {
        return Some(group(suite).to_string());
    }
    if let Some((_, rest)) = installed.version.split_once("~bpo") {
        let number: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let major = view.release.version_id.split('.').next().unwrap_or("");
        let ours = view.release.id == "debian" && !number.is_empty() && number == major;
        return (ours && !view.release.codename.is_empty())
            .then(|| format!("{}-backports", view.release.codename));
    }
    (!view.release.codename.is_empty()).then(|| view.release.codename.clone())
}

/// `bookworm-security` → `bookworm`; a backports suite is its own group.
fn group(suite: &str) -> &str {
    if suite.ends_with("-backports") {
        return suite;
    }
    ["-proposed-updates", "-updates", "-security"]
        .iter()
        .find_map(|tail| suite.strip_suffix(tail))
        .unwrap_or(suite)
}

/// The suites of a group.
fn suites_of(group: &str) -> Vec<String> {
    if group.ends_with("-backports") {
        return vec![group.to_string()];
    }
    ["", "-updates", "-security", "-proposed-updates"]
        .iter()
        .map(|tail| format!("{group}{tail}"))
        .collect()
}

/// The versions of `package` apt sees in `suites`.
fn offers_in<'a>(view: &'a View, package: &str, suites: &[String]) -> Vec<&'a str> {
    view.policy(package)
        .map(|p| {
            p.offers
                .iter()
                .filter(|o| o.suites.iter().any(|s| suites.contains(s)))
                .map(|o| o.version.as_str())
                .collect()
        })
        .unwrap_or_default()
}

/// A version without its binNMU suffix (`+b3`): an arch-all package (`qemu-system-data`) of the
/// same build has none.
fn base(version: &str) -> &str {
    match version.rsplit_once("+b") {
        Some((head, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => head,
        _ => version,
    }
}

/// The apt source for `suite` from the host's own Debian mirror, else deb.debian.org.
fn add_source(suite: &str, view: &View) -> AddSource {
    let uri = mirror::uri_for(&view.sources, &view.release.codename)
        .unwrap_or_else(|| mirror::DEFAULT_MIRROR.to_string());
    AddSource {
        suite: suite.to_string(),
        path: PathBuf::from(SOURCES_DIR).join(format!("kdrill-{suite}.list")),
        line: format!("deb [signed-by={DEBIAN_KEYRING}] {uri} {suite} main"),
    }
}

/// The install line that replaces the installed QEMU with the release's own (the newest version
/// its suites serve, not apt's candidate, which is the installed version while it is newer).
fn replace_line(family: &[&Installed], set: &[String], view: &View) -> String {
    let suites = suites_of(&view.release.codename);
    let mut packages: Vec<String> = Vec::new();
    let names = family.iter().map(|i| &i.package).chain(set);
    for name in names {
        if packages
            .iter()
            .any(|p| p.split('=').next() == Some(name.as_str()))
        {
            continue;
        }
        let newest = offers_in(view, name, &suites)
            .into_iter()
            .max_by(|a, b| version::compare(a, b));
        match newest {
            Some(version) => packages.push(format!("{name}={version}")),
            None => packages.push(name.clone()),
        }
    }
    format!(
        "apt-get install -y --no-install-recommends --allow-downgrades {}",
        packages.join(" ")
    )
}
