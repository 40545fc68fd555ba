//! BTF, the kernel's own type information (`CONFIG_DEBUG_INFO_BTF=y`), read from the dump's
//! memory between `__start_BTF` and `__stop_BTF`: structure layouts by name and member.
//!
//! Format from the kernel's `include/uapi/linux/btf.h` and `Documentation/bpf/btf.rst`: a
//! 24-byte header (magic 0xeB9F, version 1, `hdr_len`, then offsets and lengths of the type
//! and string sections after the header), types numbered from 1, each a 12-byte `btf_type`
//! (`name_off`, `info` = vlen | kind << 24 | kind_flag << 31, `size`/`type`) followed by
//! kind-specific data. Only what layouts need is interpreted: structs, unions and their
//! members (bit offsets; with `kind_flag` the low 24 bits), arrays, enums, and the
//! qualifiers and typedefs that are looked through.
//!
//! Read by hand: the format is small, and the one Rust crate for it (`btf-rs`) is
//! LGPL-2.1, which kdrill (MIT/Apache-2.0) does not take in.

use std::collections::HashMap;

use crate::budget::Budget;
use crate::error::{Error, Result};
use crate::memory::KernelMemory;

pub mod build;

pub use build::build;

pub(crate) const MAGIC: u16 = 0xeb9f;
/// Debian's vmlinux BTF is 5-6 MiB; a kernel's is far below this.
const MAX_BTF: u64 = 64 << 20;

pub(crate) const INT: u32 = 1;
pub(crate) const PTR: u32 = 2;
pub(crate) const ARRAY: u32 = 3;
pub(crate) const STRUCT: u32 = 4;
const UNION: u32 = 5;
const ENUM: u32 = 6;
const TYPEDEF: u32 = 8;
const VOLATILE: u32 = 9;
const CONST: u32 = 10;
const RESTRICT: u32 = 11;
const TYPE_TAG: u32 = 18;
const ENUM64: u32 = 19;

/// A member found by [`Btf::member`]: its byte offset from the start of the outer struct
/// and its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) offset: u64,
    pub(crate) ty: u32,
}

pub(crate) struct Btf {
    types: Vec<u8>,
    strings: Vec<u8>,
    /// Offset in `types` of each type id (index 0, `void`, unused).
    at: Vec<u32>,
    /// Struct and union ids by name; a complete definition wins over a forward one.
    structs: HashMap<String, u32>,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Extra bytes after the 12-byte header of a type of `kind` with `vlen` entries.
fn extra(kind: u32, vlen: usize) -> Option<usize> {
    Some(match kind {
        INT | 14 | 17 => 4,                        // INT, VAR, DECL_TAG
        ARRAY => 12,                               // btf_array
        STRUCT | UNION | 15 | ENUM64 => vlen * 12, // members, DATASEC vars, enum64 values
        ENUM | 13 => vlen * 8,                     // enum values, FUNC_PROTO params
        PTR | 7 | TYPEDEF | VOLATILE | CONST | RESTRICT | 12 | 16 | TYPE_TAG => 0,
        _ => return None,
    })
}

impl std::fmt::Debug for Btf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Btf({} types, {} structs)",
            self.at.len() - 1,
            self.structs.len()
        )
    }
}

impl Btf {
    /// Reads and indexes the BTF blob at `[start, stop)` of kernel memory.
    pub(crate) fn load(
        mem: &mut dyn KernelMemory,
        start: u64,
        stop: u64,
        budget: &Budget,
    ) -> Result<Btf> {
        let len = stop
            .checked_sub(start)
            .ok_or_else(|| Error::Btf(format!("__stop_BTF {stop:#x} is before __start_BTF")))?;
        let mut head = [0u8; 24];
        mem.read_virt(start, &mut head)?;
        let hdr_len = u64::from(u32_at(&head, 4).unwrap_or(0));
        if u16::from_le_bytes([head[0], head[1]]) != MAGIC || head[2] != 1 || hdr_len < 24 {
            return Err(Error::Btf(format!(
                "no BTF header at {start:#x} (magic {:#06x}, version {})",
                u16::from_le_bytes([head[0], head[1]]),
                head[2]
            )));
        }
        let field = |i: usize| u64::from(u32_at(&head, 8 + 4 * i).unwrap_or(0));
        let (type_off, type_len, str_off, str_len) = (field(0), field(1), field(2), field(3));
        let section = |off: u64, n: u64, what: &str| -> Result<u64> {
            let at = hdr_len + off;
            if at + n > len {
                return Err(Error::Btf(format!(
                    "the {what} section ({n} bytes at {at}) overruns the {len}-byte blob"
                )));
            }
            Ok(start + at)
        };
        let t = section(type_off, type_len, "type")? - start;
        let s = section(str_off, str_len, "string")? - start;
        // The whole blob at once (it may be read by two threads), then its two sections.
        let blob = mem.read_bulk(start, len, "BTF", MAX_BTF, budget)?;
        let types = blob[t as usize..(t + type_len) as usize].to_vec();
        let strings = blob[s as usize..(s + str_len) as usize].to_vec();
        Btf::index(types, strings, budget)
    }

    /// Indexes a type section.
    pub(crate) fn index(types: Vec<u8>, strings: Vec<u8>, budget: &Budget) -> Result<Btf> {
        let mut at = vec![0u32];
        let mut pos = 0usize;
        while pos < types.len() {
            let info = u32_at(&types, pos + 4)
                .ok_or_else(|| Error::Btf(format!("type {} is cut at byte {pos}", at.len())))?;
            let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
            let more = extra(kind, vlen)
                .ok_or_else(|| Error::Btf(format!("type {} has unknown kind {kind}", at.len())))?;
            budget.take("BTF type index", 4)?;
            at.push(pos as u32);
            pos += 12 + more;
        }
        if pos != types.len() {
            return Err(Error::Btf(format!(
                "the last type overruns the {}-byte type section",
                types.len()
            )));
        }
        let mut btf = Btf {
            types,
            strings,
            at,
            structs: HashMap::new(),
        };
        for id in 1..btf.at.len() as u32 {
            let (kind, _, size) = btf.head(id);
            if kind == STRUCT || kind == UNION {
                let name = btf.name(id);
                if !name.is_empty() && (size > 0 || !btf.structs.contains_key(name)) {
                    budget.take("BTF struct index", name.len() as u64 + 32)?;
                    btf.structs.insert(name.to_string(), id);
                }
            }
        }
        Ok(btf)
    }

    fn str_at(&self, off: u32) -> &str {
        let rest = self.strings.get(off as usize..).unwrap_or(&[]);
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).unwrap_or("")
    }

    /// `(kind, vlen, size-or-type)` of a type; a bad id reads as `void`.
    fn head(&self, id: u32) -> (u32, usize, u32) {
        let Some(&p) = self.at.get(id as usize).filter(|_| id != 0) else {
            return (0, 0, 0);
        };
        let p = p as usize;
        let info = u32_at(&self.types, p + 4).unwrap_or(0);
        let size = u32_at(&self.types, p + 8).unwrap_or(0);
        ((info >> 24) & 0x1f, (info & 0xffff) as usize, size)
    }

    fn name(&self, id: u32) -> &str {
        match self.at.get(id as usize).filter(|_| id != 0) {
            Some(&p) => self.str_at(u32_at(&self.types, p as usize).unwrap_or(0)),
            None => "",
        }
    }

    fn kind_flag(&self, id: u32) -> bool {
        let p = self.at.get(id as usize).copied().unwrap_or(0) as usize;
        u32_at(&self.types, p + 4).unwrap_or(0) >> 31 == 1
    }

    /// Looks through typedefs and qualifiers (bounded: a loop of typedefs is an error).
    pub(crate) fn resolve(&self, mut id: u32) -> Result<u32> {
        for _ in 0..32 {
            let (kind, _, next) = self.head(id);
            match kind {
                TYPEDEF | VOLATILE | CONST | RESTRICT | TYPE_TAG => id = next,
                _ => return Ok(id),
            }
        }
        Err(Error::Btf(format!(
            "type {id} is a chain of over 32 typedefs"
        )))
    }

    /// The struct or union called `name`.
    pub(crate) fn struct_id(&self, name: &str) -> Result<u32> {
        self.structs
            .get(name)
            .copied()
            .ok_or_else(|| Error::MissingType(format!("struct {name}")))
    }

    /// The size in bytes of a (resolved) struct, union, int, pointer, enum or array.
    pub(crate) fn size_of(&self, id: u32) -> Result<u64> {
        let id = self.resolve(id)?;
        let (kind, _, size) = self.head(id);
        match kind {
            PTR => Ok(8),
            ARRAY => {
                let (elem, n) = self.array(id)?;
                Ok(self.size_of(elem)?.saturating_mul(n))
            }
            INT | STRUCT | UNION | ENUM | ENUM64 => Ok(u64::from(size)),
            _ => Err(Error::Btf(format!("type {id} (kind {kind}) has no size"))),
        }
    }

    /// `(element type, length)` of an array type.
    pub(crate) fn array(&self, id: u32) -> Result<(u32, u64)> {
        let id = self.resolve(id)?;
        let (kind, _, _) = self.head(id);
        if kind != ARRAY {
            return Err(Error::Btf(format!("type {id} is not an array")));
        }
        let p = self.at[id as usize] as usize + 12;
        let elem = u32_at(&self.types, p).unwrap_or(0);
        let n = u32_at(&self.types, p + 8).unwrap_or(0);
        Ok((elem, u64::from(n)))
    }

    /// A member of a struct, by a dotted path (`thread.sp`); anonymous structs and unions on
    /// the way are searched as the C compiler does.
    pub(crate) fn member(&self, id: u32, path: &str) -> Result<Member> {
        let mut cur = Member { offset: 0, ty: id };
        for part in path.split('.') {
            let found = self.find_member(cur.ty, part, 0).ok_or_else(|| {
                Error::MissingType(format!("member `{path}` in {}", self.describe(id)))
            })?;
            cur = Member {
                offset: cur.offset + found.offset,
                ty: found.ty,
            };
        }
        Ok(cur)
    }

    /// Offset of a member of `struct name`, by path.
    pub(crate) fn offset(&self, name: &str, path: &str) -> Result<u64> {
        Ok(self.member(self.struct_id(name)?, path)?.offset)
    }

    fn find_member(&self, id: u32, name: &str, depth: u32) -> Option<Member> {
        let id = self.resolve(id).ok()?;
        let (kind, vlen, _) = self.head(id);
        if (kind != STRUCT && kind != UNION) || depth > 8 {
            return None;
        }
        let base = self.at[id as usize] as usize + 12;
        let bitfields = self.kind_flag(id);
        for i in 0..vlen {
            let m = base + i * 12;
            let (name_off, ty, bits) = (
                u32_at(&self.types, m)?,
                u32_at(&self.types, m + 4)?,
                u32_at(&self.types, m + 8)?,
            );
            let bits = if bitfields { bits & 0xff_ffff } else { bits };
            let mname = self.str_at(name_off);
            if mname == name {
                return Some(Member {
                    offset: u64::from(bits / 8),
                    ty,
                });
            }
            if mname.is_empty() {
                if let Some(inner) = self.find_member(ty, name, depth + 1) {
                    return Some(Member {
                        offset: u64::from(bits / 8) + inner.offset,
                        ty: inner.ty,
                    });
                }
            }
        }
        None
    }

    /// The value of an enumerator, searched in every enum.
    pub(crate) fn enumerator(&self, name: &str) -> Result<i64> {
        for id in 1..self.at.len() as u32 {
            let (kind, vlen, _) = self.head(id);
            let (step, wide) = match kind {
                ENUM => (8, false),
                ENUM64 => (12, true),
                _ => continue,
            };
            let base = self.at[id as usize] as usize + 12;
            for i in 0..vlen {
                let e = base + i * step;
                if self.str_at(u32_at(&self.types, e).unwrap_or(0)) == name {
                    let lo = u32_at(&self.types, e + 4).unwrap_or(0);
                    return Ok(if wide {
                        let hi = u32_at(&self.types, e + 8).unwrap_or(0);
                        (u64::from(hi) << 32 | u64::from(lo)) as i64
                    } else {
                        i64::from(lo as i32)
                    });
                }
            }
        }
        Err(Error::MissingType(format!("enumerator {name}")))
    }

    fn describe(&self, id: u32) -> String {
        let name = self.name(id);
        if name.is_empty() {
            format!("type {id}")
        } else {
            format!("struct {name}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MapMemory;

    #[test]
    fn finds_members_through_paths_and_refuses_bad_blobs() {
        let blob = build(&[
            ("thread_struct", 16, &[("sp", 8, "u64")]),
            (
                "task_struct",
                64,
                &[
                    ("pid", 4, "u32"),
                    ("comm", 16, "char[16]"),
                    ("thread", 32, "thread_struct"),
                ],
            ),
        ]);
        let start = 0xffff_ffff_8200_0000u64;
        let mut mem = MapMemory(vec![(start, blob.clone())]);
        let btf = Btf::load(
            &mut mem,
            start,
            start + blob.len() as u64,
            &Budget::new(1 << 20),
        )
        .unwrap();
        assert_eq!(btf.offset("task_struct", "thread.sp").unwrap(), 40);
        let comm = btf
            .member(btf.struct_id("task_struct").unwrap(), "comm")
            .unwrap();
        assert_eq!(btf.array(comm.ty).unwrap().1, 16);
        assert_eq!(btf.size_of(comm.ty).unwrap(), 16);
        assert_eq!(
            btf.size_of(btf.struct_id("task_struct").unwrap()).unwrap(),
            64
        );
        let err = btf.offset("task_struct", "tgid").unwrap_err();
        assert!(
            err.to_string()
                .contains("member `tgid` in struct task_struct"),
            "{err}"
        );
        assert!(btf.struct_id("module").is_err());
        // A blob cut in its type section, and one with a bad magic.
        let mut cut = blob.clone();
        cut[12..16].copy_from_slice(&(blob.len() as u32).to_le_bytes());
        let mut mem = MapMemory(vec![(start, cut.clone())]);
        assert!(Btf::load(
            &mut mem,
            start,
            start + cut.len() as u64,
            &Budget::new(1 << 20)
        )
        .is_err());
        let mut mem = MapMemory(vec![(start, vec![0; 64])]);
        let err = Btf::load(&mut mem, start, start + 64, &Budget::new(1 << 20)).unwrap_err();
        assert!(err.to_string().contains("no BTF header"), "{err}");
    }
}
