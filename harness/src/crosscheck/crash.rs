//! crash 8.0.2 (Debian 12) with the kernel's debug vmlinux, scripted (`crash -s -i FILE`:
//! `log`, `ps`, `bt`, `mod`), and its output parsed to compare with kdrill: the pid/comm set
//! of `ps`, the function names of `bt`, the module names of `mod`, the log's lines. crash's
//! exit status says nothing, so it is judged by its output, as its own test suite does.
//! crash 8.0.2 cannot open 6.12 dumps (fixed in 8.0.6): that is reported, not hidden.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::host::process;

/// Opening a 6.1 dump and running the commands takes ~5 s here.
const DEADLINE: Duration = Duration::from_secs(300);
/// Separates the commands' outputs.
const MARK: &str = "KDRILL-CRASH-SECTION";

/// crash's answers, by command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrashOutput {
    pub log: Vec<String>,
    pub ps: Vec<String>,
    pub bt: Vec<String>,
    pub modules: Vec<String>,
    /// Lines that say crash failed (`crash: …`, `seek error`, `cannot`, `invalid`).
    pub errors: Vec<String>,
}

/// Runs crash on `dump` with `vmlinux`; `script` is a scratch file for the commands.
pub fn run(
    crash: &Path,
    vmlinux: &Path,
    dump: &Path,
    script: &Path,
) -> Result<CrashOutput, String> {
    let commands: String = ["log", "ps", "bt", "mod"]
        .iter()
        .map(|c| format!("echo {MARK} {c}\n{c}\n"))
        .collect::<String>()
        + "quit\n";
    std::fs::write(script, commands).map_err(|e| e.to_string())?;
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

/// Splits crash's output into its commands' sections.
pub fn parse(text: &str) -> CrashOutput {
    let mut out = CrashOutput::default();
    let mut section = "";
    for line in text.lines() {
        if let Some(name) = line.strip_prefix(&format!("{MARK} ")) {
            section = match name.trim() {
                "log" => "log",
                "ps" => "ps",
                "bt" => "bt",
                "mod" => "mod",
                _ => "",
            };
            continue;
        }
        let lower = line.to_ascii_lowercase();
        if line.starts_with("crash:") || lower.contains("seek error") || lower.starts_with("cannot")
        {
            out.errors.push(line.trim().to_string());
        }
        match section {
            "log" => out.log.push(line.to_string()),
            "ps" => out.ps.push(line.to_string()),
            "bt" => out.bt.push(line.to_string()),
            "mod" => out.modules.push(line.to_string()),
            _ => {}
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

    const OUT: &str = "KDRILL-CRASH-SECTION log\n[    0.000000] Linux version 6.1.0\n\
KDRILL-CRASH-SECTION ps\n   PID    PPID  CPU       TASK        ST  %MEM     VSZ    RSS  COMM\n\
>     0      0   0  ffffffff97213980  RU   0.0       0      0  [swapper/0]\n\
      1      0   1  ffff8f1d01a38000  IN   0.1    2344   1024  init\n\
KDRILL-CRASH-SECTION bt\nPID: 124    TASK: ffff889801be4000  CPU: 1    COMMAND: \"sh\"\n\
 #0 [ffffd1e8c0403c48] machine_kexec at ffffffff9585e5ba\n\
 #1 [ffffd1e8c0403ca0] __crash_kexec at ffffffff959a4b3a\n\
    [exception RIP: kdrill_oops+16]\n\
    RIP: ffffffffc0612128  RSP: ffffd1e8c0403de8  RFLAGS: 00010246\n\
 #7 [ffffd1e8c0403df0] kdrill_write.cold at ffffffffc0612164 [crasher]\n\
KDRILL-CRASH-SECTION mod\n     MODULE       NAME   TEXT_BASE  SIZE  OBJECT FILE\n\
ffffffffc0614040  crasher  ffffffffc0612000  16384  (not loaded)  [CONFIG_KALLSYMS]\n\
crash: seek error: kernel virtual address: ffffffff9d6e5fff  type: \"page_offset_base\"\n";

    #[test]
    fn sections_are_parsed() {
        let o = parse(OUT);
        assert_eq!(o.log.len(), 1);
        let tasks = ps_tasks(&o.ps);
        assert!(tasks.contains(&(0, "swapper/0".into())) && tasks.contains(&(1, "init".into())));
        assert_eq!(
            bt_functions(&o.bt),
            [
                "machine_kexec",
                "__crash_kexec",
                "kdrill_oops",
                "kdrill_write.cold"
            ]
        );
        assert_eq!(
            module_names(&o.modules).into_iter().collect::<Vec<_>>(),
            ["crasher"]
        );
        assert_eq!(o.errors.len(), 1);
    }
}
