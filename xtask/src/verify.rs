//! `cargo xtask verify`: fetch and build up front (with progress), run the cases as tests of the
//! `matrix` binary through nextest (parallel, retried, timed out, JUnit, stopped with xtask; a set
//! adds the `production` binary, the Debian images' broken configurations it selects),
//! then write and print the summary. Without nextest, the cases run in this process.
//!
//! `--format json` through nextest is not streamed: when nextest has finished, each case's last
//! attempt is read back from its `result.json` and printed as a `kdrill-verify-case/1` line, then
//! the `kdrill-verify-summary/1` line; nextest's own output goes to stderr meanwhile.

use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use kdrill::campaign::stream::Format;
use kdrill::campaign::verify::VerifyArgs;

use crate::{cargo_bin, has_nextest, nextest};

pub fn run(root: &Path, args: VerifyArgs) -> anyhow::Result<i32> {
    // `--root DIR` adds to kdrill's data as for `kdrill verify --root`; else this checkout as it
    // is. The matrix tests read the same folder (KDRILL_ROOT).
    let project = match &args.root {
        Some(dir) => kdrill::host::paths::project(Some(dir))?,
        None => kdrill::host::paths::Project::checkout(root),
    };
    let cases = args.cases(&project.root)?;
    // A selection whose every case is a declared skip boots nothing: no host packages for it.
    if cases.iter().any(|c| c.skip_reason().is_none()) {
        crate::ensure_host_tools()?;
        if cases
            .iter()
            .any(|c| c.scenario.image.dump_target == kdrill::spec::setup::DumpTarget::Ssh)
        {
            kdrill::host::tools::ensure(kdrill::host::tools::SSH_TARGET_TOOLS)?;
        }
    }
    if !has_nextest() {
        eprintln!("xtask: cargo-nextest is not installed (`cargo install cargo-nextest --locked`); running the cases one by one");
        return kdrill::campaign::verify::run(&args);
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
    command.env("KDRILL_ROOT", &project.root);
    if args.format == Format::Json {
        // Only JSON on stdout: nextest's lines (and a test's, with --console) go to stderr.
        command.stdout(std::io::stderr());
    }
    command.env("KDRILL_OUT", &options.out_dir);
    let join = |v: &[String], default: &str| {
        if v.is_empty() {
            default.to_string()
        } else {
            v.join(",")
        }
    };
    for var in [
        "KDRILL_IMAGE",
        "KDRILL_OVERLAY",
        "KDRILL_CRASHKERNEL",
        "KDRILL_USERSPACE",
    ] {
        command.env_remove(var);
    }
    // The capture userspace reaches the matrix tests for a set as for kernels x scenarios.
    if let Some(userspace) = args.userspace()? {
        command.env("KDRILL_USERSPACE", userspace.name());
    }
    match &args.set {
        Some(set) => {
            // A set also chooses the Debian images' broken configurations (the `production`
            // binary: `ci` each once, `nightly` on both images, another set none) and the golden
            // disk images' cases (the `disks` binary: `ci` one, `nightly` all).
            command.args(["--test", "production", "--test", "disks"]);
            command
                .env("KDRILL_MATRIX", set)
                .env_remove("KDRILL_KERNELS")
                .env_remove("KDRILL_SCENARIOS");
        }
        None => {
            command.env("KDRILL_KERNELS", join(&args.kernels, "debian-6.1"));
            command.env("KDRILL_SCENARIOS", join(&args.scenarios, "sysrq"));
            // The image, overlay and crashkernel= reach the matrix tests as they reach cases here.
            let setup = args.setup(&project.root)?;
            // A disk image named by its path reaches them by its path.
            match setup.image.file() {
                Some(file) => command.env("KDRILL_IMAGE", file),
                None => command.env("KDRILL_IMAGE", setup.image.name()),
            };
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
    // nextest failing or stopped makes the run fail even when every result it left passed.
    let code = kdrill::campaign::verify::summarize_since(
        &options.out_dir,
        &cases,
        started,
        args.format,
        Some(ended.exit_code()),
    )?;
    let junit = target.join("nextest/ci/junit.xml");
    let results = kdrill::campaign::summary::load_results(&options.out_dir, &cases, started);
    kdrill::campaign::junit::annotate_file(&junit, &cases, &results)?;
    eprintln!("xtask: JUnit: {}", junit.display());
    Ok(code)
}
