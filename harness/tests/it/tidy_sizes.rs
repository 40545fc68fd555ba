//! Style check: sizes are written by one formatter. Outside `spec/cmdline.rs`, no code in
//! `harness/src` formats a size itself: no decimals before a size unit (`{:.1}G`, which the
//! kernel's `memparse` cannot read), no value glued to a unit inside a `crashkernel=` (`crashkernel={}M`),
//! and no literal that is nothing but a value and a unit (`format!("{}G", …)`). `paste`, `exact`,
//! `mib` and `figure` do that, and `paste` is round-trip tested.

use crate::support::workspace;
use crate::tidy::rust_files;

/// The one module allowed to format sizes.
const FORMATTER: &str = "harness/src/spec/cmdline.rs";

/// Sizes written in another program's syntax, never for a human to paste as `crashkernel=`.
const OTHER_SYNTAX: &[(&str, &str)] = &[
    ("harness/src/vm/qemu.rs", "QEMU's `-m <MiB>M`"),
    (
        "harness/src/campaign/baseline.rs",
        "`truncate -s` in a shell script",
    ),
];

/// The string literals of one line of code (a simple scan: `"…"` with `\"` escapes).
fn literals(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    let mut escaped = false;
    for ch in code.chars() {
        match (&mut current, ch) {
            (None, '"') => current = Some(String::new()),
            (Some(_), '\\') if !escaped => escaped = true,
            (Some(text), '"') if !escaped => {
                out.push(std::mem::take(text));
                current = None;
            }
            (Some(text), c) => {
                text.push(c);
                escaped = false;
            }
            (None, _) => {}
        }
    }
    out
}

fn is_unit(c: char) -> bool {
    matches!(c, 'K' | 'M' | 'G' | 'T' | 'P' | 'E')
}

/// What is wrong with one string literal, if anything.
fn problem(literal: &str) -> Option<&'static str> {
    let bytes: Vec<char> = literal.chars().collect();
    for (i, c) in bytes.iter().enumerate() {
        if *c != '}' {
            continue;
        }
        let Some(open) = bytes[..i].iter().rposition(|c| *c == '{') else {
            continue;
        };
        let spec: String = bytes[open + 1..i].iter().collect();
        let unit = bytes.get(i + 1).copied().filter(|c| is_unit(*c));
        let word_ends = bytes.get(i + 2).is_none_or(|c| !c.is_alphanumeric());
        if unit.is_none() || !word_ends {
            continue;
        }
        if spec.contains(":.") {
            return Some(
                "a size with decimals (`{:.1}G`): the kernel's memparse reads no decimals",
            );
        }
        let before: String = bytes[..open].iter().collect();
        if before.ends_with("crashkernel=") || before.ends_with('@') {
            return Some(
                "a crashkernel= value formatted by hand: use spec::cmdline::paste, exact or mib",
            );
        }
        if open == 0 && i + 2 == bytes.len() {
            return Some(
                "a size formatted by hand: use spec::cmdline::paste, exact, mib or figure",
            );
        }
    }
    None
}

/// Code of a file without its `#[cfg(test)]` module (tests may spell sizes out).
fn code_of(text: &str) -> &str {
    let end = text.find("#[cfg(test)]").unwrap_or(text.len());
    &text[..end]
}

#[test]
fn sizes_are_formatted_in_one_place() {
    let root = workspace();
    let files = rust_files(&root.join("harness/src"));
    let mut problems = Vec::new();
    for file in files {
        let rel = file.strip_prefix(&root).unwrap().display().to_string();
        if rel == FORMATTER || OTHER_SYNTAX.iter().any(|(f, _)| *f == rel) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in code_of(&text).lines().enumerate() {
            let code = line.split(" //").next().unwrap_or(line);
            if code.trim_start().starts_with("//") {
                continue;
            }
            for literal in literals(code) {
                if let Some(why) = problem(&literal) {
                    problems.push(format!("{rel}:{}: \"{literal}\": {why}", n + 1));
                }
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// The scan catches what the issue found, and lets the formatter's output through.
#[test]
fn the_size_scan_catches_hand_made_sizes() {
    assert!(
        problem("{:.1}{name}").is_none(),
        "a unit chosen at run time is the formatter's own"
    );
    assert!(problem("{:.1}G").is_some());
    assert!(problem("crashkernel={}M").is_some());
    assert!(problem("crashkernel={crashkernel_mib}M (probe {})").is_some());
    assert!(problem("{v}M").is_some());
    assert!(problem("{}G").is_some());
    assert!(problem("{}@{FAST_CRASH_BASE_MIB}M").is_some());
    assert!(problem("crashkernel={}").is_none());
    assert!(problem("{memory_mib}M of RAM").is_none());
    assert!(problem("{:.0} s").is_none());
    assert!(problem("({:.1} MB)").is_none());
    assert_eq!(literals(r#"format!("a{}G", x); "b\"c""#), ["a{}G", "b\"c"]);
}
