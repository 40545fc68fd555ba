//! Fuzz the reader with synthetic dumps built from a recipe: the builders' parameters,
//! VMCOREINFO values and header fields, chosen by `arbitrary` from the fuzzer's bytes.
//!
//! Byte-level mutation (`read_dump`) rarely makes a field consistent with the
//! fields it depends on (a PAGESIZE in VMCOREINFO text, a flattened record far
//! out, a ring whose ids carry state bits); here every input is a well-formed
//! dump first, then bent by a few named overrides.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

use kdrill_vmcore::synth::{self, Options};
use kdrill_vmcore::{Compression, Vmcore};

#[derive(Arbitrary, Debug)]
enum Format {
    Elf,
    QemuElf { pn_xnum: bool },
    Kdump(KdumpRecipe),
    QemuKdump { zstd: bool },
}

#[derive(Arbitrary, Debug)]
struct KdumpRecipe {
    /// 0 none, 1 zlib, 2 snappy, 3 zstd.
    compression: u8,
    /// Page size 4096 << (shift % 5): up to 64 KiB, and invalid beyond.
    page_shift: u8,
    header_version: u8,
    incomplete_after: Option<u16>,
    nr_cpus: u8,
    phys_base: u64,
    /// Pages left out (by dump level), as pfns modulo the memory.
    excluded: Vec<u8>,
}

/// VMCOREINFO keys whose values steer the reader.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Key {
    PageSize,
    PhysBase,
    InitTopPgt,
    L5,
    KernelImageSize,
    SmeMask,
    Prb,
    SizeRingbuffer,
    SizeDesc,
    SizeInfo,
    OffsetDescRing,
    OffsetTextRing,
    OffsetHeadId,
    OffsetTailId,
    OffsetStateVar,
    OffsetTextLen,
    OffsetCallerId,
    OffsetCounter,
    LogBuf,
    LogBufLen,
    SizePrintkLog,
    OffsetLen,
}

impl Key {
    fn name(self) -> &'static str {
        match self {
            Key::PageSize => "PAGESIZE",
            Key::PhysBase => "NUMBER(phys_base)",
            Key::InitTopPgt => "SYMBOL(init_top_pgt)",
            Key::L5 => "NUMBER(pgtable_l5_enabled)",
            Key::KernelImageSize => "NUMBER(KERNEL_IMAGE_SIZE)",
            Key::SmeMask => "NUMBER(sme_mask)",
            Key::Prb => "SYMBOL(prb)",
            Key::SizeRingbuffer => "SIZE(printk_ringbuffer)",
            Key::SizeDesc => "SIZE(prb_desc)",
            Key::SizeInfo => "SIZE(printk_info)",
            Key::OffsetDescRing => "OFFSET(printk_ringbuffer.desc_ring)",
            Key::OffsetTextRing => "OFFSET(printk_ringbuffer.text_data_ring)",
            Key::OffsetHeadId => "OFFSET(prb_desc_ring.head_id)",
            Key::OffsetTailId => "OFFSET(prb_desc_ring.tail_id)",
            Key::OffsetStateVar => "OFFSET(prb_desc.state_var)",
            Key::OffsetTextLen => "OFFSET(printk_info.text_len)",
            Key::OffsetCallerId => "OFFSET(printk_info.caller_id)",
            Key::OffsetCounter => "OFFSET(atomic_long_t.counter)",
            Key::LogBuf => "SYMBOL(log_buf)",
            Key::LogBufLen => "SYMBOL(log_buf_len)",
            Key::SizePrintkLog => "SIZE(printk_log)",
            Key::OffsetLen => "OFFSET(printk_log.len)",
        }
    }
}

/// A header field of the finished file, by name, so overrides hit real fields.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Field {
    /// kdump: block_size, sub_hdr_size, bitmap_blocks, max_mapnr, nr_cpus, status, version.
    KdumpBlockSize,
    KdumpSubHdrSize,
    KdumpBitmapBlocks,
    KdumpMaxMapnr,
    KdumpNrCpus,
    KdumpStatus,
    KdumpVersion,
    /// kdump sub header (at the block size): phys_base, vmcoreinfo offset/size, notes offset/size, max_mapnr_64.
    SubPhysBase,
    SubVmcoreinfoOffset,
    SubVmcoreinfoSize,
    SubNotesOffset,
    SubNotesSize,
    SubMaxMapnr64,
    /// ELF: e_phoff, e_shoff, e_flags, e_phnum; program header `n`'s offset, paddr, filesz, memsz.
    ElfPhoff,
    ElfShoff,
    ElfFlags,
    ElfPhnum,
    Phdr {
        n: u8,
        which: u8,
    },
    /// Anywhere in the first 64 KiB.
    Raw {
        at: u16,
        width: u8,
    },
}

fn field_at(f: Field, block: usize) -> (usize, usize) {
    match f {
        Field::KdumpBlockSize => (428, 4),
        Field::KdumpSubHdrSize => (432, 4),
        Field::KdumpBitmapBlocks => (436, 4),
        Field::KdumpMaxMapnr => (440, 4),
        Field::KdumpNrCpus => (460, 4),
        Field::KdumpStatus => (424, 4),
        Field::KdumpVersion => (8, 4),
        Field::SubPhysBase => (block, 8),
        Field::SubVmcoreinfoOffset => (block + 32, 8),
        Field::SubVmcoreinfoSize => (block + 40, 8),
        Field::SubNotesOffset => (block + 48, 8),
        Field::SubNotesSize => (block + 56, 8),
        Field::SubMaxMapnr64 => (block + 96, 8),
        Field::ElfPhoff => (32, 8),
        Field::ElfShoff => (40, 8),
        Field::ElfFlags => (48, 4),
        Field::ElfPhnum => (56, 2),
        Field::Phdr { n, which } => {
            let base = 64 + (n % 6) as usize * 56;
            [
                (base, 4),
                (base + 8, 8),
                (base + 24, 8),
                (base + 32, 8),
                (base + 40, 8),
            ][which as usize % 5]
        }
        Field::Raw { at, width } => (at as usize, [1, 2, 4, 8][width as usize % 4]),
    }
}

#[derive(Arbitrary, Debug)]
struct Recipe {
    format: Format,
    legacy: bool,
    records: u8,
    five_level: bool,
    /// Ring of 2^(5 + n % 8) descriptors and 2^(12 + n % 5) text bytes, when set.
    ring_bits: Option<(u8, u8)>,
    head_id_flags: u8,
    overlapping_records: bool,
    aliased_text_bits: Option<u8>,
    log_buf_size: Option<u16>,
    log_buf_cycle: bool,
    vmcoreinfo: Vec<(Key, u64, bool)>,
    fields: Vec<(Field, u64)>,
    /// Flattened with records of `chunk` bytes, plus extra records (offset, length).
    flattened: Option<(u16, Vec<(u64, u8)>)>,
    truncate_at: Option<u32>,
}

fn compression(c: u8) -> Compression {
    [
        Compression::None,
        Compression::Zlib,
        Compression::Snappy,
        Compression::Zstd,
    ][c as usize % 4]
}

fn build(r: &Recipe) -> Vec<u8> {
    let mut o = Options {
        five_level: r.five_level,
        head_id_flags: (r.head_id_flags as u64 & 3) << 62,
        overlapping_records: r.overlapping_records,
        // Small rings, or ones past the memory budget (29, 31) or the kernel's limit (33):
        // a legitimate 2^27-byte ring reads and formats for seconds, which is no finding.
        aliased_text_bits: r
            .aliased_text_bits
            .map(|b| [12, 14, 16, 20, 29, 31, 33][b as usize % 7]),
        log_buf_cycle: r.log_buf_cycle,
        ..Options::default()
    };
    if let Some((c, s)) = r.ring_bits {
        (o.count_bits, o.size_bits) = (5 + c as u32 % 8, 12 + s as u32 % 5);
    }
    if let Some(size) = r.log_buf_size {
        o.log_buf_size = 1024 + size as usize;
    }
    o.vmcoreinfo = r
        .vmcoreinfo
        .iter()
        .take(4)
        .map(|&(k, v, hex)| {
            (
                k.name().to_string(),
                if hex {
                    format!("{v:x}")
                } else {
                    (v as i64).to_string()
                },
            )
        })
        .collect();
    let records = synth::sample_records(r.records as usize % 64);
    let k = if r.legacy {
        let texts: Vec<(u64, u8, Vec<u8>)> = records
            .iter()
            .map(|x| (x.timestamp_ns, x.level, x.text.clone()))
            .collect();
        let borrowed: Vec<(u64, u8, &[u8])> = texts
            .iter()
            .map(|(t, l, x)| (*t, *l, x.as_slice()))
            .collect();
        synth::legacy_kernel_with(&borrowed, &o)
    } else if records.is_empty() {
        synth::kernel_with(&synth::sample_records(1), &o)
    } else {
        synth::kernel_with(&records, &o)
    };
    let (mut file, block) = match &r.format {
        Format::Elf => (synth::elf(&k), 4096),
        Format::QemuElf { pn_xnum } => (synth::qemu_elf(&k, *pn_xnum), 4096),
        Format::QemuKdump { zstd } => {
            let c = if *zstd {
                Compression::Zstd
            } else {
                Compression::Snappy
            };
            (synth::qemu_kdump(&k, c), 4096)
        }
        Format::Kdump(kr) => {
            let c = compression(kr.compression);
            let compress = move |p: &[u8]| synth::compress_page(c, p);
            let mut spec = synth::kdump_spec(&k, &compress);
            spec.compression = c;
            // Page sizes the memory divides into; 64 KiB needs memory to match.
            spec.page_size = 4096 << (kr.page_shift % 5);
            if !(k.memory.len() as u64).is_multiple_of(spec.page_size) {
                spec.page_size = 4096;
            }
            spec.header_version = 1 + kr.header_version as u32 % 6;
            spec.incomplete_after = kr.incomplete_after.map(u64::from);
            spec.nr_cpus = kr.nr_cpus as u32 % 9;
            spec.phys_base = kr.phys_base;
            let pages = k.memory.len() as u64 / spec.page_size;
            let excluded: Vec<u64> = kr
                .excluded
                .iter()
                .take(16)
                .map(|&p| p as u64 % pages)
                .collect();
            spec.excluded = &excluded;
            let bs = spec.page_size as usize;
            (synth::build_kdump(&spec), bs)
        }
    };
    for &(f, v) in r.fields.iter().take(4) {
        let (at, width) = field_at(f, block);
        if at + width <= file.len() {
            file[at..at + width].copy_from_slice(&v.to_le_bytes()[..width]);
        }
    }
    if let Some((chunk, extra)) = &r.flattened {
        let extra: Vec<(u64, Vec<u8>)> = extra
            .iter()
            .take(4)
            .map(|&(off, len)| (off, vec![0x5a; len as usize]))
            .collect();
        let borrowed: Vec<(u64, &[u8])> = extra.iter().map(|(o, d)| (*o, d.as_slice())).collect();
        file = synth::flatten_with(&file, 512 + *chunk as usize, &borrowed);
    }
    if let Some(cut) = r.truncate_at {
        file.truncate(cut as usize % (file.len() + 1));
    }
    file
}

fuzz_target!(|recipe: Recipe| {
    let file = build(&recipe);
    if let Ok(dump) = Vmcore::from_source(file) {
        let _ = dump.info();
        if let Ok(records) = dump.dmesg_records() {
            let _ = kdrill_vmcore::format_dmesg(&records);
            let _ = kdrill_vmcore::panic_message(&records);
        }
    }
});
