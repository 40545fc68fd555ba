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

/// A byte count the way crashkernel values are written: `256M`, `2G`, or `95.3M` when not whole.
pub fn size(bytes: u64) -> String {
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
    fn sizes_print_like_the_cmdline() {
        assert_eq!(size(256 * M), "256M");
        assert_eq!(size(2 * G), "2G");
        assert_eq!(size(G + G / 2), "1.5G");
        assert_eq!(size(512), "512B");
    }
}
