//! Memory figures for checks 1–3, read once: RAM (`/proc/meminfo`, `/proc/iomem`), the
//! `crashkernel=` parameters and their resolution, what is reserved, and the `kdumpctl
//! estimate`-style figure a reservation is compared with.

use crate::readiness::snapshot::{self, Snapshot};
use crate::readiness::source::{Got, Problem};
use crate::readiness::Context;
use crate::spec::cmdline::{figure, over_limit, paste_bytes, SIZE_LIMIT};
use crate::spec::crashkernel::{self, Params, Resolution};

/// Capture-kernel runtime allowance (userspace, page tables, slab), as `kdumpctl estimate` uses.
const RUNTIME_BYTES: u64 = 64 << 20;
/// An initrd unpacks to roughly three times its compressed size, and the compressed copy stays in memory.
const INITRD_FACTOR: u64 = 3;
/// x86_64's default reservation by RAM size (RHEL/Fedora `kdumpctl`'s table).
pub(super) const X86_64_DEFAULT: &str = "2G-64G:256M,64G-:512M";
/// Used for the kernel's own footprint when /proc/iomem hides it: a bzImage unpacks to about four times its size.
const IMAGE_FACTOR: u64 = 4;

/// Memory figures read once for checks 1–3.
pub struct Memory {
    /// `MemTotal` of /proc/meminfo, bytes.
    pub mem_total: Option<u64>,
    /// Sum of top-level "System RAM" ranges in /proc/iomem: what the kernel matches `crashkernel=` ranges against.
    pub system_ram: Option<u64>,
    /// `crashkernel=` parameters, `None` if /proc/cmdline could not be read.
    pub params: Option<Params>,
    /// "Crash kernel" ranges of /proc/iomem (`None` if unreadable), `(start, end inclusive)`.
    pub iomem_crash: Option<Vec<(u64, u64)>>,
    /// /proc/iomem shows zero addresses (read without root).
    pub iomem_hidden: bool,
    /// The running kernel's own footprint (code through bss) from /proc/iomem.
    pub kernel_image: Option<u64>,
    /// `/sys/kernel/kexec_crash_size`.
    pub crash_size: Got<u64>,
    /// Figures refused as absurd (above [`SIZE_LIMIT`], or a range covering the whole address
    /// space), each naming its value: check 1 warns with them.
    pub absurd: Vec<String>,
}

/// The `kdumpctl estimate`-style figure the reservation is compared with.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Estimate {
    pub kernel_bytes: u64,
    pub kernel_source: String,
    pub modules_bytes: u64,
    pub initrd_bytes: u64,
    pub initrd_source: String,
    pub initrd_factor: u64,
    pub runtime_bytes: u64,
    pub total_bytes: u64,
}

impl Memory {
    pub fn new(snap: &Snapshot) -> Self {
        let ranges = snap.iomem.as_deref().ok().map(iomem_ranges);
        let iomem_hidden = ranges
            .as_ref()
            .is_some_and(|r| !r.is_empty() && r.iter().all(|r| r.start == 0 && r.end == 0));
        let mut absurd = Vec::new();
        let (system_ram, iomem_crash, kernel_image) = match (&ranges, iomem_hidden) {
            (Some(ranges), false) => {
                let ram_ranges: Vec<&IomemRange> = ranges
                    .iter()
                    .filter(|r| r.depth == 0 && r.name == "System RAM")
                    .collect();
                // Summed in u128: `0-ffffffffffffffff : System RAM` is 2^64 bytes, one past u64.
                let ram: u128 = ram_ranges.iter().map(|r| r.len128()).sum();
                for r in ram_ranges
                    .iter()
                    .filter(|r| r.start == 0 && r.end == u64::MAX)
                {
                    absurd.push(format!(
                        "/proc/iomem has {:x}-{:x} : System RAM, the whole address space: not a real RAM range",
                        r.start, r.end
                    ));
                }
                let ram = match u64::try_from(ram).ok().filter(|r| *r <= SIZE_LIMIT) {
                    Some(ram) => Some(ram),
                    None => {
                        absurd.push(format!(
                            "System RAM in /proc/iomem sums to {ram} bytes, above kdrill's limit of {}: not used",
                            crate::spec::cmdline::SIZE_LIMIT_TEXT
                        ));
                        None
                    }
                };
                let crash: Vec<(u64, u64)> = ranges
                    .iter()
                    .filter(|r| r.name == "Crash kernel")
                    .map(|r| (r.start, r.end))
                    .collect();
                let kernel: Vec<&IomemRange> = ranges
                    .iter()
                    .filter(|r| r.name.starts_with("Kernel "))
                    .collect();
                let image = match (
                    kernel.iter().map(|r| r.start).min(),
                    kernel.iter().map(|r| r.end).max(),
                ) {
                    (Some(start), Some(end)) if end > start => {
                        Some((end - start).saturating_add(1)).filter(|b| *b <= SIZE_LIMIT)
                    }
                    _ => None,
                };
                (ram.filter(|r| *r > 0), Some(crash), image)
            }
            _ => (None, None, None),
        };
        let crash_size = snap.kexec_crash_size.clone().and_then(|text| {
            let bytes = text.trim().parse::<u64>().map_err(|_| {
                Problem::Odd(format!(
                    "/sys/kernel/kexec_crash_size holds `{}`, not a number",
                    crate::spec::excerpt::excerpt(text.trim())
                ))
            })?;
            match over_limit("/sys/kernel/kexec_crash_size", bytes) {
                Some(why) => Err(Problem::Odd(why)),
                None => Ok(bytes),
            }
        });
        let mem_total = snap.meminfo.as_deref().ok().and_then(mem_total);
        absurd.extend(mem_total.and_then(|m| over_limit("MemTotal in /proc/meminfo", m)));
        let mem_total = mem_total.filter(|m| *m <= SIZE_LIMIT);
        let mut memory = Memory {
            mem_total,
            system_ram,
            params: snap.cmdline.as_deref().ok().map(crashkernel::from_cmdline),
            iomem_crash,
            iomem_hidden,
            kernel_image,
            crash_size,
            absurd,
        };
        if let Some(sum) = memory.iomem_crash_bytes().filter(|b| *b > SIZE_LIMIT) {
            memory.absurd.push(format!(
                "the \"Crash kernel\" ranges of /proc/iomem sum to {sum} bytes, above kdrill's limit of {}: not used",
                crate::spec::cmdline::SIZE_LIMIT_TEXT
            ));
            memory.iomem_crash = None;
        }
        memory
    }

    /// Why `/sys/kernel/kexec_crash_size` and the "Crash kernel" ranges of /proc/iomem disagree,
    /// naming both: the kernel's figure is its main reservation (`crashk_res`), which the ranges
    /// hold once, plus at most one more range (the `,low` part). Duplicate or overlapping ranges
    /// are named too.
    pub fn crash_disagreement(&self) -> Option<String> {
        let ranges = self.iomem_crash.as_ref().filter(|r| !r.is_empty())?;
        let shown = |ranges: &[(u64, u64)]| {
            ranges
                .iter()
                .map(|(s, e)| format!("{s:08x}-{e:08x}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut sorted = ranges.clone();
        sorted.sort();
        let overlap = sorted.windows(2).any(|w| w[1].0 <= w[0].1);
        let repeat = if overlap {
            ": the ranges repeat or overlap, which no kernel prints"
        } else {
            ""
        };
        let total = self.iomem_crash_bytes()?;
        let Ok(&size) = self.crash_size.as_ref() else {
            return overlap.then(|| {
                format!(
                    "/proc/iomem's \"Crash kernel\" ranges ({}) hold {total} ({}){repeat}",
                    shown(ranges),
                    figure(total)
                )
            });
        };
        let lens: Vec<u64> = ranges
            .iter()
            .map(|(s, e)| (e - s).saturating_add(1))
            .collect();
        let agrees = size == total || (lens.len() == 2 && lens.contains(&size));
        (overlap || !agrees).then(|| {
            format!(
                "/sys/kernel/kexec_crash_size says {size} ({}) but the \"Crash kernel\" ranges of /proc/iomem ({}) hold {total} ({}){repeat}",
                figure(size),
                shown(ranges),
                figure(total)
            )
        })
    }

    /// The RAM size `crashkernel=` ranges are matched against, and where it came from.
    pub fn ram(&self) -> Option<(u64, &'static str)> {
        self.system_ram
            .map(|r| (r, "System RAM in /proc/iomem"))
            .or(self.mem_total.map(|m| (m, "MemTotal")))
    }

    pub fn resolution(&self) -> Option<Resolution> {
        let (ram, _) = self.ram()?;
        self.params.as_ref()?.resolve(ram)
    }

    fn iomem_crash_bytes(&self) -> Option<u64> {
        self.iomem_crash.as_ref().map(|ranges| {
            ranges.iter().fold(0u64, |sum, (s, e)| {
                sum.saturating_add((e - s).saturating_add(1))
            })
        })
    }

    /// Bytes reserved for the capture kernel, `None` if neither source could be read. When the
    /// two disagree ([`Memory::crash_disagreement`]) the kernel's own figure counts.
    pub fn reserved(&self) -> Option<u64> {
        match (self.crash_size.as_ref().ok(), self.iomem_crash_bytes()) {
            (None, None) => None,
            (Some(size), Some(_)) if self.crash_disagreement().is_some() => Some(*size),
            (size, iomem) => Some((*size.unwrap_or(&0)).max(iomem.unwrap_or(0))),
        }
    }

    /// The distribution default for this RAM size (x86_64 only).
    pub fn arch_default(&self, cx: &Context) -> Option<u64> {
        if cx.snap.arch.as_deref().ok() != Some("x86_64") {
            return None;
        }
        let (ram, _) = self.ram()?;
        let params = crashkernel::from_cmdline(&format!("crashkernel={X86_64_DEFAULT}"));
        match params.resolve(ram)? {
            Resolution::Reserve { size, .. } => Some(size),
            _ => None,
        }
    }

    /// Kernel image + loaded modules + initrd × 3 + runtime allowance.
    pub fn estimate(&self, cx: &Context) -> Option<Estimate> {
        let snap = cx.snap;
        let release = snap.release.as_deref().ok()?;
        let (kernel_bytes, kernel_source) = match self.kernel_image {
            Some(bytes) => (bytes, "Kernel code..bss in /proc/iomem".to_string()),
            None => match snap.file(&snapshot::kernel_image(release)) {
                Ok(meta) => (
                    meta.len.saturating_mul(IMAGE_FACTOR),
                    format!("{} × {IMAGE_FACTOR}", snapshot::kernel_image(release)),
                ),
                Err(_) => return None,
            },
        };
        let modules_bytes = snap.modules.as_deref().map(modules_bytes).unwrap_or(0);
        let capture = snapshot::capture_initrds(release)
            .into_iter()
            .find_map(|p| snap.file(&p).ok().map(|m| (p, m.len)));
        let boot = || {
            snapshot::boot_initrds(release)
                .into_iter()
                .find_map(|p| snap.file(&p).ok().map(|m| (p, m.len)))
        };
        let (initrd_source, initrd_bytes) = match capture.or_else(boot) {
            Some((path, len)) => (path, len),
            None => ("no initrd found".to_string(), 0),
        };
        let total_bytes = kernel_bytes
            .saturating_add(modules_bytes)
            .saturating_add(initrd_bytes.saturating_mul(INITRD_FACTOR))
            .saturating_add(RUNTIME_BYTES);
        Some(Estimate {
            kernel_bytes,
            kernel_source,
            modules_bytes,
            initrd_bytes,
            initrd_source,
            initrd_factor: INITRD_FACTOR,
            runtime_bytes: RUNTIME_BYTES,
            total_bytes,
        })
    }

    /// The `crashkernel=` value to recommend: kdrill's measured minimum for this kernel with its
    /// margin; without one, the largest of the estimate, the arch default and another release's
    /// measurement, else 256M.
    pub fn recommended(&self, cx: &Context) -> u64 {
        self.recommendation(cx).0
    }

    /// [`Memory::recommended`] and why that figure, for the fixes to say (the estimate and the
    /// recommendation may differ: see [`ABOVE_THE_ESTIMATE`]).
    pub fn recommendation(&self, cx: &Context) -> (u64, String) {
        let measured =
            |c: &crate::readiness::Calibrated| round_up(c.recommended_bytes.max(c.min_bytes));
        if let Some(c) = cx
            .snap
            .calibrated
            .as_ref()
            .filter(|c| c.other_release.is_none())
        {
            // This kernel was measured: its figure with kdrill's margin.
            return (
                measured(c),
                format!(
                    "kdrill's measured minimum {} for this kernel, with its margin",
                    figure(c.min_bytes)
                ),
            );
        }
        // An estimate above the limit (an initrd of exabytes) recommends nothing.
        let estimate = self
            .estimate(cx)
            .map(|e| e.total_bytes)
            .filter(|b| *b <= SIZE_LIMIT);
        let mut candidates: Vec<(u64, String)> = Vec::new();
        if let Some(e) = estimate {
            let step = if round_up(e) > 1 << 30 {
                "a whole G"
            } else {
                "16M"
            };
            candidates.push((
                round_up(e),
                format!("the estimate {} rounded up to {step}", figure(e)),
            ));
        }
        if let (Some(default), Some((ram, _))) = (self.arch_default(cx), self.ram()) {
            let above = match estimate {
                Some(e) if round_up(e) < default => format!(", above the estimate {}", figure(e)),
                _ => String::new(),
            };
            candidates.push((
                default,
                format!(
                    "the x86_64 default for {} of RAM ({X86_64_DEFAULT}){above}",
                    figure(ram)
                ),
            ));
        }
        if let Some(c) = cx.snap.calibrated.as_ref() {
            candidates.push((
                measured(c),
                format!(
                    "kdrill's measured minimum {} on {}, with its margin",
                    figure(c.min_bytes),
                    c.other_release.as_deref().unwrap_or("another release")
                ),
            ));
        }
        // The first of equal figures keeps its reason (the estimate before the default).
        candidates
            .into_iter()
            .rev()
            .max_by_key(|(bytes, _)| *bytes)
            .unwrap_or((
                256 << 20,
                "kdrill's default: neither an estimate nor the arch default is known here"
                    .to_string(),
            ))
    }
}

/// Why a recommendation may exceed the estimate, for the details.
pub(super) const ABOVE_THE_ESTIMATE: &str = "the estimate is a floor (kernel, modules, initrd and 64M for the capture userspace); the default is what RHEL/Fedora's kdumpctl reserves for this RAM";

/// Rounds up to a multiple of 16M (the granularity people write crashkernel= in), then to what
/// [`crate::spec::cmdline::paste`] writes (a whole G above 1G), so the figure a fix names is
/// the one it pastes.
pub(super) fn round_up(bytes: u64) -> u64 {
    const STEP: u64 = 16 << 20;
    let sixteen = bytes.div_ceil(STEP).saturating_mul(STEP);
    paste_bytes(sixteen).unwrap_or(sixteen)
}

/// `MemTotal` in bytes.
pub fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Sum of the sizes in /proc/modules (every loaded module: an upper bound for the capture kernel's).
pub fn modules_bytes(modules: &str) -> u64 {
    modules
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .fold(0, u64::saturating_add)
}

/// One line of /proc/iomem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IomemRange {
    pub start: u64,
    /// Inclusive.
    pub end: u64,
    pub name: String,
    /// Nesting level (two spaces of indent per level).
    pub depth: usize,
}

impl IomemRange {
    /// Bytes covered, in u128: `0-ffffffffffffffff` covers 2^64.
    fn len128(&self) -> u128 {
        u128::from(self.end - self.start) + 1
    }
}

/// Parses /proc/iomem; lines that do not parse are skipped.
pub fn iomem_ranges(text: &str) -> Vec<IomemRange> {
    text.lines()
        .filter_map(|line| {
            let depth = (line.len() - line.trim_start().len()) / 2;
            let (span, name) = line.trim().split_once(" : ")?;
            let (start, end) = span.split_once('-')?;
            let (start, end) = (
                u64::from_str_radix(start, 16).ok()?,
                u64::from_str_radix(end, 16).ok()?,
            );
            // A range that ends before it starts is not something the kernel prints: skip it.
            (end >= start).then(|| IomemRange {
                start,
                end,
                name: name.trim().to_string(),
                depth,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iomem_parsing() {
        let text = "00001000-0009fbff : System RAM\n00100000-bfffffff : System RAM\n  01000000-01ffffff : Kernel code\n  02000000-023fffff : Kernel bss\n  a0000000-a7ffffff : Crash kernel\n";
        let ranges = iomem_ranges(text);
        assert_eq!(ranges.len(), 5);
        assert_eq!(ranges[2].depth, 1);
        assert_eq!(ranges[4].name, "Crash kernel");
        assert_eq!(
            mem_total("MemTotal:       24684096 kB\n"),
            Some(24684096 * 1024)
        );
        assert_eq!(
            modules_bytes("ext4 1000000 1 - Live 0x0\nodd line\nvirtio 2000 0 - Live 0x0\n"),
            1002000
        );
        assert_eq!(round_up(1), 16 << 20);
        assert_eq!(round_up(32 << 20), 32 << 20);
    }
}
