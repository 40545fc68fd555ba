//! A disk image's recipe (`images/<name>.yaml` of kind `disk`), or the same settings for a file
//! named on the command line (`--image path/to/golden.qcow2`): the operator's own bootable disk
//! (its bootloader, kernel, initramfs, filesystems and kdump service), which kdrill boots through
//! a qcow2 overlay and never writes. The recipe says where the file is (a path, or a URL and its
//! sha256), the firmware, the guest's size, how kdrill's agent goes in, and optional hints.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::spec::yaml::{self, YamlError};

/// The firmware the image boots with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Firmware {
    /// SeaBIOS: the MBR or a GPT's BIOS boot partition (GRUB's i386-pc).
    #[default]
    Bios,
    /// OVMF (Debian's `ovmf` package): an EFI system partition; Secure Boot off unless asked.
    Uefi,
}

impl Firmware {
    pub fn word(self) -> &'static str {
        match self {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        }
    }

    pub fn parse(word: &str) -> Result<Firmware, String> {
        match word {
            "bios" => Ok(Firmware::Bios),
            "uefi" => Ok(Firmware::Uefi),
            other => Err(format!("`{other}` is not a firmware: bios or uefi")),
        }
    }
}

/// How kdrill's agent (the kdrill binary on the case disk plus one systemd unit) gets into the
/// image without the image's help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Inject {
    /// A cloud-init NoCloud seed (a second disk labelled `cidata`): for images that carry
    /// cloud-init, as most golden cloud images do. Nothing is written into the image.
    #[default]
    CloudInit,
    /// libguestfs (`virt-customize`) writes the unit into the case's overlay: for images
    /// without cloud-init.
    Libguestfs,
}

impl Inject {
    pub fn word(self) -> &'static str {
        match self {
            Inject::CloudInit => "cloud-init",
            Inject::Libguestfs => "libguestfs",
        }
    }

    pub fn parse(word: &str) -> Result<Inject, String> {
        match word {
            "cloud-init" => Ok(Inject::CloudInit),
            "libguestfs" => Ok(Inject::Libguestfs),
            other => Err(format!(
                "`{other}` is not a way in for the agent: cloud-init or libguestfs"
            )),
        }
    }
}

/// What the image's own configuration would tell kdrill, when an operator knows better.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Hints {
    /// The dump folder, when the kdump configuration does not say it plainly.
    #[serde(default)]
    pub dump_folder: Option<String>,
    /// The kdump service's unit (`kdump-tools.service`, `kdump.service`).
    #[serde(default)]
    pub service: Option<String>,
}

/// Where the disk file comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum DiskSource {
    /// A file on this host (qcow2 or raw).
    Path(PathBuf),
    /// Downloaded once into kdrill's cache and checked against its sha256.
    Url { url: String, sha256: String },
}

/// A disk image recipe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskRecipe {
    pub source: DiskSource,
    pub firmware: Firmware,
    /// OVMF's Secure Boot variables (uefi only).
    pub secure_boot: bool,
    pub memory_mib: u32,
    pub cpus: u32,
    pub inject: Inject,
    pub hints: Hints,
    /// Waits longer than kdrill's defaults, seconds (`case/budget.rs` `disk`).
    pub deadlines: DiskDeadlines,
    /// The recipe file, or the disk file itself for `--image PATH`.
    pub path: PathBuf,
}

/// A disk recipe's own waits, seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DiskDeadlines {
    /// Boot 1: the image boots to kdrill's agent.
    pub boot: Option<u64>,
    /// Boot 1: the kdump service is ready.
    pub ready: Option<u64>,
    /// The crash → the capture, the reboot and boot 3's agent.
    pub capture: Option<u64>,
    /// Boot 3: the kdump service is ready again and the dump is copied.
    pub ready_again: Option<u64>,
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[allow(dead_code)]
    kind: crate::spec::images::ImageKind,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    path: Option<PathBuf>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    firmware: Firmware,
    #[serde(default)]
    secure_boot: bool,
    #[serde(default = "default_memory")]
    memory_mib: u32,
    #[serde(default = "default_cpus")]
    cpus: u32,
    #[serde(default)]
    inject: Inject,
    #[serde(default)]
    hints: Hints,
    #[serde(default)]
    deadlines: DiskDeadlines,
}

/// Memory of a disk-image guest unless told: a distribution's first boot builds its capture
/// initrd, and its reservation comes out of this.
pub const DEFAULT_MEMORY_MIB: u32 = 2048;
pub const DEFAULT_CPUS: u32 = 2;

fn default_memory() -> u32 {
    DEFAULT_MEMORY_MIB
}
fn default_cpus() -> u32 {
    DEFAULT_CPUS
}

impl DiskRecipe {
    /// The settings for a file named on the command line: defaults but for what is given.
    pub fn for_file(path: &Path) -> DiskRecipe {
        DiskRecipe {
            source: DiskSource::Path(path.to_path_buf()),
            firmware: Firmware::default(),
            secure_boot: false,
            memory_mib: DEFAULT_MEMORY_MIB,
            cpus: DEFAULT_CPUS,
            inject: Inject::default(),
            hints: Hints::default(),
            deadlines: DiskDeadlines::default(),
            path: path.to_path_buf(),
        }
    }
}

/// Reads a recipe of kind `disk` and checks what serde cannot; a relative `path:` is relative
/// to the recipe's folder.
pub fn from_file(path: &Path) -> Result<DiskRecipe, YamlError> {
    let text = yaml::read(path)?;
    let file: File = yaml::parse(path, &text)?;
    let _ = &file.aliases;
    let invalid = |key: &str, message: String| yaml::at_key(path, &text, key, message);
    let source = match (file.path, file.url, file.sha256) {
        (Some(p), None, None) => {
            let p = if p.is_absolute() {
                p
            } else {
                path.parent().unwrap_or(Path::new(".")).join(p)
            };
            DiskSource::Path(p)
        }
        (None, Some(url), Some(sha256)) => {
            if !(url.starts_with("http://")
                || url.starts_with("https://")
                || url.starts_with("file://"))
            {
                return Err(invalid(
                    "url",
                    format!("`{url}`: an http://, https:// or file:// URL"),
                ));
            }
            if sha256.len() != 64 || !sha256.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(invalid(
                    "sha256",
                    "64 hex digits: the disk file's sha256 (sha256sum FILE)".into(),
                ));
            }
            DiskSource::Url {
                url,
                sha256: sha256.to_ascii_lowercase(),
            }
        }
        (None, Some(_), None) => {
            return Err(invalid(
                "url",
                "a url needs its sha256: add `sha256: <64 hex digits>`".into(),
            ))
        }
        _ => {
            return Err(YamlError::Invalid {
                path: path.to_path_buf(),
                message: "a disk image names its file: `path: golden.qcow2`, or `url:` with `sha256:` (not both)".into(),
            })
        }
    };
    if file.secure_boot && file.firmware != Firmware::Uefi {
        return Err(invalid(
            "secure_boot",
            "Secure Boot needs `firmware: uefi`".into(),
        ));
    }
    if !(256..=65536).contains(&file.memory_mib) {
        return Err(invalid(
            "memory_mib",
            format!("{} MiB: between 256 and 65536", file.memory_mib),
        ));
    }
    if !(1..=64).contains(&file.cpus) {
        return Err(invalid("cpus", format!("{}: between 1 and 64", file.cpus)));
    }
    Ok(DiskRecipe {
        source,
        firmware: file.firmware,
        secure_boot: file.secure_boot,
        memory_mib: file.memory_mib,
        cpus: file.cpus,
        inject: file.inject,
        hints: file.hints,
        deadlines: file.deadlines,
        path: path.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("golden.yaml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn a_recipe_names_its_file_relative_to_itself() {
        let (dir, path) = write("kind: disk\npath: disks/golden.qcow2\nfirmware: uefi\ninject: libguestfs\nmemory_mib: 3072\nhints:\n  dump_folder: /srv/crash\n");
        let recipe = from_file(&path).unwrap();
        assert_eq!(
            recipe.source,
            DiskSource::Path(dir.path().join("disks/golden.qcow2"))
        );
        assert_eq!(recipe.firmware, Firmware::Uefi);
        assert_eq!(recipe.inject, Inject::Libguestfs);
        assert_eq!((recipe.memory_mib, recipe.cpus), (3072, 2));
        assert_eq!(recipe.hints.dump_folder.as_deref(), Some("/srv/crash"));
    }

    #[test]
    fn bad_recipes_say_what_to_write() {
        let (_d, path) = write("kind: disk\nurl: https://example.org/g.qcow2\n");
        let err = from_file(&path).unwrap_err().to_string();
        assert!(err.contains("needs its sha256"), "{err}");
        let (_d, path) = write("kind: disk\nurl: ftp://x/g.qcow2\nsha256: 00\n");
        assert!(from_file(&path)
            .unwrap_err()
            .to_string()
            .contains("file:// URL"));
        let (_d, path) = write("kind: disk\nurl: https://x/g\nsha256: abc\n");
        assert!(from_file(&path).unwrap_err().to_string().contains("64 hex"));
        let (_d, path) = write("kind: disk\n");
        assert!(from_file(&path)
            .unwrap_err()
            .to_string()
            .contains("names its file"));
        let (_d, path) = write("kind: disk\npath: a\nsecure_boot: true\n");
        assert!(from_file(&path)
            .unwrap_err()
            .to_string()
            .contains("firmware: uefi"));
        let (_d, path) = write("kind: disk\npath: a\nfirmware: coreboot\n");
        assert!(from_file(&path)
            .unwrap_err()
            .to_string()
            .contains("coreboot"));
        let (_d, path) = write("kind: disk\npath: a\nmemory_mib: 64\n");
        let err = from_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("between 256") && err.contains("golden.yaml:3:"),
            "{err}"
        );
    }

    #[test]
    fn words_of_the_command_line() {
        assert_eq!(Firmware::parse("uefi"), Ok(Firmware::Uefi));
        assert!(Firmware::parse("efi").unwrap_err().contains("bios or uefi"));
        assert_eq!(Inject::parse("libguestfs"), Ok(Inject::Libguestfs));
        assert!(Inject::parse("ssh").is_err());
    }
}
