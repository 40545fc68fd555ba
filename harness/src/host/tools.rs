//! Host programs kdrill runs, the Debian packages that provide them, and installing what is missing.

use std::path::{Path, PathBuf};

/// Every host program the verify loop needs, with the Debian package that provides it.
pub const VERIFY_TOOLS: &[(&str, &str)] = &[
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("kexec", "kexec-tools"),
    ("makedumpfile", "makedumpfile"),
    ("busybox", "busybox-static"),
    ("mkfs.ext4", "e2fsprogs"),
    ("debugfs", "e2fsprogs"),
    // Kernels come through kdrill's own apt tree (`fetch/apt/`): apt-get and apt-helper run it,
    // the Debian archive keyring checks its InRelease files (Ubuntu carries the package too).
    ("apt-get", "apt"),
    ("/usr/lib/apt/apt-helper", "apt"),
    (
        "/usr/share/keyrings/debian-archive-keyring.gpg",
        "debian-archive-keyring",
    ),
    ("dpkg-deb", "dpkg"),
];

/// Host programs that build and boot the Debian image (`guest/debian/`, `case/production/`).
pub const DEBIAN_IMAGE_TOOLS: &[(&str, &str)] = &[
    ("mmdebstrap", "mmdebstrap"),
    ("tar", "tar"),
    ("qemu-img", "qemu-utils"),
    // Not root, mmdebstrap builds in a user namespace (`--mode=unshare`): newuidmap maps the
    // user's /etc/subuid range into it.
    ("newuidmap", "uidmap"),
];

/// Host programs of the network dump target (`host/sshd.rs`), for scenarios with
/// `dump_target: ssh`. Installing openssh-server also enables Debian's ssh service on port 22:
/// kdrill never uses it (its sshd runs per connection, for one guest).
pub const SSH_TARGET_TOOLS: &[(&str, &str)] = &[
    ("sshd", "openssh-server"),
    ("ssh-keygen", "openssh-client"),
    ("/usr/lib/openssh/sftp-server", "openssh-sftp-server"),
    ("unshare", "util-linux"),
    ("chroot", "coreutils"),
];

/// Host programs that build the crasher kernel module (`crasher.rs`) against a guest kernel's headers.
/// Kept apart from [`VERIFY_TOOLS`]: only crash routes that need the module need a compiler.
pub const CRASHER_TOOLS: &[(&str, &str)] = &[
    ("make", "make"),
    ("gcc", "gcc"),
    // Debian 12 kernels were built with gcc 12 and their headers call `gcc-12` by name
    // (`.kernelvariables`); on Debian 12 the `gcc` package already brings it.
    ("gcc-12", "gcc-12"),
];

/// Folders searched for host programs, beyond `$PATH` (sbin folders are often not on a user's PATH).
const EXTRA_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

#[derive(Debug, thiserror::Error)]
#[error("`{tool}` is not installed: install it with `apt-get install -y {package}` (as root)")]
pub struct MissingTool {
    pub tool: String,
    pub package: String,
}

/// Finds `tool` on `$PATH` or in the usual sbin/bin folders.
pub fn find(tool: &str) -> Option<PathBuf> {
    let path_dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(tool))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Is kdrill running as root (and so allowed to install packages)?
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Finds `tool`, or says which package provides it.
pub fn require(tool: &str) -> Result<PathBuf, MissingTool> {
    find(tool).ok_or_else(|| MissingTool {
        tool: tool.to_string(),
        package: package_for(tool).to_string(),
    })
}

/// The Debian package that provides `tool` (the tool's own name when unknown).
pub fn package_for(tool: &str) -> &str {
    VERIFY_TOOLS
        .iter()
        .chain(CRASHER_TOOLS)
        .chain(DEBIAN_IMAGE_TOOLS)
        .chain(SSH_TARGET_TOOLS)
        .find(|(t, _)| *t == tool)
        .map(|(_, p)| *p)
        .unwrap_or(tool)
}

/// The packages whose tools are missing, deduplicated, in table order.
pub fn missing_packages(tools: &[(&str, &str)]) -> Vec<String> {
    let mut packages: Vec<String> = Vec::new();
    for (tool, package) in tools {
        // An absolute path is a file (a keyring) or a program outside $PATH: it must exist.
        let present = if tool.starts_with('/') {
            Path::new(tool).exists()
        } else {
            find(tool).is_some()
        };
        if !present && !packages.iter().any(|p| p == package) {
            packages.push(package.to_string());
        }
    }
    packages
}

/// Makes sure the host has every package `tools` needs: installs them with apt-get when running as
/// root on a Debian-like system (saying so), otherwise fails with the exact install line.
pub fn ensure(tools: &[(&str, &str)]) -> anyhow::Result<()> {
    let missing = missing_packages(tools);
    if missing.is_empty() {
        return Ok(());
    }
    let line = format!(
        "apt-get install -y --no-install-recommends {}",
        missing.join(" ")
    );
    let is_root = is_root();
    let has_apt = find("apt-get").is_some() && Path::new("/etc/debian_version").exists();
    if !(is_root && has_apt) {
        anyhow::bail!(
            "missing host packages: {}\n  install them with: sudo {line}",
            missing.join(", ")
        );
    }
    eprintln!("kdrill: installing missing host packages as root: {line}");
    run_apt(&["update", "-qq"], APT_UPDATE_DEADLINE)?;
    let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
    args.extend(missing.iter().map(String::as_str));
    run_apt(&args, APT_INSTALL_DEADLINE)?;
    let still = missing_packages(tools);
    anyhow::ensure!(
        still.is_empty(),
        "apt-get finished but these packages are still missing: {}",
        still.join(", ")
    );
    Ok(())
}

/// `apt-get update`: the package lists, a minute or two on a slow mirror.
const APT_UPDATE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(600);
/// `apt-get install` of the host packages (QEMU and its libraries are the bulk: ~100 MB).
const APT_INSTALL_DEADLINE: std::time::Duration = std::time::Duration::from_secs(1800);

/// Runs apt-get with the terminal's output (the user sees its progress), under `limit`.
fn run_apt(args: &[&str], limit: std::time::Duration) -> anyhow::Result<()> {
    let mut command = std::process::Command::new("apt-get");
    command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
    // Its progress is for people: on stderr, so stdout stays JSON under `--format json`.
    command.stdout(std::io::stderr());
    let status = crate::host::process::run_status(&mut command, limit)?;
    anyhow::ensure!(
        status.success(),
        "`apt-get {}` failed ({status})",
        args.join(" ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tool_names_its_package() {
        let err = MissingTool {
            tool: "debugfs".into(),
            package: package_for("debugfs").into(),
        };
        assert_eq!(
            err.to_string(),
            "`debugfs` is not installed: install it with `apt-get install -y e2fsprogs` (as root)"
        );
    }

    #[test]
    fn crasher_tools_name_their_packages() {
        assert_eq!(package_for("make"), "make");
        assert_eq!(package_for("gcc-12"), "gcc-12");
        // Unknown tools are assumed to be packaged under their own name.
        assert_eq!(package_for("gcc-14"), "gcc-14");
    }

    #[test]
    fn missing_packages_are_deduplicated() {
        let tools = [
            ("kdrill-no-such-tool-a", "pkg-x"),
            ("kdrill-no-such-tool-b", "pkg-x"),
            ("sh", "dash"),
        ];
        assert_eq!(missing_packages(&tools), ["pkg-x"]);
    }
}
