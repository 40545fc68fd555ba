//! The uncompressed kernel inside an x86 bzImage (pure): the setup header's payload, its
//! compression told by its magic, decompressed with a Rust crate (no `extract-vmlinux`), and the
//! result checked to be an ELF vmlinux with a PVH entry point (what QEMU's `-kernel` needs to
//! boot it without firmware or self-decompression).
//!
//! Layouts: the kernel's `Documentation/arch/x86/boot.rst` (setup header: `setup_sects` at 0x1f1,
//! `HdrS` at 0x202, `version` at 0x206, `payload_offset`/`payload_length` at 0x248/0x24c from
//! protocol 2.08, relative to the protected-mode code after the setup sectors),
//! `arch/x86/boot/compressed/Makefile` (the payload is `vmlinux.bin` plus its relocations,
//! compressed, followed by its uncompressed size as 4 bytes), `lib/decompress_unlz4.c` (the LZ4
//! legacy frame: magic, then chunks of at most 8 MiB each led by their compressed size),
//! and `fetch/vmlinux/elf.rs` for the ELF checks.

use std::io::Read;

use super::elf;

/// Largest vmlinux accepted: Debian's are ~66 MB; a kernel with everything built in stays far
/// below this. Guards against a payload that claims to expand without end.
pub const MAX_VMLINUX: u64 = 1 << 30;

/// The payload's compression, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Gzip,
    Xz,
    Zstd,
    Lz4Legacy,
    Bzip2,
    Lzma,
    Lzo,
    /// An uncompressed payload (`CONFIG_KERNEL_UNCOMPRESSED`).
    None,
}

impl Codec {
    /// The kernel's name for it (`CONFIG_KERNEL_<NAME>`).
    pub fn name(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Xz => "xz",
            Codec::Zstd => "zstd",
            Codec::Lz4Legacy => "lz4",
            Codec::Bzip2 => "bzip2",
            Codec::Lzma => "lzma",
            Codec::Lzo => "lzo",
            Codec::None => "uncompressed",
        }
    }

    /// The compression `data` starts with, by its magic (the kernel's own table, shared by the
    /// initramfs unpacker: `lib/decompress.c`).
    pub fn sniff(data: &[u8]) -> Option<Codec> {
        const MAGICS: [(&[u8], Codec); 8] = [
            (&[0x1f, 0x8b], Codec::Gzip),
            (&[0xfd, b'7', b'z', b'X', b'Z', 0x00], Codec::Xz),
            (&[0x28, 0xb5, 0x2f, 0xfd], Codec::Zstd),
            (&[0x02, 0x21, 0x4c, 0x18], Codec::Lz4Legacy),
            (b"BZh", Codec::Bzip2),
            (&[0x5d, 0x00, 0x00], Codec::Lzma),
            (&[0x89, b'L', b'Z', b'O'], Codec::Lzo),
            (b"\x7fELF", Codec::None),
        ];
        MAGICS
            .iter()
            .find(|(magic, _)| data.starts_with(magic))
            .map(|(_, codec)| *codec)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BzImageError {
    #[error("not a bzImage: {0}")]
    NotBzImage(String),
    #[error("boot protocol {major}.{minor:02} has no payload fields (2.08 or newer needed)")]
    OldProtocol { major: u8, minor: u8 },
    #[error("the payload (offset {offset:#x}, {length} bytes) lies past the end of the file ({file} bytes)")]
    PayloadOutside { offset: u64, length: u64, file: u64 },
    #[error("the payload starts with {0:02x?}: no known compression")]
    UnknownCodec(Vec<u8>),
    #[error("the kernel is compressed with {0}, which kdrill does not decompress (gzip, xz, zstd, lz4 or none): boot this kernel in `faithful` mode")]
    UnsupportedCodec(&'static str),
    #[error("{codec} payload: {detail}")]
    Decompress { codec: &'static str, detail: String },
    #[error("the payload expands beyond {MAX_VMLINUX} bytes")]
    TooLarge,
    #[error("the payload is not an ELF vmlinux: {0}")]
    NotElf(String),
    #[error("the vmlinux has no PVH entry point (XEN_ELFNOTE_PHYS32_ENTRY; CONFIG_PVH is off): QEMU cannot boot it directly, use `faithful` mode")]
    NoPvhEntry,
}

use elf::{le16, le32};

/// The compressed payload of `image` and its codec.
pub fn payload(image: &[u8]) -> Result<(Codec, &[u8]), BzImageError> {
    if image.len() < 0x250 {
        return Err(BzImageError::NotBzImage(format!(
            "{} bytes, shorter than a setup header",
            image.len()
        )));
    }
    if &image[0x202..0x206] != b"HdrS" {
        return Err(BzImageError::NotBzImage(
            "no \"HdrS\" signature at 0x202".into(),
        ));
    }
    let version = le16(image, 0x206);
    let (major, minor) = ((version >> 8) as u8, (version & 0xff) as u8);
    if version < 0x0208 {
        return Err(BzImageError::OldProtocol { major, minor });
    }
    // 0 setup sectors means 4, for old boot loaders' sake.
    let setup_sects = match image[0x1f1] {
        0 => 4,
        n => u64::from(n),
    };
    let offset = (setup_sects + 1) * 512 + u64::from(le32(image, 0x248));
    let length = u64::from(le32(image, 0x24c));
    let file = image.len() as u64;
    if offset.checked_add(length).is_none_or(|end| end > file) {
        return Err(BzImageError::PayloadOutside {
            offset,
            length,
            file,
        });
    }
    let data = &image[offset as usize..(offset + length) as usize];
    let codec = Codec::sniff(data)
        .ok_or_else(|| BzImageError::UnknownCodec(data.iter().take(8).copied().collect()))?;
    Ok((codec, data))
}

/// The vmlinux of `image`: decompressed, cut to the end of its ELF (the relocations that follow
/// it are for the kernel's own decompressor), checked for a PVH entry.
pub fn extract(image: &[u8]) -> Result<Vec<u8>, BzImageError> {
    let (codec, data) = payload(image)?;
    let mut vmlinux = decompress(codec, data)?;
    let end = elf::end(&vmlinux).map_err(BzImageError::NotElf)?;
    vmlinux.truncate(end);
    if !elf::has_pvh_entry(&vmlinux).map_err(BzImageError::NotElf)? {
        return Err(BzImageError::NoPvhEntry);
    }
    Ok(vmlinux)
}

fn read_bounded(codec: Codec, reader: impl Read) -> Result<Vec<u8>, BzImageError> {
    let mut out = Vec::new();
    reader
        .take(MAX_VMLINUX + 1)
        .read_to_end(&mut out)
        .map_err(|e| BzImageError::Decompress {
            codec: codec.name(),
            detail: e.to_string(),
        })?;
    if out.len() as u64 > MAX_VMLINUX {
        return Err(BzImageError::TooLarge);
    }
    Ok(out)
}

fn decompress(codec: Codec, data: &[u8]) -> Result<Vec<u8>, BzImageError> {
    match codec {
        Codec::None => Ok(data.to_vec()),
        _ => read_bounded(codec, reader(codec, data)?),
    }
}

/// A reader of `data` decompressed by `codec`, stopping at the end of its stream (what follows,
/// such as the 4-byte size a kernel payload carries, is not read). LZ4's legacy frame is
/// unpacked whole first, at most [`MAX_VMLINUX`] bytes; bzip2, LZMA and LZO are refused.
pub fn reader<'a>(codec: Codec, data: &'a [u8]) -> Result<Box<dyn Read + 'a>, BzImageError> {
    let fail = |detail: String| BzImageError::Decompress {
        codec: codec.name(),
        detail,
    };
    Ok(match codec {
        Codec::Gzip => Box::new(flate2::read::GzDecoder::new(data)),
        Codec::Xz => Box::new(lzma_rust2::XzReader::new(data, false)),
        Codec::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::with_buffer(data)
                .map_err(|e| fail(e.to_string()))?
                .single_frame();
            // The kernel compresses with `zstd -22 --ultra`: a window beyond the default limit.
            decoder
                .window_log_max(31)
                .map_err(|e| fail(e.to_string()))?;
            Box::new(decoder)
        }
        Codec::Lz4Legacy => Box::new(std::io::Cursor::new(lz4_legacy(data)?)),
        Codec::None => Box::new(data),
        Codec::Bzip2 | Codec::Lzma | Codec::Lzo => {
            return Err(BzImageError::UnsupportedCodec(codec.name()))
        }
    })
}

/// LZ4's legacy frame, as `lz4 -l` writes it and the kernel's `unlz4` reads it.
fn lz4_legacy(data: &[u8]) -> Result<Vec<u8>, BzImageError> {
    const MAGIC: u32 = 0x184c_2102;
    const CHUNK: usize = 8 << 20;
    let fail = |detail: String| BzImageError::Decompress {
        codec: "lz4",
        detail,
    };
    let mut out = Vec::new();
    let mut at = 4;
    let mut chunk = vec![0u8; CHUNK];
    // What follows the last chunk is the 4-byte uncompressed size: too short to be a chunk.
    while data.len() - at > 4 {
        let size = le32(data, at) as usize;
        at += 4;
        if size as u32 == MAGIC {
            continue;
        }
        let Some(block) = data.get(at..at.saturating_add(size)) else {
            // The kernel's reader stops the same way: this is the appended size, not a chunk.
            break;
        };
        let n = lz4_flex::block::decompress_into(block, &mut chunk)
            .map_err(|e| fail(format!("chunk at {:#x}: {e}", at - 4)))?;
        out.extend_from_slice(&chunk[..n]);
        if out.len() as u64 > MAX_VMLINUX {
            return Err(BzImageError::TooLarge);
        }
        at += size;
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal ELF64 with one PT_NOTE holding the given Xen notes, then `tail` bytes of junk
    /// (the relocations a real payload carries after the ELF).
    pub(crate) fn elf(note_types: &[u32], tail: usize) -> Vec<u8> {
        let mut notes = Vec::new();
        for &kind in note_types {
            notes.extend(4u32.to_le_bytes());
            notes.extend(8u32.to_le_bytes());
            notes.extend(kind.to_le_bytes());
            notes.extend(b"Xen\0");
            notes.extend(0x100_0000u64.to_le_bytes());
        }
        let mut out = vec![0u8; 64 + 56];
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = 2;
        out[5] = 1;
        out[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        out[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        out[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        let ph = 64;
        out[ph..ph + 4].copy_from_slice(&4u32.to_le_bytes());
        out[ph + 8..ph + 16].copy_from_slice(&(120u64).to_le_bytes());
        out[ph + 32..ph + 40].copy_from_slice(&(notes.len() as u64).to_le_bytes());
        out.extend(notes);
        out.extend(std::iter::repeat_n(0xaa, tail));
        out
    }

    /// A bzImage around `payload` (protocol 2.15, one setup sector), with the 4-byte size after it.
    fn bzimage(payload: &[u8], size: u32) -> Vec<u8> {
        let mut image = vec![0u8; 1024];
        image[0x1f1] = 1;
        image[0x202..0x206].copy_from_slice(b"HdrS");
        image[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
        image[0x248..0x24c].copy_from_slice(&16u32.to_le_bytes());
        image[0x24c..0x250].copy_from_slice(&(payload.len() as u32 + 4).to_le_bytes());
        image.extend([0u8; 16]);
        image.extend(payload);
        image.extend(size.to_le_bytes());
        image.extend([0u8; 100]);
        image
    }

    #[test]
    fn each_codec_the_kernel_uses_here_yields_the_elf() {
        let vmlinux = elf(&[6, 18], 0);
        let with_relocs = elf(&[6, 18], 300);
        let size = with_relocs.len() as u32;
        let gz = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut e, &with_relocs).unwrap();
            e.finish().unwrap()
        };
        let zst = zstd::bulk::compress(&with_relocs, 3).unwrap();
        let xz = {
            let mut w =
                lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::default()).unwrap();
            std::io::Write::write_all(&mut w, &with_relocs).unwrap();
            w.finish().unwrap()
        };
        let lz4 = {
            let block = lz4_flex::block::compress(&with_relocs);
            let mut f = 0x184c_2102u32.to_le_bytes().to_vec();
            f.extend((block.len() as u32).to_le_bytes());
            f.extend(block);
            f
        };
        for (name, payload) in [("gzip", gz), ("zstd", zst), ("xz", xz), ("lz4", lz4)] {
            let got = extract(&bzimage(&payload, size)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got, vmlinux, "{name}");
        }
    }

    #[test]
    fn bad_images_are_named() {
        assert!(matches!(
            extract(b"short"),
            Err(BzImageError::NotBzImage(_))
        ));
        let no_pvh = bzimage(&elf(&[6], 0), 0);
        assert_eq!(extract(&no_pvh), Err(BzImageError::NoPvhEntry));
        let bzip2 = bzimage(b"BZh91AY&SY", 0);
        assert_eq!(
            extract(&bzip2),
            Err(BzImageError::UnsupportedCodec("bzip2"))
        );
        let mut outside = bzimage(&elf(&[18], 0), 0);
        outside[0x24c..0x250].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            extract(&outside),
            Err(BzImageError::PayloadOutside { .. })
        ));
        let junk = bzimage(b"\x00\x01\x02\x03junk", 0);
        assert!(matches!(extract(&junk), Err(BzImageError::UnknownCodec(_))));
    }
}
