//! The host-package step's I/O: what dpkg and apt say ([`gather`]), and carrying out the plan
//! of [`plan`] as root ([`install`]): add a suite's source when needed, `apt-get update`, one
//! `apt-get install` per step, each under a deadline. The decisions are all in `plan.rs`.

pub mod mirror;
pub mod plan;
#[cfg(test)]
mod tests;
pub mod version;
pub mod view;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::host::process::{self, RunError};
use plan::{Plan, Unserved};
use view::{Installed, View};

/// `dpkg-query` and `apt-cache policy` read local files.
const QUERY_DEADLINE: Duration = Duration::from_secs(120);
/// `apt-get update`: the package lists, a minute or two on a slow mirror.
const UPDATE_DEADLINE: Duration = Duration::from_secs(600);
/// `apt-get install` of the host packages (QEMU and its libraries are the bulk: ~100 MB).
const INSTALL_DEADLINE: Duration = Duration::from_secs(1800);

#[derive(Debug, thiserror::Error)]
pub enum PackagesError {
    #[error(transparent)]
    Unserved(#[from] Unserved),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("`{command}` failed ({status}); its output is above")]
    Apt { command: String, status: String },
    #[error("cannot write the apt source {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("added {path} and ran `apt-get update`, but apt still does not see {suite}: check that {path} names a mirror that serves it, and the network")]
    StillUnseen { path: PathBuf, suite: String },
}

/// What this host's dpkg and apt say about `packages` and QEMU's packages; reads only.
pub fn gather(packages: &[String]) -> Result<View, PackagesError> {
    let installed = installed()?;
    let mut names: Vec<String> = packages.to_vec();
    let qemu = installed
        .iter()
        .filter(|i| plan::is_qemu(&i.package) || i.source == "qemu")
        .map(|i| i.package.clone());
    let companions = plan::EMULATOR_COMPANIONS.iter().map(|c| c.to_string());
    for name in qemu.chain(companions) {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let mut command = Command::new("apt-cache");
    command.arg("policy").args(&names).env("LC_ALL", "C");
    let policies = match process::run(&mut command, QUERY_DEADLINE) {
        Ok(out) => view::parse_policy(&String::from_utf8_lossy(&out.stdout)),
        // No apt: nothing to plan from (the plan then installs by name, and says so).
        Err(RunError::Start { .. }) => Vec::new(),
        Err(err) => return Err(err.into()),
    };
    let os_release = ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    Ok(View {
        installed,
        policies,
        release: view::parse_os_release(&os_release),
        sources: mirror::host_sources(Path::new("/etc/apt")),
    })
}

/// The packages dpkg has installed (none on a host without dpkg).
pub fn installed() -> Result<Vec<Installed>, PackagesError> {
    let mut command = Command::new("dpkg-query");
    command.args(["-W", "-f", view::DPKG_FORMAT]);
    match process::run(&mut command, QUERY_DEADLINE) {
        Ok(out) => Ok(view::parse_dpkg(&String::from_utf8_lossy(&out.stdout))),
        Err(RunError::Start { .. }) => Ok(Vec::new()),
        Err(err) => Err(err.into()),
    }
}

/// The package owning each of `paths`, by `dpkg-query -S` (with the `/usr`-merged alias of
/// each path: dpkg knows `/bin/tar`, `$PATH` finds `/usr/bin/tar`).
pub fn owners(paths: &[PathBuf]) -> Result<Vec<(PathBuf, String)>, PackagesError> {
    let alias = |p: &Path| -> Option<PathBuf> {
        let text = p.to_str()?;
        text.strip_prefix("/usr")
            .map(PathBuf::from)
            .or_else(|| Some(PathBuf::from(format!("/usr{text}"))))
    };
    let mut asked: Vec<PathBuf> = Vec::new();
    for path in paths {
        asked.push(path.clone());
        asked.extend(alias(path));
    }
    if asked.is_empty() {
        return Ok(Vec::new());
    }
    let mut command = Command::new("dpkg-query");
    command.arg("-S").args(&asked).env("LC_ALL", "C");
    let text = match process::run(&mut command, QUERY_DEADLINE) {
        // Exit 1 when a path is nobody's: the others are still listed.
        Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
        Err(RunError::Start { .. }) => return Ok(Vec::new()),
        Err(err) => return Err(err.into()),
    };
    let listed: Vec<(String, PathBuf)> = text
        .lines()
        .filter(|l| !l.starts_with("diversion "))
        .filter_map(|l| {
            let (packages, path) = l.split_once(": ")?;
            let first = packages.split(", ").next()?;
            Some((
                first.split(':').next().unwrap_or(first).to_string(),
                PathBuf::from(path),
            ))
        })
        .collect();
    Ok(paths
        .iter()
        .filter_map(|path| {
            let other = alias(path);
            listed
                .iter()
                .find(|(_, p)| p == path || Some(p) == other.as_ref())
                .map(|(package, _)| (path.clone(), package.clone()))
        })
        .collect())
}

/// The plan for `missing` on this host as it is now (its lists as they are; nothing changes).
pub fn plan_now(missing: &[String]) -> Result<Plan, PackagesError> {
    Ok(plan::plan(missing, &gather(missing)?)?)
}

/// Installs `missing` as root: fresh lists, the plan, the source it needs (then fresh lists and
/// the plan again), each step's `apt-get install`. apt's output goes to stderr.
pub fn install(missing: &[String]) -> Result<(), PackagesError> {
    apt_get(&["update", "-q"], UPDATE_DEADLINE)?;
    let mut plan = plan::plan(missing, &gather(missing)?)?;
    if let Some(source) = plan.source.take() {
        eprintln!(
            "kdrill: ==> adding the apt source {} ({}): {}\n\
             kdrill: ==> the installed QEMU comes from {}, and QEMU's packages must all come from one version.\n\
             kdrill: ==> Backports are opt-in per package: listing them changes nothing else on this host.",
            source.path.display(),
            source.suite,
            source.line,
            source.suite,
        );
        std::fs::write(&source.path, format!("{}\n", source.line)).map_err(|e| {
            PackagesError::Write {
                path: source.path.clone(),
                source: e,
            }
        })?;
        apt_get(&["update", "-q"], UPDATE_DEADLINE)?;
        plan = plan::plan(missing, &gather(missing)?)?;
        if plan.source.is_some() {
            return Err(PackagesError::StillUnseen {
                path: source.path,
                suite: source.suite,
            });
        }
    }
    for conflict in &plan.conflicts {
        eprintln!("kdrill: {conflict}; installing QEMU as one set instead");
    }
    for step in &plan.steps {
        eprintln!(
            "kdrill: installing host packages as root: {}",
            step.command()
        );
        let args = step.apt_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        apt_get(&args, INSTALL_DEADLINE)?;
    }
    Ok(())
}

/// apt-get under `limit`, its output on stderr (stdout stays for kdrill's own report).
fn apt_get(args: &[&str], limit: Duration) -> Result<(), PackagesError> {
    let mut command = Command::new("apt-get");
    command
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("LC_ALL", "C")
        .stdout(std::process::Stdio::from(std::io::stderr()));
    let status = process::run_status(&mut command, limit)?;
    if !status.success() {
        return Err(PackagesError::Apt {
            command: format!("apt-get {}", args.join(" ")),
            status: status.to_string(),
        });
    }
    Ok(())
}
