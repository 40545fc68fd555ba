//! Checks 1–3: `crashkernel=` on the command line, memory actually reserved, and whether it is large enough.

use crate::readiness::crashkernel::{self, size, Params, Resolution};
use crate::readiness::snapshot::{self, Snapshot};
use crate::readiness::source::{Got, Problem};
use crate::readiness::{check, unread, Check, Context, Status, Support};

/// Capture-kernel runtime allowance (userspace, page tables, slab), as `kdumpctl estimate` uses.
const RUNTIME_BYTES: u64 = 64 << 20;
/// An initrd unpacks to roughly three times its compressed size, and the compressed copy stays in memory.
const INITRD_FACTOR: u64 = 3;
/// x86_64's default reservation by RAM size (RHEL/Fedora `kdumpctl`'s table).
const X86_64_DEFAULT: &str = "2G-64G:256M,64G-:512M";
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
        let (system_ram, iomem_crash, kernel_image) = match (&ranges, iomem_hidden) {
            (Some(ranges), false) => {
                let ram: u64 = ranges
                    .iter()
                    .filter(|r| r.depth == 0 && r.name == "System RAM")
                    .map(IomemRange::len)
                    .sum();
                let crash = ranges
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
                    (Some(start), Some(end)) if end > start => Some(end - start + 1),
                    _ => None,
                };
                ((ram > 0).then_some(ram), Some(crash), image)
            }
            _ => (None, None, None),
        };
        let crash_size = snap.kexec_crash_size.clone().and_then(|text| {
            text.trim().parse::<u64>().map_err(|_| {
                Problem::Odd(format!(
                    "/sys/kernel/kexec_crash_size holds `{}`, not a number",
                    text.trim()
                ))
            })
        });
        Memory {
            mem_total: snap.meminfo.as_deref().ok().and_then(mem_total),
            system_ram,
            params: snap.cmdline.as_deref().ok().map(crashkernel::from_cmdline),
            iomem_crash,
            iomem_hidden,
            kernel_image,
            crash_size,
        }
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
        self.iomem_crash
            .as_ref()
            .map(|ranges| ranges.iter().map(|(s, e)| e - s + 1).sum())
    }

    /// Bytes reserved for the capture kernel, `None` if neither source could be read.
    pub fn reserved(&self) -> Option<u64> {
        match (self.crash_size.as_ref().ok(), self.iomem_crash_bytes()) {
            (None, None) => None,
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
                    meta.len * IMAGE_FACTOR,
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
        let total_bytes =
            kernel_bytes + modules_bytes + initrd_bytes * INITRD_FACTOR + RUNTIME_BYTES;
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

    /// The `crashkernel=` value to recommend: the larger of the estimate and the arch default, else 256M.
    pub fn recommended(&self, cx: &Context) -> u64 {
        let estimate = self.estimate(cx).map(|e| round_up(e.total_bytes));
        let calibrated = cx.snap.calibrated.as_ref().map(|c| round_up(c.min_bytes));
        [estimate, self.arch_default(cx), calibrated]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(256 << 20)
    }
}

/// Rounds up to a multiple of 16M (the granularity people write crashkernel= in).
fn round_up(bytes: u64) -> u64 {
    const STEP: u64 = 16 << 20;
    bytes.div_ceil(STEP) * STEP
}

/// `MemTotal` in bytes.
pub fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Sum of the sizes in /proc/modules (every loaded module: an upper bound for the capture kernel's).
pub fn modules_bytes(modules: &str) -> u64 {
    modules
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
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
    fn len(&self) -> u64 {
        self.end.saturating_sub(self.start) + 1
    }
}

/// Parses /proc/iomem; lines that do not parse are skipped.
pub fn iomem_ranges(text: &str) -> Vec<IomemRange> {
    text.lines()
        .filter_map(|line| {
            let depth = (line.len() - line.trim_start().len()) / 2;
            let (span, name) = line.trim().split_once(" : ")?;
            let (start, end) = span.split_once('-')?;
            Some(IomemRange {
                start: u64::from_str_radix(start, 16).ok()?,
                end: u64::from_str_radix(end, 16).ok()?,
                name: name.trim().to_string(),
                depth,
            })
        })
        .collect()
}

const WHY_PARAM: &str = "without crashkernel= the kernel reserves no memory at boot, so there is nowhere to load a capture kernel";
const WHY_RESERVED: &str =
    "a crashkernel= value the kernel could not place reserves nothing, and kdump cannot load";
const WHY_SIZE: &str = "a capture kernel that runs out of memory in its reservation dies before writing the dump (\"System is deadlocked on memory\")";

/// Check 1: `crashkernel=` on /proc/cmdline, and what it resolves to for this RAM.
pub fn param(cx: &Context) -> Check {
    let mem = &cx.mem;
    let Some(params) = &mem.params else {
        let problem = cx
            .snap
            .cmdline
            .as_ref()
            .err()
            .cloned()
            .unwrap_or(Problem::Missing);
        return check(
            1,
            Status::Skip,
            unread("/proc/cmdline", &problem),
            WHY_PARAM,
        )
        .fix("run as root on the host, or include proc/cmdline in the captured tree");
    };
    let recommended = format!("crashkernel={}", size(mem.recommended(cx)));
    let add = cx.family.add_kernel_param(&recommended);
    if let Support::No(reason) = &cx.support {
        let seen = if params.is_empty() {
            format!("no crashkernel= on /proc/cmdline, and this kernel cannot dump ({reason})")
        } else {
            format!(
                "crashkernel={} is set, but this kernel cannot dump ({reason})",
                params.raw.join(" crashkernel=")
            )
        };
        return check(1, Status::Fail, seen, WHY_PARAM).fix(format!(
            "boot a kernel built with CONFIG_KEXEC (or CONFIG_KEXEC_FILE) and CONFIG_CRASH_DUMP (every distribution kernel is), then {add}"
        ));
    }
    if params.is_empty() {
        return check(
            1,
            Status::Fail,
            "no crashkernel= on /proc/cmdline",
            WHY_PARAM,
        )
        .fix(add);
    }
    let ram_text = match mem.ram() {
        Some((ram, source)) => format!("{} of RAM ({source})", size(ram)),
        None => "an unknown RAM size".to_string(),
    };
    let mut details: Vec<String> = params
        .raw
        .iter()
        .zip(&params.parsed)
        .filter_map(|(raw, parsed)| {
            parsed
                .as_ref()
                .err()
                .map(|err| format!("crashkernel={raw} is ignored by the kernel: {err}"))
        })
        .collect();
    let shown = format!("crashkernel={}", params.raw.join(" crashkernel="));
    let (status, seen, fix) = match mem.resolution() {
        None if mem.ram().is_none() => (
            Status::Skip,
            format!("{shown}, but the RAM size is unknown (/proc/meminfo, /proc/iomem)"),
            None,
        ),
        None => (
            Status::Fail,
            format!("{shown} does not parse"),
            Some(add.clone()),
        ),
        Some(Resolution::Reserve { size: s, low }) => {
            let low = low
                .map(|l| format!(" + {} low", size(l)))
                .unwrap_or_default();
            let status = if details.is_empty() {
                Status::Pass
            } else {
                Status::Warn
            };
            (
                status,
                format!("{shown} asks for {}{low} with {ram_text}", size(s)),
                Some("remove the crashkernel= values the kernel ignores".to_string()),
            )
        }
        Some(Resolution::NoRangeMatches) => (
            Status::Fail,
            format!("{shown} has no range covering {ram_text}: nothing is reserved"),
            Some(format!("add a range that covers this RAM size, or {add}")),
        ),
        Some(Resolution::TooLarge { size: s }) => (
            Status::Fail,
            format!(
                "{shown} asks for {}, not less than {ram_text}: the kernel refuses",
                size(s)
            ),
            Some(add.clone()),
        ),
        Some(Resolution::Auto) => {
            details.push("RHEL/CentOS 7 and 8 kernels read `auto` as 1G-4G:160M,4G-64G:192M,64G-1T:256M,1T-:512M on x86_64; mainline and other kernels ignore it".to_string());
            (
                Status::Warn,
                format!("{shown}: only RHEL/CentOS 7–8 kernels understand `auto`"),
                Some(format!(
                    "replace crashkernel=auto with an explicit size: {add}"
                )),
            )
        }
        Some(Resolution::NothingMain) => (
            Status::Fail,
            format!("{shown} has only a ,low or ,cma part and no main size: nothing is reserved"),
            Some(add.clone()),
        ),
    };
    let mut result = check(1, status, seen, WHY_PARAM).details(details);
    if let Some(fix) = fix {
        result = result.fix(fix);
    }
    result
}

/// Check 2: `/sys/kernel/kexec_crash_size` > 0 and a "Crash kernel" range in /proc/iomem.
pub fn reserved(cx: &Context) -> Check {
    let mem = &cx.mem;
    if let Support::No(reason) = &cx.support {
        return check(2, Status::Fail, format!("nothing reserved: this kernel has no crash dump support ({reason})"), WHY_RESERVED)
            .fix("boot a distribution kernel (built with CONFIG_CRASH_DUMP), then set crashkernel= (see crashkernel-param)");
    }
    let mut details = Vec::new();
    match &mem.crash_size {
        Ok(bytes) => details.push(format!(
            "/sys/kernel/kexec_crash_size = {bytes} ({})",
            size(*bytes)
        )),
        Err(problem) => details.push(unread("/sys/kernel/kexec_crash_size", problem)),
    }
    match (&mem.iomem_crash, mem.iomem_hidden) {
        (_, true) => details.push("/proc/iomem shows zero addresses (read it as root)".to_string()),
        (Some(ranges), false) if !ranges.is_empty() => {
            for (start, end) in ranges {
                details.push(format!(
                    "/proc/iomem: {start:08x}-{end:08x} : Crash kernel ({})",
                    size(end - start + 1)
                ));
            }
        }
        (Some(_), false) => details.push("/proc/iomem has no \"Crash kernel\" range".to_string()),
        (None, false) => details.push(unread(
            "/proc/iomem",
            cx.snap.iomem.as_ref().err().unwrap_or(&Problem::Missing),
        )),
    }
    let Some(reserved) = mem.reserved() else {
        return check(2, Status::Skip, "cannot tell: /sys/kernel/kexec_crash_size and /proc/iomem unreadable", WHY_RESERVED)
            .details(details)
            .fix("run as root on the host, or include sys/kernel/kexec_crash_size and proc/iomem in the captured tree");
    };
    if reserved > 0 {
        let seen = format!("{} reserved for the capture kernel", size(reserved));
        return check(2, Status::Pass, seen, WHY_RESERVED).details(details);
    }
    let (seen, fix) = match mem.resolution() {
        Some(Resolution::Reserve { size: s, .. }) => (
            format!("crashkernel= asks for {} but nothing was reserved", size(s)),
            "find the reason with `dmesg | grep -i crashkernel`; try a smaller size, or on x86_64 `crashkernel=<size>,high crashkernel=72M,low` to reserve above 4G".to_string(),
        ),
        Some(Resolution::Auto) => (
            "crashkernel=auto reserved nothing: this kernel does not understand `auto`".to_string(),
            format!("replace it with an explicit size: {}", cx.family.add_kernel_param(&format!("crashkernel={}", size(mem.recommended(cx))))),
        ),
        _ => ("nothing reserved for a capture kernel".to_string(), "set crashkernel= first (see crashkernel-param)".to_string()),
    };
    check(2, Status::Fail, seen, WHY_RESERVED)
        .details(details)
        .fix(fix)
}

/// Check 3: the reservation against an estimate, the arch default, and any calibrated figure.
pub fn large_enough(cx: &Context) -> Check {
    let mem = &cx.mem;
    let reserved = match mem.reserved() {
        Some(bytes) if bytes > 0 => bytes,
        _ => {
            return check(
                3,
                Status::Skip,
                "nothing reserved to size (see crashkernel-reserved)",
                WHY_SIZE,
            )
        }
    };
    let Some(estimate) = mem.estimate(cx) else {
        return check(
            3,
            Status::Skip,
            format!(
                "{} reserved; no estimate: the kernel release or image size is unknown",
                size_text(reserved)
            ),
            WHY_SIZE,
        )
        .fix("include proc/sys/kernel/osrelease, proc/iomem and boot/ in the captured tree");
    };
    let mut details = vec![format!(
        "estimate {} = kernel {} ({}) + modules {} (all loaded, /proc/modules) + initrd {} × {} ({}) + runtime {}",
        size_text(estimate.total_bytes),
        size_text(estimate.kernel_bytes),
        estimate.kernel_source,
        size_text(estimate.modules_bytes),
        size_text(estimate.initrd_bytes),
        estimate.initrd_factor,
        estimate.initrd_source,
        size_text(estimate.runtime_bytes),
    )];
    let mut need = estimate.total_bytes;
    let mut basis = format!("estimate {}", size_text(estimate.total_bytes));
    if let Some(calibrated) = &cx.snap.calibrated {
        details.push(format!(
            "kdrill measured a {} minimum for this kernel ({})",
            size_text(calibrated.min_bytes),
            calibrated.source
        ));
        if calibrated.min_bytes > need {
            need = calibrated.min_bytes;
            basis = format!("measured minimum {}", size_text(calibrated.min_bytes));
        }
    }
    if let Some(default) = mem.arch_default(cx) {
        details.push(format!(
            "x86_64 default for this RAM ({X86_64_DEFAULT}): {}",
            size_text(default)
        ));
    }
    if reserved >= need {
        check(
            3,
            Status::Pass,
            format!("{} reserved ≥ {basis}", size_text(reserved)),
            WHY_SIZE,
        )
        .details(details)
    } else {
        let want = format!("crashkernel={}", size_text(mem.recommended(cx)));
        check(
            3,
            Status::Warn,
            format!("{} reserved < {basis}", size_text(reserved)),
            WHY_SIZE,
        )
        .details(details)
        .fix(format!(
            "raise the reservation: {}",
            cx.family.add_kernel_param(&want)
        ))
    }
}

fn size_text(bytes: u64) -> String {
    crashkernel::size(bytes)
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
