//! Whether a folder given to `--root` looks like a captured tree (a copy of a host's `/proc`,
//! `/etc`, `/sys`, `/boot`, as in a sosreport), and which of its subfolders does when it does not.
//!
//! The minimal evidence is one file kdrill reads under `proc/`, `etc/`, `sys/` or `boot/` (or a
//! sosreport's `uname -a`): a folder without any of them would only yield a confident verdict
//! about nothing (every file "missing", so "no kdump service": NOT READY).

use std::path::Path;

use crate::readiness::source::Root;

/// Files whose presence shows a captured tree; one is enough.
pub const EVIDENCE: &[&str] = &[
    "/proc/cmdline",
    "/proc/meminfo",
    "/proc/iomem",
    "/proc/sys/kernel/osrelease",
    "/proc/config.gz",
    "/sys/kernel/kexec_crash_size",
    "/sys/kernel/kexec_crash_loaded",
    "/etc/os-release",
    "/etc/default/kdump-tools",
    "/etc/kdump.conf",
    "/etc/sysconfig/kdump",
    "/sos_commands/kernel/uname_-a",
];

/// Most subfolders looked into for a captured tree (an extracted sosreport is one level down).
const MAX_SUBFOLDERS: usize = 200;
/// Most subfolders named in a "did you mean".
const MAX_NAMED: usize = 3;

/// Whether `root` holds at least one file kdrill reads (see [`EVIDENCE`]), or a kernel's
/// `boot/config-*` or `boot/vmlinuz-*`.
pub fn looks_captured(root: &Root) -> bool {
    EVIDENCE.iter().any(|path| root.entry_exists(path))
        || root.list("/boot").is_ok_and(|names| {
            names
                .iter()
                .any(|n| n.starts_with("config-") || n.starts_with("vmlinuz-"))
        })
}

/// The subfolders of `base` that look like captured trees (`sosreport-db1-2026…/`), at most
/// [`MAX_NAMED`], in name order.
pub fn captured_subfolders(base: &Path) -> Vec<String> {
    let Ok(names) = Root::new(base).list("/") else {
        return Vec::new();
    };
    names
        .into_iter()
        .take(MAX_SUBFOLDERS)
        .map(|name| base.join(name))
        .filter(|path| path.is_dir() && looks_captured(&Root::new(path)))
        .take(MAX_NAMED)
        .map(|path| path.display().to_string())
        .collect()
}

/// The message for a folder that is not a captured tree, with the subfolders that are.
pub fn not_a_tree_message(path: &str, candidates: &[String]) -> String {
    let hint = match candidates {
        [] => "; pass the folder that holds the copied proc/, etc/, sys/ and boot/ (an extracted sosreport's top folder)".to_string(),
        [one] => format!("; did you mean --root {one}?"),
        several => format!(
            "; did you mean one of: {}?",
            several
                .iter()
                .map(|c| format!("--root {c}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    format!(
        "{path} does not look like a captured tree: no proc/, etc/, sys/ or boot/ with a file kdrill reads (proc/cmdline, proc/meminfo, proc/sys/kernel/osrelease, sys/kernel/kexec_crash_size, etc/os-release, etc/default/kdump-tools, boot/config-<release>, …){hint}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_and_subfolders() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!looks_captured(&Root::new(dir.path())));
        assert!(captured_subfolders(dir.path()).is_empty());
        // An empty proc/ is no evidence; a sosreport one level down is named.
        std::fs::create_dir_all(dir.path().join("proc")).unwrap();
        assert!(!looks_captured(&Root::new(dir.path())));
        let sos = dir.path().join("sosreport-db1-2026-12-01-abcdef");
        std::fs::create_dir_all(sos.join("proc/sys/kernel")).unwrap();
        std::fs::write(sos.join("proc/sys/kernel/osrelease"), "6.1.0-47-amd64\n").unwrap();
        std::fs::create_dir_all(dir.path().join("notes")).unwrap();
        assert_eq!(
            captured_subfolders(dir.path()),
            vec![sos.display().to_string()]
        );
        // A kernel's config in boot/ is enough.
        let boot = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(boot.path().join("boot")).unwrap();
        std::fs::write(boot.path().join("boot/config-6.1.0-47-amd64"), "").unwrap();
        assert!(looks_captured(&Root::new(boot.path())));
        let message = not_a_tree_message("/x", &["/x/a".into(), "/x/b".into()]);
        assert!(
            message.ends_with("did you mean one of: --root /x/a, --root /x/b?"),
            "{message}"
        );
    }
}
