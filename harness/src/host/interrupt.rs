//! Stopping everything when asked: SIGINT, SIGTERM and SIGHUP (a terminal's Ctrl-C, a CI
//! runner's cancel, `timeout(1)`, a service manager, a closed terminal) and, for a test process,
//! its parent going away.
//!
//! Commands that run guests call [`install`] once. On the first signal every registered child
//! process group is killed at once, the flag [`interrupted`] is set, and the flow unwinds by
//! itself: each wait checks the flag and ends with an "interrupted" error, so the case in progress
//! writes its `result.json` with the reason. A backstop exits the process [`GRACE`] after the
//! signal whatever the flow is doing; a second signal exits at once. Without [`install`] the
//! default actions apply, and children still die with kdrill through their parent-death signal.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, Once};
use std::time::Duration;

/// Process groups of live children, killed when a stop is asked for.
static LIVE_GROUPS: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());
/// The stop asked for, as a [`Stop`] code; 0 while running.
static STOP: AtomicI32 = AtomicI32::new(0);
static INSTALL: Once = Once::new();

/// How long the flow gets, after a stop, to record what it was doing before the process exits
/// anyway. Below nextest's default grace period (10 s) so a test process is never SIGKILLed
/// before it wrote its result.
pub const GRACE: Duration = Duration::from_secs(8);

/// Why kdrill is stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Stop {
    #[serde(rename = "SIGINT")]
    Int,
    #[serde(rename = "SIGTERM")]
    Term,
    #[serde(rename = "SIGHUP")]
    Hup,
    /// The test runner that started this process is gone (the process was re-parented).
    #[serde(rename = "parent exited")]
    ParentGone,
}

impl Stop {
    fn code(self) -> i32 {
        match self {
            Stop::Int => libc::SIGINT,
            Stop::Term => libc::SIGTERM,
            Stop::Hup => libc::SIGHUP,
            Stop::ParentGone => 1000,
        }
    }

    fn from_code(code: i32) -> Option<Stop> {
        [Stop::Int, Stop::Term, Stop::Hup, Stop::ParentGone]
            .into_iter()
            .find(|s| s.code() == code)
    }

    /// `SIGTERM`, or `parent exited`.
    pub fn name(self) -> &'static str {
        match self {
            Stop::Int => "SIGINT",
            Stop::Term => "SIGTERM",
            Stop::Hup => "SIGHUP",
            Stop::ParentGone => "parent exited",
        }
    }

    /// The shell's convention, 128 + the signal number (a lost parent counts as SIGTERM).
    pub fn exit_code(self) -> i32 {
        match self {
            Stop::ParentGone => 128 + libc::SIGTERM,
            other => 128 + other.code(),
        }
    }
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The stop asked for, if any.
pub fn interrupted() -> Option<Stop> {
    Stop::from_code(STOP.load(Ordering::SeqCst))
}

/// Records a child's process group so a stop kills it. If a stop is already under way, the group
/// is killed at once.
pub(crate) fn register(pgid: i32) {
    let mut live = LIVE_GROUPS.lock().unwrap_or_else(|e| e.into_inner());
    live.insert(pgid);
    if interrupted().is_some() {
        kill_group(pgid);
    }
}

pub(crate) fn unregister(pgid: i32) {
    LIVE_GROUPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&pgid);
}

pub(crate) fn kill_group(pgid: i32) {
    // SAFETY: sending a signal to a process group this process created.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
}

/// Handles SIGINT, SIGTERM and SIGHUP from now on (idempotent). Every child group is killed on
/// the first one; the process exits [`GRACE`] later at the latest, or at a second signal.
pub fn install() {
    INSTALL.call_once(|| {
        let signals =
            signal_hook::iterator::Signals::new([libc::SIGINT, libc::SIGTERM, libc::SIGHUP]);
        match signals {
            Ok(mut signals) => {
                std::thread::spawn(move || {
                    for signal in signals.forever() {
                        if let Some(stop) = Stop::from_code(signal) {
                            stop_now(stop);
                        }
                    }
                });
            }
            Err(err) => {
                eprintln!("kdrill: cannot handle signals ({err}); Ctrl-C will not clean up")
            }
        }
    });
}

/// For a process started by a test runner: stop as on SIGTERM when the parent goes away (it was
/// killed, or crashed), so no guest outlives the run. Polls the parent pid; the kernel's
/// parent-death signal is tied to the thread that forked, which a multi-threaded runner may end.
pub fn stop_with_parent() {
    install();
    // SAFETY: getppid has no preconditions.
    let parent = unsafe { libc::getppid() };
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(250));
        // SAFETY: as above.
        if unsafe { libc::getppid() } != parent {
            stop_now(Stop::ParentGone);
            return;
        }
    });
}

/// Acts on a stop: the first one kills every child group and arms the backstop; a second one
/// exits at once.
fn stop_now(stop: Stop) {
    let first = STOP
        .compare_exchange(0, stop.code(), Ordering::SeqCst, Ordering::SeqCst)
        .is_ok();
    if !first {
        eprintln!("\nkdrill: {stop} again; exiting now");
        std::process::exit(stop.exit_code());
    }
    let groups: Vec<i32> = LIVE_GROUPS
        .lock()
        .map(|g| g.iter().copied().collect())
        .unwrap_or_default();
    for pgid in groups {
        kill_group(pgid);
    }
    eprintln!("\nkdrill: interrupted ({stop}); guests killed");
    std::thread::spawn(move || {
        std::thread::sleep(GRACE);
        eprintln!(
            "kdrill: still running {}s after {stop}; exiting",
            GRACE.as_secs()
        );
        std::process::exit(stop.exit_code());
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_name_themselves_and_their_exit_codes() {
        assert_eq!(Stop::Term.name(), "SIGTERM");
        assert_eq!(Stop::Int.exit_code(), 130);
        assert_eq!(Stop::Term.exit_code(), 143);
        assert_eq!(Stop::Hup.exit_code(), 129);
        assert_eq!(Stop::ParentGone.exit_code(), 143);
        for stop in [Stop::Int, Stop::Term, Stop::Hup, Stop::ParentGone] {
            assert_eq!(Stop::from_code(stop.code()), Some(stop));
            let json = serde_json::to_string(&stop).unwrap();
            assert_eq!(json, format!("\"{}\"", stop.name()));
        }
        assert_eq!(Stop::from_code(0), None);
    }
}
