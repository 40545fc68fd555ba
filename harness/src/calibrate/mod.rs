//! `kdrill calibrate`: the smallest `crashkernel=` that still captures, measured per kernel ×
//! image × memory size by running the real case at each size (`run`), bisected (`bisect`), each
//! probe judged from its evidence (`classify`), compared with the heuristics people use
//! (`heuristics`), and written as commented data that `kdrill check` reads (`file`); `--format json` lines (`stream`).

pub mod bisect;
pub mod classify;
pub mod file;
pub mod heuristics;
pub mod limits;
pub mod run;
pub mod stream;

use serde::{Deserialize, Serialize};

/// How a reservation too small for the capture showed itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureMode {
    /// `kexec -p` could not place the capture kernel and initramfs in the reservation
    /// (`locate_hole failed`, `Cannot load`).
    KexecCannotLoad,
    /// The kernel reserved nothing for this size.
    NoReservation,
    /// The capture kernel ran out of memory (`Out of memory`, `System is deadlocked on memory`).
    CaptureOom,
    /// makedumpfile was killed in the capture kernel (the OOM killer).
    MakedumpfileKilled,
    /// The capture kernel never reached its init after the crash (it died unpacking or booting).
    CaptureNeverBooted,
    /// The capture kernel booted and failed otherwise (its last panic line).
    CaptureFailed(String),
}

impl FailureMode {
    /// The short name written in calibration files and tables.
    pub fn word(&self) -> &str {
        match self {
            FailureMode::KexecCannotLoad => "kexec-cannot-load",
            FailureMode::NoReservation => "no-reservation",
            FailureMode::CaptureOom => "capture-oom",
            FailureMode::MakedumpfileKilled => "makedumpfile-killed",
            FailureMode::CaptureNeverBooted => "capture-never-booted",
            FailureMode::CaptureFailed(_) => "capture-failed",
        }
    }

    /// For a reader: what happened.
    pub fn describe(&self) -> String {
        match self {
            FailureMode::KexecCannotLoad => "kexec cannot place the capture kernel".into(),
            FailureMode::NoReservation => "nothing reserved".into(),
            FailureMode::CaptureOom => "capture kernel out of memory".into(),
            FailureMode::MakedumpfileKilled => "makedumpfile killed".into(),
            FailureMode::CaptureNeverBooted => "capture kernel never booted".into(),
            FailureMode::CaptureFailed(line) => format!("capture kernel failed: {line}"),
        }
    }
}

/// One probe's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The dump was saved and verified (its log, its expected lines).
    Works,
    /// The capture failed for lack of memory.
    TooSmall(FailureMode),
    /// The probe failed for a reason that says nothing about the reservation (a boot flake, a
    /// timeout before the crash, a setup error): retried.
    Unrelated(String),
}

/// The case a calibration probes: a kernel entry on an image of kdrill's, or a disk image's own
/// kernel (`--kernel` then a usage error).
pub(crate) fn selected_case(
    root: &std::path::Path,
    kernel: Option<&str>,
    image: Option<&str>,
    scenario: &str,
) -> anyhow::Result<crate::case::Case> {
    use crate::exit::Exit;
    let image = match image {
        Some(name) => crate::spec::images::Registry::load(root)?
            .find(name)
            .map_err(|e| Exit::usage(format!("--image: {e}")))?,
        None => Default::default(),
    };
    crate::case::disk::settings::check_flags(&image, kernel.is_some(), false)
        .map_err(Exit::usage)?;
    let kernel = match (kernel, image.boots_own_kernel()) {
        (Some(kernel), _) => kernel.to_string(),
        (None, true) => String::new(),
        (None, false) => {
            return Err(Exit::usage("--kernel ID is needed (a kernel entry of kernels/)").into())
        }
    };
    let setup = crate::spec::setup::Setup {
        image,
        ..Default::default()
    };
    let cases =
        crate::campaign::matrix::expand_with(root, &[kernel], &[scenario.to_string()], &setup)?;
    cases
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no case selected"))
}
