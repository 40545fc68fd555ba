//! How one case boots (pure): its mode (the scenario's, unless the run forces one), whether it
//! starts from a saved guest shape, and the `kexec -p` and makedumpfile options that follow.

use crate::case::Case;
pub use crate::spec::mode::Plan;
use crate::spec::scenario::{BootMode, Trigger};

/// What a run may change about every case's boot (`KDRILL_MODE`, `KDRILL_RESTORE`, `--mode`,
/// `--no-restore`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Overrides {
    /// Every case in this mode, whatever its scenario says.
    pub mode: Option<BootMode>,
    /// Never start from a saved shape.
    pub no_restore: bool,
}

impl Overrides {
    /// From `KDRILL_MODE` (`faithful`, `fast`) and `KDRILL_RESTORE` (`0` turns restoring off).
    pub fn from_env() -> Result<Overrides, String> {
        Overrides::parse(
            std::env::var("KDRILL_MODE").ok().as_deref(),
            std::env::var("KDRILL_RESTORE").ok().as_deref(),
        )
    }

    fn parse(mode: Option<&str>, restore: Option<&str>) -> Result<Overrides, String> {
        let mode = match mode.map(str::trim).filter(|m| !m.is_empty()) {
            None => None,
            Some(word) => Some(BootMode::from_word(word).ok_or_else(|| {
                format!("KDRILL_MODE={word}: not a boot mode (faithful or fast)")
            })?),
        };
        let no_restore = match restore.map(str::trim).filter(|r| !r.is_empty()) {
            None | Some("1") => false,
            Some("0") => true,
            Some(other) => {
                return Err(format!(
                    "KDRILL_RESTORE={other}: 0 turns restoring from saved shapes off, 1 (the default) on"
                ))
            }
        };
        Ok(Overrides { mode, no_restore })
    }
}

/// Where a fast boot reserves the capture kernel's memory (`crashkernel=<size>@256M`).
/// kexec-tools' ELF loader puts a vmlinux at the physical addresses its program headers name,
/// so the capture vmlinux is rebased there (`fetch::vmlinux::rebased`): above the first kernel,
/// which PVH loads at its link address (16 MiB, ~75 MiB with its .bss), and below the
/// initramfs, which QEMU puts near the top of RAM.
pub const FAST_CRASH_BASE_MIB: u64 = 256;
/// Room a fast boot leaves above the reservation for the initramfs and the first kernel's own
/// allocations.
const FAST_HEADROOM_MIB: u64 = 384;

/// The plan of `case` under `overrides`.
pub fn plan(case: &Case, overrides: Overrides) -> Plan {
    let scenario = &case.scenario;
    if case.setup.image.own_kdump() {
        return own_kdump(case, overrides);
    }
    let wanted = overrides.mode.unwrap_or(scenario.mode);
    let crashkernel = case.crashkernel().to_string();
    let fast_crashkernel = match wanted {
        BootMode::Fast => fast_reservation(&crashkernel, case.kernel.guest.memory_mib),
        BootMode::Faithful => Err(String::new()),
    };
    let (mode, crashkernel, faithful_because) = match (wanted, fast_crashkernel) {
        (BootMode::Fast, Ok(fixed)) => (BootMode::Fast, fixed, None),
        (BootMode::Fast, Err(why)) => (BootMode::Faithful, crashkernel, Some(why)),
        (BootMode::Faithful, _) => (BootMode::Faithful, crashkernel, None),
    };
    let mut kexec: Vec<String> = scenario
        .capture
        .kexec
        .iter()
        .filter(|a| mode == BootMode::Faithful || a.as_str() != "-s")
        .cloned()
        .collect();
    let mut makedumpfile = scenario.capture.makedumpfile.clone();
    let boots_because = match mode {
        BootMode::Faithful => None,
        BootMode::Fast => {
            // The ELF vmlinux is loaded without purgatory's checksums (`-i`) and booted the
            // Linux way, with boot parameters for its command line and initramfs
            // (`--args-linux`); LZO is ~3x faster than zlib under emulation and reads the same.
            // `-c`: the kexec_load system call at once. kexec-tools 2.0.29 (Debian 13) tries
            // kexec_file_load first; that pass runs the ELF loader once, the kernel refuses an
            // ELF, and the kexec_load pass that follows then fails "Invalid memory segment" on
            // the same segments 2.0.25 loads.
            kexec.splice(
                0..0,
                [
                    "-c".to_string(),
                    "-i".to_string(),
                    "--args-linux".to_string(),
                ],
            );
            for option in &mut makedumpfile {
                if option == "-c" {
                    *option = "-l".into();
                }
            }
            restore_blocker(case, overrides)
        }
    };
    Plan {
        mode,
        restore: mode == BootMode::Fast && boots_because.is_none(),
        boots_because,
        faithful_because,
        crashkernel,
        kexec,
        makedumpfile,
    }
}

/// An image whose own kdump-tools loads the capture kernel (`kexec -p` with its options, at boot)
/// and runs makedumpfile with its own settings: kdrill boots it as a host boots, always. A
/// scenario's `mode:` is the minimal image's; a `fast` asked for the run (`--mode`,
/// `KDRILL_MODE`) says why it does not apply. Its first boot, up to "ready to kdump", is a real
/// boot of the image all the same whichever case follows: it is restored from the image's shape
/// unless the case changes what that boot sees.
fn own_kdump(case: &Case, overrides: Overrides) -> Plan {
    let wanted = overrides.mode.unwrap_or(BootMode::Faithful);
    let boots_because = own_kdump_blocker(case, overrides);
    Plan {
        mode: BootMode::Faithful,
        restore: boots_because.is_none(),
        boots_because,
        faithful_because: (wanted == BootMode::Fast).then(|| {
            format!(
                "the {} image boots as a host does: its own kdump-tools loads the capture kernel and runs makedumpfile, so a fast boot does not apply",
                case.setup.image.name()
            )
        }),
        crashkernel: case.crashkernel().to_string(),
        kexec: Vec::new(),
        makedumpfile: Vec::new(),
    }
}

/// Why a case on an image with its own kdump boots its first boot instead of restoring the
/// image's shape: the shape's boot mounted, wired or saw something that is this case's own.
/// (The scenario's sysctls, modules and keys are set after the restore, in the case's own part
/// of boot 1; an overlay or `crashkernel=` makes a shape of its own.)
fn own_kdump_blocker(case: &Case, overrides: Overrides) -> Option<String> {
    let (image, guest) = (&case.scenario.image, &case.scenario.guest);
    if overrides.no_restore {
        return Some("restoring is turned off for this run".into());
    }
    if !image.disks.is_empty() {
        let labels: Vec<&str> = image.disks.iter().map(|d| d.label.as_str()).collect();
        return Some(format!(
            "its disks ({}) are its own, and boot 1 mounts them",
            labels.join(", ")
        ));
    }
    if image.dump_target != crate::spec::setup::DumpTarget::Local {
        return Some("its network dump target (a host sshd of its own) is wired at boot".into());
    }
    if !guest.qemu.is_empty() {
        return Some(format!("its route adds devices ({})", guest.qemu.join(" ")));
    }
    None
}

/// `crashkernel=` of a fast boot: the entry's plain size, placed at [`FAST_CRASH_BASE_MIB`];
/// an error says why this entry cannot boot fast.
fn fast_reservation(crashkernel: &str, memory_mib: u32) -> Result<String, String> {
    let size = match crate::spec::cmdline::memparse(crashkernel) {
        Some((bytes, "")) if bytes > 0 => bytes,
        _ => {
            return Err(format!(
                "crashkernel={crashkernel} is not a plain size, and a fast boot places the reservation itself"
            ))
        }
    };
    let size_mib = size.div_ceil(1 << 20);
    if FAST_CRASH_BASE_MIB + size_mib + FAST_HEADROOM_MIB > u64::from(memory_mib) {
        return Err(format!(
            "a fast boot reserves at {FAST_CRASH_BASE_MIB} MiB and needs {} MiB of RAM for crashkernel={crashkernel}, the guest has {memory_mib} MiB",
            FAST_CRASH_BASE_MIB + size_mib + FAST_HEADROOM_MIB
        ));
    }
    Ok(format!(
        "{crashkernel}@{}",
        crate::spec::cmdline::mib(FAST_CRASH_BASE_MIB)
    ))
}

/// Why a fast case cannot start from a shape: the shape is the guest every such case shares, so
/// a case that changes the machine (devices, vCPUs, command line, modules) boots its own.
fn restore_blocker(case: &Case, overrides: Overrides) -> Option<String> {
    let (scenario, guest) = (&case.scenario, &case.scenario.guest);
    if overrides.no_restore {
        return Some("restoring is turned off for this run".into());
    }
    if scenario.trigger == Trigger::VmDump {
        return Some("vm-dump dumps the first boot itself".into());
    }
    if !guest.qemu.is_empty() {
        return Some(format!("its route adds devices ({})", guest.qemu.join(" ")));
    }
    if !guest.needs.is_empty() {
        let needs: Vec<&str> = guest.needs.iter().map(|n| n.need.as_str()).collect();
        return Some(format!(
            "its route loads modules at boot ({})",
            needs.join(", ")
        ));
    }
    if !guest.cmdline.is_empty() {
        return Some("its route changes the kernel command line".into());
    }
    match guest.cpus {
        Some(cpus) if cpus != case.kernel.guest.cpus => {
            Some(format!("its route needs {cpus} vCPUs"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{kernel, scenario};

    fn case(scenario_id: &str) -> Case {
        let root =
            crate::host::paths::find_project_root(std::path::Path::new(env!("CARGO_MANIFEST_DIR")))
                .unwrap();
        Case::new(
            kernel::load(&root, "debian-6.1").unwrap(),
            scenario::load(&root, scenario_id).unwrap(),
        )
    }

    #[test]
    fn an_image_with_its_own_kdump_boots_as_a_host_and_says_why_fast_does_not_apply() {
        let mut c = case("nmi");
        c.setup.image = crate::spec::images::test_registry()
            .find("debian-trixie")
            .unwrap();
        // The scenario's `mode: fast` is the minimal image's: nothing to say.
        let p = plan(&c, Overrides::default());
        assert_eq!((p.mode, p.restore), (BootMode::Faithful, true));
        assert!(p.kexec.is_empty() && p.makedumpfile.is_empty(), "{p:?}");
        assert_eq!(p.crashkernel, "256M");
        assert_eq!(p.faithful_because, None);
        // KDRILL_MODE=fast or --mode fast: said, not silently ignored.
        let fast = Overrides {
            mode: Some(BootMode::Fast),
            no_restore: false,
        };
        let why = plan(&c, fast).faithful_because.unwrap();
        assert!(
            why.contains("debian-trixie image") && why.contains("fast boot does not apply"),
            "{why}"
        );
        let faithful = Overrides {
            mode: Some(BootMode::Faithful),
            no_restore: false,
        };
        assert_eq!(plan(&c, faithful).faithful_because, None);
        let no_restore = Overrides {
            mode: None,
            no_restore: true,
        };
        let p = plan(&c, no_restore);
        assert_eq!(
            (p.restore, p.boots_because.as_deref()),
            (false, Some("restoring is turned off for this run"))
        );
    }

    #[test]
    fn a_case_whose_first_boot_sees_its_own_disks_target_or_devices_boots_it() {
        let on_trixie = |id: &str| {
            let mut c = case(id);
            c.setup.image = crate::spec::images::test_registry()
                .find("debian-trixie")
                .unwrap();
            plan(&c, Overrides::default())
        };
        for id in ["sysrq", "oops", "panic", "sysrq-serial"] {
            let p = on_trixie(id);
            assert!(p.restore && p.boots_because.is_none(), "{id}: {p:?}");
        }
        let why = |id: &str| on_trixie(id).boots_because.unwrap_or_default();
        assert!(
            why("watchdog").starts_with("its route adds devices"),
            "{}",
            why("watchdog")
        );
        assert!(why("ssh").contains("network dump target"), "{}", why("ssh"));
        let mut c = case("sysrq");
        c.setup.image = crate::spec::images::test_registry()
            .find("debian-bookworm")
            .unwrap();
        c.scenario.image.disks = vec![crate::spec::setup::ExtraDisk {
            label: "kdrill-dump".into(),
            size_mib: 64,
            fill_mib: 60,
        }];
        let why = plan(&c, Overrides::default()).boots_because.unwrap();
        assert_eq!(
            why,
            "its disks (kdrill-dump) are its own, and boot 1 mounts them"
        );
    }

    #[test]
    fn the_reference_route_and_the_dump_formats_stay_faithful() {
        for id in ["sysrq", "dump-lzo", "dump-elf", "dump-flat", "kexec-file"] {
            let p = plan(&case(id), Overrides::default());
            assert_eq!((p.mode, p.restore), (BootMode::Faithful, false), "{id}");
            assert!(!p.kexec.iter().any(|a| a == "-i"), "{id}");
        }
        let p = plan(&case("sysrq"), Overrides::default());
        assert_eq!(p.makedumpfile, ["-c", "-d", "31"]);
        assert_eq!(p.crashkernel, "256M");
        assert_eq!(
            plan(&case("kexec-file"), Overrides::default()).kexec,
            ["-s"]
        );
    }

    #[test]
    fn other_routes_run_fast_and_restore_when_the_machine_is_the_shared_one() {
        for id in ["nmi", "oops", "sysrq-serial", "cpu1", "softlockup"] {
            let p = plan(&case(id), Overrides::default());
            assert_eq!((p.mode, p.restore), (BootMode::Fast, true), "{id}: {p:?}");
            assert_eq!(p.kexec, ["-c", "-i", "--args-linux"], "{id}");
            assert_eq!(p.makedumpfile, ["-l", "-d", "31"], "{id}");
            assert_eq!(p.crashkernel, "256M@256M", "{id}");
        }
        for (id, why) in [
            ("watchdog", "adds devices"),
            ("vm-dump", "vm-dump"),
            ("hang-nmi", "1 vCPUs"),
        ] {
            let p = plan(&case(id), Overrides::default());
            assert_eq!((p.mode, p.restore), (BootMode::Fast, false), "{id}");
            assert!(p.boots_because.as_deref().unwrap().contains(why), "{p:?}");
        }
    }

    #[test]
    fn a_reservation_fast_cannot_place_boots_faithful() {
        assert_eq!(fast_reservation("96M", 1024), Ok("96M@256M".into()));
        let range = fast_reservation("1G-4G:192M", 1024).unwrap_err();
        assert!(range.contains("not a plain size"), "{range}");
        let small = fast_reservation("256M", 768).unwrap_err();
        assert!(small.contains("the guest has 768 MiB"), "{small}");
        let mut c = case("nmi");
        c.kernel.guest.crashkernel = "512M@1G".into();
        let p = plan(&c, Overrides::default());
        assert_eq!((p.mode, p.restore), (BootMode::Faithful, false));
        assert_eq!(p.crashkernel, "512M@1G");
        assert!(p.faithful_because.is_some());
    }

    #[test]
    fn a_run_can_force_a_mode_or_turn_restoring_off() {
        let forced = Overrides::parse(Some("faithful"), None).unwrap();
        let p = plan(&case("nmi"), forced);
        assert_eq!((p.mode, p.restore), (BootMode::Faithful, false));
        assert_eq!(p.makedumpfile, ["-c", "-d", "31"]);
        let p = plan(
            &case("sysrq"),
            Overrides::parse(Some("fast"), None).unwrap(),
        );
        assert_eq!((p.mode, p.restore), (BootMode::Fast, true));
        // A forced fast boot cannot use kexec_file_load: the ELF vmlinux needs kexec_load.
        assert_eq!(
            plan(
                &case("kexec-file"),
                Overrides::parse(Some("fast"), None).unwrap()
            )
            .kexec,
            ["-c", "-i", "--args-linux"]
        );
        let p = plan(&case("nmi"), Overrides::parse(None, Some("0")).unwrap());
        assert_eq!((p.mode, p.restore), (BootMode::Fast, false));
        assert_eq!(Overrides::parse(None, Some("1")), Ok(Overrides::default()));
        let err = Overrides::parse(Some("quick"), None).unwrap_err();
        assert!(err.contains("KDRILL_MODE=quick"), "{err}");
        assert!(Overrides::parse(None, Some("yes")).is_err());
    }
}
