//! A Debian image's recipe (`images/debian-bookworm.yaml`, `images/debian-trixie.yaml`: any
//! recipe of kind `debian`): suite, mirrors, packages, the initramfs module list, the kernel
//! command line, and the folder of files kdrill adds (its units and scripts). `guest/debian/`
//! builds it.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::spec::yaml::{self, YamlError};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebianRecipe {
    /// `debian` (the registry's word, `spec/images.rs`).
    pub kind: crate::spec::images::ImageKind,
    /// Other names the image answers to (`debian` for the release the README names).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The Debian release (`bookworm`).
    pub suite: String,
    /// The package mirror: `host` (this host's apt configuration, else deb.debian.org) or a URL.
    pub mirror: String,
    /// The security archive: `host`, a URL, or `none`.
    pub security: String,
    pub components: Vec<String>,
    /// Installed with their dependencies (`--no-install-recommends`, as mmdebstrap does).
    pub packages: Vec<String>,
    /// The operator's own additions, installed with the rest.
    #[serde(default)]
    pub extra_packages: Vec<String>,
    /// `MODULES=list` for both initrds: what the guest needs to mount its root, as needs
    /// (`guest/needs/` derives the modules from the kernel of each image).
    pub initramfs_needs: Vec<crate::spec::image::Need>,
    pub hostname: String,
    /// The kernel command line of the first and third boots (kdrill adds `crashkernel=`).
    pub cmdline: Vec<String>,
    /// Free space on the root disk beyond its files, MiB (the dump folder is on it).
    pub free_mib: u32,
    /// kdrill's files for the image, relative to the recipe: `root/` is copied into the image
    /// root, `finish` runs in it last.
    pub files: PathBuf,
    /// Waits of the three boots this release needs longer than kdrill's defaults
    /// (`case/budget.rs`), in seconds; at most twice the default.
    #[serde(default)]
    pub deadlines: Deadlines,
    /// The recipe file (for errors and for `files`).
    #[serde(skip)]
    pub path: PathBuf,
}

/// A Debian recipe's own waits, seconds (`None`: kdrill's default). Named as the phases of
/// `result.json`'s `production.phases`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deadlines {
    /// Boot 1: systemd starts kdrill's first unit.
    pub boot: Option<u64>,
    /// Boot 1: kdump-config says `ready to kdump`.
    pub ready: Option<u64>,
    /// The crash → the capture kernel's initrd starts.
    pub capture: Option<u64>,
    /// The capture kernel → kdump-tools-dump.service starts.
    pub saving: Option<u64>,
    /// kdump-tools saves the dump and the guest boots again.
    pub reboot: Option<u64>,
    /// Boot 3: kdump-config says `ready to kdump` again.
    pub ready_again: Option<u64>,
}

impl Deadlines {
    /// Each set wait by its YAML name.
    pub fn named(&self) -> [(&'static str, Option<u64>); 6] {
        [
            ("boot", self.boot),
            ("ready", self.ready),
            ("capture", self.capture),
            ("saving", self.saving),
            ("reboot", self.reboot),
            ("ready_again", self.ready_again),
        ]
    }
}

impl DebianRecipe {
    /// The image's name: its recipe file's (`debian-trixie`), which names its cache folder.
    pub fn name(&self) -> String {
        self.path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

impl DebianRecipe {
    /// The folder of kdrill's files for the image.
    pub fn files_dir(&self) -> PathBuf {
        self.path
            .parent()
            .unwrap_or(Path::new("."))
            .join(&self.files)
    }

    /// Every package the image installs: the recipe's, then the operator's.
    pub fn all_packages(&self) -> Vec<String> {
        self.packages
            .iter()
            .chain(&self.extra_packages)
            .cloned()
            .collect()
    }
}

/// Reads `image`'s recipe under `root` and checks what serde cannot.
pub fn load(root: &Path, image: &crate::spec::images::Image) -> Result<DebianRecipe, YamlError> {
    let path = root.join(image.recipe());
    let recipe = from_file(&path)?;
    if !recipe.kind.own_kdump() {
        return Err(YamlError::Invalid {
            path,
            message: format!("kind: {} is not a Debian image's", recipe.kind),
        });
    }
    Ok(recipe)
}

pub fn from_file(path: &Path) -> Result<DebianRecipe, YamlError> {
    let mut recipe: DebianRecipe = yaml::load(path)?;
    recipe.path = path.to_path_buf();
    let invalid = |message: String| YamlError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let word = |w: &str| {
        !w.is_empty()
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-+.:=_/,".contains(c))
    };
    for name in recipe
        .all_packages()
        .iter()
        .chain(&recipe.components)
        .chain(std::iter::once(&recipe.suite))
        .chain(std::iter::once(&recipe.hostname))
    {
        if !word(name) {
            return Err(invalid(format!(
                "`{name}` is not a package, component or name (one word of letters, digits and -+.:=_/,)"
            )));
        }
    }
    crate::spec::image::check_needs("initramfs_needs", &recipe.initramfs_needs).map_err(invalid)?;
    if let Some((name, _)) = recipe
        .deadlines
        .named()
        .into_iter()
        .find(|(_, v)| *v == Some(0))
    {
        return Err(invalid(format!(
            "deadlines.{name}: 0 seconds; leave it out for kdrill's default"
        )));
    }
    for option in &recipe.cmdline {
        if option.contains(char::is_whitespace) || option.contains(['\'', '"']) {
            return Err(invalid(format!("cmdline: `{option}` must be one word")));
        }
        if option.starts_with("crashkernel=") {
            return Err(invalid(
                "cmdline: crashkernel= comes from the kernel entry, the scenario or --crashkernel"
                    .into(),
            ));
        }
    }
    for (field, value) in [("mirror", &recipe.mirror), ("security", &recipe.security)] {
        let known = value == "host"
            || (field == "security" && value == "none")
            || value.starts_with("http://")
            || value.starts_with("https://");
        if !known || value.contains(char::is_whitespace) {
            return Err(invalid(format!(
                "{field}: `{value}` is not `host`{} or an http(s) URL",
                if field == "security" { ", `none`" } else { "" }
            )));
        }
    }
    if !recipe.files_dir().join("root").is_dir() || !recipe.files_dir().join("finish").is_file() {
        return Err(invalid(format!(
            "files: {} must hold root/ and finish",
            recipe.files_dir().display()
        )));
    }
    Ok(recipe)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project_recipe() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("images/debian-bookworm.yaml")
    }

    #[test]
    fn a_recipe_sets_its_own_waits() {
        let trixie = project_recipe().with_file_name("debian-trixie.yaml");
        assert_eq!(from_file(&trixie).unwrap().deadlines.reboot, Some(420));
        assert_eq!(
            from_file(&project_recipe()).unwrap().deadlines,
            Deadlines::default()
        );
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(&trixie).unwrap();
        let path = dir.path().join("debian-x.yaml");
        std::fs::write(&path, text.replace("reboot: 420", "reboot: 0")).unwrap();
        let err = from_file(&path).unwrap_err().to_string();
        assert!(err.contains("deadlines.reboot: 0 seconds"), "{err}");
        std::fs::write(&path, text.replace("reboot: 420", "rebooot: 420")).unwrap();
        let err = from_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("debian-x.yaml:") && err.contains("rebooot"),
            "{err}"
        );
    }

    #[test]
    fn the_project_recipe_parses() {
        let recipe = from_file(&project_recipe()).unwrap();
        assert_eq!(recipe.suite, "bookworm");
        for needed in [
            "kdump-tools",
            "systemd-sysv",
            "makedumpfile",
            "initramfs-tools",
        ] {
            assert!(recipe.packages.iter().any(|p| p == needed), "{needed}");
        }
        assert!(recipe
            .initramfs_needs
            .iter()
            .any(|n| n.find == "virtio_blk"));
        assert!(recipe
            .initramfs_needs
            .iter()
            .all(|n| n.params.is_empty() && !n.find.contains("crc32c")));
        assert!(recipe.cmdline.iter().any(|o| o.starts_with("panic=")));
    }

    #[test]
    fn a_crashkernel_in_the_recipe_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let files = dir.path().join("files");
        std::fs::create_dir_all(files.join("root")).unwrap();
        std::fs::write(files.join("finish"), "").unwrap();
        let text = std::fs::read_to_string(project_recipe())
            .unwrap()
            .replace("\nfiles: debian\n", "\nfiles: files\n")
            .replace("  - rw ", "  - crashkernel=1G\n  - rw ");
        let path = dir.path().join("r.yaml");
        std::fs::write(&path, text).unwrap();
        let err = from_file(&path).unwrap_err().to_string();
        assert!(err.contains("crashkernel= comes from"), "{err}");
    }
}
