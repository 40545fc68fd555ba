//! Every child process kdrill starts (QEMU, make, apt-get, dpkg-deb, mkfs.ext4, debugfs,
//! makedumpfile, systemctl): each in a process group of its own, with a parent-death signal,
//! registered so a stop kills it (`interrupt`), waited on with a deadline, and killed and reaped
//! on every path (`Drop`).
//!
//! [`GroupChild`] is the process; [`run`] and [`run_status`] are the one way to run a command to
//! its end: under a deadline (scaled by `KDRILL_TIMEOUT_SCALE`), ending early on a stop.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::host::deadline::{self, wait_until};
use crate::host::interrupt::{self, Stop};

/// A running child and its process group. Dropping it kills and reaps the whole group.
pub struct GroupChild {
    child: Child,
    pgid: i32,
    exited: Option<ExitStatus>,
}

impl GroupChild {
    /// Starts `command` in a new process group; the child gets SIGKILL if the thread that started
    /// it dies.
    pub fn start(command: &mut Command) -> std::io::Result<GroupChild> {
        command.process_group(0);
        // SAFETY: prctl is async-signal-safe; it only sets a flag on the new process.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn()?;
        let pgid = child.id() as i32;
        interrupt::register(pgid);
        Ok(GroupChild {
            child,
            pgid,
            exited: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if the child has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    /// Waits up to `timeout` for the child to exit by itself (less if a stop is asked for).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_until(timeout, || {
            if interrupt::interrupted().is_some() {
                // The group was killed: collect the status at once.
                return self.child.wait().ok().inspect(|s| self.exited = Some(*s));
            }
            self.try_exit()
        })
    }

    /// Kills the process group and reaps the child. Idempotent. Returns an error naming what survived.
    pub fn kill(&mut self) -> Result<(), String> {
        interrupt::kill_group(self.pgid);
        if self.exited.is_none() {
            self.exited = self.child.wait().ok();
        }
        interrupt::unregister(self.pgid);
        // Anything left in the group (QEMU helpers, gcc under make) must be gone too.
        let gone = deadline::wait_through_stop(Duration::from_secs(5), || {
            // SAFETY: signal 0 only checks for existence.
            let alive = unsafe { libc::kill(-self.pgid, 0) } == 0;
            (!alive).then_some(())
        });
        gone.ok_or_else(|| format!("processes of group {} survived SIGKILL", self.pgid))
    }
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        if let Err(err) = self.kill() {
            eprintln!("kdrill: teardown: {err}");
        }
    }
}

/// A command that ran to its end.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Finished {
    /// The last non-empty line of standard error (or of standard output when stderr is empty).
    pub fn last_line(&self) -> String {
        let pick = if self.stderr.iter().any(|b| !b.is_ascii_whitespace()) {
            &self.stderr
        } else {
            &self.stdout
        };
        String::from_utf8_lossy(pick)
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_string()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start `{command}`")]
    Start {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` did not finish within {}s and was killed: the host is overloaded or the tool is stuck; rerun with KDRILL_TIMEOUT_SCALE=2 (or higher) to allow more time", .after.as_secs())]
    Timeout { command: String, after: Duration },
    #[error("`{command}` was killed: kdrill was interrupted ({stop})")]
    Interrupted { command: String, stop: Stop },
}

/// Runs `command` to its end with stdin closed, stdout and stderr captured, within `limit`
/// (multiplied by `KDRILL_TIMEOUT_SCALE`). A timeout or a stop kills its whole process group.
pub fn run(command: &mut Command, limit: Duration) -> Result<Finished, RunError> {
    run_with_input(command, Stdio::null(), limit)
}

/// [`run`] with `stdin` as the command's standard input (a file, for `makedumpfile -R < dump`).
pub fn run_with_input(
    command: &mut Command,
    stdin: Stdio,
    limit: Duration,
) -> Result<Finished, RunError> {
    command
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = start(command)?;
    let stdout = drain(child.child.stdout.take());
    let stderr = drain(child.child.stderr.take());
    let status = finish(&mut child, command, limit);
    // The group is dead now (exited or killed), so the pipes are closed.
    drop(child);
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    Ok(Finished {
        status: status?,
        stdout,
        stderr,
    })
}

/// Runs `command` to its end with the stdio it was given (inherited, or files), within `limit`
/// (multiplied by `KDRILL_TIMEOUT_SCALE`).
pub fn run_status(command: &mut Command, limit: Duration) -> Result<ExitStatus, RunError> {
    let mut child = start(command)?;
    finish(&mut child, command, limit)
}

/// Reads a pipe to its end on a thread of its own, so neither pipe can fill and stall the child.
fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

fn start(command: &mut Command) -> Result<GroupChild, RunError> {
    GroupChild::start(command).map_err(|source| RunError::Start {
        command: describe(command),
        source,
    })
}

fn finish(
    child: &mut GroupChild,
    command: &Command,
    limit: Duration,
) -> Result<ExitStatus, RunError> {
    let limit = deadline::scaled(limit);
    let started = Instant::now();
    let status = child.wait_exit(limit);
    if let Some(stop) = interrupt::interrupted() {
        let _ = child.kill();
        return Err(RunError::Interrupted {
            command: describe(command),
            stop,
        });
    }
    match status {
        Some(status) => Ok(status),
        None => {
            let _ = child.kill();
            Err(RunError::Timeout {
                command: describe(command),
                after: started.elapsed().max(limit),
            })
        }
    }
}

/// `program arg…`, shell-quoted, for messages.
pub fn describe(command: &Command) -> String {
    let args: Vec<String> = command
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    shell_line(Path::new(command.get_program()), &args)
}

/// A shell-quoted command line (as saved in `qemu-cmdline.txt`, and in error messages).
pub fn shell_line(program: &Path, args: &[String]) -> String {
    std::iter::once(shell_quote(&program.display().to_string()))
        .chain(args.iter().map(|a| shell_quote(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One word quoted for `sh`: as it is when it holds nothing the shell would read specially.
pub fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// The last `n` lines of a file (lossy UTF-8, carriage returns dropped); empty when unreadable.
pub fn last_lines(path: &Path, n: usize) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<String> = text
        .lines()
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_captures_output_and_status() {
        let done = run(
            Command::new("/bin/sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(done.status.code(), Some(3));
        assert_eq!(done.stdout, b"out\n");
        assert_eq!(done.last_line(), "err");
    }

    #[test]
    fn a_timeout_names_the_command_and_kills_its_group() {
        let started = Instant::now();
        // The grandchild holds the pipe open: it must die with the group, or this would hang.
        let err = run(
            Command::new("/bin/sh").args(["-c", "sleep 300 & sleep 300"]),
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10));
        let text = err.to_string();
        assert!(
            text.starts_with("`/bin/sh -c 'sleep 300 & sleep 300'` did not finish within"),
            "{text}"
        );
        assert!(text.contains("KDRILL_TIMEOUT_SCALE"), "{text}");
    }

    #[test]
    fn a_missing_program_is_a_start_error() {
        let err = run(
            &mut Command::new("/nonexistent/kdrill-tool"),
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(matches!(err, RunError::Start { .. }), "{err}");
        assert_eq!(err.to_string(), "cannot start `/nonexistent/kdrill-tool`");
    }

    #[test]
    fn shell_line_quotes_what_needs_it() {
        let line = shell_line(
            Path::new("/usr/bin/qemu"),
            &["-append".into(), "a b".into(), "it's".into()],
        );
        assert_eq!(line, "/usr/bin/qemu -append 'a b' 'it'\\''s'");
        assert_eq!(
            shell_line(Path::new("/my projects/x"), &[]),
            "'/my projects/x'"
        );
    }

    #[test]
    fn last_lines_keeps_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serial.log");
        std::fs::write(&path, "a\nb\r\nc\n").unwrap();
        assert_eq!(last_lines(&path, 2), ["b", "c"]);
        assert_eq!(last_lines(&path, 10), ["a", "b", "c"]);
        assert!(last_lines(&dir.path().join("none"), 3).is_empty());
    }
}
