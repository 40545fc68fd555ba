//! Check 10: the dump target exists, is on a local persistent filesystem, is not world-readable, and has room.

use crate::readiness::kdumpconf;
use crate::readiness::source::Problem;
use crate::readiness::{check, Check, Context, Status};
use crate::spec::cmdline::figure;

/// Share of MemTotal assumed for a filtered (`-d 31`) dump: it keeps only kernel pages, usually far less.
const FILTERED_SHARE: u64 = 10;
/// makedumpfile dump-level bits that drop user pages (8) and free pages (16): the bulk of RAM.
const FILTER_BITS: u32 = 8 | 16;
/// Filesystems whose content is gone after the reboot, or that a capture kernel does not see.
const VOLATILE: &[&str] = &["tmpfs", "ramfs", "devtmpfs", "overlay", "squashfs"];
/// Filesystems the capture environment must reach over the network.
const NETWORK: &[&str] = &[
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "fuse.sshfs",
    "glusterfs",
    "ceph",
    "9p",
    "virtiofs",
];

const WHY: &str = "the capture kernel writes all of RAM's interesting pages to this place: it must exist after the reboot, have room, and keep secrets from other users";

/// The dump target as the checks see it.
pub struct Target {
    /// `/var/crash`, or `nfs filer:/x` for a remote target.
    pub place: String,
    pub local: Option<String>,
    /// Estimated dump size and the assumption behind it.
    pub dump_estimate: Option<(u64, String)>,
    /// Free bytes and where the figure came from.
    pub free: Option<u64>,
    pub free_source: &'static str,
}

impl Target {
    pub fn new(cx: &Context) -> Self {
        let (place, local) = match cx.config.as_ref().map(|c| &c.target) {
            Some(kdumpconf::Target::Local(dir)) => (dir.clone(), Some(dir.clone())),
            Some(kdumpconf::Target::Remote { kind, place }) => (format!("{kind} {place}"), None),
            None => ("/var/crash".to_string(), Some("/var/crash".to_string())),
        };
        let level = match &cx.config {
            Some(config) => config.dump_level,
            None => Some(31),
        };
        let dump_estimate = cx.mem.mem_total.map(|total| match level {
            Some(level) if level & FILTER_BITS == FILTER_BITS => (
                total / FILTERED_SHARE,
                format!("dump level {level} keeps kernel pages only; assumed at most 1/{FILTERED_SHARE} of MemTotal {} before compression", figure(total)),
            ),
            Some(level) => (total, format!("dump level {level} keeps user and free pages: up to MemTotal {}", figure(total))),
            None => (total, format!("no makedumpfile filtering: a full dump is MemTotal {}", figure(total))),
        });
        let snap_target = cx.snap.target.as_ref();
        let (free, free_source) = match snap_target.and_then(|t| t.free_bytes) {
            Some(free) => (Some(free), "statvfs"),
            None => match (&cx.snap.df, &local) {
                (Ok(df), Some(dir)) => (
                    df_available(df, dir),
                    "sos_commands/filesys/df_-al_-x_autofs",
                ),
                _ => (None, "not measured"),
            },
        };
        Target {
            place,
            local,
            dump_estimate,
            free,
            free_source,
        }
    }
}

/// Check 10.
pub fn dump_target(cx: &Context) -> Check {
    let target = Target::new(cx);
    let Some(dir) = &target.local else {
        return check(10, Status::Warn, format!("dumps go to {}: kdrill cannot see a remote target's space or reachability", target.place), WHY)
            .fix("confirm from this host that the target is reachable without a password and has room for a dump (RHEL: `kdumpctl propagate` installs the ssh key)");
    };
    if !dir.starts_with('/') {
        // Resolved against whatever folder the capture runs in: kdrill does not guess it, and
        // never looks for it relative to the root it checks.
        return check(
            10,
            Status::Warn,
            format!(
                "the dump folder `{dir}` ({}) is not an absolute path: where dumps land depends on the folder the capture runs in; not looked at",
                config_path(cx)
            ),
            WHY,
        )
        .fix(format!(
            "set an absolute dump folder (`/var/crash`) in {}",
            config_path(cx)
        ));
    }
    let mut parts: Vec<(Status, String)> = Vec::new();
    let mut fixes: Vec<String> = Vec::new();
    let mut details = Vec::new();
    let snap_target = cx.snap.target.as_ref();
    let meta = snap_target
        .map(|t| t.meta.clone())
        .unwrap_or(Err(Problem::Missing));
    match &meta {
        Ok(meta) if !meta.is_dir => {
            parts.push((Status::Fail, format!("{dir} is not a folder")));
            fixes.push(format!("remove the file and `install -d -m 0700 {dir}`"));
        }
        Ok(meta) => {
            details.push(format!("{dir} mode {:04o}", meta.mode));
            if meta.mode & 0o005 != 0 {
                parts.push((
                    Status::Warn,
                    format!(
                        "{dir} is open to other users (mode {:04o}) and dumps hold all of RAM",
                        meta.mode
                    ),
                ));
                fixes.push(format!("`chmod 0700 {dir}`"));
            }
        }
        Err(Problem::Missing) => {
            let place = if cx.snap.live {
                ""
            } else {
                " in the captured tree"
            };
            parts.push((Status::Warn, format!("{dir} does not exist{place}")));
            fixes.push(format!("`install -d -m 0700 {dir}`"));
        }
        Err(problem) => parts.push((Status::Skip, format!("{dir} {problem}"))),
    }
    let entries = snap_target
        .map(|t| t.entries.as_slice())
        .unwrap_or_default();
    // Readable by others only if they may also pass through every folder on the way (`o+x`):
    // a file of mode 0644 in a /var/crash of mode 0000 or 0700 is not.
    let searchable = |folder: &str| {
        let mode = if folder.trim_end_matches('/') == dir.trim_end_matches('/') {
            meta.as_ref().ok().map(|m| m.mode)
        } else {
            entries
                .iter()
                .find(|(p, _)| p == folder)
                .map(|(_, m)| m.mode)
        };
        mode.is_some_and(|mode| mode & 0o001 != 0)
    };
    let readable: Vec<&str> = entries
        .iter()
        .filter(|(p, m)| {
            !m.is_dir
                && m.mode & 0o004 != 0
                && p.rsplit_once('/').is_some_and(|(parent, _)| {
                    searchable(parent)
                        && (parent.trim_end_matches('/') == dir.trim_end_matches('/')
                            || parent
                                .rsplit_once('/')
                                .is_some_and(|(up, _)| searchable(up)))
                })
        })
        .map(|(p, _)| p.as_str())
        .collect();
    if !readable.is_empty() {
        parts.push((
            Status::Warn,
            format!(
                "{} earlier dump file(s) readable by everyone, e.g. {}",
                readable.len(),
                readable[0]
            ),
        ));
        fixes.push(format!("`chmod -R go-rwx {dir}`"));
    }
    let dumps: Vec<&str> = entries
        .iter()
        .filter(|(p, m)| {
            m.is_dir && p.matches('/').count() == dir.trim_end_matches('/').matches('/').count() + 1
        })
        .map(|(p, _)| p.as_str())
        .collect();
    if let Some(newest) = dumps.iter().max() {
        details.push(format!(
            "{} earlier dump folder(s), newest {newest}",
            dumps.len()
        ));
    }

    match cx.snap.mounts.as_deref() {
        Ok(mounts) => match mount_of(mounts, dir) {
            Some((point, fstype)) if VOLATILE.contains(&fstype.as_str()) => {
                parts.push((
                    Status::Fail,
                    format!("{dir} is on {fstype} ({point}): gone after the reboot"),
                ));
                fixes.push(format!(
                    "point the dump directory at a disk-backed filesystem in {}",
                    config_path(cx)
                ));
            }
            Some((point, fstype)) if NETWORK.contains(&fstype.as_str()) => {
                parts.push((Status::Warn, format!("{dir} is on network filesystem {fstype} ({point}); the capture kernel must mount it")));
                fixes.push("configure the network target in the kdump config itself (kdump-tools: NFS=; kdumpctl: nfs) so its initrd can reach it".to_string());
            }
            Some((point, fstype)) => details.push(format!("on {fstype} mounted at {point}")),
            None => details.push(format!("no mount found for {dir} in /proc/mounts")),
        },
        Err(problem) => details.push(format!("/proc/mounts {problem}")),
    }

    match (target.dump_estimate.as_ref(), target.free) {
        (Some((need, assumption)), Some(free)) => {
            details.push(format!("estimated dump {}: {assumption}", figure(*need)));
            details.push(format!("free: {} ({})", figure(free), target.free_source));
            if free < *need {
                let full = !assumption.contains("kernel pages only");
                let status = if full { Status::Fail } else { Status::Warn };
                parts.push((
                    status,
                    format!("{} free < estimated dump {}", figure(free), figure(*need)),
                ));
                fixes.push(format!(
                    "free space on {dir}'s filesystem, or move the dump directory ({})",
                    config_path(cx)
                ));
            }
        }
        (Some((need, assumption)), None) => {
            details.push(format!("estimated dump {}: {assumption}", figure(*need)));
            parts.push((
                Status::Warn,
                format!(
                    "free space on {dir} not measured ({})",
                    if cx.snap.live {
                        "statvfs failed"
                    } else {
                        "captured tree without df output"
                    }
                ),
            ));
            fixes.push(format!(
                "check `df -h {dir}` on the host has at least {}",
                figure(*need)
            ));
        }
        (None, _) => parts.push((
            Status::Skip,
            "MemTotal unknown, so the dump size cannot be estimated".to_string(),
        )),
    }

    let status = parts.iter().map(|(s, _)| *s).max().unwrap_or(Status::Pass);
    let seen = if parts.is_empty() {
        let free = target
            .free
            .map(|f| format!(", {} free", figure(f)))
            .unwrap_or_default();
        let need = target
            .dump_estimate
            .as_ref()
            .map(|(n, _)| format!(" for a ~{} dump", figure(*n)))
            .unwrap_or_default();
        format!("{dir}{free}{need}")
    } else {
        super::joined(&parts)
    };
    check(10, status, seen, WHY)
        .details(details)
        .fix(fixes.join("\n"))
}

fn config_path(cx: &Context) -> &'static str {
    cx.config
        .as_ref()
        .map(|c| c.flavour.config_path())
        .unwrap_or("the kdump config")
}

/// The mount point and filesystem type holding `path`: the longest matching mount point, the last one mounted.
pub fn mount_of(mounts: &str, path: &str) -> Option<(String, String)> {
    let mut best: Option<(String, String)> = None;
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_, point, fstype, ..] = fields.as_slice() else {
            continue;
        };
        let point = unescape(point);
        if !covers(&point, path) {
            continue;
        }
        if best.as_ref().is_none_or(|(b, _)| point.len() >= b.len()) {
            best = Some((point, fstype.to_string()));
        }
    }
    best
}

fn covers(point: &str, path: &str) -> bool {
    point == "/"
        || path == point
        || path
            .strip_prefix(point)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// /proc/mounts escapes blanks as `\040`.
fn unescape(text: &str) -> String {
    text.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\134", "\\")
}

/// Available bytes on the filesystem holding `path`, from `df` output in 1K blocks (wrapped lines joined).
pub fn df_available(df: &str, path: &str) -> Option<u64> {
    let mut rows: Vec<Vec<&str>> = Vec::new();
    let mut pending: Vec<&str> = Vec::new();
    for line in df.lines().skip(1) {
        pending.extend(line.split_whitespace());
        if pending.len() >= 6 {
            rows.push(std::mem::take(&mut pending));
        }
    }
    let mut best: Option<(usize, u64)> = None;
    for row in rows {
        let point = row[5..].join(" ");
        let Ok(available) = row[3].parse::<u64>() else {
            continue;
        };
        if covers(&point, path) && best.is_none_or(|(len, _)| point.len() >= len) {
            best = Some((point.len(), available.saturating_mul(1024)));
        }
    }
    best.map(|(_, bytes)| bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_and_df() {
        let mounts = "/dev/vda / ext4 rw 0 0\ntmpfs /var/tmp tmpfs rw 0 0\n/dev/vdb /var ext4 rw 0 0\n/dev/vdc /var/crash\\040x xfs rw 0 0\n";
        assert_eq!(
            mount_of(mounts, "/var/crash"),
            Some(("/var".into(), "ext4".into()))
        );
        assert_eq!(
            mount_of(mounts, "/var/crash x/1"),
            Some(("/var/crash x".into(), "xfs".into()))
        );
        assert_eq!(
            mount_of(mounts, "/variable"),
            Some(("/".into(), "ext4".into()))
        );
        let df = "Filesystem     1K-blocks    Used Available Use% Mounted on\n/dev/mapper/very-long-volume-name\n               10000000 5000000   4000000  56% /\n/dev/vdb         2000000 1000000    500000  67% /var\n";
        assert_eq!(df_available(df, "/var/crash"), Some(500000 * 1024));
        assert_eq!(df_available(df, "/srv"), Some(4000000 * 1024));
        assert_eq!(df_available("garbage", "/"), None);
    }
}
