//! The agent's steps around the service: a reservation asked for through the bootloader, the
//! service found and waited for, the scenario's sysctls and modules.

use std::path::Path;
use std::time::{Duration, Instant};

use super::core::status_command;
use super::core::{self, Readiness};
use super::system::{last, run, sync, unit_state, which};
use super::{Agent, ASKED, READY_WAIT};
use crate::readiness::kdumpconf::Flavour;

impl Agent {
    /// Asks the bootloader for `crashkernel=size` (in the overlay) and reboots once.
    pub(super) fn set_crashkernel(&self, size: &str) -> Result<(), (&'static str, String)> {
        if !core::plain_size(size) {
            return Err((
                "crashkernel",
                format!("`{size}` is not a crashkernel= size"),
            ));
        }
        if std::fs::read_to_string(ASKED).is_ok_and(|t| t.trim() == size) {
            return Err(("crashkernel", format!(
                "kdrill set crashkernel={size} through the bootloader and rebooted, but the kernel's command line does not have it: this image's bootloader does not take /etc/default/grub.d or grubby settings"
            )));
        }
        let how = if which("update-grub") {
            let snippet = Path::new("/etc/default/grub.d/zz-kdrill-crashkernel.cfg");
            let _ = std::fs::create_dir_all("/etc/default/grub.d");
            std::fs::write(snippet, core::grub_snippet(size))
                .map_err(|e| ("crashkernel", format!("{}: {e}", snippet.display())))?;
            vec!["update-grub".to_string()]
        } else if which("grubby") {
            vec![
                "grubby".into(),
                "--update-kernel=ALL".into(),
                format!("--args=crashkernel={size}"),
            ]
        } else {
            return Err((
                "crashkernel",
                "cannot set crashkernel= on this image: it has neither update-grub nor grubby"
                    .into(),
            ));
        };
        let (ok, out) = run(&how);
        self.log(&out);
        if !ok {
            return Err((
                "crashkernel",
                format!("`{}` failed: {}", how.join(" "), last(&out)),
            ));
        }
        let _ = std::fs::create_dir_all("/var/lib/kdrill");
        let _ = std::fs::write(ASKED, format!("{size}\n"));
        self.status("reboot", &[format!("crashkernel={size}")]);
        sync();
        let _ = run(&["systemctl".into(), "reboot".into()]);
        Ok(())
    }

    /// The image's kdump service: the recipe's hint, else what is installed.
    pub(super) fn service(&self) -> Result<Flavour, (&'static str, String)> {
        let hint = self.setting("KDRILL_SERVICE");
        let found = match hint {
            "kdump-tools.service" | "kdump-tools" => Some(Flavour::KdumpTools),
            "kdump.service" | "kdump" if which("kdumpctl") => Some(Flavour::Kdumpctl),
            "kdump.service" | "kdump" => Some(Flavour::Suse),
            _ => core::discover(
                which("kdump-config"),
                which("kdumpctl"),
                [
                    "/usr/lib/systemd/system/kdump.service",
                    "/etc/systemd/system/kdump.service",
                    "/lib/systemd/system/kdump.service",
                ]
                .iter()
                .any(|p| Path::new(p).exists()),
            ),
        };
        found.ok_or_else(|| ("kdump-service", "no kdump service found: not kdump-config (Debian/Ubuntu kdump-tools), not kdumpctl (Fedora/RHEL kdump-utils), no kdump.service (SUSE): install the distribution's kdump package in the image".to_string()))
    }

    /// Polls the service's own status until it says ready, or its unit has settled (not starting)
    /// without being ready, or the wait ends. The judgement and the last output.
    pub(super) fn wait_ready(&self, flavour: Flavour) -> (Readiness, String) {
        let deadline = Instant::now() + READY_WAIT;
        let mut settled = 0;
        loop {
            let command: Vec<String> = status_command(flavour)
                .iter()
                .map(|s| s.to_string())
                .collect();
            let (ok, out) = run(&command);
            let judged = core::readiness(flavour, &out, ok);
            if judged == Readiness::Ready {
                return (judged, out);
            }
            let state = unit_state(flavour.unit());
            settled = if matches!(state.as_str(), "activating" | "reloading") {
                0
            } else {
                settled + 1
            };
            if settled >= 3 {
                return (judged, out);
            }
            if Instant::now() >= deadline {
                let why = match judged {
                    Readiness::NotReady(why) => why,
                    Readiness::Ready => String::new(),
                };
                return (
                    Readiness::NotReady(format!(
                        "still {state} after {}s: {why}",
                        READY_WAIT.as_secs()
                    )),
                    out,
                );
            }
            std::thread::sleep(Duration::from_secs(3));
        }
    }

    /// The scenario's sysctls (defaults: a key the image's own files set is left alone).
    pub(super) fn sysctls(&self) -> String {
        let mut out = String::new();
        for setting in self.setting("KDRILL_SYSCTLS").split_whitespace() {
            let Some((key, value)) = setting.split_once('=') else {
                continue;
            };
            let file = format!("/proc/sys/{}", key.replace('.', "/"));
            match std::fs::write(&file, value) {
                Ok(()) => out.push_str(&format!("{key}={value}: set by the scenario\n")),
                Err(e) => out.push_str(&format!("{key}={value}: cannot set ({e})\n")),
            }
        }
        out
    }

    /// Modules the scenario's route needs (`modules` on the case disk: `name [param=value…]`).
    pub(super) fn modules(&self) -> Result<(), (&'static str, String)> {
        let list = std::fs::read_to_string(self.case.join("modules")).unwrap_or_default();
        for line in list.lines().filter(|l| !l.trim().is_empty()) {
            let mut command = vec!["modprobe".to_string()];
            command.extend(line.split_whitespace().map(String::from));
            let (ok, out) = run(&command);
            if !ok {
                return Err((
                    "modules",
                    format!("`{}` failed: {}", command.join(" "), last(&out)),
                ));
            }
        }
        Ok(())
    }
}
