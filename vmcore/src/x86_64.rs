//! x86_64 kernel virtual to physical translation.
//!
//! Kernel-image addresses (`__START_KERNEL_map` up to `KERNEL_IMAGE_SIZE`) are
//! `vaddr - __START_KERNEL_map + phys_base`, the kernel's own `__pa_symbol()`.
//! Everything else (the direct map, vmalloc, modules) is walked through the page
//! tables from `init_top_pgt` (`init_level4_pgt` before 4.13), with 5 levels when
//! `NUMBER(pgtable_l5_enabled)=1`, honouring 1 GiB and 2 MiB pages and masking the
//! memory-encryption bit `NUMBER(sme_mask)`. No virtual addresses from the dump
//! file are used, so this works for kdump-compressed dumps, which carry none.

use crate::error::{Error, Result};
use crate::vmcoreinfo::VmcoreInfo;

pub(crate) const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;
/// KERNEL_IMAGE_SIZE without KASLR; with it, VMCOREINFO says 1 GiB.
const DEFAULT_IMAGE_SIZE: u64 = 512 << 20;
const PRESENT: u64 = 1 << 0;
const HUGE: u64 = 1 << 7;
/// Physical address bits of a page-table entry (bits 12..51).
const PFN_MASK: u64 = 0x000f_ffff_ffff_f000;

pub(crate) struct Translator {
    phys_base: u64,
    image_end: u64,
    top_table: u64,
    five_level: bool,
    sme_mask: u64,
}

impl Translator {
    pub(crate) fn new(info: &VmcoreInfo, phys_base: u64) -> Result<Translator> {
        // The kernel image is placed on a CONFIG_PHYSICAL_ALIGN (at least 2 MiB) boundary;
        // a page-aligned phys_base is the least a real kernel has.
        if phys_base % 4096 != 0 {
            return Err(Error::Corrupt(format!(
                "phys_base {phys_base:#x} is not page-aligned (a kernel image starts on a page)"
            )));
        }
        let image_size = info
            .number("KERNEL_IMAGE_SIZE")
            .unwrap_or(DEFAULT_IMAGE_SIZE);
        let mut t = Translator {
            phys_base,
            image_end: START_KERNEL_MAP.saturating_add(image_size),
            top_table: 0,
            five_level: info.number("pgtable_l5_enabled") == Some(1),
            sme_mask: info.number("sme_mask").unwrap_or(0),
        };
        let pgt = info
            .symbol("init_top_pgt")
            .or_else(|| info.symbol("init_level4_pgt"))
            .ok_or_else(|| Error::MissingVmcoreinfo("SYMBOL(init_top_pgt)".into()))?;
        t.top_table = t.image_to_phys(pgt).ok_or_else(|| {
            Error::Corrupt(format!(
                "init_top_pgt {pgt:#x} is not a kernel-image address"
            ))
        })?;
        Ok(t)
    }

    fn image_to_phys(&self, vaddr: u64) -> Option<u64> {
        (START_KERNEL_MAP..self.image_end)
            .contains(&vaddr)
            .then(|| (vaddr - START_KERNEL_MAP).wrapping_add(self.phys_base))
    }

    /// Translates `vaddr`, reading page-table entries with `read_entry(paddr)`.
    pub(crate) fn translate(
        &self,
        vaddr: u64,
        read_entry: impl FnMut(u64) -> Result<u64>,
    ) -> Result<u64> {
        if let Some(p) = self.image_to_phys(vaddr) {
            return Ok(p);
        }
        self.walk(vaddr, read_entry)
    }

    /// Translates `vaddr` through the page tables, kernel-image addresses too.
    pub(crate) fn walk(
        &self,
        vaddr: u64,
        mut read_entry: impl FnMut(u64) -> Result<u64>,
    ) -> Result<u64> {
        let levels: &[(&'static str, u32)] = if self.five_level {
            &[
                ("PGD", 48),
                ("P4D", 39),
                ("PUD", 30),
                ("PMD", 21),
                ("PTE", 12),
            ]
        } else {
            &[("PGD", 39), ("PUD", 30), ("PMD", 21), ("PTE", 12)]
        };
        let mut table = self.top_table;
        for &(level, shift) in levels {
            let index = (vaddr >> shift) & 0x1ff;
            let entry = read_entry(table + index * 8)?;
            if entry & PRESENT == 0 {
                return Err(Error::NotMapped { vaddr, level });
            }
            let base = entry & PFN_MASK & !self.sme_mask;
            let huge = entry & HUGE != 0 && (level == "PUD" || level == "PMD");
            if huge || level == "PTE" {
                let page_mask = (1u64 << shift) - 1;
                return Ok((base & !page_mask) | (vaddr & page_mask));
            }
            table = base;
        }
        unreachable!("the last level is PTE")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn info(extra: &str) -> VmcoreInfo {
        VmcoreInfo::parse(format!("SYMBOL(init_top_pgt)=ffffffff82000000\n{extra}").as_bytes())
    }

    #[test]
    fn kernel_image_addresses_use_phys_base() {
        let t =
            Translator::new(&info("NUMBER(KERNEL_IMAGE_SIZE)=1073741824\n"), 0x3c00_0000).unwrap();
        assert_eq!(t.top_table, 0x3e00_0000);
        let p = t.translate(0xffff_ffff_8123_4567, |_| {
            panic!("no walk for image addresses")
        });
        assert_eq!(p.unwrap(), 0x3d23_4567);
    }

    #[test]
    fn walks_four_levels_with_huge_pages_and_sme_mask() {
        let t = Translator::new(&info("NUMBER(sme_mask)=140737488355328\n"), 0).unwrap();
        let sme = 1u64 << 47;
        let top = 0x200_0000u64;
        let mut mem = HashMap::new();
        let va = 0xffff_8880_1234_5678u64;
        mem.insert(top + ((va >> 39) & 0x1ff) * 8, 0x1000 | sme | 3);
        mem.insert(0x1000 + ((va >> 30) & 0x1ff) * 8, 0x2000 | 3);
        mem.insert(0x2000 + ((va >> 21) & 0x1ff) * 8, 0x3000 | 3);
        mem.insert(0x3000 + ((va >> 12) & 0x1ff) * 8, 0x7654_3000 | sme | 3);
        let read = |p: u64| Ok(*mem.get(&p).unwrap_or(&0));
        assert_eq!(t.translate(va, read).unwrap(), 0x7654_3678);
        // A 2 MiB page at the PMD.
        mem.insert(0x2000 + ((va >> 21) & 0x1ff) * 8, 0x4020_0000 | HUGE | 3);
        let read = |p: u64| Ok(*mem.get(&p).unwrap_or(&0));
        assert_eq!(
            t.translate(va, read).unwrap(),
            0x4020_0000 | (va & 0x1f_ffff)
        );
        // A 1 GiB page at the PUD.
        mem.insert(0x1000 + ((va >> 30) & 0x1ff) * 8, 0x8000_0000 | HUGE | 3);
        let read = |p: u64| Ok(*mem.get(&p).unwrap_or(&0));
        assert_eq!(
            t.translate(va, read).unwrap(),
            0x8000_0000 | (va & 0x3fff_ffff)
        );
        let read = |p: u64| Ok(*mem.get(&p).unwrap_or(&0));
        assert!(matches!(
            t.translate(0xffff_c900_0000_0000, read),
            Err(Error::NotMapped { level: "PGD", .. })
        ));
    }

    #[test]
    fn walks_five_levels() {
        let t = Translator::new(&info("NUMBER(pgtable_l5_enabled)=1\n"), 0).unwrap();
        let top = 0x200_0000u64;
        let va = 0xff11_0000_0000_5000u64;
        let mut mem = HashMap::new();
        mem.insert(top + ((va >> 48) & 0x1ff) * 8, 0x1000 | 1);
        mem.insert(0x1000 + ((va >> 39) & 0x1ff) * 8, 0x2000 | 1);
        mem.insert(0x2000 + ((va >> 30) & 0x1ff) * 8, 0x3000 | 1);
        mem.insert(0x3000 + ((va >> 21) & 0x1ff) * 8, 0x4000 | 1);
        let read = |p: u64| Ok(*mem.get(&p).unwrap_or(&0));
        assert!(matches!(
            t.translate(va, read),
            Err(Error::NotMapped { level: "PTE", .. })
        ));
        mem.insert(0x4000 + ((va >> 12) & 0x1ff) * 8, 0x9000 | 1);
        let read = |p: u64| Ok(*mem.get(&p).unwrap_or(&0));
        assert_eq!(t.translate(va, read).unwrap(), 0x9000);
    }
}
