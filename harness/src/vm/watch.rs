//! Waiting for the guest's status events: each wait has a deadline, and ends early with a reason
//! when the guest reports a failure or QEMU exits.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::vm::console::{last_lines, LineTail};
use crate::vm::qemu::Guest;
use crate::vm::status::{Event, StatusReader};

pub struct Watch<'a> {
    guest: &'a mut Guest,
    status: StatusReader,
    console: LineTail,
    echo: bool,
    scale: f64,
    stderr: PathBuf,
    /// Every status event seen so far, with the host time it arrived.
    history: Vec<(Instant, String)>,
    /// Events read but not yet consumed by a wait.
    pending: VecDeque<(Instant, Event)>,
}

impl<'a> Watch<'a> {
    /// Follows `status_log` and `serial_log` of `guest`; deadlines are multiplied by `scale`.
    pub fn new(
        guest: &'a mut Guest,
        status_log: &Path,
        serial_log: &Path,
        stderr: &Path,
        echo: bool,
        scale: f64,
    ) -> Self {
        Watch {
            guest,
            status: StatusReader::new(status_log),
            console: LineTail::new(serial_log),
            echo,
            scale,
            stderr: stderr.into(),
            history: Vec::new(),
            pending: VecDeque::new(),
        }
    }

    /// The guest being watched.
    pub fn guest(&mut self) -> &mut Guest {
        self.guest
    }

    /// Reads new status events and consumes them up to the first `name` or `fail` event; later
    /// events stay queued for the next wait.
    fn take(&mut self, name: &str) -> Option<Result<(Instant, Event), String>> {
        for (at, event) in self.status.poll() {
            self.history.push((at, event.name.clone()));
            self.pending.push_back((at, event));
        }
        while let Some((at, event)) = self.pending.pop_front() {
            if event.name == "fail" {
                let phase = event.field("phase").unwrap_or("?");
                let reason = event.field("reason").unwrap_or("no reason given");
                return Some(Err(format!(
                    "guest reported failure in phase {phase}: {reason}"
                )));
            }
            if event.name == name {
                return Some(Ok((at, event)));
            }
        }
        None
    }

    /// When event `name` was last seen, if ever.
    pub fn seen(&self, name: &str) -> Option<Instant> {
        self.history
            .iter()
            .rev()
            .find(|(_, n)| n == name)
            .map(|(at, _)| *at)
    }

    /// Waits for status event `name`; a `fail` event, QEMU exiting or the deadline ends the wait
    /// with a reason naming `what` was expected.
    pub fn until(
        &mut self,
        name: &str,
        timeout: Duration,
        what: &str,
    ) -> Result<(Instant, Event), String> {
        let timeout = timeout.mul_f64(self.scale);
        let deadline = Instant::now() + timeout;
        loop {
            for line in self.console.poll() {
                if self.echo {
                    eprintln!("  | {line}");
                }
            }
            if let Some(found) = self.take(name) {
                return found;
            }
            if let Some(status) = self.guest.try_exit() {
                // The file may hold a last event written just before QEMU exited.
                if let Some(found) = self.take(name) {
                    return found;
                }
                let stderr = last_lines(&self.stderr, 5).join(" | ");
                let stderr = if stderr.is_empty() {
                    String::new()
                } else {
                    format!("; QEMU stderr: {stderr}")
                };
                return Err(format!(
                    "QEMU exited ({status}) while waiting for {what}{stderr}"
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!("no sign of {what} within {}s", timeout.as_secs()));
            }
            std::thread::sleep(crate::host::deadline::POLL);
        }
    }
}
