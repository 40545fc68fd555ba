//! Kernel log records and their text rendering, byte-identical to `makedumpfile --dump-dmesg`.
//!
//! makedumpfile 1.7.2 (`dump_record()` in printk.c, `dump_log_entry()` in
//! makedumpfile.c) writes one line per record, no merging of continuation
//! records and no dictionary or device info: `"[%5lld.%06ld] "` from `ts_nsec`,
//! then the text where `\n` becomes a newline plus as many spaces as the
//! prefix is long, bytes that C's `isprint() || isspace()` accepts (in the C
//! locale) are copied, and every other byte is printed with `"\\x%02x"` from a
//! *signed* `char`, so bytes from 0x80 up come out as `\xffffffXX`.

use std::fmt::Write;

/// One record of the kernel log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogRecord {
    /// The kernel's sequence number (lockless ring buffer); for the older
    /// `log_buf` the position in the buffer, counted from the oldest record.
    pub seq: u64,
    /// Monotonic time stamp in nanoseconds since boot (in JSON a decimal string: it passes
    /// 2^53 after 104 days of uptime).
    #[serde(serialize_with = "crate::hex::decimal")]
    pub timestamp_ns: u64,
    /// Syslog level, 0 (emerg) to 7 (debug).
    pub level: u8,
    /// Syslog facility (0 for the kernel).
    pub facility: u8,
    /// The caller id if the kernel records one: bit 31 set means CPU, else thread id.
    pub caller_id: Option<u32>,
    /// The text, without a trailing newline; not necessarily UTF-8.
    #[serde(serialize_with = "lossy")]
    pub text: Vec<u8>,
}

fn lossy<S: serde::Serializer>(text: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(text))
}

impl LogRecord {
    /// The caller as the kernel prints it with CONFIG_PRINTK_CALLER: `T123` or `C1`.
    pub fn caller(&self) -> Option<String> {
        self.caller_id.map(|id| {
            if id & 0x8000_0000 != 0 {
                format!("C{}", id & 0x7fff_ffff)
            } else {
                format!("T{id}")
            }
        })
    }

    /// The text as a string, invalid UTF-8 replaced.
    pub fn text_lossy(&self) -> String {
        String::from_utf8_lossy(&self.text).into_owned()
    }
}

/// Renders records exactly as `makedumpfile --dump-dmesg` writes them.
pub fn format_dmesg(records: &[LogRecord]) -> String {
    let mut out = String::new();
    for r in records {
        format_record(&mut out, r);
    }
    out
}

fn format_record(out: &mut String, r: &LogRecord) {
    let start = out.len();
    let _ = write!(
        out,
        "[{:5}.{:06}] ",
        r.timestamp_ns / 1_000_000_000,
        r.timestamp_ns % 1_000_000_000 / 1000
    );
    let indent = out.len() - start;
    for &b in &r.text {
        match b {
            b'\n' => {
                out.push('\n');
                out.extend(std::iter::repeat_n(' ', indent));
            }
            // isprint() || isspace() in the C locale
            0x20..=0x7e | b'\t' | 0x0b | 0x0c | b'\r' => out.push(b as char),
            // "\\x%02x" of a signed char
            0x80..=0xff => {
                let _ = write!(out, "\\x{:02x}", b as i8 as i32 as u32);
            }
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push('\n');
}

const PANIC_PREFIX: &[u8] = b"Kernel panic - not syncing:";

/// The text of the last `Kernel panic - not syncing:` record, if there is one.
pub fn panic_message(records: &[LogRecord]) -> Option<String> {
    records
        .iter()
        .rev()
        .find_map(|r| {
            r.text
                .windows(PANIC_PREFIX.len())
                .position(|w| w == PANIC_PREFIX)
                .map(|at| &r.text[at..])
        })
        .map(|t| String::from_utf8_lossy(t).trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ts: u64, text: &[u8]) -> LogRecord {
        LogRecord {
            seq: 0,
            timestamp_ns: ts,
            level: 6,
            facility: 0,
            caller_id: None,
            text: text.to_vec(),
        }
    }

    fn check(records: &[LogRecord], expected: &str) {
        assert_eq!(format_dmesg(records), expected);
    }

    #[test]
    fn timestamps_are_padded_to_five_digits_and_microseconds() {
        check(
            &[
                rec(0, b"Linux version 6.1.0"),
                rec(123_456_789_012, b"b"),
                rec(123_456_789_999_999, b"c"),
            ],
            "[    0.000000] Linux version 6.1.0\n[  123.456789] b\n[123456.789999] c\n",
        );
    }

    #[test]
    fn newlines_indent_continuation_lines_under_the_text() {
        check(
            &[rec(1_500_000, b"one\ntwo\n")],
            "[    0.001500] one\n               two\n               \n",
        );
    }

    #[test]
    fn unprintable_bytes_are_escaped_as_makedumpfile_does() {
        check(
            &[rec(0, b"a\tb\x0bc\x0cd\re\x00f\x1bg\x7fh\xc3\xa9i\xff")],
            "[    0.000000] a\tb\x0bc\x0cd\re\\x00f\\x1bg\\x7fh\\xffffffc3\\xffffffa9i\\xffffffff\n",
        );
    }

    #[test]
    fn empty_text_still_makes_a_line() {
        check(&[rec(2_000_000_000, b"")], "[    2.000000] \n");
    }

    #[test]
    fn panic_message_is_the_last_panic_record() {
        let records = [
            rec(1, b"Kernel panic - not syncing: first"),
            rec(2, b"sysrq: Trigger a crash"),
            rec(3, b"Kernel panic - not syncing: sysrq triggered crash\n"),
            rec(4, b"Kernel Offset: 0x1c000000"),
        ];
        assert_eq!(
            panic_message(&records).as_deref(),
            Some("Kernel panic - not syncing: sysrq triggered crash")
        );
        assert_eq!(panic_message(&records[1..2]), None);
    }

    #[test]
    fn callers_print_as_the_kernel_does() {
        let mut r = rec(0, b"x");
        r.caller_id = Some(0x8000_0001);
        assert_eq!(r.caller().as_deref(), Some("C1"));
        r.caller_id = Some(412);
        assert_eq!(r.caller().as_deref(), Some("T412"));
    }
}
