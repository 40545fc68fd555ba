//! What a case's guest is made of beyond its kernel and route: the image (`spec/images.rs`), the operator's overlay, `crashkernel=`,
//! the capture userspace, extra disks and the dump target. A scenario's `image:` block (its
//! `userspace:`), a matrix set's block and the command line can each give them; the command line
//! beats the set, the set beats the scenario, the scenario beats the kernel entry
//! (`guest.crashkernel`, `userspace:`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::spec::images::{Image, ImageKind};
use crate::spec::userspace::Userspace;

/// A scenario's `image:` block: what the scenario needs from the guest image.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioImage {
    /// The scenario runs only on this image; on another it is a SKIP with this reason.
    #[serde(default)]
    pub only: Option<ImageKind>,
    /// Files copied into the image root before its capture initrd is built (Debian image),
    /// relative to the scenario file's folder.
    #[serde(default)]
    pub overlay: Option<PathBuf>,
    /// `crashkernel=` for this scenario, instead of the kernel entry's.
    #[serde(default)]
    pub crashkernel: Option<String>,
    /// Extra disks attached after the root disk (Debian image), e.g. a small dump disk.
    #[serde(default)]
    pub disks: Vec<ExtraDisk>,
    /// Where kdump-tools sends the dump (Debian image): the guest's own dump folder, or an
    /// `sshd` kdrill starts for the case (`SSH=` in the overlay's `/etc/default/kdump-tools`).
    #[serde(default)]
    pub dump_target: DumpTarget,
}

/// An extra disk: a raw ext4 image made for the case, labelled so `/etc/fstab` can mount it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraDisk {
    /// The filesystem label (`LABEL=<label>` in the overlay's fstab).
    pub label: String,
    pub size_mib: u32,
    /// MiB taken by a file of zeros (`filler`) before the guest starts: a disk that is too full.
    #[serde(default)]
    pub fill_mib: u32,
}

/// Where the dump goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DumpTarget {
    /// `KDUMP_COREDIR` on one of the guest's own disks.
    #[default]
    Local,
    /// An `sshd` of kdrill's, reached by the guest at `10.0.2.100:22` (QEMU `guestfwd`).
    Ssh,
}

/// The image, overlay and `crashkernel=` a case was asked for by the command line or a matrix
/// set (the scenario's own `image:` block is read from the scenario).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Setup {
    pub image: Image,
    /// An overlay folder (absolute, or relative to the current folder or matrix.yaml's folder).
    pub overlay: Option<PathBuf>,
    pub crashkernel: Option<String>,
    /// Whose tools capture on the minimal image (`images/userspace.yaml`).
    pub userspace: Option<Userspace>,
}

impl Setup {
    /// What the case label adds to the scenario id: `@<image>` (`@debian-trixie`), `+<overlay folder>`,
    /// `+crashkernel=<size>` (nothing for the default minimal image).
    pub fn label_suffix(&self) -> String {
        let mut label = String::new();
        if !self.image.is_default() {
            label.push('@');
            label.push_str(self.image.name());
        }
        if let Some(overlay) = &self.overlay {
            let name = overlay
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "overlay".into());
            label.push('+');
            label.push_str(&name);
        }
        if let Some(size) = &self.crashkernel {
            label.push_str("+crashkernel=");
            label.push_str(size);
        }
        label
    }

    /// What a minimal-image case's label adds for its capture userspace: `+userspace=<name>`
    /// when it is not the kernel's own release's (`own`), else nothing.
    pub fn userspace_suffix(chosen: &Userspace, own: &Userspace) -> String {
        if chosen == own {
            String::new()
        } else {
            format!("+userspace={chosen}")
        }
    }

    /// Resolves a relative overlay against `base` (where it was written).
    pub fn anchored(mut self, base: &Path) -> Setup {
        if let Some(overlay) = &self.overlay {
            if overlay.is_relative() {
                self.overlay = Some(base.join(overlay));
            }
        }
        self
    }
}

/// Checks a `crashkernel=` value as the kernel reads it (`256M`, `384M-:128M`, `128M,high`);
/// it goes onto the kernel command line, so nothing else may be in it.
pub fn check_crashkernel(value: &str) -> Result<(), String> {
    if value.is_empty() || value.contains(char::is_whitespace) || value.contains(['\'', '"']) {
        return Err(format!("crashkernel `{value}` must be one word"));
    }
    crate::spec::crashkernel::parse(value)
        .map(|_| ())
        .map_err(|e| format!("crashkernel `{value}`: {e}"))
}

/// Checks an extra disk: a label `mkfs.ext4 -L` and fstab accept, and a filler that fits.
pub fn check_disk(disk: &ExtraDisk) -> Result<(), String> {
    let label_ok = !disk.label.is_empty()
        && disk.label.len() <= 16
        && disk
            .label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !label_ok {
        return Err(format!(
            "disk label `{}` must be 1-16 letters, digits, `-` or `_`",
            disk.label
        ));
    }
    if disk.size_mib < 8 || disk.fill_mib + 4 > disk.size_mib {
        return Err(format!(
            "disk `{}`: size_mib {} must be at least 8 and leave 4 MiB beside fill_mib {}",
            disk.label, disk.size_mib, disk.fill_mib
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_what_differs_from_the_default() {
        assert_eq!(Setup::default().label_suffix(), "");
        let setup = Setup {
            image: crate::spec::images::test_registry()
                .find("debian-bookworm")
                .unwrap(),
            overlay: Some("/srv/ops/kdump-etc".into()),
            crashkernel: Some("96M".into()),
            userspace: None,
        };
        assert_eq!(
            setup.label_suffix(),
            "@debian-bookworm+kdump-etc+crashkernel=96M"
        );
    }

    #[test]
    fn a_userspace_other_than_the_kernels_own_shows_in_the_label() {
        let (bookworm, trixie) = (
            Userspace::Release("bookworm".into()),
            Userspace::Release("trixie".into()),
        );
        assert_eq!(Setup::userspace_suffix(&bookworm, &bookworm), "");
        assert_eq!(
            Setup::userspace_suffix(&trixie, &bookworm),
            "+userspace=trixie"
        );
        assert_eq!(
            Setup::userspace_suffix(&Userspace::Host, &trixie),
            "+userspace=host"
        );
    }

    #[test]
    fn crashkernel_values_are_checked_as_the_kernel_reads_them() {
        assert!(check_crashkernel("96M").is_ok());
        assert!(check_crashkernel("384M-:128M").is_ok());
        assert!(check_crashkernel("96M quiet").is_err());
        assert!(check_crashkernel("lots").is_err());
    }

    #[test]
    fn disks_must_fit_their_filler() {
        let disk = |label: &str, size_mib, fill_mib| ExtraDisk {
            label: label.into(),
            size_mib,
            fill_mib,
        };
        assert!(check_disk(&disk("crash", 64, 40)).is_ok());
        assert!(check_disk(&disk("crash", 64, 62)).is_err());
        assert!(check_disk(&disk("a b", 64, 0)).is_err());
    }

    #[test]
    fn relative_overlays_are_anchored_where_they_were_written() {
        let setup = Setup {
            overlay: Some("ops/etc".into()),
            ..Setup::default()
        };
        assert_eq!(
            setup.anchored(Path::new("/repo")).overlay,
            Some(PathBuf::from("/repo/ops/etc"))
        );
    }
}
