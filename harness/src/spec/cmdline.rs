//! The kernel command line as the kernel reads it: its words (double quotes group, `--` ends the
//! kernel's part) and `memparse` sizes (`256M`, `0x1000`), and sizes written back the same way.

/// The words of a kernel command line: split on whitespace, double quotes group, `--` ends kernel arguments.
pub fn cmdline_words(cmdline: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut started = false;
    for ch in cmdline.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                started = true;
            }
            c if c.is_whitespace() && !quoted => {
                if started {
                    if word == "--" {
                        return words;
                    }
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            c => {
                word.push(c);
                started = true;
            }
        }
    }
    if started && word != "--" {
        words.push(word);
    }
    words
}

/// The kernel's `memparse`: a number (decimal, `0x` hex or leading-`0` octal) and an optional
/// K/M/G/T/P/E suffix (either case). Returns the value and the unparsed rest.
pub fn memparse(text: &str) -> Option<(u64, &str)> {
    let (radix, digits_from) = if text.starts_with("0x") || text.starts_with("0X") {
        (16, 2)
    } else if text.len() > 1 && text.starts_with('0') && text.as_bytes()[1].is_ascii_digit() {
        (8, 1)
    } else {
        (10, 0)
    };
    let body = &text[digits_from..];
    let len = body
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(body.len());
    if len == 0 {
        return None;
    }
    let number = u64::from_str_radix(&body[..len], radix).ok()?;
    let rest = &body[len..];
    let shift = match rest.chars().next().map(|c| c.to_ascii_uppercase()) {
        Some('K') => 10,
        Some('M') => 20,
        Some('G') => 30,
        Some('T') => 40,
        Some('P') => 50,
        Some('E') => 60,
        _ => return Some((number, rest)),
    };
    let value = number.checked_mul(1u64 << shift)?;
    Some((value, &rest[1..]))
}

/// The largest memory size or reservation kdrill accepts from a host's files or a calibration:
/// 64 TiB. Above it a figure is refused with its value named (never shifted or summed past
/// `u64`): no machine kdrill checks has that much RAM, and a reservation of it is a typo.
pub const SIZE_LIMIT: u64 = 64 << 40;

/// `SIZE_LIMIT` in words, for messages.
pub const SIZE_LIMIT_TEXT: &str = "64T";

/// A byte count above [`SIZE_LIMIT`], named in bytes (the exact figure) for a message.
pub fn over_limit(what: &str, bytes: u64) -> Option<String> {
    (bytes > SIZE_LIMIT).then(|| {
        format!("{what} is {bytes} bytes, above kdrill's limit of {SIZE_LIMIT_TEXT}: not used")
    })
}

/// `mib` MiB in bytes, `None` above [`SIZE_LIMIT`] (a calibration's `<< 20` never wraps).
pub fn mib_bytes(mib: u64) -> Option<u64> {
    mib.checked_mul(1 << 20).filter(|b| *b <= SIZE_LIMIT)
}

/// The one formatter for a `crashkernel=` size kdrill writes for a human to paste or passes to a
/// kernel: `bytes` rounded up to a whole M, above 1G to a whole G, written as [`exact`] writes
/// it. [`memparse`] (and the kernel's) reads it back to at least `bytes`: no decimals, ever.
pub fn paste(bytes: u64) -> String {
    exact(paste_bytes(bytes).unwrap_or(bytes))
}

/// What [`paste`] writes, in bytes: `bytes` rounded up to a whole M (up to 1G) or a whole G
/// (above 1G); `None` when that does not fit in a `u64`.
pub fn paste_bytes(bytes: u64) -> Option<u64> {
    const M: u64 = 1 << 20;
    const G: u64 = 1 << 30;
    let step = if bytes > G { G } else { M };
    bytes.div_ceil(step).checked_mul(step)
}

/// A whole number of MiB as kdrill writes it (`96M`, also in calibration tables and probes).
pub fn mib(mib: u64) -> String {
    format!("{mib}M")
}

/// `bytes` exactly, in the largest unit that divides it (`256M`, `2G`, `4096K`, `123`): memparse
/// reads it back to the same bytes.
pub fn exact(bytes: u64) -> String {
    const UNITS: [(u32, &str); 6] = [
        (60, "E"),
        (50, "P"),
        (40, "T"),
        (30, "G"),
        (20, "M"),
        (10, "K"),
    ];
    if bytes == 0 {
        return "0M".to_string();
    }
    for (shift, name) in UNITS {
        if bytes.trailing_zeros() >= shift {
            return format!("{}{name}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// A measured figure for reading (RAM, free space, an estimate's parts): `256M`, `2G`, `95.3M`.
/// Never a value to paste: a `crashkernel=` or a size to reserve goes through [`paste`] (a tidy
/// test keeps the two apart).
pub fn figure(bytes: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1 << 40, "T"),
        (1 << 30, "G"),
        (1 << 20, "M"),
        (1 << 10, "K"),
    ];
    for (unit, name) in UNITS {
        if bytes >= unit {
            return if bytes % unit == 0 {
                format!("{}{name}", bytes / unit)
            } else {
                format!("{:.1}{name}", bytes as f64 / unit as f64)
            };
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: u64 = 1 << 20;
    const G: u64 = 1 << 30;

    #[test]
    fn figures_print_like_the_cmdline() {
        assert_eq!(figure(256 * M), "256M");
        assert_eq!(figure(2 * G), "2G");
        assert_eq!(figure(G + G / 2), "1.5G");
        assert_eq!(figure(512), "512B");
    }

    /// The value `memparse` reads from all of `text`, `None` if anything is left over.
    fn parsed(text: &str) -> Option<u64> {
        match memparse(text)? {
            (value, "") => Some(value),
            _ => None,
        }
    }

    /// `paste` rounds up to a whole M, above 1G to a whole G, and never prints a decimal.
    #[test]
    fn pasted_sizes_round_up_to_whole_units() {
        assert_eq!(paste(0), "0M");
        assert_eq!(paste(1), "1M");
        assert_eq!(paste(M - 1), "1M");
        assert_eq!(paste(95 * M + M / 3), "96M");
        assert_eq!(paste(G), "1G");
        assert_eq!(paste(G + 1), "2G");
        // The 1.1G estimate: a whole G the kernel can parse.
        assert_eq!(paste(G + G / 10), "2G");
        assert_eq!(paste(8 * G), "8G");
        assert_eq!(paste(1 << 40), "1T");
        assert_eq!(exact(u64::MAX), u64::MAX.to_string());
        assert_eq!(exact(1536 * M), "1536M");
        assert_eq!(mib(96), "96M");
        assert_eq!(mib_bytes(96), Some(96 * M));
        assert_eq!(
            mib_bytes(17_592_186_044_416),
            None,
            "2^44 MiB wraps `<< 20`"
        );
        assert_eq!(mib_bytes(64 << 20), Some(SIZE_LIMIT));
        assert_eq!(mib_bytes((64 << 20) + 1), None);
        assert!(over_limit("x", SIZE_LIMIT).is_none());
        assert!(over_limit("RAM", u64::MAX)
            .unwrap()
            .contains("18446744073709551615 bytes"));
    }

    /// The round trip, for every edge and a dense sweep: what `paste` writes parses back to at
    /// least the value (to exactly [`paste_bytes`]), `exact` to the value itself.
    #[test]
    fn what_kdrill_writes_parses_back_to_at_least_the_value() {
        let mut values = vec![
            0,
            1,
            M - 1,
            M,
            M + 1,
            G - 1,
            G,
            G + 1,
            G + G / 10,
            SIZE_LIMIT - 1,
            SIZE_LIMIT,
            SIZE_LIMIT + 1,
            u64::MAX - G,
            u64::MAX - G + 1,
            u64::MAX - 1,
            u64::MAX,
        ];
        for bit in 0..64 {
            let p = 1u64 << bit;
            values.extend([p - 1, p, p.saturating_add(1)]);
        }
        // Every M boundary ±1 up to 4G, and a fixed pseudo-random sample over all bit widths.
        for m in 0..4096u64 {
            values.extend([m * M, (m * M).saturating_sub(1), m * M + 1, m * M + M / 2]);
        }
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            values.push(state >> (state % 64));
        }
        for x in values {
            let text = paste(x);
            let back =
                parsed(&text).unwrap_or_else(|| panic!("paste({x}) = {text} does not parse"));
            assert!(back >= x, "paste({x}) = {text} reads back as {back}");
            assert!(!text.contains('.'), "{text}");
            if let Some(rounded) = paste_bytes(x) {
                assert_eq!(back, rounded, "{x}");
                let step = if x > G { G } else { M };
                assert!(rounded - x < step, "{x} rounded too far: {rounded}");
            }
            assert_eq!(parsed(&exact(x)), Some(x), "exact({x}) = {}", exact(x));
        }
    }
}
