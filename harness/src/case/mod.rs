//! One case end to end: a kernel entry × a scenario. Build the guest image, boot, load the
//! capture kernel, crash by the scenario's route, capture with makedumpfile, read the dump back
//! and judge it. Every attempt keeps its evidence in a folder of its own (`evidence`).

pub mod budget;
pub mod error;
pub mod evidence;
mod flow;
pub mod plan;
mod prepare;
pub mod shape;
pub mod verdict;
mod vmdump;

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use crate::host::interrupt;
use crate::spec::kernel::KernelSpec;
use crate::spec::scenario::Scenario;
use error::CaseError;
use evidence::Attempt;
use verdict::{CaseResult, Verdict};

/// Lines of serial console shown with a failure.
pub const FAILURE_CONSOLE_LINES: usize = 40;

/// One case to run.
#[derive(Debug, Clone)]
pub struct Case {
    pub kernel: KernelSpec,
    pub scenario: Scenario,
}

impl Case {
    pub fn id(&self) -> String {
        format!("{}/{}", self.kernel.id, self.scenario.id)
    }

    /// Why this case is not run, when its kernel entry declares the route cannot work there
    /// (`skip:`). The one place that decides it: `verify`, the matrix tests, prefetching and the
    /// summary all ask here.
    pub fn skip_reason(&self) -> Option<&str> {
        self.kernel.skip.get(&self.scenario.id).map(String::as_str)
    }
}

/// Where a case reads its inputs and writes its evidence.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The project folder (for `images/`); the built-in recipe is used when `None`.
    pub project_root: Option<PathBuf>,
    /// Evidence and summaries: `runs/<kernel>/<scenario>/<attempt>/`, `summary.md`
    /// (`$KDRILL_OUT`, else `<target>/kdrill`).
    pub out_dir: PathBuf,
    /// The per-user cache (kernels, KVM probe).
    pub cache: PathBuf,
    /// Print the guest's console lines as they arrive.
    pub echo_console: bool,
    /// Multiplies every phase deadline (slow or busy machines); `KDRILL_TIMEOUT_SCALE` by default.
    pub timeout_scale: f64,
    /// A boot mode forced on every case, restoring turned off (`KDRILL_MODE`, `KDRILL_RESTORE`).
    pub overrides: plan::Overrides,
}

impl RunOptions {
    /// Defaults for a project root: its `target/kdrill`, the per-user cache,
    /// `KDRILL_TIMEOUT_SCALE`, `KDRILL_MODE` and `KDRILL_RESTORE` (an invalid value is an error).
    pub fn for_project(root: &Path) -> Result<RunOptions, String> {
        Ok(RunOptions {
            project_root: Some(root.into()),
            out_dir: crate::host::paths::out_dir(root),
            cache: crate::host::paths::cache_dir(),
            echo_console: std::env::var_os("KDRILL_CONSOLE").is_some(),
            timeout_scale: crate::host::deadline::scale(),
            overrides: plan::Overrides::from_env()?,
        })
    }
}

/// Runs one case and always returns its result; `result.json` and the evidence are in a new
/// attempt folder. `progress` receives a short description of each phase as it starts.
pub fn run(case: &Case, options: &RunOptions, progress: &dyn Fn(&str)) -> CaseResult {
    let case_dir =
        crate::host::paths::case_dir(&options.out_dir, &case.kernel.id, &case.scenario.id);
    let mut result = CaseResult::new(&case.kernel.id, &case.scenario.id, &case_dir);
    result.route = Some(case.scenario.trigger);
    let attempt = match Attempt::create(&case_dir, result.attempt, SystemTime::now()) {
        Ok(attempt) => attempt,
        Err(e) => {
            result.fail(CaseError::Setup {
                what: "evidence folder",
                detail: format!(
                    "cannot create an attempt folder in {}: {e}",
                    case_dir.display()
                ),
            });
            result.judge(interrupt::interrupted());
            return result;
        }
    };
    result.artifacts = attempt.dir.display().to_string();
    if let Some(why) = case.skip_reason() {
        result.verdict = Verdict::Skip;
        result.reasons.push(why.to_string());
        attempt.write(&mut result);
        return result;
    }
    // If kdrill dies without a word, this is what the folder says.
    attempt.write(&mut result.placeholder());
    let started = Instant::now();
    let run = flow::Run {
        case,
        options,
        dir: &attempt.dir,
        progress,
    };
    if let Err(error) = run.go(&mut result) {
        result.fail(error);
    }
    result.judge(interrupt::interrupted());
    if result.verdict == Verdict::Pass {
        evidence::drop_big_dumps(&attempt.dir, &mut result);
    }
    result.phases.total = Some(started.elapsed().as_secs_f64());
    attempt.write(&mut result);
    result
}
