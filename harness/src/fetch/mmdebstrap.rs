//! Running mmdebstrap (the Debian image's two stages, the capture userspace's sysroot): one run
//! under a deadline, its command line and output kept beside each other in a log.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::host::process::{self, shell_line, RunError};
use crate::host::tools::{self, MissingTool};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    MissingTool(#[from] MissingTool),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("mmdebstrap ({stage}) failed ({status}): {last}; the whole output is in {log}")]
    Failed {
        stage: &'static str,
        status: String,
        last: String,
        log: PathBuf,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Runs mmdebstrap with `args` under `limit`, its output in `log`.
pub fn run(
    stage: &'static str,
    args: &[String],
    log: &Path,
    limit: Duration,
) -> Result<(), BuildError> {
    let mmdebstrap = tools::require("mmdebstrap")?;
    let file = std::fs::File::create(log).map_err(|source| BuildError::Io {
        path: log.into(),
        source,
    })?;
    let err = file.try_clone().map_err(|source| BuildError::Io {
        path: log.into(),
        source,
    })?;
    let mut command = Command::new(&mmdebstrap);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(file))
        .stderr(Stdio::from(err))
        .env("LC_ALL", "C.UTF-8");
    std::fs::write(
        log.with_extension("cmdline"),
        shell_line(&mmdebstrap, args) + "\n",
    )
    .map_err(|source| BuildError::Io {
        path: log.into(),
        source,
    })?;
    let status = process::run_status(&mut command, limit)?;
    if !status.success() {
        let last = crate::host::process::last_lines(log, 3).join(" | ");
        return Err(BuildError::Failed {
            stage,
            status: status.to_string(),
            last,
            log: log.into(),
        });
    }
    Ok(())
}
