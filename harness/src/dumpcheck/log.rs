//! The kernel log of a dump, read by kdrill's own reader (`kdrill-vmcore`), and the cross-check:
//! makedumpfile must read the very same bytes, in the format its release writes.

use std::path::Path;

use kdrill_vmcore::LogRecord;

use crate::dumpcheck::dmesgformat;
use crate::dumpcheck::makedumpfile::{self, Reader};
use crate::dumpcheck::DumpError;
use crate::spec::userspace::DmesgFormat;

/// Reads the kernel log out of a dump with kdrill's own reader into `out` and returns it.
pub fn read_native(vmcore: &Path, out: &Path) -> Result<String, String> {
    let records = records(vmcore)?;
    let text = kdrill_vmcore::format_dmesg(&records);
    std::fs::write(out, &text).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    Ok(text)
}

fn records(vmcore: &Path) -> Result<Vec<LogRecord>, String> {
    let dump = kdrill_vmcore::Vmcore::open(vmcore)
        .map_err(|e| format!("kdrill cannot open the dump: {e}"))?;
    dump.dmesg_records()
        .map_err(|e| format!("kdrill cannot read the dump's kernel log: {e}"))
}

/// A dump's log as kdrill reads it: its records, and their plain rendering.
pub struct NativeLog {
    pub text: String,
    pub records: Vec<LogRecord>,
}

/// [`read_native`] into `out`, then `reader` reads the log too (into `<out>.makedumpfile.txt`),
/// and the two must be byte-identical, kdrill's records rendered in the reader's format (into
/// `<out>.kdrill-<format>.txt` when that is not kdrill's own). Without a reader, only kdrill's.
pub fn read_cross_checked(
    vmcore: &Path,
    out: &Path,
    reader: Option<&Reader>,
) -> Result<NativeLog, DumpError> {
    let records = records(vmcore).map_err(DumpError::Dump)?;
    let text = kdrill_vmcore::format_dmesg(&records);
    std::fs::write(out, &text)
        .map_err(|e| DumpError::Dump(format!("cannot write {}: {e}", out.display())))?;
    let Some(reader) = reader else {
        return Ok(NativeLog { text, records });
    };
    let theirs_path = out.with_extension("makedumpfile.txt");
    let theirs = makedumpfile::dmesg(reader, vmcore, &theirs_path).map_err(DumpError::Dump)?;
    let (ours, ours_path) = match reader.format {
        DmesgFormat::Plain => (text.clone(), out.to_path_buf()),
        format => {
            let path = out.with_extension(format!("kdrill-{}.txt", format.word()));
            let rendered = dmesgformat::render(&records, format);
            std::fs::write(&path, &rendered)
                .map_err(|e| DumpError::Dump(format!("cannot write {}: {e}", path.display())))?;
            (rendered, path)
        }
    };
    match first_difference(&theirs, ours.as_bytes()) {
        None => Ok(NativeLog { text, records }),
        Some(at) => Err(DumpError::LogMismatch {
            at,
            ours: ours_path.display().to_string(),
            theirs: format!("{} ({})", theirs_path.display(), reader.label),
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
