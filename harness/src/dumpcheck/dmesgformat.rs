//! A dump's log as each makedumpfile release writes it with `--dump-dmesg`, from the records
//! kdrill's reader read, so the cross-check compares byte for byte whatever makedumpfile the
//! case's userspace has. `plain` is what `kdrill_vmcore::format_dmesg` writes (1.7.2 to 1.7.4);
//! `caller` (1.7.5 on, makedumpfile commit 48bb1e0) puts `"[%8s] "` with the record's caller
//! (`T<pid>` or `C<cpu>`) after the time stamp when the kernel exports `printk_info.caller_id`,
//! and indents continuation lines past it. Which release writes which is data
//! (`images/userspace.yaml`, `makedumpfile:`).

use kdrill_vmcore::{format_dmesg, LogRecord};

use crate::spec::userspace::DmesgFormat;

/// makedumpfile's `PID_CHARS_DEFAULT`: the caller column's width.
const CALLER_WIDTH: usize = 8;

/// The records as `--dump-dmesg` writes them in `format`.
pub fn render(records: &[LogRecord], format: DmesgFormat) -> String {
    match format {
        DmesgFormat::Plain => format_dmesg(records),
        DmesgFormat::Caller => records.iter().map(with_caller).collect(),
    }
}

/// One record in the `caller` format: the plain rendering with the column inserted after the
/// time stamp's `"] "`, and each continuation line's indent widened by as much.
fn with_caller(record: &LogRecord) -> String {
    let plain = format_dmesg(std::slice::from_ref(record));
    let Some(caller) = record.caller() else {
        return plain;
    };
    // The plain rendering is "[%5lld.%06ld] " + text + "\n"; a raw newline inside it only comes
    // from a newline in the text (every other control byte is escaped).
    let Some(at) = plain.find("] ").map(|i| i + 2) else {
        return plain;
    };
    let column = format!("[{caller:>CALLER_WIDTH$}] ");
    let body = &plain[at..plain.len() - 1];
    let indent = format!("\n{}", " ".repeat(column.len()));
    format!("{}{column}{}\n", &plain[..at], body.replace('\n', &indent))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(ts: u64, caller_id: Option<u32>, text: &[u8]) -> LogRecord {
        LogRecord {
            seq: 0,
            timestamp_ns: ts,
            level: 6,
            facility: 0,
            caller_id,
            text: text.to_vec(),
        }
    }

    fn check(records: &[LogRecord], format: DmesgFormat, expected: &str) {
        assert_eq!(render(records, format), expected);
    }

    #[test]
    fn plain_is_the_readers_own_rendering() {
        let records = [record(6_788_486_000, Some(124), b"sysrq: Trigger a crash")];
        check(
            &records,
            DmesgFormat::Plain,
            "[    6.788486] sysrq: Trigger a crash\n",
        );
    }

    /// Lines written by makedumpfile 1.7.6 (trixie) for a 7.3 kernel's dump, 2026-12-06.
    #[test]
    fn the_caller_column_as_makedumpfile_1_7_6_writes_it() {
        let records = [
            record(0, Some(0), b"Linux version 7.3.4+deb13-amd64"),
            record(
                3_846_930_000,
                Some(102),
                b"virtio_blk virtio0: 2/0/0 default/read/poll queues",
            ),
            record(6_807_969_000, Some(124), b" </TASK>"),
            record(1_000_000, Some(0x8000_0001), b"x"),
        ];
        check(
            &records,
            DmesgFormat::Caller,
            "[    0.000000] [      T0] Linux version 7.3.4+deb13-amd64\n\
             [    3.846930] [    T102] virtio_blk virtio0: 2/0/0 default/read/poll queues\n\
             [    6.807969] [    T124]  </TASK>\n\
             [    0.001000] [      C1] x\n",
        );
    }

    #[test]
    fn continuation_lines_are_indented_past_the_column() {
        let records = [record(1_500_000, Some(7), b"a\nb\x01")];
        check(
            &records,
            DmesgFormat::Caller,
            "[    0.001500] [      T7] a\n                          b\\x01\n",
        );
        check(
            &records,
            DmesgFormat::Plain,
            "[    0.001500] a\n               b\\x01\n",
        );
    }

    #[test]
    fn without_a_caller_id_the_caller_format_is_plain() {
        // A kernel whose VMCOREINFO lacks printk_info.caller_id: makedumpfile prints no column.
        let records = [record(2_000_000, None, b"a\nb")];
        assert_eq!(
            render(&records, DmesgFormat::Caller),
            render(&records, DmesgFormat::Plain)
        );
    }
}
