//! The few ELF64 facts a vmlinux must show (pure): where the file's ELF ends, whether a
//! `PT_NOTE` holds the PVH entry (`XEN_ELFNOTE_PHYS32_ENTRY` = 18, from
//! `include/xen/interface/elfnote.h`), and moving its load addresses (`p_paddr`, `e_entry`) to
//! another physical base, which a relocatable x86_64 kernel's `startup_64` accepts at any 2 MiB
//! boundary (`arch/x86/kernel/head_64.S`).

pub fn le16(data: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([data[at], data[at + 1]])
}

pub fn le32(data: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

fn le64(data: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(data[at..at + 8].try_into().unwrap_or([0; 8]))
}

const ELF_HEADER: usize = 64;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;

fn check_header(data: &[u8]) -> Result<(), String> {
    if data.len() < ELF_HEADER || !data.starts_with(b"\x7fELF") {
        return Err("no ELF magic".into());
    }
    if data[4] != 2 || data[5] != 1 {
        return Err("not a little-endian ELF64".into());
    }
    Ok(())
}

/// Where the ELF in `data` ends: the furthest of its headers, program data and section headers.
pub fn end(data: &[u8]) -> Result<usize, String> {
    check_header(data)?;
    let shoff = le64(data, 0x28);
    let (phentsize, phnum) = (u64::from(le16(data, 0x36)), u64::from(le16(data, 0x38)));
    let (shentsize, shnum) = (u64::from(le16(data, 0x3a)), u64::from(le16(data, 0x3c)));
    let mut end = shoff.saturating_add(shentsize.saturating_mul(shnum));
    for header in program_headers(data)? {
        end = end.max(header.offset.saturating_add(header.filesz));
    }
    end = end.max(le64(data, 0x20).saturating_add(phentsize * phnum));
    if end > data.len() as u64 {
        return Err(format!(
            "its headers reach {end:#x}, past the {} bytes decompressed",
            data.len()
        ));
    }
    Ok(end as usize)
}

struct ProgramHeader {
    /// Where the header itself is in the file.
    at: usize,
    kind: u32,
    offset: u64,
    paddr: u64,
    filesz: u64,
}

fn program_headers(data: &[u8]) -> Result<Vec<ProgramHeader>, String> {
    check_header(data)?;
    let phoff = le64(data, 0x20);
    let (phentsize, phnum) = (le16(data, 0x36) as usize, le16(data, 0x38) as usize);
    if phentsize < 56 {
        return Err(format!("program header size {phentsize}"));
    }
    let mut headers = Vec::new();
    for i in 0..phnum {
        let at = usize::try_from(phoff)
            .ok()
            .and_then(|o| o.checked_add(i * phentsize))
            .filter(|&at| at + 56 <= data.len())
            .ok_or("program headers past the end")?;
        headers.push(ProgramHeader {
            at,
            kind: le32(data, at),
            offset: le64(data, at + 8),
            paddr: le64(data, at + 24),
            filesz: le64(data, at + 32),
        });
    }
    Ok(headers)
}

/// Does a `PT_NOTE` of the ELF hold a Xen note `XEN_ELFNOTE_PHYS32_ENTRY`?
pub fn has_pvh_entry(elf: &[u8]) -> Result<bool, String> {
    const PHYS32_ENTRY: u32 = 18;
    for note in program_headers(elf)?.iter().filter(|p| p.kind == PT_NOTE) {
        let start = note.offset as usize;
        let Some(mut notes) = elf.get(start..start.saturating_add(note.filesz as usize)) else {
            continue;
        };
        while notes.len() >= 12 {
            let (namesz, descsz, kind) = (
                le32(notes, 0) as usize,
                le32(notes, 4) as usize,
                le32(notes, 8),
            );
            let name_end = 12 + namesz.div_ceil(4) * 4;
            let next = name_end.saturating_add(descsz.div_ceil(4) * 4);
            let name = notes.get(12..12 + namesz).unwrap_or_default();
            if name.starts_with(b"Xen") && kind == PHYS32_ENTRY {
                return Ok(true);
            }
            notes = notes.get(next..).unwrap_or_default();
        }
    }
    Ok(false)
}

/// Moves the ELF's physical load addresses so its lowest `PT_LOAD` starts at `base` (2 MiB
/// aligned), and its entry point with them.
pub fn rebase(elf: &mut [u8], base: u64) -> Result<(), String> {
    if base % (2 << 20) != 0 {
        return Err(format!("{base:#x} is not 2 MiB aligned"));
    }
    let headers = program_headers(elf)?;
    let lowest = headers
        .iter()
        .filter(|h| h.kind == PT_LOAD)
        .map(|h| h.paddr)
        .min()
        .ok_or("no PT_LOAD segment")?;
    let moved = |address: u64| {
        address
            .checked_sub(lowest)
            .and_then(|off| off.checked_add(base))
            .ok_or_else(|| format!("{address:#x} cannot move to {base:#x}"))
    };
    for header in headers.iter().filter(|h| h.kind == PT_LOAD) {
        let paddr = moved(header.paddr)?;
        elf[header.at + 24..header.at + 32].copy_from_slice(&paddr.to_le_bytes());
    }
    let entry = moved(le64(elf, 0x18))?;
    elf[0x18..0x20].copy_from_slice(&entry.to_le_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebasing_moves_every_load_and_the_entry() {
        // The test ELF of bzimage.rs, its note turned into two loads at 16 MiB and 48 MiB.
        let mut elf = super::super::bzimage::tests::elf(&[18], 0);
        elf[0x18..0x20].copy_from_slice(&0x100_0000u64.to_le_bytes());
        elf[64..68].copy_from_slice(&PT_LOAD.to_le_bytes());
        elf[64 + 24..64 + 32].copy_from_slice(&0x100_0000u64.to_le_bytes());
        rebase(&mut elf, 256 << 20).unwrap();
        let headers = program_headers(&elf).unwrap();
        assert_eq!(headers[0].paddr, 256 << 20);
        assert_eq!(le64(&elf, 0x18), 256 << 20);
        assert!(rebase(&mut elf, (256 << 20) + 4096).is_err());
    }
}
