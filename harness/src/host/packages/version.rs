//! Debian version ordering (`dpkg --compare-versions`, Debian Policy 5.6.12): epoch, upstream
//! version and revision, compared by alternating non-digit and digit runs, `~` sorting first.

use std::cmp::Ordering;

/// Compares two Debian versions the way dpkg does.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| compare_part(ua, ub))
        .then_with(|| compare_part(ra, rb))
}

/// `[epoch:]upstream[-revision]`: the epoch is digits before the first `:`, the revision what
/// follows the last `-`.
fn split(v: &str) -> (u64, &str, &str) {
    let (epoch, rest) = match v.split_once(':') {
        Some((e, rest)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => {
            (e.parse().unwrap_or(u64::MAX), rest)
        }
        _ => (0, v),
    };
    match rest.rsplit_once('-') {
        Some((upstream, revision)) => (epoch, upstream, revision),
        None => (epoch, rest, ""),
    }
}

/// dpkg's `verrevcmp`.
fn compare_part(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    while !a.is_empty() || !b.is_empty() {
        // The non-digit run, character by character in dpkg's order.
        loop {
            let ca = a.first().copied().filter(|c| !c.is_ascii_digit());
            let cb = b.first().copied().filter(|c| !c.is_ascii_digit());
            if ca.is_none() && cb.is_none() {
                break;
            }
            let order = weight(ca).cmp(&weight(cb));
            if order != Ordering::Equal {
                return order;
            }
            a = &a[1..];
            b = &b[1..];
        }
        // The digit run, as a number (leading zeros do not count).
        let (da, ra) = digits(a);
        let (db, rb) = digits(b);
        let order = da.len().cmp(&db.len()).then_with(|| da.cmp(db));
        if order != Ordering::Equal {
            return order;
        }
        a = ra;
        b = rb;
    }
    Ordering::Equal
}

/// The digit run at the start of `s` without its leading zeros, and what follows it.
fn digits(s: &[u8]) -> (&[u8], &[u8]) {
    let end = s
        .iter()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(s.len());
    let (run, rest) = s.split_at(end);
    let first = run.iter().position(|&c| c != b'0').unwrap_or(run.len());
    (&run[first..], rest)
}

/// `~` before the end of the part, the end before letters, letters before everything else.
fn weight(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => i32::from(c) + 256,
    }
}

/// A version constraint from a `Depends` field: `(= v)`, `(>= v)`, …
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    pub op: String,
    pub version: String,
}

impl Constraint {
    /// Does `version` satisfy this constraint? An operator dpkg does not know satisfies nothing.
    pub fn allows(&self, version: &str) -> bool {
        let order = compare(version, &self.version);
        match self.op.as_str() {
            "=" => order == Ordering::Equal,
            ">=" => order != Ordering::Less,
            "<=" => order != Ordering::Greater,
            ">>" => order == Ordering::Greater,
            "<<" => order == Ordering::Less,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_like_dpkg() {
        // Each pair: left < right (checked with `dpkg --compare-versions A lt B`).
        let pairs = [
            ("6.1.170-3", "6.1.176-1"),
            ("6.1.176-1", "6.1.192-2"),
            ("6.12.117-1~deb12u1", "6.12.117-1"),
            ("6.12.117-1~deb12u1", "6.12.118-1~deb12u1"),
            ("1.0~rc1", "1.0"),
            ("1.0", "1.0a"),
            ("1.0a", "1.0+b1"),
            ("1.9", "1.10"),
            ("1:0.1", "2:0.0"),
            ("9.9", "1:0.1"),
            ("1.0-1", "1.0-1.1"),
            ("1.0", "1.0-0.1"),
            ("01.2", "1.3"),
        ];
        for (low, high) in pairs {
            assert_eq!(compare(low, high), Ordering::Less, "{low} < {high}");
            assert_eq!(compare(high, low), Ordering::Greater, "{high} > {low}");
        }
        assert_eq!(compare("1.02", "1.2"), Ordering::Equal);
        assert_eq!(compare("0:6.1.170-3", "6.1.170-3"), Ordering::Equal);
    }

    #[test]
    fn constraints_follow_the_operator() {
        let at_least = Constraint {
            op: ">=".into(),
            version: "6.1.170-3".into(),
        };
        assert!(at_least.allows("6.1.176-1"));
        assert!(at_least.allows("6.1.170-3"));
        assert!(!at_least.allows("6.1.170-2"));
        let exactly = Constraint {
            op: "=".into(),
            version: "6.1.170-3".into(),
        };
        assert!(exactly.allows("6.1.170-3") && !exactly.allows("6.1.176-1"));
        let odd = Constraint {
            op: "~=".into(),
            version: "1".into(),
        };
        assert!(!odd.allows("1"));
    }
}
