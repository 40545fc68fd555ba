//! The agent's decisions, without I/O: the case's settings, which kdump service an image has and
//! whether its own words say it is ready, the `crashkernel=` on the command line, the dump folder
//! the crash left, and the grub snippet that asks for another reservation.

use std::collections::BTreeMap;

use crate::readiness::kdumpconf::Flavour;

/// `KEY='value'` lines of `case.env` (guest::caseenv writes them; values hold no quote).
pub fn settings(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.split_once('=')?;
            let value = value.trim();
            let value = value
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(value);
            Some((key.trim().to_string(), value.to_string()))
        })
        .collect()
}

/// Which of the known kdump services an image has, from what is installed: the program each
/// ships, else a `kdump.service` unit (SUSE's kdump has no status program of its own).
pub fn discover(
    has_kdump_config: bool,
    has_kdumpctl: bool,
    has_kdump_unit: bool,
) -> Option<Flavour> {
    if has_kdump_config {
        Some(Flavour::KdumpTools)
    } else if has_kdumpctl {
        Some(Flavour::Kdumpctl)
    } else if has_kdump_unit {
        Some(Flavour::Suse)
    } else {
        None
    }
}

/// The command that asks the service how it is, in its own words.
pub fn status_command(flavour: Flavour) -> &'static [&'static str] {
    match flavour {
        Flavour::KdumpTools => &["kdump-config", "status"],
        Flavour::Kdumpctl => &["kdumpctl", "status"],
        Flavour::Suse => &["systemctl", "is-active", "kdump.service"],
    }
}

/// What the service's status says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Not ready, in the service's own words (its status output, a few lines).
    NotReady(String),
}

/// Judges a status command's output (`success`: its exit status was 0).
pub fn readiness(flavour: Flavour, output: &str, success: bool) -> Readiness {
    let lower = output.to_ascii_lowercase();
    let ready = match flavour {
        // "current state   : ready to kdump" (kdump-tools 1.8 and 1.10 pad differently).
        Flavour::KdumpTools => lower.lines().any(|l| {
            l.split_once(':')
                .is_some_and(|(k, v)| k.trim() == "current state" && v.trim() == "ready to kdump")
        }),
        // "kdump: Kdump is operational"; not operational exits 1.
        Flavour::Kdumpctl => {
            success && lower.contains("is operational") && !lower.contains("not operational")
        }
        Flavour::Suse => success && lower.trim() == "active",
    };
    if ready {
        return Readiness::Ready;
    }
    let words: Vec<&str> = output
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(4)
        .collect();
    Readiness::NotReady(if words.is_empty() {
        "(no output)".into()
    } else {
        words.join("; ")
    })
}

/// The `crashkernel=` words of a kernel command line.
pub fn crashkernel(cmdline: &str) -> Vec<&str> {
    cmdline
        .split_whitespace()
        .filter(|w| w.starts_with("crashkernel="))
        .collect()
}

/// One folder of the dump folder after the crash: its name, modification time (seconds since
/// the epoch) and file names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    pub name: String,
    pub mtime: i64,
    pub files: Vec<String>,
}

/// A dump's file name as the three services write it: kdump-tools `dump.<stamp>` (and
/// `dump-incomplete`), kdumpctl `vmcore` (`vmcore-incomplete`, `vmcore.flat`), SUSE `vmcore`.
pub fn is_dump(name: &str) -> bool {
    name.starts_with("dump.") || name.starts_with("dump-incomplete") || name.starts_with("vmcore")
}

/// The crash's folder: the newest holding a dump, written after the crash was armed (`armed`,
/// seconds since the epoch; a minute's slack for a capture kernel whose clock the RTC set).
pub fn crash_folder(folders: &[Folder], armed: i64) -> Option<&Folder> {
    folders
        .iter()
        .filter(|f| f.mtime >= armed - 60 && f.files.iter().any(|n| is_dump(n)))
        .max_by_key(|f| (f.mtime, f.name.clone()))
}

/// The grub snippet (`/etc/default/grub.d/zz-kdrill-crashkernel.cfg`, read after the
/// distribution's own) that replaces every `crashkernel=` with `size`.
pub fn grub_snippet(size: &str) -> String {
    format!(
        "# kdrill: this test boot's reservation (a disposable overlay, never the image)\n\
         GRUB_CMDLINE_LINUX=\"$(echo \"$GRUB_CMDLINE_LINUX\" | sed 's/crashkernel=[^ ]*//g')\"\n\
         GRUB_CMDLINE_LINUX_DEFAULT=\"$(echo \"$GRUB_CMDLINE_LINUX_DEFAULT\" | sed 's/crashkernel=[^ ]*//g') crashkernel={size}\"\n"
    )
}

/// A size kdrill may write into a shell file: `crashkernel=`'s own characters only.
pub fn plain_size(size: &str) -> bool {
    !size.is_empty()
        && size
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ",:-@".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_case_settings_are_read_as_the_host_wrote_them() {
        let text = crate::guest::caseenv::lines(&[
            ("KDRILL_TRIGGER", "sysrq".into()),
            ("KDRILL_SYSCTLS", "kernel.sysrq=1 kernel.panic=0".into()),
            ("KDRILL_PIN_CPU", String::new()),
        ]);
        let s = settings(&text);
        assert_eq!(s["KDRILL_TRIGGER"], "sysrq");
        assert_eq!(s["KDRILL_SYSCTLS"], "kernel.sysrq=1 kernel.panic=0");
        assert_eq!(s["KDRILL_PIN_CPU"], "");
    }

    #[test]
    fn the_service_is_found_by_what_is_installed() {
        assert_eq!(discover(true, false, true), Some(Flavour::KdumpTools));
        assert_eq!(discover(false, true, true), Some(Flavour::Kdumpctl));
        assert_eq!(discover(false, false, true), Some(Flavour::Suse));
        assert_eq!(discover(false, false, false), None);
    }

    #[test]
    fn each_service_is_judged_by_its_own_words() {
        // Debian 12 (kdump-tools 1.8) and Debian 13 (1.10).
        let bookworm = "current state   : ready to kdump\n";
        let trixie = "kdump-tools: Loading kdump kernel\ncurrent state    : ready to kdump\n";
        assert_eq!(
            readiness(Flavour::KdumpTools, bookworm, true),
            Readiness::Ready
        );
        assert_eq!(
            readiness(Flavour::KdumpTools, trixie, true),
            Readiness::Ready
        );
        let off = "no crashkernel= parameter in the kernel cmdline\ncurrent state    : Not ready to kdump\n";
        match readiness(Flavour::KdumpTools, off, true) {
            Readiness::NotReady(words) => {
                assert!(
                    words.contains("Not ready to kdump") && words.contains("no crashkernel="),
                    "{words}"
                )
            }
            Readiness::Ready => panic!("not ready"),
        }
        assert_eq!(
            readiness(Flavour::Kdumpctl, "kdump: Kdump is operational\n", true),
            Readiness::Ready
        );
        assert!(matches!(
            readiness(Flavour::Kdumpctl, "kdump: Kdump is not operational\n", false),
            Readiness::NotReady(w) if w.contains("not operational")
        ));
        assert_eq!(readiness(Flavour::Suse, "active\n", true), Readiness::Ready);
        assert_eq!(
            readiness(Flavour::Suse, "", false),
            Readiness::NotReady("(no output)".into())
        );
    }

    #[test]
    fn the_crash_folder_is_the_newest_with_a_dump_after_arming() {
        let f = |name: &str, mtime, files: &[&str]| Folder {
            name: name.into(),
            mtime,
            files: files.iter().map(|s| s.to_string()).collect(),
        };
        let folders = [
            f(
                "202612010000",
                100,
                &["dmesg.202612010000", "dump.202612010000"],
            ),
            f(
                "202612071501",
                1000,
                &["dmesg.202612071501", "dump.202612071501"],
            ),
            f("lost+found", 2000, &[]),
            f(
                "127.0.0.1-2026-12-07-15:01:00",
                990,
                &["vmcore", "vmcore-dmesg.txt"],
            ),
        ];
        assert_eq!(crash_folder(&folders, 900).unwrap().name, "202612071501");
        assert_eq!(crash_folder(&folders[..1], 900), None);
        assert!(is_dump("vmcore.flat") && is_dump("dump-incomplete") && !is_dump("dmesg.1"));
    }

    #[test]
    fn crashkernel_words_and_the_grub_snippet() {
        assert_eq!(
            crashkernel("BOOT_IMAGE=/vmlinuz ro quiet crashkernel=512M-:192M"),
            ["crashkernel=512M-:192M"]
        );
        assert!(crashkernel("ro quiet").is_empty());
        let snippet = grub_snippet("256M");
        assert!(snippet.contains("crashkernel=256M\"\n"), "{snippet}");
        assert!(plain_size("512M-:192M") && plain_size("256M,high") && !plain_size("1G;reboot"));
    }
}
