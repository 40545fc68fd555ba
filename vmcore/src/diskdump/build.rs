//! Synthetic kdump-compressed files laid out as makedumpfile writes them, for tests and fuzzing.

use super::{
    DESC_SIZE, INCOMPLETE, OFF_BITMAP_BLOCKS, OFF_BLOCK_SIZE, OFF_MACHINE, OFF_MAX_MAPNR,
    OFF_NR_CPUS, OFF_RELEASE, OFF_STATUS, OFF_SUB_HDR_SIZE, OFF_TIMESTAMP, OFF_VERSION, SIGNATURE,
    SUB_HEADER_SIZE,
};
use crate::compress::Compression;
use crate::notes;

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
