//! Developer and CI entry points: `cargo xtask verify` (the main job), `cargo xtask test` (the
//! test suite as CI runs it), `kernels`, `bench`, `soak`, `calibrate`, `doctor` (`kdrill doctor`), `fuzz` (the dump reader's fuzz targets), `dist` (kdrill's Debian package). Each installs missing host packages
//! first (as root on Debian/Ubuntu) or stops with the exact install line; the logic lives in the
//! `kdrill` library, xtask only orchestrates. `deep` runs crash, gdb and drgn against kdrill;
//! `compat` tables kernels against each release's makedumpfile.

mod bench;
mod calibrate;
mod compat;
mod deep;
mod dist;
mod fuzz;
mod kernels;
mod nextest;
mod rows;
mod soak;
mod speed;
mod test;
mod verify;

use std::path::{Path, PathBuf};

use anyhow::Context;
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
    /// The kernel × makedumpfile table: the `compat` set's cases (dirty-free on each kernel ×
    /// each release's makedumpfile) run, then tabled into compat.md and compat.json
    Compat(compat::CompatArgs),
    /// Run what CI runs: fmt, clippy, then every test (the `ci` matrix set included) through nextest
    Test {
        /// Arguments passed on to `cargo nextest run` (e.g. a filter)
        #[arg(last = true)]
        rest: Vec<String>,
    },
    /// List the kernel entries: pin, newest in the archives, cached or not; --repin ID re-pins one
    Kernels(kernels::KernelsArgs),
    /// One case against a plain QEMU script: faithful, fast, restored (medians and ratios), or --set NAME timed whole
    Bench(bench::BenchArgs),
    /// Run one case N times back to back: pass/fail counts, flake rate, each phase's spread
    Soak(soak::SoakArgs),
    /// Measure the smallest crashkernel= that still captures, per memory size (`kdrill calibrate`)
    Calibrate(kdrill::calibrate::run::CalibrateArgs),
    /// Deep reading against crash and gdb on real captures (tables), and inspect's speed
    /// against drgn, crash and makedumpfile
    Deep(deep::DeepArgs),
    /// The host programs kdrill needs, what is missing or in conflict and the commands that fix
    /// it (`kdrill doctor`); --install does the host-package step (as root)
    Doctor(kdrill::host::doctor::DoctorArgs),
    /// Build kdrill's Debian package (binary, man pages, completions, systemd units, calibration
    /// files) into target/dist/
    Dist(dist::DistArgs),
    /// Fuzz the dump reader: seed corpora, build, then each target for --time seconds
    Fuzz {
        /// Seconds per target
        #[arg(long, default_value_t = 60)]
        time: u64,
        /// Run only this target (read_dump, read_recipe, read_deep, read_table)
        #[arg(long)]
        target: Option<String>,
    },
}

fn main() {
    let raw: Vec<String> = std::env::args().collect();
    let json = kdrill::exit::wants_json(&raw);
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            use clap::error::ErrorKind;
            let help = matches!(
                err.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
            );
            if json && !help {
                let message = err.to_string();
                let message = message.lines().next().unwrap_or("");
                print!(
                    "{}",
                    kdrill::exit::error_json(
                        raw.get(1).map_or("", String::as_str),
                        kdrill::exit::USAGE,
                        "usage",
                        message.trim_start_matches("error: ")
                    )
                );
            }
            let _ = err.print();
            std::process::exit(if help {
                kdrill::exit::SUCCESS
            } else {
                kdrill::exit::USAGE
            });
        }
    };
    let code = match run(cli) {
        Ok(code) => code,
        Err(err) => {
            let (code, kind) = kdrill::exit::classify(&err);
            if json {
                let command = raw.get(1).map_or("", String::as_str);
                print!(
                    "{}",
                    kdrill::exit::error_json(command, code, kind, &format!("{err:#}"))
                );
            }
            eprintln!("xtask: error: {err:#}");
            code
        }
    };
    std::process::exit(code);
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    let root = project_root();
    std::env::set_current_dir(&root).with_context(|| format!("cannot enter {}", root.display()))?;
    if needs_host_tools(&cli.command) {
        ensure_host_tools()?;
    }
    match cli.command {
        Task::Kernels(args) => kernels::run(&root, &args),
        Task::Verify(args) if args.list => kdrill::campaign::verify::run(&args),
        Task::Verify(args) => verify::run(&root, args),
        Task::Compat(args) => compat::run(&root, &args),
        Task::Test { rest } => test::run(&root, &rest),
        Task::Bench(args) => bench::run(&root, &args),
        Task::Soak(args) => soak::run(&root, &args),
        Task::Calibrate(args) => calibrate::run(args),
        Task::Fuzz { time, target } => fuzz::run(&root, time, target.as_deref()),
        Task::Deep(args) => deep::run(&root, &args),
        Task::Doctor(args) => kdrill::host::doctor::run(&args),
        Task::Dist(args) => dist::run(&root, &args),
    }
}

/// Whether a task runs guests (and so needs QEMU, kexec, … installed) whatever it selects.
/// Listing cases or kernels runs nothing and must not install packages; `verify` decides itself
/// once it knows its cases (a selection of declared skips boots nothing).
fn needs_host_tools(task: &Task) -> bool {
    match task {
        Task::Kernels(_)
        | Task::Fuzz { .. }
        | Task::Verify(_)
        | Task::Compat(_)
        | Task::Doctor(_)
        | Task::Dist(_) => false,
        Task::Test { .. } | Task::Bench(_) | Task::Soak(_) | Task::Calibrate(_) | Task::Deep(_) => {
            true
        }
    }
}

/// The verify loop's tools, the crasher module's compiler (the crash routes and tests that need
/// the module build it) and the Debian image's tools, through the host-package step (QEMU's
/// packages as one set with any QEMU already installed).
fn ensure_host_tools() -> anyhow::Result<()> {
    kdrill::host::tools::ensure(&kdrill::host::tools::needed())
}

/// The one case `bench` and `soak` repeat.
#[derive(clap::Args)]
pub struct OneCase {
    /// Kernel entry
    #[arg(long, default_value = "debian-6.1")]
    pub kernel: String,
    /// Scenario
    #[arg(long, default_value = "sysrq")]
    pub scenario: String,
    /// Image, a recipe of images/ (`debian-bookworm`, its alias `debian`, `debian-trixie`)
    /// [default: minimal]
    #[arg(long, value_name = "NAME")]
    pub image: Option<String>,
}

/// `cargo build -p kdrill --bin kdrill`: the program Debian guests run `kdrill check` with.
const BUILD_DEADLINE: std::time::Duration = std::time::Duration::from_secs(1800);

impl OneCase {
    /// The case, with what it needs fetched and built.
    pub fn prepare(
        &self,
        root: &Path,
    ) -> anyhow::Result<(kdrill::case::Case, kdrill::case::RunOptions)> {
        let setup = kdrill::spec::setup::Setup {
            image: match &self.image {
                Some(name) => kdrill::spec::images::Registry::load(root)?
                    .find(name)
                    .map_err(anyhow::Error::msg)?,
                None => Default::default(),
            },
            ..Default::default()
        };
        let cases = kdrill::campaign::matrix::expand_with(
            root,
            std::slice::from_ref(&self.kernel),
            std::slice::from_ref(&self.scenario),
            &setup,
        )?;
        let case = cases.into_iter().next().context("no case selected")?;
        let mut options =
            kdrill::case::RunOptions::for_project(&kdrill::host::paths::Project::checkout(root))
                .map_err(anyhow::Error::msg)?;
        // An image built with its own kdump runs this build's `kdrill check` inside the guest.
        if kdrill::case::needs::needs(&case, options.overrides).image_build {
            let mut build = std::process::Command::new(cargo_bin());
            build.args(["build", "-p", "kdrill", "--bin", "kdrill"]);
            let status = kdrill::host::process::run_status(&mut build, BUILD_DEADLINE)?;
            anyhow::ensure!(status.success(), "cargo build -p kdrill failed ({status})");
            options.kdrill_bin = Some(kdrill::host::paths::target_dir(root).join("debug/kdrill"));
        }
        kdrill::campaign::verify::prefetch(std::slice::from_ref(&case), &options)?;
        Ok((case, options))
    }
}

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// `cargo` as cargo itself named it when it started xtask.
fn cargo_bin() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// `cargo nextest --version` answers in well under a second; a wedged cargo must not hang xtask.
const NEXTEST_PROBE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

fn has_nextest() -> bool {
    kdrill::host::process::run(
        std::process::Command::new(cargo_bin()).args(["nextest", "--version"]),
        NEXTEST_PROBE_DEADLINE,
    )
    .is_ok_and(|o| o.status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(args: &[&str]) -> Task {
        Cli::parse_from(std::iter::once("xtask").chain(args.iter().copied())).command
    }

    #[test]
    fn listing_installs_nothing() {
        assert!(!needs_host_tools(&task(&["verify", "--list"])));
        assert!(!needs_host_tools(&task(&[
            "verify", "--list", "--set", "ci"
        ])));
        assert!(!needs_host_tools(&task(&["kernels"])));
        assert!(!needs_host_tools(&task(&[
            "kernels",
            "--repin",
            "debian-6.1"
        ])));
        assert!(!needs_host_tools(&task(&["fuzz", "--time", "5"])));
        assert!(!needs_host_tools(&task(&["doctor"])));
        assert!(!needs_host_tools(&task(&["doctor", "--format", "json"])));
        // `doctor --install` runs the host-package step itself, once.
        assert!(!needs_host_tools(&task(&["doctor", "--install"])));
        // verify ensures them itself, once it knows whether a case will boot.
        assert!(!needs_host_tools(&task(&["verify"])));
        // compat runs verify's path (or, with --no-run, only reads results).
        assert!(!needs_host_tools(&task(&["compat", "--no-run"])));
        assert!(needs_host_tools(&task(&["test"])));
        assert!(needs_host_tools(&task(&["soak", "--runs", "2"])));
    }
}
