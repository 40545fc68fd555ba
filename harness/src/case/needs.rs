//! What one case needs before its guest boots, asked in one place (pure but for [`crasher`]): the
//! kernel always; kdrill's capture userspace when its image captures with kdrill's programs; the
//! crasher module when the route crashes through it; the uncompressed vmlinux when it boots
//! fast; an image build when the image has its own kdump. `prefetch`, calibrate's estimate, the
//! baseline and each image kind's prepare ask here.

use crate::case::error::{CaseError, SetupContext};
use crate::case::plan::{self, Overrides};
use crate::case::{Case, RunOptions};
use crate::fetch::kernel::KernelFiles;
use crate::spec::scenario::BootMode;

/// What a case needs beyond its kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// kdrill's capture userspace: a release's sysroot with kexec-tools and makedumpfile.
    pub userspace: bool,
    /// The crasher module, built against the kernel's headers.
    pub crasher: bool,
    /// The kernel's uncompressed vmlinux, rebased for a fast boot.
    pub fast_vmlinux: bool,
    /// The image built with its own kdump (once per image, kernel and overlay).
    pub image_build: bool,
}

/// What `case` needs when run with `overrides`: the image answers for the userspace and the
/// build, the route for the crasher, the plan for the vmlinux.
pub fn needs(case: &Case, overrides: Overrides) -> Needs {
    let image = &case.setup.image;
    Needs {
        userspace: image.takes_userspace(),
        crasher: case.scenario.trigger.needs_crasher(),
        fast_vmlinux: plan::plan(case, overrides).mode == BootMode::Fast,
        image_build: image.kind().builds_from_kernel(),
    }
}

/// The crasher module's bytes when `case` needs it (built once per kernel and cached), read in
/// one place for every image kind and the baseline.
pub fn crasher(
    case: &Case,
    files: &KernelFiles,
    options: &RunOptions,
) -> Result<Option<Vec<u8>>, CaseError> {
    if !needs(case, options.overrides).crasher {
        return Ok(None);
    }
    let ko = crate::fetch::crasher::build(&case.kernel, files, &options.cache)
        .setup("crasher module")?;
    std::fs::read(&ko).map(Some).map_err(|e| CaseError::Setup {
        what: "crasher module",
        detail: format!("cannot read {}: {e}", ko.display()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{kernel, scenario};

    fn case(scenario_id: &str, image: Option<&str>) -> Case {
        let root =
            crate::host::paths::find_project_root(std::path::Path::new(env!("CARGO_MANIFEST_DIR")))
                .unwrap();
        let mut case = Case::new(
            kernel::load(&root, "debian-6.1").unwrap(),
            scenario::load(&root, scenario_id).unwrap(),
        );
        if let Some(name) = image {
            case.setup.image = crate::spec::images::test_registry().find(name).unwrap();
        }
        case
    }

    #[test]
    fn the_image_the_route_and_the_plan_decide_what_a_case_needs() {
        let plain = Overrides::default();
        let n = needs(&case("sysrq", None), plain);
        assert_eq!(
            n,
            Needs {
                userspace: true,
                crasher: false,
                fast_vmlinux: false,
                image_build: false
            }
        );
        let n = needs(&case("oops", None), plain);
        assert!(
            n.userspace && n.crasher && n.fast_vmlinux && !n.image_build,
            "{n:?}"
        );
        // A Debian image: its own kdump-tools captures and it boots as a host does.
        for image in ["debian-bookworm", "debian-trixie"] {
            let n = needs(&case("oops", Some(image)), plain);
            assert_eq!(
                n,
                Needs {
                    userspace: false,
                    crasher: true,
                    fast_vmlinux: false,
                    image_build: true
                },
                "{image}"
            );
        }
        // `--mode faithful` makes the minimal image's oops boot faithful: no vmlinux.
        let faithful = Overrides {
            mode: Some(BootMode::Faithful),
            no_restore: false,
        };
        assert!(!needs(&case("oops", None), faithful).fast_vmlinux);
    }
}
