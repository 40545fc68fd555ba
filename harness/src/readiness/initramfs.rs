//! What a capture initrd holds (pure over its bytes): newc cpio archives as the kernel unpacks
//! them (`init/initramfs.c`): uncompressed ones first (early microcode), zero padding between,
//! then at most one compressed archive — gzip, xz, zstd or lz4, told by its magic with the codec
//! table of `fetch::vmlinux::bzimage` — whose stream may hold several archives. Only the names,
//! the unpacked size and `modules.builtin` are kept, within a size and a time limit.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::time::{Duration, Instant};

use crate::fetch::vmlinux::bzimage::{self, Codec};

/// Largest initrd file read (Debian's kdump initrds are ~7 MB, RHEL's ~30 MB).
pub const FILE_LIMIT: u64 = 256 << 20;
/// Largest unpacked stream walked: beyond it the initrd is named, not judged from a part.
pub const UNPACKED_LIMIT: u64 = 1 << 30;
/// Longest the unpacking may take (xz of a 30 MB initrd takes about a second).
pub const TIME_LIMIT: Duration = Duration::from_secs(30);
/// Most entries kept: a kdump initrd holds hundreds to a few thousand.
const MAX_ENTRIES: usize = 200_000;
/// Largest `modules.builtin` kept (Debian's is ~7 KB).
const SMALL_FILE: u64 = 1 << 20;

/// A capture initrd's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contents {
    /// Every entry's path, without a leading `./` or `/` (`usr/lib/modules/…/ext4.ko`).
    pub files: BTreeSet<String>,
    /// The text of the first `lib/modules/<release>/modules.builtin` in it.
    pub builtin: Option<String>,
    /// The regular files' sizes added up: what unpacking it takes in the capture kernel's memory.
    pub unpacked_bytes: u64,
    /// Its archives in order: `cpio` for an uncompressed one, else the codec's name.
    pub segments: Vec<&'static str>,
}

impl Contents {
    /// The path of kernel module `name` in it (`ext4` → `…/kernel/fs/ext4/ext4.ko.zst`); `-` and
    /// `_` are one to modprobe, so to this too.
    pub fn module(&self, name: &str) -> Option<&str> {
        let want = name.replace('-', "_");
        self.files
            .iter()
            .filter(|path| path.contains("lib/modules/"))
            .find(|path| {
                let file = path.rsplit('/').next().unwrap_or(path);
                let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
                    .iter()
                    .find_map(|ext| file.strip_suffix(ext));
                stem.is_some_and(|stem| stem.replace('-', "_") == want)
            })
            .map(String::as_str)
    }

    /// Whether `modules.builtin` names module `name` as built into the kernel.
    pub fn builtin(&self, name: &str) -> bool {
        let want = format!("/{}.ko", name.replace('-', "_"));
        self.builtin.as_deref().is_some_and(|text| {
            text.lines()
                .any(|l| l.trim().replace('-', "_").ends_with(&want))
        })
    }

    /// The path of program `name` in a `bin` or `sbin` folder of it.
    pub fn program(&self, name: &str) -> Option<&str> {
        self.files
            .iter()
            .find(|path| {
                path.rsplit_once('/').is_some_and(|(dir, file)| {
                    file == name && (dir.ends_with("bin") || dir.ends_with("sbin"))
                })
            })
            .map(String::as_str)
    }

    /// The modules under `kernel/<folder>/` (`drivers/net`), by file name.
    pub fn modules_under(&self, folder: &str) -> Vec<&str> {
        let marker = format!("/kernel/{}/", folder.trim_matches('/'));
        self.files
            .iter()
            .filter(|path| path.contains(&marker) && path.contains(".ko"))
            .map(|path| path.rsplit('/').next().unwrap_or(path))
            .collect()
    }
}

/// Reads an initrd's bytes; an error says what is wrong with it, for a check's `seen` line.
pub fn read(bytes: &[u8], deadline: Instant) -> Result<Contents, String> {
    let mut contents = Contents::default();
    let mut at = 0usize;
    loop {
        at += bytes[at..].iter().take_while(|b| **b == 0).count();
        let rest = &bytes[at..];
        if rest.is_empty() {
            break;
        }
        if rest.starts_with(b"07070") {
            let mut cursor = std::io::Cursor::new(rest);
            archive(&mut cursor, &mut contents)
                .map_err(|why| format!("the cpio archive at byte {at}: {why}"))?;
            at += cursor.position() as usize;
            contents.segments.push("cpio");
            continue;
        }
        let codec = Codec::sniff(rest)
            .filter(|c| *c != Codec::None)
            .ok_or_else(|| {
                format!(
                    "byte {at} starts neither a cpio archive nor a known compression ({:02x?})",
                    &rest[..rest.len().min(6)]
                )
            })?;
        let reader = bzimage::reader(codec, rest).map_err(|e| e.to_string())?;
        let mut stream = BufReader::new(Bounded {
            inner: reader,
            read: 0,
            deadline,
        });
        while skip_zeros(&mut stream).map_err(|e| format!("{} archive: {e}", codec.name()))? {
            archive(&mut stream, &mut contents)
                .map_err(|why| format!("the {} archive at byte {at}: {why}", codec.name()))?;
        }
        contents.segments.push(codec.name());
        // The kernel would go on after the stream; kdump initrds end here.
        break;
    }
    if contents.segments.is_empty() {
        return Err("empty: no cpio archive in it".to_string());
    }
    Ok(contents)
}

/// Skips NUL padding; `false` at the end of the stream.
fn skip_zeros(stream: &mut impl BufRead) -> std::io::Result<bool> {
    loop {
        let buf = stream.fill_buf()?;
        if buf.is_empty() {
            return Ok(false);
        }
        let zeros = buf.iter().take_while(|b| **b == 0).count();
        let more = zeros == buf.len();
        stream.consume(zeros);
        if !more {
            return Ok(true);
        }
    }
}

/// One newc archive up to its `TRAILER!!!`.
fn archive(stream: &mut impl Read, contents: &mut Contents) -> Result<(), String> {
    loop {
        let mut header = [0u8; 110];
        stream
            .read_exact(&mut header)
            .map_err(|e| format!("truncated header ({e})"))?;
        if &header[..6] != b"070701" && &header[..6] != b"070702" {
            return Err(format!(
                "not a newc header: {:?}",
                String::from_utf8_lossy(&header[..6])
            ));
        }
        let field = |i: usize| -> Result<u64, String> {
            let text = std::str::from_utf8(&header[6 + 8 * i..14 + 8 * i]).unwrap_or("");
            u64::from_str_radix(text, 16)
                .map_err(|_| format!("header field {i} is not hex: {text:?}"))
        };
        let (mode, size, name_size) = (field(1)?, field(6)?, field(11)?);
        if name_size == 0 || name_size > 4096 {
            return Err(format!("a name of {name_size} bytes"));
        }
        let mut name = vec![0u8; name_size as usize];
        stream
            .read_exact(&mut name)
            .map_err(|e| format!("truncated name ({e})"))?;
        skip(stream, pad(110 + name_size))?;
        let name = String::from_utf8_lossy(&name)
            .trim_end_matches('\0')
            .to_string();
        if name == "TRAILER!!!" {
            return Ok(());
        }
        let path = name
            .trim_start_matches("./")
            .trim_start_matches('/')
            .to_string();
        let builtin = path.contains("lib/modules/") && path.ends_with("/modules.builtin");
        if builtin && contents.builtin.is_none() && size <= SMALL_FILE {
            let mut text = Vec::new();
            stream
                .take(size)
                .read_to_end(&mut text)
                .map_err(|e| format!("{path}: {e}"))?;
            if text.len() as u64 != size {
                return Err(format!("{path} is cut short"));
            }
            contents.builtin = Some(String::from_utf8_lossy(&text).into_owned());
        } else {
            skip(stream, size).map_err(|why| format!("{path}: {why}"))?;
        }
        skip(stream, pad(size))?;
        if mode & 0o170000 == 0o100000 {
            contents.unpacked_bytes += size;
        }
        if contents.files.len() >= MAX_ENTRIES {
            return Err(format!("more than {MAX_ENTRIES} entries"));
        }
        if !path.is_empty() && path != "." {
            contents.files.insert(path);
        }
    }
}

/// Bytes that bring `n` up to a multiple of 4.
fn pad(n: u64) -> u64 {
    (4 - n % 4) % 4
}

fn skip(stream: &mut impl Read, n: u64) -> Result<(), String> {
    let copied =
        std::io::copy(&mut stream.take(n), &mut std::io::sink()).map_err(|e| e.to_string())?;
    if copied == n {
        Ok(())
    } else {
        Err(format!("cut short ({copied} of {n} bytes)"))
    }
}

/// A decompressed stream held to [`UNPACKED_LIMIT`] and a deadline.
struct Bounded<R> {
    inner: R,
    read: u64,
    deadline: Instant,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if Instant::now() > self.deadline {
            return Err(std::io::Error::other(format!(
                "unpacking took longer than {} s",
                TIME_LIMIT.as_secs()
            )));
        }
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > UNPACKED_LIMIT {
            return Err(std::io::Error::other(format!(
                "it unpacks to more than {} MiB: not judged from a part",
                UNPACKED_LIMIT >> 20
            )));
        }
        Ok(n)
    }
}

/// newc archives for tests: `(path, mode, content)` entries, then the trailer.
#[cfg(test)]
pub(crate) fn newc(entries: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let trailer: (&str, u32, &[u8]) = ("TRAILER!!!", 0, b"");
    for (i, (name, mode, data)) in entries.iter().chain([&trailer]).enumerate() {
        let fields = [
            i as u32 + 1,
            *mode,
            0,
            0,
            1,
            0,
            data.len() as u32,
            0,
            0,
            0,
            0,
            name.len() as u32 + 1,
            0,
        ];
        out.extend(b"070701");
        for f in fields {
            out.extend(format!("{f:08X}").bytes());
        }
        out.extend(name.bytes());
        out.push(0);
        out.resize(out.len() + pad(110 + name.len() as u64 + 1) as usize, 0);
        out.extend(*data);
        out.resize(out.len() + pad(data.len() as u64) as usize, 0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn later() -> Instant {
        Instant::now() + TIME_LIMIT
    }

    const FILE: u32 = 0o100644;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn early_microcode_then_a_compressed_archive() {
        let early = newc(&[("kernel/x86/microcode/GenuineIntel.bin", FILE, b"ucode")]);
        let main = newc(&[
            (
                "usr/lib/modules/6.12.9-amd64/kernel/fs/xfs/xfs.ko.xz",
                FILE,
                &[7u8; 33],
            ),
            (
                "usr/lib/modules/6.12.9-amd64/modules.builtin",
                FILE,
                b"kernel/fs/ext4/ext4.ko\n",
            ),
            ("usr/bin/ssh", 0o100755, b"elf"),
        ]);
        let xz = {
            let mut w =
                lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::default()).unwrap();
            w.write_all(&main).unwrap();
            w.finish().unwrap()
        };
        // initramfs-tools' lz4 is the legacy frame (`lz4 -l`), as the kernel's own.
        let lz4 = {
            let block = lz4_flex::block::compress(&main);
            let mut f = 0x184c_2102u32.to_le_bytes().to_vec();
            f.extend((block.len() as u32).to_le_bytes());
            f.extend(block);
            f
        };
        let packed = [
            gzip(&main),
            zstd::encode_all(main.as_slice(), 3).unwrap(),
            xz,
            lz4,
        ];
        for (packed, codec) in packed.iter().zip(["gzip", "zstd", "xz", "lz4"]) {
            let mut initrd = early.clone();
            initrd.extend([0u8; 512]);
            initrd.extend(packed);
            let c = read(&initrd, later()).unwrap();
            assert_eq!(c.segments, ["cpio", codec]);
            assert_eq!(c.unpacked_bytes, 5 + 33 + 23 + 3);
            assert_eq!(
                c.module("xfs"),
                Some("usr/lib/modules/6.12.9-amd64/kernel/fs/xfs/xfs.ko.xz")
            );
            assert!(c.builtin("ext4") && !c.builtin("xfs"));
            assert_eq!(c.program("ssh"), Some("usr/bin/ssh"));
            assert_eq!(c.module("ext4"), None);
        }
    }

    #[test]
    fn module_names_match_as_modprobe_does() {
        let c = read(
            &newc(&[(
                "lib/modules/6.1.0-47-amd64/kernel/arch/x86/crypto/crc32c-intel.ko",
                FILE,
                b"",
            )]),
            later(),
        )
        .unwrap();
        assert!(c.module("crc32c_intel").is_some());
        assert_eq!(c.modules_under("arch/x86"), ["crc32c-intel.ko"]);
        assert!(c.modules_under("drivers/net").is_empty());
    }

    #[test]
    fn what_is_not_an_initrd_is_named() {
        let text = read(b"fixture: stands in for the capture initrd\n", later()).unwrap_err();
        assert!(
            text.contains("neither a cpio archive nor a known compression"),
            "{text}"
        );
        assert!(read(&[0u8; 64], later()).unwrap_err().contains("empty"));
        let mut cut = newc(&[("a", FILE, &[1u8; 100])]);
        cut.truncate(150);
        assert!(read(&cut, later()).unwrap_err().contains("cut short"));
        let bz = read(b"BZh91AY&SY", later()).unwrap_err();
        assert!(bz.contains("bzip2"), "{bz}");
        // A deadline already past stops a compressed archive.
        let late = read(
            &gzip(&newc(&[("a", FILE, b"x")])),
            Instant::now() - Duration::from_secs(1),
        );
        assert!(late.unwrap_err().contains("took longer"));
    }
}
