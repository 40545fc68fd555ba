//! What `kdrill inspect` prints about a dump: the text summary, the JSON document (schema
//! `kdrill-inspect/1`: addresses as `"0x…"` strings, see `kdrill_vmcore`'s serializers), what
//! a cut-short or incomplete file lost as sentences for stderr, and the exit code.

use kdrill_vmcore::{panic_message, DumpInfo, LogRecord};

use crate::cli::deep::Deep;

/// The `schema` of inspect's JSON document.
pub const SCHEMA: &str = "kdrill-inspect/1";

/// The JSON document.
#[derive(serde::Serialize)]
pub struct JsonReport<'a> {
    pub schema: &'static str,
    /// The file read (the one inside a crash folder), or `-` for standard input.
    pub dump: &'a str,
    pub info: &'a DumpInfo,
    pub log_records: Option<usize>,
    pub panic_message: Option<String>,
    pub log_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records: Option<&'a [LogRecord]>,
    #[serde(flatten)]
    pub deep: Deep,
}

/// The exit code of a dump that opened: 0 when everything asked for was read whole; 1 when
/// part was not (a cut-short or incomplete file, an unreadable log, a deep view or part of
/// one). Not a dump or nothing readable (2) is an error before this.
pub fn exit_code(info: &DumpInfo, log_read: bool, deep: &Deep) -> i32 {
    let whole = !info.truncated && !info.incomplete && log_read && deep.complete();
    if whole {
        kdrill::exit::SUCCESS
    } else {
        kdrill::exit::PARTIAL
    }
}

/// What the dump lost, as sentences for stderr (the summary says it in its own lines).
pub fn losses(info: &DumpInfo) -> Vec<String> {
    let mut out = Vec::new();
    if info.truncated {
        out.push(format!(
            "warning: the file was cut short: the data of {} dumped pages lies past its end, \
             so this is a partial answer",
            info.incomplete_pages
        ));
    } else if info.incomplete {
        out.push(format!(
            "warning: the dump is incomplete: its writer ran out of space and {} pages are \
             missing, so this is a partial answer",
            info.incomplete_pages
        ));
    }
    out
}

/// The summary's `truncated:` value.
fn cut_short(info: &DumpInfo) -> String {
    format!(
        "yes: the file was cut short; the data of {} dumped pages lies past its end, so this is a partial answer",
        info.incomplete_pages
    )
}

/// The text summary.
pub fn summary(
    shown: &str,
    info: &DumpInfo,
    log: &Result<Vec<LogRecord>, kdrill_vmcore::Error>,
) -> String {
    let unknown = || "unknown".to_string();
    let mut lines: Vec<(&str, String)> = vec![
        ("dump", shown.to_string()),
        (
            "format",
            if info.flattened {
                format!("{} (flattened)", info.format)
            } else {
                info.format.to_string()
            },
        ),
        ("compression", info.compression.to_string()),
        (
            "kernel release",
            info.kernel_release.clone().unwrap_or_else(unknown),
        ),
        (
            "crash time",
            info.crash_time
                .map(|t| format!("{} ({t})", utc(t)))
                .unwrap_or_else(unknown),
        ),
        ("machine", info.machine.clone().unwrap_or_else(unknown)),
        (
            "cpus",
            info.cpus.map(|c| c.to_string()).unwrap_or_else(unknown),
        ),
        ("page size", info.page_size.to_string()),
        (
            "pages",
            format!(
                "{} dumped, {} excluded, {} incomplete",
                info.dumped_pages, info.excluded_pages, info.incomplete_pages
            ),
        ),
    ];
    if let Some(level) = info.dump_level {
        lines.push(("dump level", level.to_string()));
    }
    if info.incomplete {
        lines.push(("incomplete", "yes: the writer ran out of space".to_string()));
    }
    if info.truncated {
        lines.push(("truncated", cut_short(info)));
    }
    match log {
        Ok(records) => {
            lines.push(("log records", records.len().to_string()));
            lines.push((
                "panic",
                panic_message(records).unwrap_or_else(|| "none in the log".to_string()),
            ));
        }
        Err(e) => lines.push((
            "kernel log",
            format!("unreadable: {}", super::message_chain(e)),
        )),
    }
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    lines
        .iter()
        .map(|(k, v)| format!("{:width$} {v}\n", format!("{k}:")))
        .collect()
}

/// `YYYY-MM-DD HH:MM:SS UTC` for seconds since the epoch.
fn utc(t: i64) -> String {
    kdrill::host::clock::Civil::from_unix(t).readable()
}
