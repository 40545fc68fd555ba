//! Fuzz the kdump-compressed layout's invariants with an oracle: never a clean, different log.
//!
//! The input is a list of patches laid only over the 1st and 2nd bitmaps and the page
//! descriptor table of a real dump: the compacted Debian 6.1 SysRq dump (zlib pages) or the
//! Debian 7.2 NMI dump (LZO, pages uncompressed), picked by the first byte. Each patch is
//! `offset: u32, len: u8, bytes` (offsets modulo that area's length, at most 8 bytes). The
//! patched dump must give an error, the unpatched dump's log, or an answer marked partial
//! (cut short or incomplete); a different log from a dump that says it is whole panics.

#![no_main]

use std::sync::OnceLock;

use kdrill_vmcore::{LogRecord, Vmcore};
use libfuzzer_sys::fuzz_target;

struct Base {
    dump: Vec<u8>,
    /// The bitmaps and the descriptor table: from the 1st bitmap to the page data.
    area: std::ops::Range<usize>,
    log: Vec<LogRecord>,
}

fn base(dump: Vec<u8>) -> Base {
    let u32_at = |at: usize| u32::from_le_bytes(dump[at..at + 4].try_into().unwrap()) as usize;
    let bs = u32_at(428);
    let bitmap1 = (1 + u32_at(432)) * bs;
    let half = u32_at(436) * bs / 2;
    let table = bitmap1 + 2 * half;
    let dumped: usize = dump[bitmap1 + half..table]
        .iter()
        .map(|b| b.count_ones() as usize)
        .sum();
    let log = Vmcore::from_source(dump.clone())
        .and_then(|d| d.dmesg_records())
        .expect("the fixture reads");
    Base {
        area: bitmap1..table + 24 * dumped,
        dump,
        log,
    }
}

fn bases() -> &'static [Base; 2] {
    static BASES: OnceLock<[Base; 2]> = OnceLock::new();
    BASES.get_or_init(|| {
        let mut lzo = Vec::new();
        lzma_rs::xz_decompress(
            &mut &include_bytes!("../../tests/fixtures/debian-7.2-nmi.deep.kdump.xz")[..],
            &mut lzo,
        )
        .expect("the fixture decompresses");
        [
            base(
                kdrill_vmcore::synth::gunzip(include_bytes!(
                    "../../tests/fixtures/debian-6.1-sysrq.kdump.gz"
                ))
                .expect("the fixture decompresses"),
            ),
            base(lzo),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, mut rest)) = data.split_first() else {
        return;
    };
    let base = &bases()[usize::from(pick & 1)];
    let mut dump = base.dump.clone();
    let span = base.area.len();
    while rest.len() >= 5 {
        let at = base.area.start + u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize % span;
        let len = usize::from(rest[4] % 8 + 1).min(rest.len() - 5);
        let end = (at + len).min(base.area.end);
        dump[at..end].copy_from_slice(&rest[5..5 + (end - at)]);
        rest = &rest[5 + len..];
    }
    let Ok(read) = Vmcore::from_source(dump) else {
        return;
    };
    let info = read.info();
    if let Ok(log) = read.dmesg_records() {
        assert!(
            log == base.log || info.truncated || info.incomplete,
            "a clean answer with a different log: {} records, {} unpatched",
            log.len(),
            base.log.len()
        );
    }
});
