//! The network dump target of a Debian case: an OpenSSH `sshd` of kdrill's own, with a
//! throwaway host key and user key made for the case. It listens nowhere: QEMU's user network
//! (`restrict=on`) forwards the guest's connections to `10.0.2.100:22` to `sshd -i`, started
//! per connection (`guestfwd=…-cmd:`), so only this guest can reach it. Every command the guest
//! sends (kdump-tools' `mkdir -p`, `dd of=`, `mv`, and scp's SFTP) runs chrooted (`unshare
//! --root`) in the case's receive folder, which holds busybox and sftp-server and nothing else:
//! the dump lands in `<receive>/<KDUMP_COREDIR>/<ip>-<stamp>/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::host::process::{self, shell_line};
use crate::host::tools;

/// The address the guest dials (`SSH=` names a host alias the case disk maps to it).
pub const GUEST_ADDRESS: &str = "10.0.2.100";
/// The host alias in the guest's `/root/.ssh/config` (`SSH="kdrill-dumps"` in the overlay).
pub const HOST_ALIAS: &str = "kdrill-dumps";
const SFTP_SERVER: &str = "/usr/lib/openssh/sftp-server";
/// `ssh-keygen` of one key: well under a second.
const KEYGEN_DEADLINE: Duration = Duration::from_secs(30);

/// A prepared target: keys, config, the receive folder.
pub struct Sshd {
    dir: PathBuf,
    user: String,
    host_public: String,
    user_private: Vec<u8>,
    user_public: String,
}

impl Sshd {
    /// Makes keys, the receive folder and sshd's config under `dir`; sshd logs to
    /// `<evidence>/sshd.log`.
    pub fn start(dir: &Path, evidence: &Path) -> Result<Sshd, String> {
        let sshd = tools::require("sshd").map_err(|e| e.to_string())?;
        let keygen = tools::require("ssh-keygen").map_err(|e| e.to_string())?;
        let unshare = tools::require("unshare").map_err(|e| e.to_string())?;
        let chroot = tools::require("chroot").map_err(|e| e.to_string())?;
        let busybox = tools::require("busybox").map_err(|e| e.to_string())?;
        if !Path::new(SFTP_SERVER).is_file() {
            return Err(format!(
                "{SFTP_SERVER} is not installed: install it with `apt-get install -y openssh-sftp-server` (as root)"
            ));
        }
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let key = |name: &str| -> Result<(Vec<u8>, String), String> {
            let path = dir.join(name);
            let mut command = Command::new(&keygen);
            command
                .args([
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "kdrill-throwaway",
                    "-f",
                ])
                .arg(&path);
            let done = process::run(&mut command, KEYGEN_DEADLINE).map_err(|e| e.to_string())?;
            if !done.status.success() {
                return Err(format!("ssh-keygen failed: {}", done.last_line()));
            }
            let private = std::fs::read(&path).map_err(|e| e.to_string())?;
            let public =
                std::fs::read_to_string(path.with_extension("pub")).map_err(|e| e.to_string())?;
            Ok((private, public.trim().to_string()))
        };
        let (_, host_public) = key("host_ed25519")?;
        let (user_private, user_public) = key("guest_ed25519")?;
        let user = current_user();
        let root = crate::host::tools::is_root();
        if root {
            // sshd's privilege separation needs it; the openssh-server service makes it at start.
            let _ = std::fs::create_dir_all("/run/sshd");
        }
        let receive = dir.join("receive");
        populate_receive(&receive, &busybox, &user)?;
        let write = |name: &str, text: String, mode: u32| -> Result<PathBuf, String> {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| e.to_string())?;
            Ok(path)
        };
        write(
            "authorized_keys",
            format!("restrict {user_public}\n"),
            0o600,
        )?;
        // A mount namespace of its own (a user namespace too when not root) to give the chroot
        // a /dev/null (sftp-server needs one), then the chroot.
        let mut gate_args: Vec<String> = if root {
            vec![]
        } else {
            vec!["--map-root-user".to_string()]
        };
        gate_args.extend(["--mount".into(), "/bin/sh".into(), "-c".into()]);
        gate_args.push(format!(
            "mount --bind /dev/null \"$0/dev/null\" && exec {} \"$0\" /bin/sh -c \"$1\"",
            shell_line(&chroot, &[])
        ));
        gate_args.push(receive.display().to_string());
        let gate = write(
            "gate",
            format!(
                "#!/bin/sh\n# kdrill: the guest's ssh commands, chrooted in the receive folder.\n[ -n \"$SSH_ORIGINAL_COMMAND\" ] || {{ echo 'kdrill: no shell here' >&2; exit 1; }}\nexec {} \"$SSH_ORIGINAL_COMMAND\"\n",
                shell_line(&unshare, &gate_args)
            ),
            0o755,
        )?;
        let config = write("sshd_config", sshd_config(dir, &user, &gate), 0o600)?;
        let log = evidence.join("sshd.log");
        let inetd = vec![
            "-i".to_string(),
            "-f".into(),
            config.display().to_string(),
            "-E".into(),
            log.display().to_string(),
        ];
        write(
            "inetd",
            format!("#!/bin/sh\nexec {}\n", shell_line(&sshd, &inetd)),
            0o755,
        )?;
        Ok(Sshd {
            dir: dir.into(),
            user,
            host_public,
            user_private,
            user_public,
        })
    }

    /// The folder the guest's dump folder appears under.
    pub fn receive_dir(&self) -> PathBuf {
        self.dir.join("receive")
    }

    /// QEMU's network: user mode, isolated, with the one forward to sshd.
    pub fn qemu_args(&self) -> Vec<String> {
        vec![
            "-netdev".into(),
            format!(
                "user,id=dumpnet,restrict=on,guestfwd=tcp:{GUEST_ADDRESS}:22-cmd:{}",
                self.dir
                    .join("inetd")
                    .display()
                    .to_string()
                    .replace(',', ",,")
            ),
            "-device".into(),
            "virtio-net-pci,netdev=dumpnet".into(),
        ]
    }

    /// The files the guest installs in boot 1 (case disk `ssh/`): its key, its ssh config for
    /// the alias, and the target's host key.
    pub fn guest_files(&self) -> Vec<(String, u32, Vec<u8>)> {
        vec![
            ("ssh/id".into(), 0o600, self.user_private.clone()),
            (
                "ssh/id.pub".into(),
                0o644,
                format!("{}\n", self.user_public).into_bytes(),
            ),
            (
                "ssh/config".into(),
                0o644,
                guest_ssh_config(&self.user).into_bytes(),
            ),
            (
                "ssh/known_hosts".into(),
                0o644,
                format!("{GUEST_ADDRESS} {}\n", self.host_public).into_bytes(),
            ),
        ]
    }
}

/// sshd's whole configuration: key login for one user, every command through the gate.
pub fn sshd_config(dir: &Path, user: &str, gate: &Path) -> String {
    format!(
        "# kdrill: the network dump target of one case (run as `sshd -i` by QEMU's guestfwd).\n\
         HostKey {dir}/host_ed25519\n\
         AuthorizedKeysFile {dir}/authorized_keys\n\
         AllowUsers {user}\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         UsePAM no\n\
         PermitRootLogin prohibit-password\n\
         StrictModes no\n\
         DisableForwarding yes\n\
         PermitTTY no\n\
         PidFile none\n\
         LogLevel VERBOSE\n\
         ForceCommand {gate}\n\
         Subsystem sftp {SFTP_SERVER}\n",
        dir = dir.display(),
        gate = gate.display(),
    )
}

/// The guest's `/root/.ssh/config` entry for the alias kdump-tools' `SSH=` names.
pub fn guest_ssh_config(user: &str) -> String {
    format!(
        "# kdrill: the case's dump target (kdrill's sshd through QEMU).\nHost {HOST_ALIAS}\n    HostName {GUEST_ADDRESS}\n    User {user}\n    UserKnownHostsFile /root/.ssh/kdrill_known_hosts\n    StrictHostKeyChecking yes\n    BatchMode yes\n    ConnectTimeout 20\n"
    )
}

/// The receive folder: busybox (sh, mkdir, dd, mv, cat), sftp-server with its libraries, the
/// user it runs as (sftp-server looks itself up) and a `/dev/null` to bind the host's onto.
fn populate_receive(receive: &Path, busybox: &Path, user: &str) -> Result<(), String> {
    let copy = |from: &Path| -> Result<(), String> {
        let to = receive.join(from.strip_prefix("/").unwrap_or(from));
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        std::fs::copy(from, &to).map_err(|e| format!("{}: {e}", from.display()))?;
        Ok(())
    };
    std::fs::create_dir_all(receive.join("bin")).map_err(|e| e.to_string())?;
    std::fs::copy(busybox, receive.join("bin/busybox")).map_err(|e| e.to_string())?;
    for applet in ["sh", "mkdir", "dd", "mv", "cat", "ls", "rm"] {
        std::os::unix::fs::symlink("busybox", receive.join("bin").join(applet))
            .map_err(|e| e.to_string())?;
    }
    copy(Path::new(SFTP_SERVER))?;
    std::fs::create_dir_all(receive.join("etc")).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(receive.join("dev")).map_err(|e| e.to_string())?;
    std::fs::write(receive.join("dev/null"), "").map_err(|e| e.to_string())?;
    // SAFETY: geteuid and getegid have no preconditions.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    // Not root, the gate's user namespace maps the user to uid 0 (`--map-root-user`): that is the
    // uid sftp-server looks up inside the chroot.
    let (mut passwd, mut group) = (
        format!("{user}:x:{uid}:{gid}:kdrill dump target:/:/bin/sh\n"),
        format!("{user}:x:{gid}:\n"),
    );
    if uid != 0 {
        passwd.push_str(&format!(
            "{user}-ns:x:0:0:kdrill dump target, in its namespace:/:/bin/sh\n"
        ));
        group.push_str(&format!("{user}-ns:x:0:\n"));
    }
    std::fs::write(receive.join("etc/passwd"), passwd).map_err(|e| e.to_string())?;
    std::fs::write(receive.join("etc/group"), group).map_err(|e| e.to_string())?;
    let libs = crate::host::rootfs::library_closure(Path::new("/"), &[PathBuf::from(SFTP_SERVER)])
        .map_err(|e| e.to_string())?;
    for lib in libs.keys() {
        copy(lib)?;
    }
    Ok(())
}

/// The user sshd runs as, and the only one it lets in.
fn current_user() -> String {
    // SAFETY: getpwuid returns a pointer into static storage or null; read at once.
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        if !pw.is_null() {
            if let Ok(name) = std::ffi::CStr::from_ptr((*pw).pw_name).to_str() {
                return name.to_string();
            }
        }
    }
    std::env::var("USER").unwrap_or_else(|_| "root".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sshd_lets_one_user_in_by_key_and_gates_every_command() {
        let config = sshd_config(Path::new("/s/ssh"), "ci", Path::new("/s/ssh/gate"));
        for line in [
            "AllowUsers ci",
            "PasswordAuthentication no",
            "ForceCommand /s/ssh/gate",
            "AuthorizedKeysFile /s/ssh/authorized_keys",
            "DisableForwarding yes",
        ] {
            assert!(config.contains(line), "{line} missing from\n{config}");
        }
        let guest = guest_ssh_config("ci");
        assert!(guest.contains("Host kdrill-dumps\n    HostName 10.0.2.100\n    User ci\n"));
        assert!(guest.contains("StrictHostKeyChecking yes"));
    }
}
