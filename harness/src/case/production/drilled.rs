//! A `drill` case's own judgement: the record the guest's `kdrill drill --collect` wrote in boot 3
//! must say PASS and name the dump the host read too, and the guest's `kdrill check` after it
//! must report that drill as counting.

use std::path::Path;

use crate::case::error::CaseError;
use crate::spec::drill::{Record, Times};

/// The drill's record and the boot 3 check, from the case's evidence folder `dir`; `dump` is the
/// dump file the host read off the guest's disk (its name), if any; `followed_s` the time from
/// QEMU's start until the guest was gone, on the host's clock, which holds the whole drill.
pub fn judge(
    dir: &Path,
    dump: Option<&str>,
    followed_s: Option<f64>,
) -> (Vec<String>, Vec<CaseError>) {
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
    if let Some(error) = times_fit(times, followed_s) {
        errors.push(error);
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

/// The drill times its steps by the guest's wall clock: each is there and not negative, and the
/// crash → host back span fits in the host's view of the whole case (2 s for whole-second stamps).
fn times_fit(times: &Times, followed_s: Option<f64>) -> Option<CaseError> {
    let steps = [
        ("crash → dump folder made", times.crash_to_capture_s),
        ("dump folder → dump saved", times.capture_to_saved_s),
        ("dump saved → host back", times.saved_to_back_s),
        ("crash → host back", times.crash_to_back_s),
    ];
    for (step, seconds) in steps {
        match seconds {
            None => {
                return Some(CaseError::Drill(format!(
                    "the drill record has no time for {step}"
                )))
            }
            Some(s) if s < 0.0 => {
                return Some(CaseError::Drill(format!(
                    "the drill record says {step} took {s:.0} s: the guest's clock went back"
                )))
            }
            Some(_) => {}
        }
    }
    let (Some(back), Some(host)) = (times.crash_to_back_s, followed_s) else {
        return None;
    };
    (back > host + 2.0).then(|| {
        CaseError::Drill(format!(
            "the drill record says crash → host back took {back:.0} s, but the whole case took {host:.0} s on the host: the guest's clock is wrong (a restored guest keeps its snapshot's time until it reads the RTC)"
        ))
    })
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
        let (_, errors) = judge(dir.path(), None, None);
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
        let (notes, errors) = judge(dir.path(), None, None);
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

    #[test]
    fn drill_times_must_fit_in_the_hosts_view_of_the_case() {
        let times = Times {
            crash_to_capture_s: Some(21.0),
            capture_to_saved_s: Some(8.0),
            saved_to_back_s: Some(5.0),
            crash_to_back_s: Some(34.0),
        };
        assert!(times_fit(&times, Some(89.6)).is_none());
        assert!(times_fit(&times, None).is_none());
        // A restored guest whose clock stayed at the snapshot's: 418 s in a 86 s case.
        let skewed = Times {
            crash_to_capture_s: Some(418.0),
            crash_to_back_s: Some(438.0),
            ..times.clone()
        };
        let why = times_fit(&skewed, Some(86.2)).unwrap().to_string();
        assert!(why.contains("438 s") && why.contains("86 s"), "{why}");
        let back = Times {
            saved_to_back_s: Some(-3.0),
            ..times.clone()
        };
        assert!(times_fit(&back, None)
            .unwrap()
            .to_string()
            .contains("went back"));
        let missing = Times {
            capture_to_saved_s: None,
            ..times
        };
        assert!(times_fit(&missing, None)
            .unwrap()
            .to_string()
            .contains("no time for dump folder → dump saved"));
    }
}
