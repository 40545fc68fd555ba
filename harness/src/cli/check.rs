//! `kdrill check`: the field readiness checklist, on this host or on a captured tree.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use kdrill::readiness::{self, report, source::Root};

/// Output format of `kdrill check`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A table grouped by area, then the fixes
    Table,
    /// The stable JSON document described in the README (schema `kdrill-check/1`)
    Json,
}

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Exit codes: 0 ready, 1 ready with warnings (or checks that could not run), 2 not ready or error."
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
    #[arg(long, short)]
    pub verbose: bool,
    /// A calibration file from `kdrill calibrate` (repeatable); the root's
    /// /etc/kdrill/calibration/*.yaml are read too. Check 3 then compares the reservation with
    /// the measured minimum for this kernel and RAM
    #[arg(long, value_name = "FILE")]
    pub calibration: Vec<PathBuf>,
}

pub fn run(args: CheckArgs) -> anyhow::Result<i32> {
    let root = std::fs::canonicalize(&args.root).with_context(|| {
        format!(
            "cannot open the root {}: pass an existing folder to --root",
            args.root.display()
        )
    })?;
    let mut given = Vec::new();
    for path in &args.calibration {
        let path = &calibration_path(path);
        let parsed = kdrill::calibrate::file::load(path)?;
        given.push(readiness::CalibrationFile {
            source: path.display().to_string(),
            parsed: Ok(parsed),
        });
    }
    let snapshot = readiness::gather_with(&Root::new(root), given)
        .with_context(|| format!("cannot check {}", args.root.display()))?;
    let report = readiness::evaluate(&snapshot);
    match args.format {
        Format::Table => print!("{}", report::table(&report, args.verbose)),
        Format::Json => print!("{}", report::json(&report)),
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
