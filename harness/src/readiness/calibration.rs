//! kdrill's measured minimum reservation for this host (pure): from the calibration files given
//! with `--calibration` or found in `/etc/kdrill/calibration/` or `/usr/share/kdrill/calibration/`
//! (where kdrill's package installs the committed ones) of the checked root, the one for
//! this kernel release (another release's only with a warning naming it), else one of this
//! kernel series (`6.12` for `6.12.120+deb13-amd64`: a Debian 13 host picks the `debian-trixie`
//! measurement over Debian 12's), preferring the capture userspace the host uses (kdump-tools:
//! an image with its own kdump-tools), at the measured memory size nearest this host's RAM (the
//! interpolation is stated).

use std::path::Path;

use crate::calibrate::file::{self, Calibration};
use crate::calibrate::heuristics;
use crate::readiness::snapshot::{Calibrated, Snapshot};
use crate::readiness::source::Got;

/// Where `kdrill check` looks for an operator's calibration files in the checked root.
pub const CALIBRATION_DIR: &str = "/etc/kdrill/calibration";

/// Where kdrill's Debian package installs the committed calibration files (`calibration/`), also
/// read in the checked root.
pub const SHIPPED_CALIBRATION_DIR: &str = crate::host::deb::CALIBRATION_DIR;

/// A calibration file as read: where from, and its contents or why they could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrationFile {
    pub source: String,
    pub parsed: Result<Calibration, String>,
}

/// A calibration file read from the checked root (`text`, or why it could not be read), parsed.
pub fn parse(source: &str, text: Got<String>) -> CalibrationFile {
    let parsed = match text {
        Ok(text) => file::parse(Path::new(source), &text).map_err(|e| e.to_string()),
        Err(problem) => Err(format!("cannot read it: {problem}")),
    };
    CalibrationFile {
        source: source.to_string(),
        parsed,
    }
}

/// A kernel release's series, its first two numbers: `6.12` of `6.12.120+deb13-amd64`, `6.1` of
/// `6.1.0-47-amd64`, `7.3` of `7.3.1-1~bpo13+1-amd64`.
fn series(release: &str) -> Option<[u64; 2]> {
    let [major, minor, _] = crate::spec::userspace::release_numbers(release)?;
    Some([major, minor])
}

/// The figure for a host running `release` with `ram_bytes` of RAM.
pub fn choose(snap: &Snapshot, ram_bytes: Option<u64>) -> Option<Calibrated> {
    let release = snap.release.as_deref().ok()?;
    let ram_mib = ram_bytes? >> 20;
    // A host with kdump-tools captures with its distribution's own kdump, as an image of that
    // kind does; without it, kdrill's minimal capture is the nearer measurement.
    let host_own_kdump = snap.kdump_tools.is_ok();
    let same_capture = |image: &str| crate::spec::images::named_own_kdump(image) == host_own_kdump;
    let usable = snap
        .calibrations
        .iter()
        .filter_map(|f| Some((f.source.as_str(), f.parsed.as_ref().ok()?)));
    // This release first, then this series, then the host's own capture userspace, then the
    // larger figure.
    let (source, calibration, chosen) = usable
        .filter_map(|(source, c)| Some((source, c, file::choose(c, ram_mib)?)))
        .max_by_key(|(_, c, chosen)| {
            (
                c.release == release,
                series(&c.release).is_some() && series(&c.release) == series(release),
                same_capture(&c.image),
                chosen.min_mib,
            )
        })?;
    // Files that could not be used are named by check 3 itself (`memory::large_enough`), even
    // when none is usable.
    let mut notes = Vec::new();
    if !same_capture(&calibration.image) {
        notes.push(format!(
            "measured with the {} image's capture, not this host's ({})",
            calibration.image,
            if host_own_kdump {
                "its own kdump-tools"
            } else {
                "no kdump-tools"
            }
        ));
    }
    // Every MiB figure of a parsed calibration is within the limit (`calibrate::limits`).
    let min_bytes = crate::spec::cmdline::mib_bytes(chosen.min_mib)?;
    let recommended_bytes =
        crate::spec::cmdline::mib_bytes(heuristics::recommended(chosen.min_mib))
            .unwrap_or(min_bytes);
    Some(Calibrated {
        min_bytes,
        recommended_bytes,
        source: format!(
            "{source}: {} {} image, {} (measured {})",
            calibration.kernel, calibration.image, chosen.how, calibration.measured
        ),
        other_release: (calibration.release != release).then(|| calibration.release.clone()),
        notes,
    })
}
