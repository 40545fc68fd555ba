//! Reader for Linux crash dumps: ELF vmcores, kdump-compressed and flattened files, and the kernel log inside them.
//!
//! Sans-IO over a [`ReadAt`] byte source: nothing is loaded whole, only the
//! headers, the dumped-page bitmap and the pages the kernel log needs. No
//! processes, no QEMU, no harness code.
//!
//! ```no_run
//! let dump = kdrill_vmcore::Vmcore::open(std::path::Path::new("vmcore"))?;
//! println!("{} {:?}", dump.info().format, dump.info().kernel_release);
//! let records = dump.dmesg_records()?;
//! print!("{}", kdrill_vmcore::format_dmesg(&records));
//! # Ok::<(), kdrill_vmcore::Error>(())
//! ```

mod analysis;
mod backtrace;
mod btf;
mod budget;
mod compress;
mod diskdump;
mod dmesg;
mod elf;
mod error;
mod flattened;
mod hex;
mod kernel;
mod logbuf;
mod memory;
mod modules;
mod notes;
mod orc;
mod phys;
mod regs;
mod ringbuffer;
mod source;
mod stacks;
mod symbols;
pub mod synth;
mod tasks;
mod vmcoreinfo;
mod x86_64;

use std::path::Path;

pub use analysis::ModuleReport;
pub use backtrace::{End, Frame};
pub use btf::build as build_btf;
pub use btf::build::StructSpec;
pub use budget::MEMORY_BUDGET;
pub use compress::Compression;
pub use dmesg::{format_dmesg, panic_message, LogRecord};
pub use error::{Error, Invariant, Result};
pub use modules::Module;
pub use regs::{encode_prstatus, CpuRegisters, CpuSource, Registers, REG_NAMES};
pub use source::ReadAt;
pub use stacks::Backtrace;
pub use symbols::{Location, Symbol, SymbolSource, SymbolTable};
pub use tasks::{Task, TaskList};
pub use vmcoreinfo::VmcoreInfo;

use budget::Budget;
use diskdump::KdumpDump;
use elf::ElfDump;
use memory::KernelView;
use phys::{ElfPhys, KdumpPhys, Phys};
use source::Source;

/// The container format of a dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum DumpFormat {
    /// ELF64 core file (`/proc/vmcore`, `makedumpfile -E`, QEMU `dump-guest-memory` elf).
    #[serde(rename = "elf")]
    Elf,
    /// makedumpfile's kdump-compressed format ("KDUMP   ").
    #[serde(rename = "kdump-compressed")]
    KdumpCompressed,
}

impl std::fmt::Display for DumpFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DumpFormat::Elf => "ELF",
            DumpFormat::KdumpCompressed => "kdump-compressed",
        })
    }
}

/// What a dump says about itself, from its headers, notes and VMCOREINFO.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DumpInfo {
    pub format: DumpFormat,
    /// Stored in makedumpfile's flattened format (`-F`, QEMU kdump-*) and read in place.
    pub flattened: bool,
    /// Page compression named in the header (`None` for ELF).
    pub compression: Compression,
    /// VMCOREINFO `OSRELEASE`, else the header's utsname release.
    pub kernel_release: Option<String>,
    /// Seconds since the epoch: VMCOREINFO `CRASHTIME`, else the kdump header's time stamp.
    pub crash_time: Option<i64>,
    pub machine: Option<String>,
    /// The header's CPU count, else the number of `NT_PRSTATUS` notes.
    pub cpus: Option<u32>,
    pub page_size: u64,
    /// Pages whose contents the dump holds.
    pub dumped_pages: u64,
    /// RAM pages left out (by the dump level for kdump-compressed, memsz beyond filesz for ELF).
    pub excluded_pages: u64,
    /// Of `dumped_pages`, those written as makedumpfile's one shared zero page (dump level
    /// with bit 1): in the dump's bitmap, without data of their own. makedumpfile's own report
    /// counts them as excluded.
    pub zero_pages: u64,
    /// Pages an incomplete dump lost because its writer ran out of space.
    pub incomplete_pages: u64,
    /// The dump's header marks it incomplete.
    pub incomplete: bool,
    /// The file ends before data its headers point to: it was cut short after
    /// it was written (a copy or transfer stopped early). `incomplete_pages`
    /// counts the pages lost. (An ELF dump cut short does not open at all.)
    pub truncated: bool,
    /// makedumpfile's `-d` level, for kdump-compressed dumps.
    pub dump_level: Option<i32>,
    /// kdump-compressed header version (1 to 6).
    pub header_version: Option<u32>,
    pub has_vmcoreinfo: bool,
}

enum Layout {
    Elf(ElfDump),
    Kdump(KdumpDump),
}

/// An open crash dump.
pub struct Vmcore {
    src: Source,
    layout: Layout,
    info: DumpInfo,
    vmcoreinfo: Option<VmcoreInfo>,
    /// What opening left of [`MEMORY_BUDGET`] for each log read.
    budget_left: u64,
    /// Symbols, types and modules, read once on first use.
    deep: analysis::Cache,
    /// Decompressed kdump pages, shared by every read.
    page_cache: phys::PageCache,
}

fn describe_magic(head: &[u8]) -> String {
    if head.is_empty() {
        return "nothing (the file is empty)".into();
    }
    let shown: String = head
        .iter()
        .take(16)
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    format!("\"{shown}\"")
}

/// The compressor whose magic `head` starts with, for a dump someone gzipped (or xz'd…) to
/// store or send it: the magics of RFC 1952, the xz, zstd and LZ4 frame formats, and bzip2's
/// `BZh` + block size digit.
fn compressed_file(head: &[u8]) -> Option<&'static str> {
    const MAGICS: [(&[u8], &str); 4] = [
        (&[0x1f, 0x8b], "gzip"),
        (&[0xfd, b'7', b'z', b'X', b'Z', 0], "xz"),
        (&[0x28, 0xb5, 0x2f, 0xfd], "zstd"),
        (&[0x04, 0x22, 0x4d, 0x18], "lz4"),
    ];
    if let Some((_, name)) = MAGICS.iter().find(|(m, _)| head.starts_with(m)) {
        return Some(name);
    }
    match head {
        [b'B', b'Z', b'h', b'1'..=b'9', ..] => Some("bzip2"),
        _ => None,
    }
}

/// A kdump header's machine, or, when the writer did not know it, the machine VMCOREINFO shows:
/// QEMU 8 and later write `Unknown` in `utsname.machine` of its `dump-guest-memory` kdump files
/// (QEMU 7.2 wrote `x86_64`), and only an x86_64 kernel exports `SYMBOL(init_top_pgt)`
/// (`init_level4_pgt` before 4.13).
fn kdump_machine(written: &str, vmcoreinfo: Option<&VmcoreInfo>) -> Option<String> {
    if !written.is_empty() && written != "Unknown" {
        return Some(written.to_string());
    }
    let x86_64 = vmcoreinfo.is_some_and(|v| {
        v.symbol("init_top_pgt").is_some() || v.symbol("init_level4_pgt").is_some()
    });
    x86_64
        .then(|| "x86_64".to_string())
        .or_else(|| (!written.is_empty()).then(|| written.to_string()))
}

impl Vmcore {
    /// Opens the dump at `path` (any supported format, flattened or not).
    pub fn open(path: &Path) -> Result<Vmcore> {
        let file = std::fs::File::open(path).map_err(|source| Error::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Vmcore::from_source(file)
    }

    /// Opens a dump from any byte source, for example a `Vec<u8>`.
    pub fn from_source(source: impl ReadAt + Send + Sync + 'static) -> Result<Vmcore> {
        let src = Source::new(Box::new(source))?;
        let budget = Budget::new(MEMORY_BUDGET);
        let mut head = vec![0u8; src.len().min(16) as usize];
        src.read_exact("file magic", 0, &mut head)?;
        if flattened::is_flattened(&head) {
            let flat = flattened::Flattened::index(src, &budget)?;
            let inner = Source::new(Box::new(flat))?;
            let mut head = vec![0u8; inner.len().min(16) as usize];
            inner.read_exact("file magic", 0, &mut head)?;
            return Vmcore::from_plain(inner, &head, true, &budget);
        }
        Vmcore::from_plain(src, &head, false, &budget)
    }

    fn from_plain(src: Source, head: &[u8], flattened: bool, budget: &Budget) -> Result<Vmcore> {
        if head.starts_with(elf::MAGIC) {
            let elf = elf::parse(&src, budget)?;
            let vmcoreinfo = elf
                .notes
                .vmcoreinfo
                .as_deref()
                .map(vmcoreinfo::parse_checked)
                .transpose()?;
            let page_size = match &vmcoreinfo {
                Some(v) => v.checked_page_size()?.unwrap_or(4096),
                None => 4096,
            };
            let (dumped, excluded) = elf.page_counts(page_size);
            let info = DumpInfo {
                format: DumpFormat::Elf,
                flattened,
                compression: Compression::None,
                kernel_release: vmcoreinfo
                    .as_ref()
                    .and_then(|v| v.osrelease())
                    .map(str::to_string),
                crash_time: vmcoreinfo.as_ref().and_then(|v| v.crash_time()),
                machine: elf
                    .machine
                    .map(str::to_string)
                    .or_else(|| Some(format!("ELF machine {}", elf.e_machine))),
                cpus: (elf.notes.cpus > 0).then_some(elf.notes.cpus),
                page_size,
                dumped_pages: dumped,
                excluded_pages: excluded,
                zero_pages: 0,
                incomplete_pages: elf.missing_bytes.div_ceil(page_size),
                incomplete: elf.incomplete,
                truncated: false,
                dump_level: None,
                header_version: None,
                has_vmcoreinfo: vmcoreinfo.is_some(),
            };
            return Ok(Vmcore {
                src,
                layout: Layout::Elf(elf),
                info,
                vmcoreinfo,
                budget_left: budget.left(),
                deep: analysis::Cache::default(),
                page_cache: Default::default(),
            });
        }
        if head.starts_with(diskdump::SIGNATURE) {
            let kd = diskdump::parse(&src, budget)?;
            let vmcoreinfo = kd
                .vmcoreinfo
                .as_deref()
                .map(vmcoreinfo::parse_checked)
                .transpose()?;
            let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_string());
            let info = DumpInfo {
                format: DumpFormat::KdumpCompressed,
                flattened,
                compression: kd.compression(),
                kernel_release: vmcoreinfo
                    .as_ref()
                    .and_then(|v| v.osrelease())
                    .map(str::to_string)
                    .or_else(|| nonempty(&kd.release)),
                crash_time: vmcoreinfo
                    .as_ref()
                    .and_then(|v| v.crash_time())
                    .or((kd.timestamp != 0).then_some(kd.timestamp)),
                machine: kdump_machine(&kd.machine, vmcoreinfo.as_ref()),
                cpus: if kd.nr_cpus > 0 {
                    Some(kd.nr_cpus)
                } else {
                    (kd.notes.cpus > 0).then_some(kd.notes.cpus)
                },
                page_size: kd.block_size,
                dumped_pages: kd.dumped,
                excluded_pages: kd.excluded,
                zero_pages: kd.zero_pages,
                incomplete_pages: kd.incomplete_pages,
                incomplete: kd.incomplete(),
                truncated: kd.lost_pages > 0,
                dump_level: kd.dump_level,
                header_version: Some(kd.header_version),
                has_vmcoreinfo: vmcoreinfo.is_some(),
            };
            return Ok(Vmcore {
                src,
                layout: Layout::Kdump(kd),
                info,
                vmcoreinfo,
                budget_left: budget.left(),
                deep: analysis::Cache::default(),
                page_cache: Default::default(),
            });
        }
        if head.starts_with(diskdump::OLD_SIGNATURE) {
            return Err(Error::Unsupported(
                "old diskdump format (\"DISKDUMP\" signature)".into(),
            ));
        }
        if let Some(format) = compressed_file(head) {
            return Err(Error::Compressed { format });
        }
        Err(Error::NotADump {
            magic: describe_magic(head),
        })
    }

    /// The dump's metadata.
    pub fn info(&self) -> &DumpInfo {
        &self.info
    }

    /// The dump's VMCOREINFO, if it carries one.
    pub fn vmcoreinfo(&self) -> Option<&VmcoreInfo> {
        self.vmcoreinfo.as_ref()
    }

    /// The kernel log records, oldest first, as makedumpfile `--dump-dmesg` reads them.
    pub fn dmesg_records(&self) -> Result<Vec<LogRecord>> {
        let vi = self.vmcoreinfo.as_ref().ok_or(Error::NoVmcoreinfo)?;
        let mut mem = self.kernel_memory()?;
        let budget = Budget::new(self.budget_left);
        read_log(&mut mem, vi, &budget)
    }

    /// The kernel's virtual memory, translated through its own page tables.
    pub(crate) fn kernel_memory(&self) -> Result<KernelView<Phys<'_>>> {
        let vi = self.vmcoreinfo.as_ref().ok_or(Error::NoVmcoreinfo)?;
        if let Some(m) = self.info.machine.as_deref() {
            if m != "x86_64" {
                return Err(Error::Unsupported(format!(
                    "reading the kernel memory of a {m} dump (only x86_64 is translated)"
                )));
            }
        }
        let translator = x86_64::Translator::new(vi, self.phys_base())?;
        let phys = match &self.layout {
            Layout::Elf(elf) => Phys::Elf(ElfPhys {
                elf,
                src: &self.src,
                page_size: self.info.page_size,
            }),
            Layout::Kdump(kd) => Phys::Kdump(KdumpPhys {
                kd,
                src: &self.src,
                cache: &self.page_cache,
            }),
        };
        Ok(KernelView::new(phys, translator))
    }

    /// Where the kernel image starts in physical memory: VMCOREINFO's `NUMBER(phys_base)`,
    /// else the kdump header's, else what an ELF dump's text segment implies.
    #[doc(hidden)]
    pub fn phys_base(&self) -> u64 {
        self.vmcoreinfo
            .as_ref()
            .and_then(|vi| vi.number("phys_base"))
            .or(match &self.layout {
                Layout::Kdump(k) => Some(k.phys_base),
                Layout::Elf(e) => e.phys_base_from_text_segment(),
            })
            .unwrap_or(0)
    }

    /// Translates `vaddr` through the kernel's page tables even where kdrill would not
    /// (kernel-image addresses): for building test fixtures that other tools, which walk the
    /// tables for every address, can read too.
    #[doc(hidden)]
    pub fn walk_page_tables(&self, vaddr: u64) -> Result<u64> {
        let vi = self.vmcoreinfo.as_ref().ok_or(Error::NoVmcoreinfo)?;
        let translator = x86_64::Translator::new(vi, self.phys_base())?;
        let mut mem = self.kernel_memory()?;
        translator.walk(vaddr, |at| {
            let mut b = [0u8; 8];
            memory::PhysicalMemory::read_phys(mem.phys_mut(), at, &mut b)?;
            Ok(u64::from_le_bytes(b))
        })
    }

    /// The `NT_PRSTATUS` note bodies in file order, and whether QEMU wrote them.
    pub(crate) fn prstatus_notes(&self) -> (&[Vec<u8>], bool) {
        let notes = match &self.layout {
            Layout::Elf(e) => &e.notes,
            Layout::Kdump(k) => &k.notes,
        };
        (&notes.prstatus, notes.qemu)
    }
}

fn read_log(
    mem: &mut dyn memory::KernelMemory,
    vi: &VmcoreInfo,
    budget: &Budget,
) -> Result<Vec<LogRecord>> {
    if vi.symbol("prb").is_some() {
        ringbuffer::read(mem, vi, budget)
    } else if vi.symbol("log_buf").is_some() {
        logbuf::read(mem, vi, budget)
    } else {
        Err(Error::MissingVmcoreinfo(
            "SYMBOL(prb) and SYMBOL(log_buf)".into(),
        ))
    }
}
