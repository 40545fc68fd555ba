//! A real dump (Debian 6.1, SysRq crash, makedumpfile -c -d 31), compacted to the pages its
//! log walk reads, cut at every header boundary and at a spread of offsets, and with header
//! bytes flipped: never a panic, every read ends within its deadline and budget, and every
//! cut is noticed (an error, or the truncated flag with the pages it lost).

use kdrill_vmcore::{synth, Vmcore};

use crate::hardening::bounded_read;

/// `cargo run -p kdrill-vmcore --example compact` of the captured dump, gzipped.
pub(crate) fn fixture() -> Vec<u8> {
    let gz = include_bytes!("../fixtures/debian-6.1-sysrq.kdump.gz");
    synth::gunzip(gz).unwrap()
}

fn u32_at(b: &[u8], at: usize) -> u64 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as u64
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Where each part of the kdump file starts and ends.
fn boundaries(d: &[u8]) -> Vec<usize> {
    let bs = u32_at(d, 428);
    let sub = bs as usize;
    let bitmap1 = (1 + u32_at(d, 432)) * bs;
    let bitmaps = u32_at(d, 436) * bs;
    let desc = bitmap1 + bitmaps;
    let mut cuts = vec![0, 8, 12, 464, sub, sub + 104];
    for (off, len) in [(32, 40), (48, 56)] {
        let (o, l) = (u64_at(d, sub + off), u64_at(d, sub + len));
        cuts.extend([o, o + l].map(|x| x as usize));
    }
    cuts.extend([bitmap1, bitmap1 + bitmaps / 2, desc].map(|x| x as usize));
    // Every descriptor's data start and end.
    let mut at = desc as usize;
    while at + 24 <= d.len() && u64_at(d, at) != 0 && (u64_at(d, at) as usize) < d.len() {
        let (o, l) = (u64_at(d, at) as usize, u32_at(d, at + 8) as usize);
        cuts.extend([at, o, o + l]);
        at += 24;
        if at as u64 >= u64_at(d, desc as usize) {
            break; // the data begins
        }
    }
    cuts.extend((1..200).map(|k| d.len() * k / 200));
    cuts.push(d.len() - 1);
    cuts.retain(|&c| c < d.len());
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

#[test]
fn the_compacted_real_dump_reads_its_whole_log() {
    let (dump, n) = bounded_read(fixture()).unwrap();
    assert_eq!(n.unwrap(), 398);
    let info = dump.info();
    assert_eq!(info.kernel_release.as_deref(), Some("6.1.0-47-amd64"));
    assert!(!info.truncated && !info.incomplete);
    let records = dump.dmesg_records().unwrap();
    assert_eq!(
        kdrill_vmcore::panic_message(&records).as_deref(),
        Some("Kernel panic - not syncing: sysrq triggered crash")
    );
    let flat = Vmcore::from_source(synth::flatten(&fixture(), 65536)).unwrap();
    assert_eq!(flat.dmesg_records().unwrap(), records);
}

#[test]
fn every_cut_of_the_real_dump_is_noticed() {
    let whole = fixture();
    let cuts = boundaries(&whole);
    assert!(cuts.len() > 300, "{} cuts", cuts.len());
    for &cut in &cuts {
        let noticed = match bounded_read(whole[..cut].to_vec()) {
            Err(_) => true,
            Ok((dump, log)) => {
                let info = dump.info();
                info.truncated && info.incomplete_pages > 0 || log.is_err()
            }
        };
        assert!(noticed, "a cut at {cut:#x} read as a whole dump");
    }
    // Flattened, a cut anywhere loses the end marker.
    let flat = synth::flatten(&whole, 65536);
    for k in 1..100 {
        let cut = flat.len() * k / 100;
        assert!(
            bounded_read(flat[..cut].to_vec()).is_err(),
            "flattened cut at {cut:#x}"
        );
    }
}

#[test]
fn flipped_header_bytes_never_panic_or_run_away() {
    let whole = fixture();
    let sub = u32_at(&whole, 428) as usize;
    let bitmap1 = ((1 + u32_at(&whole, 432)) * sub as u64) as usize;
    let desc = bitmap1 + (u32_at(&whole, 436) as usize) * sub;
    let spans = [
        0..464,
        sub..sub + 104,
        bitmap1..bitmap1 + 64,
        desc..desc + 24 * 8,
    ];
    for span in spans {
        for at in span {
            for flip in [0xff, 0x80, 0x01] {
                let mut b = whole.clone();
                b[at] ^= flip;
                // Only termination and the bounds are asserted: many flips are harmless.
                let _ = bounded_read(b);
            }
        }
    }
}
