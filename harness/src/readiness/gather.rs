//! The checklist's only I/O: reads a [`Snapshot`] through a [`Root`]; asks systemd and `statvfs` only on the live host.

use std::io::Read;

use crate::readiness::calibration::{
    self, CalibrationFile, CALIBRATION_DIR, SHIPPED_CALIBRATION_DIR,
};
use crate::readiness::kdumpconf::{self, Target};
use crate::readiness::snapshot::{self, Snapshot, TargetSnapshot, Unread};
use crate::readiness::source::{Got, Problem, Root};
use crate::readiness::{identity, initramfs, lastdrill, probe, tools, tree, units};

/// Most entries listed under the dump folder (a host with thousands of old dumps is still checked quickly).
const MAX_TARGET_ENTRIES: usize = 500;
/// Largest unpacked kernel config read.
const CONFIG_LIMIT: u64 = 4 << 20;

/// `sysctl -a` output in a sosreport.
const SOS_SYSCTL: &str = "/sos_commands/kernel/sysctl_-a";
/// `uname -a` output in a sosreport.
const SOS_UNAME: &str = "/sos_commands/kernel/uname_-a";

/// `name = value` lines of `sysctl -a` output.
fn sysctl_lines(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once(" = "))
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
        .collect()
}

/// The root given cannot be checked.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    /// It is not a readable folder.
    #[error("cannot use {path} as the root to check: it is not a readable folder")]
    Unreadable {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// It is a folder, but holds none of the files kdrill reads (see `readiness::tree`).
    #[error("{}", tree::not_a_tree_message(path, candidates))]
    NotATree {
        path: String,
        /// Subfolders that do look like captured trees.
        candidates: Vec<String>,
    },
}

/// Reads everything the checks need from `root`.
pub fn gather(root: &Root) -> Result<Snapshot, RootError> {
    gather_with(root, Vec::new())
}

/// [`gather`], with calibration files given on the command line besides the root's own.
pub fn gather_with(root: &Root, given: Vec<CalibrationFile>) -> Result<Snapshot, RootError> {
    let display = root.base().display().to_string();
    std::fs::read_dir(root.base()).map_err(|source| RootError::Unreadable {
        path: display.clone(),
        source,
    })?;
    if !root.is_live() && !tree::looks_captured(root) {
        return Err(RootError::NotATree {
            candidates: tree::captured_subfolders(root.base()),
            path: display,
        });
    }
    let text = |path: &str| root.text(path);
    let trimmed = |path: &str| root.text(path).map(|t| t.trim().to_string());

    let mut snap = Snapshot::empty(&display);
    snap.live = root.is_live();
    snap.release = trimmed("/proc/sys/kernel/osrelease");
    snap.arch = trimmed("/proc/sys/kernel/arch");
    let mut unread = Vec::new();
    snap.os_release = text("/etc/os-release").or_else(|problem| {
        note(&mut unread, "/etc/os-release", problem, "kdump-service");
        text("/usr/lib/os-release")
    });
    snap.cmdline = text("/proc/cmdline");
    snap.meminfo = text("/proc/meminfo");
    snap.iomem = text("/proc/iomem");
    snap.cpuinfo = text("/proc/cpuinfo");
    snap.modules = text("/proc/modules");
    snap.kexec_crash_size = trimmed("/sys/kernel/kexec_crash_size");
    snap.kexec_crash_loaded = trimmed("/sys/kernel/kexec_crash_loaded");
    // A sosreport keeps `sysctl -a` and `uname -a` output rather than every /proc/sys file.
    let sos_sysctl = if root.is_live() {
        None
    } else {
        text(SOS_SYSCTL).ok().map(|t| sysctl_lines(&t))
    };
    snap.sysctl = snapshot::SYSCTLS
        .iter()
        .map(|name| {
            let value = match (text(&snapshot::sysctl_path(name)), &sos_sysctl) {
                (Err(Problem::Missing), Some(sos)) => {
                    sos.get(*name).cloned().ok_or(Problem::Missing)
                }
                (value, _) => value,
            };
            (name.to_string(), value)
        })
        .collect();
    let missing = |got: &Got<String>| matches!(got, Err(Problem::Missing));
    if !root.is_live() && (missing(&snap.release) || missing(&snap.arch)) {
        if let Ok(uname) = text(SOS_UNAME) {
            let words: Vec<&str> = uname.split_whitespace().collect();
            if let (true, Some(release)) = (missing(&snap.release), words.get(2)) {
                snap.release = Ok(release.to_string());
            }
            const ARCHES: &[&str] = &["x86_64", "aarch64", "ppc64le", "s390x", "i686", "riscv64"];
            if let (true, Some(arch)) = (
                missing(&snap.arch),
                words.iter().find(|w| ARCHES.contains(w)),
            ) {
                snap.arch = Ok(arch.to_string());
            }
        }
    }
    snap.lockdown = trimmed("/sys/kernel/security/lockdown");
    snap.secure_boot = root.bytes(
        "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c",
        64,
    );
    snap.dmi_vendor = trimmed("/sys/class/dmi/id/sys_vendor");
    snap.dmi_product = trimmed("/sys/class/dmi/id/product_name");
    snap.hypervisor_type = trimmed("/sys/hypervisor/type");
    snap.drm = root.list("/sys/class/drm");
    snap.kdump_tools = text(kdumpconf::KDUMP_TOOLS);
    snap.drill = lastdrill::gather(root);
    snap.taken_unix = lastdrill::now_unix();
    snap.kdump_conf = text(kdumpconf::KDUMP_CONF);
    snap.sysconfig_kdump = text(kdumpconf::SYSCONFIG_KDUMP);
    snap.mounts = text("/proc/mounts");
    snap.df = text("/sos_commands/filesys/df_-al_-x_autofs");
    snap.has_usr = root.exists("/usr");
    snap.calibrations = given;
    snap.calibrations
        .extend(calibration_files(root, &mut unread));

    if let Ok(release) = snap.release.clone() {
        snap.kernel_config = kernel_config(root, &release, &mut unread);
        let mut paths = vec![snapshot::kernel_image(&release)];
        paths.extend(snapshot::capture_initrds(&release));
        paths.extend(snapshot::boot_initrds(&release));
        paths.extend(
            [
                kdumpconf::KDUMP_TOOLS,
                kdumpconf::KDUMP_CONF,
                kdumpconf::SYSCONFIG_KDUMP,
            ]
            .map(String::from),
        );
        snap.files = paths
            .into_iter()
            .map(|path| (path.clone(), root.meta(&path)))
            .collect();
        snap.debuginfo = snapshot::debuginfo_candidates(&release)
            .into_iter()
            .filter(|path| root.exists(path))
            .map(|path| {
                let verdict = debuginfo(root, &path);
                (path, verdict)
            })
            .collect();
    }

    snap.tools = snapshot::TOOLS
        .iter()
        .map(|tool| {
            let found = snapshot::TOOL_DIRS
                .iter()
                .map(|dir| format!("{dir}/{tool}"))
                .find(|path| {
                    root.meta(path)
                        .is_ok_and(|m| !m.is_dir && m.mode & 0o111 != 0)
                });
            (tool.to_string(), found)
        })
        .collect();

    snap.services = units::services(root);
    snap.path_units = units::path_units(root);
    if let Err(problem) = root.list("/etc/systemd/system") {
        for check in ["kdump-service", "after-dump"] {
            note(&mut unread, "/etc/systemd/system", problem.clone(), check);
        }
    }
    snap.hostname = identity::HOSTNAME_FILES
        .iter()
        .find_map(|path| identity::hostname(&text(path).ok()?));
    snap.machine_id = identity::MACHINE_ID_FILES
        .iter()
        .find_map(|path| identity::machine_id(&text(path).ok()?));

    let config = kdumpconf::from_files(
        snap.kdump_tools.as_deref().ok(),
        snap.kdump_conf.as_deref().ok(),
        snap.sysconfig_kdump.as_deref().ok(),
    );
    let dir = match config.as_ref().map(|c| &c.target) {
        Some(Target::Local(dir)) => Some(dir.clone()),
        Some(Target::Remote { .. }) => None,
        None => Some("/var/crash".to_string()),
    };
    // A relative dump folder is never resolved inside the root (check 10 names it).
    if let Some(dir) = dir.filter(|d| d.starts_with('/')) {
        snap.kexec_cmd = text(&format!("{}/kexec_cmd", dir.trim_end_matches('/')));
        snap.target = Some(target(root, &dir, &mut unread));
    }
    let ram = crate::readiness::ram::Memory::new(&snap)
        .ram()
        .map(|(bytes, _)| bytes);
    snap.calibrated = calibration::choose(&snap, ram);
    snap.makedumpfile = probe::makedumpfile_version(root, &snap);
    if let Ok(release) = snap.release.clone() {
        // The first that resolves; else the first entry there (a symlink loop is named).
        let candidates = snapshot::capture_initrds(&release);
        snap.capture_initrd = candidates
            .iter()
            .find(|path| root.exists(path))
            .or_else(|| candidates.iter().find(|path| root.entry_exists(path)))
            .cloned()
            .map(|path| {
                let contents = capture_initrd(root, &path);
                (path, contents)
            });
    }
    snap.unread = unread;
    Ok(snap)
}

/// The capture initrd read as archives, at most [`initramfs::FILE_LIMIT`] bytes of it.
fn capture_initrd(root: &Root, path: &str) -> Got<initramfs::Contents> {
    let bytes = root.bytes(path, initramfs::FILE_LIMIT)?;
    let deadline = std::time::Instant::now() + initramfs::TIME_LIMIT;
    initramfs::read(&bytes, deadline).map_err(|why| Problem::Odd(format!("{path}: {why}")))
}

/// Records a problem other than a missing file, for `check` to name.
fn note(unread: &mut Vec<Unread>, path: &str, problem: Problem, check: &'static str) {
    if problem != Problem::Missing {
        unread.push(Unread {
            path: path.to_string(),
            problem,
            check,
        });
    }
}

/// The running kernel's config: `/proc/config.gz` (gzip), else `/boot/config-<release>`. A
/// `/proc/config.gz` that is there but cannot be used (a folder, not gzip, truncated, unpacking
/// past the cap) is recorded for check 4 to name, and `/boot/config-<release>` is read instead;
/// neither is ever judged from its first part.
fn kernel_config(root: &Root, release: &str, unread: &mut Vec<Unread>) -> Got<(String, String)> {
    match proc_config(root) {
        Ok(text) => return Ok(("/proc/config.gz".to_string(), text)),
        Err(problem) => note(unread, "/proc/config.gz", problem, "capture-loaded"),
    }
    let path = format!("/boot/config-{release}");
    let bytes = root.bytes(&path, CONFIG_LIMIT)?;
    if bytes.contains(&0) {
        return Err(Problem::Odd(format!(
            "{path}: binary content (NUL bytes), not a text file"
        )));
    }
    Ok((path, String::from_utf8_lossy(&bytes).into_owned()))
}

/// `/proc/config.gz` unpacked, at most [`CONFIG_LIMIT`] bytes of it.
fn proc_config(root: &Root) -> Got<String> {
    let gz = root.bytes("/proc/config.gz", CONFIG_LIMIT)?;
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(gz.as_slice())
        .take(CONFIG_LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| Problem::Odd(format!("/proc/config.gz does not unpack: {err}")))?;
    if bytes.len() as u64 > CONFIG_LIMIT {
        return Err(Problem::Odd(format!(
            "/proc/config.gz unpacks to more than the {} MiB kdrill reads of it: not judged from a part",
            CONFIG_LIMIT >> 20
        )));
    }
    if bytes.contains(&0) {
        return Err(Problem::Odd(
            "/proc/config.gz: binary content (NUL bytes) once unpacked, not a kernel config"
                .to_string(),
        ));
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Whether a vmlinux candidate carries DWARF.
fn debuginfo(root: &Root, path: &str) -> Got<bool> {
    let host = root.resolve(path)?;
    let mut file = std::fs::File::open(host).map_err(|err| Problem::Unreadable(err.to_string()))?;
    tools::has_debug_info(&mut file).map_err(Problem::Odd)
}

fn target(root: &Root, dir: &str, unread: &mut Vec<Unread>) -> TargetSnapshot {
    let meta = root.meta(dir);
    let free_bytes = if root.is_live() {
        free_space(root, dir)
    } else {
        None
    };
    let mut entries = Vec::new();
    if meta.as_ref().is_ok_and(|m| m.is_dir) {
        let names = root.list(dir).unwrap_or_else(|problem| {
            note(unread, dir, problem, "dump-target");
            Vec::new()
        });
        for name in names {
            let path = format!("{}/{name}", dir.trim_end_matches('/'));
            let Ok(meta) = root.meta(&path) else { continue };
            entries.push((path.clone(), meta));
            if meta.is_dir {
                for inner in root.list(&path).unwrap_or_default() {
                    let inner = format!("{path}/{inner}");
                    if let Ok(meta) = root.meta(&inner) {
                        entries.push((inner, meta));
                    }
                }
            }
            if entries.len() >= MAX_TARGET_ENTRIES {
                break;
            }
        }
    }
    TargetSnapshot {
        path: dir.to_string(),
        meta,
        free_bytes,
        entries,
    }
}

/// Bytes available (`f_bavail`, the conservative figure) on the filesystem holding `dir`, or its nearest
/// existing parent.
fn free_space(root: &Root, dir: &str) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let mut path = dir.to_string();
    let host = loop {
        if let Ok(host) = root.resolve(&path) {
            if host.exists() {
                break host;
            }
        }
        match path.rsplit_once('/') {
            Some((parent, _)) if !parent.is_empty() => path = parent.to_string(),
            _ => break root.base().to_path_buf(),
        }
    };
    let c_path = std::ffi::CString::new(host.as_os_str().as_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is a valid NUL-terminated string and stat a properly sized out-parameter.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) };
    if rc != 0 {
        return None;
    }
    Some((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

/// The calibration files in the root's `/etc/kdrill/calibration/`, then in
/// `/usr/share/kdrill/calibration/` (`*.yaml`, each folder's sorted by name).
fn calibration_files(root: &Root, unread: &mut Vec<Unread>) -> Vec<CalibrationFile> {
    let mut files = Vec::new();
    for dir in [CALIBRATION_DIR, SHIPPED_CALIBRATION_DIR] {
        let mut names = root.list(dir).unwrap_or_else(|problem| {
            note(unread, dir, problem, "crashkernel-size");
            Vec::new()
        });
        names.sort();
        files.extend(
            names
                .into_iter()
                .filter(|name| name.ends_with(".yaml"))
                .map(|name| {
                    let path = format!("{dir}/{name}");
                    // At most the cap of every YAML data file: a larger one is named, never parsed.
                    let text = root
                        .bytes(&path, crate::spec::bounds::MAX_BYTES)
                        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
                    calibration::parse(&path, text)
                }),
        );
    }
    files
}
