//! `verify`: select kernel x scenario cases, fetch what they need up front, run them one by one
//! with progress, print one line per case. Shared by `kdrill verify` and `cargo xtask verify`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::case::{self, RunOptions};
use crate::console::last_lines;
use crate::kernel::{self, KernelSpec};
use crate::scenario::{self, Scenario};
use crate::verdict::{CaseResult, Verdict};

#[derive(clap::Args, Debug, Clone)]
pub struct VerifyArgs {
    /// Kernel entry id from kernels/ (repeatable; `all` for every entry)
    #[arg(long = "kernel", value_name = "ID", default_value = "debian-6.1")]
    pub kernels: Vec<String>,
    /// Scenario id from scenarios/ (repeatable; `all` for every scenario)
    #[arg(long = "scenario", value_name = "ID", default_value = "sysrq")]
    pub scenarios: Vec<String>,
    /// Project folder holding kernels/, scenarios/ and images/ (default: found from the current folder)
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Print the guest's serial console as it runs
    #[arg(long)]
    pub console: bool,
    /// List the selected cases without running them
    #[arg(long)]
    pub list: bool,
}

/// One case to run.
pub struct Case {
    pub kernel: KernelSpec,
    pub scenario: Scenario,
}

impl Case {
    pub fn id(&self) -> String {
        format!("{}/{}", self.kernel.id, self.scenario.id)
    }
}

/// Expands kernel and scenario selections (`all` allowed) into cases, kernels outermost.
pub fn expand(root: &Path, kernels: &[String], scenarios: &[String]) -> anyhow::Result<Vec<Case>> {
    let pick = |wanted: &[String], all: Vec<String>| -> Vec<String> {
        if wanted.iter().any(|w| w == "all") {
            all
        } else {
            wanted.to_vec()
        }
    };
    let kernels: Vec<KernelSpec> = pick(kernels, kernel::list_ids(root))
        .iter()
        .map(|id| kernel::load(root, id))
        .collect::<Result<_, _>>()?;
    let scenarios: Vec<Scenario> = pick(scenarios, scenario::list_ids(root))
        .iter()
        .map(|id| scenario::load(root, id))
        .collect::<Result<_, _>>()?;
    let mut cases = Vec::new();
    for kernel in &kernels {
        for scenario in &scenarios {
            cases.push(Case {
                kernel: kernel.clone(),
                scenario: scenario.clone(),
            });
        }
    }
    Ok(cases)
}

/// The project root from `--root` or the current folder's ancestors.
pub fn project_root(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(root) = given {
        return Ok(root.to_path_buf());
    }
    let cwd = std::env::current_dir().context("cannot read the current folder")?;
    crate::paths::find_project_root(&cwd)
        .with_context(|| format!("no kernels/ and scenarios/ folders in {} or above: run from a kdrill checkout or pass --root", cwd.display()))
}

/// Runs `kdrill verify`; returns the exit code (0 when every case passed).
pub fn run(args: &VerifyArgs) -> anyhow::Result<i32> {
    let root = project_root(args.root.as_deref())?;
    let cases = expand(&root, &args.kernels, &args.scenarios)?;
    if args.list {
        for case in &cases {
            println!("{}", case.id());
        }
        return Ok(0);
    }
    let mut options = RunOptions::for_project(&root);
    options.echo_console |= args.console;
    prefetch(&cases, &options)?;
    let results: Vec<CaseResult> = cases.iter().map(|case| run_one(case, &options)).collect();
    let count = |v: Verdict| results.iter().filter(|r| r.verdict == v).count();
    let (passed, failed, skipped) = (
        count(Verdict::Pass),
        count(Verdict::Fail),
        count(Verdict::Skip),
    );
    println!("{passed} passed, {failed} failed, {skipped} skipped");
    Ok(if failed == 0 { 0 } else { 1 })
}

/// Fetches every selected kernel before the first case, so fetch time is not charged to a case.
fn prefetch(cases: &[Case], options: &RunOptions) -> anyhow::Result<()> {
    let mut done: Vec<&str> = Vec::new();
    for case in cases {
        if done.contains(&case.kernel.id.as_str()) {
            continue;
        }
        done.push(&case.kernel.id);
        let spinner = spinner(&format!("{}: fetching kernel", case.kernel.id));
        let fetched = crate::kernel_cache::resolve(&case.kernel, &options.cache);
        spinner.finish_and_clear();
        fetched.with_context(|| format!("kernel {}", case.kernel.id))?;
    }
    Ok(())
}

/// Runs one case with a spinner naming its phase; prints its result line, and on failure the
/// reason and the end of the serial console.
pub fn run_one(case: &Case, options: &RunOptions) -> CaseResult {
    let id = case.id();
    let spinner = spinner(&id);
    let result = case::run(&case.kernel, &case.scenario, options, &|phase| {
        spinner.set_message(format!("{id}: {phase}"))
    });
    spinner.finish_and_clear();
    println!("{}", result.summary_line());
    if result.verdict == Verdict::Fail {
        let serial = Path::new(&result.artifacts).join("serial.log");
        println!("  evidence: {}", result.artifacts);
        println!(
            "  last {} lines of {}:",
            case::FAILURE_CONSOLE_LINES,
            serial.display()
        );
        for line in last_lines(&serial, case::FAILURE_CONSOLE_LINES) {
            println!("  | {line}");
        }
    }
    result
}

fn spinner(message: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(message.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}
