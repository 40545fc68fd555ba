//! `cargo xtask test`: what CI runs. `cargo fmt --check`, `cargo clippy -D warnings`, then every
//! test through nextest (the `ci` matrix set among them, stopped with xtask), the matrix summary
//! and the JUnit report completed with the declared skips' reasons, then the dump reader's fuzz
//! targets for [`CI_FUZZ_SECONDS`] each. drgn (PyPI) is installed into the cache first, for
//! the cross-check test.

use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use anyhow::{bail, Context};

use crate::{cargo_bin, has_nextest, nextest};

/// How long CI fuzzes each of the reader's targets (`cargo xtask fuzz --time 20`): a smoke run; `cargo xtask fuzz` alone runs longer.
const CI_FUZZ_SECONDS: u64 = 20;

pub fn run(root: &Path, rest: &[String]) -> anyhow::Result<i32> {
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
    // drgn for the cross-check test, installed once into the cache (the test installs it
    // too, and skips only when PyPI cannot be reached).
    match kdrill::crosscheck::drgn::ensure() {
        Ok(python) => eprintln!(
            "xtask: drgn {} in {}",
            kdrill::crosscheck::drgn::VERSION,
            python.display()
        ),
        Err(e) => eprintln!("xtask: {e}"),
    }
    let started = SystemTime::now();
    let target = kdrill::host::paths::target_dir(root);
    if !has_nextest() {
        eprintln!("xtask: cargo-nextest is not installed (`cargo install cargo-nextest --locked`); running `cargo test`");
        let mut args = vec!["test", "--workspace"];
        args.extend(rest.iter().map(String::as_str));
        return cargo(&args).map(|()| 0);
    }
    let config = nextest::config_file(root, &target, kdrill::host::deadline::scale())?;
    let mut command = Command::new(cargo_bin());
    command.args(["nextest", "run", "--workspace", "--profile", "ci"]);
    command.arg("--config-file").arg(&config);
    command.args(rest);
    eprintln!(
        "xtask: cargo nextest run --workspace --profile ci {}",
        rest.join(" ")
    );
    let ended = nextest::run(command)?;
    // The matrix cases of this run, as a table (the test runner's own verdict stands).
    if let Ok(cases) = kdrill::campaign::matrix::from_env(root) {
        let out = kdrill::host::paths::out_dir(root);
        let _ = kdrill::campaign::verify::summarize_since(
            &out,
            &cases,
            started,
            kdrill::campaign::stream::Format::Text,
            None,
        );
        let results = kdrill::campaign::summary::load_results(&out, &cases, started);
        kdrill::campaign::junit::annotate_file(
            &target.join("nextest/ci/junit.xml"),
            &cases,
            &results,
        )?;
    }
    if ended.signal.is_some() || !ended.status.success() {
        eprintln!("xtask: nextest failed ({})", ended.status);
        return Ok(ended.exit_code());
    }
    if !rest.is_empty() {
        // A filtered run (`cargo xtask test -- tidy`) is a developer's quick loop: no fuzzing.
        return Ok(0);
    }
    eprintln!("xtask: fuzzing the dump reader, {CI_FUZZ_SECONDS} s per target");
    crate::fuzz::run(root, CI_FUZZ_SECONDS, None)
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
