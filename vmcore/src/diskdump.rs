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

use crate::compress::{self, Compression};
use crate::error::{Error, Result};
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
const MAX_VMCOREINFO: u64 = 16 << 20;
const MAX_NOTES: u64 = 64 << 20;

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
    pub(crate) incomplete_pages: u64,
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

pub(crate) fn parse(src: &Source) -> Result<KdumpDump> {
    let mut h = [0u8; HEADER_SIZE];
    src.read_exact("kdump-compressed header", 0, &mut h)?;
    let header_version = u32_at(&h, OFF_VERSION);
    if header_version == 0 || header_version > 6 {
        return Err(Error::Unsupported(format!(
            "kdump-compressed header version {header_version} (versions 1 to 6 are read)"
        )));
    }
    let block_size = u32_at(&h, OFF_BLOCK_SIZE) as u64;
    if !block_size.is_power_of_two() || !(512..=1 << 20).contains(&block_size) {
        return Err(Error::Corrupt(format!(
            "kdump-compressed header gives block size {block_size}"
        )));
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
                "sub header claims a VMCOREINFO of {size} bytes"
            )));
        }
        if size > 0 {
            vmcoreinfo = Some(src.read_vec("VMCOREINFO", off, size)?);
        }
    }
    let mut notes = NoteSummary::default();
    if header_version >= 4 {
        let (off, size) = (u64_at(&kh, 48), u64_at(&kh, 56));
        if size > MAX_NOTES {
            return Err(Error::Corrupt(format!(
                "sub header claims {size} bytes of ELF notes"
            )));
        }
        if size > 0 {
            notes = notes::summarize(&src.read_vec("ELF notes", off, size)?);
        }
    }
    if vmcoreinfo.is_none() {
        vmcoreinfo = notes.vmcoreinfo.clone();
    }

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
    let mut bitmap2 = src.read_vec("2nd bitmap", bitmap1_offset + bitmap_half, used)?;
    if max_pfn % 8 != 0 {
        if let Some(last) = bitmap2.last_mut() {
            *last &= (1u8 << (max_pfn % 8)) - 1;
        }
    }
    let mut prefix = Vec::with_capacity(max_pfn.div_ceil(SECTION_BITS) as usize);
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
            *chunk.last_mut().unwrap() &= (1u8 << (max_pfn % 8)) - 1;
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
        nr_cpus: u32_at(&h, OFF_NR_CPUS),
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
    };
    if dump.incomplete() {
        dump.incomplete_pages = dump.count_missing(src)?;
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

    /// Descriptors that read as offset 0 (or lie past the end): pages never written.
    fn count_missing(&self, src: &Source) -> Result<u64> {
        let mut missing = 0;
        let mut i = 0;
        while i < self.dumped {
            let off = self.desc_offset + i * DESC_SIZE;
            if off >= src.len() {
                return Ok(missing + (self.dumped - i));
            }
            let n = (self.dumped - i)
                .min(4096)
                .min((src.len() - off) / DESC_SIZE);
            if n == 0 {
                return Ok(missing + (self.dumped - i));
            }
            let descs = src.read_vec("page descriptors", off, n * DESC_SIZE)?;
            missing += descs
                .chunks_exact(DESC_SIZE as usize)
                .filter(|d| u64_at(d, 0) == 0)
                .count() as u64;
            i += n;
        }
        Ok(missing)
    }

    fn is_ram(&self, src: &Source, pfn: u64) -> bool {
        let mut b = [0u8];
        pfn < self.bitmap_half * 8
            && src
                .read_exact("1st bitmap", self.bitmap1_offset + pfn / 8, &mut b)
                .is_ok()
            && b[0] & (1 << (pfn % 8)) != 0
    }

    /// Reads page `pfn` into `out` (one block long), decompressing it.
    pub(crate) fn read_page(&self, src: &Source, pfn: u64, out: &mut [u8]) -> Result<()> {
        let paddr = pfn * self.block_size;
        if pfn >= self.max_pfn || !bit(&self.bitmap2, pfn) {
            return Err(if self.is_ram(src, pfn) {
                Error::PageExcluded { pfn, paddr }
            } else {
                Error::NotInDump { paddr }
            });
        }
        let section = pfn / SECTION_BITS;
        let mut index = self.prefix[section as usize];
        for p in section * SECTION_BITS..pfn {
            index += bit(&self.bitmap2, p) as u64;
        }
        let desc_at = self.desc_offset + index * DESC_SIZE;
        let mut d = [0u8; DESC_SIZE as usize];
        match src.read_exact("page descriptor", desc_at, &mut d) {
            Err(Error::Truncated { .. }) if self.incomplete() => {
                return Err(Error::PageIncomplete { pfn })
            }
            r => r?,
        }
        let offset = u64_at(&d, 0);
        let size = u32_at(&d, 8) as u64;
        let flags = u32_at(&d, 12);
        if offset == 0 {
            return Err(if self.incomplete() {
                Error::PageIncomplete { pfn }
            } else {
                Error::Corrupt(format!("page {pfn:#x} has a descriptor with offset 0"))
            });
        }
        if size > self.block_size {
            return Err(Error::Corrupt(format!(
                "page {pfn:#x} claims {size} bytes of data, more than a block ({})",
                self.block_size
            )));
        }
        let compressed =
            flags & (compress::ZLIB | compress::LZO | compress::SNAPPY | compress::ZSTD) != 0;
        if !compressed && flags & !0x1f != 0 {
            return Err(Error::UnsupportedCompression { pfn, flags });
        }
        let mut data = vec![0u8; size as usize];
        match src.read_exact("page data", offset, &mut data) {
            Err(Error::Truncated { .. }) if self.incomplete() => {
                return Err(Error::PageIncomplete { pfn })
            }
            r => r?,
        }
        if compressed {
            compress::decompress_page(pfn, flags, &data, out)
        } else if data.len() == out.len() {
            out.copy_from_slice(&data);
            Ok(())
        } else {
            Err(Error::Corrupt(format!(
                "uncompressed page {pfn:#x} holds {} bytes, not a page of {}",
                data.len(),
                out.len()
            )))
        }
    }
}

/// What to put in a synthetic kdump-compressed file.
pub struct KdumpSpec<'a> {
    /// Physical memory from address 0, a whole number of pages.
    pub memory: &'a [u8],
    pub page_size: u64,
    pub vmcoreinfo: &'a [u8],
    /// Header version, 1 to 6 (VMCOREINFO is stored from version 3 on).
    pub header_version: u32,
    /// Compression named in the header; pages that do not shrink are stored raw.
    pub compression: Compression,
    /// Page compressor for `compression`.
    pub compress: &'a dyn Fn(&[u8]) -> Option<Vec<u8>>,
    /// Pages that are RAM but left out, as by a dump level.
    pub excluded: &'a [u64],
    /// Pages that are not RAM at all.
    pub holes: &'a [u64],
    pub release: &'a str,
    pub machine: &'a str,
    pub timestamp: i64,
    pub nr_cpus: u32,
    pub phys_base: u64,
    pub dump_level: i32,
    /// Write only this many dumped pages and mark the dump incomplete.
    pub incomplete_after: Option<u64>,
}

/// Builds a kdump-compressed file as makedumpfile lays it out.
pub fn build(spec: &KdumpSpec) -> Vec<u8> {
    let bs = spec.page_size;
    let pages = spec.memory.len() as u64 / bs;
    let mut status = spec.compression.flag();
    if spec.incomplete_after.is_some() {
        status |= INCOMPLETE;
    }
    let vmci_off = bs + SUB_HEADER_SIZE as u64;
    let vmci_len = if spec.header_version >= 3 {
        spec.vmcoreinfo.len() as u64
    } else {
        0
    };
    let note = notes::encode("CORE", notes::NT_PRSTATUS, &[0; 336]);
    let mut note_bytes = Vec::new();
    for _ in 0..spec.nr_cpus {
        note_bytes.extend_from_slice(&note);
    }
    let note_off = vmci_off + vmci_len;
    let note_len = if spec.header_version >= 4 {
        note_bytes.len() as u64
    } else {
        0
    };
    let sub_hdr_size = (SUB_HEADER_SIZE as u64 + vmci_len + note_len).div_ceil(bs);
    let bitmap_half = pages.div_ceil(8).div_ceil(bs) * bs;
    let bitmap_blocks = 2 * bitmap_half / bs;

    let mut h = vec![0u8; bs as usize];
    h[..8].copy_from_slice(SIGNATURE);
    h[OFF_VERSION..OFF_VERSION + 4].copy_from_slice(&spec.header_version.to_le_bytes());
    h[OFF_RELEASE..OFF_RELEASE + spec.release.len()].copy_from_slice(spec.release.as_bytes());
    h[OFF_MACHINE..OFF_MACHINE + spec.machine.len()].copy_from_slice(spec.machine.as_bytes());
    h[OFF_TIMESTAMP..OFF_TIMESTAMP + 8].copy_from_slice(&spec.timestamp.to_le_bytes());
    let put32 =
        |h: &mut Vec<u8>, off: usize, v: u32| h[off..off + 4].copy_from_slice(&v.to_le_bytes());
    put32(&mut h, OFF_STATUS, status);
    put32(&mut h, OFF_BLOCK_SIZE, bs as u32);
    put32(&mut h, OFF_SUB_HDR_SIZE, sub_hdr_size as u32);
    put32(&mut h, OFF_BITMAP_BLOCKS, bitmap_blocks as u32);
    put32(&mut h, OFF_MAX_MAPNR, pages as u32);
    put32(&mut h, OFF_NR_CPUS, spec.nr_cpus);

    let mut kh = vec![0u8; (sub_hdr_size * bs) as usize];
    kh[0..8].copy_from_slice(&spec.phys_base.to_le_bytes());
    kh[8..12].copy_from_slice(&spec.dump_level.to_le_bytes());
    kh[24..32].copy_from_slice(&pages.to_le_bytes());
    if spec.header_version >= 3 {
        kh[32..40].copy_from_slice(&vmci_off.to_le_bytes());
        kh[40..48].copy_from_slice(&vmci_len.to_le_bytes());
        let at = (vmci_off - bs) as usize;
        kh[at..at + vmci_len as usize].copy_from_slice(spec.vmcoreinfo);
    }
    if spec.header_version >= 4 {
        kh[48..56].copy_from_slice(&note_off.to_le_bytes());
        kh[56..64].copy_from_slice(&note_len.to_le_bytes());
        let at = (note_off - bs) as usize;
        kh[at..at + note_len as usize].copy_from_slice(&note_bytes);
    }
    if spec.header_version >= 6 {
        kh[88..96].copy_from_slice(&pages.to_le_bytes());
        kh[96..104].copy_from_slice(&pages.to_le_bytes());
    }

    let mut bitmap1 = vec![0u8; bitmap_half as usize];
    let mut bitmap2 = vec![0u8; bitmap_half as usize];
    let mut dumped = Vec::new();
    for pfn in 0..pages {
        if spec.holes.contains(&pfn) {
            continue;
        }
        bitmap1[(pfn / 8) as usize] |= 1 << (pfn % 8);
        if !spec.excluded.contains(&pfn) {
            bitmap2[(pfn / 8) as usize] |= 1 << (pfn % 8);
            dumped.push(pfn);
        }
    }

    let desc_off = (1 + sub_hdr_size) * bs + 2 * bitmap_half;
    let data_start = desc_off + dumped.len() as u64 * DESC_SIZE;
    let mut descs = vec![0u8; dumped.len() * DESC_SIZE as usize];
    // The shared zero page comes first, as makedumpfile writes it.
    let mut data = vec![0u8; bs as usize];
    let written = spec.incomplete_after.unwrap_or(u64::MAX);
    for (i, &pfn) in dumped.iter().enumerate() {
        if i as u64 >= written {
            break;
        }
        let page = &spec.memory[(pfn * bs) as usize..((pfn + 1) * bs) as usize];
        let (offset, size, flags) = if page.iter().all(|&b| b == 0) {
            (data_start, bs, 0)
        } else {
            let offset = data_start + data.len() as u64;
            match (spec.compress)(page).filter(|c| (c.len() as u64) < bs) {
                Some(c) => {
                    data.extend_from_slice(&c);
                    (offset, c.len() as u64, spec.compression.flag())
                }
                None => {
                    data.extend_from_slice(page);
                    (offset, bs, 0)
                }
            }
        };
        let d = &mut descs[i * DESC_SIZE as usize..(i + 1) * DESC_SIZE as usize];
        d[0..8].copy_from_slice(&offset.to_le_bytes());
        d[8..12].copy_from_slice(&(size as u32).to_le_bytes());
        d[12..16].copy_from_slice(&flags.to_le_bytes());
    }

    let mut out = h;
    out.extend(kh);
    out.extend(bitmap1);
    out.extend(bitmap2);
    out.extend(descs);
    out.extend(data);
    out
}
