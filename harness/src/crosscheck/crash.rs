//! crash 8.0.2 (Debian 12) with the kernel's debug vmlinux, scripted (`crash -s -i FILE`:
//! `log`, `ps`, `bt`, `mod`, and `list` over `init_task.tasks`), and its output parsed to
//! compare with kdrill: the pid/comm set of `ps` (and of crash's own walk of the task list:
//! on Debian's 6.1.170, crash 8.0.2's `ps` finds only the idle tasks, "active task … not
//! found in PID hash"), the function names of `bt`, the module names of `mod`, the log. crash's
//! exit status says nothing, so it is judged by its output, as its own test suite does.
//! crash 8.0.2 cannot open 6.12 dumps (fixed in 8.0.6): that is reported, not hidden.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::host::process;

/// Opening a 6.1 dump and running the commands takes ~5 s here.
const DEADLINE: Duration = Duration::from_secs(300);

/// crash's output, every line (its `echo` and its commands' output do not come out in order,
/// so each parser below picks the lines of its own shape).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrashOutput {
    pub lines: Vec<String>,
    /// Lines that say crash failed (`crash: …`, `seek error`, `cannot …`).
    pub errors: Vec<String>,
    /// crash's warnings (`WARNING: …`).
    pub warnings: Vec<String>,
}

/// The commands run: the log, `ps`, the panic task's `bt`, `mod`, and the task list walked
/// with crash's own `list` over `init_task.tasks` and its debuginfo types.
const COMMANDS: &str =
    "log\nps\nbt\nmod\nlist task_struct.tasks -s task_struct.pid,comm -h init_task\nquit\n";

/// Runs crash on `dump` with `vmlinux`; `script` is a scratch file for the commands.
pub fn run(
    crash: &Path,
    vmlinux: &Path,
    dump: &Path,
    script: &Path,
) -> Result<CrashOutput, String> {
    std::fs::write(script, COMMANDS).map_err(|e| e.to_string())?;
    let out = process::run(
        Command::new(crash)
            .arg("-s")
            .arg(vmlinux)
            .arg(dump)
            .arg("-i")
            .arg(script),
        DEADLINE,
    )
    .map_err(|e| e.to_string())?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    Ok(parse(&text))
}

/// Keeps crash's lines and picks out its errors and warnings.
pub fn parse(text: &str) -> CrashOutput {
    let mut out = CrashOutput::default();
    for line in text.lines() {
        let lower = line.to_ascii_lowercase();
        if line.starts_with("crash:") || lower.contains("seek error") || lower.starts_with("cannot")
        {
            out.errors.push(line.trim().to_string());
        }
        if line.starts_with("WARNING:") {
            out.warnings.push(line.trim().to_string());
        }
        out.lines.push(line.to_string());
    }
    out
}

/// The log's lines (`[    3.535817] …`).
pub fn log_lines(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| {
            l.strip_prefix('[')
                .and_then(|r| r.split_once(']'))
                .is_some_and(|(ts, _)| {
                    ts.trim().contains('.')
                        && ts
                            .trim()
                            .replace('.', "")
                            .chars()
                            .all(|c| c.is_ascii_digit())
                })
        })
        .cloned()
        .collect()
}

/// `(pid, comm)` of every task crash's `list` walked: an address line, `  pid = N,`,
/// `  comm = "name\000…",`.
pub fn listed_tasks(lines: &[String]) -> BTreeSet<(u32, String)> {
    let mut out = BTreeSet::new();
    let mut pid = None;
    for line in lines {
        let t = line.trim();
        if let Some(n) = t.strip_prefix("pid = ") {
            pid = n.trim_end_matches(',').parse().ok();
        } else if let Some(c) = t.strip_prefix("comm = \"") {
            if let Some(p) = pid.take() {
                let comm = c
                    .split("\\000")
                    .next()
                    .unwrap_or("")
                    .trim_end_matches("\",")
                    .trim_end_matches('"');
                out.insert((p, comm.to_string()));
            }
        }
    }
    out
}

/// `(pid, comm)` of every task `ps` lists (`>` marks running ones; kernel threads are in
/// brackets, which are taken off).
pub fn ps_tasks(ps: &[String]) -> BTreeSet<(u32, String)> {
    ps.iter()
        .filter_map(|line| {
            let words: Vec<&str> = line
                .trim_start_matches(['>', ' '])
                .split_whitespace()
                .collect();
            // PID PPID CPU TASK ST %MEM VSZ RSS COMM
            if words.len() < 9 || !words[3].chars().all(|c| c.is_ascii_hexdigit()) {
                return None;
            }
            let pid = words[0].parse().ok()?;
            let comm = words[8..].join(" ");
            let comm = comm
                .strip_prefix('[')
                .and_then(|c| c.strip_suffix(']'))
                .unwrap_or(&comm);
            Some((pid, comm.to_string()))
        })
        .collect()
}

/// The function names of `bt`, innermost first: ` #N [sp] name at addr [module]`, and the
/// `[exception RIP: name+off]` lines where an exception frame holds the registers.
pub fn bt_functions(bt: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for line in bt {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("[exception RIP: ") {
            let name = rest.trim_end_matches(']').split('+').next().unwrap_or("");
            out.push(name.to_string());
        } else if t.starts_with('#') {
            // #0 [ffffd1e8c0403c48] machine_kexec at ffffffff9585e5ba
            let words: Vec<&str> = t.split_whitespace().collect();
            if words.len() >= 3 && words[1].starts_with('[') {
                out.push(words[2].to_string());
            }
        }
    }
    out
}

/// The module names of `mod` (`MODULE NAME TEXT_BASE SIZE OBJECT FILE`).
pub fn module_names(lines: &[String]) -> BTreeSet<String> {
    lines
        .iter()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() >= 4 && w[0].chars().all(|c| c.is_ascii_hexdigit()) && w[0].len() >= 8)
                .then(|| w[1].to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &str = "WARNING: active task ffff88983ecb6100 on cpu 1 not found in PID hash\n\
[    0.000000] Linux version 6.1.0\n\
   PID    PPID  CPU       TASK        ST  %MEM     VSZ    RSS  COMM\n\
>     0      0   0  ffffffff97213980  RU   0.0       0      0  [swapper/0]\n\
      1      0   1  ffff8f1d01a38000  IN   0.1    2344   1024  init\n\
PID: 124    TASK: ffff889801be4000  CPU: 1    COMMAND: \"sh\"\n\
 #0 [ffffd1e8c0403c48] machine_kexec at ffffffff9585e5ba\n\
 #1 [ffffd1e8c0403ca0] __crash_kexec at ffffffff959a4b3a\n\
    [exception RIP: kdrill_oops+16]\n\
    RIP: ffffffffc0612128  RSP: ffffd1e8c0403de8  RFLAGS: 00010246\n\
 #7 [ffffd1e8c0403df0] kdrill_write.cold at ffffffffc0612164 [crasher]\n\
     MODULE       NAME   TEXT_BASE  SIZE  OBJECT FILE\n\
ffffffffc0614040  crasher  ffffffffc0612000  16384  (not loaded)  [CONFIG_KALLSYMS]\n\
ffffffffa721aa40\n  pid = 0,\n  comm = \"swapper/0\\000\\000\\000\",\n\
ffff889801200000\n  pid = 1,\n  comm = \"init\\000\\000\",\n\
crash: seek error: kernel virtual address: ffffffff9d6e5fff  type: \"page_offset_base\"\n";

    #[test]
    fn each_output_is_picked_by_its_shape() {
        let o = parse(OUT);
        assert_eq!(log_lines(&o.lines), ["[    0.000000] Linux version 6.1.0"]);
        let tasks = ps_tasks(&o.lines);
        assert!(tasks.contains(&(0, "swapper/0".into())) && tasks.contains(&(1, "init".into())));
        assert_eq!(tasks.len(), 2);
        assert_eq!(
            bt_functions(&o.lines),
            [
                "machine_kexec",
                "__crash_kexec",
                "kdrill_oops",
                "kdrill_write.cold"
            ]
        );
        assert_eq!(
            module_names(&o.lines).into_iter().collect::<Vec<_>>(),
            ["crasher"]
        );
        let listed = listed_tasks(&o.lines);
        assert!(listed.contains(&(0, "swapper/0".into())) && listed.contains(&(1, "init".into())));
        assert_eq!((o.errors.len(), o.warnings.len()), (1, 1));
    }
}
