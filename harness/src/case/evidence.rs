//! A case's evidence folder: one per attempt, never reused, so a retry, a soak run or a
//! calibration probe keeps what every earlier attempt left. `runs/<kernel>/<scenario>/<attempt>/`,
//! with `latest` pointing at the newest; `result.json` written first as "interrupted" (so a
//! SIGKILLed run still says what happened) and rewritten with the verdict at the end.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::case::verdict::{CaseResult, Verdict};
use crate::host::clock::Civil;

/// The name of the link to the newest attempt of a case.
pub const LATEST: &str = "latest";

/// Dumps above this size are removed after a PASS: an unfiltered 1 GiB ELF dump per run would fill
/// disks, and the check already read everything it needed. A FAIL keeps every dump as evidence.
const KEEP_DUMP_BYTES: u64 = 256 << 20;

/// One attempt's folder.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub dir: PathBuf,
    /// The folder's name: `<UTC date>T<time>Z-a<attempt>[-<n>]`, sortable by time.
    pub id: String,
}

impl Attempt {
    /// Creates a new attempt folder under `case_dir` and points `latest` at it. `attempt` is the
    /// runner's try number (nextest's `NEXTEST_ATTEMPT`, else 1).
    pub fn create(case_dir: &Path, attempt: u32, now: SystemTime) -> std::io::Result<Attempt> {
        std::fs::create_dir_all(case_dir)?;
        let stem = format!("{}-a{attempt}", utc_stamp(now));
        // Two attempts in the same second (a soak of failing cases) get a counter.
        for n in 1.. {
            let id = if n == 1 {
                stem.clone()
            } else {
                format!("{stem}-{n}")
            };
            let dir = case_dir.join(&id);
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    point_latest(case_dir, &id)?;
                    return Ok(Attempt { dir, id });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        unreachable!("the counter is unbounded")
    }

    /// Writes `result.json`; a failure to write becomes a reason (and a FAIL) in `result`.
    pub fn write(&self, result: &mut CaseResult) {
        let path = self.dir.join("result.json");
        let json = serde_json::to_string_pretty(&*result).unwrap_or_default();
        // Flushed to disk before it replaces the old one: a host that loses power keeps a whole
        // result, old or new.
        if let Err(err) = crate::host::atomic::write(&path, (json + "\n").as_bytes()) {
            let cause = std::error::Error::source(&err)
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            result.reasons.push(format!("{err}{cause}"));
            if result.verdict == Verdict::Pass {
                result.verdict = Verdict::Fail;
            }
        }
    }
}

/// `latest` → `id`, replaced atomically (a symlink renamed over the old one).
fn point_latest(case_dir: &Path, id: &str) -> std::io::Result<()> {
    let temp = case_dir.join(format!(".{LATEST}.{}", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    std::os::unix::fs::symlink(id, &temp)?;
    std::fs::rename(&temp, case_dir.join(LATEST))
}

/// The attempt folders of a case, oldest first (by name, which sorts by time).
pub fn attempts(case_dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(case_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| e.file_name().to_str().is_some_and(|n| !n.starts_with('.')))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs
}

/// `20261202T002506Z` for a time stamp (UTC).
pub fn utc_stamp(at: SystemTime) -> String {
    Civil::from_system(at).stamp()
}

/// After a PASS, removes dumps over [`KEEP_DUMP_BYTES`] and says so in the notes (unless
/// `KDRILL_KEEP_DUMPS` is set: `cargo xtask deep` opens a `vm-dump` ELF with gdb).
pub fn drop_big_dumps(dir: &Path, result: &mut CaseResult) {
    if std::env::var_os("KDRILL_KEEP_DUMPS").is_some() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
        if name.starts_with("vmcore")
            && size > KEEP_DUMP_BYTES
            && std::fs::remove_file(entry.path()).is_ok()
        {
            result.notes.push(format!(
                "{name} ({} MB) removed after the PASS to save disk",
                size / 1_000_000
            ));
        }
    }
}

pub use crate::host::paths::restrict;

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn stamps_are_utc_and_sortable() {
        let at = UNIX_EPOCH + Duration::from_secs(1_796_171_106); // 2026-12-02 00:25:06 UTC
        assert_eq!(utc_stamp(at), "20261202T002506Z");
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101T000000Z");
        // A leap day.
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(utc_stamp(leap), "20000229T000000Z");
    }

    #[test]
    fn every_attempt_keeps_its_own_folder_and_latest_follows() {
        let dir = tempfile::tempdir().unwrap();
        let case = dir.path().join("runs/k/s");
        let now = UNIX_EPOCH + Duration::from_secs(1_796_171_106);
        let first = Attempt::create(&case, 1, now).unwrap();
        std::fs::write(first.dir.join("serial.log"), "first").unwrap();
        let second = Attempt::create(&case, 2, now).unwrap();
        let third = Attempt::create(&case, 2, now).unwrap();
        assert_eq!(first.id, "20261202T002506Z-a1");
        assert_eq!(second.id, "20261202T002506Z-a2");
        assert_eq!(third.id, "20261202T002506Z-a2-2");
        // The first attempt's evidence is untouched.
        assert_eq!(
            std::fs::read_to_string(first.dir.join("serial.log")).unwrap(),
            "first"
        );
        assert_eq!(
            std::fs::read_link(case.join(LATEST)).unwrap(),
            Path::new(&third.id)
        );
        assert_eq!(attempts(&case), [first.dir, second.dir, third.dir]);
    }

    #[test]
    fn result_json_is_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let attempt = Attempt::create(dir.path(), 1, SystemTime::now()).unwrap();
        let mut result = CaseResult::new("k", "s", &attempt.dir);
        attempt.write(&mut result);
        let back: CaseResult =
            serde_json::from_slice(&std::fs::read(attempt.dir.join("result.json")).unwrap())
                .unwrap();
        assert_eq!(back.kernel, "k");
        let left: Vec<_> = std::fs::read_dir(&attempt.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["result.json"], "no temporary file is left");

        // A result that cannot be written is a FAIL that says which file and why.
        std::fs::remove_dir_all(&attempt.dir).unwrap();
        let mut result = CaseResult::new("k", "s", &attempt.dir);
        result.verdict = Verdict::Pass;
        attempt.write(&mut result);
        assert_eq!(result.verdict, Verdict::Fail);
        let why = result.reasons.last().unwrap();
        assert!(
            why.contains("result.json") && why.contains("No such file"),
            "{why}"
        );
    }
}
