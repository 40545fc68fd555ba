//! A scenario's `expect:` block: the log lines the dump must hold and must not, the crashed CPU's
//! backtrace and task, and how much of the guest's memory the dump may hold (`expect.dump`); the
//! regexes checked at load time with their `file:line:column`.

use std::path::Path;

use serde::Deserialize;

use crate::spec::yaml::{self, YamlError};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Regexes the kernel log read back from the dump must match (each on some line).
    pub log: Vec<String>,
    /// Regexes no line of the dump's log or the serial console may match.
    #[serde(default)]
    pub absent: Vec<String>,
    /// Regexes over the crashed CPU's backtrace, read from the dump by kdrill
    /// (`function+0xoff/0xsize [module]` per frame), matched in order: each one by a frame
    /// below the frame the previous one matched (other frames may lie between).
    #[serde(default)]
    pub backtrace: Vec<String>,
    /// The `comm` of the task the crashed CPU was running: a regex over the whole comm
    /// (`sh`, `swapper/\\d+`).
    #[serde(default)]
    pub task: Option<String>,
    /// How much of the guest's memory the dump may hold, read from the dump's own bitmaps.
    #[serde(default)]
    pub dump: Option<ExpectDump>,
}

/// `expect.dump`: a bound on what the dump holds.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectDump {
    /// The pages the dump holds, as a share (0-100) of the guest's RAM pages it covers (dumped +
    /// excluded): above it, the dump level did not exclude what it should have.
    pub max_dumped_percent: f64,
}

/// Every regex of `expect` compiles, else the error names its line and column in `text`; the
/// bounds of `expect.dump` make sense.
pub fn check(expect: &Expect, path: &Path, text: &str) -> Result<(), YamlError> {
    for pattern in expect
        .log
        .iter()
        .chain(&expect.absent)
        .chain(&expect.backtrace)
        .chain(&expect.task)
    {
        if let Err(err) = regex::Regex::new(pattern) {
            let (line, column) = yaml::position_of(text, pattern).unwrap_or((1, 1));
            return Err(YamlError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message: format!(
                    "expect: `{pattern}` is not a valid regex: {}",
                    regex_reason(&err.to_string())
                ),
            });
        }
    }
    if let Some(dump) = &expect.dump {
        let percent = dump.max_dumped_percent;
        if !(percent > 0.0 && percent <= 100.0) {
            return Err(YamlError::Invalid {
                path: path.to_path_buf(),
                message: format!(
                    "expect.dump.max_dumped_percent: {percent} is not a share of the guest's pages (above 0, at most 100)"
                ),
            });
        }
    }
    Ok(())
}

/// The reason in the regex crate's multi-line message (pattern, caret line, `error: …`).
fn regex_reason(message: &str) -> String {
    message
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or(message.lines().last().unwrap_or(message))
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use crate::spec::scenario::from_file;

    fn load(yaml: &str) -> Result<crate::spec::scenario::Scenario, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.yaml");
        std::fs::write(&path, yaml).unwrap();
        from_file(&path).map_err(|e| e.to_string())
    }

    #[test]
    fn a_dump_bound_is_a_share_of_the_guests_pages() {
        let s = load("id: t\ndescription: d\ntrigger: sysrq\nexpect:\n  log: [a]\n  dump: {max_dumped_percent: 30}\n")
            .unwrap();
        assert_eq!(s.expect.dump.unwrap().max_dumped_percent, 30.0);
        for bad in ["0", "101", "-5"] {
            let err = load(&format!("id: t\ndescription: d\ntrigger: sysrq\nexpect:\n  log: [a]\n  dump: {{max_dumped_percent: {bad}}}\n"))
                .unwrap_err();
            assert!(err.contains("is not a share of the guest's pages"), "{err}");
        }
        let err = load(
            "id: t\ndescription: d\ntrigger: sysrq\nexpect:\n  log: [a]\n  dump: {max_mib: 3}\n",
        )
        .unwrap_err();
        assert!(err.contains("unknown field `max_mib`"), "{err}");
    }

    #[test]
    fn bad_regex_is_named_at_its_line_and_column() {
        let err =
            load("id: t\ndescription: d\ntrigger: sysrq\nexpect:\n  log: [\"a(\"]\n").unwrap_err();
        assert!(
            err.contains("t.yaml:5:9: expect: `a(` is not a valid regex: unclosed group"),
            "{err}"
        );
        let err = load("id: t\ndescription: d\ntrigger: sysrq\nexpect:\n  log:\n    - ok\n  absent:\n    - ok\n    - \"[z-a]\"\n").unwrap_err();
        assert!(
            err.contains("t.yaml:9:7: expect: `[z-a]` is not a valid regex"),
            "{err}"
        );
    }

    #[test]
    fn a_dump_bound_needs_makedumpfile() {
        let err = load("id: t\ndescription: d\ntrigger: vm-dump\nvm_dump_formats: [elf]\nexpect:\n  log: [a]\n  dump: {max_dumped_percent: 30}\n")
            .unwrap_err();
        assert!(
            err.contains("expect.dump needs a capture by makedumpfile"),
            "{err}"
        );
    }
}
