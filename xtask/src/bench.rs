//! `cargo xtask bench`: the harness's own overhead, against the peer that is the guest's own
//! clock. Per run: the case's wall time, the guest's first boot, `kexec -p`, capture boot and
//! makedumpfile by its own timestamps, and the ratio (target ≤ 1.10). With `--image debian`, the
//! production case's phases instead (boot, ready, crash → capture, crash → saved, ready again),
//! beside the minimal case's. Results also go to `<out>/bench.json` (`bench-debian.json`).

use std::path::Path;

use anyhow::{bail, Context};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// How many runs
    #[arg(long, default_value_t = 3)]
    runs: usize,
    #[command(flatten)]
    case: crate::OneCase,
}

pub fn run(root: &Path, args: &BenchArgs) -> anyhow::Result<i32> {
    kdrill::host::interrupt::install();
    let (case, options) = args.case.prepare(root)?;
    let case = &case;
    if case.setup.image == kdrill::spec::setup::ImageKind::Debian {
        return debian(case, &options, args.runs);
    }
    let mut rows = Vec::new();
    println!("run  total   guest  (boot  kexec  capture-boot  makedumpfile)  overhead");
    for run in 1..=args.runs.max(1) {
        let result = kdrill::campaign::verify::run_one(case, &options);
        let p = &result.phases;
        let (Some(total), Some(guest)) = (p.total, p.guest_seconds()) else {
            bail!(
                "run {run} did not record every phase ({}): see {}",
                result.reasons.join("; "),
                result.artifacts
            );
        };
        let f = |v: Option<f64>| v.unwrap_or(0.0);
        println!(
            "{run:>3}  {total:5.1}s  {guest:5.1}s  ({:4.1}s {:5.1}s {:9.1}s {:12.1}s)  {:.2}",
            f(p.guest_boot),
            f(p.kexec),
            f(p.capture_boot),
            f(p.makedumpfile),
            total / guest
        );
        rows.push(serde_json::json!({ "run": run, "total": total, "guest": guest, "ratio": total / guest, "phases": p }));
    }
    let ratios: Vec<f64> = rows.iter().filter_map(|r| r["ratio"].as_f64()).collect();
    let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
    println!("mean overhead {mean:.2} (wall time ÷ guest time; target ≤ 1.10)");
    let out = options.out_dir.join("bench.json");
    let json = serde_json::json!({ "case": case.id(), "runs": rows, "mean_ratio": mean });
    std::fs::create_dir_all(&options.out_dir)?;
    std::fs::write(&out, serde_json::to_string_pretty(&json)? + "\n")
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!("written: {}", out.display());
    Ok(0)
}

/// The Debian case's phases per run, their medians, and `bench-debian.json`.
fn debian(
    case: &kdrill::case::Case,
    options: &kdrill::case::RunOptions,
    runs: usize,
) -> anyhow::Result<i32> {
    let mut rows = Vec::new();
    println!("run  total   boot   ready  crash→capture  crash→saved  ready again  verify");
    let mut totals = Vec::new();
    for run in 1..=runs.max(1) {
        let result = kdrill::campaign::verify::run_one(case, options);
        let p = &result.phases;
        let (Some(total), Some(saved)) = (p.total, p.crash_to_saved) else {
            bail!(
                "run {run} did not record every phase ({}): see {}",
                result.reasons.join("; "),
                result.artifacts
            );
        };
        let f = |v: Option<f64>| v.unwrap_or(0.0);
        println!(
            "{run:>3}  {total:5.1}s {:5.1}s {:6.1}s {:13.1}s {:11.1}s {:11.1}s {:6.1}s",
            f(p.boot),
            f(p.ready),
            f(p.crash_to_capture),
            saved,
            f(p.ready_again),
            f(p.verify)
        );
        totals.push(total);
        let phases = result.production.as_ref().map(|p| p.phases.clone());
        rows.push(serde_json::json!({ "run": run, "total": total, "phases": p, "production_phases": phases }));
    }
    totals.sort_by(f64::total_cmp);
    println!("median total {:.1}s", totals[totals.len() / 2]);
    let out = options.out_dir.join("bench-debian.json");
    let json = serde_json::json!({ "case": case.id(), "runs": rows });
    std::fs::create_dir_all(&options.out_dir)?;
    std::fs::write(&out, serde_json::to_string_pretty(&json)? + "\n")
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!("written: {}", out.display());
    Ok(0)
}
