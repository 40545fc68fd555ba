//! Saving a running guest's whole state to a file and starting another QEMU from it: QMP
//! `stop` + `migrate` to `exec:cat > FILE`, and `-incoming exec:cat FILE` + `cont` (QEMU 7.2 has
//! no `file:` migration). Every step under a deadline. The chardevs, disks and sockets of the
//! restored QEMU are its own: only the guest's RAM and device state come from the file.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::host::deadline::wait_until;
use crate::host::process::shell_quote;
use crate::vm::qmp::{Qmp, QmpError};

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("QMP: {0}")]
    Qmp(#[from] QmpError),
    #[error("saving the guest failed: {0}")]
    Failed(String),
    #[error("the guest's state was not {what} within {}s", .after.as_secs())]
    Timeout { what: &'static str, after: Duration },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// How often the migration's progress is asked for.
const POLL: Duration = Duration::from_millis(50);

/// Stops the guest and writes its state to `file` (replaced whole: written aside, then renamed);
/// returns its size in bytes. The guest stays stopped.
pub fn save(qmp: &mut Qmp, file: &Path, limit: Duration) -> Result<u64, SnapshotError> {
    let partial = file.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    qmp.execute("stop", None)?;
    let uri = format!("exec:cat > {}", shell_quote(&partial.display().to_string()));
    qmp.execute("migrate", Some(json!({ "uri": uri })))?;
    let mut failure = None;
    let done = wait_until(limit, || {
        let state = match qmp.execute("query-migrate", None) {
            Ok(state) => state,
            Err(e) => {
                failure = Some(SnapshotError::Qmp(e));
                return Some(());
            }
        };
        match state.get("status").and_then(Value::as_str) {
            Some("completed") => Some(()),
            Some(status @ ("failed" | "cancelled")) => {
                let why = state
                    .get("error-desc")
                    .and_then(Value::as_str)
                    .unwrap_or(status);
                failure = Some(SnapshotError::Failed(why.to_string()));
                Some(())
            }
            _ => {
                std::thread::sleep(POLL);
                None
            }
        }
    });
    if let Some(failure) = failure {
        return Err(failure);
    }
    if done.is_none() {
        return Err(SnapshotError::Timeout {
            what: "saved",
            after: limit,
        });
    }
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| SnapshotError::Io { path, source }
    };
    let bytes = std::fs::metadata(&partial).map_err(io(&partial))?.len();
    std::fs::rename(&partial, file).map_err(io(file))?;
    Ok(bytes)
}

/// The QEMU arguments that start a guest from `file` instead of booting it.
pub fn incoming_args(file: &Path) -> Vec<String> {
    vec![
        "-incoming".into(),
        format!("exec:cat {}", shell_quote(&file.display().to_string())),
    ]
}

/// Waits for a QEMU started with [`incoming_args`] to have read the state, then lets the guest
/// run on.
pub fn resume(qmp: &mut Qmp, limit: Duration) -> Result<(), SnapshotError> {
    let mut failure = None;
    let loaded = wait_until(limit, || match qmp.execute("query-status", None) {
        Ok(state) => match state.get("status").and_then(Value::as_str) {
            Some("inmigrate") => {
                std::thread::sleep(POLL);
                None
            }
            other => Some(other.unwrap_or("unknown").to_string()),
        },
        Err(e) => {
            failure = Some(e);
            Some(String::new())
        }
    });
    if let Some(e) = failure {
        return Err(e.into());
    }
    match loaded.as_deref() {
        None => Err(SnapshotError::Timeout {
            what: "loaded",
            after: limit,
        }),
        Some("paused" | "prelaunch" | "postmigrate") => {
            qmp.execute("cont", None)?;
            Ok(())
        }
        Some("running") => Ok(()),
        Some(other) => Err(SnapshotError::Failed(format!(
            "after loading, the guest is `{other}`, not paused"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_file_is_quoted_for_the_shell_qemu_runs() {
        let args = incoming_args(Path::new("/tmp/my projects/it's/state"));
        assert_eq!(args[0], "-incoming");
        assert_eq!(args[1], "exec:cat '/tmp/my projects/it'\\''s/state'");
        assert_eq!(
            incoming_args(Path::new("/tmp/plain/state"))[1],
            "exec:cat /tmp/plain/state"
        );
    }
}
