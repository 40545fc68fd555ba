//! `kdrill inspect` on synthetic dumps written to a temporary folder.

use std::path::PathBuf;

use assert_cmd::Command;
use kdrill_vmcore::synth;
use kdrill_vmcore::{format_dmesg, Compression};

fn kdrill() -> Command {
    Command::cargo_bin("kdrill").unwrap()
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    kernel: synth::Kernel,
}

/// Writes a dump of a synthetic kernel; `wrap` picks the container.
fn fixture(wrap: impl Fn(&synth::Kernel) -> Vec<u8>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let kernel = synth::kernel(&synth::sample_records(80), false);
    let path = dir.path().join("vmcore");
    std::fs::write(&path, wrap(&kernel)).unwrap();
    Fixture {
        _dir: dir,
        path,
        kernel,
    }
}

fn stdout_of(cmd: &mut Command, code: i32) -> String {
    let out = cmd.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn summary_names_format_kernel_pages_and_panic() {
    let excluded: Vec<u64> = synth::SPARE_PAGES.collect();
    let f = fixture(|k| synth::kdump_with(k, Compression::Zlib, &excluded));
    let out = stdout_of(kdrill().arg("inspect").arg(&f.path), 0);
    for line in [
        "format:         kdump-compressed\n",
        "compression:    zlib\n",
        "kernel release: 6.1.0-synthetic\n",
        "crash time:     2025-11-26 15:13:20 UTC (1764170000)\n",
        "machine:        x86_64\n",
        "cpus:           2\n",
        "page size:      4096\n",
        "pages:          217 dumped, 38 excluded, 0 incomplete\n",
        "dump level:     31\n",
        "panic:          Kernel panic - not syncing: synthetic crash 73\n",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
}

#[test]
fn dmesg_prints_exactly_the_makedumpfile_text() {
    let f = fixture(synth::elf);
    let out = stdout_of(kdrill().args(["inspect", "--dmesg"]).arg(&f.path), 0);
    assert_eq!(out, format_dmesg(&f.kernel.expected));
    assert!(
        out.contains("\\xffffffc3\\xffffffa9"),
        "escapes as makedumpfile does"
    );
}

#[test]
fn flattened_dump_is_read_directly() {
    let f = fixture(|k| synth::flatten(&synth::kdump_with(k, Compression::Snappy, &[]), 4096));
    let out = stdout_of(kdrill().arg("inspect").arg(&f.path), 0);
    assert!(
        out.contains("format:         kdump-compressed (flattened)\n"),
        "{out}"
    );
    assert!(out.contains("compression:    snappy\n"), "{out}");
    let log = stdout_of(kdrill().args(["inspect", "--dmesg"]).arg(&f.path), 0);
    assert_eq!(log, format_dmesg(&f.kernel.expected));
}

#[test]
fn json_carries_info_and_records() {
    let f = fixture(|k| synth::kdump_with(k, Compression::Zstd, &[]));
    let out = stdout_of(
        kdrill()
            .args(["inspect", "--dmesg", "--format", "json"])
            .arg(&f.path),
        0,
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["info"]["format"], "kdump-compressed");
    assert_eq!(v["info"]["compression"], "zstd");
    assert_eq!(v["info"]["kernel_release"], "6.1.0-synthetic");
    let records = v["records"].as_array().unwrap();
    assert_eq!(records.len(), f.kernel.expected.len());
    assert_eq!(v["log_records"], records.len());
    let first = &f.kernel.expected[0];
    assert_eq!(records[0]["seq"], first.seq);
    assert_eq!(records[0]["timestamp_ns"], first.timestamp_ns);
    assert_eq!(records[0]["level"], first.level);
    assert_eq!(records[0]["caller_id"], first.caller_id.unwrap());
    assert_eq!(records[0]["text"], first.text_lossy());
    assert!(v["panic_message"]
        .as_str()
        .unwrap()
        .starts_with("Kernel panic - not syncing:"));
    assert!(v["log_error"].is_null());
}

#[test]
fn not_a_dump_fails_with_the_magic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "just some text, not a vmcore").unwrap();
    let out = kdrill().arg("inspect").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a crash dump: the file starts with \"just some text, \""),
        "{err}"
    );
}

#[test]
fn truncated_dump_names_the_offset() {
    let f = fixture(synth::elf);
    let bytes = std::fs::read(&f.path).unwrap();
    std::fs::write(&f.path, &bytes[..100]).unwrap();
    let out = kdrill().arg("inspect").arg(&f.path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("dump truncated: ELF program headers needs"),
        "{err}"
    );
    assert!(err.contains("the data ends at 0x64"), "{err}");
}

#[test]
fn unreadable_log_still_prints_metadata_and_exits_1() {
    // Exclude the page of the text ring: the header reads, the log does not.
    let f = fixture(|k| synth::kdump_with(k, Compression::Zlib, &[0xc0]));
    let out = stdout_of(kdrill().arg("inspect").arg(&f.path), 1);
    assert!(out.contains("kernel release: 6.1.0-synthetic\n"), "{out}");
    assert!(
        out.contains(
            "kernel log:     unreadable: page 0xc0 (physical address 0xc0000) was excluded"
        ),
        "{out}"
    );
    let out = kdrill()
        .args(["inspect", "--dmesg"])
        .arg(&f.path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_fifo_is_refused_at_once_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("vmcore.fifo");
    let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0, "mkfifo");
    let started = std::time::Instant::now();
    // The deadline kills a kdrill that blocks on the FIFO, so the test fails instead of hanging.
    let out = kdrill()
        .arg("inspect")
        .arg(&fifo)
        .timeout(std::time::Duration::from_secs(10))
        .output()
        .unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is a FIFO (named pipe), not a dump file"),
        "{err}"
    );
    assert!(err.contains("save the stream to a file first"), "{err}");
}

#[test]
fn a_cut_short_kdump_exits_1_stating_the_loss() {
    let f = fixture(|k| synth::kdump_with(k, Compression::Zlib, &[]));
    let bytes = std::fs::read(&f.path).unwrap();
    // The last pages (above the log) compress to a few dozen bytes each.
    std::fs::write(&f.path, &bytes[..bytes.len() - 200]).unwrap();
    let out = stdout_of(kdrill().arg("inspect").arg(&f.path), 1);
    assert!(
        out.contains("truncated:      yes: the file was cut short; the data of "),
        "{out}"
    );
    assert!(!out.contains(", 0 incomplete\n"), "{out}");
    let out = kdrill()
        .args(["inspect", "--dmesg"])
        .arg(&f.path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("partial answer"), "{err}");
}

/// The real Debian 6.1 oops dump, compacted to what deep reading needs (vmcore's fixture).
fn real_oops() -> (tempfile::TempDir, PathBuf) {
    let xz = include_bytes!("../../../vmcore/tests/fixtures/debian-6.1-oops.deep.kdump.xz");
    let mut bytes = Vec::new();
    lzma_rs::xz_decompress(&mut &xz[..], &mut bytes).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vmcore");
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

#[test]
fn bt_tasks_modules_regs_of_a_real_oops() {
    let (_dir, path) = real_oops();
    let out = stdout_of(
        kdrill()
            .arg("inspect")
            .arg(&path)
            .args(["--bt", "--tasks", "--modules", "--regs"]),
        0,
    );
    for want in [
        "backtrace: CPU 1 (crashed)  pid 124  comm sh",
        " #0  kdrill_oops+0x10/0x1c [crasher]",
        " #2  proc_reg_write+0x56/0xa0",
        "  -- entered from user mode: ip 0x47b7a0",
        "      124       1    1  R   sh\n",
        "        0       0    0  R   [swapper/0]\n",
        "  crasher                  0xffffffffc0612000     16384\n",
        "  CPU 1 (note 1, pid 124, CPU by crash_notes)",
        "     rip: ffffffffc0612128",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
    }
    let all = stdout_of(kdrill().arg("inspect").arg(&path).args(["--bt", "all"]), 0);
    assert!(
        all.contains("backtrace: CPU 0  pid 0  comm swapper/0"),
        "{all}"
    );
    let json = stdout_of(
        kdrill()
            .arg("inspect")
            .arg(&path)
            .args(["--bt", "--tasks", "--format", "json"]),
        0,
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["backtraces"][0]["cpu"], 1);
    assert_eq!(
        v["backtraces"][0]["frames"][0]["location"]["symbol"],
        "kdrill_oops"
    );
    assert_eq!(
        v["backtraces"][0]["frames"][0]["location"]["module"],
        "crasher"
    );
    assert_eq!(v["tasks"]["tasks"].as_array().unwrap().len(), 55);
    assert_eq!(v["log_records"], 403);
}

#[test]
fn bt_without_kallsyms_says_what_to_supply() {
    // The synthetic kernel exports no kallsyms tables, as kernels before 6.0.
    let f = fixture(synth::elf);
    let out = stdout_of(kdrill().arg("inspect").arg(&f.path).arg("--bt"), 1);
    assert!(
        out.contains("exports no kallsyms tables in VMCOREINFO")
            && out.contains("--system-map FILE or --vmlinux FILE"),
        "{out}"
    );
    let json = stdout_of(
        kdrill()
            .arg("inspect")
            .arg(&f.path)
            .args(["--tasks", "--format", "json"]),
        1,
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(v["tasks"]["error"]
        .as_str()
        .unwrap()
        .contains("no kernel symbols"));
}
