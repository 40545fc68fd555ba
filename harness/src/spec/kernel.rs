//! Kernel matrix entries (`kernels/*.yaml`): where a guest kernel comes from and how its guest is sized.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::spec::yaml::{self, YamlError};

/// One kernel of the matrix, as written in `kernels/<id>.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelSpec {
    /// User-facing id, e.g. `debian-6.1`; must equal the file stem.
    pub id: String,
    /// Why this kernel is in the matrix.
    pub why: String,
    pub source: KernelSource,
    #[serde(default)]
    pub guest: GuestSize,
    /// Capability gates: scenario id → why the route cannot work on this kernel. These cases
    /// are reported as SKIP with the reason and are not run; an undeclared gap is a FAIL.
    #[serde(default)]
    pub skip: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum KernelSource {
    /// A Debian binary package fetched with `apt-get download`, pinned by version and checksum.
    Debian {
        package: String,
        version: String,
        sha256: String,
        /// Header packages to build out-of-tree modules (the crasher) against this kernel.
        #[serde(default)]
        headers: Vec<DebPackage>,
    },
    /// A kernel the user built: a bzImage and its `/lib/modules/<release>` folder.
    Local { vmlinuz: PathBuf, modules: PathBuf },
}

/// One pinned Debian package.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebPackage {
    pub package: String,
    pub version: String,
    pub sha256: String,
}

/// Guest shape; every default is the smallest that passed on our 2-core machines.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestSize {
    #[serde(default = "default_memory")]
    pub memory_mib: u32,
    #[serde(default = "default_cpus")]
    pub cpus: u32,
    #[serde(default = "default_crashkernel")]
    pub crashkernel: String,
}

fn default_memory() -> u32 {
    1024
}
fn default_cpus() -> u32 {
    2
}
fn default_crashkernel() -> String {
    "256M".to_string()
}

impl Default for GuestSize {
    fn default() -> Self {
        GuestSize {
            memory_mib: default_memory(),
            cpus: default_cpus(),
            crashkernel: default_crashkernel(),
        }
    }
}

/// Reads `kernels/<id>.yaml` under `root`.
pub fn load(root: &Path, id: &str) -> Result<KernelSpec, YamlError> {
    from_file(&yaml::entry_path(
        root,
        "kernels",
        id,
        "no such kernel entry; known kernels",
    )?)
}

/// Parses one kernel entry file and checks that its id matches its file name.
pub fn from_file(path: &Path) -> Result<KernelSpec, YamlError> {
    let mut spec: KernelSpec = yaml::load(path)?;
    yaml::check_id(path, &spec.id)?;
    if let Some((scenario, _)) = spec.skip.iter().find(|(_, why)| why.trim().is_empty()) {
        return Err(YamlError::Invalid {
            path: path.to_path_buf(),
            message: format!("skip: `{scenario}` needs a reason"),
        });
    }
    if let KernelSource::Local { vmlinuz, modules } = &mut spec.source {
        // Relative paths in a local entry are relative to the entry's folder.
        let base = path.parent().unwrap_or(Path::new("."));
        *vmlinuz = base.join(&*vmlinuz);
        *modules = base.join(&*modules);
    }
    Ok(spec)
}

/// The ids of every `kernels/*.yaml`, sorted.
pub fn list_ids(root: &Path) -> Vec<String> {
    yaml::stems(&root.join("kernels"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn local_paths_are_relative_to_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "mine.yaml",
            "id: mine\nwhy: my build\nsource:\n  kind: local\n  vmlinuz: build/bzImage\n  modules: build/lib/modules/6.6.0\n",
        );
        let spec = from_file(&path).unwrap();
        let KernelSource::Local { vmlinuz, modules } = spec.source else {
            panic!("not local")
        };
        assert_eq!(vmlinuz, dir.path().join("build/bzImage"));
        assert_eq!(modules, dir.path().join("build/lib/modules/6.6.0"));
        assert_eq!(spec.guest.crashkernel, "256M");
    }

    #[test]
    fn a_skip_needs_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "k.yaml",
            "id: k\nwhy: w\nsource:\n  kind: local\n  vmlinuz: v\n  modules: m\nskip:\n  watchdog: \"\"\n",
        );
        assert!(from_file(&path)
            .unwrap_err()
            .to_string()
            .ends_with("skip: `watchdog` needs a reason"));
    }

    #[test]
    fn debian_source_needs_a_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "k.yaml",
            "id: k\nwhy: w\nsource:\n  kind: debian\n  package: p\n  version: v\n",
        );
        let err = from_file(&path).unwrap_err().to_string();
        // serde buffers an internally tagged enum: the location is the document's start.
        assert!(err.contains("k.yaml:1:1: missing field `sha256`"), "{err}");
    }
}
