//! Crash scenarios (`scenarios/*.yaml`): how the guest is crashed, which sysctls it needs, what the dump must show.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

pub use crate::spec::trigger::Trigger;

pub use crate::spec::expect::Expect;
use crate::spec::kernel;
pub use crate::spec::mode::BootMode;
use crate::spec::setup::{self, DumpTarget, ScenarioImage};
use crate::spec::yaml::{self, YamlError};

/// The longest simulated hang (`hang_seconds`): the case's deadlines (`case/budget.rs`) allow
/// for this much.
pub const MAX_HANG: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// User-facing id, e.g. `sysrq`; must equal the file stem.
    pub id: String,
    pub description: String,
    /// What this route stands for in the field (shown in the README's table of routes).
    #[serde(default)]
    pub simulates: String,
    pub trigger: Trigger,
    /// How the case boots (`faithful` when the firmware, the kernel's self-decompression or
    /// purgatory's checks are part of what the route proves; `fast` otherwise).
    #[serde(default)]
    pub mode: BootMode,
    /// For `crasher` and `hang-then-nmi`: the word written to the crasher module's control file.
    #[serde(default)]
    pub crasher: Option<String>,
    /// Run the guest-side trigger pinned to this CPU (`taskset`).
    #[serde(default)]
    pub pin_cpu: Option<u32>,
    /// For `hang-then-nmi`: how long the system stays hung before the NMI button is pressed.
    #[serde(default = "default_hang_seconds")]
    pub hang_seconds: u32,
    /// Sysctls the guest's init sets before loading the capture kernel (`kernel.sysrq: 1`).
    #[serde(default)]
    pub sysctls: BTreeMap<String, String>,
    #[serde(default)]
    pub guest: GuestExtras,
    #[serde(default)]
    pub capture: Capture,
    /// For `vm-dump`: the `dump-guest-memory` formats to take.
    #[serde(default)]
    pub vm_dump_formats: Vec<String>,
    /// What the scenario needs from the guest image (`spec/setup.rs`): only one image, an
    /// overlay, `crashkernel=`, extra disks, a network dump target.
    #[serde(default)]
    pub image: ScenarioImage,
    /// Whether `scenarios: [all]` in a matrix set takes this scenario (default true); `false`
    /// for one a set must name, such as the compat table's, whose FAILs are findings about a
    /// release's tools rather than regressions of the kernel.
    #[serde(default = "yes")]
    pub in_all: bool,
    /// Whose tools capture on the minimal image instead of the kernel's own release's (a release of `images/userspace.yaml`, or `host`).
    pub userspace: Option<crate::spec::userspace::Userspace>,
    /// For `drill`: a shell command the guest runs once the drill is armed and before it
    /// crashes, to break the capture on purpose (a broken configuration that must FAIL).
    #[serde(default)]
    pub drill_break: Option<String>,
    pub expect: Expect,
}

fn default_hang_seconds() -> u32 {
    3
}

/// The most a scenario may dirty (the guest checks its own free memory before it starts).
const MAX_DIRTY_MIB: u32 = 65536;

fn yes() -> bool {
    true
}

/// What a route needs beyond the default guest.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestExtras {
    /// vCPUs, when the route needs another count than the kernel entry's.
    #[serde(default)]
    pub cpus: Option<u32>,
    /// Extra first-boot kernel options.
    #[serde(default)]
    pub cmdline: Vec<String>,
    /// What the route needs from the kernel in the first boot only (a watchdog driver, fw_cfg),
    /// each with the parameters of the module that provides it; loaded when not built in.
    #[serde(default)]
    pub needs: Vec<crate::spec::image::Need>,
    /// Extra QEMU arguments (devices, `-action`).
    #[serde(default)]
    pub qemu: Vec<String>,
    /// Before the crash, the guest's init fills this many MiB of memory with non-zero data and
    /// frees it (minimal image): a dump level that excludes free pages must leave them out.
    #[serde(default)]
    pub dirty_mib: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capture {
    /// makedumpfile's options in the capture kernel (input and output paths are added).
    #[serde(default = "default_makedumpfile")]
    pub makedumpfile: Vec<String>,
    /// Extra options for `kexec -p` in the first boot (`-s`: the kexec_file_load syscall).
    #[serde(default)]
    pub kexec: Vec<String>,
}

fn default_makedumpfile() -> Vec<String> {
    ["-c", "-d", "31"].map(String::from).to_vec()
}

impl Default for Capture {
    fn default() -> Self {
        Capture {
            makedumpfile: default_makedumpfile(),
            kexec: Vec::new(),
        }
    }
}

/// Reads `scenarios/<id>.yaml` under `root`.
pub fn load(root: &Path, id: &str) -> Result<Scenario, YamlError> {
    from_file(&yaml::entry_path(
        root,
        "scenarios",
        id,
        "no such scenario; known scenarios",
    )?)
}

/// Parses one scenario file and checks what serde cannot.
pub fn from_file(path: &Path) -> Result<Scenario, YamlError> {
    let text = yaml::read(path)?;
    let mut scenario: Scenario = yaml::parse(path, &text)?;
    let invalid = |message: String| YamlError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    yaml::check_id(path, &text, &scenario.id)?;
    crate::spec::expect::check(&scenario.expect, path, &text)?;
    if scenario.hang_seconds == 0 || u64::from(scenario.hang_seconds) > MAX_HANG.as_secs() {
        return Err(invalid(format!(
            "hang_seconds: {} is outside 1..={}: a longer hang would outlast the case's deadlines",
            scenario.hang_seconds,
            MAX_HANG.as_secs()
        )));
    }
    if scenario.trigger.needs_crasher() != scenario.crasher.is_some() {
        return Err(invalid(if scenario.crasher.is_some() {
            "`crasher:` is only for the crasher and hang-then-nmi triggers".into()
        } else {
            "this trigger needs `crasher:` (oops, bug, panic, softlockup or hardlockup)".into()
        }));
    }
    if (scenario.trigger == Trigger::VmDump) == scenario.vm_dump_formats.is_empty() {
        return Err(invalid(
            "`vm_dump_formats:` is required for the vm-dump trigger and only for it".into(),
        ));
    }
    if scenario.trigger == Trigger::VmDump
        && (!scenario.expect.backtrace.is_empty() || scenario.expect.task.is_some())
    {
        return Err(invalid(
            "expect.backtrace and expect.task need a crash; vm-dump dumps a running guest".into(),
        ));
    }
    if scenario.trigger == Trigger::VmDump && scenario.expect.dump.is_some() {
        return Err(invalid(
            "expect.dump needs a capture by makedumpfile; vm-dump dumps with QEMU".into(),
        ));
    }
    if scenario.trigger == Trigger::Drill
        && !scenario.image.only.is_some_and(|kind| kind.own_kdump())
    {
        return Err(invalid(
            "the drill trigger needs `image: {only: debian}`: it runs the image's own kdump service and systemd".into(),
        ));
    }
    if scenario.drill_break.is_some() && scenario.trigger != Trigger::Drill {
        return Err(invalid(
            "`drill_break:` is only for the drill trigger".into(),
        ));
    }
    if let Some(command) = scenario
        .drill_break
        .as_deref()
        .filter(|c| c.contains(['\'', '\n']))
    {
        return Err(invalid(format!(
            "drill_break: {command:?} holds a quote or a newline; the guest reads it as one shell word"
        )));
    }
    if let Some(cpus) = scenario
        .guest
        .cpus
        .filter(|c| !(1..=kernel::MAX_CPUS).contains(c))
    {
        let max = kernel::MAX_CPUS;
        let message = format!("guest.cpus: {cpus} is outside 1..={max}");
        return Err(yaml::at_key(path, &text, "cpus", message));
    }
    if let Some(mib) = scenario.guest.dirty_mib {
        if !scenario.image.only.is_some_and(|kind| kind.kdrill_init()) {
            return Err(invalid("guest.dirty_mib needs `image: {only: minimal}`: only kdrill's own /init dirties memory".into()));
        }
        if !(1..=MAX_DIRTY_MIB).contains(&mib) {
            return Err(invalid(format!(
                "guest.dirty_mib: {mib} is outside 1..={MAX_DIRTY_MIB}"
            )));
        }
    }
    if scenario.expect.log.is_empty() {
        return Err(invalid(
            "expect.log is empty: name at least one line the dump's log must hold".into(),
        ));
    }
    for key in scenario.sysctls.keys() {
        if key.is_empty()
            || key.contains('/')
            || key.contains("..")
            || key.contains(char::is_whitespace)
        {
            return Err(invalid(format!(
                "sysctl `{key}` is not a dotted name like kernel.sysrq"
            )));
        }
    }
    if scenario.mode == BootMode::Fast && scenario.capture.kexec.iter().any(|a| a == "-s") {
        return Err(invalid(
            "capture.kexec: -s (kexec_file_load) loads only a bzImage, and a fast boot loads the ELF vmlinux: set `mode: faithful`".into(),
        ));
    }
    crate::spec::image::check_needs("guest.needs", &scenario.guest.needs).map_err(invalid)?;
    let guest_words = scenario.guest.cmdline.iter().chain(&scenario.crasher);
    for value in scenario
        .sysctls
        .values()
        .chain(&scenario.capture.makedumpfile)
        .chain(&scenario.capture.kexec)
        .chain(guest_words)
    {
        if value.contains(['\'', '\n']) {
            return Err(invalid(format!(
                "`{value}` holds a quote or newline, which the guest's init cannot pass on"
            )));
        }
    }
    check_image(&mut scenario.image, path).map_err(invalid)?;
    Ok(scenario)
}

/// Checks the `image:` block and anchors its overlay at the scenario's folder.
fn check_image(image: &mut ScenarioImage, path: &Path) -> Result<(), String> {
    if let Some(size) = &image.crashkernel {
        setup::check_crashkernel(size).map_err(|e| format!("image: {e}"))?;
    }
    for disk in &image.disks {
        setup::check_disk(disk).map_err(|e| format!("image: {e}"))?;
    }
    let debian_only = image.overlay.is_some()
        || !image.disks.is_empty()
        || image.dump_target != DumpTarget::Local;
    if debian_only && !image.only.is_some_and(|kind| kind.own_kdump()) {
        return Err(
            "image: an overlay, extra disks or a dump target need `only: debian` (the minimal image has no kdump-tools)".into(),
        );
    }
    if let Some(overlay) = &mut image.overlay {
        if overlay.is_relative() {
            // Beside the scenario file (or, for a `--root` one, where the operator wrote it).
            *overlay = crate::host::bundle::beside(path, overlay);
        }
    }
    Ok(())
}

/// The ids of every `scenarios/*.yaml`, sorted.
pub fn list_ids(root: &Path) -> Vec<String> {
    yaml::stems(&root.join("scenarios"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_err(yaml: &str, expected: &str) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.yaml");
        std::fs::write(&path, yaml).unwrap();
        let err = from_file(&path).unwrap_err().to_string();
        assert!(err.contains(expected), "{err}");
    }

    #[test]
    fn parses_a_full_scenario() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.yaml");
        std::fs::write(
            &path,
            "id: t\ndescription: d\ntrigger: sysrq\nsysctls:\n  kernel.sysrq: 1\nexpect:\n  log: [a, b]\n",
        )
        .unwrap();
        let s = from_file(&path).unwrap();
        assert_eq!(s.trigger, Trigger::Sysrq);
        assert_eq!(s.sysctls["kernel.sysrq"], "1");
        assert_eq!(s.capture.makedumpfile, ["-c", "-d", "31"]);
        assert_eq!(s.mode, BootMode::Fast);
        assert!(s.capture.kexec.is_empty());
        assert_eq!(s.expect.log, ["a", "b"]);
    }

    #[test]
    fn unknown_trigger_names_the_line() {
        check_err(
            "id: t\ndescription: d\ntrigger: teleport\nexpect:\n  log: [a]\n",
            "t.yaml:3:10: trigger: unknown variant `teleport`",
        );
    }

    #[test]
    fn id_must_match_file_name() {
        check_err(
            "id: other\ndescription: d\ntrigger: sysrq\nexpect:\n  log: [a]\n",
            "differs from the file name",
        );
    }

    #[test]
    fn empty_expectations_are_refused() {
        check_err(
            "id: t\ndescription: d\ntrigger: sysrq\nexpect:\n  log: []\n",
            "expect.log is empty",
        );
    }

    #[test]
    fn crasher_word_goes_with_crasher_triggers_only() {
        check_err(
            "id: t\ndescription: d\ntrigger: crasher\nexpect:\n  log: [a]\n",
            "this trigger needs `crasher:`",
        );
        check_err(
            "id: t\ndescription: d\ntrigger: sysrq\ncrasher: oops\nexpect:\n  log: [a]\n",
            "`crasher:` is only for",
        );
    }

    #[test]
    fn hang_seconds_stay_within_the_budget() {
        let yaml = |n: u32| {
            format!("id: t\ndescription: d\ntrigger: hang-then-nmi\ncrasher: hardlockup\nhang_seconds: {n}\nexpect:\n  log: [a]\n")
        };
        check_err(&yaml(61), "hang_seconds: 61 is outside 1..=60");
        check_err(&yaml(0), "hang_seconds: 0 is outside");
    }

    #[test]
    fn quotes_cannot_reach_the_guest_init() {
        check_err(
            "id: t\ndescription: d\ntrigger: sysrq\nguest:\n  cmdline: [\"a'b\"]\nexpect:\n  log: [a]\n",
            "holds a quote or newline",
        );
    }

    #[test]
    fn kexec_file_load_needs_a_faithful_boot() {
        check_err(
            "id: t\ndescription: d\ntrigger: sysrq\ncapture:\n  kexec: [-s]\nexpect:\n  log: [a]\n",
            "set `mode: faithful`",
        );
        check_err(
            "id: t\ndescription: d\ntrigger: sysrq\nmode: quick\nexpect:\n  log: [a]\n",
            "mode: unknown variant `quick`",
        );
    }

    #[test]
    fn an_image_block_is_checked_and_its_overlay_anchored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.yaml");
        std::fs::write(
            &path,
            "id: t\ndescription: d\ntrigger: sysrq\nimage:\n  only: debian\n  overlay: overlays/t\n  crashkernel: 96M\n  dump_target: ssh\nexpect:\n  log: [a]\n",
        )
        .unwrap();
        let s = from_file(&path).unwrap();
        assert_eq!(s.image.overlay, Some(dir.path().join("overlays/t")));
        assert_eq!(s.image.dump_target, DumpTarget::Ssh);
        check_err(
            "id: t\ndescription: d\ntrigger: sysrq\nimage:\n  overlay: o\nexpect:\n  log: [a]\n",
            "need `only: debian`",
        );
        check_err(
            "id: t\ndescription: d\ntrigger: sysrq\nimage:\n  crashkernel: big\nexpect:\n  log: [a]\n",
            "image: crashkernel `big`",
        );
    }

    #[test]
    fn dirtying_memory_is_for_the_minimal_image() {
        let yaml = |image: &str, mib: u32| {
            format!("id: t\ndescription: d\ntrigger: sysrq\nin_all: false\nguest:\n  dirty_mib: {mib}\n{image}expect:\n  log: [a]\n")
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.yaml");
        std::fs::write(&path, yaml("image:\n  only: minimal\n", 560)).unwrap();
        let s = from_file(&path).unwrap();
        assert_eq!((s.guest.dirty_mib, s.in_all), (Some(560), false));
        check_err(
            &yaml("", 560),
            "guest.dirty_mib needs `image: {only: minimal}`",
        );
        check_err(
            &yaml("image:\n  only: minimal\n", 0),
            "guest.dirty_mib: 0 is outside",
        );
    }

    #[test]
    fn sysctl_names_cannot_escape_proc_sys() {
        check_err(
            "id: t\ndescription: d\ntrigger: sysrq\nsysctls:\n  ../x: 1\nexpect:\n  log: [a]\n",
            "is not a dotted name",
        );
    }
}
