//! The loaded kernel modules: the `modules` list, each module's name, where it lies, its
//! own symbols (`mod->kallsyms`) and ORC tables (`mod->arch`), with layouts from BTF. Where a
//! module's ORC table lies needs no ORC version: the list reads whatever the format.
//!
//! Until 6.3 a module's memory is `core_layout`/`init_layout` (`struct module_layout`:
//! `base`, `size`, `text_size`); from 6.4 it is `mem[MOD_TEXT..MOD_INIT_RODATA]`
//! (`struct module_memory`: `base`, `size`). The size reported is the core size, what
//! `/proc/modules` shows. A module address is symbolised as the kernel's
//! `find_kallsyms_symbol()` does: the defined, named symbol with the highest value at or
//! below it, its size running to the next symbol above or the end of the module's text.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::kernel::{is_missing, Kernel};
use crate::orc;
use crate::symbols::Location;

/// `MODULE_NAME_LEN` on 64-bit.
const NAME_LEN: usize = 56;
/// Far above any system (`/proc/modules` of a big server lists a few hundred).
const MAX_MODULES: usize = 65536;
/// A module's symbol table is at most this many entries (the largest have tens of thousands).
const MAX_MODULE_SYMBOLS: u64 = 1 << 20;
const SHN_UNDEF: u16 = 0;

/// One loaded module, as `kdrill inspect --modules` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Module {
    pub name: String,
    /// The start of its core text.
    #[serde(serialize_with = "crate::hex::addr")]
    pub base: u64,
    /// Its core size in bytes (text, data, read-only data), as `/proc/modules`.
    pub size: u64,
    /// The `struct module` itself.
    #[serde(serialize_with = "crate::hex::addr")]
    pub address: u64,
}

/// A module with what symbolising and unwinding need.
pub(crate) struct Loaded {
    pub(crate) module: Module,
    /// Every memory range of the module (core and init).
    ranges: Vec<(u64, u64)>,
    /// Where "the end of the text" is for the range that holds an address.
    text_ends: Vec<(u64, u64)>,
    /// Defined, named symbols: `(value, name)`.
    symbols: Vec<(u64, String)>,
    pub(crate) orc: Option<orc::Table>,
}

/// The module list, and a reason if it was cut short by a missing page.
pub(crate) struct ModuleList {
    pub(crate) modules: Vec<Loaded>,
    pub(crate) partial: Option<String>,
}

impl ModuleList {
    /// The module whose memory holds `addr`.
    pub(crate) fn containing(&self, addr: u64) -> Option<&Loaded> {
        self.modules
            .iter()
            .find(|m| m.ranges.iter().any(|&(b, s)| addr >= b && addr - b < s))
    }

    /// Symbolises a module address.
    pub(crate) fn lookup(&self, addr: u64) -> Option<Location> {
        let m = self.containing(addr)?;
        let end = m
            .text_ends
            .iter()
            .find(|&&(b, e)| addr >= b && addr < e.max(b.saturating_add(1)))
            .map_or(u64::MAX, |&(_, e)| e);
        let best = m
            .symbols
            .iter()
            .filter(|(v, _)| *v <= addr)
            .max_by_key(|(v, _)| *v)?;
        let next = m
            .symbols
            .iter()
            .map(|(v, _)| *v)
            .filter(|&v| v > addr)
            .min()
            .unwrap_or(end)
            .min(end.max(addr.saturating_add(1)));
        Some(Location {
            symbol: best.1.clone(),
            offset: addr - best.0,
            size: next - best.0,
            module: Some(m.module.name.clone()),
        })
    }
}

/// Walks `modules`; a page the dump lacks ends the walk with the modules found so far.
pub(crate) fn read(k: &mut Kernel<'_>) -> Result<ModuleList> {
    let head = k.syms.need("modules")?;
    let btf = k.btf()?;
    let list = btf.offset("module", "list")?;
    let name = btf.offset("module", "name")?;
    let kallsyms = btf.offset("module", "kallsyms")?;
    let ksym = (
        btf.offset("mod_kallsyms", "symtab")?,
        btf.offset("mod_kallsyms", "num_symtab")?,
        btf.offset("mod_kallsyms", "strtab")?,
    );
    let orc = (
        btf.offset("module", "arch.orc_unwind_ip").ok(),
        btf.offset("module", "arch.orc_unwind").ok(),
        btf.offset("module", "arch.num_orcs").ok(),
    );
    let layout = Layout::new(btf)?;
    let mut out = ModuleList {
        modules: Vec::new(),
        partial: None,
    };
    let mut node = k.u64(head)?;
    while node != head {
        if out.modules.len() >= MAX_MODULES {
            return Err(Error::Corrupt(format!(
                "the module list runs past {MAX_MODULES} entries (a loop?)"
            )));
        }
        let m = node.wrapping_sub(list);
        let one = (|| -> Result<(Loaded, u64)> {
            let module_name = k.string(m.wrapping_add(name), NAME_LEN)?;
            let (ranges, text_ends, base, size) = layout.read(k, m)?;
            let ks = k.u64(m.wrapping_add(kallsyms))?;
            let symbols = symbols(k, ks, ksym).unwrap_or_default();
            let orc = match orc {
                (Some(ip), Some(e), Some(n)) => {
                    let count = u64::from(k.u32(m.wrapping_add(n))?);
                    Some(orc::Table::new(
                        k.u64(m.wrapping_add(ip))?,
                        k.u64(m.wrapping_add(e))?,
                        count,
                    )?)
                }
                _ => None,
            };
            let loaded = Loaded {
                module: Module {
                    name: module_name,
                    base,
                    size,
                    address: m,
                },
                ranges,
                text_ends,
                symbols,
                orc,
            };
            Ok((loaded, k.u64(node)?))
        })();
        match one {
            Ok((loaded, next)) => {
                if out.modules.iter().any(|l| l.module.address == m) {
                    return Err(Error::Corrupt(format!("the module list loops at {m:#x}")));
                }
                out.modules.push(loaded);
                node = next;
            }
            Err(e) if is_missing(&e) => {
                out.partial = Some(format!("the module at {m:#x} could not be read: {e}"));
                break;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Where a module's memory is described, by kernel version.
enum Layout {
    /// Until 6.3: `core_layout` and `init_layout`.
    Old {
        core: u64,
        init: u64,
        base: u64,
        size: u64,
        text: u64,
    },
    /// 6.4 on: `mem[]` of `struct module_memory`.
    New {
        mem: u64,
        stride: u64,
        count: u64,
        base: u64,
        size: u64,
        texts: [u64; 2],
    },
}

impl Layout {
    fn new(btf: &crate::btf::Btf) -> Result<Layout> {
        let module = btf.struct_id("module")?;
        if let Ok(mem) = btf.member(module, "mem") {
            let (elem, count) = btf.array(mem.ty)?;
            let text = btf.enumerator("MOD_TEXT").unwrap_or(0) as u64;
            let init = btf.enumerator("MOD_INIT_TEXT").unwrap_or(4) as u64;
            return Ok(Layout::New {
                mem: mem.offset,
                stride: btf.size_of(elem)?,
                count: count.min(16),
                base: btf.offset("module_memory", "base")?,
                size: btf.offset("module_memory", "size")?,
                texts: [text, init],
            });
        }
        Ok(Layout::Old {
            core: btf.offset("module", "core_layout")?,
            init: btf.offset("module", "init_layout")?,
            base: btf.offset("module_layout", "base")?,
            size: btf.offset("module_layout", "size")?,
            text: btf.offset("module_layout", "text_size")?,
        })
    }

    /// `(ranges, text ends, base, core size)` of the module at `m`.
    #[allow(clippy::type_complexity)]
    fn read(
        &self,
        k: &mut Kernel<'_>,
        m: u64,
    ) -> Result<(Vec<(u64, u64)>, Vec<(u64, u64)>, u64, u64)> {
        let mut ranges = Vec::new();
        let mut ends = Vec::new();
        match *self {
            Layout::Old {
                core,
                init,
                base,
                size,
                text,
            } => {
                let mut first = (0, 0);
                for (i, l) in [core, init].into_iter().enumerate() {
                    let b = k.u64(m.wrapping_add(l + base))?;
                    let s = u64::from(k.u32(m.wrapping_add(l + size))?);
                    let t = u64::from(k.u32(m.wrapping_add(l + text))?);
                    if i == 0 {
                        first = (b, s);
                    }
                    if b != 0 && s != 0 {
                        ranges.push((b, s));
                        ends.push((b, b.saturating_add(t)));
                    }
                }
                Ok((ranges, ends, first.0, first.1))
            }
            Layout::New {
                mem,
                stride,
                count,
                base,
                size,
                texts,
            } => {
                let (mut core_base, mut core_size) = (0, 0u64);
                for i in 0..count {
                    let at = m.wrapping_add(mem + i * stride);
                    let b = k.u64(at.wrapping_add(base))?;
                    let s = u64::from(k.u32(at.wrapping_add(size))?);
                    if b == 0 || s == 0 {
                        continue;
                    }
                    ranges.push((b, s));
                    if texts.contains(&i) {
                        ends.push((b, b.saturating_add(s)));
                    }
                    if i == texts[0] {
                        core_base = b;
                    }
                    if i < texts[1] {
                        core_size += s;
                    }
                }
                Ok((ranges, ends, core_base, core_size))
            }
        }
    }
}

/// A module's defined, named symbols from its `struct mod_kallsyms`.
fn symbols(
    k: &mut Kernel<'_>,
    at: u64,
    (symtab, num, strtab): (u64, u64, u64),
) -> Result<Vec<(u64, String)>> {
    if at == 0 {
        return Ok(Vec::new());
    }
    let table = k.u64(at.wrapping_add(symtab))?;
    let count = k.u64(at.wrapping_add(num))? & 0xffff_ffff;
    let strs = k.u64(at.wrapping_add(strtab))?;
    if count > MAX_MODULE_SYMBOLS {
        return Err(Error::Corrupt(format!("a module with {count} symbols")));
    }
    let raw = k.mem.read_vec(
        table,
        count * 24,
        "module symbols",
        MAX_MODULE_SYMBOLS * 24,
        k.budget,
    )?;
    let max_name = raw
        .chunks_exact(24)
        .map(|s| u64::from(u32::from_le_bytes(s[0..4].try_into().unwrap())))
        .max()
        .unwrap_or(0);
    // The names end somewhere after the last one starts: read on to that NUL a page at a
    // time (reading a fixed amount more could run into the unmapped page after the module).
    let mut names = k
        .mem
        .read_vec(strs, max_name, "module symbol names", 64 << 20, k.budget)?;
    while !names[max_name as usize..].contains(&0) {
        if names.len() > max_name as usize + crate::symbols::MAX_NAME {
            return Err(Error::Corrupt("a module symbol name never ends".into()));
        }
        let at = strs.wrapping_add(names.len() as u64);
        let more = k
            .mem
            .read_vec(at, 4096 - at % 4096, "module symbol names", 4096, k.budget)?;
        names.extend(more);
    }
    let mut out = Vec::new();
    for s in raw.chunks_exact(24).skip(1) {
        let name = u32::from_le_bytes(s[0..4].try_into().unwrap()) as usize;
        let shndx = u16::from_le_bytes([s[6], s[7]]);
        let value = u64::from_le_bytes(s[8..16].try_into().unwrap());
        let rest = &names[name.min(names.len())..];
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        if shndx == SHN_UNDEF || end == 0 {
            continue;
        }
        out.push((value, String::from_utf8_lossy(&rest[..end]).into_owned()));
    }
    Ok(out)
}
