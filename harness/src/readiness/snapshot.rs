//! The [`Snapshot`]: every file and state the checks judge, read once from a root; the checks are pure over it.

use std::collections::BTreeMap;

use crate::readiness::calibration::CalibrationFile;
use crate::readiness::initramfs::Contents;
use crate::readiness::source::{Got, Meta, Problem};

/// Everything the checklist looked at on one host (or captured tree). Built by [`crate::readiness::gather`];
/// tests may also build one by hand.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The root as given (`/` for the live host).
    pub root: String,
    /// Whether this is the running host (systemd and `statvfs` were asked), not a captured tree.
    pub live: bool,
    /// The host's name (`readiness::identity::HOSTNAME_FILES`), if one is there.
    pub hostname: Option<String>,
    /// Its machine-id (`readiness::identity::MACHINE_ID_FILES`), if one is there.
    pub machine_id: Option<String>,
    /// `/proc/sys/kernel/osrelease`, trimmed: `uname -r`.
    pub release: Got<String>,
    /// `/proc/sys/kernel/arch`, trimmed: `uname -m`.
    pub arch: Got<String>,
    /// `/etc/os-release`.
    pub os_release: Got<String>,
    pub cmdline: Got<String>,
    pub meminfo: Got<String>,
    pub iomem: Got<String>,
    pub cpuinfo: Got<String>,
    pub modules: Got<String>,
    /// The running kernel's config (`/proc/config.gz` unpacked, else `/boot/config-<release>`) and its path.
    pub kernel_config: Got<(String, String)>,
    pub kexec_crash_size: Got<String>,
    pub kexec_crash_loaded: Got<String>,
    /// `/proc/sys/kernel/<name>` by sysctl name (`kernel.sysrq`).
    pub sysctl: BTreeMap<String, Got<String>>,
    pub lockdown: Got<String>,
    /// The `SecureBoot` EFI variable (4 attribute bytes, then the value).
    pub secure_boot: Got<Vec<u8>>,
    pub dmi_vendor: Got<String>,
    pub dmi_product: Got<String>,
    /// `/sys/hypervisor/type` (Xen).
    pub hypervisor_type: Got<String>,
    /// Entries of `/sys/class/drm` (`card0`, `renderD128`…).
    pub drm: Got<Vec<String>>,
    pub kdump_tools: Got<String>,
    pub kdump_conf: Got<String>,
    pub sysconfig_kdump: Got<String>,
    /// `<dump folder>/kexec_cmd`: the capture load command kdump-tools recorded.
    pub kexec_cmd: Got<String>,
    pub services: Vec<Service>,
    /// systemd `.path` units in /etc/systemd/system: a watch on the dump folder is a post-dump notification.
    pub path_units: Vec<PathUnit>,
    /// `stat` of every candidate path a check names (kernel image, capture initrds, configs).
    pub files: BTreeMap<String, Got<Meta>>,
    /// Where each tool was found (`kexec` → `/usr/sbin/kexec`), `None` if nowhere.
    pub tools: BTreeMap<String, Option<String>>,
    /// Whether the root has a `/usr` at all (a sosreport has none, so missing tools prove nothing).
    pub has_usr: bool,
    /// Debuginfo candidates that exist: path → whether it is an ELF file with a `.debug_info` section.
    pub debuginfo: Vec<(String, Got<bool>)>,
    /// `/proc/mounts`.
    pub mounts: Got<String>,
    /// The dump folder, as configured (`None` for a remote target).
    pub target: Option<TargetSnapshot>,
    /// `df` output in a captured sosreport (`sos_commands/filesys/df_-al_-x_autofs`), for a captured tree.
    pub df: Got<String>,
    /// Calibration files (`kdrill calibrate`), from `--calibration` and the root's
    /// `/etc/kdrill/calibration/`.
    pub calibrations: Vec<CalibrationFile>,
    /// The smallest reservation kdrill's own drills measured to capture with this kernel, chosen
    /// from `calibrations` for this release and RAM (`readiness::calibration::choose`); the
    /// `crashkernel-size` check compares against it.
    pub calibrated: Option<Calibrated>,
    /// makedumpfile's installed version and where it was read: `/var/lib/dpkg/status`, a
    /// sosreport's `installed-rpms`, or `makedumpfile -v` on the live host.
    pub makedumpfile: Got<(String, String)>,
    /// The first capture initrd found ([`capture_initrds`]) and what it holds.
    pub capture_initrd: Option<(String, Got<Contents>)>,
    /// Files and folders `gather` could not use and no other field holds (a listing, a
    /// `/proc/config.gz` fallen back from): each reaches the report on its check.
    pub unread: Vec<Unread>,
    /// The newest `kdrill drill` record and today's fingerprints of the files it names.
    pub drill: crate::readiness::lastdrill::DrillSeen,
    /// When the snapshot was taken, in seconds since the epoch (a drill's age is counted from it).
    pub taken_unix: i64,
}

/// A path `gather` could not use, why, and the check that must say so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unread {
    pub path: String,
    pub problem: Problem,
    /// The id of the check that judged without it (`kdump-service`).
    pub check: &'static str,
}

/// A measured minimum `crashkernel=` size for the running kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calibrated {
    pub min_bytes: u64,
    /// The measured minimum with kdrill's margin (what a fix recommends).
    pub recommended_bytes: u64,
    /// Where the figure comes from (the file, kernel, image, interpolation, date).
    pub source: String,
    /// The release it was measured on, when that is not this host's.
    pub other_release: Option<String>,
    /// Anything else to say (files ignored, another capture userspace).
    pub notes: Vec<String>,
}

/// State of one candidate kdump unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub unit: String,
    /// A unit file exists (or systemd knows it).
    pub installed: bool,
    /// `systemctl is-enabled` wording: `enabled`, `disabled`, `masked`, `static`…; `None` if unknown.
    pub enabled: Option<String>,
    /// `systemctl is-active` wording: `active`, `inactive`, `failed`…; `None` if unknown (captured tree).
    pub active: Option<String>,
    /// Why systemd gave no answer on a live host (`systemctl` timed out or could not run): the
    /// state above then comes from the unit files.
    pub unanswered: Option<String>,
}

/// A systemd `.path` unit and whether a `.wants` link enables it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathUnit {
    pub name: String,
    pub text: Got<String>,
    pub enabled: bool,
}

/// The local dump folder and what is in it.
#[derive(Debug, Clone)]
pub struct TargetSnapshot {
    pub path: String,
    pub meta: Got<Meta>,
    /// Free bytes on its filesystem (`statvfs`, live host only).
    pub free_bytes: Option<u64>,
    /// Entries up to two levels down (earlier dumps), path → stat.
    pub entries: Vec<(String, Meta)>,
}

impl Snapshot {
    /// A snapshot where every file is missing: the base for hand-built test snapshots.
    pub fn empty(root: &str) -> Self {
        Snapshot {
            root: root.to_string(),
            live: false,
            hostname: None,
            machine_id: None,
            release: Err(Problem::Missing),
            arch: Err(Problem::Missing),
            os_release: Err(Problem::Missing),
            cmdline: Err(Problem::Missing),
            meminfo: Err(Problem::Missing),
            iomem: Err(Problem::Missing),
            cpuinfo: Err(Problem::Missing),
            modules: Err(Problem::Missing),
            kernel_config: Err(Problem::Missing),
            kexec_crash_size: Err(Problem::Missing),
            kexec_crash_loaded: Err(Problem::Missing),
            sysctl: BTreeMap::new(),
            lockdown: Err(Problem::Missing),
            secure_boot: Err(Problem::Missing),
            dmi_vendor: Err(Problem::Missing),
            dmi_product: Err(Problem::Missing),
            hypervisor_type: Err(Problem::Missing),
            drm: Err(Problem::Missing),
            kdump_tools: Err(Problem::Missing),
            kdump_conf: Err(Problem::Missing),
            sysconfig_kdump: Err(Problem::Missing),
            kexec_cmd: Err(Problem::Missing),
            services: Vec::new(),
            path_units: Vec::new(),
            files: BTreeMap::new(),
            tools: BTreeMap::new(),
            has_usr: false,
            debuginfo: Vec::new(),
            mounts: Err(Problem::Missing),
            target: None,
            df: Err(Problem::Missing),
            calibrations: Vec::new(),
            calibrated: None,
            makedumpfile: Err(Problem::Missing),
            capture_initrd: None,
            unread: Vec::new(),
            drill: Default::default(),
            taken_unix: 0,
        }
    }

    /// `stat` of a path gathered for the checks (missing if it was not gathered).
    pub fn file(&self, path: &str) -> Got<Meta> {
        self.files
            .get(path)
            .cloned()
            .unwrap_or(Err(Problem::Missing))
    }

    /// A sysctl's value, trimmed.
    pub fn sysctl(&self, name: &str) -> Got<String> {
        self.sysctl
            .get(name)
            .cloned()
            .unwrap_or(Err(Problem::Missing))
            .map(|v| v.trim().to_string())
    }
}

/// The sysctls the checks read, all under `/proc/sys/kernel/`.
pub const SYSCTLS: &[&str] = &[
    "kernel.sysrq",
    "kernel.unknown_nmi_panic",
    "kernel.panic_on_unrecovered_nmi",
    "kernel.panic_on_io_nmi",
    "kernel.nmi_watchdog",
    "kernel.panic_on_oops",
    "kernel.softlockup_panic",
    "kernel.hardlockup_panic",
    "kernel.hung_task_panic",
    "kernel.panic",
    "kernel.kexec_load_disabled",
];

/// `/proc/sys/kernel/panic` for `kernel.panic`.
pub fn sysctl_path(name: &str) -> String {
    format!("/proc/sys/{}", name.replace('.', "/"))
}

/// Tools the checks look for, and the folders searched (inside the root, not `$PATH`).
pub const TOOLS: &[&str] = &["kexec", "makedumpfile", "crash"];
pub const TOOL_DIRS: &[&str] = &[
    "/usr/sbin",
    "/sbin",
    "/usr/bin",
    "/bin",
    "/usr/local/sbin",
    "/usr/local/bin",
];

/// Candidate kdump units across distributions.
pub const KDUMP_UNITS: &[&str] = &["kdump-tools.service", "kdump.service"];
/// Units that report a new dump after the reboot (RHEL's abrt, Ubuntu's apport).
pub const NOTIFY_UNITS: &[&str] = &["abrt-vmcore.service", "apport.service"];
/// Where unit files live.
pub const UNIT_DIRS: &[&str] = &[
    "/etc/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
];

/// The running kernel's image, for its age.
pub fn kernel_image(release: &str) -> String {
    format!("/boot/vmlinuz-{release}")
}

/// Capture initrds: Debian's symlink, then RHEL/Fedora's and SUSE's names.
pub fn capture_initrds(release: &str) -> Vec<String> {
    vec![
        "/var/lib/kdump/initrd.img".to_string(),
        format!("/var/lib/kdump/initrd.img-{release}"),
        format!("/boot/initramfs-{release}kdump.img"),
        format!("/var/lib/kdump/initramfs-{release}kdump.img"),
        format!("/boot/initrd-{release}-kdump"),
    ]
}

/// The normal boot initrd, used for the size estimate when no capture initrd exists yet.
pub fn boot_initrds(release: &str) -> Vec<String> {
    vec![
        format!("/boot/initrd.img-{release}"),
        format!("/boot/initramfs-{release}.img"),
        format!("/boot/initrd-{release}"),
    ]
}

/// Where distributions put the running kernel's vmlinux with DWARF.
pub fn debuginfo_candidates(release: &str) -> Vec<String> {
    vec![
        format!("/usr/lib/debug/boot/vmlinux-{release}"),
        format!("/usr/lib/debug/lib/modules/{release}/vmlinux"),
        format!("/usr/lib/debug/usr/lib/modules/{release}/vmlinux"),
        format!("/usr/lib/debug/boot/vmlinux-{release}.debug"),
        format!("/boot/vmlinux-{release}"),
        format!("/lib/modules/{release}/vmlinux"),
    ]
}
