//! One helper for every wait: poll a condition until it holds or a deadline passes; and the one
//! reading of `KDRILL_TIMEOUT_SCALE`, which stretches every deadline on a slow machine.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// `KDRILL_TIMEOUT_SCALE` (a positive number; 1 when unset or not a positive number), read once.
pub fn scale() -> f64 {
    static SCALE: OnceLock<f64> = OnceLock::new();
    *SCALE.get_or_init(|| parse_scale(std::env::var("KDRILL_TIMEOUT_SCALE").ok().as_deref()))
}

fn parse_scale(value: Option<&str>) -> f64 {
    value
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(1.0)
}

/// `limit` stretched by [`scale`].
pub fn scaled(limit: Duration) -> Duration {
    limit.mul_f64(scale())
}

/// How often [`wait_until`] polls: short enough not to add visible latency to a phase.
pub const POLL: Duration = Duration::from_millis(25);

/// Polls `probe` until it returns `Some`, or returns `None` once `timeout` has passed or kdrill
/// was asked to stop (`interrupt::interrupted()` tells which).
pub fn wait_until<T>(timeout: Duration, probe: impl FnMut() -> Option<T>) -> Option<T> {
    poll(
        timeout,
        || crate::host::interrupt::interrupted().is_some(),
        probe,
    )
}

/// [`wait_until`] that goes on through a stop: for teardown, which must finish whatever happens.
pub fn wait_through_stop<T>(timeout: Duration, probe: impl FnMut() -> Option<T>) -> Option<T> {
    poll(timeout, || false, probe)
}

fn poll<T>(
    timeout: Duration,
    give_up: impl Fn() -> bool,
    mut probe: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        let now = Instant::now();
        if now >= deadline || give_up() {
            return None;
        }
        std::thread::sleep(POLL.min(deadline - now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_is_a_positive_number_or_one() {
        assert_eq!(parse_scale(Some("2")), 2.0);
        assert_eq!(parse_scale(Some(" 1.5 ")), 1.5);
        for bad in [
            None,
            Some(""),
            Some("0"),
            Some("-1"),
            Some("fast"),
            Some("inf"),
        ] {
            assert_eq!(parse_scale(bad), 1.0, "{bad:?}");
        }
    }

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
