//! The drill's judgements, pure: which new folder of the dump folder holds the drill's dump, what
//! the dump's log and backtrace must show for the armed drill, and the step times.

use crate::drill::route::{self, Route};
use crate::dumpcheck::expect;
use crate::spec::drill::{Armed, Finding, Times};

/// A dump file the kdump services write, by name: kdump-tools `dump.<stamp>`, kdump-utils and
/// kdumptool `vmcore` (`vmcore.flat` for a flattened one).
pub fn is_dump(name: &str) -> bool {
    name.starts_with("dump.") || name == "vmcore" || name == "vmcore.flat"
}

/// A dump a writer left unfinished: kdump-tools `dump-incomplete`, kdump-utils `vmcore-incomplete`.
pub fn is_incomplete(name: &str) -> bool {
    name.ends_with("-incomplete")
}

/// What the new folders of the dump folder hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    Dump { folder: String, file: String },
    Incomplete { folder: String, file: String },
    Nothing { new: Vec<String> },
}

/// The drill's dump among the folders that were not there when it armed (`before`); `listing`
/// gives each new folder's file names. The newest folder (names sort by time) with a dump wins.
pub fn find(before: &[String], listing: &[(String, Vec<String>)]) -> Found {
    let mut new: Vec<&(String, Vec<String>)> = listing
        .iter()
        .filter(|(folder, _)| !before.contains(folder))
        .collect();
    new.sort_by(|a, b| b.0.cmp(&a.0));
    for (folder, files) in &new {
        if let Some(file) = files.iter().find(|f| is_dump(f)) {
            return Found::Dump {
                folder: folder.clone(),
                file: file.clone(),
            };
        }
    }
    for (folder, files) in &new {
        if let Some(file) = files.iter().find(|f| is_incomplete(f)) {
            return Found::Incomplete {
                folder: folder.clone(),
                file: file.clone(),
            };
        }
    }
    Found::Nothing {
        new: new.iter().map(|(f, _)| f.clone()).collect(),
    }
}

/// The judgements of a dump's log and backtrace for `armed`, in the record's order.
pub fn judge(
    armed: &Armed,
    route: Route,
    log: &str,
    frames: Result<&[String], &str>,
) -> Vec<Finding> {
    let marker = log.lines().find(|l| l.contains(&armed.marker));
    let panic = expect::panic_message(log);
    let mut findings = vec![
        Finding {
            what: "the drill's marker is in the dump's log".into(),
            ok: marker.is_some(),
            seen: marker.map_or_else(
                || format!("no line holds {:?}", armed.marker),
                str::to_string,
            ),
        },
        Finding {
            what: format!("the panic is the drill's ({})", route.panic()),
            ok: panic.as_deref().is_some_and(|p| p.contains(route.panic())),
            seen: panic.unwrap_or_else(|| "no panic message in the log".into()),
        },
    ];
    findings.push(match frames {
        Ok(frames) => Finding {
            what: format!(
                "the crashed CPU's backtrace holds the {} frames",
                route.word()
            ),
            ok: route::frames_in_order(frames, route.frames()).is_ok(),
            seen: route::frames_in_order(frames, route.frames())
                .err()
                .unwrap_or_else(|| {
                    frames
                        .iter()
                        .take(8)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(" < ")
                }),
        },
        Err(why) => Finding {
            what: format!(
                "the crashed CPU's backtrace holds the {} frames",
                route.word()
            ),
            ok: false,
            seen: format!("cannot read the backtrace: {why}"),
        },
    });
    findings
}

/// The steps' times from the crash time, the folder's creation, the dump's last write and this
/// boot's start.
pub fn times(
    crash: Option<i64>,
    folder_made: Option<f64>,
    saved: Option<f64>,
    booted: Option<f64>,
) -> Times {
    let crash = crash.map(|c| c as f64);
    let span = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b >= a => Some(((b - a) * 10.0).round() / 10.0),
        _ => None,
    };
    Times {
        crash_to_capture_s: span(crash, folder_made),
        capture_to_saved_s: span(folder_made, saved),
        saved_to_back_s: span(saved, booted),
        crash_to_back_s: span(crash, booted),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An armed drill as the tests of the drill's modules use it.
    pub(crate) fn armed() -> Armed {
        Armed {
            id: "20261207T124400Z-3f2a".into(),
            route: "sysrq".into(),
            marker: "kdrill drill 20261207T124400Z-3f2a: crashing this host on purpose by sysrq"
                .into(),
            armed_unix: 100,
            crash_unix: Some(100),
            hostname: None,
            kernel_release: "6.1.0".into(),
            service: "kdump-tools.service".into(),
            dump_dir: "/var/crash".into(),
            before: vec!["202612010000".into(), "kexec_cmd".into()],
            fingerprints: Default::default(),
            notify: None,
        }
    }

    #[test]
    fn the_drills_dump_is_in_a_new_folder() {
        let listing = vec![
            (
                "202612010000".to_string(),
                vec!["dump.202612010000".to_string()],
            ),
            ("kexec_cmd".to_string(), vec![]),
            (
                "202612071245".to_string(),
                vec!["dmesg.202612071245".into(), "dump.202612071245".into()],
            ),
        ];
        assert_eq!(
            find(&armed().before, &listing),
            Found::Dump {
                folder: "202612071245".into(),
                file: "dump.202612071245".into()
            }
        );
        let cut = vec![(
            "127.0.0.1-2026-12-07-12:45:01".to_string(),
            vec!["vmcore-incomplete".to_string()],
        )];
        assert!(matches!(find(&[], &cut), Found::Incomplete { .. }));
        assert_eq!(
            find(&armed().before, &listing[..2]),
            Found::Nothing { new: vec![] }
        );
    }

    #[test]
    fn a_dump_of_another_crash_does_not_prove_the_drill() {
        let a = armed();
        let frames: Vec<String> = [
            "panic+0x1/0x2",
            "sysrq_handle_crash+0x1/0x2",
            "__handle_sysrq+0x1/0x2",
            "write_sysrq_trigger+0x1/0x2",
        ]
        .map(String::from)
        .to_vec();
        let ours = format!("[   50.1] {}\n[   50.2] sysrq: Trigger a crash\n[   50.2] Kernel panic - not syncing: sysrq triggered crash\n", a.marker);
        assert!(judge(&a, Route::Sysrq, &ours, Ok(&frames))
            .iter()
            .all(|f| f.ok));
        let other = "[   50.2] Kernel panic - not syncing: Oops: Fatal exception\n";
        let found = judge(&a, Route::Sysrq, other, Err("no ORC"));
        assert_eq!(found.iter().filter(|f| !f.ok).count(), 3, "{found:?}");
        assert!(found[2].seen.contains("no ORC"));
    }

    #[test]
    fn times_are_spans_between_the_steps() {
        let t = times(Some(100), Some(110.0), Some(150.5), Some(170.0));
        assert_eq!(
            (
                t.crash_to_capture_s,
                t.capture_to_saved_s,
                t.saved_to_back_s,
                t.crash_to_back_s
            ),
            (Some(10.0), Some(40.5), Some(19.5), Some(70.0))
        );
        // A clock that went backwards gives no figure, not a negative one.
        assert_eq!(
            times(Some(100), Some(90.0), None, None).crash_to_capture_s,
            None
        );
    }
}
