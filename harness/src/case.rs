//! Running one case end to end: build the guest image, boot, load the capture kernel, crash,
//! capture with makedumpfile, read the dump back and judge it. Evidence stays in the case folder.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::accel;
use crate::console::{last_lines, LineTail};
use crate::dumpdisk;
use crate::host_tools;
use crate::image::{self, ImageRecipe};
use crate::initramfs;
use crate::kernel::KernelSpec;
use crate::kernel_cache::{self, KernelFiles};
use crate::modules::ModuleIndex;
use crate::qemu::{self, Guest, GuestConfig};
use crate::qmp::Qmp;
use crate::scenario::Scenario;
use crate::status::{Event, StatusReader};
use crate::verdict::{self, CaseResult, Verdict};

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
            target_dir: crate::paths::target_dir(root),
            cache: crate::paths::cache_dir(),
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
    let dir = crate::paths::case_dir(&options.target_dir, &kernel.id, &scenario.id);
    let mut result = CaseResult::new(&kernel.id, &scenario.id, &dir.display().to_string());
    let started = Instant::now();
    if let Err(reason) = run_inner(kernel, scenario, options, &dir, &mut result, progress) {
        result.reasons.push(reason);
    }
    if result.reasons.is_empty()
        && result.expectations.values().all(|found| *found)
        && !result.expectations.is_empty()
    {
        result.verdict = Verdict::Pass;
    } else {
        result.verdict = Verdict::Fail;
        if result.reasons.is_empty() {
            result.reasons.push("no expectation was checked".into());
        }
    }
    result.phases.total = Some(started.elapsed().as_secs_f64());
    let json = serde_json::to_string_pretty(&result).unwrap_or_default();
    if let Err(err) = std::fs::write(dir.join("result.json"), json + "\n") {
        result.reasons.push(format!(
            "cannot write {}: {err}",
            dir.join("result.json").display()
        ));
        result.verdict = Verdict::Fail;
    }
    result
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
    let qemu_bin = host_tools::require("qemu-system-x86_64").map_err(|e| e.to_string())?;
    host_tools::require("makedumpfile").map_err(|e| e.to_string())?;

    progress("fetching kernel");
    let files = kernel_cache::resolve(kernel, &options.cache)
        .map_err(|e| format!("kernel {}: {e}", kernel.id))?;
    result.kernel_release = Some(files.release.clone());

    progress("building guest image");
    let recipe = image::minimal(options.project_root.as_deref()).map_err(|e| e.to_string())?;
    let scratch = tempfile::Builder::new()
        .prefix("kdrill-")
        .tempdir()
        .map_err(|e| format!("cannot create a scratch folder: {e}"))?;
    let initrd = scratch.path().join("initrd.img");
    write_initrd(
        &recipe,
        &files,
        scenario,
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
    let config = GuestConfig {
        accel,
        memory_mib: kernel.guest.memory_mib,
        cpus: kernel.guest.cpus,
        kernel: files.vmlinuz.clone(),
        initrd: Some(initrd),
        append: append.join(" "),
        disk: Some(disk.clone()),
        serial_log: dir.join("serial.log"),
        console_socket: Some(scratch.path().join("console.sock")),
        status_log: Some(dir.join("status.log")),
        qmp_socket: Some(scratch.path().join("qmp.sock")),
    };
    let args = qemu::command_line(&config);
    std::fs::write(
        dir.join("qemu-cmdline.txt"),
        qemu::shell_line(&qemu_bin, &args) + "\n",
    )
    .map_err(|e| format!("cannot write qemu-cmdline.txt: {e}"))?;

    progress("booting");
    let boot_started = Instant::now();
    let mut guest = Guest::spawn(&qemu_bin, &args, &dir.join("qemu-stderr.log"))
        .map_err(|e| format!("{e:#}"))?;
    let outcome = drive(
        &mut guest,
        &config,
        options,
        result,
        boot_started,
        progress,
        dir,
    );
    if let Err(err) = guest.kill() {
        result.reasons.push(format!("teardown: {err}"));
    }
    drop(guest);
    if let Err(reason) = outcome {
        result.reasons.push(reason);
    }

    progress("reading the dump");
    let verify_started = Instant::now();
    collect_and_check(&disk, dir, scenario, result)?;
    result.phases.verify = Some(verify_started.elapsed().as_secs_f64());
    Ok(())
}

/// Writes the first boot's initramfs: base + case settings (this is also the capture initramfs),
/// then the capture kernel and that capture initramfs under `/boot`.
fn write_initrd(
    recipe: &ImageRecipe,
    files: &KernelFiles,
    scenario: &Scenario,
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
    let env = case_env(recipe, scenario);
    let mut capture = base.cpio;
    capture.extend(initramfs::segment(&[(
        "etc/kdrill/case.env",
        0o644,
        env.as_bytes(),
    )]));
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
    format!(
        "KDRILL_TRIGGER='{}'\nKDRILL_SYSCTLS='{}'\nKDRILL_CAPTURE_CMDLINE='{}'\nKDRILL_MAKEDUMPFILE_ARGS='{}'\n",
        scenario.trigger.guest_word(),
        sysctls.join(" "),
        recipe.cmdline.capture.join(" "),
        scenario.capture.makedumpfile.join(" "),
    )
}

/// Follows the guest through both boots, filling in phase times. Errors say which step did not happen.
fn drive(
    guest: &mut Guest,
    config: &GuestConfig,
    options: &RunOptions,
    result: &mut CaseResult,
    boot_started: Instant,
    progress: &dyn Fn(&str),
    dir: &Path,
) -> Result<(), String> {
    let status_log = config
        .status_log
        .as_deref()
        .unwrap_or(Path::new("/nonexistent"));
    let mut watch = Watch {
        guest,
        status: StatusReader::new(status_log),
        console: LineTail::new(&config.serial_log),
        echo: options.echo_console,
        scale: options.timeout_scale,
        stderr: dir.join("qemu-stderr.log"),
        history: Vec::new(),
        pending: VecDeque::new(),
    };
    // QMP answers once QEMU is up: ask which accelerator really runs.
    if let Some(socket) = &config.qmp_socket {
        let mut qmp =
            Qmp::connect(socket, Duration::from_secs(20)).map_err(|e| format!("QMP: {e}"))?;
        let kvm = qmp
            .execute("query-kvm", None)
            .map_err(|e| format!("QMP: {e}"))?;
        let enabled = kvm
            .get("enabled")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        result.accel = Some(if enabled { "kvm" } else { "tcg" }.into());
    }

    let (seen, _) = watch.until("boot", BOOT, "the first boot's init to start")?;
    result.phases.boot = Some((seen - boot_started).as_secs_f64());
    progress("loading the capture kernel (kexec -p)");
    let (loaded_at, loaded) =
        watch.until("kexec-loaded", KEXEC, "kexec -p to load the capture kernel")?;
    result.phases.kexec = loaded.seconds("secs");
    progress("crashing; capture kernel booting");
    let (capture_at, _) = watch.until(
        "capture-start",
        CAPTURE_BOOT,
        "the capture kernel to boot (did the crash reach kexec?)",
    )?;
    // The `trigger` line is written just before the crash and may never leave the guest's UART:
    // without it, the crash is timed from the capture kernel being loaded, which precedes it at once.
    let crashed_at = watch.seen("trigger").unwrap_or(loaded_at);
    result.phases.crash_to_capture = Some((capture_at - crashed_at).as_secs_f64());
    progress("makedumpfile writing the dump");
    let (_, saved) = watch.until("makedumpfile", SAVE, "makedumpfile to finish")?;
    result.phases.makedumpfile = saved.seconds("secs");
    watch.until("done", POWEROFF, "the capture boot to finish")?;
    let scaled = POWEROFF.mul_f64(options.timeout_scale);
    if watch.guest.wait_exit(scaled).is_none() {
        return Err(format!(
            "QEMU did not exit within {}s of the capture boot powering off",
            scaled.as_secs()
        ));
    }
    Ok(())
}

struct Watch<'a> {
    guest: &'a mut Guest,
    status: StatusReader,
    console: LineTail,
    echo: bool,
    scale: f64,
    stderr: PathBuf,
    /// Every status event seen so far, with the host time it arrived.
    history: Vec<(Instant, String)>,
    /// Events read but not yet consumed by a wait.
    pending: VecDeque<(Instant, Event)>,
}

impl Watch<'_> {
    /// Reads new status events and consumes them up to the first `name` or `fail` event; later
    /// events stay queued for the next wait.
    fn take(&mut self, name: &str) -> Option<Result<(Instant, Event), String>> {
        for (at, event) in self.status.poll() {
            self.history.push((at, event.name.clone()));
            self.pending.push_back((at, event));
        }
        while let Some((at, event)) = self.pending.pop_front() {
            if event.name == "fail" {
                let phase = event.field("phase").unwrap_or("?");
                let reason = event.field("reason").unwrap_or("no reason given");
                return Some(Err(format!(
                    "guest reported failure in phase {phase}: {reason}"
                )));
            }
            if event.name == name {
                return Some(Ok((at, event)));
            }
        }
        None
    }

    /// When event `name` was last seen, if ever.
    fn seen(&self, name: &str) -> Option<Instant> {
        self.history
            .iter()
            .rev()
            .find(|(_, n)| n == name)
            .map(|(at, _)| *at)
    }

    /// Waits for status event `name`; a `fail` event, QEMU exiting or the deadline ends the wait
    /// with a reason naming `what` was expected.
    fn until(
        &mut self,
        name: &str,
        timeout: Duration,
        what: &str,
    ) -> Result<(Instant, Event), String> {
        let timeout = timeout.mul_f64(self.scale);
        let deadline = Instant::now() + timeout;
        loop {
            for line in self.console.poll() {
                if self.echo {
                    eprintln!("  | {line}");
                }
            }
            if let Some(found) = self.take(name) {
                return found;
            }
            if let Some(status) = self.guest.try_exit() {
                // The file may hold a last event written just before QEMU exited.
                if let Some(found) = self.take(name) {
                    return found;
                }
                let stderr = last_lines(&self.stderr, 5).join(" | ");
                let stderr = if stderr.is_empty() {
                    String::new()
                } else {
                    format!("; QEMU stderr: {stderr}")
                };
                return Err(format!(
                    "QEMU exited ({status}) while waiting for {what}{stderr}"
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!("no sign of {what} within {}s", timeout.as_secs()));
            }
            std::thread::sleep(crate::deadline::POLL);
        }
    }
}

/// Copies the dump and the capture boot's logs off the dump disk, reads the kernel log from the
/// dump on the host, and checks the scenario's expectations.
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
    // A dump holds all of the guest's memory.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&vmcore, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("chmod vmcore: {e}"))?;
    let size = std::fs::metadata(&vmcore).map(|m| m.len()).unwrap_or(0);
    result.dump_bytes = Some(size);
    if size == 0 {
        return Err("the dump is empty (0 bytes)".into());
    }
    let dmesg_path = dir.join("dmesg.txt");
    let makedumpfile = host_tools::require("makedumpfile").map_err(|e| e.to_string())?;
    let out = Command::new(makedumpfile)
        .arg("--dump-dmesg")
        .arg(&vmcore)
        .arg(&dmesg_path)
        .output()
        .map_err(|e| format!("cannot run makedumpfile --dump-dmesg: {e}"))?;
    if !out.status.success() || !dmesg_path.is_file() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        return Err(format!(
            "makedumpfile --dump-dmesg could not read the dump ({}): {last}",
            out.status
        ));
    }
    let log = String::from_utf8_lossy(&std::fs::read(&dmesg_path).unwrap_or_default()).into_owned();
    result.panic_message = verdict::panic_message(&log);
    result.expectations = verdict::check_log(&log, &scenario.expect.log);
    for (line, found) in &result.expectations {
        if !found {
            result
                .reasons
                .push(format!("expected log line absent from the dump: `{line}`"));
        }
    }
    Ok(())
}
