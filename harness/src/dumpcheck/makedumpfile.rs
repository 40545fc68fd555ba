//! The peer tool's reading of a dump's log: `makedumpfile --dump-dmesg` of the case's capture
//! userspace (run with that sysroot's own loader and libraries, or the host's), with a
//! flattened dump (`-F`) first converted by `makedumpfile -R`, since `--dump-dmesg` cannot read
//! that format. Both under a deadline. Which release it is decides how it writes the log
//! (`images/userspace.yaml`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::fetch::userspace::{self, Capture};
use crate::host::process;
use crate::host::rootfs;
use crate::spec::userspace::{DmesgFormat, UserspaceData};

/// Each makedumpfile run on the host (`-R`, then `--dump-dmesg`); the case's budget counts two.
pub const READ: Duration = Duration::from_secs(60);

/// A makedumpfile that re-reads dumps' logs.
#[derive(Debug, Clone)]
pub struct Reader {
    /// The program (a real path on this machine).
    pub program: PathBuf,
    /// The sysroot it belongs to and is run from (`None`: the host's, run as it is).
    pub root: Option<PathBuf>,
    /// Its Debian version, when dpkg knows it.
    pub version: Option<String>,
    /// How it writes the log (`plain` when its version is unknown: Debian 12's).
    pub format: DmesgFormat,
    /// Its upstream `LATEST_VERSION`, when its version is known.
    pub latest_kernel: Option<String>,
    /// `makedumpfile 1:1.7.6-1 (trixie)`, for records and messages.
    pub label: String,
}

impl Reader {
    /// The makedumpfile of a case's capture userspace.
    pub fn of(capture: &Capture, data: &UserspaceData) -> Result<Reader, String> {
        let program = rootfs::locate(&capture.root, "makedumpfile").ok_or_else(|| {
            format!(
                "no makedumpfile in the {} userspace ({})",
                capture.used.name,
                capture.root.display()
            )
        })?;
        let version = capture.used.packages.get("makedumpfile").cloned();
        let host = capture.root == Path::new("/");
        Ok(Reader::new(
            program,
            (!host).then(|| capture.root.clone()),
            version,
            &capture.used.name,
            data,
        ))
    }

    /// The host's makedumpfile, when it has one (its version from the host's dpkg).
    pub fn host(data: &UserspaceData) -> Option<Reader> {
        let program = crate::host::tools::find("makedumpfile")?;
        let status = std::fs::read_to_string("/var/lib/dpkg/status").unwrap_or_default();
        let version = userspace::status::installed(&status).remove("makedumpfile");
        Some(Reader::new(program, None, version, "host", data))
    }

    fn new(
        program: PathBuf,
        root: Option<PathBuf>,
        version: Option<String>,
        whose: &str,
        data: &UserspaceData,
    ) -> Reader {
        let release = version.as_deref().and_then(|v| data.makedumpfile(v));
        Reader {
            label: format!(
                "makedumpfile {} ({whose})",
                version.as_deref().unwrap_or("of unknown version")
            ),
            format: release.map_or(DmesgFormat::Plain, |r| r.dmesg),
            latest_kernel: release.map(|r| r.latest_kernel.clone()),
            program,
            root,
            version,
        }
    }

    /// Whether `kernel_release` lies above the newest kernel this makedumpfile knows
    /// (`None`: one of them is not known).
    pub fn beyond(&self, kernel_release: &str) -> Option<bool> {
        crate::spec::userspace::above(kernel_release, self.latest_kernel.as_deref()?)
    }

    fn command(&self) -> Result<Command, String> {
        match &self.root {
            Some(root) => userspace::run::loader_command(root, &self.program),
            None => Ok(Command::new(&self.program)),
        }
    }
}

/// Runs `makedumpfile --dump-dmesg` on `vmcore` into `out` and returns what it wrote.
pub fn dmesg(reader: &Reader, vmcore: &Path, out: &Path) -> Result<Vec<u8>, String> {
    let _ = std::fs::remove_file(out);
    let converted = out.with_extension("rearranged");
    let input = if is_flattened(vmcore) {
        rearrange(reader, vmcore, &converted)?;
        converted.clone()
    } else {
        vmcore.to_path_buf()
    };
    let mut command = reader.command()?;
    command.arg("--dump-dmesg").arg(&input).arg(out);
    let run = process::run(&mut command, READ);
    let _ = std::fs::remove_file(&converted);
    let run = run.map_err(|e| e.to_string())?;
    if !run.status.success() || !out.is_file() {
        return Err(format!(
            "{} --dump-dmesg could not read the dump ({}): {}",
            reader.label,
            run.status,
            run.last_line()
        ));
    }
    std::fs::read(out).map_err(|e| format!("cannot read {}: {e}", out.display()))
}

/// `makedumpfile -R OUT < FLATTENED`.
fn rearrange(reader: &Reader, vmcore: &Path, out: &Path) -> Result<(), String> {
    let source = std::fs::File::open(vmcore)
        .map_err(|e| format!("cannot open {}: {e}", vmcore.display()))?;
    let mut command = reader.command()?;
    command.arg("-R").arg(out);
    let run = process::run_with_input(&mut command, Stdio::from(source), READ)
        .map_err(|e| e.to_string())?;
    if !run.status.success() {
        return Err(format!(
            "{} -R could not convert the flattened dump ({}): {}",
            reader.label,
            run.status,
            run.last_line()
        ));
    }
    Ok(())
}

/// makedumpfile's flattened format starts with the signature `makedumpfile` (IMPLEMENTATION).
pub fn is_flattened(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 12];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && &head == b"makedumpfile"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(version: Option<&str>) -> Reader {
        let data = crate::spec::userspace::load(None).unwrap();
        Reader::new(
            PathBuf::from("/r/usr/bin/makedumpfile"),
            Some(PathBuf::from("/r")),
            version.map(String::from),
            "trixie",
            &data,
        )
    }

    #[test]
    fn the_version_decides_the_format_and_the_ceiling() {
        let trixie = reader(Some("1:1.7.6-1"));
        assert_eq!(trixie.format, DmesgFormat::Caller);
        assert_eq!(trixie.label, "makedumpfile 1:1.7.6-1 (trixie)");
        assert_eq!(trixie.beyond("6.12.117+deb13-amd64"), Some(true));
        assert_eq!(trixie.beyond("6.1.0-47-amd64"), Some(false));
        let bookworm = reader(Some("1:1.7.2-1"));
        assert_eq!(bookworm.format, DmesgFormat::Plain);
        let unknown = reader(None);
        assert_eq!(unknown.format, DmesgFormat::Plain);
        assert_eq!(unknown.beyond("6.1.0-47-amd64"), None);
        assert_eq!(unknown.label, "makedumpfile of unknown version (trixie)");
    }
}
