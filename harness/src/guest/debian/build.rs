//! The two mmdebstrap runs that make the Debian image. `base`: the recipe's packages and the
//! kernel's `.deb` into a tarball. `image`: that tarball, kdrill's files, the operator's
//! overlay, `finish` run inside (both initrds), then the boot initrd copied out and the root
//! disk made with `mkfs.ext4 -d` from a bind mount of the tree (so `/proc`, `/sys` and `/dev`,
//! mounted for the hooks, stay out of it). The command lines are pure functions;
//! `fetch/mmdebstrap.rs` runs one under a deadline with its output kept in a log.

use std::path::Path;
use std::time::Duration;

pub use crate::fetch::mmdebstrap::{run, BuildError};
use crate::host::process::shell_line;

/// Stage 1: downloads ~250 MB and installs them (~1 min here); a slow mirror takes longer.
pub const BASE_DEADLINE: Duration = Duration::from_secs(900);
/// Stage 2: both initrds and the disk (~20 s here).
pub const IMAGE_DEADLINE: Duration = Duration::from_secs(300);

/// What stage 1 installs.
#[derive(Debug, Clone)]
pub struct BaseSpec<'a> {
    pub suite: &'a str,
    pub sources: &'a [String],
    pub packages: &'a [String],
    /// The kernel's `.deb` (a path without blanks: mmdebstrap splits `--include` on them).
    pub kernel_deb: &'a Path,
}

/// mmdebstrap's arguments for stage 1, writing the tarball `out`.
pub fn base_args(spec: &BaseSpec, out: &Path) -> Vec<String> {
    let mut args = vec![
        "--variant=apt".to_string(),
        "--format=tar".into(),
        // No device nodes in the tarball: stage 2 unpacks it with `tar-in`, which cannot mknod
        // in mmdebstrap's unshare mode (not root); the guest's /dev is a devtmpfs anyway.
        "--skip=output/dev".into(),
        format!("--include={}", spec.packages.join(",")),
        format!("--include={}", spec.kernel_deb.display()),
        // MODULES=list before any initrd is built: the kernel's postinst runs kdump-tools'
        // hook, and MODULES=dep fails in a chroot.
        "--essential-hook=mkdir -p \"$1/etc/initramfs-tools/conf.d\" && echo MODULES=list > \"$1/etc/initramfs-tools/conf.d/kdrill\"".into(),
        // The dump folder holds all of the guest's memory: owner only. (An overlay may say otherwise.)
        "--customize-hook=mkdir -p \"$1/var/crash\" && chmod 0700 \"$1/var/crash\"".into(),
        spec.suite.to_string(),
        out.display().to_string(),
    ];
    args.extend(spec.sources.iter().cloned());
    args
}

/// What stage 2 puts on top of the base.
#[derive(Debug, Clone)]
pub struct ImageSpec<'a> {
    pub suite: &'a str,
    pub sources: &'a [String],
    /// Files in a scratch folder whose path has no blanks (mmdebstrap's special hooks split on them).
    pub base_tar: &'a Path,
    pub files_tar: &'a Path,
    pub overlay_tar: Option<&'a Path>,
    pub finish: &'a Path,
    /// `finish`'s arguments: release, hostname, modules.
    pub finish_args: Vec<String>,
    pub release: &'a str,
    /// Where the boot initrd is copied out to.
    pub initrd_out: &'a Path,
    /// Where the image's dpkg status is copied out to (which versions it runs).
    pub status_out: &'a Path,
    /// The executable hook script that makes the disk (see [`mkfs_script`]).
    pub mkfs_hook: &'a Path,
}

/// mmdebstrap's arguments for stage 2 (nothing is downloaded: the `custom` variant installs no
/// package, and the package lists are not updated).
pub fn image_args(spec: &ImageSpec) -> Vec<String> {
    let mut args = vec![
        "--variant=custom".to_string(),
        "--format=null".into(),
        "--skip=update".into(),
        format!("--setup-hook=tar-in {} /", spec.base_tar.display()),
        // The base has no /dev (see `base_args`); mmdebstrap makes its nodes or mounts in it.
        "--setup-hook=mkdir -p \"$1/dev\"".into(),
        format!("--customize-hook=tar-in {} /", spec.files_tar.display()),
    ];
    if let Some(overlay) = spec.overlay_tar {
        args.push(format!("--customize-hook=tar-in {} /", overlay.display()));
    }
    args.push(format!(
        "--customize-hook=upload {} /tmp/kdrill-finish",
        spec.finish.display()
    ));
    let finish = std::iter::once("/tmp/kdrill-finish".to_string())
        .chain(spec.finish_args.iter().cloned())
        .collect::<Vec<_>>();
    args.push(format!(
        "--customize-hook=chroot \"$1\" {} && rm -f \"$1/tmp/kdrill-finish\"",
        shell_line(Path::new("/bin/sh"), &finish)
    ));
    args.push(format!(
        "--customize-hook=download /boot/initrd.img-{} {}",
        spec.release,
        spec.initrd_out.display()
    ));
    args.push(format!(
        "--customize-hook=download /var/lib/dpkg/status {}",
        spec.status_out.display()
    ));
    args.push(format!("--customize-hook={}", spec.mkfs_hook.display()));
    args.push(spec.suite.to_string());
    args.push(String::new());
    args.extend(spec.sources.iter().cloned());
    args
}

/// The hook that makes the root disk: a bind mount of the tree without `/proc`, `/sys`, `/dev`,
/// its size in MiB plus a third and `free_mib`, then `mkfs.ext4 -d` (labelled `kdrill-root`).
pub fn mkfs_script(mkfs: &Path, disk: &Path, free_mib: u32) -> String {
    let quote = |p: &Path| shell_line(p, &[]);
    format!(
        "#!/bin/sh\n# kdrill: the Debian image's root disk, from the finished tree ($1).\nset -eu\nm=$(mktemp -d)\nmount --bind \"$1\" \"$m\"\nused=$(du -sxm \"$m\" | cut -f1)\nsize=$((used + used / 3 + {free_mib}))\nrc=0\n{} -q -F -L kdrill-root -d \"$m\" {} \"${{size}}M\" || rc=$?\numount \"$m\"\nrmdir \"$m\"\nexit $rc\n",
        quote(mkfs),
        quote(disk)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_args_install_packages_and_the_kernel_deb() {
        let sources = vec!["deb http://m/debian bookworm main".to_string()];
        let packages = vec!["kdump-tools".to_string(), "udev".to_string()];
        let args = base_args(
            &BaseSpec {
                suite: "bookworm",
                sources: &sources,
                packages: &packages,
                kernel_deb: Path::new("/c/debs/linux/package.deb"),
            },
            Path::new("/s/base.tar"),
        );
        assert!(args.contains(&"--include=kdump-tools,udev".to_string()));
        assert!(args.contains(&"--include=/c/debs/linux/package.deb".to_string()));
        let tail = &args[args.len() - 3..];
        assert_eq!(
            tail,
            [
                "bookworm",
                "/s/base.tar",
                "deb http://m/debian bookworm main"
            ]
        );
    }

    #[test]
    fn image_args_order_files_overlay_finish_then_disk() {
        let sources = vec!["deb http://m/debian bookworm main".to_string()];
        let spec = ImageSpec {
            suite: "bookworm",
            sources: &sources,
            base_tar: Path::new("/s/base.tar"),
            files_tar: Path::new("/s/files.tar"),
            overlay_tar: Some(Path::new("/s/overlay.tar")),
            finish: Path::new("/s/finish"),
            finish_args: vec![
                "6.1.0-47-amd64".into(),
                "kdrill-debian".into(),
                "ext4".into(),
            ],
            release: "6.1.0-47-amd64",
            initrd_out: Path::new("/s/initrd.img"),
            status_out: Path::new("/s/dpkg-status"),
            mkfs_hook: Path::new("/s/mkfs"),
        };
        let args = image_args(&spec);
        let at = |needle: &str| args.iter().position(|a| a.contains(needle)).unwrap();
        assert!(at("files.tar") < at("overlay.tar"));
        assert!(at("overlay.tar") < at("chroot"));
        assert!(at("chroot") < at("download /boot/initrd.img-6.1.0-47-amd64 /s/initrd.img"));
        assert!(at("chroot") < at("download /var/lib/dpkg/status /s/dpkg-status"));
        assert!(args[at("chroot")]
            .contains("/bin/sh /tmp/kdrill-finish 6.1.0-47-amd64 kdrill-debian ext4"));
        assert_eq!(args.last().unwrap(), "deb http://m/debian bookworm main");
    }

    #[test]
    fn the_disk_hook_quotes_its_paths() {
        let script = mkfs_script(
            Path::new("/sbin/mkfs.ext4"),
            Path::new("/my cache/disk.raw"),
            768,
        );
        assert!(
            script.contains("/sbin/mkfs.ext4 -q -F -L kdrill-root -d \"$m\" '/my cache/disk.raw'")
        );
        assert!(script.contains("size=$((used + used / 3 + 768))"));
    }
}
