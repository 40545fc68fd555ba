//! How the reader's values serialize: addresses and register values as `"0x…"` strings, and
//! other `u64`s that can pass 2^53 (a time stamp in nanoseconds) as decimal strings.
//!
//! A JSON number above 2^53 is not kept exactly by JavaScript, jq or any reader that parses
//! numbers as doubles: `0xffffffff8c5738ea` comes back as `18446744071769110000`. Small counts
//! (sizes, offsets, pids, CPU numbers) stay numbers.

use serde::Serializer;

/// A `u64` address as `"0xffffffff8c5738ea"`.
pub(crate) fn addr<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{v:#x}"))
}

/// An optional address: `null` or `"0x…"`.
pub(crate) fn opt_addr<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => addr(v, s),
        None => s.serialize_none(),
    }
}

/// A `u64` that can pass 2^53, as a decimal string.
pub(crate) fn decimal<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

#[cfg(test)]
mod tests {
    #[derive(serde::Serialize)]
    struct Sample {
        #[serde(serialize_with = "super::addr")]
        a: u64,
        #[serde(serialize_with = "super::opt_addr")]
        b: Option<u64>,
        #[serde(serialize_with = "super::opt_addr")]
        c: Option<u64>,
        #[serde(serialize_with = "super::decimal")]
        d: u64,
    }

    #[test]
    fn addresses_are_hex_strings_and_big_counts_decimal_strings() {
        let s = Sample {
            a: 0xffff_ffff_8c57_38ea,
            b: Some(0),
            c: None,
            d: u64::MAX,
        };
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"a":"0xffffffff8c5738ea","b":"0x0","c":null,"d":"18446744073709551615"}"#
        );
    }
}
