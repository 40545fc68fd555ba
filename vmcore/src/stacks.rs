//! Backtraces over the dump, as methods of [`Vmcore`]: a CPU's from its saved registers, a
//! task's from its CPU or its `inactive_task_frame`; the unwinder that gives `backtrace.rs`
//! the vmlinux's and modules' ORC tables and both symbol tables.

use serde::Serialize;

use crate::backtrace::{self, End, Frame, Unwinder};
use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::memory::KernelMemory;
use crate::modules::ModuleList;
use crate::orc;
use crate::symbols::{Location, SymbolTable};
use crate::Vmcore;

/// One CPU's (or task's) backtrace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Backtrace {
    /// The CPU it ran on, for a running task.
    pub cpu: Option<u32>,
    /// This is the CPU that crashed (`panic_cpu`).
    pub crashed: bool,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    /// The `task_struct`, when known.
    #[serde(serialize_with = "crate::hex::opt_addr")]
    pub task: Option<u64>,
    pub frames: Vec<Frame>,
    pub end: End,
}

impl Backtrace {
    /// Whether a page the dump lacks cut the walk short.
    pub fn partial(&self) -> Option<&str> {
        match &self.end {
            End::Missing { reason } => Some(reason),
            _ => None,
        }
    }
}

/// Unwinding over the dump: vmlinux ORC, modules' ORC, and both symbol tables.
struct DumpUnwinder<'a> {
    mem: &'a mut dyn KernelMemory,
    syms: &'a SymbolTable,
    modules: Option<&'a ModuleList>,
    vmlinux: Option<orc::Table>,
    text: (u64, u64),
}

impl Unwinder for DumpUnwinder<'_> {
    fn mem(&mut self) -> &mut dyn KernelMemory {
        self.mem
    }
    fn orc(&mut self, ip: u64) -> Result<Option<orc::Entry>> {
        if ip >= self.text.0 && ip < self.text.1 {
            if let Some(t) = self.vmlinux {
                return t.find(self.mem, ip);
            }
        }
        match self
            .modules
            .and_then(|m| m.containing(ip))
            .and_then(|m| m.orc)
        {
            Some(t) => t.find(self.mem, ip),
            None => Ok(None),
        }
    }
    fn locate(&self, ip: u64) -> Option<Location> {
        self.syms
            .lookup(ip)
            .or_else(|| self.modules.and_then(|m| m.lookup(ip)))
    }
}

impl Vmcore {
    /// The backtrace of `cpu`, from its saved registers.
    pub fn backtrace(&self, cpu: u32) -> Result<Backtrace> {
        let all = self.cpu_registers()?;
        let c = all
            .iter()
            .find(|c| c.cpu == cpu)
            .ok_or_else(|| Error::Corrupt(format!("the dump saved no registers for CPU {cpu}")))?;
        let crashed = self.crashed_cpu().ok().flatten() == Some(cpu);
        let (task, comm, task_pid) = self
            .with_kernel(|k| {
                let t = k.current_task(cpu)?;
                let btf = k.btf()?;
                let (comm_at, pid_at) = (
                    btf.offset("task_struct", "comm")?,
                    btf.offset("task_struct", "pid")?,
                );
                let comm = k.string(t.wrapping_add(comm_at), 16)?;
                Ok((t, comm, k.u32(t.wrapping_add(pid_at)).ok()))
            })
            .map_or((None, None, None), |(t, c, p)| (Some(t), Some(c), p));
        // The task's own pid; else the note's `pr_pid`, which a kdump copies from
        // `current->pid` but QEMU fills with its vCPU index + 1 (swapper/0 would read "pid 1").
        let qemu = self.prstatus_notes().1;
        let pid = task_pid.or((!qemu).then_some(c.pid));
        let walk = self.unwind(|u| backtrace::from_registers(u, &c.registers))?;
        Ok(Backtrace {
            cpu: Some(cpu),
            crashed,
            pid,
            comm,
            task,
            frames: walk.frames,
            end: walk.end,
        })
    }

    /// Runs `f` with an unwinder over this dump (ORC of the vmlinux and of its modules).
    fn unwind(
        &self,
        f: impl FnOnce(&mut dyn Unwinder) -> backtrace::Walk,
    ) -> Result<backtrace::Walk> {
        let modules = self.module_list().ok();
        self.with_kernel(|k| {
            let version = self.orc_version(k)?;
            let vmlinux = vmlinux_orc(k, version)?;
            let (stext, etext) = (k.syms.need("_stext")?, k.syms.need("_etext")?);
            // Init text is outside [_stext, _etext) but in the vmlinux ORC table.
            let text = (
                stext.min(k.syms.address_of("_sinittext").unwrap_or(stext)),
                etext.max(k.syms.address_of("_einittext").unwrap_or(etext)),
            );
            let mut u = DumpUnwinder {
                mem: &mut *k.mem,
                syms: k.syms,
                modules,
                vmlinux,
                text,
            };
            Ok(f(&mut u))
        })
    }

    /// The backtrace of the task with `pid` (the first with it: an idle task's pid is 0 on
    /// every CPU). A running task is unwound from its CPU's registers, a sleeping one from
    /// the `inactive_task_frame` its last context switch left at `thread.sp`.
    pub fn task_backtrace(&self, pid: u32) -> Result<Backtrace> {
        let list = self.tasks()?;
        let t =
            list.tasks.iter().find(|t| t.pid == pid).ok_or_else(|| {
                Error::Corrupt(format!("no task with pid {pid} in the task list"))
            })?;
        if let Some(cpu) = t.cpu {
            return self.backtrace(cpu);
        }
        let (sp, size, bp, ret, fork) = self.with_kernel(|k| {
            let btf = k.btf()?;
            let sp_off = btf.offset("task_struct", "thread.sp")?;
            let frame = btf.struct_id("inactive_task_frame")?;
            let size = btf.size_of(frame)?;
            let bp = btf.member(frame, "bp")?.offset;
            let ret = btf.member(frame, "ret_addr")?.offset;
            let fork = k
                .syms
                .address_of("ret_from_fork_asm")
                .or_else(|| k.syms.address_of("ret_from_fork"));
            Ok((k.u64(t.address.wrapping_add(sp_off))?, size, bp, ret, fork))
        })?;
        let walk = self.unwind(|u| backtrace::from_switch_frame(u, sp, size, bp, ret, fork))?;
        Ok(Backtrace {
            cpu: None,
            crashed: false,
            pid: Some(t.pid),
            comm: Some(t.comm.clone()),
            task: Some(t.address),
            frames: walk.frames,
            end: walk.end,
        })
    }
}

/// The vmlinux ORC table, from `__start_orc_unwind_ip`/`__stop_orc_unwind_ip`/`__start_orc_unwind`.
fn vmlinux_orc(k: &mut Kernel<'_>, version: orc::Version) -> Result<Option<orc::Table>> {
    let (Some(ip), Some(stop), Some(entries)) = (
        k.syms.address_of("__start_orc_unwind_ip"),
        k.syms.address_of("__stop_orc_unwind_ip"),
        k.syms.address_of("__start_orc_unwind"),
    ) else {
        return Ok(None);
    };
    let count = stop.checked_sub(ip).ok_or_else(|| {
        Error::Corrupt("__stop_orc_unwind_ip is before __start_orc_unwind_ip".into())
    })? / 4;
    Ok(Some(orc::Table::new(ip, entries, count, version)?))
}
