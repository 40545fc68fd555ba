//! Signal trials: a real `kdrill verify` (and `cargo xtask verify`) is stopped by a signal at one
//! of three phases of a real case (booting, capture kernel loaded, saving the dump); afterwards no
//! QEMU of that run may be left, and the case's `result.json` must say it was interrupted, and by
//! what. One trial per (command, signal) by default, the phases spread over them (what CI runs);
//! `KDRILL_SIGNAL_TRIALS=all` runs every command × signal × phase (15 trials).

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use kdrill::host::process::GroupChild;
use libtest_mimic::{Arguments, Failed, Trial};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    /// The `kdrill` binary: `kdrill verify`.
    Kdrill,
    /// `cargo xtask verify`, which runs the case through nextest.
    Xtask,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// QEMU is running, the first boot has not reported yet.
    Booting,
    /// The capture kernel is loaded (`kexec-loaded`).
    Loaded,
    /// The capture kernel runs makedumpfile (`capture-start`).
    Saving,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Booting => "booting",
            Phase::Loaded => "loaded",
            Phase::Saving => "saving",
        }
    }
}

const SIGNALS: [(i32, &str); 3] = [
    (libc::SIGINT, "SIGINT"),
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGKILL, "SIGKILL"),
];

/// The trials CI runs: each (command, signal) once, the three phases spread over them.
const CI_TRIALS: [(Who, i32, Phase); 5] = [
    (Who::Kdrill, libc::SIGINT, Phase::Booting),
    (Who::Kdrill, libc::SIGTERM, Phase::Loaded),
    (Who::Kdrill, libc::SIGKILL, Phase::Saving),
    (Who::Xtask, libc::SIGINT, Phase::Saving),
    (Who::Xtask, libc::SIGTERM, Phase::Booting),
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn signal_name(signal: i32) -> &'static str {
    SIGNALS
        .iter()
        .find(|(s, _)| *s == signal)
        .map_or("?", |(_, n)| n)
}

/// The QEMU processes whose command line mentions `marker` (this trial's own folder).
fn qemus_of(marker: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        // The kernel cuts a process name to 15 characters: qemu-system-x86_64 is `qemu-system-x86`.
        if comm.trim() != "qemu-system-x86" {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(marker) {
            found.push(pid);
        }
    }
    found
}

/// The pid to signal: `cargo run` execs into xtask, but if a cargo wrapper stays in between, its
/// `xtask` child is what a user's `kill` of "the xtask process" reaches.
fn xtask_pid(cargo: u32) -> Option<u32> {
    let comm = |pid: u32| std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm(cargo).trim() == "xtask" {
        return Some(cargo);
    }
    let children =
        std::fs::read_to_string(format!("/proc/{cargo}/task/{cargo}/children")).unwrap_or_default();
    children
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .find(|&p| comm(p).trim() == "xtask")
}

fn phase_reached(out: &Path, phase: Phase) -> bool {
    let latest = out.join("runs/debian-6.1/sysrq/latest");
    let status = std::fs::read_to_string(latest.join("status.log")).unwrap_or_default();
    match phase {
        Phase::Booting => !qemus_of(&out.display().to_string()).is_empty(),
        Phase::Loaded => status.contains("KDRILL kexec-loaded"),
        Phase::Saving => status.contains("KDRILL capture-start"),
    }
}

fn trial(who: Who, signal: i32, phase: Phase) -> Result<(), Failed> {
    let scratch = tempfile::Builder::new()
        .prefix("kdrill-signal-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let out = scratch.path().join("out");
    let marker = out.display().to_string();
    let mut command = match who {
        Who::Kdrill => {
            let mut c = Command::new(env!("CARGO_BIN_EXE_kdrill"));
            c.args([
                "verify",
                "--kernel",
                "debian-6.1",
                "--scenario",
                "sysrq",
                "--root",
            ])
            .arg(workspace());
            c
        }
        Who::Xtask => {
            let mut c = Command::new(env!("CARGO"));
            c.args([
                "xtask",
                "verify",
                "--kernel",
                "debian-6.1",
                "--scenario",
                "sysrq",
            ])
            .current_dir(workspace());
            c
        }
    };
    command
        .env("KDRILL_OUT", &out)
        .env_remove("KDRILL_MATRIX")
        .env_remove("KDRILL_KERNELS")
        .env_remove("KDRILL_SCENARIOS")
        .stdin(Stdio::null())
        .stdout(
            std::fs::File::create(scratch.path().join("stdout.log")).map_err(|e| e.to_string())?,
        )
        .stderr(
            std::fs::File::create(scratch.path().join("stderr.log")).map_err(|e| e.to_string())?,
        );
    let started = Instant::now();
    let mut child = GroupChild::start(&mut command).map_err(|e| format!("cannot start: {e}"))?;
    let log = |what: &str| {
        let stderr = std::fs::read_to_string(scratch.path().join("stderr.log")).unwrap_or_default();
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        format!(
            "{what}; its stderr ends:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    };
    // Up to 4 minutes to reach the phase: the xtask route may have to compile first.
    let reached = kdrill::host::deadline::wait_until(Duration::from_secs(240), || {
        if child.try_exit().is_some() {
            return Some(false);
        }
        phase_reached(&out, phase).then_some(true)
    });
    if reached != Some(true) {
        return Err(log(&format!("the run never reached phase {}", phase.name())).into());
    }
    eprintln!(
        "{who:?}: phase {} reached {:.1}s after the start",
        phase.name(),
        started.elapsed().as_secs_f64()
    );
    let target = match who {
        Who::Kdrill => child.pid(),
        Who::Xtask => xtask_pid(child.pid()).ok_or("no xtask process found")?,
    };
    // SAFETY: signalling a process this test started.
    unsafe { libc::kill(target as i32, signal) };
    let sent = Instant::now();
    let status: Option<ExitStatus> = child.wait_exit(Duration::from_secs(60));
    let Some(status) = status else {
        return Err(log(&format!("still running 60 s after {}", signal_name(signal))).into());
    };
    let took = sent.elapsed();
    // No QEMU of this run may be left (the parent-death signal may take a moment after SIGKILL).
    let left = kdrill::host::deadline::wait_until(Duration::from_secs(5), || {
        qemus_of(&marker).is_empty().then_some(())
    });
    if left.is_none() {
        return Err(format!(
            "QEMU left running after {}: {:?}",
            signal_name(signal),
            qemus_of(&marker)
        )
        .into());
    }
    let expected_code = 128 + signal;
    let code = status.code().or_else(|| status.signal().map(|s| 128 + s));
    if code != Some(expected_code) {
        return Err(log(&format!("exit {status}, expected {expected_code}")).into());
    }
    let result_path = out.join("runs/debian-6.1/sysrq/latest/result.json");
    let result: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&result_path).map_err(|e| format!("{}: {e}", result_path.display()))?,
    )
    .map_err(|e| format!("{}: {e}", result_path.display()))?;
    let said = if signal == libc::SIGKILL {
        "killed"
    } else {
        signal_name(signal)
    };
    if result["verdict"] != "INTERRUPTED" || result["interrupted"] != said {
        return Err(format!(
            "result.json says verdict {} interrupted {}, expected INTERRUPTED by {said}",
            result["verdict"], result["interrupted"]
        )
        .into());
    }
    eprintln!(
        "{who:?} {} at {}: stopped in {:.1}s, no QEMU left, result.json: INTERRUPTED ({said})",
        signal_name(signal),
        phase.name(),
        took.as_secs_f64()
    );
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let all = std::env::var("KDRILL_SIGNAL_TRIALS").is_ok_and(|v| v == "all");
    let mut chosen: Vec<(Who, i32, Phase)> = Vec::new();
    if all {
        for who in [Who::Kdrill, Who::Xtask] {
            for (signal, _) in SIGNALS {
                // SIGKILL to xtask is not a stop it can act on; the issue asks it of kdrill only.
                if who == Who::Xtask && signal == libc::SIGKILL {
                    continue;
                }
                for phase in [Phase::Booting, Phase::Loaded, Phase::Saving] {
                    chosen.push((who, signal, phase));
                }
            }
        }
    } else {
        chosen.extend(CI_TRIALS);
    }
    let trials = chosen
        .into_iter()
        .map(|(who, signal, phase)| {
            let name = format!(
                "{}/{}/{}",
                match who {
                    Who::Kdrill => "kdrill-verify",
                    Who::Xtask => "xtask-verify",
                },
                signal_name(signal),
                phase.name()
            );
            Trial::test(name, move || trial(who, signal, phase))
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
