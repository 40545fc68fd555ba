//! `verify`: select kernel x scenario cases, fetch what they need up front, run them one by one
//! with progress, print one line per case and write the summary. Shared by `kdrill verify`,
//! `cargo xtask verify` and the `matrix` test binary. A stop (Ctrl-C, SIGTERM, SIGHUP) ends the
//! run after the case in progress recorded it, with the shell's exit code for the signal.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::campaign::matrix::{self, Case};
use crate::campaign::stream::{self, Format};
use crate::campaign::summary;
use crate::case::verdict::{CaseResult, Verdict};
use crate::case::{self, RunOptions};
use crate::exit::Exit;
use crate::host::interrupt;
use crate::host::process::last_lines;
use crate::spec::images::Registry;
use crate::spec::setup::Setup;
use crate::spec::userspace::Userspace;

#[derive(clap::Args, Debug, Clone)]
#[command(
    after_help = "Exit codes: 0 every case passed or was declared skipped, 1 a case failed, did not run or was interrupted, 3 kdrill could not start (a YAML error, a missing file, a download that failed), 64 a bad command line, 128+N stopped by signal N."
)]
pub struct VerifyArgs {
    /// Kernel entry id from kernels/ (repeatable; `all` for every entry) [default: debian-6.1]
    #[arg(long = "kernel", value_name = "ID")]
    pub kernels: Vec<String>,
    /// Scenario id from scenarios/ (repeatable; `all` for every scenario) [default: sysrq]
    #[arg(long = "scenario", value_name = "ID")]
    pub scenarios: Vec<String>,
    /// A named set from matrix.yaml (`ci`, `nightly`, `canary`) instead of --kernel/--scenario
    #[arg(long, value_name = "NAME", conflicts_with_all = ["kernels", "scenarios"])]
    pub set: Option<String>,
    /// The guest image: a recipe of images/ (`minimal`, `debian-bookworm` alias `debian`,
    /// `debian-trixie`, or one of kind `disk`), or your own disk image's path (qcow2 or raw,
    /// booted through an overlay, never written) [default: minimal]
    #[arg(long, value_name = "NAME|PATH", conflicts_with = "set")]
    pub image: Option<String>,
    #[command(flatten)]
    pub disk: crate::case::disk::settings::DiskFlags,
    /// Files copied into the Debian image's root before its capture initrd is built (your
    /// /etc/default/kdump-tools, /etc/sysctl.d/*.conf, …); needs an image with its own
    /// kdump-tools (`--image debian`, `--image debian-trixie`)
    #[arg(long, value_name = "DIR", conflicts_with = "set")]
    pub overlay: Option<PathBuf>,
    /// crashkernel= for every case, instead of the kernel entry's (e.g. 128M); on a disk image,
    /// kdrill's agent sets it through the image's bootloader in the overlay and reboots once
    #[arg(long, value_name = "SIZE", conflicts_with = "set")]
    pub crashkernel: Option<String>,
    /// Whose busybox, kexec-tools and makedumpfile capture every minimal-image case (a set's
    /// too): a Debian release of images/userspace.yaml (bookworm, trixie, sid, …) or `host`
    /// [default: each kernel's own release; env: KDRILL_USERSPACE]
    #[arg(long, value_name = "NAME")]
    pub userspace: Option<String>,
    /// A folder whose kernels/*.yaml, scenarios/ (and scenarios/overlays/), images/,
    /// calibration/, matrix.yaml and archives.yaml are added to kdrill's own (a file at the same
    /// path replaces the built-in one); evidence then goes to DIR/target/kdrill [default: the
    /// checkout around the current folder, else kdrill's built-in data]
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Print the guest's serial console as it runs
    #[arg(long)]
    pub console: bool,
    /// List the selected cases without running them
    #[arg(long)]
    pub list: bool,
    /// Boot every case this way, whatever its scenario says: `faithful` (firmware, bzImage,
    /// purgatory's checks, zlib) or `fast` (PVH vmlinux, `kexec -p -i`, LZO) [env: KDRILL_MODE]
    #[arg(long, value_name = "MODE", value_parser = ["faithful", "fast"])]
    pub mode: Option<String>,
    /// Boot every fast case instead of restoring its saved guest shape [env: KDRILL_RESTORE=0]
    #[arg(long)]
    pub no_restore: bool,
    /// `text`, or `json`: one `kdrill-verify-case/1` object per line per finished case, then a
    /// `kdrill-verify-summary/1` (with --list: `kdrill-verify-list/1` objects); only JSON on stdout
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

impl VerifyArgs {
    /// `--mode` and `--no-restore` as the environment the cases read (so nextest's test
    /// processes see them too).
    pub fn export_overrides(&self) {
        if let Some(mode) = &self.mode {
            std::env::set_var("KDRILL_MODE", mode);
        }
        if self.no_restore {
            std::env::set_var("KDRILL_RESTORE", "0");
        }
        self.disk.export();
    }

    /// The selected cases: a named set, or kernels x scenarios (defaults: debian-6.1 x sysrq);
    /// `--userspace` over either.
    pub fn cases(&self, root: &Path) -> anyhow::Result<Vec<Case>> {
        if let Some(name) = &self.set {
            let cases = matrix::set(root, name)?;
            return Ok(matrix::with_userspace(cases, self.userspace()?.as_ref()));
        }
        let or = |v: &Vec<String>, default: &str| {
            if v.is_empty() {
                vec![default.to_string()]
            } else {
                v.clone()
            }
        };
        Ok(matrix::expand_with(
            root,
            &or(&self.kernels, "debian-6.1"),
            &or(&self.scenarios, "sysrq"),
            &self.setup(root)?,
        )?)
    }

    /// The image, overlay and `crashkernel=` given on the command line (a relative overlay is
    /// relative to the current folder).
    pub fn setup(&self, root: &Path) -> anyhow::Result<Setup> {
        let image = match &self.image {
            Some(name) => Registry::load(root)?
                .find(name)
                .map_err(|e| Exit::usage(format!("--image: {e}")))?,
            None => Default::default(),
        };
        let disk_flags = self.disk.firmware.is_some() || self.disk.inject.is_some();
        crate::case::disk::settings::check_flags(&image, !self.kernels.is_empty(), disk_flags)
            .map_err(Exit::usage)?;
        let overlay = match &self.overlay {
            Some(dir) => Some(
                std::path::absolute(dir).with_context(|| format!("overlay {}", dir.display()))?,
            ),
            None => None,
        };
        let setup = Setup {
            image,
            overlay,
            crashkernel: self.crashkernel.clone(),
            userspace: self.userspace()?,
        };
        matrix::check_setup(&setup).map_err(Exit::usage)?;
        Ok(setup)
    }

    /// `--userspace`, checked (a usage error when it is not one word).
    pub fn userspace(&self) -> anyhow::Result<Option<Userspace>> {
        match &self.userspace {
            Some(word) => Ok(Some(
                Userspace::parse(word).map_err(|e| Exit::usage(format!("--userspace: {e}")))?,
            )),
            None => Ok(None),
        }
    }
}

/// Runs `kdrill verify` in this process; returns the exit code (0 when no case failed).
pub fn run(args: &VerifyArgs) -> anyhow::Result<i32> {
    let project = crate::host::paths::project(args.root.as_deref())?;
    let cases = args.cases(&project.root)?;
    if args.list {
        for case in &cases {
            match (args.format, case.skip_reason()) {
                (Format::Json, _) => print!("{}", stream::list_line(case)),
                (Format::Text, Some(why)) => println!("{}  (SKIP: {why})", case.id()),
                (Format::Text, None) => println!("{}", case.id()),
            }
        }
        return Ok(0);
    }
    if cases.iter().any(|c| c.skip_reason().is_none()) {
        // An installed kdrill installs nothing itself (`kdrill doctor --install` does): say what is
        // missing before the first guest, not as a FAIL of every case.
        crate::host::tools::require_all(crate::host::tools::VERIFY_TOOLS)?;
        if cases
            .iter()
            .any(|c| c.scenario.image.dump_target == crate::spec::setup::DumpTarget::Ssh)
        {
            crate::host::tools::require_all(crate::host::tools::SSH_TARGET_TOOLS)?;
        }
    }
    interrupt::install();
    args.export_overrides();
    let mut options = RunOptions::for_project(&project).map_err(anyhow::Error::msg)?;
    options.echo_console |= args.console;
    eprintln!("kdrill: evidence goes to {}", options.out_dir.display());
    prefetch(&cases, &options)?;
    let mut results: Vec<CaseResult> = Vec::new();
    for case in &cases {
        if interrupt::interrupted().is_some() {
            break;
        }
        results.push(run_one(case, &options, args.format));
    }
    if args.format == Format::Json {
        // Cases a stop left unrun: a line each too.
        print!("{}", stream::unfinished_lines(&cases, &results));
    }
    finish(&options.out_dir, &cases, &results, args.format, None)
}

/// Writes the summary files, prints the totals (under JSON, the summary object), and returns the
/// exit code: 0 when every case passed or was declared skipped, 1 when one failed or did not
/// run, 128 + the signal's number when the run was stopped. `runner` is the exit code of the
/// test runner that ran the cases in other processes (nextest), which can only make it worse.
pub fn finish(
    out_dir: &Path,
    cases: &[Case],
    results: &[CaseResult],
    format: Format,
    runner: Option<i32>,
) -> anyhow::Result<i32> {
    let rows = summary::rows(cases, results);
    summary::write(out_dir, &rows)
        .with_context(|| format!("cannot write the summary under {}", out_dir.display()))?;
    let count = |s: summary::Status| rows.iter().filter(|r| r.status == s).count();
    let failed = count(summary::Status::Fail) + count(summary::Status::NotRun);
    let interrupted = count(summary::Status::Interrupted);
    let stopped = interrupt::interrupted().map(|stop| stop.exit_code());
    let code = exit_code(failed + interrupted, stopped, runner);
    let summary_md = out_dir.join("summary.md");
    if format == Format::Json {
        let line = stream::SummaryLine {
            schema: stream::SUMMARY_SCHEMA,
            kdrill_version: crate::VERSION,
            passed: count(summary::Status::Pass) + count(summary::Status::Flaky),
            failed,
            skipped: count(summary::Status::Skip),
            interrupted,
            flaky: count(summary::Status::Flaky),
            not_run: count(summary::Status::NotRun),
            exit_code: code,
            out_dir: &out_dir.display().to_string(),
            summary: summary_md.display().to_string(),
        };
        print!("{}", line.render());
        eprintln!("kdrill: summary: {}", summary_md.display());
        return Ok(code);
    }
    let mut line = format!(
        "{} passed, {failed} failed, {} skipped",
        count(summary::Status::Pass) + count(summary::Status::Flaky),
        count(summary::Status::Skip),
    );
    if interrupted > 0 {
        line.push_str(&format!(", {interrupted} interrupted"));
    }
    if count(summary::Status::Flaky) > 0 {
        line.push_str(&format!(" ({} flaky)", count(summary::Status::Flaky)));
    }
    println!("{line}");
    println!("summary: {}", summary_md.display());
    Ok(code)
}

/// Fetches every selected kernel (reads its module aliases where the guest's needs ask for them,
/// builds the crasher where a route needs it, extracts the uncompressed vmlinux where a case
/// boots fast) before the first case, with progress, so that
/// work is not charged to a case. (A saved guest shape is built by the first case that needs it,
/// which records the time in its `phases.shape`.)
pub fn prefetch(cases: &[Case], options: &RunOptions) -> anyhow::Result<()> {
    // The cases that will run, each with what it needs (`case::needs`), worked out once.
    let runnable: Vec<_> = cases
        .iter()
        .filter(|c| c.skip_reason().is_none())
        .map(|c| (c, crate::case::needs::needs(c, options.overrides)))
        .collect();
    let mut done: Vec<&str> = Vec::new();
    for (case, _) in &runnable {
        // A disk image boots its own kernel: nothing to fetch for it.
        if done.contains(&case.kernel.id.as_str())
            || matches!(case.kernel.source, crate::spec::kernel::KernelSource::Image)
        {
            continue;
        }
        done.push(&case.kernel.id);
        let bar = spinner(&format!("{}: fetching kernel", case.kernel.id));
        let fetched = crate::fetch::kernel::resolve(&case.kernel, &options.cache);
        bar.finish_and_clear();
        let files = fetched.with_context(|| format!("kernel {}", case.kernel.id))?;
        let same_kernel = || {
            runnable
                .iter()
                .filter(|(c, _)| c.kernel.id == case.kernel.id)
        };
        let mut needs = crate::spec::image::minimal(options.project_root.as_deref())?.needs;
        needs.extend(same_kernel().flat_map(|(c, _)| c.scenario.guest.needs.clone()));
        let bar = spinner(&format!("{}: reading module aliases", case.kernel.id));
        crate::guest::needs::warm(&files.modules, &files.release, &options.cache, &needs);
        bar.finish_and_clear();
        if same_kernel().any(|(_, n)| n.fast_vmlinux) {
            let bar = spinner(&format!(
                "{}: extracting the uncompressed vmlinux",
                case.kernel.id
            ));
            let extracted = crate::fetch::vmlinux::uncompressed(&files.vmlinuz, &options.cache)
                .and_then(|vmlinux| {
                    crate::fetch::vmlinux::rebased(
                        &vmlinux,
                        crate::case::plan::FAST_CRASH_BASE_MIB << 20,
                    )
                });
            bar.finish_and_clear();
            extracted.with_context(|| format!("uncompressed vmlinux of {}", case.kernel.id))?;
        }
        if same_kernel().any(|(_, n)| n.crasher) {
            let spinner = spinner(&format!("{}: building the crasher module", case.kernel.id));
            let built = crate::fetch::crasher::build(&case.kernel, &files, &options.cache);
            spinner.finish_and_clear();
            built.with_context(|| format!("crasher module for {}", case.kernel.id))?;
        }
    }
    // Capture userspaces: each release's sysroot made once, before the first case needs it.
    let mut made: Vec<String> = Vec::new();
    for (case, _) in runnable.iter().filter(|(_, n)| n.userspace) {
        let name = case.userspace().name().to_string();
        if made.contains(&name) {
            continue;
        }
        made.push(name.clone());
        let recipe = crate::spec::image::minimal(options.project_root.as_deref())?;
        let bar = spinner(&format!("userspace {name}: making its sysroot"));
        let capture = crate::case::prepare::userspace(case, &recipe, options, &|_| {});
        bar.finish_and_clear();
        capture.with_context(|| format!("capture userspace {name}"))?;
    }
    // Images with their own kdump: one per image, kernel and overlay, shared by their cases.
    let mut built: Vec<String> = Vec::new();
    for (case, _) in runnable.iter().filter(|(_, n)| n.image_build) {
        let (image, kernel) = (&case.setup.image, &case.kernel.id);
        let key = format!("{image} {kernel} {:?}", case.overlay());
        if built.contains(&key) {
            continue;
        }
        built.push(key);
        let bar = spinner(&format!("{kernel}: {image} image"));
        let made = crate::case::production::image_for(case, options, &|what| {
            bar.set_message(format!("{kernel}: {what}"))
        });
        bar.finish_and_clear();
        let image = made.with_context(|| format!("{image} image for {}", case.id()))?;
        eprintln!("kdrill: {}", image.describe());
    }
    Ok(())
}

/// Runs one case with a spinner naming its phase; prints its result line, and on failure the
/// reason and the end of the serial console (under JSON: its `kdrill-verify-case/1` line on
/// stdout, the people's lines on stderr).
pub fn run_one(case: &Case, options: &RunOptions, format: Format) -> CaseResult {
    let id = case.id();
    let spinner = spinner(&id);
    let result = case::run(case, options, &|phase| {
        spinner.set_message(format!("{id}: {phase}"))
    });
    spinner.finish_and_clear();
    let mut text = format!("{}\n", result.summary_line());
    if matches!(result.verdict, Verdict::Fail | Verdict::Interrupted) {
        let serial = Path::new(&result.artifacts).join("serial.log");
        text.push_str(&format!("  evidence: {}\n", result.artifacts));
        text.push_str(&format!(
            "  last {} lines of {}:\n",
            case::FAILURE_CONSOLE_LINES,
            serial.display()
        ));
        for line in last_lines(&serial, case::FAILURE_CONSOLE_LINES) {
            text.push_str(&format!("  | {line}\n"));
        }
    }
    match format {
        Format::Text => print!("{text}"),
        Format::Json => {
            eprint!("{text}");
            print!("{}", stream::case_line(&result));
        }
    }
    result
}

/// Summary of the attempts that started since `since` (after a nextest run that ended with
/// `runner`): the last line of each case (under JSON, each case's last attempt as a
/// `kdrill-verify-case/1` line, read back from its `result.json`: this path prints them after
/// the run, it does not stream), and the totals.
pub fn summarize_since(
    out_dir: &Path,
    cases: &[Case],
    since: SystemTime,
    format: Format,
    runner: Option<i32>,
) -> anyhow::Result<i32> {
    let results = summary::load_results(out_dir, cases, since);
    if format == Format::Json {
        print!("{}", stream::run_lines(cases, &results));
        return finish(out_dir, cases, &results, format, runner);
    }
    for case in cases {
        let last = results
            .iter()
            .filter(|r| r.kernel == case.kernel.id && r.scenario == case.label())
            .max_by(|a, b| a.started.total_cmp(&b.started));
        match (last, case.skip_reason()) {
            (_, Some(why)) => println!("SKIP {}\n  skipped: {why}", case.id()),
            (Some(result), None) => println!("{}", result.summary_line()),
            (None, None) => {}
        }
    }
    finish(out_dir, cases, &results, format, runner)
}

/// A run's exit code: 128 + the signal when this process or the runner was stopped, 1 when a
/// case did not pass (failed, did not run, was interrupted) or the runner failed, else 0.
fn exit_code(unsuccessful: usize, stopped: Option<i32>, runner: Option<i32>) -> i32 {
    match (stopped, runner) {
        (Some(code), _) => code,
        (None, Some(code)) if code >= 128 => code,
        _ if unsuccessful > 0 || runner.is_some_and(|c| c != 0) => crate::exit::PARTIAL,
        _ => crate::exit::SUCCESS,
    }
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

#[cfg(test)]
mod tests {
    use super::exit_code;

    #[test]
    fn the_exit_code_follows_the_cases_the_stop_and_the_runner() {
        assert_eq!(exit_code(0, None, None), 0);
        assert_eq!(exit_code(2, None, None), 1);
        assert_eq!(exit_code(0, Some(130), None), 130);
        // nextest: its own failure or stop is the run's, even when every result passed.
        assert_eq!(exit_code(0, None, Some(0)), 0);
        assert_eq!(exit_code(0, None, Some(100)), 1);
        assert_eq!(exit_code(1, None, Some(143)), 143);
    }
}
