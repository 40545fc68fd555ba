//! Spawning QEMU: the command line (a pure function) and the guest process, one process group per
//! guest, killed and reaped on every path.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::host::process::GroupChild;
use crate::vm::accel::Accel;

/// Everything that varies between guests.
#[derive(Debug, Clone)]
pub struct GuestConfig {
    pub accel: Accel,
    pub memory_mib: u32,
    pub cpus: u32,
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub append: String,
    /// Raw disk image attached as virtio-blk (`/dev/vda`); none for a probe.
    pub disk: Option<PathBuf>,
    /// The human console (guest ttyS0): QEMU writes it to this file.
    pub serial_log: PathBuf,
    /// A unix socket on the same console, for sending input (SysRq over serial).
    pub console_socket: Option<PathBuf>,
    /// The status channel (guest ttyS1): QEMU writes it to this file.
    pub status_log: Option<PathBuf>,
    /// A unix socket on the status channel too, for the host's words to the guest (a restored
    /// shape's case settings).
    pub status_socket: Option<PathBuf>,
    /// Start from this saved state instead of booting (`vm::snapshot`).
    pub incoming: Option<PathBuf>,
    /// QMP control socket.
    pub qmp_socket: Option<PathBuf>,
}

/// The QEMU arguments for `config` (without the program name).
pub fn command_line(config: &GuestConfig) -> Vec<String> {
    let path = |p: &Path| p.display().to_string();
    let mut args: Vec<String> = vec![
        "-nodefaults".into(),
        "-no-user-config".into(),
        "-display".into(),
        "none".into(),
        // A reboot means the guest is done (or broken): exit instead of booting again.
        "-no-reboot".into(),
    ];
    args.extend(size(config));
    args.extend([
        "-kernel".into(),
        path(&config.kernel),
        "-append".into(),
        config.append.clone(),
    ]);
    if let Some(initrd) = &config.initrd {
        args.extend(["-initrd".into(), path(initrd)]);
    }
    args.extend(channels(config));
    if let Some(disk) = &config.disk {
        args.extend([
            "-drive".into(),
            format!("file={},format=raw,if=virtio,cache=unsafe", path(disk)),
        ]);
    }
    if let Some(qmp) = &config.qmp_socket {
        args.extend([
            "-qmp".into(),
            format!("unix:{},server=on,wait=off", path(qmp)),
        ]);
    }
    if let Some(state) = &config.incoming {
        args.extend(crate::vm::snapshot::incoming_args(state));
    }
    args
}

/// A guest that boots from its own disk through its firmware (a disk image): `machine` (`pc`
/// for SeaBIOS, `q35` for OVMF), the firmware's flash images (`path`, read-only), `config`'s
/// size and channels; no kernel of kdrill's, and it reboots (its capture reboots it). The disks
/// are the caller's.
pub fn firmware_line(
    config: &GuestConfig,
    machine: &str,
    flash: &[(PathBuf, bool)],
) -> Vec<String> {
    let path = |p: &Path| p.display().to_string().replace(',', ",,");
    let mut args: Vec<String> = vec![
        "-nodefaults".into(),
        "-no-user-config".into(),
        "-display".into(),
        "none".into(),
        "-machine".into(),
        machine.into(),
    ];
    args.extend(size(config));
    for (unit, (file, readonly)) in flash.iter().enumerate() {
        args.extend([
            "-drive".into(),
            format!(
                "if=pflash,format=raw,unit={unit},file={}{}",
                path(file),
                if *readonly { ",readonly=on" } else { "" }
            ),
        ]);
    }
    args.extend(channels(config));
    if let Some(qmp) = &config.qmp_socket {
        args.extend([
            "-qmp".into(),
            format!("unix:{},server=on,wait=off", path(qmp)),
        ]);
    }
    args
}

/// Accelerator, memory and CPUs.
fn size(config: &GuestConfig) -> [String; 6] {
    [
        "-accel".into(),
        config.accel.qemu_name().into(),
        "-m".into(),
        format!("{}M", config.memory_mib),
        "-smp".into(),
        config.cpus.to_string(),
    ]
}

/// ttyS0 (the console) and ttyS1 (the status channel).
fn channels(config: &GuestConfig) -> Vec<String> {
    let path = |p: &Path| p.display().to_string();
    let mut args = Vec::new();
    // ttyS0: the console, logged to a file by QEMU itself, so nothing is lost if kdrill is slow to read.
    let console = match &config.console_socket {
        Some(socket) => {
            format!(
                "socket,id=console,path={},server=on,wait=off,logfile={}",
                path(socket),
                path(&config.serial_log)
            )
        }
        None => format!("file,id=console,path={}", path(&config.serial_log)),
    };
    args.extend([
        "-chardev".into(),
        console,
        "-serial".into(),
        "chardev:console".into(),
    ]);
    // ttyS1: the machine-readable status channel.
    if let Some(status) = &config.status_log {
        let chardev = match &config.status_socket {
            Some(socket) => format!(
                "socket,id=status,path={},server=on,wait=off,logfile={}",
                path(socket),
                path(status)
            ),
            None => format!("file,id=status,path={}", path(status)),
        };
        args.extend(["-chardev".into(), chardev]);
        args.extend(["-serial".into(), "chardev:status".into()]);
    }
    args
}

/// The machine `config` describes, without what differs between two runs of it (its files,
/// sockets and saved state): two configs with the same machine can save and restore each other.
pub fn machine_line(config: &GuestConfig) -> Vec<String> {
    let blank = PathBuf::from("-");
    let machine = GuestConfig {
        disk: config.disk.as_ref().map(|_| blank.clone()),
        serial_log: blank.clone(),
        console_socket: config.console_socket.as_ref().map(|_| blank.clone()),
        status_log: config.status_log.as_ref().map(|_| blank.clone()),
        status_socket: None,
        qmp_socket: config.qmp_socket.as_ref().map(|_| blank.clone()),
        incoming: None,
        ..config.clone()
    };
    command_line(&machine)
}

/// The shell-quoted command line, as saved in `qemu-cmdline.txt`.
pub use crate::host::process::shell_line;

/// A running QEMU: a process group of its own, killed and reaped on drop (see `process`).
pub type Guest = GroupChild;

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot start {program}")]
    Start {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create {path}")]
    Stderr {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Guest {
    /// Starts QEMU (`program args`) with stderr to `stderr_path`.
    pub fn spawn(program: &Path, args: &[String], stderr_path: &Path) -> Result<Guest, SpawnError> {
        let stderr = File::create(stderr_path).map_err(|source| SpawnError::Stderr {
            path: stderr_path.into(),
            source,
        })?;
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        GroupChild::start(&mut command).map_err(|source| SpawnError::Start {
            program: program.into(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn config() -> GuestConfig {
        GuestConfig {
            accel: Accel::Tcg,
            memory_mib: 1024,
            cpus: 2,
            kernel: "/k/vmlinuz".into(),
            initrd: Some("/k/initrd.img".into()),
            append: "console=ttyS0 crashkernel=256M".into(),
            disk: Some("/r/disk.img".into()),
            serial_log: "/r/serial.log".into(),
            console_socket: Some("/s/console.sock".into()),
            status_log: Some("/r/status.log".into()),
            status_socket: None,
            qmp_socket: Some("/s/qmp.sock".into()),
            incoming: None,
        }
    }

    #[test]
    fn command_line_wires_console_status_disk_and_qmp() {
        let line = command_line(&config()).join(" ");
        for part in [
            "-no-reboot",
            "-accel tcg",
            "-m 1024M",
            "-smp 2",
            "-chardev socket,id=console,path=/s/console.sock,server=on,wait=off,logfile=/r/serial.log -serial chardev:console",
            "-chardev file,id=status,path=/r/status.log -serial chardev:status",
            "-drive file=/r/disk.img,format=raw,if=virtio",
            "-qmp unix:/s/qmp.sock,server=on,wait=off",
        ] {
            assert!(line.contains(part), "missing `{part}` in {line}");
        }
        // The console must be the first serial port (ttyS0), status the second.
        assert!(line.find("chardev:console").unwrap() < line.find("chardev:status").unwrap());
    }

    #[test]
    fn a_restored_guest_has_the_machine_of_its_shape() {
        let shape = config();
        let restored = GuestConfig {
            serial_log: "/other/serial.log".into(),
            status_log: Some("/other/status.log".into()),
            status_socket: Some("/other/status.sock".into()),
            qmp_socket: Some("/other/qmp.sock".into()),
            disk: Some("/other/disk.img".into()),
            incoming: Some("/shapes/k/state".into()),
            ..config()
        };
        assert_eq!(machine_line(&shape), machine_line(&restored));
        let line = command_line(&restored).join(" ");
        assert!(line.contains("-chardev socket,id=status,path=/other/status.sock,server=on,wait=off,logfile=/other/status.log"), "{line}");
        assert!(
            line.ends_with("-incoming exec:cat /shapes/k/state"),
            "{line}"
        );
        let other_machine = GuestConfig {
            memory_mib: 2048,
            ..config()
        };
        assert_ne!(machine_line(&shape), machine_line(&other_machine));
    }

    #[test]
    fn dropping_a_guest_kills_its_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        // A shell that starts a grandchild: both must die with the guest.
        let args = vec!["-c".to_string(), "sleep 300 & sleep 300".to_string()];
        let guest = Guest::spawn(Path::new("/bin/sh"), &args, &dir.path().join("stderr")).unwrap();
        let pgid = guest.pid() as i32;
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(unsafe { libc::kill(-pgid, 0) }, 0, "group should be alive");
        drop(guest);
        assert_ne!(unsafe { libc::kill(-pgid, 0) }, 0, "group should be gone");
    }
}
