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

/// Every `.rs` file under `dir`, sorted (the other tidy tests read sources through it too).
pub(crate) fn rust_files(dir: &Path) -> Vec<PathBuf> {
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

// ---------------------------------------------------------------------------------------------
// README.md is a guide for a newcomer, and the reference lives in docs/: the README stays short,
// and neither names a file, link target or command that does not exist.

/// "README is a guide (~300 lines)": the hard line.
const README_MAX_LINES: usize = 300;

/// Where each program's subcommands are declared: the source file and its `enum`.
const SUBCOMMANDS: &[(&str, &str, &str)] = &[
    ("kdrill", "harness/src/cli/mod.rs", "enum Command"),
    ("cargo xtask", "xtask/src/main.rs", "enum Task"),
];

#[test]
fn the_readme_stays_a_guide() {
    let text = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let lines = text.lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines (over {README_MAX_LINES}): it is a guide; move reference material into docs/"
    );
}

/// One piece of a Markdown file that may name files or commands: an inline code span, a line
/// of a fenced block, or a link target, with its line number.
#[derive(Debug, PartialEq)]
enum Piece {
    /// Inline code, or a command line of a fenced block (a `sh` block's lines, or `$ ` lines).
    Code(usize, String),
    /// A line of a fenced block that is output, not a command.
    Output(usize),
    /// The target of a `[text](target)` link.
    Link(usize, String),
}

/// The pieces of a Markdown text, in order.
fn markdown_pieces(text: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut fence: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        let trimmed = line.trim_start();
        if let Some(info) = trimmed.strip_prefix("```") {
            fence = match fence {
                Some(_) => None,
                None => Some(info.trim().to_string()),
            };
            continue;
        }
        if let Some(lang) = &fence {
            if let Some(command) = trimmed.strip_prefix("$ ") {
                pieces.push(Piece::Code(n, command.to_string()));
            } else if matches!(lang.as_str(), "sh" | "bash" | "console") {
                // A shell comment is prose.
                let code = trimmed.split(" #").next().unwrap_or("");
                if !code.starts_with('#') {
                    pieces.push(Piece::Code(n, code.to_string()));
                }
            } else {
                pieces.push(Piece::Output(n));
            }
            continue;
        }
        // Inline code spans (one or two backticks).
        let mut rest = line;
        while let Some(open) = rest.find('`') {
            let ticks = rest[open..].chars().take_while(|&c| c == '`').count();
            let after = &rest[open + ticks..];
            let Some(close) = after.find(&"`".repeat(ticks)) else {
                break;
            };
            pieces.push(Piece::Code(n, after[..close].trim().to_string()));
            rest = &after[close + ticks..];
        }
        // Link targets, outside code spans.
        let prose: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(close) = after.find(')') else {
                break;
            };
            pieces.push(Piece::Link(n, after[..close].trim().to_string()));
            rest = &after[close..];
        }
    }
    pieces
}

/// A word of code that names a file of this repository: its first component is an entry of the
/// workspace's top folder (not the build output), and it is not a pattern or a placeholder.
fn repo_path(word: &str, top: &BTreeSet<String>) -> Option<String> {
    let word = word
        .trim_start_matches(['(', '"', '\''])
        .trim_end_matches([',', '.', ';', ':', ')', '"', '\'']);
    let word = word.strip_prefix("./").unwrap_or(word);
    let placeholder = ['<', '>', '*', '{', '}', '…', '$', '=', '[', '|'];
    if word.is_empty()
        || word.contains("://")
        || word.starts_with(['/', '~', '-'])
        || word.contains(placeholder)
    {
        return None;
    }
    let first = word.split('/').next().unwrap_or(word);
    (top.contains(first) && first != "target").then(|| word.to_string())
}

/// The entries of the workspace's top folder.
fn top_entries(root: &Path) -> BTreeSet<String> {
    std::fs::read_dir(root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name != ".git")
        .collect()
}

/// GitHub's anchor for a heading: lowercased, only letters, digits, `_`, `-` and spaces kept,
/// spaces turned into `-`.
fn anchor(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter(|&c| c.is_alphanumeric() || c == '_' || c == '-' || c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every anchor a Markdown file's headings make (a repeated heading gets `-1`, `-2`, …).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut in_fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        if in_fence {
            continue;
        }
        let base = anchor(heading.trim_start_matches('#').trim());
        let mut name = base.clone();
        let mut n = 0;
        while seen.contains(&name) {
            n += 1;
            name = format!("{base}-{n}");
        }
        seen.insert(name);
    }
    seen
}

/// The problem with one link target in `file` (relative to the workspace), if any.
fn link_problem(root: &Path, file: &str, target: &str) -> Option<String> {
    if target.contains("://") || target.starts_with("mailto:") {
        return None;
    }
    let (path, fragment) = target.split_once('#').unwrap_or((target, ""));
    let here = Path::new(file).parent().unwrap_or(Path::new(""));
    let linked = if path.is_empty() {
        root.join(file)
    } else {
        root.join(here).join(path)
    };
    if !linked.exists() {
        return Some(format!("links to {target}, which does not exist"));
    }
    if !fragment.is_empty() && linked.extension().is_some_and(|e| e == "md") {
        let text = std::fs::read_to_string(&linked).unwrap();
        if !anchors(&text).contains(fragment) {
            return Some(format!(
                "links to {target}, but {} has no heading #{fragment}",
                linked.strip_prefix(root).unwrap_or(&linked).display()
            ));
        }
    }
    None
}

/// README.md and every Markdown file under docs/, relative to the workspace.
fn documents(root: &Path) -> Vec<String> {
    let mut out = vec!["README.md".to_string()];
    let mut stack = vec![root.join("docs")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_readme_and_docs_name_only_files_that_exist() {
    let root = workspace();
    let top = top_entries(&root);
    let mut problems = Vec::new();
    for file in documents(&root) {
        let text = std::fs::read_to_string(root.join(&file)).unwrap();
        for piece in markdown_pieces(&text) {
            match piece {
                Piece::Link(n, target) => {
                    if let Some(problem) = link_problem(&root, &file, &target) {
                        problems.push(format!("{file}:{n}: {problem}"));
                    }
                }
                // Backticked paths are checked in the README; the docs also show the paths of
                // an operator's own repository (`.github/workflows/…` of theirs).
                Piece::Code(n, code) if file == "README.md" => {
                    for word in code.split_whitespace() {
                        if let Some(path) = repo_path(word, &top) {
                            if !root.join(&path).exists() {
                                problems.push(format!(
                                    "{file}:{n}: names `{path}`, which does not exist in the workspace"
                                ));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// The variants of `enum_decl` in `source`, as clap names subcommands (kebab-case).
fn subcommands(source: &str, enum_decl: &str) -> BTreeSet<String> {
    let start = source
        .find(&format!("{enum_decl} {{"))
        .unwrap_or_else(|| panic!("no `{enum_decl}` in the source"));
    let mut names = BTreeSet::new();
    let mut depth = 0usize;
    for line in source[start..].lines() {
        let code = line.trim();
        if code.starts_with("//") || code.starts_with("#[") {
            continue;
        }
        if depth == 1 && code.starts_with(|c: char| c.is_ascii_uppercase()) {
            let ident: String = code
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            let mut kebab = String::new();
            for (i, c) in ident.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    kebab.push('-');
                }
                kebab.push(c.to_ascii_lowercase());
            }
            names.insert(kebab);
        }
        depth += code.matches('{').count();
        depth = depth.saturating_sub(code.matches('}').count());
        if depth == 0 && code.contains('}') {
            break;
        }
    }
    names
}

/// One command the README shows: the program (`kdrill`, `cargo xtask`), its subcommand (empty
/// for the program's own flags) and the long flags given to it.
#[derive(Debug, PartialEq)]
struct Shown {
    line: usize,
    program: &'static str,
    sub: String,
    flags: Vec<String>,
}

/// The `kdrill …` and `cargo xtask …` commands in one piece of code.
fn commands_in(line: usize, code: &str) -> Vec<Shown> {
    let words: Vec<&str> = code.split_whitespace().collect();
    let mut shown = Vec::new();
    for (i, word) in words.iter().enumerate() {
        let (program, at) =
            if (*word == "kdrill" || word.ends_with("/kdrill")) && !word.contains("://") {
                ("kdrill", i + 1)
            } else if *word == "cargo" && words.get(i + 1) == Some(&"xtask") {
                ("cargo xtask", i + 2)
            } else {
                continue;
            };
        // `--root kdrill`, `-p kdrill`: a folder or package named kdrill, not the program.
        if i > 0 && words[i - 1].starts_with('-') && program == "kdrill" {
            continue;
        }
        let sub = words
            .get(at)
            .map(|w| w.trim_end_matches([':', ',', '.', ';', ')']))
            .unwrap_or("");
        if sub.contains(['<', '…', '[']) || (sub.is_empty() && program == "cargo xtask") {
            continue;
        }
        let (sub, first_flag) = if sub.starts_with('-') || sub.is_empty() {
            (String::new(), at)
        } else {
            (sub.to_string(), at + 1)
        };
        let flags = words[first_flag.min(words.len())..]
            .iter()
            .take_while(|w| !matches!(**w, "|" | "&&" | ";" | "||" | "#"))
            .filter(|w| w.starts_with("--") && w.len() > 2)
            .map(|w| {
                w.split('=')
                    .next()
                    .unwrap()
                    .trim_end_matches([',', ')'])
                    .to_string()
            })
            .collect();
        shown.push(Shown {
            line,
            program,
            sub,
            flags,
        });
    }
    shown
}

fn readme_commands() -> Vec<Shown> {
    let text = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    markdown_pieces(&text)
        .into_iter()
        .filter_map(|piece| match piece {
            Piece::Code(n, code) => Some(commands_in(n, &code)),
            _ => None,
        })
        .flatten()
        .collect()
}

#[test]
fn the_readme_names_only_real_subcommands() {
    let root = workspace();
    let mut problems = Vec::new();
    for shown in readme_commands() {
        if shown.sub.is_empty() || shown.sub == "help" {
            continue;
        }
        let (_, source, decl) = SUBCOMMANDS
            .iter()
            .find(|(program, _, _)| *program == shown.program)
            .unwrap();
        let known = subcommands(&std::fs::read_to_string(root.join(source)).unwrap(), decl);
        if !known.contains(&shown.sub) {
            problems.push(format!(
                "README.md:{}: names `{} {}`, but `{}` is not a variant of `{decl}` in {source} (it has: {})",
                shown.line,
                shown.program,
                shown.sub,
                shown.sub,
                known.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn the_readme_gives_kdrill_only_flags_it_has() {
    let mut problems = Vec::new();
    let mut helps: std::collections::BTreeMap<String, String> = Default::default();
    for shown in readme_commands() {
        if shown.program != "kdrill" || shown.flags.is_empty() {
            continue;
        }
        let help = helps.entry(shown.sub.clone()).or_insert_with(|| {
            let mut args: Vec<&str> = Vec::new();
            if !shown.sub.is_empty() {
                args.push(&shown.sub);
            }
            args.push("--help");
            let out = crate::support::kdrill().args(&args).output().unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        });
        for flag in &shown.flags {
            let listed = help.match_indices(flag.as_str()).any(|(at, _)| {
                !help[at + flag.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '-')
            });
            if !listed {
                problems.push(format!(
                    "README.md:{}: gives `kdrill {}` the flag `{flag}`, which `kdrill {} --help` does not list",
                    shown.line, shown.sub, shown.sub
                ));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn readme_checks_read_code_links_commands_and_enums() {
    let text = "Run `kdrill check --root x` or see [the docs](docs/a.md#b).\n```sh\ncargo xtask verify --set ci   # `kdrill nope` in a comment\n```\n```\n$ kdrill inspect d --bt\nPASS kdrill nonsense\n```\n";
    let pieces = markdown_pieces(text);
    assert_eq!(
        pieces,
        vec![
            Piece::Code(1, "kdrill check --root x".into()),
            Piece::Link(1, "docs/a.md#b".into()),
            Piece::Code(3, "cargo xtask verify --set ci  ".into()),
            Piece::Code(6, "kdrill inspect d --bt".into()),
            Piece::Output(7),
        ]
    );
    assert!(commands_in(1, "cargo nextest archive -p kdrill --test matrix").is_empty());
    let shown = commands_in(
        1,
        "sudo kdrill verify --root kdrill --image debian | tee x --nope",
    );
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!(shown[0].sub, "verify");
    assert_eq!(shown[0].flags, ["--root", "--image"]);
    assert_eq!(commands_in(1, "kdrill --version")[0].sub, "");
    assert!(
        commands_in(1, "cargo install --git https://x/kdrill kdrill")
            .iter()
            .all(|s| s.sub.is_empty() && s.flags.is_empty())
    );
    let source = "enum Task {\n    /// Doc {with braces}\n    Verify(Args),\n    Test {\n        #[arg(last = true)]\n        rest: Vec<String>,\n    },\n    FooBar,\n}\nenum Other { Nope }\n";
    assert_eq!(
        subcommands(source, "enum Task"),
        BTreeSet::from(["verify".into(), "test".into(), "foo-bar".into()])
    );
    assert_eq!(anchor("Your own `/etc`: overlays"), "your-own-etc-overlays");
    assert_eq!(
        anchor("kdrill's own nightly: sharding"),
        "kdrills-own-nightly-sharding"
    );
    let top = BTreeSet::from(["docs".to_string(), "target".to_string()]);
    assert_eq!(repo_path("docs/x.md,", &top).as_deref(), Some("docs/x.md"));
    assert_eq!(repo_path("target/kdrill/summary.md", &top), None);
    assert_eq!(repo_path("docs/<id>.yaml", &top), None);
    assert_eq!(repo_path("ops/kdump-etc", &top), None);
}

/// The operator's example (docs/examples/) is copied into other repositories as it is: its kernel
/// entry must load, and its overlay must be accepted, by the kdrill of this workspace.
#[test]
fn the_operators_example_kernel_entry_and_overlay_load() {
    let root = workspace();
    let examples = root.join("docs/examples/kdrill");
    let project = tempfile::tempdir().unwrap();
    std::fs::create_dir(project.path().join("kernels")).unwrap();
    std::fs::copy(
        examples.join("kernels/prod-kernel.yaml"),
        project.path().join("kernels/prod-kernel.yaml"),
    )
    .unwrap();
    for shared in ["scenarios", "images", "matrix.yaml", "archives.yaml"] {
        std::os::unix::fs::symlink(root.join(shared), project.path().join(shared)).unwrap();
    }
    let out = crate::support::kdrill()
        .args([
            "verify",
            "--list",
            "--image",
            "debian",
            "--kernel",
            "prod-kernel",
        ])
        .args(["--scenario", "sysrq", "--overlay"])
        .arg(examples.join("overlays/prod"))
        .arg("--root")
        .arg(project.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("prod-kernel/sysrq@debian-bookworm+prod"),
        "docs/examples/kdrill does not load:\n{stdout}\n{stderr}"
    );
}
