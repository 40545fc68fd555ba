//! Small synthetic dumps built in code, for tests here, in the harness and in fuzzing.
//!
//! [`kernel`] lays out 1 MiB of "physical memory" the way an x86_64 kernel
//! would leave it: a kernel image at `phys_base`, page tables under
//! `init_top_pgt` (4 or 5 levels), and a printk ring buffer (or an older
//! `log_buf`) whose pieces are reached through a 1 GiB page, a 2 MiB page and
//! 4 KiB pages mapped in reverse order. [`Options`] bend it the ways corrupt
//! or unusual dumps do (bigger rings, state bits in ids, overlapping records,
//! aliased page tables, VMCOREINFO values). [`elf`] and [`kdump`] (in
//! `dumps.rs`) wrap that memory in a dump file; [`flatten`] turns any file
//! into makedumpfile's flattened format.

mod dumps;

pub use dumps::*;

pub use crate::compress::compress_page;
use crate::dmesg::LogRecord;
pub use crate::flattened::{flatten, flatten_with};
use crate::logbuf::{build_log_buf, log_buf_vmcoreinfo};
pub use crate::ringbuffer::{
    build_ring, build_ring_placed, BlockPlacement, BuiltRing, RingPlacement, RingRecord,
};
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
/// Where rings and log buffers too big for the first MiB go (direct-mapped).
const BIG_PHYS: u64 = MEMORY;
/// Where an aliased text ring is mapped: every page of it is one zero page.
const ALIAS: u64 = 0xffff_ea80_0000_0000;
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
        let huge = if shift > 12 { 0x80 } else { 0 };
        self.set_entry(mem, vaddr, shift, paddr | huge | 0x63);
    }

    /// Writes `value` as the entry for `vaddr` at the level whose entries span 1 << `shift`.
    fn set_entry(&mut self, mem: &mut [u8], vaddr: u64, shift: u32, value: u64) {
        let shifts: &[u32] = if self.five_level {
            &[48, 39, 30, 21, 12]
        } else {
            &[39, 30, 21, 12]
        };
        let mut table = self.top;
        for &s in shifts {
            let at = table + ((vaddr >> s) & 0x1ff) * 8;
            if s == shift {
                mem[at as usize..at as usize + 8].copy_from_slice(&value.to_le_bytes());
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

/// How a synthetic kernel differs from the plain one; `Options::default()` is [`kernel`]'s.
#[derive(Debug, Clone)]
pub struct Options {
    pub five_level: bool,
    /// The ring has 2^`count_bits` descriptors (default 5) and 2^`size_bits`
    /// text bytes (default 13); rings over the first MiB's room go above it.
    pub count_bits: u32,
    pub size_bits: u32,
    /// Bits ORed into the ring's `head_id` (state bits, which the kernel never sets there).
    pub head_id_flags: u64,
    /// Every descriptor is finalized and claims (almost) the whole text ring.
    pub overlapping_records: bool,
    /// The ring claims 2^bits of text at an address whose pages all map onto one zero page.
    pub aliased_text_bits: Option<u32>,
    /// [`legacy_kernel`]: the `log_buf` size (default 4096, at least 1024).
    pub log_buf_size: usize,
    /// [`legacy_kernel`]: one 64 KiB record, then an end marker leading back
    /// to it, and a `log_next_idx` the walk never meets.
    pub log_buf_cycle: bool,
    /// VMCOREINFO `KEY=value` lines that replace the layout's (or are added).
    pub vmcoreinfo: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            five_level: false,
            count_bits: 5,
            size_bits: 13,
            head_id_flags: 0,
            overlapping_records: false,
            aliased_text_bits: None,
            log_buf_size: PAGE_SIZE as usize,
            log_buf_cycle: false,
            vmcoreinfo: Vec::new(),
        }
    }
}

fn apply_vmcoreinfo(text: &mut String, overrides: &[(String, String)]) {
    for (key, value) in overrides {
        let prefix = format!("{key}=");
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| !l.starts_with(&prefix))
            .map(str::to_string)
            .collect();
        lines.push(format!("{key}={value}"));
        *text = lines.join("\n") + "\n";
    }
}

/// Grows `memory` (a whole number of pages) to hold `len` bytes at `paddr`.
fn grow(memory: &mut Vec<u8>, paddr: u64, len: u64) {
    let end = (paddr + len).next_multiple_of(PAGE_SIZE) as usize;
    if memory.len() < end {
        memory.resize(end, 0);
    }
}

/// A kernel (5.10 and later) whose log is a lockless ring of 2^5 descriptors
/// and 2^13 text bytes holding `records`.
pub fn kernel(records: &[RingRecord], five_level: bool) -> Kernel {
    kernel_with(
        records,
        &Options {
            five_level,
            ..Options::default()
        },
    )
}

/// [`kernel`] as `o` bends it.
pub fn kernel_with(records: &[RingRecord], o: &Options) -> Kernel {
    let (mut memory, mut pt, mut vmcoreinfo) = base_layout(o.five_level);
    let (count, size) = (1u64 << o.count_bits, 1u64 << o.size_bits);
    let small = o.count_bits <= 5 && o.size_bits <= 13;
    let at = if small {
        let text_pages = size / PAGE_SIZE;
        for j in 0..text_pages {
            let phys = TEXT_PHYS + (text_pages - 1 - j) * PAGE_SIZE;
            pt.map(&mut memory, VMEMMAP + j * PAGE_SIZE, phys, 12);
        }
        RingPlacement {
            prb_symbol: image(0x1000),
            ringbuffer: image(0x1100),
            descs: DIRECT_MAP + DESCS_PHYS,
            infos: VMALLOC + INFOS_PHYS,
            text: VMEMMAP,
        }
    } else {
        let descs = BIG_PHYS;
        let infos = descs + (count * 24).next_multiple_of(PAGE_SIZE);
        let text = infos + (count * 88).next_multiple_of(PAGE_SIZE);
        grow(&mut memory, text, size);
        RingPlacement {
            prb_symbol: image(0x1000),
            ringbuffer: image(0x1100),
            descs: DIRECT_MAP + descs,
            infos: DIRECT_MAP + infos,
            text: DIRECT_MAP + text,
        }
    };
    let mut ring = build_ring(records, o.count_bits, o.size_bits, at);
    if o.overlapping_records {
        overlap_records(&mut ring, count, size);
    }
    // The ring struct (blob 1) has head_id at 24, tail_id at 32.
    let head = u64::from_le_bytes(ring.blobs[1].1[24..32].try_into().unwrap());
    ring.blobs[1].1[24..32].copy_from_slice(&(head | o.head_id_flags).to_le_bytes());
    for (vaddr, data) in &ring.blobs {
        if small && *vaddr == at.text {
            let text_pages = size / PAGE_SIZE;
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
    if let Some(bits) = o.aliased_text_bits {
        alias_text(&mut memory, &mut pt, bits);
    }
    vmcoreinfo.push_str(&ring.vmcoreinfo);
    apply_vmcoreinfo(&mut vmcoreinfo, &o.vmcoreinfo);
    Kernel {
        memory,
        vmcoreinfo,
        expected: if o.overlapping_records || o.aliased_text_bits.is_some() {
            Vec::new()
        } else {
            ring.expected
        },
        five_level: o.five_level,
    }
}

/// Rewrites every descriptor as finalized, ids in order, each claiming the
/// text ring but its last 8 bytes, with a `text_len` of 0xffff.
fn overlap_records(ring: &mut BuiltRing, count: u64, size: u64) {
    for k in 0..count {
        let id = count + k;
        let d = &mut ring.blobs[2].1[(k * 24) as usize..(k * 24 + 24) as usize];
        d[0..8].copy_from_slice(&((2u64 << 62) | id).to_le_bytes());
        d[8..16].copy_from_slice(&(id * size).to_le_bytes());
        d[16..24].copy_from_slice(&(id * size + size - 8).to_le_bytes());
        let i = &mut ring.blobs[3].1[(k * 88) as usize..(k * 88 + 88) as usize];
        i[16..18].copy_from_slice(&0xffffu16.to_le_bytes());
    }
    let rb = &mut ring.blobs[1].1;
    rb[24..32].copy_from_slice(&(2 * count - 1).to_le_bytes());
    rb[32..40].copy_from_slice(&count.to_le_bytes());
}

/// Points the ring's text at [`ALIAS`], claiming 2^`bits` bytes, and maps
/// every 4 KiB page there onto one zero page through one shared PMD and PTE table.
fn alias_text(memory: &mut [u8], pt: &mut PageTables, bits: u32) {
    let (pmd, pte, zero) = (pt.alloc(), pt.alloc(), pt.alloc());
    let gib = (1u64 << bits).div_ceil(1 << 30);
    for g in 0..gib {
        pt.set_entry(memory, ALIAS + (g << 30), 30, pmd | 0x63);
    }
    for i in 0..512u64 {
        put(memory, pmd + i * 8, &(pte | 0x63).to_le_bytes());
        put(memory, pte + i * 8, &(zero | 0x63).to_le_bytes());
    }
    let rb = image_phys(image(0x1100)) as usize;
    memory[rb + 48..rb + 52].copy_from_slice(&bits.to_le_bytes());
    memory[rb + 56..rb + 64].copy_from_slice(&ALIAS.to_le_bytes());
}

/// A kernel (3.5 to 5.9) whose log is a structured `log_buf` of 4 KiB holding
/// `records` (time stamp ns, level, text), wrapped if they do not fit.
pub fn legacy_kernel(records: &[(u64, u8, &[u8])]) -> Kernel {
    legacy_kernel_with(records, &Options::default())
}

/// [`legacy_kernel`] as `o` bends it (`log_buf_size`, `log_buf_cycle`, `vmcoreinfo`).
pub fn legacy_kernel_with(records: &[(u64, u8, &[u8])], o: &Options) -> Kernel {
    let (mut memory, _pt, mut vmcoreinfo) = base_layout(false);
    let with_dict: Vec<(u64, u8, &[u8], &[u8])> = records
        .iter()
        .map(|&(t, l, x)| (t, l, x, &b"SUBSYSTEM=virtio"[..]))
        .collect();
    // At least room for any one record of `sample_records` and an end marker.
    let size = o.log_buf_size.max(1024);
    let (mut buf, mut first, mut next) = build_log_buf(&with_dict, size);
    if o.log_buf_cycle {
        // One record of 0xffe0 text bytes (nearly the most a u16 length allows)
        // at 0, an end marker after it, and a next index inside the record:
        // the walk laps 0 → end marker → 0.
        let text_len = 0xffe0u16;
        let len = 16 + text_len as usize;
        buf = vec![0u8; size.max(len + 16)];
        buf[8..10].copy_from_slice(&(len as u16).to_le_bytes());
        buf[10..12].copy_from_slice(&text_len.to_le_bytes());
        buf[15] = 6 << 5;
        (first, next) = (0, 8);
    }
    let buf_phys = if buf.len() as u64 <= MEMORY - TEXT_PHYS {
        TEXT_PHYS
    } else {
        BIG_PHYS
    };
    grow(&mut memory, buf_phys, buf.len() as u64);
    let buf_vaddr = DIRECT_MAP + buf_phys;
    put(&mut memory, buf_phys, &buf);
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
    apply_vmcoreinfo(&mut vmcoreinfo, &o.vmcoreinfo);
    // What the walk from first to next yields.
    let mut expected = Vec::new();
    let mut ptr = first as usize;
    while ptr != next as usize && !o.log_buf_cycle {
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
