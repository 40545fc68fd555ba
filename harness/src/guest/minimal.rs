//! The initramfs of one case: the base image for the kernel (with the capture userspace's
//! programs), the case's settings and first-boot modules (and the crasher module), then the
//! capture kernel and the capture initramfs under `/boot`.

use std::path::Path;

use crate::fetch::kernel::KernelFiles;
use crate::guest::caseenv;
use crate::guest::initramfs;
use crate::guest::modules::ModuleIndex;
use crate::guest::needs;
use crate::spec::image::{self, ImageRecipe};
use crate::spec::mode::Plan;
use crate::spec::scenario::{BootMode, Scenario};

/// Where the crasher module sits in the guest.
pub const CRASHER_GUEST_PATH: &str = "lib/modules/kdrill/crasher.ko";

/// What goes into one guest image besides the recipe's base.
pub struct Contents<'a> {
    pub scenario: &'a Scenario,
    pub plan: &'a Plan,
    /// The capture kernel `kexec -p` loads: the bzImage (`faithful`) or the ELF vmlinux (`fast`).
    pub capture_kernel: &'a Path,
    pub crasher: Option<&'a [u8]>,
    /// Where busybox, kexec and makedumpfile (and their libraries) come from: the capture
    /// userspace's sysroot, or `/` for the host's programs.
    pub userspace_root: &'a Path,
    /// A shape's image: the same for every case that restores it, so it holds no case settings
    /// (the host sends them after the restore) and says `KDRILL_SHAPE=1`.
    pub shape: bool,
    /// kdrill's cache: where the kernel's module alias index is kept (`guest/modalias.rs`).
    pub cache: &'a Path,
}

impl Contents<'_> {
    /// Where the capture kernel sits in the guest.
    fn capture_kernel_path(&self) -> &'static str {
        match self.plan.mode {
            BootMode::Faithful => "boot/vmlinuz",
            BootMode::Fast => "boot/vmlinux",
        }
    }
}

/// Writes the first boot's initramfs to `out`. The capture initramfs is the same minus `/boot`;
/// returns its size (what the capture kernel unpacks: `kdrill calibrate`'s estimate uses it).
pub fn write(
    recipe: &ImageRecipe,
    files: &KernelFiles,
    contents: &Contents,
    out: &Path,
    project_root: Option<&Path>,
) -> Result<u64, String> {
    let scenario = contents.scenario;
    let init = match project_root
        .map(|r| r.join("images/minimal/init"))
        .filter(|p| p.is_file())
    {
        Some(path) => {
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?
        }
        None => image::MINIMAL_INIT.to_vec(),
    };
    let index = ModuleIndex::scan(&files.modules, &files.release)
        .map_err(|e| e.to_string())?
        .with_alias_cache(contents.cache);
    let base = initramfs::build_base(recipe, &init, &index, contents.userspace_root)
        .map_err(|e| e.to_string())?;

    // The scenario's first-boot needs (their modules with dependencies, minus what the base
    // loads), each module with the parameters of the needs it provides.
    let needs = &scenario.guest.needs;
    let resolved = needs::resolve(&index, needs).map_err(|e| {
        format!("{e}; if this route cannot work on this kernel, declare it under `skip:` in the kernel entry")
    })?;
    let mut owned: Vec<(String, Vec<u8>)> = Vec::new();
    let mut list = String::new();
    for module in &resolved.order {
        let guest = format!("lib/modules/{}/{module}.ko", files.release);
        if base
            .modules
            .iter()
            .any(|m| m.trim_start_matches('/') == guest)
        {
            continue;
        }
        let params = resolved.params_of(needs, module).join(" ");
        list.push_str(&format!("/{guest} {params}\n"));
        owned.push((guest, index.read(module).map_err(|e| e.to_string())?));
    }
    if let Some(ko) = contents.crasher {
        owned.push((CRASHER_GUEST_PATH.to_string(), ko.to_vec()));
    }
    let mut env = machine_env(recipe, contents);
    if !contents.shape {
        env.push_str(&caseenv::case_env(scenario));
    }
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
    let kernel = std::fs::read(contents.capture_kernel)
        .map_err(|e| format!("cannot read {}: {e}", contents.capture_kernel.display()))?;
    let mut first = capture.clone();
    first.extend(initramfs::segment(&[
        (contents.capture_kernel_path(), 0o644, &kernel),
        ("boot/capture.img", 0o644, &capture),
    ]));
    std::fs::write(out, first).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    Ok(capture.len() as u64)
}

/// The settings of the machine and its capture path, the same for every case a shape serves:
/// which capture kernel `kexec -p` loads, how, and with which command line. Values were checked
/// for quotes and newlines when the recipe and scenario were loaded.
fn machine_env(recipe: &ImageRecipe, contents: &Contents) -> String {
    caseenv::lines(&[
        ("KDRILL_SHAPE", if contents.shape { "1" } else { "" }.into()),
        (
            "KDRILL_CAPTURE_KERNEL",
            format!("/{}", contents.capture_kernel_path()),
        ),
        ("KDRILL_KEXEC_ARGS", contents.plan.kexec.join(" ")),
        ("KDRILL_CAPTURE_CMDLINE", recipe.cmdline.capture.join(" ")),
    ])
}

/// What the capture boot reads from `kdrill/capture.env` on the dump disk: makedumpfile's
/// options. On the disk rather than in the image, so a restored shape captures each case its way.
pub fn capture_env(plan: &Plan) -> String {
    caseenv::lines(&[("KDRILL_MAKEDUMPFILE_ARGS", plan.makedumpfile.join(" "))])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_split_into_machine_case_and_capture() {
        let recipe = image::minimal(None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cpu1.yaml");
        std::fs::write(
            &path,
            "id: cpu1\ndescription: d\ntrigger: sysrq\npin_cpu: 1\nsysctls:\n  kernel.sysrq: 1\nexpect:\n  log: [x]\n",
        )
        .unwrap();
        let scenario = crate::spec::scenario::from_file(&path).unwrap();
        let case = caseenv::case_env(&scenario);
        assert!(case.contains("KDRILL_TRIGGER='sysrq'\n"), "{case}");
        assert!(case.contains("KDRILL_PIN_CPU='1'\n"), "{case}");
        assert!(case.contains("KDRILL_SYSCTLS='kernel.sysrq=1'\n"), "{case}");
        assert!(case.contains("KDRILL_DIRTY_MIB=''\n"), "{case}");
        let plan = Plan {
            mode: BootMode::Fast,
            restore: true,
            boots_because: None,
            faithful_because: None,
            crashkernel: "256M@256M".into(),
            kexec: vec!["-c".into(), "-i".into(), "--args-linux".into()],
            makedumpfile: vec!["-l".into(), "-d".into(), "31".into()],
        };
        let contents = Contents {
            scenario: &scenario,
            plan: &plan,
            capture_kernel: Path::new("/cache/vmlinux"),
            crasher: None,
            userspace_root: Path::new("/"),
            shape: true,
            cache: Path::new("/nonexistent"),
        };
        let machine = machine_env(&recipe, &contents);
        assert!(machine.contains("KDRILL_SHAPE='1'\n"), "{machine}");
        assert!(
            machine.contains("KDRILL_CAPTURE_KERNEL='/boot/vmlinux'\n"),
            "{machine}"
        );
        assert!(
            machine.contains("KDRILL_KEXEC_ARGS='-c -i --args-linux'\n"),
            "{machine}"
        );
        assert!(machine.contains("nr_cpus=1"), "{machine}");
        assert!(!machine.contains("KDRILL_TRIGGER"), "{machine}");
        assert_eq!(capture_env(&plan), "KDRILL_MAKEDUMPFILE_ARGS='-l -d 31'\n");
    }
}
