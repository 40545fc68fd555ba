//! Everything a case needs before its guest boots: the kernel, the crasher module, the
//! initramfs, the dump disk, the accelerator, and the QEMU command line (saved as evidence).

use std::path::{Path, PathBuf};

use crate::case::error::{CaseError, SetupContext};
use crate::case::verdict::KernelPackage;
use crate::case::{Case, RunOptions};
use crate::fetch::kernel::KernelFiles;
use crate::guest::{dumpdisk, minimal};
use crate::host::tools;
use crate::spec::image;
use crate::vm::accel;
use crate::vm::qemu::{self, GuestConfig};

/// A guest ready to start.
pub struct Prepared {
    pub qemu: PathBuf,
    pub config: GuestConfig,
    /// QEMU's arguments: the config's, then the scenario's extras.
    pub args: Vec<String>,
    pub disk: PathBuf,
    /// Sockets, the initramfs and the disk image; removed with the case.
    pub scratch: tempfile::TempDir,
}

/// Prepares the guest of `case`, recording the kernel release and accelerator in `result`.
pub fn prepare(
    case: &Case,
    options: &RunOptions,
    dir: &Path,
    result: &mut crate::case::verdict::CaseResult,
    progress: &dyn Fn(&str),
) -> Result<Prepared, CaseError> {
    let (kernel, scenario) = (&case.kernel, &case.scenario);
    let qemu_bin = tools::require("qemu-system-x86_64").setup("host tools")?;
    tools::require("makedumpfile").setup("host tools")?;

    progress("fetching kernel");
    let files =
        crate::fetch::kernel::resolve(kernel, &options.cache).map_err(|e| CaseError::Setup {
            what: "kernel",
            detail: format!("{}: {e}", kernel.id),
        })?;
    result.kernel_release = Some(files.release.clone());
    result.kernel_package = files.packages.as_ref().map(|p| KernelPackage {
        package: p.image.package.clone(),
        version: p.image.version.clone(),
        sha256: p.image.sha256.clone(),
        tracked: p.tracked,
    });

    progress("building guest image");
    let crasher = crasher_module(case, &files, options)?;
    let recipe = image::minimal(options.project_root.as_deref()).setup("image recipe")?;
    let scratch = tempfile::Builder::new()
        .prefix("kdrill-")
        .tempdir()
        .setup("scratch folder")?;
    let initrd = scratch.path().join("initrd.img");
    minimal::write(
        &recipe,
        &files,
        scenario,
        crasher.as_deref(),
        &initrd,
        options.project_root.as_deref(),
    )
    .setup("guest image")?;
    let disk = scratch.path().join("dump-disk.img");
    dumpdisk::create(&disk, u64::from(kernel.guest.memory_mib) + 256).setup("dump disk")?;

    progress("choosing accelerator");
    let (accel, accel_reason) =
        accel::choose(&qemu_bin, &files.vmlinuz, &options.cache, scratch.path());
    result.accel = Some(accel);
    result.accel_reason = Some(accel_reason);

    let mut append = recipe.cmdline.first.clone();
    append.push(format!("crashkernel={}", case.crashkernel()));
    append.extend(scenario.guest.cmdline.iter().cloned());
    let config = GuestConfig {
        accel,
        memory_mib: kernel.guest.memory_mib,
        cpus: scenario.guest.cpus.unwrap_or(kernel.guest.cpus),
        kernel: files.vmlinuz.clone(),
        initrd: Some(initrd),
        append: append.join(" "),
        disk: Some(disk.clone()),
        serial_log: dir.join("serial.log"),
        console_socket: Some(scratch.path().join("console.sock")),
        status_log: Some(dir.join("status.log")),
        qmp_socket: Some(scratch.path().join("qmp.sock")),
    };
    let mut args = qemu::command_line(&config);
    args.extend(scenario.guest.qemu.iter().cloned());
    let line = dir.join("qemu-cmdline.txt");
    std::fs::write(&line, qemu::shell_line(&qemu_bin, &args) + "\n")
        .map_err(|e| CaseError::Dump(format!("cannot write {}: {e}", line.display())))?;
    Ok(Prepared {
        qemu: qemu_bin,
        config,
        args,
        disk,
        scratch,
    })
}

/// The crasher module for this kernel, when the route needs it (built once per kernel and cached).
fn crasher_module(
    case: &Case,
    files: &KernelFiles,
    options: &RunOptions,
) -> Result<Option<Vec<u8>>, CaseError> {
    if !case.scenario.trigger.needs_crasher() {
        return Ok(None);
    }
    let ko = crate::fetch::crasher::build(&case.kernel, files, &options.cache)
        .setup("crasher module")?;
    std::fs::read(&ko).map(Some).map_err(|e| CaseError::Setup {
        what: "crasher module",
        detail: format!("cannot read {}: {e}", ko.display()),
    })
}
