//! After the reboot: find the dump the host's kdump service wrote for the armed drill, open it
//! with kdrill's reader, judge it (the drill's marker in the log, the route's panic and frames,
//! not incomplete), time each step, write the record, say one line and run `--notify`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::drill::judge::{find, judge, times, Found};
use crate::drill::route::Route;
use crate::drill::{arm, now_unix, write_durably, DrillError};
use crate::dumpcheck::{deep, expect, log};
use crate::readiness::source::Root;
use crate::spec::drill::{Armed, Finding, Record, Times, ARMED, DRILL_DIR, SCHEMA};

/// The longest `--notify` may run.
const NOTIFY_LIMIT: Duration = Duration::from_secs(120);

fn unix(at: SystemTime) -> Option<f64> {
    at.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs_f64())
}

fn boot_started() -> Option<f64> {
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(unix(SystemTime::now())? - uptime)
}

/// Reads the armed drill of `root`, if any.
pub fn armed(root: &Root) -> Result<Option<Armed>, DrillError> {
    let Ok(id) = std::fs::read_to_string(root.base().join(ARMED.trim_start_matches('/'))) else {
        return Ok(None);
    };
    let path = arm::state_path(root, id.trim());
    let text = std::fs::read_to_string(&path).map_err(|e| DrillError::BadState {
        path: path.display().to_string(),
        why: e.to_string(),
    })?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| DrillError::BadState {
            path: path.display().to_string(),
            why: format!("line {}, column {}: {e}", e.line(), e.column()),
        })
}

/// Collects the armed drill: the record (also written), or `None` when no drill is armed.
pub fn collect(root: &Root) -> Result<Option<(PathBuf, Record)>, DrillError> {
    let Some(armed) = armed(root)? else {
        return Ok(None);
    };
    let drills = root.base().join(DRILL_DIR.trim_start_matches('/'));
    let dump_dir = root.base().join(armed.dump_dir.trim_start_matches('/'));
    let listing: Vec<(String, Vec<String>)> = root
        .list(&armed.dump_dir)
        .unwrap_or_default()
        .into_iter()
        .map(|folder| {
            let files = root
                .list(&format!("{}/{folder}", armed.dump_dir))
                .unwrap_or_default();
            (folder, files)
        })
        .collect();
    let route = Route::from_word(&armed.route).unwrap_or(Route::Sysrq);
    let mut record = Record {
        schema: SCHEMA.into(),
        armed: armed.clone(),
        collected_unix: 0,
        success: false,
        reason: None,
        dump: None,
        dump_bytes: None,
        panic_message: None,
        findings: Vec::new(),
        times: Times::default(),
    };
    let booted = boot_started();
    match find(&armed.before, &listing) {
        Found::Nothing { new } => {
            record.reason = Some(format!(
                "no dump was written for this drill in {} (new entries: {}); the capture boot's log says why: journalctl -b -1",
                armed.dump_dir,
                if new.is_empty() { "none".into() } else { new.join(", ") }
            ));
            record.times = times(armed.crash_unix, None, None, booted);
        }
        Found::Incomplete { folder, file } => {
            record.dump = Some(format!("{}/{folder}/{file}", armed.dump_dir));
            record.reason = Some(format!(
                "the dump {}/{folder}/{file} is incomplete: its writer stopped (no room in the dump folder, or the capture kernel ran out of memory)",
                armed.dump_dir
            ));
        }
        Found::Dump { folder, file } => {
            let path = dump_dir.join(&folder).join(&file);
            record.dump = Some(format!("{}/{folder}/{file}", armed.dump_dir));
            let meta = std::fs::metadata(&path).ok();
            let folder_meta = std::fs::metadata(dump_dir.join(&folder)).ok();
            record.dump_bytes = meta.as_ref().map(|m| m.len());
            let made = folder_meta.and_then(|m| m.created().ok()).and_then(unix);
            let saved = meta.and_then(|m| m.modified().ok()).and_then(unix);
            record.times = times(armed.crash_unix, made, saved, booted);
            open_and_judge(
                &path,
                &drills.join(format!("{}.dmesg.txt", armed.id)),
                route,
                &mut record,
            );
        }
    }
    record.collected_unix = now_unix();
    let out = drills.join(format!("{}.json", armed.id));
    let text = serde_json::to_string_pretty(&record).unwrap_or_default() + "\n";
    write_durably(&out, text.as_bytes())?;
    arm::disarm(root, &armed.id);
    Ok(Some((out, record)))
}

fn open_and_judge(path: &Path, dmesg: &Path, route: Route, record: &mut Record) {
    match kdrill_vmcore::Vmcore::open(path) {
        Ok(dump) => {
            let info = dump.info();
            record.findings.push(Finding {
                what: "the dump is whole".into(),
                ok: !info.incomplete && !info.truncated,
                seen: if info.incomplete || info.truncated {
                    format!(
                        "marked incomplete or cut short: {} pages lost",
                        info.incomplete_pages
                    )
                } else {
                    "complete".into()
                },
            });
        }
        Err(e) => {
            record.reason = Some(format!(
                "kdrill cannot open the dump {}: {e}",
                path.display()
            ));
            return;
        }
    }
    let text = match log::read_native(path, dmesg) {
        Ok(text) => text,
        Err(why) => {
            record.reason = Some(why);
            return;
        }
    };
    record.panic_message = expect::panic_message(&text);
    let deep = deep::read(path, &text);
    let frames = deep
        .as_ref()
        .map(|d| d.frames.as_slice())
        .map_err(String::as_str);
    record
        .findings
        .extend(judge(&record.armed, route, &text, frames));
    let failed: Vec<String> = record
        .findings
        .iter()
        .filter(|f| !f.ok)
        .map(|f| format!("{} — {}", f.what, f.seen))
        .collect();
    record.success = failed.is_empty();
    if !record.success {
        record.reason = Some(format!(
            "the dump does not prove this drill: {}",
            failed.join("; ")
        ));
    }
}

/// The one line the journal gets.
pub fn line(record: &Record) -> String {
    let verdict = if record.success { "PASS" } else { "FAIL" };
    let mut out = format!("kdrill drill {}: {verdict}", record.armed.id);
    if let Some(reason) = &record.reason {
        out.push_str(&format!(": {reason}"));
    }
    if let Some(dump) = &record.dump {
        out.push_str(&format!("; dump {dump}"));
    }
    if let Some(s) = record.times.crash_to_back_s {
        out.push_str(&format!("; crash → host back {s:.0} s"));
    }
    out
}

/// Runs the drill's `--notify` command with the record's path and verdict in its environment.
pub fn notify(record: &Record, path: &Path) -> Option<String> {
    let command = record.armed.notify.as_deref()?;
    let mut sh = std::process::Command::new("sh");
    sh.args(["-c", command])
        .env("KDRILL_DRILL_ID", &record.armed.id)
        .env(
            "KDRILL_DRILL_RESULT",
            if record.success { "pass" } else { "fail" },
        )
        .env("KDRILL_DRILL_RECORD", path);
    Some(match crate::host::process::run(&mut sh, NOTIFY_LIMIT) {
        Ok(done) if done.status.success() => format!("notified: {command}"),
        Ok(done) => format!(
            "--notify {command:?} failed ({}): {}",
            done.status,
            done.last_line()
        ),
        Err(e) => format!("--notify {command:?}: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::judge::tests::armed;

    #[test]
    fn notify_runs_the_command_with_the_drills_verdict_and_record() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("said");
        let mut a = armed();
        a.notify = Some(format!(
            "echo \"$KDRILL_DRILL_ID $KDRILL_DRILL_RESULT $KDRILL_DRILL_RECORD\" > {}",
            out.display()
        ));
        let record = Record {
            schema: SCHEMA.into(),
            armed: a,
            collected_unix: 1,
            success: false,
            reason: Some("no dump".into()),
            dump: None,
            dump_bytes: None,
            panic_message: None,
            findings: vec![],
            times: Times::default(),
        };
        let said = notify(&record, Path::new("/var/lib/kdrill/drill/x.json")).unwrap();
        assert!(said.starts_with("notified"), "{said}");
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(
            text.trim(),
            "20261207T124400Z-3f2a fail /var/lib/kdrill/drill/x.json"
        );
        // A command that fails is said, never a panic, and does not change the verdict.
        let mut failing = record.clone();
        failing.armed.notify = Some("exit 7".into());
        let said = notify(&failing, Path::new("x")).unwrap();
        assert!(said.contains("failed"), "{said}");
        failing.armed.notify = None;
        assert_eq!(notify(&failing, Path::new("x")), None);
    }

    #[test]
    fn a_drill_with_no_dump_is_recorded_as_failed_and_disarmed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("var/crash/202612010000")).unwrap();
        let root = Root::new(dir.path());
        let a = armed();
        arm::save_state(&root, &a).unwrap();
        write_durably(
            &dir.path().join("var/lib/kdrill/drill/armed"),
            a.id.as_bytes(),
        )
        .unwrap();
        let (path, record) = collect(&root).unwrap().unwrap();
        assert!(!record.success);
        assert!(
            record
                .reason
                .as_deref()
                .unwrap()
                .contains("no dump was written"),
            "{record:?}"
        );
        assert!(path.ends_with(format!("{}.json", a.id)));
        assert!(!dir.path().join("var/lib/kdrill/drill/armed").exists());
        assert!(collect(&root).unwrap().is_none(), "collected twice");
        assert!(line(&record).starts_with("kdrill drill 20261207T124400Z-3f2a: FAIL: no dump"));
    }
}
