//! `kdrill inspect --bt/--tasks/--modules/--regs`: the deep views of a dump, as text or as
//! JSON values. All reading is `kdrill-vmcore`'s; this only chooses and lays out.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use kdrill_vmcore::{Backtrace, CpuRegisters, End, ModuleReport, TaskList, Vmcore, REG_NAMES};

/// Which backtraces `--bt` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BtWhich {
    /// The crashed CPU's (every CPU's when no CPU crashed, as in a live QEMU dump).
    Crashed,
    All,
    Cpu(u32),
}

pub fn parse_bt(s: &str) -> Result<BtWhich, String> {
    match s {
        "crashed" => Ok(BtWhich::Crashed),
        "all" => Ok(BtWhich::All),
        n => n
            .parse()
            .map(BtWhich::Cpu)
            .map_err(|_| format!("`{n}`: give `all`, `crashed` or a CPU number")),
    }
}

/// The deep views asked for, with the files that supply symbols for old kernels.
#[derive(clap::Args, Debug, Default)]
pub struct DeepArgs {
    /// Print the crashed CPU's backtrace (`--bt all`: every CPU's; `--bt N`: CPU N's).
    /// Put the dump before it: `kdrill inspect DUMP --bt all`
    #[arg(long, num_args = 0..=1, default_missing_value = "crashed", value_parser = parse_bt, value_name = "all|N")]
    pub bt: Option<BtWhich>,
    /// Print the task list: pid, ppid, CPU if running, state, comm
    #[arg(long)]
    pub tasks: bool,
    /// Print the loaded modules: name, base, size
    #[arg(long)]
    pub modules: bool,
    /// Print each CPU's registers from its NT_PRSTATUS note
    #[arg(long)]
    pub regs: bool,
    /// Symbols for kernels before 6.0 (no kallsyms in VMCOREINFO): the kernel's System.map
    #[arg(long, value_name = "FILE")]
    pub system_map: Option<PathBuf>,
    /// Symbols for kernels before 6.0: the kernel's vmlinux (its ELF symbol table is read)
    #[arg(long, value_name = "FILE")]
    pub vmlinux: Option<PathBuf>,
}

impl DeepArgs {
    pub fn any(&self) -> bool {
        self.bt.is_some() || self.tasks || self.modules || self.regs
    }
}

/// What the deep views read; each part is a value or the error that stopped it (in JSON:
/// the value, or `{"error": "…"}`).
#[derive(serde::Serialize, Default)]
pub struct Deep {
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "part")]
    pub backtraces: Option<Result<Vec<Backtrace>, String>>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "part")]
    pub tasks: Option<Result<TaskList, String>>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "part")]
    pub modules: Option<Result<ModuleReport, String>>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "part")]
    pub registers: Option<Result<Vec<CpuRegisters>, String>>,
}

fn part<T: serde::Serialize, S: serde::Serializer>(
    v: &Option<Result<T, String>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    #[derive(serde::Serialize)]
    struct Failed<'a> {
        error: &'a str,
    }
    match v {
        Some(Ok(t)) => t.serialize(s),
        Some(Err(e)) => serde::Serialize::serialize(&Failed { error: e }, s),
        None => s.serialize_none(),
    }
}

fn chain(e: &kdrill_vmcore::Error) -> String {
    super::inspect::message_chain(e)
}

/// Supplies the symbol files, if any.
pub fn load_symbols(dump: &mut Vmcore, args: &DeepArgs) -> anyhow::Result<()> {
    if let Some(map) = &args.system_map {
        let text = std::fs::read(map).with_context(|| format!("cannot read {}", map.display()))?;
        dump.use_system_map(&text)
            .with_context(|| format!("cannot use {} for this dump", map.display()))?;
    }
    if let Some(vmlinux) = &args.vmlinux {
        let file = std::fs::File::open(vmlinux)
            .with_context(|| format!("cannot open {}", vmlinux.display()))?;
        dump.use_vmlinux(file)
            .with_context(|| format!("cannot use {} for this dump", vmlinux.display()))?;
    }
    Ok(())
}

/// Reads what `args` ask for.
pub fn read(dump: &Vmcore, args: &DeepArgs) -> Deep {
    let mut deep = Deep::default();
    if let Some(which) = args.bt {
        deep.backtraces = Some(backtraces(dump, which).map_err(|e| chain(&e)));
    }
    if args.tasks {
        deep.tasks = Some(dump.tasks().map_err(|e| chain(&e)));
    }
    if args.modules {
        deep.modules = Some(dump.modules().map_err(|e| chain(&e)));
    }
    if args.regs {
        deep.registers = Some(dump.cpu_registers().map_err(|e| chain(&e)));
    }
    deep
}

fn backtraces(dump: &Vmcore, which: BtWhich) -> kdrill_vmcore::Result<Vec<Backtrace>> {
    let cpus: Vec<u32> = dump.cpu_registers()?.iter().map(|c| c.cpu).collect();
    let chosen = match which {
        BtWhich::Cpu(n) => vec![n],
        BtWhich::All => cpus,
        BtWhich::Crashed => match dump.crashed_cpu()? {
            Some(c) => vec![c],
            None => cpus,
        },
    };
    chosen.into_iter().map(|c| dump.backtrace(c)).collect()
}

impl Deep {
    /// Whether everything asked for was read whole.
    pub fn complete(&self) -> bool {
        let bt = match &self.backtraces {
            Some(Ok(b)) => b.iter().all(|b| b.partial().is_none()),
            Some(Err(_)) => false,
            None => true,
        };
        let tasks = !matches!(
            &self.tasks,
            Some(Err(_))
                | Some(Ok(TaskList {
                    partial: Some(_),
                    ..
                }))
        );
        let modules = !matches!(
            &self.modules,
            Some(Err(_))
                | Some(Ok(ModuleReport {
                    partial: Some(_),
                    ..
                }))
        );
        bt && tasks && modules && !matches!(self.registers, Some(Err(_)))
    }

    /// The views as text.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let section = |out: &mut String, title: &str| {
            if !out.is_empty() {
                out.push('\n');
            }
            let _ = writeln!(out, "{title}");
        };
        if let Some(bt) = &self.backtraces {
            match bt {
                Ok(list) => {
                    for b in list {
                        section(&mut out, &bt_title(b));
                        out.push_str(&bt_text(b));
                    }
                }
                Err(e) => {
                    section(&mut out, "backtrace:");
                    let _ = writeln!(out, "  unreadable: {e}");
                }
            }
        }
        if let Some(tasks) = &self.tasks {
            section(&mut out, "tasks:");
            match tasks {
                Ok(t) => out.push_str(&tasks_text(t)),
                Err(e) => {
                    let _ = writeln!(out, "  unreadable: {e}");
                }
            }
        }
        if let Some(m) = &self.modules {
            section(&mut out, "modules:");
            match m {
                Ok(m) => out.push_str(&modules_text(m)),
                Err(e) => {
                    let _ = writeln!(out, "  unreadable: {e}");
                }
            }
        }
        if let Some(r) = &self.registers {
            section(&mut out, "registers:");
            match r {
                Ok(r) => out.push_str(&regs_text(r)),
                Err(e) => {
                    let _ = writeln!(out, "  unreadable: {e}");
                }
            }
        }
        out
    }
}

fn bt_title(b: &Backtrace) -> String {
    let mut t = String::from("backtrace:");
    if let Some(c) = b.cpu {
        let _ = write!(t, " CPU {c}");
    }
    if b.crashed {
        t.push_str(" (crashed)");
    }
    if let Some(p) = b.pid {
        let _ = write!(t, "  pid {p}");
    }
    if let Some(c) = &b.comm {
        let _ = write!(t, "  comm {c}");
    }
    if let Some(a) = b.task {
        let _ = write!(t, "  task {a:#x}");
    }
    t
}

fn bt_text(b: &Backtrace) -> String {
    let mut out = String::new();
    for (i, f) in b.frames.iter().enumerate() {
        let mut notes = Vec::new();
        if f.interrupted {
            notes.push("registers");
        }
        if f.guessed {
            notes.push("guessed");
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!("  ({})", notes.join(", "))
        };
        let _ = writeln!(
            out,
            " #{i:<2} {:<48} ip {:016x}  sp {:016x}{notes}",
            f.describe(),
            f.ip,
            f.sp
        );
    }
    let _ = match &b.end {
        End::EndOfStack => writeln!(out, "  -- end of the kernel stack"),
        End::UserMode { ip, sp } => {
            writeln!(out, "  -- entered from user mode: ip {ip:#x} sp {sp:#x}")
        }
        End::Missing { reason } => writeln!(out, "  -- partial: {reason}"),
        End::Stopped { reason } => writeln!(out, "  -- stopped: {reason}"),
    };
    out
}

fn tasks_text(t: &TaskList) -> String {
    let mut out = format!("  {:>7} {:>7} {:>4}  ST  COMM\n", "PID", "PPID", "CPU");
    for task in &t.tasks {
        let cpu = task.cpu.map_or("-".to_string(), |c| c.to_string());
        let comm = if task.kernel_thread {
            format!("[{}]", task.comm)
        } else {
            task.comm.clone()
        };
        let _ = writeln!(
            out,
            "  {:>7} {:>7} {cpu:>4}  {}   {comm}",
            task.pid, task.ppid, task.state
        );
    }
    if let Some(p) = &t.partial {
        let _ = writeln!(out, "  -- partial: {p}");
    }
    out
}

fn modules_text(m: &ModuleReport) -> String {
    let mut out = format!("  {:<24} {:<18} {:>9}\n", "NAME", "BASE", "SIZE");
    for module in &m.modules {
        let _ = writeln!(
            out,
            "  {:<24} {:#018x} {:>9}",
            module.name, module.base, module.size
        );
    }
    if let Some(p) = &m.partial {
        let _ = writeln!(out, "  -- partial: {p}");
    }
    out
}

fn regs_text(regs: &[CpuRegisters]) -> String {
    let mut out = String::new();
    for c in regs {
        let from = match c.cpu_from {
            kdrill_vmcore::CpuSource::CrashNotes => "crash_notes",
            kdrill_vmcore::CpuSource::QemuOrder => "QEMU's vCPU order",
            kdrill_vmcore::CpuSource::NoteOrder => "note order",
        };
        let _ = writeln!(
            out,
            "  CPU {} (note {}, pid {}, CPU by {from})",
            c.cpu, c.note, c.pid
        );
        let values = c.registers.values();
        for row in REG_NAMES.iter().zip(values).collect::<Vec<_>>().chunks(3) {
            let line: Vec<String> = row
                .iter()
                .map(|(n, v)| format!("{n:>8}: {v:016x}"))
                .collect();
            let _ = writeln!(out, "  {}", line.join("  "));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bt_values() {
        assert_eq!(parse_bt("all"), Ok(BtWhich::All));
        assert_eq!(parse_bt("3"), Ok(BtWhich::Cpu(3)));
        assert!(parse_bt("vmcore").unwrap_err().contains("give `all`"));
    }
}
