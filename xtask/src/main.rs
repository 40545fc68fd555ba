//! Developer and CI entry points: `cargo xtask verify` (the main job) and `cargo xtask test` (the
//! test suite as CI runs it). Both install missing host packages first (as root on Debian/Ubuntu)
//! or stop with the exact install line.

use std::path::{Path, PathBuf};
use std::process::Command;

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
    /// Crash guests and check their dumps (default: debian-6.1 x sysrq)
    Verify(kdrill::verify::VerifyArgs),
    /// Run what CI runs: fmt, clippy, then every test (VM cases included) through nextest
    Test {
        /// Arguments passed on to `cargo nextest run` (e.g. a filter)
        #[arg(last = true)]
        rest: Vec<String>,
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
    // The crasher module's compiler too: the crash routes and tests that need the module build it.
    kdrill::host_tools::ensure(
        &[
            kdrill::host_tools::VERIFY_TOOLS,
            kdrill::host_tools::CRASHER_TOOLS,
        ]
        .concat(),
    )?;
    match cli.command {
        Task::Verify(mut args) => {
            args.root.get_or_insert(root);
            kdrill::verify::run(&args)
        }
        Task::Test { rest } => test(&rest),
    }
}

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn test(rest: &[String]) -> anyhow::Result<i32> {
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
    let has_nextest = Command::new("cargo")
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_nextest {
        let mut args = vec!["nextest", "run", "--workspace", "--profile", "ci"];
        args.extend(rest.iter().map(String::as_str));
        cargo(&args)?;
    } else {
        eprintln!("xtask: cargo-nextest is not installed (`cargo install cargo-nextest --locked`); running `cargo test`");
        let mut args = vec!["test", "--workspace"];
        args.extend(rest.iter().map(String::as_str));
        cargo(&args)?;
    }
    Ok(0)
}

fn cargo(args: &[&str]) -> anyhow::Result<()> {
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .status()
        .with_context(|| format!("cannot run cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}
