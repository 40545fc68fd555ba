//! The host's side of a crash route: what the operator, the keyboard, the serial line, the
//! management board or the hypervisor does to the guest, through QMP and the console socket.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Instant;

use serde_json::json;

use crate::spec::scenario::Trigger;
use crate::vm::qmp::Qmp;

/// The QEMU chardev id of the guest's console (ttyS0), see `qemu::command_line`.
pub const CONSOLE_CHARDEV: &str = "console";

/// A host-side trigger that was performed.
pub struct Pressed {
    /// When the crash was caused.
    pub at: Instant,
    /// The console connection a serial route opened; kept open (and drained) until dropped.
    pub console: Option<UnixStream>,
}

/// Performs a host-side trigger. Guest-side triggers do nothing here.
pub fn press(trigger: Trigger, qmp: &mut Qmp, console_socket: &Path) -> Result<Pressed, String> {
    let qmp_err = |what: &str| {
        let what = what.to_string();
        move |e: crate::vm::qmp::QmpError| format!("{what}: {e}")
    };
    match trigger {
        Trigger::SysrqSerial => {
            // The console socket must be read, or QEMU stalls once its buffer is full.
            let mut console = UnixStream::connect(console_socket).map_err(|e| {
                format!(
                    "cannot connect to the console socket {}: {e}",
                    console_socket.display()
                )
            })?;
            let mut drain = console
                .try_clone()
                .map_err(|e| format!("console socket: {e}"))?;
            std::thread::spawn(move || {
                let mut sink = [0u8; 4096];
                while matches!(drain.read(&mut sink), Ok(n) if n > 0) {}
            });
            // A BREAK arms the serial SysRq; the next character within 5 s is the command.
            qmp.execute("chardev-send-break", Some(json!({ "id": CONSOLE_CHARDEV })))
                .map_err(qmp_err("serial BREAK"))?;
            let at = Instant::now();
            console
                .write_all(b"c")
                .map_err(|e| format!("cannot write `c` to the console: {e}"))?;
            Ok(Pressed {
                at,
                console: Some(console),
            })
        }
        Trigger::SysrqKeyboard => {
            let keys: Vec<_> = ["alt", "sysrq", "c"]
                .iter()
                .map(|k| json!({ "type": "qcode", "data": k }))
                .collect();
            let at = Instant::now();
            qmp.execute("send-key", Some(json!({ "keys": keys })))
                .map_err(qmp_err("Alt+SysRq+C"))?;
            Ok(Pressed { at, console: None })
        }
        Trigger::Nmi | Trigger::HangThenNmi => {
            let at = Instant::now();
            qmp.execute("inject-nmi", None)
                .map_err(qmp_err("NMI button"))?;
            Ok(Pressed { at, console: None })
        }
        Trigger::Sysrq | Trigger::Crasher | Trigger::Watchdog | Trigger::VmDump => Ok(Pressed {
            at: Instant::now(),
            console: None,
        }),
    }
}

/// Does the host act to crash the guest (after the guest says `ready` or `hanging`)?
pub fn host_presses(trigger: Trigger) -> bool {
    matches!(
        trigger,
        Trigger::SysrqSerial | Trigger::SysrqKeyboard | Trigger::Nmi | Trigger::HangThenNmi
    )
}

/// Dumps the running guest's memory into `out` (QMP `dump-guest-memory`, paging off, as
/// `virsh dump` does) in `format`: `elf`, `kdump-zlib`, `kdump-lzo` or `kdump-snappy`.
pub fn dump_guest_memory(qmp: &mut Qmp, format: &str, out: &Path) -> Result<(), String> {
    let args =
        json!({ "paging": false, "protocol": format!("file:{}", out.display()), "format": format });
    qmp.execute("dump-guest-memory", Some(args))
        .map_err(|e| format!("dump-guest-memory ({format}): {e}"))?;
    Ok(())
}

/// The formats this QEMU's `dump-guest-memory` offers (kdump-lzo and kdump-snappy depend on how
/// QEMU was built).
pub fn dump_formats(qmp: &mut Qmp) -> Result<Vec<String>, String> {
    let caps = qmp
        .execute("query-dump-guest-memory-capability", None)
        .map_err(|e| format!("QMP: {e}"))?;
    Ok(caps
        .get("formats")
        .and_then(|f| f.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default())
}
