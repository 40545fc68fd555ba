//! How a scenario's crash is caused ([`Trigger`]), and what each route asks of the guest and the host.

use serde::Deserialize;

/// How the crash is caused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    /// The guest's init writes `c` to `/proc/sysrq-trigger`.
    Sysrq,
    /// The host sends a BREAK on the serial line, then `c` (QMP `chardev-send-break`).
    SysrqSerial,
    /// The host presses Alt+SysRq+C on the PS/2 keyboard (QMP `send-key`).
    SysrqKeyboard,
    /// The host presses the NMI button (QMP `inject-nmi`).
    Nmi,
    /// The guest writes `crasher:` to the crasher module's control file.
    Crasher,
    /// The guest hangs a CPU with interrupts off (crasher `hardlockup`); after `hang_seconds`
    /// the host presses the NMI button.
    HangThenNmi,
    /// The guest opens the emulated i6300esb watchdog and never pets it; QEMU injects an NMI
    /// when it expires (`-action watchdog=inject-nmi`).
    Watchdog,
    /// No crash: the host dumps the running guest's memory (QMP `dump-guest-memory`).
    VmDump,
    /// The guest runs `kdrill drill --yes` as an operator would on a real host: kdrill arms,
    /// crashes it by `/proc/sysrq-trigger`, and its collect unit judges the dump after the reboot
    /// (images with their own kdump service only).
    Drill,
}

impl Trigger {
    /// The word the guest's init understands (`KDRILL_TRIGGER`).
    pub fn guest_word(self) -> &'static str {
        match self {
            Trigger::Sysrq => "sysrq",
            Trigger::Crasher => "crasher",
            Trigger::HangThenNmi => "hang",
            Trigger::Watchdog => "watchdog",
            Trigger::VmDump => "vm-dump",
            Trigger::Drill => "drill",
            Trigger::SysrqSerial | Trigger::SysrqKeyboard | Trigger::Nmi => "host",
        }
    }

    /// Does the route need the crasher module in the guest?
    pub fn needs_crasher(self) -> bool {
        matches!(self, Trigger::Crasher | Trigger::HangThenNmi)
    }
}
