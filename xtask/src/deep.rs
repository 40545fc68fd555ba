//! `cargo xtask deep`: kdrill's deep reading against crash and gdb on real captures, and the
//! speed of `kdrill inspect` against drgn, crash and makedumpfile, as tables.
//!
//! Dumps come from the evidence of earlier runs (`<out>/runs/<kernel>/<scenario>/latest`);
//! a case whose dump is missing is run first (`vm-dump` with `KDRILL_KEEP_DUMPS=1`, its ELF
//! is over the size kept after a PASS). crash needs the kernel's `-dbg` vmlinux, fetched once
//! into the cache (~850 MB download for 6.1). Exit 1 when a comparison disagrees.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use kdrill::crosscheck::{crash, drgn, gdb};
use kdrill::host::process;
use kdrill_vmcore::{CpuSource, Vmcore};

#[derive(clap::Args)]
pub struct DeepArgs {
    /// Runs of each command in the timing table (the median is shown)
    #[arg(long, default_value_t = 5)]
    runs: usize,
}

/// 6.1 routes crash is run on (its dumps of every route of the ci set that crashes).
const CRASH_ROUTES: &[&str] = &[
    "sysrq",
    "oops",
    "bug",
    "panic",
    "nmi",
    "softlockup",
    "hang-nmi",
    "watchdog",
    "cpu1",
    "sysrq-serial",
    "sysrq-keyboard",
    "dump-lzo",
    "dump-flat",
    "dump-elf",
];

struct Table {
    rows: Vec<[String; 4]>,
    failed: bool,
}

impl Table {
    /// A row whose difference is the other tool's, shown but not failed.
    fn note(&mut self, verdict: &str, what: &str, dump: &str, detail: String) {
        self.rows
            .push([verdict.into(), what.into(), dump.into(), detail]);
    }

    fn row(&mut self, ok: Option<bool>, what: &str, dump: &str, detail: String) {
        let verdict = match ok {
            Some(true) => "agree",
            Some(false) => {
                self.failed = true;
                "DISAGREE"
            }
            None => "n/a",
        };
        self.rows
            .push([verdict.into(), what.into(), dump.into(), detail]);
    }
}

pub fn run(root: &Path, args: &DeepArgs) -> anyhow::Result<i32> {
    kdrill::host::interrupt::install();
    kdrill::host::tools::ensure(&[("crash", "crash"), ("gdb", "gdb"), ("python3", "python3")])?;
    let out = kdrill::host::paths::out_dir(root);
    let mut t = Table {
        rows: Vec::new(),
        failed: false,
    };
    let spec = kdrill::spec::kernel::load(root, "debian-6.1")?;
    let vmlinux = kdrill::fetch::debug::vmlinux(&spec, &kdrill::host::paths::cache_dir())
        .context("the debian-6.1 debug vmlinux for crash")?;
    let crash_bin = kdrill::host::tools::require("crash")?;
    let scratch = tempfile::tempdir()?;
    // drgn, with each kernel's debug vmlinux (DWARF CFI where it has it, ORC elsewhere),
    // unwinds the crashed CPU too: its return addresses against kdrill's; then crash.
    let python = drgn::ensure()?;
    let script = scratch.path().join("drgn_same.py");
    std::fs::write(&script, drgn::SAME_AS_BT_TASKS)?;
    for route in CRASH_ROUTES {
        let dump = dump_of(root, &out, "debian-6.1", route, "vmcore")?;
        let name = format!("debian-6.1/{route}");
        let drgn_agrees = drgn_row(&mut t, &python, &script, &vmlinux, &dump, &name)?;
        crash_row(
            &mut t,
            &crash_bin,
            &vmlinux,
            &dump,
            &name,
            scratch.path(),
            drgn_agrees,
        )?;
    }
    // crash 8.0.2 on a 6.12 dump: what it says (fixed upstream in 8.0.6).
    let d612 = dump_of(root, &out, "debian-6.12", "sysrq", "vmcore")?;
    let o = crash::run(&crash_bin, &vmlinux, &d612, &scratch.path().join("c"))
        .map_err(anyhow::Error::msg)?;
    t.row(
        None,
        "crash 8.0.2 on 6.12",
        "debian-6.12/sysrq",
        format!(
            "cannot open 6.12 dumps (fixed in crash 8.0.6): {}",
            o.errors.first().map_or("(no error line)", String::as_str)
        ),
    );
    let spec = kdrill::spec::kernel::load(root, "debian-6.12")?;
    let dbg = kdrill::fetch::debug::vmlinux(&spec, &kdrill::host::paths::cache_dir())?;
    for route in CRASH_ROUTES {
        let dump = dump_of(root, &out, "debian-6.12", route, "vmcore")?;
        drgn_row(
            &mut t,
            &python,
            &script,
            &dbg,
            &dump,
            &format!("debian-6.12/{route}"),
        )?;
    }
    let gdb_bin = kdrill::host::tools::require("gdb")?;
    for kernel in ["debian-6.1", "debian-6.12"] {
        for (route, file) in [("vm-dump", "vmcore.elf"), ("dump-elf", "vmcore")] {
            let dump = dump_of(root, &out, kernel, route, file)?;
            gdb_row(&mut t, &gdb_bin, &dump, &format!("{kernel}/{route}"))?;
        }
    }
    print_table(&t.rows);
    speed(root, &out, &vmlinux, &crash_bin, args.runs)?;
    Ok(if t.failed { 1 } else { 0 })
}

/// The dump file of a case's latest attempt, running the case if it has none.
fn dump_of(
    root: &Path,
    out: &Path,
    kernel: &str,
    route: &str,
    file: &str,
) -> anyhow::Result<PathBuf> {
    let path = out
        .join("runs")
        .join(kernel)
        .join(route)
        .join("latest")
        .join(file);
    if path.is_file() {
        return Ok(path);
    }
    println!("deep: no {file} from {kernel}/{route} yet: running the case");
    std::env::set_var("KDRILL_KEEP_DUMPS", "1");
    let one = crate::OneCase {
        kernel: kernel.into(),
        scenario: route.into(),
    };
    let (case, options) = one.prepare(root)?;
    let result = kdrill::campaign::verify::run_one(&case, &options);
    anyhow::ensure!(
        path.is_file(),
        "{kernel}/{route} left no {file} ({:?}: {})",
        result.verdict,
        result.reasons.join("; ")
    );
    Ok(path)
}

fn crash_row(
    t: &mut Table,
    crash_bin: &Path,
    vmlinux: &Path,
    dump: &Path,
    name: &str,
    scratch: &Path,
    drgn_agrees: bool,
) -> anyhow::Result<()> {
    let name = name.to_string();
    let o =
        crash::run(crash_bin, vmlinux, dump, &scratch.join("cmds")).map_err(anyhow::Error::msg)?;
    let d = Vmcore::open(dump)?;
    if !o.errors.is_empty() {
        t.row(
            Some(false),
            "crash opens the dump",
            &name,
            o.errors.join("; "),
        );
        return Ok(());
    }
    // --tasks against crash: its `ps`, and its own walk of init_task.tasks with DWARF types
    // (on Debian's 6.1.170 crash 8.0.2's `ps` lists only the idle tasks).
    let ours: BTreeSet<(u32, String)> = d
        .tasks()?
        .tasks
        .into_iter()
        .map(|t| (t.pid, t.comm))
        .collect();
    let ps = crash::ps_tasks(&o.lines);
    let mut theirs = crash::listed_tasks(&o.lines);
    theirs.extend(ps.iter().cloned());
    let only_ours: Vec<_> = ours.difference(&theirs).collect();
    let only_theirs: Vec<_> = theirs.difference(&ours).collect();
    let same = only_ours.is_empty() && only_theirs.is_empty();
    t.row(
        Some(same),
        "ps + list = --tasks",
        &name,
        format!(
            "{}; crash's ps lists {} ({}), its list of init_task.tasks {} more",
            if same {
                format!("{} tasks, same pid/comm set", ours.len())
            } else {
                format!("only kdrill: {only_ours:?}; only crash: {only_theirs:?}")
            },
            ps.len(),
            o.warnings.first().map_or("no warning", String::as_str),
            theirs.len() - ps.len()
        ),
    );
    // --bt against crash's bt: kdrill's frames, in order, among crash's from kdrill's first on.
    let cpu = d.crashed_cpu()?.context("no crashed CPU")?;
    let ours: Vec<String> = d
        .backtrace(cpu)?
        .frames
        .iter()
        .filter_map(|f| f.location.as_ref().map(|l| l.symbol.clone()))
        .collect();
    let theirs = crash::bt_functions(&o.lines);
    let start = ours
        .first()
        .and_then(|f| theirs.iter().position(|c| c == f));
    let mut extra = Vec::new();
    let mut it = ours.iter().peekable();
    for c in theirs.iter().skip(start.unwrap_or(theirs.len())) {
        match it.peek() {
            Some(o) if *o == c => {
                it.next();
            }
            _ => extra.push(c.as_str()),
        }
    }
    let agree = start.is_some() && it.peek().is_none();
    if !agree && drgn_agrees {
        // The frames of kdrill's that crash's bt has nowhere (the rest differ in order or
        // in how crash names an exception frame).
        let tail = &theirs[start.unwrap_or(0).min(theirs.len())..];
        let lacks: Vec<&str> = ours
            .iter()
            .filter(|o| !tail.contains(o))
            .map(String::as_str)
            .collect();
        t.note(
            "crash differs",
            "bt = --bt",
            &name,
            format!(
                "crash's bt lacks {} of kdrill's frames ({}), the others are in it (crash names exception frames its own way); drgn with DWARF unwinds to kdrill's return addresses exactly. kdrill: {}; crash: {}",
                lacks.len(),
                lacks.join(", "),
                ours.join(" < "),
                theirs.join(" < ")
            ),
        );
    } else {
        t.row(
        Some(agree),
        "bt = --bt",
        &name,
        if agree {
            format!(
                "kdrill's {} frames all in crash's bt, in order; crash also shows the crash path above them ({}) and {} stack-scan leftovers between them{}",
                ours.len(),
                theirs[..start.unwrap_or(0)].join(" < "),
                extra.len(),
                if extra.is_empty() { String::new() } else { format!(" ({})", extra.join(", ")) }
            )
        } else {
            format!("kdrill: {}; crash: {}", ours.join(" < "), theirs.join(" < "))
        },
    );
    }
    let ours: BTreeSet<String> = d.modules()?.modules.into_iter().map(|m| m.name).collect();
    let theirs = crash::module_names(&o.lines);
    t.row(
        Some(ours == theirs),
        "mod = --modules",
        &name,
        format!("{} modules", ours.len()),
    );
    let log = kdrill_vmcore::format_dmesg(&d.dmesg_records()?);
    let ours: BTreeSet<&str> = log.lines().collect();
    let crash_log = crash::log_lines(&o.lines);
    let missing = crash_log
        .iter()
        .filter(|l| !ours.contains(l.as_str()))
        .count();
    t.row(
        Some(missing == 0),
        "log in --dmesg",
        &name,
        format!(
            "every one of crash's {} log lines is a line of kdrill's --dmesg ({} lines; it also prints continuation lines apart)",
            crash_log.len(),
            log.lines().count()
        ),
    );
    Ok(())
}

/// The crashed CPU's registers as `pt_regs` fields (`ip=…,sp=…`), for drgn_same.py: when
/// drgn cannot find the crashed thread itself (its task_struct is not in the dump), it
/// unwinds from them.
fn drgn_regs(dump: &Path) -> anyhow::Result<String> {
    let d = Vmcore::open(dump)?;
    let cpu = d.crashed_cpu()?.context("no crashed CPU")?;
    let regs = d
        .cpu_registers()?
        .into_iter()
        .find(|c| c.cpu == cpu)
        .context("no registers of the crashed CPU")?;
    const PT_REGS: [&str; 21] = [
        "r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8", "ax", "cx", "dx", "si",
        "di", "orig_ax", "ip", "cs", "flags", "sp", "ss",
    ];
    let arg: Vec<String> = PT_REGS
        .iter()
        .zip(regs.registers.values())
        .map(|(n, v)| format!("{n}={v:x}"))
        .collect();
    Ok(arg.join(","))
}

fn drgn_row(
    t: &mut Table,
    python: &Path,
    script: &Path,
    dbg: &Path,
    dump: &Path,
    name: &str,
) -> anyhow::Result<bool> {
    let d = Vmcore::open(dump)?;
    let cpu = d.crashed_cpu()?.context("no crashed CPU")?;
    let regs = drgn_regs(dump)?;
    let out = process::run(
        Command::new(python)
            .arg(script)
            .arg(dump)
            .arg(dbg)
            .arg(&regs),
        Duration::from_secs(300),
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(pcs) = text.lines().find_map(|l| l.strip_prefix("pcs: ")) else {
        t.row(Some(false), "drgn unwinds", name, out.last_line());
        return Ok(false);
    };
    // Kernel frames only: drgn goes on into the user registers the entry saved.
    let theirs: Vec<u64> = pcs
        .split_whitespace()
        .filter_map(|p| u64::from_str_radix(p.trim_start_matches("0x"), 16).ok())
        .filter(|&p| p >= 0xffff_8000_0000_0000)
        .collect();
    let from_regs = text.lines().any(|l| l.starts_with("from: registers"));
    let how = if from_regs {
        "drgn: DWARF CFI from the CPU's saved registers (its crashed_thread() needs the task_struct the dump lacks)"
    } else {
        "drgn: DWARF CFI"
    };
    let ours: Vec<u64> = d.backtrace(cpu)?.frames.iter().map(|f| f.ip).collect();
    let hex = |v: &[u64]| {
        v.iter()
            .map(|p| format!("{p:x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    if ours == theirs {
        t.row(
            Some(true),
            "drgn bt = --bt",
            name,
            format!(
                "the same {} return addresses ({how}; kdrill: ORC)",
                ours.len()
            ),
        );
    } else if !theirs.is_empty() && ours.starts_with(&theirs) {
        // drgn stops where it has no unwind data (a module without debuginfo).
        t.row(
            Some(true),
            "drgn bt = --bt",
            name,
            format!(
                "drgn's {} return addresses are kdrill's first {}; drgn stops there (no unwind data for the module frame), kdrill goes on: {}",
                theirs.len(),
                theirs.len(),
                hex(&ours[theirs.len()..])
            ),
        );
    } else {
        t.row(
            Some(false),
            "drgn bt = --bt",
            name,
            format!("kdrill {}; drgn {}", hex(&ours), hex(&theirs)),
        );
        return Ok(false);
    }
    Ok(true)
}

fn gdb_row(t: &mut Table, gdb_bin: &Path, dump: &Path, name: &str) -> anyhow::Result<()> {
    let (threads, _) = gdb::threads(gdb_bin, dump).map_err(anyhow::Error::msg)?;
    let regs = Vmcore::open(dump)?.cpu_registers()?;
    let qemu = regs.iter().all(|r| r.cpu_from == CpuSource::QemuOrder);
    let matched = threads
        .iter()
        .filter(|g| {
            regs.iter()
                .any(|r| r.pid == g.pid && r.registers.rip == g.rip && r.registers.rsp == g.rsp)
        })
        .count();
    let pids: BTreeSet<u32> = regs.iter().map(|r| r.pid).collect();
    // kdump: a pid-0 note has no thread of its own in gdb (its "process 1" shows the first
    // note's registers again); every other pid has one, with its CPU's registers.
    let busy = regs.iter().filter(|r| r.pid != 0).count();
    let ok = if qemu {
        threads.len() == regs.len() && matched == threads.len()
    } else {
        matched >= busy && threads.iter().filter(|g| pids.contains(&g.pid)).count() == busy
    };
    t.row(
        Some(ok),
        if qemu { "gdb threads = vCPUs" } else { "gdb threads by pid" },
        name,
        if qemu {
            format!(
                "{} threads for {} vCPUs (QEMU: pid = vCPU + 1); rip/rsp equal --regs on {matched}",
                threads.len(),
                regs.len()
            )
        } else {
            format!(
                "{} threads for {} CPUs, pids {pids:?}: each busy CPU's thread has its --regs rip/rsp; the idle CPUs' (pid 0) registers are not reachable in gdb (its stand-in thread shows another note's)",
                threads.len(),
                regs.len()
            )
        },
    );
    Ok(())
}

fn print_table(rows: &[[String; 4]]) {
    let w: Vec<usize> = (0..3)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    println!(
        "\n{:w0$}  {:w1$}  {:w2$}  detail",
        "",
        "check",
        "dump",
        w0 = w[0],
        w1 = w[1],
        w2 = w[2]
    );
    for r in rows {
        println!(
            "{:w0$}  {:w1$}  {:w2$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = w[0],
            w1 = w[1],
            w2 = w[2]
        );
    }
}

/// The median wall time of `runs` runs of a command, measured by bash around the bare
/// process (`$EPOCHREALTIME`), stdout and stderr to /dev/null.
fn time(cmd: &[&std::ffi::OsStr], runs: usize) -> anyhow::Result<f64> {
    time_with(cmd, runs, Path::new("/nonexistent"))
}

/// [`time`], with `output` removed before each run (makedumpfile refuses an existing file).
fn time_with(cmd: &[&std::ffi::OsStr], runs: usize, output: &Path) -> anyhow::Result<f64> {
    let script = r#"n=$1; out=$2; shift 2; for i in $(seq "$n"); do rm -f "$out"; s=$EPOCHREALTIME; "$@" >/dev/null 2>&1; e=$EPOCHREALTIME; echo "$s $e"; done"#;
    let mut c = Command::new("bash");
    c.args(["-c", script, "bash"])
        .arg(runs.to_string())
        .arg(output)
        .args(cmd);
    let out = process::run(&mut c, Duration::from_secs(1800))?;
    let mut v: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (s, e) = l.split_once(' ')?;
            Some(e.parse::<f64>().ok()? - s.parse::<f64>().ok()?)
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().context("no timing")
}

fn speed(
    root: &Path,
    out: &Path,
    vmlinux: &Path,
    crash_bin: &Path,
    runs: usize,
) -> anyhow::Result<()> {
    let mut build = Command::new(crate::cargo_bin());
    build.args([
        "build",
        "--release",
        "-q",
        "-p",
        "kdrill",
        "--bin",
        "kdrill",
    ]);
    anyhow::ensure!(
        process::run_status(&mut build, Duration::from_secs(1800))?.success(),
        "cargo build --release failed"
    );
    let kdrill_bin = root.join("target/release/kdrill");
    let python = drgn::ensure()?;
    let scratch = tempfile::tempdir()?;
    let same = scratch.path().join("drgn_same.py");
    std::fs::write(&same, drgn::SAME_AS_BT_TASKS)?;
    let cmds = scratch.path().join("cmds");
    std::fs::write(&cmds, "bt\nps\nquit\n")?;
    let os = |s: &str| std::ffi::OsString::from(s);
    println!(
        "\nwhole-process wall time, median of {runs} runs (this machine: {} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for kernel in ["debian-6.1", "debian-6.12"] {
        let dump = dump_of(root, out, kernel, "sysrq", "vmcore")?;
        let d = dump.as_os_str();
        let (inspect, bt, tasks, dm) = (os("inspect"), os("--bt"), os("--tasks"), os("--dmesg"));
        let k = time(&[kdrill_bin.as_os_str(), &inspect, d, &bt, &tasks], runs)?;
        let kd = time(&[kdrill_bin.as_os_str(), &inspect, d, &dm], runs)?;
        let dmesg = scratch.path().join("dmesg");
        let mdf = os("makedumpfile");
        let flag = os("--dump-dmesg");
        let m = time_with(&[&mdf, &flag, d, dmesg.as_os_str()], runs, &dmesg)?;
        anyhow::ensure!(
            dmesg.is_file(),
            "makedumpfile --dump-dmesg wrote nothing for {}",
            dump.display()
        );
        println!(
            "{kernel}/sysrq: kdrill inspect --bt --tasks {:.1} ms",
            k * 1e3
        );
        let spec = kdrill::spec::kernel::load(root, kernel)?;
        let dbg = kdrill::fetch::debug::vmlinux(&spec, &kdrill::host::paths::cache_dir())?;
        let regs = std::ffi::OsString::from(drgn_regs(&dump)?);
        let g = time(
            &[
                python.as_os_str(),
                same.as_os_str(),
                d,
                dbg.as_os_str(),
                &regs,
            ],
            runs.min(3),
        )?;
        println!(
            "  drgn {} (crashed thread's stack trace + task list, debug vmlinux): {:.0} ms = {:.1}x kdrill",
            drgn::VERSION,
            g * 1e3,
            g / k
        );
        if kernel == "debian-6.1" {
            let (dash_s, dash_i) = (os("-s"), os("-i"));
            let c = time(
                &[
                    crash_bin.as_os_str(),
                    &dash_s,
                    vmlinux.as_os_str(),
                    d,
                    &dash_i,
                    cmds.as_os_str(),
                ],
                runs.min(3),
            )?;
            println!(
                "  crash 8.0.2 (bt + ps, debug vmlinux): {:.0} ms = {:.0}x kdrill",
                c * 1e3,
                c / k
            );
        } else {
            println!("  crash: no comparison (crash 8.0.2 cannot open 6.12 dumps)");
        }
        println!(
            "  kdrill inspect --dmesg {:.1} ms, makedumpfile --dump-dmesg {:.1} ms: makedumpfile/kdrill {:.2}",
            kd * 1e3,
            m * 1e3,
            m / kd
        );
    }
    Ok(())
}
