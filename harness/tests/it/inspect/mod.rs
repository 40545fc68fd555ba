//! `kdrill inspect` on synthetic dumps written to a temporary folder, and on the compacted
//! real dumps of vmcore's fixtures; `input.rs`: what a user names (folders, standard input,
//! compressed files, flags first) and the exit codes; `json.rs`: the JSON document; `seven.rs`:
//! Linux 7.x dumps and an ORC format kdrill does not know.

mod contradicts;
mod input;
mod json;
mod seven;

use std::path::PathBuf;

use assert_cmd::Command;
use kdrill_vmcore::synth;
use kdrill_vmcore::{format_dmesg, Compression};

fn kdrill() -> Command {
    Command::cargo_bin("kdrill").unwrap()
}

pub(crate) struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    kernel: synth::Kernel,
}

/// Writes a dump of a synthetic kernel; `wrap` picks the container.
pub(crate) fn fixture(wrap: impl Fn(&synth::Kernel) -> Vec<u8>) -> Fixture {
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

pub(crate) fn stdout_of(cmd: &mut Command, code: i32) -> String {
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
    assert_eq!(v["schema"], "kdrill-inspect/1");
    assert_eq!(v["info"]["format"], "kdump-compressed");
    assert_eq!(v["info"]["compression"], "zstd");
    assert_eq!(v["info"]["kernel_release"], "6.1.0-synthetic");
    let records = v["records"].as_array().unwrap();
    assert_eq!(records.len(), f.kernel.expected.len());
    assert_eq!(v["log_records"], records.len());
    let first = &f.kernel.expected[0];
    assert_eq!(records[0]["seq"], first.seq);
    // A decimal string: nanoseconds pass 2^53 after 104 days of uptime.
    assert_eq!(records[0]["timestamp_ns"], first.timestamp_ns.to_string());
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
    // The dump opened and its header was read: a partial answer in the log view too.
    let out = kdrill()
        .args(["inspect", "--dmesg"])
        .arg(&f.path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(out.stdout.is_empty());
    assert!(
        err.starts_with("kdrill: cannot read the kernel log in ")
            && err.contains("page 0xc0 (physical address 0xc0000) was excluded"),
        "{err}"
    );
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
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is a FIFO (named pipe), not a dump file"),
        "{err}"
    );
    assert!(
        err.contains("pass the stream on standard input (`kdrill inspect - < "),
        "{err}"
    );
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
    assert!(
        out.contains("log records:    "),
        "the log still reads: {out}"
    );
    // Every view of the same file: a partial read (1), the loss said in a sentence.
    for view in [&["--dmesg"][..], &["--bt"], &["--format", "json"]] {
        let out = kdrill()
            .arg("inspect")
            .args(view)
            .arg(&f.path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{view:?}: {err}");
        if view[0] != "--format" {
            assert!(
                err.contains("kdrill: warning: the file was cut short: the data of ")
                    && err.contains(" dumped pages lies past its end, so this is a partial answer"),
                "{view:?}: {err}"
            );
        }
        assert!(!err.contains("kdrill: yes:"), "{view:?}: {err}");
    }
    let log = stdout_of(kdrill().args(["inspect", "--dmesg"]).arg(&f.path), 1);
    assert_eq!(log, format_dmesg(&f.kernel.expected));
}

#[test]
fn a_cut_short_kdump_without_its_log_is_partial_in_every_view() {
    let f = fixture(|k| synth::kdump_with(k, Compression::Zlib, &[]));
    let bytes = std::fs::read(&f.path).unwrap();
    // Cut just after the first page's data: the headers read, the log's pages are gone.
    let field = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let descriptors = 4096 * (1 + field(432) + field(436));
    let first_data = u64::from_le_bytes(bytes[descriptors..descriptors + 8].try_into().unwrap());
    let first_size = field(descriptors + 8);
    std::fs::write(&f.path, &bytes[..first_data as usize + first_size]).unwrap();
    let summary = stdout_of(kdrill().arg("inspect").arg(&f.path), 1);
    assert!(
        summary.contains("kernel log:     unreadable: "),
        "{summary}"
    );
    assert!(summary.contains("truncated:      yes: "), "{summary}");
    let out = kdrill()
        .args(["inspect", "--dmesg"])
        .arg(&f.path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("kdrill: cannot read the kernel log in "),
        "{err}"
    );
    assert!(
        err.contains("kdrill: warning: the file was cut short"),
        "{err}"
    );
    let json = stdout_of(
        kdrill()
            .args(["inspect", "--dmesg", "--format", "json"])
            .arg(&f.path),
        1,
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(v["log_error"].as_str().unwrap().contains("dump truncated"));
    assert_eq!(v["info"]["truncated"], true);
}

/// The real Debian 6.1 oops dump, compacted to what deep reading needs (vmcore's fixture).
pub(crate) fn real_oops_bytes() -> Vec<u8> {
    let xz = include_bytes!("../../../../vmcore/tests/fixtures/debian-6.1-oops.deep.kdump.xz");
    let mut bytes = Vec::new();
    lzma_rs::xz_decompress(&mut &xz[..], &mut bytes).unwrap();
    bytes
}

/// [`real_oops_bytes`] in a file of its own.
pub(crate) fn real_oops() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vmcore");
    std::fs::write(&path, real_oops_bytes()).unwrap();
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

#[test]
fn an_incomplete_dump_is_a_partial_answer_too() {
    // makedumpfile ran out of space after 200 pages and said so in the header; the log's
    // pages were written before.
    let zlib = |p: &[u8]| synth::compress_page(Compression::Zlib, p);
    let f = fixture(|k| synth::kdump_incomplete(k, &zlib, 200));
    let summary = stdout_of(kdrill().arg("inspect").arg(&f.path), 1);
    assert!(
        summary.contains("incomplete:     yes: the writer ran out of space\n"),
        "{summary}"
    );
    let out = kdrill()
        .args(["inspect", "--dmesg"])
        .arg(&f.path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format_dmesg(&f.kernel.expected)
    );
    assert!(
        err.starts_with(
            "kdrill: warning: the dump is incomplete: its writer ran out of space and "
        ) && err.contains(" pages are missing, so this is a partial answer"),
        "{err}"
    );
}
