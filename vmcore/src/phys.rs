//! A dump's physical memory, whatever its format, with the decompressed pages of a
//! kdump-compressed file kept in one cache for every read of the open dump.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::diskdump::KdumpDump;
use crate::elf::ElfDump;
use crate::error::{Error, Result};
use crate::memory::PhysicalMemory;
use crate::source::Source;

/// Decompressed kdump pages, shared by the reads of one open dump.
pub(crate) type PageCache = Mutex<HashMap<u64, Vec<u8>>>;

/// A dump's physical memory, whatever its format.
pub(crate) enum Phys<'a> {
    Elf(ElfPhys<'a>),
    Kdump(KdumpPhys<'a>),
}

impl PhysicalMemory for Phys<'_> {
    fn read_phys(&mut self, paddr: u64, buf: &mut [u8]) -> Result<()> {
        match self {
            Phys::Elf(p) => p.read_phys(paddr, buf),
            Phys::Kdump(p) => p.read_phys(paddr, buf),
        }
    }
}

pub(crate) struct ElfPhys<'a> {
    pub(crate) elf: &'a ElfDump,
    pub(crate) src: &'a Source,
    pub(crate) page_size: u64,
}

impl PhysicalMemory for ElfPhys<'_> {
    fn read_phys(&mut self, paddr: u64, buf: &mut [u8]) -> Result<()> {
        self.elf.read_phys(self.src, paddr, buf, self.page_size)
    }
}

pub(crate) struct KdumpPhys<'a> {
    pub(crate) kd: &'a KdumpDump,
    pub(crate) src: &'a Source,
    pub(crate) cache: &'a PageCache,
}

/// Decompressed pages kept by a kdump log read (a few MiB whatever the page size).
const PAGE_CACHE_BYTES: u64 = 4 << 20;

impl PhysicalMemory for KdumpPhys<'_> {
    fn read_phys(&mut self, mut paddr: u64, mut buf: &mut [u8]) -> Result<()> {
        let ps = self.kd.block_size;
        // Reads may cross pages: a kdump block can be larger than the 4 KiB
        // pages the translation works in, and phys_base need not be aligned to it.
        while !buf.is_empty() {
            let pfn = paddr / ps;
            let at = (paddr % ps) as usize;
            let n = buf.len().min(ps as usize - at);
            let (head, rest) = buf.split_at_mut(n);
            let pages = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(page) = pages.get(&pfn) {
                head.copy_from_slice(&page[at..at + n]);
            } else {
                drop(pages);
                // Decompressed outside the lock: two threads reading one dump work in parallel.
                let mut page = vec![0u8; ps as usize];
                self.kd.read_page(self.src, pfn, &mut page)?;
                head.copy_from_slice(&page[at..at + n]);
                let mut pages = self.cache.lock().unwrap_or_else(|e| e.into_inner());
                if pages.len() as u64 >= PAGE_CACHE_BYTES / ps {
                    pages.clear();
                }
                pages.insert(pfn, page);
            }
            buf = rest;
            paddr = paddr
                .checked_add(n as u64)
                .ok_or(Error::NotInDump { paddr })?;
        }
        Ok(())
    }
}
