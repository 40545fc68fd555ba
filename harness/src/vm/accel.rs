//! Choosing the accelerator: KVM only when a probe guest really runs under it, else TCG.
//!
//! `/dev/kvm` can exist and still hang a guest (nested virtualisation off): the probe boots the
//! kernel under KVM with a short deadline and watches for its banner on the serial console.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::host::deadline::wait_until;
use crate::vm::qemu::{self, Guest, GuestConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn qemu_name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// How long a KVM guest gets to print its banner; a working KVM needs well under a second.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(8);

#[derive(Debug, Serialize, Deserialize)]
struct ProbeRecord {
    boot_id: String,
    accel: Accel,
    reason: String,
}

/// The accelerator to use and why. `KDRILL_ACCEL=tcg|kvm` forces one; otherwise the probe result is
/// cached per host boot in `cache/accel.json` (every test process would otherwise pay the probe).
pub fn choose(qemu: &Path, kernel: &Path, cache: &Path, scratch: &Path) -> (Accel, String) {
    match std::env::var("KDRILL_ACCEL").as_deref() {
        Ok("tcg") => return (Accel::Tcg, "KDRILL_ACCEL=tcg".into()),
        Ok("kvm") => return (Accel::Kvm, "KDRILL_ACCEL=kvm".into()),
        _ => {}
    }
    if std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        return (Accel::Tcg, "/dev/kvm cannot be opened".into());
    }
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap_or_default()
        .trim()
        .to_string();
    let record_path = cache.join("accel.json");
    if let Some(record) = std::fs::read(&record_path)
        .ok()
        .and_then(|b| serde_json::from_slice::<ProbeRecord>(&b).ok())
    {
        if record.boot_id == boot_id && !boot_id.is_empty() {
            return (record.accel, format!("{} (cached probe)", record.reason));
        }
    }
    let (accel, reason) = probe(qemu, kernel, scratch);
    if crate::host::interrupt::interrupted().is_some() {
        // A probe cut short proves nothing: do not remember it.
        return (accel, reason);
    }
    let record = ProbeRecord {
        boot_id,
        accel,
        reason: reason.clone(),
    };
    if std::fs::create_dir_all(cache).is_ok() {
        let _ = std::fs::write(
            &record_path,
            serde_json::to_vec(&record).unwrap_or_default(),
        );
    }
    (accel, reason)
}

fn probe(qemu: &Path, kernel: &Path, scratch: &Path) -> (Accel, String) {
    let serial = scratch.join("kvm-probe-serial.log");
    let config = GuestConfig {
        accel: Accel::Kvm,
        memory_mib: 256,
        cpus: 1,
        kernel: kernel.into(),
        initrd: None,
        append: "console=ttyS0 panic=-1".into(),
        disk: None,
        serial_log: serial.clone(),
        console_socket: None,
        status_log: None,
        status_socket: None,
        qmp_socket: None,
        incoming: None,
    };
    let args = qemu::command_line(&config);
    let mut guest = match Guest::spawn(qemu, &args, &scratch.join("kvm-probe-stderr.log")) {
        Ok(guest) => guest,
        Err(err) => return (Accel::Tcg, format!("KVM probe could not start QEMU: {err}")),
    };
    // A slow machine (KDRILL_TIMEOUT_SCALE) gets a longer probe, as every other wait does.
    let limit = crate::host::deadline::scaled(PROBE_TIMEOUT);
    let booted = wait_until(limit, || {
        if crate::host::interrupt::interrupted().is_some() {
            return Some(false);
        }
        let text = std::fs::read_to_string(&serial).unwrap_or_default();
        if text.contains("Linux version") {
            return Some(true);
        }
        guest.try_exit().map(|_| false)
    });
    let _ = guest.kill();
    match booted {
        Some(true) => (Accel::Kvm, "KVM probe guest booted".into()),
        Some(false) => (Accel::Tcg, "QEMU refused KVM; using TCG".into()),
        None => (
            Accel::Tcg,
            format!(
                "KVM probe guest printed nothing in {}s (nested virtualisation off?); using TCG",
                limit.as_secs()
            ),
        ),
    }
}

/// The accelerator a running QEMU really uses (QMP `query-kvm`).
pub fn running(qmp: &mut crate::vm::qmp::Qmp) -> Result<Accel, crate::vm::qmp::QmpError> {
    let kvm = qmp.execute("query-kvm", None)?;
    Ok(match kvm.get("enabled").and_then(|v| v.as_bool()) {
        Some(true) => Accel::Kvm,
        _ => Accel::Tcg,
    })
}
