//! Finding and reading one page of a kdump-compressed dump.
//!
//! A page's descriptor is found by its rank in the 2nd bitmap (prefix counts
//! per section, then the bits before it); the descriptor gives the data's
//! offset, size and compression. The table was checked whole at open
//! (`table.rs`), which also found the pages a cut-short file lost, so a cut
//! file never reads as whole.

use super::{bit, KdumpDump, DESC_SIZE, SECTION_BITS};
use crate::compress;
use crate::error::{Error, Result};
use crate::source::{u32_at, u64_at, Source};

impl KdumpDump {
    fn is_ram(&self, src: &Source, pfn: u64) -> bool {
        let mut b = [0u8];
        pfn < self.bitmap_half * 8
            && src
                .read_exact("1st bitmap", self.bitmap1_offset + pfn / 8, &mut b)
                .is_ok()
            && b[0] & (1 << (pfn % 8)) != 0
    }

    /// Reads page `pfn` into `out` (one block long), decompressing it.
    pub(crate) fn read_page(&self, src: &Source, pfn: u64, out: &mut [u8]) -> Result<()> {
        let paddr = pfn.saturating_mul(self.block_size);
        if pfn >= self.max_pfn || !bit(&self.bitmap2, pfn) {
            return Err(if self.is_ram(src, pfn) {
                Error::PageExcluded { pfn, paddr }
            } else {
                Error::NotInDump { paddr }
            });
        }
        let section = pfn / SECTION_BITS;
        let mut index = self.prefix[section as usize];
        for p in section * SECTION_BITS..pfn {
            index += bit(&self.bitmap2, p) as u64;
        }
        let desc_at = self.desc_offset + index * DESC_SIZE;
        let mut d = [0u8; DESC_SIZE as usize];
        match src.read_exact("page descriptor", desc_at, &mut d) {
            Err(Error::Truncated { .. }) if self.incomplete() => {
                return Err(Error::PageIncomplete { pfn })
            }
            r => r?,
        }
        let offset = u64_at(&d, 0);
        let size = u32_at(&d, 8) as u64;
        let flags = u32_at(&d, 12);
        if offset == 0 {
            return Err(if self.incomplete() {
                Error::PageIncomplete { pfn }
            } else {
                Error::Corrupt(format!("page {pfn:#x} has a descriptor with offset 0"))
            });
        }
        if size > self.block_size {
            return Err(Error::Corrupt(format!(
                "page {pfn:#x} claims {size} bytes of data, more than a block ({})",
                self.block_size
            )));
        }
        let compressed =
            flags & (compress::ZLIB | compress::LZO | compress::SNAPPY | compress::ZSTD) != 0;
        if !compressed && flags & !0x1f != 0 {
            return Err(Error::UnsupportedCompression { pfn, flags });
        }
        let mut data = vec![0u8; size as usize];
        match src.read_exact("page data", offset, &mut data) {
            Err(Error::Truncated { .. }) if self.incomplete() => {
                return Err(Error::PageIncomplete { pfn })
            }
            r => r?,
        }
        if compressed {
            compress::decompress_page(pfn, flags, &data, out)
        } else if data.len() == out.len() {
            out.copy_from_slice(&data);
            Ok(())
        } else {
            Err(Error::Corrupt(format!(
                "uncompressed page {pfn:#x} holds {} bytes, not a page of {}",
                data.len(),
                out.len()
            )))
        }
    }
}
