//! A disk-image case's settings beyond its recipe: the command line's `--firmware` and
//! `--inject` (exported as `KDRILL_DISK_FIRMWARE` and `KDRILL_DISK_INJECT`, so test processes
//! see them too), the firmware's files, what the agent is told, and libguestfs's
//! appliance kernel.

use std::path::{Path, PathBuf};

use crate::case::error::{CaseError, SetupContext};
use crate::case::RunOptions;
use crate::spec::disk::{DiskRecipe, Firmware, Inject};

/// `--firmware` as the environment carries it.
pub const FIRMWARE_VAR: &str = "KDRILL_DISK_FIRMWARE";
/// `--inject` as the environment carries it.
pub const INJECT_VAR: &str = "KDRILL_DISK_INJECT";

/// A disk image's flags on the command line (`kdrill verify`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct DiskFlags {
    /// A disk image's firmware, `bios` or `uefi` [default: the recipe's, or its partition table's]
    #[arg(long, value_name = "FIRMWARE", value_parser = ["bios", "uefi"])]
    pub firmware: Option<String>,
    /// How kdrill's agent goes into a disk image: `cloud-init` (a NoCloud seed) or `libguestfs`
    /// (into the overlay, for images without cloud-init) [default: the recipe's, else cloud-init]
    #[arg(long, value_name = "HOW", value_parser = ["cloud-init", "libguestfs"])]
    pub inject: Option<String>,
}

impl DiskFlags {
    /// As the environment the cases read (so nextest's test processes see them too).
    pub fn export(&self) {
        if let Some(firmware) = &self.firmware {
            std::env::set_var(FIRMWARE_VAR, firmware);
        }
        if let Some(inject) = &self.inject {
            std::env::set_var(INJECT_VAR, inject);
        }
    }
}

/// The command line's firmware, when it gave one.
pub fn firmware_override() -> Option<Firmware> {
    std::env::var(FIRMWARE_VAR)
        .ok()
        .and_then(|w| Firmware::parse(&w).ok())
}

/// The command line's settings over the recipe's; a word that is not one is an error naming it.
pub fn apply(recipe: &mut DiskRecipe) -> Result<(), String> {
    if let Ok(word) = std::env::var(FIRMWARE_VAR) {
        recipe.firmware = Firmware::parse(&word).map_err(|e| format!("{FIRMWARE_VAR}: {e}"))?;
    }
    if let Ok(word) = std::env::var(INJECT_VAR) {
        recipe.inject = Inject::parse(&word).map_err(|e| format!("{INJECT_VAR}: {e}"))?;
    }
    Ok(())
}

/// Flags that make no sense with `image`: a kernel entry for a disk image (it boots its own),
/// `--firmware`/`--inject` for an image of kdrill's.
pub fn check_flags(
    image: &crate::spec::images::Image,
    kernels: bool,
    disk_flags: bool,
) -> Result<(), String> {
    if image.boots_own_kernel() && kernels {
        return Err(format!(
            "--kernel: the {image} disk image boots its own kernel; leave --kernel out"
        ));
    }
    if !image.boots_own_kernel() && disk_flags {
        return Err(format!("--firmware and --inject are for a disk image (`--image path/to/golden.qcow2`); the {image} image is kdrill's own"));
    }
    Ok(())
}

/// What the agent is told beyond the scenario's settings: the reservation to set through the
/// bootloader (`--crashkernel`, opt-in), the recipe's hints.
pub fn agent_env(recipe: &DiskRecipe, crashkernel: Option<&str>) -> String {
    let plain = |v: &str| v.chars().all(|c| !"'\"\n\\".contains(c));
    let mut vars = Vec::new();
    if let Some(size) = crashkernel.filter(|s| plain(s)) {
        vars.push(("KDRILL_SET_CRASHKERNEL", size.to_string()));
    }
    if let Some(dir) = recipe.hints.dump_folder.as_deref().filter(|s| plain(s)) {
        vars.push(("KDRILL_DUMP_FOLDER", dir.to_string()));
    }
    if let Some(unit) = recipe.hints.service.as_deref().filter(|s| plain(s)) {
        vars.push(("KDRILL_SERVICE", unit.to_string()));
    }
    crate::guest::caseenv::lines(&vars)
}

/// The kernel entry whose cached package boots libguestfs's appliance on a host without a
/// `/boot` kernel of its own.
pub const APPLIANCE_KERNEL: &str = "debian-6.1";

/// [`APPLIANCE_KERNEL`]'s files, from kdrill's cache (fetched the first time): the kernel
/// libguestfs's appliance boots, and the KVM probe (`vm::accel`).
pub fn helper_kernel(
    options: &RunOptions,
    progress: &dyn Fn(&str),
) -> Result<crate::fetch::kernel::KernelFiles, CaseError> {
    let root = match &options.project_root {
        Some(root) => root.clone(),
        None => crate::host::bundle::builtin(&options.cache).setup("helper kernel")?,
    };
    let spec = crate::spec::kernel::load(&root, APPLIANCE_KERNEL).setup("helper kernel")?;
    progress("fetching kdrill's helper kernel");
    crate::fetch::kernel::resolve(&spec, &options.cache).setup("helper kernel")
}

/// The agent's `packages.txt` (`<package> <version>` per line).
pub fn packages(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(p, v)| (p.trim().to_string(), v.trim().to_string()))
        .filter(|(p, v)| !p.is_empty() && !v.is_empty())
        .collect()
}

/// Debian's OVMF (package `ovmf`): code and variables, plain and with Secure Boot's keys.
const OVMF: &str = "/usr/share/OVMF";

/// The machine and its flash images: SeaBIOS on `pc`; OVMF on `q35` with a copy of its
/// variables (Secure Boot's, with SMM, when asked).
pub fn firmware_files(
    firmware: Firmware,
    secure_boot: bool,
    scratch: &Path,
) -> Result<(String, Vec<(PathBuf, bool)>), CaseError> {
    match firmware {
        Firmware::Bios => Ok(("pc".into(), Vec::new())),
        Firmware::Uefi => {
            let (code, vars, machine) = if secure_boot {
                ("OVMF_CODE_4M.ms.fd", "OVMF_VARS_4M.ms.fd", "q35,smm=on")
            } else {
                ("OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd", "q35")
            };
            let code = Path::new(OVMF).join(code);
            let vars = Path::new(OVMF).join(vars);
            if !code.is_file() || !vars.is_file() {
                return Err(CaseError::Setup {
                    what: "UEFI firmware",
                    detail: format!("{} is missing: install Debian's OVMF (`sudo apt-get install --no-install-recommends ovmf`)", code.display()),
                });
            }
            let copy = scratch.join("OVMF_VARS.fd");
            std::fs::copy(&vars, &copy).setup("UEFI firmware")?;
            Ok((machine.into(), vec![(code, true), (copy, false)]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_images_packages_are_read() {
        let p = packages("makedumpfile 1:1.7.6-1\nkdump-tools 1:1.10.4\n\n");
        assert_eq!(p["makedumpfile"], "1:1.7.6-1");
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn the_agent_is_told_the_reservation_and_the_hints() {
        let mut recipe = DiskRecipe::for_file(std::path::Path::new("/g.qcow2"));
        assert_eq!(agent_env(&recipe, None), "");
        recipe.hints.dump_folder = Some("/srv/crash".into());
        recipe.hints.service = Some("kdump.service".into());
        let env = agent_env(&recipe, Some("256M"));
        assert!(env.contains("KDRILL_SET_CRASHKERNEL='256M'\n"), "{env}");
        assert!(env.contains("KDRILL_DUMP_FOLDER='/srv/crash'\n"), "{env}");
        assert!(env.contains("KDRILL_SERVICE='kdump.service'\n"), "{env}");
        let settings = crate::agent::core::settings(&env);
        assert_eq!(settings["KDRILL_DUMP_FOLDER"], "/srv/crash");
    }
}
