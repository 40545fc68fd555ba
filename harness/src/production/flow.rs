//! One case on the Debian image: three boots of one QEMU (no `-no-reboot`: the reboot after the
//! capture is part of what is proved), each a phase with its own deadline and timing.
//!
//! 1. Boot 1: kdrill's unit says `ready` once kdump-tools is ready to kdump (never guessed from
//!    time), having kept kdump-config's outputs and `kdrill check --format json` on the case disk;
//!    then the route crashes the guest (the unit, or the host for host-side routes).
//! 2. Boot 2, the capture: kdump-tools' own `kdump-tools-dump.service` saves the dump and reboots
//!    (`panic=10` on the command line: a failed capture reboots too, it cannot hang).
//! 3. Boot 3: the unit waits for "ready to kdump" again, lists the dump folder, says `back`, powers
//!    off.
//!
//! Then the host reads the dump folder off the root disk (its copy-on-write overlay converted to
//! raw, read with debugfs) or from the SSH target, and judges it (`coredir`).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::case::error::{CaseError, SetupContext};
use crate::case::verdict::{CaseResult, KernelPackage};
use crate::case::{budget, Case, RunOptions};
use crate::guest::dumpdisk;
use crate::host::process;
use crate::host::tools;
use crate::production::{coredir, diagnose, hooks, image, sshd};
use crate::spec::scenario::Trigger;
use crate::vm::qemu::{self, Guest, GuestConfig};
use crate::vm::qmp::Qmp;
use crate::vm::routes;
use crate::vm::status::EventName;
use crate::vm::watch::{Wait, Watch};

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Boot 1 to kdrill's unit starting (a full systemd boot: ~20 s here under TCG).
pub const BOOT1: Wait = Wait {
    event: EventName::Boot,
    limit: secs(240),
    what: "the Debian guest's first boot to start kdrill's unit",
};
/// The unit waits up to 120 s for "ready to kdump" itself.
pub const READY: Wait = Wait {
    event: EventName::Ready,
    limit: secs(200),
    what: "kdump-tools to be ready to kdump",
};
pub const CAPTURE: Wait = Wait {
    event: EventName::CaptureStart,
    limit: secs(120),
    what: "the capture kernel to boot (did the crash reach kexec?)",
};
/// The capture boot: systemd, kdump-tools-dump.service saving, the reboot (~30 s here).
pub const CAPTURE_BOOT: Wait = Wait {
    event: EventName::Boot,
    limit: secs(480),
    what: "the capture boot to save the dump and reboot",
};
/// Boot 3 up to the unit's report (a boot, then its own wait for "ready to kdump").
pub const BACK: Wait = Wait {
    event: EventName::Back,
    limit: secs(360),
    what: "the guest to come back after the capture and be ready to kdump again",
};
pub const DONE: Wait = Wait {
    event: EventName::Done,
    limit: secs(60),
    what: "the guest to finish its report",
};
/// Power-off after the report.
pub const POWEROFF: Duration = secs(120);
/// A host-side route that does not crash the guest: judged after this many seconds of the
/// unit's heartbeats.
pub const NO_CRASH_AFTER: f64 = 15.0;
/// `qemu-img` creating an overlay or converting the disk back to raw.
pub const QEMU_IMG: Duration = secs(300);

/// The sum of this flow's own deadlines (the image build and the setup are counted apart).
pub fn total() -> Duration {
    BOOT1.limit
        + READY.limit
        + CAPTURE.limit
        + CAPTURE_BOOT.limit
        + BACK.limit
        + DONE.limit
        + POWEROFF
        + QEMU_IMG * 2
        + image::BUILD_DEADLINE
        + image::MKFS_DEADLINE
}

/// Runs `case` on the Debian image; errors are its first reason.
pub fn run(
    case: &Case,
    options: &RunOptions,
    dir: &Path,
    result: &mut CaseResult,
    progress: &dyn Fn(&str),
) -> Result<(), CaseError> {
    let qemu_bin = tools::require("qemu-system-x86_64").setup("host tools")?;
    let qemu_img = tools::require("qemu-img").setup("host tools")?;
    progress("fetching kernel");
    let files = crate::fetch::kernel::resolve(&case.kernel, &options.cache).map_err(|e| {
        CaseError::Setup {
            what: "kernel",
            detail: format!("{}: {e}", case.kernel.id),
        }
    })?;
    result.kernel_release = Some(files.release.clone());
    let pinned = files.packages.clone().ok_or(CaseError::Setup {
        what: "Debian image",
        detail: format!(
            "{}: the Debian image installs the kernel's Debian package, and a `kind: local` entry has none",
            case.kernel.id
        ),
    })?;
    result.kernel_package = Some(KernelPackage {
        package: pinned.image.package.clone(),
        version: pinned.image.version.clone(),
        sha256: pinned.image.sha256.clone(),
        tracked: pinned.tracked,
    });
    let deb = crate::fetch::kernel::cached_deb(&options.cache, &pinned.image).ok_or(
        CaseError::Setup {
            what: "Debian image",
            detail: format!("{}: its .deb is not in the cache", pinned.image.package),
        },
    )?;
    let recipe =
        crate::spec::debian::load(options.project_root.as_deref()).setup("Debian image recipe")?;
    let built = image::ensure(
        &recipe,
        &deb,
        &pinned.image.sha256,
        &files.release,
        case.setup.overlay.as_deref(),
        &options.cache,
        progress,
    )
    .setup("Debian image")?;
    if built.built_now {
        result.phases.image = Some(built.record.build_seconds);
    }
    result.image = Some(built.record.clone());
    let crasher = match case.scenario.trigger.needs_crasher() {
        true => Some(
            crate::fetch::crasher::build(&case.kernel, &files, &options.cache)
                .setup("crasher module")?,
        ),
        false => None,
    };

    // The case's own files: a copy-on-write root, the case disk, any extra disk.
    let scratch = tempfile::Builder::new()
        .prefix("kdrill-deb-")
        .tempdir()
        .setup("scratch folder")?;
    let root = scratch.path().join("root.qcow2");
    let out = process::run(
        Command::new(&qemu_img)
            .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
            .arg(&built.root)
            .arg(&root),
        QEMU_IMG,
    )
    .setup("root disk overlay")?;
    if !out.status.success() {
        return Err(CaseError::Setup {
            what: "root disk overlay",
            detail: out.last_line(),
        });
    }
    let operator: std::collections::BTreeSet<String> =
        built.record.operator_sysctls.iter().cloned().collect();
    let (mut env, left_out) = hooks::case_env(&case.scenario, &operator);
    for key in left_out {
        result.notes.push(format!(
            "the route's {key} was not set: the operator's overlay sets it"
        ));
    }
    let ssh = match &case.scenario.ssh_target {
        true => Some(sshd::Target::prepare(scratch.path()).setup("SSH dump target")?),
        false => None,
    };
    let mut disk_files: Vec<(String, Vec<u8>, u32)> = Vec::new();
    if let Some(target) = &ssh {
        env.push_str("KDRILL_SSH=1\n");
        disk_files.extend(target.guest_files());
    }
    disk_files.push(("case.env".into(), env.into_bytes(), 0o644));
    match &options.kdrill_binary {
        Some(binary) => {
            let bytes = std::fs::read(binary).setup("kdrill binary for the guest")?;
            disk_files.push(("kdrill".into(), bytes, 0o755));
        }
        None => result
            .notes
            .push("no kdrill binary to run `kdrill check` in the guest (run `kdrill verify` or the matrix tests)".into()),
    }
    if let Some(ko) = &crasher {
        disk_files.push((
            "crasher.ko".into(),
            std::fs::read(ko).setup("crasher module")?,
            0o644,
        ));
    }
    disk_files.push(("out/.keep".into(), Vec::new(), 0o644));
    let case_disk = scratch.path().join("case.img");
    let payload: u64 = disk_files.iter().map(|(_, d, _)| d.len() as u64).sum();
    let refs: Vec<(&str, &[u8], u32)> = disk_files
        .iter()
        .map(|(p, d, m)| (p.as_str(), d.as_slice(), *m))
        .collect();
    dumpdisk::create_labelled(&case_disk, (payload >> 20) + 64, "kdrill-case", &refs)
        .setup("case disk")?;
    let mut extra_disks = Vec::new();
    for disk in &case.scenario.guest.disks {
        let path = scratch.path().join(format!("{}.img", disk.label));
        dumpdisk::create_labelled(&path, disk.mib, &disk.label, &[]).setup("extra disk")?;
        extra_disks.push(path);
    }

    let (accel, accel_reason) =
        crate::vm::accel::choose(&qemu_bin, &files.vmlinuz, &options.cache, scratch.path());
    result.accel = Some(accel);
    result.accel_reason = Some(accel_reason);
    let mut append = recipe.cmdline.clone();
    append.push(format!("crashkernel={}", case.crashkernel()));
    let config = GuestConfig {
        accel,
        memory_mib: case.kernel.guest.memory_mib,
        cpus: case.scenario.guest.cpus.unwrap_or(case.kernel.guest.cpus),
        kernel: files.vmlinuz.clone(),
        initrd: Some(built.initrd.clone()),
        append: append.join(" "),
        disk: None,
        serial_log: dir.join("serial.log"),
        console_socket: Some(scratch.path().join("console.sock")),
        status_log: Some(dir.join("status.log")),
        status_socket: None,
        qmp_socket: Some(scratch.path().join("qmp.sock")),
        incoming: None,
    };
    let mut args: Vec<String> = qemu::command_line(&config)
        .into_iter()
        .filter(|a| a != "-no-reboot")
        .collect();
    let drive = |path: &Path, format: &str| {
        [
            "-drive".to_string(),
            format!(
                "file={},format={format},if=virtio,cache=unsafe",
                path.display()
            ),
        ]
    };
    args.extend(drive(&root, "qcow2"));
    args.extend(drive(&case_disk, "raw"));
    for disk in &extra_disks {
        args.extend(drive(disk, "raw"));
    }
    if let Some(target) = &ssh {
        args.extend(target.qemu_args());
    }
    std::fs::write(
        dir.join("qemu-cmdline.txt"),
        qemu::shell_line(&qemu_bin, &args) + "\n",
    )
    .setup("evidence")?;

    progress("booting the Debian guest (boot 1)");
    let started = Instant::now();
    let guest = Guest::spawn(&qemu_bin, &args, &dir.join("qemu-stderr.log")).setup("QEMU")?;
    let mut watch = Watch::new(
        guest,
        &dir.join("status.log"),
        &config.serial_log,
        &dir.join("qemu-stderr.log"),
        options.echo_console,
        options.timeout_scale,
    );
    let boots = three_boots(case, &config, &mut watch, started, result, progress);
    if let Err(err) = watch.guest().kill() {
        result.fail(CaseError::Teardown(err));
    }
    let lines = watch.lines().to_vec();
    drop(watch);
    keep_boots(dir, &config.serial_log);
    progress("reading the dump folder back");
    let read_started = Instant::now();
    let guest_out = dir.join("guest");
    let _ = dumpdisk::extract_tree(&case_disk, "/out", &guest_out);
    summarize_check(&guest_out.join("out"), result);
    let judged = judge(
        case,
        dir,
        scratch.path(),
        &root,
        &qemu_img,
        &guest_out.join("out"),
        ssh.as_ref(),
        boots,
        &lines,
        result,
    );
    result.phases.verify = Some(read_started.elapsed().as_secs_f64());
    judged
}

/// What the boots came to, for the judgement after QEMU is gone.
enum Boots {
    /// The unit never said ready: kdump-tools was not ready (or the guest failed earlier).
    NotReady(CaseError),
    /// The route did not crash the guest.
    NoCrash(String),
    /// The capture kernel never booted.
    NoCapture(CaseError),
    /// Boot 3 reported (`ready`, `dumps`), or the flow stopped after the capture for `error`.
    After {
        capture_from: usize,
        back: Option<(bool, u32)>,
        error: Option<CaseError>,
    },
}

fn three_boots(
    case: &Case,
    config: &GuestConfig,
    watch: &mut Watch,
    started: Instant,
    result: &mut CaseResult,
    progress: &dyn Fn(&str),
) -> Boots {
    let mut qmp = match Qmp::connect(
        config
            .qmp_socket
            .as_deref()
            .unwrap_or(Path::new("/nonexistent")),
        watch.scaled(budget::QMP_CONNECT),
        watch.scaled(budget::QMP_REPLY),
    ) {
        Ok(qmp) => qmp,
        Err(e) => {
            return Boots::NotReady(CaseError::Qmp {
                during: "QMP",
                detail: e.to_string(),
            })
        }
    };
    let (seen, booted) = match watch.until(BOOT1) {
        Ok(found) => found,
        Err(e) => return Boots::NotReady(e),
    };
    result.phases.boot = Some((seen - started).as_secs_f64());
    result.phases.guest_boot = Some(booted.uptime);
    progress("waiting for kdump-tools to be ready to kdump");
    let (ready_at, ready) = match watch.until(READY) {
        Ok(found) => found,
        Err(e) => return Boots::NotReady(e),
    };
    result.phases.ready = Some((ready_at - started).as_secs_f64());
    let trigger = case.scenario.trigger;
    let mut crashed_at = None;
    let mut _console = None;
    if routes::host_presses(trigger) {
        if trigger == Trigger::HangThenNmi {
            if let Err(e) = watch.until(crate::case::budget::HANGING) {
                return Boots::NotReady(e);
            }
            std::thread::sleep(Duration::from_secs(u64::from(case.scenario.hang_seconds)));
        }
        progress("crashing from the host");
        let socket = config
            .console_socket
            .as_deref()
            .unwrap_or(Path::new("/nonexistent"));
        match routes::press(trigger, &mut qmp, socket) {
            Ok(pressed) => {
                crashed_at = Some(pressed.at);
                _console = pressed.console;
            }
            Err(e) => return Boots::NotReady(CaseError::Route(e)),
        }
    }
    let crashed_at = crashed_at.unwrap_or(ready_at);
    progress("crashed; waiting for the capture kernel");
    // The unit's heartbeats after the crash should have come are the sign it did not.
    let pressed_uptime = ready.uptime + (Instant::now() - ready_at).as_secs_f64();
    let capture_at = loop {
        match watch.until_banner(2, CAPTURE, Some(EventName::Alive)) {
            Ok(Ok(at)) => break at,
            Ok(Err(alive)) if alive.uptime > pressed_uptime + NO_CRASH_AFTER => {
                return Boots::NoCrash(format!(
                    "the route did not crash the kernel: the guest was still up {:.0} s after it (kernel.sysrq was {})",
                    alive.uptime - pressed_uptime,
                    ready.field("sysrq").unwrap_or("?")
                ))
            }
            Ok(Err(_)) => continue,
            Err(e) => return Boots::NoCapture(e),
        }
    };
    result.phases.capture_first_line = Some((capture_at - crashed_at).as_secs_f64());
    let capture_from = watch.lines().len();
    progress("capture boot: kdump-tools saving the dump");
    let back_banner = match watch.until_banner(3, CAPTURE_BOOT, None) {
        Ok(Ok(at)) => at,
        Ok(Err(_)) => unreachable!("no event was asked for"),
        Err(e) => {
            return Boots::After {
                capture_from,
                back: None,
                error: Some(e),
            }
        }
    };
    result.phases.capture = Some((back_banner - capture_at).as_secs_f64());
    if let Some((at, _)) = watch.lines()[capture_from..]
        .iter()
        .find(|(_, l)| l.contains("saved vmcore in"))
    {
        result.phases.saved = Some((*at - capture_at).as_secs_f64());
    }
    progress("boot 3: waiting for kdump to be ready again");
    let back = match watch.until(BACK) {
        Ok((at, back)) => {
            result.phases.back = Some((at - back_banner).as_secs_f64());
            (
                back.field("ready") == Some("yes"),
                back.field("dumps")
                    .and_then(|d| d.parse().ok())
                    .unwrap_or(0),
            )
        }
        Err(e) => {
            return Boots::After {
                capture_from,
                back: None,
                error: Some(e),
            }
        }
    };
    let error = watch.until(DONE).err().or_else(|| {
        let limit = watch.scaled(POWEROFF);
        watch
            .guest()
            .wait_exit(limit)
            .is_none()
            .then_some(CaseError::NoPowerOff { after: limit })
    });
    Boots::After {
        capture_from,
        back: Some(back),
        error,
    }
}

/// `serial-boot1.log`, `serial-boot2.log`, `serial-boot3.log` beside the whole `serial.log`.
fn keep_boots(dir: &Path, serial: &Path) {
    let text = String::from_utf8_lossy(&std::fs::read(serial).unwrap_or_default()).into_owned();
    for (i, boot) in diagnose::split_boots(&text).iter().enumerate() {
        let _ = std::fs::write(dir.join(format!("serial-boot{}.log", i + 1)), boot);
    }
}

/// The in-guest `kdrill check`'s verdict and each check's status, into `result.guest_check`.
fn summarize_check(out: &Path, result: &mut CaseResult) {
    let Ok(bytes) = std::fs::read(out.join("check.json")) else {
        return;
    };
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        result
            .notes
            .push("the in-guest `kdrill check` wrote no JSON".into());
        return;
    };
    let statuses = json["checks"]
        .as_array()
        .map(|checks| {
            checks
                .iter()
                .filter_map(|c| {
                    Some((
                        c["id"].as_str()?.to_string(),
                        c["status"].as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    result.guest_check = Some(crate::case::verdict::GuestCheck {
        verdict: json["verdict"].as_str().unwrap_or("?").to_string(),
        statuses,
    });
}

#[allow(clippy::too_many_arguments)]
fn judge(
    case: &Case,
    dir: &Path,
    scratch: &Path,
    root: &Path,
    qemu_img: &Path,
    guest_out: &Path,
    ssh: Option<&sshd::Target>,
    boots: Boots,
    lines: &[(Instant, String)],
    result: &mut CaseResult,
) -> Result<(), CaseError> {
    let read = |name: &str| std::fs::read_to_string(guest_out.join(name)).unwrap_or_default();
    let capture_text = |from: usize| -> String {
        lines[from.min(lines.len())..]
            .iter()
            .map(|(_, l)| format!("{l}\n"))
            .collect()
    };
    let (capture_from, back, error) = match boots {
        Boots::NotReady(CaseError::GuestFailed { phase, reason }) if phase == "kdump" => {
            let why = diagnose::not_ready(
                &read("boot1-kdump-config-show.txt"),
                &read("boot1-kdump-config-status.txt"),
            );
            return Err(CaseError::Production {
                kind: "kdump-not-ready",
                reason: format!("{why}; the guest said: {reason}"),
            });
        }
        Boots::NotReady(e) | Boots::NoCapture(e) => return Err(e),
        Boots::NoCrash(why) => {
            return Err(CaseError::Production {
                kind: "route-did-not-crash",
                reason: why,
            })
        }
        Boots::After {
            capture_from,
            back,
            error,
        } => (capture_from, back, error),
    };
    if let Some((false, _)) = back {
        result.fail(CaseError::Production {
            kind: "not-ready-after-reboot",
            reason: format!(
                "after the capture boot rebooted, kdump-tools was not ready to kdump again ({})",
                read("boot3-kdump-config-status.txt").trim()
            ),
        });
    }
    let coredir = coredir::coredir(&read("boot1-kdump-config-show.txt"));
    let found = match ssh {
        Some(target) => coredir::find_on_host(&target.folder(&coredir)),
        None => {
            let raw = scratch.join("root.raw");
            let out = process::run(
                Command::new(qemu_img)
                    .args(["convert", "-O", "raw"])
                    .arg(root)
                    .arg(&raw),
                QEMU_IMG,
            )
            .map_err(|e| CaseError::Dump(e.to_string()))?;
            if !out.status.success() {
                return Err(CaseError::Dump(format!(
                    "qemu-img convert: {}",
                    out.last_line()
                )));
            }
            coredir::read_from_disk(&raw, &coredir, &dir.join("coredir"))?
        }
    };
    let Some(found) = found.filter(|f| f.dump.is_some()) else {
        let (kind, reason) = diagnose::capture_failure(&capture_text(capture_from));
        if let Some(e) = error {
            result.fail(e);
        }
        return Err(CaseError::Production { kind, reason });
    };
    if let Some(e) = error {
        result.fail(e);
    }
    coredir::check(&found, dir, &case.scenario, result)
}
