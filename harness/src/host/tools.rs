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

/// Host programs only the test suite runs: promtool validates `kdrill check --format
/// prometheus`; dpkg installs kdrill's own package into a throwaway root. Not in [`needed`]:
/// Debian 12 ships promtool only in the `prometheus` package, whose install enables (and on a
/// systemd host starts) a Prometheus server, which `cargo xtask` must not do to a developer's
/// machine. `.ci/run` installs it with service starts refused.
pub const TEST_TOOLS: &[(&str, &str)] = &[("promtool", "prometheus"), ("dpkg", "dpkg")];

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
// Not a bare `apt-get install`: on a host whose QEMU came from backports that line removes it;
// the host-package step installs QEMU as one set.
#[error(
    "`{tool}` is not installed (package {package}): `sudo kdrill doctor --install` installs it, `kdrill doctor` shows the commands"
)]
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
        .chain(TEST_TOOLS)
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

/// What `cargo xtask` installs before it runs guests, and what `kdrill doctor` looks at: the
/// verify loop's tools, the crasher module's compiler and the Debian image's tools.
pub fn needed() -> Vec<(&'static str, &'static str)> {
    [VERIFY_TOOLS, CRASHER_TOOLS, DEBIAN_IMAGE_TOOLS].concat()
}

/// Host programs checked by running them after the host-package step: a package present is not
/// yet a program that runs (a library missing, a broken mixed install).
pub const RUN_CHECKS: &[(&str, &str)] = &[
    ("qemu-system-x86_64", "--version"),
    ("qemu-img", "--version"),
];

/// `--version` answers at once; a wedged binary must not hang kdrill.
const RUN_CHECK_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// For a tool of [`RUN_CHECKS`]: the first line it prints, or why it did not run.
pub fn runs(tool: &str) -> Option<Result<String, String>> {
    let (_, flag) = RUN_CHECKS.iter().find(|(t, _)| *t == tool)?;
    let Some(path) = find(tool) else {
        return Some(Err("not found".into()));
    };
    let mut command = std::process::Command::new(&path);
    command.arg(flag);
    Some(
        match crate::host::process::run(&mut command, RUN_CHECK_DEADLINE) {
            Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()),
            Ok(out) => Err(format!(
                "`{} {flag}` failed ({}): {}",
                path.display(),
                out.status,
                out.last_line()
            )),
            Err(err) => Err(err.to_string()),
        },
    )
}

/// Makes sure the host has every package `tools` needs: as root on a Debian-like system the
/// host-package step installs them (QEMU's as one set with the QEMU already installed, see
/// `host::packages`), then the tools of [`RUN_CHECKS`] must run; otherwise it fails with the
/// exact commands.
pub fn ensure(tools: &[(&str, &str)]) -> anyhow::Result<()> {
    let missing = missing_packages(tools);
    if missing.is_empty() {
        return Ok(());
    }
    if !can_install() {
        anyhow::bail!(
            "missing host packages: {}\n  install them (as root) with:\n{}",
            missing.join(", "),
            fix_commands(&missing)
        );
    }
    crate::host::packages::install(&missing)?;
    let still = missing_packages(tools);
    anyhow::ensure!(
        still.is_empty(),
        "apt-get finished but these packages are still missing: {}",
        still.join(", ")
    );
    for (tool, _) in tools {
        if let Some(Err(why)) = runs(tool) {
            anyhow::bail!("`{tool}` was installed but does not run: {why}");
        }
    }
    Ok(())
}

/// Fails, installing nothing, when a package of `tools` is missing: the packages, and the commands
/// that install them on this host as it is. For runs that must not install (an installed
/// `kdrill verify`), before the first guest.
pub fn require_all(tools: &[(&str, &str)]) -> anyhow::Result<()> {
    let missing = missing_packages(tools);
    anyhow::ensure!(
        missing.is_empty(),
        "missing host packages: {}\n  install them (as root) with:\n{}",
        missing.join(", "),
        fix_commands(&missing)
    );
    Ok(())
}

/// Whether kdrill may install packages here: root, with apt-get, on Debian or a derivative.
pub fn can_install() -> bool {
    is_root() && find("apt-get").is_some() && Path::new("/etc/debian_version").exists()
}

/// The commands that install `missing` on this host as it is, one per line and indented (the
/// plain install line when the host's apt cannot be asked), then `kdrill doctor --install`.
pub fn fix_commands(missing: &[String]) -> String {
    let lines = match crate::host::packages::plan_now(missing) {
        Ok(plan) => plan.commands(),
        Err(err) => vec![format!("# {err}")],
    };
    let mut text: Vec<String> = lines.iter().map(|l| format!("    {l}")).collect();
    text.push("  or let kdrill do it: sudo kdrill doctor --install".into());
    text.join("\n")
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
            "`debugfs` is not installed (package e2fsprogs): `sudo kdrill doctor --install` installs it, `kdrill doctor` shows the commands"
        );
    }

    #[test]
    fn a_run_that_must_not_install_names_what_is_missing_and_the_way_out() {
        let tools = [
            ("kdrill-no-such-tool", "kdrill-no-such-package"),
            ("sh", "dash"),
        ];
        let err = require_all(&tools).unwrap_err().to_string();
        assert!(
            err.starts_with("missing host packages: kdrill-no-such-package\n"),
            "{err}"
        );
        assert!(err.contains("sudo kdrill doctor --install"), "{err}");
        assert!(require_all(&[("sh", "dash")]).is_ok());
    }

    #[test]
    fn crasher_tools_name_their_packages() {
        assert_eq!(package_for("make"), "make");
        assert_eq!(package_for("gcc-12"), "gcc-12");
        assert_eq!(package_for("promtool"), "prometheus");
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
