//! The kernel log of a dump, read by kdrill's own reader (`kdrill-vmcore`), and the cross-check:
//! makedumpfile must read the very same bytes.

use std::path::Path;

use crate::case::error::CaseError;
use crate::dumpcheck::makedumpfile;

/// Reads the kernel log out of a dump with kdrill's own reader into `out` and returns it.
pub fn read_native(vmcore: &Path, out: &Path) -> Result<String, String> {
    let dump = kdrill_vmcore::Vmcore::open(vmcore)
        .map_err(|e| format!("kdrill cannot open the dump: {e}"))?;
    let records = dump
        .dmesg_records()
        .map_err(|e| format!("kdrill cannot read the dump's kernel log: {e}"))?;
    let text = kdrill_vmcore::format_dmesg(&records);
    std::fs::write(out, &text).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    Ok(text)
}

/// [`read_native`], then makedumpfile reads it too (into `<out>.makedumpfile.txt`); the two
/// texts must be byte-identical.
pub fn read_cross_checked(vmcore: &Path, out: &Path) -> Result<String, CaseError> {
    let text = read_native(vmcore, out).map_err(CaseError::Dump)?;
    let theirs_path = out.with_extension("makedumpfile.txt");
    let theirs = makedumpfile::dmesg(vmcore, &theirs_path).map_err(CaseError::Dump)?;
    match first_difference(&theirs, text.as_bytes()) {
        None => Ok(text),
        Some(at) => Err(CaseError::LogMismatch {
            at,
            ours: out.display().to_string(),
            theirs: theirs_path.display().to_string(),
        }),
    }
}

/// The offset of the first byte where `a` and `b` differ (a length difference counts).
fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    if a == b {
        return None;
    }
    Some(
        a.iter()
            .zip(b)
            .position(|(x, y)| x != y)
            .unwrap_or(a.len().min(b.len())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_are_located() {
        assert_eq!(first_difference(b"abc", b"abc"), None);
        assert_eq!(first_difference(b"abc", b"abd"), Some(2));
        assert_eq!(first_difference(b"abc", b"abcd"), Some(3));
        assert_eq!(first_difference(b"", b"x"), Some(0));
    }
}
