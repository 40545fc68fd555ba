//! The waits of a disk-image case (every case's deadlines are summed in `case/budget.rs`).
//! An operator's disk image (measured here, TCG, 2 vCPUs, 2 GiB, 2026-12-07: a Debian 13 image
//! with cloud-init ready in 85 s, crash → saved and rebooting 70 s, ready again 51 s; a Debian 12
//! UEFI image 46 s, 32 s, 31 s). Its own first boot builds its capture initrd.

use std::time::Duration;

use crate::vm::status::EventName;
use crate::vm::watch::Wait;

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub const BOOT: Wait = Wait {
    event: EventName::Boot,
    limit: secs(300),
    what: "the image to boot to kdrill's agent (boot 1)",
};
pub const READY: Wait = Wait {
    event: EventName::Ready,
    limit: secs(600),
    what: "the image's kdump service to be ready (boot 1)",
};
/// The agent says it crashes the image right after `ready`.
pub const TRIGGER: Wait = Wait {
    event: EventName::Trigger,
    limit: secs(60),
    what: "kdrill's agent to crash the image",
};
pub const CAPTURE: Wait = Wait {
    event: EventName::Boot,
    limit: secs(600),
    what: "the image's capture to save the dump and the image to boot to kdrill's agent again",
};
pub const READY_AGAIN: Wait = Wait {
    event: EventName::Ready,
    limit: secs(600),
    what: "the image's kdump service to be ready again and the dump copied (boot 3)",
};
pub const DONE: Wait = Wait {
    event: EventName::Done,
    limit: secs(60),
    what: "kdrill's agent to finish boot 3",
};
/// QEMU exits after boot 3 powers off.
pub const POWEROFF: Duration = secs(120);
/// `qemu-img` on the operator's file (info, the first sectors, the overlay).
pub const QEMU_IMG: Duration = secs(60);
/// `cloud-localds`, or `virt-customize` into the overlay (an appliance boot under TCG).
pub const INJECT: Duration = secs(600);
/// Downloading a recipe's `url:` (a cloud image is a few hundred MB).
pub const DOWNLOAD: Duration = secs(1800);
/// One sha256 of the operator's file (before and after).
pub const HASH: Duration = secs(300);
/// A reboot the agent asks for to take `--crashkernel` (boot 1 again).
pub const RESERVE_REBOOT: Duration = secs(300);

/// Every wait of a disk-image case, its setup and reading what it left.
pub fn total() -> Duration {
    let guest = BOOT.limit * 2
        + READY.limit
        + RESERVE_REBOOT
        + crate::case::budget::MAX_HANG
        + TRIGGER.limit
        + CAPTURE.limit
        + READY_AGAIN.limit
        + DONE.limit
        + POWEROFF;
    let host = QEMU_IMG * 3
        + INJECT
        + DOWNLOAD
        + HASH * 2
        + crate::case::budget::EXTRACT * crate::case::budget::EXTRACTIONS
        + crate::case::budget::debian::EVIDENCE_FILE * crate::guest::agent::EVIDENCE.len() as u32
        + crate::case::budget::MAKEDUMPFILE_READ * 2;
    guest + host
}
