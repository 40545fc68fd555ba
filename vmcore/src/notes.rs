//! ELF notes (`Elf64_Nhdr` + name + desc, each padded to 4 bytes): CPU states and VMCOREINFO.

/// `NT_PRSTATUS`: one per CPU that saved its registers at the crash.
pub(crate) const NT_PRSTATUS: u32 = 1;

/// One note, borrowed from a note segment.
pub(crate) struct Note<'a> {
    pub(crate) name: &'a [u8],
    pub(crate) kind: u32,
    pub(crate) desc: &'a [u8],
}

/// Iterates the notes in `data`; stops at the first malformed or zero header.
pub(crate) fn notes(data: &[u8]) -> impl Iterator<Item = Note<'_>> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let hdr = data.get(pos..pos.checked_add(12)?)?;
        let namesz = u32::from_le_bytes(hdr[0..4].try_into().unwrap()) as usize;
        let descsz = u32::from_le_bytes(hdr[4..8].try_into().unwrap()) as usize;
        let kind = u32::from_le_bytes(hdr[8..12].try_into().unwrap());
        if namesz == 0 && descsz == 0 && kind == 0 {
            return None;
        }
        let name_at = pos + 12;
        let desc_at = name_at.checked_add(namesz.checked_next_multiple_of(4)?)?;
        let next = desc_at.checked_add(descsz.checked_next_multiple_of(4)?)?;
        let name = data.get(name_at..name_at + namesz)?;
        let desc = data.get(desc_at..desc_at + descsz)?;
        pos = next;
        let name = name.strip_suffix(&[0]).unwrap_or(name);
        Some(Note { name, kind, desc })
    })
}

/// What a dump's notes say: how many CPUs saved state (and their `NT_PRSTATUS`
/// bodies, in note order), and the VMCOREINFO text.
#[derive(Default)]
pub(crate) struct NoteSummary {
    pub(crate) cpus: u32,
    pub(crate) prstatus: Vec<Vec<u8>>,
    /// QEMU's own per-CPU notes are there: a `dump-guest-memory` dump.
    pub(crate) qemu: bool,
    pub(crate) vmcoreinfo: Option<Vec<u8>>,
}

pub(crate) fn summarize(data: &[u8]) -> NoteSummary {
    let mut s = NoteSummary::default();
    for note in notes(data) {
        if note.kind == NT_PRSTATUS && note.name == b"CORE" {
            s.cpus += 1;
            s.prstatus.push(note.desc.to_vec());
        } else if note.name == b"QEMU" {
            s.qemu = true;
        } else if note.name == b"VMCOREINFO" && s.vmcoreinfo.is_none() {
            s.vmcoreinfo = Some(note.desc.to_vec());
        }
    }
    s
}

/// Encodes one note, for building synthetic dumps.
pub(crate) fn encode(name: &str, kind: u32, desc: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(name.len() as u32 + 1).to_le_bytes());
    out.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    out.resize(out.len().next_multiple_of(4), 0);
    out.extend_from_slice(desc);
    out.resize(out.len().next_multiple_of(4), 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_cpus_and_finds_vmcoreinfo() {
        let mut data = encode("CORE", NT_PRSTATUS, &[1; 336]);
        data.extend(encode("CORE", NT_PRSTATUS, &[2; 336]));
        data.extend(encode("QEMU", 0, &[3; 10]));
        data.extend(encode("VMCOREINFO", 0, b"OSRELEASE=6.1\n"));
        let s = summarize(&data);
        assert_eq!(s.cpus, 2);
        assert_eq!(s.vmcoreinfo.as_deref(), Some(&b"OSRELEASE=6.1\n"[..]));
    }

    #[test]
    fn stops_at_a_note_that_overruns_its_segment() {
        let mut data = encode("CORE", NT_PRSTATUS, &[1; 8]);
        let mut bad = encode("VMCOREINFO", 0, b"x");
        bad[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        data.extend(bad);
        let s = summarize(&data);
        assert_eq!(s.cpus, 1);
        assert!(s.vmcoreinfo.is_none());
    }
}
