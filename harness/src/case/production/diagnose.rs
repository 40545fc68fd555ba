//! Reading what went wrong in a Debian guest, as pure functions over its evidence: the serial
//! log split into its boots, what the capture boot's console says when no dump was saved (out of
//! memory, disk full, target unreachable), and where the dump folder lives.

/// The serial log split at each kernel banner (`Linux version …`): boot 1, the capture boot,
/// boot 3. Anything before the first banner belongs to boot 1; a `restored` guest's log starts
/// inside boot 1, so each of its banners opens the next boot.
pub fn split_boots(serial: &str, restored: bool) -> Vec<String> {
    let mut boots: Vec<String> = vec![String::new()];
    // A restored guest's console starts inside boot 1: its first banner is the capture kernel's.
    let mut seen_banner = restored;
    for line in serial.lines() {
        if line.contains("] Linux version ") {
            if seen_banner {
                boots.push(String::new());
            }
            seen_banner = true;
        }
        let current = boots.last_mut().expect("never empty");
        current.push_str(line);
        current.push('\n');
    }
    boots
}

/// What a capture boot's console says about why no dump was saved, most telling first.
pub fn capture_failure(capture_console: &str) -> Option<String> {
    let find = |needle: &str| {
        capture_console
            .lines()
            .find(|l| l.contains(needle))
            .map(|l| strip_stamp(l).to_string())
    };
    if let Some(line) =
        find("System is deadlocked on memory").or_else(|| find("Out of memory and no killable"))
    {
        return Some(format!("the capture kernel ran out of memory (`{line}`): its crashkernel= reservation is too small for kdump-tools' systemd capture"));
    }
    if let Some(line) = find("Out of memory") {
        return Some(format!("the capture kernel ran out of memory (`{line}`)"));
    }
    if let Some(line) = find("No space left on device") {
        return Some(format!("the dump folder's disk is full (`{line}`)"));
    }
    if let Some(line) = find("Unable to reach remote server") {
        return Some(format!(
            "the network dump target was not reachable (`{line}`)"
        ));
    }
    if let Some(line) = find("failed to save vmcore") {
        return Some(format!("kdump-tools could not save the dump (`{line}`)"));
    }
    find("Kernel panic - not syncing:")
        .map(|line| format!("the capture kernel panicked (`{line}`)"))
}

/// A console line without its `[  12.345678] ` kernel time stamp and trailing blanks.
pub fn strip_stamp(line: &str) -> &str {
    let line = line.trim_end_matches(['\r', ' ']);
    match line.trim_start().strip_prefix('[') {
        Some(rest) => rest.split_once("] ").map_or(line, |(_, text)| text),
        None => line.trim_start(),
    }
}

/// Where the dump folder is, from the guest's `findmnt -n -o SOURCE,TARGET -T <coredir>`:
/// the device (`/dev/vda`) and the folder's path inside that filesystem.
pub fn coredir_on_disk(coredir: &str, findmnt: &str) -> Option<(String, String)> {
    let mut words = findmnt.split_whitespace();
    let (source, target) = (words.next()?, words.next()?);
    let inside = if target == "/" {
        coredir.to_string()
    } else {
        let rest = coredir.strip_prefix(target)?;
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        format!("/{}", rest.trim_start_matches('/'))
    };
    Some((source.to_string(), inside))
}

/// The disk index QEMU gave a virtio device name: `/dev/vda` → 0, `/dev/vdc` → 2.
pub fn virtio_index(device: &str) -> Option<usize> {
    let letter = device.strip_prefix("/dev/vd")?;
    let mut chars = letter.chars();
    let c = chars.next()?;
    (chars.next().is_none() && c.is_ascii_lowercase()).then(|| (c as u8 - b'a') as usize)
}

/// A crash folder's stamp: kdump-tools names it `<YYYYMMDDHHMM>`, or `<host>-<YYYYMMDDHHMM>`
/// over the network.
pub fn stamp_of(folder: &str) -> Option<&str> {
    let stamp = folder.rsplit('-').next()?;
    (stamp.len() == 12 && stamp.chars().all(|c| c.is_ascii_digit())).then_some(stamp)
}

/// `KDUMP_COREDIR:  /var/crash` from `kdump-config show`.
pub fn coredir_from_show(show: &str) -> Option<String> {
    show.lines()
        .find_map(|l| l.trim().strip_prefix("KDUMP_COREDIR:"))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The reservation kdump-tools itself suggests (`crashkernel suggested size: 152M` in
/// `kdump-config show`, from kdump-tools 1.10 on; Debian 12's 1.8 says nothing).
pub fn suggested_from_show(show: &str) -> Option<String> {
    show.lines()
        .find_map(|l| l.trim().strip_prefix("crashkernel suggested size:"))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdump_tools_1_10_suggests_a_size_and_1_8_does_not() {
        let trixie = "USE_KDUMP:\t\t1\ncurrent state:    ready to kdump\n\ncrashkernel suggested size: 152M\n\nkexec command:\n";
        assert_eq!(suggested_from_show(trixie).as_deref(), Some("152M"));
        assert_eq!(
            suggested_from_show("USE_KDUMP:\t\t1\ncurrent state:    ready to kdump\n"),
            None
        );
    }

    const SERIAL: &str = "SeaBIOS\n[    0.000000] Linux version 6.1.0-47-amd64 (x)\nboot one\n\
        [    0.000000] Linux version 6.1.0-47-amd64 (x)\n[    5.1] Out of memory and no killable processes...\n\
        [    5.2] Kernel panic - not syncing: System is deadlocked on memory\n\
        [    0.000000] Linux version 6.1.0-47-amd64 (x)\nboot three\n";

    #[test]
    fn the_serial_log_splits_into_its_boots() {
        let boots = split_boots(SERIAL, false);
        assert_eq!(boots.len(), 3);
        assert!(boots[0].starts_with("SeaBIOS\n"));
        assert!(boots[1].contains("Out of memory"));
        assert!(boots[2].contains("boot three"));
    }

    #[test]
    fn a_restored_guests_log_starts_inside_boot_1() {
        let restored = "[   31.2] kdrill-guest[402]: KDRILL case\n\
            [    0.000000] Linux version 6.1.0-47-amd64 (x)\ncapture\n\
            [    0.000000] Linux version 6.1.0-47-amd64 (x)\nboot three\n";
        let boots = split_boots(restored, true);
        assert_eq!(boots.len(), 3, "{boots:?}");
        assert!(boots[0].contains("KDRILL case"));
        assert!(boots[1].contains("capture"));
        assert!(boots[2].contains("boot three"));
        assert_eq!(split_boots(restored, false).len(), 2);
    }

    #[test]
    fn a_capture_out_of_memory_is_named() {
        let boots = split_boots(SERIAL, false);
        let why = capture_failure(&boots[1]).unwrap();
        assert!(
            why.starts_with("the capture kernel ran out of memory (`Kernel panic - not syncing: System is deadlocked on memory`)"),
            "{why}"
        );
        let full = "[ 20.1] kdump-tools[311]: cat: write error: No space left on device\n";
        assert_eq!(
            capture_failure(full).unwrap(),
            "the dump folder's disk is full (`kdump-tools[311]: cat: write error: No space left on device`)"
        );
        assert_eq!(capture_failure("all fine\n"), None);
    }

    #[test]
    fn the_dump_folder_is_found_on_its_disk() {
        assert_eq!(
            coredir_on_disk("/var/crash", "/dev/vda /"),
            Some(("/dev/vda".into(), "/var/crash".into()))
        );
        assert_eq!(
            coredir_on_disk("/var/crash", "/dev/vdc /var/crash\n"),
            Some(("/dev/vdc".into(), "/".into()))
        );
        assert_eq!(
            coredir_on_disk("/srv/dumps/k", "/dev/vdc /srv"),
            Some(("/dev/vdc".into(), "/dumps/k".into()))
        );
        assert_eq!(coredir_on_disk("/srvx", "/dev/vdc /srv"), None);
        assert_eq!(virtio_index("/dev/vda"), Some(0));
        assert_eq!(virtio_index("/dev/vdc"), Some(2));
        assert_eq!(virtio_index("/dev/sda"), None);
    }

    #[test]
    fn stamps_and_coredir() {
        assert_eq!(stamp_of("202612051042"), Some("202612051042"));
        assert_eq!(stamp_of("10.0.2.15-202612051042"), Some("202612051042"));
        assert_eq!(stamp_of("kexec_cmd"), None);
        assert_eq!(
            coredir_from_show("DUMP_MODE:\t\tkdump\nKDUMP_COREDIR:\t\t/var/crash\n").as_deref(),
            Some("/var/crash")
        );
    }
}
