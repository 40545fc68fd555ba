//! The guest image recipe (`images/minimal.yaml`): programs, what the guest needs from its kernel
//! (`Need`: a function and how a kernel names it, shared with scenarios and the Debian recipe) and
//! kernel command lines.

use std::path::Path;

use serde::Deserialize;

use crate::spec::yaml::{self, YamlError};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRecipe {
    /// `minimal` (the registry's word, `spec/images.rs`).
    pub kind: crate::spec::images::ImageKind,
    pub binaries: Vec<Binary>,
    /// What the guest needs from its kernel; `guest/needs/` finds each in the kernel at hand.
    pub needs: Vec<Need>,
    pub cmdline: Cmdlines,
}

/// A function the guest needs from its kernel ("ext4 with metadata checksums"), and how a kernel
/// names it. Which modules that takes is derived from each kernel: nothing when it is built in,
/// else the module, its `depends=` and its `softdep=` (what `modprobe <find>` would load).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Need {
    /// The function in words, as errors name it: `kernel X has no <need>`.
    pub need: String,
    /// What `modprobe` would be given: a module name (`ext4`), or an alias a module declares
    /// (`fs-ext4`, the one the kernel requests when it mounts ext4), built in or not.
    pub find: String,
    /// Module parameters (`heartbeat=1`) for the module that provides it (scenario needs only:
    /// a built-in function takes its parameters on the kernel command line instead).
    #[serde(default)]
    pub params: Vec<String>,
}

impl Need {
    /// What is wrong with this need, if anything: `find` and `params` reach a shell in the guest.
    pub fn check(&self) -> Result<(), String> {
        let word = |w: &str, extra: &str| {
            !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.,:+".contains(c) || extra.contains(c))
        };
        if self.need.trim().is_empty() {
            return Err(format!(
                "need with find `{}`: say what the function is in `need:`",
                self.find
            ));
        }
        if !word(&self.find, "") {
            return Err(format!(
                "need `{}`: find `{}` is not a module name or alias (one word of letters, digits and -_.,:+)",
                self.need, self.find
            ));
        }
        for param in &self.params {
            let valid = param.split_once('=').is_some_and(|(key, value)| {
                word(key, "") && (value.is_empty() || word(value, "=/"))
            });
            if !valid {
                return Err(format!(
                    "need `{}`: param `{param}` is not one `key=value` word",
                    self.need
                ));
            }
        }
        Ok(())
    }

    /// `find [param=value ...]`: one line of a list that `modprobe` reads (the Debian guest's).
    pub fn modprobe_line(&self) -> String {
        std::iter::once(self.find.as_str())
            .chain(self.params.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Checks every need of a list (`field` names the list in the message).
pub fn check_needs(field: &str, needs: &[Need]) -> Result<(), String> {
    needs
        .iter()
        .try_for_each(Need::check)
        .map_err(|e| format!("{field}: {e}"))
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
    let (path, recipe) = match root
        .map(|r| r.join("images/minimal.yaml"))
        .filter(|p| p.is_file())
    {
        Some(path) => (path.clone(), yaml::load::<ImageRecipe>(&path)?),
        None => (
            Path::new("images/minimal.yaml").to_path_buf(),
            yaml::parse(Path::new("images/minimal.yaml"), MINIMAL_YAML)?,
        ),
    };
    check_needs("needs", &recipe.needs).map_err(|message| YamlError::Invalid { path, message })?;
    Ok(recipe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_recipe_parses() {
        let recipe = minimal(None).unwrap();
        assert!(recipe.binaries.iter().any(|b| b.name == "makedumpfile"));
        assert!(recipe.needs.iter().any(|n| n.find == "ext4"));
        // Needs name functions, never a module that only some kernels have.
        assert!(recipe.needs.iter().all(|n| !n.find.contains("crc32c")));
        assert!(recipe.cmdline.capture.iter().any(|o| o == "nr_cpus=1"));
    }

    #[test]
    fn a_need_is_checked() {
        let need = |find: &str, params: &[&str]| Need {
            need: "i6300esb watchdog driver".into(),
            find: find.into(),
            params: params.iter().map(|p| p.to_string()).collect(),
        };
        assert_eq!(need("i6300esb", &["heartbeat=1"]).check(), Ok(()));
        assert_eq!(
            need("i6300esb", &["heartbeat=1", "nowayout=0"]).modprobe_line(),
            "i6300esb heartbeat=1 nowayout=0"
        );
        assert_eq!(need("fs-ext4", &[]).modprobe_line(), "fs-ext4");
        let err = need("i6300esb x", &[]).check().unwrap_err();
        assert!(
            err.contains("find `i6300esb x` is not a module name"),
            "{err}"
        );
        let err = need("i6300esb", &["heartbeat"]).check().unwrap_err();
        assert!(
            err.contains("param `heartbeat` is not one `key=value`"),
            "{err}"
        );
        let err = need("i6300esb", &["a='b'"]).check().unwrap_err();
        assert!(err.contains("param `a='b'`"), "{err}");
        let mut nameless = need("ext4", &[]);
        nameless.need = " ".into();
        let err = check_needs("needs", &[nameless]).unwrap_err();
        assert!(err.starts_with("needs: need with find `ext4`"), "{err}");
    }

    #[test]
    fn a_recipe_naming_modules_is_refused_with_the_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("images")).unwrap();
        let old = MINIMAL_YAML.replace("needs:", "modules: [ext4]\nneeds:");
        std::fs::write(dir.path().join("images/minimal.yaml"), old).unwrap();
        let err = minimal(Some(dir.path())).unwrap_err().to_string();
        assert!(err.contains("unknown field `modules`"), "{err}");
    }

    #[test]
    fn init_serves_both_boots() {
        let init = String::from_utf8_lossy(MINIMAL_INIT);
        assert!(init.starts_with("#!/bin/busybox sh"));
        assert!(init.contains("[ -e /proc/vmcore ]"));
    }
}
