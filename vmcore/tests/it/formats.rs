//! Every container and compression, end to end: open, metadata, kernel log.

use kdrill_vmcore::synth::{self, Kernel};
use kdrill_vmcore::{format_dmesg, panic_message, Compression, DumpFormat, Error, Vmcore};

fn lzo(page: &[u8]) -> Option<Vec<u8>> {
    lzokay_native::compress(page).ok()
}

fn kernel() -> Kernel {
    synth::kernel(&synth::sample_records(90), false)
}

/// Opens `bytes` and checks that the log reads back as the kernel wrote it.
fn check_log(bytes: Vec<u8>, k: &Kernel) -> Vmcore {
    let dump = Vmcore::from_source(bytes).unwrap();
    let records = dump.dmesg_records().unwrap();
    assert!(records.len() > 10, "only {} records", records.len());
    assert_eq!(records, k.expected);
    assert_eq!(format_dmesg(&records), format_dmesg(&k.expected));
    dump
}

#[test]
fn elf_dump_reads_log_and_metadata() {
    let k = kernel();
    let dump = check_log(synth::elf(&k), &k);
    let info = dump.info();
    assert_eq!(info.format, DumpFormat::Elf);
    assert!(!info.flattened);
    assert_eq!(info.compression, Compression::None);
    assert_eq!(info.kernel_release.as_deref(), Some("6.1.0-synthetic"));
    assert_eq!(info.crash_time, Some(1_764_170_000));
    assert_eq!(info.machine.as_deref(), Some("x86_64"));
    assert_eq!(info.cpus, Some(2));
    assert_eq!(info.page_size, 4096);
    assert_eq!(
        info.dumped_pages, 256,
        "the kernel text PT_LOAD overlaps RAM and counts once"
    );
    assert_eq!(info.excluded_pages, 0);
    assert!(!info.incomplete);
}

#[test]
fn five_level_page_tables_are_walked() {
    let k = synth::kernel(&synth::sample_records(50), true);
    assert!(k.vmcoreinfo.contains("NUMBER(pgtable_l5_enabled)=1"));
    check_log(synth::elf(&k), &k);
    check_log(synth::kdump_with(&k, Compression::Zlib, &[]), &k);
}

#[test]
fn kdump_compressed_with_each_compression() {
    let k = kernel();
    let excluded: Vec<u64> = synth::SPARE_PAGES.collect();
    for c in [
        Compression::Zlib,
        Compression::Snappy,
        Compression::Zstd,
        Compression::None,
    ] {
        let dump = check_log(synth::kdump_with(&k, c, &excluded), &k);
        let info = dump.info();
        assert_eq!(info.format, DumpFormat::KdumpCompressed);
        assert_eq!(info.compression, c);
        assert_eq!(info.dumped_pages, 256 - 1 - excluded.len() as u64, "{c}");
        assert_eq!(info.excluded_pages, excluded.len() as u64);
        // The dumped pages that are all zeros point at the one shared zero page (page 1 is a
        // hole of the synthetic dump).
        let zero = (0..256u64)
            .filter(|p| *p != 1 && !excluded.contains(p))
            .filter(|p| {
                k.memory[(p * 4096) as usize..][..4096]
                    .iter()
                    .all(|b| *b == 0)
            })
            .count() as u64;
        assert!(zero > 0);
        assert_eq!(info.zero_pages, zero, "{c}");
        assert_eq!(info.cpus, Some(2));
        assert_eq!(info.dump_level, Some(31));
        assert_eq!(info.header_version, Some(6));
    }
    let dump = check_log(synth::kdump(&k, Compression::Lzo, &lzo, 6, &excluded), &k);
    assert_eq!(dump.info().compression, Compression::Lzo);
}

#[test]
fn every_sub_header_version_with_vmcoreinfo_reads_the_log() {
    let k = kernel();
    let zlib = |p: &[u8]| synth::compress_page(Compression::Zlib, p);
    for version in 3..=6 {
        let dump = check_log(synth::kdump(&k, Compression::Zlib, &zlib, version, &[]), &k);
        assert_eq!(dump.info().header_version, Some(version));
    }
    for version in 1..=2 {
        let dump =
            Vmcore::from_source(synth::kdump(&k, Compression::Zlib, &zlib, version, &[])).unwrap();
        assert!(!dump.info().has_vmcoreinfo);
        assert_eq!(
            dump.info().kernel_release.as_deref(),
            Some("6.1.0-synthetic")
        );
        assert!(matches!(dump.dmesg_records(), Err(Error::NoVmcoreinfo)));
    }
}

#[test]
fn flattened_files_are_read_in_place() {
    let k = kernel();
    for (bytes, chunk) in [
        (synth::kdump_with(&k, Compression::Zlib, &[]), 4096),
        (synth::elf(&k), 1000),
    ] {
        let plain = Vmcore::from_source(bytes.clone()).unwrap().info().clone();
        let dump = check_log(synth::flatten(&bytes, chunk), &k);
        assert!(dump.info().flattened);
        assert_eq!(dump.info().format, plain.format);
        assert_eq!(dump.info().dumped_pages, plain.dumped_pages);
    }
}

#[test]
fn legacy_log_buf_through_a_dump() {
    let texts: Vec<String> = (0..120)
        .map(|n| format!("legacy line {n} {}", "q".repeat(n % 29)))
        .collect();
    let recs: Vec<(u64, u8, &[u8])> = texts
        .iter()
        .enumerate()
        .map(|(n, t)| (n as u64 * 999_999, (n % 8) as u8, t.as_bytes()))
        .collect();
    let k = synth::legacy_kernel(&recs);
    assert!(
        k.expected.len() > 20 && k.expected.len() < 120,
        "{}",
        k.expected.len()
    );
    check_log(synth::elf(&k), &k);
    check_log(synth::kdump_with(&k, Compression::Snappy, &[]), &k);
}

#[test]
fn panic_message_comes_from_the_log() {
    let k = kernel();
    let dump = Vmcore::from_source(synth::elf(&k)).unwrap();
    let records = dump.dmesg_records().unwrap();
    let msg = panic_message(&records).unwrap();
    assert!(
        msg.starts_with("Kernel panic - not syncing: synthetic crash "),
        "{msg}"
    );
}

#[test]
fn excluded_log_page_is_named_in_the_error() {
    let k = kernel();
    // 0xc0000 is where the text ring lives.
    let dump = Vmcore::from_source(synth::kdump_with(&k, Compression::Zlib, &[0xc0])).unwrap();
    match dump.dmesg_records() {
        Err(Error::PageExcluded { pfn, paddr }) => assert_eq!((pfn, paddr), (0xc0, 0xc0000)),
        other => panic!("expected PageExcluded, got {other:?}"),
    }
}

#[test]
fn incomplete_kdump_counts_and_names_missing_pages() {
    let k = kernel();
    let zlib = |p: &[u8]| synth::compress_page(Compression::Zlib, p);
    let bytes = synth::kdump_incomplete(&k, &zlib, 100);
    let dump = Vmcore::from_source(bytes).unwrap();
    let info = dump.info();
    assert!(info.incomplete);
    assert_eq!(info.incomplete_pages, info.dumped_pages - 100);
    assert!(matches!(
        dump.dmesg_records(),
        Err(Error::PageIncomplete { .. })
    ));
}

#[test]
fn phys_base_comes_from_the_dump_when_vmcoreinfo_lacks_it() {
    let mut k = kernel();
    let line = format!("NUMBER(phys_base)={}\n", synth::PHYS_BASE);
    assert!(k.vmcoreinfo.contains(&line));
    k.vmcoreinfo = k.vmcoreinfo.replace(&line, "");
    // ELF: from the kernel-text PT_LOAD; kdump-compressed: from the sub header.
    check_log(synth::elf(&k), &k);
    check_log(synth::kdump_with(&k, Compression::Zlib, &[]), &k);
}

#[test]
fn qemu_elf_dumps_with_identity_vaddrs_unstored_memory_and_pn_xnum() {
    let k = kernel();
    for pn_xnum in [false, true] {
        let dump = check_log(synth::qemu_elf(&k, pn_xnum), &k);
        let info = dump.info();
        assert_eq!(info.cpus, Some(1));
        assert_eq!(info.dumped_pages, 256);
        assert_eq!(
            info.excluded_pages, 256,
            "memory QEMU did not store counts as excluded"
        );
    }
}

#[test]
fn qemu_kdump_dumps_ignore_the_header_phys_base() {
    let k = kernel();
    for c in [Compression::Zlib, Compression::Snappy] {
        let dump = check_log(synth::qemu_kdump(&k, c), &k);
        let info = dump.info();
        assert!(info.flattened);
        assert_eq!(
            info.kernel_release.as_deref(),
            Some("6.1.0-synthetic"),
            "from VMCOREINFO"
        );
        assert_eq!(
            info.crash_time,
            Some(1_764_170_000),
            "from VMCOREINFO CRASHTIME"
        );
        assert_eq!(info.dump_level, Some(1));
    }
}

#[test]
fn a_dump_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync>(_: &T) {}
    let k = kernel();
    let dump = Vmcore::from_source(synth::flatten(&synth::elf(&k), 8192)).unwrap();
    shareable(&dump);
    let records = std::thread::scope(|s| s.spawn(|| dump.dmesg_records().unwrap()).join().unwrap());
    assert_eq!(records, k.expected);
}
