//! x86_64 ORC unwind tables, read from the dump's memory: find the entry for an address.
//!
//! Layout from the kernel's `arch/x86/include/asm/orc_types.h` and `unwind_orc.c`: an array
//! of `int` offsets (`orc_unwind_ip[i]` is relative to its own address), sorted by address,
//! beside an array of 6-byte `struct orc_entry` (`s16 sp_offset, s16 bp_offset, u16 flags`).
//! The vmlinux tables lie between `__start_orc_unwind_ip` and `__stop_orc_unwind_ip`
//! (`__start_orc_unwind` beside them); a module's are `mod->arch.orc_unwind_ip`,
//! `orc_unwind` and `num_orcs`. The meaning of `flags` changed three times (versions are
//! drgn's naming, `libdrgn/orc.h`):
//!
//! | version | kernels | bits 0-3 | 4-7 | 8.. |
//! |---|---|---|---|---|
//! | 1 | up to 6.2 | sp_reg | bp_reg | type:2 (CALL 0, REGS 1, REGS_PARTIAL 2), end:1 |
//! | 2 | 6.3 | sp_reg | bp_reg | type:2, signal:1, end:1 |
//! | 3 | 6.4 - 7.0 | sp_reg | bp_reg | type:3 (UNDEFINED 0, END_OF_STACK 1, CALL 2, REGS 3, REGS_PARTIAL 4), signal:1 |
//! | 4 | 7.1 on | sp_reg | bp_reg | as 3; the registers renumbered, AX added |
//!
//! Registers up to 7.0: UNDEFINED 0, PREV_SP 1, DX 2, DI 3, BP 4, SP 5, R10 6, R13 7,
//! BP_INDIRECT 8, SP_INDIRECT 9 (and AX 10 in a kernel with objtool commit 96f3b16a9de5 alone,
//! "objtool: Support Clang RAX DRAP sequence"). From 7.1 (commit 1735858caa4b "objtool/x86:
//! Reorder ORC register numbering"): UNDEFINED 0, AX 1, DX 2, SP 3, BP 4, DI 5, R10 6, R13 7,
//! PREV_SP 8, SP_INDIRECT 9, BP_INDIRECT 10. Entries are decoded into one numbering, [`Reg`],
//! as drgn's `reg_map[]` (commit 75a4fd04, "libdrgn: orc: handle ORC register renumbering in
//! Linux 7.1") does, so the unwinder knows no versions.
//!
//! From 6.3.10 and 6.4 the kernel also carries `.orc_header` (`__start_orc_header`), the
//! `scripts/orc_hash.sh` digest of the `ORC_REG_*`/`ORC_TYPE_*` defines and `struct orc_entry`
//! of `orc_types.h` (not the file's sha1); the version is read from it when present, else from
//! the release. Lookup is the kernel's `__orc_find()`: the last entry whose address is at or
//! below the one sought (a weak terminator sorts before the real entry at the same address).

use std::fmt;

use crate::error::{Error, Result};
use crate::memory::KernelMemory;

/// A base register of an ORC entry, in one numbering whatever the kernel's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reg {
    Undefined,
    PrevSp,
    Ax,
    Dx,
    Di,
    Bp,
    Sp,
    R10,
    R13,
    BpIndirect,
    SpIndirect,
    /// A number the entry's version does not define (11-15): the kernel's unwind stops there.
    Unknown(u8),
}

impl Reg {
    fn decode(raw: u8, version: Version) -> Reg {
        match (version, raw) {
            (_, 0) => Reg::Undefined,
            (_, 2) => Reg::Dx,
            (_, 4) => Reg::Bp,
            (_, 6) => Reg::R10,
            (_, 7) => Reg::R13,
            (_, 9) => Reg::SpIndirect,
            (Version::V4, 1) => Reg::Ax,
            (Version::V4, 3) => Reg::Sp,
            (Version::V4, 5) => Reg::Di,
            (Version::V4, 8) => Reg::PrevSp,
            (Version::V4, 10) => Reg::BpIndirect,
            (_, 1) => Reg::PrevSp,
            (_, 3) => Reg::Di,
            (_, 5) => Reg::Sp,
            (_, 8) => Reg::BpIndirect,
            (_, 10) => Reg::Ax,
            (_, n) => Reg::Unknown(n),
        }
    }
}

impl fmt::Display for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Reg::Undefined => "UNDEFINED",
            Reg::PrevSp => "PREV_SP",
            Reg::Ax => "AX",
            Reg::Dx => "DX",
            Reg::Di => "DI",
            Reg::Bp => "BP",
            Reg::Sp => "SP",
            Reg::R10 => "R10",
            Reg::R13 => "R13",
            Reg::BpIndirect => "BP_INDIRECT",
            Reg::SpIndirect => "SP_INDIRECT",
            Reg::Unknown(n) => return write!(f, "{n}"),
        };
        f.write_str(name)
    }
}

/// Tables larger than this are not a kernel's (Debian's vmlinux has about 200 000 entries).
const MAX_ENTRIES: u64 = 1 << 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    V1,
    V2,
    V3,
    V4,
}

/// `orc_hash.sh` of `orc_types.h` at 6.3, 6.4 and 7.1 (the values drgn lists; 7.1's also
/// Debian's generated `orc_hash.h` of 7.2.13 and 7.3.4, and the `.orc_header` of their dumps).
const HASH_6_3: [u8; 20] = [
    0xdb, 0x84, 0xae, 0xd4, 0x10, 0x3b, 0x31, 0xdd, 0x51, 0xe0, 0x17, 0xf8, 0xf7, 0x97, 0x83, 0xca,
    0x98, 0x5c, 0x2c, 0x51,
];
const HASH_6_4: [u8; 20] = [
    0xfe, 0x5d, 0x32, 0xbf, 0x58, 0x1b, 0xd6, 0x3b, 0x2c, 0xa9, 0xa5, 0xc6, 0x5b, 0xa5, 0xa6, 0x25,
    0xea, 0xb3, 0xfe, 0x24,
];
/// 6.4's `orc_types.h` plus `#define ORC_REG_AX 10` (objtool commit 96f3b16a9de5 without the
/// renumbering; proposed for the 6.12, 6.18 and 7.0 stable series): the 6.4 format, AX 10.
/// Computed with `orc_hash.sh` from Debian 6.12.117's file and that hunk; no kernel seen with it.
const HASH_AX_ONLY: [u8; 20] = [
    0xed, 0xfa, 0x4d, 0x15, 0x55, 0x2f, 0xdd, 0x2e, 0x1d, 0x56, 0x67, 0x97, 0x28, 0x41, 0x63, 0x79,
    0xf2, 0xfe, 0x45, 0x34,
];
const HASH_7_1: [u8; 20] = [
    0x13, 0x7c, 0x36, 0xad, 0x76, 0x27, 0xc4, 0xdd, 0x55, 0x93, 0x21, 0x76, 0xbb, 0x0e, 0xcd, 0xbd,
    0x50, 0x41, 0xfc, 0x82,
];

impl Version {
    /// From the `.orc_header` hash, if the kernel has one.
    pub(crate) fn from_header(hash: &[u8; 20]) -> Result<Version> {
        match *hash {
            HASH_7_1 => Ok(Version::V4),
            HASH_6_4 | HASH_AX_ONLY => Ok(Version::V3),
            HASH_6_3 => Ok(Version::V2),
            _ => Err(Error::Unsupported(format!(
                "ORC format with header hash {} (kdrill knows those of 6.3, 6.4-7.0 and 7.1-7.3); backtraces need it, the log, tasks, modules and registers do not",
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
            v if v >= (7, 1) => Version::V4,
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

/// One decoded ORC entry, in version 3 types and [`Reg`] registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) sp_offset: i16,
    pub(crate) bp_offset: i16,
    pub(crate) sp_reg: Reg,
    pub(crate) bp_reg: Reg,
    pub(crate) kind: Kind,
    /// The frame was interrupted (look the next address up as is, not minus one).
    pub(crate) signal: bool,
}

impl Entry {
    pub(crate) fn decode(raw: [u8; 6], version: Version) -> Entry {
        let sp_offset = i16::from_le_bytes([raw[0], raw[1]]);
        let bp_offset = i16::from_le_bytes([raw[2], raw[3]]);
        let flags = u16::from_le_bytes([raw[4], raw[5]]);
        let sp_raw = (flags & 0xf) as u8;
        let bp_raw = ((flags >> 4) & 0xf) as u8;
        let old = |ty: u16, end: bool| {
            if sp_raw == 0 {
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
            Version::V3 | Version::V4 => {
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
            sp_reg: Reg::decode(sp_raw, version),
            bp_reg: Reg::decode(bp_raw, version),
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
    sp_reg: Reg::Bp,
    bp_reg: Reg::PrevSp,
    kind: Kind::Call,
    signal: false,
};

/// One ORC table: the vmlinux's or a module's. Where it lies needs no version; reading an
/// entry does, so a module list can be read when the ORC format is not known.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Table {
    pub(crate) ips: u64,
    pub(crate) entries: u64,
    pub(crate) count: u64,
}

impl Table {
    pub(crate) fn new(ips: u64, entries: u64, count: u64) -> Result<Table> {
        if count > MAX_ENTRIES {
            return Err(Error::Corrupt(format!(
                "an ORC table of {count} entries at {ips:#x} (a kernel's has under {MAX_ENTRIES})"
            )));
        }
        Ok(Table {
            ips,
            entries,
            count,
        })
    }

    fn ip(&self, mem: &mut dyn KernelMemory, i: u64) -> Result<u64> {
        let at = self.ips.wrapping_add(4 * i);
        let off = mem.read_u32(at)? as i32;
        Ok(at.wrapping_add(off as i64 as u64))
    }

    /// The entry that covers `ip`, if the table reaches it, decoded as `version`.
    pub(crate) fn find(
        &self,
        mem: &mut dyn KernelMemory,
        ip: u64,
        version: Version,
    ) -> Result<Option<Entry>> {
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
        Ok(Some(Entry::decode(raw, version)))
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
    fn decodes_the_7_1_register_numbers() {
        // 7.1's CALL with sp_reg SP (3) + 8 and bp_reg PREV_SP (8) - 16: flags 0x0283.
        let call = Entry::decode([8, 0, 0xf0, 0xff, 0x83, 0x02], Version::V4);
        assert_eq!(
            (
                call.kind,
                call.sp_reg,
                call.bp_reg,
                call.sp_offset,
                call.bp_offset
            ),
            (Kind::Call, Reg::Sp, Reg::PrevSp, 8, -16)
        );
        // The same bits in 6.4's numbering: sp_reg DI, bp_reg BP_INDIRECT.
        let old = Entry::decode([8, 0, 0xf0, 0xff, 0x83, 0x02], Version::V3);
        assert_eq!((old.sp_reg, old.bp_reg), (Reg::Di, Reg::BpIndirect));
        // AX as the CFA base (1 from 7.1; 10 under the old numbers), DI and BP_INDIRECT moved.
        let ax = |raw, v| Entry::decode([0, 0, 0, 0, raw, 0x02], v).sp_reg;
        assert_eq!(ax(0x01, Version::V4), Reg::Ax);
        assert_eq!(ax(0x0a, Version::V3), Reg::Ax);
        assert_eq!(ax(0x05, Version::V4), Reg::Di);
        assert_eq!(ax(0x0a, Version::V4), Reg::BpIndirect);
        assert_eq!(ax(0x09, Version::V4), Reg::SpIndirect);
        assert_eq!(ax(0x0b, Version::V4), Reg::Unknown(11));
        // Types and the signal bit are 6.4's: REGS with signal, END_OF_STACK.
        let regs = Entry::decode([0, 0, 0, 0, 0x03, 0x0b], Version::V4);
        assert_eq!((regs.kind, regs.signal), (Kind::Regs, true));
        assert_eq!(
            Entry::decode([0, 0, 0, 0, 0x00, 0x01], Version::V4).kind,
            Kind::EndOfStack
        );
        assert_eq!(Version::from_header(&HASH_7_1).unwrap(), Version::V4);
        assert_eq!(Version::from_header(&HASH_AX_ONLY).unwrap(), Version::V3);
        assert_eq!(Version::from_release("7.1.0-1-amd64"), Version::V4);
        assert_eq!(Version::from_release("7.3.4+deb13-amd64"), Version::V4);
        assert_eq!(Version::from_release("7.0.9+deb13-amd64"), Version::V3);
        let unknown = Version::from_header(&[0xab; 20]).unwrap_err().to_string();
        assert!(unknown.contains("6.4-7.0 and 7.1-7.3"), "{unknown}");
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
        let t = Table::new(ips_at, ips_at + 0x1000, 4).unwrap();
        let sp = |m: &mut MapMemory, ip| t.find(m, ip, Version::V1).unwrap().map(|e| e.sp_offset);
        assert_eq!(sp(&mut mem, text - 1), None);
        assert_eq!(sp(&mut mem, text + 4), Some(8));
        // Two entries at one address: the later one, as the kernel's lookup.
        assert_eq!(sp(&mut mem, text + 0x10), Some(24));
        assert_eq!(sp(&mut mem, text + 0x1000), Some(32));
        assert!(Table::new(0, 0, 1 << 30).is_err());
    }
}
