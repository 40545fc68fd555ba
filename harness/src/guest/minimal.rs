//! The initramfs of one case: the base image for the kernel, the case's settings and first-boot
//! modules (and the crasher module), then the capture kernel and the capture initramfs under `/boot`.

use std::path::Path;

use crate::fetch::kernel::KernelFiles;
use crate::guest::initramfs;
use crate::guest::modules::ModuleIndex;
use crate::spec::image::{self, ImageRecipe};
use crate::spec::scenario::Scenario;

/// Where the crasher module sits in the guest.
pub const CRASHER_GUEST_PATH: &str = "lib/modules/kdrill/crasher.ko";

/// Writes the first boot's initramfs to `out`. The capture initramfs is the same minus `/boot`.
pub fn write(
    recipe: &ImageRecipe,
    files: &KernelFiles,
    scenario: &Scenario,
    crasher: Option<&[u8]>,
    out: &Path,
    project_root: Option<&Path>,
) -> Result<(), String> {
    let init = match project_root
        .map(|r| r.join("images/minimal/init"))
        .filter(|p| p.is_file())
    {
        Some(path) => {
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?
        }
        None => image::MINIMAL_INIT.to_vec(),
    };
    let index = ModuleIndex::scan(&files.modules, &files.release).map_err(|e| e.to_string())?;
    let base = initramfs::build_base(recipe, &init, &index).map_err(|e| e.to_string())?;

    // First-boot modules of the scenario (with their dependencies, minus what the base loads).
    let mut owned: Vec<(String, Vec<u8>)> = Vec::new();
    let mut list = String::new();
    for spec in &scenario.guest.modules {
        let (name, params) = spec.split_once(' ').unwrap_or((spec, ""));
        for dep in index
            .load_order(&[name.to_string()])
            .map_err(|e| {
                format!("{e}; if this route cannot work on this kernel, declare it under `skip:` in the kernel entry")
            })?
        {
            let guest = format!("lib/modules/{}/{dep}.ko", files.release);
            if base
                .modules
                .iter()
                .any(|m| m.trim_start_matches('/') == guest)
                || owned.iter().any(|(p, _)| *p == guest)
            {
                continue;
            }
            let params = if dep == crate::guest::modules::normalize(name) {
                params
            } else {
                ""
            };
            list.push_str(&format!("/{guest} {params}\n"));
            owned.push((guest, index.read(&dep).map_err(|e| e.to_string())?));
        }
    }
    if let Some(ko) = crasher {
        owned.push((CRASHER_GUEST_PATH.to_string(), ko.to_vec()));
    }
    let env = case_env(recipe, scenario);
    let mut files_in_case: Vec<(&str, u32, &[u8])> = vec![
        ("etc/kdrill/case.env", 0o644, env.as_bytes()),
        ("etc/kdrill/first-modules", 0o644, list.as_bytes()),
    ];
    files_in_case.extend(
        owned
            .iter()
            .map(|(path, data)| (path.as_str(), 0o644, data.as_slice())),
    );

    let mut capture = base.cpio;
    capture.extend(initramfs::segment(&files_in_case));
    let vmlinuz = std::fs::read(&files.vmlinuz)
        .map_err(|e| format!("cannot read {}: {e}", files.vmlinuz.display()))?;
    let mut first = capture.clone();
    first.extend(initramfs::segment(&[
        ("boot/vmlinuz", 0o644, &vmlinuz),
        ("boot/capture.img", 0o644, &capture),
    ]));
    std::fs::write(out, first).map_err(|e| format!("cannot write {}: {e}", out.display()))
}

/// The shell variables the guest's init reads from `/etc/kdrill/case.env`. Values were checked for
/// quotes and newlines when the scenario was loaded.
pub fn case_env(recipe: &ImageRecipe, scenario: &Scenario) -> String {
    let sysctls: Vec<String> = scenario
        .sysctls
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let vars = [
        ("KDRILL_TRIGGER", scenario.trigger.guest_word().to_string()),
        (
            "KDRILL_CRASHER",
            scenario.crasher.clone().unwrap_or_default(),
        ),
        (
            "KDRILL_PIN_CPU",
            scenario.pin_cpu.map(|c| c.to_string()).unwrap_or_default(),
        ),
        ("KDRILL_SYSCTLS", sysctls.join(" ")),
        ("KDRILL_CAPTURE_CMDLINE", recipe.cmdline.capture.join(" ")),
        (
            "KDRILL_MAKEDUMPFILE_ARGS",
            scenario.capture.makedumpfile.join(" "),
        ),
    ];
    vars.iter().map(|(k, v)| format!("{k}='{v}'\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_env_carries_the_route() {
        let recipe = image::minimal(None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cpu1.yaml");
        std::fs::write(
            &path,
            "id: cpu1\ndescription: d\ntrigger: sysrq\npin_cpu: 1\nsysctls:\n  kernel.sysrq: 1\nexpect:\n  log: [x]\n",
        )
        .unwrap();
        let scenario = crate::spec::scenario::from_file(&path).unwrap();
        let env = case_env(&recipe, &scenario);
        assert!(env.contains("KDRILL_TRIGGER='sysrq'\n"), "{env}");
        assert!(env.contains("KDRILL_PIN_CPU='1'\n"), "{env}");
        assert!(env.contains("KDRILL_SYSCTLS='kernel.sysrq=1'\n"), "{env}");
        assert!(
            env.contains("KDRILL_MAKEDUMPFILE_ARGS='-c -d 31'\n"),
            "{env}"
        );
        assert!(env.contains("nr_cpus=1"), "{env}");
    }
}
