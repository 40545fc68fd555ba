//! Style checks as tests: ARCHITECTURE.md's codemaps name every module of the workspace and
//! nothing that does not exist; every module says what it is for in a `//!` line; no module
//! grows past the size where it should split.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::support::workspace;

/// The crates' source folders and the heading of their codemap in ARCHITECTURE.md.
const CODEMAPS: &[(&str, &str)] = &[
    ("harness/src", "## Codemap: `harness/src/`"),
    ("vmcore/src", "## Codemap: `vmcore/src/`"),
    ("xtask/src", "## Codemap: `xtask/src/`"),
];

/// "No module over ~400 lines": the hard line, with a little room for the "~".
const MAX_LINES: usize = 450;

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// How a file appears in a codemap: `x/` for a folder module's `x/mod.rs`, else its path.
fn entry_of(rel: &str) -> String {
    rel.strip_suffix("mod.rs")
        .map_or(rel.to_string(), String::from)
}

/// The backticked paths (`….rs` or `…/`) in one codemap section of ARCHITECTURE.md.
fn codemap_entries(architecture: &str, heading: &str) -> BTreeSet<String> {
    let start = architecture
        .find(heading)
        .unwrap_or_else(|| panic!("ARCHITECTURE.md has no section `{heading}`"));
    let body = &architecture[start + heading.len()..];
    let body = &body[..body.find("\n## ").unwrap_or(body.len())];
    let mut entries = BTreeSet::new();
    for (i, part) in body.split('`').enumerate() {
        let looks_like_path = !part.contains(' ')
            && (part.ends_with(".rs") || (part.ends_with('/') && !part.starts_with('/')));
        if i % 2 == 1 && looks_like_path {
            entries.insert(part.to_string());
        }
    }
    entries
}

#[test]
fn the_codemaps_name_every_module_and_only_modules_that_exist() {
    let root = workspace();
    let architecture = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let mut problems = Vec::new();
    for (src, heading) in CODEMAPS {
        let dir = root.join(src);
        let entries = codemap_entries(&architecture, heading);
        let mut modules = BTreeSet::new();
        for file in rust_files(&dir) {
            let rel = file.strip_prefix(&dir).unwrap().display().to_string();
            modules.insert(entry_of(&rel));
        }
        for module in &modules {
            if !entries.contains(module) {
                problems.push(format!(
                    "{src}/{module} is missing from ARCHITECTURE.md's `{heading}`"
                ));
            }
        }
        for entry in &entries {
            if !modules.contains(entry) {
                problems.push(format!(
                    "ARCHITECTURE.md's `{heading}` names {src}/{entry}, which does not exist"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn every_module_says_what_it_is_for_and_stays_small() {
    let root = workspace();
    let mut problems = Vec::new();
    for (src, _) in CODEMAPS {
        for file in rust_files(&root.join(src)) {
            let text = std::fs::read_to_string(&file).unwrap();
            let rel = file.strip_prefix(&root).unwrap().display().to_string();
            if !text.starts_with("//!") {
                problems.push(format!(
                    "{rel}: no `//!` line saying what the module is for"
                ));
            }
            let lines = text.lines().count();
            if lines > MAX_LINES {
                problems.push(format!(
                    "{rel}: {lines} lines (over {MAX_LINES}): split it by what it does"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// Every child process goes through `host/process.rs` (own process group, deadline, killed on a
/// stop): a bare `Command::output()`, `status()` or `spawn()` elsewhere waits without a deadline.
#[test]
fn every_subprocess_runs_through_host_process() {
    let root = workspace();
    let owner = root.join("harness/src/host/process.rs");
    let mut problems = Vec::new();
    for file in rust_files(&root.join("harness/src")) {
        if file == owner {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let rel = file.strip_prefix(&root).unwrap().display().to_string();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or(line);
            for call in [".output()", ".status()", ".spawn()", ".wait_with_output()"] {
                if code.contains(call) {
                    problems.push(format!(
                        "{rel}:{}: `{call}` waits without a deadline: use host::process::run or run_status",
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn codemap_entries_are_read_from_their_own_section() {
    let text = "## Codemap: `a/`\n| `x.rs` | `y/` | `not a path` | `/abs/` |\n## Other\n`z.rs`\n";
    let got = codemap_entries(text, "## Codemap: `a/`");
    assert_eq!(got, BTreeSet::from(["x.rs".to_string(), "y/".to_string()]));
    assert_eq!(entry_of("case/mod.rs"), "case/");
    assert_eq!(entry_of("lib.rs"), "lib.rs");
}
