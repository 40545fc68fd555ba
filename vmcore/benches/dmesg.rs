//! Log extraction time against `makedumpfile --dump-dmesg` on the same dump, as a ratio.
//!
//! `KDRILL_BENCH_DUMP=/path/to/vmcore cargo bench -p kdrill-vmcore --bench dmesg`
//! times open + `dmesg_records` + `format_dmesg` and makedumpfile on that dump in
//! the same run (median of several runs each), checks the two texts are equal,
//! and prints the ratio. Without the variable it times a synthetic dump only.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kdrill_vmcore::{format_dmesg, synth, Compression, Vmcore};

const RUNS: usize = 7;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn native(path: &Path) -> (Duration, String) {
    let mut times = Vec::new();
    let mut text = String::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let dump = Vmcore::open(path).expect("open the dump");
        text = format_dmesg(&dump.dmesg_records().expect("read the log"));
        times.push(t.elapsed());
    }
    (median(times), text)
}

fn makedumpfile(path: &Path) -> Option<(Duration, String)> {
    let out = std::env::temp_dir().join(format!("kdrill-bench-dmesg-{}", std::process::id()));
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let _ = std::fs::remove_file(&out);
        let t = Instant::now();
        let status = Command::new("makedumpfile")
            .arg("--dump-dmesg")
            .arg(path)
            .arg(&out)
            .output()
            .ok()?;
        times.push(t.elapsed());
        if !status.status.success() {
            eprintln!(
                "makedumpfile --dump-dmesg failed: {}",
                String::from_utf8_lossy(&status.stderr).trim()
            );
            return None;
        }
    }
    let text = std::fs::read_to_string(&out).ok()?;
    let _ = std::fs::remove_file(&out);
    Some((median(times), text))
}

fn main() {
    match std::env::var_os("KDRILL_BENCH_DUMP") {
        Some(path) => {
            let path = Path::new(&path);
            let (ours, text) = native(path);
            println!("kdrill-vmcore: {ours:?} (median of {RUNS})");
            match makedumpfile(path) {
                Some((theirs, their_text)) => {
                    println!("makedumpfile --dump-dmesg: {theirs:?} (median of {RUNS})");
                    println!(
                        "ratio: {:.1}x faster; output {}",
                        theirs.as_secs_f64() / ours.as_secs_f64(),
                        if text == their_text {
                            "identical"
                        } else {
                            "DIFFERS"
                        }
                    );
                }
                None => println!("makedumpfile: not run (missing or failed), no ratio"),
            }
        }
        None => {
            let k = synth::kernel(&synth::sample_records(2000), false);
            let bytes = synth::kdump_with(&k, Compression::Zlib, &[]);
            let mut times = Vec::new();
            for _ in 0..RUNS {
                let t = Instant::now();
                let dump = Vmcore::from_source(bytes.clone()).unwrap();
                let n = format_dmesg(&dump.dmesg_records().unwrap()).len();
                times.push(t.elapsed());
                assert!(n > 0);
            }
            println!(
                "synthetic kdump-compressed dump: {:?} (median of {RUNS}); set KDRILL_BENCH_DUMP for a ratio against makedumpfile",
                median(times)
            );
        }
    }
}
