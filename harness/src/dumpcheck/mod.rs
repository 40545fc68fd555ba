//! Reading a captured dump back on the host and judging it: the files off the dump disk, the
//! kernel log read natively and cross-checked with the capture userspace's makedumpfile (in the
//! format its release writes, `dumpcheck/dmesgformat.rs`), the crashed CPU's backtrace, task and
//! modules (`dumpcheck/deep.rs`), the pages it holds (`dumpcheck/facts.rs`), the scenario's
//! expectations. What it finds goes back as plain values ([`Findings`], [`DumpError`]); the case
//! layer records them.

pub mod deep;
pub mod dmesgformat;
pub mod expect;
pub mod facts;
pub mod log;
pub mod makedumpfile;

use std::collections::BTreeMap;
use std::path::Path;

use crate::guest::dumpdisk;
use crate::spec::scenario::Scenario;

/// Why reading a dump back failed or what it found wrong. The case layer carries it as it is
/// (`CaseError::Read`), so a failure reads the same in `result.json`, with [`DumpError::kind`].
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// The capture boot left no dump.
    #[error("no dump: the capture kernel wrote no vmcore to the dump disk")]
    NoDump,
    #[error("the dump is empty (0 bytes)")]
    EmptyDump,
    /// A dump (or a file kept with it) could not be read or written on the host.
    #[error("{0}")]
    Dump(String),
    /// kdrill's reader and makedumpfile read different logs from the same dump.
    #[error("kdrill's reader and makedumpfile disagree on the kernel log from byte {at} on (compare {ours} with {theirs})")]
    LogMismatch {
        at: usize,
        ours: String,
        theirs: String,
    },
    /// A line the scenario expects is not in the dump's log.
    #[error("expected log line absent from {from}: `{pattern}`")]
    ExpectedLineMissing { from: String, pattern: String },
    /// A line the scenario forbids is in a log.
    #[error("{text} holds a line it must not (`{pattern}`): {line}")]
    ForbiddenLine {
        text: String,
        pattern: String,
        line: String,
    },
    /// kdrill could not read the crashed CPU's backtrace, task or modules from the dump.
    #[error("the dump's backtrace, tasks or modules could not be read: {0}")]
    DeepUnreadable(String),
    /// A frame the scenario expects is not in the crashed CPU's backtrace (in order).
    #[error(
        "expected frame absent from the crashed CPU's backtrace: `{pattern}` (frames: {frames})"
    )]
    FrameMissing { pattern: String, frames: String },
    /// The crashed CPU ran another task than the route's.
    #[error("the crashed CPU ran `{got}`, the route crashes from `{want}`")]
    WrongTask { want: String, got: String },
    /// The crasher module is not in the dump's module list.
    #[error("module `{0}` is not in the dump's module list")]
    ModuleMissing(String),
    /// The dump holds a larger share of the guest's pages than the scenario's `expect.dump`
    /// allows: the dump level did not exclude what it should have.
    #[error("the dump holds {percent} % of the guest's pages ({dumped} of {ram}) where at most {max} % is expected: {why}")]
    DumpNotReduced {
        percent: f64,
        max: f64,
        dumped: u64,
        ram: u64,
        why: String,
    },
}

impl DumpError {
    /// A short stable name for the kind of failure (`result.json`'s `failure`).
    pub fn kind(&self) -> &'static str {
        match self {
            DumpError::NoDump => "no-dump",
            DumpError::EmptyDump => "empty-dump",
            DumpError::Dump(_) => "dump-unreadable",
            DumpError::LogMismatch { .. } => "log-mismatch",
            DumpError::ExpectedLineMissing { .. } => "expectation-missing",
            DumpError::ForbiddenLine { .. } => "forbidden-line",
            DumpError::DeepUnreadable(_) => "deep-unreadable",
            DumpError::FrameMissing { .. } => "backtrace-mismatch",
            DumpError::WrongTask { .. } => "task-mismatch",
            DumpError::ModuleMissing(_) => "module-missing",
            DumpError::DumpNotReduced { .. } => "dump-not-reduced",
        }
    }
}

/// What reading a dump back found, for the case's `result.json`: each field is set once the step
/// that finds it ran, and `unmet` lists the expectations the dump did not meet, in order.
#[derive(Debug, Default)]
pub struct Findings {
    /// The dump file's size in bytes.
    pub dump_bytes: Option<u64>,
    /// Which makedumpfile re-read the log ([`log_check`]).
    pub log_check: Option<String>,
    /// The pages the dump holds and leaves out, and what makedumpfile said in the guest.
    pub capture: Option<facts::CaptureFacts>,
    /// The panic message read from the dump's log.
    pub panic_message: Option<String>,
    /// Each `expect.log` pattern and the line it matched.
    pub expectations: BTreeMap<String, Option<String>>,
    /// The crashed CPU's backtrace, task and modules.
    pub deep: Option<deep::DeepSeen>,
    /// The expectations the dump did not meet.
    pub unmet: Vec<DumpError>,
}

/// Copies the dump and the capture boot's logs off the dump disk into `dir`, reads the kernel log
/// from the dump (kdrill's reader, byte-compared with `reader`'s), and checks the scenario's
/// expectations on it and on the serial log. What it found goes into `found` (unmet
/// expectations too); the error is what stopped the check.
pub fn check_capture(
    disk: &Path,
    dir: &Path,
    scenario: &Scenario,
    reader: &makedumpfile::Reader,
    found: &mut Findings,
) -> Result<(), DumpError> {
    for name in ["makedumpfile.log", "capture-dmesg.txt"] {
        // Evidence only: a missing log is not itself a failure.
        let _ = dumpdisk::extract(disk, name, &dir.join(name));
    }
    let vmcore = dir.join("vmcore");
    let extracted =
        dumpdisk::extract(disk, "vmcore", &vmcore).map_err(|e| DumpError::Dump(e.to_string()))?;
    if !extracted {
        return Err(DumpError::NoDump);
    }
    crate::host::paths::restrict(&vmcore)
        .map_err(|e| DumpError::Dump(format!("chmod {}: {e}", vmcore.display())))?;
    let size = std::fs::metadata(&vmcore).map(|m| m.len()).unwrap_or(0);
    found.dump_bytes = Some(size);
    if size == 0 {
        return Err(DumpError::EmptyDump);
    }
    // What makedumpfile said in the guest, for `result.json` and the reason of `expect.dump`.
    if let Ok(output) = std::fs::read(dir.join("makedumpfile.log")) {
        found.capture = Some(facts::CaptureFacts {
            makedumpfile_said: Some(facts::messages(&String::from_utf8_lossy(&output))),
            ..facts::CaptureFacts::default()
        });
    }
    found.log_check = Some(log_check(reader));
    let log = log::read_cross_checked(&vmcore, &dir.join("dmesg.txt"), Some(reader))?;
    judge(&vmcore, &log.text, "the dump", dir, scenario, found);
    Ok(())
}

/// What `result.json` says re-read the log: `makedumpfile 1:1.7.6-1 (trixie) --dump-dmesg,
/// caller format`.
pub fn log_check(reader: &makedumpfile::Reader) -> String {
    format!(
        "{} --dump-dmesg, {} format",
        reader.label,
        reader.format.word()
    )
}

/// Judges a dump whose log was read (`log`): the scenario's log expectations, the pages the dump
/// holds (kept in `found.capture` with what makedumpfile said, when that was read before) against
/// `expect.dump`, the crashed CPU's backtrace, its task and the modules (by kdrill's reader), and
/// the lines that must be absent from the log and the serial console. What it found goes into
/// `found` (unmet expectations too).
pub fn judge(
    vmcore: &Path,
    log: &str,
    from: &str,
    dir: &Path,
    scenario: &Scenario,
    found: &mut Findings,
) {
    found.panic_message = expect::panic_message(log);
    found.expectations = expect::check_log(log, &scenario.expect.log);
    for (pattern, line) in found.expectations.clone() {
        if line.is_none() {
            found.unmet.push(DumpError::ExpectedLineMissing {
                from: from.to_string(),
                pattern,
            });
        }
    }
    match facts::read(vmcore) {
        Ok(mut seen) => {
            seen.makedumpfile_said = found.capture.take().and_then(|c| c.makedumpfile_said);
            if let Some(error) = scenario
                .expect
                .dump
                .and_then(|bound| facts::check(&seen, &bound))
            {
                found.unmet.push(error);
            }
            found.capture = Some(seen);
        }
        Err(e) if scenario.expect.dump.is_some() => found.unmet.push(DumpError::Dump(format!(
            "cannot count the dump's pages: {e}"
        ))),
        Err(_) => {}
    }
    match deep::read(vmcore, log) {
        Ok(mut seen) => {
            for error in deep::check(scenario, &mut seen) {
                found.unmet.push(error);
            }
            found.deep = Some(seen);
        }
        Err(e) => found.unmet.push(DumpError::DeepUnreadable(e)),
    }
    let serial =
        String::from_utf8_lossy(&std::fs::read(dir.join("serial.log")).unwrap_or_default())
            .into_owned();
    for error in expect::check_absent(
        &[("the dump's log", log), ("serial.log", &serial)],
        &scenario.expect.absent,
    ) {
        found.unmet.push(error);
    }
}
