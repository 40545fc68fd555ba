//! Wall-clock instants as UTC civil dates: attempt folder stamps (`20261202T002506Z`) and the
//! dump times `kdrill inspect` shows (`2026-12-02 00:25:06 UTC`), without a date crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// A UTC date and time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl Civil {
    /// Seconds since the epoch (negative before 1970) → UTC civil time.
    pub fn from_unix(t: i64) -> Civil {
        let (year, month, day) = civil_from_days(t.div_euclid(86_400));
        let secs = t.rem_euclid(86_400) as u32;
        Civil {
            year,
            month,
            day,
            hour: secs / 3600,
            minute: secs / 60 % 60,
            second: secs % 60,
        }
    }

    /// A system time (before the epoch counts as the epoch).
    pub fn from_system(at: SystemTime) -> Civil {
        let secs = at
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Civil::from_unix(i64::try_from(secs).unwrap_or(i64::MAX))
    }

    /// `20261202T002506Z`: sorts by time, safe in a file name.
    pub fn stamp(&self) -> String {
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// `2026-12-02 00:25:06 UTC`.
    pub fn readable(&self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 → (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn known_instants() {
        assert_eq!(Civil::from_unix(0).readable(), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            Civil::from_unix(951_782_400).readable(),
            "2000-02-29 00:00:00 UTC"
        );
        assert_eq!(
            Civil::from_unix(1_764_170_000).readable(),
            "2025-11-26 15:13:20 UTC"
        );
        assert_eq!(Civil::from_unix(-1).readable(), "1969-12-31 23:59:59 UTC");
        let at = UNIX_EPOCH + Duration::from_secs(1_796_171_106);
        assert_eq!(Civil::from_system(at).stamp(), "20261202T002506Z");
        assert_eq!(Civil::from_system(UNIX_EPOCH).stamp(), "19700101T000000Z");
    }
}
