//! `cargo xtask deep`'s speed table: whole-process wall time of `kdrill inspect --bt --tasks`
//! against drgn doing the same (debug vmlinux) and crash's `bt` + `ps`, and of `--dmesg`
//! against `makedumpfile --dump-dmesg`, each the median of several runs timed by bash.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use kdrill::crosscheck::drgn;
use kdrill::host::process;

use crate::deep::dump_of;
use crate::rows::drgn_regs;

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

pub(crate) fn run(
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
