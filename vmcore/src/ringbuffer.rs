//! The lockless printk ring buffer (Linux 5.10 and later), read as makedumpfile 1.7.2 does.
//!
//! Structures and state encoding from the kernel's `printk_ringbuffer.h`; every
//! size and offset comes from VMCOREINFO (`log_buf_vmcoreinfo_setup()`), except
//! the facility and level, which VMCOREINFO does not export: they are the two
//! bytes after `printk_info.text_len` (`u8 facility; u8 flags:5, level:3;`).
//! The walk is makedumpfile's `dump_lockless_dmesg()`: descriptors from
//! `tail_id` to `head_id` inclusive, skipping those neither committed nor
//! finalized and data-less ones; a block whose begin lies past its next
//! (modulo the ring size) wrapped and its data starts at 0; the text follows
//! the block's 8-byte id and is cut to the block if `text_len` overruns it.

use crate::budget::Budget;
use crate::dmesg::LogRecord;
use crate::error::{Error, Result};
use crate::memory::{Fields, KernelMemory};
use crate::vmcoreinfo::VmcoreInfo;

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
    let mut begin = d.u64(l.lpos_begin)? % size;
    let next = d.u64(l.lpos_next)? % size;
    if begin == next {
        return Ok(None); // data-less record
    }
    let i = Fields {
        bytes: &infos[(slot * l.info_size) as usize..((slot + 1) * l.info_size) as usize],
        what: "struct printk_info",
    };
    let mut text_len = i.u16(l.text_len)? as u64;
    if begin > next {
        begin = 0; // the block wrapped: its data is at the start of the ring
    }
    begin += 8; // skip the block's descriptor id
    if next.wrapping_sub(begin) < text_len {
        text_len = next.wrapping_sub(begin);
    }
    let start = begin.min(size) as usize;
    let end = (begin + text_len).min(size) as usize;
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

/// A record to put in a synthetic ring buffer.
#[derive(Debug, Clone)]
pub struct RingRecord {
    pub timestamp_ns: u64,
    pub level: u8,
    pub caller_id: u32,
    pub text: Vec<u8>,
    /// Descriptor state: 1 committed, 2 finalized, 0 reserved (skipped by readers).
    pub state: u64,
    /// Store no text block at all (the kernel's data-less records).
    pub dataless: bool,
}

impl RingRecord {
    pub fn new(timestamp_ns: u64, text: &[u8]) -> RingRecord {
        RingRecord {
            timestamp_ns,
            level: 6,
            caller_id: 1,
            text: text.to_vec(),
            state: DESC_FINALIZED,
            dataless: false,
        }
    }
}

/// Where the pieces of a synthetic ring buffer live in kernel virtual memory.
#[derive(Debug, Clone, Copy)]
pub struct RingPlacement {
    /// `SYMBOL(prb)`: the pointer variable.
    pub prb_symbol: u64,
    /// The `struct printk_ringbuffer` it points to.
    pub ringbuffer: u64,
    pub descs: u64,
    pub infos: u64,
    pub text: u64,
}

/// A synthetic ring buffer: memory blobs and the VMCOREINFO lines that describe them.
pub struct BuiltRing {
    pub blobs: Vec<(u64, Vec<u8>)>,
    pub vmcoreinfo: String,
    /// The records a reader should return, oldest first.
    pub expected: Vec<LogRecord>,
    /// Whether some stored record's text block wrapped to the start of the ring.
    pub wrapped: bool,
}

/// Writes `records` as the kernel would, into a ring of 2^`count_bits`
/// descriptors and 2^`size_bits` text bytes, starting at arbitrary ids and
/// positions so that both the descriptor ids and the text ring wrap.
pub fn build_ring(
    records: &[RingRecord],
    count_bits: u32,
    size_bits: u32,
    at: RingPlacement,
) -> BuiltRing {
    let count = 1u64 << count_bits;
    let size = 1u64 << size_bits;
    let mut descs = vec![0u8; (count * 24) as usize];
    let mut infos = vec![0u8; (count * 88) as usize];
    let mut text = vec![0u8; size as usize];
    let first_id = 3 * count - 5;
    let mut lpos = 7 * size - 3 * size / 4;
    let mut placed = Vec::new(); // (id, begin, next, wrapped)
    for (n, r) in records.iter().enumerate() {
        let id = first_id + n as u64;
        let (begin, next, wrapped) = if r.dataless {
            (1, 1, false)
        } else {
            let bsize = (8 + r.text.len() as u64).next_multiple_of(8);
            let begin = lpos;
            let (next, at, wrapped) = if begin / size != (begin + bsize) / size {
                let next = (begin + bsize) / size * size + bsize;
                (next, 0, true)
            } else {
                (begin + bsize, begin % size, false)
            };
            let at = at as usize;
            text[at..at + 8].copy_from_slice(&id.to_le_bytes());
            text[at + 8..at + 8 + r.text.len()].copy_from_slice(&r.text);
            lpos = next;
            (begin, next, wrapped)
        };
        let slot = (id % count) as usize;
        let d = &mut descs[slot * 24..slot * 24 + 24];
        d[0..8].copy_from_slice(&((r.state << DESC_FLAGS_SHIFT) | id).to_le_bytes());
        d[8..16].copy_from_slice(&begin.to_le_bytes());
        d[16..24].copy_from_slice(&next.to_le_bytes());
        let i = &mut infos[slot * 88..slot * 88 + 88];
        i[0..8].copy_from_slice(&(1000 + n as u64).to_le_bytes());
        i[8..16].copy_from_slice(&r.timestamp_ns.to_le_bytes());
        i[16..18].copy_from_slice(&(r.text.len() as u16).to_le_bytes());
        i[18] = 0;
        i[19] = r.level << 5 | 0x2;
        i[20..24].copy_from_slice(&r.caller_id.to_le_bytes());
        placed.push((id, begin, next, wrapped));
    }
    // The tail is the oldest record whose descriptor and text are both intact.
    let head = placed.len() - 1;
    let tail = (0..=head)
        .find(|&k| {
            head - k < count as usize
                && placed[k..]
                    .iter()
                    .all(|&(_, b, nx, _)| b == nx || lpos - b <= size)
        })
        .unwrap();
    let mut rb = vec![0u8; 88];
    rb[0..4].copy_from_slice(&count_bits.to_le_bytes());
    rb[8..16].copy_from_slice(&at.descs.to_le_bytes());
    rb[16..24].copy_from_slice(&at.infos.to_le_bytes());
    rb[24..32].copy_from_slice(&placed[head].0.to_le_bytes());
    rb[32..40].copy_from_slice(&placed[tail].0.to_le_bytes());
    rb[48..52].copy_from_slice(&size_bits.to_le_bytes());
    rb[56..64].copy_from_slice(&at.text.to_le_bytes());
    rb[64..72].copy_from_slice(&lpos.to_le_bytes());
    let expected = (tail..=head)
        .filter(|&k| records[k].state != 0 && !records[k].dataless)
        .map(|k| LogRecord {
            seq: 1000 + k as u64,
            timestamp_ns: records[k].timestamp_ns,
            level: records[k].level,
            facility: 0,
            caller_id: Some(records[k].caller_id),
            text: records[k].text.clone(),
        })
        .collect();
    let vmcoreinfo = format!(
        "SYMBOL(prb)={:x}\nSIZE(printk_ringbuffer)=88\nOFFSET(printk_ringbuffer.desc_ring)=0\n\
         OFFSET(printk_ringbuffer.text_data_ring)=48\nOFFSET(printk_ringbuffer.fail)=80\n\
         SIZE(prb_desc_ring)=48\nOFFSET(prb_desc_ring.count_bits)=0\nOFFSET(prb_desc_ring.descs)=8\n\
         OFFSET(prb_desc_ring.infos)=16\nOFFSET(prb_desc_ring.head_id)=24\nOFFSET(prb_desc_ring.tail_id)=32\n\
         SIZE(prb_desc)=24\nOFFSET(prb_desc.state_var)=0\nOFFSET(prb_desc.text_blk_lpos)=8\n\
         SIZE(prb_data_blk_lpos)=16\nOFFSET(prb_data_blk_lpos.begin)=0\nOFFSET(prb_data_blk_lpos.next)=8\n\
         SIZE(printk_info)=88\nOFFSET(printk_info.seq)=0\nOFFSET(printk_info.ts_nsec)=8\n\
         OFFSET(printk_info.text_len)=16\nOFFSET(printk_info.caller_id)=20\nOFFSET(printk_info.dev_info)=24\n\
         SIZE(prb_data_ring)=32\nOFFSET(prb_data_ring.size_bits)=0\nOFFSET(prb_data_ring.data)=8\n\
         OFFSET(prb_data_ring.head_lpos)=16\nOFFSET(prb_data_ring.tail_lpos)=24\n\
         SIZE(atomic_long_t)=8\nOFFSET(atomic_long_t.counter)=0\n",
        at.prb_symbol
    );
    BuiltRing {
        blobs: vec![
            (at.prb_symbol, at.ringbuffer.to_le_bytes().to_vec()),
            (at.ringbuffer, rb),
            (at.descs, descs),
            (at.infos, infos),
            (at.text, text),
        ],
        vmcoreinfo,
        expected,
        wrapped: placed[tail..].iter().any(|p| p.3),
    }
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
        let mut mem = MapMemory(ring.blobs.clone());
        let err = read(
            &mut mem,
            &VmcoreInfo::parse(info.as_bytes()),
            &Budget::new(1 << 30),
        )
        .unwrap_err();
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
        let mut mem = MapMemory(ring.blobs.clone());
        let err = read(
            &mut mem,
            &VmcoreInfo::parse(info.as_bytes()),
            &Budget::new(1 << 30),
        )
        .unwrap_err();
        assert!(err.to_string().contains("outside its 88 bytes"), "{err}");
    }
}
