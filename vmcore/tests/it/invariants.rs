//! A kdump-compressed file that contradicts itself never reads as a clean, different answer:
//! the two mutations that did (a 2nd-bitmap byte, a descriptor offset in a whole file), and
//! a seeded run of 1–8 byte mutants of the bitmaps and descriptor tables of a real zlib and
//! a real LZO dump, each of which must give the same log, an error, or an answer marked partial.

use kdrill_vmcore::{Error, Invariant, Vmcore};

use crate::deep7::debian_7_2_nmi;
use crate::real_dump::fixture as debian_6_1_sysrq;

/// Where a fixture's parts are: (2nd bitmap, descriptor table, the table's end).
struct Layout {
    bitmap1: usize,
    bitmap2: usize,
    table: usize,
    data: usize,
}

fn layout(d: &[u8]) -> Layout {
    let u32_at = |at: usize| u32::from_le_bytes(d[at..at + 4].try_into().unwrap()) as usize;
    let bs = u32_at(428);
    let bitmap1 = (1 + u32_at(432)) * bs;
    let half = u32_at(436) * bs / 2;
    let table = bitmap1 + 2 * half;
    let dumped: usize = d[bitmap1 + half..table]
        .iter()
        .map(|b| b.count_ones() as usize)
        .sum();
    Layout {
        bitmap1,
        bitmap2: bitmap1 + half,
        table,
        data: table + 24 * dumped,
    }
}

fn inconsistency(bytes: Vec<u8>) -> (Invariant, u64, String) {
    match Vmcore::from_source(bytes) {
        Err(e @ Error::Inconsistent { .. }) => {
            let Error::Inconsistent {
                invariant, offset, ..
            } = &e
            else {
                unreachable!()
            };
            (*invariant, *offset, e.to_string())
        }
        Err(e) => panic!("another error: {e}"),
        Ok(dump) => panic!(
            "opened: {} dumped pages, log {:?}",
            dump.info().dumped_pages,
            dump.dmesg_records().map(|r| r.len())
        ),
    }
}

#[test]
fn a_changed_second_bitmap_byte_is_named_not_read_as_another_log() {
    // The mutation (a full 0xff byte of the 2nd bitmap to octal 11), on a real LZO
    // dump and a real zlib one. Before, on the LZO dump, 6 pages fewer were counted, every
    // later descriptor was read for the wrong page, and the log came out with 448 records, 117
    // of them NUL bytes, as a clean answer; on the zlib one the log read a page as excluded.
    for (name, whole, at) in [
        ("7.2 lzo", debian_7_2_nmi(), Some(46770)),
        ("6.1 zlib", debian_6_1_sysrq(), None),
    ] {
        let l = layout(&whole);
        let at = at
            .or_else(|| (l.bitmap2..l.table).find(|&i| whole[i] == 0xff))
            .expect("a full byte");
        assert_eq!(whole[at], 0xff, "{name}");
        let mut b = whole.clone();
        b[at] = 0o11;
        let (invariant, offset, message) = inconsistency(b);
        assert_eq!(invariant, Invariant::TableMeetsData, "{name}: {message}");
        assert_eq!(offset, l.table as u64, "{name}: the first descriptor");
        assert!(
            message.contains("the page descriptor table ends where the page data begins")
                && message.contains(&format!("{:#x}", l.table)),
            "{name}: {message}"
        );
    }
}

#[test]
fn a_descriptor_offset_past_the_end_of_a_whole_file_is_not_a_cut() {
    // Before: "truncated: yes: the file was cut short", 1 page lost, exit 1: a false reason.
    let whole = debian_6_1_sysrq();
    let l = layout(&whole);
    let at = l.table + 50 * 24;
    let mut b = whole.clone();
    b[at..at + 8].copy_from_slice(&(whole.len() as u64 + 100_000).to_le_bytes());
    let (invariant, offset, message) = inconsistency(b);
    assert_eq!(invariant, Invariant::DataInOrder, "{message}");
    assert_eq!(offset, at as u64);
    assert!(message.contains("descriptor 50"), "{message}");
    // A size over a page, and a bit dumped where the 1st bitmap has no RAM.
    let mut b = whole.clone();
    b[at + 8..at + 12].copy_from_slice(&4097u32.to_le_bytes());
    assert_eq!(inconsistency(b).0, Invariant::PageDataSize);
    let hole = (0..l.bitmap2 - l.bitmap1)
        .find(|&i| whole[l.bitmap1 + i] != 0xff)
        .unwrap();
    let mut b = whole.clone();
    b[l.bitmap2 + hole] |= !whole[l.bitmap1 + hole];
    let (invariant, offset, _) = inconsistency(b);
    assert_eq!(invariant, Invariant::DumpedIsRam);
    assert_eq!(offset, (l.bitmap2 + hole) as u64);
}

#[test]
fn a_cut_inside_the_page_data_is_still_a_cut() {
    let whole = debian_6_1_sysrq();
    let cut = whole.len() - 5000;
    let dump = Vmcore::from_source(whole[..cut].to_vec()).unwrap();
    assert!(dump.info().truncated && dump.info().incomplete_pages > 0);
}

/// splitmix64: a seeded, deterministic stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Default, Debug)]
struct Outcomes {
    same: u32,
    error: u32,
    invariant: u32,
    partial: u32,
}

/// 1–8 bytes of the bitmaps or the descriptor table set to random values.
fn mutant(whole: &[u8], l: &Layout, set_bytes: &[usize], rng: &mut Rng) -> Vec<u8> {
    let mut b = whole.to_vec();
    for _ in 0..1 + rng.below(8) {
        let at = match rng.below(10) {
            // Bytes of the 2nd bitmap that mark pages, most often: they move the table.
            0..=3 => set_bytes[rng.below(set_bytes.len())],
            4 => l.bitmap2 + rng.below(l.table - l.bitmap2),
            5 => l.bitmap1 + rng.below(l.bitmap2 - l.bitmap1),
            _ => l.table + rng.below(l.data - l.table),
        };
        b[at] = rng.next() as u8;
    }
    b
}

fn check_mutants(name: &str, whole: Vec<u8>, cases: u32, seed: u64) -> Outcomes {
    let l = layout(&whole);
    let set_bytes: Vec<usize> = (l.bitmap2..l.table).filter(|&i| whole[i] != 0).collect();
    let base = Vmcore::from_source(whole.clone())
        .unwrap()
        .dmesg_records()
        .unwrap();
    let mut rng = Rng(seed);
    let mut seen = Outcomes::default();
    for case in 0..cases {
        let b = mutant(&whole, &l, &set_bytes, &mut rng);
        let changed: Vec<usize> = (l.bitmap1..l.data).filter(|&i| b[i] != whole[i]).collect();
        let dump = match Vmcore::from_source(b) {
            Err(Error::Inconsistent { .. }) => {
                seen.invariant += 1;
                continue;
            }
            Err(_) => {
                seen.error += 1;
                continue;
            }
            Ok(dump) => dump,
        };
        let info = dump.info();
        match dump.dmesg_records() {
            Ok(records) if records == base => seen.same += 1,
            Err(_) => seen.error += 1,
            Ok(_) if info.truncated || info.incomplete => seen.partial += 1,
            Ok(records) => panic!(
                "{name} case {case} (bytes {changed:x?} changed): a clean answer with a \
                 different log ({} records, {} before)",
                records.len(),
                base.len()
            ),
        }
    }
    seen
}

#[test]
fn mutated_bitmaps_and_descriptors_give_the_same_log_an_error_or_a_partial_answer() {
    let zlib = check_mutants("6.1 zlib", debian_6_1_sysrq(), 200, 26);
    let lzo = check_mutants("7.2 lzo", debian_7_2_nmi(), 200, 2026);
    // The invariants, not luck, catch most: a 2nd-bitmap byte nearly always moves the table.
    for (name, seen) in [("zlib", &zlib), ("lzo", &lzo)] {
        eprintln!("{name}: {seen:?}");
        assert!(seen.invariant >= 100, "{name}: {seen:?}");
    }
}
