//! `cargo xtask soak --runs N [--kernel K --scenario S]`: one case N times back to back, every
//! attempt's evidence kept; prints pass/fail counts, the flake rate and each phase's median and
//! spread, and writes them to `<out>/soak-<kernel>-<scenario>.json`.

use std::path::Path;

use anyhow::Context;

#[derive(clap::Args)]
pub struct SoakArgs {
    /// How many runs
    #[arg(long, default_value_t = 10)]
    runs: usize,
    #[command(flatten)]
    case: crate::OneCase,
}

pub fn run(root: &Path, args: &SoakArgs) -> anyhow::Result<i32> {
    let (case, options) = args.case.prepare(root)?;
    let case = &case;
    let results = kdrill::campaign::soak::run(case, &options, args.runs.max(1));
    let report = kdrill::campaign::soak::report(&case.id(), &results);
    print!("{}", kdrill::campaign::soak::render(&report));
    let out = options.out_dir.join(format!(
        "soak-{}-{}.json",
        args.case.kernel, args.case.scenario
    ));
    std::fs::create_dir_all(&options.out_dir)?;
    std::fs::write(&out, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!("written: {}", out.display());
    if let Some(stop) = kdrill::host::interrupt::interrupted() {
        return Ok(stop.exit_code());
    }
    Ok(if report.failed == 0 { 0 } else { 1 })
}
