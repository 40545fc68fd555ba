//! The case disk of a Debian guest (`LABEL=kdrill-case`, `/dev/vdb`): what changes from case to
//! case without rebuilding the image — the route and its settings (`case.env`), the host's
//! `kdrill` binary (for `kdrill check` in the guest), the crasher module, the network target's
//! throwaway keys — and where the guest leaves its evidence (kdump-config's outputs, the check
//! JSON), read back on the host with debugfs.

use std::path::Path;

use crate::guest::dumpdisk;
use crate::spec::scenario::Scenario;

/// The files the host puts on the case disk (name, mode, bytes).
pub type Files = Vec<(String, u32, Vec<u8>)>;

/// Evidence the guest writes on the case disk, copied into the attempt folder after the run.
pub const EVIDENCE: &[&str] = &[
    "boot1-sysctls.txt",
    "boot1-kdump-config-show.txt",
    "boot1-kdump-config-test.txt",
    "boot1-kdump-config-status.txt",
    "boot1-kdump-tools.journal",
    "boot1-check.json",
    "boot1-check.stderr",
    "coredir.txt",
    "coredir-mount.txt",
    "boot3-kdump-config-status.txt",
    "boot3-kdump-tools-active.txt",
    "boot3-kdump-tools.journal",
    "boot3-coredir-listing.txt",
    "boot2.journal",
    "kdrill-install.txt",
    "drill-arm.txt",
    "drill-break.txt",
    "drill-record.json",
    "drill-dmesg.txt",
    "drill-collect.journal",
    "boot3-check.json",
];

/// `case.env` of a shape's case disk: boot 1 stops at "ready to kdump" and waits for its case.
pub fn shape_env() -> String {
    crate::guest::caseenv::lines(&[("KDRILL_SHAPE", "1".into())])
}

/// The scenario's first-boot needs, one `find [param=value ...]` per line, for `modprobe` (which
/// resolves a name or an alias itself, and does nothing for a built-in module).
pub fn modules_list(scenario: &Scenario) -> String {
    scenario
        .guest
        .needs
        .iter()
        .map(|need| format!("{}\n", need.modprobe_line()))
        .collect()
}

/// The case disk's size for `files`: their bytes and room for the evidence, in steps of
/// [`SIZE_STEP_MIB`], so a restored guest's case disk has the capacity its shape's had (the
/// guest read it once, at boot) whatever crasher module or keys the case adds.
pub fn size_mib(files: &Files) -> u64 {
    let bytes: u64 = files.iter().map(|(_, _, data)| data.len() as u64).sum();
    (bytes.div_ceil(1 << 20) + 64).next_multiple_of(SIZE_STEP_MIB)
}

/// See [`size_mib`]: kdrill's own binary (~125 MB unoptimised) fits in two steps.
pub const SIZE_STEP_MIB: u64 = 128;

/// Writes `files` into a folder and makes the case disk from it: ext4 labelled `kdrill-case`,
/// of `size_mib` ([`size_mib`]).
pub fn create(disk: &Path, staging: &Path, files: &Files, size_mib: u64) -> Result<(), String> {
    std::fs::create_dir_all(staging).map_err(|e| format!("{}: {e}", staging.display()))?;
    for (name, mode, data) in files {
        let path = staging.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&path, data).map_err(|e| format!("{}: {e}", path.display()))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    dumpdisk::create_from(disk, size_mib, "kdrill-case", staging).map_err(|e| e.to_string())
}

/// Copies the guest's evidence ([`EVIDENCE`]) off the case disk into `dir`; the names found.
pub fn collect(disk: &Path, dir: &Path) -> Vec<String> {
    collect_named(disk, dir, EVIDENCE)
}

/// Copies the files `names` off the case disk into `dir` (a disk image's agent leaves its own
/// list, `guest::agent::EVIDENCE`); the names found.
pub fn collect_named(disk: &Path, dir: &Path, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .filter(|name| matches!(dumpdisk::extract(disk, name, &dir.join(name)), Ok(true)))
        .map(|name| name.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_case_disk_grows_in_steps() {
        let file = |mib: usize| ("f".to_string(), 0o644, vec![0u8; mib << 20]);
        assert_eq!(size_mib(&vec![file(1)]), 128);
        // A crasher module more or less does not change the capacity a shape saw.
        assert_eq!(size_mib(&vec![file(119)]), size_mib(&vec![file(120)]));
        assert_eq!(size_mib(&vec![file(120), file(1)]), 256);
    }

    #[test]
    fn the_modules_list_and_the_shapes_env() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nmi.yaml");
        std::fs::write(
            &path,
            "id: nmi\ndescription: d\ntrigger: nmi\nsysctls:\n  kernel.unknown_nmi_panic: 1\nguest:\n  needs:\n    - need: i6300esb watchdog driver\n      find: i6300esb\n      params: [heartbeat=5]\nexpect:\n  log: [x]\n",
        )
        .unwrap();
        let scenario = crate::spec::scenario::from_file(&path).unwrap();
        assert_eq!(shape_env(), "KDRILL_SHAPE='1'\n");
        assert_eq!(modules_list(&scenario), "i6300esb heartbeat=5\n");
    }

    #[test]
    fn the_guest_script_writes_the_evidence_the_host_collects() {
        let script = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../images/debian/root/usr/lib/kdrill/guest"),
        )
        .unwrap();
        for name in EVIDENCE {
            assert!(
                script.contains(&format!("$CASE/{name}")),
                "the guest script never writes {name}"
            );
        }
    }
}
