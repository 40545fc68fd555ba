//! Everything a Debian-image case needs before its guest boots: the kernel (and crasher), the
//! image (from the cache or built), a qcow2 overlay of its disk, the case disk, extra disks, the
//! network target's sshd, and the QEMU command line (saved as evidence). Unlike the minimal
//! image's, this QEMU reboots: the reboot after the capture is part of what is proved.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::case::budget::debian as budget;
use crate::case::error::{CaseError, SetupContext};
use crate::case::verdict::CaseResult;
use crate::case::{Case, RunOptions};
use crate::guest::debian::{casedisk, Overlay};
use crate::guest::dumpdisk;
use crate::host::process;
use crate::host::sshd::Sshd;
use crate::host::tools;
use crate::spec::debian::DebianRecipe;
use crate::spec::setup::DumpTarget;
use crate::vm::accel;
use crate::vm::qemu::{self, GuestConfig};

/// A Debian guest ready to start.
pub struct Prepared {
    pub qemu: PathBuf,
    pub config: GuestConfig,
    pub args: Vec<String>,
    /// The disks in `/dev/vd*` order: the root overlay (qcow2), the case disk, extra disks.
    pub root: PathBuf,
    pub case_disk: PathBuf,
    pub extra_disks: Vec<PathBuf>,
    pub sshd: Option<Sshd>,
    pub scratch: tempfile::TempDir,
    /// The three boots' waits: kdrill's, with the recipe's `deadlines:` over them.
    pub deadlines: budget::Deadlines,
}

/// The case's image's recipe in its project (without one, kdrill's built-in recipe, materialised
/// in the cache with its files).
pub fn recipe(case: &Case, options: &RunOptions) -> Result<DebianRecipe, CaseError> {
    let root = match &options.project_root {
        Some(root) => root.clone(),
        None => crate::host::bundle::builtin(&options.cache).map_err(|e| CaseError::Setup {
            what: "image recipe",
            detail: e.to_string(),
        })?,
    };
    crate::spec::debian::load(&root, &case.setup.image).setup("image recipe")
}

/// The overlay of the case, read and hashed.
pub fn overlay(case: &Case) -> Result<Option<Overlay>, CaseError> {
    case.overlay()
        .map(Overlay::read)
        .transpose()
        .setup("overlay")
}

pub fn prepare(
    case: &Case,
    options: &RunOptions,
    dir: &Path,
    result: &mut CaseResult,
    progress: &dyn Fn(&str),
) -> Result<Prepared, CaseError> {
    let qemu_bin = tools::require("qemu-system-x86_64").setup("host tools")?;
    let qemu_img = tools::require("qemu-img").setup("host tools")?;
    let scenario = &case.scenario;
    progress("fetching kernel");
    let files = crate::case::prepare::kernel(&case.kernel, options, result)?;
    let crasher = crate::case::needs::crasher(case, &files, options)?;
    let recipe = recipe(case, options)?;
    let deadlines = budget::Deadlines::with(&recipe.deadlines).map_err(|e| CaseError::Setup {
        what: "image recipe",
        detail: format!("{}: {e}", recipe.path.display()),
    })?;
    let overlay = overlay(case)?;
    let image =
        crate::guest::debian::image(&recipe, &files, overlay.as_ref(), &options.cache, progress)
            .setup("Debian image")?;
    if image.fresh {
        eprintln!("kdrill: {}", image.describe());
    }
    let production = result.production.get_or_insert_with(Default::default);
    production.image = Some(image.record.key.clone());
    production.image_dir = Some(image.dir.display().to_string());
    production.overlay = image.record.overlay.clone();
    production.packages = image.packages.clone();
    production.overlay_dir = case.overlay().map(|p| p.display().to_string());

    progress("preparing the disks");
    let scratch = tempfile::Builder::new()
        .prefix("kdrill-")
        .tempdir()
        .setup("scratch folder")?;
    let s = scratch.path();
    let root = s.join("root.qcow2");
    let mut create = Command::new(&qemu_img);
    create
        .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
        .arg(&image.disk)
        .arg(&root);
    let made = process::run(&mut create, budget::QEMU_IMG).setup("root overlay")?;
    if !made.status.success() {
        return Err(CaseError::Setup {
            what: "root overlay",
            detail: format!("qemu-img create failed: {}", made.last_line()),
        });
    }

    let kdrill = options.kdrill_bin.as_ref().ok_or(CaseError::Setup {
        what: "kdrill binary",
        detail: "no kdrill program to copy into the guest for `kdrill check`: build it (`cargo build -p kdrill`) or set KDRILL_BIN".into(),
    })?;
    let mut files_in: casedisk::Files = vec![
        (
            "case.env".into(),
            0o644,
            casedisk::case_env(scenario).into_bytes(),
        ),
        (
            "modules".into(),
            0o644,
            casedisk::modules_list(scenario).into_bytes(),
        ),
        (
            "kdrill".into(),
            0o755,
            std::fs::read(kdrill).setup("kdrill binary")?,
        ),
    ];
    if let Some(ko) = crasher {
        files_in.push(("crasher.ko".into(), 0o644, ko));
    }
    let sshd = match scenario.image.dump_target {
        DumpTarget::Local => None,
        DumpTarget::Ssh => {
            let sshd = Sshd::start(&s.join("ssh"), dir).setup("ssh dump target")?;
            files_in.extend(sshd.guest_files());
            Some(sshd)
        }
    };
    let case_disk = s.join("case.img");
    casedisk::create(&case_disk, &s.join("case"), &files_in).setup("case disk")?;
    let mut extra_disks = Vec::new();
    for disk in &scenario.image.disks {
        let path = s.join(format!("disk-{}.img", disk.label));
        let staging = s.join(format!("disk-{}", disk.label));
        std::fs::create_dir_all(&staging).setup("extra disk")?;
        // The filesystem's root takes this mode: owner only, as a dump folder should be.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o700))
            .setup("extra disk")?;
        if disk.fill_mib > 0 {
            // Real bytes, not a hole: mkfs.ext4 -d keeps holes, and a hole fills nothing.
            let filler = vec![0x6bu8; (disk.fill_mib as usize) << 20];
            std::fs::write(staging.join("filler"), filler).setup("extra disk")?;
        }
        dumpdisk::create_from(&path, disk.size_mib.into(), &disk.label, &staging)
            .setup("extra disk")?;
        let _ = std::fs::remove_dir_all(&staging);
        extra_disks.push(path);
    }

    progress("choosing accelerator");
    let (accel, accel_reason) = accel::choose(&qemu_bin, &files.vmlinuz, &options.cache, s);
    result.accel = Some(accel);
    result.accel_reason = Some(accel_reason);
    let mut append = recipe.cmdline.clone();
    append.push(format!("crashkernel={}", case.crashkernel()));
    append.extend(scenario.guest.cmdline.iter().cloned());
    let config = GuestConfig {
        accel,
        memory_mib: case.kernel.guest.memory_mib,
        cpus: scenario.guest.cpus.unwrap_or(case.kernel.guest.cpus),
        kernel: files.vmlinuz.clone(),
        initrd: Some(image.initrd.clone()),
        append: append.join(" "),
        disk: None,
        serial_log: dir.join("serial.log"),
        console_socket: Some(s.join("console.sock")),
        status_log: Some(dir.join("status.log")),
        status_socket: None,
        qmp_socket: Some(s.join("qmp.sock")),
        incoming: None,
    };
    let mut args = rebooting(qemu::command_line(&config));
    args.extend(drive(&root, "qcow2", "writeback"));
    args.extend(drive(&case_disk, "raw", "unsafe"));
    for disk in &extra_disks {
        args.extend(drive(disk, "raw", "writeback"));
    }
    if let Some(sshd) = &sshd {
        args.extend(sshd.qemu_args());
    }
    args.extend(scenario.guest.qemu.iter().cloned());
    let line = dir.join("qemu-cmdline.txt");
    std::fs::write(&line, qemu::shell_line(&qemu_bin, &args) + "\n").setup("evidence")?;
    Ok(Prepared {
        qemu: qemu_bin,
        config,
        args,
        root,
        case_disk,
        extra_disks,
        sshd,
        scratch,
        deadlines,
    })
}

/// The minimal image's command line without `-no-reboot`: this guest reboots after its capture.
pub fn rebooting(mut args: Vec<String>) -> Vec<String> {
    args.retain(|a| a != "-no-reboot");
    args
}

/// A virtio disk (`/dev/vdX` in the order given).
fn drive(path: &Path, format: &str, cache: &str) -> [String; 2] {
    [
        "-drive".into(),
        format!(
            "file={},format={format},if=virtio,cache={cache}",
            path.display().to_string().replace(',', ",,")
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_debian_guest_reboots_and_keeps_its_disks_in_order() {
        let args = rebooting(vec!["-nodefaults".into(), "-no-reboot".into(), "-m".into()]);
        assert_eq!(args, ["-nodefaults", "-m"]);
        assert_eq!(
            drive(Path::new("/s/a,b.img"), "raw", "unsafe")[1],
            "file=/s/a,,b.img,format=raw,if=virtio,cache=unsafe"
        );
    }
}
