//! The lockless printk ring buffer (Linux 5.10 and later), read as makedumpfile 1.7.2 does.
//!
//! Structures and state encoding from the kernel's `printk_ringbuffer.h`; every
//! size and offset comes from VMCOREINFO (`log_buf_vmcoreinfo_setup()`), except
//! the facility and level, which VMCOREINFO does not export: they are the two
//! bytes after `printk_info.text_len` (`u8 facility; u8 flags:5, level:3;`).
//! The walk is makedumpfile's `dump_lockless_dmesg()`: descriptors from
//! `tail_id` to `head_id` inclusive, skipping those neither committed nor
//! finalized and data-less ones; the text follows the block's 8-byte id and is
//! cut to the block if `text_len` overruns it. A block whose id is not its
//! descriptor's is an error (makedumpfile prints it): the kernel writes the id
//! before the descriptor is committed, so in a dump whose pages are the kernel's
//! they always agree. Whether a block wrapped (its data
//! then starts at 0 and ends at `next` modulo the ring) is decided as the kernel's
//! `get_data()` does since 6.19: its first and last bytes (`begin`, `next - 1`) lie
//! in different laps of the ring (`DATA_WRAPS`). Since 6.19 (commit 67e1b0052f6b
//! "printk_ringbuffer: don't needlessly wrap data blocks around") a block that ends
//! exactly at the ring's end stays there, its `next` on the lap boundary; makedumpfile
//! (up to 1.7.9 and its tree in 2026) still takes "begin past next, modulo the ring" as
//! a wrap and prints such a record's text from the ring's start. For every older kernel
//! the two rules agree: a block never ended on the boundary unwrapped.

use crate::budget::Budget;
use crate::dmesg::LogRecord;
use crate::error::{Error, Result};
use crate::memory::{Fields, KernelMemory};
use crate::vmcoreinfo::VmcoreInfo;

mod build;
pub use build::{
    build_ring, build_ring_placed, BlockPlacement, BuiltRing, RingPlacement, RingRecord,
};

const DESC_FLAGS_SHIFT: u32 = 62;
const DESC_ID_MASK: u64 = (1 << DESC_FLAGS_SHIFT) - 1;
const DESC_COMMITTED: u64 = 1;
const DESC_FINALIZED: u64 = 2;
/// Kernel limits: log_buf_len is at most 1 << 31, and descriptors 1 << (31 - 5).
const MAX_TEXT_BITS: u32 = 31;
const MAX_COUNT_BITS: u32 = 26;
/// The kernel's `struct prb_desc` and `struct printk_info` are a few dozen bytes.
const MAX_STRUCT: u64 = 4096;
/// What a record costs beyond its text (the `LogRecord` itself).
const RECORD_COST: u64 = std::mem::size_of::<LogRecord>() as u64;

struct Layout {
    desc_size: u64,
    state_var: u64,
    lpos_begin: u64,
    lpos_next: u64,
    info_size: u64,
    seq: u64,
    ts_nsec: u64,
    text_len: u64,
    caller_id: Option<u64>,
}

pub(crate) fn read(
    mem: &mut dyn KernelMemory,
    info: &VmcoreInfo,
    budget: &Budget,
) -> Result<Vec<LogRecord>> {
    // Offsets from VMCOREINFO are summed saturating: a sum past any structure
    // is then refused by `Fields` as outside it.
    let counter = info.offset("atomic_long_t.counter").unwrap_or(0);
    let prb_addr = mem.read_u64(info.need_symbol("prb")?)?;
    let rb_size = info.need_size("printk_ringbuffer")?;
    let rb = mem.read_vec(
        prb_addr,
        rb_size,
        "struct printk_ringbuffer",
        MAX_STRUCT,
        budget,
    )?;
    let rb = Fields {
        bytes: &rb,
        what: "struct printk_ringbuffer",
    };
    let desc_ring = info.need_offset("printk_ringbuffer.desc_ring")?;
    let text_ring = info.need_offset("printk_ringbuffer.text_data_ring")?;

    let desc_field =
        |m: &str| -> Result<u64> { Ok(desc_ring.saturating_add(info.need_offset(m)?)) };
    let text_field =
        |m: &str| -> Result<u64> { Ok(text_ring.saturating_add(info.need_offset(m)?)) };
    let count_bits = rb.u32(desc_field("prb_desc_ring.count_bits")?)?;
    let size_bits = rb.u32(text_field("prb_data_ring.size_bits")?)?;
    if count_bits > MAX_COUNT_BITS || size_bits > MAX_TEXT_BITS {
        return Err(Error::Corrupt(format!(
            "printk ring buffer claims 2^{count_bits} descriptors and 2^{size_bits} bytes of text"
        )));
    }
    let count = 1u64 << count_bits;
    let text_size = 1u64 << size_bits;
    let descs_addr = rb.u64(desc_field("prb_desc_ring.descs")?)?;
    let infos_addr = rb.u64(desc_field("prb_desc_ring.infos")?)?;
    // Ids are masked as the kernel's DESC_ID() does: state bits in head_id or
    // tail_id would otherwise keep the walk from ever meeting head_id.
    let head_id =
        rb.u64(desc_field("prb_desc_ring.head_id")?.saturating_add(counter))? & DESC_ID_MASK;
    let tail_id =
        rb.u64(desc_field("prb_desc_ring.tail_id")?.saturating_add(counter))? & DESC_ID_MASK;
    let text_addr = rb.u64(text_field("prb_data_ring.data")?)?;

    let text_blk_lpos = info.need_offset("prb_desc.text_blk_lpos")?;
    let (desc_size, info_size) = (info.need_size("prb_desc")?, info.need_size("printk_info")?);
    if desc_size > MAX_STRUCT || info_size > MAX_STRUCT {
        return Err(Error::Corrupt(format!(
            "VMCOREINFO gives SIZE(prb_desc)={desc_size} and SIZE(printk_info)={info_size}, \
             but each is a few dozen bytes"
        )));
    }
    let l = Layout {
        desc_size,
        state_var: info
            .need_offset("prb_desc.state_var")?
            .saturating_add(counter),
        lpos_begin: text_blk_lpos.saturating_add(info.need_offset("prb_data_blk_lpos.begin")?),
        lpos_next: text_blk_lpos.saturating_add(info.need_offset("prb_data_blk_lpos.next")?),
        info_size,
        seq: info.need_offset("printk_info.seq")?,
        ts_nsec: info.need_offset("printk_info.ts_nsec")?,
        text_len: info.need_offset("printk_info.text_len")?,
        caller_id: info.offset("printk_info.caller_id"),
    };
    let span = head_id.wrapping_sub(tail_id) & DESC_ID_MASK;
    if span >= count {
        return Err(Error::Corrupt(format!(
            "printk ring buffer head id {head_id:#x} is {span} descriptors past tail id {tail_id:#x}, but there are only {count}"
        )));
    }
    // Both sizes are at most 2^12 * 2^26: no overflow.
    let cap = MAX_STRUCT << MAX_COUNT_BITS;
    let descs = mem.read_vec(
        descs_addr,
        l.desc_size * count,
        "printk descriptors",
        cap,
        budget,
    )?;
    let infos = mem.read_vec(
        infos_addr,
        l.info_size * count,
        "printk_info array",
        cap,
        budget,
    )?;
    let text = mem.read_vec(
        text_addr,
        text_size,
        "printk text ring",
        1 << MAX_TEXT_BITS,
        budget,
    )?;

    // span + 1 descriptors, each once: the walk is bounded by the ring's size.
    let mut records = Vec::new();
    let mut copied = 0u64;
    for n in 0..=span {
        let id = tail_id.wrapping_add(n) & DESC_ID_MASK;
        if let Some(r) = record(&l, &descs, &infos, &text, count, id)? {
            // The kernel's text blocks do not overlap, so the records hold at
            // most the ring's bytes; more means descriptors share text.
            copied += r.text.len() as u64;
            if copied > text_size {
                return Err(Error::Corrupt(format!(
                    "printk descriptor {id:#x} brings the records' text past the {text_size} \
                     bytes of the text ring: descriptors overlap"
                )));
            }
            budget.take("printk records", RECORD_COST + r.text.len() as u64)?;
            records.push(r);
        }
    }
    Ok(records)
}

fn record(
    l: &Layout,
    descs: &[u8],
    infos: &[u8],
    text: &[u8],
    count: u64,
    id: u64,
) -> Result<Option<LogRecord>> {
    let slot = id % count;
    let d = Fields {
        bytes: &descs[(slot * l.desc_size) as usize..((slot + 1) * l.desc_size) as usize],
        what: "struct prb_desc",
    };
    let state_var = d.u64(l.state_var)?;
    let state = state_var >> DESC_FLAGS_SHIFT;
    if state_var & DESC_ID_MASK != id || (state != DESC_COMMITTED && state != DESC_FINALIZED) {
        return Ok(None);
    }
    let size = text.len() as u64;
    // Logical positions, as the kernel keeps them (they run on past the ring, modulo 2^64).
    let (begin, next) = (d.u64(l.lpos_begin)?, d.u64(l.lpos_next)?);
    if begin % size == next % size {
        return Ok(None); // data-less record
    }
    let i = Fields {
        bytes: &infos[(slot * l.info_size) as usize..((slot + 1) * l.info_size) as usize],
        what: "struct printk_info",
    };
    let wrapped = begin / size != next.wrapping_sub(1) / size;
    let (block, block_end) = if wrapped {
        (0, next % size) // the block wrapped: its data is at the start of the ring
    } else {
        let at = begin % size;
        (at, at.saturating_add(next.wrapping_sub(begin)).min(size))
    };
    // The block starts with its descriptor's id (`data_alloc()` writes it, at the wrapped
    // start too). Another id means the pages read for the ring are not the kernel's: a
    // damaged bitmap or descriptor table of the dump maps other pages there.
    if block + 8 <= size {
        let block_id = u64::from_le_bytes(
            text[block as usize..block as usize + 8]
                .try_into()
                .unwrap_or_default(),
        );
        if block_id & DESC_ID_MASK != id {
            return Err(Error::Corrupt(format!(
                "printk record {id:#x}'s text block (at {block:#x} in the text ring) carries \
                 id {block_id:#x}: the pages read for the log are not the kernel's"
            )));
        }
    }
    let start = (block + 8).min(size); // skip the block's descriptor id
    let text_len = (i.u16(l.text_len)? as u64).min(block_end.saturating_sub(start));
    let (start, end) = (start as usize, (start + text_len) as usize);
    let flags = i.u8(l.text_len.saturating_add(3))?;
    Ok(Some(LogRecord {
        seq: i.u64(l.seq)?,
        timestamp_ns: i.u64(l.ts_nsec)?,
        level: flags >> 5,
        facility: i.u8(l.text_len.saturating_add(2))?,
        caller_id: l.caller_id.map(|o| i.u32(o)).transpose()?,
        text: text[start..end].to_vec(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MapMemory;

    const AT: RingPlacement = RingPlacement {
        prb_symbol: 0xffff_ffff_8200_0000,
        ringbuffer: 0xffff_ffff_8200_1000,
        descs: 0xffff_8880_0010_0000,
        infos: 0xffff_8880_0020_0000,
        text: 0xffff_8880_0030_0000,
    };

    fn records(n: usize) -> Vec<RingRecord> {
        (0..n)
            .map(|k| {
                let mut r = RingRecord::new(
                    k as u64 * 1_234_567,
                    format!("record {k} {}", "x".repeat(k % 23)).as_bytes(),
                );
                r.level = (k % 8) as u8;
                r.caller_id = if k % 2 == 0 {
                    k as u32
                } else {
                    0x8000_0000 | 1
                };
                r
            })
            .collect()
    }

    fn read_built(ring: &BuiltRing) -> Result<Vec<LogRecord>> {
        let mut mem = MapMemory(ring.blobs.clone());
        read(
            &mut mem,
            &VmcoreInfo::parse(ring.vmcoreinfo.as_bytes()),
            &Budget::new(1 << 30),
        )
    }

    #[test]
    fn reads_a_ring_whose_ids_and_text_both_wrapped() {
        let ring = build_ring(&records(40), 4, 10, AT);
        assert!(ring.wrapped, "the test needs a text block that wrapped");
        assert!(
            ring.expected.len() >= 8 && ring.expected.len() <= 16,
            "{}",
            ring.expected.len()
        );
        assert_eq!(read_built(&ring).unwrap(), ring.expected);
    }

    /// 6.19+: a block that ends exactly at the ring's end is not wrapped (its `next` is on
    /// the lap boundary, `next % size == 0`): its text is where it begins.
    #[test]
    fn reads_a_block_that_ends_exactly_at_the_ring_s_end() {
        // 1 KiB of text, the first block 768 bytes before the end: twelve 64-byte blocks
        // (8-byte id + 56 bytes of text) end on it, then three more start the next lap.
        let recs: Vec<RingRecord> = (0..15)
            .map(|k| RingRecord::new(k, format!("fit {k:02} {}", "y".repeat(49)).as_bytes()))
            .collect();
        let ring = build_ring_placed(&recs, 5, 10, AT, BlockPlacement::FitAtEnd);
        assert!(
            ring.fitted && !ring.wrapped,
            "the test needs a block on the boundary"
        );
        let got = read_built(&ring).unwrap();
        assert_eq!(got[11].text_lossy(), format!("fit 11 {}", "y".repeat(49)));
        assert_eq!(got, ring.expected);
        // Up to 6.18 the same records wrap that block to the start instead: read the same.
        let old = build_ring(&recs, 5, 10, AT);
        assert!(old.wrapped && !old.fitted);
        assert_eq!(read_built(&old).unwrap(), old.expected);
    }

    #[test]
    fn skips_reserved_and_dataless_records() {
        let mut recs = records(6);
        recs[2].state = 0;
        recs[4].dataless = true;
        recs[4].text.clear();
        let ring = build_ring(&recs, 4, 12, AT);
        let got = read_built(&ring).unwrap();
        let texts: Vec<String> = got.iter().map(|r| r.text_lossy()).collect();
        assert_eq!(
            texts,
            ["record 0 ", "record 1 x", "record 3 xxx", "record 5 xxxxx"]
        );
        assert_eq!(got, ring.expected);
        assert_eq!(got[1].caller().as_deref(), Some("C1"));
        assert_eq!(got[2].level, 3);
    }

    #[test]
    fn missing_vmcoreinfo_entries_are_named() {
        let ring = build_ring(&records(3), 4, 12, AT);
        let info = ring
            .vmcoreinfo
            .replace("OFFSET(printk_info.ts_nsec)=8\n", "");
        let err = read_with_info(&ring, &info).unwrap_err();
        assert_eq!(
            err.to_string(),
            "VMCOREINFO lacks OFFSET(printk_info.ts_nsec), needed to read the kernel log"
        );
    }

    #[test]
    fn absurd_sizes_are_refused_before_allocating() {
        let mut ring = build_ring(&records(3), 4, 12, AT);
        ring.blobs[1].1[48..52].copy_from_slice(&60u32.to_le_bytes());
        assert!(matches!(read_built(&ring), Err(Error::Corrupt(_))));
        let mut ring = build_ring(&records(3), 4, 12, AT);
        ring.blobs[1].1[32..40].copy_from_slice(&0u64.to_le_bytes());
        let err = read_built(&ring).unwrap_err();
        assert!(
            err.to_string().contains("descriptors past tail id"),
            "{err}"
        );
    }

    #[test]
    fn offsets_outside_a_structure_are_errors_not_panics() {
        let ring = build_ring(&records(3), 4, 12, AT);
        let info = ring.vmcoreinfo.replace(
            "OFFSET(printk_info.text_len)=16",
            "OFFSET(printk_info.text_len)=4000",
        );
        let err = read_with_info(&ring, &info).unwrap_err();
        assert!(err.to_string().contains("outside its 88 bytes"), "{err}");
    }

    /// Reads `ring`'s memory with `info` as its VMCOREINFO (an edited copy of the ring's own).
    fn read_with_info(ring: &BuiltRing, info: &str) -> Result<Vec<LogRecord>> {
        let mut mem = MapMemory(ring.blobs.clone());
        read(
            &mut mem,
            &VmcoreInfo::parse(info.as_bytes()),
            &Budget::new(1 << 30),
        )
    }
}
