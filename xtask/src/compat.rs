//! `cargo xtask compat`: the kernel × makedumpfile table. Runs the cases of a matrix set (`compat`
//! by default: the `dirty-free` scenario on each kernel × each release's capture userspace) as
//! `cargo xtask verify --set` does, then builds the table from their `result.json` files
//! (`kdrill::campaign::compat`), prints it and writes `compat.md` and `compat.json` into the out
//! folder. `--no-run` builds it from the latest result of each case, without running any.

use std::path::Path;
use std::time::SystemTime;

use clap::Parser;
use kdrill::campaign::verify::VerifyArgs;

#[derive(clap::Args)]
pub struct CompatArgs {
    /// The matrix set whose cases make the table
    #[arg(long, value_name = "NAME", default_value = "compat")]
    pub set: String,
    /// Build the table from the latest result of each case, without running any
    #[arg(long)]
    pub no_run: bool,
}

/// `verify`'s arguments for a set, as its command line gives them (new flags keep their defaults).
#[derive(Parser)]
struct VerifyLine {
    #[command(flatten)]
    args: VerifyArgs,
}

pub fn run(root: &Path, args: &CompatArgs) -> anyhow::Result<i32> {
    let project = kdrill::host::paths::Project::checkout(root);
    let cases = kdrill::campaign::matrix::set(&project.root, &args.set)?;
    let options = kdrill::case::RunOptions::for_project(&project).map_err(anyhow::Error::msg)?;
    let (since, ran) = if args.no_run {
        (SystemTime::UNIX_EPOCH, None)
    } else {
        let started = SystemTime::now();
        let line = VerifyLine::try_parse_from(["verify", "--set", &args.set])?;
        (started, Some(crate::verify::run(root, line.args)?))
    };
    let results = kdrill::campaign::summary::load_results(&options.out_dir, &cases, since);
    let table = kdrill::campaign::compat::table(&kdrill::campaign::compat::slots(&cases), &results);
    let md = kdrill::campaign::compat::write(&options.out_dir, &table)?;
    println!("{md}");
    eprintln!(
        "xtask: compat table: {} and {}",
        options.out_dir.join("compat.md").display(),
        options.out_dir.join("compat.json").display()
    );
    // A cell that did not run is a table with a hole: partial, as a failed case is.
    let complete = table.cells.iter().all(|c| c.verdict != "NOT RUN");
    Ok(match ran {
        Some(code) => code,
        None if complete => kdrill::exit::SUCCESS,
        None => kdrill::exit::PARTIAL,
    })
}
