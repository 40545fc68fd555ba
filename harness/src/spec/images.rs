//! The image registry: the guest images kdrill can boot, one recipe each in `images/<name>.yaml`,
//! as values. A recipe names its `kind:` — how kdrill builds and follows such a guest
//! (`minimal`: kdrill's own initramfs and `/init`; `debian`: a Debian system built with mmdebstrap
//! whose own kdump-tools captures and reboots; `disk`: the operator's own bootable disk image,
//! booted through an overlay, whose own kdump service captures) — and may give `aliases:` (the
//! word `debian` for the release the README names). A disk image can also be named by its path
//! (`--image golden.qcow2`), without a recipe. A new image of a known kind is a new recipe file, no Rust.
//! What differs between kinds is answered here, by methods of [`Image`], so no code elsewhere
//! matches on an image's name or kind.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::spec::trigger::Trigger;
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
    /// The operator's own disk image (qcow2 or raw): its bootloader, kernel and kdump service,
    /// booted through a qcow2 overlay; kdrill's agent reports and crashes (three boots).
    Disk,
}

impl ImageKind {
    /// The word in a recipe's `kind:` and a scenario's `image.only`.
    pub fn word(self) -> &'static str {
        match self {
            ImageKind::Minimal => "minimal",
            ImageKind::Debian => "debian",
            ImageKind::Disk => "disk",
        }
    }

    /// Both boots are kdrill's own `/init` (it can dirty memory on purpose, run any route).
    pub fn kdrill_init(self) -> bool {
        self == ImageKind::Minimal
    }

    /// The distribution's own kdump service captures (overlays, extra disks, dump targets).
    pub fn own_kdump(self) -> bool {
        matches!(self, ImageKind::Debian | ImageKind::Disk)
    }

    /// kdrill builds the image from the case's kernel package (the kernel entry's `.deb`).
    pub fn builds_from_kernel(self) -> bool {
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
    /// A disk image named by its path on the command line (no recipe).
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<PathBuf>,
}

impl Default for Image {
    fn default() -> Image {
        Image {
            name: DEFAULT_NAME.into(),
            kind: ImageKind::Minimal,
            file: None,
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

    /// A disk image named by its path: the file (absolute), without a recipe.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// A disk image named by its path: named after the file (`golden` for `golden.qcow2`).
    pub fn disk_file(path: &Path) -> Result<Image, String> {
        if !path.is_file() {
            return Err(format!(
                "{}: no such disk image file (give a qcow2 or raw disk image, or the name of an images/<name>.yaml recipe)",
                path.display()
            ));
        }
        let path = std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let word: String = stem
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        let word = word.trim_matches('-');
        let name = if word.is_empty() {
            "disk".to_string()
        } else {
            word.to_string()
        };
        Ok(Image {
            name,
            kind: ImageKind::Disk,
            file: Some(path),
        })
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

    /// The image boots a kernel of its own (a disk image): cases have no kernel entry, and the
    /// agent goes in at boot.
    pub fn boots_own_kernel(&self) -> bool {
        self.kind == ImageKind::Disk
    }

    /// An operator's overlay has somewhere to go (an `/etc`).
    pub fn takes_overlay(&self) -> bool {
        self.kind == ImageKind::Debian
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
    pub fn refuses(&self, trigger: Trigger, has_deb: bool) -> Option<String> {
        if !self.own_kdump() {
            return None;
        }
        if trigger == Trigger::VmDump {
            return Some(format!("vm-dump dumps the running guest from the hypervisor: there is no kdump-tools capture to prove on the {} image", self.name));
        }
        // A disk image boots a kernel kdrill has no headers or package of.
        if self.boots_own_kernel() {
            return match trigger {
                Trigger::Crasher | Trigger::HangThenNmi => Some(
                    "the crasher module is built against the kernel's headers, which a disk image does not give kdrill: on a disk image use sysrq, nmi, sysrq-serial, sysrq-keyboard or watchdog".into(),
                ),
                Trigger::Drill => Some("a drill runs kdrill's Debian package on the host: on a disk image, `verify --scenario sysrq` proves the same capture".into()),
                _ => None,
            };
        }
        if !has_deb && self.kind.builds_from_kernel() {
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
                    file: None,
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

    /// The image a word names (its recipe's name or an alias), or a disk image file when the
    /// word is a path (holds a `/` or names a file here).
    pub fn find(&self, word: &str) -> Result<Image, String> {
        if let Some(entry) = self.entries.iter().find(|e| e.answers(word)) {
            return Ok(entry.image.clone());
        }
        if word.contains('/') || Path::new(word).is_file() {
            return Image::disk_file(Path::new(word));
        }
        Err(format!(
            "unknown image `{word}`: known images are {} (images/<name>.yaml), or a disk image's path",
            self.describe()
        ))
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
            file: None,
        };
        assert!(trixie
            .refuses(Trigger::VmDump, true)
            .unwrap()
            .contains("on the debian-trixie image"));
        assert!(trixie
            .refuses(Trigger::Sysrq, false)
            .unwrap()
            .contains(".deb"));
        assert_eq!(trixie.refuses(Trigger::Sysrq, true), None);
        assert_eq!(Image::default().refuses(Trigger::VmDump, false), None);
    }

    #[test]
    fn a_disk_image_is_named_by_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("My_Golden.v2.qcow2");
        std::fs::write(&file, b"x").unwrap();
        let registry = test_registry();
        let image = registry.find(file.to_str().unwrap()).unwrap();
        assert_eq!(image.kind(), ImageKind::Disk);
        assert_eq!(image.name(), "my-golden-v2");
        assert_eq!(image.file(), Some(file.as_path()));
        assert!(image.own_kdump() && !image.takes_overlay() && !image.takes_userspace());
        // A disk image boots its own kernel: no .deb is needed; a hypervisor dump proves nothing.
        assert_eq!(image.refuses(Trigger::Sysrq, false), None);
        assert!(image.refuses(Trigger::VmDump, false).is_some());
        // Routes a disk image cannot take say why.
        assert_eq!(image.refuses(Trigger::Nmi, false), None);
        assert_eq!(image.refuses(Trigger::Watchdog, false), None);
        assert!(image
            .refuses(Trigger::Crasher, false)
            .unwrap()
            .contains("headers"));
        assert!(image.refuses(Trigger::Drill, false).is_some());
        let err = registry.find("/no/such/golden.qcow2").unwrap_err();
        assert!(err.contains("no such disk image file"), "{err}");
    }
}
