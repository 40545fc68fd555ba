//! Kernel virtual memory of a dump: translation plus a small page cache.

use std::collections::HashMap;

use crate::budget::Budget;
use crate::error::{Error, Result};
use crate::x86_64::Translator;

/// Translations are per 4 KiB page (the x86_64 base page), whatever the dump's page size.
const TRANSLATION_PAGE: u64 = 4096;

/// Reads kernel virtual memory; the log readers need nothing else.
pub(crate) trait KernelMemory {
    fn read_virt(&mut self, vaddr: u64, buf: &mut [u8]) -> Result<()>;

    fn read_u64(&mut self, vaddr: u64) -> Result<u64> {
        let mut b = [0u8; 8];
        self.read_virt(vaddr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn read_u32(&mut self, vaddr: u64) -> Result<u32> {
        let mut b = [0u8; 4];
        self.read_virt(vaddr, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Reads `len` bytes, at most `cap` (the kernel's limit for `what`), charged
    /// to `budget` before reading; the buffer grows as the reads succeed, so a
    /// corrupt length fails on the first missing page.
    fn read_vec(
        &mut self,
        vaddr: u64,
        len: u64,
        what: &'static str,
        cap: u64,
        budget: &Budget,
    ) -> Result<Vec<u8>> {
        if len > cap {
            return Err(Error::Corrupt(format!(
                "{what} at {vaddr:#x} claims {len} bytes, more than the {cap} a kernel uses"
            )));
        }
        budget.take(what, len)?;
        let mut out = Vec::new();
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(1 << 16) as usize;
            let at = out.len();
            out.resize(at + n, 0);
            let addr = vaddr
                .checked_add(done)
                .ok_or_else(|| Error::Corrupt(format!("{what} wraps the address space")))?;
            self.read_virt(addr, &mut out[at..])?;
            done += n as u64;
        }
        Ok(out)
    }

    /// [`KernelMemory::read_vec`] of a large table (kallsyms names, BTF); a reader over a
    /// dump may split it over two threads, each decompressing its own pages.
    fn read_bulk(
        &mut self,
        vaddr: u64,
        len: u64,
        what: &'static str,
        cap: u64,
        budget: &Budget,
    ) -> Result<Vec<u8>> {
        self.read_vec(vaddr, len, what, cap, budget)
    }
}

/// Reads of at least this many bytes may be split over two threads ([`KernelMemory::read_bulk`]).
pub(crate) const BULK: u64 = 1 << 20;

/// Reads physical memory; implemented by each dump format.
pub(crate) trait PhysicalMemory {
    /// Reads bytes at a physical address; `buf` may cross the dump's pages
    /// (it stays within one 4 KiB translation page of virtual memory).
    fn read_phys(&mut self, paddr: u64, buf: &mut [u8]) -> Result<()>;
}

/// Kernel virtual memory over a dump's physical memory.
pub(crate) struct KernelView<P> {
    phys: P,
    translator: Translator,
    pages: HashMap<u64, u64>,
}

impl<P: PhysicalMemory> KernelView<P> {
    pub(crate) fn new(phys: P, translator: Translator) -> KernelView<P> {
        KernelView {
            phys,
            translator,
            pages: HashMap::new(),
        }
    }

    pub(crate) fn phys_mut(&mut self) -> &mut P {
        &mut self.phys
    }

    fn translate_page(&mut self, vpage: u64) -> Result<u64> {
        if let Some(&p) = self.pages.get(&vpage) {
            return Ok(p);
        }
        let phys = &mut self.phys;
        let ppage = self.translator.translate(vpage, |entry_addr| {
            let mut b = [0u8; 8];
            phys.read_phys(entry_addr, &mut b)?;
            Ok(u64::from_le_bytes(b))
        })?;
        if self.pages.len() > 1 << 16 {
            self.pages.clear();
        }
        self.pages.insert(vpage, ppage);
        Ok(ppage)
    }
}

impl<P: PhysicalMemory> KernelMemory for KernelView<P> {
    fn read_virt(&mut self, mut vaddr: u64, mut buf: &mut [u8]) -> Result<()> {
        while !buf.is_empty() {
            let in_page = vaddr % TRANSLATION_PAGE;
            let n = (buf.len() as u64).min(TRANSLATION_PAGE - in_page) as usize;
            let ppage = self.translate_page(vaddr - in_page)?;
            let (head, rest) = buf.split_at_mut(n);
            self.phys.read_phys(ppage + in_page, head)?;
            buf = rest;
            vaddr = vaddr.wrapping_add(n as u64);
        }
        Ok(())
    }
}

/// Field access into a structure copied out of the dump, with offsets from
/// VMCOREINFO checked against its size.
pub(crate) struct Fields<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) what: &'static str,
}

impl Fields<'_> {
    fn get<const N: usize>(&self, off: u64) -> Result<[u8; N]> {
        usize::try_from(off)
            .ok()
            .and_then(|o| self.bytes.get(o..o.checked_add(N)?))
            .map(|b| b.try_into().unwrap())
            .ok_or_else(|| {
                Error::Corrupt(format!(
                    "VMCOREINFO puts a {N}-byte field of {} at offset {off}, outside its {} bytes",
                    self.what,
                    self.bytes.len()
                ))
            })
    }
    pub(crate) fn u8(&self, off: u64) -> Result<u8> {
        Ok(self.get::<1>(off)?[0])
    }
    pub(crate) fn u16(&self, off: u64) -> Result<u16> {
        Ok(u16::from_le_bytes(self.get(off)?))
    }
    pub(crate) fn u32(&self, off: u64) -> Result<u32> {
        Ok(u32::from_le_bytes(self.get(off)?))
    }
    pub(crate) fn u64(&self, off: u64) -> Result<u64> {
        Ok(u64::from_le_bytes(self.get(off)?))
    }
}

/// Synthetic kernel memory for tests: virtual ranges backed by byte vectors.
#[cfg(test)]
pub(crate) struct MapMemory(pub(crate) Vec<(u64, Vec<u8>)>);

#[cfg(test)]
impl KernelMemory for MapMemory {
    fn read_virt(&mut self, vaddr: u64, buf: &mut [u8]) -> Result<()> {
        for (start, data) in &self.0 {
            if vaddr >= *start && vaddr + buf.len() as u64 <= start + data.len() as u64 {
                let o = (vaddr - start) as usize;
                buf.copy_from_slice(&data[o..o + buf.len()]);
                return Ok(());
            }
        }
        Err(Error::NotMapped {
            vaddr,
            level: "test",
        })
    }
}
