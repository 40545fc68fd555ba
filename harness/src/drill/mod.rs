//! `kdrill drill` on a real host: arm (a drill id, a state file, the collect unit, a marker in the
//! kernel log), crash on purpose, and after the reboot collect (find the dump the host's own kdump
//! service wrote for this drill, open it with kdrill's reader, judge it, time each step, keep a
//! record under `/var/lib/kdrill/drill/`, notify).
//!
//! [`route`] and [`judge`] are pure; [`arm::arm`] and [`collect::collect`] are
//! the I/O shells. The record's format and the check that reports the last drill live in
//! `readiness::lastdrill`, which `check` reads without this module.

pub mod arm;
pub mod collect;
pub mod judge;
pub mod route;

use crate::host::atomic::AtomicError;
use std::path::Path;

/// What stopped a drill from arming or collecting (a failed drill is a record, not an error).
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error("kdrill drill crashes this host on purpose and must run as root: run it with sudo")]
    NotRoot,
    #[error("refusing to crash a host that is NOT READY: a crash now would not leave a usable dump. Fix these first:\n{fixes}")]
    NotReady { fixes: String },
    #[error("a drill is armed already ({id}): run `kdrill drill --collect`, or remove {path} to disarm it")]
    Armed { id: String, path: String },
    #[error("no kdump configuration found (kdump-tools, kdump-utils or kdumptool): install and enable the distribution's kdump service, then `kdrill check`")]
    NoService,
    #[error("the dump goes to {place}, which this host cannot read back after the reboot: kdrill drill needs a local dump folder")]
    RemoteTarget { place: String },
    #[error("this host does not run systemd (no /run/systemd/system): the drill's collect unit could not run after the reboot")]
    NoSystemd,
    #[error("the answer {given:?} is not this host's name {host:?}: nothing was armed")]
    NotConfirmed { given: String, host: String },
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the host did not crash after {route}: {why}; the drill was disarmed")]
    DidNotCrash { route: String, why: String },
    #[error("the drill state {path} is unreadable: {why}; remove it to disarm")]
    BadState { path: String, why: String },
}

pub(crate) fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DrillError {
    let path = path.display().to_string();
    move |source| DrillError::Io { what, path, source }
}

/// Writes `bytes` to `path` so a crash or power loss leaves the old file or the new one, never a
/// part (`host::atomic`), creating its folder; a new file is 0600, as kdump-tools keeps its dmesg.
pub fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), DrillError> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    crate::host::atomic::write_mode(path, bytes, 0o600).map_err(|e| {
        let (what, source) = match e {
            AtomicError::Temp { source, .. } => ("write a temporary file beside", source),
            AtomicError::Replace { source, .. } => ("rename over", source),
        };
        io(what, path)(source)
    })
}

pub(crate) use crate::readiness::lastdrill::now_unix;

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn a_drill_file_is_written_whole_in_a_new_folder_readable_by_root_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("var/lib/kdrill/drill/x.json");
        write_durably(&path, b"{}\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{}\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let err = write_durably(&dir.path().join("missing/\0/x"), b"").unwrap_err();
        assert!(matches!(err, DrillError::Io { .. }), "{err}");
    }
}
