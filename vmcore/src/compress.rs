//! Page decompression for kdump-compressed dumps: zlib, LZO1X, snappy, zstd.
//!
//! Flag values are makedumpfile's `diskdump_mod.h` (`DUMP_DH_COMPRESSED_*`);
//! the same bits mark the whole dump in the header's `status` and each page in
//! its `page_desc.flags`. A page must decompress to exactly one page, as
//! makedumpfile's `readpage_kdump_compressed()` demands.

use crate::error::{Error, Result};

pub(crate) const ZLIB: u32 = 0x1;
pub(crate) const LZO: u32 = 0x2;
pub(crate) const SNAPPY: u32 = 0x4;
pub(crate) const ZSTD: u32 = 0x20;

/// How the pages of a dump are compressed, as its header states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Zlib,
    Lzo,
    Snappy,
    Zstd,
}

impl Compression {
    pub(crate) fn from_status(status: u32) -> Compression {
        if status & ZLIB != 0 {
            Compression::Zlib
        } else if status & LZO != 0 {
            Compression::Lzo
        } else if status & SNAPPY != 0 {
            Compression::Snappy
        } else if status & ZSTD != 0 {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    pub(crate) fn flag(self) -> u32 {
        match self {
            Compression::None => 0,
            Compression::Zlib => ZLIB,
            Compression::Lzo => LZO,
            Compression::Snappy => SNAPPY,
            Compression::Zstd => ZSTD,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Zlib => "zlib",
            Compression::Lzo => "lzo",
            Compression::Snappy => "snappy",
            Compression::Zstd => "zstd",
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Decompresses one page stored with page flags `flags` into `out` (one page long).
pub(crate) fn decompress_page(pfn: u64, flags: u32, data: &[u8], out: &mut [u8]) -> Result<()> {
    let fail = |method: &'static str, detail: String| Error::Decompress {
        pfn,
        method,
        detail,
    };
    let page = out.len();
    let wrong_size = |method: &'static str, n: usize| {
        fail(method, format!("gave {n} bytes, expected a page of {page}"))
    };
    if flags & ZLIB != 0 {
        let mut z = flate2::Decompress::new(true);
        let status = z
            .decompress(data, out, flate2::FlushDecompress::Finish)
            .map_err(|e| fail("zlib", e.to_string()))?;
        let n = z.total_out() as usize;
        if status != flate2::Status::StreamEnd || n != out.len() {
            return Err(wrong_size("zlib", n));
        }
    } else if flags & LZO != 0 {
        let n = lzo::decompress_into(data, out).map_err(|e| fail("lzo", e.to_string()))?;
        if n != out.len() {
            return Err(wrong_size("lzo", n));
        }
    } else if flags & SNAPPY != 0 {
        let len = snap::raw::decompress_len(data).map_err(|e| fail("snappy", e.to_string()))?;
        if len != out.len() {
            return Err(wrong_size("snappy", len));
        }
        snap::raw::Decoder::new()
            .decompress(data, out)
            .map_err(|e| fail("snappy", e.to_string()))?;
    } else if flags & ZSTD != 0 {
        let n =
            zstd::bulk::decompress_to_buffer(data, out).map_err(|e| fail("zstd", e.to_string()))?;
        if n != out.len() {
            return Err(wrong_size("zstd", n));
        }
    } else {
        return Err(Error::UnsupportedCompression { pfn, flags });
    }
    Ok(())
}

/// Compresses one page the way makedumpfile would store it, for synthetic dumps.
/// Returns `None` for [`Compression::None`] and for LZO, whose compressor is not
/// part of this crate (tests bring their own).
pub fn compress_page(method: Compression, page: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    match method {
        Compression::Zlib => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(page).ok()?;
            e.finish().ok()
        }
        Compression::Snappy => snap::raw::Encoder::new().compress_vec(page).ok(),
        Compression::Zstd => zstd::bulk::compress(page, 1).ok(),
        Compression::Lzo | Compression::None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> Vec<u8> {
        (0..4096u32).map(|i| (i % 13 + i / 512) as u8).collect()
    }

    fn round_trip(method: Compression, data: Vec<u8>) {
        let mut out = vec![0; 4096];
        decompress_page(7, method.flag(), &data, &mut out).unwrap();
        assert_eq!(out, page(), "{method}");
    }

    #[test]
    fn every_method_round_trips_a_page() {
        for m in [Compression::Zlib, Compression::Snappy, Compression::Zstd] {
            round_trip(m, compress_page(m, &page()).unwrap());
        }
        round_trip(Compression::Lzo, lzokay_native::compress(&page()).unwrap());
    }

    #[test]
    fn raw_deflate_is_not_zlib() {
        use std::io::Write;
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&page()).unwrap();
        let mut out = vec![0; 4096];
        let err = decompress_page(7, ZLIB, &e.finish().unwrap(), &mut out).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Decompress {
                    pfn: 7,
                    method: "zlib",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_short_page_is_an_error_not_a_partial_page() {
        let half = compress_page(Compression::Zlib, &page()[..2048]).unwrap();
        let mut out = vec![0; 4096];
        let err = decompress_page(9, ZLIB, &half, &mut out).unwrap_err();
        assert!(err.to_string().contains("expected a page of 4096"), "{err}");
    }

    #[test]
    fn garbage_gives_errors_for_every_method() {
        let junk = [0xffu8; 64];
        for flags in [ZLIB, LZO, SNAPPY, ZSTD] {
            let mut out = vec![0; 4096];
            assert!(
                decompress_page(1, flags, &junk, &mut out).is_err(),
                "flags {flags:#x}"
            );
        }
        let mut out = vec![0; 4096];
        assert!(matches!(
            decompress_page(1, 0x40, &junk, &mut out),
            Err(Error::UnsupportedCompression { flags: 0x40, .. })
        ));
    }
}
