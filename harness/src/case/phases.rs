//! A case's phase times, as `result.json` records them: the host's clock and the guest's own
//! side by side. `phases` has what every image kind times; each kind keeps its own phases under
//! its own key (`minimal`; a Debian image's under `production`), and `verify --format json`
//! shows them together ([`PhaseView`]).

use serde::{Deserialize, Serialize};

use crate::case::verdict::CaseResult;

/// The phases every image kind times, in seconds; absent when the phase did not happen.
/// Host-clock phases and the guest's own clocks side by side: what the host sees minus what the
/// guest saw is time no kernel code ran in (QEMU and firmware starting, the kernel decompressing
/// itself, purgatory).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Phases {
    /// Booting and saving the guest shape this case restores, when this case had to (host clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<f64>,
    /// QEMU start → the restored guest running again (host clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<f64>,
    /// QEMU start → the first boot's init running (host clock).
    pub boot: Option<f64>,
    /// The first kernel's own uptime when its init started (guest clock).
    #[serde(default)]
    pub guest_boot: Option<f64>,
    /// The capture kernel's own uptime when its init started (guest clock).
    #[serde(default)]
    pub capture_boot: Option<f64>,
    /// Crash trigger → the capture kernel's init running (host clock).
    pub crash_to_capture: Option<f64>,
    /// Reading the dump back on the host.
    pub verify: Option<f64>,
    /// The whole case.
    pub total: Option<f64>,
}

/// The minimal image's own phases (`minimal` in `result.json`): kdrill's `/init` times `kexec -p`
/// and makedumpfile itself, and the console shows each kernel's first line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MinimalPhases {
    /// QEMU start → the first kernel's banner on the console (host clock): firmware and the
    /// kernel's decompression, before any of its own log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_line: Option<f64>,
    /// `kexec -p` (guest clock).
    pub kexec: Option<f64>,
    /// Filling and freeing the scenario's `guest.dirty_mib` before the crash (guest clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dirty: Option<f64>,
    /// Crash trigger → the capture kernel's banner on the console (host clock): the panic path,
    /// purgatory and the capture kernel's decompression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_first_line: Option<f64>,
    /// makedumpfile in the capture kernel (guest clock).
    pub makedumpfile: Option<f64>,
    /// `dump-guest-memory`, all formats together (vm-dump route; host clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_dump: Option<f64>,
}

/// A Debian image's own phase times (in `production`, beside each phase's deadline and failure):
/// its kdump-tools loads the capture kernel and saves the dump, and the guest boots again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DebianPhases {
    /// QEMU start → kdump-tools ready to kdump in boot 1 (host clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<f64>,
    /// crash → the dump saved and the guest booting again (host clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crash_to_saved: Option<f64>,
    /// boot 3 started → kdump-tools ready to kdump again (host clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_again: Option<f64>,
}

/// Every phase of a case in one object: the shared ones and its image kind's own (`phases` of
/// `verify --format json`).
#[derive(Debug, Serialize)]
pub struct PhaseView<'a> {
    #[serde(flatten)]
    pub shared: &'a Phases,
    #[serde(flatten)]
    pub minimal: Option<&'a MinimalPhases>,
    #[serde(flatten)]
    pub debian: Option<&'a DebianPhases>,
}

impl CaseResult {
    /// Every phase: the shared ones and the image kind's own.
    pub fn phase_view(&self) -> PhaseView<'_> {
        PhaseView {
            shared: &self.phases,
            minimal: self.minimal.as_ref(),
            debian: self.production.as_ref().map(|p| &p.times),
        }
    }

    /// The minimal image's own phases, to fill in.
    pub fn minimal_phases(&mut self) -> &mut MinimalPhases {
        self.minimal.get_or_insert_with(Default::default)
    }

    /// A Debian image's own phase times, to fill in.
    pub fn debian_phases(&mut self) -> &mut DebianPhases {
        &mut self.production.get_or_insert_with(Default::default).times
    }
}
