//! What kdrill's agent and the host agree on, for a disk image (the operator's own, which kdrill
//! never builds): the agent is the `kdrill` binary on the case disk (`LABEL=kdrill-case`) plus one
//! systemd unit, which goes into the image by a cloud-init NoCloud seed or by libguestfs into the
//! case's overlay. The unit mounts the case disk and runs `kdrill agent`, which speaks the status
//! protocol on ttyS1 and leaves its evidence, and the dump folder's copy, on the case disk.

/// Where the unit mounts the case disk in the guest.
pub const CASE_MOUNT: &str = "/run/kdrill-case";

/// The unit's name and where it is installed.
pub const UNIT_NAME: &str = "kdrill-agent.service";
pub const UNIT_PATH: &str = "/etc/systemd/system/kdrill-agent.service";
pub const UNIT_WANTS: &str = "/etc/systemd/system/multi-user.target.wants/kdrill-agent.service";

/// The folder on the case disk the agent copies the dump folder into, as
/// `dump/<dump folder without its leading />/<the crash's folder>/`.
pub const DUMP_COPY: &str = "dump";

/// Evidence the agent writes on the case disk, copied into the attempt folder after the run.
pub const EVIDENCE: &[&str] = &[
    "agent-service.txt",
    "boot1-cmdline.txt",
    "boot1-service-status.txt",
    "boot1-sysctls.txt",
    "boot1-check.json",
    "boot1-check.stderr",
    "boot1-crashkernel.txt",
    "packages.txt",
    "coredir.txt",
    "boot3-service-status.txt",
    "boot3-coredir-listing.txt",
    "boot3-copy.txt",
    "boot3-check.json",
    "boot3-check.stderr",
    "agent.log",
];

/// The one unit: wait for the case disk, mount it, run the agent from it. Not in a capture boot
/// (`/proc/vmcore`). Ordered after the distributions' kdump services, so that it sees them
/// settled. (`$$`: a `$` systemd leaves to the shell.)
pub fn unit() -> String {
    format!(
        "# kdrill's agent: reports this system's kdump readiness to kdrill on ttyS1, crashes it
# when the case says so, and after the reboot copies the dump onto kdrill's case disk.
# Put here by kdrill for one test boot of a disposable overlay; never part of an image.
[Unit]
Description=kdrill agent (kdump readiness, crash, dump copy)
After=kdump-tools.service kdump.service local-fs.target
ConditionPathExists=!/proc/vmcore

[Service]
Type=simple
ExecStartPre=/bin/mkdir -p {CASE_MOUNT}
ExecStartPre=/bin/sh -c 'for n in $$(seq 200); do [ -e /dev/disk/by-label/kdrill-case ] && break; sleep 0.2; done; mountpoint -q {CASE_MOUNT} || mount -o noatime LABEL=kdrill-case {CASE_MOUNT}'
ExecStart={CASE_MOUNT}/kdrill agent --case {CASE_MOUNT}
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
"
    )
}

/// The NoCloud seed's `user-data`: the unit written, enabled (boot 3 starts it by itself) and
/// started without waiting for it (cloud-init's own boot must finish).
pub fn cloud_config() -> String {
    let unit: String = unit().lines().map(|l| format!("      {l}\n")).collect();
    format!(
        "#cloud-config
# kdrill's NoCloud seed: one unit for kdrill's agent (see the unit's comment).
write_files:
  - path: {UNIT_PATH}
    permissions: '0644'
    content: |
{unit}runcmd:
  - [systemctl, daemon-reload]
  - [systemctl, enable, {UNIT_NAME}]
  - [systemctl, start, --no-block, {UNIT_NAME}]
"
    )
}

/// The seed's `meta-data`: a new instance per case, so cloud-init runs the seed.
pub fn meta_data(instance: &str) -> String {
    format!("instance-id: kdrill-{instance}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_mounts_the_case_disk_and_runs_the_agent_from_it() {
        let unit = unit();
        assert!(unit.contains("ExecStart=/run/kdrill-case/kdrill agent --case /run/kdrill-case"));
        assert!(unit.contains("ConditionPathExists=!/proc/vmcore"));
        // systemd expands `$x` itself: the shell's own must be written `$$`.
        let shell = unit.lines().find(|l| l.contains("/bin/sh -c")).unwrap();
        assert!(!shell.replace("$$", "").contains('$'), "{shell}");
    }

    #[test]
    fn the_seed_is_yaml_cloud_init_reads() {
        let text = cloud_config();
        assert!(text.starts_with("#cloud-config\n"));
        let value: yaml_serde::Value = yaml_serde::from_str(&text).unwrap();
        let content = value["write_files"][0]["content"].as_str().unwrap();
        assert_eq!(content, unit());
        assert_eq!(value["write_files"][0]["path"].as_str(), Some(UNIT_PATH));
        assert_eq!(value["runcmd"].as_sequence().unwrap().len(), 3);
        assert_eq!(meta_data("ab12"), "instance-id: kdrill-ab12\n");
    }
}
