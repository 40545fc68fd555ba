//! Reading ELF files (pure, over bytes): what a program needs to run (its interpreter, libraries
//! and the newest glibc symbol version it calls), and a kernel module's `.modinfo` fields.

/// What a host ELF program needs to run: its interpreter and `DT_NEEDED` libraries.
pub fn elf_needs(data: &[u8]) -> Result<(Option<String>, Vec<String>), String> {
    use object::elf::{FileHeader64, DT_NEEDED, PT_INTERP};
    use object::read::elf::{Dyn, FileHeader, ProgramHeader};
    use object::Endianness;
    let header = FileHeader64::<Endianness>::parse(data)
        .map_err(|e| format!("not a 64-bit ELF file: {e}"))?;
    let endian = header.endian().map_err(|e| e.to_string())?;
    let mut interp = None;
    for segment in header
        .program_headers(endian, data)
        .map_err(|e| e.to_string())?
    {
        if segment.p_type(endian) == PT_INTERP {
            let bytes = segment
                .data(endian, data)
                .map_err(|_| "bad PT_INTERP".to_string())?;
            interp = Some(
                String::from_utf8_lossy(bytes)
                    .trim_end_matches('\0')
                    .to_string(),
            );
        }
    }
    let mut needed = Vec::new();
    let sections = header.sections(endian, data).map_err(|e| e.to_string())?;
    for section in sections.iter() {
        if let Some((entries, link)) =
            object::read::elf::SectionHeader::dynamic(section, endian, data)
                .map_err(|e| e.to_string())?
        {
            let strings = sections
                .strings(endian, data, link)
                .map_err(|e| e.to_string())?;
            for entry in entries {
                if entry.tag32(endian) == Some(DT_NEEDED) {
                    let name = entry.string(endian, strings).map_err(|e| e.to_string())?;
                    needed.push(String::from_utf8_lossy(name).into_owned());
                }
            }
        }
    }
    Ok((interp, needed))
}

/// The first `<key>=` value of a module's `.modinfo` section, e.g. `vermagic` (`None` when absent).
pub fn modinfo_field(elf: &[u8], key: &str) -> Result<Option<String>, String> {
    let prefix = format!("{key}=");
    Ok(modinfo_section(elf)?
        .split(|b| *b == 0)
        .find_map(|field| field.strip_prefix(prefix.as_bytes()))
        .map(|value| String::from_utf8_lossy(value).into_owned()))
}

/// The `.modinfo` section: NUL-terminated `key=value` strings.
pub fn modinfo_section(elf: &[u8]) -> Result<&[u8], String> {
    use object::{Object, ObjectSection};
    let file = object::File::parse(elf).map_err(|e| format!("not an ELF module: {e}"))?;
    let section = file
        .section_by_name(".modinfo")
        .ok_or("no .modinfo section")?;
    section
        .data()
        .map_err(|e| format!("bad .modinfo section: {e}"))
}

/// The newest `GLIBC_x.y` symbol version a 64-bit ELF program needs (its `.gnu.version_r`), as
/// `[x, y]`; `None` when it needs none (a static program). Run on a glibc older than this, it
/// fails to start with "version `GLIBC_x.y' not found".
pub fn glibc_ceiling(data: &[u8]) -> Result<Option<[u32; 2]>, String> {
    use object::elf::FileHeader64;
    use object::read::elf::FileHeader;
    use object::Endianness;
    let header = FileHeader64::<Endianness>::parse(data)
        .map_err(|e| format!("not a 64-bit ELF file: {e}"))?;
    let endian = header.endian().map_err(|e| e.to_string())?;
    let sections = header.sections(endian, data).map_err(|e| e.to_string())?;
    let Some((mut needs, link)) = sections
        .gnu_verneed(endian, data)
        .map_err(|e| format!("bad .gnu.version_r: {e}"))?
    else {
        return Ok(None);
    };
    let strings = sections
        .strings(endian, data, link)
        .map_err(|e| format!("bad .gnu.version_r strings: {e}"))?;
    let mut newest = None;
    while let Some((_, mut auxes)) = needs.next().map_err(|e| e.to_string())? {
        while let Some(aux) = auxes.next().map_err(|e| e.to_string())? {
            let name = aux.name(endian, strings).map_err(|e| e.to_string())?;
            if let Some(version) = glibc_version(&String::from_utf8_lossy(name)) {
                newest = newest.max(Some(version));
            }
        }
    }
    Ok(newest)
}

/// `[2, 34]` of `GLIBC_2.34`, `[2, 2]` of `GLIBC_2.2.5` (a third number never raises the bar
/// past its `x.y`); `None` for other version names (`GLIBC_PRIVATE`, `GCC_3.0`).
fn glibc_version(name: &str) -> Option<[u32; 2]> {
    let mut parts = name.strip_prefix("GLIBC_")?.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some([major, minor])
}

#[cfg(test)]
pub(crate) mod tests_support {
    /// A minimal relocatable ELF with one section, for tests.
    pub fn elf_with_section(name: &str, data: &[u8]) -> Vec<u8> {
        use object::write::Object;
        use object::{Architecture, BinaryFormat, Endianness, SectionKind};
        let mut obj = Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
        let id = obj.add_section(Vec::new(), name.as_bytes().to_vec(), SectionKind::Other);
        obj.append_section_data(id, data, 1);
        obj.write().unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::elf_with_section;
    use super::*;

    #[test]
    fn host_shell_needs_libc_and_the_loader() {
        // /bin/sh on Debian is dynamically linked dash: it needs libc and ld-linux.
        let data = std::fs::read("/bin/sh")
            .or_else(|_| std::fs::read("/usr/bin/dash"))
            .unwrap();
        let (interp, needed) = elf_needs(&data).unwrap();
        assert_eq!(interp.as_deref(), Some("/lib64/ld-linux-x86-64.so.2"));
        assert!(needed.iter().any(|n| n == "libc.so.6"), "{needed:?}");
    }

    #[test]
    fn glibc_versions_are_read_and_compared_as_numbers() {
        assert_eq!(glibc_version("GLIBC_2.34"), Some([2, 34]));
        assert_eq!(glibc_version("GLIBC_2.2.5"), Some([2, 2]));
        assert_eq!(glibc_version("GLIBC_PRIVATE"), None);
        assert_eq!(glibc_version("GCC_3.0"), None);
        assert!(Some([2, 9]) < Some([2, 34]), "2.9 is older than 2.34");
        // Debian's dash needs some GLIBC_2.x; the relocatable test ELF needs none.
        let dash = std::fs::read("/bin/sh").unwrap();
        let ceiling = glibc_ceiling(&dash).unwrap().expect("dash needs glibc");
        assert_eq!(ceiling[0], 2);
        assert_eq!(glibc_ceiling(&elf_with_section(".x", b"")).unwrap(), None);
        assert!(glibc_ceiling(b"#!/bin/sh\n").is_err());
    }

    #[test]
    fn elf_needs_refuses_non_elf() {
        assert!(elf_needs(b"#!/bin/sh\n").is_err());
    }

    #[test]
    fn modinfo_field_reads_one_value() {
        let elf = elf_with_section(
            ".modinfo",
            b"license=GPL\0vermagic=6.1.0-47-amd64 SMP preempt mod_unload modversions \0name=crasher\0",
        );
        assert_eq!(
            modinfo_field(&elf, "vermagic").unwrap().as_deref(),
            Some("6.1.0-47-amd64 SMP preempt mod_unload modversions ")
        );
        assert_eq!(
            modinfo_field(&elf, "name").unwrap().as_deref(),
            Some("crasher")
        );
        assert_eq!(modinfo_field(&elf, "author").unwrap(), None);
        // `name=` must not match a key that merely ends in `name`.
        let other = elf_with_section(".modinfo", b"srcname=x\0");
        assert_eq!(modinfo_field(&other, "name").unwrap(), None);
    }
}
