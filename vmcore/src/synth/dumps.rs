//! Dump files around a synthetic kernel's memory: ELF, kdump-compressed, QEMU's variants.

use super::{image, Kernel, DIRECT_MAP, PAGE_SIZE, PHYS_BASE};
use crate::compress::Compression;
pub use crate::diskdump::{build as build_kdump, KdumpSpec};
use crate::flattened::flatten;

/// An ELF vmcore of `k` as the capture kernel's `/proc/vmcore` shows it: two
/// CPU notes and VMCOREINFO, RAM in two PT_LOADs, and the kernel text mapped again.
pub fn elf(k: &Kernel) -> Vec<u8> {
    let mut notes = crate::notes::encode("CORE", crate::notes::NT_PRSTATUS, &[0; 336]);
    notes.extend(crate::notes::encode(
        "CORE",
        crate::notes::NT_PRSTATUS,
        &[0; 336],
    ));
    notes.extend(crate::notes::encode(
        "VMCOREINFO",
        0,
        k.vmcoreinfo.as_bytes(),
    ));
    let half = k.memory.len() / 2;
    crate::elf::build(
        &notes,
        &[
            (
                PHYS_BASE,
                image(0),
                &k.memory[PHYS_BASE as usize..PHYS_BASE as usize + 0x10000],
                0x10000,
            ),
            (0, DIRECT_MAP, &k.memory[..half], half as u64),
            (
                half as u64,
                DIRECT_MAP + half as u64,
                &k.memory[half..],
                half as u64,
            ),
        ],
        false,
    )
}

/// A kdump-compressed file of `k`, pages compressed with `compress` under the
/// header's `compression`, leaving out `excluded` pages.
pub fn kdump(
    k: &Kernel,
    compression: Compression,
    compress: &dyn Fn(&[u8]) -> Option<Vec<u8>>,
    header_version: u32,
    excluded: &[u64],
) -> Vec<u8> {
    crate::diskdump::build(&crate::diskdump::KdumpSpec {
        memory: &k.memory,
        page_size: PAGE_SIZE,
        vmcoreinfo: k.vmcoreinfo.as_bytes(),
        header_version,
        compression,
        compress,
        excluded,
        holes: &[1],
        release: "6.1.0-synthetic",
        machine: "x86_64",
        timestamp: 1_764_170_001,
        nr_cpus: 2,
        phys_base: PHYS_BASE,
        dump_level: 31,
        incomplete_after: None,
    })
}

/// [`kdump`] with the standard compressor for `compression` (LZO excepted).
pub fn kdump_with(k: &Kernel, compression: Compression, excluded: &[u64]) -> Vec<u8> {
    kdump(
        k,
        compression,
        &|p| crate::compress::compress_page(compression, p),
        6,
        excluded,
    )
}

/// [`kdump`] (version 6, zlib in the header) whose writer ran out of space
/// after `written` dumped pages: the INCOMPLETE flag is set, later descriptors
/// are zero and the file ends after the last page written.
pub fn kdump_incomplete(
    k: &Kernel,
    compress: &dyn Fn(&[u8]) -> Option<Vec<u8>>,
    written: u64,
) -> Vec<u8> {
    crate::diskdump::build(&KdumpSpec {
        incomplete_after: Some(written),
        ..kdump_spec(k, compress)
    })
}

/// An ELF dump as QEMU's `dump-guest-memory` (paging false) writes it: CPU
/// notes, QEMU notes and the guest's VMCOREINFO note, PT_LOADs with `p_vaddr`
/// equal to `p_paddr`, a PT_LOAD QEMU did not store (`p_offset` -1), and, if
/// `pn_xnum`, the program header count in section header 0 (`e_phnum` 0xffff).
pub fn qemu_elf(k: &Kernel, pn_xnum: bool) -> Vec<u8> {
    let mut notes = crate::notes::encode("CORE", crate::notes::NT_PRSTATUS, &[0; 336]);
    notes.extend(crate::notes::encode("QEMU", 0, &[0; 456]));
    notes.extend(crate::notes::encode(
        "VMCOREINFO",
        0,
        k.vmcoreinfo.as_bytes(),
    ));
    let mut out = crate::elf::build(
        &notes,
        &[
            (0, 0, &k.memory[..], k.memory.len() as u64),
            (k.memory.len() as u64, k.memory.len() as u64, &[], 1 << 20),
        ],
        false,
    );
    let last_phdr = 64 + 2 * 56;
    out[last_phdr + 8..last_phdr + 16].copy_from_slice(&u64::MAX.to_le_bytes());
    if pn_xnum {
        let shoff = out.len() as u64;
        out[40..48].copy_from_slice(&shoff.to_le_bytes());
        out[56..58].copy_from_slice(&0xffffu16.to_le_bytes());
        out[58..60].copy_from_slice(&64u16.to_le_bytes());
        out[60..62].copy_from_slice(&1u16.to_le_bytes());
        let mut shdr = vec![0u8; 64];
        shdr[44..48].copy_from_slice(&3u32.to_le_bytes());
        out.extend(shdr);
    }
    out
}

/// A kdump-compressed dump as QEMU's `dump-guest-memory -z/-l/-s` writes it:
/// flattened, no release or time in the header, and a sub-header phys_base
/// that is not to be trusted (QEMU parses VMCOREINFO's decimal value as hex).
pub fn qemu_kdump(k: &Kernel, compression: Compression) -> Vec<u8> {
    let compress = |p: &[u8]| crate::compress::compress_page(compression, p);
    let file = crate::diskdump::build(&crate::diskdump::KdumpSpec {
        memory: &k.memory,
        page_size: PAGE_SIZE,
        vmcoreinfo: k.vmcoreinfo.as_bytes(),
        header_version: 6,
        compression,
        compress: &compress,
        excluded: &[],
        holes: &[],
        release: "",
        machine: "x86_64",
        timestamp: 0,
        nr_cpus: 1,
        phys_base: 0x1234_5000,
        dump_level: 1,
        incomplete_after: None,
    });
    flatten(&file, 4 * PAGE_SIZE as usize)
}

/// The spec [`kdump`] writes (version 6, zlib named, nothing excluded), for a
/// caller to change fields of (page size, incomplete, ...) before [`build_kdump`].
pub fn kdump_spec<'a>(
    k: &'a Kernel,
    compress: &'a dyn Fn(&[u8]) -> Option<Vec<u8>>,
) -> KdumpSpec<'a> {
    KdumpSpec {
        memory: &k.memory,
        page_size: PAGE_SIZE,
        vmcoreinfo: k.vmcoreinfo.as_bytes(),
        header_version: 6,
        compression: Compression::Zlib,
        compress,
        excluded: &[],
        holes: &[1],
        release: "6.1.0-synthetic",
        machine: "x86_64",
        timestamp: 1_764_170_001,
        nr_cpus: 2,
        phys_base: PHYS_BASE,
        dump_level: 31,
        incomplete_after: None,
    }
}

/// Gunzips a stored fixture (the compacted real dumps in `vmcore/tests/fixtures` are gzipped).
pub fn gunzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(bytes), &mut out)?;
    Ok(out)
}

/// A kdump-compressed file (not flattened, header version 4 or later) with its notes made
/// QEMU's: each `NT_PRSTATUS` note's `pr_pid` set to its vCPU index + 1, as `dump-guest-memory`
/// writes it, and a `QEMU` note per CPU. The new notes go at the end of the file and the sub
/// header points at them; the pages are untouched. `None` if `kdump` is not such a file.
pub fn with_qemu_notes(kdump: &[u8]) -> Option<Vec<u8>> {
    let u32_at = |at: usize| Some(u32::from_le_bytes(kdump.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(kdump.get(at..at + 8)?.try_into().ok()?));
    if !kdump.starts_with(crate::diskdump::SIGNATURE) || u32_at(8)? < 4 {
        return None;
    }
    let sub = u32_at(428)? as usize;
    let (off, size) = (u64_at(sub + 48)? as usize, u64_at(sub + 56)? as usize);
    let mut notes = Vec::new();
    let mut cpus = 0u32;
    for note in crate::notes::notes(kdump.get(off..off.checked_add(size)?)?) {
        let name = std::str::from_utf8(note.name).ok()?;
        let mut desc = note.desc.to_vec();
        if note.kind == crate::notes::NT_PRSTATUS && name == "CORE" {
            cpus += 1;
            desc.get_mut(32..36)?.copy_from_slice(&cpus.to_le_bytes());
        }
        notes.extend(crate::notes::encode(name, note.kind, &desc));
    }
    for _ in 0..cpus {
        notes.extend(crate::notes::encode("QEMU", 0, &[0; 456]));
    }
    let mut out = kdump.to_vec();
    let at = out.len() as u64;
    out[sub + 48..sub + 56].copy_from_slice(&at.to_le_bytes());
    out[sub + 56..sub + 64].copy_from_slice(&(notes.len() as u64).to_le_bytes());
    out.extend(notes);
    Some(out)
}
