//! drgn, the programmable debugger, as an outside witness of kdrill's symbols and unwinding:
//! installed from PyPI into a venv in the kdrill cache, run on a dump to name addresses from
//! the kernel's own kallsyms tables (drgn's `load_vmlinux_kallsyms`, no debuginfo) and to
//! unwind from given registers with the vmlinux's built-in ORC (drgn 0.2.0 on reads the 7.1
//! format, commit 75a4fd04).
//!
//! drgn 0.3.0's wheel bundles libkdumpfile, so it opens kdump-compressed files. Without
//! debuginfo it has no types, so it names vmlinux addresses only (module symbols need
//! `struct module`), cannot find a task's or the crashed CPU's registers itself, and cannot
//! unwind through modules; `drgn_orc.py` hands it a `struct pt_regs` of its own making.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::Deserialize;

use crate::host::lock::FileLock;
use crate::host::paths::cache_dir;
use crate::host::process;

/// The drgn release compared against (pinned: its kallsyms reading is what is checked).
pub const VERSION: &str = "0.3.0";
const SCRIPT: &str = include_str!("drgn_symbols.py");
const UNWIND: &str = include_str!("drgn_orc.py");
/// `kdrill inspect --bt --tasks` done by drgn with a debug vmlinux, for `cargo xtask deep`'s timing.
pub const SAME_AS_BT_TASKS: &str = include_str!("drgn_same.py");

#[derive(Debug, thiserror::Error)]
pub enum DrgnError {
    /// pip could not reach PyPI: the one reason the cross-check is skipped.
    #[error("PyPI is unreachable, drgn {VERSION} cannot be installed: {0}")]
    Unreachable(String),
    #[error("installing drgn {VERSION}: {0}")]
    Install(String),
    #[error("running drgn: {0}")]
    Run(String),
}

/// The venv's folder.
pub fn venv() -> PathBuf {
    cache_dir().join(format!("drgn-{VERSION}"))
}

/// Words in pip's output that mean the network, not the package, failed.
fn unreachable(stderr: &str) -> bool {
    [
        "Failed to establish a new connection",
        "Temporary failure in name resolution",
        "Network is unreachable",
        "No route to host",
        "Connection refused",
        "ConnectTimeoutError",
        "(from versions: none)",
    ]
    .iter()
    .any(|w| stderr.contains(w))
}

/// The venv's python with drgn installed: made once (`python3 -m venv`, `pip install
/// drgn==VERSION`), under a lock so parallel tests share it.
pub fn ensure() -> Result<PathBuf, DrgnError> {
    let dir = venv();
    let python = dir.join("bin/python");
    if python.exists() {
        return Ok(python);
    }
    let install = |e: String| DrgnError::Install(e);
    std::fs::create_dir_all(cache_dir()).map_err(|e| install(e.to_string()))?;
    let _lock = FileLock::acquire(&cache_dir().join("drgn.lock"), Duration::from_secs(900))
        .map_err(|e| install(e.to_string()))?;
    if python.exists() {
        return Ok(python);
    }
    // Built aside and renamed, so a half-made venv is never taken for a whole one.
    let tmp = cache_dir().join(format!("drgn-{VERSION}.tmp"));
    let _ = std::fs::remove_dir_all(&tmp);
    let made = process::run(
        Command::new("python3").arg("-m").arg("venv").arg(&tmp),
        Duration::from_secs(120),
    )
    .map_err(|e| install(e.to_string()))?;
    if !made.status.success() {
        return Err(install(format!(
            "python3 -m venv: {} (Debian: apt-get install python3-venv)",
            made.last_line()
        )));
    }
    let pip = process::run(
        Command::new(tmp.join("bin/python"))
            .args(["-m", "pip", "install", "--disable-pip-version-check"])
            .args(["--retries", "2", "--timeout", "20"])
            .arg(format!("drgn=={VERSION}")),
        Duration::from_secs(600),
    )
    .map_err(|e| install(e.to_string()))?;
    if !pip.status.success() {
        let stderr = String::from_utf8_lossy(&pip.stderr).into_owned();
        return Err(if unreachable(&stderr) {
            DrgnError::Unreachable(pip.last_line())
        } else {
            install(pip.last_line())
        });
    }
    std::fs::rename(&tmp, &dir).map_err(|e| install(e.to_string()))?;
    Ok(python)
}

/// What drgn says is at one address.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DrgnSymbol {
    pub addr: String,
    pub name: Option<String>,
    pub address: Option<u64>,
    pub size: Option<u64>,
}

#[derive(Deserialize)]
struct Output {
    drgn: String,
    symbols: Vec<DrgnSymbol>,
}

/// drgn's symbol for each address, and drgn's version.
pub fn symbolize(
    python: &Path,
    dump: &Path,
    addrs: &[u64],
) -> Result<(String, Vec<DrgnSymbol>), DrgnError> {
    let run = |e: String| DrgnError::Run(e);
    let mut cmd = Command::new(python);
    cmd.arg("-c").arg(SCRIPT).arg(dump);
    cmd.args(addrs.iter().map(|a| format!("{a:x}")));
    let out = process::run(&mut cmd, Duration::from_secs(120)).map_err(|e| run(e.to_string()))?;
    if !out.status.success() {
        return Err(run(out.last_line()));
    }
    let parsed: Output = serde_json::from_slice(&out.stdout).map_err(|e| run(e.to_string()))?;
    Ok((parsed.drgn, parsed.symbols))
}

/// One frame of drgn's unwind.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DrgnFrame {
    pub pc: u64,
    pub sp: u64,
    pub interrupted: bool,
    pub name: Option<String>,
    pub offset: Option<u64>,
}

#[derive(Deserialize)]
struct Unwound {
    drgn: String,
    frames: Vec<DrgnFrame>,
}

/// drgn's frames unwound from `regs` (`pt_regs` member names: `ip`, `sp`, `bp`, `ax`, …; a
/// register not given is 0) with the vmlinux's built-in ORC, and drgn's version.
pub fn unwind(
    python: &Path,
    dump: &Path,
    regs: &[(&str, u64)],
) -> Result<(String, Vec<DrgnFrame>), DrgnError> {
    const NAMES: [&str; 21] = [
        "r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8", "ax", "cx", "dx", "si",
        "di", "orig_ax", "ip", "cs", "flags", "sp", "ss",
    ];
    let arg: Vec<String> = NAMES
        .iter()
        .map(|n| {
            let v = regs.iter().find(|(k, _)| k == n).map_or(0, |r| r.1);
            format!("{n}={v:x}")
        })
        .collect();
    let mut cmd = Command::new(python);
    cmd.arg("-c").arg(UNWIND).arg(dump).arg(arg.join(","));
    let out = process::run(&mut cmd, Duration::from_secs(120))
        .map_err(|e| DrgnError::Run(e.to_string()))?;
    if !out.status.success() {
        return Err(DrgnError::Run(out.last_line()));
    }
    let parsed: Unwound =
        serde_json::from_slice(&out.stdout).map_err(|e| DrgnError::Run(e.to_string()))?;
    Ok((parsed.drgn, parsed.frames))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_failures_are_told_from_package_failures() {
        assert!(unreachable(
            "ERROR: Could not find a version that satisfies the requirement drgn==0.3.0 (from versions: none)"
        ));
        assert!(unreachable(
            "... NewConnectionError: Failed to establish a new connection"
        ));
        assert!(!unreachable("error: subprocess-exited-with-error"));
    }
}
