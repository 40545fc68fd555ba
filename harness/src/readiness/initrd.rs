//! Check 16: the capture initrd holds what the dump target needs — the filesystem it mounts
//! (a module in it, or built into the kernel), for an SSH or NFS target the network pieces (the
//! `ssh` program, the `nfs` module, a network driver) — and fits the reservation once unpacked.
//! Fedora CoreOS checks its kdump initrd the same way. Pure over the snapshot; the archive was
//! read by `readiness::initramfs`.

use crate::readiness::initramfs::Contents;
use crate::readiness::kdumpconf::{Flavour, Target};
use crate::readiness::target::mount_of;
use crate::readiness::{check, joined, Check, Context, Status};
use crate::spec::cmdline::figure;

const WHY: &str = "the capture kernel boots into this initrd alone: a filesystem, program or driver it lacks cannot be loaded after a crash, and the dump is never written";

/// Filesystem type (`/proc/mounts`, a kdump.conf target) → its module and kernel config option.
/// ext2 and ext3 are served by the ext4 driver since Linux 4.3 removed the ext3 one.
const FILESYSTEMS: &[(&str, &str, &str)] = &[
    ("ext4", "ext4", "CONFIG_EXT4_FS"),
    ("ext3", "ext4", "CONFIG_EXT4_FS"),
    ("ext2", "ext4", "CONFIG_EXT4_FS"),
    ("xfs", "xfs", "CONFIG_XFS_FS"),
    ("btrfs", "btrfs", "CONFIG_BTRFS_FS"),
    ("vfat", "vfat", "CONFIG_VFAT_FS"),
    ("f2fs", "f2fs", "CONFIG_F2FS_FS"),
    ("virtiofs", "virtiofs", "CONFIG_VIRTIO_FS"),
    ("nfs", "nfs", "CONFIG_NFS_FS"),
    ("nfs4", "nfsv4", "CONFIG_NFS_V4"),
    ("cifs", "cifs", "CONFIG_CIFS"),
];

/// Check 16.
pub fn contents(cx: &Context) -> Check {
    let snap = cx.snap;
    let Ok(release) = snap.release.as_deref() else {
        return check(
            16,
            Status::Skip,
            "the kernel release is unknown, so the capture initrd cannot be found",
            WHY,
        )
        .fix("include proc/sys/kernel/osrelease in the captured tree");
    };
    let Some((path, read)) = &snap.capture_initrd else {
        let places = format!(
            "/var/lib/kdump/initrd.img-{release} (kdump-tools), /boot/initramfs-{release}kdump.img (kdump-utils) or /boot/initrd-{release}-kdump (SUSE)"
        );
        return if snap.live {
            check(
                16,
                Status::Skip,
                "no capture initrd to read (see kdump-service)",
                WHY,
            )
            .fix(format!(
                "build it (see kdump-service): `{}`",
                cx.family.rebuild_initrd(release)
            ))
        } else {
            check(
                16,
                Status::Skip,
                "the captured tree holds no capture initrd",
                WHY,
            )
            .fix(format!("copy the capture initrd into the tree: {places}"))
        };
    };
    let contents = match read {
        Ok(contents) => contents,
        Err(problem) => {
            return check(16, Status::Skip, crate::readiness::unread(path, problem), WHY)
                .fix(format!("check that {path} is the capture initrd the kdump service built (`file {path}`), or rebuild it: `{}`", cx.family.rebuild_initrd(release)))
        }
    };
    let mut parts: Vec<(Status, String)> = Vec::new();
    let mut details = vec![format!(
        "{path}: {} entries in {}",
        contents.files.len(),
        contents.segments.join(" + ")
    )];
    let mut fixes = Vec::new();
    for need in needs(cx) {
        match need {
            Need::Filesystem { fstype, why } => {
                filesystem(cx, contents, &fstype, &why, &mut parts, &mut details)
            }
            Need::Network { kind } => network(cx, contents, &kind, &mut parts, &mut details),
            Need::Unknown(why) => parts.push((Status::Skip, why)),
            Need::Nothing(why) => details.push(why),
        }
    }
    size(cx, path, contents, &mut parts, &mut details);
    if parts.iter().any(|(s, _)| *s >= Status::Warn) {
        fixes.push(format!(
            "make the kdump tooling include what is missing ({}), then rebuild: `{}`",
            include_hint(cx),
            cx.family.rebuild_initrd(release)
        ));
    }
    let status = parts.iter().map(|(s, _)| *s).max().unwrap_or(Status::Pass);
    let seen = if parts.is_empty() {
        format!("{path} holds what the dump target needs")
    } else {
        joined(&parts)
    };
    check(16, status, seen, WHY)
        .details(details)
        .fix(fixes.join("\n"))
}

/// What the capture environment must find in the initrd.
enum Need {
    Filesystem {
        fstype: String,
        why: String,
    },
    Network {
        kind: String,
    },
    /// Cannot be judged: a SKIP.
    Unknown(String),
    /// Nothing kdrill knows to look for (a raw device target).
    Nothing(String),
}

fn needs(cx: &Context) -> Vec<Need> {
    let flavour = cx.config.as_ref().map(|c| c.flavour);
    let target = cx
        .config
        .as_ref()
        .map(|c| c.target.clone())
        .unwrap_or_else(|| Target::Local("/var/crash".to_string()));
    let mounted = |dir: &str, why: String| {
        match cx
        .snap
        .mounts
        .as_deref()
        .ok()
        .and_then(|m| mount_of(m, dir))
    {
        Some((_, fstype)) => Need::Filesystem { fstype, why },
        None => Need::Unknown(format!(
            "the filesystem of {dir} is unknown (no /proc/mounts entry for it), so its module is not judged"
        )),
    }
    };
    let mut needs = Vec::new();
    // kdump-tools' capture initrd is an ordinary initramfs: it mounts the root filesystem and the
    // capture service runs from there, where the dump folder's own module can still be loaded.
    if flavour == Some(Flavour::KdumpTools) {
        needs.push(mounted(
            "/",
            "the root filesystem kdump-tools' capture boot mounts".to_string(),
        ));
    }
    match target {
        Target::Local(dir) if flavour != Some(Flavour::KdumpTools) => {
            needs.push(mounted(&dir, format!("the dump folder {dir}")));
        }
        Target::Local(_) => {}
        Target::Remote { kind, place } => match kind.as_str() {
            "ssh" | "sftp" | "nfs" | "cifs" | "ftp" => needs.push(Need::Network { kind }),
            fs if FILESYSTEMS.iter().any(|(t, ..)| *t == fs) => needs.push(Need::Filesystem {
                fstype: kind.clone(),
                why: format!("the dump target {place}"),
            }),
            other => needs.push(Need::Nothing(format!(
                "a `{other}` target: what it needs is not judged"
            ))),
        },
    }
    needs
}

/// Whether the initrd can mount `fstype`: its module in the initrd, or built into the kernel.
fn filesystem(
    cx: &Context,
    contents: &Contents,
    fstype: &str,
    why: &str,
    parts: &mut Vec<(Status, String)>,
    details: &mut Vec<String>,
) {
    let Some((_, module, option)) = FILESYSTEMS.iter().find(|(t, ..)| *t == fstype) else {
        details.push(format!("{why}: {fstype}, not judged"));
        return;
    };
    if let Some(path) = contents.module(module) {
        details.push(format!("{why}: {fstype}, module {path}"));
    } else if cx.kconfig(option) == Some("y") || contents.builtin(module) {
        details.push(format!("{why}: {fstype}, {module} built into the kernel"));
    } else if cx.kconfig(option).is_none() && contents.builtin.is_none() {
        parts.push((
            Status::Warn,
            format!("no {module} module in the capture initrd for {why} ({fstype}), and whether it is built in is unknown ({option} not in the kernel config read)"),
        ));
    } else {
        parts.push((
            Status::Fail,
            format!("no {module} module in the capture initrd for {why} ({fstype}), and {option} is not built in"),
        ));
    }
}

/// An SSH or NFS target: the program or module, and a network driver.
fn network(
    cx: &Context,
    contents: &Contents,
    kind: &str,
    parts: &mut Vec<(Status, String)>,
    details: &mut Vec<String>,
) {
    match kind {
        "ssh" | "sftp" => match contents.program("ssh") {
            Some(path) => details.push(format!("ssh target: {path}")),
            None => parts.push((
                Status::Fail,
                "an ssh target, but no ssh program in the capture initrd".to_string(),
            )),
        },
        "nfs" | "cifs" => filesystem(
            cx,
            contents,
            kind,
            &format!("the {kind} target"),
            parts,
            details,
        ),
        _ => {}
    }
    let drivers = contents.modules_under("drivers/net");
    if drivers.is_empty() {
        parts.push((
            Status::Warn,
            format!("a {kind} target, but no network driver module in the capture initrd (enough only if the network card's driver is built into the kernel)"),
        ));
    } else {
        details.push(format!("network drivers: {}", drivers.join(", ")));
    }
}

/// The unpacked initrd and its compressed file both sit in the reservation while it unpacks.
fn size(
    cx: &Context,
    path: &str,
    contents: &Contents,
    parts: &mut Vec<(Status, String)>,
    details: &mut Vec<String>,
) {
    let packed = cx.snap.file(path).map(|m| m.len).unwrap_or(0);
    let need = packed + contents.unpacked_bytes;
    let text = format!(
        "{} unpacked + {} compressed",
        figure(contents.unpacked_bytes),
        figure(packed)
    );
    match cx.mem.reserved().filter(|r| *r > 0) {
        Some(reserved) if need >= reserved => parts.push((
            Status::Fail,
            format!("the capture initrd takes {text}, not less than the {} reservation", figure(reserved)),
        )),
        Some(reserved) if need.saturating_mul(2) > reserved => parts.push((
            Status::Warn,
            format!("the capture initrd takes {text}, more than half of the {} reservation (the capture kernel and makedumpfile need the rest)", figure(reserved)),
        )),
        Some(reserved) => details.push(format!("size: {text} of the {} reservation", figure(reserved))),
        None => details.push(format!("size: {text} (nothing reserved to compare with)")),
    }
}

/// Where each family's tooling is told what to put in the capture initrd.
fn include_hint(cx: &Context) -> &'static str {
    match cx.config.as_ref().map(|c| c.flavour) {
        Some(Flavour::KdumpTools) => "kdump-tools builds it with the system's initramfs generator: a module's name in /etc/initramfs-tools/modules (initramfs-tools), or an `add_drivers+=` line in /etc/dracut.conf.d/ (dracut)",
        Some(Flavour::Kdumpctl) => "kdumpctl builds it with dracut: `extra_modules` and `dracut_args` in /etc/kdump.conf",
        Some(Flavour::Suse) => "mkdumprd builds it with dracut: an `add_drivers+=` line in /etc/dracut.conf.d/",
        None => "the kdump service's initrd configuration",
    }
}
