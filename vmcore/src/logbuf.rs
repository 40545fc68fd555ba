//! The structured `log_buf` of Linux 3.5 to 5.9, read as makedumpfile 1.7.2 does.
//!
//! Records are `struct printk_log` (called `struct log` before 3.11) followed by
//! text and dictionary, each record `len` bytes long; a record header with
//! `len` 0 marks the end of the buffer and the walk continues at its start
//! (makedumpfile `dump_dmesg()`, `log_from_ptr()`, `log_next()`). The walk runs
//! from `log_first_idx` to `log_next_idx`. Sizes and offsets come from
//! VMCOREINFO; facility and level are the two bytes after `dict_len`
//! (`u8 facility; u8 flags:5, level:3;`), which VMCOREINFO does not export.

use crate::budget::Budget;
use crate::dmesg::LogRecord;
use crate::error::{Error, Result};
use crate::memory::{Fields, KernelMemory};
use crate::vmcoreinfo::VmcoreInfo;

/// The kernel caps log_buf_len at 1 << 31 (LOG_BUF_LEN_MAX).
const MAX_LOG_BUF: u64 = 1 << 31;
/// `struct printk_log` is 16 bytes (24 with caller_id); anything near a page is not it.
const MAX_HEADER: u64 = 4096;
/// What a record costs beyond its text (the `LogRecord` itself).
const RECORD_COST: u64 = std::mem::size_of::<LogRecord>() as u64;

pub(crate) fn read(
    mem: &mut dyn KernelMemory,
    info: &VmcoreInfo,
    budget: &Budget,
) -> Result<Vec<LogRecord>> {
    if info.symbol("log_end").is_some() {
        return Err(Error::Unsupported(
            "kernel log of a kernel before 3.5 (plain character log_buf)".into(),
        ));
    }
    let s = if info.size("printk_log").is_some() {
        "printk_log"
    } else {
        "log"
    };
    let hdr_size = info.need_size(s)?;
    if hdr_size == 0 || hdr_size > MAX_HEADER {
        return Err(Error::Corrupt(format!(
            "VMCOREINFO gives SIZE({s})={hdr_size}, but a log record header is a few dozen bytes"
        )));
    }
    let off = |m: &str| info.need_offset(&format!("{s}.{m}"));
    let (ts_off, len_off, text_len_off) = (off("ts_nsec")?, off("len")?, off("text_len")?);
    let level_off = match info.offset(&format!("{s}.dict_len")) {
        Some(d) => d.saturating_add(3),
        None => text_len_off.saturating_add(5),
    };
    let caller_off = info.offset(&format!("{s}.caller_id"));

    let log_buf = mem.read_u64(info.need_symbol("log_buf")?)?;
    let log_buf_len = mem.read_u32(info.need_symbol("log_buf_len")?)? as u64;
    let first = mem.read_u32(info.need_symbol("log_first_idx")?)? as u64;
    let next = mem.read_u32(info.need_symbol("log_next_idx")?)? as u64;
    let buf = mem.read_vec(log_buf, log_buf_len, "log_buf", MAX_LOG_BUF, budget)?;
    let len = buf.len() as u64;
    if first > len || next > len {
        return Err(Error::Corrupt(format!(
            "log_first_idx {first} or log_next_idx {next} lies outside log_buf ({len} bytes)"
        )));
    }
    let header = |at: u64| -> Result<Fields<'_>> {
        let end = at
            .checked_add(hdr_size)
            .filter(|&e| e <= len)
            .ok_or_else(|| {
                Error::Corrupt(format!(
                    "log_buf record at {at} runs past the end ({len} bytes)"
                ))
            })?;
        Ok(Fields {
            bytes: &buf[at as usize..end as usize],
            what: "struct printk_log",
        })
    };

    let mut records = Vec::new();
    let mut ptr = first;
    // The walk from first to next passes each byte of the buffer at most once
    // (the skip from an end marker to the start included): going further is a
    // cycle, found within one lap, so at most `len` bytes of text are copied.
    let mut walked = 0u64;
    while ptr != next {
        let mut at = ptr;
        let mut rec_len = header(at)?.u16(len_off)? as u64;
        if rec_len == 0 {
            walked += len - at;
            at = 0; // end-of-buffer marker: this record is the one at the start
            rec_len = header(0)?.u16(len_off)? as u64;
        }
        walked += rec_len;
        if walked > len {
            return Err(Error::Corrupt(format!(
                "log_buf records form a cycle (at record offset {at}, after {} records)",
                records.len()
            )));
        }
        if rec_len < hdr_size {
            return Err(Error::Corrupt(format!(
                "log_buf record at {at} has length {rec_len}, less than its {hdr_size}-byte header"
            )));
        }
        let h = header(at)?;
        let text_len = h.u16(text_len_off)? as u64;
        let text_at = at + hdr_size;
        if text_len > rec_len - hdr_size {
            return Err(Error::Corrupt(format!(
                "log_buf record at {at} has {text_len} bytes of text in a record of {rec_len}"
            )));
        }
        let text = buf
            .get(text_at as usize..(text_at + text_len) as usize)
            .ok_or_else(|| {
                Error::Corrupt(format!("log_buf record at {at} has text past the end"))
            })?;
        budget.take("log_buf records", RECORD_COST + text_len)?;
        let flags = h.u8(level_off)?;
        records.push(LogRecord {
            seq: records.len() as u64,
            timestamp_ns: h.u64(ts_off)?,
            level: flags >> 5,
            facility: h.u8(level_off.saturating_sub(1))?,
            caller_id: caller_off.map(|o| h.u32(o)).transpose()?,
            text: text.to_vec(),
        });
        ptr = at + rec_len;
    }
    Ok(records)
}

/// Builds a synthetic `log_buf` of `size` bytes (x86_64 layout: 16-byte
/// `struct printk_log`, records aligned to 4) as the kernel fills it, wrapping
/// when a record does not fit before the end. Returns the buffer and the first
/// and next indexes; `records` are (timestamp ns, level, text, dict).
pub fn build_log_buf(records: &[(u64, u8, &[u8], &[u8])], size: usize) -> (Vec<u8>, u32, u32) {
    let mut buf = vec![0u8; size];
    let mut placed: Vec<(usize, usize)> = Vec::new(); // (start, len)
    let mut next = 0usize;
    for &(ts, level, text, dict) in records {
        let len = (16 + text.len() + dict.len()).next_multiple_of(4);
        if next + len + 16 > size {
            buf[next..next + 16].fill(0); // len 0: wrap marker
            next = 0;
        }
        let r = &mut buf[next..next + len];
        r.fill(0);
        r[0..8].copy_from_slice(&ts.to_le_bytes());
        r[8..10].copy_from_slice(&(len as u16).to_le_bytes());
        r[10..12].copy_from_slice(&(text.len() as u16).to_le_bytes());
        r[12..14].copy_from_slice(&(dict.len() as u16).to_le_bytes());
        r[15] = level << 5 | 0x2;
        r[16..16 + text.len()].copy_from_slice(text);
        r[16 + text.len()..16 + text.len() + dict.len()].copy_from_slice(dict);
        // Records overwritten by this one are gone.
        placed.retain(|&(s, l)| s + l <= next || s >= next + len);
        placed.push((next, len));
        next += len;
    }
    // The oldest survivor follows the newest record in buffer order.
    let first = placed
        .iter()
        .map(|&(s, _)| s)
        .filter(|&s| s >= next)
        .min()
        .or_else(|| placed.iter().map(|&(s, _)| s).min())
        .unwrap_or(0);
    (buf, first as u32, next as u32)
}

/// VMCOREINFO lines describing a `log_buf` built by [`build_log_buf`].
pub fn log_buf_vmcoreinfo(log_buf: u64, log_buf_len: u64, first_idx: u64, next_idx: u64) -> String {
    format!(
        "SYMBOL(log_buf)={log_buf:x}\nSYMBOL(log_buf_len)={log_buf_len:x}\n\
         SYMBOL(log_first_idx)={first_idx:x}\nSYMBOL(clear_idx)={first_idx:x}\n\
         SYMBOL(log_next_idx)={next_idx:x}\nSIZE(printk_log)=16\nOFFSET(printk_log.ts_nsec)=0\n\
         OFFSET(printk_log.len)=8\nOFFSET(printk_log.text_len)=10\nOFFSET(printk_log.dict_len)=12\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MapMemory;

    const SYMS: u64 = 0xffff_ffff_8200_0000;
    const BUF: u64 = 0xffff_8880_0100_0000;

    fn memory(buf: Vec<u8>, first: u32, next: u32) -> (MapMemory, VmcoreInfo) {
        let len = buf.len() as u32;
        let mut vars = Vec::new();
        vars.extend_from_slice(&BUF.to_le_bytes());
        vars.extend_from_slice(&len.to_le_bytes());
        vars.extend_from_slice(&first.to_le_bytes());
        vars.extend_from_slice(&next.to_le_bytes());
        let info = log_buf_vmcoreinfo(SYMS, SYMS + 8, SYMS + 12, SYMS + 16);
        (
            MapMemory(vec![(SYMS, vars), (BUF, buf)]),
            VmcoreInfo::parse(info.as_bytes()),
        )
    }

    #[test]
    fn walks_a_wrapped_buffer_from_first_to_next() {
        let texts: Vec<String> = (0..30)
            .map(|k| format!("line {k} {}", "y".repeat(k % 17)))
            .collect();
        let recs: Vec<(u64, u8, &[u8], &[u8])> = texts
            .iter()
            .enumerate()
            .map(|(k, t)| {
                (
                    k as u64 * 1000,
                    (k % 8) as u8,
                    t.as_bytes(),
                    &b"SUBSYSTEM=pci"[..],
                )
            })
            .collect();
        let (buf, first, next) = build_log_buf(&recs, 512);
        assert!(next < first, "the test needs a wrapped buffer");
        let (mut mem, info) = memory(buf, first, next);
        let got = read(&mut mem, &info, &Budget::new(1 << 20)).unwrap();
        assert!(got.len() >= 5 && got.len() < 30, "{}", got.len());
        let skip = 30 - got.len();
        for (k, r) in got.iter().enumerate() {
            assert_eq!(r.text, texts[skip + k].as_bytes());
            assert_eq!(r.timestamp_ns, (skip + k) as u64 * 1000);
            assert_eq!(r.level, ((skip + k) % 8) as u8);
            assert_eq!(r.seq, k as u64);
        }
    }

    #[test]
    fn a_cycle_is_reported() {
        // Records at 0 and 20, then zeros (an end marker) that lead back to 0:
        // log_next_idx 200 is never reached.
        let (buf, first, next) = build_log_buf(&[(1, 6, b"a", b""), (2, 6, b"b", b"")], 256);
        assert_eq!((first, next), (0, 40));
        let (mut mem, info) = memory(buf, 0, 200);
        let err = read(&mut mem, &info, &Budget::new(1 << 20)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("corrupt dump: log_buf records form a cycle"),
            "{err}"
        );
    }

    #[test]
    fn old_kernels_are_refused_by_name() {
        let (mut mem, _) = memory(vec![0; 64], 0, 0);
        let info = VmcoreInfo::parse(b"SYMBOL(log_end)=ffffffff81000000\n");
        let err = read(&mut mem, &info, &Budget::new(1 << 20)).unwrap_err();
        assert!(err.to_string().contains("before 3.5"), "{err}");
    }
}
