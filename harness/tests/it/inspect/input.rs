//! What a user naturally gives `kdrill inspect`: flags before the dump, a crash folder,
//! standard input, a compressed file, a CPU the dump lacks; and the exit code of each.

use std::path::Path;

use kdrill_vmcore::synth;
use kdrill_vmcore::Compression;

use super::{fixture, kdrill, real_oops, real_oops_bytes, stdout_of};

fn stderr_of(cmd: &mut assert_cmd::Command, code: i32) -> String {
    let out = cmd.output().unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    err
}

#[test]
fn flags_may_come_before_the_dump() {
    let (_dir, path) = real_oops();
    let after = stdout_of(kdrill().arg("inspect").arg(&path).arg("--bt"), 0);
    assert!(after.starts_with("backtrace: CPU 1 (crashed)  pid 124  comm sh"));
    // As crash and makedumpfile users write it: the dump is no CPU selector.
    let before = stdout_of(kdrill().args(["inspect", "--bt"]).arg(&path), 0);
    assert_eq!(before, after);
    let regs = stdout_of(kdrill().args(["inspect", "--regs"]).arg(&path), 0);
    assert!(
        regs.contains("  CPU 0 (note 0, pid 0, CPU by crash_notes)"),
        "{regs}"
    );
    assert!(
        regs.contains("  CPU 1 (note 1, pid 124, CPU by crash_notes)"),
        "{regs}"
    );
    let both = stdout_of(kdrill().args(["inspect", "--bt", "--tasks"]).arg(&path), 0);
    assert!(
        both.starts_with(&after) && both.contains("tasks:"),
        "{both}"
    );
    for args in [&["--bt=all"][..], &["--bt", "all"]] {
        let all = stdout_of(kdrill().arg("inspect").args(args).arg(&path), 0);
        assert!(
            all.contains("backtrace: CPU 0  pid 0  comm swapper/0"),
            "{all}"
        );
    }
    let one = stdout_of(kdrill().args(["inspect", "--regs", "1"]).arg(&path), 0);
    assert!(
        one.contains("  CPU 1 (note 1") && !one.contains("  CPU 0 "),
        "{one}"
    );
    // A typo is still a usage error, not a file to open.
    let err = stderr_of(kdrill().args(["inspect", "--bt", "al"]).arg(&path), 64);
    assert!(
        err.contains("`al` is no CPU selector (crashed, all or a CPU number) and no file"),
        "{err}"
    );
    let err = stderr_of(kdrill().args(["inspect", "--bt"]).arg(&path).arg(&path), 64);
    assert!(err.contains("several dumps given"), "{err}");
    let err = stderr_of(kdrill().args(["inspect", "--bt"]), 64);
    assert!(err.contains("no dump given"), "{err}");
}

#[test]
fn help_lists_every_cpu_selector_and_the_exit_codes() {
    let help = stdout_of(kdrill().args(["inspect", "--help"]), 0);
    assert!(help.contains("--bt [<crashed|all|N>]"), "{help}");
    assert!(help.contains("--regs [<crashed|all|N>]"), "{help}");
    assert!(help.contains("`crashed` (the default"), "{help}");
    assert!(help.contains("kdrill inspect --bt DUMP"), "{help}");
    assert!(help.contains("- for standard input"), "{help}");
    assert!(help.contains("Exit codes: 0 "), "{help}");
}

#[test]
fn a_cpu_the_dump_lacks_is_a_usage_error() {
    let (_dir, path) = real_oops();
    for flag in ["--bt", "--regs"] {
        let err = stderr_of(kdrill().arg("inspect").arg(&path).args([flag, "5"]), 64);
        assert_eq!(err, "kdrill: error: no CPU 5; this dump has CPUs 0-1\n");
        let out = kdrill()
            .args(["inspect", flag, "5", "--format", "json"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["schema"], "kdrill-error/1");
        assert_eq!(
            (v["kind"].as_str(), v["exit_code"].as_i64()),
            (Some("usage"), Some(64))
        );
        assert_eq!(v["error"], "no CPU 5; this dump has CPUs 0-1");
    }
}

/// A folder of `files`, each a copy of `dump`.
fn folder(root: &Path, name: &str, files: &[&str], dump: &[u8]) -> std::path::PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for f in files {
        std::fs::write(dir.join(f), dump).unwrap();
    }
    dir
}

#[test]
fn a_crash_folder_opens_the_dump_inside_and_says_which() {
    let f = fixture(|k| synth::flatten(&synth::kdump_with(k, Compression::Zlib, &[]), 4096));
    let dump = std::fs::read(&f.path).unwrap();
    let root = tempfile::tempdir().unwrap();
    let crash = root.path().join("crash");
    // kdump-tools: dump.<stamp> beside dmesg.<stamp> (the log is no dump).
    let tools = folder(&crash, "202612061200", &["dump.202612061200"], &dump);
    std::fs::write(tools.join("dmesg.202612061200"), "[ 0.000000] log\n").unwrap();
    let out = kdrill().arg("inspect").arg(&tools).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let file = tools.join("dump.202612061200");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.starts_with(&format!("dump:           {}\n", file.display())),
        "{stdout}"
    );
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        format!(
            "kdrill: reading {} (the dump in the folder {})\n",
            file.display(),
            tools.display()
        )
    );
    let log = stdout_of(kdrill().args(["inspect", "--dmesg"]).arg(&tools), 0);
    assert_eq!(log, kdrill_vmcore::format_dmesg(&f.kernel.expected));
    // kdump-utils (RHEL): vmcore; makedumpfile still writing: dump-incomplete.
    for (name, file) in [
        ("10.0.0.1-2026-12-06-12:00:00", "vmcore"),
        ("x", "dump-incomplete"),
    ] {
        let dir = folder(root.path(), name, &[file], &dump);
        let json = stdout_of(kdrill().args(["inspect", "--format", "json"]).arg(&dir), 0);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["dump"], dir.join(file).display().to_string());
    }
    // Several dumps: name them, read none.
    let two = folder(root.path(), "two", &["vmcore", "dump.1"], &dump);
    let err = stderr_of(kdrill().arg("inspect").arg(&two), 64);
    assert!(
        err.contains("holds several dumps (dump.1, vmcore): name the one to read"),
        "{err}"
    );
    // /var/crash itself: its dump folders.
    let err = stderr_of(kdrill().arg("inspect").arg(&crash), 64);
    assert!(
        err.contains("holds dump folders, not a dump: name one (202612061200)"),
        "{err}"
    );
    let empty = folder(root.path(), "empty", &[], &dump);
    std::fs::write(empty.join("notes.txt"), "x").unwrap();
    let err = stderr_of(kdrill().arg("inspect").arg(&empty), 2);
    assert!(
        err.contains("holds no crash dump: kdrill looks there for dump.<stamp>"),
        "{err}"
    );
}

#[test]
fn a_compressed_dump_says_how_to_decompress_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vmcore.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &real_oops_bytes()[..65536]).unwrap();
    std::fs::write(&path, gz.finish().unwrap()).unwrap();
    let p = path.display();
    let err = stderr_of(kdrill().arg("inspect").arg(&path), 2);
    assert_eq!(
        err,
        format!(
            "kdrill: error: cannot read the crash dump {p}: gzip: decompress first \
             (`gunzip -k {p}`, then `kdrill inspect {}`), or stream it (`zcat {p} | kdrill inspect -`)\n",
            dir.path().join("vmcore").display()
        )
    );
    let xz = dir.path().join("dump.1");
    std::fs::write(&xz, b"\xfd7zXZ\0 the rest").unwrap();
    let err = stderr_of(kdrill().arg("inspect").arg(&xz), 2);
    assert!(err.contains(": xz: decompress first (`xzcat "), "{err}");
    let err = stderr_of(
        kdrill().args(["inspect", "-"]).pipe_stdin(&path).unwrap(),
        2,
    );
    assert!(
        err.contains("on standard input: gzip: decompress it in the pipe first (`… | zcat | kdrill inspect -`)"),
        "{err}"
    );
}

#[test]
fn standard_input_is_read_from_a_file_or_saved_from_a_pipe() {
    let f = fixture(|k| synth::kdump_with(k, Compression::Zlib, &[]));
    let expected = kdrill_vmcore::format_dmesg(&f.kernel.expected);
    // A file on stdin (`< vmcore`) is read in place.
    let out = kdrill::host::process::run_with_input(
        std::process::Command::new(assert_cmd::cargo::cargo_bin("kdrill"))
            .args(["inspect", "--dmesg", "-"]),
        std::fs::File::open(&f.path).unwrap().into(),
        std::time::Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A pipe is saved to a temporary file first, and says so.
    let out = kdrill()
        .args(["inspect", "--dmesg", "-"])
        .write_stdin(std::fs::read(&f.path).unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("kdrill: saving standard input to a temporary file in ")
            && err.contains("(the reader needs random access)"),
        "{err}"
    );
    // `--bt -`: the dump on standard input; an empty one is no dump.
    let out = stdout_of(
        kdrill()
            .args(["inspect", "--bt", "-"])
            .write_stdin(b"" as &[u8]),
        2,
    );
    assert!(out.is_empty());
}

#[test]
fn failures_exit_by_the_table_and_still_answer_in_json() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "just some text, not a vmcore").unwrap();
    let missing = dir.path().join("missing");
    for (path, code, kind, says) in [
        (&missing, 3, "error", "No such file or directory"),
        (
            &text,
            2,
            "not-a-dump",
            "not a crash dump: the file starts with",
        ),
    ] {
        let err = stderr_of(kdrill().arg("inspect").arg(path), code);
        assert!(err.contains(says), "{err}");
        let out = kdrill()
            .args(["inspect", "--format", "json"])
            .arg(path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(code));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["schema"], "kdrill-error/1");
        assert_eq!(v["command"], "inspect");
        assert_eq!(
            (v["kind"].as_str(), v["exit_code"].as_i64()),
            (Some(kind), Some(code as i64))
        );
        assert!(v["error"].as_str().unwrap().contains(says), "{v}");
    }
}

#[test]
fn a_qemu_dump_gives_each_cpu_the_pid_of_its_task() {
    // The real oops with its notes made QEMU's: pr_pid = vCPU index + 1.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qemu.kdump");
    std::fs::write(&path, synth::with_qemu_notes(&real_oops_bytes()).unwrap()).unwrap();
    let out = stdout_of(
        kdrill()
            .arg("inspect")
            .arg(&path)
            .args(["--bt=all", "--tasks", "--regs"]),
        0,
    );
    for want in [
        "backtrace: CPU 0  pid 0  comm swapper/0",
        "backtrace: CPU 1 (crashed)  pid 124  comm sh",
        "        0       0    0  R   [swapper/0]\n",
        "  CPU 0 (note 0, CPU by QEMU's vCPU order)\n",
        "  CPU 1 (note 1, CPU by QEMU's vCPU order)\n",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
    }
    assert!(!out.contains("pid 1  comm swapper/0"), "{out}");
}
