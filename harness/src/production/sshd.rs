//! An SSH dump target for one case (kdump-tools' `SSH=` in `/etc/default/kdump-tools`): a
//! throwaway host key and user key, and an `sshd -i` that QEMU's user network starts for each
//! connection the guest makes to 10.0.2.100:22 (`guestfwd=…-cmd:`), so nothing listens on any
//! host address. sshd runs in a mount namespace of its own where the case's folder is mounted
//! over the dump folder the guest names (`/var/crash`), so the guest's writes land in the case's
//! evidence and never in the host's own folder.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::host::process::{self, shell_quote};
use crate::host::tools;

/// The address the guest reaches the target at (`SSH=root@10.0.2.100` in the overlay).
pub const ADDRESS: &str = "10.0.2.100";
/// `ssh-keygen` of one key.
const KEYGEN: Duration = Duration::from_secs(60);

/// One case's target: its keys, configuration and the folder dumps arrive in.
pub struct Target {
    dir: PathBuf,
    sshd: PathBuf,
}

impl Target {
    /// Makes the keys and the configuration under `scratch/ssh-target/`.
    pub fn prepare(scratch: &Path) -> Result<Target, String> {
        let sshd = tools::require("/usr/sbin/sshd").map_err(|e| e.to_string())?;
        let keygen = tools::require("ssh-keygen").map_err(|e| e.to_string())?;
        let dir = scratch.join("ssh-target");
        std::fs::create_dir_all(dir.join("dumps")).map_err(|e| e.to_string())?;
        for key in ["host_key", "user_key"] {
            let out = process::run(
                Command::new(&keygen)
                    .args(["-q", "-t", "ed25519", "-N", "", "-C", "kdrill", "-f"])
                    .arg(dir.join(key)),
                KEYGEN,
            )
            .map_err(|e| e.to_string())?;
            if !out.status.success() {
                return Err(format!("ssh-keygen: {}", out.last_line()));
            }
        }
        std::fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys"))
            .map_err(|e| e.to_string())?;
        let config = format!(
            "HostKey {dir}/host_key\nAuthorizedKeysFile {dir}/authorized_keys\n\
             PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             UsePAM no\nStrictModes no\nPidFile none\nLogLevel VERBOSE\n\
             Subsystem sftp internal-sftp\n",
            dir = dir.display()
        );
        std::fs::write(dir.join("sshd_config"), config).map_err(|e| e.to_string())?;
        // sshd insists on its privilege separation folder.
        let _ = std::fs::create_dir_all("/run/sshd");
        Ok(Target { dir, sshd })
    }

    /// Where a dump folder `coredir` of the guest's arrives on the host.
    pub fn folder(&self, _coredir: &str) -> PathBuf {
        self.dir.join("dumps")
    }

    /// The command QEMU runs for each connection: sshd in inetd mode, in a mount namespace whose
    /// `/var/crash` is the case's folder.
    fn command(&self) -> String {
        format!(
            "unshare --mount sh -c 'mkdir -p /var/crash && mount --bind {dumps} /var/crash && exec {sshd} -i -f {config} -E {log}'",
            dumps = shell_quote(&self.dir.join("dumps").display().to_string()),
            sshd = self.sshd.display(),
            config = shell_quote(&self.dir.join("sshd_config").display().to_string()),
            log = shell_quote(&self.dir.join("sshd.log").display().to_string()),
        )
    }

    /// The guest's network: QEMU's user network with the target on 10.0.2.100:22.
    pub fn qemu_args(&self) -> Vec<String> {
        vec![
            "-netdev".into(),
            format!(
                "user,id=net0,restrict=on,guestfwd=tcp:{ADDRESS}:22-cmd:{}",
                self.command()
            ),
            "-device".into(),
            "virtio-net-pci,netdev=net0".into(),
        ]
    }

    /// What kdrill's unit installs into the guest's `/root/.ssh/` (on the case disk under `ssh/`):
    /// the user key kdump-tools uses (`SSH_KEY`, by default `/root/.ssh/kdump_id_rsa`) and the
    /// target's host key as known.
    pub fn guest_files(&self) -> Vec<(String, Vec<u8>, u32)> {
        let read = |name: &str| std::fs::read(self.dir.join(name)).unwrap_or_default();
        let host = String::from_utf8_lossy(&read("host_key.pub")).into_owned();
        let known = format!(
            "{ADDRESS} {}\n",
            host.split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        );
        vec![
            ("ssh/kdump_id_rsa".into(), read("user_key"), 0o600),
            ("ssh/known_hosts".into(), known.into_bytes(), 0o644),
        ]
    }
}
