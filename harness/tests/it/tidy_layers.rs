//! The direction of dependencies in `harness/src` (ARCHITECTURE.md): its folders sit in layers,
//! and a module names (`crate::…`) only its own folder and the folders of lower layers. Test code
//! (a `#[cfg(test)]` item, a `tests.rs` file) may use a higher layer to build its fixtures.

use std::collections::BTreeSet;
use std::path::Path;

use crate::support::workspace;
use crate::tidy::rust_files;

/// The layers, lowest first. Folders of one layer are siblings: neither may name the other.
const LAYERS: &[&[&str]] = &[
    // Exit codes: a table every layer may return.
    &["exit"],
    // The host: processes under deadlines, paths, locks, host tools, ELF files on disk.
    &["host"],
    // The YAML data and its validation (kernels, scenarios, images, `crashkernel=` values).
    &["spec"],
    // Getting what a guest needs (packages, the crasher, sysroots), and running QEMU.
    &["fetch", "vm"],
    // What the guest boots: initramfs, modules, dump disk, the Debian image, built from fetched
    // packages.
    &["guest"],
    // Reading what a guest left: the dump judged (`dumpcheck`), other tools on it (`crosscheck`).
    &["dumpcheck", "crosscheck"],
    // Guest images as values (may not exist yet).
    &["image"],
    // One case end to end.
    &["case"],
    // Many cases: the matrix, verify, summary, soak, the baseline.
    &["campaign"],
    // The smallest `crashkernel=` that captures: probes are cases run as a campaign.
    &["calibrate"],
    // `kdrill check`: judges a host, by the calibration table among others.
    &["readiness"],
    // `kdrill drill`: a real host crashed on purpose (`check` before, the dump reader after).
    &["drill"],
    // `kdrill agent`: kdrill's side of an operator's disk image, in the guest (`check` inside).
    &["agent"],
    // The `kdrill` binary's commands.
    &["cli"],
];

/// Folders of `LAYERS` that need not exist.
const OPTIONAL: &[&str] = &["image"];

/// Where `name` sits in `LAYERS`.
fn layer_of(name: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&name))
}

/// One name of another top module in the code of `from`: the line it is on and the line's text.
#[derive(Debug, PartialEq)]
struct Naming {
    line: usize,
    target: String,
    text: String,
}

/// `text` with its comments blanked (line comments and doc comments; newlines kept), so a doc
/// link is not a dependency, and each `#[cfg(test)]` item blanked too.
fn code_only(text: &str) -> String {
    let code: Vec<&str> = text
        .lines()
        .map(|line| match line.find("//") {
            // `"http://…"`: a `//` inside a string on the line is kept.
            Some(at) if line[..at].matches('"').count() % 2 == 0 => &line[..at],
            _ => line,
        })
        .collect();
    let mut out = Vec::with_capacity(code.len());
    let mut lines = code.into_iter();
    while let Some(line) = lines.next() {
        if line.trim() != "#[cfg(test)]" {
            out.push(line);
            continue;
        }
        // The item that follows: up to its `;`, or its braces' end.
        out.push("");
        let mut depth = 0i32;
        let mut opened = false;
        for line in lines.by_ref() {
            out.push("");
            for c in line.chars() {
                match c {
                    '{' => (depth, opened) = (depth + 1, true),
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            if (opened && depth <= 0) || (!opened && line.trim_end().ends_with(';')) {
                break;
            }
        }
    }
    out.join("\n")
}

/// The identifier at the start of `s`.
fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// Every top module that `text` names as `crate::x…` or in `crate::{x…, y…}`.
fn namings(text: &str) -> Vec<Naming> {
    let code = code_only(text);
    let original: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        // `kdrill_vmcore::`, `my_crate::`: not this crate.
        if code[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
        {
            continue;
        }
        let line = code[..at].matches('\n').count();
        let rest = &code[at + "crate::".len()..];
        let targets: Vec<&str> = match rest.strip_prefix('{') {
            Some(group) => {
                let mut depth = 0;
                let end = group
                    .find(|c| {
                        match c {
                            '{' => depth += 1,
                            '}' if depth == 0 => return true,
                            '}' => depth -= 1,
                            _ => {}
                        }
                        false
                    })
                    .unwrap_or(group.len());
                let mut depth = 0;
                let mut items = vec![0];
                for (i, c) in group[..end].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        ',' if depth == 0 => items.push(i + 1),
                        _ => {}
                    }
                }
                items
                    .iter()
                    .map(|&i| ident(group[i..].trim_start()))
                    .collect()
            }
            None => vec![ident(rest)],
        };
        for target in targets.into_iter().filter(|t| !t.is_empty()) {
            out.push(Naming {
                line: line + 1,
                target: target.to_string(),
                text: original.get(line).map_or("", |l| l.trim()).to_string(),
            });
        }
    }
    out
}

/// The top modules of `src`: its folders and files but the crate roots (`lib.rs`, and
/// `main.rs`, whose `cli/` sits above every layer).
fn top_modules(src: &Path) -> BTreeSet<String> {
    std::fs::read_dir(src)
        .unwrap()
        .flatten()
        .map(|e| {
            e.file_name()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string()
        })
        .filter(|name| name != "lib" && name != "main")
        .collect()
}

/// What is wrong with `from` naming `naming.target`, if anything.
fn problem(from: &str, naming: &Naming, tops: &BTreeSet<String>) -> Option<String> {
    let to = naming.target.as_str();
    if to == from || !tops.contains(to) {
        // Its own folder, or an item of the crate root (`crate::VERSION`).
        return None;
    }
    let (Some(mine), Some(theirs)) = (layer_of(from), layer_of(to)) else {
        return None; // reported once per module by the test
    };
    let advice = format!(
        "move what {from} needs of {to} down (into {from}, or a lower layer), give {from} its own type that {to} converts from, or pass plain values"
    );
    if theirs > mine {
        Some(format!(
            "{from} (layer {}) names {to}, a higher layer ({}): {advice}",
            mine + 1,
            theirs + 1
        ))
    } else if theirs == mine {
        Some(format!(
            "{from} and {to} are siblings in layer {} and must not name each other: {advice}",
            mine + 1
        ))
    } else {
        None
    }
}

#[test]
fn modules_name_only_their_own_folder_and_lower_layers() {
    let root = workspace();
    let src = root.join("harness/src");
    let tops = top_modules(&src);
    let mut problems = Vec::new();
    for top in &tops {
        if layer_of(top).is_none() {
            problems.push(format!(
                "harness/src/{top}: in no layer: add it to LAYERS in {} (and to ARCHITECTURE.md's direction of dependencies)",
                file!()
            ));
        }
    }
    for name in LAYERS.iter().flat_map(|l| l.iter()) {
        if !tops.contains(*name) && !OPTIONAL.contains(name) {
            problems.push(format!(
                "LAYERS names `{name}`, which is not in harness/src: drop it from {}",
                file!()
            ));
        }
    }
    for file in rust_files(&src) {
        let rel = file.strip_prefix(&src).unwrap();
        let from = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if !tops.contains(&from) || file.ends_with("tests.rs") {
            // lib.rs, main.rs: the crate roots; tests.rs: a module's unit tests.
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for naming in namings(&text) {
            if let Some(why) = problem(&from, &naming, &tops) {
                problems.push(format!(
                    "harness/src/{}:{}: `{}`: {why}",
                    rel.display(),
                    naming.line,
                    naming.text
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "dependencies must point down the layers (lowest first: {}):\n{}",
        LAYERS
            .iter()
            .map(|l| l.join(", "))
            .collect::<Vec<_>>()
            .join(" → "),
        problems.join("\n")
    );
}

#[test]
fn namings_are_read_from_paths_groups_and_code_only() {
    let text = "\
//! See [`crate::case::Case`].
use crate::host::process;
use crate::{spec::scenario::Scenario, vm::{qmp, watch::Watch}};
let x = crate::case::plan::plan(&c); // crate::campaign
let y = my_crate::thing(); let z = a::crate::nothing;
let url = \"http://x\"; crate::fetch::kernel::resolve();
#[cfg(test)]
mod tests {
    use crate::campaign::x;
    fn f() { if true { crate::cli::y(); } }
}
#[cfg(test)]
use crate::campaign::y;
let after = crate::guest::z();
";
    let got: Vec<(usize, String)> = namings(text)
        .into_iter()
        .map(|n| (n.line, n.target))
        .collect();
    let want = [
        (2, "host"),
        (3, "spec"),
        (3, "vm"),
        (4, "case"),
        (6, "fetch"),
        (14, "guest"),
    ];
    assert_eq!(
        got,
        want.map(|(l, t)| (l, t.to_string())),
        "the doc link, the comment, another crate's path and test items are not namings"
    );
    let tops: BTreeSet<String> = ["vm", "case", "host", "fetch", "guest"]
        .map(String::from)
        .into();
    let naming = |target: &str| Naming {
        line: 8,
        target: target.into(),
        text: String::new(),
    };
    assert!(problem("vm", &naming("case"), &tops)
        .unwrap()
        .starts_with("vm (layer 4) names case, a higher layer (8)"));
    assert!(problem("vm", &naming("fetch"), &tops)
        .unwrap()
        .starts_with("vm and fetch are siblings in layer 4"));
    assert_eq!(problem("case", &naming("vm"), &tops), None);
    assert_eq!(problem("guest", &naming("guest"), &tops), None);
    assert_eq!(problem("vm", &naming("VERSION"), &tops), None);
}
