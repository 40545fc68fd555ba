//! Deep reading of a dump, as methods of [`Vmcore`]: symbols, types, CPUs and their
//! registers, the crashed CPU, tasks and modules (backtraces: `stacks.rs`). Symbols, BTF and the module
//! list are read once, on first use, and kept.
//!
//! Each CPU's note is matched to its CPU number through the per-CPU `crash_notes` buffers
//! (the notes of a kdump are copies of them, in the order the capture kernel found them);
//! a QEMU `dump-guest-memory` dump has one note per vCPU in CPU order. The crashed CPU is
//! `panic_cpu`, which `panic()` and `crash_kexec()` set before anything is saved.

use std::sync::{Mutex, OnceLock};

use serde::Serialize;

use crate::btf::Btf;
use crate::budget::Budget;
use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::memory::KernelMemory;
use crate::modules::{self, Module, ModuleList};
use crate::orc;
use crate::regs::{self, CpuRegisters, CpuSource, PRSTATUS_SIZE};
use crate::symbols::{self, Location, SymbolTable};
use crate::tasks::{self, TaskList};
use crate::{ReadAt, Vmcore};

/// What deep reading keeps once read.
#[derive(Default)]
pub(crate) struct Cache {
    symbols: OnceLock<SymbolTable>,
    btf: OnceLock<Btf>,
    modules: OnceLock<ModuleList>,
    /// Why symbols, BTF or the module list could not be read, so that a failure is not
    /// read again (and charged again) by every later call.
    failed: Mutex<[Option<String>; 3]>,
    /// What deep reading has charged so far: all of it shares what opening left of
    /// [`crate::MEMORY_BUDGET`].
    spent: Mutex<u64>,
}

/// The loaded modules, and why the list is partial if a page was missing.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleReport {
    pub modules: Vec<Module>,
    pub partial: Option<String>,
}

/// The kernel's memory, reading large tables (kallsyms, BTF) with two threads: whole-process
/// time is mostly decompressing their pages.
struct TwoThreads<'a> {
    view: crate::memory::KernelView<crate::phys::Phys<'a>>,
    dump: &'a Vmcore,
}

impl KernelMemory for TwoThreads<'_> {
    fn read_virt(&mut self, vaddr: u64, buf: &mut [u8]) -> Result<()> {
        self.view.read_virt(vaddr, buf)
    }

    fn read_bulk(
        &mut self,
        vaddr: u64,
        len: u64,
        what: &'static str,
        cap: u64,
        budget: &Budget,
    ) -> Result<Vec<u8>> {
        if len < crate::memory::BULK || len > cap {
            return self.read_vec(vaddr, len, what, cap, budget);
        }
        vaddr
            .checked_add(len)
            .ok_or_else(|| Error::Corrupt(format!("{what} wraps the address space")))?;
        budget.take(what, len)?;
        let half = (len / 2) & !0xfff;
        let mut out = vec![0u8; len as usize];
        let (first, second) = out.split_at_mut(half as usize);
        let dump = self.dump;
        let view = &mut self.view;
        std::thread::scope(|s| {
            let other = s.spawn(move || dump.kernel_memory()?.read_virt(vaddr + half, second));
            let mine = view.read_virt(vaddr, first);
            let theirs = other.join().unwrap_or_else(|_| {
                Err(Error::Corrupt(format!(
                    "the thread reading {what} panicked"
                )))
            });
            mine.and(theirs)
        })?;
        Ok(out)
    }
}

impl Vmcore {
    fn two_threads(&self) -> Result<TwoThreads<'_>> {
        Ok(TwoThreads {
            view: self.kernel_memory()?,
            dump: self,
        })
    }

    /// Runs `f` with what is left of the deep budget, and charges what it took.
    fn budgeted<T>(&self, f: impl FnOnce(&Budget) -> Result<T>) -> Result<T> {
        let spent = *self.deep.spent.lock().unwrap_or_else(|e| e.into_inner());
        let budget = Budget::new(self.budget_left.saturating_sub(spent));
        let before = budget.left();
        let out = f(&budget);
        let mut s = self.deep.spent.lock().unwrap_or_else(|e| e.into_inner());
        *s = s.saturating_add(before - budget.left());
        out
    }

    pub(crate) fn release(&self) -> &str {
        self.info.kernel_release.as_deref().unwrap_or("")
    }

    /// The kernel's symbols: kallsyms from memory (Linux 6.0+), or what
    /// [`Vmcore::use_system_map`] / [`Vmcore::use_vmlinux`] supplied.
    pub fn symbols(&self) -> Result<&SymbolTable> {
        if let Some(s) = self.deep.symbols.get() {
            return Ok(s);
        }
        self.failed_before(0, Error::Symbols)?;
        self.remember(0, self.load_symbols())?;
        Ok(self.deep.symbols.get().expect("just set"))
    }

    /// Fails with what an earlier attempt of part `i` said, if one failed.
    fn failed_before(&self, i: usize, as_error: fn(String) -> Error) -> Result<()> {
        match &self.deep.failed.lock().unwrap_or_else(|e| e.into_inner())[i] {
            Some(why) => Err(as_error(why.clone())),
            None => Ok(()),
        }
    }

    /// Notes a failure of part `i`.
    fn remember<T>(&self, i: usize, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            self.deep.failed.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(e.to_string());
        }
        r
    }

    fn load_symbols(&self) -> Result<()> {
        let vi = self.vmcoreinfo.as_ref().ok_or(Error::NoVmcoreinfo)?;
        if !symbols::kallsyms::present(vi) {
            return Err(Error::NoKallsyms {
                release: format!("Linux {}", self.release()),
            });
        }
        let mut mem = self.two_threads()?;
        let table = self.budgeted(|b| symbols::kallsyms::load(&mut mem, vi, b))?;
        let _ = self.deep.symbols.set(table);
        Ok(())
    }

    /// Uses a `System.map` for this dump's kernel (checked against its `_stext`).
    pub fn use_system_map(&mut self, text: &[u8]) -> Result<()> {
        let vi = self.vmcoreinfo.as_ref().ok_or(Error::NoVmcoreinfo)?;
        let t = self.budgeted(|b| symbols::files::system_map(text, vi, b))?;
        self.replace_symbols(t);
        Ok(())
    }

    /// Uses a vmlinux's ELF symbol table for this dump's kernel (checked against its `_stext`).
    pub fn use_vmlinux(&mut self, file: impl ReadAt + Send + Sync + 'static) -> Result<()> {
        let vi = self.vmcoreinfo.as_ref().ok_or(Error::NoVmcoreinfo)?;
        let t = self.budgeted(|b| symbols::files::vmlinux(Box::new(file), vi, b))?;
        self.replace_symbols(t);
        Ok(())
    }

    /// Starts deep reading over with `t` (what was read with other symbols is dropped;
    /// what was charged stays charged).
    fn replace_symbols(&mut self, t: SymbolTable) {
        let spent = *self.deep.spent.lock().unwrap_or_else(|e| e.into_inner());
        self.deep = Cache::default();
        *self.deep.spent.lock().unwrap_or_else(|e| e.into_inner()) = spent;
        let _ = self.deep.symbols.set(t);
    }

    fn btf(&self) -> Result<&Btf> {
        if let Some(b) = self.deep.btf.get() {
            return Ok(b);
        }
        let syms = self.symbols()?;
        self.failed_before(1, Error::Btf)?;
        let btf = self.remember(
            1,
            (|| {
                let (start, stop) = (syms.need("__start_BTF")?, syms.need("__stop_BTF")?);
                let mut mem = self.kernel_memory()?;
                self.budgeted(|b| Btf::load(&mut mem, start, stop, b))
            })(),
        )?;
        Ok(self.deep.btf.get_or_init(|| btf))
    }

    /// Runs `f` over the kernel: memory, symbols, BTF (if readable) and a budget.
    pub(crate) fn with_kernel<T>(&self, f: impl FnOnce(&mut Kernel<'_>) -> Result<T>) -> Result<T> {
        let syms = self.symbols()?;
        let btf = self.btf().ok();
        let mut mem = self.kernel_memory()?;
        self.budgeted(|budget| {
            f(&mut Kernel {
                mem: &mut mem,
                syms,
                btf,
                budget,
            })
        })
    }

    pub(crate) fn orc_version(&self, k: &mut Kernel<'_>) -> Result<orc::Version> {
        match k.syms.address_of("__start_orc_header") {
            Some(at) => {
                let mut hash = [0u8; 20];
                k.mem.read_virt(at, &mut hash)?;
                orc::Version::from_header(&hash)
            }
            None => Ok(orc::Version::from_release(self.release())),
        }
    }

    pub(crate) fn module_list(&self) -> Result<&ModuleList> {
        if let Some(m) = self.deep.modules.get() {
            return Ok(m);
        }
        self.btf()?;
        self.failed_before(2, |why| Error::Corrupt(format!("the module list: {why}")))?;
        let list = self.remember(2, self.with_kernel(modules::read))?;
        Ok(self.deep.modules.get_or_init(|| list))
    }

    /// The loaded modules (needs BTF).
    pub fn modules(&self) -> Result<ModuleReport> {
        let list = self.module_list()?;
        Ok(ModuleReport {
            modules: list.modules.iter().map(|m| m.module.clone()).collect(),
            partial: list.partial.clone(),
        })
    }

    /// Every CPU's saved registers, by CPU number.
    pub fn cpu_registers(&self) -> Result<Vec<CpuRegisters>> {
        let (notes, qemu) = self.prstatus_notes();
        let parsed: Vec<(u32, regs::Registers)> = notes
            .iter()
            .enumerate()
            .map(|(i, d)| regs::parse(i, d))
            .collect::<Result<_>>()?;
        let mapped = if qemu {
            None
        } else {
            self.with_kernel(|k| crash_notes_cpus(k, notes)).ok()
        };
        let mut out: Vec<CpuRegisters> = parsed
            .into_iter()
            .enumerate()
            .map(|(i, (pid, registers))| {
                let (cpu, cpu_from) = match mapped.as_ref().and_then(|m| m[i]) {
                    Some(c) => (c, CpuSource::CrashNotes),
                    None if qemu => (i as u32, CpuSource::QemuOrder),
                    None => (i as u32, CpuSource::NoteOrder),
                };
                CpuRegisters {
                    cpu,
                    cpu_from,
                    note: i,
                    pid,
                    registers,
                }
            })
            .collect();
        out.sort_by_key(|c| (c.cpu, c.note));
        Ok(out)
    }

    /// The CPU that crashed, when the kernel panicked or called `crash_kexec()` (a QEMU dump
    /// of a live guest has none).
    pub fn crashed_cpu(&self) -> Result<Option<u32>> {
        self.with_kernel(|k| k.panic_cpu())
    }

    /// Every task (needs BTF).
    pub fn tasks(&self) -> Result<TaskList> {
        let cpus: Vec<u32> = self.cpu_registers()?.iter().map(|c| c.cpu).collect();
        self.btf()?;
        self.with_kernel(|k| tasks::read(k, &cpus))
    }

    /// Where `addr` is: a kernel or module symbol.
    pub fn symbolize(&self, addr: u64) -> Result<Option<Location>> {
        let syms = self.symbols()?;
        Ok(syms
            .lookup(addr)
            .or_else(|| self.module_list().ok().and_then(|m| m.lookup(addr))))
    }
}

/// For each note, the CPU whose `crash_notes` buffer holds the same bytes.
fn crash_notes_cpus(k: &mut Kernel<'_>, notes: &[Vec<u8>]) -> Result<Vec<Option<u32>>> {
    let base = k.u64(k.syms.need("crash_notes")?)?;
    let n = k.nr_cpu_ids()?;
    let mut out = vec![None; notes.len()];
    // An ELF note header (12 bytes) and "CORE\0" padded to 8, then the elf_prstatus.
    let mut buf = vec![0u8; 20 + PRSTATUS_SIZE];
    for cpu in 0..n {
        let at = base.wrapping_add(k.per_cpu_offset(cpu)?);
        if k.mem.read_virt(at, &mut buf).is_err() {
            continue;
        }
        if let Some(i) = notes
            .iter()
            .position(|d| d.as_slice() == &buf[20..20 + d.len().min(PRSTATUS_SIZE)])
        {
            if out[i].is_none() {
                out[i] = Some(cpu);
            }
        }
    }
    Ok(out)
}
