//! Backtraces over the dump, as methods of [`Vmcore`]: a CPU's from its saved registers, a
//! task's from its CPU or its `inactive_task_frame`; the unwinder that gives `backtrace.rs`
//! the vmlinux's and modules' ORC tables and both symbol tables. An ORC format kdrill does not
//! know ends a walk after its first frame ([`End::Unsupported`]), naming the format; it does not
//! stop the views that need no unwinding.

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
    /// Why the walk was cut short: a page the dump lacks, or unwind data kdrill cannot read.
    pub fn partial(&self) -> Option<&str> {
        match &self.end {
            End::Missing { reason } | End::Unsupported { reason } => Some(reason),
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
    /// The ORC version, or why it is not known (`Error::Unsupported`'s text).
    version: std::result::Result<orc::Version, String>,
    text: (u64, u64),
}

/// The entry of `table` for `ip`, when the format is known.
fn entry(
    mem: &mut dyn KernelMemory,
    table: Option<orc::Table>,
    version: &std::result::Result<orc::Version, String>,
    ip: u64,
) -> Result<Option<orc::Entry>> {
    match (table, version) {
        (None, _) => Ok(None),
        (Some(t), Ok(v)) => t.find(mem, ip, *v),
        (Some(_), Err(why)) => Err(Error::Unsupported(why.clone())),
    }
}

impl Unwinder for DumpUnwinder<'_> {
    fn mem(&mut self) -> &mut dyn KernelMemory {
        self.mem
    }
    fn orc(&mut self, ip: u64) -> Result<Option<orc::Entry>> {
        let table = if ip >= self.text.0 && ip < self.text.1 && self.vmlinux.is_some() {
            self.vmlinux
        } else {
            self.modules
                .and_then(|m| m.containing(ip))
                .and_then(|m| m.orc)
        };
        entry(self.mem, table, &self.version, ip)
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
            let version = match self.orc_version(k) {
                Ok(v) => Ok(v),
                Err(Error::Unsupported(why)) => Err(why),
                Err(e) => return Err(e),
            };
            let vmlinux = vmlinux_orc(k)?;
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
                version,
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
fn vmlinux_orc(k: &mut Kernel<'_>) -> Result<Option<orc::Table>> {
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
    Ok(Some(orc::Table::new(ip, entries, count)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MapMemory;
    use crate::regs::Registers;

    const F: u64 = 0xffff_ffff_8100_1000;
    const G: u64 = 0xffff_ffff_8100_2000;
    const IPS: u64 = 0xffff_ffff_8200_0000;
    const ENTRIES: u64 = 0xffff_ffff_8200_1000;
    const STACK: u64 = 0xffff_c900_0000_0000;

    /// Functions `f` at F and `g` at G, an ORC table in the 7.1 format for them (f: CALL, the
    /// caller's stack pointer is AX, as in a DRAP sequence: the kernel adds no offset to a
    /// register taken from pt_regs; g: the end of the stack), and a stack page holding f's
    /// return address into g just below AX. The table is read as `version` says.
    struct Fake {
        mem: MapMemory,
        version: std::result::Result<orc::Version, String>,
    }

    impl Unwinder for Fake {
        fn mem(&mut self) -> &mut dyn KernelMemory {
            &mut self.mem
        }
        fn orc(&mut self, ip: u64) -> Result<Option<orc::Entry>> {
            let table = orc::Table::new(IPS, ENTRIES, 2)?;
            entry(&mut self.mem, Some(table), &self.version, ip)
        }
        fn locate(&self, ip: u64) -> Option<Location> {
            let (symbol, base) = match ip & !0xfff {
                F => ("f", F),
                G => ("g", G),
                _ => return None,
            };
            Some(Location {
                symbol: symbol.into(),
                offset: ip - base,
                size: 0x100,
                module: None,
            })
        }
    }

    fn fake(version: std::result::Result<orc::Version, String>) -> Fake {
        let mut ips = Vec::new();
        for (i, a) in [F, G].into_iter().enumerate() {
            ips.extend_from_slice(&((a.wrapping_sub(IPS + 4 * i as u64)) as i32).to_le_bytes());
        }
        let entries = [0u8, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x00, 0x01].to_vec();
        let mut stack = vec![0u8; 4096];
        stack[0xf8..0x100].copy_from_slice(&(G + 0x20).to_le_bytes());
        // A sleeping task's inactive_task_frame: bp, then its return address into f.
        stack[0x200..0x208].copy_from_slice(&(F + 0x10).to_le_bytes());
        Fake {
            mem: MapMemory(vec![(IPS, ips), (ENTRIES, entries), (STACK, stack)]),
            version,
        }
    }

    fn regs() -> Registers {
        let mut r = Registers::from_values([0; 27]);
        (r.rip, r.rsp, r.rax, r.cs) = (F + 0x10, STACK + 0x40, STACK + 0x100, 0x10);
        r
    }

    #[test]
    fn ax_is_a_base_register_from_7_1() {
        let walk = backtrace::from_registers(&mut fake(Ok(orc::Version::V4)), &regs());
        let frames: Vec<(String, u64)> = walk.frames.iter().map(|f| (f.describe(), f.sp)).collect();
        assert_eq!(
            frames,
            [
                ("f+0x10/0x100".to_string(), STACK + 0x40),
                ("g+0x20/0x100".to_string(), STACK + 0x100)
            ]
        );
        assert_eq!(walk.end, End::EndOfStack);
        // Read as 6.4's format, raw 1 is PREV_SP, no base register: the walk stops.
        let old = backtrace::from_registers(&mut fake(Ok(orc::Version::V3)), &regs());
        assert_eq!(old.frames.len(), 1);
        // A sleeping task has no pt_regs to take AX from: the walk says so.
        let walk = backtrace::from_switch_frame(
            &mut fake(Ok(orc::Version::V4)),
            STACK + 0x1f8,
            16,
            0,
            8,
            None,
        );
        let End::Stopped { reason } = &walk.end else {
            panic!("{:?}", walk.end)
        };
        assert!(reason.contains("ORC needs register AX"), "{reason}");
    }

    #[test]
    fn an_unknown_format_ends_the_walk_after_the_first_frame() {
        let why = "ORC format with header hash abab (kdrill knows …)".to_string();
        let walk = backtrace::from_registers(&mut fake(Err(why.clone())), &regs());
        assert_eq!(walk.frames.len(), 1);
        assert_eq!(walk.end, End::Unsupported { reason: why });
    }
}
