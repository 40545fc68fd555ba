//! `kdrill check` on bad input, each a class of the "never silently wrong" issue: a recommended
//! `crashkernel=` that must parse, files that could not be read named instead of taken as absent,
//! absurd host figures and calibrations refused naming their values; capture initrds read
//! through their archives as the tools write them.

use std::path::Path;

use crate::check::{calibration, evaluate, said, tree, Edit::*, DEBIAN, NO_KEXEC, RHEL};
use crate::support::kdrill;
use kdrill::readiness::Status;
use kdrill::spec::crashkernel;

/// Every `crashkernel=VALUE` in `text`, as written (quotes and backticks around it dropped).
fn crashkernel_values(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || matches!(c, '`' | '"' | '\'' | ','))
        .filter_map(|word| word.strip_prefix("crashkernel="))
        .map(|v| v.trim_end_matches([':', ';', ')', '.']).to_string())
        .filter(|v| !v.is_empty() && !v.contains('{') && !v.starts_with('<'))
        .collect()
}

fn check_text(root: &Path) -> String {
    let out = kdrill()
        .args(["check", "--root"])
        .arg(root)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The reproduction: a 330 MiB capture initrd made the estimate 1.1G, and the fix said
/// `crashkernel=1.1G`, which neither the kernel nor kdrill parses. Now every value printed
/// parses, is at least the estimate, and pasted into the tree's command line it is read back.
#[test]
fn a_large_initrd_gets_a_crashkernel_that_parses() {
    let dir = tree(DEBIAN, &[]);
    let initrd = dir.path().join("var/lib/kdump/initrd.img-6.1.0-47-amd64");
    std::fs::File::options()
        .write(true)
        .open(&initrd)
        .unwrap()
        .set_len(330 << 20)
        .unwrap();
    let text = check_text(dir.path());
    assert!(!text.contains("crashkernel=1.1G"), "{text}");
    let values = crashkernel_values(&text);
    assert!(values.contains(&"2G".to_string()), "{values:?}\n{text}");
    for value in &values {
        let params = crashkernel::from_cmdline(&format!("crashkernel={value}"));
        assert!(
            params.parsed.iter().all(|p| p.is_ok()),
            "crashkernel={value} does not parse: {:?}",
            params.parsed
        );
    }
    let (status, seen) = said(&evaluate(dir.path()), "crashkernel-size");
    assert_eq!(status, Status::Warn, "{seen}");
    assert!(seen.contains("raise the reservation to 2G"), "{seen}");
    // Pasted: the next run reads it back and asks for 2G.
    std::fs::write(
        dir.path().join("proc/cmdline"),
        "BOOT_IMAGE=/vmlinuz ro crashkernel=2G\n",
    )
    .unwrap();
    let (status, seen) = said(&evaluate(dir.path()), "crashkernel-param");
    assert_eq!(status, Status::Pass, "{seen}");
    assert!(seen.contains("crashkernel=2G asks for 2G"), "{seen}");
}

/// A kdump config with NUL bytes was "no kdump configuration" and PASS: now named.
#[test]
fn a_kdump_config_with_nul_bytes_is_named() {
    let dir = tree(
        DEBIAN,
        &[Write(
            "etc/default/kdump-tools",
            "USE_KDUMP=1\0\nKDUMP_COREDIR=\"/var/crash\"\n",
        )],
    );
    let report = evaluate(dir.path());
    for id in ["capture-cmdline", "kdump-service", "dump-target"] {
        let (status, text) = said(&report, id);
        assert_eq!(status, Status::Warn, "{id}: {text}");
        assert!(
            text.contains("could not read /etc/default/kdump-tools: binary content (NUL bytes)"),
            "{id}: {text}"
        );
    }
}

/// `etc -> ../etc` was "kdump-tools.service is disabled" with `systemctl enable` as the fix.
#[test]
fn a_symlink_loop_is_named_not_a_disabled_service() {
    let dir = tree(DEBIAN, &[Remove("etc"), Symlink("etc", "../etc")]);
    let (status, text) = said(&evaluate(dir.path()), "kdump-service");
    assert_eq!(status, Status::Warn, "{text}");
    assert!(
        !text.contains("disabled") && !text.contains("systemctl enable"),
        "{text}"
    );
    assert!(
        text.contains("could not read /etc/systemd/system: a symlink loop"),
        "{text}"
    );
    assert!(
        text.contains("could not read /etc/default/kdump-tools: a symlink loop"),
        "{text}"
    );
}

/// Makes `/proc/config.gz` of a tree unusable.
type Breakage<'a> = dyn Fn(&Path) + 'a;

/// A `/proc/config.gz` that is a folder (or does not unpack, or unpacks past the cap) is named,
/// and `/boot/config-<release>` is read instead: here it says the kernel cannot dump.
#[test]
fn a_broken_proc_config_falls_back_to_boot_config() {
    let no_dump = [
        Replace(
            "boot/config-6.1.0-47-amd64",
            "CONFIG_CRASH_DUMP=y",
            "# CONFIG_CRASH_DUMP is not set",
        ),
        Remove("sys/kernel/kexec_crash_size"),
        Remove("sys/kernel/kexec_crash_loaded"),
    ];
    let mut big = Vec::new();
    {
        use std::io::Write as _;
        let mut gz = flate2::write::GzEncoder::new(&mut big, flate2::Compression::fast());
        for i in 0..200_000 {
            writeln!(gz, "CONFIG_FILLER_{i}=y").unwrap();
        }
        writeln!(gz, "# CONFIG_KEXEC is not set").unwrap();
        gz.finish().unwrap();
    }
    let cases: [(&str, &Breakage<'_>); 3] = [
        ("is a directory", &|root| {
            std::fs::create_dir_all(root.join("proc/config.gz")).unwrap()
        }),
        ("does not unpack", &|root| {
            std::fs::write(root.join("proc/config.gz"), "CONFIG_KEXEC=y\n").unwrap()
        }),
        ("unpacks to more than the 4 MiB", &|root| {
            std::fs::write(root.join("proc/config.gz"), &big).unwrap()
        }),
    ];
    for (why, make) in cases {
        let dir = tree(DEBIAN, &no_dump);
        make(dir.path());
        let report = evaluate(dir.path());
        let (status, text) = said(&report, "capture-loaded");
        assert_eq!(status, Status::Fail, "{why}: {text}");
        assert!(
            text.contains("CONFIG_CRASH_DUMP is not set"),
            "{why}: {text}"
        );
        assert!(
            text.contains("could not read /proc/config.gz") && text.contains(why),
            "{why}: {text}"
        );
    }
    // Without a /boot/config to fall back to, the folder is still named (a WARN, not silence).
    let dir = tree(NO_KEXEC, &[Remove("proc/config.gz")]);
    std::fs::create_dir_all(dir.path().join("proc/config.gz")).unwrap();
    let (status, text) = said(&evaluate(dir.path()), "capture-loaded");
    assert!(status >= Status::Warn, "{text}");
    assert!(
        text.contains("could not read /proc/config.gz: is a directory"),
        "{text}"
    );
}

/// `0-ffffffffffffffff : System RAM` was "16777216.0T of RAM" and three PASSes.
#[test]
fn a_whole_address_space_of_ram_is_not_judged_as_ram() {
    let dir = tree(
        DEBIAN,
        &[Write(
            "proc/iomem",
            "0-ffffffffffffffff : System RAM\n  ab000000-baffffff : Crash kernel\n",
        )],
    );
    let report = evaluate(dir.path());
    let (status, text) = said(&report, "crashkernel-param");
    assert_eq!(status, Status::Warn, "{text}");
    assert!(
        text.contains("0-ffffffffffffffff : System RAM, the whole address space"),
        "{text}"
    );
    assert!(
        text.contains("18446744073709551616 bytes, above kdrill's limit of 64T"),
        "{text}"
    );
    assert!(!text.contains("16777216"), "{text}");
    assert_ne!(report.facts.system_ram_bytes, Some(u64::MAX));
}

/// Two `Crash kernel` lines for one 256M reservation: the sum disagreed with kexec_crash_size
/// and passed; now a WARN naming both, judged by the kernel's own figure.
#[test]
fn crash_kernel_lines_that_disagree_with_kexec_crash_size_warn() {
    let dir = tree(
        DEBIAN,
        &[Replace(
            "proc/iomem",
            "  ab000000-baffffff : Crash kernel\n",
            "  ab000000-baffffff : Crash kernel\n  ab000000-baffffff : Crash kernel\n",
        )],
    );
    let report = evaluate(dir.path());
    let (status, text) = said(&report, "crashkernel-reserved");
    assert_eq!(status, Status::Warn, "{text}");
    assert!(
        text.contains("kexec_crash_size says 268435456 (256M) but the \"Crash kernel\" ranges of /proc/iomem (ab000000-baffffff, ab000000-baffffff) hold 536870912 (512M)"),
        "{text}"
    );
    assert_eq!(report.facts.crash_reserved_bytes, Some(256 << 20));
}

/// A relative KDUMP_COREDIR listed the tree's /boot as earlier dumps; now a WARN naming it, and
/// nothing outside is looked at.
#[test]
fn a_relative_dump_folder_is_named_and_never_resolved() {
    let dir = tree(
        DEBIAN,
        &[Replace(
            "etc/default/kdump-tools",
            "KDUMP_COREDIR=\"/var/crash\"",
            "KDUMP_COREDIR=\"../../../../..\"",
        )],
    );
    let (status, text) = said(&evaluate(dir.path()), "dump-target");
    assert_eq!(status, Status::Warn, "{text}");
    assert!(
        text.contains(
            "the dump folder `../../../../..` (/etc/default/kdump-tools) is not an absolute path"
        ),
        "{text}"
    );
    let all = check_text(dir.path());
    assert!(
        !all.contains("/boot/config") && !all.contains("earlier dump"),
        "{all}"
    );
}

/// Files of mode 0644 in a /var/crash of mode 0000 are not "readable by everyone".
#[test]
fn dumps_in_a_closed_folder_are_not_readable_by_everyone() {
    let dump = "var/crash/202611201200/dump.202611201200";
    let dir = tree(DEBIAN, &[Mode(dump, 0o644), Mode("var/crash", 0o000)]);
    let (_, text) = said(&evaluate(dir.path()), "dump-target");
    assert!(!text.contains("readable by everyone"), "{text}");
    // The same files behind folders others may pass through are.
    let dir = tree(DEBIAN, &[Mode(dump, 0o644), Mode("var/crash", 0o711)]);
    let (status, text) = said(&evaluate(dir.path()), "dump-target");
    assert_eq!(status, Status::Warn, "{text}");
    assert!(
        text.contains("1 earlier dump file(s) readable by everyone"),
        "{text}"
    );
}

/// A malformed calibration file that is the only one in the tree was ignored without a word; so
/// were a minimum of 0, a failing size above the working one, a wrapped `<< 20` and two entries
/// for one memory size. Each is now named on check 3 (and an error for `--calibration`).
#[test]
fn calibrations_that_contradict_themselves_are_named() {
    let good = calibration("6.1.0-47-amd64", &[(8192, 200)]);
    let cases = [
        (
            "kernel: [\n".to_string(),
            "debian-6.1-minimal.yaml:".to_string(),
        ),
        (
            good.replace(
                "smallest_working_mib: 200",
                "smallest_working_mib: 17592186044416",
            ),
            "smallest_working_mib 17592186044416 at memory_mib 8192 is above kdrill's limit of 64T"
                .to_string(),
        ),
        (
            calibration("6.1.0-47-amd64", &[(8192, 200)])
                .replace("smallest_working_mib: 200", "smallest_working_mib: 0")
                .replace("largest_failing_mib: 192", "largest_failing_mib: null"),
            "smallest_working_mib is 0 at memory_mib 8192".to_string(),
        ),
        (
            good.replace("largest_failing_mib: 192", "largest_failing_mib: 300"),
            "largest_failing_mib 300 is not below smallest_working_mib 200".to_string(),
        ),
        (
            calibration("6.1.0-47-amd64", &[(8192, 200), (8192, 320)]),
            "memory_mib 8192 is given twice, with smallest_working_mib 200 and 320".to_string(),
        ),
    ];
    for (text, named) in cases {
        let dir = tree(DEBIAN, &[]);
        let folder = dir.path().join("etc/kdrill/calibration");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("debian-6.1-minimal.yaml"), &text).unwrap();
        let report = evaluate(dir.path());
        let (status, seen) = said(&report, "crashkernel-size");
        assert_eq!(status, Status::Warn, "{named}: {seen}");
        assert!(
            seen.contains(
                "ignored calibration file /etc/kdrill/calibration/debian-6.1-minimal.yaml"
            ) && seen.contains(&named),
            "{named}: {seen}"
        );
        assert_eq!(report.facts.calibrated_bytes, None, "{named}");
        let out = kdrill()
            .args(["check", "--root"])
            .arg(dir.path())
            .arg("--calibration")
            .arg(folder.join("debian-6.1-minimal.yaml"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{named}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&named), "{named}: {stderr}");
    }
}

/// newc archive of `(path, mode)` entries with empty contents, then the trailer.
fn newc(entries: &[(&str, u32)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (name, mode)) in entries.iter().chain(&[("TRAILER!!!", 0)]).enumerate() {
        out.extend(b"070701");
        for field in [
            i as u32 + 1,
            *mode,
            0,
            0,
            1,
            0,
            0,
            0,
            0,
            0,
            0,
            name.len() as u32 + 1,
            0,
        ] {
            out.extend(format!("{field:08X}").bytes());
        }
        out.extend(name.bytes());
        out.push(0);
        while out.len() % 4 != 0 {
            out.push(0);
        }
    }
    out
}

/// Check 16 on capture initrds shaped as dracut and initramfs-tools write them: an early
/// uncompressed microcode archive, padding, then the main archive compressed with zstd or xz.
#[test]
fn capture_initrds_are_read_through_their_archives() {
    const RELEASE: &str = "5.14.0-427.13.1.el9_4.x86_64";
    const KDUMP_IMG: &str = "boot/initramfs-5.14.0-427.13.1.el9_4.x86_64kdump.img";
    let early = newc(&[("kernel/x86/microcode/GenuineIntel.bin", 0o100644)]);
    let net = format!("usr/lib/modules/{RELEASE}/kernel/drivers/net/vmxnet3/vmxnet3.ko.xz");
    let xz = |data: &[u8]| {
        let mut w =
            lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::default()).unwrap();
        std::io::Write::write_all(&mut w, data).unwrap();
        w.finish().unwrap()
    };
    // Entries, zstd (else xz), the status and a text it must say.
    type Case<'a> = (Vec<(&'a str, u32)>, bool, Status, &'a str);
    let cases: Vec<Case> = vec![
        // The ssh target's pieces are all there.
        (
            vec![("usr/bin/ssh", 0o100755), (&net, 0o100644)],
            true,
            Status::Pass,
            "ssh target: usr/bin/ssh",
        ),
        (
            vec![("usr/bin/ssh", 0o100755), (&net, 0o100644)],
            false,
            Status::Pass,
            "entries in cpio + xz",
        ),
        // No ssh: the capture cannot reach the vault.
        (
            vec![(&net, 0o100644)],
            true,
            Status::Fail,
            "an ssh target, but no ssh program in the capture initrd",
        ),
        // No network driver module: only a built-in driver would do.
        (
            vec![("usr/sbin/ssh", 0o100755)],
            true,
            Status::Warn,
            "no network driver module in the capture initrd",
        ),
    ];
    for (entries, zstd, want, text) in cases {
        let main = newc(&entries);
        let mut initrd = early.clone();
        initrd.extend([0u8; 16]);
        initrd.extend(if zstd {
            zstd::encode_all(main.as_slice(), 3).unwrap()
        } else {
            xz(&main)
        });
        let dir = tree(RHEL, &[]);
        std::fs::write(dir.path().join(KDUMP_IMG), &initrd).unwrap();
        let (status, said) = said(&evaluate(dir.path()), "capture-initrd");
        assert_eq!(status, want, "{entries:?}: {said}");
        assert!(said.contains(text), "{entries:?}: want `{text}` in\n{said}");
    }
}
