//! Bad input gives errors, never panics: truncation at many offsets, corrupted bytes.

use kdrill_vmcore::synth;
use kdrill_vmcore::{Compression, Error, Vmcore};

fn samples() -> Vec<(&'static str, Vec<u8>)> {
    let k = synth::kernel(&synth::sample_records(60), false);
    let kdump = synth::kdump_with(&k, Compression::Zlib, &[]);
    vec![
        ("elf", synth::elf(&k)),
        ("flattened kdump", synth::flatten(&kdump, 3000)),
        ("kdump", kdump),
    ]
}

/// Opens and reads the log, returning whether everything succeeded.
fn exercise(bytes: Vec<u8>) -> bool {
    match Vmcore::from_source(bytes) {
        Ok(dump) => dump.dmesg_records().is_ok(),
        Err(_) => false,
    }
}

#[test]
fn truncation_anywhere_is_an_error_not_a_panic() {
    for (name, bytes) in samples() {
        let mut failures = 0;
        let step = bytes.len() / 97 + 1;
        for cut in (0..bytes.len()).step_by(step) {
            if !exercise(bytes[..cut].to_vec()) {
                failures += 1;
            }
        }
        assert!(failures > 0, "{name}: no truncation was noticed");
    }
}

#[test]
fn truncated_kdump_header_names_the_offset() {
    let (_, kdump) = samples().pop().unwrap();
    match Vmcore::from_source(kdump[..300].to_vec()) {
        Err(Error::Truncated {
            offset, len, end, ..
        }) => assert_eq!((offset, len, end), (0, 464, 300)),
        other => panic!("expected Truncated, got {:?}", other.err()),
    }
}

#[test]
fn corrupted_bytes_never_panic() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for (_, bytes) in samples() {
        for _ in 0..150 {
            let mut b = bytes.clone();
            // Corrupt headers and metadata more often than page data.
            let span = if rand() % 2 == 0 {
                16384.min(b.len())
            } else {
                b.len()
            };
            for _ in 0..1 + rand() % 8 {
                let at = (rand() % span as u64) as usize;
                b[at] = rand() as u8;
            }
            exercise(b);
        }
    }
}

#[test]
fn not_a_dump_shows_the_magic() {
    let err = Vmcore::from_source(b"GIF89a not a vmcore".to_vec())
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "not a crash dump: the file starts with \"GIF89a not a vmc\", which is no known dump format"
    );
    let err = Vmcore::from_source(Vec::new()).err().unwrap();
    assert!(err.to_string().contains("the file is empty"), "{err}");
}

#[test]
fn a_compressed_file_is_named_by_its_compressor() {
    let k = synth::kernel(&synth::sample_records(5), false);
    let elf = synth::elf(&k);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &elf).unwrap();
    let mut files = vec![(gz.finish().unwrap(), "gzip")];
    for (magic, name) in [
        (&b"\xfd7zXZ\0"[..], "xz"),
        (&[0x28, 0xb5, 0x2f, 0xfd][..], "zstd"),
        (b"BZh91AY&SY", "bzip2"),
        (&[0x04, 0x22, 0x4d, 0x18][..], "lz4"),
    ] {
        files.push((magic.to_vec(), name));
    }
    for (bytes, name) in files {
        let err = Vmcore::from_source(bytes).err().unwrap();
        assert!(
            matches!(err, Error::Compressed { format } if format == name),
            "{name}: {err}"
        );
        assert_eq!(
            err.to_string(),
            format!("not a crash dump: the file is {name}-compressed; decompress it first")
        );
    }
    // "BZh" without a block size digit is no bzip2 stream.
    let err = Vmcore::from_source(b"BZhello".to_vec()).err().unwrap();
    assert!(matches!(err, Error::NotADump { .. }), "{err}");
}

#[test]
fn huge_claimed_sizes_do_not_allocate() {
    let (_, mut kdump) = samples().pop().unwrap();
    // bitmap_blocks = u32::MAX: must be refused as truncated, not allocated.
    kdump[436..440].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        Vmcore::from_source(kdump).err().unwrap(),
        Error::Truncated { .. }
    ));
}

#[test]
fn unsupported_page_compression_is_named() {
    let k = synth::kernel(&synth::sample_records(20), false);
    let weird = |p: &[u8]| synth::compress_page(Compression::Zlib, p);
    let mut bytes = synth::kdump(&k, Compression::Zlib, &weird, 6, &[]);
    // Rewrite every zlib page descriptor's flags to an unknown method (0x40).
    let field = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let (sub_hdr_blocks, bitmap_blocks) = (field(432), field(436));
    let desc_start = 4096 * (1 + sub_hdr_blocks + bitmap_blocks);
    let mut rewritten = 0;
    for d in 0..255usize {
        let at = desc_start + d * 24 + 12;
        if bytes[at..at + 4] == [1, 0, 0, 0] {
            bytes[at..at + 4].copy_from_slice(&0x40u32.to_le_bytes());
            rewritten += 1;
        }
    }
    assert!(rewritten > 100, "only {rewritten} zlib pages found");
    let dump = Vmcore::from_source(bytes).unwrap();
    let err = dump.dmesg_records().unwrap_err();
    assert!(
        matches!(err, Error::UnsupportedCompression { flags: 0x40, .. }),
        "{err}"
    );
}
