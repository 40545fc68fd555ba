//! Distribution family from `/etc/os-release`, and how each family spells the fixes (packages, boot loader, units).

use crate::readiness::kdumpconf::shell_vars;

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
}
