//! `cargo xtask fuzz`: seed corpora written by code, cargo-fuzz build and runs, every step under a deadline.
//!
//! Installs cargo-fuzz if it is missing, writes the seed corpora (synthetic
//! dumps from `kdrill_vmcore::synth` and the compacted real dumps in
//! `vmcore/tests/fixtures`; `read_deep` patches the deep fixtures), builds the targets on the stable toolchain
//! (`RUSTC_BOOTSTRAP=1`, release with debug assertions so overflows panic, no
//! sanitizer), then runs each for the given time with the dictionary. A
//! finding exits 1 and names the crash file.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use kdrill_vmcore::synth;
use kdrill_vmcore::Compression;

/// The targets, with the largest input each is given and their own flags: a recipe is
/// small and means little when cut short, so its lengths are not grown from 1 byte.
const TARGETS: &[(&str, usize, &[&str])] = &[
    ("read_dump", 650_000, &[]),
    ("read_recipe", 4096, &["-len_control=0"]),
    // Patches over a real dump: a few hundred bytes reach far. Its first input also unpacks the
    // four deep fixtures (xz, ~6 s with the 7.2 and 7.3 dumps), so libFuzzer's per-input timeout
    // (the later `-timeout` wins) is 30 s here, not 5.
    ("read_deep", 2048, &["-timeout=30"]),
    // Patches over the bitmaps and descriptor table of two real dumps, with an oracle: the
    // same log, an error, or an answer marked partial. Its first input unpacks the 7.2 dump.
    ("read_table", 256, &["-timeout=30"]),
];
/// Time allowed for installing cargo-fuzz, and for building the targets.
const INSTALL_DEADLINE: Duration = Duration::from_secs(1800);
const BUILD_DEADLINE: Duration = Duration::from_secs(1800);
/// Beyond `-max_total_time`: libFuzzer's own start and final merge.
const RUN_SLACK: Duration = Duration::from_secs(120);

pub fn run(root: &Path, seconds: u64, only: Option<&str>) -> anyhow::Result<i32> {
    let fuzz = root.join("vmcore/fuzz");
    ensure_cargo_fuzz()?;
    for (target, _, _) in TARGETS {
        let n = write_seeds(root, &fuzz.join("corpus").join(target), target)?;
        println!("fuzz: {n} seeds in vmcore/fuzz/corpus/{target}");
    }
    println!("fuzz: building the targets (release, debug assertions, no sanitizer)");
    let mut build = cargo_fuzz(&fuzz);
    build.args(["build", "-O", "-a", "-s", "none"]);
    let status = run_with_deadline(build, BUILD_DEADLINE, None)?;
    if !status {
        anyhow::bail!("cargo fuzz build failed (see above)");
    }
    let logs = fuzz.join("artifacts/logs");
    std::fs::create_dir_all(&logs)?;
    if let Some(name) = only {
        anyhow::ensure!(
            TARGETS.iter().any(|(t, _, _)| *t == name),
            "no fuzz target {name}: the targets are {}",
            TARGETS
                .iter()
                .map(|(t, _, _)| *t)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for (target, max_len, flags) in TARGETS {
        if only.is_some_and(|name| name != *target) {
            continue;
        }
        let artifacts = fuzz.join("artifacts").join(target);
        std::fs::create_dir_all(&artifacts)?;
        let before = listing(&artifacts);
        let log = logs.join(format!("{target}.log"));
        println!("fuzz: {target} for {seconds} s (log: {})", log.display());
        let mut cmd = cargo_fuzz(&fuzz);
        cmd.args(["run", "-O", "-a", "-s", "none", target])
            .arg(format!("corpus/{target}"))
            .arg("--")
            .arg("-dict=vmcore.dict")
            .arg(format!("-max_len={max_len}"))
            .args(["-timeout=5", "-rss_limit_mb=2048", "-print_final_stats=1"])
            .args(*flags)
            .arg(format!("-max_total_time={seconds}"))
            .arg(format!("-artifact_prefix={}/", artifacts.display()));
        let deadline = Duration::from_secs(seconds) + RUN_SLACK;
        let ok = run_with_deadline(cmd, deadline, Some(&log))?;
        println!("fuzz: {target}: {}", final_stats(&log));
        let found: Vec<PathBuf> = listing(&artifacts)
            .into_iter()
            .filter(|p| !before.contains(p))
            .collect();
        if !found.is_empty() || !ok {
            for f in &found {
                eprintln!("fuzz: {target} found a failing input: {}", f.display());
            }
            if found.is_empty() {
                eprintln!(
                    "fuzz: {target} ended with a failure (see {})",
                    log.display()
                );
            }
            return Ok(1);
        }
    }
    println!("fuzz: no findings");
    Ok(0)
}

fn cargo_fuzz(dir: &Path) -> Command {
    let mut cmd = Command::new(crate::cargo_bin());
    cmd.arg("fuzz")
        .current_dir(dir)
        .env("RUSTC_BOOTSTRAP", "1")
        .env(
            "CARGO_BUILD_JOBS",
            std::env::var("CARGO_BUILD_JOBS").unwrap_or_else(|_| "1".into()),
        );
    cmd
}

fn ensure_cargo_fuzz() -> anyhow::Result<()> {
    let found = Command::new(crate::cargo_bin())
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Ok(());
    }
    println!("fuzz: cargo-fuzz is missing; installing it: cargo install cargo-fuzz --locked");
    let mut cmd = Command::new(crate::cargo_bin());
    cmd.args(["install", "cargo-fuzz", "--locked"]);
    if !run_with_deadline(cmd, INSTALL_DEADLINE, None)? {
        anyhow::bail!("cargo install cargo-fuzz --locked failed (see above)");
    }
    Ok(())
}

/// Runs `cmd` in its own process group (stderr to `log` if given, with its
/// last progress line echoed every 30 s); kills the group at the deadline.
/// Returns whether it exited with success.
fn run_with_deadline(
    mut cmd: Command,
    deadline: Duration,
    log: Option<&Path>,
) -> anyhow::Result<bool> {
    cmd.process_group(0);
    if let Some(log) = log {
        let file = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        cmd.stderr(file.try_clone()?).stdout(file);
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    let pgid = child.id() as i32;
    let start = Instant::now();
    let mut last_echo = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status.success());
        }
        if start.elapsed() > deadline {
            // SAFETY: kill(2) on the process group this function created.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let _ = child.wait();
            anyhow::bail!(
                "{cmd:?} ran past its deadline of {} s and was killed",
                deadline.as_secs()
            );
        }
        if let Some(log) = log.filter(|_| last_echo.elapsed() > Duration::from_secs(30)) {
            last_echo = Instant::now();
            if let Some(line) = last_progress(log) {
                println!("fuzz: {:>5} s  {line}", start.elapsed().as_secs());
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn read_log(log: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(log) {
        let mut bytes = Vec::new();
        let _ = f.read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    text
}

/// libFuzzer's last status line (`#123 REDUCE cov: … exec/s: …`).
fn last_progress(log: &Path) -> Option<String> {
    read_log(log)
        .lines()
        .rev()
        .find(|l| l.starts_with('#') && l.contains("cov:"))
        .map(str::to_string)
}

/// Executions, coverage and corpus at the end of a run.
fn final_stats(log: &Path) -> String {
    let text = read_log(log);
    let runs = text
        .lines()
        .find(|l| l.starts_with("stat::number_of_executed_units:"))
        .map(|l| {
            l.trim_start_matches("stat::number_of_executed_units:")
                .trim()
                .to_string()
        });
    let last = last_progress(log).unwrap_or_default();
    format!(
        "{} executions; last status: {last}",
        runs.unwrap_or_else(|| "?".into())
    )
}

fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Writes the seed corpus of `target` into `dir`; returns how many seeds it holds.
fn write_seeds(root: &Path, dir: &Path, target: &str) -> anyhow::Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
    if target == "read_dump" {
        let k = synth::kernel(&synth::sample_records(40), false);
        let k5 = synth::kernel(&synth::sample_records(40), true);
        let legacy = synth::legacy_kernel(&[(1, 6, b"legacy one"), (2, 3, b"legacy two")]);
        let kdump = synth::kdump_with(&k, Compression::Zlib, &[]);
        seeds.push(("synth-elf".into(), synth::elf(&k)));
        seeds.push(("synth-elf-5level".into(), synth::elf(&k5)));
        seeds.push(("synth-legacy-elf".into(), synth::elf(&legacy)));
        seeds.push(("synth-qemu-elf".into(), synth::qemu_elf(&k, true)));
        seeds.push((
            "synth-kdump-snappy".into(),
            synth::kdump_with(&k, Compression::Snappy, &[]),
        ));
        seeds.push((
            "synth-kdump-zstd".into(),
            synth::kdump_with(&k, Compression::Zstd, &[]),
        ));
        seeds.push(("synth-flattened".into(), synth::flatten(&kdump, 3000)));
        seeds.push((
            "synth-qemu-kdump".into(),
            synth::qemu_kdump(&k, Compression::Zlib),
        ));
        seeds.push(("synth-kdump".into(), kdump));
        for (name, bytes) in real_fixtures(root)? {
            seeds.push((format!("real-{name}"), synth::flatten(&bytes, 65536)));
            for (part, mutant) in table_mutants(&bytes) {
                seeds.push((format!("real-{name}-{part}"), mutant));
            }
            seeds.push((format!("real-{name}-plain"), bytes));
        }
    } else if target == "read_deep" {
        // Each dump unpatched, then patches at a spread of offsets.
        seeds.push(("real-6.1".into(), vec![0]));
        seeds.push(("real-6.12".into(), vec![1]));
        for (i, at) in [0x1000u32, 0x40000, 0x200000, 0x600000].iter().enumerate() {
            let mut p = vec![i as u8];
            p.extend_from_slice(&at.to_le_bytes());
            p.push(8);
            p.extend_from_slice(&[0xff; 8]);
            seeds.push((format!("patch-{i}"), p));
        }
    } else if target == "read_table" {
        // Each dump unpatched, then a byte of each part: 1st bitmap, 2nd bitmap (a set bit
        // cleared), the first descriptor's offset, a later descriptor's size.
        seeds.push(("real-6.1-zlib".into(), vec![0]));
        seeds.push(("real-7.2-lzo".into(), vec![1]));
        for pick in 0..2u8 {
            for (i, (at, byte)) in [(0x100u32, 0x00u8), (0x8000, 0x09), (0x8000, 0xff)]
                .iter()
                .enumerate()
            {
                let mut p = vec![pick];
                p.extend_from_slice(&at.to_le_bytes());
                p.extend_from_slice(&[0, *byte]);
                seeds.push((format!("patch-{pick}-{i}"), p));
            }
        }
    } else {
        // Recipes are decoded from any bytes: a spread of lengths and patterns.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for n in [0usize, 8, 32, 64, 128, 256, 512, 1024] {
            let bytes: Vec<u8> = (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            seeds.push((format!("random-{n}"), bytes));
        }
    }
    for (name, bytes) in &seeds {
        let path = dir.join(format!("seed-{name}"));
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(std::fs::read_dir(dir)?.count())
}

/// A kdump-compressed dump with its layout hit: a set byte of the 2nd bitmap made `0o11`, a
/// descriptor's offset past the end, a descriptor's size over a page (the first mutation
/// once read as a clean, wrong log). Empty for another format.
fn table_mutants(d: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    if !d.starts_with(b"KDUMP   ") || d.len() < 4096 {
        return Vec::new();
    }
    let u32_at = |at: usize| u32::from_le_bytes(d[at..at + 4].try_into().unwrap()) as usize;
    let bs = u32_at(428);
    let bitmap2 = (1 + u32_at(432)) * bs + u32_at(436) * bs / 2;
    let table = bitmap2 + u32_at(436) * bs / 2;
    let mut out = Vec::new();
    if let Some(at) = (bitmap2..table.min(d.len())).find(|&i| d[i] == 0xff) {
        let mut b = d.to_vec();
        b[at] = 0o11;
        out.push(("bitmap2", b));
    }
    if table + 3 * 24 <= d.len() {
        let mut b = d.to_vec();
        b[table + 24..table + 32].copy_from_slice(&(d.len() as u64 + 4096).to_le_bytes());
        out.push(("desc-offset", b));
        let mut b = d.to_vec();
        b[table + 56..table + 60].copy_from_slice(&(bs as u32 + 1).to_le_bytes());
        out.push(("desc-size", b));
    }
    out
}

/// The compacted real dumps, gunzipped (`vmcore/tests/fixtures/*.gz`).
fn real_fixtures(root: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let dir = root.join("vmcore/tests/fixtures");
    let mut out = Vec::new();
    for path in listing(&dir) {
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".gz"))
        else {
            continue;
        };
        out.push((
            name.to_string(),
            kdrill_vmcore::synth::gunzip(&std::fs::read(&path)?)?,
        ));
    }
    Ok(out)
}
