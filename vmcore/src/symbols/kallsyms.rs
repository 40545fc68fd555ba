//! The kernel's own compressed symbol table (kallsyms), read from the dump's memory.
//!
//! Since Linux 6.0 (5fd8fea935a10, f09bddbd86619) VMCOREINFO names `kallsyms_names`,
//! `kallsyms_num_syms`, `kallsyms_token_table`, `kallsyms_token_index` and either
//! `kallsyms_offsets` + `kallsyms_relative_base` or `kallsyms_addresses`. The format is the
//! one `scripts/kallsyms.c` writes and `kernel/kallsyms.c` reads:
//!
//! - `kallsyms_names`: per symbol a length (one byte; since 6.1, 73bbb94466fd3, two bytes
//!   when the first has bit 7 set: `(b0 & 0x7f) | b1 << 7`), then that many token bytes;
//!   each byte expands to the NUL-terminated string at `token_table[token_index[byte]]`,
//!   and the first expanded character is the `nm` type letter.
//! - addresses: `kallsyms_offsets[i]` (`int`) is either `relative_base + (u32)off`
//!   (base-relative), or, with `CONFIG_KALLSYMS_ABSOLUTE_PERCPU` (x86_64 until 6.15),
//!   `off` itself when non-negative (a per-CPU address) and `relative_base - 1 - off` when
//!   negative; since 7.0 offsets are relative to their own place. Which one a kernel uses is
//!   not in VMCOREINFO, so every reading is tried and the one that puts `_stext` where
//!   `SYMBOL(_stext)` says is kept: that also proves the whole decode.
//!
//! Written from the kernel's sources and the description in drgn's `libdrgn/kallsyms.c`
//! (LGPL: read, not copied).

use crate::budget::Budget;
use crate::error::{Error, Result};
use crate::memory::KernelMemory;
use crate::vmcoreinfo::VmcoreInfo;

use super::{Builder, SymbolSource, SymbolTable, MAX_NAME, MAX_SYMBOLS};

const PAGE: u64 = 4096;

/// Where the tables are, from VMCOREINFO.
struct Tables {
    names: u64,
    num_syms: u64,
    token_table: u64,
    token_index: u64,
    offsets: Option<u64>,
    relative_base: Option<u64>,
    addresses: Option<u64>,
    stext: u64,
}

/// Whether VMCOREINFO locates the kallsyms tables (Linux 6.0 and later).
pub(crate) fn present(vi: &VmcoreInfo) -> bool {
    vi.symbol("kallsyms_names").is_some()
}

/// Two-byte name lengths: Linux 6.1 and later (the change carries no marker of its own).
fn long_names(release: &str) -> bool {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor) >= (6, 1)
}

/// Reads and decodes the tables into a [`SymbolTable`].
pub(crate) fn load(
    mem: &mut dyn KernelMemory,
    vi: &VmcoreInfo,
    budget: &Budget,
) -> Result<SymbolTable> {
    let t = Tables {
        names: vi.need_symbol("kallsyms_names")?,
        num_syms: vi.need_symbol("kallsyms_num_syms")?,
        token_table: vi.need_symbol("kallsyms_token_table")?,
        token_index: vi.need_symbol("kallsyms_token_index")?,
        offsets: vi.symbol("kallsyms_offsets"),
        relative_base: vi.symbol("kallsyms_relative_base"),
        addresses: vi.symbol("kallsyms_addresses"),
        stext: vi.need_symbol("_stext")?,
    };
    let count = u64::from(mem.read_u32(t.num_syms)?);
    if count == 0 || count > MAX_SYMBOLS {
        return Err(Error::Symbols(format!(
            "kallsyms_num_syms is {count}, a kernel has between 1 and {MAX_SYMBOLS}"
        )));
    }
    let raw = mem.read_vec(t.token_index, 512, "kallsyms_token_index", 512, budget)?;
    let index: Vec<u16> = raw
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let max = u64::from(*index.iter().max().unwrap_or(&0));
    // Every token is shorter than a name; the last one ends within MAX_NAME of its start.
    let table = mem.read_vec(
        t.token_table,
        max + MAX_NAME as u64,
        "kallsyms_token_table",
        u16::MAX as u64 + MAX_NAME as u64,
        budget,
    )?;
    let tokens: Vec<&[u8]> = index
        .iter()
        .map(|&at| {
            let rest = &table[at as usize..];
            let end = rest.iter().position(|&b| b == 0).ok_or_else(|| {
                Error::Symbols(format!("token at {at} of kallsyms_token_table never ends"))
            })?;
            Ok(&rest[..end])
        })
        .collect::<Result<_>>()?;
    let long = long_names(vi.osrelease().unwrap_or(""));
    // The names end before the token table, which follows them (and the markers) in every
    // layout scripts/kallsyms.c has written: read that span at once, else page by page.
    let span = t.token_table.wrapping_sub(t.names);
    // (A span that cannot be read whole is read page by page: the names may end before
    // what could not be read.)
    let first = if t.token_table > t.names && span <= 16 << 20 {
        mem.read_bulk(t.names, span, "kallsyms_names", 16 << 20, budget)
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let names = decode_names(mem, t.names, first, count, &tokens, long, budget)?;
    let addresses = addresses(mem, &t, count, &names, budget)?;
    let mut b = Builder::with_arena(names.text);
    for (&(at, len, kind), addr) in names.spans.iter().zip(addresses) {
        b.push_span(addr, kind, at, len);
    }
    Ok(b.finish(SymbolSource::Kallsyms))
}

/// Every name expanded into one text: `(start, length, type letter)` per symbol.
struct Names {
    text: String,
    spans: Vec<(u32, u16, u8)>,
}

impl Names {
    fn get(&self, i: usize) -> &str {
        let (at, len, _) = self.spans[i];
        &self.text[at as usize..at as usize + len as usize]
    }
}

/// Reads `kallsyms_names` a page at a time (its length is known only by walking it) and
/// expands every name.
fn decode_names(
    mem: &mut dyn KernelMemory,
    at: u64,
    first: Vec<u8>,
    count: u64,
    tokens: &[&[u8]],
    long: bool,
    budget: &Budget,
) -> Result<Names> {
    let mut buf: Vec<u8> = first;
    let mut pos = 0usize;
    let mut text: Vec<u8> = Vec::new();
    let mut spans = Vec::new();
    let mut need = |buf: &mut Vec<u8>, upto: usize| -> Result<()> {
        while buf.len() < upto {
            let addr = at
                .checked_add(buf.len() as u64)
                .ok_or_else(|| Error::Symbols("kallsyms_names wraps the address space".into()))?;
            let n = (PAGE - addr % PAGE) as usize;
            if buf.len() + n > 256 << 20 {
                return Err(Error::Symbols(
                    "kallsyms_names runs past 256 MiB without ending".into(),
                ));
            }
            budget.take("kallsyms_names", n as u64)?;
            let old = buf.len();
            buf.resize(old + n, 0);
            mem.read_virt(addr, &mut buf[old..])?;
        }
        Ok(())
    };
    budget.take("kallsyms names", count.saturating_mul(8 + 24))?;
    for i in 0..count {
        need(&mut buf, pos + 2)?;
        let mut len = buf[pos] as usize;
        pos += 1;
        if long && len & 0x80 != 0 {
            let second = buf[pos] as usize;
            if second & 0x80 != 0 {
                return Err(Error::Symbols(format!(
                    "symbol {i}: a name length of more than two bytes in kallsyms_names"
                )));
            }
            len = (len & 0x7f) | (second << 7);
            pos += 1;
        }
        if len == 0 || len > MAX_NAME * 2 {
            return Err(Error::Symbols(format!(
                "symbol {i}: {len} tokens in kallsyms_names (1 to {} in a real name)",
                MAX_NAME * 2
            )));
        }
        need(&mut buf, pos + len)?;
        let start = text.len();
        let mut kind = None;
        for &b in &buf[pos..pos + len] {
            let tok = tokens[b as usize];
            match kind {
                None => {
                    let Some((&k, rest)) = tok.split_first() else {
                        continue;
                    };
                    kind = Some(k);
                    text.extend_from_slice(rest);
                }
                Some(_) => text.extend_from_slice(tok),
            }
            if text.len() - start > MAX_NAME {
                return Err(Error::Symbols(format!(
                    "symbol {i}: its name expands past {MAX_NAME} bytes"
                )));
            }
        }
        pos += len;
        let (Some(kind), n @ 1..) = (kind, text.len() - start) else {
            return Err(Error::Symbols(format!("symbol {i} has an empty name")));
        };
        let start =
            u32::try_from(start).map_err(|_| Error::Symbols("kallsyms names over 4 GiB".into()))?;
        spans.push((start, n as u16, kind));
    }
    // Kernel symbol names are ASCII; anything else is shown, not trusted.
    let text = match String::from_utf8(text) {
        Ok(t) => t,
        Err(e) => {
            let bytes = e.into_bytes();
            bytes
                .iter()
                .map(|&b| if b.is_ascii() { b as char } else { '?' })
                .collect()
        }
    };
    Ok(Names { text, spans })
}

/// The address of every symbol, by whichever encoding puts `_stext` where VMCOREINFO says.
fn addresses(
    mem: &mut dyn KernelMemory,
    t: &Tables,
    count: u64,
    names: &Names,
    budget: &Budget,
) -> Result<Vec<u64>> {
    let stext = (0..names.spans.len())
        .position(|i| names.get(i) == "_stext")
        .ok_or_else(|| Error::Symbols("kallsyms has no _stext".into()))?;
    if let Some(at) = t.addresses {
        let raw = mem.read_vec(at, count * 8, "kallsyms_addresses", MAX_SYMBOLS * 8, budget)?;
        let v: Vec<u64> = raw
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        return check(v, stext, t.stext, "kallsyms_addresses");
    }
    let at = t.offsets.ok_or_else(|| {
        Error::MissingVmcoreinfo("SYMBOL(kallsyms_offsets) or SYMBOL(kallsyms_addresses)".into())
    })?;
    let raw = mem.read_bulk(at, count * 4, "kallsyms_offsets", MAX_SYMBOLS * 4, budget)?;
    let offs: Vec<u32> = raw
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let base = match t.relative_base {
        Some(b) => mem.read_u64(b)?,
        None => 0,
    };
    let percpu = |o: u32| {
        let o = o as i32;
        if o >= 0 {
            o as u64
        } else {
            base.wrapping_sub(1).wrapping_sub(o as i64 as u64)
        }
    };
    let relative = |o: u32| base.wrapping_add(u64::from(o));
    let place = |i: usize, o: u32| {
        at.wrapping_add(4 * i as u64)
            .wrapping_add(o as i32 as i64 as u64)
    };
    let s = offs[stext];
    let v: Vec<u64> = if t.relative_base.is_some() && relative(s) == t.stext {
        offs.iter().map(|&o| relative(o)).collect()
    } else if t.relative_base.is_some() && percpu(s) == t.stext {
        offs.iter().map(|&o| percpu(o)).collect()
    } else if place(stext, s) == t.stext {
        offs.iter().enumerate().map(|(i, &o)| place(i, o)).collect()
    } else {
        return Err(Error::Symbols(format!(
            "no reading of kallsyms_offsets puts _stext at {:#x}, where VMCOREINFO has it \
             (base-relative {:#x}, absolute-percpu {:#x}, place-relative {:#x})",
            t.stext,
            relative(s),
            percpu(s),
            place(stext, s)
        )));
    };
    Ok(v)
}

fn check(v: Vec<u64>, stext: usize, want: u64, what: &str) -> Result<Vec<u64>> {
    if v[stext] != want {
        return Err(Error::Symbols(format!(
            "{what} puts _stext at {:#x}, VMCOREINFO at {want:#x}",
            v[stext]
        )));
    }
    Ok(v)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::memory::MapMemory;

    /// Encodes a kallsyms table the way `scripts/kallsyms.c` does, with the tokens simply
    /// single characters (the format allows it) and absolute-percpu offsets: for tests.
    pub(crate) fn encode(
        syms: &[(u64, u8, &str)],
        base: u64,
        long: bool,
    ) -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
        let mut table = Vec::new();
        let mut index = Vec::new();
        for b in 0u16..256 {
            index.extend_from_slice(&(table.len() as u16).to_le_bytes());
            table.push(b as u8);
            table.push(0);
        }
        let mut names = Vec::new();
        let mut offsets = Vec::new();
        for &(addr, kind, name) in syms {
            let len = name.len() + 1;
            if long && len >= 0x80 {
                names.push((len & 0x7f) as u8 | 0x80);
                names.push((len >> 7) as u8);
            } else {
                names.push(len as u8);
            }
            names.push(kind);
            names.extend_from_slice(name.as_bytes());
            let off: i32 = if addr < 0x1_0000_0000 {
                addr as i32
            } else {
                -((addr - base) as i32) - 1
            };
            offsets.extend_from_slice(&off.to_le_bytes());
        }
        (names, table, index, offsets)
    }

    #[test]
    fn decodes_absolute_percpu_and_long_names() {
        let base = 0xffff_ffff_8100_0000u64;
        let long = "l".repeat(200);
        let syms = [
            (0x1000, b'D', "fixed_percpu_data"),
            (base, b'T', "_stext"),
            (base + 0x40, b't', long.as_str()),
            (base + 0x100, b'T', "_end"),
        ];
        let (names, table, index, offsets) = encode(&syms, base, true);
        let vi = VmcoreInfo::parse(
            b"OSRELEASE=6.1.0-47-amd64\nSYMBOL(kallsyms_names)=ffffffff90000000\n\
              SYMBOL(kallsyms_num_syms)=ffffffff90100000\nSYMBOL(kallsyms_token_table)=ffffffff90200000\n\
              SYMBOL(kallsyms_token_index)=ffffffff90300000\nSYMBOL(kallsyms_offsets)=ffffffff90400000\n\
              SYMBOL(kallsyms_relative_base)=ffffffff90500000\nSYMBOL(_stext)=ffffffff81000000\n",
        );
        let mut names_page = names.clone();
        names_page.resize(8192, 0);
        let mut table_page = table.clone();
        table_page.resize(4096, 0);
        let mut mem = MapMemory(vec![
            (0xffff_ffff_9000_0000, names_page),
            (0xffff_ffff_9010_0000, 4u32.to_le_bytes().to_vec()),
            (0xffff_ffff_9020_0000, table_page),
            (0xffff_ffff_9030_0000, index),
            (0xffff_ffff_9040_0000, offsets),
            (0xffff_ffff_9050_0000, base.to_le_bytes().to_vec()),
        ]);
        let t = load(&mut mem, &vi, &Budget::new(1 << 24)).unwrap();
        assert_eq!(t.len(), 4);
        assert_eq!(t.address_of("fixed_percpu_data"), Some(0x1000));
        assert_eq!(t.address_of(&long), Some(base + 0x40));
        assert_eq!(
            t.lookup(base + 0x44).unwrap().to_string(),
            format!("{long}+0x4/0xc0")
        );
        // A wrong _stext: the decode is refused, not trusted.
        let bad = VmcoreInfo::parse(
            String::from_utf8_lossy(b"OSRELEASE=6.1.0\nSYMBOL(kallsyms_names)=ffffffff90000000\n\
              SYMBOL(kallsyms_num_syms)=ffffffff90100000\nSYMBOL(kallsyms_token_table)=ffffffff90200000\n\
              SYMBOL(kallsyms_token_index)=ffffffff90300000\nSYMBOL(kallsyms_offsets)=ffffffff90400000\n\
              SYMBOL(kallsyms_relative_base)=ffffffff90500000\nSYMBOL(_stext)=ffffffff81000010\n")
            .as_bytes(),
        );
        let err = load(&mut mem, &bad, &Budget::new(1 << 24)).unwrap_err();
        assert!(
            err.to_string().contains("no reading of kallsyms_offsets"),
            "{err}"
        );
    }

    #[test]
    fn versions_with_long_names() {
        assert!(long_names("6.1.0-47-amd64"));
        assert!(long_names("6.12.117+deb12-amd64"));
        assert!(!long_names("6.0.12"));
        assert!(!long_names("5.10.0-30-amd64"));
    }
}
