//! One helper for every wait: poll a condition until it holds or a deadline passes.

use std::time::{Duration, Instant};

/// How often [`wait_until`] polls: short enough not to add visible latency to a phase.
pub const POLL: Duration = Duration::from_millis(25);

/// Polls `probe` until it returns `Some`, or returns `None` once `timeout` has passed.
pub fn wait_until<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::sleep(POLL.min(deadline - now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_value_once_probe_holds() {
        let mut calls = 0;
        let got = wait_until(Duration::from_secs(5), || {
            calls += 1;
            (calls == 3).then_some(calls)
        });
        assert_eq!(got, Some(3));
    }

    #[test]
    fn gives_up_after_timeout() {
        let start = Instant::now();
        let got: Option<()> = wait_until(Duration::from_millis(100), || None);
        assert_eq!(got, None);
        assert!(start.elapsed() >= Duration::from_millis(100));
    }
}
