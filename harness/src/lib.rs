//! kdrill: boot guests, crash them by every route, capture and open the dump; check hosts for kdump readiness.
//!
//! The folders follow what the code is for (see ARCHITECTURE.md's codemap): `spec` (the YAML data),
//! `host` (processes, deadlines, host tools, paths, locks), `fetch` (kernel and header packages, the
//! crasher module), `guest` (what the guest boots: initramfs, modules, the dump disk), `vm` (QEMU,
//! QMP, the console and status channel, crash routes), `case` (one case end to end), `dumpcheck`
//! (reading a dump back and judging it), `crosscheck` (drgn, crash and gdb on the same dumps),
//! `campaign` (many cases: matrix, verify, summary, soak), `calibrate` (the smallest
//! `crashkernel=` that captures) and `readiness` (`kdrill check`).

/// `0.1.0 (2bcba55 2026-12-06)`: the crate's version, the commit it was built from ("unknown
/// commit" outside a git checkout) and the build date (`SOURCE_DATE_EPOCH` when set), from
/// `harness/build.rs`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("KDRILL_COMMIT"),
    " ",
    env!("KDRILL_BUILD_DATE"),
    ")"
);

pub mod agent;
pub mod calibrate;
pub mod campaign;
pub mod case;
pub mod crosscheck;
pub mod drill;
pub mod dumpcheck;
pub mod exit;
pub mod fetch;
pub mod guest;
pub mod host;
pub mod readiness;
pub mod spec;
pub mod vm;
