//! One case end to end: a kernel entry × a scenario. Build the guest image, boot, load the
//! capture kernel, crash by the scenario's route, capture with makedumpfile, read the dump back
//! and judge it. Every attempt keeps its evidence in a folder of its own (`evidence`).

pub mod budget;
pub mod disk;
pub mod error;
pub mod evidence;
mod flow;
pub mod image;
pub mod needs;
pub mod phases;
pub mod plan;
pub(crate) mod prepare;
pub mod production;
pub mod shape;
pub mod verdict;
mod vmdump;

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use crate::host::interrupt;
use crate::spec::kernel::KernelSpec;
use crate::spec::scenario::Scenario;
use crate::spec::setup::Setup;
use crate::spec::userspace::Userspace;
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
    /// The image, overlay and `crashkernel=` asked for by the command line or the matrix set.
    pub setup: Setup,
}

impl Case {
    /// A case on the default minimal image (no overlay, the entry's `crashkernel=`).
    pub fn new(kernel: KernelSpec, scenario: Scenario) -> Case {
        Case {
            kernel,
            scenario,
            setup: Setup::default(),
        }
    }

    /// `<kernel>/<label>`: the test name, and where the evidence goes.
    pub fn id(&self) -> String {
        format!("{}/{}", self.kernel.id, self.label())
    }

    /// The scenario id plus what the setup changes: `sysrq`, `sysrq@debian`,
    /// `sysrq@debian+crashkernel=96M`, and a minimal-image case's capture userspace when it is not
    /// the kernel's own release's: `sysrq+userspace=trixie`. Results, summaries and evidence
    /// folders use it.
    pub fn label(&self) -> String {
        let mut label = format!("{}{}", self.scenario.id, self.setup.label_suffix());
        if self.setup.image.takes_userspace() {
            label.push_str(&Setup::userspace_suffix(
                &self.userspace(),
                &self.kernel.own_userspace(),
            ));
        }
        label
    }

    /// Whose tools capture on the minimal image: the command line's or the set's, else the
    /// scenario's, else the kernel entry's `userspace:`, else the kernel's own release's.
    /// (The Debian image brings its own release's kdump-tools.)
    pub fn userspace(&self) -> Userspace {
        crate::spec::userspace::choose(
            &[
                self.setup.userspace.as_ref(),
                self.scenario.userspace.as_ref(),
                self.kernel.userspace.as_ref(),
            ],
            self.kernel.own_userspace(),
        )
    }

    /// `crashkernel=`: the command line's or the set's, else the scenario's, else the entry's.
    pub fn crashkernel(&self) -> &str {
        self.setup
            .crashkernel
            .as_deref()
            .or(self.scenario.image.crashkernel.as_deref())
            .unwrap_or(&self.kernel.guest.crashkernel)
    }

    /// The overlay folder: the command line's or the set's, else the scenario's.
    pub fn overlay(&self) -> Option<&Path> {
        self.setup
            .overlay
            .as_deref()
            .or(self.scenario.image.overlay.as_deref())
    }

    /// Why this case is not run, when its kernel entry declares the route cannot work there
    /// (`skip:`), or the scenario and the image do not go together. The one place that decides
    /// it: `verify`, the matrix tests, prefetching and the summary all ask here.
    pub fn skip_reason(&self) -> Option<String> {
        if let Some(why) = self.kernel.skip.get(&self.scenario.id) {
            return Some(why.clone());
        }
        let image = &self.setup.image;
        if let Some(only) = self.scenario.image.only.filter(|only| !image.fits(*only)) {
            return Some(format!(
                "scenario {} runs on {only} images only (its `image.only`), this case is on {image}",
                self.scenario.id
            ));
        }
        image.refuses(
            self.scenario.trigger,
            self.kernel.source.pinned_image().is_some() || self.kernel.source.is_tracking(),
        )
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
    /// The `kdrill` binary copied into Debian guests to run `kdrill check` there (`$KDRILL_BIN`,
    /// else this program when it is `kdrill`, else the target folder's build).
    pub kdrill_bin: Option<PathBuf>,
}

impl RunOptions {
    /// Defaults for a project: its data and out folder, the per-user cache,
    /// `KDRILL_TIMEOUT_SCALE`, `KDRILL_MODE` and `KDRILL_RESTORE` (an invalid value is an error).
    pub fn for_project(project: &crate::host::paths::Project) -> Result<RunOptions, String> {
        Ok(RunOptions {
            project_root: Some(project.root.clone()),
            out_dir: project.out_dir.clone(),
            cache: crate::host::paths::cache_dir(),
            echo_console: std::env::var_os("KDRILL_CONSOLE").is_some(),
            timeout_scale: crate::host::deadline::scale(),
            overrides: plan::Overrides::from_env()?,
            kdrill_bin: kdrill_binary(project),
        })
    }
}

/// The `kdrill` program for Debian guests: `$KDRILL_BIN`, this program when it is `kdrill` (an
/// installed one included), or, in a checkout, `<target>/{debug,release}/kdrill` (the newest),
/// for test binaries and xtask.
fn kdrill_binary(project: &crate::host::paths::Project) -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("KDRILL_BIN").filter(|v| !v.is_empty()) {
        return Some(bin.into());
    }
    if let Ok(me) = std::env::current_exe() {
        if me.file_name().is_some_and(|n| n == "kdrill") {
            return Some(me);
        }
    }
    let target = crate::host::paths::target_dir(project.own_dir()?);
    ["debug", "release"]
        .iter()
        .map(|profile| target.join(profile).join("kdrill"))
        .filter(|p| p.is_file())
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
}

/// Runs one case and always returns its result; `result.json` and the evidence are in a new
/// attempt folder. `progress` receives a short description of each phase as it starts.
pub fn run(case: &Case, options: &RunOptions, progress: &dyn Fn(&str)) -> CaseResult {
    let case_dir = crate::host::paths::case_dir(&options.out_dir, &case.kernel.id, &case.label());
    let mut result = CaseResult::new(&case.kernel.id, &case.label(), &case_dir);
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
        result.reasons.push(why);
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
    let ran = image::drive(image::flow_for(&case.setup.image), &run, &mut result);
    if let Err(error) = ran {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::yaml;

    fn case(scenario: &str, image: &str) -> Case {
        // "": the default image.
        let image = match image {
            "" => Default::default(),
            name => crate::spec::images::test_registry().find(name).unwrap(),
        };
        let kernel: KernelSpec = yaml::parse(
            Path::new("k.yaml"),
            "id: k\nwhy: w\nsource:\n  kind: debian\n  suite: bookworm\n  package: p\n  version: v\n  sha256: s\n",
        )
        .unwrap();
        let scenario: Scenario = yaml::parse(Path::new("s.yaml"), scenario).unwrap();
        Case {
            kernel,
            scenario,
            setup: Setup {
                image,
                ..Setup::default()
            },
        }
    }

    #[test]
    fn images_decide_skips_and_labels() {
        let only = "id: ssh\ndescription: d\ntrigger: sysrq\nimage:\n  only: debian\nexpect:\n  log: [a]\n";
        let why = case(only, "").skip_reason().unwrap();
        assert!(why.contains("runs on debian images only"), "{why}");
        let on_debian = case(only, "debian-trixie");
        assert_eq!(on_debian.skip_reason(), None);
        assert_eq!(on_debian.id(), "k/ssh@debian-trixie");
        let vm_dump = "id: vm-dump\ndescription: d\ntrigger: vm-dump\nvm_dump_formats: [elf]\nexpect:\n  log: [a]\n";
        assert!(case(vm_dump, "debian-bookworm")
            .skip_reason()
            .unwrap()
            .contains("no kdump-tools capture"));
        assert_eq!(case(vm_dump, "").skip_reason(), None);
        assert_eq!(case(vm_dump, "").crashkernel(), "256M");
    }

    #[test]
    fn the_userspace_follows_entry_scenario_block_then_command_line() {
        let named = |u: &str| Some(Userspace::parse(u).unwrap());
        let mut c = case(
            "id: s\ndescription: d\ntrigger: sysrq\nexpect:\n  log: [a]\n",
            "",
        );
        // The entry's suite is bookworm: its own release, and no suffix.
        assert_eq!(c.userspace().name(), "bookworm");
        assert_eq!(c.id(), "k/s");
        c.kernel.userspace = named("sid");
        assert_eq!(
            (c.userspace().name(), c.id().as_str()),
            ("sid", "k/s+userspace=sid")
        );
        c.scenario.userspace = named("host");
        assert_eq!(c.userspace().name(), "host");
        c.setup.userspace = named("trixie");
        assert_eq!(c.userspace().name(), "trixie");
        assert_eq!(c.id(), "k/s+userspace=trixie");
        // Naming the kernel's own release is the default: no suffix.
        c.setup.userspace = named("bookworm");
        assert_eq!(c.id(), "k/s");
        // The Debian image captures with its own kdump-tools: no userspace in its label.
        c.setup.image = crate::spec::images::test_registry()
            .find("debian-bookworm")
            .unwrap();
        c.setup.userspace = named("trixie");
        assert_eq!(c.id(), "k/s@debian-bookworm");
    }
}
