//! The Debian image recipe (`images/debian-bookworm.yaml`): suite, mirror, packages, the modules
//! its initrds load, the disk size and the kernel command line; and the guest files kdrill puts in
//! the image (its unit and script, `images/debian/`).

use std::path::Path;

use serde::Deserialize;

use crate::spec::yaml::{self, YamlError};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebianRecipe {
    pub suite: String,
    /// `None`: the host's Debian mirror, else deb.debian.org.
    #[serde(default)]
    pub mirror: Option<String>,
    pub packages: Vec<String>,
    #[serde(default)]
    pub extra_packages: Vec<String>,
    pub initrd_modules: Vec<String>,
    pub disk_mib: u64,
    pub cmdline: Vec<String>,
}

/// The recipe compiled into kdrill, so the binary works outside the source tree.
pub const DEBIAN_YAML: &str = include_str!("../../../images/debian-bookworm.yaml");
/// kdrill's unit and script in the image, compiled in for the same reason.
pub const GUEST_UNIT: &[u8] = include_bytes!("../../../images/debian/kdrill-guest.service");
pub const GUEST_SCRIPT: &[u8] = include_bytes!("../../../images/debian/kdrill-guest");

/// The recipe from `<root>/images/debian-bookworm.yaml` when a project root is given, else the
/// built-in one; its words are checked for what a shell hook cannot carry.
pub fn load(root: Option<&Path>) -> Result<DebianRecipe, YamlError> {
    let (path, recipe): (std::path::PathBuf, DebianRecipe) = match root
        .map(|r| r.join("images/debian-bookworm.yaml"))
        .filter(|p| p.is_file())
    {
        Some(path) => {
            let recipe = yaml::load(&path)?;
            (path, recipe)
        }
        None => {
            let path = Path::new("images/debian-bookworm.yaml").to_path_buf();
            let recipe = yaml::parse(&path, DEBIAN_YAML)?;
            (path, recipe)
        }
    };
    let plain = |w: &String| {
        !w.is_empty()
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.+=:/,".contains(c))
    };
    let words = recipe
        .packages
        .iter()
        .chain(&recipe.extra_packages)
        .chain(&recipe.initrd_modules)
        .chain(&recipe.cmdline)
        .chain(std::iter::once(&recipe.suite))
        .chain(recipe.mirror.iter());
    for word in words {
        if !plain(word) {
            return Err(YamlError::Invalid {
                path,
                message: format!("`{word}` is not a plain word (a package, module, option or URL)"),
            });
        }
    }
    if recipe.disk_mib < 1024 {
        return Err(YamlError::Invalid {
            path,
            message: format!(
                "disk_mib: {} is too small for a Debian system (1024 at least)",
                recipe.disk_mib
            ),
        });
    }
    Ok(recipe)
}

/// The mirror to install from: the recipe's, else the first Debian archive in the host's apt
/// sources (`deb.debian.org` or a local mirror of it), else deb.debian.org.
pub fn mirror(recipe: &DebianRecipe, host_sources: &str) -> String {
    if let Some(mirror) = &recipe.mirror {
        return mirror.clone();
    }
    host_sources
        .lines()
        .flat_map(|line| line.split_whitespace())
        .filter(|word| word.starts_with("http://") || word.starts_with("https://"))
        .find(|url| url.trim_end_matches('/').ends_with("/debian"))
        .map(|url| url.trim_end_matches('/').to_string())
        .unwrap_or_else(|| "http://deb.debian.org/debian".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_recipe_parses_and_names_kdump_tools() {
        let recipe = load(None).unwrap();
        assert!(recipe.packages.iter().any(|p| p == "kdump-tools"));
        assert!(recipe.initrd_modules.iter().any(|m| m == "virtio_blk"));
        assert!(recipe.cmdline.iter().any(|o| o.starts_with("panic=")));
        let script = String::from_utf8_lossy(GUEST_SCRIPT);
        assert!(script.contains("ready to kdump"));
    }

    #[test]
    fn the_mirror_comes_from_the_host_when_the_recipe_leaves_it_open() {
        let recipe = load(None).unwrap();
        let deb822 = "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm\n";
        assert_eq!(mirror(&recipe, deb822), "http://mirror.example/debian");
        let ubuntu = "deb http://archive.ubuntu.com/ubuntu noble main\n";
        assert_eq!(mirror(&recipe, ubuntu), "http://deb.debian.org/debian");
        let security = "URIs: http://deb.debian.org/debian-security\n";
        assert_eq!(mirror(&recipe, security), "http://deb.debian.org/debian");
    }
}
