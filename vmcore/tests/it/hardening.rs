//! One regression test per class of defect found by reading the reader and crafting dumps.
//!
//! Each runs under a deadline on its own thread, which counts every byte it
//! allocates: a hang fails the deadline, a multi-GB allocation fails the count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use kdrill_vmcore::synth::{self, Options};
use kdrill_vmcore::{Compression, Error, Vmcore, MEMORY_BUDGET};

thread_local! {
    pub(crate) static ALLOCATED: Cell<u64> = const { Cell::new(0) };
}

/// The system allocator, counting each thread's allocations.
struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATED.try_with(|a| a.set(a.get() + layout.size() as u64));
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATED.try_with(|a| a.set(a.get() + new_size as u64));
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Opens `bytes` and reads the log on a thread of its own; fails the test if
/// that takes over 30 s or allocates more than the budget plus the input's copies.
pub(crate) fn bounded_read(bytes: Vec<u8>) -> Result<(Vmcore, Result<usize, Error>), Error> {
    let input = bytes.len() as u64;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        ALLOCATED.with(|a| a.set(0));
        let result = Vmcore::from_source(bytes).map(|dump| {
            let log = dump.dmesg_records().map(|r| r.len());
            (dump, log)
        });
        let _ = tx.send((result, ALLOCATED.with(|a| a.get())));
    });
    let (result, allocated) = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(got) => got,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("opening and reading the dump did not end within 30 s")
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            panic!("opening or reading the dump panicked (see the thread's message above)")
        }
    };
    let limit = MEMORY_BUDGET + 2 * input + (16 << 20);
    assert!(
        allocated <= limit,
        "opening and reading allocated {allocated} bytes, over {limit}"
    );
    result
}

fn log_error(bytes: Vec<u8>) -> Error {
    match bounded_read(bytes) {
        Ok((_, Ok(n))) => panic!("the log read {n} records; expected an error"),
        Ok((_, Err(e))) | Err(e) => e,
    }
}

fn zlib(p: &[u8]) -> Option<Vec<u8>> {
    synth::compress_page(Compression::Zlib, p)
}

fn with(o: Options) -> synth::Kernel {
    synth::kernel_with(&synth::sample_records(40), &o)
}

fn vmcoreinfo(key: &str, value: String) -> Options {
    Options {
        vmcoreinfo: vec![(key.to_string(), value)],
        ..Options::default()
    }
}

// Panics.

#[test]
fn pagesize_zero_is_an_error_not_a_division_by_zero() {
    let k = with(vmcoreinfo("PAGESIZE", "0".into()));
    let err = bounded_read(synth::elf(&k))
        .err()
        .expect("PAGESIZE=0 is refused");
    assert!(err.to_string().contains("PAGESIZE=0"), "{err}");
}

#[test]
fn an_unaligned_phys_base_is_refused_not_read_across_a_page() {
    let phys_base = (synth::PHYS_BASE + 0xffc).to_string();
    let k = with(vmcoreinfo("NUMBER(phys_base)", phys_base));
    let err = log_error(synth::kdump_with(&k, Compression::Zlib, &[]));
    assert!(err.to_string().contains("not page-aligned"), "{err}");
}

#[test]
fn kdump_blocks_larger_than_4k_read_the_log() {
    let k = with(Options::default());
    let mut spec = synth::kdump_spec(&k, &zlib);
    spec.page_size = 8192;
    let dump = Vmcore::from_source(synth::build_kdump(&spec)).unwrap();
    assert_eq!(dump.info().page_size, 8192);
    assert_eq!(dump.dmesg_records().unwrap(), k.expected);
}

/// QEMU 8 and later write `Unknown` as the machine of a `dump-guest-memory` kdump file; the
/// kernel's own VMCOREINFO (`SYMBOL(init_top_pgt)`) says x86_64, and the log is read.
#[test]
fn a_kdump_header_that_does_not_know_its_machine_is_read_by_its_vmcoreinfo() {
    let k = with(Options::default());
    for written in ["Unknown", ""] {
        let mut spec = synth::kdump_spec(&k, &zlib);
        spec.machine = written;
        let dump = Vmcore::from_source(synth::build_kdump(&spec)).unwrap();
        assert_eq!(
            dump.info().machine.as_deref(),
            Some("x86_64"),
            "{written:?}"
        );
        assert_eq!(dump.dmesg_records().unwrap(), k.expected);
    }
    // A machine the header names is kept, and refused for translation as before.
    let mut spec = synth::kdump_spec(&k, &zlib);
    spec.machine = "aarch64";
    let dump = Vmcore::from_source(synth::build_kdump(&spec)).unwrap();
    assert_eq!(dump.info().machine.as_deref(), Some("aarch64"));
    assert!(dump.dmesg_records().is_err());
}

// Hangs.

#[test]
fn state_bits_in_head_id_do_not_make_the_walk_endless() {
    let k = with(Options {
        head_id_flags: 3 << 62,
        ..Options::default()
    });
    let (dump, n) = bounded_read(synth::elf(&k)).unwrap();
    assert_eq!(n.unwrap(), k.expected.len());
    assert_eq!(dump.dmesg_records().unwrap(), k.expected);
}

// Allocations.

#[test]
fn a_flattened_record_at_2_40_does_not_make_the_file_1_tib() {
    let k = with(Options::default());
    // ELF: PN_XNUM with 2^32 - 1 program headers (240 GB).
    let mut elf = synth::elf(&k);
    elf[40..48].copy_from_slice(&64u64.to_le_bytes());
    elf[56..58].copy_from_slice(&0xffffu16.to_le_bytes());
    elf[64 + 44..64 + 48].copy_from_slice(&u32::MAX.to_le_bytes());
    // kdump: 2^20 bitmap blocks (4 GiB of bitmaps) and 2^35 pages.
    let mut kdump = synth::kdump_with(&k, Compression::Zlib, &[]);
    kdump[436..440].copy_from_slice(&(1u32 << 20).to_le_bytes());
    kdump[4096 + 96..4096 + 104].copy_from_slice(&(1u64 << 35).to_le_bytes());
    for file in [elf, kdump] {
        let stream = synth::flatten_with(&file, 4096, &[(1 << 40, b"x")]);
        let err = bounded_read(stream)
            .err()
            .expect("a forged stream is refused");
        assert!(err.to_string().contains("mostly holes"), "{err}");
    }
}

#[test]
fn a_text_ring_aliased_onto_one_page_is_refused_by_the_budget() {
    let k = with(Options {
        aliased_text_bits: Some(31),
        ..Options::default()
    });
    for bytes in [
        synth::elf(&k),
        synth::kdump_with(&k, Compression::Zlib, &[]),
    ] {
        let err = log_error(bytes);
        assert!(
            matches!(
                err,
                Error::OverBudget {
                    what: "printk text ring",
                    ..
                }
            ),
            "{err}"
        );
    }
}

#[test]
fn descriptors_all_covering_one_text_ring_are_refused() {
    let k = with(Options {
        count_bits: 15,
        size_bits: 16,
        overlapping_records: true,
        ..Options::default()
    });
    let err = log_error(synth::kdump_with(&k, Compression::Zlib, &[]));
    // The second descriptor already finds the first one's id on the shared block.
    assert!(
        err.to_string().contains("descriptors overlap") || err.to_string().contains("carries id"),
        "{err}"
    );
}

#[test]
fn a_log_buf_cycle_is_found_within_one_lap() {
    let k = synth::legacy_kernel_with(
        &[],
        &Options {
            log_buf_size: 512 << 10,
            log_buf_cycle: true,
            ..Options::default()
        },
    );
    let err = log_error(synth::kdump_with(&k, Compression::Zlib, &[]));
    assert!(err.to_string().contains("form a cycle"), "{err}");
}

// Silent truncation.

#[test]
fn a_cut_short_kdump_counts_its_lost_pages() {
    let k = with(Options::default());
    let whole = synth::kdump_with(&k, Compression::Zlib, &[]);
    let (dump, _) = bounded_read(whole.clone()).unwrap();
    assert!(!dump.info().truncated);
    assert_eq!(dump.info().incomplete_pages, 0);
    // Cut inside the page data: the last pages' data lies past the end.
    let (dump, _) = bounded_read(whole[..whole.len() - 3000].to_vec()).unwrap();
    assert!(dump.info().truncated, "a cut file must say so");
    assert!(dump.info().incomplete_pages >= 1, "{:?}", dump.info());
    assert!(
        !dump.info().incomplete,
        "the header does not say incomplete"
    );
}

// Overflows (debug builds).

#[test]
fn elf_segment_and_note_sizes_that_overflow_are_errors() {
    let k = with(Options::default());
    let phdr = |i: usize, field: usize| 64 + i * 56 + field;
    let put = |b: &mut Vec<u8>, at: usize, v: u64| b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    // Notes: the real PT_NOTE, then one whose size wraps the running total.
    let mut notes = synth::elf(&k);
    notes[phdr(1, 0)..phdr(1, 4)].copy_from_slice(&4u32.to_le_bytes());
    put(&mut notes, phdr(1, 32), u64::MAX - 50);
    let err = bounded_read(notes)
        .err()
        .expect("wrapping note sizes are refused");
    assert!(err.to_string().contains("p_filesz"), "{err}");
    // Segments: an incomplete dump whose lost bytes would sum past 2^64.
    let mut loads = synth::elf(&k);
    loads[48] |= 1;
    for i in [2, 3] {
        put(&mut loads, phdr(i, 8), 1 << 40);
        put(&mut loads, phdr(i, 32), 1 << 63);
        put(&mut loads, phdr(i, 40), 1 << 63);
    }
    let err = bounded_read(loads)
        .err()
        .expect("wrapping segment sizes are refused");
    assert!(err.to_string().contains("p_memsz"), "{err}");
}
