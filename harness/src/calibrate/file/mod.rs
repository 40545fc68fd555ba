//! Calibration files, `calibration/<kernel>-<image>.yaml` (commented data, like the kernel
//! entries): writing one from a run, reading one back (unknown fields are errors, with
//! `file:line:column`), the Markdown table, and choosing the figure for a host (`kdrill check`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::calibrate::heuristics::{
    self, EstimateInputs, Heuristics, DEBIAN_DEFAULT, X86_64_DEFAULT,
};
use crate::spec::cmdline;
use crate::spec::yaml::{self, YamlError};

/// One calibration: a kernel × image, measured at one or more memory sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// The kernel entry (`kernels/<id>.yaml`) and the release it booted.
    pub kernel: String,
    pub release: String,
    /// The image recipe measured: `minimal` (kdrill's busybox capture initramfs), `debian-bookworm`,
    /// `debian-trixie` (a release's own kdump-tools)…
    pub image: String,
    pub scenario: String,
    /// When (UTC) and with what it was measured.
    pub measured: String,
    pub kdrill: String,
    pub qemu: String,
    pub host: String,
    pub wall_seconds: f64,
    /// What `kdumpctl estimate` added up for this guest (the kernel image, the modules the
    /// capture loads, the capture initramfs), in bytes.
    pub estimate_inputs: EstimateInputs,
    /// How `recommended_mib` is derived from `smallest_working_mib`.
    pub margin: String,
    /// The `crashkernel=` Debian's kdump-tools sets for this image's release (a Debian image's
    /// own `/etc/default/grub.d/kdump-tools.cfg`; Debian 12's for the minimal image and for
    /// files written before it was read from the image); none when the release sets none.
    #[serde(default = "debian_default")]
    pub debian_default: Option<String>,
    pub sizes: Vec<SizeEntry>,
    /// A `crashkernel=` value covering every measured size.
    #[serde(default)]
    pub range: Option<String>,
}

/// One memory size of a calibration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SizeEntry {
    pub memory_mib: u64,
    pub smallest_working_mib: Option<u64>,
    pub largest_failing_mib: Option<u64>,
    /// How the largest failing size failed (`capture-oom`, `kexec-cannot-load`, …).
    pub failure_below: Option<String>,
    pub recommended_mib: Option<u64>,
    pub heuristics: Heuristics,
    pub wall_seconds: f64,
    #[serde(default)]
    pub non_monotonic: Vec<String>,
    #[serde(default)]
    pub unfinished: Option<String>,
    pub probes: Vec<ProbeEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeEntry {
    pub crashkernel_mib: u64,
    /// `works`, `too-small: <mode>` or `unrelated: <why>`.
    pub outcome: String,
    pub seconds: f64,
    pub evidence: String,
}

fn debian_default() -> Option<String> {
    Some(DEBIAN_DEFAULT.to_string())
}

fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

fn opt(value: Option<u64>) -> String {
    value.map_or("null".into(), |v| v.to_string())
}

/// The calibration as a commented YAML document.
pub fn to_yaml(c: &Calibration) -> String {
    let mut out = format!(
        "# kdrill calibration: the smallest crashkernel= that still captured a dump, measured by\n\
         # running the real case ({scenario}) at each size and bisecting (`kdrill calibrate`).\n\
         # A size counts as working only if the dump was saved and its log verified; a probe that\n\
         # failed for a reason unrelated to memory was retried. `kdrill check --calibration` reads\n\
         # this file (or finds it in /etc/kdrill/calibration/).\n\
         kernel: {kernel}\n\
         release: {release}\n\
         # The guest image (images/<name>.yaml): minimal is kdrill's busybox capture initramfs, the others\n\
         # capture with their release's own kdump-tools.\n\
         image: {image}\n\
         scenario: {scenario}\n\
         # Where and when: UTC time, kdrill and QEMU versions, the machine (TCG or KVM).\n\
         measured: {measured}\n\
         kdrill: {kdrill}\n\
         qemu: {qemu}\n\
         host: {host}\n\
         wall_seconds: {wall:.0}\n\
         # kdumpctl estimate's inputs for this guest (bytes): kernel image, modules, capture initramfs.\n\
         estimate_inputs: {{ kernel_image_bytes: {kernel_bytes}, modules_bytes: {modules_bytes}, capture_initrd_bytes: {initrd_bytes} }}\n\
         margin: {margin}\n\
         # What Debian's kdump-tools sets on the kernel command line for this image's release (its\n\
         # /etc/default/grub.d/kdump-tools.cfg): the `debian_default_mib` of each size.\n\
         debian_default: {debian_default}\n\
         # Paste into the boot loader's kernel command line (the last range extrapolates).\n\
         range: {range}\n\
         sizes:\n",
        kernel = quoted(&c.kernel),
        release = quoted(&c.release),
        image = quoted(&c.image),
        scenario = quoted(&c.scenario),
        measured = quoted(&c.measured),
        kdrill = quoted(&c.kdrill),
        qemu = quoted(&c.qemu),
        host = quoted(&c.host),
        wall = c.wall_seconds,
        kernel_bytes = c.estimate_inputs.kernel_image_bytes,
        modules_bytes = c.estimate_inputs.modules_bytes,
        initrd_bytes = c.estimate_inputs.capture_initrd_bytes,
        margin = quoted(&c.margin),
        debian_default = c.debian_default.as_deref().map_or("null".into(), quoted),
        range = c.range.as_deref().map_or("null".into(), quoted),
    );
    for s in &c.sizes {
        out.push_str(&format!(
            "  - memory_mib: {}\n\
             \x20   smallest_working_mib: {}\n\
             \x20   largest_failing_mib: {}\n\
             \x20   failure_below: {}\n\
             \x20   recommended_mib: {}\n\
             \x20   # What the heuristics reserve for this RAM (MiB; null: nothing): kdumpctl estimate's\n\
             \x20   # formula, the x86_64 default {X86_64_DEFAULT}, Debian kdump-tools' default (above),\n\
             \x20   # and what the image's kdump-tools suggests (`kdump-config show`, 1.10; null: it says nothing).\n\
             \x20   heuristics: {{ kdumpctl_estimate_mib: {}, x86_64_default_mib: {}, debian_default_mib: {}, kdump_tools_suggested_mib: {} }}\n\
             \x20   wall_seconds: {:.0}\n",
            s.memory_mib,
            opt(s.smallest_working_mib),
            opt(s.largest_failing_mib),
            s.failure_below.as_deref().map_or("null".into(), quoted),
            opt(s.recommended_mib),
            s.heuristics.kdumpctl_estimate_mib,
            opt(s.heuristics.x86_64_default_mib),
            opt(s.heuristics.debian_default_mib),
            opt(s.heuristics.kdump_tools_suggested_mib),
            s.wall_seconds,
        ));
        if !s.non_monotonic.is_empty() {
            out.push_str("    non_monotonic:\n");
            for line in &s.non_monotonic {
                out.push_str(&format!("      - {}\n", quoted(line)));
            }
        }
        if let Some(why) = &s.unfinished {
            out.push_str(&format!("    unfinished: {}\n", quoted(why)));
        }
        out.push_str("    # Every probe in the order it ran; each one's evidence is its attempt folder.\n    probes:\n");
        for p in &s.probes {
            out.push_str(&format!(
                "      - {{ crashkernel_mib: {}, outcome: {}, seconds: {:.1}, evidence: {} }}\n",
                p.crashkernel_mib,
                quoted(&p.outcome),
                p.seconds,
                quoted(&p.evidence)
            ));
        }
    }
    out
}

/// Reads a calibration file.
pub fn load(path: &Path) -> Result<Calibration, YamlError> {
    let text = yaml::read(path)?;
    parse(path, &text)
}

/// Parses a calibration file's text (`path` labels errors). An error quotes at most one line of
/// the file, cut at 120 characters: the parser's "invalid type: string \"…\"" would otherwise echo
/// a whole file that is not a calibration (`/etc/passwd`), its lines folded into one.
pub fn parse(path: &Path, text: &str) -> Result<Calibration, YamlError> {
    let calibration: Calibration = yaml::parse(path, text).map_err(|err| match err {
        YamlError::Parse {
            path,
            line,
            column,
            message,
        } => YamlError::Parse {
            message: crate::spec::excerpt::bounded(&message, text, line, column),
            path,
            line,
            column,
        },
        other => other,
    })?;
    super::limits::validate(&calibration).map_err(|message| YamlError::Invalid {
        path: path.to_path_buf(),
        message,
    })?;
    Ok(calibration)
}

/// The Markdown table of a calibration, with the heuristics beside the measurement.
pub fn markdown(c: &Calibration) -> String {
    // kdump-tools' own suggestion is a column only where the image's kdump-tools gave one.
    let suggests = c
        .sizes
        .iter()
        .any(|s| s.heuristics.kdump_tools_suggested_mib.is_some());
    let mut out = format!(
        "{} ({}), {} image: smallest working crashkernel= per memory size\n\n\
         | memory | smallest working | fails below with | recommended | kdumpctl estimate | x86_64 default | Debian default{} |{}\n\
         |---|---|---|---|---|---|---|{}\n",
        c.kernel,
        c.release,
        c.image,
        c.debian_default
            .as_deref()
            .map_or(String::new(), |d| format!(" ({d})")),
        if suggests { " kdump-tools suggests |" } else { "" },
        if suggests { "---|" } else { "" },
    );
    for s in &c.sizes {
        let mib = |v: Option<u64>| v.map_or("–".into(), cmdline::mib);
        let versus = |h: Option<u64>| match s.smallest_working_mib {
            Some(min) => format!(
                "{} ({})",
                mib(h),
                heuristics::compare(h, min, s.failure_below.as_deref().unwrap_or("?"))
            ),
            None => mib(h),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |{}\n",
            cmdline::mib(s.memory_mib),
            mib(s.smallest_working_mib),
            match (s.largest_failing_mib, &s.failure_below) {
                (Some(f), Some(mode)) => format!("{}: {mode}", cmdline::mib(f)),
                _ => "–".into(),
            },
            mib(s.recommended_mib),
            versus(Some(s.heuristics.kdumpctl_estimate_mib)),
            versus(s.heuristics.x86_64_default_mib),
            versus(s.heuristics.debian_default_mib),
            if suggests {
                format!(" {} |", versus(s.heuristics.kdump_tools_suggested_mib))
            } else {
                String::new()
            },
        ));
    }
    if let Some(range) = &c.range {
        out.push_str(&format!(
            "\ncrashkernel={range}  (the last range extrapolates beyond {})\n",
            cmdline::mib(c.sizes.iter().map(|s| s.memory_mib).max().unwrap_or(0))
        ));
    }
    out
}

/// The figure a calibration gives for a host with `ram_mib` of RAM, and how it was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    pub min_mib: u64,
    /// Which measurement, and the interpolation: `measured at 1024M`, `between the 1024M and
    /// 2048M measurements: the larger`, `above every measurement (2048M): may need more`.
    pub how: String,
}

/// The smallest working reservation for `ram_mib`: the measured size's own, else the larger of
/// the two measurements around it, else the nearest one (said so).
pub fn choose(c: &Calibration, ram_mib: u64) -> Option<Chosen> {
    let mut measured: Vec<(u64, u64)> = c
        .sizes
        .iter()
        .filter_map(|s| Some((s.memory_mib, s.smallest_working_mib?)))
        .collect();
    measured.sort();
    let (first, last) = (*measured.first()?, *measured.last()?);
    // A guest of "1024M" shows ~1023M of System RAM: within 2% counts as that size.
    let near = |m: u64| ram_mib.abs_diff(m).saturating_mul(50) <= m;
    if let Some((m, min)) = measured.iter().find(|(m, _)| near(*m)) {
        return Some(Chosen {
            min_mib: *min,
            how: format!("measured at {}", cmdline::mib(*m)),
        });
    }
    if ram_mib < first.0 {
        return Some(Chosen {
            min_mib: first.1,
            how: format!(
                "below every measurement: the smallest ({})",
                cmdline::mib(first.0)
            ),
        });
    }
    if ram_mib > last.0 {
        return Some(Chosen {
            min_mib: last.1,
            how: format!(
                "above every measurement ({}): a larger machine may need more",
                cmdline::mib(last.0)
            ),
        });
    }
    let pair = measured
        .windows(2)
        .find(|w| w[0].0 < ram_mib && ram_mib < w[1].0)?;
    Some(Chosen {
        min_mib: pair[0].1.max(pair[1].1),
        how: format!(
            "between the {} and {} measurements: the larger",
            cmdline::mib(pair[0].0),
            cmdline::mib(pair[1].0)
        ),
    })
}

#[cfg(test)]
pub(crate) mod tests;
