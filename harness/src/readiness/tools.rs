//! Check 11: `kexec`, `makedumpfile` and `crash` are installed, and the running kernel's vmlinux with DWARF is there.

use std::io::{Read, Seek, SeekFrom};

use crate::readiness::snapshot;
use crate::readiness::{check, Check, Context, Status};

const WHY: &str = "kexec loads the capture kernel and makedumpfile writes the dump; crash and the kernel's debuginfo are what turn a dump into an answer";

/// Most section headers read from a vmlinux (a real one has about 100).
const MAX_SECTIONS: u64 = 4096;

/// Check 11.
pub fn present(cx: &Context) -> Check {
    let snap = cx.snap;
    let found = |tool: &str| snap.tools.get(tool).cloned().flatten();
    let missing: Vec<&str> = snapshot::TOOLS
        .iter()
        .copied()
        .filter(|t| found(t).is_none())
        .collect();
    if !snap.has_usr && missing.len() == snapshot::TOOLS.len() {
        return check(
            11,
            Status::Skip,
            "the captured tree has no /usr: tools and debuginfo cannot be checked offline",
            WHY,
        )
        .fix("check `command -v kexec makedumpfile crash` on the host");
    }
    let mut details: Vec<String> = snapshot::TOOLS
        .iter()
        .map(|t| match found(t) {
            Some(path) => format!("{t}: {path}"),
            None => format!("{t}: not found in {}", snapshot::TOOL_DIRS.join(", ")),
        })
        .collect();
    let mut parts: Vec<(Status, String)> = Vec::new();
    let mut packages: Vec<(&str, &str, &str)> = Vec::new();
    for tool in ["kexec", "makedumpfile"] {
        if found(tool).is_none() {
            parts.push((Status::Fail, format!("{tool} missing")));
            packages.push(if tool == "kexec" {
                ("kexec-tools", "kexec-tools", "kexec-tools")
            } else {
                ("makedumpfile", "makedumpfile", "makedumpfile")
            });
        }
    }
    if found("crash").is_none() {
        parts.push((
            Status::Warn,
            "crash missing (needed to analyse a dump)".to_string(),
        ));
        packages.push(("crash", "crash", "crash"));
    }
    let mut fixes = Vec::new();
    if !packages.is_empty() {
        let debian: Vec<&str> = packages.iter().map(|p| p.0).collect();
        let rhel: Vec<&str> = packages.iter().map(|p| p.1).collect();
        let suse: Vec<&str> = packages.iter().map(|p| p.2).collect();
        fixes.push(
            cx.family
                .install(&debian.join(" "), &rhel.join(" "), &suse.join(" ")),
        );
    }
    let good = snap
        .debuginfo
        .iter()
        .find(|(_, verdict)| verdict == &Ok(true));
    match (good, snap.release.as_deref()) {
        (Some((path, _)), _) => details.push(format!("debuginfo: {path}")),
        (None, Ok(release)) => {
            for (path, verdict) in &snap.debuginfo {
                match verdict {
                    Ok(_) => details.push(format!("{path} has no .debug_info (stripped)")),
                    Err(problem) => details.push(format!("{path}: {problem}")),
                }
            }
            details.push(format!(
                "debuginfo looked for: {}",
                snapshot::debuginfo_candidates(release).join(", ")
            ));
            parts.push((Status::Warn, format!("no vmlinux with DWARF for {release}")));
            // A package named after a kernel the distribution did not build cannot exist.
            let get = match cx.shipped() {
                Some(false) => format!(
                    "this kernel was not built by {}, so no package has its debug symbols: keep the vmlinux of its build (with CONFIG_DEBUG_INFO) as /usr/lib/debug/boot/vmlinux-{release}",
                    cx.family.name()
                ),
                _ => cx.family.debuginfo_install(release),
            };
            fixes.push(format!(
                "{get} (without it `crash` cannot open the dump, and makedumpfile relies on VMCOREINFO alone; older setups are limited to -d 1)"
            ));
        }
        (None, Err(_)) => parts.push((
            Status::Skip,
            "kernel release unknown: debuginfo not looked for".to_string(),
        )),
    }
    let status = parts.iter().map(|(s, _)| *s).max().unwrap_or(Status::Pass);
    let seen = if parts.is_empty() {
        "kexec, makedumpfile, crash and debuginfo present".to_string()
    } else {
        super::joined(&parts)
    };
    check(11, status, seen, WHY)
        .details(details)
        .fix(fixes.join("\n"))
}

/// Whether an ELF file has a `.debug_info` section (reads only the headers and the section-name table).
pub fn has_debug_info<R: Read + Seek>(file: &mut R) -> Result<bool, String> {
    let mut ident = Vec::with_capacity(64);
    file.by_ref()
        .take(64)
        .read_to_end(&mut ident)
        .map_err(|e| e.to_string())?;
    if !ident.starts_with(b"\x7fELF") {
        return Err("not an ELF file".to_string());
    }
    if ident.len() < 64 {
        return Err("too short for an ELF header".to_string());
    }
    let (class64, little) = (ident[4] == 2, ident[5] == 1);
    if !class64 {
        return Err("not a 64-bit ELF file".to_string());
    }
    let u16_at = |b: &[u8], o: usize| {
        if little {
            u16::from_le_bytes([b[o], b[o + 1]])
        } else {
            u16::from_be_bytes([b[o], b[o + 1]])
        }
    };
    let u32_at = |b: &[u8], o: usize| {
        let a = [b[o], b[o + 1], b[o + 2], b[o + 3]];
        if little {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let u64_at = |b: &[u8], o: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[o..o + 8]);
        if little {
            u64::from_le_bytes(a)
        } else {
            u64::from_be_bytes(a)
        }
    };
    let shoff = u64_at(&ident, 0x28);
    let shentsize = u64::from(u16_at(&ident, 0x3a));
    let shnum = u64::from(u16_at(&ident, 0x3c));
    let shstrndx = u64::from(u16_at(&ident, 0x3e));
    if shnum == 0 || shnum > MAX_SECTIONS || !(64..=256).contains(&shentsize) || shstrndx >= shnum {
        return Err("no usable section header table".to_string());
    }
    let mut table = vec![0u8; (shnum * shentsize) as usize];
    file.seek(SeekFrom::Start(shoff))
        .map_err(|e| e.to_string())?;
    file.read_exact(&mut table)
        .map_err(|_| "section headers cut short".to_string())?;
    let header = |i: u64| &table[(i * shentsize) as usize..((i + 1) * shentsize) as usize];
    let strtab = header(shstrndx);
    let (str_off, str_size) = (u64_at(strtab, 0x18), u64_at(strtab, 0x20).min(1 << 20));
    let mut names = vec![0u8; str_size as usize];
    file.seek(SeekFrom::Start(str_off))
        .map_err(|e| e.to_string())?;
    file.read_exact(&mut names)
        .map_err(|_| "section names cut short".to_string())?;
    Ok((0..shnum).any(|i| {
        let name = u32_at(header(i), 0) as usize;
        names
            .get(name..)
            .is_some_and(|rest| rest.starts_with(b".debug_info\0"))
    }))
}

/// A minimal little-endian ELF64 file with the named sections (no contents).
#[cfg(test)]
pub fn tiny_elf(sections: &[&str]) -> Vec<u8> {
    let mut names = vec![0u8];
    let mut offsets = Vec::new();
    for name in sections.iter().chain(std::iter::once(&".shstrtab")) {
        offsets.push(names.len() as u32);
        names.extend_from_slice(name.as_bytes());
        names.push(0);
    }
    let shnum = offsets.len() as u64 + 1;
    let names_at = 64u64;
    let shoff = names_at + names.len() as u64;
    let mut out = vec![0u8; 64];
    out[..4].copy_from_slice(b"\x7fELF");
    out[4] = 2;
    out[5] = 1;
    out[6] = 1;
    out[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
    out[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
    out[0x3c..0x3e].copy_from_slice(&(shnum as u16).to_le_bytes());
    out[0x3e..0x40].copy_from_slice(&((shnum - 1) as u16).to_le_bytes());
    out.extend_from_slice(&names);
    out.extend_from_slice(&[0u8; 64]);
    for (i, offset) in offsets.iter().enumerate() {
        let mut header = [0u8; 64];
        header[..4].copy_from_slice(&offset.to_le_bytes());
        if i == offsets.len() - 1 {
            header[4..8].copy_from_slice(&3u32.to_le_bytes());
            header[0x18..0x20].copy_from_slice(&names_at.to_le_bytes());
            header[0x20..0x28].copy_from_slice(&(names.len() as u64).to_le_bytes());
        }
        out.extend_from_slice(&header);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn debug_info_detection() {
        assert_eq!(
            has_debug_info(&mut Cursor::new(tiny_elf(&[".text", ".debug_info"]))),
            Ok(true)
        );
        assert_eq!(
            has_debug_info(&mut Cursor::new(tiny_elf(&[".text", ".debug_infox"]))),
            Ok(false)
        );
        assert_eq!(
            has_debug_info(&mut Cursor::new(b"#!/bin/sh\n".repeat(10))),
            Err("not an ELF file".to_string())
        );
        assert!(has_debug_info(&mut Cursor::new(b"\x7fELF".to_vec())).is_err());
        let mut cut = tiny_elf(&[".debug_info"]);
        cut.truncate(cut.len() - 10);
        assert!(has_debug_info(&mut Cursor::new(cut)).is_err());
    }
}
