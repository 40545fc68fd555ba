//! Naming what went wrong in a Debian image's case (pure), from what the guest left: the serial
//! console of its three boots, kdump-config's outputs, the events it sent.

/// The serial console cut into its boots at each kernel's banner (`Linux version …`): text
/// before the first banner goes with the first boot.
pub fn split_boots(console: &str) -> Vec<&str> {
    let starts: Vec<usize> = console
        .match_indices("Linux version ")
        .map(|(at, _)| console[..at].rfind('\n').map_or(0, |nl| nl + 1))
        .collect();
    if starts.is_empty() {
        return vec![console];
    }
    let mut boots = Vec::new();
    for (i, start) in starts.iter().enumerate() {
        let from = if i == 0 { 0 } else { *start };
        let to = starts.get(i + 1).copied().unwrap_or(console.len());
        boots.push(&console[from..to]);
    }
    boots
}

/// The first line of `text` holding `needle`, without its kernel time stamp.
fn line_with<'a>(text: &'a str, needle: &str) -> Option<&'a str> {
    text.lines().find(|l| l.contains(needle)).map(|l| {
        l.split_once("] ")
            .filter(|(stamp, _)| stamp.trim_start().starts_with('['))
            .map_or(l, |(_, rest)| rest)
            .trim()
    })
}

/// Why the capture boot left no dump, from its console: `(kind, reason)`.
pub fn capture_failure(capture: &str) -> (&'static str, String) {
    for needle in [
        "System is deadlocked on memory",
        "Out of memory",
        "invoked oom-killer",
    ] {
        if let Some(line) = line_with(capture, needle) {
            return (
                "capture-oom",
                format!("the capture kernel ran out of memory (`{line}`): the crashkernel= reservation is too small for this capture userspace"),
            );
        }
    }
    if let Some(line) = line_with(capture, "No space left on device") {
        let failed = line_with(capture, "failed to save vmcore").unwrap_or(line);
        return (
            "disk-full",
            format!("no dump written: disk full in the dump folder (`{line}`; `{failed}`)"),
        );
    }
    for needle in [
        "failed to save vmcore",
        "Unable to reach remote server",
        "Kernel panic",
    ] {
        if let Some(line) = line_with(capture, needle) {
            return ("no-dump", format!("no dump written: `{line}`"));
        }
    }
    (
        "no-dump",
        "no dump written, and the capture boot's console says nothing about why".into(),
    )
}

/// Why kdump-tools was not ready to kdump at boot, from `kdump-config show` and `status`.
pub fn not_ready(show: &str, status: &str) -> String {
    let state = line_with(status, "current state")
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "no state".into());
    let disabled = show.lines().chain(status.lines()).any(|l| {
        let words: Vec<&str> = l.split_whitespace().collect();
        words == ["USE_KDUMP:", "0"] || l.contains("USE_KDUMP is not set or zero")
    });
    if disabled {
        return format!(
            "kdump-tools is disabled: USE_KDUMP=0 in /etc/default/kdump-tools ({state})"
        );
    }
    if let Some(line) =
        line_with(show, "no crashkernel").or_else(|| line_with(status, "no crashkernel"))
    {
        return format!("kdump-tools cannot load the capture kernel: {line} ({state})");
    }
    format!("kdump-tools did not load the capture kernel ({state})")
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONSOLE: &str = "SeaBIOS\n[    0.000000] Linux version 6.1 first\nboot one\n[    0.000000] Linux version 6.1 capture\n[    2.1] Kernel panic - not syncing: System is deadlocked on memory\n[    0.000000] Linux version 6.1 again\nback\n";

    #[test]
    fn the_console_splits_into_boots() {
        let boots = split_boots(CONSOLE);
        assert_eq!(boots.len(), 3);
        assert!(boots[0].starts_with("SeaBIOS") && boots[0].ends_with("boot one\n"));
        assert!(boots[1].contains("capture") && boots[1].contains("deadlocked"));
        assert!(boots[2].ends_with("back\n"));
        assert_eq!(split_boots("no kernel"), ["no kernel"]);
    }

    #[test]
    fn a_capture_failure_is_named() {
        let (kind, why) = capture_failure(split_boots(CONSOLE)[1]);
        assert_eq!(kind, "capture-oom");
        assert!(
            why.contains("`Kernel panic - not syncing: System is deadlocked on memory`"),
            "{why}"
        );
        let full = "[ 20.1] cp: error writing '/var/crash/202612051040/vmcore-incomplete': No space left on device\n[ 20.2]  * kdump-tools: failed to save vmcore in /var/crash/202612051040\n";
        let (kind, why) = capture_failure(full);
        assert_eq!(kind, "disk-full");
        assert!(why.contains("failed to save vmcore"), "{why}");
        assert_eq!(capture_failure("quiet").0, "no-dump");
    }

    #[test]
    fn a_disabled_service_is_named() {
        let show = "DUMP_MODE:\t\tkdump\nUSE_KDUMP:\t\t0\nKDUMP_COREDIR:\t\t/var/crash\n";
        let status = "current state   : Not ready to kdump\n";
        let why = not_ready(show, status);
        assert!(
            why.starts_with("kdump-tools is disabled: USE_KDUMP=0"),
            "{why}"
        );
        assert!(
            why.ends_with("(current state : Not ready to kdump)"),
            "{why}"
        );
        let why = not_ready("USE_KDUMP:\t\t1\n", status);
        assert_eq!(
            why,
            "kdump-tools did not load the capture kernel (current state : Not ready to kdump)"
        );
    }
}
