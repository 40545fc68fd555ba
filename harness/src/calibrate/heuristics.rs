//! What people reserve without measuring, for the same guest (pure): `kdumpctl estimate`'s
//! formula (the one `kdrill check` uses: kernel image × 4 + modules + capture initrd × 3 + 64M),
//! the x86_64 default table `2G-64G:256M,64G-:512M` (RHEL/Fedora `kdumpctl`), and Debian's
//! kdump-tools default (`/etc/default/grub.d/kdump-tools.cfg`: Debian 12's `384M-:128M`, read
//! from a Debian image's own file for its release), and, on a Debian image whose kdump-tools
//! has it (1.10), the size `kdump-config show` suggests. Also the recommendation kdrill derives
//! from a measurement, the `crashkernel=` range expression for several memory sizes, and the
//! bisection's starting bracket.

use serde::{Deserialize, Serialize};

use crate::calibrate::bisect::Bracket;
use crate::spec::cmdline;
use crate::spec::crashkernel::{self, Resolution};

/// x86_64's default table (RHEL/Fedora `kdumpctl`).
pub const X86_64_DEFAULT: &str = "2G-64G:256M,64G-:512M";
/// Debian 12's kdump-tools (1:1.8.1) sets this on the kernel command line: the Debian default
/// of a calibration that names none (the minimal image's, and files written before the default
/// was read from the image).
pub const DEBIAN_DEFAULT: &str = "384M-:128M";
/// The margin kdrill adds to a measured minimum: a quarter, at least this much, then rounded up
/// to 16 MiB (the granularity people write `crashkernel=` in).
pub const MARGIN_MIN_MIB: u64 = 32;

/// The sizes `kdumpctl estimate` adds up for a guest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EstimateInputs {
    pub kernel_image_bytes: u64,
    pub modules_bytes: u64,
    pub capture_initrd_bytes: u64,
}

/// What each heuristic reserves for one memory size (MiB; `None`: it reserves nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heuristics {
    pub kdumpctl_estimate_mib: u64,
    pub x86_64_default_mib: Option<u64>,
    pub debian_default_mib: Option<u64>,
    /// What the image's kdump-tools suggests (`crashkernel suggested size:` of `kdump-config
    /// show`, kdump-tools 1.10), read from the probes' first boot; none when it says nothing.
    #[serde(default)]
    pub kdump_tools_suggested_mib: Option<u64>,
}

fn round_up(mib: u64, step: u64) -> u64 {
    mib.div_ceil(step).saturating_mul(step)
}

/// The size a `crashkernel=` value reserves for `memory_mib` of RAM.
pub fn reserves(value: &str, memory_mib: u64) -> Option<u64> {
    let params = crashkernel::from_cmdline(&format!("crashkernel={value}"));
    match params.resolve(memory_mib.checked_mul(1 << 20)?)? {
        Resolution::Reserve { size, .. } => Some(size >> 20),
        _ => None,
    }
}

/// The `crashkernel=` value a kdump-tools grub snippet sets (`GRUB_CMDLINE_LINUX_DEFAULT="$…
/// crashkernel=512M-:192M"`), the last one when several do; none in a comment or without one.
pub fn kdump_tools_default(cfg: &str) -> Option<String> {
    cfg.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .flat_map(|line| line.split(|c: char| c.is_whitespace() || c == '"' || c == '\''))
        .filter_map(|word| word.strip_prefix("crashkernel="))
        .rfind(|value| !value.is_empty())
        .map(str::to_string)
}

/// The heuristics for a guest of `memory_mib` whose release's kdump-tools default is
/// `debian_default` (a `crashkernel=` value; none when the release sets none).
pub fn for_guest(
    memory_mib: u64,
    inputs: EstimateInputs,
    debian_default: Option<&str>,
) -> Heuristics {
    let bytes = inputs
        .kernel_image_bytes
        .saturating_mul(4)
        .saturating_add(inputs.modules_bytes)
        .saturating_add(inputs.capture_initrd_bytes.saturating_mul(3))
        .saturating_add(64 << 20);
    Heuristics {
        kdumpctl_estimate_mib: round_up(bytes.div_ceil(1 << 20), 16),
        x86_64_default_mib: reserves(X86_64_DEFAULT, memory_mib),
        debian_default_mib: debian_default.and_then(|value| reserves(value, memory_mib)),
        kdump_tools_suggested_mib: None,
    }
}

/// What kdrill recommends for a measured minimum (see [`MARGIN_MIN_MIB`]).
/// Above 1G the figure is a whole G, as `spec::cmdline::paste` writes it.
pub fn recommended(smallest_working_mib: u64) -> u64 {
    let margin = (smallest_working_mib / 4).max(MARGIN_MIN_MIB);
    let mib = round_up(smallest_working_mib.saturating_add(margin), 16);
    if mib > 1024 {
        round_up(mib, 1024)
    } else {
        mib
    }
}

/// A `crashkernel=` range expression covering the measured sizes: each recommendation holds from
/// its memory size up to the next one's; the first range starts at 0 (a guest of "1 GiB" has a
/// little less System RAM than that) and the last is open (an extrapolation: it says so where
/// the expression is shown).
pub fn range_expression(rows: &[(u64, u64)]) -> Option<String> {
    let mut rows = rows.to_vec();
    rows.sort();
    // Neighbours that recommend the same size are one range.
    rows.dedup_by(|later, earlier| later.1 == earlier.1);
    if rows.is_empty() {
        return None;
    }
    // Exact (a bound is a measured memory size, a reservation whole MiB): `2G`, `1536M`.
    let mib = |m: u64| match m.checked_mul(1 << 20) {
        Some(bytes) if m > 0 => cmdline::exact(bytes),
        _ => cmdline::mib(m),
    };
    let parts: Vec<String> = rows
        .iter()
        .enumerate()
        .map(|(i, (_, recommended))| {
            let start = if i == 0 {
                "0M".to_string()
            } else {
                mib(rows[i].0)
            };
            let end = rows.get(i + 1).map(|next| mib(next.0)).unwrap_or_default();
            format!("{start}-{end}:{}", mib(*recommended))
        })
        .collect();
    Some(parts.join(","))
}

/// Where the bisection starts: Debian's default (what these kernels ship with) as the ceiling,
/// else the estimate; half of it as the floor; never above half the guest's RAM.
pub fn bracket(memory_mib: u64, heuristics: &Heuristics) -> Bracket {
    let ceiling = heuristics
        .debian_default_mib
        .unwrap_or(heuristics.kdumpctl_estimate_mib)
        .max(64);
    Bracket {
        floor_mib: ceiling / 2,
        ceiling_mib: ceiling,
        max_mib: memory_mib / 2,
        min_mib: 16,
        coarse_mib: 32,
        fine_mib: 8,
        retries: 2,
    }
}

/// How a heuristic's figure compares with the measured minimum: `over by 40M`, `under by 16M:
/// the capture fails (capture-oom)`, `reserves nothing`.
pub fn compare(heuristic_mib: Option<u64>, smallest_working_mib: u64, failure: &str) -> String {
    match heuristic_mib {
        None => "reserves nothing: no dump at all".into(),
        Some(h) if h >= smallest_working_mib => {
            format!("over by {}", cmdline::mib(h - smallest_working_mib))
        }
        Some(h) => format!(
            "under by {}: the capture fails ({failure})",
            cmdline::mib(smallest_working_mib - h)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_resolve_by_ram() {
        assert_eq!(reserves(X86_64_DEFAULT, 1024), None);
        assert_eq!(reserves(X86_64_DEFAULT, 2048), Some(256));
        assert_eq!(reserves(DEBIAN_DEFAULT, 1024), Some(128));
        assert_eq!(reserves(DEBIAN_DEFAULT, 256), None);
    }

    #[test]
    fn the_default_is_read_from_kdump_tools_grub_snippet() {
        // Debian 13's kdump-tools 1:1.10.x, as its image has it.
        let trixie =
            "GRUB_CMDLINE_LINUX_DEFAULT=\"$GRUB_CMDLINE_LINUX_DEFAULT crashkernel=512M-:192M\"\n";
        assert_eq!(kdump_tools_default(trixie).as_deref(), Some("512M-:192M"));
        let bookworm =
            "GRUB_CMDLINE_LINUX_DEFAULT=\"$GRUB_CMDLINE_LINUX_DEFAULT crashkernel=384M-:128M\"";
        assert_eq!(
            kdump_tools_default(bookworm).as_deref(),
            Some(DEBIAN_DEFAULT)
        );
        assert_eq!(kdump_tools_default("# crashkernel=1G\n"), None);
        assert_eq!(kdump_tools_default(""), None);
        assert_eq!(kdump_tools_default("X=\"crashkernel=\""), None);
    }

    #[test]
    fn the_estimate_follows_kdumpctl() {
        let h = for_guest(
            1024,
            EstimateInputs {
                kernel_image_bytes: 8 << 20,
                modules_bytes: 1 << 20,
                capture_initrd_bytes: 20 << 20,
            },
            Some(DEBIAN_DEFAULT),
        );
        // 32 + 1 + 60 + 64 = 157 → 160.
        assert_eq!(h.kdumpctl_estimate_mib, 160);
        assert_eq!(h.debian_default_mib, Some(128));
        let b = bracket(1024, &h);
        assert_eq!((b.floor_mib, b.ceiling_mib, b.max_mib), (64, 128, 512));
        // Debian 13's kdump-tools default, read from its image, raises the ceiling.
        let inputs = EstimateInputs {
            kernel_image_bytes: 8 << 20,
            modules_bytes: 0,
            capture_initrd_bytes: 20 << 20,
        };
        let trixie = for_guest(1024, inputs, Some("512M-:192M"));
        assert_eq!(trixie.debian_default_mib, Some(192));
        assert_eq!(bracket(1024, &trixie).ceiling_mib, 192);
        // A release without a default: the estimate is the ceiling.
        let none = for_guest(1024, inputs, None);
        assert_eq!(none.debian_default_mib, None);
        assert_eq!(bracket(1024, &none).ceiling_mib, none.kdumpctl_estimate_mib);
    }

    #[test]
    fn recommendations_and_ranges() {
        assert_eq!(recommended(96), 128);
        assert_eq!(recommended(80), 112);
        assert_eq!(recommended(200), 256);
        // Above 1G a whole G, the figure `paste` writes: 900 + 225 = 1125 → 1136 → 2048.
        assert_eq!(recommended(900), 2048);
        assert_eq!(recommended(u64::MAX), u64::MAX, "saturates, never wraps");
        assert_eq!(
            range_expression(&[(2048, 144), (1024, 128)]).unwrap(),
            "0M-2G:128M,2G-:144M"
        );
        assert_eq!(range_expression(&[]), None);
        assert_eq!(
            range_expression(&[(1024, 144), (2048, 144), (4096, 160)]).unwrap(),
            "0M-4G:144M,4G-:160M"
        );
        assert_eq!(compare(Some(128), 96, "capture-oom"), "over by 32M");
        assert_eq!(
            compare(Some(64), 96, "capture-oom"),
            "under by 32M: the capture fails (capture-oom)"
        );
        assert_eq!(compare(None, 96, "x"), "reserves nothing: no dump at all");
    }
}
