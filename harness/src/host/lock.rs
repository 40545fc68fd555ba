//! Exclusive file locks (`flock`) that let parallel runs share one cache: one process fetches a
//! kernel or builds the crasher, the others wait for it, under a deadline and ending on a stop.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::host::deadline::{self, wait_until};
use crate::host::interrupt::{self, Stop};

/// An exclusive `flock` on a file, released on drop (and by the kernel if the process dies).
#[derive(Debug)]
pub struct FileLock(File);

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: another kdrill held this lock for over {}s (fetching or building the same thing); if none is running, the holder is stuck: kill it (`fuser -v {path}`) or rerun with KDRILL_TIMEOUT_SCALE=2", .after.as_secs())]
    Timeout { path: PathBuf, after: Duration },
    #[error("{path}: stopped while waiting for this lock ({stop})")]
    Interrupted { path: PathBuf, stop: Stop },
}

impl FileLock {
    /// Takes the lock on `path` (created if absent), waiting up to `limit` (scaled by
    /// `KDRILL_TIMEOUT_SCALE`) while another process holds it.
    pub fn acquire(path: &Path, limit: Duration) -> Result<FileLock, LockError> {
        let io = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io)?;
        let mut said = false;
        let mut failed = None;
        let got = wait_until(deadline::scaled(limit), || {
            // SAFETY: flock on a file descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Some(());
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK)
                && err.raw_os_error() != Some(libc::EINTR)
            {
                failed = Some(err);
                return Some(());
            }
            if !said {
                eprintln!(
                    "kdrill: waiting for {} (another kdrill holds it)",
                    path.display()
                );
                said = true;
            }
            None
        });
        if let Some(err) = failed {
            return Err(io(err));
        }
        match got {
            Some(()) => Ok(FileLock(file)),
            None => Err(match interrupt::interrupted() {
                Some(stop) => LockError::Interrupted {
                    path: path.to_path_buf(),
                    stop,
                },
                None => LockError::Timeout {
                    path: path.to_path_buf(),
                    after: deadline::scaled(limit),
                },
            }),
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // SAFETY: unlocking our own descriptor; closing would release it too.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_makes_the_next_one_wait_until_its_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.lock");
        let first = FileLock::acquire(&path, Duration::from_secs(5)).unwrap();
        // flock locks belong to the open file description: a second open in this process
        // contends exactly like another process would.
        let started = std::time::Instant::now();
        let err = FileLock::acquire(&path, Duration::from_millis(300)).unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(250));
        assert!(matches!(err, LockError::Timeout { .. }), "{err}");
        assert!(
            err.to_string().contains("another kdrill held this lock"),
            "{err}"
        );
        drop(first);
        FileLock::acquire(&path, Duration::from_secs(5)).expect("released on drop");
    }

    #[test]
    fn a_waiter_gets_the_lock_when_the_holder_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.lock");
        let first = FileLock::acquire(&path, Duration::from_secs(5)).unwrap();
        let waiter = {
            let path = path.clone();
            std::thread::spawn(move || FileLock::acquire(&path, Duration::from_secs(20)).is_ok())
        };
        std::thread::sleep(Duration::from_millis(200));
        drop(first);
        assert!(waiter.join().unwrap());
    }

    #[test]
    fn an_unopenable_path_is_an_error_naming_it() {
        let err = FileLock::acquire(Path::new("/nonexistent/dir/x.lock"), Duration::from_secs(1))
            .unwrap_err();
        assert!(
            err.to_string().starts_with("/nonexistent/dir/x.lock: "),
            "{err}"
        );
    }
}
