//! `kdrill check`: the field readiness checklist, on this host or on a captured tree.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use kdrill::exit::{self, Exit};
use kdrill::readiness::report::{self, ColourWhen, Style};
use kdrill::readiness::{self, source::Root, RootError};

/// Output format of `kdrill check`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A table grouped by area, then the fixes
    Table,
    /// The stable JSON document described in the README (schema `kdrill-check/1`)
    Json,
    /// Prometheus metrics for node_exporter's textfile collector (kdrill_ready,
    /// kdrill_check_status, …); with --output, the file it scrapes
    Prometheus,
}

/// When to colour the table.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Color {
    /// On a terminal, unless NO_COLOR is set and not empty
    Auto,
    /// Always (even through a pipe, and whatever NO_COLOR says)
    Always,
    /// Never
    Never,
}

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Exit codes: 0 ready, 1 ready with warnings (or checks that could not run), 2 not ready, \
                  3 could not check (a --root that is missing, unreadable or not a captured tree; a bad \
                  calibration file), 64 usage error. Under --format json an error is a kdrill-error/1 \
                  document on stdout."
)]
pub struct CheckArgs {
    /// Check a captured tree (a copy of /proc, /sys, /etc, /boot… as in a sosreport) instead of this host;
    /// every file is read under DIR
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Show every check's details in the table, not only those of checks that need fixing
    #[arg(long, short, conflicts_with = "quiet")]
    pub verbose: bool,
    /// Print the verdict line only (the exit code says the same)
    #[arg(long, short)]
    pub quiet: bool,
    /// Colour the status words and the verdict
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = Color::Auto)]
    pub color: Color,
    /// A calibration file from `kdrill calibrate` (repeatable); the root's
    /// /etc/kdrill/calibration/*.yaml and /usr/share/kdrill/calibration/*.yaml (the package's) are
    /// read too. Check 3 then compares the reservation with
    /// the measured minimum for this kernel and RAM
    #[arg(long, value_name = "FILE")]
    pub calibration: Vec<PathBuf>,
    /// Write the output to FILE instead of stdout, atomically (a temporary file in the same
    /// folder, flushed, then renamed over FILE): e.g.
    /// /var/lib/prometheus/node-exporter/kdrill.prom with --format prometheus
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub fn run(args: CheckArgs) -> anyhow::Result<i32> {
    if args.quiet && args.format != Format::Table {
        return Err(anyhow::Error::new(Exit::usage(
            "--quiet prints the table's verdict line only; --format json and --format prometheus are whole documents: give one of them",
        )));
    }
    let root = std::fs::canonicalize(&args.root).with_context(|| {
        format!(
            "cannot open the root {}: pass an existing folder to --root",
            args.root.display()
        )
    })?;
    let mut given = Vec::new();
    for path in &args.calibration {
        let path = &calibration_path(path);
        let parsed = kdrill::calibrate::file::load(path).with_context(|| {
            format!(
                "cannot use {} as a calibration file (one `kdrill calibrate` wrote)",
                path.display()
            )
        })?;
        given.push(readiness::CalibrationFile {
            source: path.display().to_string(),
            parsed: Ok(parsed),
        });
    }
    let snapshot = match readiness::gather_with(&Root::new(root), given) {
        Ok(snapshot) => snapshot,
        // kdrill could not check: a tool error with a kind of its own, never "not ready".
        Err(err @ RootError::NotATree { .. }) => {
            return Err(anyhow::Error::new(Exit {
                code: exit::ERROR,
                kind: "not-a-captured-tree",
                message: err.to_string(),
            }))
        }
        Err(err) => {
            return Err(anyhow::Error::new(err))
                .with_context(|| format!("cannot check {}", args.root.display()))
        }
    };
    let report = readiness::evaluate(&snapshot);
    let colour = report::colour(
        match args.color {
            Color::Auto => ColourWhen::Auto,
            Color::Always => ColourWhen::Always,
            Color::Never => ColourWhen::Never,
        },
        std::env::var_os("NO_COLOR").as_deref(),
        args.output.is_none() && std::io::stdout().is_terminal(),
    );
    let text = match (args.format, args.quiet) {
        (Format::Json, _) => report::json(&report),
        (Format::Prometheus, _) => kdrill::readiness::metrics::prometheus(&report),
        (Format::Table, true) => report::verdict_line(&report, colour),
        (Format::Table, false) => report::table_with(
            &report,
            Style {
                verbose: args.verbose,
                colour,
            },
        ),
    };
    match &args.output {
        // The verdict is the exit code either way: a timer's service treats 1 and 2 as success.
        Some(path) => kdrill::host::atomic::write(path, text.as_bytes())
            .with_context(|| format!("cannot write the check's output to {}: pass --output a file in a folder that exists and that you may write", path.display()))?,
        None => print!("{text}"),
    }
    Ok(report.exit_code())
}

/// A calibration file as given; a relative path that is not here (the README's
/// `calibration/debian-6.1-minimal.yaml`, from an installed kdrill) is looked up in kdrill's data:
/// the checkout's, else the calibrations built into kdrill.
fn calibration_path(given: &Path) -> PathBuf {
    if given.exists() || given.is_absolute() {
        return given.to_path_buf();
    }
    match kdrill::host::paths::project(None) {
        Ok(project) if project.root.join(given).is_file() => project.root.join(given),
        _ => given.to_path_buf(),
    }
}
