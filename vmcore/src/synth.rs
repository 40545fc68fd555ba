//! Small synthetic dumps built in code, for tests here, in the harness and in fuzzing.
//!
//! [`kernel`] lays out 1 MiB of "physical memory" the way an x86_64 kernel
//! would leave it: a kernel image at `phys_base`, page tables under
//! `init_top_pgt` (4 or 5 levels), and a printk ring buffer (or an older
//! `log_buf`) whose pieces are reached through a 1 GiB page, a 2 MiB page and
//! 4 KiB pages mapped in reverse order. [`elf`] and [`kdump`] wrap that memory
//! in a dump file; [`flatten`] turns any file into makedumpfile's flattened format.

use crate::compress::Compression;
use crate::dmesg::LogRecord;
pub use crate::flattened::flatten;
use crate::logbuf::{build_log_buf, log_buf_vmcoreinfo};
pub use crate::ringbuffer::{build_ring, BuiltRing, RingPlacement, RingRecord};
use crate::x86_64::START_KERNEL_MAP;

pub const PAGE_SIZE: u64 = 4096;
const MEMORY: u64 = 1 << 20;
/// Physical address of the kernel image.
pub const PHYS_BASE: u64 = 0x40000;
const PGT_AREA: u64 = 0x80000;
const DIRECT_MAP: u64 = 0xffff_8880_0000_0000; // through a 1 GiB page
const VMALLOC: u64 = 0xffff_c900_0000_0000; // through a 2 MiB page
const VMEMMAP: u64 = 0xffff_ea00_0000_0000; // through 4 KiB pages, reversed
const DESCS_PHYS: u64 = 0x90000;
const INFOS_PHYS: u64 = 0xa0000;
const TEXT_PHYS: u64 = 0xc0000;
/// Pages no test reads; dumps may exclude them.
pub const SPARE_PAGES: std::ops::Range<u64> = 2..40;

/// A synthetic kernel's memory and what its log should read as.
pub struct Kernel {
    pub memory: Vec<u8>,
    pub vmcoreinfo: String,
    pub expected: Vec<LogRecord>,
    pub five_level: bool,
}

struct PageTables {
    top: u64,
    next_free: u64,
    five_level: bool,
}

impl PageTables {
    fn alloc(&mut self) -> u64 {
        let p = self.next_free;
        self.next_free += PAGE_SIZE;
        p
    }

    fn entry(mem: &[u8], at: u64) -> u64 {
        u64::from_le_bytes(mem[at as usize..at as usize + 8].try_into().unwrap())
    }

    /// Maps `vaddr` to `paddr` with a page of size 1 << `shift` (12, 21 or 30).
    fn map(&mut self, mem: &mut [u8], vaddr: u64, paddr: u64, shift: u32) {
        let shifts: &[u32] = if self.five_level {
            &[48, 39, 30, 21, 12]
        } else {
            &[39, 30, 21, 12]
        };
        let mut table = self.top;
        for &s in shifts {
            let at = table + ((vaddr >> s) & 0x1ff) * 8;
            if s == shift {
                let huge = if shift > 12 { 0x80 } else { 0 };
                mem[at as usize..at as usize + 8]
                    .copy_from_slice(&(paddr | huge | 0x63).to_le_bytes());
                return;
            }
            let mut e = Self::entry(mem, at);
            if e & 1 == 0 {
                e = self.alloc() | 0x63;
                mem[at as usize..at as usize + 8].copy_from_slice(&e.to_le_bytes());
            }
            table = e & 0x000f_ffff_ffff_f000;
        }
    }
}

/// A kernel-image virtual address; it lives at `PHYS_BASE + offset`.
fn image(offset: u64) -> u64 {
    START_KERNEL_MAP + offset
}

fn base_layout(five_level: bool) -> (Vec<u8>, PageTables, String) {
    let mut memory = vec![0u8; MEMORY as usize];
    // A little recognisable content everywhere, so no page is a zero page by accident.
    for (i, chunk) in memory.chunks_mut(PAGE_SIZE as usize).enumerate() {
        chunk[..8].copy_from_slice(&(0x5a5a_0000 + i as u64).to_le_bytes());
    }
    let top_table = image(0x2000);
    let top = image_phys(top_table);
    memory[top as usize..(top + PAGE_SIZE) as usize].fill(0);
    let mut pt = PageTables {
        top,
        next_free: PGT_AREA,
        five_level,
    };
    for p in (PGT_AREA..DESCS_PHYS).step_by(PAGE_SIZE as usize) {
        memory[p as usize..(p + PAGE_SIZE) as usize].fill(0);
    }
    pt.map(&mut memory, DIRECT_MAP, 0, 30);
    pt.map(&mut memory, VMALLOC, 0, 21);
    let vmcoreinfo = format!(
        "OSRELEASE=6.1.0-synthetic\nPAGESIZE={PAGE_SIZE}\nSYMBOL(init_top_pgt)={top_table:x}\n\
         NUMBER(pgtable_l5_enabled)={}\nNUMBER(phys_base)={}\nKERNELOFFSET=0\n\
         NUMBER(KERNEL_IMAGE_SIZE)=1073741824\nNUMBER(sme_mask)=0\nCRASHTIME=1764170000\n",
        five_level as u8, PHYS_BASE,
    );
    (memory, pt, vmcoreinfo)
}

/// Physical address of a kernel-image virtual address in the synthetic layout.
fn image_phys(vaddr: u64) -> u64 {
    vaddr - START_KERNEL_MAP + PHYS_BASE
}

fn put(memory: &mut [u8], paddr: u64, data: &[u8]) {
    memory[paddr as usize..paddr as usize + data.len()].copy_from_slice(data);
}

/// A kernel (5.10 and later) whose log is a lockless ring of 2^5 descriptors
/// and 2^13 text bytes holding `records`.
pub fn kernel(records: &[RingRecord], five_level: bool) -> Kernel {
    let (mut memory, mut pt, mut vmcoreinfo) = base_layout(five_level);
    let text_pages = (1u64 << 13) / PAGE_SIZE;
    for j in 0..text_pages {
        let phys = TEXT_PHYS + (text_pages - 1 - j) * PAGE_SIZE;
        pt.map(&mut memory, VMEMMAP + j * PAGE_SIZE, phys, 12);
    }
    let at = RingPlacement {
        prb_symbol: image(0x1000),
        ringbuffer: image(0x1100),
        descs: DIRECT_MAP + DESCS_PHYS,
        infos: VMALLOC + INFOS_PHYS,
        text: VMEMMAP,
    };
    let ring = build_ring(records, 5, 13, at);
    for (vaddr, data) in &ring.blobs {
        if *vaddr == at.text {
            for (j, page) in data.chunks(PAGE_SIZE as usize).enumerate() {
                put(
                    &mut memory,
                    TEXT_PHYS + (text_pages - 1 - j as u64) * PAGE_SIZE,
                    page,
                );
            }
        } else if *vaddr >= START_KERNEL_MAP {
            put(&mut memory, image_phys(*vaddr), data);
        } else if *vaddr >= VMALLOC {
            put(&mut memory, vaddr - VMALLOC, data);
        } else {
            put(&mut memory, vaddr - DIRECT_MAP, data);
        }
    }
    vmcoreinfo.push_str(&ring.vmcoreinfo);
    Kernel {
        memory,
        vmcoreinfo,
        expected: ring.expected,
        five_level,
    }
}

/// A kernel (3.5 to 5.9) whose log is a structured `log_buf` of 4 KiB holding
/// `records` (time stamp ns, level, text), wrapped if they do not fit.
pub fn legacy_kernel(records: &[(u64, u8, &[u8])]) -> Kernel {
    let (mut memory, _pt, mut vmcoreinfo) = base_layout(false);
    let with_dict: Vec<(u64, u8, &[u8], &[u8])> = records
        .iter()
        .map(|&(t, l, x)| (t, l, x, &b"SUBSYSTEM=virtio"[..]))
        .collect();
    let (buf, first, next) = build_log_buf(&with_dict, PAGE_SIZE as usize);
    let buf_vaddr = DIRECT_MAP + TEXT_PHYS;
    put(&mut memory, TEXT_PHYS, &buf);
    let vars = image(0x1000);
    put(&mut memory, image_phys(vars), &buf_vaddr.to_le_bytes());
    put(
        &mut memory,
        image_phys(vars + 8),
        &(buf.len() as u32).to_le_bytes(),
    );
    put(&mut memory, image_phys(vars + 12), &first.to_le_bytes());
    put(&mut memory, image_phys(vars + 16), &next.to_le_bytes());
    vmcoreinfo.push_str(&log_buf_vmcoreinfo(vars, vars + 8, vars + 12, vars + 16));
    // What the walk from first to next yields.
    let mut expected = Vec::new();
    let mut ptr = first as usize;
    while ptr != next as usize {
        let mut len = u16::from_le_bytes(buf[ptr + 8..ptr + 10].try_into().unwrap()) as usize;
        if len == 0 {
            ptr = 0;
            len = u16::from_le_bytes(buf[8..10].try_into().unwrap()) as usize;
        }
        let text_len = u16::from_le_bytes(buf[ptr + 10..ptr + 12].try_into().unwrap()) as usize;
        expected.push(LogRecord {
            seq: expected.len() as u64,
            timestamp_ns: u64::from_le_bytes(buf[ptr..ptr + 8].try_into().unwrap()),
            level: buf[ptr + 15] >> 5,
            facility: buf[ptr + 14],
            caller_id: None,
            text: buf[ptr + 16..ptr + 16 + text_len].to_vec(),
        });
        ptr += len;
    }
    Kernel {
        memory,
        vmcoreinfo,
        expected,
        five_level: false,
    }
}

/// An ELF vmcore of `k` as the capture kernel's `/proc/vmcore` shows it: two
/// CPU notes and VMCOREINFO, RAM in two PT_LOADs, and the kernel text mapped again.
pub fn elf(k: &Kernel) -> Vec<u8> {
    let mut notes = crate::notes::encode("CORE", crate::notes::NT_PRSTATUS, &[0; 336]);
    notes.extend(crate::notes::encode(
        "CORE",
        crate::notes::NT_PRSTATUS,
        &[0; 336],
    ));
    notes.extend(crate::notes::encode(
        "VMCOREINFO",
        0,
        k.vmcoreinfo.as_bytes(),
    ));
    let half = (MEMORY / 2) as usize;
    crate::elf::build(
        &notes,
        &[
            (
                PHYS_BASE,
                image(0),
                &k.memory[PHYS_BASE as usize..PHYS_BASE as usize + 0x10000],
                0x10000,
            ),
            (0, DIRECT_MAP, &k.memory[..half], half as u64),
            (
                half as u64,
                DIRECT_MAP + half as u64,
                &k.memory[half..],
                half as u64,
            ),
        ],
        false,
    )
}

/// A kdump-compressed file of `k`, pages compressed with `compress` under the
/// header's `compression`, leaving out `excluded` pages.
pub fn kdump(
    k: &Kernel,
    compression: Compression,
    compress: &dyn Fn(&[u8]) -> Option<Vec<u8>>,
    header_version: u32,
    excluded: &[u64],
) -> Vec<u8> {
    crate::diskdump::build(&crate::diskdump::KdumpSpec {
        memory: &k.memory,
        page_size: PAGE_SIZE,
        vmcoreinfo: k.vmcoreinfo.as_bytes(),
        header_version,
        compression,
        compress,
        excluded,
        holes: &[1],
        release: "6.1.0-synthetic",
        machine: "x86_64",
        timestamp: 1_764_170_001,
        nr_cpus: 2,
        phys_base: PHYS_BASE,
        dump_level: 31,
        incomplete_after: None,
    })
}

/// [`kdump`] with the standard compressor for `compression` (LZO excepted).
pub fn kdump_with(k: &Kernel, compression: Compression, excluded: &[u64]) -> Vec<u8> {
    kdump(
        k,
        compression,
        &|p| crate::compress::compress_page(compression, p),
        6,
        excluded,
    )
}

/// Records of varied length, levels and callers, some with newlines and
/// unprintable bytes, enough to wrap both rings of [`kernel`].
pub fn sample_records(n: usize) -> Vec<RingRecord> {
    (0..n)
        .map(|k| {
            let text = match k % 7 {
                0 => format!("Linux version 6.1.0-synthetic #{k} SMP PREEMPT_DYNAMIC"),
                1 => format!("line {k} with\nan embedded newline"),
                2 => format!("tab\there and bytes \u{e9} \x01 {k}"),
                3 => format!("Kernel panic - not syncing: synthetic crash {k}"),
                _ => format!("record {k} {}", "z".repeat(k * 37 % 180)),
            };
            let mut r = RingRecord::new(k as u64 * 1_234_567_891, text.as_bytes());
            r.level = (k % 8) as u8;
            r.caller_id = if k % 3 == 0 {
                0x8000_0000 | (k as u32 % 4)
            } else {
                100 + k as u32
            };
            r
        })
        .collect()
}

pub use crate::compress::compress_page;

/// [`kdump`] (version 6, zlib in the header) whose writer ran out of space
/// after `written` dumped pages: the INCOMPLETE flag is set, later descriptors
/// are zero and the file ends after the last page written.
pub fn kdump_incomplete(
    k: &Kernel,
    compress: &dyn Fn(&[u8]) -> Option<Vec<u8>>,
    written: u64,
) -> Vec<u8> {
    crate::diskdump::build(&crate::diskdump::KdumpSpec {
        memory: &k.memory,
        page_size: PAGE_SIZE,
        vmcoreinfo: k.vmcoreinfo.as_bytes(),
        header_version: 6,
        compression: Compression::Zlib,
        compress,
        excluded: &[],
        holes: &[1],
        release: "6.1.0-synthetic",
        machine: "x86_64",
        timestamp: 1_764_170_001,
        nr_cpus: 2,
        phys_base: PHYS_BASE,
        dump_level: 31,
        incomplete_after: Some(written),
    })
}

/// An ELF dump as QEMU's `dump-guest-memory` (paging false) writes it: CPU
/// notes, QEMU notes and the guest's VMCOREINFO note, PT_LOADs with `p_vaddr`
/// equal to `p_paddr`, a PT_LOAD QEMU did not store (`p_offset` -1), and, if
/// `pn_xnum`, the program header count in section header 0 (`e_phnum` 0xffff).
pub fn qemu_elf(k: &Kernel, pn_xnum: bool) -> Vec<u8> {
    let mut notes = crate::notes::encode("CORE", crate::notes::NT_PRSTATUS, &[0; 336]);
    notes.extend(crate::notes::encode("QEMU", 0, &[0; 456]));
    notes.extend(crate::notes::encode(
        "VMCOREINFO",
        0,
        k.vmcoreinfo.as_bytes(),
    ));
    let mut out = crate::elf::build(
        &notes,
        &[
            (0, 0, &k.memory[..], MEMORY),
            (MEMORY, MEMORY, &[], 1 << 20),
        ],
        false,
    );
    let last_phdr = 64 + 2 * 56;
    out[last_phdr + 8..last_phdr + 16].copy_from_slice(&u64::MAX.to_le_bytes());
    if pn_xnum {
        let shoff = out.len() as u64;
        out[40..48].copy_from_slice(&shoff.to_le_bytes());
        out[56..58].copy_from_slice(&0xffffu16.to_le_bytes());
        out[58..60].copy_from_slice(&64u16.to_le_bytes());
        out[60..62].copy_from_slice(&1u16.to_le_bytes());
        let mut shdr = vec![0u8; 64];
        shdr[44..48].copy_from_slice(&3u32.to_le_bytes());
        out.extend(shdr);
    }
    out
}

/// A kdump-compressed dump as QEMU's `dump-guest-memory -z/-l/-s` writes it:
/// flattened, no release or time in the header, and a sub-header phys_base
/// that is not to be trusted (QEMU parses VMCOREINFO's decimal value as hex).
pub fn qemu_kdump(k: &Kernel, compression: Compression) -> Vec<u8> {
    let compress = |p: &[u8]| crate::compress::compress_page(compression, p);
    let file = crate::diskdump::build(&crate::diskdump::KdumpSpec {
        memory: &k.memory,
        page_size: PAGE_SIZE,
        vmcoreinfo: k.vmcoreinfo.as_bytes(),
        header_version: 6,
        compression,
        compress: &compress,
        excluded: &[],
        holes: &[],
        release: "",
        machine: "x86_64",
        timestamp: 0,
        nr_cpus: 1,
        phys_base: 0x1234_5000,
        dump_level: 1,
        incomplete_after: None,
    });
    flatten(&file, 4 * PAGE_SIZE as usize)
}
