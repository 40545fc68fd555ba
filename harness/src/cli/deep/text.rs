//! The deep views as text: backtrace headers and frames, the task and module tables, each
//! CPU's registers (`kdrill inspect --bt/--tasks/--modules/--regs` without `--format json`).

use std::fmt::Write as _;

use kdrill_vmcore::{Backtrace, CpuRegisters, End, ModuleReport, TaskList, REG_NAMES};

use super::Deep;

impl Deep {
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
        End::Unsupported { reason } => {
            writeln!(out, "  -- partial: cannot unwind past this frame: {reason}")
        }
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
        // QEMU's pr_pid is its vCPU index + 1, no pid: --bt and --tasks give the task's.
        let pid = match c.cpu_from {
            kdrill_vmcore::CpuSource::QemuOrder => String::new(),
            _ => format!(", pid {}", c.pid),
        };
        let _ = writeln!(out, "  CPU {} (note {}{pid}, CPU by {from})", c.cpu, c.note);
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
