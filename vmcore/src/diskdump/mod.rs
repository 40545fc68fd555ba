//! kdump-compressed dumps ("KDUMP   ", makedumpfile `-c/-l/-p/-z`, QEMU kdump-*).
//!
//! Layout from makedumpfile's `diskdump_mod.h` and IMPLEMENTATION (x86_64 sizes):
//! block 0 `disk_dump_header`, block 1 `kdump_sub_header` (with VMCOREINFO and
//! the ELF notes after it, versions 3 and 4), then `bitmap_blocks` blocks holding
//! the 1st bitmap (page is RAM) and the 2nd bitmap (page is dumped), then one
//! 24-byte `page_desc` per dumped page in pfn order, then the page data. A page's
//! descriptor index is the number of dumped pages before it (makedumpfile
//! `pfn_to_pos()`). Zero pages share one descriptor target. With the INCOMPLETE
//! status bit, descriptors of pages never written read as zero (offset 0).
//!
//! This module parses the headers and bitmaps (every dumped page must be RAM);
//! `table.rs` checks the descriptor table against the bitmap and the page data
//! (and counts the pages a cut-short file lost); `pages.rs` finds and reads a
//! page; `build.rs` writes synthetic files for tests.

mod build;
mod pages;
mod table;

pub use build::{build, KdumpSpec};

use crate::budget::Budget;
use crate::compress::Compression;
use crate::error::{Error, Invariant, Result};
use crate::notes::{self, NoteSummary};
use crate::source::{u32_at, u64_at, Source};

pub(crate) const SIGNATURE: &[u8; 8] = b"KDUMP   ";
pub(crate) const OLD_SIGNATURE: &[u8; 8] = b"DISKDUMP";
/// makedumpfile `DUMP_DH_COMPRESSED_INCOMPLETE`.
const INCOMPLETE: u32 = 0x8;
const HEADER_SIZE: usize = 464;
const SUB_HEADER_SIZE: usize = 104;
const DESC_SIZE: u64 = 24;
/// Bits per section of the dumped-page prefix counts (makedumpfile's BITMAP_SECT_LEN).
const SECTION_BITS: u64 = 4096;
const MAX_VMCOREINFO: u64 = crate::vmcoreinfo::MAX_BYTES;
const MAX_NOTES: u64 = 64 << 20;
/// x86_64's largest `CONFIG_NR_CPUS` (MAXSMP).
const MAX_CPUS: u32 = 8192;
/// A page (makedumpfile's block) is a power of two in this range on every architecture it supports.
pub(crate) const PAGE_SIZES: std::ops::RangeInclusive<u64> = 4096..=65536;

// disk_dump_header field offsets (x86_64: struct timeval aligned to 8).
const OFF_VERSION: usize = 8;
const OFF_RELEASE: usize = 12 + 65 * 2;
const OFF_MACHINE: usize = 12 + 65 * 4;
const OFF_TIMESTAMP: usize = 408;
const OFF_STATUS: usize = 424;
const OFF_BLOCK_SIZE: usize = 428;
const OFF_SUB_HDR_SIZE: usize = 432;
const OFF_BITMAP_BLOCKS: usize = 436;
const OFF_MAX_MAPNR: usize = 440;
const OFF_NR_CPUS: usize = 460;

pub(crate) struct KdumpDump {
    pub(crate) header_version: u32,
    pub(crate) release: String,
    pub(crate) machine: String,
    pub(crate) timestamp: i64,
    pub(crate) status: u32,
    pub(crate) block_size: u64,
    pub(crate) nr_cpus: u32,
    pub(crate) phys_base: u64,
    pub(crate) dump_level: Option<i32>,
    pub(crate) vmcoreinfo: Option<Vec<u8>>,
    pub(crate) notes: NoteSummary,
    bitmap2: Vec<u8>,
    /// dumped pages before each SECTION_BITS-bit section of the 2nd bitmap
    prefix: Vec<u64>,
    bitmap1_offset: u64,
    bitmap_half: u64,
    desc_offset: u64,
    pub(crate) max_pfn: u64,
    pub(crate) dumped: u64,
    pub(crate) excluded: u64,
    /// Dumped pages written as the one shared zero page (`-d` with bit 1).
    pub(crate) zero_pages: u64,
    pub(crate) incomplete_pages: u64,
    /// Pages whose descriptor or data lies past the end of the file: the file
    /// was cut short (not a writer that ran out of space and said so).
    pub(crate) lost_pages: u64,
}

fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn bit(bitmap: &[u8], pfn: u64) -> bool {
    bitmap
        .get((pfn / 8) as usize)
        .is_some_and(|b| b & (1 << (pfn % 8)) != 0)
}

fn bad(what: &'static str, offset: usize, value: u64, rule: &'static str) -> Error {
    Error::BadField {
        what,
        offset: offset as u64,
        value,
        rule,
    }
}

pub(crate) fn parse(src: &Source, budget: &Budget) -> Result<KdumpDump> {
    let mut h = [0u8; HEADER_SIZE];
    src.read_exact("kdump-compressed header", 0, &mut h)?;
    let header_version = u32_at(&h, OFF_VERSION);
    if header_version == 0 || header_version > 6 {
        return Err(Error::Unsupported(format!(
            "kdump-compressed header version {header_version} (versions 1 to 6 are read)"
        )));
    }
    let block_size = u32_at(&h, OFF_BLOCK_SIZE) as u64;
    if !block_size.is_power_of_two() || !PAGE_SIZES.contains(&block_size) {
        return Err(bad(
            "kdump block size",
            OFF_BLOCK_SIZE,
            block_size,
            "a block is a page: a power of two from 4096 to 65536",
        ));
    }
    let nr_cpus = u32_at(&h, OFF_NR_CPUS);
    if nr_cpus > MAX_CPUS {
        return Err(bad(
            "kdump CPU count",
            OFF_NR_CPUS,
            nr_cpus as u64,
            "a kernel has at most 8192 CPUs",
        ));
    }
    let sub_hdr_size = u32_at(&h, OFF_SUB_HDR_SIZE) as u64;
    let bitmap_blocks = u32_at(&h, OFF_BITMAP_BLOCKS) as u64;
    let status = u32_at(&h, OFF_STATUS);

    let mut kh = [0u8; SUB_HEADER_SIZE];
    src.read_exact("kdump sub header", block_size, &mut kh)?;
    let phys_base = u64_at(&kh, 0);
    let dump_level = Some(u32_at(&kh, 8) as i32);
    let max_mapnr = if header_version >= 6 {
        u64_at(&kh, 96)
    } else {
        u32_at(&h, OFF_MAX_MAPNR) as u64
    };

    let mut vmcoreinfo = None;
    if header_version >= 3 {
        let (off, size) = (u64_at(&kh, 32), u64_at(&kh, 40));
        if size > MAX_VMCOREINFO {
            return Err(Error::Corrupt(format!(
                "sub header (at {block_size:#x}) claims a VMCOREINFO of {size} bytes"
            )));
        }
        if size > 0 {
            budget.take("VMCOREINFO", size)?;
            vmcoreinfo = Some(src.read_vec("VMCOREINFO", off, size)?);
        }
    }
    let mut notes = NoteSummary::default();
    if header_version >= 4 {
        let (off, size) = (u64_at(&kh, 48), u64_at(&kh, 56));
        if size > MAX_NOTES {
            return Err(Error::Corrupt(format!(
                "sub header (at {block_size:#x}) claims {size} bytes of ELF notes"
            )));
        }
        if size > 0 {
            budget.take("ELF notes", size)?;
            notes = notes::summarize(&src.read_vec("ELF notes", off, size)?);
        }
    }
    if vmcoreinfo.is_none() {
        vmcoreinfo = notes.vmcoreinfo.clone();
    }

    // Both fit in u64: a u32 count of blocks of at most 64 KiB.
    let bitmap1_offset = (1 + sub_hdr_size) * block_size;
    let bitmap_len = bitmap_blocks * block_size;
    let bitmap_half = bitmap_len / 2;
    if bitmap1_offset
        .checked_add(bitmap_len)
        .is_none_or(|e| e > src.len())
    {
        return Err(Error::Truncated {
            what: "kdump bitmaps",
            offset: bitmap1_offset,
            len: bitmap_len,
            end: src.len(),
        });
    }
    let max_pfn = max_mapnr.min(bitmap_half * 8);
    let used = max_pfn.div_ceil(8);
    let sections = max_pfn.div_ceil(SECTION_BITS);
    budget.take("2nd bitmap", used)?;
    budget.take("2nd bitmap prefix counts", sections * 8)?;
    let mut bitmap2 = src.read_vec("2nd bitmap", bitmap1_offset + bitmap_half, used)?;
    if max_pfn % 8 != 0 {
        if let Some(last) = bitmap2.last_mut() {
            *last &= (1u8 << (max_pfn % 8)) - 1;
        }
    }
    let mut prefix = Vec::with_capacity(sections as usize);
    let mut dumped = 0u64;
    for section in bitmap2.chunks((SECTION_BITS / 8) as usize) {
        prefix.push(dumped);
        dumped += section.iter().map(|b| b.count_ones() as u64).sum::<u64>();
    }
    let mut ram = 0u64;
    let mut at = 0u64;
    while at < used {
        let n = (used - at).min(1 << 20);
        let mut chunk = src.read_vec("1st bitmap", bitmap1_offset + at, n)?;
        if at + n == used && max_pfn % 8 != 0 {
            if let Some(last) = chunk.last_mut() {
                *last &= (1u8 << (max_pfn % 8)) - 1;
            }
        }
        let dumped_here = &bitmap2[at as usize..(at + n) as usize];
        if let Some(k) = (0..chunk.len()).find(|&k| dumped_here[k] & !chunk[k] != 0) {
            let byte = at + k as u64;
            return Err(Error::Inconsistent {
                invariant: Invariant::DumpedIsRam,
                offset: bitmap1_offset + bitmap_half + byte,
                detail: format!(
                    "the 2nd bitmap marks pfns {:#x}-{:#x} {:#010b} dumped, the 1st bitmap's RAM \
                     there is {:#010b}",
                    byte * 8,
                    byte * 8 + 7,
                    dumped_here[k],
                    chunk[k]
                ),
            });
        }
        ram += chunk.iter().map(|b| b.count_ones() as u64).sum::<u64>();
        at += n;
    }

    let mut dump = KdumpDump {
        header_version,
        release: c_string(&h[OFF_RELEASE..OFF_RELEASE + 65]),
        machine: c_string(&h[OFF_MACHINE..OFF_MACHINE + 65]),
        timestamp: u64_at(&h, OFF_TIMESTAMP) as i64,
        status,
        block_size,
        nr_cpus,
        phys_base,
        dump_level,
        vmcoreinfo,
        notes,
        bitmap2,
        prefix,
        bitmap1_offset,
        bitmap_half,
        desc_offset: bitmap1_offset + bitmap_len,
        max_pfn,
        dumped,
        excluded: ram.saturating_sub(dumped),
        incomplete_pages: 0,
        lost_pages: 0,
        zero_pages: 0,
    };
    let table::Scan {
        missing,
        lost,
        zero,
    } = dump.scan_table(src)?;
    dump.zero_pages = zero;
    if dump.incomplete() {
        dump.incomplete_pages = missing + lost;
    } else {
        dump.incomplete_pages = lost;
        dump.lost_pages = lost;
    }
    Ok(dump)
}

impl KdumpDump {
    pub(crate) fn compression(&self) -> Compression {
        Compression::from_status(self.status)
    }

    pub(crate) fn incomplete(&self) -> bool {
        self.status & INCOMPLETE != 0
    }
}
