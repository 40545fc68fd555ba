//! The exit codes of every kdrill command in one table, and the error that carries its own code.
//!
//! A command's *verdict* (ready, a case failed, a dump read in part) is its return value; an
//! error that stops it is a *tool error* (3) unless an [`Exit`] in its chain says otherwise: a
//! usage error (64, the command line is wrong) or a negative verdict reached through an error
//! (2, e.g. "this file is not a crash dump").

/// Everything as hoped: the host is ready, every case passed, the whole dump was read.
pub const SUCCESS: i32 = 0;
/// A result with a reservation: ready with warnings (`check`), a case failed or did not run
/// (`verify`), part of a dump was read (`inspect`), a memory size without an answer (`calibrate`),
/// something missing or in conflict (`doctor`).
pub const PARTIAL: i32 = 1;
/// The negative verdict: not ready (`check`), not a crash dump or nothing readable in it (`inspect`).
pub const NEGATIVE: i32 = 2;
/// kdrill could not do its job: a file it needs is missing or unreadable, a YAML error, a host
/// program missing, a download failed.
pub const ERROR: i32 = 3;
/// The command line is wrong: an unknown flag, a bad value, a CPU the dump does not have
/// (`EX_USAGE` of sysexits.h).
pub const USAGE: i32 = 64;

/// An error that decides its own exit code and kind (see the module's table).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    pub code: i32,
    /// A stable word for machines: `usage`, `not-a-dump`, …
    pub kind: &'static str,
    pub message: String,
}

impl Exit {
    /// The command line is wrong.
    pub fn usage(message: impl Into<String>) -> Self {
        Exit {
            code: USAGE,
            kind: "usage",
            message: message.into(),
        }
    }

    /// A negative verdict reached through an error (see [`NEGATIVE`]).
    pub fn negative(kind: &'static str, message: impl Into<String>) -> Self {
        Exit {
            code: NEGATIVE,
            kind,
            message: message.into(),
        }
    }
}

/// The exit code and kind of an error that ended a command: the first [`Exit`] in its chain,
/// else a tool error.
pub fn classify(err: &anyhow::Error) -> (i32, &'static str) {
    err.chain()
        .find_map(|e| e.downcast_ref::<Exit>())
        .map_or((ERROR, "error"), |e| (e.code, e.kind))
}

/// The JSON document a command prints on stdout when it fails under `--format json`
/// (schema `kdrill-error/1`), so a consumer always gets JSON; on one line, so that it also ends
/// a JSON-lines stream (`verify`, `calibrate`).
pub fn error_json(command: &str, code: i32, kind: &str, message: &str) -> String {
    let doc = serde_json::json!({
        "schema": "kdrill-error/1",
        "command": command,
        "exit_code": code,
        "kind": kind,
        "error": message,
    });
    format!("{doc}\n")
}

/// Whether a raw command line asks for JSON output (`--format json` or `--format=json`): a
/// usage error must still answer in JSON, before the arguments could be parsed.
pub fn wants_json<S: AsRef<str>>(args: &[S]) -> bool {
    args.iter().enumerate().any(|(i, a)| {
        let a = a.as_ref();
        a == "--format=json"
            || (a == "--format" && args.get(i + 1).is_some_and(|v| v.as_ref() == "json"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exit_anywhere_in_the_chain_decides_the_code() {
        let err = anyhow::Error::new(Exit::usage("no CPU 5; this dump has CPUs 0-1"))
            .context("cannot show the backtrace");
        assert_eq!(classify(&err), (USAGE, "usage"));
        let plain = anyhow::anyhow!("cannot read /x");
        assert_eq!(classify(&plain), (ERROR, "error"));
        let negative = anyhow::Error::new(Exit::negative("not-a-dump", "gzip"));
        assert_eq!(classify(&negative), (NEGATIVE, "not-a-dump"));
    }

    #[test]
    fn json_is_wanted_in_both_spellings() {
        assert!(wants_json(&["kdrill", "check", "--format", "json"]));
        assert!(wants_json(&["kdrill", "check", "--format=json"]));
        assert!(!wants_json(&["kdrill", "check", "--format", "table"]));
        assert!(!wants_json(&["kdrill", "check", "--format"]));
    }

    #[test]
    fn the_error_document_parses_and_names_its_schema() {
        let doc: serde_json::Value =
            serde_json::from_str(&error_json("check", ERROR, "error", "cannot open \"/x\""))
                .unwrap();
        assert_eq!(doc["schema"], "kdrill-error/1");
        assert_eq!(doc["exit_code"], 3);
        assert_eq!(doc["error"], "cannot open \"/x\"");
        assert_eq!(
            error_json("verify", ERROR, "error", "x").lines().count(),
            1,
            "one line, as the stream it may end"
        );
    }
}
