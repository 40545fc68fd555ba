//! How a host crashes itself for a drill, and what its dump must then show: the route's own
//! panic and the frames of the crashed CPU's backtrace, in order (innermost first, frames may lie
//! between). Pinned from Debian 6.1 and 6.12 dumps, as the `sysrq` scenario's expectations are.

use regex::Regex;

/// A route a host can take by itself.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `echo c > /proc/sysrq-trigger` (works whatever `kernel.sysrq` says)
    Sysrq,
}

impl Route {
    pub fn word(self) -> &'static str {
        match self {
            Route::Sysrq => "sysrq",
        }
    }

    pub fn from_word(word: &str) -> Option<Route> {
        (word == "sysrq").then_some(Route::Sysrq)
    }

    /// The file written and what, to crash.
    pub fn trigger(self) -> (&'static str, &'static str) {
        match self {
            Route::Sysrq => ("/proc/sysrq-trigger", "c"),
        }
    }

    /// The panic message this route's crash leaves in the log.
    pub fn panic(self) -> &'static str {
        match self {
            Route::Sysrq => "sysrq triggered crash",
        }
    }

    /// The crashed CPU's frames, innermost first (regexes over `function+0xoff/0xsize`).
    pub fn frames(self) -> &'static [&'static str] {
        match self {
            Route::Sysrq => &[
                "^panic\\+",
                "^sysrq_handle_crash\\+",
                "^__handle_sysrq(\\.cold)?\\+",
                "^write_sysrq_trigger\\+",
            ],
        }
    }
}

/// The expected frames found in `frames` in order, or the first one missing.
pub fn frames_in_order(frames: &[String], expected: &[&str]) -> Result<(), String> {
    let mut at = 0;
    for pattern in expected {
        let re = Regex::new(pattern).map_err(|e| format!("bad frame pattern {pattern}: {e}"))?;
        match frames[at..].iter().position(|f| re.is_match(f)) {
            Some(found) => at += found + 1,
            None => return Err(format!("no frame matching {pattern} (after frame {at})")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_must_come_in_order() {
        let frames: Vec<String> = [
            "__crash_kexec+0x1/0x2",
            "panic+0x10/0x20",
            "sysrq_handle_crash+0x1/0x2",
            "__handle_sysrq.cold+0x1/0x2",
            "write_sysrq_trigger+0x1/0x2",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(frames_in_order(&frames, Route::Sysrq.frames()), Ok(()));
        let mut swapped = frames.clone();
        swapped.swap(1, 2);
        let err = frames_in_order(&swapped, Route::Sysrq.frames()).unwrap_err();
        assert!(
            err.contains("__handle_sysrq") || err.contains("sysrq_handle_crash"),
            "{err}"
        );
        assert_eq!(Route::from_word("sysrq"), Some(Route::Sysrq));
        assert_eq!(Route::from_word("nmi"), None);
    }
}
