//! The last drill on record (`kdrill-drill/1` in `/var/lib/kdrill/drill/<id>.json`, the format
//! in `spec::drill`), as `check` reports it: when it ran, its verdict, and whether it still counts. A drill is
//! stale once the running kernel, the capture kernel or initrd, or the kdump configuration changed
//! after it: each is fingerprinted (sha256) when the drill is armed and again when `check` runs.

use std::collections::BTreeMap;

use sha2::Digest as _;

use crate::host::clock::Civil;
use crate::readiness::kdumpconf::{KDUMP_CONF, KDUMP_TOOLS, SYSCONFIG_KDUMP};
use crate::readiness::source::{Problem, Root};
use crate::readiness::{check, Check, Status};
pub use crate::spec::drill::{Armed, Finding, Record, Times, ARMED, DRILL_DIR, SCHEMA};

/// The largest file fingerprinted whole (a capture initrd is tens of MB).
const FINGERPRINT_LIMIT: u64 = 1 << 30;
/// Where each kdump implementation keeps the capture kernel and initrd it loads.
const CAPTURE_FOLDERS: [&str; 1] = ["/var/lib/kdump"];
/// Files of the capture folders that change at every boot, not with the capture path: kdump-tools
/// 1.10's `kdump_mem_estimator` snapshots `/proc/meminfo` early in each boot into
/// `/var/lib/kdump/mem-<release>` (for its "crashkernel suggested size"), so the drill's own
/// reboot rewrites it.
const PER_BOOT: [&str; 1] = ["/var/lib/kdump/mem-"];

/// Whether a change to `path` says the capture path changed (a per-boot snapshot does not).
fn names_the_capture_path(path: &str) -> bool {
    !PER_BOOT.iter().any(|prefix| path.starts_with(prefix))
}

/// The newest drill record under `/var/lib/kdrill/drill/` of the checked root.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LastDrill {
    /// The drill's id (`20261207T124400Z-3f2a`).
    pub id: String,
    /// When its collection finished, in seconds since the epoch.
    pub finished_unix: i64,
    /// Whether the drill passed: its dump was found, opened and held that crash.
    pub success: bool,
    /// Why it no longer counts, if it does not (`the running kernel changed: 6.1.0-40 → 6.12.9`).
    pub stale: Option<String>,
}

/// What `gather` read: the newest record (or why none could be read) and today's fingerprints
/// of the files it names.
#[derive(Debug, Clone, Default)]
pub struct DrillSeen {
    pub record: Option<Result<(String, Record), String>>,
    pub fingerprints: BTreeMap<String, String>,
}

/// The files a drill fingerprints on `root`: the three kdump configuration files and every file
/// of the capture folders and the `/boot` capture initrds of `release`.
pub fn fingerprint_paths(root: &Root, release: &str) -> Vec<String> {
    let mut paths = vec![
        KDUMP_TOOLS.to_string(),
        KDUMP_CONF.to_string(),
        SYSCONFIG_KDUMP.to_string(),
        format!("/boot/initramfs-{release}kdump.img"),
        format!("/boot/initrd-{release}-kdump"),
    ];
    for folder in CAPTURE_FOLDERS {
        if let Ok(names) = root.list(folder) {
            paths.extend(
                names
                    .into_iter()
                    .map(|name| format!("{folder}/{name}"))
                    .filter(|path| names_the_capture_path(path))
                    .filter(|path| root.meta(path).is_ok_and(|m| !m.is_dir)),
            );
        }
    }
    paths.sort();
    paths.dedup();
    paths
}

/// `sha256:<hex>` of each path, `absent` when missing, `unreadable: …` otherwise.
pub fn fingerprints(root: &Root, paths: &[String]) -> BTreeMap<String, String> {
    paths
        .iter()
        .map(|path| {
            let print = match root.bytes(path, FINGERPRINT_LIMIT) {
                Ok(bytes) => format!("sha256:{:x}", sha2::Sha256::digest(&bytes)),
                Err(Problem::Missing) => "absent".to_string(),
                Err(other) => format!("unreadable: {other}"),
            };
            (path.clone(), print)
        })
        .collect()
}

/// Reads the newest record of `root` (by collection time) and today's fingerprints of its files.
pub fn gather(root: &Root) -> DrillSeen {
    let names = match root.list(DRILL_DIR) {
        Ok(names) => names,
        Err(_) => return DrillSeen::default(),
    };
    let mut newest: Option<(String, Record)> = None;
    let mut broken = None;
    for name in names.iter().filter(|n| n.ends_with(".json")) {
        let path = format!("{DRILL_DIR}/{name}");
        match root
            .text(&path)
            .map_err(|e| e.to_string())
            .and_then(|text| {
                serde_json::from_str::<Record>(&text).map_err(|e| {
                    format!(
                        "line {}, column {}: {e} (not a {SCHEMA} record?)",
                        e.line(),
                        e.column()
                    )
                })
            }) {
            Ok(record) => {
                if newest
                    .as_ref()
                    .is_none_or(|(_, n)| n.collected_unix < record.collected_unix)
                {
                    newest = Some((path, record));
                }
            }
            Err(why) => broken = Some(format!("{path}: {why}")),
        }
    }
    let record = match (newest, broken) {
        (Some(found), _) => Some(Ok(found)),
        (None, Some(why)) => Some(Err(why)),
        (None, None) => None,
    };
    let fingerprints = match &record {
        Some(Ok((_, r))) => fingerprints(
            root,
            &r.armed.fingerprints.keys().cloned().collect::<Vec<_>>(),
        ),
        _ => BTreeMap::new(),
    };
    DrillSeen {
        record,
        fingerprints,
    }
}

/// Seconds since the epoch, now (a drill's age is counted from it).
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Why `record` no longer counts on a host running `release` whose files print as `now`.
pub fn stale(
    record: &Record,
    release: Option<&str>,
    now: &BTreeMap<String, String>,
) -> Option<String> {
    if let Some(release) = release {
        if release != record.armed.kernel_release {
            return Some(format!(
                "the running kernel changed since the drill: {} → {release}",
                record.armed.kernel_release
            ));
        }
    }
    let changed: Vec<&str> = record
        .armed
        .fingerprints
        .iter()
        // (a record armed before a file was known to change per boot may still name it)
        .filter(|(path, _)| names_the_capture_path(path))
        .filter(|(path, then)| now.get(*path).is_some_and(|now| now != *then))
        .map(|(path, _)| path.as_str())
        .collect();
    if changed.is_empty() {
        return None;
    }
    Some(format!("changed since the drill: {}", changed.join(", ")))
}

/// The report's summary of the last drill.
pub fn last(seen: &DrillSeen, release: Option<&str>) -> Option<LastDrill> {
    let (_, record) = seen.record.as_ref()?.as_ref().ok()?;
    Some(LastDrill {
        id: record.armed.id.clone(),
        finished_unix: record.collected_unix,
        success: record.success,
        stale: stale(record, release, &seen.fingerprints),
    })
}

const WHY: &str = "only a real crash proves the whole path (capture kernel, dump saved, reboot, the dump opens); a drill that predates a change to the kernel, the capture initrd or the kdump configuration proves the old setup";

/// Check 14: the last drill, its verdict, and whether it still counts.
pub fn check_row(seen: &DrillSeen, release: Option<&str>, now_unix: i64) -> Check {
    let again =
        "run `kdrill drill` in a maintenance window (the host crashes and reboots through kdump)";
    let Some(record) = &seen.record else {
        return check(14, Status::Info, "no drill on record", WHY)
            .details(vec![format!("{DRILL_DIR} holds no drill record; {again}")]);
    };
    let (path, record) = match record {
        Ok(found) => found,
        Err(why) => {
            return check(
                14,
                Status::Skip,
                format!("cannot read a drill record: {why}"),
                WHY,
            )
            .fix(format!("remove or repair the record, then {again}"))
        }
    };
    let when = Civil::from_unix(record.collected_unix).readable();
    let days = (now_unix - record.collected_unix).max(0) / 86_400;
    let ago = format!("{when}, {days} days ago");
    let mut details = vec![format!("record: {path}")];
    if let Some(dump) = &record.dump {
        details.push(format!("dump: {dump}"));
    }
    let stale = stale(record, release, &seen.fingerprints);
    let (status, seen_line, fix) = match (record.success, stale) {
        (true, None) => (
            Status::Pass,
            format!("drill {} passed on {ago}", record.armed.id),
            String::new(),
        ),
        (true, Some(why)) => (
            Status::Warn,
            format!(
                "drill {} passed on {ago}, but no longer counts: {why}",
                record.armed.id
            ),
            again.to_string(),
        ),
        (false, stale) => {
            let reason = record.reason.as_deref().unwrap_or("no reason recorded");
            if let Some(why) = stale {
                details.push(format!("since then {why}"));
            }
            (
                Status::Warn,
                format!("drill {} FAILED on {ago}: {reason}", record.armed.id),
                format!("fix what the drill found, then {again}"),
            )
        }
    };
    check(14, status, seen_line, WHY).fix(fix).details(details)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(success: bool) -> Record {
        Record {
            schema: SCHEMA.to_string(),
            armed: Armed {
                id: "20261207T124400Z-3f2a".into(),
                route: "sysrq".into(),
                marker: "kdrill drill 20261207T124400Z-3f2a".into(),
                armed_unix: 1_796_000_000,
                crash_unix: Some(1_796_000_001),
                hostname: Some("db1".into()),
                kernel_release: "6.12.9-amd64".into(),
                service: "kdump-tools.service".into(),
                dump_dir: "/var/crash".into(),
                before: vec![],
                fingerprints: BTreeMap::from([
                    ("/etc/default/kdump-tools".into(), "sha256:aa".into()),
                    (
                        "/var/lib/kdump/initrd.img-6.12.9-amd64".into(),
                        "sha256:bb".into(),
                    ),
                ]),
                notify: None,
            },
            collected_unix: 1_796_000_100,
            success,
            reason: (!success).then(|| "no dump written for this drill".into()),
            dump: None,
            dump_bytes: None,
            panic_message: None,
            findings: vec![],
            times: Times::default(),
        }
    }

    fn seen(record: Record, now: &[(&str, &str)]) -> DrillSeen {
        DrillSeen {
            record: Some(Ok(("/var/lib/kdrill/drill/x.json".into(), record))),
            fingerprints: now
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        }
    }

    #[test]
    fn a_passed_drill_counts_until_its_kernel_initrd_or_config_changes() {
        let same = [
            ("/etc/default/kdump-tools", "sha256:aa"),
            ("/var/lib/kdump/initrd.img-6.12.9-amd64", "sha256:bb"),
        ];
        let row = check_row(
            &seen(record(true), &same),
            Some("6.12.9-amd64"),
            1_796_000_100 + 3 * 86_400,
        );
        assert_eq!(row.status, Status::Pass, "{row:?}");
        assert!(
            row.seen.contains("passed on") && row.seen.contains("3 days ago"),
            "{}",
            row.seen
        );

        let kernel = check_row(&seen(record(true), &same), Some("6.12.10-amd64"), 0);
        assert_eq!(kernel.status, Status::Warn);
        assert!(
            kernel.seen.contains("6.12.9-amd64 → 6.12.10-amd64"),
            "{}",
            kernel.seen
        );

        let initrd = [
            ("/etc/default/kdump-tools", "sha256:aa"),
            ("/var/lib/kdump/initrd.img-6.12.9-amd64", "sha256:cc"),
        ];
        let row = check_row(&seen(record(true), &initrd), Some("6.12.9-amd64"), 0);
        assert_eq!(row.status, Status::Warn);
        assert!(
            row.seen.contains("/var/lib/kdump/initrd.img-6.12.9-amd64"),
            "{}",
            row.seen
        );
        assert!(row.fix.as_deref().unwrap_or("").contains("kdrill drill"));

        // kdump-tools 1.10 rewrites its early-boot meminfo snapshot at every boot, the drill's
        // own reboot included: a record that names it (armed by an older kdrill) still counts.
        let mut armed_with_snapshot = record(true);
        armed_with_snapshot
            .armed
            .fingerprints
            .insert("/var/lib/kdump/mem-6.12.9-amd64".into(), "sha256:11".into());
        let rebooted = [
            ("/etc/default/kdump-tools", "sha256:aa"),
            ("/var/lib/kdump/initrd.img-6.12.9-amd64", "sha256:bb"),
            ("/var/lib/kdump/mem-6.12.9-amd64", "sha256:22"),
        ];
        let row = check_row(
            &seen(armed_with_snapshot, &rebooted),
            Some("6.12.9-amd64"),
            0,
        );
        assert_eq!(row.status, Status::Pass, "{row:?}");
    }

    #[test]
    fn a_failed_drill_warns_with_its_reason_and_no_drill_is_information() {
        let row = check_row(&seen(record(false), &[]), Some("6.12.9-amd64"), 0);
        assert_eq!(row.status, Status::Warn);
        assert!(
            row.seen.contains("FAILED") && row.seen.contains("no dump written"),
            "{}",
            row.seen
        );
        let none = check_row(&DrillSeen::default(), None, 0);
        assert_eq!(none.status, Status::Info);
        assert_eq!(none.id, "last-drill");
        let last = last(&seen(record(true), &[]), Some("6.12.9-amd64")).unwrap();
        assert!(last.success && last.stale.is_none() && last.finished_unix == 1_796_000_100);
    }

    #[test]
    fn records_are_read_newest_first_and_a_broken_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let drills = dir.path().join("var/lib/kdrill/drill");
        std::fs::create_dir_all(&drills).unwrap();
        let mut old = record(false);
        old.collected_unix -= 1000;
        old.armed.id = "old".into();
        std::fs::write(
            drills.join("old.json"),
            serde_json::to_string(&old).unwrap(),
        )
        .unwrap();
        std::fs::write(
            drills.join("new.json"),
            serde_json::to_string(&record(true)).unwrap(),
        )
        .unwrap();
        let root = Root::new(dir.path());
        let seen = gather(&root);
        let (path, newest) = seen.record.clone().unwrap().unwrap();
        assert!(path.ends_with("new.json") && newest.success);
        assert_eq!(seen.fingerprints["/etc/default/kdump-tools"], "absent");
        // The capture folder's files are fingerprinted, its subfolders are not.
        std::fs::create_dir_all(dir.path().join("var/lib/kdump/initramfs-tools")).unwrap();
        std::fs::write(dir.path().join("var/lib/kdump/initrd.img-6.1.0"), "x").unwrap();
        std::fs::write(dir.path().join("var/lib/kdump/mem-6.1.0"), "MemTotal: 1").unwrap();
        let paths = fingerprint_paths(&root, "6.1.0");
        assert!(
            paths.contains(&"/var/lib/kdump/initrd.img-6.1.0".to_string()),
            "{paths:?}"
        );
        // ... but not the per-boot meminfo snapshot.
        assert!(!paths.iter().any(|p| p.contains("/mem-")), "{paths:?}");
        assert!(
            !paths.iter().any(|p| p.ends_with("initramfs-tools")),
            "{paths:?}"
        );

        std::fs::remove_file(drills.join("new.json")).unwrap();
        std::fs::remove_file(drills.join("old.json")).unwrap();
        std::fs::write(drills.join("bad.json"), "{\"schema\": 1}").unwrap();
        let why = gather(&root).record.unwrap().unwrap_err();
        assert!(why.contains("bad.json") && why.contains("line 1"), "{why}");
    }
}
