//! `kdrill agent`: kdrill's side of an operator's own disk image, run by one systemd unit from
//! the case disk (`guest::agent`). Everything else is the image's own: its bootloader, kernel,
//! kdump service, capture and reboot. The agent reports on the status channel (ttyS1, the
//! `KDRILL <event> t=<uptime> …` lines of `vm::status`) and keeps its evidence on the case disk.
//!   boot 1: says `boot`; refuses a command line without `crashkernel=` (or, asked to, sets one
//!           through the bootloader and reboots once); finds the kdump service (`kdump-config`,
//!           `kdumpctl`, `kdump.service`) and waits until its own status says ready; keeps
//!           `kdrill check --format json`; says `ready`; crashes by the case's route.
//!   boot 3: says `boot crashed=yes`; waits for the service again; copies the crash's dump folder
//!           onto the case disk; says `ready boot=3`, `done`, and powers off.
//!
//! The decisions are in [`core`]; this file only runs commands and writes files.

pub mod core;
mod steps;
mod system;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::guest::agent::{DUMP_COPY, EVIDENCE};
use crate::host::process;
use crate::readiness::kdumpconf::Flavour;
use core::{status_command, Readiness};
use system::{copy_folder, coredir, last, list_coredir, packages, release, run, sync, unit_state};

/// Where the agent remembers, in the overlay, that it armed a crash (seconds since the epoch).
const ARMED: &str = "/var/lib/kdrill/agent-armed";
/// Where it remembers the reservation it asked the bootloader for.
const ASKED: &str = "/var/lib/kdrill/agent-crashkernel";
/// How long the kdump service may take to be ready once the agent runs (the host's own deadline
/// for the phase is longer and ends the case).
const READY_WAIT: Duration = Duration::from_secs(900);
/// A status command, `systemctl`, `update-grub`, `kdrill check`.
const COMMAND: Duration = Duration::from_secs(120);
/// How long a route may take to crash the guest before the agent says it did not.
const CRASH_WAIT: Duration = Duration::from_secs(300);

/// The agent, on the case disk mounted at `case`, writing status lines to `port`.
pub struct Agent {
    case: PathBuf,
    port: PathBuf,
    settings: std::collections::BTreeMap<String, String>,
    started: Instant,
}

impl Agent {
    pub fn new(case: &Path, port: &Path) -> Agent {
        let settings = std::fs::read_to_string(case.join("case.env"))
            .map(|t| core::settings(&t))
            .unwrap_or_default();
        Agent {
            case: case.to_path_buf(),
            port: port.to_path_buf(),
            settings,
            started: Instant::now(),
        }
    }

    fn setting(&self, key: &str) -> &str {
        self.settings.get(key).map(String::as_str).unwrap_or("")
    }

    /// Boot 1 or boot 3, as the overlay remembers. The exit code.
    pub fn run(&self) -> i32 {
        if !self.case.join("case.env").is_file() {
            return self.fail(
                "case",
                &format!("no case.env on the case disk at {}", self.case.display()),
            );
        }
        let result = if Path::new(ARMED).exists() {
            self.after_crash()
        } else {
            self.first_boot()
        };
        match result {
            Ok(()) => 0,
            Err((phase, reason)) => self.fail(phase, &reason),
        }
    }

    /// One status line on the channel (and in the journal and `agent.log`).
    fn status(&self, event: &str, fields: &[String]) {
        let uptime = std::fs::read_to_string("/proc/uptime")
            .ok()
            .and_then(|t| t.split_whitespace().next().map(String::from))
            .unwrap_or_else(|| format!("{:.2}", self.started.elapsed().as_secs_f64()));
        let mut line = format!("KDRILL {event} t={uptime}");
        for field in fields {
            line.push(' ');
            line.push_str(field);
        }
        if let Ok(mut port) = std::fs::OpenOptions::new().write(true).open(&self.port) {
            let _ = writeln!(port, "{line}");
        }
        self.log(&line);
    }

    fn log(&self, line: &str) {
        println!("{line}");
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.case.join("agent.log"))
        {
            let _ = writeln!(file, "{line}");
        }
    }

    /// Says the failure once (`reason=` is the rest of the line) and leaves the guest up: the host
    /// ends the case.
    fn fail(&self, phase: &str, reason: &str) -> i32 {
        let reason: String = reason.split_whitespace().collect::<Vec<_>>().join(" ");
        self.status(
            "fail",
            &[format!("phase={phase}"), format!("reason={reason}")],
        );
        sync();
        1
    }

    fn keep(&self, name: &str, text: &str) {
        debug_assert!(
            EVIDENCE.contains(&name),
            "{name} is not in guest::agent::EVIDENCE"
        );
        let _ = std::fs::write(self.case.join(name), text);
    }

    fn first_boot(&self) -> Result<(), (&'static str, String)> {
        let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
        self.status(
            "boot",
            &[format!("kernel={}", release()), "crashed=no".into()],
        );
        self.keep("boot1-cmdline.txt", &cmdline);
        let asked = self.setting("KDRILL_SET_CRASHKERNEL").to_string();
        if !asked.is_empty() && core::crashkernel(&cmdline) != [format!("crashkernel={asked}")] {
            return self.set_crashkernel(&asked);
        }
        let words = core::crashkernel(&cmdline);
        if words.is_empty() {
            return Err(("crashkernel", format!(
                "no crashkernel= on the kernel command line ({}): this image reserves no memory for a capture kernel, so no dump can be taken. kdrill does not edit the image's bootloader unless asked: add crashkernel= to the image (kdump-tools: /etc/default/grub.d/kdump-tools.cfg and update-grub; kdump-utils: kdumpctl reset-crashkernel), or let a test boot set one with --crashkernel SIZE",
                cmdline.trim()
            )));
        }
        let reserved = std::fs::read_to_string("/sys/kernel/kexec_crash_size")
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .unwrap_or(0);
        self.keep(
            "boot1-crashkernel.txt",
            &format!("{}\nreserved bytes: {reserved}\n", words.join(" ")),
        );
        if reserved == 0 {
            return Err(("crashkernel", format!(
                "{} is on the command line but the kernel reserved nothing (/sys/kernel/kexec_crash_size is 0): the size is more than this guest's memory allows, or the syntax is wrong; see the kernel's crashkernel lines in serial-boot1.log",
                words.join(" ")
            )));
        }
        let flavour = self.service()?;
        self.keep(
            "agent-service.txt",
            &format!(
                "{} ({})\n",
                status_command(flavour).join(" "),
                flavour.unit()
            ),
        );
        let sysctls = self.sysctls();
        self.keep("boot1-sysctls.txt", &sysctls);
        self.modules()?;
        let (ready, words) = self.wait_ready(flavour);
        self.keep("boot1-service-status.txt", &words);
        if let Readiness::NotReady(why) = ready {
            return Err(("kdump-service", not_ready(flavour, &why)));
        }
        self.keep("packages.txt", &packages());
        let check = self.check("boot1-check.json", "boot1-check.stderr");
        let coredir = coredir(self.setting("KDRILL_DUMP_FOLDER"));
        self.keep("coredir.txt", &format!("{coredir}\n"));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let armed = Path::new(ARMED);
        if let Some(parent) = armed.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        std::fs::write(armed, format!("{now}\n"))
            .map_err(|e| ("case", format!("cannot write {ARMED}: {e}")))?;
        sync();
        self.status(
            "ready",
            &[
                "boot=1".into(),
                format!("check={check}"),
                format!("service={}", flavour.unit()),
            ],
        );
        self.crash()
    }

    /// `kdrill check --format json` into the evidence; its exit code.
    fn check(&self, json: &str, stderr: &str) -> i32 {
        let exe = std::env::current_exe().unwrap_or_else(|_| self.case.join("kdrill"));
        let mut command = Command::new(exe);
        command.args(["check", "--format", "json"]);
        match process::run(&mut command, COMMAND) {
            Ok(done) => {
                self.keep(json, &String::from_utf8_lossy(&done.stdout));
                self.keep(stderr, &String::from_utf8_lossy(&done.stderr));
                done.status.code().unwrap_or(-1)
            }
            Err(e) => {
                self.keep(stderr, &e.to_string());
                -1
            }
        }
    }

    /// Crashes the guest by the case's route.
    fn crash(&self) -> Result<(), (&'static str, String)> {
        let route = self.setting("KDRILL_ROUTE").to_string();
        let _watchdog;
        match self.setting("KDRILL_TRIGGER") {
            "sysrq" => {
                self.status("trigger", &["route=sysrq".into(), "cpu=any".into()]);
                sync();
                // From a shell, as an operator types it (the scenario expects `sh` to crash).
                let (_, out) = run(&["sh".into(), "-c".into(), "echo c > /proc/sysrq-trigger".into()]);
                return Err(("trigger", format!("writing c to /proc/sysrq-trigger did not crash the guest: {}", last(&out))));
            }
            "host" => {
                if route.starts_with("sysrq-")
                    && std::fs::read_to_string("/proc/sys/kernel/sysrq").is_ok_and(|v| v.trim() == "0")
                {
                    return Err(("trigger", format!("kernel.sysrq = 0: SysRq is off, so the kernel drops the {route} crash key without a word")));
                }
            }
            "watchdog" => {
                // Opened and never petted, as a hung userspace would.
                _watchdog = std::fs::OpenOptions::new()
                    .write(true)
                    .open("/dev/watchdog")
                    .map_err(|e| ("trigger", format!("cannot open /dev/watchdog ({e}): is the i6300esb device and module there?")))?;
                self.status("trigger", &["route=watchdog".into()]);
            }
            other => {
                return Err(("trigger", format!("the agent cannot crash a disk image by `{other}`: routes are sysrq, nmi, sysrq-serial, sysrq-keyboard and watchdog")))
            }
        }
        std::thread::sleep(CRASH_WAIT);
        Err((
            "trigger",
            format!(
                "the guest did not crash within {}s of the {route} route",
                CRASH_WAIT.as_secs()
            ),
        ))
    }

    fn after_crash(&self) -> Result<(), (&'static str, String)> {
        self.status(
            "boot",
            &[format!("kernel={}", release()), "crashed=yes".into()],
        );
        let armed: i64 = std::fs::read_to_string(ARMED)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        let flavour = self.service()?;
        let (ready, words) = self.wait_ready(flavour);
        self.keep("boot3-service-status.txt", &words);
        let coredir = coredir(self.setting("KDRILL_DUMP_FOLDER"));
        let (listing, folders) = list_coredir(Path::new(&coredir));
        self.keep("boot3-coredir-listing.txt", &listing);
        let copied = match core::crash_folder(&folders, armed) {
            Some(folder) => {
                let from = Path::new(&coredir).join(&folder.name);
                let to = self
                    .case
                    .join(DUMP_COPY)
                    .join(coredir.trim_start_matches('/'))
                    .join(&folder.name);
                match copy_folder(&from, &to) {
                    Ok(report) => {
                        self.keep("boot3-copy.txt", &report);
                        1
                    }
                    Err(e) => {
                        self.keep("boot3-copy.txt", &e);
                        return Err((
                            "copy",
                            format!("cannot copy {} onto the case disk: {e}", from.display()),
                        ));
                    }
                }
            }
            None => {
                self.keep(
                    "boot3-copy.txt",
                    &format!("no folder holding a dump was written in {coredir} after the crash\n"),
                );
                0
            }
        };
        self.check("boot3-check.json", "boot3-check.stderr");
        let _ = std::fs::remove_file(ARMED);
        sync();
        if let Readiness::NotReady(why) = ready {
            return Err((
                "boot3",
                format!("after the crash {}", not_ready(flavour, &why)),
            ));
        }
        self.status("ready", &["boot=3".into(), format!("dumps={copied}")]);
        self.status("done", &[]);
        sync();
        let _ = run(&["systemctl".into(), "poweroff".into()]);
        Ok(())
    }
}

/// `kdump-config status says it is not ready (kdump-tools.service is active): <its words>`.
fn not_ready(flavour: Flavour, why: &str) -> String {
    format!(
        "{} says it is not ready ({} is {}): {why}",
        status_command(flavour).join(" "),
        flavour.unit(),
        unit_state(flavour.unit())
    )
}
