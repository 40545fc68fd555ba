//! x86_64 ORC unwind tables, read from the dump's memory: find the entry for an address.
//!
//! Layout from the kernel's `arch/x86/include/asm/orc_types.h` and `unwind_orc.c`: an array
//! of `int` offsets (`orc_unwind_ip[i]` is relative to its own address), sorted by address,
//! beside an array of 6-byte `struct orc_entry` (`s16 sp_offset, s16 bp_offset, u16 flags`).
//! The vmlinux tables lie between `__start_orc_unwind_ip` and `__stop_orc_unwind_ip`
//! (`__start_orc_unwind` beside them); a module's are `mod->arch.orc_unwind_ip`,
//! `orc_unwind` and `num_orcs`. The meaning of `flags` changed twice (versions are drgn's
//! naming, `libdrgn/orc.h`):
//!
//! | version | kernels | bits 0-3 | 4-7 | 8.. |
//! |---|---|---|---|---|
//! | 1 | up to 6.2 | sp_reg | bp_reg | type:2 (CALL 0, REGS 1, REGS_PARTIAL 2), end:1 |
//! | 2 | 6.3 | sp_reg | bp_reg | type:2, signal:1, end:1 |
//! | 3 | 6.4 on | sp_reg | bp_reg | type:3 (UNDEFINED 0, END_OF_STACK 1, CALL 2, REGS 3, REGS_PARTIAL 4), signal:1 |
//!
//! From 6.4 the kernel also carries `.orc_header`, a hash of `orc_types.h`
//! (`__start_orc_header`); the version is read from it when present, else from the release.
//! Lookup is the kernel's `__orc_find()`: the last entry whose address is at or below the
//! one sought (a weak terminator sorts before the real entry at the same address).

use crate::error::{Error, Result};
use crate::memory::KernelMemory;

pub(crate) const REG_UNDEFINED: u8 = 0;
pub(crate) const REG_PREV_SP: u8 = 1;
pub(crate) const REG_DX: u8 = 2;
pub(crate) const REG_DI: u8 = 3;
pub(crate) const REG_BP: u8 = 4;
pub(crate) const REG_SP: u8 = 5;
pub(crate) const REG_R10: u8 = 6;
pub(crate) const REG_R13: u8 = 7;
pub(crate) const REG_BP_INDIRECT: u8 = 8;
pub(crate) const REG_SP_INDIRECT: u8 = 9;

/// Tables larger than this are not a kernel's (Debian's vmlinux has about 200 000 entries).
const MAX_ENTRIES: u64 = 1 << 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    V1,
    V2,
    V3,
}

/// `orc_hash.sh` of `orc_types.h` at 6.3 and 6.4 (the values drgn lists).
const HASH_6_3: [u8; 20] = [
    0xdb, 0x84, 0xae, 0xd4, 0x10, 0x3b, 0x31, 0xdd, 0x51, 0xe0, 0x17, 0xf8, 0xf7, 0x97, 0x83, 0xca,
    0x98, 0x5c, 0x2c, 0x51,
];
const HASH_6_4: [u8; 20] = [
    0xfe, 0x5d, 0x32, 0xbf, 0x58, 0x1b, 0xd6, 0x3b, 0x2c, 0xa9, 0xa5, 0xc6, 0x5b, 0xa5, 0xa6, 0x25,
    0xea, 0xb3, 0xfe, 0x24,
];

impl Version {
    /// From the `.orc_header` hash, if the kernel has one.
    pub(crate) fn from_header(hash: &[u8; 20]) -> Result<Version> {
        match *hash {
            HASH_6_4 => Ok(Version::V3),
            HASH_6_3 => Ok(Version::V2),
            _ => Err(Error::Unsupported(format!(
                "ORC format with header hash {} (kdrill knows those of 6.3 and 6.4-7.0)",
                hash.iter().map(|b| format!("{b:02x}")).collect::<String>()
            ))),
        }
    }

    /// From the kernel release, for kernels without `.orc_header`.
    pub(crate) fn from_release(release: &str) -> Version {
        let mut parts = release.split(|c: char| !c.is_ascii_digit());
        let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        match (major, minor) {
            v if v >= (6, 4) => Version::V3,
            (6, 3) => Version::V2,
            _ => Version::V1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// No information: the unwind stops with an error (a terminator).
    Undefined,
    /// The end of a kernel stack (a kernel thread's first frame, an entry point).
    EndOfStack,
    /// The return address is at the previous stack pointer - 8.
    Call,
    /// A full `struct pt_regs` is at the previous stack pointer.
    Regs,
    /// Only the hardware's iret frame is at the previous stack pointer.
    RegsPartial,
}

/// One decoded ORC entry, in version 3 terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) sp_offset: i16,
    pub(crate) bp_offset: i16,
    pub(crate) sp_reg: u8,
    pub(crate) bp_reg: u8,
    pub(crate) kind: Kind,
    /// The frame was interrupted (look the next address up as is, not minus one).
    pub(crate) signal: bool,
}

impl Entry {
    pub(crate) fn decode(raw: [u8; 6], version: Version) -> Entry {
        let sp_offset = i16::from_le_bytes([raw[0], raw[1]]);
        let bp_offset = i16::from_le_bytes([raw[2], raw[3]]);
        let flags = u16::from_le_bytes([raw[4], raw[5]]);
        let sp_reg = (flags & 0xf) as u8;
        let bp_reg = ((flags >> 4) & 0xf) as u8;
        let old = |ty: u16, end: bool| {
            if sp_reg == REG_UNDEFINED {
                if end {
                    Kind::EndOfStack
                } else {
                    Kind::Undefined
                }
            } else {
                match ty {
                    0 => Kind::Call,
                    1 => Kind::Regs,
                    2 => Kind::RegsPartial,
                    _ => Kind::Undefined,
                }
            }
        };
        let (kind, signal) = match version {
            Version::V1 => {
                let k = old((flags >> 8) & 3, flags & 0x400 != 0);
                (k, matches!(k, Kind::Regs | Kind::RegsPartial))
            }
            Version::V2 => (
                old((flags >> 8) & 3, flags & 0x800 != 0),
                flags & 0x400 != 0,
            ),
            Version::V3 => {
                let k = match (flags >> 8) & 7 {
                    1 => Kind::EndOfStack,
                    2 => Kind::Call,
                    3 => Kind::Regs,
                    4 => Kind::RegsPartial,
                    _ => Kind::Undefined,
                };
                (k, flags & 0x800 != 0)
            }
        };
        Entry {
            sp_offset,
            bp_offset,
            sp_reg,
            bp_reg,
            kind,
            signal,
        }
    }
}

/// The kernel's guess for code without ORC data (BPF, generated code): a frame-pointer
/// frame (`orc_fp_entry`).
pub(crate) const FRAME_POINTER_GUESS: Entry = Entry {
    sp_offset: 16,
    bp_offset: -16,
    sp_reg: REG_BP,
    bp_reg: REG_PREV_SP,
    kind: Kind::Call,
    signal: false,
};

/// One ORC table: the vmlinux's or a module's.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Table {
    pub(crate) ips: u64,
    pub(crate) entries: u64,
    pub(crate) count: u64,
    pub(crate) version: Version,
}

impl Table {
    pub(crate) fn new(ips: u64, entries: u64, count: u64, version: Version) -> Result<Table> {
        if count > MAX_ENTRIES {
            return Err(Error::Corrupt(format!(
                "an ORC table of {count} entries at {ips:#x} (a kernel's has under {MAX_ENTRIES})"
            )));
        }
        Ok(Table {
            ips,
            entries,
            count,
            version,
        })
    }

    fn ip(&self, mem: &mut dyn KernelMemory, i: u64) -> Result<u64> {
        let at = self.ips.wrapping_add(4 * i);
        let off = mem.read_u32(at)? as i32;
        Ok(at.wrapping_add(off as i64 as u64))
    }

    /// The entry that covers `ip`, if the table reaches it.
    pub(crate) fn find(&self, mem: &mut dyn KernelMemory, ip: u64) -> Result<Option<Entry>> {
        if self.count == 0 || self.ip(mem, 0)? > ip {
            return Ok(None);
        }
        // The last index whose address is <= ip: at most 24 steps.
        let (mut lo, mut hi) = (0u64, self.count);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.ip(mem, mid)? <= ip {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let mut raw = [0u8; 6];
        mem.read_virt(self.entries.wrapping_add(6 * lo), &mut raw)?;
        Ok(Some(Entry::decode(raw, self.version)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MapMemory;

    #[test]
    fn decodes_each_version() {
        // sp_reg SP (5), bp_reg PREV_SP (1): flags low byte 0x15.
        let v1_call = Entry::decode([8, 0, 0xf0, 0xff, 0x15, 0x00], Version::V1);
        assert_eq!(v1_call.kind, Kind::Call);
        assert_eq!((v1_call.sp_offset, v1_call.bp_offset), (8, -16));
        assert!(!v1_call.signal);
        assert_eq!(
            Entry::decode([0, 0, 0, 0, 0x05, 0x01], Version::V1).kind,
            Kind::Regs
        );
        assert!(Entry::decode([0, 0, 0, 0, 0x05, 0x01], Version::V1).signal);
        assert_eq!(
            Entry::decode([0, 0, 0, 0, 0x00, 0x04], Version::V1).kind,
            Kind::EndOfStack
        );
        assert_eq!(
            Entry::decode([0, 0, 0, 0, 0x00, 0x00], Version::V1).kind,
            Kind::Undefined
        );
        assert_eq!(
            Entry::decode([0, 0, 0, 0, 0x05, 0x02], Version::V3).kind,
            Kind::Call
        );
        assert_eq!(
            Entry::decode([0, 0, 0, 0, 0x00, 0x01], Version::V3).kind,
            Kind::EndOfStack
        );
        let regs = Entry::decode([0, 0, 0, 0, 0x05, 0x0b], Version::V3);
        assert_eq!((regs.kind, regs.signal), (Kind::Regs, true));
        assert_eq!(Version::from_release("6.1.0-47-amd64"), Version::V1);
        assert_eq!(Version::from_release("6.12.117+deb12-amd64"), Version::V3);
        assert_eq!(Version::from_header(&HASH_6_4).unwrap(), Version::V3);
        assert!(Version::from_header(&[0; 20]).is_err());
    }

    #[test]
    fn finds_the_last_entry_at_or_below() {
        let ips_at = 0xffff_ffff_8200_0000u64;
        let text = 0xffff_ffff_8100_0000u64;
        let mut ips = Vec::new();
        for (i, a) in [text, text + 0x10, text + 0x10, text + 0x40]
            .iter()
            .enumerate()
        {
            let rel = (*a as i64 - (ips_at + 4 * i as u64) as i64) as i32;
            ips.extend_from_slice(&rel.to_le_bytes());
        }
        let mut entries = Vec::new();
        for sp in [8i16, 16, 24, 32] {
            entries.extend_from_slice(&sp.to_le_bytes());
            entries.extend_from_slice(&[0, 0, 0x15, 0]);
        }
        let mut mem = MapMemory(vec![(ips_at, ips), (ips_at + 0x1000, entries)]);
        let t = Table::new(ips_at, ips_at + 0x1000, 4, Version::V1).unwrap();
        let sp = |m: &mut MapMemory, ip| t.find(m, ip).unwrap().map(|e| e.sp_offset);
        assert_eq!(sp(&mut mem, text - 1), None);
        assert_eq!(sp(&mut mem, text + 4), Some(8));
        // Two entries at one address: the later one, as the kernel's lookup.
        assert_eq!(sp(&mut mem, text + 0x10), Some(24));
        assert_eq!(sp(&mut mem, text + 0x1000), Some(32));
        assert!(Table::new(0, 0, 1 << 30, Version::V3).is_err());
    }
}
