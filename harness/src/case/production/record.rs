//! What a Debian-image case adds to `result.json` (`production`): the image and overlay it
//! booted, each phase of the three boots with its deadline, time and failure, what the in-guest
//! `kdrill check` said before the crash, and the dump folder as read off the disk.

use serde::{Deserialize, Serialize};

use crate::spec::setup::DumpTarget;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Production {
    /// The image's cache key (recipe + kernel + overlay) and folder.
    pub image: Option<String>,
    pub image_dir: Option<String>,
    /// The overlay's folder and hash, when one was used.
    pub overlay_dir: Option<String>,
    pub overlay: Option<String>,
    /// The versions the image runs of its recipe's packages (kdump-tools, makedumpfile,
    /// kexec-tools, systemd…): what differs between Debian releases.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub packages: std::collections::BTreeMap<String, String>,
    pub crashkernel: String,
    /// What the image's kdump-tools suggests reserving (`kdump-config show`, kdump-tools 1.10
    /// on), beside the reservation the case ran with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kdump_suggested: Option<String>,
    pub dump_target: DumpTarget,
    /// The phases in order; one that did not happen is absent.
    pub phases: Vec<Phase>,
    /// Their times that a Debian image adds to the shared `phases`: ready, crash → saved, ready
    /// again.
    #[serde(flatten)]
    pub times: crate::case::phases::DebianPhases,
    /// `kdrill check --format json` in boot 1, before the crash (`boot1-check.json`).
    pub check: Option<CheckSummary>,
    pub dump_folder: Option<DumpFolder>,
    /// An operator's disk image: the file, how it booted, and its sha256 before and after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<DiskSeen>,
    /// kdrill's own Debian package the guest installed (a `drill` case), by file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kdrill_package: Option<String>,
}

/// A disk-image case's file and how kdrill booted it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskSeen {
    pub file: String,
    /// `qcow2` or `raw`.
    pub format: String,
    /// `bios` or `uefi`.
    pub firmware: String,
    /// How the agent went in: `cloud-init` or `libguestfs`.
    pub inject: String,
    pub sha256_before: String,
    /// `None`: it could not be hashed again (the case fails).
    pub sha256_after: Option<String>,
    /// The kdump service the agent found (its status command and unit).
    pub service: Option<String>,
}

/// One phase: what it waits for, its deadline, how long it took, why it failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    pub name: String,
    pub deadline_seconds: f64,
    pub seconds: Option<f64>,
    pub failure: Option<String>,
}

/// The in-guest check's verdict and the ids of every check that did not pass.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckSummary {
    pub verdict: String,
    pub exit_code: i64,
    pub fail: Vec<String>,
    pub warn: Vec<String>,
    pub skip: Vec<String>,
}

impl CheckSummary {
    /// Reads the summary out of `kdrill check --format json` (schema `kdrill-check/1`).
    pub fn from_json(text: &str) -> Result<CheckSummary, String> {
        let json: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        if json["schema"] != "kdrill-check/1" {
            return Err(format!("schema {} is not kdrill-check/1", json["schema"]));
        }
        let ids = |status: &str| -> Vec<String> {
            json["checks"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c["status"] == status)
                .filter_map(|c| c["id"].as_str().map(String::from))
                .collect()
        };
        Ok(CheckSummary {
            verdict: json["verdict"].as_str().unwrap_or("?").to_string(),
            exit_code: json["exit_code"].as_i64().unwrap_or(-1),
            fail: ids("fail"),
            warn: ids("warn"),
            skip: ids("skip"),
        })
    }

    /// `not_ready (fail: kdump-service; warn: crashkernel-size)`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (label, ids) in [
            ("fail", &self.fail),
            ("warn", &self.warn),
            ("skip", &self.skip),
        ] {
            if !ids.is_empty() {
                parts.push(format!("{label}: {}", ids.join(", ")));
            }
        }
        if parts.is_empty() {
            self.verdict.clone()
        } else {
            format!("{} ({})", self.verdict, parts.join("; "))
        }
    }
}

/// The dump folder kdump-tools wrote, read off the guest's disk (or the network target).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DumpFolder {
    /// `KDUMP_COREDIR` in the guest, and where it was read: `/dev/vda` (the image), another
    /// disk, or `ssh` (kdrill's sshd).
    pub coredir: String,
    pub source: String,
    /// The crash's folder, `<coredir>/<stamp>` (`<ip>-<stamp>` over the network).
    pub folder: Option<String>,
    pub files: Vec<FileSeen>,
    /// Where the folder was copied to in the evidence.
    pub copied_to: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSeen {
    pub name: String,
    /// Permission bits in the guest (`0o600`).
    pub mode: u32,
    pub bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_json_gives_its_verdict_and_ids() {
        let json = r#"{"schema":"kdrill-check/1","verdict":"not_ready","exit_code":2,"checks":[
            {"id":"crashkernel-size","status":"warn"},{"id":"kdump-service","status":"fail"},
            {"id":"sysrq","status":"pass"},{"id":"hypervisor","status":"info"}]}"#;
        let summary = CheckSummary::from_json(json).unwrap();
        assert_eq!(summary.fail, ["kdump-service"]);
        assert_eq!(summary.warn, ["crashkernel-size"]);
        assert_eq!(
            summary.describe(),
            "not_ready (fail: kdump-service; warn: crashkernel-size)"
        );
        assert!(CheckSummary::from_json("{}").is_err());
    }
}
