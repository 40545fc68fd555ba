//! The image registry: the guest images kdrill can boot, one recipe each in `images/<name>.yaml`,
//! as values. A recipe names its `kind:` — how kdrill builds and follows such a guest
//! (`minimal`: kdrill's own initramfs and `/init`; `debian`: a Debian system built with mmdebstrap
//! whose own kdump-tools captures and reboots) — and may give `aliases:` (the word `debian` for
//! the release the README names). A new image of a known kind is a new recipe file, no Rust.
//! What differs between kinds is answered here, by methods of [`Image`], so no code elsewhere
//! matches on an image's name or kind.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::spec::yaml::{self, YamlError};

/// How kdrill builds and follows a guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageKind {
    /// kdrill's own busybox initramfs: both boots are kdrill's `/init`.
    Minimal,
    /// A Debian release built from packages: the distribution's own kdump-tools captures into
    /// its dump folder and the guest reboots (three boots).
    Debian,
}

impl ImageKind {
    /// The word in a recipe's `kind:` and a scenario's `image.only`.
    pub fn word(self) -> &'static str {
        match self {
            ImageKind::Minimal => "minimal",
            ImageKind::Debian => "debian",
        }
    }

    /// Both boots are kdrill's own `/init` (it can dirty memory on purpose, run any route).
    pub fn kdrill_init(self) -> bool {
        self == ImageKind::Minimal
    }

    /// The distribution's own kdump service captures (overlays, extra disks, dump targets).
    pub fn own_kdump(self) -> bool {
        self == ImageKind::Debian
    }
}

impl std::fmt::Display for ImageKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.word())
    }
}

/// The image every case boots unless told otherwise: kdrill's own (`images/minimal.yaml`).
const DEFAULT_NAME: &str = "minimal";

/// One guest image: its recipe's name (`images/<name>.yaml`) and kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Image {
    name: String,
    kind: ImageKind,
}

impl Default for Image {
    fn default() -> Image {
        Image {
            name: DEFAULT_NAME.into(),
            kind: ImageKind::Minimal,
        }
    }
}

impl std::fmt::Display for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl Image {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn kind(&self) -> ImageKind {
        self.kind
    }

    /// The recipe, relative to the project root.
    pub fn recipe(&self) -> PathBuf {
        Path::new("images").join(format!("{}.yaml", self.name))
    }

    /// The image cases boot when nothing names one (case labels leave it out).
    pub fn is_default(&self) -> bool {
        *self == Image::default()
    }

    /// The distribution's own kdump service captures, in a guest that reboots: the image is
    /// built from the kernel's `.deb` and takes an operator's `/etc` overlay and extra disks.
    pub fn own_kdump(&self) -> bool {
        self.kind.own_kdump()
    }

    /// An operator's overlay has somewhere to go (an `/etc`).
    pub fn takes_overlay(&self) -> bool {
        self.own_kdump()
    }

    /// The capture userspace is kdrill's to choose (`images/userspace.yaml`); an image with its
    /// own kdump captures with its own release's tools.
    pub fn takes_userspace(&self) -> bool {
        self.kind.kdrill_init()
    }

    /// Whether a scenario whose `image.only` is `only` runs here.
    pub fn fits(&self, only: ImageKind) -> bool {
        self.kind == only
    }

    /// Why a route cannot be proved on this image, if it cannot: a dump taken by the hypervisor
    /// proves nothing of the image's own kdump.
    pub fn refuses(&self, hypervisor_dump: bool, has_deb: bool) -> Option<String> {
        if !self.own_kdump() {
            return None;
        }
        if hypervisor_dump {
            return Some(format!("vm-dump dumps the running guest from the hypervisor: there is no kdump-tools capture to prove on the {} image", self.name));
        }
        if !has_deb {
            return Some(format!(
                "the {} image installs the kernel's .deb; a local kernel entry has none",
                self.name
            ));
        }
        None
    }
}

/// Whether the image a calibration or result names (`image:`) captured with a distribution's own
/// kdump (any image but kdrill's own minimal one, and older files' word `debian`).
pub fn named_own_kdump(name: &str) -> bool {
    name != DEFAULT_NAME
}

/// What the registry reads of every recipe (the rest is the kind's own recipe type).
#[derive(Debug, Deserialize)]
struct Head {
    kind: ImageKind,
    #[serde(default)]
    aliases: Vec<String>,
}

#[derive(Debug, Clone)]
struct Entry {
    image: Image,
    aliases: Vec<String>,
}

/// Every recipe of a project's `images/` folder, by name and alias.
#[derive(Debug, Clone)]
pub struct Registry {
    entries: Vec<Entry>,
}

/// Files of `images/` that are not image recipes.
const NOT_RECIPES: [&str; 1] = ["userspace"];

impl Registry {
    /// Reads `<root>/images/*.yaml` (but `userspace.yaml`): names, kinds, aliases; a name or
    /// alias given twice, or a missing default image, is an error naming the files.
    pub fn load(root: &Path) -> Result<Registry, YamlError> {
        let dir = root.join("images");
        let mut entries: Vec<Entry> = Vec::new();
        for name in yaml::stems(&dir) {
            if NOT_RECIPES.contains(&name.as_str()) {
                continue;
            }
            let path = dir.join(format!("{name}.yaml"));
            let head: Head = yaml::load(&path)?;
            let invalid = |message: String| YamlError::Invalid {
                path: path.clone(),
                message,
            };
            for word in std::iter::once(&name).chain(&head.aliases) {
                crate::spec::bounds::check_id_word(word)
                    .map_err(|e| invalid(format!("image name: {e}")))?;
            }
            for word in std::iter::once(&name).chain(&head.aliases) {
                if let Some(other) = entries.iter().find(|e| e.answers(word)) {
                    return Err(invalid(format!(
                        "`{word}` already names images/{}.yaml: image names and aliases must be unique",
                        other.image.name
                    )));
                }
            }
            entries.push(Entry {
                image: Image {
                    name,
                    kind: head.kind,
                },
                aliases: head.aliases,
            });
        }
        let default = Image::default();
        if !entries.iter().any(|e| e.image == default) {
            return Err(YamlError::Invalid {
                path: dir.join(format!("{DEFAULT_NAME}.yaml")),
                message: format!(
                    "the default image `{DEFAULT_NAME}` (kind {}) is missing",
                    default.kind
                ),
            });
        }
        Ok(Registry { entries })
    }

    /// The image a word names (its recipe's name or an alias).
    pub fn find(&self, word: &str) -> Result<Image, String> {
        self.entries
            .iter()
            .find(|e| e.answers(word))
            .map(|e| e.image.clone())
            .ok_or_else(|| {
                format!(
                    "unknown image `{word}`: known images are {} (images/<name>.yaml)",
                    self.describe()
                )
            })
    }

    /// `minimal, debian-bookworm (alias debian), debian-trixie`.
    pub fn describe(&self) -> String {
        self.entries
            .iter()
            .map(|e| {
                if e.aliases.is_empty() {
                    e.image.name.clone()
                } else {
                    format!("{} (alias {})", e.image.name, e.aliases.join(", "))
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Every image, in name order.
    pub fn images(&self) -> impl Iterator<Item = &Image> {
        self.entries.iter().map(|e| &e.image)
    }
}

impl Entry {
    fn answers(&self, word: &str) -> bool {
        self.image.name == word || self.aliases.iter().any(|a| a == word)
    }
}

/// The registry of this checkout's `images/`, for tests.
#[cfg(test)]
pub(crate) fn test_registry() -> Registry {
    Registry::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("..")).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    #[test]
    fn the_project_images_are_data() {
        let registry = Registry::load(&project()).unwrap();
        let bookworm = registry.find("debian-bookworm").unwrap();
        assert_eq!(registry.find("debian").unwrap(), bookworm);
        assert_eq!(bookworm.kind(), ImageKind::Debian);
        let trixie = registry.find("debian-trixie").unwrap();
        assert!(trixie.own_kdump() && trixie.takes_overlay() && !trixie.takes_userspace());
        assert_eq!(trixie.recipe(), Path::new("images/debian-trixie.yaml"));
        let minimal = registry.find("minimal").unwrap();
        assert!(minimal.is_default() && minimal.takes_userspace() && !minimal.own_kdump());
        let err = registry.find("fedora").unwrap_err();
        assert!(
            err.contains("unknown image `fedora`")
                && err.contains("debian-bookworm (alias debian)"),
            "{err}"
        );
    }

    #[test]
    fn a_name_given_twice_and_a_missing_default_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("images");
        std::fs::create_dir_all(&images).unwrap();
        std::fs::write(images.join("a.yaml"), "kind: debian\naliases: [debian]\n").unwrap();
        let err = Registry::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("the default image `minimal`"), "{err}");
        std::fs::write(images.join("minimal.yaml"), "kind: minimal\n").unwrap();
        std::fs::write(images.join("userspace.yaml"), "releases: {}\n").unwrap();
        assert_eq!(Registry::load(dir.path()).unwrap().images().count(), 2);
        std::fs::write(images.join("b.yaml"), "kind: debian\naliases: [debian]\n").unwrap();
        let err = Registry::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("`debian` already names images/a.yaml"),
            "{err}"
        );
        std::fs::remove_file(images.join("b.yaml")).unwrap();
        std::fs::write(images.join("c.yaml"), "kind: fedora\n").unwrap();
        let err = Registry::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("c.yaml") && err.contains("fedora"), "{err}");
    }

    #[test]
    fn what_an_image_refuses_is_said_with_its_name() {
        let trixie = Image {
            name: "debian-trixie".into(),
            kind: ImageKind::Debian,
        };
        assert!(trixie
            .refuses(true, true)
            .unwrap()
            .contains("on the debian-trixie image"));
        assert!(trixie.refuses(false, false).unwrap().contains(".deb"));
        assert_eq!(trixie.refuses(false, true), None);
        assert_eq!(Image::default().refuses(true, false), None);
    }
}
