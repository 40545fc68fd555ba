//! The one error type of the dump reader: each variant says what failed and where.

use std::path::PathBuf;

/// Everything that can go wrong while opening a dump or reading from it.
///
/// Messages name the offset, page or address involved so that a bad dump can be
/// diagnosed from the message alone.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("i/o error reading the dump at offset {offset:#x}")]
    Io {
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("not a crash dump: the file starts with {magic}, which is no known dump format")]
    NotADump { magic: String },
    /// A whole file compressed by a general-purpose compressor (`gzip`, `xz`, `zstd`,
    /// `bzip2`, `lz4`): a dump inside, perhaps, but it must be decompressed first.
    #[error("not a crash dump: the file is {format}-compressed; decompress it first")]
    Compressed { format: &'static str },
    #[error("dump truncated: {what} needs {len} bytes at offset {offset:#x} but the data ends at {end:#x}")]
    Truncated {
        what: &'static str,
        offset: u64,
        len: u64,
        end: u64,
    },
    #[error("unsupported dump: {0}")]
    Unsupported(String),
    #[error("corrupt dump: {0}")]
    Corrupt(String),
    #[error("page {pfn:#x} uses unsupported compression (page flags {flags:#x})")]
    UnsupportedCompression { pfn: u64, flags: u32 },
    #[error("page {pfn:#x} does not decompress ({method}): {detail}")]
    Decompress {
        pfn: u64,
        method: &'static str,
        detail: String,
    },
    #[error(
        "page {pfn:#x} (physical address {paddr:#x}) was excluded from the dump by its dump level"
    )]
    PageExcluded { pfn: u64, paddr: u64 },
    #[error("page {pfn:#x} is missing: the dump is incomplete (the writer ran out of space)")]
    PageIncomplete { pfn: u64 },
    #[error("physical address {paddr:#x} is not in the dump: no memory was dumped there")]
    NotInDump { paddr: u64 },
    #[error("virtual address {vaddr:#x} is not mapped: its {level} entry is not present")]
    NotMapped { vaddr: u64, level: &'static str },
    #[error("the dump carries no VMCOREINFO, so its kernel log cannot be located")]
    NoVmcoreinfo,
    #[error("VMCOREINFO lacks {0}, needed to read the kernel log")]
    MissingVmcoreinfo(String),
    #[error("corrupt dump: {what} at offset {offset:#x} is {value:#x}, but {rule}")]
    BadField {
        what: &'static str,
        offset: u64,
        value: u64,
        rule: &'static str,
    },
    /// A kdump-compressed file contradicts itself: its bitmaps, page descriptors and page
    /// data disagree, so no page can be trusted to be the one asked for.
    #[error("corrupt dump: {invariant} does not hold at offset {offset:#x}: {detail}")]
    Inconsistent {
        invariant: Invariant,
        offset: u64,
        detail: String,
    },
    #[error("the kernel's symbol table has no `{0}`")]
    MissingSymbol(String),
    #[error(
        "no kernel symbols: {release} exports no kallsyms tables in VMCOREINFO (they arrived in \
         Linux 6.0); supply its System.map or vmlinux (kdrill inspect --system-map FILE or --vmlinux FILE)"
    )]
    NoKallsyms { release: String },
    #[error("kernel symbols: {0}")]
    Symbols(String),
    #[error("BTF: {0}")]
    Btf(String),
    #[error("the kernel's BTF has no {0}")]
    MissingType(String),
    #[error(
        "{what} needs {need} bytes, more than the {left} left of the {}-byte memory budget for reading one dump",
        crate::MEMORY_BUDGET
    )]
    OverBudget {
        what: &'static str,
        need: u64,
        left: u64,
    },
}

/// The cross-field invariants of a kdump-compressed file that every writer (makedumpfile,
/// QEMU) keeps; [`Error::Inconsistent`] names the one that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invariant {
    /// Every page the 2nd bitmap marks dumped is RAM in the 1st bitmap.
    DumpedIsRam,
    /// The descriptor table (one per set bit of the 2nd bitmap) ends where the page data
    /// begins: the first page's data, or the shared zero page before it.
    TableMeetsData,
    /// Page data follows in descriptor order: each page's data starts where the previous
    /// page's ends (pages that share the first block, the zero page, aside).
    DataInOrder,
    /// A page's stored data is 1 byte to one page long.
    PageDataSize,
}

impl Invariant {
    /// A stable name, for tests and machines.
    pub fn name(self) -> &'static str {
        match self {
            Invariant::DumpedIsRam => "dumped-is-ram",
            Invariant::TableMeetsData => "table-meets-data",
            Invariant::DataInOrder => "data-in-order",
            Invariant::PageDataSize => "page-data-size",
        }
    }
}

impl std::fmt::Display for Invariant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Invariant::DumpedIsRam => "\"every dumped page is RAM\" (2nd bitmap within the 1st)",
            Invariant::TableMeetsData => {
                "\"the page descriptor table ends where the page data begins\""
            }
            Invariant::DataInOrder => "\"each page's data starts where the previous page's ends\"",
            Invariant::PageDataSize => "\"a page's stored data is 1 byte to one page long\"",
        })
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
