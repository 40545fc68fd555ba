//! The drill record (`kdrill-drill/1`): what `kdrill drill` writes when it arms
//! (`/var/lib/kdrill/drill/<id>.armed.json`) and after the reboot (`<id>.json`). Read by
//! `kdrill check` (its last-drill line) and by a `drill` case on the host.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where drills keep their state and records.
pub const DRILL_DIR: &str = "/var/lib/kdrill/drill";
/// Present while a drill is armed (it holds the drill's id): the collect unit's condition.
pub const ARMED: &str = "/var/lib/kdrill/drill/armed";
/// The record's schema.
pub const SCHEMA: &str = "kdrill-drill/1";

/// What a drill wrote when it armed, before the crash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Armed {
    /// `20261207T124400Z-3f2a`: the arming time and four hex digits.
    pub id: String,
    /// How the host crashed itself (`sysrq`).
    pub route: String,
    /// The line written to the kernel log just before the crash.
    pub marker: String,
    /// When the drill armed, and when it crashed, in seconds since the epoch.
    pub armed_unix: i64,
    pub crash_unix: Option<i64>,
    pub hostname: Option<String>,
    /// `uname -r` when the drill ran.
    pub kernel_release: String,
    /// The unit that loads the capture kernel (`kdump-tools.service`).
    pub service: String,
    /// The configured local dump folder.
    pub dump_dir: String,
    /// The dump folder's entries before the crash: the drill's dump is a new one.
    pub before: Vec<String>,
    /// Path → `sha256:<hex>` or `absent`: the kdump configuration, capture kernel and initrd.
    pub fingerprints: BTreeMap<String, String>,
    /// `--notify`: run after the collection with the record's path.
    pub notify: Option<String>,
}

/// One judgement of the collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub what: String,
    pub ok: bool,
    pub seen: String,
}

/// Seconds between the drill's steps, where they could be told.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Times {
    /// Crash → the capture kernel created the dump's folder.
    pub crash_to_capture_s: Option<f64>,
    /// The folder created → the dump file's last write.
    pub capture_to_saved_s: Option<f64>,
    /// The dump saved → this boot started.
    pub saved_to_back_s: Option<f64>,
    /// Crash → this boot started.
    pub crash_to_back_s: Option<f64>,
}

/// The whole record, written by `kdrill drill --collect`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub schema: String,
    #[serde(flatten)]
    pub armed: Armed,
    pub collected_unix: i64,
    /// Whether the dump was found, opened and held this drill's crash.
    pub success: bool,
    /// Why not, in one line.
    pub reason: Option<String>,
    /// The dump file found for this drill.
    pub dump: Option<String>,
    pub dump_bytes: Option<u64>,
    pub panic_message: Option<String>,
    pub findings: Vec<Finding>,
    pub times: Times,
}
