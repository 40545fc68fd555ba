//! `cargo xtask verify`: fetch and build up front (with progress), run the cases as tests of the
//! `matrix` binary through nextest (parallel, retried, timed out, JUnit, stopped with xtask),
//! then write and print the summary. Without nextest, the cases run in this process.

use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use kdrill::campaign::verify::VerifyArgs;

use crate::{cargo_bin, has_nextest, nextest};

pub fn run(root: &Path, mut args: VerifyArgs) -> anyhow::Result<i32> {
    args.root.get_or_insert(root.to_path_buf());
    if !has_nextest() {
        eprintln!("xtask: cargo-nextest is not installed (`cargo install cargo-nextest --locked`); running the cases one by one");
        return kdrill::campaign::verify::run(&args);
    }
    // `--root` chooses the kernels, scenarios and images the matrix tests read, as for `kdrill verify`.
    let project = args.root.clone().unwrap_or_else(|| root.to_path_buf());
    let cases = args.cases(&project)?;
    if cases
        .iter()
        .any(|c| c.scenario.image.dump_target == kdrill::spec::setup::DumpTarget::Ssh)
    {
        kdrill::host::tools::ensure(kdrill::host::tools::SSH_TARGET_TOOLS)?;
    }
    args.export_overrides();
    let options = kdrill::case::RunOptions::for_project(&project).map_err(anyhow::Error::msg)?;
    kdrill::campaign::verify::prefetch(&cases, &options)?;
    let started = SystemTime::now();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let guests = kdrill::campaign::matrix::parallel_guests(
        cores,
        kdrill::campaign::matrix::mem_available_kib().unwrap_or(0),
    );
    let target = kdrill::host::paths::target_dir(root);
    let config = nextest::config_file(root, &target, kdrill::host::deadline::scale())?;
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
    ]);
    command.arg("--config-file").arg(&config);
    // A set whose every case is a declared skip runs no test: that is a pass, not an error.
    command.args(["--no-fail-fast", "--no-tests", "pass"]);
    // Each matrix test requires 2 threads (.config/nextest.toml): 2 per guest.
    command.args(["--test-threads", &(guests * 2).to_string()]);
    command.env("KDRILL_ROOT", &project);
    command.env("KDRILL_OUT", &options.out_dir);
    let join = |v: &[String], default: &str| {
        if v.is_empty() {
            default.to_string()
        } else {
            v.join(",")
        }
    };
    for var in ["KDRILL_IMAGE", "KDRILL_OVERLAY", "KDRILL_CRASHKERNEL"] {
        command.env_remove(var);
    }
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
            // The image, overlay and crashkernel= reach the matrix tests as they reach cases here.
            let setup = args.setup()?;
            command.env("KDRILL_IMAGE", setup.image.name());
            if let Some(overlay) = &setup.overlay {
                command.env("KDRILL_OVERLAY", overlay);
            }
            if let Some(size) = &setup.crashkernel {
                command.env("KDRILL_CRASHKERNEL", size);
            }
        }
    }
    // Debian guests get the kdrill that nextest builds with the tests (CARGO_BIN_EXE_kdrill),
    // not whatever an older build left in the target folder.
    if args.console {
        command.env("KDRILL_CONSOLE", "1").arg("--no-capture");
    }
    eprintln!(
        "xtask: {} case(s) through nextest, {guests} guest(s) at a time",
        cases.len()
    );
    let ended = nextest::run(command)?;
    let code = kdrill::campaign::verify::summarize_since(&options.out_dir, &cases, started)?;
    let junit = target.join("nextest/ci/junit.xml");
    let results = kdrill::campaign::summary::load_results(&options.out_dir, &cases, started);
    kdrill::campaign::junit::annotate_file(&junit, &cases, &results)?;
    eprintln!("xtask: JUnit: {}", junit.display());
    Ok(match ended.signal {
        Some(_) => ended.exit_code(),
        None if ended.status.success() => code,
        None => code.max(1),
    })
}
