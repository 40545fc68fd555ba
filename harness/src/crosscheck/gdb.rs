//! gdb 13 (Debian 12) on ELF dumps, as a core file: one thread per `NT_PRSTATUS` note, keyed
//! by the note's `pr_pid`; its `rip` and `rsp` are compared with `kdrill inspect --regs`.
//! QEMU writes `pr_pid` = vCPU index + 1, so a `dump-guest-memory` ELF shows one thread per
//! vCPU; a kdump ELF (`makedumpfile -E`) records each CPU's current pid, so the idle CPUs
//! (pid 0) fold into one thread (gdb keeps one of them).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::host::process;

const DEADLINE: Duration = Duration::from_secs(300);

/// One thread as gdb shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GdbThread {
    /// The `process N` / `LWP N` gdb names it by: the note's `pr_pid`.
    pub pid: u32,
    pub rip: u64,
    pub rsp: u64,
}

/// Runs `gdb -batch` on `dump` as a core file and reads each thread's rip and rsp.
pub fn threads(gdb: &Path, dump: &Path) -> Result<(Vec<GdbThread>, String), String> {
    let out = process::run(
        Command::new(gdb)
            .args(["-batch", "-nx", "-c"])
            .arg(dump)
            .args([
                "-ex",
                "info threads",
                "-ex",
                "thread apply all info registers rip rsp",
            ]),
        DEADLINE,
    )
    .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    Ok((parse(&text), text))
}

/// Parses `thread apply all info registers rip rsp`.
pub fn parse(text: &str) -> Vec<GdbThread> {
    let mut out = Vec::new();
    let mut pid = None;
    let mut rip = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("Thread ") {
            // Thread 2 (process 2):  /  Thread 1 (LWP 124):
            pid = rest
                .split(['(', ')'])
                .nth(1)
                .and_then(|inner| inner.split_whitespace().last())
                .and_then(|n| n.parse().ok());
            rip = None;
            continue;
        }
        let words: Vec<&str> = t.split_whitespace().collect();
        let value = || {
            words
                .get(1)
                .and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok())
        };
        match words.first() {
            Some(&"rip") => rip = value(),
            Some(&"rsp") => {
                if let (Some(p), Some(r), Some(s)) = (pid, rip, value()) {
                    out.push(GdbThread {
                        pid: p,
                        rip: r,
                        rsp: s,
                    });
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_and_registers() {
        let text =
            "  Id   Target Id         Frame \n* 1    process 1 0xffffffffa624e86b in ?? ()\n\n\
Thread 2 (process 2):\nrip            0xffffffffa624e86b  0xffffffffa624e86b\n\
rsp            0xffffd1e8c00c3ed8  0xffffd1e8c00c3ed8\n\n\
Thread 1 (LWP 124):\nrip            0xffffffffc0612128  0xffffffffc0612128\n\
rsp            0xffffd1e8c0403de8  0xffffd1e8c0403de8\n";
        let t = parse(text);
        assert_eq!(
            t,
            [
                GdbThread {
                    pid: 2,
                    rip: 0xffff_ffff_a624_e86b,
                    rsp: 0xffff_d1e8_c00c_3ed8
                },
                GdbThread {
                    pid: 124,
                    rip: 0xffff_ffff_c061_2128,
                    rsp: 0xffff_d1e8_c040_3de8
                },
            ]
        );
    }
}
