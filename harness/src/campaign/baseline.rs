//! The benchmark's peer: the same minimal guest as a `faithful` case (bzImage through SeaBIOS,
//! the capture bzImage, zlib), driven the way a user would script it without kdrill: make the
//! dump disk, run one QEMU command line, done when QEMU exits. kdrill writes the guest image and
//! the script once (not timed); [`run`] times the script as one process, under a deadline, and
//! checks the guest really saved a dump (a broken baseline must not look fast).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::case::plan::{self, Overrides};
use crate::case::{Case, RunOptions};
use crate::guest::minimal;
use crate::host::process::{self, shell_quote};
use crate::host::tools;
use crate::spec::image;
use crate::spec::scenario::BootMode;
use crate::vm::accel;
use crate::vm::qemu::{self, GuestConfig};

/// A baseline ready to run: `baseline.sh` in its folder.
pub struct Baseline {
    pub dir: PathBuf,
    pub script: PathBuf,
}

/// Writes the baseline of `case` into `dir`: the initramfs, the capture settings, `baseline.sh`.
pub fn write(case: &Case, options: &RunOptions, dir: &Path) -> anyhow::Result<Baseline> {
    let qemu_bin = tools::require("qemu-system-x86_64")?;
    let mkfs = tools::require("mkfs.ext4")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let forced = Overrides {
        mode: Some(BootMode::Faithful),
        no_restore: true,
    };
    let plan = plan::plan(case, forced);
    let files = crate::fetch::kernel::resolve(&case.kernel, &options.cache)?;
    let crasher = crate::case::needs::crasher(case, &files, options).map_err(anyhow::Error::msg)?;
    let recipe = image::minimal(options.project_root.as_deref())?;
    let capture = crate::case::prepare::userspace(case, &recipe, options, &|_| {})?;
    let initrd = dir.join("initrd.img");
    let contents = minimal::Contents {
        scenario: &case.scenario,
        plan: &plan,
        capture_kernel: &files.vmlinuz,
        crasher: crasher.as_deref(),
        userspace_root: &capture.root,
        shape: false,
        cache: &options.cache,
    };
    minimal::write(
        &recipe,
        &files,
        &contents,
        &initrd,
        options.project_root.as_deref(),
    )
    .map_err(anyhow::Error::msg)?;
    let capture = dir.join("disk-contents/kdrill");
    std::fs::create_dir_all(&capture)?;
    std::fs::write(capture.join("capture.env"), minimal::capture_env(&plan))?;
    let (accel, _) = accel::choose(&qemu_bin, &files.vmlinuz, &options.cache, dir);
    let mut append = recipe.cmdline.first.clone();
    append.push(format!("crashkernel={}", plan.crashkernel));
    let config = GuestConfig {
        accel,
        memory_mib: case.kernel.guest.memory_mib,
        cpus: case.scenario.guest.cpus.unwrap_or(case.kernel.guest.cpus),
        kernel: files.vmlinuz.clone(),
        initrd: Some(initrd),
        append: append.join(" "),
        disk: Some(dir.join("disk.img")),
        serial_log: dir.join("serial.log"),
        console_socket: None,
        status_log: Some(dir.join("status.log")),
        status_socket: None,
        qmp_socket: None,
        incoming: None,
    };
    let disk_mib = u64::from(case.kernel.guest.memory_mib) + 256;
    let script = format!(
        "#!/bin/sh\n\
         # {case}: the minimal guest booted as a user would script it (bzImage, SeaBIOS, zlib).\n\
         set -e\n\
         cd {dir}\n\
         rm -f disk.img serial.log status.log\n\
         truncate -s {disk_mib}M disk.img\n\
         {mkfs} -q -F -O ^has_journal -E lazy_itable_init=0 -d disk-contents disk.img\n\
         exec {qemu}\n",
        case = case.id(),
        dir = shell_quote(&dir.display().to_string()),
        mkfs = shell_quote(&mkfs.display().to_string()),
        qemu = qemu::shell_line(&qemu_bin, &qemu::command_line(&config)),
    );
    let path = dir.join("baseline.sh");
    std::fs::write(&path, script)?;
    Ok(Baseline {
        dir: dir.to_path_buf(),
        script: path,
    })
}

/// Runs the baseline once: its wall time, from the script's start to QEMU's exit.
pub fn run(baseline: &Baseline, limit: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let out = process::run(Command::new("/bin/sh").arg(&baseline.script), limit)?;
    let took = started.elapsed();
    let status = std::fs::read_to_string(baseline.dir.join("status.log")).unwrap_or_default();
    if !out.status.success() || !status.contains("KDRILL done") {
        bail!(
            "the baseline did not save a dump ({}; status: {}); see {}",
            out.status,
            status.lines().last().unwrap_or("nothing"),
            baseline.dir.display()
        );
    }
    Ok(took)
}
