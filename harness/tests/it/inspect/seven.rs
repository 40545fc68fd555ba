//! `kdrill inspect` on Linux 7.x dumps (vmcore's compacted Debian 7.3.4 SysRq dump): the 7.1
//! ORC format read, and a dump whose ORC format kdrill does not know, where every view but
//! the backtraces still reads and a backtrace is a partial answer naming the format.

use std::path::PathBuf;

use super::{kdrill, stdout_of};

/// The 7.1+ `.orc_header` hash, as vmcore's fixture holds it (pages kept uncompressed).
const HASH_7_1: [u8; 20] = [
    0x13, 0x7c, 0x36, 0xad, 0x76, 0x27, 0xc4, 0xdd, 0x55, 0x93, 0x21, 0x76, 0xbb, 0x0e, 0xcd, 0xbd,
    0x50, 0x41, 0xfc, 0x82,
];

/// The 7.3 fixture in a file, with its ORC header hash replaced by `hash` when given.
fn seven_three(hash: Option<[u8; 20]>) -> (tempfile::TempDir, PathBuf) {
    let xz = include_bytes!("../../../../vmcore/tests/fixtures/debian-7.3-sysrq.deep.kdump.xz");
    let mut bytes = Vec::new();
    lzma_rs::xz_decompress(&mut &xz[..], &mut bytes).unwrap();
    if let Some(hash) = hash {
        let at = bytes
            .windows(20)
            .position(|w| w == HASH_7_1)
            .expect("the fixture holds the 7.1 hash");
        bytes[at..at + 20].copy_from_slice(&hash);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vmcore");
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

#[test]
fn a_7_3_dump_unwinds_and_lists_its_modules() {
    let (_dir, path) = seven_three(None);
    // The module list is whole: exit 0.
    let modules = stdout_of(kdrill().arg("inspect").arg(&path).arg("--modules"), 0);
    assert!(
        modules.contains("  ext4                     0xffffffffc0616000   1302528\n"),
        "{modules}"
    );
    let bt = stdout_of(kdrill().arg("inspect").arg(&path).arg("--bt"), 0);
    for want in [
        "backtrace: CPU 0 (crashed)  pid 124  comm sh",
        " #3  sysrq_handle_crash+0x1a/0x20 ",
        " #10 entry_SYSCALL_64_after_hwframe+0x76/0x7e ",
        "  -- entered from user mode: ip 0x47b7a0",
    ] {
        assert!(bt.contains(want), "missing {want:?} in\n{bt}");
    }
}

#[test]
fn an_unknown_orc_format_leaves_modules_tasks_and_registers_readable() {
    let (_dir, path) = seven_three(Some([0xab; 20]));
    let modules = stdout_of(kdrill().arg("inspect").arg(&path).arg("--modules"), 0);
    assert!(modules.contains("  virtio_blk "), "{modules}");
    assert!(!modules.contains("ORC"), "{modules}");
    let regs = stdout_of(
        kdrill()
            .arg("inspect")
            .arg(&path)
            .args(["--regs", "crashed"]),
        0,
    );
    assert!(regs.contains("     rip: ffffffff986ba7bd"), "{regs}");
    // The task list is partial anyway: makedumpfile 1.7.2 dropped some task pages.
    let tasks = stdout_of(kdrill().arg("inspect").arg(&path).arg("--tasks"), 1);
    assert!(
        tasks.contains("      124       1    0  R   sh\n"),
        "{tasks}"
    );
    // The backtrace: the CPU's own frame, then what is missing; exit 1, a partial answer.
    let bt = stdout_of(kdrill().arg("inspect").arg(&path).arg("--bt"), 1);
    assert!(bt.contains(" #0  __crash_kexec+0x13d/0x150 "), "{bt}");
    assert!(!bt.contains(" #1 "), "{bt}");
    assert!(
        bt.contains(
            "  -- partial: cannot unwind past this frame: ORC format with header hash abababababababababababababababababababab (kdrill knows those of 6.3, 6.4-7.0 and 7.1-7.3)"
        ),
        "{bt}"
    );
    let json = stdout_of(
        kdrill()
            .arg("inspect")
            .arg(&path)
            .args(["--bt", "--modules", "--format", "json"]),
        1,
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["backtraces"][0]["end"]["kind"], "unsupported");
    assert!(v["backtraces"][0]["end"]["reason"]
        .as_str()
        .unwrap()
        .contains("header hash abab"));
    assert_eq!(v["modules"]["modules"].as_array().unwrap().len(), 5);
}

/// The 7.x fixture `xz` in a file.
fn unpacked(xz: &[u8], dir: &tempfile::TempDir) -> PathBuf {
    let mut bytes = Vec::new();
    lzma_rs::xz_decompress(&mut &xz[..], &mut bytes).unwrap();
    let path = dir.path().join("vmcore");
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn the_sysrq_and_nmi_expectations_hold_on_the_7_x_dumps() {
    use kdrill::dumpcheck::{deep, expect, log};
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    for (id, xz) in [
        (
            "sysrq",
            &include_bytes!("../../../../vmcore/tests/fixtures/debian-7.3-sysrq.deep.kdump.xz")[..],
        ),
        (
            "nmi",
            &include_bytes!("../../../../vmcore/tests/fixtures/debian-7.2-nmi.deep.kdump.xz")[..],
        ),
    ] {
        let scenario = kdrill::spec::scenario::load(&root, id).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = unpacked(xz, &dir);
        let text = log::read_native(&path, &dir.path().join("log.txt")).unwrap();
        let unmet: Vec<_> = expect::check_log(&text, &scenario.expect.log)
            .into_iter()
            .filter(|(_, line)| line.is_none())
            .collect();
        assert!(unmet.is_empty(), "{id}: log lines not found: {unmet:?}");
        assert!(expect::check_absent(&[("log", &text)], &scenario.expect.absent).is_empty());
        let mut seen = deep::read(&path, &text).unwrap();
        let errors = deep::check(&scenario, &mut seen);
        assert!(errors.is_empty(), "{id}: {errors:?}\n{seen:?}");
        // Every backtrace expectation matched a frame: the walk reached the bottom.
        assert_eq!(
            seen.frame_matches.len(),
            scenario.expect.backtrace.len(),
            "{id}"
        );
        assert!(
            seen.end.starts_with("entered from user mode"),
            "{id}: {}",
            seen.end
        );
        if id == "nmi" {
            // From 7.3 nmi_panic() calls vpanic() itself (the 7.3.4 dump's nmi_panic.cold is
            // `call vpanic`): the same walk without its panic frame still meets the scenario.
            seen.frames.retain(|f| !f.starts_with("panic+"));
            assert!(seen.frames.iter().any(|f| f.starts_with("vpanic+")));
            let errors = deep::check(&scenario, &mut seen);
            assert!(errors.is_empty(), "7.3-like nmi: {errors:?}\n{seen:?}");
        }
    }
}
