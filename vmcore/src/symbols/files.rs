//! Symbols from files the user supplies for kernels without kallsyms in VMCOREINFO
//! (before Linux 6.0): a `System.map` (`nm -n` output: `address type name`) or a vmlinux's
//! ELF `.symtab` (its DWARF is not needed). Link-time addresses in the kernel image are
//! moved by the dump's `KERNELOFFSET` (KASLR); per-CPU and absolute symbols stay. The
//! result must put `_stext` where the dump's `SYMBOL(_stext)` says, so a map of another
//! build is refused rather than trusted.

use crate::budget::Budget;
use crate::error::{Error, Result};
use crate::source::{u16_at, u32_at, u64_at, Source};
use crate::vmcoreinfo::VmcoreInfo;
use crate::x86_64::START_KERNEL_MAP;
use crate::ReadAt;

use super::{Builder, SymbolSource, SymbolTable};

/// KASLR moves the kernel image only; per-CPU (near 0) and absolute symbols stay put.
fn relocate(address: u64, kind: u8, offset: u64) -> u64 {
    if address >= START_KERNEL_MAP && kind != b'A' && kind != b'a' {
        address.wrapping_add(offset)
    } else {
        address
    }
}

/// Checks the relocated table against the dump.
fn checked(t: SymbolTable, vi: &VmcoreInfo, what: &str) -> Result<SymbolTable> {
    let got = t.need("_stext")?;
    if let Some(want) = vi.symbol("_stext") {
        if got != want {
            return Err(Error::Symbols(format!(
                "{what} puts _stext at {got:#x} (with KERNELOFFSET), the dump at {want:#x}: \
                 it belongs to another kernel build"
            )));
        }
    }
    Ok(t)
}

/// Parses a `System.map` for the dump whose VMCOREINFO is `vi`.
pub(crate) fn system_map(text: &[u8], vi: &VmcoreInfo, budget: &Budget) -> Result<SymbolTable> {
    let offset = vi.kernel_offset().unwrap_or(0);
    let mut b = Builder::new();
    for (n, line) in text.split(|&c| c == b'\n').enumerate() {
        let line = String::from_utf8_lossy(line);
        let mut words = line.split_whitespace();
        let (Some(addr), Some(kind), Some(name)) = (words.next(), words.next(), words.next())
        else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(Error::Symbols(format!(
                "System.map line {}: `{}` is not `address type name`",
                n + 1,
                line.trim()
            )));
        };
        let address = u64::from_str_radix(addr, 16).map_err(|_| {
            Error::Symbols(format!(
                "System.map line {}: `{addr}` is no hex address",
                n + 1
            ))
        })?;
        let kind = kind.bytes().next().unwrap_or(b'?');
        b.push(budget, relocate(address, kind, offset), kind, name)?;
    }
    checked(b.finish(SymbolSource::SystemMap), vi, "the System.map")
}

const SHT_SYMTAB: u32 = 2;
const SHN_UNDEF: u16 = 0;
const SHN_ABS: u16 = 0xfff1;
/// Far above a vmlinux's (about 4 MiB of symbols, 3 MiB of names).
const MAX_TABLE: u64 = 256 << 20;

/// Reads a vmlinux's `.symtab` and its string table for the dump whose VMCOREINFO is `vi`.
pub(crate) fn vmlinux(
    file: Box<dyn ReadAt + Send + Sync>,
    vi: &VmcoreInfo,
    budget: &Budget,
) -> Result<SymbolTable> {
    let src = Source::new(file)?;
    let mut h = [0u8; 64];
    src.read_exact("vmlinux ELF header", 0, &mut h)?;
    if &h[..4] != b"\x7fELF" || h[4] != 2 || h[5] != 1 {
        return Err(Error::Symbols(
            "the vmlinux is not a 64-bit little-endian ELF file".into(),
        ));
    }
    let shoff = u64_at(&h, 40);
    let shentsize = u64::from(u16_at(&h, 58));
    let shnum = u64::from(u16_at(&h, 60));
    if shentsize != 64 || shnum == 0 {
        return Err(Error::Symbols(format!(
            "the vmlinux has {shnum} section headers of {shentsize} bytes"
        )));
    }
    budget.take("vmlinux section headers", shnum * 64)?;
    let table = src.read_vec("vmlinux section headers", shoff, shnum * 64)?;
    let section = |i: u64| table.get(i as usize * 64..i as usize * 64 + 64);
    let symtab = (0..shnum)
        .filter_map(section)
        .find(|s| u32_at(s, 4) == SHT_SYMTAB)
        .ok_or_else(|| Error::Symbols("the vmlinux has no .symtab (stripped?)".into()))?;
    let (sym_off, sym_size, link) = (u64_at(symtab, 24), u64_at(symtab, 32), u32_at(symtab, 40));
    let strtab = section(u64::from(link))
        .ok_or_else(|| Error::Symbols(format!(".symtab links to section {link}, not there")))?;
    let (str_off, str_size) = (u64_at(strtab, 24), u64_at(strtab, 32));
    if sym_size > MAX_TABLE || str_size > MAX_TABLE {
        return Err(Error::Symbols(format!(
            "a .symtab of {sym_size} bytes with {str_size} bytes of names"
        )));
    }
    budget.take("vmlinux .symtab", sym_size + str_size)?;
    let syms = src.read_vec("vmlinux .symtab", sym_off, sym_size)?;
    let strs = src.read_vec("vmlinux .strtab", str_off, str_size)?;
    let offset = vi.kernel_offset().unwrap_or(0);
    let mut b = Builder::new();
    for sym in syms.chunks_exact(24) {
        let (name, info, shndx, value) = (u32_at(sym, 0), sym[4], u16_at(sym, 6), u64_at(sym, 8));
        let (kind, bind) = (info & 0xf, info >> 4);
        // Objects, functions and untyped labels (_stext, __start_BTF) that are defined.
        if kind > 2 || shndx == SHN_UNDEF {
            continue;
        }
        let Some(rest) = strs.get(name as usize..) else {
            continue;
        };
        let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
        let Ok(name) = std::str::from_utf8(&rest[..end]) else {
            continue;
        };
        if name.is_empty() || name.len() > super::MAX_NAME {
            continue;
        }
        let letter = match (kind, shndx) {
            (_, SHN_ABS) => b'a',
            (1, _) => b'd',
            _ => b't',
        };
        let letter = if bind == 1 {
            letter.to_ascii_uppercase()
        } else {
            letter
        };
        b.push(budget, relocate(value, letter, offset), letter, name)?;
    }
    checked(b.finish(SymbolSource::Vmlinux), vi, "the vmlinux")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vi() -> VmcoreInfo {
        VmcoreInfo::parse(b"SYMBOL(_stext)=ffffffff95a00000\nKERNELOFFSET=14a00000\n")
    }

    #[test]
    fn a_system_map_is_relocated_and_checked() {
        let map = b"0000000000000000 D __per_cpu_start\n\
                    ffffffff81000000 T _stext\nffffffff81000040 t helper\n\
                    ffffffff82000000 B _end\n";
        let t = system_map(map, &vi(), &Budget::new(1 << 20)).unwrap();
        assert_eq!(t.address_of("helper"), Some(0xffff_ffff_95a0_0040));
        assert_eq!(t.address_of("__per_cpu_start"), Some(0));
        assert_eq!(t.source(), SymbolSource::SystemMap);
        let other = b"ffffffff81200000 T _stext\n";
        let err = system_map(other, &vi(), &Budget::new(1 << 20)).unwrap_err();
        assert!(err.to_string().contains("another kernel build"), "{err}");
        let err = system_map(b"zz T x\n", &vi(), &Budget::new(1 << 20)).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn a_vmlinux_symtab_is_read() {
        // An ELF with a null section, .symtab and .strtab.
        let strs = b"\0_stext\0helper\0".to_vec();
        let mut syms = vec![0u8; 24];
        for (name, info, value) in [
            (1u32, 0x12u8, 0xffff_ffff_8100_0000u64),
            (8, 0x02, 0xffff_ffff_8100_0010),
        ] {
            let mut s = vec![0u8; 24];
            s[0..4].copy_from_slice(&name.to_le_bytes());
            s[4] = info;
            s[6..8].copy_from_slice(&1u16.to_le_bytes());
            s[8..16].copy_from_slice(&value.to_le_bytes());
            syms.extend(s);
        }
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        let sym_off = 64u64;
        let str_off = sym_off + syms.len() as u64;
        let sh_off = str_off + strs.len() as u64;
        elf[40..48].copy_from_slice(&sh_off.to_le_bytes());
        elf[58..60].copy_from_slice(&64u16.to_le_bytes());
        elf[60..62].copy_from_slice(&3u16.to_le_bytes());
        elf.extend(&syms);
        elf.extend(&strs);
        let sh = |kind: u32, off: u64, size: u64, link: u32| {
            let mut s = vec![0u8; 64];
            s[4..8].copy_from_slice(&kind.to_le_bytes());
            s[24..32].copy_from_slice(&off.to_le_bytes());
            s[32..40].copy_from_slice(&size.to_le_bytes());
            s[40..44].copy_from_slice(&link.to_le_bytes());
            s
        };
        elf.extend(sh(0, 0, 0, 0));
        elf.extend(sh(SHT_SYMTAB, sym_off, syms.len() as u64, 2));
        elf.extend(sh(3, str_off, strs.len() as u64, 0));
        let t = vmlinux(Box::new(elf), &vi(), &Budget::new(1 << 20)).unwrap();
        assert_eq!(t.address_of("helper"), Some(0xffff_ffff_95a0_0010));
        assert_eq!(t.lookup(0xffff_ffff_95a0_0004).unwrap().symbol, "_stext");
        let err = vmlinux(Box::new(vec![0u8; 64]), &vi(), &Budget::new(1 << 20)).unwrap_err();
        assert!(err.to_string().contains("not a 64-bit"), "{err}");
    }
}
