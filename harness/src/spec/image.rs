//! The guest image recipe (`images/minimal.yaml`): programs, modules and kernel command lines.

use std::path::Path;

use serde::Deserialize;

use crate::spec::yaml::{self, YamlError};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRecipe {
    pub binaries: Vec<Binary>,
    pub modules: Vec<String>,
    pub cmdline: Cmdlines,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binary {
    /// Program name, looked up on the host's PATH and sbin folders.
    pub name: String,
    /// The Debian package that provides it (named in the error when it is missing).
    pub package: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cmdlines {
    /// First boot; kdrill adds `crashkernel=` from the kernel entry.
    pub first: Vec<String>,
    /// Capture kernel, passed to `kexec -p --append`.
    pub capture: Vec<String>,
}

/// The recipe compiled into kdrill, so the binary works outside the source tree.
pub const MINIMAL_YAML: &str = include_str!("../../../images/minimal.yaml");
/// The guest's `/init`, compiled in for the same reason.
pub const MINIMAL_INIT: &[u8] = include_bytes!("../../../images/minimal/init");

/// The recipe from `<root>/images/minimal.yaml` when a project root is given, else the built-in one.
pub fn minimal(root: Option<&Path>) -> Result<ImageRecipe, YamlError> {
    match root
        .map(|r| r.join("images/minimal.yaml"))
        .filter(|p| p.is_file())
    {
        Some(path) => yaml::load(&path),
        None => yaml::parse(Path::new("images/minimal.yaml"), MINIMAL_YAML),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_recipe_parses() {
        let recipe = minimal(None).unwrap();
        assert!(recipe.binaries.iter().any(|b| b.name == "makedumpfile"));
        assert!(recipe.modules.iter().any(|m| m == "ext4"));
        assert!(recipe.cmdline.capture.iter().any(|o| o == "nr_cpus=1"));
    }

    #[test]
    fn init_serves_both_boots() {
        let init = String::from_utf8_lossy(MINIMAL_INIT);
        assert!(init.starts_with("#!/bin/busybox sh"));
        assert!(init.contains("[ -e /proc/vmcore ]"));
    }
}
