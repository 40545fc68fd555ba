//! Everything a case needs before its guest starts: its plan (mode, restore), the kernel (and its
//! uncompressed vmlinux for a `fast` boot), the crasher module, the capture userspace (and the
//! makedumpfile that re-reads the dump's log), the initramfs, the dump disk, the accelerator,
//! the saved shape it restores, and the QEMU command line (saved as evidence).

use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::case::budget;
use crate::case::error::{CaseError, SetupContext};
use crate::case::plan;
use crate::case::shape::{self, BootTimes, Shape, ShapeBoot, ShapeInputs};
use crate::case::verdict::KernelPackage;
use crate::case::{Case, RunOptions};
use crate::dumpcheck::makedumpfile::Reader;
use crate::dumpcheck::DumpError;
use crate::fetch::userspace::Capture;
use crate::guest::{dumpdisk, minimal};
use crate::host::tools;
use crate::spec::image::{self, ImageRecipe};
use crate::spec::scenario::BootMode;
use crate::vm::accel;
use crate::vm::qemu::{self, GuestConfig};
use crate::vm::watch::Watch;

/// A guest ready to start.
pub struct Prepared {
    pub qemu: PathBuf,
    pub config: GuestConfig,
    /// QEMU's arguments: the config's, then the scenario's extras.
    pub args: Vec<String>,
    pub disk: PathBuf,
    /// The saved shape this case starts from, when it restores one.
    pub shape: Option<Shape>,
    /// The case's settings for a restored guest (`case.env`, sent over the status channel).
    pub case_settings: String,
    /// The capture userspace's makedumpfile, for the log cross-check.
    pub reader: Reader,
    /// Sockets, the initramfs and the disk image; removed with the case.
    pub scratch: tempfile::TempDir,
}

/// Prepares the guest of `case`, recording the kernel, plan, accelerator and shape in `result`.
pub fn prepare(
    case: &Case,
    options: &RunOptions,
    dir: &Path,
    result: &mut crate::case::verdict::CaseResult,
    progress: &dyn Fn(&str),
) -> Result<Prepared, CaseError> {
    let (kernel, scenario) = (&case.kernel, &case.scenario);
    let qemu_bin = tools::require("qemu-system-x86_64").setup("host tools")?;
    let plan = plan::plan(case, options.overrides);
    result.plan = Some(plan.clone());

    progress("fetching kernel");
    let files = self::kernel(kernel, options, result)?;
    // The kernel QEMU boots and the one `kexec -p` loads: the bzImage twice, or the uncompressed
    // vmlinux and a copy of it moved to where a fast boot reserves the capture kernel's memory.
    let (boot_kernel, capture_kernel) = match plan.mode {
        BootMode::Faithful => (files.vmlinuz.clone(), files.vmlinuz.clone()),
        BootMode::Fast => {
            let setup = |e: crate::fetch::vmlinux::VmlinuxError| CaseError::Setup {
                what: "uncompressed vmlinux",
                detail: format!("{}: {e}", kernel.id),
            };
            let vmlinux = crate::fetch::vmlinux::uncompressed(&files.vmlinuz, &options.cache)
                .map_err(setup)?;
            let capture = crate::fetch::vmlinux::rebased(&vmlinux, plan::FAST_CRASH_BASE_MIB << 20)
                .map_err(setup)?;
            (vmlinux, capture)
        }
    };

    let recipe = image::minimal(options.project_root.as_deref()).setup("image recipe")?;
    let capture = userspace(case, &recipe, options, progress)?;
    result.userspace = Some(capture.used.clone());
    let data = crate::fetch::userspace::data(options.project_root.as_deref())
        .setup("capture userspace")?;
    let reader = Reader::of(&capture, &data).map_err(|detail| CaseError::Setup {
        what: "capture userspace",
        detail,
    })?;

    progress("building guest image");
    let crasher = crate::case::needs::crasher(case, &files, options)?;
    let scratch = tempfile::Builder::new()
        .prefix("kdrill-")
        .tempdir()
        .setup("scratch folder")?;
    let initrd = scratch.path().join("initrd.img");
    let contents = minimal::Contents {
        scenario,
        plan: &plan,
        capture_kernel: &capture_kernel,
        crasher: crasher.as_deref(),
        userspace_root: &capture.root,
        shape: plan.restore,
        cache: &options.cache,
    };
    minimal::write(
        &recipe,
        &files,
        &contents,
        &initrd,
        options.project_root.as_deref(),
    )
    .setup("guest image")?;
    let disk = scratch.path().join("dump-disk.img");
    let disk_mib = u64::from(kernel.guest.memory_mib) + 256;
    let capture_env = minimal::capture_env(&plan);
    dumpdisk::create(
        &disk,
        disk_mib,
        &[("kdrill/capture.env", capture_env.as_bytes())],
    )
    .setup("dump disk")?;

    progress("choosing accelerator");
    let (accel, accel_reason) =
        accel::choose(&qemu_bin, &files.vmlinuz, &options.cache, scratch.path());
    result.accel = Some(accel);
    result.accel_reason = Some(accel_reason);

    let mut append = recipe.cmdline.first.clone();
    append.push(format!("crashkernel={}", plan.crashkernel));
    append.extend(scenario.guest.cmdline.iter().cloned());
    let mut config = GuestConfig {
        accel,
        memory_mib: kernel.guest.memory_mib,
        cpus: scenario.guest.cpus.unwrap_or(kernel.guest.cpus),
        kernel: boot_kernel.clone(),
        initrd: Some(initrd),
        append: append.join(" "),
        disk: Some(disk.clone()),
        serial_log: dir.join("serial.log"),
        console_socket: Some(scratch.path().join("console.sock")),
        status_log: Some(dir.join("status.log")),
        status_socket: None,
        qmp_socket: Some(scratch.path().join("qmp.sock")),
        incoming: None,
    };
    let shape = if plan.restore {
        let shape = shape::ensure(
            &ShapeInputs {
                qemu: &qemu_bin,
                config: &config,
                kind: &MinimalBoot { disk_mib },
                out_dir: &options.out_dir,
                scale: options.timeout_scale,
                echo: options.echo_console,
            },
            progress,
        )?;
        shape.restore_into(&mut config, scratch.path(), result);
        Some(shape)
    } else {
        result.boot = Some("booted".into());
        None
    };
    let mut args = qemu::command_line(&config);
    args.extend(scenario.guest.qemu.iter().cloned());
    let line = dir.join("qemu-cmdline.txt");
    std::fs::write(&line, qemu::shell_line(&qemu_bin, &args) + "\n")
        .map_err(|e| DumpError::Dump(format!("cannot write {}: {e}", line.display())))?;
    Ok(Prepared {
        qemu: qemu_bin,
        config,
        args,
        disk,
        shape,
        case_settings: crate::guest::caseenv::case_env(scenario),
        reader,
        scratch,
    })
}

/// The case's capture userspace (`Case::userspace`): the release's sysroot with the recipe's
/// programs, made or found in the cache, or the host's programs.
pub fn userspace(
    case: &Case,
    recipe: &ImageRecipe,
    options: &RunOptions,
    progress: &dyn Fn(&str),
) -> Result<Capture, CaseError> {
    let packages: Vec<String> = recipe.binaries.iter().map(|b| b.package.clone()).collect();
    let chosen = case.userspace();
    crate::fetch::userspace::capture(
        &chosen,
        &case.kernel.own_userspace(),
        &packages,
        options.project_root.as_deref(),
        &options.cache,
        progress,
    )
    .map_err(|e| CaseError::Setup {
        what: "capture userspace",
        detail: format!("{}: {e}", case.id()),
    })
}

/// Fetches (or finds cached) the entry's kernel and records which one in `result`: its release
/// and, for a packaged kernel, the package, version and checksum (`track` entries too).
pub fn kernel(
    kernel: &crate::spec::kernel::KernelSpec,
    options: &RunOptions,
    result: &mut crate::case::verdict::CaseResult,
) -> Result<crate::fetch::kernel::KernelFiles, CaseError> {
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
        series: p.series.clone(),
        parts: p.parts.clone(),
    });
    Ok(files)
}

/// The minimal image: an initramfs whose `/init` loads the capture kernel, then waits.
pub struct MinimalBoot {
    /// Size of the dump disk, which the shape must have too (the guest saw its capacity).
    pub disk_mib: u64,
}

impl ShapeBoot for MinimalBoot {
    fn build_limit(&self) -> std::time::Duration {
        budget::SHAPE
    }

    fn key_words(&self, hasher: &mut Sha256) -> Result<(), String> {
        hasher.update(format!("disk {} MiB\n", self.disk_mib).as_bytes());
        Ok(())
    }

    fn arguments(
        &self,
        config: &GuestConfig,
        _dir: &Path,
        scratch: &Path,
    ) -> Result<Vec<String>, CaseError> {
        let disk = scratch.join("dump-disk.img");
        dumpdisk::create(&disk, self.disk_mib, &[]).setup("guest shape's dump disk")?;
        Ok(qemu::command_line(&GuestConfig {
            disk: Some(disk),
            ..config.clone()
        }))
    }

    fn until_waiting(&self, watch: &mut Watch, started: Instant) -> Result<BootTimes, CaseError> {
        let (seen, booted) = watch.until(budget::BOOT)?;
        let (_, loaded) = watch.until(budget::KEXEC)?;
        watch.until(budget::WAITING)?;
        Ok(BootTimes {
            boot: (seen - started).as_secs_f64(),
            guest_boot: booted.uptime,
            kexec: loaded.seconds("secs"),
            ready: None,
        })
    }
}
