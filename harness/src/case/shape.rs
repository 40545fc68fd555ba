//! Guest shapes: the first boot up to "capture kernel loaded, waiting for the case" is the same
//! for every `fast` case that shares kernel, memory, vCPUs, devices, command line and image.
//! It is booted once, checked (init ran, `kexec -p` loaded, the guest waits), timed, and saved
//! (`vm::snapshot`) under `<out>/shapes/<key>/` with its evidence; each such case then starts a
//! QEMU from that state with its own dump disk, and still crashes and captures for real.
//!
//! The key is a hash of everything that makes the machine: QEMU's version, the command line
//! without its per-run files and sockets, and the bytes of the initramfs (which hold the capture
//! kernel, `/init` and the modules). A shape is built under a file lock, so parallel cases share
//! one; shapes unused for a week are removed when another is built.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::case::budget;
use crate::case::error::{CaseError, SetupContext};
use crate::guest::dumpdisk;
use crate::host::lock::FileLock;
use crate::host::process;
use crate::vm::qemu::{self, Guest, GuestConfig};
use crate::vm::qmp::Qmp;
use crate::vm::snapshot;
use crate::vm::watch::Watch;

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
    /// `kexec -p` (guest clock).
    pub kexec: Option<f64>,
    /// Saving the state (host clock).
    pub save: f64,
    pub state_bytes: u64,
    /// The shape's folder: its state, serial and status logs, QEMU command line.
    pub evidence: String,
}

/// A saved shape, ready to restore.
#[derive(Debug, Clone)]
pub struct Shape {
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
    /// Size of the dump disk, which the shape must have too (the guest saw its capacity).
    pub disk_mib: u64,
    /// `<out>`: shapes live in `<out>/shapes/`.
    pub out_dir: &'a Path,
    pub scale: f64,
    pub echo: bool,
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
    let _lock = FileLock::acquire(&shapes.join(format!("{}.lock", &key[..16])), budget::SHAPE)
        .setup("guest shape")?;
    let state = dir.join(STATE);
    if let Some(record) = load(&dir).filter(|r| r.key == key && state.is_file()) {
        // Its age says when it was last used; shapes unused for long are pruned.
        let _ = std::fs::File::options()
            .append(true)
            .open(&state)
            .and_then(|f| f.set_modified(SystemTime::now()));
        return Ok(Shape {
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
    hasher.update(format!("disk {} MiB\n", inputs.disk_mib).as_bytes());
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
    let disk = scratch.path().join("dump-disk.img");
    dumpdisk::create(&disk, inputs.disk_mib, &[]).setup("guest shape's dump disk")?;
    let config = GuestConfig {
        disk: Some(disk),
        serial_log: dir.join("serial.log"),
        console_socket: Some(scratch.path().join("console.sock")),
        status_log: Some(dir.join("status.log")),
        status_socket: None,
        qmp_socket: Some(scratch.path().join("qmp.sock")),
        incoming: None,
        ..inputs.config.clone()
    };
    let args = qemu::command_line(&config);
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
    let (seen, booted) = watch.until(budget::BOOT)?;
    let (_, loaded) = watch.until(budget::KEXEC)?;
    watch.until(budget::WAITING)?;
    let saving = Instant::now();
    let state_bytes = snapshot::save(&mut qmp, &dir.join(STATE), watch.scaled(budget::SHAPE_SAVE))
        .map_err(|e| CaseError::Restore(format!("saving the shape: {e}")))?;
    let save = saving.elapsed().as_secs_f64();
    watch.guest().kill().map_err(CaseError::Teardown)?;
    let record = ShapeRecord {
        key: key.to_string(),
        created: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0),
        boot: (seen - started).as_secs_f64(),
        guest_boot: booted.uptime,
        kexec: loaded.seconds("secs"),
        save,
        state_bytes,
        evidence: dir.display().to_string(),
    };
    let json = serde_json::to_vec_pretty(&record).setup("guest shape")?;
    std::fs::write(dir.join(RECORD), json).setup("guest shape")?;
    Ok(record)
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
