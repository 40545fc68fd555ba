//! `kdrill check` on fixture trees: each check's PASS/WARN/FAIL/SKIP paths, snapshots of the table and
//! the JSON, the exit codes, and one run on the real host.
//!
//! Fixtures live in `tests/fixtures/check/<case>/`. Git keeps neither modes nor mtimes, so every test
//! works on a copy where [`tree`] sets them (the dump folder 0700, capture initrds newer than the kernel
//! image) and then applies the case's edits.
//!
//! Two capture initrds are real archives: debian-ready's is the one kdump-tools built in kdrill's
//! Debian 12 image for 6.1.0-47-amd64 (gzip, 413 entries), every file emptied but `modules.builtin`,
//! `modules.dep` and the symlinks, so it stays 6 KB; rhel-warnings' is shaped as dracut writes
//! one (an early microcode archive, then zstd) with the pieces its ssh target needs.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::support::kdrill;
use assert_cmd::Command;
use kdrill::readiness::{self, report, source::Root, Calibrated, Report, Status};

pub(crate) const DEBIAN: &str = "debian-ready";
/// A drill record as `kdrill drill --collect` writes it (taken from a Debian 12 guest's drill).
const DRILL_RECORD: &str = "var/lib/kdrill/drill/20261207T130733Z-358b.json";
const DRILL_PASSED: &str = r#"{"schema": "kdrill-drill/1", "id": "20261207T130733Z-358b", "route": "sysrq",
  "marker": "kdrill drill 20261207T130733Z-358b: crashing this host on purpose by sysrq",
  "armed_unix": 1796648853, "crash_unix": 1796648860, "hostname": "kdrill-debian",
  "kernel_release": "6.1.0-47-amd64", "service": "kdump-tools.service", "dump_dir": "/var/crash",
  "before": ["kexec_cmd"], "fingerprints": {"/etc/kdump.conf": "absent"}, "notify": null,
  "collected_unix": 1796649016, "success": true, "reason": null,
  "dump": "/var/crash/202612071308/dump.202612071308", "dump_bytes": 25292601,
  "panic_message": "sysrq triggered crash", "findings": [], "times": {"crash_to_back_s": 92.8}}"#;
const DRILL_OTHER_KERNEL: &str = r#"{"schema": "kdrill-drill/1", "id": "20261207T130733Z-358b", "route": "sysrq",
  "marker": "m", "armed_unix": 1796648853, "crash_unix": 1796648860, "hostname": null,
  "kernel_release": "6.1.0-40-amd64", "service": "kdump-tools.service", "dump_dir": "/var/crash",
  "before": [], "fingerprints": {}, "notify": null, "collected_unix": 1796649016, "success": true,
  "reason": null, "dump": null, "dump_bytes": null, "panic_message": null, "findings": [], "times": {}}"#;
const DRILL_FAILED: &str = r#"{"schema": "kdrill-drill/1", "id": "20261207T130733Z-358b", "route": "sysrq",
  "marker": "m", "armed_unix": 1796648853, "crash_unix": 1796648860, "hostname": null,
  "kernel_release": "6.1.0-47-amd64", "service": "kdump-tools.service", "dump_dir": "/var/crash",
  "before": [], "fingerprints": {}, "notify": null, "collected_unix": 1796649016, "success": false,
  "reason": "no dump was written for this drill in /var/crash (new entries: none)", "dump": null,
  "dump_bytes": null, "panic_message": null, "findings": [], "times": {}}"#;
const BARE: &str = "no-crashkernel";
pub(crate) const RHEL: &str = "rhel-warnings";
const ODD: &str = "odd-files";
/// This project's own build host as captured on 2026-12: a Firecracker guest whose 6.18 kernel
/// was built without kexec (`/proc/config.gz`: `# CONFIG_KEXEC is not set`), on Debian 12.
pub(crate) const NO_KEXEC: &str = "firecracker-no-kexec";

/// A change to a fixture copy.
pub(crate) enum Edit {
    Write(&'static str, &'static str),
    Replace(&'static str, &'static str, &'static str),
    Remove(&'static str),
    Mode(&'static str, u32),
    Symlink(&'static str, &'static str),
    /// Make a file older than the running kernel's image.
    Older(&'static str),
}
use Edit::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/check")
        .join(name)
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().unwrap();
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if kind.is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

fn set_mtime(path: &Path, when: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(when)
        .unwrap();
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Files with a fixed age: kernel images at `KERNEL_TIME`, capture initrds a day later.
const KERNEL_TIME: u64 = 1_704_067_200; // 2024-01-01

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            walk(&entry.path(), out);
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
}

/// A prepared copy of fixture `name` with `edits` applied.
pub(crate) fn tree(name: &str, edits: &[Edit]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    copy_tree(&fixture(name), root);
    let kernel = SystemTime::UNIX_EPOCH + Duration::from_secs(KERNEL_TIME);
    let mut files = Vec::new();
    walk(root, &mut files);
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy();
        let when = if name.starts_with("vmlinuz-") {
            kernel
        } else {
            kernel + Duration::from_secs(86_400)
        };
        set_mtime(file, when);
    }
    if root.join("var/crash").is_dir() {
        set_mode(&root.join("var/crash"), 0o700);
        let mut dumps = Vec::new();
        walk(&root.join("var/crash"), &mut dumps);
        dumps.iter().for_each(|f| set_mode(f, 0o600));
    }
    if name == RHEL {
        set_mtime(
            &root.join("boot/initramfs-5.14.0-427.13.1.el9_4.x86_64kdump.img"),
            kernel - Duration::from_secs(86_400),
        );
    }
    for edit in edits {
        match edit {
            Write(path, text) => {
                std::fs::create_dir_all(root.join(path).parent().unwrap()).unwrap();
                std::fs::write(root.join(path), text).unwrap();
            }
            Replace(path, from, to) => {
                let text = std::fs::read_to_string(root.join(path)).unwrap();
                assert!(text.contains(from), "{path} in {name} has no `{from}`");
                std::fs::write(root.join(path), text.replace(from, to)).unwrap();
            }
            Remove(path) => {
                let path = root.join(path);
                if path.is_dir() && !path.is_symlink() {
                    std::fs::remove_dir_all(path).unwrap();
                } else {
                    std::fs::remove_file(path).unwrap();
                }
            }
            Mode(path, mode) => set_mode(&root.join(path), *mode),
            Symlink(path, target) => std::os::unix::fs::symlink(target, root.join(path)).unwrap(),
            Older(path) => set_mtime(&root.join(path), kernel - Duration::from_secs(86_400)),
        }
    }
    dir
}

pub(crate) fn evaluate(dir: &Path) -> Report {
    let snapshot = readiness::gather(&Root::new(dir)).unwrap();
    readiness::evaluate(&snapshot)
}

/// Everything a check said, for `contains` assertions.
pub(crate) fn said(report: &Report, id: &str) -> (Status, String) {
    let check = report
        .checks
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no check {id}"));
    let text = format!(
        "{}\n{}\n{}",
        check.seen,
        check.fix.clone().unwrap_or_default(),
        check.details.join("\n")
    );
    (check.status, text)
}

/// The output with the temporary root replaced, so snapshots do not depend on it.
fn redact(text: &str, dir: &Path) -> String {
    text.replace(&dir.display().to_string(), "[root]")
        .replace(env!("CARGO_PKG_VERSION"), "[version]")
}

#[test]
fn every_check_takes_each_path() {
    #[rustfmt::skip]
    let cases: Vec<(&str, Vec<Edit>, &str, Status, &str)> = vec![
        // 1. crashkernel= on the command line
        (DEBIAN, vec![], "crashkernel-param", Status::Pass, "crashkernel=384M-:256M asks for 256M"),
        (BARE, vec![], "crashkernel-param", Status::Fail, "no crashkernel= on /proc/cmdline"),
        (BARE, vec![], "crashkernel-param", Status::Fail, "update-grub"),
        (DEBIAN, vec![Write("proc/cmdline", "ro crashkernel=16G-:512M\n")], "crashkernel-param", Status::Fail, "has no range covering"),
        (DEBIAN, vec![Write("proc/cmdline", "ro crashkernel=16G\n")], "crashkernel-param", Status::Fail, "the kernel refuses"),
        (DEBIAN, vec![Write("proc/cmdline", "ro crashkernel=0\n")], "crashkernel-param", Status::Fail, "crashkernel=0 asks for 0 bytes with 8.0G of RAM (System RAM in /proc/iomem): nothing is reserved"),
        (DEBIAN, vec![Write("proc/cmdline", "ro crashkernel=0-16G:0,16G-:256M\n")], "crashkernel-param", Status::Fail, "asks for 0 bytes"),
        (DEBIAN, vec![Write("proc/cmdline", "ro crashkernel=auto\n")], "crashkernel-param", Status::Warn, "only RHEL/CentOS 7–8 kernels"),
        (DEBIAN, vec![Write("proc/cmdline", "ro crashkernel=lots\n")], "crashkernel-param", Status::Fail, "`lots` is not a size"),
        (DEBIAN, vec![Write("proc/cmdline", "ro crashkernel=256M crashkernel=2G,middle\n")], "crashkernel-param", Status::Warn, "unknown suffix `,middle`"),
        (DEBIAN, vec![Write("proc/cmdline", "ro crashkernel=512M,high crashkernel=72M,low\n")], "crashkernel-param", Status::Pass, "asks for 512M + 72M low"),
        (DEBIAN, vec![Write("proc/cmdline", "ro -- crashkernel=256M\n")], "crashkernel-param", Status::Fail, "no crashkernel="),
        (DEBIAN, vec![Replace("boot/config-6.1.0-47-amd64", "CONFIG_CRASH_DUMP=y", "# CONFIG_CRASH_DUMP is not set"), Remove("sys/kernel/kexec_crash_size"), Remove("sys/kernel/kexec_crash_loaded")], "crashkernel-param", Status::Fail, "this kernel cannot dump (CONFIG_CRASH_DUMP is not set)"),
        // Before 6.7 a kernel without CONFIG_CRASH_DUMP could still reserve and load: the sysfs files decide.
        (DEBIAN, vec![Replace("boot/config-6.1.0-47-amd64", "CONFIG_CRASH_DUMP=y", "# CONFIG_CRASH_DUMP is not set")], "crashkernel-param", Status::Pass, "asks for 256M"),
        (ODD, vec![], "crashkernel-param", Status::Skip, "/proc/cmdline is a directory"),
        // 2. memory actually reserved
        (DEBIAN, vec![], "crashkernel-reserved", Status::Pass, "256M reserved"),
        (DEBIAN, vec![], "crashkernel-reserved", Status::Pass, "ab000000-baffffff : Crash kernel"),
        (BARE, vec![], "crashkernel-reserved", Status::Fail, "nothing reserved for a capture kernel"),
        (DEBIAN, vec![Write("sys/kernel/kexec_crash_size", "0\n"), Replace("proc/iomem", "  ab000000-baffffff : Crash kernel\n", "")], "crashkernel-reserved", Status::Fail, "asks for 256M but nothing was reserved"),
        (DEBIAN, vec![Write("proc/cmdline", "ro crashkernel=auto\n"), Write("sys/kernel/kexec_crash_size", "0\n"), Replace("proc/iomem", "  ab000000-baffffff : Crash kernel\n", "")], "crashkernel-reserved", Status::Fail, "this kernel does not understand `auto`"),
        (ODD, vec![], "crashkernel-reserved", Status::Skip, "holds `lots`, not a number"),
        // 3. reservation large enough
        (DEBIAN, vec![], "crashkernel-size", Status::Pass, "256M reserved ≥ estimate"),
        (RHEL, vec![], "crashkernel-size", Status::Warn, "96M reserved < estimate"),
        (RHEL, vec![], "crashkernel-size", Status::Warn, "grubby --update-kernel=ALL --args=\"crashkernel=256M\""),
        (BARE, vec![], "crashkernel-size", Status::Skip, "nothing reserved to size"),
        (DEBIAN, vec![Remove("proc/sys/kernel/arch")], "crashkernel-size", Status::Pass, "256M reserved ≥ estimate 111.3M\n"),
        (DEBIAN, vec![Remove("proc/sys/kernel/arch"), Write("sos_commands/kernel/uname_-a", "Linux db1 6.1.0-47-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.158-1 x86_64 GNU/Linux\n")], "crashkernel-size", Status::Pass, "x86_64 default for this RAM"),
        // 4. capture kernel loaded
        (DEBIAN, vec![], "capture-loaded", Status::Pass, "capture kernel loaded"),
        (BARE, vec![], "capture-loaded", Status::Fail, "no capture kernel loaded"),
        (BARE, vec![], "capture-loaded", Status::Fail, "reserve memory first"),
        (DEBIAN, vec![Write("sys/kernel/kexec_crash_loaded", "0\n"), Write("sys/kernel/security/lockdown", "none [integrity] confidentiality\n")], "capture-loaded", Status::Fail, "KDUMP_KEXEC_ARGS=\"-s\""),
        (DEBIAN, vec![Write("sys/kernel/kexec_crash_loaded", "0\n"), Write("proc/sys/kernel/kexec_load_disabled", "1\n")], "capture-loaded", Status::Fail, "no kexec load is possible until reboot"),
        (DEBIAN, vec![Write("sys/kernel/kexec_crash_loaded", "0\n"), Remove("usr/sbin/kexec")], "capture-loaded", Status::Fail, "apt install kexec-tools"),
        (ODD, vec![], "capture-loaded", Status::Skip, "holds `maybe`"),
        // 5. kdump service and capture initrd
        (DEBIAN, vec![], "kdump-service", Status::Pass, "kdump-tools.service: enabled"),
        (DEBIAN, vec![], "kdump-service", Status::Pass, "capture initrd /var/lib/kdump/initrd.img"),
        (BARE, vec![], "kdump-service", Status::Fail, "no kdump service installed"),
        (BARE, vec![], "kdump-service", Status::Fail, "apt install kdump-tools"),
        (DEBIAN, vec![Write("sys/kernel/kexec_crash_loaded", "0\n"), Remove("etc/systemd/system/multi-user.target.wants/kdump-tools.service")], "kdump-service", Status::Fail, "kdump-tools.service is disabled"),
        (DEBIAN, vec![Write("sys/kernel/kexec_crash_loaded", "0\n"), Symlink("etc/systemd/system/kdump-tools.service", "/dev/null")], "kdump-service", Status::Fail, "systemctl unmask kdump-tools.service"),
        (DEBIAN, vec![Write("sys/kernel/kexec_crash_loaded", "0\n"), Replace("etc/default/kdump-tools", "USE_KDUMP=1", "USE_KDUMP=0")], "kdump-service", Status::Fail, "USE_KDUMP is not 1"),
        (DEBIAN, vec![Write("sys/kernel/kexec_crash_loaded", "0\n"), Remove("var/lib/kdump/initrd.img"), Remove("var/lib/kdump/initrd.img-6.1.0-47-amd64")], "kdump-service", Status::Fail, "no capture initrd"),
        (DEBIAN, vec![Older("var/lib/kdump/initrd.img-6.1.0-47-amd64")], "kdump-service", Status::Warn, "is older than /boot/vmlinuz-6.1.0-47-amd64"),
        (RHEL, vec![], "kdump-service", Status::Warn, "kdumpctl rebuild"),
        // Loaded by hand (or by a test harness) with no service: a crash today is caught, a reboot disarms it.
        (DEBIAN, vec![Remove("etc/systemd/system/multi-user.target.wants/kdump-tools.service"), Remove("lib/systemd/system/kdump-tools.service")], "kdump-service", Status::Warn, "a crash today is still caught, but the next boot may not load one"),
        (DEBIAN, vec![Remove("etc/systemd/system/multi-user.target.wants/kdump-tools.service")], "kdump-service", Status::Warn, "kdump-tools.service is disabled (a capture kernel is loaded now"),
        // 6. SysRq
        (DEBIAN, vec![], "sysrq", Status::Pass, "kernel.sysrq = 1 (0x1) permits the crash key"),
        (DEBIAN, vec![], "sysrq", Status::Pass, "serial break then `c` on ttyS0"),
        (DEBIAN, vec![Write("proc/sys/kernel/sysrq", "446\n")], "sysrq", Status::Pass, "permits the crash key"),
        (BARE, vec![], "sysrq", Status::Warn, "lacks bit 0x8"),
        (BARE, vec![], "sysrq", Status::Warn, "sysctl -w kernel.sysrq=446"),
        (DEBIAN, vec![Write("proc/sys/kernel/sysrq", "0\n")], "sysrq", Status::Warn, "SysRq disabled"),
        (DEBIAN, vec![Remove("proc/sys/kernel/sysrq"), Replace("boot/config-6.1.0-47-amd64", "CONFIG_MAGIC_SYSRQ=y", "# CONFIG_MAGIC_SYSRQ is not set")], "sysrq", Status::Warn, "this kernel has no SysRq"),
        (DEBIAN, vec![Remove("proc/sys/kernel/sysrq")], "sysrq", Status::Skip, "/proc/sys/kernel/sysrq missing"),
        (ODD, vec![], "sysrq", Status::Skip, "holds `abc`, not a number"),
        // A sosreport has `sysctl -a` and `uname -a` output instead of the /proc/sys files.
        (DEBIAN, vec![Remove("proc/sys/kernel/sysrq"), Remove("proc/sys/kernel/osrelease"), Write("sos_commands/kernel/sysctl_-a", "kernel.sysctl_writes_strict = 1\nkernel.sysrq = 16\n"), Write("sos_commands/kernel/uname_-a", "Linux db1 6.1.0-47-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.158-1 x86_64 GNU/Linux\n")], "sysrq", Status::Warn, "kernel.sysrq = 16 (0x10) lacks bit 0x8"),
        (DEBIAN, vec![Remove("proc/sys/kernel/osrelease"), Remove("proc/sys/kernel/arch"), Write("sos_commands/kernel/uname_-a", "Linux db1 6.1.0-47-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.158-1 x86_64 GNU/Linux\n")], "tools", Status::Pass, "debuginfo: /usr/lib/debug/boot/vmlinux-6.1.0-47-amd64"),
        // 7. NMI panics
        (DEBIAN, vec![], "nmi-panic", Status::Pass, "an external NMI panics"),
        (RHEL, vec![], "nmi-panic", Status::Pass, "kernel.panic_on_unrecovered_nmi = 1"),
        (BARE, vec![], "nmi-panic", Status::Warn, "sysctl -w kernel.unknown_nmi_panic=1"),
        (ODD, vec![], "nmi-panic", Status::Skip, "holds `0x1`"),
        (DEBIAN, vec![Remove("proc/sys/kernel/unknown_nmi_panic"), Remove("proc/sys/kernel/panic_on_unrecovered_nmi"), Write("proc/sys/kernel/arch", "aarch64\n")], "nmi-panic", Status::Info, "x86 only"),
        (DEBIAN, vec![Remove("proc/sys/kernel/unknown_nmi_panic"), Remove("proc/sys/kernel/panic_on_unrecovered_nmi")], "nmi-panic", Status::Skip, "no NMI panic sysctls"),
        // 8. oops and hangs
        (DEBIAN, vec![], "oops-hang-panic", Status::Pass, "an oops panics; so do: kernel.softlockup_panic, kernel.hardlockup_panic"),
        (DEBIAN, vec![Write("proc/sys/kernel/nmi_watchdog", "0\n")], "oops-hang-panic", Status::Pass, "has no effect while kernel.nmi_watchdog = 0"),
        (BARE, vec![], "oops-hang-panic", Status::Warn, "an oops does not panic"),
        (BARE, vec![], "oops-hang-panic", Status::Warn, "trade-off"),
        (RHEL, vec![], "oops-hang-panic", Status::Warn, "no lockup or hung task panics"),
        (ODD, vec![], "oops-hang-panic", Status::Skip, "panic_on_oops missing"),
        // 9. after the dump
        (DEBIAN, vec![], "after-dump", Status::Pass, "notified by kdump-notify.path watches /var/crash"),
        (DEBIAN, vec![Remove("etc/systemd/system/paths.target.wants/kdump-notify.path")], "after-dump", Status::Warn, "nothing announces a new dump"),
        (DEBIAN, vec![Replace("var/crash/kexec_cmd", "panic=10 ", "")], "after-dump", Status::Warn, "the capture kernel has no panic="),
        (BARE, vec![], "after-dump", Status::Warn, "kernel.panic = 0"),
        (RHEL, vec![], "after-dump", Status::Warn, "kdump_post /usr/local/sbin/kdump-notify"),
        (RHEL, vec![Write("proc/sys/kernel/panic", "30\n")], "after-dump", Status::Pass, "reboots after a panic"),
        (ODD, vec![], "after-dump", Status::Warn, "/proc/sys/kernel/panic holds ``, not a number"),
        // 10. dump target
        (DEBIAN, vec![], "dump-target", Status::Pass, "/var/crash, 46.4G free"),
        (DEBIAN, vec![], "dump-target", Status::Pass, "1 earlier dump folder(s), newest /var/crash/202611201200"),
        (BARE, vec![], "dump-target", Status::Warn, "/var/crash does not exist"),
        (BARE, vec![], "dump-target", Status::Warn, "captured tree without df output"),
        (RHEL, vec![], "dump-target", Status::Warn, "dumps go to ssh kdump@vault.example.com:/var/crash"),
        (DEBIAN, vec![Mode("var/crash", 0o755)], "dump-target", Status::Warn, "open to other users (mode 0755)"),
        (DEBIAN, vec![Mode("var/crash", 0o701), Mode("var/crash/202611201200/dump.202611201200", 0o644)], "dump-target", Status::Warn, "readable by everyone"),
        (DEBIAN, vec![Replace("proc/mounts", "tmpfs /run", "tmpfs /var/crash")], "dump-target", Status::Fail, "is on tmpfs"),
        (DEBIAN, vec![Replace("sos_commands/filesys/df_-al_-x_autofs", "48626068", "486260")], "dump-target", Status::Warn, "474.9M free < estimated dump 794.1M"),
        (DEBIAN, vec![Replace("sos_commands/filesys/df_-al_-x_autofs", "48626068", "4862606"), Replace("etc/default/kdump-tools", "-c -d 31", "-c -d 1")], "dump-target", Status::Fail, "free < estimated dump 7.8G"),
        (ODD, vec![], "dump-target", Status::Fail, "/var/crash is not a folder"),
        // 11. tools
        (DEBIAN, vec![], "tools", Status::Pass, "kexec, makedumpfile, crash and debuginfo present"),
        (BARE, vec![], "tools", Status::Fail, "kexec missing; makedumpfile missing"),
        (BARE, vec![], "tools", Status::Fail, "apt install kexec-tools makedumpfile crash"),
        (RHEL, vec![], "tools", Status::Warn, "has no .debug_info (stripped)"),
        (RHEL, vec![], "tools", Status::Warn, "dnf debuginfo-install kernel-5.14.0-427.13.1.el9_4.x86_64"),
        (DEBIAN, vec![Remove("usr")], "tools", Status::Skip, "the captured tree has no /usr"),
        (ODD, vec![], "tools", Status::Fail, "not an ELF file"),
        // 12. capture command line
        (DEBIAN, vec![], "capture-cmdline", Status::Pass, "capture command line recorded kexec_cmd; no graphics driver loaded"),
        (RHEL, vec![], "capture-cmdline", Status::Warn, "graphics driver loaded (mgag200)"),
        (RHEL, vec![], "capture-cmdline", Status::Warn, "add `nomodeset` to KDUMP_COMMANDLINE_APPEND in /etc/sysconfig/kdump"),
        (DEBIAN, vec![Replace("var/crash/kexec_cmd", "nr_cpus=1 ", "")], "capture-cmdline", Status::Warn, "no nr_cpus=1"),
        (DEBIAN, vec![Replace("var/crash/kexec_cmd", "nr_cpus=1 ", "nr_cpus=1 crashkernel=256M ")], "capture-cmdline", Status::Warn, "still carries crashkernel="),
        (DEBIAN, vec![Write("proc/modules", "nvidia 56004608 2 - Live 0xffffffffc1000000\n")], "capture-cmdline", Status::Warn, "proprietary nvidia driver"),
        // A command line never seen is not judged: SKIP, with why, never PASS.
        (BARE, vec![Write("proc/modules", "ext4 1000 1 - Live 0x0\n"), Remove("sys/class/drm")], "capture-cmdline", Status::Skip, "capture command line unknown (no kdump configuration); no graphics driver loaded"),
        (BARE, vec![Write("proc/modules", "ext4 1000 1 - Live 0x0\n"), Remove("sys/class/drm")], "capture-cmdline", Status::Skip, "configure the kdump service (see kdump-service)"),
        (DEBIAN, vec![Remove("proc/cmdline")], "capture-cmdline", Status::Skip, "unknown (the running command line is unreadable)"),
        // A file holding far more than a value is quoted by a bounded excerpt.
        (DEBIAN, vec![Write("proc/sys/kernel/sysrq", "abcdefghij".repeat(1000).leak())], "sysrq", Status::Skip, "…`, not a number"),
        // 13. hypervisor
        (DEBIAN, vec![], "hypervisor", Status::Info, "virtual machine (QEMU/KVM, QEMU Standard PC (Q35 + ICH9, 2009))"),
        (DEBIAN, vec![], "hypervisor", Status::Info, "virsh dump --memory-only"),
        (RHEL, vec![], "hypervisor", Status::Info, "vmss2core"),
        (BARE, vec![], "hypervisor", Status::Info, "bare metal (Dell Inc. PowerEdge R650)"),
        (ODD, vec![], "hypervisor", Status::Skip, "cannot tell"),
        // 14. the last drill: none, one that counts, one the kernel outdated, a failed one, a broken record
        (DEBIAN, vec![], "last-drill", Status::Info, "no drill on record"),
        (DEBIAN, vec![Write(DRILL_RECORD, DRILL_PASSED)], "last-drill", Status::Pass, "drill 20261207T130733Z-358b passed on 2026-12-07 13:10:16 UTC"),
        (DEBIAN, vec![Write(DRILL_RECORD, DRILL_OTHER_KERNEL)], "last-drill", Status::Warn, "no longer counts: the running kernel changed since the drill: 6.1.0-40-amd64 → 6.1.0-47-amd64"),
        (DEBIAN, vec![Write(DRILL_RECORD, DRILL_FAILED)], "last-drill", Status::Warn, "FAILED on 2026-12-07 13:10:16 UTC"),
        (DEBIAN, vec![Write(DRILL_RECORD, "{\"schema\": \"kdrill-drill/1\"}")], "last-drill", Status::Skip, "cannot read a drill record: /var/lib/kdrill/drill/20261207T130733Z-358b.json: line 1"),
        // 15. makedumpfile against the running kernel (images/userspace.yaml's table)
        (DEBIAN, vec![], "makedumpfile-kernel", Status::Pass, "makedumpfile 1.7.2 (/var/lib/dpkg/status) knows kernels up to 6.0.1, below 6.1.0-47-amd64, but kdrill's own drills capture 6.1 kernels with it"),
        // Debian 12 on the 6.12 backports kernel keeps bookworm's makedumpfile 1.7.2.
        (DEBIAN, vec![Write("proc/sys/kernel/osrelease", "6.12.57+deb12-amd64\n")], "makedumpfile-kernel", Status::Warn, "makedumpfile 1.7.2 (/var/lib/dpkg/status) knows kernels up to 6.0.1; this host runs 6.12.57+deb12-amd64: free pages are not excluded, so dumps grow to the size of the RAM in use"),
        (DEBIAN, vec![Write("proc/sys/kernel/osrelease", "6.12.73+deb13-amd64\n"), Replace("var/lib/dpkg/status", "1:1.7.2-1", "1:1.7.6-1")], "makedumpfile-kernel", Status::Warn, "measured: Debian 13's makedumpfile 1.7.6 on its own 6.12.117 kernel: 323,037 pages dumped and 19,358 excluded"),
        (DEBIAN, vec![Write("proc/sys/kernel/osrelease", "6.12.73+deb13-amd64\n"), Replace("var/lib/dpkg/status", "1:1.7.2-1", "1:1.7.6-1")], "makedumpfile-kernel", Status::Warn, "install makedumpfile 1.7.7 or newer (it knows kernels up to 6.14.2)"),
        (DEBIAN, vec![Write("proc/sys/kernel/osrelease", "7.1.2+deb13-amd64\n"), Replace("var/lib/dpkg/status", "1:1.7.2-1", "1:1.7.9-1")], "makedumpfile-kernel", Status::Warn, "compound tail pages are mis-excluded"),
        (DEBIAN, vec![Replace("var/lib/dpkg/status", "1:1.7.2-1", "1:1.7.4-1"), Write("proc/sys/kernel/osrelease", "6.8.12-amd64\n")], "makedumpfile-kernel", Status::Warn, "knows kernels up to 6.6.0; this host runs 6.8.12-amd64: it will say \"The kernel version is not supported\""),
        (RHEL, vec![], "makedumpfile-kernel", Status::Skip, "run `makedumpfile -v` on the host"),
        (RHEL, vec![Write("installed-rpms", "kexec-tools-2.0.28-1.el9.x86_64       Mon 01 Jan 2024\nmakedumpfile-1.7.4-2.el9.x86_64      Mon 01 Jan 2024\n")], "makedumpfile-kernel", Status::Pass, "makedumpfile 1.7.4 (installed-rpms) knows kernels up to 6.6.0; this host runs 5.14.0-427.13.1.el9_4.x86_64"),
        (BARE, vec![], "makedumpfile-kernel", Status::Skip, "no makedumpfile installed (see tools)"),
        // 16. the capture initrd: debian-ready's is kdrill's Debian 12 image's own, contents emptied
        (DEBIAN, vec![], "capture-initrd", Status::Pass, "/var/lib/kdump/initrd.img holds what the dump target needs"),
        (DEBIAN, vec![], "capture-initrd", Status::Pass, "the root filesystem kdump-tools' capture boot mounts: ext4, module usr/lib/modules/6.1.0-47-amd64/kernel/fs/ext4/ext4.ko"),
        (DEBIAN, vec![Replace("proc/mounts", "/dev/vda1 / ext4", "/dev/vda1 / xfs")], "capture-initrd", Status::Fail, "no xfs module in the capture initrd for the root filesystem kdump-tools' capture boot mounts (xfs), and CONFIG_XFS_FS is not built in"),
        (DEBIAN, vec![Replace("proc/mounts", "/dev/vda1 / ext4", "/dev/vda1 / xfs"), Write("boot/config-6.1.0-47-amd64", "CONFIG_XFS_FS=y\n")], "capture-initrd", Status::Pass, "xfs, xfs built into the kernel"),
        (DEBIAN, vec![Write("sys/kernel/kexec_crash_size", "8192\n")], "capture-initrd", Status::Fail, "not less than the 8K reservation"),
        (DEBIAN, vec![Write("var/lib/kdump/initrd.img-6.1.0-47-amd64", "not an initrd\n")], "capture-initrd", Status::Skip, "starts neither a cpio archive nor a known compression"),
        (DEBIAN, vec![Replace("etc/default/kdump-tools", "KDUMP_COREDIR=\"/var/crash\"", "NFS=\"filer:/dumps\"")], "capture-initrd", Status::Fail, "no nfs module in the capture initrd for the nfs target (nfs)"),
        (DEBIAN, vec![Remove("proc/mounts")], "capture-initrd", Status::Skip, "the filesystem of / is unknown (no /proc/mounts entry for it)"),
        (RHEL, vec![], "capture-initrd", Status::Pass, "ssh target: usr/bin/ssh"),
        (RHEL, vec![], "capture-initrd", Status::Pass, "network drivers: vmxnet3.ko.xz"),
        (BARE, vec![], "capture-initrd", Status::Skip, "copy the capture initrd into the tree: /var/lib/kdump/initrd.img-6.1.0-47-amd64 (kdump-tools)"),
        // Crashkernel fixes in each distribution's own words.
        (BARE, vec![Write("etc/os-release", "ID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"24.10\"\n"), Write("proc/sys/kernel/osrelease", "6.11.0-8-generic\n")], "crashkernel-param", Status::Fail, "Ubuntu 24.10 and later enable kdump by default"),
        (BARE, vec![Write("etc/os-release", "ID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"24.10\"\n"), Write("proc/sys/kernel/osrelease", "6.11.0-8-generic\n")], "crashkernel-param", Status::Fail, "`apt install kdump-tools` (answer Yes to enabling it) brings that file"),
        (BARE, vec![Write("etc/os-release", "ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.4\"\n"), Write("proc/sys/kernel/osrelease", "5.14.0-427.13.1.el9_4.x86_64\n")], "crashkernel-param", Status::Fail, "run `kdumpctl reset-crashkernel` (kdump-utils' default for this machine"),
    ];
    let mut failures = Vec::new();
    let mut seen_ids = std::collections::BTreeSet::new();
    for (i, (base, edits, id, want, text)) in cases.iter().enumerate() {
        let dir = tree(base, edits);
        let report = evaluate(dir.path());
        let (status, said) = said(&report, id);
        seen_ids.insert((id.to_string(), status));
        if status != *want || !said.contains(text) {
            failures.push(format!(
                "case {i} ({base}, {id}): want {want:?} with `{text}`, got {status:?}:\n{said}\n"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Every check has a passing (or INFO) path and a path that is not.
    for (_, id, _, _) in readiness::CHECKS {
        assert!(
            seen_ids
                .iter()
                .any(|(i, s)| i == id && matches!(s, Status::Pass | Status::Info)),
            "{id} has no passing case"
        );
        assert!(
            seen_ids
                .iter()
                .any(|(i, s)| i == id && !matches!(s, Status::Pass | Status::Info)),
            "{id} has no failing case"
        );
    }
}

#[test]
fn verdicts_and_exit_codes() {
    for (name, verdict, code) in [
        (DEBIAN, "ready", 0),
        (RHEL, "ready_with_warnings", 1),
        (BARE, "not_ready", 2),
        (ODD, "not_ready", 2),
    ] {
        let dir = tree(name, &[]);
        let report = evaluate(dir.path());
        assert_eq!(report.exit_code(), code, "{name}");
        assert_eq!(
            serde_json::to_value(report.verdict).unwrap(),
            verdict,
            "{name}"
        );
    }
}

#[test]
fn calibrated_figure_raises_the_bar() {
    let dir = tree(DEBIAN, &[]);
    let mut snapshot = readiness::gather(&Root::new(dir.path())).unwrap();
    assert_eq!(snapshot.calibrated, None, "no calibration file in the tree");
    snapshot.calibrated = Some(Calibrated {
        min_bytes: 384 << 20,
        recommended_bytes: 480 << 20,
        source: "kdrill drill of 2026-11-26".to_string(),
        other_release: None,
        notes: vec![],
    });
    let report = readiness::evaluate(&snapshot);
    let (status, text) = said(&report, "crashkernel-size");
    assert_eq!(status, Status::Warn, "{text}");
    assert!(
        text.contains("256M reserved < measured minimum 384M"),
        "{text}"
    );
    assert!(text.contains("crashkernel=480M"), "{text}");
    assert_eq!(report.facts.calibrated_bytes, Some(384 << 20));
}

/// A calibration file as `kdrill calibrate` writes it, for `release`, measured at `sizes`
/// (memory MiB, smallest working MiB).
pub(crate) fn calibration(release: &str, sizes: &[(u64, u64)]) -> String {
    let mut yaml = format!(
        "kernel: debian-6.1\nrelease: {release}\nimage: minimal\nscenario: sysrq\n\
         measured: 2026-12-05 10:00:00 UTC\nkdrill: 0.1.0\nqemu: QEMU emulator version 7.2.22\n\
         host: test, 2 cores, tcg\nwall_seconds: 300\n\
         estimate_inputs: {{ kernel_image_bytes: 8233472, modules_bytes: 1000000, capture_initrd_bytes: 9000000 }}\n\
         margin: +25%\nrange: null\nsizes:\n"
    );
    for (memory, min) in sizes {
        yaml.push_str(&format!(
            "  - memory_mib: {memory}\n    smallest_working_mib: {min}\n    largest_failing_mib: {}\n\
             \x20   failure_below: capture-oom\n    recommended_mib: null\n\
             \x20   heuristics: {{ kdumpctl_estimate_mib: 176, x86_64_default_mib: null, debian_default_mib: 128 }}\n\
             \x20   wall_seconds: 100\n    probes: []\n",
            min - 8
        ));
    }
    yaml
}

/// `kdrill check --root` with a calibration: the reservation is judged by the measured minimum
/// for this kernel at the nearest memory size (the estimate alone would pass it), the fix names
/// the value with kdrill's margin, and a calibration of another release only warns, naming it.
#[test]
fn the_calibrated_figure_decides_the_reservation_verdict() {
    // The tree's host has 8 GiB; measured at 4 GiB and 16 GiB: between them, the larger counts.
    let file = tempfile::tempdir().unwrap();
    let path = file.path().join("debian-6.1-minimal.yaml");
    std::fs::write(
        &path,
        calibration("6.1.0-47-amd64", &[(4096, 224), (16384, 320)]),
    )
    .unwrap();
    let dir = tree(DEBIAN, &[]);
    let out = kdrill()
        .args(["check", "--format", "json", "--root"])
        .arg(dir.path())
        .arg("--calibration")
        .arg(&path)
        .assert()
        .code(1);
    let json: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let size = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "crashkernel-size")
        .unwrap();
    assert_eq!(size["status"], "warn", "{size}");
    assert_eq!(size["seen"], "256M reserved < measured minimum 320M");
    let fix = size["fix"].as_str().unwrap();
    assert!(fix.contains("crashkernel=400M"), "{fix}");
    let details = size["details"].to_string();
    assert!(
        details.contains("between the 4096M and 16384M measurements: the larger"),
        "{details}"
    );
    assert_eq!(json["facts"]["calibrated_bytes"], 320u64 << 20);

    // The same file in the tree's /etc/kdrill/calibration/, measured below the reservation: PASS.
    let dir = tree(DEBIAN, &[]);
    let folder = dir.path().join("etc/kdrill/calibration");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("debian-6.1-minimal.yaml"),
        calibration("6.1.0-47-amd64", &[(8192, 200)]),
    )
    .unwrap();
    let report = evaluate(dir.path());
    let (status, text) = said(&report, "crashkernel-size");
    assert_eq!(status, Status::Pass, "{text}");
    assert!(
        text.contains("256M reserved ≥ measured minimum 200M"),
        "{text}"
    );
    assert!(text.contains("measured at 8192M"), "{text}");

    // Another release's figure: used, with a WARN that names the release it was measured on.
    std::fs::write(
        folder.join("debian-6.1-minimal.yaml"),
        calibration("6.1.0-57-amd64", &[(8192, 200)]),
    )
    .unwrap();
    let (status, text) = said(&evaluate(dir.path()), "crashkernel-size");
    assert_eq!(status, Status::Warn, "{text}");
    assert!(
        text.contains("measured on 6.1.0-57-amd64, not 6.1.0-47-amd64"),
        "{text}"
    );

    // A broken file given on the command line is an error naming its line: kdrill could not
    // check (3), not a verdict on the host.
    std::fs::write(&path, "kernel: [\n").unwrap();
    let out = kdrill()
        .args(["check", "--root"])
        .arg(dir.path())
        .arg("--calibration")
        .arg(&path)
        .assert()
        .code(3);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr);
    assert!(stderr.contains("debian-6.1-minimal.yaml:"), "{stderr}");
}

/// A file that is not a calibration (`/etc/passwd`) is named, and quoted by one line, cut, never
/// echoed whole: on stderr, and in the `kdrill-error/1` document under `--format json`.
#[test]
fn a_calibration_error_quotes_one_line_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let passwd = dir.path().join("passwd");
    let mut text = String::from("root:x:0:0:root:/root:/bin/bash\n");
    for i in 1..200 {
        text.push_str(&format!(
            "user{i}:x:{i}:{i}:User {i}:/home/user{i}:/bin/sh\n"
        ));
    }
    std::fs::write(&passwd, &text).unwrap();
    let tree = tree(DEBIAN, &[]);
    for json in [false, true] {
        let mut cmd = kdrill();
        cmd.args(["check", "--root"])
            .arg(tree.path())
            .arg("--calibration")
            .arg(&passwd);
        if json {
            cmd.args(["--format", "json"]);
        }
        let out = cmd.assert().code(3);
        let output = out.get_output();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("as a calibration file")
                && stderr.contains("\"root:x:0:0:root:/root:/bin/bash…\""),
            "{stderr}"
        );
        assert!(!stderr.contains("user1:"), "the file was echoed: {stderr}");
        assert!(stderr.len() < 600, "{} bytes: {stderr}", stderr.len());
        if json {
            let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
            assert_eq!(doc["schema"], "kdrill-error/1");
            let error = doc["error"].as_str().unwrap();
            assert!(!error.contains("user1:") && error.len() < 600, "{error}");
        }
    }
}

/// A kdump-tools host with calibrations of both capture userspaces: the `debian` one (kdump-tools'
/// own capture initrd) decides, even where the minimal image's figure is larger; without it, the
/// minimal one is used with a note saying so.
#[test]
fn a_kdump_tools_host_is_judged_by_the_debian_image_calibration() {
    let dir = tree(DEBIAN, &[]);
    let folder = dir.path().join("etc/kdrill/calibration");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("debian-6.1-minimal.yaml"),
        calibration("6.1.0-47-amd64", &[(8192, 320)]),
    )
    .unwrap();
    let (status, text) = said(&evaluate(dir.path()), "crashkernel-size");
    assert_eq!(status, Status::Warn, "{text}");
    assert!(
        text.contains(
            "measured with the minimal image's capture, not this host's (its own kdump-tools)"
        ),
        "{text}"
    );
    std::fs::write(
        folder.join("debian-6.1-debian-bookworm.yaml"),
        calibration("6.1.0-47-amd64", &[(8192, 224)])
            .replace("image: minimal", "image: debian-bookworm"),
    )
    .unwrap();
    let (status, text) = said(&evaluate(dir.path()), "crashkernel-size");
    assert_eq!(status, Status::Pass, "{text}");
    assert!(
        text.contains("256M reserved ≥ measured minimum 224M"),
        "{text}"
    );
    assert!(text.contains("debian-bookworm image"), "{text}");
}

/// Calibrations of both Debian images, neither of this exact release (the host runs a newer
/// 6.1 update): the one of the host's kernel series decides, Debian 12's, even where Debian 13's
/// figure is larger; so a Debian 13 host is judged by the `debian-trixie` measurement.
#[test]
fn the_calibration_of_the_hosts_kernel_series_decides() {
    let dir = tree(DEBIAN, &[]);
    let folder = dir.path().join("etc/kdrill/calibration");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("debian-6.1-debian-bookworm.yaml"),
        calibration("6.1.0-41-amd64", &[(8192, 224)])
            .replace("image: minimal", "image: debian-bookworm"),
    )
    .unwrap();
    std::fs::write(
        folder.join("debian13-6.12-debian-trixie.yaml"),
        calibration("6.12.118+deb13-amd64", &[(8192, 320)])
            .replace("kernel: debian-6.1", "kernel: debian13-6.12")
            .replace("image: minimal", "image: debian-trixie"),
    )
    .unwrap();
    let (status, text) = said(&evaluate(dir.path()), "crashkernel-size");
    assert!(
        text.contains("debian-6.1 debian-bookworm image"),
        "{status:?} {text}"
    );
    assert!(text.contains("measured minimum 224M"), "{text}");
}

#[test]
fn tables_snapshot() {
    for name in [DEBIAN, BARE, RHEL, ODD] {
        let dir = tree(name, &[]);
        let table = report::table(&evaluate(dir.path()), false);
        insta::assert_snapshot!(format!("table-{name}"), redact(&table, dir.path()));
    }
}

#[test]
fn verbose_table_shows_every_detail() {
    let dir = tree(DEBIAN, &[]);
    let table = report::table(&evaluate(dir.path()), true);
    assert!(
        table.contains("· /proc/iomem: ab000000-baffffff : Crash kernel (256M)"),
        "{table}"
    );
    assert!(
        !table.contains("Fixes"),
        "a ready host has nothing to fix:\n{table}"
    );
}

#[test]
fn json_snapshot() {
    for name in [DEBIAN, BARE] {
        let dir = tree(name, &[]);
        let json = report::json(&evaluate(dir.path()));
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["schema"], "kdrill-check/1");
        assert_eq!(
            value["checks"].as_array().unwrap().len(),
            readiness::CHECKS.len()
        );
        insta::assert_snapshot!(format!("json-{name}"), redact(&json, dir.path()));
    }
}

#[test]
fn cli_reads_only_the_root() {
    let dir = tree(DEBIAN, &[]);
    let out = Command::cargo_bin("kdrill")
        .unwrap()
        .args(["check", "--format", "json", "--root"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["verdict"], "ready");
    assert_eq!(value["live"], false);
    // Everything came from the tree, not from this host.
    assert_eq!(value["facts"]["kernel_release"], "6.1.0-47-amd64");
    assert_eq!(value["facts"]["mem_total_bytes"], 8131588u64 * 1024);

    let dir = tree(BARE, &[]);
    let out = Command::cargo_bin("kdrill")
        .unwrap()
        .args(["check", "--root"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Verdict: NOT READY (exit 2)"), "{stdout}");
    assert!(stdout.contains("fix: add `crashkernel=256M`"), "{stdout}");
}

/// A root that does not exist is a tool error (3), never "not ready" (2); under `--format json`
/// it is a `kdrill-error/1` document on stdout.
#[test]
fn cli_rejects_a_missing_root() {
    let out = Command::cargo_bin("kdrill")
        .unwrap()
        .args(["check", "--root", "/nonexistent/kdrill-root"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot open the root /nonexistent/kdrill-root"),
        "{stderr}"
    );
    let out = Command::cargo_bin("kdrill")
        .unwrap()
        .args([
            "check",
            "--root",
            "/nonexistent/kdrill-root",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["schema"], "kdrill-error/1");
    assert_eq!(doc["command"], "check");
    assert_eq!(doc["exit_code"], 3);
    assert_eq!(doc["kind"], "error");
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .contains("cannot open the root /nonexistent/kdrill-root"),
        "{doc}"
    );
}

/// A bad command line is a usage error (64), not "not ready" (2): an unknown flag (clap), and
/// `--quiet` with `--format json`; under `--format json`, an error document still.
#[test]
fn cli_usage_errors_exit_64() {
    let out = kdrill().args(["check", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unexpected argument '--json'"), "{stderr}");
    let out = kdrill()
        .args(["check", "--quiet", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["kind"], "usage");
    assert!(doc["error"].as_str().unwrap().contains("--quiet"), "{doc}");
    let out = kdrill()
        .args(["check", "--color", "sometimes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let help = kdrill().args(["check", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("0 ready, 1 ready with warnings (or checks that could not run), 2 not ready, 3 could not check"),
        "{help}"
    );
    assert!(help.contains("64 usage error"), "{help}");
}

/// A folder that is not a captured tree (empty, or the parent of an extracted sosreport) is a
/// tool error (3) that says so, naming the subfolder that is one; that subfolder is checked.
#[test]
fn cli_refuses_a_folder_that_is_not_a_captured_tree() {
    let empty = tempfile::tempdir().unwrap();
    let out = kdrill()
        .args(["check", "--root"])
        .arg(empty.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty(), "no verdict about nothing");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("does not look like a captured tree: no proc/, etc/, sys/ or boot/ with a file kdrill reads"),
        "{stderr}"
    );
    assert!(
        stderr.contains("an extracted sosreport's top folder"),
        "{stderr}"
    );

    // The parent of an extracted sosreport: the sosreport is named.
    let parent = tempfile::tempdir().unwrap();
    let sos = parent.path().join("sosreport-db1-2026-12-01-xkzqmrp");
    copy_tree(&fixture(DEBIAN), &sos);
    std::fs::write(
        parent
            .path()
            .join("sosreport-db1-2026-12-01-xkzqmrp.tar.xz.sha256"),
        "0\n",
    )
    .unwrap();
    let out = kdrill()
        .args(["check", "--format", "json", "--root"])
        .arg(parent.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["schema"], "kdrill-error/1");
    assert_eq!(doc["kind"], "not-a-captured-tree");
    let error = doc["error"].as_str().unwrap();
    let sos = std::fs::canonicalize(&sos).unwrap();
    assert!(
        error.ends_with(&format!("did you mean --root {}?", sos.display())),
        "{error}"
    );
    // … and that folder is a tree: checked, with a verdict.
    let out = kdrill()
        .args(["check", "--root"])
        .arg(&sos)
        .output()
        .unwrap();
    assert!(matches!(out.status.code(), Some(0..=2)), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Verdict: "));
}

/// The real host: whatever it is, the JSON parses and agrees with the exit code; a host without
/// `crashkernel=` (like the CI machine) is not ready.
#[test]
fn cli_on_this_host() {
    let out = Command::cargo_bin("kdrill")
        .unwrap()
        .args(["check", "--format", "json"])
        .output()
        .unwrap();
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["live"], true);
    assert_eq!(
        out.status.code(),
        value["exit_code"].as_i64().map(|c| c as i32)
    );
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let kernel_args = cmdline.split(" -- ").next().unwrap_or("");
    if !kernel_args
        .split_whitespace()
        .any(|w| w.starts_with("crashkernel="))
    {
        assert_eq!(out.status.code(), Some(2));
        let param = value["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == "crashkernel-param")
            .unwrap();
        assert_eq!(param["status"], "fail");
        // Its own fix, or (a kernel that cannot dump, like this project's build host) the fix
        // of the check it follows from.
        match param["follows_from"].as_str() {
            None => assert!(
                param["fix"]
                    .as_str()
                    .is_some_and(|f| f.contains("crashkernel=")),
                "{param}"
            ),
            Some(cause) => {
                assert_eq!(param["fix"], serde_json::Value::Null, "{param}");
                let cause = value["checks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|c| c["id"] == cause)
                    .unwrap();
                assert_eq!(cause["status"], "fail");
                assert!(cause["fix"].is_string(), "{cause}");
            }
        }
    }
}

/// Every file of a ready host replaced, one at a time, by odd content: the checklist never panics,
/// always returns every check of `readiness::CHECKS`, and renders both formats.
#[test]
fn odd_content_never_panics() {
    const ODD_CONTENT: &[&str] = &[
        "",
        "\n\n",
        "-1\n",
        "99999999999999999999999999\n",
        "ffffffffffffffff-0 : Crash kernel\n0-ffffffffffffffff : System RAM\n",
        "crashkernel= crashkernel=@ crashkernel=0x crashkernel=1G-:,\n",
        "MemTotal: 18446744073709551615 kB\n",
        "\u{fffd}\u{fffd} : ünïcödé = \"\n",
        "a b c d e f g h\n",
    ];
    // A tree with a single file kdrill reads is still checked (an empty one is not a tree).
    let single = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(single.path().join("proc")).unwrap();
    std::fs::write(single.path().join("proc/cmdline"), "ro\n").unwrap();
    let report = evaluate(single.path());
    assert_eq!(report.checks.len(), readiness::CHECKS.len());
    assert_eq!(report.exit_code(), 2, "a bare tree has no kdump service");
    let dir = tree(DEBIAN, &[]);
    let mut files = Vec::new();
    walk(dir.path(), &mut files);
    assert!(files.len() > 30, "the ready fixture should have many files");
    for file in &files {
        let original = std::fs::read(file).unwrap();
        for content in ODD_CONTENT {
            std::fs::write(file, content).unwrap();
            let report = evaluate(dir.path());
            assert_eq!(
                report.checks.len(),
                readiness::CHECKS.len(),
                "{} = {content:?}",
                file.display()
            );
            let _ = report::table(&report, true);
            let json = report::json(&report);
            serde_json::from_str::<serde_json::Value>(&json).unwrap();
        }
        std::fs::write(file, original).unwrap();
    }
}

/// States only a live host has (systemd's answers, statvfs) are judged from the snapshot like the rest.
#[test]
fn live_host_states() {
    let dir = tree(DEBIAN, &[]);
    let snapshot = readiness::gather(&Root::new(dir.path())).unwrap();

    let mut failed = snapshot.clone();
    failed.kexec_crash_loaded = Ok("0".to_string());
    let unit = failed
        .services
        .iter_mut()
        .find(|s| s.unit == "kdump-tools.service")
        .unwrap();
    unit.active = Some("failed".to_string());
    let (status, text) = said(&readiness::evaluate(&failed), "kdump-service");
    assert_eq!(status, Status::Fail, "{text}");
    assert!(text.contains("kdump-tools.service is failed"), "{text}");
    assert!(
        text.contains("journalctl -b -u kdump-tools.service"),
        "{text}"
    );

    let mut active = snapshot.clone();
    active
        .services
        .iter_mut()
        .for_each(|s| s.active = Some("active".to_string()));
    let (status, text) = said(&readiness::evaluate(&active), "kdump-service");
    assert_eq!(status, Status::Pass, "{text}");
    assert!(
        text.contains("kdump-tools.service: enabled, active"),
        "{text}"
    );

    // A systemd that does not answer: judged from the unit files, with a warning naming why.
    let mut wedged = snapshot.clone();
    wedged.live = true;
    wedged.services.iter_mut().for_each(|s| {
        s.unanswered = Some(
            "`systemctl is-enabled kdump-tools.service` did not finish within 10s and was killed"
                .into(),
        )
    });
    let (status, text) = said(&readiness::evaluate(&wedged), "kdump-service");
    assert_eq!(status, Status::Warn, "{text}");
    assert!(
        text.contains("systemd did not answer for kdump-tools.service (`systemctl is-enabled kdump-tools.service` did not finish within 10s"),
        "{text}"
    );

    // statvfs's figure wins over any df output.
    let mut full = snapshot.clone();
    full.target.as_mut().unwrap().free_bytes = Some(100 << 20);
    let (status, text) = said(&readiness::evaluate(&full), "dump-target");
    assert_eq!(status, Status::Warn, "{text}");
    assert!(text.contains("100M free < estimated dump 794.1M"), "{text}");
    assert!(text.contains("(statvfs)"), "{text}");

    // On the live host, missing kexec files mean the kernel cannot dump (a captured tree may just lack them).
    let mut bare = snapshot;
    bare.kexec_crash_loaded = Err(readiness::source::Problem::Missing);
    bare.kexec_crash_size = Err(readiness::source::Problem::Missing);
    bare.kernel_config = Err(readiness::source::Problem::Missing);
    let (status, _) = said(&readiness::evaluate(&bare), "capture-loaded");
    assert_eq!(status, Status::Skip);
    bare.live = true;
    let (status, text) = said(&readiness::evaluate(&bare), "capture-loaded");
    assert_eq!(status, Status::Fail, "{text}");
    assert!(text.contains("no /sys/kernel/kexec_crash_size"), "{text}");
}

/// A FIFO where a captured file should be (a tree copied with `cp -a` from a live host can hold
/// one) is reported, not waited on: `kdrill check --root` ends at once with a verdict.
#[test]
fn cli_refuses_a_fifo_in_the_tree_instead_of_waiting() {
    let dir = tree(DEBIAN, &[Remove("proc/cmdline")]);
    let fifo = std::ffi::CString::new(dir.path().join("proc/cmdline").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let out = Command::cargo_bin("kdrill")
        .unwrap()
        .args(["check", "--format", "json", "--root"])
        .arg(dir.path())
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The rest of the tree is ready; what /proc/cmdline would say is unknown: a warning.
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("/proc/cmdline is a FIFO (named pipe), not a file kdrill can read"),
        "the FIFO is named in the report: {stdout}"
    );
}

/// A kernel built without kexec (this project's own build host, captured): one root cause, one
/// FAIL with one fix. The checks that only follow from it say so and carry no fix of their own,
/// in the table and in the JSON; no package is named after a kernel Debian did not build, and no
/// GRUB edit is offered for it.
#[test]
fn a_kernel_without_kexec_is_one_cause_with_one_fix() {
    let dir = tree(NO_KEXEC, &[]);
    let report = evaluate(dir.path());
    let (status, text) = said(&report, "capture-loaded");
    assert_eq!(status, Status::Fail, "{text}");
    assert!(
        text.contains("this kernel cannot load a capture kernel: neither CONFIG_KEXEC nor CONFIG_KEXEC_FILE is set; 6.18.44-fc-v1272 was not built by Debian"),
        "{text}"
    );
    assert!(
        text.contains("rebuild it with CONFIG_KEXEC (or CONFIG_KEXEC_FILE) and CONFIG_CRASH_DUMP, or boot a Debian kernel (`apt install linux-image-amd64`)"),
        "{text}"
    );
    let cause = report
        .checks
        .iter()
        .find(|c| c.id == "capture-loaded")
        .unwrap();
    assert_eq!(cause.follows_from, None);
    for id in [
        "crashkernel-param",
        "crashkernel-reserved",
        "crashkernel-size",
        "kdump-service",
        "capture-cmdline",
    ] {
        let check = report.checks.iter().find(|c| c.id == id).unwrap();
        assert_eq!(check.follows_from, Some("capture-loaded"), "{id}");
        assert_eq!(check.fix, None, "{id}: {:?}", check.fix);
    }
    // Still judged on their own: the tools, whatever kernel runs.
    let tools = report.checks.iter().find(|c| c.id == "tools").unwrap();
    assert_eq!(tools.follows_from, None);
    let table = report::table(&report, false);
    for never in [
        "linux-image-6.18.44-fc-v1272",
        "update-grub",
        "GRUB_CMDLINE_LINUX",
    ] {
        assert!(!table.contains(never), "`{never}` in:\n{table}");
    }
    assert!(
        table.contains(
            "FAIL  kdump-service         follows from capture-loaded: no kdump service installed"
        ),
        "{table}"
    );
    assert!(
        table.contains("follow from this (their own fixes wait for this one): crashkernel-param, crashkernel-reserved, crashkernel-size, kdump-service, capture-cmdline"),
        "{table}"
    );
    assert!(
        table.contains("this kernel was not built by Debian, so no package has its debug symbols"),
        "{table}"
    );
    let json: serde_json::Value = serde_json::from_str(&report::json(&report)).unwrap();
    let param = &json["checks"][0];
    assert_eq!(param["id"], "crashkernel-param");
    assert_eq!(param["follows_from"], "capture-loaded");
    assert_eq!(param["fix"], serde_json::Value::Null);
    assert_eq!(json["checks"][3]["follows_from"], serde_json::Value::Null);
    insta::assert_snapshot!("table-firecracker-no-kexec", redact(&table, dir.path()));

    // The same kernel config under a release Debian ships names Debian's packages again.
    let dir = tree(
        NO_KEXEC,
        &[Write("proc/sys/kernel/osrelease", "6.1.0-47-amd64\n")],
    );
    let (_, text) = said(&evaluate(dir.path()), "tools");
    assert!(
        text.contains("apt install linux-image-6.1.0-47-amd64-dbg"),
        "{text}"
    );
}

/// Without a kexec-less kernel, a missing `crashkernel=` is the cause of an empty reservation.
#[test]
fn no_crashkernel_is_the_cause_of_nothing_reserved() {
    let dir = tree(BARE, &[]);
    let report = evaluate(dir.path());
    let follows = |id: &str| {
        report
            .checks
            .iter()
            .find(|c| c.id == id)
            .unwrap()
            .follows_from
    };
    assert_eq!(follows("crashkernel-param"), None);
    assert_eq!(follows("crashkernel-reserved"), Some("crashkernel-param"));
    assert_eq!(follows("crashkernel-size"), Some("crashkernel-param"));
    assert_eq!(follows("capture-loaded"), None);
    // A ready host has no consequences at all.
    let dir = tree(DEBIAN, &[]);
    assert!(evaluate(dir.path())
        .checks
        .iter()
        .all(|c| c.follows_from.is_none()));
}

/// The recommended size and the estimate disagree on the RHEL host (96M reserved, estimate
/// 106.3M, fix 256M): the fix says why.
#[test]
fn the_recommended_size_says_why_it_differs_from_the_estimate() {
    let dir = tree(RHEL, &[]);
    let (status, text) = said(&evaluate(dir.path()), "crashkernel-size");
    assert_eq!(status, Status::Warn, "{text}");
    assert!(
        text.contains("raise the reservation to 256M, the x86_64 default for 4.0G of RAM (2G-64G:256M,64G-:512M), above the estimate 106.3M: run `grubby"),
        "{text}"
    );
    assert!(
        text.contains("crashkernel=256M: the x86_64 default for 4.0G of RAM (2G-64G:256M,64G-:512M), above the estimate 106.3M; the estimate is a floor"),
        "{text}"
    );
    // Where the estimate is the larger, it is named instead.
    let dir = tree(RHEL, &[Write("proc/sys/kernel/arch", "aarch64\n")]);
    let (_, text) = said(&evaluate(dir.path()), "crashkernel-size");
    assert!(
        text.contains(
            "raise the reservation to 112M, the estimate 106.3M rounded up to 16M: run `grubby"
        ),
        "{text}"
    );
}

/// `--color always` colours the status words and the verdict; `auto` does not through a pipe, nor
/// under `NO_COLOR`; `--quiet` prints the verdict line only.
#[test]
fn cli_colour_and_quiet() {
    let dir = tree(RHEL, &[]);
    let run = |args: &[&str], no_color: Option<&str>| {
        let mut cmd = kdrill();
        cmd.arg("check").args(args).arg("--root").arg(dir.path());
        cmd.env_remove("NO_COLOR");
        if let Some(value) = no_color {
            cmd.env("NO_COLOR", value);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8(out.stdout).unwrap()
    };
    let always = run(&["--color", "always"], Some("1"));
    assert!(
        always.contains("\x1b[33mWARN\x1b[0m  crashkernel-size"),
        "{always}"
    );
    assert!(always.contains("\x1b[32mPASS\x1b[0m"), "{always}");
    assert!(
        always.contains("Verdict: \x1b[1;33mREADY WITH WARNINGS\x1b[0m (exit 1)"),
        "{always}"
    );
    // Only the words: the ids, findings and fixes stay plain.
    let plain: String = always
        .replace("\x1b[33m", "")
        .replace("\x1b[32m", "")
        .replace("\x1b[36m", "")
        .replace("\x1b[1;33m", "")
        .replace("\x1b[0m", "");
    assert!(!plain.contains('\x1b'), "{plain}");
    for (args, no_color) in [
        (&["--color", "auto"][..], Some("1")),
        (&["--color", "auto"][..], None),
        (&[][..], None),
        (&["--color", "never"][..], None),
    ] {
        let out = run(args, no_color);
        assert!(
            !out.contains('\x1b'),
            "{args:?} NO_COLOR={no_color:?}: {out}"
        );
        assert_eq!(out, plain, "{args:?}");
    }
    let quiet = run(&["-q"], None);
    assert_eq!(
        quiet,
        "Verdict: READY WITH WARNINGS (exit 1): 0 fail, 8 warn, 1 skip, 5 pass, 2 info\n"
    );
    let quiet = run(&["--quiet", "--color", "always"], None);
    assert_eq!(quiet.lines().count(), 1, "{quiet}");
    assert!(quiet.starts_with("Verdict: \x1b[1;33m"), "{quiet}");
}

/// The JSON names the host (fleet tools key on it): from the root's files, `null` when unknown.
#[test]
fn json_carries_the_hostname_and_machine_id() {
    let dir = tree(DEBIAN, &[]);
    let json: serde_json::Value =
        serde_json::from_str(&report::json(&evaluate(dir.path()))).unwrap();
    assert_eq!(json["hostname"], "db1");
    assert_eq!(json["machine_id"], "0f4e3c2b1a09481786f5e4d3c2b1a098");
    // The running kernel's name wins over the configured one.
    let dir = tree(
        DEBIAN,
        &[Write("proc/sys/kernel/hostname", "db1-renamed\n")],
    );
    let json: serde_json::Value =
        serde_json::from_str(&report::json(&evaluate(dir.path()))).unwrap();
    assert_eq!(json["hostname"], "db1-renamed");
    let dir = tree(RHEL, &[]);
    let json: serde_json::Value =
        serde_json::from_str(&report::json(&evaluate(dir.path()))).unwrap();
    assert!(json.as_object().unwrap().contains_key("hostname"));
    assert_eq!(json["hostname"], serde_json::Value::Null);
    assert_eq!(json["machine_id"], serde_json::Value::Null);
    let dir = tree(DEBIAN, &[Write("etc/machine-id", "uninitialized\n")]);
    let json: serde_json::Value =
        serde_json::from_str(&report::json(&evaluate(dir.path()))).unwrap();
    assert_eq!(json["machine_id"], serde_json::Value::Null);
}

/// A calibration file over the byte cap of every YAML data file, in the tree's
/// /etc/kdrill/calibration/ (16 MiB: it once took 1.67 GB of memory and was never mentioned):
/// read no further than the cap, and named in a WARN, the only calibration or beside a good one.
#[test]
fn an_oversized_calibration_file_in_the_tree_is_named() {
    let dir = tree(DEBIAN, &[]);
    let folder = dir.path().join("etc/kdrill/calibration");
    std::fs::create_dir_all(&folder).unwrap();
    let big = calibration("6.1.0-47-amd64", &[(8192, 200)]) + &"# padding\n".repeat(1_677_722);
    assert!(big.len() >= 16 << 20);
    std::fs::write(folder.join("huge.yaml"), &big).unwrap();
    for with_good in [false, true] {
        if with_good {
            std::fs::write(
                folder.join("debian-6.1-minimal.yaml"),
                calibration("6.1.0-47-amd64", &[(8192, 200)]),
            )
            .unwrap();
        }
        let out = kdrill().args(["check", "--root"]).arg(dir.path()).assert();
        let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();
        let warned = stdout.lines().any(|line| {
            line.contains("/etc/kdrill/calibration/huge.yaml") && line.contains("1 MiB")
        });
        assert!(warned, "with_good {with_good}:\n{stdout}");
        let (status, _) = said(&evaluate(dir.path()), "crashkernel-size");
        assert_eq!(status, Status::Warn, "with_good {with_good}:\n{stdout}");
    }
}
