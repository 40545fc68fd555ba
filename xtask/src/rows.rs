//! `cargo xtask deep`'s comparison rows against crash and drgn, one dump at a time: crash's
//! `ps`/`list`, `bt`, `mod` and `log` against kdrill's views; drgn's DWARF unwind of the
//! crashed CPU against kdrill's return addresses.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use kdrill::crosscheck::crash;
use kdrill::host::process;
use kdrill_vmcore::Vmcore;

use crate::deep::Table;

pub(crate) fn crash_row(
    t: &mut Table,
    crash_bin: &Path,
    vmlinux: &Path,
    dump: &Path,
    name: &str,
    scratch: &Path,
    drgn_agrees: bool,
) -> anyhow::Result<()> {
    let name = name.to_string();
    let o =
        crash::run(crash_bin, vmlinux, dump, &scratch.join("cmds")).map_err(anyhow::Error::msg)?;
    let d = Vmcore::open(dump)?;
    if !o.errors.is_empty() {
        t.row(
            Some(false),
            "crash opens the dump",
            &name,
            o.errors.join("; "),
        );
        return Ok(());
    }
    // --tasks against crash: its `ps`, and its own walk of init_task.tasks with DWARF types
    // (on Debian's 6.1.170 crash 8.0.2's `ps` lists only the idle tasks).
    let ours: BTreeSet<(u32, String)> = d
        .tasks()?
        .tasks
        .into_iter()
        .map(|t| (t.pid, t.comm))
        .collect();
    let ps = crash::ps_tasks(&o.lines);
    let mut theirs = crash::listed_tasks(&o.lines);
    theirs.extend(ps.iter().cloned());
    let only_ours: Vec<_> = ours.difference(&theirs).collect();
    let only_theirs: Vec<_> = theirs.difference(&ours).collect();
    let same = only_ours.is_empty() && only_theirs.is_empty();
    t.row(
        Some(same),
        "ps + list = --tasks",
        &name,
        format!(
            "{}; crash's ps lists {} ({}), its list of init_task.tasks {} more",
            if same {
                format!("{} tasks, same pid/comm set", ours.len())
            } else {
                format!("only kdrill: {only_ours:?}; only crash: {only_theirs:?}")
            },
            ps.len(),
            o.warnings.first().map_or("no warning", String::as_str),
            theirs.len() - ps.len()
        ),
    );
    // --bt against crash's bt: kdrill's frames, in order, among crash's from kdrill's first on.
    let cpu = d.crashed_cpu()?.context("no crashed CPU")?;
    let ours: Vec<String> = d
        .backtrace(cpu)?
        .frames
        .iter()
        .filter_map(|f| f.location.as_ref().map(|l| l.symbol.clone()))
        .collect();
    let theirs = crash::bt_functions(&o.lines);
    let start = ours
        .first()
        .and_then(|f| theirs.iter().position(|c| c == f));
    let mut extra = Vec::new();
    let mut it = ours.iter().peekable();
    for c in theirs.iter().skip(start.unwrap_or(theirs.len())) {
        match it.peek() {
            Some(o) if *o == c => {
                it.next();
            }
            _ => extra.push(c.as_str()),
        }
    }
    let agree = start.is_some() && it.peek().is_none();
    if !agree && drgn_agrees {
        // The frames of kdrill's that crash's bt has nowhere (the rest differ in order or
        // in how crash names an exception frame).
        let tail = &theirs[start.unwrap_or(0).min(theirs.len())..];
        let lacks: Vec<&str> = ours
            .iter()
            .filter(|o| !tail.contains(o))
            .map(String::as_str)
            .collect();
        t.note(
            "crash differs",
            "bt = --bt",
            &name,
            format!(
                "crash's bt lacks {} of kdrill's frames ({}), the others are in it (crash names exception frames its own way); drgn with DWARF unwinds to kdrill's return addresses exactly. kdrill: {}; crash: {}",
                lacks.len(),
                lacks.join(", "),
                ours.join(" < "),
                theirs.join(" < ")
            ),
        );
    } else {
        t.row(
        Some(agree),
        "bt = --bt",
        &name,
        if agree {
            format!(
                "kdrill's {} frames all in crash's bt, in order; crash also shows the crash path above them ({}) and {} stack-scan leftovers between them{}",
                ours.len(),
                theirs[..start.unwrap_or(0)].join(" < "),
                extra.len(),
                if extra.is_empty() { String::new() } else { format!(" ({})", extra.join(", ")) }
            )
        } else {
            format!("kdrill: {}; crash: {}", ours.join(" < "), theirs.join(" < "))
        },
    );
    }
    let ours: BTreeSet<String> = d.modules()?.modules.into_iter().map(|m| m.name).collect();
    let theirs = crash::module_names(&o.lines);
    t.row(
        Some(ours == theirs),
        "mod = --modules",
        &name,
        format!("{} modules", ours.len()),
    );
    let log = kdrill_vmcore::format_dmesg(&d.dmesg_records()?);
    let ours: BTreeSet<&str> = log.lines().collect();
    let crash_log = crash::log_lines(&o.lines);
    let missing = crash_log
        .iter()
        .filter(|l| !ours.contains(l.as_str()))
        .count();
    t.row(
        Some(missing == 0),
        "log in --dmesg",
        &name,
        format!(
            "every one of crash's {} log lines is a line of kdrill's --dmesg ({} lines; it also prints continuation lines apart)",
            crash_log.len(),
            log.lines().count()
        ),
    );
    Ok(())
}

/// The crashed CPU's registers as `pt_regs` fields (`ip=…,sp=…`), for drgn_same.py: when
/// drgn cannot find the crashed thread itself (its task_struct is not in the dump), it
/// unwinds from them.
pub(crate) fn drgn_regs(dump: &Path) -> anyhow::Result<String> {
    let d = Vmcore::open(dump)?;
    let cpu = d.crashed_cpu()?.context("no crashed CPU")?;
    let regs = d
        .cpu_registers()?
        .into_iter()
        .find(|c| c.cpu == cpu)
        .context("no registers of the crashed CPU")?;
    const PT_REGS: [&str; 21] = [
        "r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8", "ax", "cx", "dx", "si",
        "di", "orig_ax", "ip", "cs", "flags", "sp", "ss",
    ];
    let arg: Vec<String> = PT_REGS
        .iter()
        .zip(regs.registers.values())
        .map(|(n, v)| format!("{n}={v:x}"))
        .collect();
    Ok(arg.join(","))
}

pub(crate) fn drgn_row(
    t: &mut Table,
    python: &Path,
    script: &Path,
    dbg: &Path,
    dump: &Path,
    name: &str,
) -> anyhow::Result<bool> {
    let d = Vmcore::open(dump)?;
    let cpu = d.crashed_cpu()?.context("no crashed CPU")?;
    let regs = drgn_regs(dump)?;
    let out = process::run(
        Command::new(python)
            .arg(script)
            .arg(dump)
            .arg(dbg)
            .arg(&regs),
        Duration::from_secs(300),
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(pcs) = text.lines().find_map(|l| l.strip_prefix("pcs: ")) else {
        t.row(Some(false), "drgn unwinds", name, out.last_line());
        return Ok(false);
    };
    // Kernel frames only: drgn goes on into the user registers the entry saved.
    let theirs: Vec<u64> = pcs
        .split_whitespace()
        .filter_map(|p| u64::from_str_radix(p.trim_start_matches("0x"), 16).ok())
        .filter(|&p| p >= 0xffff_8000_0000_0000)
        .collect();
    let from_regs = text.lines().any(|l| l.starts_with("from: registers"));
    let how = if from_regs {
        "drgn: DWARF CFI from the CPU's saved registers (its crashed_thread() needs the task_struct the dump lacks)"
    } else {
        "drgn: DWARF CFI"
    };
    let ours: Vec<u64> = d.backtrace(cpu)?.frames.iter().map(|f| f.ip).collect();
    let hex = |v: &[u64]| {
        v.iter()
            .map(|p| format!("{p:x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    if ours == theirs {
        t.row(
            Some(true),
            "drgn bt = --bt",
            name,
            format!(
                "the same {} return addresses ({how}; kdrill: ORC)",
                ours.len()
            ),
        );
    } else if !theirs.is_empty() && ours.starts_with(&theirs) {
        // drgn stops where it has no unwind data (a module without debuginfo).
        t.row(
            Some(true),
            "drgn bt = --bt",
            name,
            format!(
                "drgn's {} return addresses are kdrill's first {}; drgn stops there (no unwind data for the module frame), kdrill goes on: {}",
                theirs.len(),
                theirs.len(),
                hex(&ours[theirs.len()..])
            ),
        );
    } else {
        t.row(
            Some(false),
            "drgn bt = --bt",
            name,
            format!("kdrill {}; drgn {}", hex(&ours), hex(&theirs)),
        );
        return Ok(false);
    }
    Ok(true)
}
