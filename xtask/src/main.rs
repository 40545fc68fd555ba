//! Developer and CI entry points: `cargo xtask verify` (the main job), `cargo xtask test` (the
//! test suite as CI runs it) and `cargo xtask kernels`. Each installs missing host packages first
//! (as root on Debian/Ubuntu) or stops with the exact install line.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Crash guests and check their dumps (default: debian-6.1 x sysrq), through nextest when installed
    Verify(kdrill::campaign::verify::VerifyArgs),
    /// Run what CI runs: fmt, clippy, then every test (the `ci` matrix set included) through nextest
    Test {
        /// Arguments passed on to `cargo nextest run` (e.g. a filter)
        #[arg(last = true)]
        rest: Vec<String>,
    },
    /// List the kernel entries and whether each is in the cache
    Kernels,
    /// Harness overhead: run a case N times; wall time ÷ what the guest spent by its own clocks
    Bench {
        /// How many runs
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Kernel entry
        #[arg(long, default_value = "debian-6.1")]
        kernel: String,
        /// Scenario
        #[arg(long, default_value = "sysrq")]
        scenario: String,
    },
}

fn main() {
    let code = match run(Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            2
        }
    };
    std::process::exit(code);
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    let root = project_root();
    std::env::set_current_dir(&root).with_context(|| format!("cannot enter {}", root.display()))?;
    if let Task::Kernels = cli.command {
        return kernels(&root);
    }
    // The crasher module's compiler too: the crash routes and tests that need the module build it.
    let tools = [
        kdrill::host::tools::VERIFY_TOOLS,
        kdrill::host::tools::CRASHER_TOOLS,
    ]
    .concat();
    kdrill::host::tools::ensure(&tools)?;
    match cli.command {
        Task::Verify(mut args) => {
            args.root.get_or_insert(root.clone());
            verify(&root, &args)
        }
        Task::Test { rest } => test(&root, &rest),
        Task::Bench {
            runs,
            kernel,
            scenario,
        } => bench(&root, runs, &kernel, &scenario),
        Task::Kernels => unreachable!("handled above"),
    }
}

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn has_nextest() -> bool {
    Command::new("cargo")
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Fetches and builds up front (with progress), runs the cases as nextest tests of the `matrix`
/// binary (parallel, retried, timed out, JUnit), then writes and prints the summary. Without
/// nextest, runs them in this process.
fn verify(root: &Path, args: &kdrill::campaign::verify::VerifyArgs) -> anyhow::Result<i32> {
    if args.list || !has_nextest() {
        if !args.list {
            eprintln!("xtask: cargo-nextest is not installed (`cargo install cargo-nextest --locked`); running the cases one by one");
        }
        return kdrill::campaign::verify::run(args);
    }
    let cases = args.cases(root)?;
    let options = kdrill::case::RunOptions::for_project(root);
    kdrill::campaign::verify::prefetch(&cases, &options)?;
    let started = SystemTime::now();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let guests = kdrill::campaign::matrix::parallel_guests(
        cores,
        kdrill::campaign::matrix::mem_available_kib().unwrap_or(0),
    );
    // Each matrix test requires 2 threads (.config/nextest.toml): 2 per guest.
    let threads = (guests * 2).to_string();
    let mut command = Command::new(cargo_bin());
    command.args([
        "nextest",
        "run",
        "-p",
        "kdrill",
        "--test",
        "matrix",
        "--profile",
        "ci",
        "--no-fail-fast",
    ]);
    command.args(["--test-threads", &threads]);
    let join = |v: &[String], default: &str| {
        if v.is_empty() {
            default.to_string()
        } else {
            v.join(",")
        }
    };
    match &args.set {
        Some(set) => {
            command
                .env("KDRILL_MATRIX", set)
                .env_remove("KDRILL_KERNELS")
                .env_remove("KDRILL_SCENARIOS");
        }
        None => {
            command.env("KDRILL_KERNELS", join(&args.kernels, "debian-6.1"));
            command.env("KDRILL_SCENARIOS", join(&args.scenarios, "sysrq"));
        }
    }
    if args.console {
        command.env("KDRILL_CONSOLE", "1").arg("--no-capture");
    }
    eprintln!(
        "xtask: {} case(s) through nextest, {guests} guest(s) at a time",
        cases.len()
    );
    let status = command.status().context("cannot run cargo nextest")?;
    let code = kdrill::campaign::verify::summarize_since(&options.target_dir, &cases, started)?;
    eprintln!(
        "xtask: JUnit: {}",
        options.target_dir.join("nextest/ci/junit.xml").display()
    );
    Ok(if status.success() { code } else { code.max(1) })
}

/// The benchmark of the harness itself: the peer is the guest's own clock. Per run: the case's
/// wall time, the guest's first boot, `kexec -p`, capture boot and makedumpfile by its own
/// timestamps, and the ratio (target ≤ 1.10). Results also go to `target/kdrill/bench.json`.
fn bench(root: &Path, runs: usize, kernel: &str, scenario: &str) -> anyhow::Result<i32> {
    let cases =
        kdrill::campaign::matrix::expand(root, &[kernel.to_string()], &[scenario.to_string()])?;
    let case = cases.first().context("no case selected")?;
    let options = kdrill::case::RunOptions::for_project(root);
    kdrill::campaign::verify::prefetch(&cases, &options)?;
    let mut rows = Vec::new();
    println!("run  total   guest  (boot  kexec  capture-boot  makedumpfile)  overhead");
    for run in 1..=runs.max(1) {
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
    let out = kdrill::host::paths::target_dir(root).join("kdrill/bench.json");
    let json = serde_json::json!({ "case": case.id(), "runs": rows, "mean_ratio": mean });
    std::fs::write(&out, serde_json::to_string_pretty(&json)? + "\n")
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!("written: {}", out.display());
    Ok(0)
}

fn kernels(root: &Path) -> anyhow::Result<i32> {
    let cache = kdrill::host::paths::cache_dir();
    for id in kdrill::spec::kernel::list_ids(root) {
        let spec = kdrill::spec::kernel::load(root, &id)?;
        let cached = if kdrill::fetch::kernel::is_cached(&spec, &cache) {
            "cached"
        } else {
            "not cached"
        };
        let source = match &spec.source {
            kdrill::spec::kernel::KernelSource::Debian {
                package, version, ..
            } => format!("{package}={version}"),
            kdrill::spec::kernel::KernelSource::Local { vmlinuz, .. } => {
                format!("local {}", vmlinuz.display())
            }
        };
        println!("{id:<20} {cached:<11} {source}");
        println!("{:<20} {}", "", spec.why);
    }
    println!("cache: {}", cache.display());
    Ok(0)
}

fn test(root: &Path, rest: &[String]) -> anyhow::Result<i32> {
    cargo(&["fmt", "--all", "--", "--check"])
        .context("formatting differs: run `cargo fmt --all`")?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--quiet",
        "--",
        "-D",
        "warnings",
    ])?;
    let started = SystemTime::now();
    let outcome = if has_nextest() {
        let mut args = vec!["nextest", "run", "--workspace", "--profile", "ci"];
        args.extend(rest.iter().map(String::as_str));
        cargo(&args)
    } else {
        eprintln!("xtask: cargo-nextest is not installed (`cargo install cargo-nextest --locked`); running `cargo test`");
        let mut args = vec!["test", "--workspace"];
        args.extend(rest.iter().map(String::as_str));
        cargo(&args)
    };
    // The matrix cases of this run, as a table (the test runner's own verdict stands).
    if let Ok(cases) = kdrill::campaign::matrix::from_env(root) {
        let target = kdrill::host::paths::target_dir(root);
        let _ = kdrill::campaign::verify::summarize_since(&target, &cases, started);
    }
    outcome.map(|()| 0)
}

fn cargo_bin() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn cargo(args: &[&str]) -> anyhow::Result<()> {
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = Command::new(cargo_bin())
        .args(args)
        .status()
        .with_context(|| format!("cannot run cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}
