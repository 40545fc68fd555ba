//! What a case's capture userspace was (`Used`), as `result.json`, the case's result line, the
//! summary (`## Capture userspaces`) and the JUnit properties (`userspace.*`) name it. Pure.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::spec::userspace;

/// The capture userspace a case used, as `result.json`, the summary and JUnit name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Used {
    /// `host`, or the release (`trixie`).
    pub name: String,
    /// The kernel's own release's (else chosen by a `userspace:` key or `--userspace`).
    pub own: bool,
    /// The capture tools' packages and the C library, with the versions installed (on the host:
    /// as its dpkg knows them; empty where dpkg does not).
    pub packages: BTreeMap<String, String>,
    /// The sysroot's folder (`null` for the host).
    #[serde(default)]
    pub sysroot: Option<String>,
}

impl Used {
    /// `trixie: makedumpfile 1.7.6, kexec-tools 2.0.29, busybox-static 1.37.0` (upstream
    /// versions; the C library left out), for result lines.
    pub fn short(&self) -> String {
        let tools: Vec<String> = self
            .packages
            .iter()
            .rev()
            .filter(|(p, _)| *p != "libc6")
            .map(|(p, v)| format!("{p} {}", userspace::upstream_version(v)))
            .collect();
        format!("{}: {}", self.name, tools.join(", "))
    }
}

/// The summary's `## Capture userspaces` lines: each userspace once per kernel it captured,
/// `- debian-6.12: bookworm: makedumpfile 1.7.2, kexec-tools 2.0.25, busybox-static 1.35.0`
/// (`, not the kernel's own` when a `userspace:` chose it). Empty when no case had one.
pub fn summary_section<'a>(rows: impl Iterator<Item = (&'a str, &'a Used)>) -> String {
    let mut lines: Vec<String> = Vec::new();
    for (kernel, used) in rows {
        let whose = if used.own {
            ""
        } else {
            " (not the kernel's own)"
        };
        let line = format!("- {kernel}: {}{whose}\n", used.short());
        if !lines.contains(&line) {
            lines.push(line);
        }
    }
    if lines.is_empty() {
        return String::new();
    }
    format!("\n## Capture userspaces\n\n{}", lines.concat())
}

/// JUnit `<property>` name/value pairs: `userspace` (the release or `host`), `userspace.own`,
/// and `userspace.<package>` with each package's Debian version.
pub fn properties(used: &Used) -> Vec<(String, String)> {
    let mut out = vec![
        ("userspace".to_string(), used.name.clone()),
        ("userspace.own".to_string(), used.own.to_string()),
    ];
    for (package, version) in &used.packages {
        out.push((format!("userspace.{package}"), version.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bookworm(own: bool) -> Used {
        Used {
            name: "bookworm".into(),
            own,
            packages: BTreeMap::from([
                ("kexec-tools".to_string(), "1:2.0.25-3+deb12u2".to_string()),
                ("makedumpfile".to_string(), "1:1.7.2-1".to_string()),
            ]),
            sysroot: None,
        }
    }

    #[test]
    fn a_result_line_names_the_tools_by_upstream_version() {
        let used = Used {
            name: "trixie".into(),
            own: false,
            packages: BTreeMap::from([
                ("busybox-static".to_string(), "1:1.37.0-6+b9".to_string()),
                ("kexec-tools".to_string(), "1:2.0.29-2+b2".to_string()),
                ("libc6".to_string(), "2.41-12+deb13u5".to_string()),
                ("makedumpfile".to_string(), "1:1.7.6-1".to_string()),
            ]),
            sysroot: None,
        };
        assert_eq!(
            used.short(),
            "trixie: makedumpfile 1.7.6, kexec-tools 2.0.29, busybox-static 1.37.0"
        );
    }

    #[test]
    fn the_summary_lists_each_userspace_once_per_kernel() {
        let (own, other) = (bookworm(true), bookworm(false));
        let rows = [
            ("debian-6.1", &own),
            ("debian-6.1", &own),
            ("debian13-6.12", &other),
        ];
        assert_eq!(
            summary_section(rows.into_iter()),
            "\n## Capture userspaces\n\n- debian-6.1: bookworm: makedumpfile 1.7.2, kexec-tools 2.0.25\n- debian13-6.12: bookworm: makedumpfile 1.7.2, kexec-tools 2.0.25 (not the kernel's own)\n"
        );
        assert_eq!(summary_section(std::iter::empty()), "");
    }

    #[test]
    fn junit_properties_name_the_userspace_and_each_version() {
        let props = properties(&bookworm(true));
        let pairs: Vec<(&str, &str)> = props
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("userspace", "bookworm"),
                ("userspace.own", "true"),
                ("userspace.kexec-tools", "1:2.0.25-3+deb12u2"),
                ("userspace.makedumpfile", "1:1.7.2-1"),
            ]
        );
    }
}
