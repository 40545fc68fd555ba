//! The agent's I/O: commands under deadlines, the dump folder the image's kdump configuration
//! names, listing and copying the dump folder, the image's kdump packages.

use std::path::Path;
use std::process::Command;

use super::{core, COMMAND};
use crate::host::process;
use crate::readiness::kdumpconf::{self, Target};

/// The dump folder the image's kdump configuration names (a hint first), else `/var/crash`.
pub(super) fn coredir(hint: &str) -> String {
    if !hint.is_empty() {
        return hint.to_string();
    }
    let read = |p: &str| std::fs::read_to_string(p).ok();
    match kdumpconf::from_files(
        read("/etc/default/kdump-tools").as_deref(),
        read("/etc/kdump.conf").as_deref(),
        read("/etc/sysconfig/kdump").as_deref(),
    ) {
        Some(config) => match config.target {
            Target::Local(dir) => dir,
            Target::Remote { .. } => "/var/crash".into(),
        },
        None => "/var/crash".into(),
    }
}

/// The dump folder's crash folders, and a listing of them for the evidence.
pub(super) fn list_coredir(dir: &Path) -> (String, Vec<core::Folder>) {
    use std::os::unix::fs::MetadataExt as _;
    let mut listing = format!("{}:\n", dir.display());
    let mut folders = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        listing.push_str("  (cannot be read)\n");
        return (listing, folders);
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let Ok(meta) = entry.metadata() else { continue };
        let name = entry.file_name().to_string_lossy().into_owned();
        if !meta.is_dir() {
            listing.push_str(&format!("  {name} {} bytes\n", meta.len()));
            continue;
        }
        listing.push_str(&format!("  {name}/ (mtime {})\n", meta.mtime()));
        let mut files = Vec::new();
        if let Ok(inner) = std::fs::read_dir(entry.path()) {
            for file in inner.flatten() {
                let size = file.metadata().map(|m| m.len()).unwrap_or(0);
                let fname = file.file_name().to_string_lossy().into_owned();
                listing.push_str(&format!("    {fname} {size} bytes\n"));
                files.push(fname);
            }
        }
        folders.push(core::Folder {
            name,
            mtime: meta.mtime(),
            files,
        });
    }
    (listing, folders)
}

/// Copies the files of `from` into `to` (made), keeping their modes; what was copied.
pub(super) fn copy_folder(from: &Path, to: &Path) -> Result<String, String> {
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    let mut report = String::new();
    let entries = std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        let target = to.join(entry.file_name());
        let bytes = std::fs::copy(&path, &target)
            .map_err(|e| format!("{} → {}: {e}", path.display(), target.display()))?;
        report.push_str(&format!("{} {bytes} bytes\n", path.display()));
    }
    Ok(report)
}

/// The versions of the kdump packages the image has, `<package> <version>` per line (dpkg, else
/// rpm).
pub(super) fn packages() -> String {
    const NAMES: [&str; 5] = [
        "makedumpfile",
        "kdump-tools",
        "kexec-tools",
        "kdump-utils",
        "kdump",
    ];
    let mut words: Vec<String> = if which("dpkg-query") {
        vec![
            "dpkg-query".into(),
            "-W".into(),
            "-f".into(),
            "${Package} ${Version}\n".into(),
        ]
    } else if which("rpm") {
        vec![
            "rpm".into(),
            "-q".into(),
            "--qf".into(),
            "%{NAME} %{VERSION}-%{RELEASE}\n".into(),
        ]
    } else {
        return String::new();
    };
    words.extend(NAMES.iter().map(|n| n.to_string()));
    run(&words)
        .1
        .lines()
        .filter(|l| NAMES.iter().any(|n| l.starts_with(&format!("{n} "))))
        .map(|l| format!("{l}\n"))
        .collect()
}

pub(super) fn release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

pub(super) fn unit_state(unit: &str) -> String {
    run(&["systemctl".into(), "is-active".into(), unit.into()])
        .1
        .trim()
        .to_string()
}

/// Is `program` installed (in the sbin and bin folders a root shell has)?
pub(super) fn which(program: &str) -> bool {
    [
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
    ]
    .iter()
    .any(|dir| Path::new(dir).join(program).is_file())
}

/// Runs a command under [`COMMAND`]'s deadline: success, and stdout then stderr.
pub(super) fn run(words: &[String]) -> (bool, String) {
    let Some((program, args)) = words.split_first() else {
        return (false, String::new());
    };
    let mut command = Command::new(program);
    command.args(args).env(
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    );
    match process::run(&mut command, COMMAND) {
        Ok(done) => (
            done.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&done.stdout),
                String::from_utf8_lossy(&done.stderr)
            ),
        ),
        Err(e) => (false, e.to_string()),
    }
}

pub(super) fn last(out: &str) -> &str {
    out.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

pub(super) use crate::host::atomic::flush_all as sync;
