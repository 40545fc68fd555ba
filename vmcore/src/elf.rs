//! ELF64 vmcores: `/proc/vmcore` copies, `makedumpfile -E`, QEMU `dump-guest-memory`.
//!
//! Layout per makedumpfile's IMPLEMENTATION and kexec-tools' `util_lib/elf_info.c`:
//! an ET_CORE header whose `e_flags` bit 0 marks an incomplete dump, one or more
//! PT_NOTE segments (per-CPU `NT_PRSTATUS`, VMCOREINFO) and PT_LOAD segments that
//! map physical memory (`p_paddr`) to file data. Bytes between `p_filesz` and
//! `p_memsz` are pages makedumpfile excluded. QEMU writes `p_offset` -1 for
//! memory it did not store, and PN_XNUM with the real count in section 0's
//! `sh_info` when there are 65535 or more program headers.

use crate::budget::Budget;
use crate::error::{Error, Result};
use crate::notes::{self, NoteSummary};
use crate::source::{u16_at, u32_at, u64_at, Source};

pub(crate) const MAGIC: &[u8; 4] = b"\x7fELF";
const ET_CORE: u16 = 4;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const PN_XNUM: u16 = 0xffff;
const PHDR_SIZE: u64 = 56;
const EM_X86_64: u16 = 62;
/// makedumpfile's `DUMP_ELF_INCOMPLETE`.
const ELF_INCOMPLETE: u32 = 0x1;
/// Notes larger than this are not VMCOREINFO and CPU states; refuse to load them.
const MAX_NOTES: u64 = 64 << 20;
/// x86_64 physical addresses have at most 52 bits (MAXPHYADDR); no segment reaches past them.
const PHYS_LIMIT: u64 = 1 << 52;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Segment {
    pub(crate) paddr: u64,
    pub(crate) vaddr: u64,
    pub(crate) offset: u64,
    pub(crate) filesz: u64,
    pub(crate) memsz: u64,
}

pub(crate) struct ElfDump {
    pub(crate) segments: Vec<Segment>,
    pub(crate) notes: NoteSummary,
    pub(crate) machine: Option<&'static str>,
    pub(crate) e_machine: u16,
    pub(crate) incomplete: bool,
    /// Bytes of PT_LOAD data an incomplete dump lacks at its end.
    pub(crate) missing_bytes: u64,
}

pub(crate) fn parse(src: &Source, budget: &Budget) -> Result<ElfDump> {
    let mut h = [0u8; 64];
    src.read_exact("ELF header", 0, &mut h)?;
    if h[4] != 2 {
        return Err(Error::Unsupported(format!(
            "ELF class {} (only 64-bit ELF vmcores are read)",
            h[4]
        )));
    }
    if h[5] != 1 {
        return Err(Error::Unsupported("big-endian ELF vmcore".into()));
    }
    let e_type = u16_at(&h, 16);
    if e_type != ET_CORE {
        return Err(Error::NotADump {
            magic: format!("an ELF file of type {e_type}, not a core file"),
        });
    }
    let e_machine = u16_at(&h, 18);
    let phoff = u64_at(&h, 32);
    let shoff = u64_at(&h, 40);
    let e_flags = u32_at(&h, 48);
    let phentsize = u16_at(&h, 54) as u64;
    let mut phnum = u16_at(&h, 56) as u64;
    if phentsize != PHDR_SIZE {
        return Err(Error::Corrupt(format!(
            "ELF program header size is {phentsize}, expected {PHDR_SIZE}"
        )));
    }
    if phnum == PN_XNUM as u64 {
        let mut sh = [0u8; 64];
        src.read_exact("ELF section header 0 (PN_XNUM count)", shoff, &mut sh)?;
        phnum = u32_at(&sh, 44) as u64;
    }
    let incomplete = e_flags & ELF_INCOMPLETE != 0;
    // phnum is at most u32::MAX, so the table size fits in u64.
    let table_len = phnum * PHDR_SIZE;
    budget.take("ELF program headers", table_len)?;
    let table = src.read_vec("ELF program headers", phoff, table_len)?;
    let mut segments = Vec::new();
    let mut missing = 0u64;
    let mut note_bytes = Vec::new();
    for (i, ph) in table.chunks_exact(PHDR_SIZE as usize).enumerate() {
        let at = phoff + i as u64 * PHDR_SIZE;
        let p_type = u32_at(ph, 0);
        let offset = u64_at(ph, 8);
        let vaddr = u64_at(ph, 16);
        let paddr = u64_at(ph, 24);
        let filesz = u64_at(ph, 32);
        let memsz = u64_at(ph, 40);
        match p_type {
            PT_LOAD => {
                if paddr.checked_add(memsz).is_none_or(|e| e > PHYS_LIMIT) {
                    return Err(Error::BadField {
                        what: "ELF PT_LOAD p_memsz",
                        offset: at + 40,
                        value: memsz,
                        rule:
                            "the segment would reach past 2^52, the end of x86_64 physical memory",
                    });
                }
                // QEMU: offset -1 and filesz 0 for memory it did not store.
                let mut filesz = if offset == u64::MAX {
                    0
                } else {
                    filesz.min(memsz)
                };
                if filesz > 0 && offset.checked_add(filesz).is_none_or(|e| e > src.len()) {
                    if incomplete {
                        // The writer ran out of space inside this segment.
                        let kept = src.len().saturating_sub(offset);
                        missing = missing.checked_add(filesz - kept).ok_or_else(|| {
                            Error::Corrupt(format!(
                                "ELF PT_LOAD segments (header at {at:#x}) lack more than 2^64 bytes"
                            ))
                        })?;
                        filesz = kept;
                    } else {
                        return Err(Error::Truncated {
                            what: "ELF PT_LOAD segment",
                            offset,
                            len: filesz,
                            end: src.len(),
                        });
                    }
                }
                budget.take("ELF segment list", std::mem::size_of::<Segment>() as u64)?;
                segments.push(Segment {
                    paddr,
                    vaddr,
                    offset,
                    filesz,
                    memsz,
                });
            }
            PT_NOTE => {
                if (note_bytes.len() as u64)
                    .checked_add(filesz)
                    .is_none_or(|total| total > MAX_NOTES)
                {
                    return Err(Error::BadField {
                        what: "ELF PT_NOTE p_filesz",
                        offset: at + 32,
                        value: filesz,
                        rule: "all notes together are at most 64 MiB",
                    });
                }
                budget.take("ELF notes", filesz)?;
                note_bytes.extend(src.read_vec("ELF PT_NOTE segment", offset, filesz)?);
            }
            _ => {}
        }
    }
    Ok(ElfDump {
        segments,
        notes: notes::summarize(&note_bytes),
        machine: (e_machine == EM_X86_64).then_some("x86_64"),
        e_machine,
        incomplete,
        missing_bytes: missing,
    })
}

impl ElfDump {
    /// Reads physical memory; fails on addresses outside the file data of every PT_LOAD.
    pub(crate) fn read_phys(
        &self,
        src: &Source,
        mut paddr: u64,
        mut buf: &mut [u8],
        page_size: u64,
    ) -> Result<()> {
        while !buf.is_empty() {
            let seg = self
                .segments
                .iter()
                .find(|s| paddr >= s.paddr && paddr - s.paddr < s.filesz);
            let Some(seg) = seg else {
                let in_memsz = self
                    .segments
                    .iter()
                    .any(|s| paddr >= s.paddr && paddr - s.paddr < s.memsz);
                return Err(if in_memsz {
                    Error::PageExcluded {
                        pfn: paddr / page_size,
                        paddr,
                    }
                } else {
                    Error::NotInDump { paddr }
                });
            };
            let within = paddr - seg.paddr;
            let n = (buf.len() as u64).min(seg.filesz - within) as usize;
            let (head, rest) = buf.split_at_mut(n);
            src.read_exact("ELF PT_LOAD data", seg.offset + within, head)?;
            buf = rest;
            paddr += n as u64;
        }
        Ok(())
    }

    /// Pages with data in the file, and pages makedumpfile cut away (memsz beyond
    /// filesz); overlapping segments (the kernel text seen twice) count once.
    pub(crate) fn page_counts(&self, page_size: u64) -> (u64, u64) {
        let pages = |len: fn(&Segment) -> u64| {
            let mut ranges: Vec<(u64, u64)> = self
                .segments
                .iter()
                .filter(|s| len(s) > 0)
                .map(|s| {
                    (
                        s.paddr / page_size,
                        s.paddr.saturating_add(len(s)).div_ceil(page_size),
                    )
                })
                .collect();
            ranges.sort_unstable();
            let (mut total, mut reach) = (0u64, 0u64);
            for (start, end) in ranges {
                let start = start.max(reach);
                if end > start {
                    total += end - start;
                    reach = end;
                }
            }
            total
        };
        let dumped = pages(|s| s.filesz);
        (dumped, pages(|s| s.memsz).saturating_sub(dumped))
    }

    /// phys_base as the kernel-text PT_LOAD of a `/proc/vmcore`-style dump implies it.
    pub(crate) fn phys_base_from_text_segment(&self) -> Option<u64> {
        // The kernel image is the lowest mapping in the 1 GiB above __START_KERNEL_map
        // (modules live above it).
        let start = crate::x86_64::START_KERNEL_MAP;
        self.segments
            .iter()
            .filter(|s| (start..start + (1 << 30)).contains(&s.vaddr) && s.vaddr != s.paddr)
            .min_by_key(|s| s.vaddr)
            .map(|s| s.paddr.wrapping_sub(s.vaddr - start))
    }
}

/// Builds an ELF64 x86_64 core file: a PT_NOTE with `notes`, then one PT_LOAD per
/// `(paddr, vaddr, data, memsz)`; for synthetic dumps in tests.
pub fn build(notes: &[u8], loads: &[(u64, u64, &[u8], u64)], incomplete: bool) -> Vec<u8> {
    let phnum = 1 + loads.len();
    let mut out = vec![0u8; 64];
    out[..4].copy_from_slice(MAGIC);
    out[4] = 2;
    out[5] = 1;
    out[6] = 1;
    out[16..18].copy_from_slice(&ET_CORE.to_le_bytes());
    out[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
    out[20..24].copy_from_slice(&1u32.to_le_bytes());
    out[32..40].copy_from_slice(&64u64.to_le_bytes());
    out[48..52].copy_from_slice(&(if incomplete { ELF_INCOMPLETE } else { 0 }).to_le_bytes());
    out[52..54].copy_from_slice(&64u16.to_le_bytes());
    out[54..56].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
    out[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());
    let mut data_off = 64 + phnum as u64 * PHDR_SIZE;
    let phdr = |p_type: u32, offset: u64, vaddr: u64, paddr: u64, filesz: u64, memsz: u64| {
        let mut p = vec![0u8; PHDR_SIZE as usize];
        p[0..4].copy_from_slice(&p_type.to_le_bytes());
        p[8..16].copy_from_slice(&offset.to_le_bytes());
        p[16..24].copy_from_slice(&vaddr.to_le_bytes());
        p[24..32].copy_from_slice(&paddr.to_le_bytes());
        p[32..40].copy_from_slice(&filesz.to_le_bytes());
        p[40..48].copy_from_slice(&memsz.to_le_bytes());
        p
    };
    let mut headers = phdr(
        PT_NOTE,
        data_off,
        0,
        0,
        notes.len() as u64,
        notes.len() as u64,
    );
    data_off += notes.len() as u64;
    for (paddr, vaddr, data, memsz) in loads {
        headers.extend(phdr(
            PT_LOAD,
            data_off,
            *vaddr,
            *paddr,
            data.len() as u64,
            *memsz,
        ));
        data_off += data.len() as u64;
    }
    out.extend(headers);
    out.extend_from_slice(notes);
    for (_, _, data, _) in loads {
        out.extend_from_slice(data);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One 8 KiB PT_LOAD whose last 4 KiB are cut off.
    fn cut(incomplete: bool) -> Result<ElfDump> {
        let data = vec![7u8; 8192];
        let mut bytes = build(
            &[],
            &[(0x1000, 0xffff_8880_0000_1000, &data, 8192)],
            incomplete,
        );
        bytes.truncate(bytes.len() - 4096);
        parse(&Source::new(Box::new(bytes))?, &Budget::new(1 << 20))
    }

    #[test]
    fn an_incomplete_dump_keeps_what_was_written() {
        let dump = cut(true).unwrap();
        assert_eq!(dump.missing_bytes, 4096);
        assert_eq!(dump.segments.len(), 1);
        assert_eq!(dump.segments[0].filesz, 4096);
        assert_eq!(dump.segments[0].memsz, 8192);
    }

    #[test]
    fn a_cut_dump_not_flagged_incomplete_is_truncated() {
        let err = cut(false).err().expect("a truncated segment is an error");
        assert!(
            matches!(
                err,
                Error::Truncated {
                    what: "ELF PT_LOAD segment",
                    ..
                }
            ),
            "{err}"
        );
    }
}
