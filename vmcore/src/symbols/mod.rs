//! The kernel's symbol table: names and addresses, looked up both ways, and addresses
//! symbolised as the kernel's own `%pS` prints them (`name+0xoff/0xsize`).
//!
//! Where it comes from: the kallsyms tables the kernel exports in VMCOREINFO since Linux 6.0
//! (`kallsyms.rs`), or, for older kernels, a `System.map` or a vmlinux's ELF symbol table
//! supplied by the user (`files.rs`), relocated by VMCOREINFO's `KERNELOFFSET` and checked
//! against `SYMBOL(_stext)`.
//!
//! Lookup follows the kernel's `kallsyms_lookup_size_offset()`: the symbol is the *first* of
//! the names sharing the highest address at or below the address (aliases share one), and
//! its size runs to the next higher address in the table. Addresses outside
//! `[_stext, _end)` are not symbolised, as the kernel's `is_ksym_addr()` (with
//! `CONFIG_KALLSYMS_ALL`) does not.

pub(crate) mod files;
pub(crate) mod kallsyms;

use serde::Serialize;

use crate::budget::Budget;
use crate::error::{Error, Result};

/// Where a [`SymbolTable`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SymbolSource {
    /// The kallsyms tables in the dump's memory, located by VMCOREINFO (Linux 6.0+).
    Kallsyms,
    /// A `System.map` file, relocated by `KERNELOFFSET`.
    SystemMap,
    /// A vmlinux ELF symbol table, relocated by `KERNELOFFSET`.
    Vmlinux,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    address: u64,
    name_at: u32,
    name_len: u16,
    kind: u8,
}

/// One symbol of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Symbol<'a> {
    pub name: &'a str,
    #[serde(serialize_with = "crate::hex::addr")]
    pub address: u64,
    /// The `nm` type letter (`T`, `t`, `D`, …).
    pub kind: char,
}

/// Where an address is: a symbol, the offset into it and its size, and the module it
/// belongs to (`None` for the kernel image).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    pub symbol: String,
    pub offset: u64,
    pub size: u64,
    pub module: Option<String>,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}+{:#x}/{:#x}", self.symbol, self.offset, self.size)?;
        if let Some(m) = &self.module {
            write!(f, " [{m}]")?;
        }
        Ok(())
    }
}

/// The kernel image's symbols, sorted by address (ties keep the table's order).
#[derive(Debug)]
pub struct SymbolTable {
    source: SymbolSource,
    names: String,
    entries: Vec<Entry>,
    /// `(hash of the name, index into entries)`, sorted: lookups by name without sorting
    /// a hundred thousand strings.
    by_name: Vec<(u64, u32)>,
    /// `[_stext, _end)`: the addresses that are symbolised.
    range: (u64, u64),
}

/// Bytes one symbol costs in memory, charged to the budget per symbol.
const ENTRY_COST: u64 = (std::mem::size_of::<Entry>() + 4) as u64;
/// The kernel caps names at `KSYM_NAME_LEN` (512 since 6.1).
pub(crate) const MAX_NAME: usize = 512;
/// Far above any real kernel (Debian's have about 100 000 symbols).
pub(crate) const MAX_SYMBOLS: u64 = 4_000_000;

/// Builds a table from `(address, kind, name)` triples in any order.
pub(crate) struct Builder {
    names: String,
    entries: Vec<Entry>,
}

impl Builder {
    pub(crate) fn new() -> Builder {
        Builder {
            names: String::new(),
            entries: Vec::new(),
        }
    }

    pub(crate) fn push(
        &mut self,
        budget: &Budget,
        address: u64,
        kind: u8,
        name: &str,
    ) -> Result<()> {
        if name.is_empty() || name.len() > MAX_NAME {
            return Err(Error::Corrupt(format!(
                "a symbol name of {} bytes (a kernel's are 1 to {MAX_NAME})",
                name.len()
            )));
        }
        if self.entries.len() as u64 >= MAX_SYMBOLS {
            return Err(Error::Corrupt(format!(
                "more than {MAX_SYMBOLS} symbols, far above any kernel"
            )));
        }
        budget.take("symbol table", ENTRY_COST + name.len() as u64)?;
        let name_at = u32::try_from(self.names.len())
            .map_err(|_| Error::Corrupt("symbol names over 4 GiB".into()))?;
        self.names.push_str(name);
        self.entries.push(Entry {
            address,
            name_at,
            name_len: name.len() as u16,
            kind,
        });
        Ok(())
    }

    /// A builder over names already laid out in one text (kallsyms).
    pub(crate) fn with_arena(names: String) -> Builder {
        Builder {
            names,
            entries: Vec::new(),
        }
    }

    /// Adds a symbol whose name is `names[at..at + len]` (checked by the caller).
    pub(crate) fn push_span(&mut self, address: u64, kind: u8, at: u32, len: u16) {
        self.entries.push(Entry {
            address,
            name_at: at,
            name_len: len,
            kind,
        });
    }

    pub(crate) fn finish(mut self, source: SymbolSource) -> SymbolTable {
        self.entries.sort_by_key(|e| e.address);
        let mut t = SymbolTable {
            source,
            names: self.names,
            entries: self.entries,
            by_name: Vec::new(),
            range: (0, 0),
        };
        let mut by_name: Vec<(u64, u32)> = (0..t.entries.len())
            .map(|i| (fnv1a(t.name(i)), i as u32))
            .collect();
        by_name.sort_unstable();
        t.by_name = by_name;
        let first = t.entries.first().map_or(0, |e| e.address);
        let last = t.entries.last().map_or(0, |e| e.address);
        t.range = (
            t.address_of("_stext").unwrap_or(first),
            t.address_of("_end").unwrap_or(last),
        );
        t
    }
}

/// FNV-1a, 64 bits: a fast hash for the name index.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl SymbolTable {
    fn name(&self, i: usize) -> &str {
        let e = &self.entries[i];
        &self.names[e.name_at as usize..e.name_at as usize + e.name_len as usize]
    }

    fn symbol(&self, i: usize) -> Symbol<'_> {
        Symbol {
            name: self.name(i),
            address: self.entries[i].address,
            kind: self.entries[i].kind as char,
        }
    }

    pub fn source(&self) -> SymbolSource {
        self.source
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every symbol, by address.
    pub fn iter(&self) -> impl Iterator<Item = Symbol<'_>> {
        (0..self.entries.len()).map(|i| self.symbol(i))
    }

    /// The address of the first symbol called `name` (in address order).
    pub fn address_of(&self, name: &str) -> Option<u64> {
        let h = fnv1a(name);
        let at = self.by_name.partition_point(|&(k, _)| k < h);
        self.by_name[at..]
            .iter()
            .take_while(|&&(k, _)| k == h)
            .map(|&(_, i)| i as usize)
            .find(|&i| self.name(i) == name)
            .map(|i| self.entries[i].address)
    }

    /// The address of `name`, or an error naming it.
    pub(crate) fn need(&self, name: &str) -> Result<u64> {
        self.address_of(name)
            .ok_or_else(|| Error::MissingSymbol(name.to_string()))
    }

    /// Where `address` is in the kernel image, as `%pS` would print it.
    pub fn lookup(&self, address: u64) -> Option<Location> {
        if address < self.range.0 || address >= self.range.1 {
            return None;
        }
        let after = self.entries.partition_point(|e| e.address <= address);
        let last = after.checked_sub(1)?;
        let start = self.entries[last].address;
        let first = self.entries[..=last].partition_point(|e| e.address < start);
        let end = self.entries[after..]
            .iter()
            .find(|e| e.address > start)
            .map_or(self.range.1, |e| e.address);
        Some(Location {
            symbol: self.name(first).to_string(),
            offset: address - start,
            size: end - start,
            module: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(syms: &[(u64, &str)]) -> SymbolTable {
        let mut b = Builder::new();
        let budget = Budget::new(1 << 20);
        for &(a, n) in syms {
            b.push(&budget, a, b'T', n).unwrap();
        }
        b.finish(SymbolSource::SystemMap)
    }

    #[test]
    fn lookups_follow_the_kernel_rules() {
        let t = table(&[
            (0x1000, "_stext"),
            (0x1000, "startup"),
            (0x1040, "alias_b"),
            (0x1040, "alias_a"),
            (0x1100, "last_fn"),
            (0x1200, "_end"),
            (0x20, "percpu_var"),
        ]);
        assert_eq!(t.address_of("alias_a"), Some(0x1040));
        assert_eq!(t.address_of("missing"), None);
        let at = |a| t.lookup(a).map(|l| l.to_string());
        // The first alias in table order wins; the size runs to the next higher address.
        assert_eq!(at(0x1044).as_deref(), Some("alias_b+0x4/0xc0"));
        assert_eq!(at(0x1000).as_deref(), Some("_stext+0x0/0x40"));
        assert_eq!(at(0x11ff).as_deref(), Some("last_fn+0xff/0x100"));
        // Outside [_stext, _end): nothing, as the kernel's is_ksym_addr().
        assert_eq!(at(0x1200), None);
        assert_eq!(at(0x20), None);
        let l = Location {
            module: Some("crasher".into()),
            ..t.lookup(0x1101).unwrap()
        };
        assert_eq!(l.to_string(), "last_fn+0x1/0x100 [crasher]");
    }

    #[test]
    fn a_name_too_long_or_too_many_is_refused() {
        let mut b = Builder::new();
        let budget = Budget::new(1 << 20);
        assert!(b.push(&budget, 1, b'T', &"x".repeat(600)).is_err());
        assert!(b.push(&budget, 1, b'T', "").is_err());
        let tiny = Budget::new(10);
        assert!(matches!(
            b.push(&tiny, 1, b'T', "name"),
            Err(Error::OverBudget { .. })
        ));
    }
}
