//! Root causes (pure): checks that fail only because another one does are marked as following
//! from it, and their own fixes are left out, so one cause reads as one problem with one fix.
//!
//! - A kernel that cannot dump at all (`Support::No`): `capture-loaded` is the cause, with the fix
//!   (rebuild the kernel or boot a distribution one); `crashkernel-param`, `crashkernel-reserved`,
//!   `crashkernel-size`, `kdump-service` and `capture-cmdline` follow from it: their fixes (a
//!   reservation sized for this kernel, a service that cannot load anything) cannot work while it
//!   runs. `tools` does not: kexec-tools and makedumpfile are needed whatever kernel runs.
//! - Nothing asked for (`crashkernel=` missing or reserving nothing, and nothing reserved):
//!   `crashkernel-param` is the cause; `crashkernel-reserved` and `crashkernel-size` follow.
//! - No capture initrd on the live host: `kdump-service` is the cause (it says how to build one);
//!   `capture-initrd` follows (with a kernel that cannot dump, it follows `capture-loaded`).
//! - No makedumpfile installed: `tools` is the cause; `makedumpfile-kernel` follows.

use crate::readiness::{Check, Context, Status, Support};

/// Marks, in place, the checks that follow from another's finding.
pub(crate) fn group(checks: &mut [Check], cx: &Context) {
    let status = |checks: &[Check], id: &str| checks.iter().find(|c| c.id == id).map(|c| c.status);
    let mut rules: Vec<(&'static str, &[&str])> = Vec::new();
    if matches!(cx.support, Support::No(_))
        && status(checks, "capture-loaded") == Some(Status::Fail)
    {
        rules.push((
            "capture-loaded",
            &[
                "crashkernel-param",
                "crashkernel-reserved",
                "crashkernel-size",
                "kdump-service",
                "capture-cmdline",
                "capture-initrd",
            ],
        ));
    } else if status(checks, "crashkernel-param") == Some(Status::Fail)
        && status(checks, "crashkernel-reserved") == Some(Status::Fail)
        && cx.mem.reserved() == Some(0)
    {
        rules.push((
            "crashkernel-param",
            &["crashkernel-reserved", "crashkernel-size"],
        ));
    }
    // No capture initrd on the live host: check 5 names it and how to build one; check 16 has
    // nothing to read. (A captured tree may only lack the copy: check 16 says what to copy.)
    if cx.snap.live
        && !matches!(cx.support, Support::No(_))
        && matches!(
            status(checks, "kdump-service"),
            Some(Status::Fail | Status::Warn)
        )
        && cx.snap.capture_initrd.is_none()
        && cx.snap.release.is_ok()
    {
        rules.push(("kdump-service", &["capture-initrd"]));
    }
    // No makedumpfile installed: check 11 says to install it; check 15 has no version to judge.
    if status(checks, "tools") == Some(Status::Fail)
        && cx.snap.has_usr
        && cx
            .snap
            .tools
            .get("makedumpfile")
            .is_some_and(Option::is_none)
    {
        rules.push(("tools", &["makedumpfile-kernel"]));
    }
    for (cause, consequences) in rules {
        for check in checks.iter_mut() {
            if consequences.contains(&check.id)
                && !matches!(check.status, Status::Pass | Status::Info)
            {
                check.follows_from = Some(cause);
                check.fix = None;
            }
        }
    }
}

/// The checks that follow from `cause`, in order.
pub fn consequences<'a>(checks: &'a [Check], cause: &str) -> Vec<&'a Check> {
    checks
        .iter()
        .filter(|c| c.follows_from == Some(cause))
        .collect()
}
