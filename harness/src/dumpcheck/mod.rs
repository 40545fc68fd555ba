//! Reading a captured dump back on the host and judging it: the files off the dump disk, the
//! kernel log read natively and cross-checked with the capture userspace's makedumpfile (in the
//! format its release writes, `dumpcheck/dmesgformat.rs`), the crashed CPU's backtrace, task and
//! modules (`dumpcheck/deep.rs`), the pages it holds (`dumpcheck/facts.rs`), the scenario's
//! expectations.

pub mod deep;
pub mod dmesgformat;
pub mod expect;
pub mod facts;
pub mod log;
pub mod makedumpfile;

use std::path::Path;

use crate::case::error::CaseError;
use crate::case::evidence;
use crate::case::verdict::CaseResult;
use crate::guest::dumpdisk;
use crate::spec::scenario::Scenario;

/// Copies the dump and the capture boot's logs off the dump disk into `dir`, reads the kernel log
/// from the dump (kdrill's reader, byte-compared with `reader`'s), and checks the scenario's
/// expectations on it and on the serial log. Unmet expectations are recorded in `result`; the
/// error is what stopped the check.
pub fn check_capture(
    disk: &Path,
    dir: &Path,
    scenario: &Scenario,
    reader: &makedumpfile::Reader,
    result: &mut CaseResult,
) -> Result<(), CaseError> {
    for name in ["makedumpfile.log", "capture-dmesg.txt"] {
        // Evidence only: a missing log is not itself a failure.
        let _ = dumpdisk::extract(disk, name, &dir.join(name));
    }
    let vmcore = dir.join("vmcore");
    let extracted =
        dumpdisk::extract(disk, "vmcore", &vmcore).map_err(|e| CaseError::Dump(e.to_string()))?;
    if !extracted {
        return Err(CaseError::NoDump);
    }
    evidence::restrict(&vmcore)
        .map_err(|e| CaseError::Dump(format!("chmod {}: {e}", vmcore.display())))?;
    let size = std::fs::metadata(&vmcore).map(|m| m.len()).unwrap_or(0);
    result.dump_bytes = Some(size);
    if size == 0 {
        return Err(CaseError::EmptyDump);
    }
    // What makedumpfile said in the guest, for `result.json` and the reason of `expect.dump`.
    if let Ok(output) = std::fs::read(dir.join("makedumpfile.log")) {
        result.capture = Some(facts::CaptureFacts {
            makedumpfile_said: Some(facts::messages(&String::from_utf8_lossy(&output))),
            ..facts::CaptureFacts::default()
        });
    }
    result.log_check = Some(log_check(reader));
    let log = log::read_cross_checked(&vmcore, &dir.join("dmesg.txt"), Some(reader))?;
    judge(&vmcore, &log.text, "the dump", dir, scenario, result);
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
/// holds (kept in `result.capture` with what makedumpfile said, when that was read before) against
/// `expect.dump`, the crashed CPU's backtrace, its task and the modules (by kdrill's reader), and
/// the lines that must be absent from the log and the serial console. Unmet expectations are
/// recorded in `result`.
pub fn judge(
    vmcore: &Path,
    log: &str,
    from: &str,
    dir: &Path,
    scenario: &Scenario,
    result: &mut CaseResult,
) {
    result.panic_message = expect::panic_message(log);
    result.expectations = expect::check_log(log, &scenario.expect.log);
    for (pattern, found) in result.expectations.clone() {
        if found.is_none() {
            result.fail(CaseError::ExpectedLineMissing {
                from: from.to_string(),
                pattern,
            });
        }
    }
    match facts::read(vmcore) {
        Ok(mut seen) => {
            seen.makedumpfile_said = result.capture.take().and_then(|c| c.makedumpfile_said);
            if let Some(error) = scenario
                .expect
                .dump
                .and_then(|bound| facts::check(&seen, &bound))
            {
                result.fail(error);
            }
            result.capture = Some(seen);
        }
        Err(e) if scenario.expect.dump.is_some() => result.fail(CaseError::Dump(format!(
            "cannot count the dump's pages: {e}"
        ))),
        Err(_) => {}
    }
    match deep::read(vmcore, log) {
        Ok(mut seen) => {
            for error in deep::check(scenario, &mut seen) {
                result.fail(error);
            }
            result.deep = Some(seen);
        }
        Err(e) => result.fail(CaseError::DeepUnreadable(e)),
    }
    let serial =
        String::from_utf8_lossy(&std::fs::read(dir.join("serial.log")).unwrap_or_default())
            .into_owned();
    for error in expect::check_absent(
        &[("the dump's log", log), ("serial.log", &serial)],
        &scenario.expect.absent,
    ) {
        result.fail(error);
    }
}
