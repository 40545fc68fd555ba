//! A `drill` case's own judgement: the record the guest's `kdrill drill --collect` wrote in boot 3
//! must say PASS and name the dump the host read too, and the guest's `kdrill check` after it
//! must report that drill as counting.

use std::path::Path;

use crate::case::error::CaseError;
use crate::spec::drill::Record;

/// The drill's record and the boot 3 check, from the case's evidence folder `dir`; `dump` is the
/// dump file the host read off the guest's disk (its name), if any.
pub fn judge(dir: &Path, dump: Option<&str>) -> (Vec<String>, Vec<CaseError>) {
    let mut notes = Vec::new();
    let mut errors = Vec::new();
    let record = match std::fs::read(dir.join("drill-record.json")) {
        Ok(bytes) => match serde_json::from_slice::<Record>(&bytes) {
            Ok(record) => record,
            Err(e) => {
                errors.push(CaseError::Drill(format!(
                    "drill-record.json is not a drill record: {e}"
                )));
                return (notes, errors);
            }
        },
        Err(_) => {
            errors.push(CaseError::Drill(
                "no drill record: the collect unit wrote none in boot 3 (drill-collect.journal, drill-arm.txt)".into(),
            ));
            return (notes, errors);
        }
    };
    let times = &record.times;
    let secs = |s: Option<f64>| s.map_or("?".to_string(), |s| format!("{s:.0}s"));
    notes.push(format!(
        "drill {}: {} (crash → dump folder made {}, → dump saved {}, → host back {})",
        record.armed.id,
        if record.success { "PASS" } else { "FAIL" },
        secs(times.crash_to_capture_s),
        secs(times.capture_to_saved_s),
        secs(times.saved_to_back_s),
    ));
    if !record.success {
        errors.push(CaseError::Drill(format!(
            "FAILED: {}",
            record.reason.as_deref().unwrap_or("no reason recorded")
        )));
        return (notes, errors);
    }
    let named = record.dump.as_deref().and_then(|d| d.rsplit('/').next());
    if let (Some(host), Some(guest)) = (dump, named) {
        if host != guest {
            errors.push(CaseError::Drill(format!(
                "the drill judged {guest}, but the dump on the disk is {host}"
            )));
        }
    }
    match last_drill_row(dir) {
        Some((status, seen)) if status == "pass" => {
            notes.push(format!("kdrill check in boot 3: last-drill {seen}"))
        }
        Some((status, seen)) => errors.push(CaseError::Drill(format!(
            "kdrill check after the drill says last-drill {status}: {seen}"
        ))),
        None => errors.push(CaseError::Drill(
            "boot3-check.json holds no last-drill check".into(),
        )),
    }
    (notes, errors)
}

fn last_drill_row(dir: &Path) -> Option<(String, String)> {
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("boot3-check.json")).ok()?).ok()?;
    let row = json["checks"]
        .as_array()?
        .iter()
        .find(|c| c["id"] == "last-drill")?;
    Some((
        row["status"].as_str()?.to_string(),
        row["seen"].as_str()?.to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_failed_record_fails_the_case_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let (_, errors) = judge(dir.path(), None);
        assert!(
            errors[0].to_string().contains("no drill record"),
            "{}",
            errors[0]
        );
        let record = serde_json::json!({
            "schema": "kdrill-drill/1", "id": "x", "route": "sysrq", "marker": "m", "armed_unix": 1,
            "crash_unix": 2, "hostname": null, "kernel_release": "6.1", "service": "kdump-tools.service",
            "dump_dir": "/var/crash", "before": [], "fingerprints": {}, "notify": null,
            "collected_unix": 3, "success": false, "reason": "no dump was written for this drill",
            "dump": null, "dump_bytes": null, "panic_message": null, "findings": [], "times": {}
        });
        std::fs::write(dir.path().join("drill-record.json"), record.to_string()).unwrap();
        let (notes, errors) = judge(dir.path(), None);
        assert!(notes[0].contains("drill x: FAIL"), "{notes:?}");
        assert_eq!(errors[0].kind(), "drill");
        assert!(
            errors[0]
                .to_string()
                .contains("FAILED: no dump was written"),
            "{}",
            errors[0]
        );
    }
}
