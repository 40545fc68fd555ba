//! `kdrill calibrate` / `cargo xtask calibrate`: the I/O around the pure parts. For each memory
//! size, bisect (`bisect`) by running the real case (`case::run`, `faithful`: the kernel places
//! the reservation, as on a real host) with `crashkernel=<size>M`, each probe a case of its own
//! (`runs/<kernel>/calibrate-<scenario>-<memory>M-<size>M/<attempt>/`) judged from its evidence
//! (`classify`); progress shows the bracket and the time left; the result is written as
//! `calibration/<kernel>-<image>.yaml` and shown as a Markdown table.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};

use crate::calibrate::bisect::{self, Narrowing, Probe, Prober};
use crate::calibrate::file::{self, Calibration, ProbeEntry, SizeEntry};
use crate::calibrate::heuristics::{self, EstimateInputs};
use crate::calibrate::{classify, stream, Outcome};
use crate::campaign::stream::Format;
use crate::case::plan::Overrides;
use crate::case::{Case, RunOptions};
use crate::exit::Exit;
use crate::spec::cmdline;
use crate::spec::scenario::BootMode;

#[derive(clap::Args, Debug, Clone)]
#[command(
    after_help = "Exit codes: 0 every memory size has an answer, 1 one has none, 3 kdrill could not do its job (a YAML error, a case it cannot prepare), 64 a bad command line, 128+N stopped by signal N."
)]
pub struct CalibrateArgs {
    /// Kernel entry id from kernels/ (not for a disk image, which boots its own)
    #[arg(long, value_name = "ID", required_unless_present = "image")]
    pub kernel: Option<String>,
    /// The guest image whose capture is measured, a recipe of images/: `minimal` (kdrill's
    /// busybox initramfs), `debian-bookworm` (alias `debian`) or `debian-trixie` (the release's
    /// own kdump-tools, a full systemd boot of the capture kernel); or your own disk image's path
    /// (its agent sets each probe's crashkernel= through the image's bootloader, in the overlay)
    /// [default: minimal]
    #[arg(long, value_name = "NAME|PATH")]
    pub image: Option<String>,
    /// Guest memory sizes, comma-separated (`1G,2G`, `1536M`)
    #[arg(long, default_value = "1G", value_delimiter = ',')]
    pub memory: Vec<String>,
    /// The crash route of every probe
    #[arg(long, default_value = "sysrq")]
    pub scenario: String,
    /// Probe exactly these reservations (`80M,96M`) at each memory size instead of searching:
    /// a quick check of a known boundary
    #[arg(long = "try", value_name = "SIZES", value_delimiter = ',')]
    pub try_sizes: Vec<String>,
    /// Where the calibration file goes [default: the checkout's or --root's calibration/, else
    /// calibration/ in the out folder (./kdrill-out)]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// A folder whose kernels/, scenarios/, images/… files are added to kdrill's own, as for
    /// `kdrill verify --root` [default: the checkout around the current folder, else kdrill's
    /// built-in data]
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// `text`, or `json`: a `kdrill-calibrate-probe/1` object per line as each probe finishes,
    /// then a `kdrill-calibrate-result/1`; only JSON on stdout
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// A memory size as written (`1G`, `1536M`), in MiB.
pub fn parse_memory(text: &str) -> Result<u64, String> {
    match crate::spec::cmdline::memparse(text.trim()) {
        Some((bytes, "")) if bytes >= 256 << 20 => Ok(bytes >> 20),
        _ => Err(format!(
            "--memory {text}: not a memory size of at least 256M (e.g. 1G, 1536M)"
        )),
    }
}

/// One probe: the case at one memory size and reservation.
struct CaseProber<'a> {
    case: &'a Case,
    options: &'a RunOptions,
    memory_mib: u64,
    format: Format,
}

impl Prober for CaseProber<'_> {
    fn probe(&mut self, crashkernel_mib: u64) -> Probe {
        let mut case = self.case.clone();
        case.kernel.guest.memory_mib = self.memory_mib as u32;
        case.kernel.guest.crashkernel = cmdline::mib(crashkernel_mib);
        case.setup.crashkernel = None;
        case.scenario.id = format!(
            "calibrate-{}-{}M-{crashkernel_mib}M",
            self.case.scenario.id, self.memory_mib
        );
        let started = Instant::now();
        let result = crate::case::run(&case, self.options, &|_| {});
        let console =
            std::fs::read(Path::new(&result.artifacts).join("serial.log")).unwrap_or_default();
        let probe = Probe {
            crashkernel_mib,
            outcome: classify::classify(&result, &String::from_utf8_lossy(&console)),
            seconds: started.elapsed().as_secs_f64(),
            evidence: result.artifacts,
        };
        if self.format == Format::Json {
            print!(
                "{}",
                stream::probe_line(
                    &self.case.kernel.id,
                    &self.case.scenario.id,
                    self.memory_mib,
                    &probe
                )
            );
        }
        probe
    }
}

fn outcome_word(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Works => "works".into(),
        Outcome::TooSmall(mode) => format!("too-small: {}", mode.word()),
        Outcome::Unrelated(why) => format!("unrelated: {why}"),
    }
}

/// What the heuristics need of the guest. `kdumpctl estimate`'s inputs: the bzImage, the modules
/// the minimal image loads, and the capture initramfs (built once here to measure it; for a
/// Debian image, its initrd, built with the same `MODULES=list` as kdump-tools' capture initrd).
/// And the `crashkernel=` Debian's kdump-tools sets for it (an image with its own kdump-tools:
/// read from the image; the minimal image: Debian 12's).
fn estimate_inputs(
    case: &Case,
    options: &RunOptions,
) -> anyhow::Result<(EstimateInputs, Option<String>)> {
    // A disk image's kernel and capture initrd are inside it: no estimate, the bracket only.
    if matches!(case.kernel.source, crate::spec::kernel::KernelSource::Image) {
        return Ok((EstimateInputs::default(), None));
    }
    let files = crate::fetch::kernel::resolve(&case.kernel, &options.cache)?;
    if crate::case::needs::needs(case, options.overrides).image_build {
        let built = crate::case::production::image_for(case, options, &|_| {})?;
        let cfg = built
            .kdump_tools_cfg()
            .context("cannot read kdump-tools' crashkernel= default from the image")?;
        let inputs = EstimateInputs {
            kernel_image_bytes: std::fs::metadata(&files.vmlinuz)?.len(),
            modules_bytes: 0,
            capture_initrd_bytes: std::fs::metadata(&built.initrd)?.len(),
        };
        return Ok((inputs, heuristics::kdump_tools_default(&cfg)));
    }
    let recipe = crate::spec::image::minimal(options.project_root.as_deref())?;
    let plan = crate::case::plan::plan(case, options.overrides);
    let capture = crate::case::prepare::userspace(case, &recipe, options, &|_| {})?;
    let scratch = tempfile::tempdir()?;
    let capture = crate::guest::minimal::write(
        &recipe,
        &files,
        &crate::guest::minimal::Contents {
            scenario: &case.scenario,
            plan: &plan,
            capture_kernel: &files.vmlinuz,
            crasher: None,
            userspace_root: &capture.root,
            shape: false,
            cache: &options.cache,
        },
        &scratch.path().join("initrd.img"),
        options.project_root.as_deref(),
    )
    .map_err(anyhow::Error::msg)?;
    let index = crate::guest::modules::ModuleIndex::scan(&files.modules, &files.release)?
        .with_alias_cache(&options.cache);
    let mut modules_bytes = 0;
    let order = crate::guest::needs::resolve(&index, &recipe.needs).map(|r| r.order);
    for module in order.unwrap_or_default() {
        modules_bytes += index.read(&module).map(|b| b.len() as u64).unwrap_or(0);
    }
    let inputs = EstimateInputs {
        kernel_image_bytes: std::fs::metadata(&files.vmlinuz)?.len(),
        modules_bytes,
        capture_initrd_bytes: capture,
    };
    Ok((inputs, Some(heuristics::DEBIAN_DEFAULT.to_string())))
}

/// A size kdump-tools suggests (`161M`), in MiB (rounded up).
fn suggested_mib(size: &str) -> Option<u64> {
    match cmdline::memparse(size.trim()) {
        Some((bytes, "")) if bytes > 0 => Some(bytes.div_ceil(1 << 20)),
        _ => None,
    }
}

/// The host: CPU model, cores, accelerator.
fn host_line(accel: &str) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores, {accel}")
}

pub fn run(args: &CalibrateArgs) -> anyhow::Result<i32> {
    let memories: Vec<u64> = args
        .memory
        .iter()
        .map(|m| parse_memory(m))
        .collect::<Result<_, _>>()
        .map_err(Exit::usage)?;
    let tries: Vec<u64> = args
        .try_sizes
        .iter()
        .map(|s| match crate::spec::cmdline::memparse(s.trim()) {
            Some((bytes, "")) if bytes >= 1 << 20 => Ok(bytes >> 20),
            _ => Err(Exit::usage(format!(
                "--try {s}: not a reservation size (e.g. 96M)"
            ))),
        })
        .collect::<Result<_, _>>()?;
    let project = crate::host::paths::project(args.root.as_deref())?;
    let case = super::selected_case(
        &project.root,
        args.kernel.as_deref(),
        args.image.as_deref(),
        &args.scenario,
    )?;
    if let Some(why) = case.skip_reason() {
        bail!(
            "{} declares {} impossible: {why}",
            case.kernel.id,
            case.scenario.id
        );
    }
    crate::host::interrupt::install();
    let mut options = RunOptions::for_project(&project).map_err(anyhow::Error::msg)?;
    // The kernel places the reservation, as on a real host: faithful, booted every time.
    options.overrides = Overrides {
        mode: Some(BootMode::Faithful),
        no_restore: true,
    };
    crate::campaign::verify::prefetch(std::slice::from_ref(&case), &options)?;
    let (inputs, debian_default) = estimate_inputs(&case, &options)?;
    let started = Instant::now();
    let mut sizes = Vec::new();
    let mut release = String::new();
    let mut accel = String::from("unknown");
    for memory_mib in memories {
        let mut heuristics = heuristics::for_guest(memory_mib, inputs, debian_default.as_deref());
        let bracket = heuristics::bracket(memory_mib, &heuristics);
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        let size_started = Instant::now();
        let mut prober = CaseProber {
            case: &case,
            options: &options,
            memory_mib,
            format: args.format,
        };
        let mut show = |n: Narrowing| {
            let per = if n.probes_so_far == 0 {
                None
            } else {
                Some(size_started.elapsed().as_secs_f64() / n.probes_so_far as f64)
            };
            let mib = |v: Option<u64>| v.map_or("?".into(), cmdline::mib);
            let line = format!(
                "{}/{}: {memory_mib}M of RAM: fails at {}, works at {}; probing crashkernel={} (probe {}, ~{} to go{})",
                case.kernel.id,
                case.scenario.id,
                mib(n.failing_mib),
                mib(n.working_mib),
                cmdline::mib(n.probing_mib),
                n.probes_so_far + 1,
                n.probes_left + 1,
                per.map_or(String::new(), |p| format!(", ~{:.0} s", p * (n.probes_left + 1) as f64)),
            );
            // Without a terminal (CI logs, `> file`) the spinner is hidden: one line per step.
            if bar.is_hidden() {
                eprintln!("kdrill: {line}");
            }
            bar.set_message(line);
        };
        let result = if tries.is_empty() {
            bisect::bisect(&mut prober, memory_mib, bracket, &mut show)
        } else {
            bisect::probe_list(&mut prober, memory_mib, &tries, bracket.retries, &mut show)
        };
        bar.finish_and_clear();
        if let Some(stop) = crate::host::interrupt::interrupted() {
            return Err(anyhow::Error::new(Exit {
                code: stop.exit_code(),
                kind: "stopped",
                message: format!("stopped ({stop}) before the calibration was written"),
            }));
        }
        for probe in &result.probes {
            // Under JSON each probe's line went out as it finished.
            if args.format == Format::Text {
                println!(
                    "  {memory_mib}M crashkernel={}: {} ({:.0} s) {}",
                    cmdline::mib(probe.crashkernel_mib),
                    outcome_word(&probe.outcome),
                    probe.seconds,
                    probe.evidence
                );
            }
            if let Ok(json) = std::fs::read(Path::new(&probe.evidence).join("result.json")) {
                if let Ok(r) = serde_json::from_slice::<crate::case::verdict::CaseResult>(&json) {
                    release = r.kernel_release.unwrap_or(release);
                    if let Some(a) = r.accel {
                        accel = a.qemu_name().to_string();
                    }
                    // What the image's kdump-tools suggested in boot 1 (kdump-tools 1.10; it
                    // varies a little between boots): the largest.
                    let suggested = r.production.and_then(|p| p.kdump_suggested);
                    if let Some(mib) = suggested.as_deref().and_then(suggested_mib) {
                        let largest = heuristics.kdump_tools_suggested_mib.unwrap_or(0).max(mib);
                        heuristics.kdump_tools_suggested_mib = Some(largest);
                    }
                }
            }
        }
        sizes.push(SizeEntry {
            memory_mib,
            smallest_working_mib: result.smallest_working_mib,
            largest_failing_mib: result.largest_failing_mib,
            failure_below: result.failure_below.as_ref().map(|m| m.word().to_string()),
            recommended_mib: result.smallest_working_mib.map(heuristics::recommended),
            heuristics,
            wall_seconds: size_started.elapsed().as_secs_f64(),
            non_monotonic: result.non_monotonic.clone(),
            unfinished: result.unfinished.clone(),
            probes: result
                .probes
                .iter()
                .map(|p| ProbeEntry {
                    crashkernel_mib: p.crashkernel_mib,
                    outcome: outcome_word(&p.outcome),
                    seconds: p.seconds,
                    evidence: p.evidence.clone(),
                })
                .collect(),
        });
    }
    let range = heuristics::range_expression(
        &sizes
            .iter()
            .filter_map(|s| Some((s.memory_mib, s.recommended_mib?)))
            .collect::<Vec<_>>(),
    );
    let calibration = Calibration {
        kernel: case.kernel.id.clone(),
        release,
        image: case.setup.image.name().to_string(),
        scenario: case.scenario.id.clone(),
        measured: crate::host::clock::Civil::from_system(std::time::SystemTime::now()).readable(),
        kdrill: crate::VERSION.into(),
        qemu: crate::case::shape::qemu_identity().unwrap_or_else(|e| format!("unknown ({e})")),
        host: host_line(&accel),
        wall_seconds: started.elapsed().as_secs_f64(),
        estimate_inputs: inputs,
        debian_default,
        margin: format!(
            "+25%, at least {}M, rounded up to 16M",
            heuristics::MARGIN_MIN_MIB
        ),
        sizes,
        range,
    };
    let dir = args.out.clone().unwrap_or_else(|| {
        project
            .own_dir()
            .unwrap_or(&project.out_dir)
            .join("calibration")
    });
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(format!("{}-{}.yaml", calibration.kernel, calibration.image));
    std::fs::write(&path, file::to_yaml(&calibration))
        .with_context(|| format!("cannot write {}", path.display()))?;
    let unsettled = calibration
        .sizes
        .iter()
        .any(|s| s.unfinished.is_some() || s.smallest_working_mib.is_none());
    let code = if unsettled {
        crate::exit::PARTIAL
    } else {
        crate::exit::SUCCESS
    };
    let table = format!(
        "\n{}\nwritten: {} ({:.0} s)",
        file::markdown(&calibration),
        path.display(),
        calibration.wall_seconds
    );
    match args.format {
        Format::Text => println!("{table}"),
        Format::Json => {
            eprintln!("{table}");
            print!(
                "{}",
                stream::result_line(&calibration, &path.display().to_string(), code)
            );
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    #[test]
    fn kdump_tools_suggestion_in_mib() {
        assert_eq!(super::suggested_mib("161M"), Some(161));
        assert_eq!(super::suggested_mib("1G"), Some(1024));
        assert_eq!(super::suggested_mib("Unknown"), None);
        assert_eq!(super::suggested_mib("0M"), None);
    }

    #[test]
    fn memory_sizes_as_people_write_them() {
        assert_eq!(super::parse_memory("1G"), Ok(1024));
        assert_eq!(super::parse_memory("1536M"), Ok(1536));
        assert!(super::parse_memory("128M").is_err());
        assert!(super::parse_memory("lots")
            .unwrap_err()
            .contains("--memory lots"));
    }
}
