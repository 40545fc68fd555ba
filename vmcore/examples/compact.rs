//! Compacts a real kdump-compressed dump to the pages its kernel log reads, for test fixtures.
//!
//! `cargo run -p kdrill-vmcore --example compact -- <vmcore> <out> [--deep]`: opens the
//! dump through a tracing `ReadAt`, reads the log, notes which page
//! descriptors the log walk read, and writes a kdump file with the same
//! headers, VMCOREINFO, notes and 1st bitmap but only those pages dumped. The
//! result reads the same log (checked before writing). With `--deep` it also keeps the
//! pages of every CPU's backtrace, the task list and the module list (symbols, BTF, ORC),
//! uncompressed, for `xz -9` to shrink (vmcore/tests/fixtures/*.deep.kdump.xz).

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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, output, ..] = &args[..] else {
        eprintln!("usage: compact <vmcore> <out> [--deep]");
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
        (
            bts,
            d.task_backtrace(1).expect("init's backtrace"),
            d.tasks().expect("tasks").tasks,
            d.modules().expect("modules").modules,
        )
    };
    let want = deep.then(|| deep_view(&dump));
    if deep {
        // Other readers (drgn's libkdumpfile) walk the page tables for kernel-image addresses
        // too: keep the tables that map every kernel-image page kept.
        let vi = dump.vmcoreinfo().expect("VMCOREINFO");
        let phys_base = dump.phys_base();
        let image = vi.number("KERNEL_IMAGE_SIZE").unwrap_or(512 << 20);
        let pages: Vec<u64> = page_reads(&reads.lock().unwrap(), &data);
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
    for &i in &keep {
        let at = (desc_off + i as u64 * 24) as usize;
        let mut desc = d[at..at + 24].to_vec();
        let (offset, size) = (u64_at(&desc, 0) as usize, u32_at(&desc, 8) as usize);
        desc[0..8].copy_from_slice(&(data_start + pages.len() as u64).to_le_bytes());
        let data = &d[offset..offset + size];
        // --deep keeps zlib pages uncompressed (flags 0), so that xz over the whole file
        // finds what pages share: the fixture is then a third smaller.
        if deep && u32_at(&desc, 12) == 1 {
            let mut raw = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(data), &mut raw)
                .expect("a zlib page");
            desc[8..12].copy_from_slice(&(raw.len() as u32).to_le_bytes());
            desc[12..16].copy_from_slice(&0u32.to_le_bytes());
            pages.extend_from_slice(&raw);
        } else {
            pages.extend_from_slice(data);
        }
        descs.extend_from_slice(&desc);
    }
    out.extend_from_slice(&descs);
    out.extend_from_slice(&pages);

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
