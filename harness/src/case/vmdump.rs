//! The `vm-dump` flow: no crash; the hypervisor dumps the running guest in each format, and each
//! dump must hold the marker the guest wrote to its kernel log.

use std::time::Instant;

use crate::case::budget;
use crate::case::error::CaseError;
use crate::case::evidence;
use crate::case::flow::Guesting;
use crate::dumpcheck;
use crate::dumpcheck::DumpError;
use crate::vm::routes;

pub fn dump(g: &mut Guesting) -> Result<(), CaseError> {
    let scenario = &g.run.case.scenario;
    let dir = g.run.dir;
    let mut qmp = g.first_boot()?;
    g.watch.until(budget::MARKER)?;
    qmp.set_timeout(g.watch.scaled(budget::VM_DUMP))
        .map_err(|e| CaseError::Qmp {
            during: "QMP",
            detail: e.to_string(),
        })?;
    let offered = routes::dump_formats(&mut qmp).map_err(CaseError::Route)?;
    for format in &scenario.vm_dump_formats {
        if !offered.contains(format) {
            g.result.notes.push(format!(
                "{format}: SKIP, this QEMU does not offer it (it offers {})",
                offered.join(", ")
            ));
            continue;
        }
        (g.run.progress)(&format!("dump-guest-memory {format}"));
        let out = dir.join(format!("vmcore.{format}"));
        let started = Instant::now();
        routes::dump_guest_memory(&mut qmp, format, &out).map_err(CaseError::Route)?;
        evidence::restrict(&out)
            .map_err(|e| DumpError::Dump(format!("chmod {}: {e}", out.display())))?;
        let secs = started.elapsed().as_secs_f64();
        let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
        g.result.dump_bytes = Some(g.result.dump_bytes.unwrap_or(0).max(size));
        let phases = g.result.minimal_phases();
        phases.vm_dump = Some(phases.vm_dump.unwrap_or(0.0) + secs);
        // makedumpfile cannot read what dump-guest-memory writes: kdrill's reader alone.
        let log = dumpcheck::log::read_native(&out, &dir.join(format!("dmesg.{format}.txt")))
            .map_err(|e| DumpError::Dump(format!("{format} dump: {e}")))?;
        for (pattern, found) in dumpcheck::expect::check_log(&log, &scenario.expect.log) {
            if found.is_none() {
                g.result
                    .fail(CaseError::Read(DumpError::ExpectedLineMissing {
                        from: format!("the {format} dump"),
                        pattern: pattern.clone(),
                    }));
            }
            g.result
                .expectations
                .insert(format!("[{format}] {pattern}"), found);
        }
    }
    Ok(())
}
