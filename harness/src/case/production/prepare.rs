//! Everything a Debian-image case needs before its guest boots: the kernel (and crasher), the
//! image (from the cache or built), the saved shape of its boot 1 when the case restores one, a
//! qcow2 overlay of its disk (or of the shape's), the case disk, extra disks, the network
//! target's sshd, and the QEMU command line (saved as evidence). Unlike the minimal image's, this
//! QEMU reboots: the reboot after the capture is part of what is proved.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::case::budget::debian as budget;
use crate::case::error::{CaseError, SetupContext};
use crate::case::production::shaped::{self, DebianBoot};
use crate::case::shape::{self, Shape, ShapeInputs};
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
    /// The saved boot 1 this case starts from, when it restores one.
    pub shape: Option<Shape>,
    /// `case.env`, which a restored guest is handed over the status channel.
    pub case_settings: String,
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

/// Prepares the guest of `case`; with `restore`, from the shape of its boot 1 (booted and saved
/// now when no run saved it before; a shape that cannot be made is a note, and the case boots).
pub fn prepare(
    case: &Case,
    options: &RunOptions,
    dir: &Path,
    result: &mut CaseResult,
    progress: &dyn Fn(&str),
    restore: bool,
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
    let kdrill = options.kdrill_bin.as_ref().ok_or(CaseError::Setup {
        what: "kdrill binary",
        detail: "no kdrill program to copy into the guest for `kdrill check`: build it (`cargo build -p kdrill`) or set KDRILL_BIN".into(),
    })?;
    let kdrill_path = kdrill.clone();
    let kdrill = std::fs::read(kdrill).setup("kdrill binary")?;
    let case_settings = crate::guest::caseenv::case_env(scenario);
    let mut files_in: casedisk::Files = vec![
        ("case.env".into(), 0o644, case_settings.clone().into_bytes()),
        (
            "modules".into(),
            0o644,
            casedisk::modules_list(scenario).into_bytes(),
        ),
        ("kdrill".into(), 0o755, kdrill.clone()),
    ];
    // A drill runs kdrill as an operator installs it: its Debian package, in place of the binary.
    if scenario.trigger == crate::spec::scenario::Trigger::Drill {
        match crate::guest::debian::package::checkout() {
            Some(checkout) => {
                progress("packing kdrill's Debian package for the guest");
                let deb = crate::guest::debian::package::build(&kdrill_path, &checkout, &s.join("deb"))
                    .map_err(|detail| CaseError::Setup { what: "kdrill's Debian package", detail })?;
                files_in.retain(|(name, _, _)| name != "kdrill");
                files_in.push(("kdrill.deb".into(), 0o644, std::fs::read(&deb).setup("kdrill's Debian package")?));
                production.kdrill_package = Some(deb.file_name().unwrap_or_default().to_string_lossy().into_owned());
            }
            None => eprintln!("kdrill: no checkout with dist/ to pack kdrill's Debian package: the guest gets the binary"),
        }
    }
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
    let case_disk_mib = casedisk::size_mib(&files_in);
    casedisk::create(&case_disk, &s.join("case"), &files_in, case_disk_mib).setup("case disk")?;
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
    let mut config = GuestConfig {
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
    let shape = if restore {
        let kind = DebianBoot {
            qemu_img: &qemu_img,
            image: &image,
            case_disk_mib,
            kdrill: &kdrill,
            deadlines,
        };
        let inputs = ShapeInputs {
            qemu: &qemu_bin,
            config: &config,
            kind: &kind,
            out_dir: &options.out_dir,
            scale: options.timeout_scale,
            echo: options.echo_console,
        };
        match shape::ensure(&inputs, progress) {
            Ok(shape) => Some(shape),
            Err(e) => {
                result
                    .notes
                    .push(format!("boot 1 is booted by this case: {e}"));
                None
            }
        }
    } else {
        None
    };
    let root = s.join("root.qcow2");
    match &shape {
        Some(shape) => {
            overlay_disk(&qemu_img, &shaped::root(&shape.dir), "qcow2", &root)?;
            shape.restore_into(&mut config, s, result);
        }
        None => {
            overlay_disk(&qemu_img, &image.disk, "raw", &root)?;
            result.boot = Some("booted".into());
        }
    }
    let sshd_args = sshd.as_ref().map(Sshd::qemu_args).unwrap_or_default();
    let mut args = machine(&config, &root, &case_disk, &extra_disks, &sshd_args);
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
        shape,
        case_settings,
    })
}

/// QEMU's arguments of a Debian guest: `config`'s (rebooting), its [`drives`], then `more`.
pub fn machine(
    config: &GuestConfig,
    root: &Path,
    case_disk: &Path,
    extra_disks: &[PathBuf],
    more: &[String],
) -> Vec<String> {
    let mut args = rebooting(qemu::command_line(config));
    args.extend(drives(root, case_disk, extra_disks));
    args.extend(more.iter().cloned());
    args
}

/// The disks of a Debian guest in `/dev/vda`, `/dev/vdb`, … order: the root overlay (qcow2),
/// the case disk, extra disks (part of a shape's key, with placeholder files).
pub fn drives(root: &Path, case_disk: &Path, extra_disks: &[PathBuf]) -> Vec<String> {
    let mut args = Vec::new();
    args.extend(drive(root, "qcow2", "writeback", false));
    args.extend(drive(case_disk, "raw", "unsafe", false));
    for disk in extra_disks {
        args.extend(drive(disk, "raw", "writeback", false));
    }
    args
}

/// A qcow2 overlay at `overlay` of `backing` (of `format`): what a case writes, leaving the
/// image (or the shape's disk) as it was.
pub fn overlay_disk(
    qemu_img: &Path,
    backing: &Path,
    format: &str,
    overlay: &Path,
) -> Result<(), CaseError> {
    let backing = std::path::absolute(backing).setup("root overlay")?;
    let mut create = Command::new(qemu_img);
    create
        .args(["create", "-q", "-f", "qcow2", "-F", format, "-b"])
        .arg(&backing)
        .arg(overlay);
    let made = process::run(&mut create, budget::QEMU_IMG).setup("root overlay")?;
    if !made.status.success() {
        return Err(CaseError::Setup {
            what: "root overlay",
            detail: format!("qemu-img create failed: {}", made.last_line()),
        });
    }
    Ok(())
}

/// The minimal image's command line without `-no-reboot`: this guest reboots after its capture.
pub fn rebooting(mut args: Vec<String>) -> Vec<String> {
    args.retain(|a| a != "-no-reboot");
    args
}

/// A virtio disk (`/dev/vdX` in the order given).
pub(crate) fn drive(path: &Path, format: &str, cache: &str, readonly: bool) -> [String; 2] {
    [
        "-drive".into(),
        format!(
            "file={},format={format},if=virtio,cache={cache}{}",
            path.display().to_string().replace(',', ",,"),
            if readonly { ",readonly=on" } else { "" }
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
            drive(Path::new("/s/a,b.img"), "raw", "unsafe", false)[1],
            "file=/s/a,,b.img,format=raw,if=virtio,cache=unsafe"
        );
    }
}
