//! `cargo xtask deep`: kdrill's deep reading against crash and gdb on real captures, and the
//! speed of `kdrill inspect` against drgn, crash and makedumpfile, as tables.
//!
//! Dumps come from the evidence of earlier runs (`<out>/runs/<kernel>/<scenario>/latest`);
//! a case whose dump is missing is run first (`vm-dump` with `KDRILL_KEEP_DUMPS=1`, its ELF
//! is over the size kept after a PASS). crash needs the kernel's `-dbg` vmlinux, fetched once
//! into the cache (~850 MB download for 6.1). Exit 1 when a comparison disagrees.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Context;
use kdrill::crosscheck::{crash, drgn, gdb};

use crate::rows::{crash_row, drgn_row};
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

pub(crate) struct Table {
    rows: Vec<[String; 4]>,
    failed: bool,
}

impl Table {
    /// A row whose difference is the other tool's, shown but not failed.
    pub(crate) fn note(&mut self, verdict: &str, what: &str, dump: &str, detail: String) {
        self.rows
            .push([verdict.into(), what.into(), dump.into(), detail]);
    }

    pub(crate) fn row(&mut self, ok: Option<bool>, what: &str, dump: &str, detail: String) {
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
    crate::speed::run(root, &out, &vmlinux, &crash_bin, args.runs)?;
    Ok(if t.failed { 1 } else { 0 })
}

/// The dump file of a case's latest attempt, running the case if it has none.
pub(crate) fn dump_of(
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
        image: None,
    };
    let (case, options) = one.prepare(root)?;
    let result =
        kdrill::campaign::verify::run_one(&case, &options, kdrill::campaign::stream::Format::Text);
    anyhow::ensure!(
        path.is_file(),
        "{kernel}/{route} left no {file} ({:?}: {})",
        result.verdict,
        result.reasons.join("; ")
    );
    Ok(path)
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
