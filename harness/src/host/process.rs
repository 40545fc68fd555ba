//! Child processes that must never outlive kdrill (QEMU, the crasher's `make`): each in a process
//! group of its own, with a parent-death signal, registered for the Ctrl-C handler, and killed and
//! reaped on every path (`Drop`).

use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::{Mutex, Once};
use std::time::Duration;

use crate::host::deadline::wait_until;

/// Process groups of live children, killed by the Ctrl-C handler.
static LIVE_GROUPS: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());
static INTERRUPT_HANDLER: Once = Once::new();

fn kill_group(pgid: i32) {
    // SAFETY: sending a signal to a process group we created.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
}

/// On Ctrl-C (or SIGTERM), kill every child group and exit 130: each child runs in its own process
/// group, so the terminal's signal does not reach it.
fn install_interrupt_handler() {
    INTERRUPT_HANDLER.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            let groups: Vec<i32> = LIVE_GROUPS
                .lock()
                .map(|g| g.iter().copied().collect())
                .unwrap_or_default();
            for pgid in groups {
                kill_group(pgid);
            }
            eprintln!("\nkdrill: interrupted; guests killed");
            std::process::exit(130);
        });
    });
}

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
        install_interrupt_handler();
        command.process_group(0);
        // SAFETY: prctl is async-signal-safe; it only sets a flag on the new process.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        // Register under the lock before the child can be orphaned by a Ctrl-C.
        let mut live = LIVE_GROUPS.lock().unwrap_or_else(|e| e.into_inner());
        let child = command.spawn()?;
        let pgid = child.id() as i32;
        live.insert(pgid);
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

    /// Waits up to `timeout` for the child to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_until(timeout, || self.try_exit())
    }

    /// Kills the process group and reaps the child. Idempotent. Returns an error naming what survived.
    pub fn kill(&mut self) -> Result<(), String> {
        kill_group(self.pgid);
        if self.exited.is_none() {
            self.exited = self.child.wait().ok();
        }
        LIVE_GROUPS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.pgid);
        // Anything left in the group (QEMU helpers, gcc under make) must be gone too.
        let gone = wait_until(Duration::from_secs(5), || {
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
