//! Running `cargo nextest` as a child that stops when xtask is stopped: SIGINT, SIGTERM and SIGHUP
//! sent to xtask (a terminal's Ctrl-C, a CI runner's cancel, `timeout(1)`) are forwarded to
//! nextest, which terminates its tests (each test stops its guest and records "interrupted");
//! xtask waits for it. nextest also gets a parent-death signal, so killing xtask outright still
//! ends it. And the nextest configuration, with the VM tests' kill time stretched by
//! `KDRILL_TIMEOUT_SCALE` so it stays above the cases' own deadlines.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use anyhow::Context;

/// How a nextest run ended.
pub struct Ended {
    pub status: ExitStatus,
    /// The signal xtask received and forwarded, if any.
    pub signal: Option<i32>,
}

impl Ended {
    /// 128 + the signal when xtask was stopped, else 0/1 by nextest's status.
    pub fn exit_code(&self) -> i32 {
        match self.signal {
            Some(signal) => 128 + signal,
            None if self.status.success() => 0,
            None => 1,
        }
    }
}

/// Runs `command` (a `cargo nextest …` command line) in a process group of its own, forwarding
/// stop signals to that group, and waits for it.
pub fn run(mut command: Command) -> anyhow::Result<Ended> {
    command.process_group(0);
    // SAFETY: prctl only sets a flag on the new process.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let received = Arc::new(AtomicI32::new(0));
    let mut signals =
        signal_hook::iterator::Signals::new([libc::SIGINT, libc::SIGTERM, libc::SIGHUP])
            .context("cannot handle signals")?;
    let handle = signals.handle();
    let mut child = command.spawn().context("cannot run cargo nextest")?;
    let pgid = child.id() as i32;
    let seen = Arc::clone(&received);
    let forwarder = std::thread::spawn(move || {
        for signal in signals.forever() {
            let _ = seen.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
            eprintln!("\nxtask: got signal {signal}; stopping nextest and its tests");
            // SAFETY: signalling the process group this process created.
            unsafe { libc::kill(-pgid, signal) };
        }
    });
    let status = child.wait().context("cannot wait for cargo nextest")?;
    handle.close();
    let _ = forwarder.join();
    let signal = match received.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    };
    Ok(Ended { status, signal })
}

/// The nextest config to use: `.config/nextest.toml` as it is when the scale is 1, else a copy
/// (under `<target>/kdrill/`) whose VM-test kill times are stretched by `scale`.
pub fn config_file(root: &Path, target: &Path, scale: f64) -> anyhow::Result<PathBuf> {
    let repo = root.join(".config/nextest.toml");
    if scale <= 1.0 {
        return Ok(repo);
    }
    let text = std::fs::read_to_string(&repo)
        .with_context(|| format!("cannot read {}", repo.display()))?;
    let dir = target.join("kdrill");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let out = dir.join("nextest.toml");
    std::fs::write(&out, stretched(&text, scale))
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(out)
}

/// `slow-timeout = { period = "60s", terminate-after = N }` lines (the VM tests') with N × scale,
/// rounded up; everything else unchanged.
fn stretched(config: &str, scale: f64) -> String {
    let mut out = String::new();
    for line in config.lines() {
        let key = "terminate-after = ";
        match line.find(key) {
            Some(at) if line.starts_with("slow-timeout") && line.contains("period = \"60s\"") => {
                let rest = &line[at + key.len()..];
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                let n: f64 = digits.parse().unwrap_or(1.0);
                let scaled = (n * scale).ceil() as u64;
                out.push_str(&line[..at + key.len()]);
                out.push_str(&scaled.to_string());
                out.push_str(&rest[digits.len()..]);
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_vm_kill_times_stretch() {
        let config = "[profile.ci]\nslow-timeout = { period = \"30s\", terminate-after = 4 }\n\
                      [[profile.ci.overrides]]\nslow-timeout = { period = \"60s\", terminate-after = 30 }\n";
        let got = stretched(config, 2.5);
        assert_eq!(
            got,
            "[profile.ci]\nslow-timeout = { period = \"30s\", terminate-after = 4 }\n\
             [[profile.ci.overrides]]\nslow-timeout = { period = \"60s\", terminate-after = 75 }\n"
        );
    }

    #[test]
    fn a_stopped_run_exits_with_the_signal() {
        use std::os::unix::process::ExitStatusExt;
        let ended = Ended {
            status: ExitStatus::from_raw(0),
            signal: Some(libc::SIGTERM),
        };
        assert_eq!(ended.exit_code(), 143);
        let failed = Ended {
            status: ExitStatus::from_raw(256),
            signal: None,
        };
        assert_eq!(failed.exit_code(), 1);
    }
}
