//! VMCOREINFO: the `KEY=value` lines the kernel leaves for dump readers.
//!
//! Formats are the kernel's (`include/linux/crash_core.h`): `SYMBOL(x)=%lx`,
//! `SIZE(x)=%lu`, `OFFSET(s.m)=%lu`, `LENGTH(x)=%lu`, `NUMBER(x)=%ld`,
//! `KERNELOFFSET=%lx`, `PAGESIZE=%ld`, `CRASHTIME=%lld`, `OSRELEASE=%s`.

use std::collections::HashMap;

use crate::error::{Error, Result};

/// The kernel's VMCOREINFO is at most a page (`VMCOREINFO_BYTES`), so at most 64 KiB.
pub(crate) const MAX_BYTES: u64 = 65536;

/// Parses a dump's VMCOREINFO after checking it is no longer than a kernel writes
/// (the parse keeps every line, so a long one would cost far more than its bytes).
pub(crate) fn parse_checked(text: &[u8]) -> Result<VmcoreInfo> {
    let len = text.iter().position(|&b| b == 0).unwrap_or(text.len()) as u64;
    if len > MAX_BYTES {
        return Err(Error::Corrupt(format!(
            "VMCOREINFO is {len} bytes, but a kernel's is at most a page (64 KiB)"
        )));
    }
    Ok(VmcoreInfo::parse(text))
}

/// Parsed VMCOREINFO, keeping every line so new keys need no code.
#[derive(Debug, Clone, Default)]
pub struct VmcoreInfo {
    entries: HashMap<String, String>,
}

impl VmcoreInfo {
    /// Parses the note text; lines without `=` and NUL padding are ignored.
    pub fn parse(text: &[u8]) -> VmcoreInfo {
        let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
        let text = String::from_utf8_lossy(&text[..end]);
        let entries = text
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        VmcoreInfo { entries }
    }

    /// The raw value of `key` (for example `OSRELEASE`).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    pub fn osrelease(&self) -> Option<&str> {
        self.get("OSRELEASE")
    }

    pub fn page_size(&self) -> Option<u64> {
        self.get("PAGESIZE")?.parse().ok()
    }

    /// `PAGESIZE`, if present, checked against what a kernel can have.
    pub(crate) fn checked_page_size(&self) -> Result<Option<u64>> {
        let Some(v) = self.get("PAGESIZE") else {
            return Ok(None);
        };
        match v.parse::<u64>() {
            Ok(n) if n.is_power_of_two() && crate::diskdump::PAGE_SIZES.contains(&n) => Ok(Some(n)),
            _ => Err(Error::Corrupt(format!(
                "VMCOREINFO gives PAGESIZE={v}, but a page is a power of two from 4096 to 65536 bytes"
            ))),
        }
    }

    pub fn crash_time(&self) -> Option<i64> {
        self.get("CRASHTIME")?.parse().ok()
    }

    pub fn kernel_offset(&self) -> Option<u64> {
        u64::from_str_radix(self.get("KERNELOFFSET")?, 16).ok()
    }

    /// `SYMBOL(name)`: a kernel virtual address.
    pub fn symbol(&self, name: &str) -> Option<u64> {
        u64::from_str_radix(self.get(&format!("SYMBOL({name})"))?, 16).ok()
    }

    /// `SIZE(name)`: a structure size in bytes.
    pub fn size(&self, name: &str) -> Option<u64> {
        self.get(&format!("SIZE({name})"))?.parse().ok()
    }

    /// `OFFSET(struct.member)`: a member offset in bytes.
    pub fn offset(&self, member: &str) -> Option<u64> {
        self.get(&format!("OFFSET({member})"))?.parse().ok()
    }

    /// `NUMBER(name)`: a signed constant, returned as its 64-bit pattern.
    pub fn number(&self, name: &str) -> Option<u64> {
        let v = self.get(&format!("NUMBER({name})"))?;
        v.parse::<i64>()
            .map(|n| n as u64)
            .or_else(|_| v.parse::<u64>())
            .ok()
    }

    pub(crate) fn need_symbol(&self, name: &str) -> Result<u64> {
        self.symbol(name)
            .ok_or_else(|| Error::MissingVmcoreinfo(format!("SYMBOL({name})")))
    }

    pub(crate) fn need_size(&self, name: &str) -> Result<u64> {
        self.size(name)
            .ok_or_else(|| Error::MissingVmcoreinfo(format!("SIZE({name})")))
    }

    pub(crate) fn need_offset(&self, member: &str) -> Result<u64> {
        self.offset(member)
            .ok_or_else(|| Error::MissingVmcoreinfo(format!("OFFSET({member})")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_kernel_formats() {
        let info = VmcoreInfo::parse(
            b"OSRELEASE=6.1.0-47-amd64\nPAGESIZE=4096\nSYMBOL(prb)=ffffffff82a5b5a0\n\
              SIZE(printk_info)=88\nOFFSET(printk_info.ts_nsec)=8\nNUMBER(phys_base)=-2\n\
              NUMBER(pgtable_l5_enabled)=1\nKERNELOFFSET=1000000\nCRASHTIME=1764170000\n\0\0\0",
        );
        assert_eq!(info.osrelease(), Some("6.1.0-47-amd64"));
        assert_eq!(info.page_size(), Some(4096));
        assert_eq!(info.symbol("prb"), Some(0xffff_ffff_82a5_b5a0));
        assert_eq!(info.size("printk_info"), Some(88));
        assert_eq!(info.offset("printk_info.ts_nsec"), Some(8));
        assert_eq!(info.number("phys_base"), Some(-2i64 as u64));
        assert_eq!(info.number("pgtable_l5_enabled"), Some(1));
        assert_eq!(info.kernel_offset(), Some(0x100_0000));
        assert_eq!(info.crash_time(), Some(1_764_170_000));
        assert!(info.symbol("log_buf").is_none());
        assert!(matches!(
            info.need_offset("printk_info.seq"),
            Err(Error::MissingVmcoreinfo(k)) if k == "OFFSET(printk_info.seq)"
        ));
    }

    #[test]
    fn a_vmcoreinfo_longer_than_a_page_is_refused() {
        let long = "A=1\n".repeat(20_000);
        let err = parse_checked(long.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("at most a page"), "{err}");
        assert!(parse_checked(b"PAGESIZE=4096\n\0\0").is_ok());
    }
}
