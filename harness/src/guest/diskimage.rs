//! The operator's disk image file, read and never written: its format and size (`qemu-img info`),
//! whether its first sectors can boot at all and with which firmware (a pure look at the MBR and
//! the GPT), its sha256 (before and after a case), a recipe's `url:` downloaded once into the
//! cache, and the two ways kdrill's agent goes in (a NoCloud seed; libguestfs into the overlay).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::host::process;
use crate::spec::disk::Firmware;

/// What went wrong with the operator's file, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum DiskImageError {
    #[error("{path}: {detail}")]
    NotAnImage { path: PathBuf, detail: String },
    #[error("{path}: not a bootable disk image: {detail}")]
    NotBootable { path: PathBuf, detail: String },
    #[error("`{command}` failed: {detail}")]
    Tool { command: String, detail: String },
    #[error("{url}: {detail}")]
    Download { url: String, detail: String },
    #[error("{path}: {detail}")]
    Io { path: PathBuf, detail: String },
}

/// `qemu-img info`'s view of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// `qcow2` or `raw` (qemu-img calls any file it does not know `raw`).
    pub format: String,
    pub virtual_size: u64,
    /// A qcow2 with a backing file: the chain is the operator's, and a case reads through it.
    pub backing: Option<String>,
}

/// Formats a case boots (QEMU reads others too, but an operator's golden image is one of these).
const FORMATS: [&str; 2] = ["qcow2", "raw"];

/// Reads `qemu-img info --output=json` of `path`.
pub fn info(qemu_img: &Path, path: &Path, limit: Duration) -> Result<Info, DiskImageError> {
    let mut command = Command::new(qemu_img);
    command.args(["info", "--output=json", "-U"]).arg(path);
    let done = run(&mut command, limit)?;
    let json: serde_json::Value =
        serde_json::from_slice(&done).map_err(|e| DiskImageError::NotAnImage {
            path: path.into(),
            detail: format!("qemu-img info gave no JSON: {e}"),
        })?;
    let format = json["format"].as_str().unwrap_or("").to_string();
    if !FORMATS.contains(&format.as_str()) {
        return Err(DiskImageError::NotAnImage {
            path: path.into(),
            detail: format!("a {format} file: give a qcow2 or raw disk image (qemu-img convert -O qcow2 it first)"),
        });
    }
    Ok(Info {
        format,
        virtual_size: json["virtual-size"].as_u64().unwrap_or(0),
        backing: json["backing-filename"].as_str().map(String::from),
    })
}

/// The first 34 sectors of the disk as the guest sees them (the MBR, the GPT header and its
/// entries), whatever the file's format, through `qemu-img dd` into `scratch`.
pub fn first_sectors(
    qemu_img: &Path,
    path: &Path,
    format: &str,
    scratch: &Path,
    limit: Duration,
) -> Result<Vec<u8>, DiskImageError> {
    let out = scratch.join("first-sectors.raw");
    let mut command = Command::new(qemu_img);
    command
        .args(["dd", "-U", "-f", format, "-O", "raw", "bs=512", "count=34"])
        .arg(format!("if={}", path.display()))
        .arg(format!("of={}", out.display()));
    run(&mut command, limit)?;
    std::fs::read(&out).map_err(|e| DiskImageError::Io {
        path: out,
        detail: e.to_string(),
    })
}

/// GPT partition type GUIDs, as their on-disk (mixed-endian) bytes.
const ESP: [u8; 16] = guid(
    0xC12A7328,
    0xF81F,
    0x11D2,
    [0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B],
);
const BIOS_BOOT: [u8; 16] = guid(
    0x21686148,
    0x6449,
    0x6E6F,
    [0x74, 0x4E, 0x65, 0x65, 0x64, 0x45, 0x46, 0x49],
);

const fn guid(a: u32, b: u16, c: u16, d: [u8; 8]) -> [u8; 16] {
    let a = a.to_le_bytes();
    let b = b.to_le_bytes();
    let c = c.to_le_bytes();
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6],
        d[7],
    ]
}

/// How the first sectors say the disk boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootLook {
    /// A GPT with an EFI system partition.
    pub esp: bool,
    /// A GPT with a BIOS boot partition (GRUB's i386-pc core image).
    pub bios_boot: bool,
    /// An MBR (or a GPT's protective MBR) with boot code in its first bytes.
    pub mbr_code: bool,
    pub gpt: bool,
}

impl BootLook {
    /// The firmware the disk boots with, when it says: UEFI for an ESP without a BIOS boot
    /// partition, BIOS otherwise.
    pub fn firmware(&self) -> Firmware {
        // An MBR disk with boot code boots under BIOS even when it has an EFI partition.
        if self.esp && !self.bios_boot && (self.gpt || !self.mbr_code) {
            Firmware::Uefi
        } else {
            Firmware::Bios
        }
    }

    /// Why `firmware` cannot boot this disk, if it cannot.
    pub fn refuses(&self, firmware: Firmware) -> Option<String> {
        match firmware {
            Firmware::Uefi if !self.esp => Some("UEFI boots from an EFI system partition and this disk has none (set `firmware: bios`, or --firmware bios)".into()),
            Firmware::Bios if !self.mbr_code => Some(if self.esp {
                "its first sector has no boot code for BIOS, but it has an EFI system partition: boot it with `firmware: uefi` (--firmware uefi)".into()
            } else {
                "its first sector has no boot code for BIOS and there is no EFI system partition".into()
            }),
            _ => None,
        }
    }
}

/// Looks at the first sectors: the MBR's signature and code, the GPT's partition types.
pub fn look(sectors: &[u8]) -> Result<BootLook, String> {
    if sectors.len() < 512 {
        return Err(format!(
            "it is {} bytes long: smaller than one sector",
            sectors.len()
        ));
    }
    if sectors[510..512] != [0x55, 0xAA] {
        return Err("its first sector has no boot signature (0x55AA): it holds no partition table and no boot loader".into());
    }
    let mbr_code = sectors[..440].iter().any(|&b| b != 0);
    let mut found = BootLook {
        esp: false,
        bios_boot: false,
        mbr_code,
        gpt: false,
    };
    let header = sectors.get(512..1024);
    if let Some(header) = header.filter(|h| &h[..8] == b"EFI PART") {
        found.gpt = true;
        let u32_at =
            |o: usize| u32::from_le_bytes([header[o], header[o + 1], header[o + 2], header[o + 3]]);
        let start = u64::from_le_bytes(header[72..80].try_into().unwrap_or([0; 8])) as usize * 512;
        let count = u32_at(80) as usize;
        let size = u32_at(84) as usize;
        if size >= 16 {
            for i in 0..count.min(128) {
                let at = start + i * size;
                let Some(entry) = sectors.get(at..at + 16) else {
                    break;
                };
                if entry == ESP {
                    found.esp = true;
                }
                if entry == BIOS_BOOT {
                    found.bios_boot = true;
                }
            }
        }
    } else {
        // An MBR's own EFI partition (type 0xEF).
        found.esp = (0..4).any(|i| sectors[446 + i * 16 + 4] == 0xEF);
    }
    Ok(found)
}

/// Hex sha256 of the operator's file.
pub fn sha256(path: &Path) -> Result<String, DiskImageError> {
    crate::fetch::kernel::sha256_file(path).map_err(|e| DiskImageError::Io {
        path: path.into(),
        detail: e.to_string(),
    })
}

/// A recipe's `url:` in the cache (`disks/<sha256>.img`), downloaded once with curl under
/// `limit` and checked against `sha256`.
pub fn download(
    url: &str,
    sha256_hex: &str,
    cache: &Path,
    limit: Duration,
) -> Result<PathBuf, DiskImageError> {
    let dir = cache.join("disks");
    let target = dir.join(format!("{sha256_hex}.img"));
    if target.is_file() {
        return Ok(target);
    }
    std::fs::create_dir_all(&dir).map_err(|e| DiskImageError::Io {
        path: dir.clone(),
        detail: e.to_string(),
    })?;
    let part = dir.join(format!("{sha256_hex}.part"));
    let mut command = Command::new("curl");
    command
        .args([
            "--fail",
            "--location",
            "--silent",
            "--show-error",
            "--output",
        ])
        .arg(&part)
        .arg(url);
    run(&mut command, limit).map_err(|e| DiskImageError::Download {
        url: url.into(),
        detail: e.to_string(),
    })?;
    let got = sha256(&part)?;
    if got != sha256_hex {
        let _ = std::fs::remove_file(&part);
        return Err(DiskImageError::Download {
            url: url.into(),
            detail: format!("its sha256 is {got}, the recipe says {sha256_hex}: the server sent another file; check the recipe"),
        });
    }
    std::fs::rename(&part, &target).map_err(|e| DiskImageError::Io {
        path: target.clone(),
        detail: e.to_string(),
    })?;
    Ok(target)
}

/// The NoCloud seed (an ISO 9660 labelled `cidata`, by `cloud-localds`) holding kdrill's unit.
pub fn seed(dir: &Path, instance: &str, limit: Duration) -> Result<PathBuf, DiskImageError> {
    let io = |path: &Path, e: std::io::Error| DiskImageError::Io {
        path: path.into(),
        detail: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let user = dir.join("user-data");
    let meta = dir.join("meta-data");
    std::fs::write(&user, crate::guest::agent::cloud_config()).map_err(|e| io(&user, e))?;
    std::fs::write(&meta, crate::guest::agent::meta_data(instance)).map_err(|e| io(&meta, e))?;
    let out = dir.join("seed.img");
    let mut command = Command::new("cloud-localds");
    command.arg(&out).arg(&user).arg(&meta);
    run(&mut command, limit)?;
    Ok(out)
}

/// Writes kdrill's unit into `overlay` (qcow2) with `virt-customize`, enabled for
/// multi-user.target; the overlay's backing file is only read.
pub fn inject(
    guestfs: &crate::guest::guestfs::Guestfs,
    overlay: &Path,
    scratch: &Path,
    limit: Duration,
) -> Result<(), DiskImageError> {
    use crate::guest::agent::{UNIT_PATH, UNIT_WANTS};
    let unit = scratch.join("kdrill-agent.service");
    std::fs::write(&unit, crate::guest::agent::unit()).map_err(|e| DiskImageError::Io {
        path: unit.clone(),
        detail: e.to_string(),
    })?;
    let mut command = guestfs.command("virt-customize");
    command
        .args(["--format", "qcow2", "--no-network", "--smp", "2", "-a"])
        .arg(overlay)
        .arg("--upload")
        .arg(format!("{}:{UNIT_PATH}", unit.display()))
        .arg("--link")
        .arg(format!("{UNIT_PATH}:{UNIT_WANTS}"));
    run(&mut command, limit)?;
    Ok(())
}

/// Runs `command` under `limit`; its stdout, or what failed.
fn run(command: &mut Command, limit: Duration) -> Result<Vec<u8>, DiskImageError> {
    let line = process::describe(command);
    let done = process::run(command, limit).map_err(|e| DiskImageError::Tool {
        command: line.clone(),
        detail: e.to_string(),
    })?;
    if !done.status.success() {
        return Err(DiskImageError::Tool {
            command: line,
            detail: format!("{}: {}", done.status, done.last_line()),
        });
    }
    Ok(done.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A disk's first 34 sectors: a protective MBR and a GPT with partitions of `types`.
    fn gpt(types: &[[u8; 16]], code: bool) -> Vec<u8> {
        let mut d = vec![0u8; 34 * 512];
        if code {
            d[0] = 0xEB;
        }
        d[446 + 4] = 0xEE;
        d[510] = 0x55;
        d[511] = 0xAA;
        d[512..520].copy_from_slice(b"EFI PART");
        d[512 + 72..512 + 80].copy_from_slice(&2u64.to_le_bytes());
        d[512 + 80..512 + 84].copy_from_slice(&128u32.to_le_bytes());
        d[512 + 84..512 + 88].copy_from_slice(&128u32.to_le_bytes());
        for (i, t) in types.iter().enumerate() {
            let at = 1024 + i * 128;
            d[at..at + 16].copy_from_slice(t);
        }
        d
    }

    #[test]
    fn a_bios_gpt_disk_with_grub_boots_under_seabios() {
        let lvm = guid(
            0xE6D6D379,
            0xF507,
            0x44C2,
            [0xA2, 0x3C, 0x23, 0x8F, 0x2A, 0x3D, 0xF9, 0x28],
        );
        let look = look(&gpt(&[BIOS_BOOT, lvm], true)).unwrap();
        assert!(look.gpt && look.bios_boot && !look.esp && look.mbr_code);
        assert_eq!(look.firmware(), Firmware::Bios);
        assert_eq!(look.refuses(Firmware::Bios), None);
        let uefi = look.refuses(Firmware::Uefi).unwrap();
        assert!(uefi.contains("this disk has none"), "{uefi}");
    }

    #[test]
    fn an_esp_only_disk_boots_under_ovmf() {
        let linux = guid(
            0x0FC63DAF,
            0x8483,
            0x4772,
            [0x8E, 0x79, 0x3D, 0x69, 0xD8, 0x47, 0x7D, 0xE4],
        );
        let look = look(&gpt(&[ESP, linux], false)).unwrap();
        assert_eq!(look.firmware(), Firmware::Uefi);
        assert_eq!(look.refuses(Firmware::Uefi), None);
        assert!(look
            .refuses(Firmware::Bios)
            .unwrap()
            .contains("firmware: uefi"));
    }

    /// A recipe's `url:` is fetched once into the cache and checked; curl reads `file://` too.
    #[test]
    fn a_download_is_checked_against_its_sha256_and_kept_once() {
        let dir = tempfile::tempdir().unwrap();
        let served = dir.path().join("golden.qcow2");
        std::fs::write(&served, b"a disk image's bytes").unwrap();
        let sum = sha256(&served).unwrap();
        let url = format!("file://{}", served.display());
        let cache = dir.path().join("cache");
        let limit = Duration::from_secs(60);
        let got = download(&url, &sum, &cache, limit).unwrap();
        assert_eq!(got, cache.join(format!("disks/{sum}.img")));
        assert_eq!(std::fs::read(&got).unwrap(), b"a disk image's bytes");
        // Kept: a second call does not fetch (the source may be gone).
        std::fs::remove_file(&served).unwrap();
        assert_eq!(download(&url, &sum, &cache, limit).unwrap(), got);
        // Another file under the recipe's sha256 is refused, and nothing is kept.
        std::fs::write(&served, b"another file").unwrap();
        let wrong = "0".repeat(64);
        let err = download(&url, &wrong, &cache, limit)
            .unwrap_err()
            .to_string();
        assert!(err.contains("the server sent another file"), "{err}");
        assert!(!cache.join(format!("disks/{wrong}.img")).exists());
        assert!(!cache.join(format!("disks/{wrong}.part")).exists());
        // A URL that serves nothing says so.
        let gone = format!("file://{}/nothing.qcow2", dir.path().display());
        assert!(download(&gone, &wrong, &cache, limit).is_err());
    }

    #[test]
    fn a_file_that_is_not_a_disk_is_named_so() {
        let err = look(b"#!/bin/sh\necho hello\n").unwrap_err();
        assert!(err.contains("smaller than one sector"), "{err}");
        let err = look(&vec![0u8; 34 * 512]).unwrap_err();
        assert!(err.contains("no boot signature"), "{err}");
        // An MBR disk with no boot code: BIOS has nothing to run.
        let mut blank = vec![0u8; 512];
        blank[510] = 0x55;
        blank[511] = 0xAA;
        let look = look(&blank).unwrap();
        assert!(look
            .refuses(Firmware::Bios)
            .unwrap()
            .contains("no boot code"));
    }
}
