//! Compacts a real kdump-compressed dump to the pages its kernel log reads, for test fixtures.
//!
//! `cargo run -p kdrill-vmcore --example compact -- <vmcore> <out> [--deep [--prune-btf] [--whole-orc]]`: opens the
//! dump through a tracing `ReadAt`, reads the log, notes which page
//! descriptors the log walk read, and writes a kdump file with the same
//! headers, VMCOREINFO, notes and 1st bitmap but only those pages dumped. The
//! result reads the same log (checked before writing). With `--deep` it also keeps the
//! pages of every CPU's backtrace, the task list and the module list (symbols, BTF, ORC),
//! uncompressed, for `xz -9` to shrink (vmcore/tests/fixtures/*.deep.kdump.xz).
//!
//! With `--prune-btf` (7.x fixtures, whose 5-6 MB of BTF would be most of the file) the BTF
//! keeps its header, sections and type numbering, but every type the reader does not reach
//! from the structs it asks for (`ROOTS`, their members' types, every enum) is blanked: name
//! and kind-specific data zeroed, and every string no kept type names zeroed. The result is
//! checked like the rest: the same backtraces, tasks and modules as the whole dump.
//!
//! With `--whole-orc` every page of the vmlinux's ORC arrays is kept, for drgn, which reads
//! them whole: entries on pages the reader never read become filler (see `fill_orc`), so
//! drgn's unwind of the kept stacks finds exactly the entries kdrill's did.

use std::sync::{Arc, Mutex};

use kdrill_vmcore::{ReadAt, Vmcore};

struct Tracing {
    data: Arc<Vec<u8>>,
    reads: Arc<Mutex<Vec<(u64, usize)>>>,
}

impl ReadAt for Tracing {
    fn size(&self) -> std::io::Result<u64> {
        Ok(self.data.len() as u64)
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        self.reads.lock().unwrap().push((offset, buf.len()));
        self.data.as_slice().read_at(offset, buf)
    }
}

fn u32_at(b: &[u8], at: usize) -> u64 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as u64
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// The pfns whose page descriptors `reads` touched.
fn page_reads(reads: &[(u64, usize)], d: &[u8]) -> Vec<u64> {
    let bs = u32_at(d, 428);
    let bitmap1 = ((1 + u32_at(d, 432)) * bs) as usize;
    let half = (u32_at(d, 436) * bs / 2) as usize;
    let desc_off = bitmap1 as u64 + 2 * half as u64;
    let bitmap2 = &d[bitmap1 + half..bitmap1 + 2 * half];
    let dumped: Vec<u64> = (0..half as u64 * 8)
        .filter(|p| bitmap2[(p / 8) as usize] & (1 << (p % 8)) != 0)
        .collect();
    reads
        .iter()
        .filter(|&&(off, len)| len == 24 && off >= desc_off)
        .filter_map(|&(off, _)| dumped.get(((off - desc_off) / 24) as usize).copied())
        .collect()
}

/// The structs and unions kdrill's reader looks up by name (`btf.offset`, `struct_id`).
const ROOTS: &[&str] = &[
    "task_struct",
    "signal_struct",
    "inactive_task_frame",
    "module",
    "module_layout",
    "module_memory",
    "mod_kallsyms",
    "pcpu_hot",
    "rq",
];

/// Extra bytes after a BTF type's 12-byte header (`include/uapi/linux/btf.h`).
fn btf_extra(kind: u32, vlen: usize) -> usize {
    match kind {
        1 | 14 | 17 => 4,
        3 => 12,
        4 | 5 | 15 | 19 => vlen * 12,
        6 | 13 => vlen * 8,
        _ => 0,
    }
}

/// Blanks what the reader does not use of the BTF blob `b` (see the module's doc).
fn prune_btf(b: &mut [u8]) {
    let hdr = u32_at(b, 4) as usize;
    let (t0, tlen) = (hdr + u32_at(b, 8) as usize, u32_at(b, 12) as usize);
    let (s0, slen) = (hdr + u32_at(b, 16) as usize, u32_at(b, 20) as usize);
    let mut at = vec![0usize];
    let mut pos = t0;
    while pos < t0 + tlen {
        let info = u32_at(b, pos + 4) as u32;
        at.push(pos);
        pos += 12 + btf_extra((info >> 24) & 0x1f, (info & 0xffff) as usize);
    }
    let head = |b: &[u8], id: usize| {
        let p = at[id];
        let info = u32_at(b, p + 4) as u32;
        (p, (info >> 24) & 0x1f, (info & 0xffff) as usize)
    };
    let name = |b: &[u8], id: usize| {
        let off = s0 + u32_at(b, at[id]) as usize;
        let end = b[off..].iter().position(|&c| c == 0).unwrap_or(0);
        String::from_utf8_lossy(&b[off..off + end]).into_owned()
    };
    // Keep: the roots, every enum, and whatever a kept type names as a member, element or
    // underlying type (not through pointers: the reader never follows one).
    let mut keep = vec![false; at.len()];
    let mut todo: Vec<usize> = (1..at.len())
        .filter(|&id| {
            let (_, kind, _) = head(b, id);
            matches!(kind, 6 | 19) || (matches!(kind, 4 | 5) && ROOTS.contains(&&*name(b, id)))
        })
        .collect();
    while let Some(id) = todo.pop() {
        if id == 0 || id >= at.len() || keep[id] {
            continue;
        }
        keep[id] = true;
        let (p, kind, vlen) = head(b, id);
        match kind {
            4 | 5 => todo.extend((0..vlen).map(|i| u32_at(b, p + 16 + 12 * i) as usize)),
            3 => todo.push(u32_at(b, p + 12) as usize),
            8..=11 | 18 => todo.push(u32_at(b, p + 8) as usize),
            _ => {}
        }
    }
    let mut names = vec![false; slen];
    for (id, &kept) in keep.iter().enumerate().skip(1) {
        let (p, kind, vlen) = head(b, id);
        let end = p + 12 + btf_extra(kind, vlen);
        if !kept {
            b[p..p + 4].fill(0);
            b[p + 8..end].fill(0);
            continue;
        }
        let mut offs = vec![u32_at(b, p) as usize];
        let step = match kind {
            4 | 5 | 19 => 12,
            6 => 8,
            _ => 0,
        };
        if step > 0 {
            offs.extend((0..vlen).map(|i| u32_at(b, p + 12 + step * i) as usize));
        }
        for o in offs {
            let mut i = o;
            while i < slen && b[s0 + i] != 0 {
                names[i] = true;
                i += 1;
            }
        }
    }
    for (i, used) in names.iter().enumerate() {
        if !used {
            b[s0 + i] = 0;
        }
    }
}

/// Fills the entries of `orc_unwind_ip` on pages the reader never read (`touched` holds those
/// it did) with the address before them, and their `orc_unwind` entries with zeros: the
/// arrays stay sorted, every lookup the reader made finds the entry it found (its successor
/// was read too), and the filler compresses to little. `at` maps an address to the file.
fn fill_orc(
    out: &mut [u8],
    [ips, ips_end, entries, _]: [u64; 4],
    touched: &std::collections::HashSet<u64>,
    at: impl Fn(u64) -> usize,
) {
    let mut prev = 0u64;
    for k in 0..(ips_end - ips) / 4 {
        let va = ips + 4 * k;
        let o = at(va);
        if touched.contains(&(va & !0xfff)) {
            let rel = i32::from_le_bytes(out[o..o + 4].try_into().unwrap());
            prev = va.wrapping_add(rel as i64 as u64);
            continue;
        }
        let rel = prev.wrapping_sub(va) as i64 as i32;
        out[o..o + 4].copy_from_slice(&rel.to_le_bytes());
        for i in 0..6 {
            let e = at(entries + 6 * k + i);
            out[e] = 0;
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, output, ..] = &args[..] else {
        eprintln!("usage: compact <vmcore> <out> [--deep [--prune-btf] [--whole-orc]]");
        std::process::exit(2);
    };
    let data = Arc::new(std::fs::read(input).expect("read the dump"));
    assert_eq!(
        &data[..8],
        b"KDUMP   ",
        "only kdump-compressed dumps are compacted"
    );
    let reads = Arc::new(Mutex::new(Vec::new()));
    let dump = Vmcore::from_source(Tracing {
        data: data.clone(),
        reads: reads.clone(),
    })
    .expect("open the dump");
    reads.lock().unwrap().clear();
    let log = dump.dmesg_records().expect("read the log");
    // With `--deep`, also every page the backtraces, tasks and modules read.
    let deep = args.iter().any(|a| a == "--deep");
    let deep_view = |d: &Vmcore| {
        let cpus: Vec<u32> = d
            .cpu_registers()
            .expect("registers")
            .iter()
            .map(|c| c.cpu)
            .collect();
        let bts: Vec<_> = cpus
            .iter()
            .map(|&c| d.backtrace(c).expect("backtrace"))
            .collect();
        let tasks = d.tasks().expect("tasks").tasks;
        // Every sleeping task's, where the dump holds it (makedumpfile 1.7.2 drops some
        // task_struct pages of 6.12 and 7.x kernels).
        let sleeping: Vec<_> = tasks
            .iter()
            .filter(|t| t.cpu.is_none() && t.pid != 0)
            .map(|t| d.task_backtrace(t.pid).map_err(|e| e.to_string()))
            .collect();
        (bts, sleeping, tasks, d.modules().expect("modules").modules)
    };
    let want = deep.then(|| deep_view(&dump));
    // With `--whole-orc`: the vmlinux ORC arrays' bounds, and the pages of `orc_unwind_ip`
    // the reader's lookups read (by virtual page).
    let mut orc = None;
    if deep {
        // Other readers (drgn's libkdumpfile) walk the page tables for kernel-image addresses
        // too: keep the tables that map every kernel-image page kept.
        let vi = dump.vmcoreinfo().expect("VMCOREINFO");
        let phys_base = dump.phys_base();
        let image = vi.number("KERNEL_IMAGE_SIZE").unwrap_or(512 << 20);
        let pages: Vec<u64> = page_reads(&reads.lock().unwrap(), &data);
        if args.iter().any(|a| a == "--whole-orc") {
            let syms = dump.symbols().expect("symbols");
            let at = |n: &str| syms.address_of(n).expect("an ORC bound");
            let bounds = [
                at("__start_orc_unwind_ip"),
                at("__stop_orc_unwind_ip"),
                at("__start_orc_unwind"),
                at("__stop_orc_unwind"),
            ];
            let read: std::collections::HashSet<u64> = pages.iter().copied().collect();
            let touched: std::collections::HashSet<u64> = (bounds[0] & !0xfff..bounds[1])
                .step_by(4096)
                .filter(|va| read.contains(&((va - 0xffff_ffff_8000_0000 + phys_base) / 4096)))
                .collect();
            for range in [bounds[0]..bounds[1], bounds[2]..bounds[3]] {
                for va in (range.start & !0xfff..range.end).step_by(4096) {
                    let _ = dump.walk_page_tables(va);
                }
            }
            orc = Some((bounds, touched));
        }
        for pfn in pages {
            let paddr = pfn * 4096;
            // phys_base is "negative" when KASLR puts the image below its link address.
            let off = paddr.wrapping_sub(phys_base);
            if off < image {
                let _ = dump.walk_page_tables(0xffff_ffff_8000_0000 + off);
            }
        }
    }

    let d = &data[..];
    let bs = u32_at(d, 428);
    let sub_hdr = u32_at(d, 432);
    let bitmap_blocks = u32_at(d, 436);
    let bitmap1 = ((1 + sub_hdr) * bs) as usize;
    let half = (bitmap_blocks * bs / 2) as usize;
    let desc_off = bitmap1 as u64 + 2 * half as u64;
    // pfn of each dumped page, in descriptor order
    let bitmap2 = &d[bitmap1 + half..bitmap1 + 2 * half];
    let dumped: Vec<u64> = (0..half as u64 * 8)
        .filter(|p| bitmap2[(p / 8) as usize] & (1 << (p % 8)) != 0)
        .collect();
    let mut keep: Vec<usize> = reads
        .lock()
        .unwrap()
        .iter()
        .filter(|&&(off, len)| len == 24 && off >= desc_off)
        .map(|&(off, _)| ((off - desc_off) / 24) as usize)
        .filter(|&i| i < dumped.len())
        .collect();
    if let Some((b, _)) = &orc {
        // Every page of both arrays: drgn reads them whole.
        for range in [b[0]..b[1], b[2]..b[3]] {
            for va in (range.start & !0xfff..range.end).step_by(4096) {
                let pfn = (va - 0xffff_ffff_8000_0000 + dump.phys_base()) / bs;
                keep.push(dumped.binary_search(&pfn).expect("an ORC page in the dump"));
            }
        }
    }
    keep.sort_unstable();
    keep.dedup();

    let mut out = d[..bitmap1 + half].to_vec();
    let mut new_bitmap2 = vec![0u8; half];
    for &i in &keep {
        let p = dumped[i];
        new_bitmap2[(p / 8) as usize] |= 1 << (p % 8);
    }
    out.extend_from_slice(&new_bitmap2);
    let data_start = out.len() as u64 + keep.len() as u64 * 24;
    let mut descs = Vec::new();
    let mut pages = Vec::new();
    // pfn -> offset in `out` of each page kept uncompressed.
    let mut raw_at = std::collections::HashMap::new();
    for &i in &keep {
        let at = (desc_off + i as u64 * 24) as usize;
        let mut desc = d[at..at + 24].to_vec();
        let (offset, size) = (u64_at(&desc, 0) as usize, u32_at(&desc, 8) as usize);
        desc[0..8].copy_from_slice(&(data_start + pages.len() as u64).to_le_bytes());
        let data = &d[offset..offset + size];
        // --deep keeps zlib and LZO pages uncompressed (flags 0), so that xz over the whole
        // file finds what pages share: the fixture is then a third smaller.
        let flags = u32_at(&desc, 12);
        if deep && (flags == 1 || flags == 2) {
            let mut raw = Vec::new();
            if flags == 1 {
                std::io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(data), &mut raw)
                    .expect("a zlib page");
            } else {
                raw = vec![0u8; bs as usize];
                let n = lzo::decompress_into(data, &mut raw).expect("an LZO page");
                raw.truncate(n);
            }
            desc[8..12].copy_from_slice(&(raw.len() as u32).to_le_bytes());
            desc[12..16].copy_from_slice(&0u32.to_le_bytes());
            raw_at.insert(dumped[i], data_start as usize + pages.len());
            pages.extend_from_slice(&raw);
        } else {
            if flags == 0 && size == bs as usize {
                raw_at.insert(dumped[i], data_start as usize + pages.len());
            }
            pages.extend_from_slice(data);
        }
        descs.extend_from_slice(&desc);
    }
    out.extend_from_slice(&descs);
    out.extend_from_slice(&pages);
    if args.iter().any(|a| a == "--prune-btf") {
        let syms = dump.symbols().expect("symbols");
        let (start, stop) = (
            syms.address_of("__start_BTF").expect("__start_BTF"),
            syms.address_of("__stop_BTF").expect("__stop_BTF"),
        );
        // Kernel-image addresses: __pa_symbol(), x - __START_KERNEL_map + phys_base.
        let file_at = |va: u64| {
            let pa = va - 0xffff_ffff_8000_0000 + dump.phys_base();
            raw_at
                .get(&(pa / bs))
                .expect("a BTF page kept uncompressed")
                + (pa % bs) as usize
        };
        let mut blob: Vec<u8> = (start..stop).map(|va| out[file_at(va)]).collect();
        prune_btf(&mut blob);
        for (va, byte) in (start..stop).zip(blob) {
            out[file_at(va)] = byte;
        }
    }

    if let Some((b, touched)) = &orc {
        fill_orc(&mut out, *b, touched, |va| {
            let pa = va - 0xffff_ffff_8000_0000 + dump.phys_base();
            raw_at
                .get(&(pa / bs))
                .expect("an ORC page kept uncompressed")
                + (pa % bs) as usize
        });
    }
    let check = Vmcore::from_source(out.clone()).expect("open the compacted dump");
    assert_eq!(check.dmesg_records().expect("its log"), log, "the same log");
    if let Some(want) = want {
        assert_eq!(
            deep_view(&check),
            want,
            "the same backtraces, tasks and modules"
        );
    }
    std::fs::write(output, &out).expect("write the compacted dump");
    eprintln!(
        "{input}: {} bytes, {} dumped pages -> {output}: {} bytes, {} pages, {} log records",
        d.len(),
        dumped.len(),
        out.len(),
        keep.len(),
        log.len()
    );
}
