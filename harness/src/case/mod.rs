//! Running one case end to end: build the guest image, boot, load the capture kernel, crash by
//! the scenario's route, capture with makedumpfile, read the dump back and judge it. Evidence
//! stays in the case folder.

pub mod verdict;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::fetch::kernel::KernelFiles;
use crate::guest::dumpdisk;
use crate::guest::minimal;
use crate::host::tools;
use crate::spec::image;
use crate::spec::kernel::KernelSpec;
use crate::spec::scenario::{Scenario, Trigger};
use crate::vm::accel;
use crate::vm::qemu::{self, Guest, GuestConfig};
use crate::vm::qmp::Qmp;
use crate::vm::routes;
use crate::vm::watch::Watch;
use verdict::{CaseResult, Verdict};

/// Where a case reads its inputs and writes its evidence.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The project folder (for `images/`); the built-in recipe is used when `None`.
    pub project_root: Option<PathBuf>,
    /// Artifacts go to `<target_dir>/kdrill/runs/<kernel>/<scenario>/`.
    pub target_dir: PathBuf,
    /// The per-user cache (kernels, KVM probe).
    pub cache: PathBuf,
    /// Print the guest's console lines as they arrive.
    pub echo_console: bool,
    /// Multiplies every phase deadline (slow or busy machines).
    pub timeout_scale: f64,
}

impl RunOptions {
    /// Defaults for a project root: its `target/`, the per-user cache, `KDRILL_TIMEOUT_SCALE`.
    pub fn for_project(root: &Path) -> RunOptions {
        let timeout_scale = std::env::var("KDRILL_TIMEOUT_SCALE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1.0);
        RunOptions {
            project_root: Some(root.into()),
            target_dir: crate::host::paths::target_dir(root),
            cache: crate::host::paths::cache_dir(),
            echo_console: std::env::var_os("KDRILL_CONSOLE").is_some(),
            timeout_scale,
        }
    }
}

/// Phase deadlines under TCG on 2 cores, with a wide margin over what was measured (boot 4.5 s,
/// kexec 0.9 s, crash→capture 5 s, makedumpfile 4 s); scaled by `RunOptions::timeout_scale`.
const BOOT: Duration = Duration::from_secs(120);
const KEXEC: Duration = Duration::from_secs(60);
const CAPTURE_BOOT: Duration = Duration::from_secs(120);
const SAVE: Duration = Duration::from_secs(300);
const POWEROFF: Duration = Duration::from_secs(30);
/// A host-side route waits this long for the guest to say it is ready to be crashed.
const READY: Duration = Duration::from_secs(30);

/// Lines of serial console shown with a failure.
pub const FAILURE_CONSOLE_LINES: usize = 40;

/// Runs one case and always returns its result; `result.json` and the evidence are in the case folder.
/// `progress` receives a short description of each phase as it starts.
pub fn run(
    kernel: &KernelSpec,
    scenario: &Scenario,
    options: &RunOptions,
    progress: &dyn Fn(&str),
) -> CaseResult {
    let dir = crate::host::paths::case_dir(&options.target_dir, &kernel.id, &scenario.id);
    let mut result = CaseResult::new(&kernel.id, &scenario.id, &dir.display().to_string());
    result.route = serde_json::to_value(scenario.trigger)
        .ok()
        .and_then(|v| v.as_str().map(String::from));
    let started = Instant::now();
    if let Some(why) = kernel.skip.get(&scenario.id) {
        result.verdict = Verdict::Skip;
        result.reasons.push(why.clone());
        let _ = std::fs::remove_dir_all(&dir);
        write_result(&dir, &mut result);
        return result;
    }
    if let Err(reason) = run_inner(kernel, scenario, options, &dir, &mut result, progress) {
        result.reasons.push(reason);
    }
    if result.reasons.is_empty()
        && result.expectations.values().all(Option::is_some)
        && !result.expectations.is_empty()
    {
        result.verdict = Verdict::Pass;
    } else {
        result.verdict = Verdict::Fail;
        if result.reasons.is_empty() {
            result.reasons.push("no expectation was checked".into());
        }
    }
    if result.verdict == Verdict::Pass {
        drop_big_dumps(&dir, &mut result);
    }
    result.phases.total = Some(started.elapsed().as_secs_f64());
    write_result(&dir, &mut result);
    result
}

/// Writes `result.json` into the case folder (created if needed).
fn write_result(dir: &Path, result: &mut CaseResult) {
    let path = dir.join("result.json");
    let json = serde_json::to_string_pretty(&*result).unwrap_or_default();
    if let Err(err) = std::fs::create_dir_all(dir).and_then(|_| std::fs::write(&path, json + "\n"))
    {
        result
            .reasons
            .push(format!("cannot write {}: {err}", path.display()));
        result.verdict = Verdict::Fail;
    }
}

fn run_inner(
    kernel: &KernelSpec,
    scenario: &Scenario,
    options: &RunOptions,
    dir: &Path,
    result: &mut CaseResult,
    progress: &dyn Fn(&str),
) -> Result<(), String> {
    // Old evidence would be mistaken for this run's.
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| format!("cannot clear {}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let qemu_bin = tools::require("qemu-system-x86_64").map_err(|e| e.to_string())?;
    tools::require("makedumpfile").map_err(|e| e.to_string())?;

    progress("fetching kernel");
    let files = crate::fetch::kernel::resolve(kernel, &options.cache)
        .map_err(|e| format!("kernel {}: {e}", kernel.id))?;
    result.kernel_release = Some(files.release.clone());

    progress("building guest image");
    let crasher = crasher_module(kernel, &files, scenario, options)?;
    let recipe = image::minimal(options.project_root.as_deref()).map_err(|e| e.to_string())?;
    let scratch = tempfile::Builder::new()
        .prefix("kdrill-")
        .tempdir()
        .map_err(|e| format!("cannot create a scratch folder: {e}"))?;
    let initrd = scratch.path().join("initrd.img");
    minimal::write(
        &recipe,
        &files,
        scenario,
        crasher.as_deref(),
        &initrd,
        options.project_root.as_deref(),
    )?;
    let disk = scratch.path().join("dump-disk.img");
    dumpdisk::create(&disk, u64::from(kernel.guest.memory_mib) + 256).map_err(|e| e.to_string())?;

    progress("choosing accelerator");
    let (accel, accel_reason) =
        accel::choose(&qemu_bin, &files.vmlinuz, &options.cache, scratch.path());
    result.accel = Some(accel.qemu_name().into());
    result.accel_reason = Some(accel_reason);

    let mut append = recipe.cmdline.first.clone();
    append.push(format!("crashkernel={}", kernel.guest.crashkernel));
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
    std::fs::write(
        dir.join("qemu-cmdline.txt"),
        qemu::shell_line(&qemu_bin, &args) + "\n",
    )
    .map_err(|e| format!("cannot write qemu-cmdline.txt: {e}"))?;

    progress("booting");
    let boot_started = Instant::now();
    let mut guest = Guest::spawn(&qemu_bin, &args, &dir.join("qemu-stderr.log"))
        .map_err(|e| format!("{e:#}"))?;
    let mut watch = Watch::new(
        &mut guest,
        &dir.join("status.log"),
        &config.serial_log,
        &dir.join("qemu-stderr.log"),
        options.echo_console,
        options.timeout_scale,
    );
    let scale = |d: Duration| d.mul_f64(options.timeout_scale);
    let outcome = match scenario.trigger {
        Trigger::VmDump => vm_dump(
            &mut watch,
            &config,
            scenario,
            dir,
            result,
            boot_started,
            progress,
        ),
        _ => crash_and_capture(
            &mut watch,
            &config,
            scenario,
            result,
            boot_started,
            progress,
            scale,
        ),
    };
    drop(watch);
    if let Err(err) = guest.kill() {
        result.reasons.push(format!("teardown: {err}"));
    }
    drop(guest);
    let guest_failed = outcome.is_err();
    if let Err(reason) = outcome {
        result
            .reasons
            .push(explain_missing_capture(reason, &config.serial_log));
    }
    if scenario.trigger == Trigger::VmDump {
        return Ok(());
    }
    progress("reading the dump");
    let verify_started = Instant::now();
    let checked = collect_and_check(&disk, dir, scenario, result);
    result.phases.verify = Some(verify_started.elapsed().as_secs_f64());
    match checked {
        // The guest's failure is the reason; "no dump" after it would only point the wrong way.
        Err(_) if guest_failed && !dir.join("vmcore").exists() => Ok(()),
        other => other,
    }
}

/// The crasher module for this kernel, when the route needs it (built once per kernel and cached).
fn crasher_module(
    kernel: &KernelSpec,
    files: &KernelFiles,
    scenario: &Scenario,
    options: &RunOptions,
) -> Result<Option<Vec<u8>>, String> {
    if !scenario.trigger.needs_crasher() {
        return Ok(None);
    }
    let ko = crate::fetch::crasher::build(kernel, files, &options.cache)
        .map_err(|e| format!("crasher module: {e}"))?;
    std::fs::read(&ko)
        .map(Some)
        .map_err(|e| format!("cannot read {}: {e}", ko.display()))
}

/// Connects QMP, records which accelerator really runs, and waits for the first boot's init,
/// timing it by the host's clock and the guest's own.
fn first_boot(
    watch: &mut Watch,
    config: &GuestConfig,
    result: &mut CaseResult,
    boot_started: Instant,
) -> Result<Qmp, String> {
    let socket = config
        .qmp_socket
        .as_deref()
        .ok_or("the guest has no QMP socket")?;
    let mut qmp = Qmp::connect(socket, Duration::from_secs(20)).map_err(|e| format!("QMP: {e}"))?;
    let kvm = qmp
        .execute("query-kvm", None)
        .map_err(|e| format!("QMP: {e}"))?;
    let enabled = kvm
        .get("enabled")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    result.accel = Some(if enabled { "kvm" } else { "tcg" }.into());
    let (seen, booted) = watch.until("boot", BOOT, "the first boot's init to start")?;
    result.phases.boot = Some((seen - boot_started).as_secs_f64());
    result.phases.guest_boot = Some(booted.uptime);
    Ok(qmp)
}

/// Follows the guest through both boots, crashing it by the scenario's route; fills in phase
/// times. Errors say which step did not happen.
fn crash_and_capture(
    watch: &mut Watch,
    config: &GuestConfig,
    scenario: &Scenario,
    result: &mut CaseResult,
    boot_started: Instant,
    progress: &dyn Fn(&str),
    scale: impl Fn(Duration) -> Duration,
) -> Result<(), String> {
    let mut qmp = first_boot(watch, config, result, boot_started)?;
    progress("loading the capture kernel (kexec -p)");
    let (loaded_at, loaded) =
        watch.until("kexec-loaded", KEXEC, "kexec -p to load the capture kernel")?;
    result.phases.kexec = loaded.seconds("secs");

    let mut crashed_at = None;
    let mut _console = None;
    if routes::host_presses(scenario.trigger) {
        if scenario.trigger == Trigger::HangThenNmi {
            watch.until("hanging", READY, "the guest to hang a CPU")?;
            progress("guest hung; waiting before pressing NMI");
            // The point of the route: the system stays hung for a while, as in the field.
            std::thread::sleep(Duration::from_secs(u64::from(scenario.hang_seconds)));
        } else {
            watch.until("ready", READY, "the guest to be ready for the crash")?;
        }
        progress("crashing from the host");
        let socket = config
            .console_socket
            .as_deref()
            .unwrap_or(Path::new("/nonexistent"));
        let pressed = routes::press(scenario.trigger, &mut qmp, socket)?;
        crashed_at = Some(pressed.at);
        _console = pressed.console;
    }
    progress("crashed; capture kernel booting");
    let (capture_at, capture) = watch.until(
        "capture-start",
        CAPTURE_BOOT,
        "the capture kernel to boot (did the crash reach kexec?)",
    )?;
    // A guest-side trigger line is written just before the crash; if it was lost, the crash is
    // timed from the capture kernel being loaded, which precedes it at once.
    let crashed_at = crashed_at
        .or_else(|| watch.seen("trigger"))
        .unwrap_or(loaded_at);
    result.phases.crash_to_capture = Some((capture_at - crashed_at).as_secs_f64());
    result.phases.capture_boot = Some(capture.uptime);
    progress("makedumpfile writing the dump");
    let (_, saved) = watch.until("makedumpfile", SAVE, "makedumpfile to finish")?;
    result.phases.makedumpfile = saved.seconds("secs");
    watch.until("done", POWEROFF, "the capture boot to finish")?;
    let limit = scale(POWEROFF);
    if watch.guest().wait_exit(limit).is_none() {
        return Err(format!(
            "QEMU did not exit within {}s of the capture boot powering off",
            limit.as_secs()
        ));
    }
    Ok(())
}

/// The `vm-dump` route: no crash; the hypervisor dumps the running guest in each format, and
/// each dump must hold the marker the guest wrote to its kernel log.
fn vm_dump(
    watch: &mut Watch,
    config: &GuestConfig,
    scenario: &Scenario,
    dir: &Path,
    result: &mut CaseResult,
    boot_started: Instant,
    progress: &dyn Fn(&str),
) -> Result<(), String> {
    let mut qmp = first_boot(watch, config, result, boot_started)?;
    watch.until("ready", READY, "the guest to write its marker")?;
    qmp.set_timeout(Duration::from_secs(300))
        .map_err(|e| format!("QMP: {e}"))?;
    let offered = routes::dump_formats(&mut qmp)?;
    for format in &scenario.vm_dump_formats {
        if !offered.contains(format) {
            result.notes.push(format!(
                "{format}: SKIP, this QEMU does not offer it (it offers {})",
                offered.join(", ")
            ));
            continue;
        }
        progress(&format!("dump-guest-memory {format}"));
        let out = dir.join(format!("vmcore.{format}"));
        let started = Instant::now();
        routes::dump_guest_memory(&mut qmp, format, &out)?;
        restrict(&out)?;
        let secs = started.elapsed().as_secs_f64();
        let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
        result.dump_bytes = Some(result.dump_bytes.unwrap_or(0).max(size));
        result.phases.vm_dump = Some(result.phases.vm_dump.unwrap_or(0.0) + secs);
        // makedumpfile cannot read what dump-guest-memory writes: kdrill's reader alone.
        let log = read_dump_log(&out, &dir.join(format!("dmesg.{format}.txt")), false)
            .map_err(|e| format!("{format} dump: {e}"))?;
        for (pattern, found) in verdict::check_log(&log, &scenario.expect.log) {
            if found.is_none() {
                result.reasons.push(format!(
                    "{format} dump: expected log line absent: `{pattern}`"
                ));
            }
            result
                .expectations
                .insert(format!("[{format}] {pattern}"), found);
        }
    }
    Ok(())
}

/// Reads the kernel log out of a dump with kdrill's own reader into `out` and returns it. With
/// `cross_check`, makedumpfile reads it too (into `<out>.makedumpfile`), and the two texts must be
/// byte-identical.
fn read_dump_log(vmcore: &Path, out: &Path, cross_check: bool) -> Result<String, String> {
    let dump = kdrill_vmcore::Vmcore::open(vmcore)
        .map_err(|e| format!("kdrill cannot open the dump: {e}"))?;
    let records = dump
        .dmesg_records()
        .map_err(|e| format!("kdrill cannot read the dump's kernel log: {e}"))?;
    let text = kdrill_vmcore::format_dmesg(&records);
    std::fs::write(out, &text).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    if cross_check {
        let theirs_path = out.with_extension("makedumpfile.txt");
        let theirs = makedumpfile_dmesg(vmcore, &theirs_path)?;
        if theirs != text.as_bytes() {
            let at = theirs
                .iter()
                .zip(text.as_bytes())
                .position(|(a, b)| a != b)
                .unwrap_or(theirs.len().min(text.len()));
            return Err(format!(
                "kdrill's reader and makedumpfile disagree on the kernel log from byte {at} on (compare {} with {})",
                out.display(),
                theirs_path.display()
            ));
        }
    }
    Ok(text)
}

/// `makedumpfile --dump-dmesg`, the peer tool's reading of the log. A flattened dump (`-F`) is
/// first converted with `makedumpfile -R`, since `--dump-dmesg` cannot read that format.
fn makedumpfile_dmesg(vmcore: &Path, out: &Path) -> Result<Vec<u8>, String> {
    let makedumpfile = tools::require("makedumpfile").map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(out);
    let converted = out.with_extension("rearranged");
    let input = if is_flattened(vmcore) {
        let source = std::fs::File::open(vmcore)
            .map_err(|e| format!("cannot open {}: {e}", vmcore.display()))?;
        let run = Command::new(&makedumpfile)
            .arg("-R")
            .arg(&converted)
            .stdin(source)
            .output()
            .map_err(|e| format!("cannot run makedumpfile -R: {e}"))?;
        if !run.status.success() {
            return Err(format!(
                "makedumpfile -R could not convert the flattened dump ({}): {}",
                run.status,
                last_line(&run.stderr)
            ));
        }
        converted.clone()
    } else {
        vmcore.to_path_buf()
    };
    let run = Command::new(&makedumpfile)
        .arg("--dump-dmesg")
        .arg(&input)
        .arg(out)
        .output();
    let _ = std::fs::remove_file(&converted);
    let run = run.map_err(|e| format!("cannot run makedumpfile --dump-dmesg: {e}"))?;
    if !run.status.success() || !out.is_file() {
        return Err(format!(
            "makedumpfile --dump-dmesg could not read the dump ({}): {}",
            run.status,
            last_line(&run.stderr)
        ));
    }
    std::fs::read(out).map_err(|e| format!("cannot read {}: {e}", out.display()))
}

/// makedumpfile's flattened format starts with the signature `makedumpfile` (IMPLEMENTATION).
fn is_flattened(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 12];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && &head == b"makedumpfile"
}

fn last_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}

/// Dumps above this size are removed after a PASS: an unfiltered 1 GiB ELF dump per run would fill
/// disks, and the check already read everything it needed. A FAIL keeps every dump as evidence.
const KEEP_DUMP_BYTES: u64 = 256 << 20;

fn drop_big_dumps(dir: &Path, result: &mut CaseResult) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
        if name.starts_with("vmcore")
            && size > KEEP_DUMP_BYTES
            && std::fs::remove_file(entry.path()).is_ok()
        {
            result.notes.push(format!(
                "{name} ({} MB) removed after the PASS to save disk",
                size / 1_000_000
            ));
        }
    }
}

/// A dump holds all of the guest's memory: owner-only.
fn restrict(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("chmod {}: {e}", path.display()))
}

/// A crash that panicked on the console but never reached the capture kernel is the failure
/// kdump exists to catch: say so.
fn explain_missing_capture(reason: String, serial_log: &Path) -> String {
    if !reason.contains("capture kernel to boot") {
        return reason;
    }
    let serial =
        String::from_utf8_lossy(&std::fs::read(serial_log).unwrap_or_default()).into_owned();
    match verdict::panic_message(&serial) {
        Some(message) => {
            format!("{reason}; the kernel panicked (`{message}`) but the capture kernel never ran")
        }
        None => reason,
    }
}

/// Copies the dump and the capture boot's logs off the dump disk, reads the kernel log from the
/// dump on the host, and checks the scenario's expectations on it and on the serial log.
fn collect_and_check(
    disk: &Path,
    dir: &Path,
    scenario: &Scenario,
    result: &mut CaseResult,
) -> Result<(), String> {
    for name in ["makedumpfile.log", "capture-dmesg.txt"] {
        // Evidence only: a missing log is not itself a failure.
        let _ = dumpdisk::extract(disk, name, &dir.join(name));
    }
    let vmcore = dir.join("vmcore");
    if !dumpdisk::extract(disk, "vmcore", &vmcore).map_err(|e| e.to_string())? {
        return Err("no dump: the capture kernel wrote no vmcore to the dump disk".into());
    }
    restrict(&vmcore)?;
    let size = std::fs::metadata(&vmcore).map(|m| m.len()).unwrap_or(0);
    result.dump_bytes = Some(size);
    if size == 0 {
        return Err("the dump is empty (0 bytes)".into());
    }
    let log = read_dump_log(&vmcore, &dir.join("dmesg.txt"), true)?;
    result.panic_message = verdict::panic_message(&log);
    result.expectations = verdict::check_log(&log, &scenario.expect.log);
    for (pattern, found) in &result.expectations {
        if found.is_none() {
            result.reasons.push(format!(
                "expected log line absent from the dump: `{pattern}`"
            ));
        }
    }
    let serial =
        String::from_utf8_lossy(&std::fs::read(dir.join("serial.log")).unwrap_or_default())
            .into_owned();
    result.reasons.extend(verdict::check_absent(
        &[("the dump's log", &log), ("serial.log", &serial)],
        &scenario.expect.absent,
    ));
    Ok(())
}
