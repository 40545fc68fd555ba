//! Distribution family from `/etc/os-release`, and how each family spells the fixes (packages, boot loader, units).

use std::sync::LazyLock;

use regex::Regex;

use crate::readiness::kdumpconf::shell_vars;

/// Kernel releases each family's own packages carry (`uname -r`). A release that does not look
/// like one was built elsewhere: no package of the distribution is named after it.
static DEBIAN_RELEASE: LazyLock<Regex> = LazyLock::new(|| {
    // 6.1.0-47-amd64, 6.12.117+deb12-cloud-amd64, 6.1.0-0.deb11.13-amd64 (a backport), 7.3.4+deb13-rt-arm64
    Regex::new(
        r"^\d+\.\d+(\.\d+)?(\+deb\d+(\.\d+)?)?(\+bpo)?-(\d+(\.deb\d+\.\d+)?-)?(cloud-|rt-)?(amd64|arm64|686|686-pae|armmp|armmp-lpae|marvell|rpi|powerpc64le|ppc64el|s390x|riscv64|loong64|mips64r2el|mips32r2el|octeon|loongson-3|4kc-malta|5kc-malta)$",
    )
    .expect("a valid regex")
});
static UBUNTU_RELEASE: LazyLock<Regex> = LazyLock::new(|| {
    // 5.15.0-91-generic, 6.8.0-1015-aws, 6.8.0-45-lowlatency-64k
    Regex::new(r"^\d+\.\d+\.\d+-\d+-[a-z][a-z0-9]*(-[a-z0-9]+)*$").expect("a valid regex")
});
static RHEL_RELEASE: LazyLock<Regex> = LazyLock::new(|| {
    // 5.14.0-427.13.1.el9_4.x86_64, 5.15.0-205.149.5.1.el9uek.x86_64, 6.5.6-300.fc39.x86_64,
    // 6.1.61-85.amzn2023.x86_64, 5.14.0-427.13.1.el9_4.x86_64+rt
    Regex::new(r"^\d+\.\d+\.\d+-[0-9][0-9.]*\.(el\d+(_\d+)*(uek)?|fc\d+|amzn\d+)\.[a-z0-9_]+(\+[a-z0-9]+)?$")
        .expect("a valid regex")
});
static SUSE_RELEASE: LazyLock<Regex> = LazyLock::new(|| {
    // 5.14.21-150500.55.39-default, 6.7.5-1-default, 6.4.0-150600.23.7-azure
    Regex::new(r"^\d+\.\d+\.\d+-[0-9][0-9.]*-(default|azure|rt|kvmsmall|64kb|preempt|vanilla|zfcpdump|pae)$")
        .expect("a valid regex")
});

/// The families whose kdump tooling differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Debian,
    Ubuntu,
    Rhel,
    Suse,
    Unknown,
}

/// Reads `ID` and `ID_LIKE` of an os-release file.
pub fn family(os_release: Option<&str>) -> Family {
    let Some(text) = os_release else {
        return Family::Unknown;
    };
    let vars = shell_vars(text);
    let id = vars.get("ID").map(String::as_str).unwrap_or("");
    let like = vars.get("ID_LIKE").map(String::as_str).unwrap_or("");
    let words: Vec<&str> = std::iter::once(id).chain(like.split_whitespace()).collect();
    let has = |names: &[&str]| words.iter().any(|w| names.contains(w));
    if id == "ubuntu" || has(&["ubuntu"]) {
        Family::Ubuntu
    } else if has(&["debian"]) {
        Family::Debian
    } else if has(&[
        "rhel",
        "fedora",
        "centos",
        "rocky",
        "almalinux",
        "ol",
        "amzn",
    ]) {
        Family::Rhel
    } else if has(&["suse", "opensuse", "sles", "sled"]) || id.starts_with("opensuse") {
        Family::Suse
    } else {
        Family::Unknown
    }
}

impl Family {
    /// How the fixes name this family.
    pub fn name(self) -> &'static str {
        match self {
            Family::Debian => "Debian",
            Family::Ubuntu => "Ubuntu",
            Family::Rhel => "RHEL/Fedora",
            Family::Suse => "SUSE",
            Family::Unknown => "the distribution",
        }
    }

    /// Whether a kernel release (`uname -r`) looks like one this family's packages carry:
    /// Debian's `-amd64`/`-cloud-amd64`/`-rt-amd64`…, Ubuntu's `-<abi>-generic`…, RHEL's
    /// `.el9`, Fedora's `.fc39`, Amazon's `.amzn2023`, SUSE's `-default`. A family kdrill does
    /// not know ships nothing it could name.
    pub fn ships(self, release: &str) -> bool {
        let pattern = match self {
            Family::Debian => &DEBIAN_RELEASE,
            Family::Ubuntu => &UBUNTU_RELEASE,
            Family::Rhel => &RHEL_RELEASE,
            Family::Suse => &SUSE_RELEASE,
            Family::Unknown => return false,
        };
        pattern.is_match(release)
    }

    /// How to install this family's own kernel for `arch` (`uname -m`), when its package name is
    /// known: the metapackage that follows the newest one.
    pub fn kernel_install(self, arch: Option<&str>) -> Option<String> {
        let debian_arch = match arch {
            Some("x86_64") => "amd64",
            Some("aarch64") => "arm64",
            Some("ppc64le") => "powerpc64le",
            Some("s390x") => "s390x",
            Some("riscv64") => "riscv64",
            _ => return None,
        };
        Some(match self {
            Family::Debian => format!("apt install linux-image-{debian_arch}"),
            Family::Ubuntu => "apt install linux-image-generic".to_string(),
            Family::Rhel => "dnf install kernel".to_string(),
            Family::Suse => "zypper install kernel-default".to_string(),
            Family::Unknown => return None,
        })
    }

    /// The kdump service unit this family ships.
    pub fn unit(self) -> &'static str {
        match self {
            Family::Debian | Family::Ubuntu => "kdump-tools.service",
            _ => "kdump.service",
        }
    }

    /// How to install packages.
    pub fn install(self, debian: &str, rhel: &str, suse: &str) -> String {
        match self {
            Family::Debian | Family::Ubuntu => format!("apt install {debian}"),
            Family::Rhel => format!("dnf install {rhel}"),
            Family::Suse => format!("zypper install {suse}"),
            Family::Unknown => {
                format!("install {debian} (Debian/Ubuntu), {rhel} (RHEL/Fedora) or {suse} (SUSE)")
            }
        }
    }

    /// How to install the kdump service.
    pub fn install_kdump(self) -> String {
        self.install(
            "kdump-tools",
            "kexec-tools (kdump-utils on Fedora 40+)",
            "kdump",
        )
    }

    /// How to put a parameter on the kernel command line for the next boot.
    pub fn add_kernel_param(self, param: &str) -> String {
        match self {
            Family::Debian | Family::Ubuntu => format!(
                "add `{param}` to GRUB_CMDLINE_LINUX_DEFAULT in /etc/default/grub.d/kdump-tools.cfg (or /etc/default/grub), run `update-grub` and reboot"
            ),
            Family::Rhel => format!("run `grubby --update-kernel=ALL --args=\"{param}\"` and reboot"),
            Family::Suse => format!(
                "add `{param}` to GRUB_CMDLINE_LINUX_DEFAULT in /etc/default/grub, run `grub2-mkconfig -o /boot/grub2/grub.cfg` and reboot"
            ),
            Family::Unknown => format!("add `{param}` to the kernel command line in the boot loader's config and reboot"),
        }
    }

    /// How to set `crashkernel=` (`param`) for the next boot, in the distribution's own words:
    /// Ubuntu 24.10 and later set it from their own table in kdump-tools' GRUB snippet (Ubuntu
    /// Server docs, "Kernel crash dump"); Fedora and RHEL's kdump-utils reset it to their own
    /// default with `kdumpctl reset-crashkernel` (its `crashkernel-howto.txt`). `missing`: the
    /// command line has none yet, so the distribution's default comes first.
    pub fn set_crashkernel(self, version_id: Option<&str>, param: &str, missing: bool) -> String {
        let update = "run `update-grub` and reboot";
        match self {
            Family::Ubuntu if ubuntu_kdump_default(version_id) => {
                let table = "Ubuntu 24.10 and later enable kdump by default on machines that meet its requirements (at least 4 CPU threads, 6 GB to 2 TB of RAM, room in /var), and /etc/default/grub.d/kdump-tools.cfg sets crashkernel= from Ubuntu's own table";
                if missing {
                    format!("{table}: `apt install kdump-tools` (answer Yes to enabling it) brings that file; for kdrill's figure instead, set `{param}` there; {update} (`kdump-config show` then prints kdump-tools' \"crashkernel suggested size\")")
                } else {
                    format!("{table}: change crashkernel= there to `{param}`, {update} (`kdump-config show` prints kdump-tools' \"crashkernel suggested size\")")
                }
            }
            Family::Rhel if missing => format!(
                "run `kdumpctl reset-crashkernel` (kdump-utils' default for this machine, `kdumpctl get-default-crashkernel`) and reboot; for this size instead: `grubby --update-kernel=ALL --args=\"{param}\"`"
            ),
            Family::Rhel => format!(
                "run `grubby --update-kernel=ALL --args=\"{param}\"` and reboot (`kdumpctl reset-crashkernel` would set kdump-utils' default, `kdumpctl get-default-crashkernel`, chosen by RAM size alone)"
            ),
            _ => self.add_kernel_param(param),
        }
    }

    /// How to (re)load the capture kernel now.
    pub fn reload(self) -> &'static str {
        match self {
            Family::Debian | Family::Ubuntu => "kdump-config load",
            Family::Rhel => "kdumpctl restart",
            Family::Suse => "systemctl restart kdump",
            Family::Unknown => "restart the kdump service",
        }
    }

    /// How to rebuild the capture initrd.
    pub fn rebuild_initrd(self, release: &str) -> String {
        match self {
            Family::Debian | Family::Ubuntu => {
                format!("/etc/kernel/postinst.d/kdump-tools {release} && kdump-config load")
            }
            Family::Rhel => "kdumpctl rebuild && kdumpctl restart".to_string(),
            Family::Suse => "mkdumprd -f && systemctl restart kdump".to_string(),
            Family::Unknown => "rebuild the capture initrd with your kdump tooling".to_string(),
        }
    }

    /// The package with the running kernel's vmlinux and DWARF.
    pub fn debuginfo_install(self, release: &str) -> String {
        match self {
            Family::Debian => format!("apt install linux-image-{release}-dbg"),
            Family::Ubuntu => {
                format!("apt install linux-image-{release}-dbgsym (from ddebs.ubuntu.com)")
            }
            Family::Rhel => format!("dnf debuginfo-install kernel-{release}"),
            Family::Suse => "zypper install kernel-default-debuginfo".to_string(),
            Family::Unknown => format!("install the debug symbols package of kernel {release}"),
        }
    }
}

/// Whether an Ubuntu `VERSION_ID` (`24.10`) is a release that enables kdump by default: 24.10
/// (Oracular Oriole) and later.
fn ubuntu_kdump_default(version_id: Option<&str>) -> bool {
    let Some((major, minor)) = version_id.and_then(|v| v.split_once('.')) else {
        return false;
    };
    match (major.parse::<u32>(), minor.parse::<u32>()) {
        (Ok(major), Ok(minor)) => (major, minor) >= (24, 10),
        _ => false,
    }
}

/// How to set a sysctl now and for every boot.
pub fn set_sysctl(name: &str, value: &str) -> String {
    format!("`sysctl -w {name}={value}`, and keep it with `echo '{name} = {value}' >> /etc/sysctl.d/90-kdump.conf`")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_from_os_release() {
        assert_eq!(
            family(Some("ID=debian\nVERSION_ID=\"12\"\n")),
            Family::Debian
        );
        assert_eq!(family(Some("ID=ubuntu\nID_LIKE=debian\n")), Family::Ubuntu);
        assert_eq!(
            family(Some("ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n")),
            Family::Rhel
        );
        assert_eq!(
            family(Some("ID=\"opensuse-leap\"\nID_LIKE=\"suse opensuse\"\n")),
            Family::Suse
        );
        assert_eq!(family(Some("ID=arch\n")), Family::Unknown);
        assert_eq!(family(None), Family::Unknown);
    }

    #[test]
    fn crashkernel_fixes_name_each_distribution_s_own_way() {
        let param = "crashkernel=384M";
        let ubuntu = Family::Ubuntu.set_crashkernel(Some("24.10"), param, false);
        assert!(
            ubuntu.contains("Ubuntu 24.10 and later enable kdump by default"),
            "{ubuntu}"
        );
        assert!(
            ubuntu.contains("change crashkernel= there to `crashkernel=384M`, run `update-grub`"),
            "{ubuntu}"
        );
        let missing = Family::Ubuntu.set_crashkernel(Some("25.04"), param, true);
        assert!(
            missing
                .contains("`apt install kdump-tools` (answer Yes to enabling it) brings that file"),
            "{missing}"
        );
        // Before 24.10 nothing is enabled by default: the plain GRUB snippet edit.
        let noble = Family::Ubuntu.set_crashkernel(Some("24.04"), param, true);
        assert!(
            !noble.contains("by default") && noble.contains("/etc/default/grub.d/kdump-tools.cfg"),
            "{noble}"
        );
        let rhel = Family::Rhel.set_crashkernel(None, param, true);
        assert!(
            rhel.starts_with("run `kdumpctl reset-crashkernel`")
                && rhel.contains("grubby --update-kernel=ALL --args=\"crashkernel=384M\""),
            "{rhel}"
        );
        let larger = Family::Rhel.set_crashkernel(None, param, false);
        assert!(
            larger.starts_with("run `grubby --update-kernel=ALL"),
            "{larger}"
        );
        assert_eq!(
            Family::Debian.set_crashkernel(Some("12"), param, true),
            Family::Debian.add_kernel_param(param)
        );
        assert!(
            !ubuntu_kdump_default(Some("24.04"))
                && ubuntu_kdump_default(Some("26.04"))
                && !ubuntu_kdump_default(None)
        );
    }

    #[test]
    fn shipped_kernels_by_family() {
        for release in [
            "6.1.0-47-amd64",
            "6.12.117+deb12-amd64",
            "6.12.41+deb13-cloud-amd64",
            "6.1.0-0.deb11.13-amd64",
            "7.3.4+deb13-rt-arm64",
            "4.19.0-26-686-pae",
        ] {
            assert!(Family::Debian.ships(release), "{release}");
        }
        for release in [
            "5.15.0-91-generic",
            "6.8.0-1015-aws",
            "6.8.0-45-lowlatency-64k",
        ] {
            assert!(Family::Ubuntu.ships(release), "{release}");
        }
        for release in [
            "5.14.0-427.13.1.el9_4.x86_64",
            "4.18.0-513.el8.x86_64",
            "5.15.0-205.149.5.1.el9uek.x86_64",
            "6.5.6-300.fc39.x86_64",
            "6.1.61-85.amzn2023.x86_64",
            "5.14.0-427.13.1.el9_4.x86_64+rt",
        ] {
            assert!(Family::Rhel.ships(release), "{release}");
        }
        for release in ["5.14.21-150500.55.39-default", "6.7.5-1-default"] {
            assert!(Family::Suse.ships(release), "{release}");
        }
        // Built elsewhere: this very host's Firecracker kernel, a hand-built one, another
        // family's kernel, and anything under an unknown family.
        for (family, release) in [
            (Family::Debian, "6.18.44-fc-v1272"),
            (Family::Debian, "6.12.0"),
            (Family::Debian, "6.12.0-custom"),
            (Family::Debian, "5.14.0-427.13.1.el9_4.x86_64"),
            (Family::Ubuntu, "6.18.44-fc-v1272"),
            (Family::Rhel, "6.18.44-fc-v1272"),
            (Family::Rhel, "6.1.0-47-amd64"),
            (Family::Suse, "6.1.0-47-amd64"),
            (Family::Unknown, "6.1.0-47-amd64"),
        ] {
            assert!(!family.ships(release), "{family:?} {release}");
        }
        assert_eq!(
            Family::Debian.kernel_install(Some("x86_64")).as_deref(),
            Some("apt install linux-image-amd64")
        );
        assert_eq!(Family::Debian.kernel_install(None), None);
        assert_eq!(Family::Unknown.kernel_install(Some("x86_64")), None);
    }
}
