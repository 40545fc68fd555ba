//! `cargo xtask bench`: how long one case takes, against a peer measured in the same run on the
//! same machine. Four rows, run in turn round by round (so drift hits all of them alike), after
//! one warm-up round that is not counted (it also builds the saved shape of row d):
//!
//! - (a) the same minimal guest as a plain script: `mkfs.ext4`, then one QEMU command line with
//!   today's boot (bzImage through SeaBIOS, capture bzImage, zlib), no harness;
//! - (b) kdrill `faithful`; (c) kdrill `fast`, booted; (d) kdrill `fast`, restored from its shape.
//!
//! Prints each row's median, min and max wall time and its median's ratio to (a), against the
//! targets (b ≤ 1.05, c ≤ 0.6, d ≤ 0.4), and writes `<out>/bench.json`. `--set NAME` instead
//! times a whole named set the way `cargo xtask verify --set NAME` runs it.
//!
//! With `--image <a Debian image>`, that case with boot 1 booted against the same case with boot 1
//! restored from its shape, round by round after a warm-up, each run's phases (boot, restore,
//! ready, crash → capture, crash → saved, ready again), the medians and their ratio against the
//! target (restored ≤ 0.5 × booted), in `<out>/bench-debian.json`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use kdrill::case::plan::Overrides;
use kdrill::case::verdict::Verdict;
use kdrill::case::RunOptions;
use kdrill::spec::scenario::BootMode;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Counted rounds (each runs every row once)
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Time a whole named set from matrix.yaml instead (`ci`, `nightly`)
    #[arg(long, value_name = "NAME")]
    set: Option<String>,
    #[command(flatten)]
    case: crate::OneCase,
}

/// The baseline script's deadline: a whole case, generously.
const BASELINE_DEADLINE: Duration = Duration::from_secs(600);

struct Row {
    label: &'static str,
    target: Option<f64>,
    secs: Vec<f64>,
}

pub fn run(root: &Path, args: &BenchArgs) -> anyhow::Result<i32> {
    kdrill::host::interrupt::install();
    if let Some(set) = &args.set {
        return time_set(root, set);
    }
    let (case, options) = args.case.prepare(root)?;
    // An image built with its own kdump has no plain-QEMU peer: its peer is the same case booted.
    if kdrill::case::needs::needs(&case, options.overrides).image_build {
        return debian(&case, &options, args.runs);
    }
    let bench_dir = options.out_dir.join("bench");
    let baseline = kdrill::campaign::baseline::write(&case, &options, &bench_dir.join("baseline"))
        .context("writing the plain-QEMU baseline")?;
    let with = |mode: BootMode, no_restore: bool| RunOptions {
        overrides: Overrides {
            mode: Some(mode),
            no_restore,
        },
        ..options.clone()
    };
    let kdrill_rows = [
        with(BootMode::Faithful, true),
        with(BootMode::Fast, true),
        with(BootMode::Fast, false),
    ];
    let mut rows = vec![
        Row {
            label: "(a) plain QEMU script, bzImage + SeaBIOS + zlib",
            target: None,
            secs: vec![],
        },
        Row {
            label: "(b) kdrill faithful",
            target: Some(1.05),
            secs: vec![],
        },
        Row {
            label: "(c) kdrill fast, booted",
            target: Some(0.6),
            secs: vec![],
        },
        Row {
            label: "(d) kdrill fast, restored from its shape",
            target: Some(0.4),
            secs: vec![],
        },
    ];
    let mut shape = None;
    for round in 0..=args.runs.max(1) {
        let counted = round > 0;
        eprintln!(
            "bench: {} {}",
            if counted { "round" } else { "warm-up" },
            round
        );
        let took = kdrill::campaign::baseline::run(&baseline, BASELINE_DEADLINE)?;
        if counted {
            rows[0].secs.push(took.as_secs_f64());
        }
        for (i, options) in kdrill_rows.iter().enumerate() {
            let started = Instant::now();
            let result = kdrill::campaign::verify::run_one(
                &case,
                options,
                kdrill::campaign::stream::Format::Text,
            );
            let took = started.elapsed().as_secs_f64();
            if result.verdict != Verdict::Pass {
                bail!(
                    "{} did not pass ({}): see {}",
                    rows[i + 1].label,
                    result.reasons.join("; "),
                    result.artifacts
                );
            }
            if let Some(record) = &result.shape {
                shape.get_or_insert_with(|| record.clone());
            }
            if counted {
                rows[i + 1].secs.push(took);
            }
            if kdrill::host::interrupt::interrupted().is_some() {
                bail!("stopped");
            }
        }
    }
    let base = median(&rows[0].secs);
    println!("{} ({} rounds, after one warm-up)", case.id(), args.runs);
    println!(
        "{:<46} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "row", "median", "min", "max", "÷ (a)", "target"
    );
    let mut json_rows = Vec::new();
    for row in &rows {
        let m = median(&row.secs);
        let (min, max) = (
            row.secs.iter().copied().fold(f64::INFINITY, f64::min),
            row.secs.iter().copied().fold(0.0, f64::max),
        );
        let ratio = m / base;
        let target = row
            .target
            .map(|t| format!("≤ {t:.2}{}", if ratio <= t { "" } else { " MISSED" }))
            .unwrap_or_default();
        println!(
            "{:<46} {m:>7.1}s {min:>7.1}s {max:>7.1}s {ratio:>8.2} {target:>8}",
            row.label
        );
        json_rows.push(serde_json::json!({
            "row": row.label, "seconds": row.secs, "median": m, "ratio": ratio, "target": row.target,
        }));
    }
    if let Some(shape) = &shape {
        println!(
            "the shape of (d): booted in {:.1}s (guest {:.1}s, kexec {:.1}s), saved in {:.1}s ({} MB), once; {}",
            shape.boot,
            shape.guest_boot,
            shape.kexec.unwrap_or(0.0),
            shape.save,
            shape.state_bytes / 1_000_000,
            shape.evidence
        );
    }
    let out = options.out_dir.join("bench.json");
    let json = serde_json::json!({ "case": case.id(), "rounds": args.runs, "rows": json_rows, "shape": shape });
    std::fs::create_dir_all(&options.out_dir)?;
    std::fs::write(&out, serde_json::to_string_pretty(&json)? + "\n")
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!("written: {}", out.display());
    Ok(0)
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Times a named set run as `cargo xtask verify --set NAME` runs it.
fn time_set(root: &Path, set: &str) -> anyhow::Result<i32> {
    let args = kdrill::campaign::verify::VerifyArgs {
        kernels: vec![],
        scenarios: vec![],
        set: Some(set.to_string()),
        root: None,
        console: false,
        list: false,
        mode: None,
        no_restore: false,
        disk: Default::default(),
        image: None,
        overlay: None,
        crashkernel: None,
        userspace: None,
        format: kdrill::campaign::stream::Format::Text,
    };
    let started = Instant::now();
    let code = crate::verify::run(root, args)?;
    println!(
        "set {set}: {:.0} s wall time (exit {code}), on {} cores",
        started.elapsed().as_secs_f64(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    Ok(code)
}

/// An image with its own kdump (a Debian image): the case booted against the same case restored
/// from its shape, round by round after one warm-up round (which builds the image and the shape),
/// each run's phases, the medians and their ratio (target ≤ 0.5), and `bench-debian.json`.
fn debian(
    case: &kdrill::case::Case,
    options: &kdrill::case::RunOptions,
    runs: usize,
) -> anyhow::Result<i32> {
    const TARGET: f64 = 0.5;
    let with = |no_restore: bool| RunOptions {
        overrides: Overrides {
            mode: None,
            no_restore,
        },
        ..options.clone()
    };
    let kinds = [("booted", with(true)), ("restored", with(false))];
    let mut totals: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut rows = Vec::new();
    let mut shape = None;
    println!("round  boot 1    total   boot   restore  ready  crash→capture  crash→saved  ready again  verify");
    for round in 0..=runs.max(1) {
        let counted = round > 0;
        eprintln!(
            "bench: {} {}",
            if counted { "round" } else { "warm-up" },
            round
        );
        for (i, (kind, options)) in kinds.iter().enumerate() {
            let started = Instant::now();
            let result = kdrill::campaign::verify::run_one(
                case,
                options,
                kdrill::campaign::stream::Format::Text,
            );
            let took = started.elapsed().as_secs_f64();
            let p = &result.phases;
            let d = result
                .production
                .as_ref()
                .map(|p| p.times.clone())
                .unwrap_or_default();
            if result.verdict != Verdict::Pass || d.crash_to_saved.is_none() {
                bail!(
                    "the {kind} run did not pass ({}): see {}",
                    result.reasons.join("; "),
                    result.artifacts
                );
            }
            if *kind == "restored" && result.shape.is_none() {
                bail!(
                    "the restored run booted ({}): see {}",
                    result
                        .plan
                        .as_ref()
                        .and_then(|p| p.boots_because.clone())
                        .unwrap_or_else(|| result.notes.join("; ")),
                    result.artifacts
                );
            }
            if let Some(record) = &result.shape {
                shape.get_or_insert_with(|| record.clone());
            }
            if !counted {
                continue;
            }
            let f = |v: Option<f64>| v.unwrap_or(0.0);
            println!(
                "{round:>5}  {kind:<8} {took:6.1}s {:5.1}s {:7.1}s {:5.1}s {:13.1}s {:11.1}s {:11.1}s {:6.1}s",
                f(p.boot),
                f(p.restore),
                f(d.ready),
                f(p.crash_to_capture),
                f(d.crash_to_saved),
                f(d.ready_again),
                f(p.verify)
            );
            totals[i].push(took);
            let phases = result.production.as_ref().map(|p| p.phases.clone());
            rows.push(serde_json::json!({ "round": round, "boot1": kind, "total": took, "phases": result.phase_view(), "production_phases": phases }));
        }
        if kdrill::host::interrupt::interrupted().is_some() {
            bail!("stopped");
        }
    }
    let (booted, restored) = (median(&totals[0]), median(&totals[1]));
    let ratio = restored / booted;
    println!("{} ({runs} rounds, after one warm-up)", case.id());
    println!("median booted {booted:.1}s, restored {restored:.1}s: restored ÷ booted {ratio:.2} (target ≤ {TARGET:.2}{})",
        if ratio <= TARGET { "" } else { " MISSED" });
    if let Some(shape) = &shape {
        println!(
            "the shape: boot 1 to ready in {:.1}s, saved in {:.1}s ({} MB), once; {}",
            shape.ready.unwrap_or(shape.boot),
            shape.save,
            shape.state_bytes / 1_000_000,
            shape.evidence
        );
    }
    let out = options.out_dir.join("bench-debian.json");
    let json = serde_json::json!({
        "case": case.id(), "rounds": runs, "runs": rows,
        "median_booted": booted, "median_restored": restored, "ratio": ratio, "target": TARGET,
        "shape": shape,
    });
    std::fs::create_dir_all(&options.out_dir)?;
    std::fs::write(&out, serde_json::to_string_pretty(&json)? + "\n")
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!("written: {}", out.display());
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(super::median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(super::median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(super::median(&[]).is_nan());
    }
}
