//! The kdump service's own configuration: Debian/Ubuntu `kdump-tools`, RHEL/Fedora `kdumpctl`, SUSE `kdump`.
//!
//! Only what the checklist needs: where dumps go, how they are filtered, what the capture kernel's
//! command line will be, and whether anything runs after a dump is written. Defaults are the packages' own.

use std::collections::BTreeMap;

/// `kdump-tools`' config, read by `kdump-config` (Debian, Ubuntu).
pub const KDUMP_TOOLS: &str = "/etc/default/kdump-tools";
/// `kdumpctl`'s main config (RHEL, Fedora, CentOS, Alma, Rocky).
pub const KDUMP_CONF: &str = "/etc/kdump.conf";
/// RHEL's command-line settings, or SUSE's whole config.
pub const SYSCONFIG_KDUMP: &str = "/etc/sysconfig/kdump";

/// `kdump-tools`' default capture arguments (`KDUMP_CMDLINE_APPEND` unset), as `kdump-config` 1.8 loads them.
const KDUMP_TOOLS_APPEND: &str =
    "reset_devices systemd.unit=kdump-tools-dump.service nr_cpus=1 irqpoll usbcore.nousb";
/// `kdumpctl`'s default `KDUMP_COMMANDLINE_APPEND` on x86_64.
const KDUMPCTL_APPEND: &str = "irqpoll nr_cpus=1 reset_devices cgroup_disable=memory mce=off numa=off udev.children-max=2 panic=10 rootflags=nofail acpi_no_memhotplug transparent_hugepage=never nokaslr hest_disable novmcoredd cma=0 hugetlb_cma=0";
/// `kdumpctl`'s default `KDUMP_COMMANDLINE_REMOVE`.
const KDUMPCTL_REMOVE: &str =
    "hugepages hugepagesz slub_debug quiet log_buf_len swiotlb cma hugetlb_cma ignition.firstboot";

/// Which kdump implementation the config files belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flavour {
    KdumpTools,
    Kdumpctl,
    Suse,
}

impl Flavour {
    /// The systemd unit that loads the capture kernel.
    pub fn unit(self) -> &'static str {
        match self {
            Flavour::KdumpTools => "kdump-tools.service",
            Flavour::Kdumpctl | Flavour::Suse => "kdump.service",
        }
    }

    /// The config file an operator edits.
    pub fn config_path(self) -> &'static str {
        match self {
            Flavour::KdumpTools => KDUMP_TOOLS,
            Flavour::Kdumpctl => KDUMP_CONF,
            Flavour::Suse => SYSCONFIG_KDUMP,
        }
    }
}

/// Where the capture kernel writes the dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A folder on a filesystem the capture environment mounts (usually the root filesystem).
    Local(String),
    /// Somewhere kdrill cannot look at from here: `nfs host:/path`, `ssh user@host`, a raw device…
    Remote { kind: String, place: String },
}

/// The parts of the kdump configuration the checks use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KdumpConfig {
    pub flavour: Flavour,
    /// The file the settings came from.
    pub path: &'static str,
    /// `USE_KDUMP=0` in kdump-tools: installed but switched off.
    pub disabled: bool,
    pub target: Target,
    /// The makedumpfile arguments or core collector, as configured or defaulted.
    pub collector: String,
    /// The `-d` dump level in effect, if the collector is makedumpfile.
    pub dump_level: Option<u32>,
    /// Words added to the capture kernel's command line.
    pub append: String,
    /// Words removed from the running command line before appending (kdumpctl only).
    pub remove: Vec<String>,
    /// Extra `kexec` arguments (`-s` for kexec_file_load).
    pub kexec_args: String,
    /// Anything configured to run or notify after a dump is written.
    pub notify: Vec<String>,
}

/// `KEY=value` assignments of a shell-style config file (quotes removed, comments and `export` ignored).
pub fn shell_vars(text: &str) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        let line = line.strip_prefix("export ").unwrap_or(line).trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        vars.insert(key.to_string(), unquote(value.trim()));
    }
    vars
}

fn unquote(value: &str) -> String {
    for quote in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(quote) {
            return inner.split(quote).next().unwrap_or("").to_string();
        }
    }
    // Unquoted: the value ends at the first blank (a trailing `# comment`).
    value.split_whitespace().next().unwrap_or("").to_string()
}

/// `key value…` lines of `/etc/kdump.conf`.
pub fn conf_lines(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| match line.split_once(char::is_whitespace) {
            Some((key, value)) => (key.to_string(), value.trim().to_string()),
            None => (line.to_string(), String::new()),
        })
        .collect()
}

/// The `-d N` of a makedumpfile command line.
pub fn dump_level(args: &str) -> Option<u32> {
    let words: Vec<&str> = args.split_whitespace().collect();
    let mut level = None;
    for (i, word) in words.iter().enumerate() {
        if *word == "-d" || *word == "--dump-level" {
            level = words.get(i + 1).and_then(|n| n.parse().ok());
        } else if let Some(n) = word.strip_prefix("-d").filter(|n| !n.is_empty()) {
            level = n.parse().ok();
        } else if let Some(n) = word.strip_prefix("--dump-level=") {
            level = n.parse().ok();
        }
    }
    level
}

/// Reads whichever kdump configuration is present, in the order Debian, RHEL, SUSE.
pub fn from_files(
    kdump_tools: Option<&str>,
    kdump_conf: Option<&str>,
    sysconfig: Option<&str>,
) -> Option<KdumpConfig> {
    if let Some(text) = kdump_tools {
        return Some(kdump_tools_config(text));
    }
    if let Some(text) = kdump_conf {
        return Some(kdumpctl_config(
            text,
            sysconfig.map(shell_vars).unwrap_or_default(),
        ));
    }
    sysconfig.map(|text| suse_config(&shell_vars(text)))
}

fn kdump_tools_config(text: &str) -> KdumpConfig {
    let vars = shell_vars(text);
    let get = |key: &str| vars.get(key).filter(|v| !v.is_empty()).cloned();
    let coredir = get("KDUMP_COREDIR").unwrap_or_else(|| "/var/crash".to_string());
    let target = if let Some(place) = get("SSH") {
        Target::Remote {
            kind: "ssh".into(),
            place: format!("{place}:{coredir}"),
        }
    } else if let Some(place) = get("NFS") {
        Target::Remote {
            kind: "nfs".into(),
            place,
        }
    } else {
        Target::Local(coredir)
    };
    let collector = get("MAKEDUMP_ARGS").unwrap_or_else(|| "-c -d 31".to_string());
    // kdump-tools has no post-dump hook (KDUMP_FAIL_CMD runs only when saving fails).
    let notify = Vec::new();
    KdumpConfig {
        flavour: Flavour::KdumpTools,
        path: KDUMP_TOOLS,
        disabled: vars.get("USE_KDUMP").is_some_and(|v| v.trim() != "1"),
        target,
        dump_level: dump_level(&collector),
        collector,
        append: get("KDUMP_CMDLINE_APPEND").unwrap_or_else(|| KDUMP_TOOLS_APPEND.to_string()),
        remove: Vec::new(),
        kexec_args: get("KDUMP_KEXEC_ARGS").unwrap_or_default(),
        notify,
    }
}

fn kdumpctl_config(text: &str, sysconfig: BTreeMap<String, String>) -> KdumpConfig {
    let mut path = "/var/crash".to_string();
    let mut remote = None;
    let mut device = None;
    let mut collector = "makedumpfile -l --message-level 7 -d 31".to_string();
    let mut notify = Vec::new();
    for (key, value) in conf_lines(text) {
        match key.as_str() {
            "path" => path = value,
            "nfs" | "ssh" => remote = Some((key, value)),
            "raw" => device = Some(("raw".to_string(), value)),
            "ext2" | "ext3" | "ext4" | "xfs" | "btrfs" | "minix" | "virtiofs" => {
                device = Some((key, value))
            }
            "core_collector" => collector = value,
            "kdump_post" => notify.push(format!("kdump_post {value}")),
            _ => {}
        }
    }
    let target = match (remote, device) {
        (Some((kind, place)), _) => Target::Remote {
            kind,
            place: format!("{place}:{path}"),
        },
        (None, Some((kind, place))) => Target::Remote {
            kind,
            place: format!("{place} {path}"),
        },
        (None, None) => Target::Local(path),
    };
    let get = |key: &str| sysconfig.get(key).filter(|v| !v.is_empty()).cloned();
    KdumpConfig {
        flavour: Flavour::Kdumpctl,
        path: KDUMP_CONF,
        disabled: false,
        target,
        dump_level: if collector.contains("makedumpfile") {
            dump_level(&collector)
        } else {
            None
        },
        collector,
        append: get("KDUMP_COMMANDLINE_APPEND").unwrap_or_else(|| KDUMPCTL_APPEND.to_string()),
        remove: get("KDUMP_COMMANDLINE_REMOVE")
            .unwrap_or_else(|| KDUMPCTL_REMOVE.to_string())
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        kexec_args: get("KEXEC_ARGS").unwrap_or_default(),
        notify,
    }
}

fn suse_config(vars: &BTreeMap<String, String>) -> KdumpConfig {
    let get = |key: &str| vars.get(key).filter(|v| !v.is_empty()).cloned();
    let savedir = get("KDUMP_SAVEDIR").unwrap_or_else(|| "/var/crash".to_string());
    let target = match savedir.split_once("://") {
        None => Target::Local(savedir),
        Some(("file", path)) => Target::Local(path.to_string()),
        Some((kind, place)) => Target::Remote {
            kind: kind.to_string(),
            place: place.to_string(),
        },
    };
    let level = get("KDUMP_DUMPLEVEL")
        .and_then(|l| l.parse().ok())
        .unwrap_or(31);
    let mut notify = Vec::new();
    if let Some(to) = get("KDUMP_NOTIFICATION_TO") {
        notify.push(format!("KDUMP_NOTIFICATION_TO={to}"));
    }
    if let Some(cmd) = get("KDUMP_POSTSCRIPT") {
        notify.push(format!("KDUMP_POSTSCRIPT={cmd}"));
    }
    KdumpConfig {
        flavour: Flavour::Suse,
        path: SYSCONFIG_KDUMP,
        disabled: false,
        target,
        collector: format!("makedumpfile -d {level}"),
        dump_level: Some(level),
        append: get("KDUMP_COMMANDLINE_APPEND").unwrap_or_default(),
        remove: Vec::new(),
        kexec_args: get("KEXEC_OPTIONS").unwrap_or_default(),
        notify,
    }
}

/// The command line the capture kernel will get: the one recorded by the last load if known, else the
/// running command line minus `crashkernel=` (and kdumpctl's remove list) plus the configured append.
pub fn capture_cmdline(config: &KdumpConfig, running: &str, recorded: Option<&str>) -> String {
    if let Some(cmd) = recorded.and_then(recorded_command_line) {
        return cmd;
    }
    let mut words: Vec<String> = crate::spec::cmdline::cmdline_words(running)
        .into_iter()
        .filter(|w| !w.starts_with("crashkernel="))
        .filter(|w| {
            let name = w.split('=').next().unwrap_or(w);
            !config.remove.iter().any(|r| r == name)
        })
        .collect();
    words.extend(config.append.split_whitespace().map(str::to_string));
    words.join(" ")
}

/// The `--command-line=` of a recorded `kexec` command (kdump-tools keeps it in `<coredir>/kexec_cmd`).
pub fn recorded_command_line(kexec_cmd: &str) -> Option<String> {
    let start = kexec_cmd.find("--command-line=")? + "--command-line=".len();
    let rest = &kexec_cmd[start..];
    match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next().map(str::to_string),
        None => rest.split_whitespace().next().map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdump_tools_defaults_and_overrides() {
        let config = from_files(Some("USE_KDUMP=1\n# KDUMP_COREDIR=/nope\n"), None, None).unwrap();
        assert_eq!(config.target, Target::Local("/var/crash".into()));
        assert_eq!(config.dump_level, Some(31));
        assert!(!config.disabled);
        let config = from_files(
            Some("USE_KDUMP=0\nKDUMP_COREDIR=\"/srv/crash\" # big disk\nMAKEDUMP_ARGS='-c -d 1'\nSSH=\"dump@vault\"\n"),
            None,
            None,
        )
        .unwrap();
        assert!(config.disabled);
        assert_eq!(config.dump_level, Some(1));
        assert_eq!(
            config.target,
            Target::Remote {
                kind: "ssh".into(),
                place: "dump@vault:/srv/crash".into()
            }
        );
    }

    #[test]
    fn kdumpctl_targets_and_hooks() {
        let conf = "path /var/crash\nnfs filer:/export/dumps\ncore_collector makedumpfile -l -d 17\nkdump_post /usr/local/bin/page-me\n";
        let config = from_files(
            None,
            Some(conf),
            Some("KDUMP_COMMANDLINE_APPEND=\"nr_cpus=1 panic=5\"\n"),
        )
        .unwrap();
        assert_eq!(config.flavour, Flavour::Kdumpctl);
        assert_eq!(config.dump_level, Some(17));
        assert_eq!(
            config.target,
            Target::Remote {
                kind: "nfs".into(),
                place: "filer:/export/dumps:/var/crash".into()
            }
        );
        assert_eq!(
            config.notify,
            vec!["kdump_post /usr/local/bin/page-me".to_string()]
        );
        assert_eq!(
            capture_cmdline(&config, "ro quiet crashkernel=256M root=/dev/sda1", None),
            "ro root=/dev/sda1 nr_cpus=1 panic=5"
        );
    }

    #[test]
    fn suse_savedir_urls() {
        let config = from_files(
            None,
            None,
            Some("KDUMP_SAVEDIR=\"file:///var/crash\"\nKDUMP_DUMPLEVEL=31\n"),
        )
        .unwrap();
        assert_eq!(config.target, Target::Local("/var/crash".into()));
        let config = from_files(
            None,
            None,
            Some("KDUMP_SAVEDIR=\"ssh://root@vault/dumps\"\n"),
        )
        .unwrap();
        assert_eq!(
            config.target,
            Target::Remote {
                kind: "ssh".into(),
                place: "root@vault/dumps".into()
            }
        );
    }

    #[test]
    fn recorded_kexec_command() {
        let cmd = "/sbin/kexec -p --command-line=\"root=/dev/vda ro reset_devices nr_cpus=1\" --initrd=/var/lib/kdump/initrd.img /var/lib/kdump/vmlinuz";
        assert_eq!(
            recorded_command_line(cmd).as_deref(),
            Some("root=/dev/vda ro reset_devices nr_cpus=1")
        );
        assert_eq!(dump_level("-c --dump-level=31"), Some(31));
        assert_eq!(dump_level("-c -d31"), Some(31));
        assert_eq!(dump_level("-E"), None);
    }
}
