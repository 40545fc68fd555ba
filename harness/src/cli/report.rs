//! `kdrill report FILES…`: many hosts' `kdrill check --format json` documents as one fleet table
//! (the reading here, the table in `readiness::fleet`).

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::Context as _;
use kdrill::exit::{self, Exit};
use kdrill::readiness::fleet;

/// Output format of `kdrill report`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Hosts worst first, one column per check; then each check's counts per status
    Table,
    /// One JSON document (schema `kdrill-report/1`)
    Json,
}

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Each FILE is one host's `kdrill check --format json` output (schema kdrill-check/1); a \
                  kdrill-error/1 document (a host whose check could not run) is a row of its own.\n\
                  Exit codes: the worst host's: 0 all ready, 1 a host ready with warnings, 2 a host not \
                  ready, 3 a host whose check could not run or a FILE that is not a check document, \
                  64 usage error."
)]
pub struct ReportArgs {
    /// The hosts' check documents, one per host (`kdrill check --format json > $(hostname).json`)
    #[arg(value_name = "FILES", required = true)]
    pub files: Vec<PathBuf>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// A check document is a few tens of KiB; a file past this is not one.
const MAX_FILE_BYTES: u64 = 16 << 20;

pub fn run(args: ReportArgs) -> anyhow::Result<i32> {
    let mut files = Vec::new();
    for path in &args.files {
        let name = path.display().to_string();
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
            .with_context(|| {
                format!("cannot read {name}: give files that `kdrill check --format json` wrote")
            })?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(bad_input(format!(
                "{name}: larger than {} MiB, not a `kdrill check --format json` document",
                MAX_FILE_BYTES >> 20
            )));
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            bad_input(format!(
                "{name}: not UTF-8 text (byte {}): give the files `kdrill check --format json` wrote",
                e.utf8_error().valid_up_to()
            ))
        })?;
        files.push((name, text));
    }
    let fleet = fleet::fleet(&files).map_err(|e| bad_input(e.to_string()))?;
    match args.format {
        Format::Table => print!("{}", fleet::table(&fleet)),
        Format::Json => print!("{}", fleet::json(&fleet)),
    }
    Ok(fleet.exit_code())
}

/// A file that cannot join the table: a tool error (3) with a kind of its own.
fn bad_input(message: String) -> anyhow::Error {
    anyhow::Error::new(Exit {
        code: exit::ERROR,
        kind: "bad-check-document",
        message,
    })
}
