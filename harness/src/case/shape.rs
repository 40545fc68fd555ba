//! Guest shapes, a service every image kind gets: the first boot up to "ready, waiting for the
//! case" is the same for every case that shares kernel, memory, vCPUs, devices, command line and
//! image. It is booted once, checked, timed, and saved (`vm::snapshot`) under
//! `<out>/shapes/<key>/` with its evidence; each such case then starts a QEMU from that state with
//! disks of its own, hands the guest its case over the status channel (`restore`), and still
//! crashes and captures for real.
//!
//! What differs between image kinds is a [`ShapeBoot`]: what else names the machine, its QEMU
//! arguments (the minimal image's dump disk; the Debian image's root overlay, kept with the
//! state, and case disk), how far its boot goes before it waits (`kexec -p` loaded; kdump-tools
//! ready to kdump), and which of its evidence is kept.
//!
//! The key is a hash of everything that makes the machine: QEMU's version, the command line
//! without its per-run files and sockets, and the image kind's own words (the initramfs's bytes,
//! the image's disk). A shape is built under a file lock, so parallel cases share one; shapes
//! unused for a week are removed when another is built.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::case::budget;
use crate::case::error::{CaseError, SetupContext};
use crate::case::verdict::CaseResult;
use crate::host::lock::FileLock;
use crate::host::process;
use crate::vm::accel::Accel;
use crate::vm::control::Control;
use crate::vm::qemu::{self, Guest, GuestConfig};
use crate::vm::qmp::Qmp;
use crate::vm::snapshot;
use crate::vm::watch::{Watch, WatchError};

/// What a shape's boot recorded, kept as `shape.json` beside its state and copied into the
/// `result.json` of every case restored from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShapeRecord {
    pub key: String,
    /// When it was booted and saved (seconds since the epoch).
    pub created: f64,
    /// QEMU start → the first boot's init (host clock).
    pub boot: f64,
    /// The kernel's own uptime when its init started (guest clock).
    pub guest_boot: f64,
    /// `kexec -p` (guest clock; the minimal image).
    pub kexec: Option<f64>,
    /// QEMU start → the guest ready and waiting for its case (host clock; an image whose own
    /// kdump service loads the capture kernel at boot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<f64>,
    /// Saving the state (host clock).
    pub save: f64,
    pub state_bytes: u64,
    /// The shape's folder: its state, serial and status logs, QEMU command line.
    pub evidence: String,
}

/// A saved shape, ready to restore.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Its folder: the state, the record, the boot's evidence and files kept with the state.
    pub dir: PathBuf,
    pub state: PathBuf,
    pub record: ShapeRecord,
    /// Built by this case (its boot is in this case's time) rather than found.
    pub built_now: bool,
}

/// What a shape is made from.
pub struct ShapeInputs<'a> {
    pub qemu: &'a Path,
    /// The case's guest: the shape is the same machine with files of its own.
    pub config: &'a GuestConfig,
    /// What the image kind adds: its key words, disks, boot and evidence.
    pub kind: &'a dyn ShapeBoot,
    /// `<out>`: shapes live in `<out>/shapes/`.
    pub out_dir: &'a Path,
    pub scale: f64,
    pub echo: bool,
}

/// The boot times a shape's record keeps.
#[derive(Debug, Clone, Copy, Default)]
pub struct BootTimes {
    /// QEMU start → the first boot's first event (host clock).
    pub boot: f64,
    /// The kernel's uptime at that event (guest clock).
    pub guest_boot: f64,
    pub kexec: Option<f64>,
    pub ready: Option<f64>,
}

/// One image kind's part of a shape.
pub trait ShapeBoot {
    /// Feeds what names this kind's machine beyond QEMU's version and the config's machine line.
    fn key_words(&self, hasher: &mut Sha256) -> Result<(), String>;
    /// The shape's QEMU arguments: `config` (its logs in the shape's folder) plus the kind's
    /// disks and devices, made in `dir` (kept with the state) or `scratch` (dropped).
    fn arguments(
        &self,
        config: &GuestConfig,
        dir: &Path,
        scratch: &Path,
    ) -> Result<Vec<String>, CaseError>;
    /// Follows the boot until the guest waits for its case (`waiting`), checking each step.
    fn until_waiting(&self, watch: &mut Watch, started: Instant) -> Result<BootTimes, CaseError>;
    /// The longest building this kind's shape may take (another run building it is waited for
    /// as long).
    fn build_limit(&self) -> Duration;
    /// Keeps the boot's own evidence in `dir` once QEMU is gone.
    fn keep(&self, _dir: &Path, _scratch: &Path) {}
}

const UNUSED_FOR: Duration = Duration::from_secs(7 * 24 * 3600);
const STATE: &str = "state";
const RECORD: &str = "shape.json";

/// The shape of `inputs`, booted and saved now when no run saved it before.
pub fn ensure(inputs: &ShapeInputs, progress: &dyn Fn(&str)) -> Result<Shape, CaseError> {
    let key = key(inputs).setup("guest shape")?;
    let shapes = inputs.out_dir.join("shapes");
    let dir = shapes.join(&key[..16]);
    std::fs::create_dir_all(&shapes).setup("guest shape")?;
    // Another case may be building this shape: wait as long as building it may take.
    let _lock = FileLock::acquire(
        &shapes.join(format!("{}.lock", &key[..16])),
        inputs.kind.build_limit(),
    )
    .setup("guest shape")?;
    let state = dir.join(STATE);
    if let Some(record) = load(&dir).filter(|r| r.key == key && state.is_file()) {
        // Its age says when it was last used; shapes unused for long are pruned.
        let _ = std::fs::File::options()
            .append(true)
            .open(&state)
            .and_then(|f| f.set_modified(SystemTime::now()));
        return Ok(Shape {
            dir,
            state,
            record,
            built_now: false,
        });
    }
    progress("booting the guest shape once, to save it");
    let record = build(inputs, &key, &dir).map_err(|cause| CaseError::Shape {
        dir: dir.display().to_string(),
        cause: Box::new(cause),
    })?;
    prune(&shapes, &key[..16]);
    Ok(Shape {
        dir,
        state,
        record,
        built_now: true,
    })
}

fn load(dir: &Path) -> Option<ShapeRecord> {
    serde_json::from_slice(&std::fs::read(dir.join(RECORD)).ok()?).ok()
}

/// QEMU's own version line, asked once per process.
fn qemu_version(qemu: &Path) -> Result<String, String> {
    static VERSION: OnceLock<Result<String, String>> = OnceLock::new();
    VERSION
        .get_or_init(|| {
            let out = process::run(Command::new(qemu).arg("--version"), Duration::from_secs(30))
                .map_err(|e| e.to_string())?;
            Ok(String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string())
        })
        .clone()
}

/// The version line of the QEMU kdrill runs (for calibration files and benchmarks).
pub fn qemu_identity() -> Result<String, String> {
    let qemu = crate::host::tools::require("qemu-system-x86_64").map_err(|e| e.to_string())?;
    qemu_version(&qemu)
}

/// The hash naming the machine of `inputs` (see the module's doc).
fn key(inputs: &ShapeInputs) -> Result<String, String> {
    let mut hasher = Sha256::new();
    hasher.update(b"kdrill-shape/1\n");
    hasher.update(qemu_version(inputs.qemu)?.as_bytes());
    let machine = GuestConfig {
        initrd: None,
        ..inputs.config.clone()
    };
    for arg in qemu::machine_line(&machine) {
        hasher.update(arg.as_bytes());
        hasher.update(b"\0");
    }
    inputs.kind.key_words(&mut hasher)?;
    if let Some(initrd) = &inputs.config.initrd {
        let bytes =
            std::fs::read(initrd).map_err(|e| format!("cannot read {}: {e}", initrd.display()))?;
        hasher.update(Sha256::digest(&bytes));
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Boots the shape's guest to its case wait, checks each step, saves it, and writes its record.
fn build(inputs: &ShapeInputs, key: &str, dir: &Path) -> Result<ShapeRecord, CaseError> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).setup("guest shape")?;
    let scratch = tempfile::Builder::new()
        .prefix("kdrill-shape-")
        .tempdir()
        .setup("guest shape")?;
    let config = GuestConfig {
        serial_log: dir.join("serial.log"),
        console_socket: Some(scratch.path().join("console.sock")),
        status_log: Some(dir.join("status.log")),
        status_socket: None,
        qmp_socket: Some(scratch.path().join("qmp.sock")),
        incoming: None,
        ..inputs.config.clone()
    };
    let args = inputs.kind.arguments(&config, dir, scratch.path())?;
    std::fs::write(
        dir.join("qemu-cmdline.txt"),
        qemu::shell_line(inputs.qemu, &args) + "\n",
    )
    .setup("guest shape")?;
    let started = Instant::now();
    let stderr = dir.join("qemu-stderr.log");
    let guest = Guest::spawn(inputs.qemu, &args, &stderr).setup("QEMU")?;
    let mut watch = Watch::new(
        guest,
        &dir.join("status.log"),
        &config.serial_log,
        &stderr,
        inputs.echo,
        inputs.scale,
    );
    let qmp_err = |e: crate::vm::qmp::QmpError| CaseError::Qmp {
        during: "QMP",
        detail: e.to_string(),
    };
    let mut qmp = Qmp::connect(
        config
            .qmp_socket
            .as_deref()
            .unwrap_or(Path::new("/nonexistent")),
        watch.scaled(budget::QMP_CONNECT),
        watch.scaled(budget::QMP_REPLY),
    )
    .map_err(qmp_err)?;
    let times = inputs.kind.until_waiting(&mut watch, started)?;
    let saving = Instant::now();
    let state_bytes = snapshot::save(&mut qmp, &dir.join(STATE), watch.scaled(budget::SHAPE_SAVE))
        .map_err(|e| CaseError::Restore(format!("saving the shape: {e}")))?;
    let save = saving.elapsed().as_secs_f64();
    watch.guest().kill().map_err(CaseError::Teardown)?;
    inputs.kind.keep(dir, scratch.path());
    let record = ShapeRecord {
        key: key.to_string(),
        created: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0),
        boot: times.boot,
        guest_boot: times.guest_boot,
        kexec: times.kexec,
        ready: times.ready,
        save,
        state_bytes,
        evidence: dir.display().to_string(),
    };
    let json = serde_json::to_vec_pretty(&record).setup("guest shape")?;
    std::fs::write(dir.join(RECORD), json).setup("guest shape")?;
    Ok(record)
}

impl Shape {
    /// Points `config` at this shape (QEMU starts from its state, with a status socket in
    /// `scratch` for handing the guest its case) and records it in `result`: `boot`, the shape's
    /// record, and the shape's boot and save when this case built it.
    pub fn restore_into(&self, config: &mut GuestConfig, scratch: &Path, result: &mut CaseResult) {
        if self.built_now {
            let booted = self.record.ready.unwrap_or(self.record.boot);
            result.phases.shape = Some(booted + self.record.save);
        }
        result.boot = Some(format!("restored from {}", &self.record.key[..16]));
        result.shape = Some(self.record.clone());
        config.status_socket = Some(scratch.join("status.sock"));
        config.incoming = Some(self.state.clone());
    }
}

/// A guest restored from its shape, running its case.
pub struct Restored {
    pub qmp: Qmp,
    /// The status channel's socket: kept open while the guest runs.
    pub control: Control,
    pub accel: Accel,
    /// QEMU start → the restored guest running again.
    pub running: Duration,
    /// When the guest acknowledged its case.
    pub case_at: Instant,
}

/// Lets a guest started from its shape (`config.incoming`) run on, and hands it the case's
/// settings over the status channel until it acknowledges them (it asks each second); returns
/// when it did. `started`: when its QEMU was started.
pub fn restore(
    watch: &mut Watch,
    config: &GuestConfig,
    settings: &str,
    started: Instant,
    progress: &dyn Fn(&str),
) -> Result<Restored, CaseError> {
    progress("restoring the saved shape");
    let socket = config.qmp_socket.as_deref().ok_or(CaseError::Qmp {
        during: "QMP",
        detail: "the guest has no QMP socket".into(),
    })?;
    let mut qmp = Qmp::connect(
        socket,
        watch.scaled(budget::QMP_CONNECT),
        watch.scaled(budget::QMP_REPLY),
    )
    .map_err(|e| CaseError::Restore(e.to_string()))?;
    snapshot::resume(&mut qmp, watch.scaled(budget::RESTORE))
        .map_err(|e| CaseError::Restore(e.to_string()))?;
    // Unknown when QMP does not say: TCG, which runs everywhere.
    let accel = crate::vm::accel::running(&mut qmp).unwrap_or(Accel::Tcg);
    let running = started.elapsed();
    let status = config.status_socket.as_deref().ok_or(CaseError::Restore(
        "the restored guest has no status socket".into(),
    ))?;
    let mut control =
        Control::connect(status, watch.scaled(budget::QMP_CONNECT)).map_err(CaseError::Restore)?;
    let line = format!("case {}", base64(settings.as_bytes()));
    progress("handing the restored guest its case");
    for attempt in 1..=budget::CASE_TRIES {
        control.send(&line).map_err(CaseError::Restore)?;
        match watch.until(budget::CASE) {
            Ok((case_at, _)) => {
                return Ok(Restored {
                    qmp,
                    control,
                    accel,
                    running,
                    case_at,
                })
            }
            Err(WatchError::Timeout { .. }) if attempt < budget::CASE_TRIES => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(CaseError::Restore(
        "the restored guest never took its case's settings".into(),
    ))
}

/// Standard base64 (what busybox's and coreutils' `base64 -d` read), for one line of the status
/// channel.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Removes the shapes under `shapes` other than `keep` whose state was not used for a week
/// (and failed ones a week old).
fn prune(shapes: &Path, keep: &str) {
    let Ok(entries) = std::fs::read_dir(shapes) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() || entry.file_name() == keep {
            continue;
        }
        // A shape's age is its state's; a shape that failed to build has only its folder.
        let unused = std::fs::metadata(path.join(STATE))
            .or_else(|_| std::fs::metadata(&path))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > UNUSED_FOR);
        if unused {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_as_busybox_reads_it() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            (
                "KDRILL_TRIGGER='host'\n",
                "S0RSSUxMX1RSSUdHRVI9J2hvc3QnCg==",
            ),
        ] {
            assert_eq!(super::base64(plain.as_bytes()), encoded, "{plain:?}");
        }
    }
}
