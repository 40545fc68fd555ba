//! The page descriptor table of a kdump-compressed dump, checked whole at open.
//!
//! Every writer (makedumpfile, QEMU's `dump-guest-memory`) lays the file out the same way:
//! one 24-byte descriptor per set bit of the 2nd bitmap, in pfn order, then the page data
//! in the same order with no gap. With a dump level that drops zero pages (bit 1; QEMU
//! always), one zero page is written first, where the data starts, and every zero page's
//! descriptor points at it. So:
//! - the table ends where the data begins: the first page's data is at the table's end,
//!   or one page later, past the shared zero page;
//! - each page's data starts where the previous page's ends;
//! - a page's stored data is 1 byte to one page long.
//!
//! A 2nd bitmap with a bit more or less moves the table's end, so every descriptor would
//! then be read for the wrong page: that breaks the first rule, at the first descriptor.
//! A file cut short keeps the rules for what it holds: the pages whose data lies past its
//! end are lost, and only the pages at the end of the chain can be. An incomplete dump's
//! pages never written have descriptors of offset 0.

use super::{KdumpDump, DESC_SIZE};
use crate::error::{Error, Invariant, Result};
use crate::source::{u32_at, u64_at, Source};

/// Descriptors read per chunk when scanning them all.
const DESC_CHUNK: u64 = 4096;

/// What the scan of the descriptor table found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Scan {
    /// Pages never written (offset 0, in an incomplete dump).
    pub(super) missing: u64,
    /// Pages whose descriptor or data lies past the end of the file.
    pub(super) lost: u64,
    /// Descriptors pointing at the shared zero page.
    pub(super) zero: u64,
}

impl KdumpDump {
    /// The start of the page data: the end of the descriptor table.
    pub(super) fn data_start(&self) -> u64 {
        self.desc_offset + self.dumped * DESC_SIZE
    }

    /// Reads every descriptor, checks the table's invariants, and counts the pages the file
    /// cannot give.
    pub(super) fn scan_table(&self, src: &Source) -> Result<Scan> {
        let mut scan = Scan::default();
        let shares_zero = self.dump_level.is_some_and(|level| level & 1 != 0);
        let bs = self.block_size;
        let data_start = self.data_start();
        // The size of the block at the data's start (the zero page, or the first page), and
        // where the next page's data must start.
        let mut first_block: Option<u64> = None;
        let mut next: Option<u64> = None;
        let mut i = 0;
        while i < self.dumped {
            let off = self.desc_offset + i * DESC_SIZE;
            let n = (self.dumped - i)
                .min(DESC_CHUNK)
                .min(src.len().saturating_sub(off) / DESC_SIZE);
            if n == 0 {
                scan.lost += self.dumped - i;
                return Ok(scan);
            }
            let descs = src.read_vec("page descriptors", off, n * DESC_SIZE)?;
            for (k, d) in descs.chunks_exact(DESC_SIZE as usize).enumerate() {
                let at = off + k as u64 * DESC_SIZE;
                let (offset, size) = (u64_at(d, 0), u32_at(d, 8) as u64);
                if offset == 0 && self.incomplete() {
                    scan.missing += 1;
                    continue;
                }
                if size == 0 || size > bs {
                    return Err(Error::Inconsistent {
                        invariant: Invariant::PageDataSize,
                        offset: at + 8,
                        detail: format!(
                            "descriptor {} claims {size} bytes of data, with pages of {bs}",
                            i + k as u64
                        ),
                    });
                }
                if offset == data_start && (shares_zero || first_block.is_none()) {
                    // The shared zero page, or the first page: one block, one size.
                    match first_block {
                        Some(b) if b != size => {
                            return Err(Error::Inconsistent {
                                invariant: Invariant::DataInOrder,
                                offset: at + 8,
                                detail: format!(
                                    "descriptor {} claims {size} bytes at the data's start \
                                     ({data_start:#x}), where an earlier one claimed {b}",
                                    i + k as u64
                                ),
                            });
                        }
                        Some(_) => {}
                        None => first_block = Some(size),
                    }
                    next.get_or_insert(data_start + size);
                    scan.zero += shares_zero as u64;
                } else {
                    let want = match next {
                        Some(want) => want,
                        // The zero page was written first but no descriptor so far uses it.
                        None if shares_zero => {
                            first_block = Some(bs);
                            data_start + bs
                        }
                        None => data_start,
                    };
                    if offset != want {
                        return Err(mismatch(self, i + k as u64, at, offset, want, next));
                    }
                    next = Some(offset + size);
                }
                if offset.saturating_add(size) > src.len() {
                    scan.lost += 1;
                }
            }
            i += n;
        }
        Ok(scan)
    }
}

/// The error for a descriptor whose data is not where the layout puts it.
fn mismatch(
    dump: &KdumpDump,
    index: u64,
    at: u64,
    offset: u64,
    want: u64,
    next: Option<u64>,
) -> Error {
    let data_start = dump.data_start();
    if next.is_none() {
        let zero = if want == data_start {
            String::new()
        } else {
            format!(" (or at {want:#x}, after the shared zero page)")
        };
        Error::Inconsistent {
            invariant: Invariant::TableMeetsData,
            offset: at,
            detail: format!(
                "the 2nd bitmap marks {} pages dumped, so their descriptors (from {:#x}) end \
                 and the page data begins at {data_start:#x}{zero}, but the first page's data \
                 is at {offset:#x}: the bitmap or the table is damaged",
                dump.dumped, dump.desc_offset
            ),
        }
    } else {
        Error::Inconsistent {
            invariant: Invariant::DataInOrder,
            offset: at,
            detail: format!(
                "descriptor {index} points at {offset:#x}, but the previous page's data ends \
                 at {want:#x}"
            ),
        }
    }
}
