//! The `crashkernel=` parameter: every syntax the kernel accepts, and what it resolves to for a RAM size.
//!
//! Follows `kernel/crash_reserve.c`: the last plain `crashkernel=` wins; `,high` is used only when there
//! is no plain one; `,low` adds a low-memory part; ranges are `start-[end]:size` with `start <= RAM < end`.

use std::fmt;

use crate::spec::cmdline::{cmdline_words, exact, memparse};

/// One parsed `crashkernel=` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Crashkernel {
    /// `crashkernel=auto`: understood only by RHEL/CentOS 7 and 8 kernels.
    Auto,
    /// `crashkernel=256M` or `crashkernel=256M@16M`.
    Fixed { size: u64, offset: Option<u64> },
    /// `crashkernel=1G-4G:192M,4G-:256M[@offset]`.
    Ranges {
        ranges: Vec<Range>,
        offset: Option<u64>,
    },
    /// `crashkernel=512M,high`, `crashkernel=128M,low`, `crashkernel=64M,cma`.
    Suffixed { size: u64, suffix: Suffix },
}

/// One `start-[end]:size` entry of the range syntax; `end` is exclusive, `None` is unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    pub end: Option<u64>,
    pub size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suffix {
    High,
    Low,
    Cma,
}

/// Why a `crashkernel=` value does not parse (the kernel would ignore it and reserve nothing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("empty value")]
    Empty,
    #[error("`{0}` is not a size (expected a number with an optional K, M, G or T suffix)")]
    BadSize(String),
    #[error("range `{0}` is not `start-[end]:size`")]
    BadRange(String),
    #[error("range `{0}` ends before it starts")]
    EndBeforeStart(String),
    #[error("unknown suffix `,{0}` (expected `,high`, `,low` or `,cma`)")]
    UnknownSuffix(String),
    #[error("trailing text `{0}`")]
    Trailing(String),
}

/// What a `crashkernel=` setting asks the kernel to reserve on a machine with a given amount of RAM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Reserve this much (plus `low` below 4G for `,high` or an explicit `,low`).
    Reserve { size: u64, low: Option<u64> },
    /// A range list with no entry covering this RAM size: the kernel reserves nothing.
    NoRangeMatches,
    /// Asks for all RAM or more: the kernel refuses.
    TooLarge { size: u64 },
    /// `auto`: only RHEL 7/8 kernels act on it (with their own table); others reserve nothing.
    Auto,
    /// Only a `,low` or `,cma` part and no main size: the kernel reserves nothing.
    NothingMain,
    /// A size of 0 (`crashkernel=0`, or the range covering this RAM says `:0`): nothing is reserved.
    Zero,
}

/// Every `crashkernel=` parameter on a command line, in order, with its parse result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    pub raw: Vec<String>,
    pub parsed: Vec<Result<Crashkernel, ParseError>>,
}

impl Params {
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The kernel's choice: the last valid plain value, else the last valid `,high` (with the last `,low`).
    pub fn resolve(&self, system_ram: u64) -> Option<Resolution> {
        let valid: Vec<&Crashkernel> = self.parsed.iter().filter_map(|p| p.as_ref().ok()).collect();
        let last_suffixed = |want: Suffix| {
            valid.iter().rev().find_map(|c| match c {
                Crashkernel::Suffixed { size, suffix } if *suffix == want => Some(*size),
                _ => None,
            })
        };
        let low = last_suffixed(Suffix::Low);
        let plain = valid
            .iter()
            .rev()
            .find(|c| !matches!(c, Crashkernel::Suffixed { .. }));
        let resolution = match plain {
            Some(Crashkernel::Auto) => Resolution::Auto,
            Some(Crashkernel::Fixed { size, .. }) => Resolution::Reserve {
                size: *size,
                low: None,
            },
            Some(Crashkernel::Ranges { ranges, .. }) => {
                match ranges
                    .iter()
                    .find(|r| system_ram >= r.start && r.end.is_none_or(|end| system_ram < end))
                {
                    Some(range) => Resolution::Reserve {
                        size: range.size,
                        low: None,
                    },
                    None => Resolution::NoRangeMatches,
                }
            }
            Some(Crashkernel::Suffixed { .. }) => unreachable!("filtered out above"),
            None => match last_suffixed(Suffix::High) {
                Some(size) => Resolution::Reserve { size, low },
                None if valid.is_empty() => return None,
                None => Resolution::NothingMain,
            },
        };
        Some(match resolution {
            Resolution::Reserve { size: 0, .. } => Resolution::Zero,
            Resolution::Reserve { size, .. } if size >= system_ram => Resolution::TooLarge { size },
            other => other,
        })
    }
}

/// Every `crashkernel=` on a kernel command line (stopping at `--`, after which arguments go to init).
pub fn from_cmdline(cmdline: &str) -> Params {
    let raw: Vec<String> = cmdline_words(cmdline)
        .into_iter()
        .filter_map(|word| word.strip_prefix("crashkernel=").map(str::to_string))
        .collect();
    let parsed = raw.iter().map(|value| parse(value)).collect();
    Params { raw, parsed }
}

/// Parses one `crashkernel=` value (the text after `=`).
pub fn parse(value: &str) -> Result<Crashkernel, ParseError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ParseError::Empty);
    }
    if value == "auto" {
        return Ok(Crashkernel::Auto);
    }
    // The range syntax has a `:` before any `@offset`.
    let before_at = value.split('@').next().unwrap_or(value);
    if before_at.contains(':') {
        return parse_ranges(value);
    }
    let (size, rest) = memparse(value).ok_or_else(|| ParseError::BadSize(value.to_string()))?;
    if let Some(offset) = rest.strip_prefix('@') {
        let (offset, tail) =
            memparse(offset).ok_or_else(|| ParseError::BadSize(offset.to_string()))?;
        if !tail.is_empty() {
            return Err(ParseError::Trailing(tail.to_string()));
        }
        return Ok(Crashkernel::Fixed {
            size,
            offset: Some(offset),
        });
    }
    if let Some(suffix) = rest.strip_prefix(',') {
        let suffix = match suffix {
            "high" => Suffix::High,
            "low" => Suffix::Low,
            "cma" => Suffix::Cma,
            other => return Err(ParseError::UnknownSuffix(other.to_string())),
        };
        return Ok(Crashkernel::Suffixed { size, suffix });
    }
    if !rest.is_empty() {
        return Err(ParseError::Trailing(rest.to_string()));
    }
    Ok(Crashkernel::Fixed { size, offset: None })
}

fn parse_ranges(value: &str) -> Result<Crashkernel, ParseError> {
    let (list, offset) = match value.split_once('@') {
        Some((list, offset)) => {
            let (offset, tail) =
                memparse(offset).ok_or_else(|| ParseError::BadSize(offset.to_string()))?;
            if !tail.is_empty() {
                return Err(ParseError::Trailing(tail.to_string()));
            }
            (list, Some(offset))
        }
        None => (value, None),
    };
    let mut ranges = Vec::new();
    for entry in list.split(',') {
        let bad = || ParseError::BadRange(entry.to_string());
        let (span, size) = entry.split_once(':').ok_or_else(bad)?;
        let (start, end) = span.split_once('-').ok_or_else(bad)?;
        let start = whole_size(start).ok_or_else(bad)?;
        let end = if end.is_empty() {
            None
        } else {
            Some(whole_size(end).ok_or_else(bad)?)
        };
        let size = whole_size(size).ok_or_else(|| ParseError::BadSize(size.to_string()))?;
        if end.is_some_and(|end| end <= start) {
            return Err(ParseError::EndBeforeStart(entry.to_string()));
        }
        ranges.push(Range { start, end, size });
    }
    Ok(Crashkernel::Ranges { ranges, offset })
}

fn whole_size(text: &str) -> Option<u64> {
    match memparse(text) {
        Some((size, "")) => Some(size),
        _ => None,
    }
}

impl fmt::Display for Crashkernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at =
            |offset: &Option<u64>| offset.map(|o| format!("@{}", exact(o))).unwrap_or_default();
        match self {
            Crashkernel::Auto => f.write_str("auto"),
            Crashkernel::Fixed { size: s, offset } => write!(f, "{}{}", exact(*s), at(offset)),
            Crashkernel::Ranges { ranges, offset } => {
                let list: Vec<String> = ranges
                    .iter()
                    .map(|r| {
                        format!(
                            "{}-{}:{}",
                            exact(r.start),
                            r.end.map(exact).unwrap_or_default(),
                            exact(r.size)
                        )
                    })
                    .collect();
                write!(f, "{}{}", list.join(","), at(offset))
            }
            Crashkernel::Suffixed { size: s, suffix } => {
                let suffix = match suffix {
                    Suffix::High => "high",
                    Suffix::Low => "low",
                    Suffix::Cma => "cma",
                };
                write!(f, "{},{suffix}", exact(*s))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: u64 = 1 << 20;
    const G: u64 = 1 << 30;

    fn resolve(cmdline: &str, ram: u64) -> Option<Resolution> {
        from_cmdline(cmdline).resolve(ram)
    }

    #[test]
    fn every_syntax_parses() {
        assert_eq!(
            parse("256M"),
            Ok(Crashkernel::Fixed {
                size: 256 * M,
                offset: None
            })
        );
        assert_eq!(
            parse("256M@16M"),
            Ok(Crashkernel::Fixed {
                size: 256 * M,
                offset: Some(16 * M)
            })
        );
        assert_eq!(
            parse("0x10000000"),
            Ok(Crashkernel::Fixed {
                size: 256 * M,
                offset: None
            })
        );
        assert_eq!(parse("auto"), Ok(Crashkernel::Auto));
        assert_eq!(
            parse("512M,high"),
            Ok(Crashkernel::Suffixed {
                size: 512 * M,
                suffix: Suffix::High
            })
        );
        assert_eq!(
            parse("128m,low"),
            Ok(Crashkernel::Suffixed {
                size: 128 * M,
                suffix: Suffix::Low
            })
        );
        assert_eq!(
            parse("1G-4G:192M,4G-:256M@16M"),
            Ok(Crashkernel::Ranges {
                ranges: vec![
                    Range {
                        start: G,
                        end: Some(4 * G),
                        size: 192 * M
                    },
                    Range {
                        start: 4 * G,
                        end: None,
                        size: 256 * M
                    },
                ],
                offset: Some(16 * M),
            })
        );
    }

    #[test]
    fn bad_values_say_why() {
        assert_eq!(parse(""), Err(ParseError::Empty));
        assert_eq!(parse("lots"), Err(ParseError::BadSize("lots".into())));
        assert_eq!(
            parse("256M,middle"),
            Err(ParseError::UnknownSuffix("middle".into()))
        );
        assert_eq!(
            parse("4G-1G:256M"),
            Err(ParseError::EndBeforeStart("4G-1G:256M".into()))
        );
        assert_eq!(
            parse("1G:256M"),
            Err(ParseError::BadRange("1G:256M".into()))
        );
        assert_eq!(parse("256Mx"), Err(ParseError::Trailing("x".into())));
    }

    #[test]
    fn resolution_follows_the_kernel() {
        assert_eq!(resolve("crashkernel=0", 8 << 30), Some(Resolution::Zero));
        assert_eq!(
            resolve("crashkernel=0-16G:0,16G-:256M", 8 << 30),
            Some(Resolution::Zero)
        );
        assert_eq!(resolve("quiet", 8 * G), None);
        assert_eq!(
            resolve("crashkernel=256M", 8 * G),
            Some(Resolution::Reserve {
                size: 256 * M,
                low: None
            })
        );
        // The last plain value wins.
        assert_eq!(
            resolve("crashkernel=128M crashkernel=384M", 8 * G),
            Some(Resolution::Reserve {
                size: 384 * M,
                low: None
            })
        );
        // Ranges: start inclusive, end exclusive.
        let ranges = "crashkernel=2G-64G:256M,64G-:512M";
        assert_eq!(resolve(ranges, G), Some(Resolution::NoRangeMatches));
        assert_eq!(
            resolve(ranges, 2 * G),
            Some(Resolution::Reserve {
                size: 256 * M,
                low: None
            })
        );
        assert_eq!(
            resolve(ranges, 64 * G),
            Some(Resolution::Reserve {
                size: 512 * M,
                low: None
            })
        );
        // `,high` only when there is no plain value, with `,low` added.
        assert_eq!(
            resolve("crashkernel=512M,high crashkernel=72M,low", 8 * G),
            Some(Resolution::Reserve {
                size: 512 * M,
                low: Some(72 * M)
            })
        );
        assert_eq!(
            resolve("crashkernel=512M,high crashkernel=256M", 8 * G),
            Some(Resolution::Reserve {
                size: 256 * M,
                low: None
            })
        );
        assert_eq!(
            resolve("crashkernel=72M,low", 8 * G),
            Some(Resolution::NothingMain)
        );
        assert_eq!(resolve("crashkernel=auto", 8 * G), Some(Resolution::Auto));
        assert_eq!(
            resolve("crashkernel=2G", G),
            Some(Resolution::TooLarge { size: 2 * G })
        );
        // Everything after `--` belongs to init.
        assert_eq!(resolve("quiet -- crashkernel=256M", 8 * G), None);
        assert_eq!(
            resolve("quiet \"crashkernel=256M\"", 8 * G),
            Some(Resolution::Reserve {
                size: 256 * M,
                low: None
            })
        );
    }

    #[test]
    fn values_print_back_as_written() {
        assert_eq!(
            parse("1G-4G:192M,4G-:256M@16M").unwrap().to_string(),
            "1G-4G:192M,4G-:256M@16M"
        );
    }
}
