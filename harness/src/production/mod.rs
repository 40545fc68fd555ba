//! The production capture path: a Debian guest whose own kdump-tools service loads the capture
//! kernel, saves the dump into its dump folder after the crash, reboots and comes back ready, with
//! the operator's own settings (an overlay of their `/etc`, their `crashkernel=`). Three boots per
//! case (`flow`), the image built once and cached (`image`, over the pure `hooks`), the dump
//! folder read back from the disk and judged (`coredir`), failures named from what the guest
//! showed (`diagnose`), an SSH dump target served by a throwaway sshd (`sshd`).

pub mod coredir;
pub mod diagnose;
pub mod flow;
pub mod hooks;
pub mod image;
pub mod sshd;

use crate::spec::scenario::{Scenario, Trigger};

/// Why the Debian image cannot run `scenario`'s route, if it cannot: its unit runs the guest's
/// side of sysrq and the crasher routes, and the host's routes need only its `ready`.
pub fn route_skip(scenario: &Scenario) -> Option<String> {
    let supported = matches!(
        scenario.trigger,
        Trigger::Sysrq
            | Trigger::Crasher
            | Trigger::HangThenNmi
            | Trigger::SysrqSerial
            | Trigger::SysrqKeyboard
            | Trigger::Nmi
    );
    if !supported {
        return Some(format!(
            "the Debian image runs sysrq, crasher and host-side routes; {} needs the minimal image",
            scenario.id
        ));
    }
    if scenario.pin_cpu.is_some()
        || !scenario.guest.modules.is_empty()
        || !scenario.guest.qemu.is_empty()
        || !scenario.guest.cmdline.is_empty()
    {
        return Some(format!(
            "{} changes the machine (pinned CPU, modules, devices or command line), which only the minimal image does",
            scenario.id
        ));
    }
    None
}
