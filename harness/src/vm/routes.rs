//! The host's side of a crash route: what the operator, the keyboard, the serial line, the
//! management board or the hypervisor does to the guest, through QMP and the console socket.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::spec::scenario::{Trigger, MAX_HANG};
use crate::vm::qmp::Qmp;
use crate::vm::watch::{self, WatchError};

/// The QEMU chardev id of the guest's console (ttyS0), see `qemu::command_line`.
pub const CONSOLE_CHARDEV: &str = "console";

/// The host's side of a crash route that could not be performed: what failed, in words.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RouteError(pub String);

/// A host-side trigger that was performed.
#[derive(Debug)]
pub struct Pressed {
    /// When the crash was caused.
    pub at: Instant,
    /// The console connection a serial route opened; kept open (and drained) until dropped.
    pub console: Option<UnixStream>,
}

/// The host crashes the guest by `trigger`, once the guest is up and ready to be crashed. For
/// `hang-nmi` it first waits for the guest to hang a CPU (`hanging`, the caller's own wait for
/// the `hanging` event), keeps it hung for `hang_seconds` (at most [`MAX_HANG`]), as a system
/// stays hung in the field, then presses. `progress` is told when the host crashes the guest.
pub fn crash_from_host<E>(
    trigger: Trigger,
    hang_seconds: u32,
    qmp: &mut Qmp,
    console_socket: Option<&Path>,
    progress: &dyn Fn(&str),
    hanging: impl FnOnce() -> Result<(), E>,
) -> Result<Pressed, E>
where
    E: From<WatchError> + From<RouteError>,
{
    if trigger == Trigger::HangThenNmi {
        hanging()?;
        watch::hold(Duration::from_secs(u64::from(hang_seconds)).min(MAX_HANG))?;
    }
    progress("crashing from the host");
    let socket = console_socket.unwrap_or(Path::new("/nonexistent"));
    Ok(press(trigger, qmp, socket)?)
}

/// Performs a host-side trigger. Guest-side triggers do nothing here.
pub fn press(
    trigger: Trigger,
    qmp: &mut Qmp,
    console_socket: &Path,
) -> Result<Pressed, RouteError> {
    let qmp_err = |what: &str| {
        let what = what.to_string();
        move |e: crate::vm::qmp::QmpError| RouteError(format!("{what}: {e}"))
    };
    match trigger {
        Trigger::SysrqSerial => {
            // The console socket must be read, or QEMU stalls once its buffer is full.
            let mut console = UnixStream::connect(console_socket).map_err(|e| {
                RouteError(format!(
                    "cannot connect to the console socket {}: {e}",
                    console_socket.display()
                ))
            })?;
            let mut drain = console
                .try_clone()
                .map_err(|e| RouteError(format!("console socket: {e}")))?;
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
                .map_err(|e| RouteError(format!("cannot write `c` to the console: {e}")))?;
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
        Trigger::Sysrq
        | Trigger::Crasher
        | Trigger::Watchdog
        | Trigger::VmDump
        | Trigger::Drill => Ok(Pressed {
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
pub fn dump_guest_memory(qmp: &mut Qmp, format: &str, out: &Path) -> Result<(), RouteError> {
    let args =
        json!({ "paging": false, "protocol": format!("file:{}", out.display()), "format": format });
    qmp.execute("dump-guest-memory", Some(args))
        .map_err(|e| RouteError(format!("dump-guest-memory ({format}): {e}")))?;
    Ok(())
}

/// The formats this QEMU's `dump-guest-memory` offers (kdump-lzo and kdump-snappy depend on how
/// QEMU was built).
pub fn dump_formats(qmp: &mut Qmp) -> Result<Vec<String>, RouteError> {
    let caps = qmp
        .execute("query-dump-guest-memory-capability", None)
        .map_err(|e| RouteError(format!("QMP: {e}")))?;
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

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::io::{BufRead, BufReader};
    use std::os::unix::net::UnixListener;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A QMP server that answers every command, failing `fail` ones, and records their names.
    fn fake_qmp(dir: &Path, fail: &'static str) -> (Qmp, Arc<Mutex<Vec<String>>>) {
        let socket = dir.join("qmp.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut writer = stream.try_clone().unwrap();
            writeln!(writer, r#"{{"QMP": {{}}}}"#).unwrap();
            for line in BufReader::new(stream).lines() {
                let request: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
                let command = request["execute"].as_str().unwrap().to_string();
                let answer = if command == fail {
                    r#"{"error": {"desc": "no such device"}}"#
                } else {
                    r#"{"return": {}}"#
                };
                log.lock().unwrap().push(command);
                writeln!(writer, "{answer}").unwrap();
            }
        });
        let timeout = Duration::from_secs(5);
        (Qmp::connect(&socket, timeout, timeout).unwrap(), seen)
    }

    /// The callers' error: a wait (a stop while holding), the press, or the test's own hang wait.
    #[derive(Debug)]
    enum Failed {
        Wait,
        Route(RouteError),
        NeverHung,
    }
    impl From<WatchError> for Failed {
        fn from(_: WatchError) -> Self {
            Failed::Wait
        }
    }
    impl From<RouteError> for Failed {
        fn from(e: RouteError) -> Self {
            Failed::Route(e)
        }
    }

    #[test]
    fn the_nmi_button_is_pressed_without_waiting_for_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let (mut qmp, seen) = fake_qmp(dir.path(), "");
        let said = RefCell::new(Vec::new());
        let progress = |what: &str| said.borrow_mut().push(what.to_string());
        let pressed = crash_from_host(Trigger::Nmi, 30, &mut qmp, None, &progress, || {
            Err::<(), _>(Failed::NeverHung)
        })
        .unwrap();
        assert!(pressed.console.is_none());
        assert_eq!(*seen.lock().unwrap(), ["qmp_capabilities", "inject-nmi"]);
        assert_eq!(*said.borrow(), ["crashing from the host"]);
    }

    #[test]
    fn a_hang_is_awaited_before_the_press_and_a_guest_that_never_hangs_is_not_pressed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut qmp, seen) = fake_qmp(dir.path(), "");
        let hung = RefCell::new(false);
        let before = Instant::now();
        let pressed = crash_from_host(Trigger::HangThenNmi, 0, &mut qmp, None, &|_| {}, || {
            *hung.borrow_mut() = true;
            Ok::<(), Failed>(())
        })
        .unwrap();
        assert!(*hung.borrow());
        assert!(pressed.at >= before);
        assert_eq!(*seen.lock().unwrap(), ["qmp_capabilities", "inject-nmi"]);

        let err = crash_from_host(Trigger::HangThenNmi, 0, &mut qmp, None, &|_| {}, || {
            Err::<(), _>(Failed::NeverHung)
        })
        .unwrap_err();
        assert!(matches!(err, Failed::NeverHung), "{err:?}");
        assert_eq!(
            seen.lock().unwrap().len(),
            2,
            "pressed although it never hung"
        );
    }

    #[test]
    fn a_press_qemu_refuses_is_a_route_failure_in_words() {
        let dir = tempfile::tempdir().unwrap();
        let (mut qmp, _) = fake_qmp(dir.path(), "inject-nmi");
        let err = crash_from_host(Trigger::Nmi, 0, &mut qmp, None, &|_| {}, || Ok(())).unwrap_err();
        assert!(
            matches!(&err, Failed::Route(RouteError(words)) if words == "NMI button: QMP command `inject-nmi` failed: no such device"),
            "{err:?}"
        );
        let err = crash_from_host(Trigger::SysrqSerial, 0, &mut qmp, None, &|_| {}, || Ok(()))
            .unwrap_err();
        assert!(
            matches!(&err, Failed::Route(RouteError(words)) if words.starts_with("cannot connect to the console socket /nonexistent")),
            "{err:?}"
        );
    }
}
