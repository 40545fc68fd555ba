//! makedumpfile's flattened format (`-F`, QEMU's kdump-* output), read in place.
//!
//! The stream is a 4096-byte header (`makedumpfile\0…`, big-endian type 1 and
//! version 1) followed by records of big-endian `(offset, size)` and `size`
//! bytes meant for `offset` of the real file; an `offset` of -1 ends it
//! (makedumpfile.h `struct makedumpfile_data_header`, `makedumpfile -R`). We
//! index the records once and serve reads from them: later records win where
//! they overlap, gaps read as zeros, as in the file `makedumpfile -R` would write.
//!
//! The reassembled file is as long as its highest record reaches, but it may
//! not be mostly holes: makedumpfile and QEMU write every block of the file
//! (the only gaps are header padding), so a stream whose records reach past
//! twice the bytes it holds is refused. Otherwise one 1-byte record at 2^40
//! would make every "fits in the file" check pass for any header field.

use std::collections::BTreeMap;
use std::io;

use crate::budget::Budget;
use crate::error::{Error, Result};
use crate::source::{ReadAt, Source};

pub(crate) const SIGNATURE: &[u8; 12] = b"makedumpfile";
const HEADER_SIZE: u64 = 4096;
const TYPE_FLAT_HEADER: u64 = 1;
const END_FLAG: u64 = u64::MAX; // -1 as int64_t
/// What one extent of the index costs in memory (a BTreeMap entry and its share of a node).
const EXTENT_COST: u64 = 64;

/// A view of the reassembled file over a flattened stream.
pub(crate) struct Flattened {
    stream: Source,
    /// start offset in the reassembled file -> (end offset, position in the stream)
    extents: BTreeMap<u64, (u64, u64)>,
    len: u64,
}

pub(crate) fn is_flattened(head: &[u8]) -> bool {
    head.len() >= 16 && &head[..12] == SIGNATURE && head[12..16] == [0; 4]
}

impl Flattened {
    pub(crate) fn index(stream: Source, budget: &Budget) -> Result<Flattened> {
        let mut head = [0u8; 32];
        stream.read_exact("flattened header", 0, &mut head)?;
        let kind = u64::from_be_bytes(head[16..24].try_into().unwrap());
        if kind != TYPE_FLAT_HEADER {
            return Err(Error::Corrupt(format!(
                "flattened header has type {kind}, expected {TYPE_FLAT_HEADER}"
            )));
        }
        let mut extents = BTreeMap::new();
        let mut len = 0u64;
        // stream position of the record that reaches furthest
        let mut furthest = 0u64;
        let mut pos = HEADER_SIZE;
        loop {
            let mut rec = [0u8; 16];
            stream.read_exact(
                "flattened record header (stream lacks its end marker)",
                pos,
                &mut rec,
            )?;
            let offset = u64::from_be_bytes(rec[..8].try_into().unwrap());
            let size = u64::from_be_bytes(rec[8..].try_into().unwrap());
            if offset == END_FLAG {
                break;
            }
            let data = pos + 16;
            if offset > i64::MAX as u64 || size > i64::MAX as u64 {
                return Err(Error::Corrupt(format!(
                    "flattened record at stream offset {pos:#x} claims offset {offset:#x} size {size:#x}"
                )));
            }
            if data.checked_add(size).is_none_or(|e| e > stream.len()) {
                return Err(Error::Truncated {
                    what: "flattened record data",
                    offset: data,
                    len: size,
                    end: stream.len(),
                });
            }
            if size > 0 {
                budget.take("flattened record index", EXTENT_COST)?;
                insert(&mut extents, offset, offset + size, data);
                if offset + size > len {
                    len = offset + size;
                    furthest = pos;
                }
            }
            pos = data + size;
        }
        let present: u64 = extents.iter().map(|(s, (e, _))| e - s).sum();
        if len > present.saturating_mul(2) {
            return Err(Error::Corrupt(format!(
                "flattened record at stream offset {furthest:#x} puts data at {:#x}, but the stream \
                 holds only {present} bytes: the file would be mostly holes",
                len - 1
            )));
        }
        Ok(Flattened {
            stream,
            extents,
            len,
        })
    }
}

/// Adds `[start, end)` at stream position `pos`, cutting away what it overwrites.
fn insert(extents: &mut BTreeMap<u64, (u64, u64)>, start: u64, end: u64, pos: u64) {
    let overlapping: Vec<(u64, (u64, u64))> = extents
        .range(..end)
        .rev()
        .take_while(|(_, (e, _))| *e > start)
        .map(|(s, v)| (*s, *v))
        .collect();
    for (s, (e, p)) in overlapping {
        extents.remove(&s);
        if s < start {
            extents.insert(s, (start, p));
        }
        if e > end {
            extents.insert(end, (e, p + (end - s)));
        }
    }
    extents.insert(start, (end, pos));
}

impl ReadAt for Flattened {
    fn size(&self) -> io::Result<u64> {
        Ok(self.len)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if offset >= self.len {
            return Ok(0);
        }
        let want = (buf.len() as u64).min(self.len - offset) as usize;
        let buf = &mut buf[..want];
        buf.fill(0);
        let end = offset + want as u64;
        let first = self
            .extents
            .range(..=offset)
            .next_back()
            .map(|(s, _)| *s)
            .unwrap_or(offset);
        for (&s, &(e, p)) in self.extents.range(first..end) {
            let lo = s.max(offset);
            let hi = e.min(end);
            if lo >= hi {
                continue;
            }
            let dst = &mut buf[(lo - offset) as usize..(hi - offset) as usize];
            let mut done = 0;
            while done < dst.len() {
                let n = self
                    .stream
                    .read_at(p + (lo - s) + done as u64, &mut dst[done..])?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "flattened stream shorter than its index",
                    ));
                }
                done += n;
            }
        }
        Ok(want)
    }
}

/// Builds a flattened stream from a plain file image, `chunk` bytes per record
/// (and the records in a shuffled order, as makedumpfile's are not sorted).
pub fn flatten(image: &[u8], chunk: usize) -> Vec<u8> {
    flatten_with(image, chunk, &[])
}

/// [`flatten`], then `extra` records `(offset, data)` before the end marker,
/// as a writer that seeks elsewhere (or a forged stream) would add them.
pub fn flatten_with(image: &[u8], chunk: usize, extra: &[(u64, &[u8])]) -> Vec<u8> {
    let mut out = vec![0u8; HEADER_SIZE as usize];
    out[..12].copy_from_slice(SIGNATURE);
    out[16..24].copy_from_slice(&TYPE_FLAT_HEADER.to_be_bytes());
    out[24..32].copy_from_slice(&1u64.to_be_bytes());
    let chunk = chunk.max(1);
    let chunks: Vec<(u64, &[u8])> = image
        .chunks(chunk)
        .enumerate()
        .map(|(i, c)| ((i * chunk) as u64, c))
        .collect();
    // Odd-numbered chunks first, then even ones: offsets are not monotonic.
    for (off, data) in chunks
        .iter()
        .skip(1)
        .step_by(2)
        .chain(chunks.iter().step_by(2))
        .chain(extra)
    {
        out.extend_from_slice(&off.to_be_bytes());
        out.extend_from_slice(&(data.len() as u64).to_be_bytes());
        out.extend_from_slice(data);
    }
    out.extend_from_slice(&END_FLAG.to_be_bytes());
    out.extend_from_slice(&END_FLAG.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(stream: Vec<u8>) -> Result<Flattened> {
        Flattened::index(Source::new(Box::new(stream))?, &Budget::new(1 << 20))
    }

    fn read_all(f: &Flattened) -> Vec<u8> {
        let mut buf = vec![0; f.len as usize];
        assert_eq!(f.read_at(0, &mut buf).unwrap(), buf.len());
        buf
    }

    #[test]
    fn round_trips_an_image_in_shuffled_chunks() {
        let image: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let f = view(flatten(&image, 333)).unwrap();
        assert_eq!(read_all(&f), image);
        let mut part = [0u8; 500];
        assert_eq!(f.read_at(9_700, &mut part).unwrap(), 300);
        assert_eq!(&part[..300], &image[9_700..]);
    }

    #[test]
    fn later_records_overwrite_earlier_ones_and_gaps_read_zero() {
        let mut s = flatten(&[], 1);
        s.truncate(HEADER_SIZE as usize);
        for (off, data) in [(0u64, &b"aaaaaaaa"[..]), (4, b"bb"), (12, b"cc"), (2, b"d")] {
            s.extend_from_slice(&off.to_be_bytes());
            s.extend_from_slice(&(data.len() as u64).to_be_bytes());
            s.extend_from_slice(data);
        }
        s.extend_from_slice(&[0xff; 16]);
        let f = view(s).unwrap();
        assert_eq!(read_all(&f), b"aadabbaa\0\0\0\0cc");
    }

    #[test]
    fn a_stream_without_end_marker_is_truncated() {
        let mut s = flatten(b"hello world", 4);
        s.truncate(s.len() - 16);
        let err = view(s).err().unwrap();
        assert!(matches!(err, Error::Truncated { .. }), "{err}");
    }

    #[test]
    fn a_record_longer_than_the_stream_is_truncated_at_its_offset() {
        let mut s = flatten(b"hello world", 100);
        s.truncate(HEADER_SIZE as usize + 16 + 5);
        match view(s).err().unwrap() {
            Error::Truncated { offset, len, .. } => {
                assert_eq!(offset, HEADER_SIZE + 16);
                assert_eq!(len, 11);
            }
            e => panic!("unexpected {e}"),
        }
    }
}
