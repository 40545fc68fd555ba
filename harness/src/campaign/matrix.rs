//! The matrix: named selections of kernels x scenarios (`matrix.yaml`), expanded into cases.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use crate::case::Case;
use crate::spec::image::ImageKind;
use crate::spec::kernel::{self, KernelSpec};
use crate::spec::scenario::{self, Scenario};
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
    /// The guest for these cases (`debian`), instead of each scenario's.
    #[serde(default)]
    image: Option<ImageKind>,
    /// The operator's files (relative to the project), for the Debian image.
    #[serde(default)]
    overlay: Option<PathBuf>,
    /// `crashkernel=` for these cases instead of the kernel entry's.
    #[serde(default)]
    crashkernel: Option<String>,
}

/// What a command line (or a matrix block) sets for every case it selects, over the scenario's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetupOverride {
    pub image: Option<ImageKind>,
    pub overlay: Option<PathBuf>,
    pub crashkernel: Option<String>,
}

impl SetupOverride {
    /// Applies to `case`: whatever is given replaces the scenario's choice.
    pub fn apply(&self, case: &mut Case) {
        if let Some(image) = self.image {
            case.setup.image = image;
        }
        if let Some(overlay) = &self.overlay {
            case.setup.overlay = Some(overlay.clone());
            // An overlay is for the Debian image.
            case.setup.image = ImageKind::Debian;
        }
        if let Some(size) = &self.crashkernel {
            case.setup.crashkernel = Some(size.clone());
        }
    }

    /// From `KDRILL_IMAGE`, `KDRILL_OVERLAY`, `KDRILL_CRASHKERNEL` (what `--image`,
    /// `--overlay`, `--crashkernel` export for nextest's test processes).
    pub fn from_env() -> Result<SetupOverride, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let image =
            match var("KDRILL_IMAGE") {
                None => None,
                Some(word) => Some(ImageKind::from_word(word.trim()).ok_or_else(|| {
                    format!("KDRILL_IMAGE={word}: not an image (minimal or debian)")
                })?),
            };
        Ok(SetupOverride {
            image,
            overlay: var("KDRILL_OVERLAY").map(PathBuf::from),
            crashkernel: var("KDRILL_CRASHKERNEL"),
        })
    }
}

/// Expands kernel and scenario selections (`all` allowed) into cases, kernels outermost.
pub fn expand(
    root: &Path,
    kernels: &[String],
    scenarios: &[String],
) -> Result<Vec<Case>, YamlError> {
    let kernels: Vec<KernelSpec> = pick(kernels, kernel::list_ids(root))
        .iter()
        .map(|id| kernel::load(root, id))
        .collect::<Result<_, _>>()?;
    let scenarios: Vec<Scenario> = pick(scenarios, scenario::list_ids(root))
        .iter()
        .map(|id| scenario::load(root, id))
        .collect::<Result<_, _>>()?;
    let mut cases = Vec::new();
    for kernel in &kernels {
        for scenario in &scenarios {
            cases.push(Case::new(kernel.clone(), scenario.clone()));
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

/// The cases of set `name` from `<root>/matrix.yaml`.
pub fn set(root: &Path, name: &str) -> Result<Vec<Case>, YamlError> {
    let path = root.join("matrix.yaml");
    let file: MatrixFile = yaml::load(&path)?;
    let blocks = file.sets.get(name).ok_or_else(|| YamlError::Invalid {
        path: path.clone(),
        message: format!(
            "no set `{name}`; sets: {}",
            file.sets.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
    })?;
    let mut cases: Vec<Case> = Vec::new();
    for block in blocks {
        let over = SetupOverride {
            image: block.image,
            overlay: block.overlay.as_ref().map(|o| root.join(o)),
            crashkernel: block.crashkernel.clone(),
        };
        for mut case in expand(root, &block.kernels, &block.scenarios)? {
            over.apply(&mut case);
            if !cases.iter().any(|c| c.id() == case.id()) {
                cases.push(case);
            }
        }
    }
    Ok(cases)
}

/// The cases a test or CI run selects from the environment: `KDRILL_KERNELS` / `KDRILL_SCENARIOS`
/// (comma-separated ids or `all`) when either is set, else the set named by `KDRILL_MATRIX`
/// (default `ci`); `KDRILL_IMAGE`, `KDRILL_OVERLAY` and `KDRILL_CRASHKERNEL` apply to all.
pub fn from_env(root: &Path) -> Result<Vec<Case>, YamlError> {
    let over = SetupOverride::from_env().map_err(|message| YamlError::Invalid {
        path: root.join("matrix.yaml"),
        message,
    })?;
    let mut cases = from_env_selection(root)?;
    if over != SetupOverride::default() {
        for case in &mut cases {
            over.apply(case);
        }
    }
    Ok(cases)
}

fn from_env_selection(root: &Path) -> Result<Vec<Case>, YamlError> {
    let list = |var: &str| -> Option<Vec<String>> {
        let value = std::env::var(var).ok().filter(|v| !v.trim().is_empty())?;
        Some(value.split(',').map(|s| s.trim().to_string()).collect())
    };
    match (list("KDRILL_KERNELS"), list("KDRILL_SCENARIOS")) {
        (None, None) => set(
            root,
            &std::env::var("KDRILL_MATRIX").unwrap_or_else(|_| DEFAULT_SET.into()),
        ),
        (kernels, scenarios) => {
            let all = || vec!["all".to_string()];
            expand(
                root,
                &kernels.unwrap_or_else(all),
                &scenarios.unwrap_or_else(all),
            )
        }
    }
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
mod tests {
    use super::*;

    fn project() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("kernels")).unwrap();
        std::fs::create_dir_all(root.join("scenarios")).unwrap();
        for k in ["k1", "k2"] {
            let entry = format!(
                "id: {k}\nwhy: test\nsource:\n  kind: local\n  vmlinuz: /boot/vmlinuz\n  modules: /lib/modules/x\n"
            );
            std::fs::write(root.join(format!("kernels/{k}.yaml")), entry).unwrap();
        }
        for s in ["a", "b"] {
            let text = format!("id: {s}\ndescription: d\ntrigger: sysrq\nexpect:\n  log: [x]\n");
            std::fs::write(root.join(format!("scenarios/{s}.yaml")), text).unwrap();
        }
        std::fs::write(
            root.join("matrix.yaml"),
            "sets:\n  ci:\n    - kernels: [k1]\n      scenarios: [all]\n    - kernels: [all]\n      scenarios: [a]\n",
        )
        .unwrap();
        dir
    }

    #[test]
    fn a_set_is_the_union_of_its_blocks_without_repeats() {
        let dir = project();
        let ids: Vec<String> = set(dir.path(), "ci")
            .unwrap()
            .iter()
            .map(Case::id)
            .collect();
        assert_eq!(ids, ["k1/a", "k1/b", "k2/a"]);
    }

    #[test]
    fn a_block_may_choose_the_image_an_overlay_and_the_reservation() {
        let dir = project();
        std::fs::write(
            dir.path().join("matrix.yaml"),
            "sets:\n  prod:\n    - kernels: [k1]\n      scenarios: [a]\n      image: debian\n    - kernels: [k1]\n      scenarios: [a]\n      overlay: overlays/site\n      crashkernel: 96M\n",
        )
        .unwrap();
        let cases = set(dir.path(), "prod").unwrap();
        let ids: Vec<String> = cases.iter().map(Case::id).collect();
        assert_eq!(ids, ["k1/a@debian", "k1/a@debian+site~ck96M"]);
        assert_eq!(
            cases[1].setup.overlay,
            Some(dir.path().join("overlays/site"))
        );
        assert_eq!(cases[1].crashkernel(), "96M");
    }

    #[test]
    fn unknown_set_names_the_known_ones() {
        let dir = project();
        let err = set(dir.path(), "weekly").unwrap_err().to_string();
        assert!(
            err.ends_with("matrix.yaml: no set `weekly`; sets: ci"),
            "{err}"
        );
    }

    #[test]
    fn parallelism_follows_cores_and_memory() {
        assert_eq!(parallel_guests(2, 24 << 20), 1);
        assert_eq!(parallel_guests(16, 24 << 20), 8);
        assert_eq!(parallel_guests(16, 4 << 20), 2);
        assert_eq!(parallel_guests(1, 512 << 10), 1);
    }
}
