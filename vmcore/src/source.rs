//! Random-access byte sources: the only place the reader touches I/O.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::error::{Error, Result};

/// A read-only byte source with random access, like `pread(2)`.
///
/// Implemented for [`File`] (positioned reads, nothing is loaded up front) and
/// for in-memory bytes (`Vec<u8>`, `&'static [u8]`, `Box<[u8]>`), which the tests use.
pub trait ReadAt {
    /// Total length of the source in bytes.
    fn size(&self) -> io::Result<u64>;
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read, 0 at the end.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
}

impl ReadAt for File {
    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        FileExt::read_at(self, buf, offset)
    }
}

fn slice_read_at(data: &[u8], offset: u64, buf: &mut [u8]) -> usize {
    let Ok(start) = usize::try_from(offset) else {
        return 0;
    };
    if start >= data.len() {
        return 0;
    }
    let n = buf.len().min(data.len() - start);
    buf[..n].copy_from_slice(&data[start..start + n]);
    n
}

impl ReadAt for [u8] {
    fn size(&self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        Ok(slice_read_at(self, offset, buf))
    }
}

impl ReadAt for &[u8] {
    fn size(&self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        Ok(slice_read_at(self, offset, buf))
    }
}

impl ReadAt for Vec<u8> {
    fn size(&self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        Ok(slice_read_at(self, offset, buf))
    }
}

impl<T: ReadAt + ?Sized> ReadAt for Box<T> {
    fn size(&self) -> io::Result<u64> {
        (**self).size()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        (**self).read_at(offset, buf)
    }
}

/// A source together with its length, measured once.
pub(crate) struct Source {
    inner: Box<dyn ReadAt + Send + Sync>,
    len: u64,
}

impl Source {
    pub(crate) fn new(inner: Box<dyn ReadAt + Send + Sync>) -> Result<Source> {
        let len = inner
            .size()
            .map_err(|source| Error::Io { offset: 0, source })?;
        Ok(Source { inner, len })
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Reads exactly `buf.len()` bytes at `offset`, or says where the data ended.
    pub(crate) fn read_exact(&self, what: &'static str, offset: u64, buf: &mut [u8]) -> Result<()> {
        let len = buf.len() as u64;
        let truncated = || Error::Truncated {
            what,
            offset,
            len,
            end: self.len,
        };
        let end = offset.checked_add(len).ok_or_else(truncated)?;
        if end > self.len {
            return Err(truncated());
        }
        let mut done = 0;
        while done < buf.len() {
            let at = offset + done as u64;
            match self.inner.read_at(at, &mut buf[done..]) {
                Ok(0) => return Err(truncated()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => return Err(Error::Io { offset: at, source }),
            }
        }
        Ok(())
    }

    /// Reads `len` bytes at `offset` into a new buffer, after checking they exist.
    pub(crate) fn read_vec(&self, what: &'static str, offset: u64, len: u64) -> Result<Vec<u8>> {
        if offset.checked_add(len).is_none_or(|end| end > self.len) {
            return Err(Error::Truncated {
                what,
                offset,
                len,
                end: self.len,
            });
        }
        let mut buf = vec![0; len as usize];
        self.read_exact(what, offset, &mut buf)?;
        Ok(buf)
    }
}

impl ReadAt for Source {
    fn size(&self) -> io::Result<u64> {
        Ok(self.len)
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_at(offset, buf)
    }
}

/// Little-endian field readers over a byte slice whose length the caller checked.
pub(crate) fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(b[off..off + 2].try_into().unwrap())
}
pub(crate) fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}
pub(crate) fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}
