//! The checked host's identity, for fleet tools that key on it: its name and machine-id as read
//! from the root (pure: the files' text in, a value or nothing out).

/// Where the host's name is read, first found wins: the running kernel's, the configured one,
/// a sosreport's `hostname` output.
pub const HOSTNAME_FILES: &[&str] = &[
    "/proc/sys/kernel/hostname",
    "/etc/hostname",
    "/sos_commands/host/hostname",
];

/// Where the machine-id is read (systemd's, then D-Bus's older copy).
pub const MACHINE_ID_FILES: &[&str] = &["/etc/machine-id", "/var/lib/dbus/machine-id"];

/// The host name a file holds: its first line that is not a comment (hostname(5)), if it is a
/// name (1–253 letters, digits, `-`, `_`, `.`); the kernel's "(none)" is no name.
pub fn hostname(text: &str) -> Option<String> {
    let name = text
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with('#'))?;
    let valid = name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    valid.then(|| name.to_string())
}

/// The machine-id a file holds: 32 lowercase hex digits (machine-id(5)); "uninitialized", empty
/// or anything else is none.
pub fn machine_id(text: &str) -> Option<String> {
    let id = text.trim();
    let valid = id.len() == 32 && id.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'));
    valid.then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids_or_nothing() {
        assert_eq!(hostname("db1\n").as_deref(), Some("db1"));
        assert_eq!(
            hostname("# set by cloud-init\nweb-3.example.com\n").as_deref(),
            Some("web-3.example.com")
        );
        assert_eq!(hostname("(none)\n"), None);
        assert_eq!(hostname("\n\n"), None);
        assert_eq!(hostname("two words\n"), None);
        assert_eq!(hostname(&"a".repeat(254)), None);
        assert_eq!(
            machine_id("4f1c2a7e9b3d4c0e8a6b5d2f1e0c9b8a\n").as_deref(),
            Some("4f1c2a7e9b3d4c0e8a6b5d2f1e0c9b8a")
        );
        assert_eq!(machine_id("uninitialized\n"), None);
        assert_eq!(machine_id(""), None);
        assert_eq!(machine_id("4F1C2A7E9B3D4C0E8A6B5D2F1E0C9B8A"), None);
        assert_eq!(machine_id("4f1c2a7e9b3d4c0e8a6b5d2f1e0c9b8"), None);
    }
}
