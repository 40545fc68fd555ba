//! What several checks derive from the snapshot once: the distribution, the kdump configuration,
//! the kernel config, whether this kernel can dump at all ([`Support`]), the memory figures and
//! the capture command line.

use std::collections::BTreeMap;

use crate::readiness::distro::{self, Family};
use crate::readiness::kdumpconf::{self, KdumpConfig};
use crate::readiness::{ram, source, Snapshot};

/// Whether this kernel can do crash dumps at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Support {
    Yes,
    No(String),
    Unknown,
}

/// What several checks derive from the snapshot, computed once.
pub(crate) struct Context<'a> {
    pub snap: &'a Snapshot,
    pub family: Family,
    /// `VERSION_ID` of `/etc/os-release` (`24.10`), for fixes that differ by release.
    pub version_id: Option<String>,
    pub config: Option<KdumpConfig>,
    pub kernel_config: BTreeMap<String, String>,
    pub support: Support,
    pub mem: ram::Memory,
    pub capture_cmdline: Option<String>,
}

impl<'a> Context<'a> {
    pub fn new(snap: &'a Snapshot) -> Self {
        let config = kdumpconf::from_files(
            snap.kdump_tools.as_deref().ok(),
            snap.kdump_conf.as_deref().ok(),
            snap.sysconfig_kdump.as_deref().ok(),
        );
        let kernel_config = match &snap.kernel_config {
            Ok((_, text)) => parse_kernel_config(text),
            Err(_) => BTreeMap::new(),
        };
        let support = support(snap, &kernel_config);
        let capture_cmdline = match (&config, &snap.cmdline) {
            (Some(config), Ok(running)) => Some(kdumpconf::capture_cmdline(
                config,
                running.trim(),
                snap.kexec_cmd.as_deref().ok(),
            )),
            _ => None,
        };
        Context {
            snap,
            family: distro::family(snap.os_release.as_deref().ok()),
            version_id: snap
                .os_release
                .as_deref()
                .ok()
                .and_then(|text| kdumpconf::shell_vars(text).remove("VERSION_ID")),
            mem: ram::Memory::new(snap),
            config,
            kernel_config,
            support,
            capture_cmdline,
        }
    }

    /// Whether the running kernel looks like one the distribution ships (`None`: release unknown).
    /// Only then may a fix name a package after the release or edit the distribution's boot
    /// loader config for it.
    pub fn shipped(&self) -> Option<bool> {
        let release = self.snap.release.as_deref().ok()?;
        // A family kdrill does not know names no packages: whose kernel it is stays unknown.
        (self.family != Family::Unknown).then(|| self.family.ships(release))
    }

    /// The running kernel, for messages: `6.18.44-fc-v1272`, or `this kernel`.
    pub fn release(&self) -> &str {
        self.snap.release.as_deref().unwrap_or("this kernel")
    }

    /// How to put `param` on the running kernel's command line: the distribution's way for a kernel
    /// it ships (or an unknown release), else wherever that kernel's boot is configured.
    pub fn add_kernel_param(&self, param: &str) -> String {
        match self.shipped() {
            Some(false) => format!(
                "add `{param}` to the command line of kernel {} where its boot is configured (it was not built by {}: its boot loader or hypervisor sets the command line) and reboot",
                self.release(),
                self.family.name()
            ),
            _ => self.family.add_kernel_param(param),
        }
    }

    /// How to set `crashkernel=` (`param`): the distribution's own way (its default first when
    /// `missing`) for a kernel it ships (or an unknown release), else as [`Self::add_kernel_param`].
    pub fn set_crashkernel(&self, param: &str, missing: bool) -> String {
        match self.shipped() {
            Some(false) => self.add_kernel_param(param),
            _ => self
                .family
                .set_crashkernel(self.version_id.as_deref(), param, missing),
        }
    }

    /// The fix for a kernel that cannot dump: rebuild it, or boot one of the distribution's.
    pub fn kernel_without_dump_fix(&self) -> String {
        let distribution = match self.family.kernel_install(self.snap.arch.as_deref().ok()) {
            Some(install) => format!("boot a {} kernel (`{install}`)", self.family.name()),
            None => "boot a distribution kernel (every one is built with them)".to_string(),
        };
        let now = match self.shipped() {
            Some(false) => format!(
                "this kernel ({}) was not built by {}: rebuild it with CONFIG_KEXEC (or CONFIG_KEXEC_FILE) and CONFIG_CRASH_DUMP, or {distribution}",
                self.release(),
                self.family.name()
            ),
            _ => format!(
                "boot a kernel built with CONFIG_KEXEC (or CONFIG_KEXEC_FILE) and CONFIG_CRASH_DUMP: {distribution}"
            ),
        };
        format!("{now}; then run `kdrill check` again: the reservation, the kdump service and their fixes depend on the kernel that runs")
    }

    /// The kdump unit to name in fixes: the configured flavour's, else the distribution's.
    pub fn unit(&self) -> &'static str {
        match &self.config {
            Some(config) => config.flavour.unit(),
            None => self.family.unit(),
        }
    }

    /// `y`, `m`, or `None` for a kernel config option (`CONFIG_` prefix included).
    pub fn kconfig(&self, name: &str) -> Option<&str> {
        self.kernel_config.get(name).map(String::as_str)
    }

    /// Where the kernel config was read from, for messages.
    pub fn kconfig_path(&self) -> &str {
        self.snap
            .kernel_config
            .as_ref()
            .map(|(path, _)| path.as_str())
            .unwrap_or("the kernel config")
    }
}

/// `CONFIG_X=y` lines, and `# CONFIG_X is not set` as `n`.
fn parse_kernel_config(text: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for line in text.lines() {
        if let Some((key, value)) = line.split_once('=') {
            if key.starts_with("CONFIG_") {
                map.insert(key.to_string(), value.trim_matches('"').to_string());
            }
        } else if let Some(name) = line
            .strip_prefix("# ")
            .and_then(|l| l.strip_suffix(" is not set"))
        {
            map.insert(name.to_string(), "n".to_string());
        }
    }
    map
}

fn support(snap: &Snapshot, kconfig: &BTreeMap<String, String>) -> Support {
    let missing = |got: &source::Got<String>| matches!(got, Err(source::Problem::Missing));
    // The kexec_crash_* files exist exactly when the kernel can reserve and load a capture kernel
    // (CONFIG_KEXEC_CORE before 6.7, CONFIG_CRASH_DUMP since): their presence settles it.
    if !missing(&snap.kexec_crash_size) || !missing(&snap.kexec_crash_loaded) {
        return Support::Yes;
    }
    let set = |name: &str| kconfig.get(name).map(|v| v == "y");
    if set("CONFIG_KEXEC") == Some(false) && set("CONFIG_KEXEC_FILE") == Some(false) {
        return Support::No("neither CONFIG_KEXEC nor CONFIG_KEXEC_FILE is set".to_string());
    }
    if set("CONFIG_CRASH_DUMP") == Some(false) {
        return Support::No("CONFIG_CRASH_DUMP is not set".to_string());
    }
    if snap.live {
        return Support::No(
            "the kernel has no /sys/kernel/kexec_crash_size or kexec_crash_loaded".to_string(),
        );
    }
    Support::Unknown
}
