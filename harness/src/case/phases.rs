//! A case's phase times, as `result.json` records them: the host's clock and the guest's own
//! side by side.

use serde::{Deserialize, Serialize};

/// Phase durations in seconds; absent when the phase did not happen. Host-clock phases and the
/// guest's own clocks side by side: what the host sees minus what the guest saw is time no kernel
/// code ran in (QEMU and firmware starting, the kernel decompressing itself, purgatory).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Phases {
    /// Booting and saving the guest shape this case restores, when this case had to (host clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<f64>,
    /// QEMU start → the restored guest running again (host clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<f64>,
    /// QEMU start → the first kernel's banner on the console (host clock): firmware and the
    /// kernel's decompression, before any of its own log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_line: Option<f64>,
    /// QEMU start → the first boot's init running (host clock).
    pub boot: Option<f64>,
    /// The first kernel's own uptime when its init started (guest clock).
    #[serde(default)]
    pub guest_boot: Option<f64>,
    /// The capture kernel's own uptime when its init started (guest clock).
    #[serde(default)]
    pub capture_boot: Option<f64>,
    /// `kexec -p` (guest clock).
    pub kexec: Option<f64>,
    /// Filling and freeing the scenario's `guest.dirty_mib` before the crash (guest clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dirty: Option<f64>,
    /// Crash trigger → the capture kernel's init running (host clock).
    pub crash_to_capture: Option<f64>,
    /// Crash trigger → the capture kernel's banner on the console (host clock): the panic path,
    /// purgatory and the capture kernel's decompression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_first_line: Option<f64>,
    /// makedumpfile in the capture kernel (guest clock).
    pub makedumpfile: Option<f64>,
    /// `dump-guest-memory`, all formats together (vm-dump route; host clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_dump: Option<f64>,
    /// Debian image: QEMU start → kdump-tools ready to kdump in boot 1 (host clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<f64>,
    /// Debian image: crash → the dump saved and the guest booting again (host clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crash_to_saved: Option<f64>,
    /// Debian image: boot 3 started → kdump-tools ready to kdump again (host clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_again: Option<f64>,
    /// Reading the dump back on the host.
    pub verify: Option<f64>,
    /// The whole case.
    pub total: Option<f64>,
}

impl Phases {
    /// What the guest itself spent, by its own clocks: first boot, `kexec -p`, capture boot,
    /// makedumpfile. `None` unless all four are known.
    pub fn guest_seconds(&self) -> Option<f64> {
        Some(self.guest_boot? + self.kexec? + self.capture_boot? + self.makedumpfile?)
    }
}
