//! Writing a lockless ring buffer the way the kernel does, for synthetic dumps: records into
//! descriptors, infos and a text ring at chosen ids and positions, so ids and text both wrap.
//! A block that would end exactly at the ring's end is placed as the kernel of
//! [`BlockPlacement`] does (`data_alloc()`/`get_next_lpos()` in `printk_ringbuffer.c`).

use super::{DESC_FINALIZED, DESC_FLAGS_SHIFT};
use crate::dmesg::LogRecord;

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

/// Where the kernel puts a text block that would end exactly at the end of the text ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockPlacement {
    /// Up to 6.18: it wraps to the start of the ring, as a block that crosses the end does
    /// (`DATA_WRAPS(begin) != DATA_WRAPS(next)`).
    WrapAtEnd,
    /// 6.19 on (commit 67e1b0052f6b "printk_ringbuffer: don't needlessly wrap data blocks
    /// around"): it stays at the end, and its `next` is the start of the next lap
    /// (`DATA_WRAPS(begin) != DATA_WRAPS(next - 1)` decides a wrap).
    FitAtEnd,
}

/// A synthetic ring buffer: memory blobs and the VMCOREINFO lines that describe them.
pub struct BuiltRing {
    pub blobs: Vec<(u64, Vec<u8>)>,
    pub vmcoreinfo: String,
    /// The records a reader should return, oldest first.
    pub expected: Vec<LogRecord>,
    /// Whether some stored record's text block wrapped to the start of the ring.
    pub wrapped: bool,
    /// Whether some stored record's text block ends exactly at the end of the ring, unwrapped
    /// (only with [`BlockPlacement::FitAtEnd`]).
    pub fitted: bool,
}

/// Writes `records` as the kernel would, into a ring of 2^`count_bits`
/// descriptors and 2^`size_bits` text bytes, starting at arbitrary ids and
/// positions so that both the descriptor ids and the text ring wrap. The first block starts
/// 3/4 of the ring before its end. Blocks are placed as up to 6.18.
pub fn build_ring(
    records: &[RingRecord],
    count_bits: u32,
    size_bits: u32,
    at: RingPlacement,
) -> BuiltRing {
    build_ring_placed(
        records,
        count_bits,
        size_bits,
        at,
        BlockPlacement::WrapAtEnd,
    )
}

/// [`build_ring`], with blocks placed as `placement` says.
pub fn build_ring_placed(
    records: &[RingRecord],
    count_bits: u32,
    size_bits: u32,
    at: RingPlacement,
    placement: BlockPlacement,
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
            let last = match placement {
                BlockPlacement::WrapAtEnd => begin + bsize,
                BlockPlacement::FitAtEnd => begin + bsize - 1,
            };
            let (next, at, wrapped) = if begin / size != last / size {
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
        fitted: placed[tail..]
            .iter()
            .any(|&(_, b, nx, w)| !w && b != nx && nx % size == 0),
    }
}
