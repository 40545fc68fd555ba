//! The guest's status channel (its second serial port): `KDRILL <event> t=<uptime> key=value ...`
//! lines, parsed into events, read incrementally from the file QEMU writes.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use crate::vm::console::LineTail;

/// The events a guest reports, by the word its `/init` writes (`status <word> …`). The same words
/// are in `images/minimal/init` and the Debian image's `/usr/lib/kdrill/guest`; a test checks
/// that Rust knows every word they write and that each event is written by one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventName {
    /// The first boot's init is running (`kernel=<release>`).
    Boot,
    /// `kexec -p` loaded the capture kernel (`secs=`).
    KexecLoaded,
    /// A guest booted to be saved as a shape waits for its case's settings (repeated each
    /// second until the host sends them over the status channel).
    Waiting,
    /// The case's settings arrived over the status channel (`trigger=`).
    Case,
    /// The guest filled memory with non-zero data and freed it before the crash (`mib=`,
    /// `secs=`, `free_mib=`: what the kernel counts free afterwards).
    Dirtied,
    /// A guest-side route is about to crash the kernel (`route=`).
    Trigger,
    /// The guest hung a CPU on purpose; the host presses NMI next.
    Hanging,
    /// The guest waits for the host to crash it (or to dump it).
    Ready,
    /// The capture kernel's init is running.
    CaptureStart,
    /// The distribution's capture service started in the capture kernel (Debian image:
    /// kdump-tools-dump.service).
    Saving,
    /// makedumpfile wrote the dump (`secs=`).
    Makedumpfile,
    /// The capture boot is done and powers off.
    Done,
    /// Something failed in the guest (`phase=`, `reason=`).
    Fail,
}

impl EventName {
    pub const ALL: [EventName; 13] = [
        EventName::Boot,
        EventName::KexecLoaded,
        EventName::Waiting,
        EventName::Case,
        EventName::Dirtied,
        EventName::Trigger,
        EventName::Hanging,
        EventName::Ready,
        EventName::CaptureStart,
        EventName::Saving,
        EventName::Makedumpfile,
        EventName::Done,
        EventName::Fail,
    ];

    /// The word on the status line.
    pub fn word(self) -> &'static str {
        match self {
            EventName::Boot => "boot",
            EventName::KexecLoaded => "kexec-loaded",
            EventName::Waiting => "waiting",
            EventName::Case => "case",
            EventName::Dirtied => "dirtied",
            EventName::Trigger => "trigger",
            EventName::Hanging => "hanging",
            EventName::Ready => "ready",
            EventName::CaptureStart => "capture-start",
            EventName::Saving => "saving",
            EventName::Makedumpfile => "makedumpfile",
            EventName::Done => "done",
            EventName::Fail => "fail",
        }
    }

    pub fn from_word(word: &str) -> Option<EventName> {
        EventName::ALL.into_iter().find(|e| e.word() == word)
    }
}

impl std::fmt::Display for EventName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.word())
    }
}

/// One status line from the guest.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub name: EventName,
    /// The guest's uptime when it wrote the line, in seconds.
    pub uptime: f64,
    pub fields: BTreeMap<String, String>,
}

impl Event {
    pub fn field(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    /// A numeric field, e.g. `secs=0.91`.
    pub fn seconds(&self, key: &str) -> Option<f64> {
        self.field(key)?.parse().ok()
    }
}

/// Parses one line; anything that is not a well-formed status line of a known event gives `None`.
/// Values run to the next ` key=` so reasons may contain spaces: `reason=kexec -p exited 1`;
/// `reason=` runs to the end of the line (it is always last), so it may quote `key=value` words.
pub fn parse_line(line: &str) -> Option<Event> {
    let line = line.trim_end_matches(['\r', '\n']);
    let start = line.find("KDRILL ")?;
    let mut words = line[start + "KDRILL ".len()..].split(' ').peekable();
    let name = EventName::from_word(words.next()?)?;
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<String> = None;
    for word in words {
        // `reason=` is the last field: it runs to the end of the line, `crashkernel=` and all.
        if current.as_deref() == Some("reason") {
            let value = fields.get_mut("reason")?;
            value.push(' ');
            value.push_str(word);
            continue;
        }
        match word.split_once('=') {
            Some((key, value))
                if !key.is_empty()
                    && key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
            {
                fields.insert(key.to_string(), value.to_string());
                current = Some(key.to_string());
            }
            _ => {
                let key = current.as_ref()?;
                let value = fields.get_mut(key)?;
                value.push(' ');
                value.push_str(word);
            }
        }
    }
    let uptime = fields.remove("t")?.parse().ok()?;
    Some(Event {
        name,
        uptime,
        fields,
    })
}

/// Reads events from a growing file; each event is stamped with the host time it was seen.
pub struct StatusReader {
    tail: LineTail,
}

impl StatusReader {
    pub fn new(path: &Path) -> StatusReader {
        StatusReader {
            tail: LineTail::new(path),
        }
    }

    /// New complete events since the last call.
    pub fn poll(&mut self) -> Vec<(Instant, Event)> {
        let now = Instant::now();
        self.tail
            .poll()
            .iter()
            .filter_map(|line| parse_line(line))
            .map(|event| (now, event))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_event_with_fields() {
        let e = parse_line("KDRILL kexec-loaded t=5.12 secs=0.91\r\n").unwrap();
        assert_eq!(e.name, EventName::KexecLoaded);
        assert_eq!(e.uptime, 5.12);
        assert_eq!(e.seconds("secs"), Some(0.91));
    }

    #[test]
    fn values_may_hold_spaces() {
        let e = parse_line("KDRILL fail t=3.00 phase=kexec reason=kexec -p exited 1: Cannot load")
            .unwrap();
        assert_eq!(e.field("phase"), Some("kexec"));
        assert_eq!(e.field("reason"), Some("kexec -p exited 1: Cannot load"));
        // The reason runs to the end of the line, whatever words with `=` it quotes.
        let e = parse_line("KDRILL fail t=9.1 phase=crashkernel reason=no crashkernel= on the command line (ro quiet=1)").unwrap();
        assert_eq!(e.field("phase"), Some("crashkernel"));
        assert_eq!(
            e.field("reason"),
            Some("no crashkernel= on the command line (ro quiet=1)")
        );
        assert_eq!(e.fields.len(), 2);
    }

    #[test]
    fn noise_before_the_marker_is_skipped() {
        let e = parse_line("\u{0}\u{1b}[0mKDRILL boot t=4.40 kernel=6.1.0-47-amd64").unwrap();
        assert_eq!(e.field("kernel"), Some("6.1.0-47-amd64"));
    }

    /// The words `status <word>` calls in the guest's init (comments skipped).
    fn words_emitted(init: &str) -> std::collections::BTreeSet<String> {
        init.lines()
            .map(|l| l.trim_start())
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.strip_prefix("status "))
            .filter_map(|rest| rest.split_whitespace().next())
            .map(String::from)
            .collect()
    }

    /// The Debian image's guest script and its initramfs hook (`status <word>`, `echo "KDRILL <word>`).
    fn words_of_debian_image() -> std::collections::BTreeSet<String> {
        let files = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/debian/root");
        let mut words = std::collections::BTreeSet::new();
        for file in [
            "usr/lib/kdrill/guest",
            "etc/initramfs-tools/scripts/init-top/kdrill-capture",
        ] {
            let text = std::fs::read_to_string(files.join(file)).unwrap();
            words.extend(words_emitted(&text));
            for part in text.split("echo \"KDRILL ").skip(1) {
                if let Some(word) = part.split_whitespace().next() {
                    words.insert(word.to_string());
                }
            }
        }
        words
    }

    #[test]
    fn the_guests_and_rust_know_the_same_events() {
        let init = String::from_utf8_lossy(crate::spec::image::MINIMAL_INIT);
        let minimal = words_emitted(&init);
        let debian = words_of_debian_image();
        for (image, words) in [
            ("images/minimal/init", &minimal),
            ("the Debian image", &debian),
        ] {
            for word in words {
                assert!(
                    EventName::from_word(word).is_some(),
                    "{image} emits `{word}`, which Rust does not know"
                );
            }
        }
        for name in EventName::ALL {
            assert!(
                minimal.contains(name.word()) || debian.contains(name.word()),
                "Rust knows `{name}`, which no guest emits"
            );
        }
        // The probes see every call: the minimal init writes all but the Debian capture service's.
        assert_eq!(minimal.len(), EventName::ALL.len() - 1);
        assert!(
            debian.contains("saving") && debian.contains("capture-start"),
            "{debian:?}"
        );
    }

    #[test]
    fn malformed_lines_are_not_events() {
        for line in [
            "",
            "KDRILL",
            "KDRILL boot",
            "KDRILL boot t=x",
            "booting KDRILL",
            "KDRILL t=1.0",
            "KDRILL reboot t=1.0",
        ] {
            assert_eq!(parse_line(line), None, "{line:?}");
        }
    }

    #[test]
    fn reader_returns_only_complete_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.log");
        let mut reader = StatusReader::new(&path);
        assert!(reader.poll().is_empty());
        std::fs::write(&path, "KDRILL boot t=1.00\r\nKDRILL kexec-lo").unwrap();
        let got: Vec<EventName> = reader.poll().into_iter().map(|(_, e)| e.name).collect();
        assert_eq!(got, [EventName::Boot]);
        std::fs::write(
            &path,
            "KDRILL boot t=1.00\r\nKDRILL kexec-loaded t=2.00 secs=0.9\r\n",
        )
        .unwrap();
        let got: Vec<EventName> = reader.poll().into_iter().map(|(_, e)| e.name).collect();
        assert_eq!(got, [EventName::KexecLoaded]);
    }
}
