//! The matrix: named selections of kernels x scenarios (`matrix.yaml`), expanded into cases.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

pub use crate::case::Case;
use crate::spec::images::Registry;
use crate::spec::kernel::{self, KernelSpec};
use crate::spec::scenario::{self, Scenario};
use crate::spec::setup::Setup;
use crate::spec::userspace::Userspace;
use crate::spec::yaml::{self, YamlError};

/// The set `cargo nextest run` and `.ci/run` use when `KDRILL_MATRIX` is unset.
pub const DEFAULT_SET: &str = "ci";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MatrixFile {
    sets: BTreeMap<String, Vec<Block>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Block {
    kernels: Vec<String>,
    scenarios: Vec<String>,
    /// Kernel entries left out of `kernels` (with `kernels: [all]`: every entry but these).
    #[serde(default, rename = "except")]
    except_kernels: Vec<String>,
    /// An image of images/ (`minimal` by default, `debian-trixie`, the alias `debian`…).
    #[serde(default)]
    image: Option<String>,
    /// An overlay folder for the Debian image, relative to matrix.yaml's folder.
    #[serde(default)]
    overlay: Option<std::path::PathBuf>,
    /// `crashkernel=` for every case of the block.
    #[serde(default)]
    crashkernel: Option<String>,
    /// Whose tools capture every case of the block (`images/userspace.yaml`).
    #[serde(default)]
    userspace: Option<Userspace>,
}

impl Block {
    fn setup(&self, root: &Path, images: Option<&Registry>) -> Result<Setup, String> {
        let image = match (&self.image, images) {
            (Some(name), Some(images)) => images.find(name)?,
            _ => Default::default(),
        };
        let setup = Setup {
            image,
            overlay: self.overlay.clone(),
            crashkernel: self.crashkernel.clone(),
            userspace: self.userspace.clone(),
        };
        check_setup(&setup)?;
        Ok(setup.anchored(root))
    }
}

/// What a setup may not combine: an overlay needs the Debian image, a userspace the minimal
/// one; `crashkernel=` must parse.
pub fn check_setup(setup: &Setup) -> Result<(), String> {
    if setup.overlay.is_some() && setup.image.boots_own_kernel() {
        return Err(format!("an overlay is laid over kdrill's Debian images: the {} disk image is tested as it is, with its own /etc", setup.image));
    }
    if setup.overlay.is_some() && !setup.image.takes_overlay() {
        return Err(format!("an overlay needs an image with its own kdump (`--image debian`, `image: debian-trixie`): the {} image has no /etc to put it in", setup.image));
    }
    if setup.userspace.is_some() && !setup.image.takes_userspace() {
        return Err(format!("a userspace is for the minimal image: the {} image captures with its own release's kdump-tools and makedumpfile", setup.image));
    }
    if let Some(size) = &setup.crashkernel {
        crate::spec::setup::check_crashkernel(size)?;
    }
    Ok(())
}

/// Expands kernel and scenario selections (`all` allowed) into cases on the default image,
/// kernels outermost.
pub fn expand(
    root: &Path,
    kernels: &[String],
    scenarios: &[String],
) -> Result<Vec<Case>, YamlError> {
    expand_with(root, kernels, scenarios, &Setup::default())
}

/// [`expand`] with an image, overlay and `crashkernel=` for every case.
pub fn expand_with(
    root: &Path,
    kernels: &[String],
    scenarios: &[String],
    setup: &Setup,
) -> Result<Vec<Case>, YamlError> {
    // A disk image boots its own kernel: its cases have that one entry.
    let kernels: Vec<KernelSpec> = if setup.image.boots_own_kernel() {
        vec![KernelSpec::own(0, 0)]
    } else {
        pick(kernels, kernel::list_ids(root))
            .iter()
            .map(|id| kernel::load(root, id))
            .collect::<Result<_, _>>()?
    };
    let every = scenarios.iter().any(|w| w == "all");
    let scenarios: Vec<Scenario> = pick(scenarios, scenario::list_ids(root))
        .iter()
        .map(|id| scenario::load(root, id))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        // `all` means every scenario this image can run, but those that must be named
        // (`in_all: false`); one named for another image stays, and is a declared skip.
        .filter(|s| !every || (s.in_all && s.image.only.is_none_or(|only| setup.image.fits(only))))
        .collect();
    let mut cases = Vec::new();
    for kernel in &kernels {
        for scenario in &scenarios {
            cases.push(Case {
                kernel: kernel.clone(),
                scenario: scenario.clone(),
                setup: setup.clone(),
            });
        }
    }
    Ok(cases)
}

fn pick(wanted: &[String], all: Vec<String>) -> Vec<String> {
    if wanted.iter().any(|w| w == "all") {
        all
    } else {
        wanted.to_vec()
    }
}

/// The most blocks in one set: the real sets have 1-7; each block reads every entry it names.
pub const MAX_BLOCKS: usize = 64;
/// The most cases one set expands to: every kernel x every scenario is ~400 today, and a run of
/// 5,000 cases would take days.
pub const MAX_CASES: usize = 5_000;

/// The cases of set `name` from `<root>/matrix.yaml`.
pub fn set(root: &Path, name: &str) -> Result<Vec<Case>, YamlError> {
    let path = root.join("matrix.yaml");
    let text = yaml::read(&path)?;
    let file: MatrixFile = yaml::parse(&path, &text)?;
    for (set, blocks) in &file.sets {
        crate::spec::bounds::check_id_word(set)
            .map_err(|e| yaml::at_key(&path, &text, set, format!("set {e}")))?;
        if blocks.len() > MAX_BLOCKS {
            return Err(yaml::at_key(
                &path,
                &text,
                set,
                format!(
                    "set `{set}` has {} blocks, more than {MAX_BLOCKS} (kdrill's cap on a set's blocks): merge them",
                    blocks.len()
                ),
            ));
        }
    }
    let blocks = file.sets.get(name).ok_or_else(|| YamlError::Invalid {
        path: path.clone(),
        message: format!(
            "no set `{name}`; sets: {}",
            file.sets.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
    })?;
    let images = match blocks.iter().any(|b| b.image.is_some()) {
        true => Some(Registry::load(root)?),
        false => None,
    };
    let mut cases: Vec<Case> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for block in blocks {
        let setup = block
            .setup(root, images.as_ref())
            .map_err(|message| YamlError::Invalid {
                path: path.clone(),
                message: format!("set `{name}`: {message}"),
            })?;
        for case in expand_with(root, &block.kernels, &block.scenarios, &setup)? {
            if block.except_kernels.contains(&case.kernel.id) {
                continue;
            }
            if seen.insert(case.id()) {
                cases.push(case);
            }
        }
        if cases.len() > MAX_CASES {
            return Err(yaml::at_key(
                &path,
                &text,
                name,
                format!(
                    "set `{name}` expands to more than {MAX_CASES} cases (kdrill's cap on a set): split it"
                ),
            ));
        }
    }
    Ok(cases)
}

/// Gives every minimal-image case of `cases` the userspace `userspace` (the command line's,
/// above any set's; cases that become the same are kept once); the Debian image's cases keep
/// their own tools.
pub fn with_userspace(cases: Vec<Case>, userspace: Option<&Userspace>) -> Vec<Case> {
    let Some(userspace) = userspace else {
        return cases;
    };
    let mut out: Vec<Case> = Vec::new();
    for mut case in cases {
        if case.setup.image.takes_userspace() {
            case.setup.userspace = Some(userspace.clone());
        }
        if !out.iter().any(|c| c.id() == case.id()) {
            out.push(case);
        }
    }
    out
}

/// The cases a test or CI run selects from the environment: `KDRILL_KERNELS` / `KDRILL_SCENARIOS`
/// (comma-separated ids or `all`) when either is set, with `KDRILL_IMAGE`, `KDRILL_OVERLAY` and
/// `KDRILL_CRASHKERNEL` for all of them; else the set named by `KDRILL_MATRIX` (default `ci`).
/// `KDRILL_USERSPACE` gives every minimal-image case its capture userspace, a set's too.
pub fn from_env(root: &Path) -> Result<Vec<Case>, YamlError> {
    let list = |var: &str| -> Option<Vec<String>> {
        let value = std::env::var(var).ok().filter(|v| !v.trim().is_empty())?;
        Some(value.split(',').map(|s| s.trim().to_string()).collect())
    };
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let invalid = |message: String| YamlError::Invalid {
        path: "the environment".into(),
        message,
    };
    let userspace = match var("KDRILL_USERSPACE") {
        Some(word) => Some(
            Userspace::parse(word.trim()).map_err(|e| invalid(format!("KDRILL_USERSPACE: {e}")))?,
        ),
        None => None,
    };
    let cases = match (list("KDRILL_KERNELS"), list("KDRILL_SCENARIOS")) {
        (None, None) => set(
            root,
            &std::env::var("KDRILL_MATRIX").unwrap_or_else(|_| DEFAULT_SET.into()),
        )?,
        (kernels, scenarios) => {
            let all = || vec!["all".to_string()];
            let image = match var("KDRILL_IMAGE") {
                Some(name) => Registry::load(root)?.find(&name).map_err(invalid)?,
                None => Default::default(),
            };
            let setup = Setup {
                image,
                overlay: var("KDRILL_OVERLAY").map(Into::into),
                crashkernel: var("KDRILL_CRASHKERNEL"),
                userspace: None,
            };
            check_setup(&setup).map_err(invalid)?;
            expand_with(
                root,
                &kernels.unwrap_or_else(all),
                &scenarios.unwrap_or_else(all),
                &setup,
            )?
        }
    };
    Ok(with_userspace(cases, userspace.as_ref()))
}

/// How many guests can run at once: a guest wants 2 cores (2 vCPUs under TCG) and ~1.5 GiB
/// (1 GiB of guest RAM plus QEMU and the dump being written).
pub fn parallel_guests(cores: usize, mem_available_kib: u64) -> usize {
    let by_cpu = cores / 2;
    let by_mem = (mem_available_kib / (1536 * 1024)) as usize;
    by_cpu.min(by_mem).max(1)
}

/// `MemAvailable` from `/proc/meminfo`, in KiB.
pub fn mem_available_kib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests;
