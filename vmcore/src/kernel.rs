//! The crashed kernel as the deep readers see it: its memory, symbols and types, and the
//! per-CPU data they share (`__per_cpu_offset`, each CPU's current task, the panic CPU).
//!
//! Per-CPU variables are found as the kernel's `per_cpu_ptr()` finds them: the symbol's
//! address plus `__per_cpu_offset[cpu]` (on x86_64 until 6.15 per-CPU symbols are small
//! offsets, `CONFIG_KALLSYMS_ABSOLUTE_PERCPU`; the sum is the same either way).

use crate::btf::Btf;
use crate::budget::Budget;
use crate::error::{Error, Result};
use crate::memory::KernelMemory;
use crate::symbols::SymbolTable;

/// At most this many CPUs are read (the kernel's `NR_CPUS` limit on x86_64).
pub(crate) const MAX_CPUS: u32 = 8192;

/// Everything a deep reader needs, borrowed for one call.
pub(crate) struct Kernel<'a> {
    pub(crate) mem: &'a mut dyn KernelMemory,
    pub(crate) syms: &'a SymbolTable,
    pub(crate) btf: Option<&'a Btf>,
    pub(crate) budget: &'a Budget,
}

impl Kernel<'_> {
    pub(crate) fn btf(&self) -> Result<&Btf> {
        self.btf.ok_or_else(|| {
            Error::Btf("the kernel's BTF could not be read (see the error before)".into())
        })
    }

    pub(crate) fn u64(&mut self, addr: u64) -> Result<u64> {
        self.mem.read_u64(addr)
    }

    pub(crate) fn u32(&mut self, addr: u64) -> Result<u32> {
        self.mem.read_u32(addr)
    }

    /// `nr_cpu_ids`, bounded by [`MAX_CPUS`].
    pub(crate) fn nr_cpu_ids(&mut self) -> Result<u32> {
        let n = self.u32(self.syms.need("nr_cpu_ids")?)?;
        if n == 0 || n > MAX_CPUS {
            return Err(Error::Corrupt(format!(
                "nr_cpu_ids is {n}, a kernel has 1 to {MAX_CPUS}"
            )));
        }
        Ok(n)
    }

    /// `__per_cpu_offset[cpu]`.
    pub(crate) fn per_cpu_offset(&mut self, cpu: u32) -> Result<u64> {
        let base = self.syms.need("__per_cpu_offset")?;
        self.u64(base.wrapping_add(u64::from(cpu) * 8))
    }

    /// The address of per-CPU variable `name` on `cpu`.
    pub(crate) fn per_cpu(&mut self, name: &str, cpu: u32) -> Result<u64> {
        let sym = self.syms.need(name)?;
        Ok(sym.wrapping_add(self.per_cpu_offset(cpu)?))
    }

    /// The task running on `cpu`: `current_task` (before 6.2 and from 6.15), else
    /// `pcpu_hot.current_task`.
    pub(crate) fn current_task(&mut self, cpu: u32) -> Result<u64> {
        let at = if self.syms.address_of("current_task").is_some() {
            self.per_cpu("current_task", cpu)?
        } else {
            let off = self.btf()?.offset("pcpu_hot", "current_task")?;
            self.per_cpu("pcpu_hot", cpu)? + off
        };
        self.u64(at)
    }

    /// `panic_cpu`: the CPU that panicked or called `crash_kexec()`, if any did.
    pub(crate) fn panic_cpu(&mut self) -> Result<Option<u32>> {
        let v = self.u32(self.syms.need("panic_cpu")?)? as i32;
        Ok(u32::try_from(v).ok().filter(|&c| c < MAX_CPUS))
    }

    /// Reads a NUL-terminated string of at most `max` bytes.
    pub(crate) fn string(&mut self, addr: u64, max: usize) -> Result<String> {
        let mut buf = vec![0u8; max];
        self.mem.read_virt(addr, &mut buf)?;
        let end = buf.iter().position(|&b| b == 0).unwrap_or(max);
        Ok(String::from_utf8_lossy(&buf[..end]).into_owned())
    }
}

/// Whether an error means a page the dump lacks (a partial answer) rather than a broken dump.
pub(crate) fn is_missing(e: &Error) -> bool {
    matches!(
        e,
        Error::PageExcluded { .. }
            | Error::PageIncomplete { .. }
            | Error::NotInDump { .. }
            | Error::NotMapped { .. }
    )
}
