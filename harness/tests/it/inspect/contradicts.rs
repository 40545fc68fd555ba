//! `kdrill inspect` on a kdump-compressed file that contradicts itself: an error (exit 2, JSON
//! kind `inconsistent`) naming the invariant and the offset, never a log read from the wrong
//! pages with exit 0, nor a false "cut short".

use std::path::PathBuf;

use super::kdrill;

/// vmcore's Debian 7.2 NMI dump (LZO), with `mutate` applied, in a file.
fn seven_two(mutate: impl Fn(&mut [u8])) -> (tempfile::TempDir, PathBuf, usize) {
    let xz = include_bytes!("../../../../vmcore/tests/fixtures/debian-7.2-nmi.deep.kdump.xz");
    let mut bytes = Vec::new();
    lzma_rs::xz_decompress(&mut &xz[..], &mut bytes).unwrap();
    let field = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let table = 4096 * (1 + field(432) + field(436));
    mutate(&mut bytes);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dump.202612062128");
    std::fs::write(&path, bytes).unwrap();
    (dir, path, table)
}

/// A full byte of the 2nd bitmap made octal 11 (`cmp -l`: `46771 377 11`).
fn bitmap_byte(b: &mut [u8]) {
    assert_eq!(b[46770], 0xff);
    b[46770] = 0o11;
}

#[test]
fn a_changed_bitmap_byte_is_an_error_in_every_view_not_a_log_of_nul_bytes() {
    // Before: exit 0, "pages: 3671 dumped", "panic: none in the log", and --dmesg exited 0
    // with 448 records (422 in the dump), 117 of them NUL bytes.
    let (_dir, path, table) = seven_two(bitmap_byte);
    for view in [&[][..], &["--dmesg"], &["--bt"]] {
        let out = kdrill()
            .arg("inspect")
            .args(view)
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{view:?}: {err}");
        assert!(out.stdout.is_empty(), "{view:?}: printed {:?}", out.stdout);
        assert!(
            err.contains(&format!(
                "corrupt dump: \"the page descriptor table ends where the page data begins\" \
                 does not hold at offset {table:#x}: the 2nd bitmap marks 3671 pages dumped"
            )),
            "{view:?}: {err}"
        );
    }
    let out = kdrill()
        .args(["inspect", "--format", "json"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "inconsistent", "{v}");
}

#[test]
fn a_descriptor_pointing_past_the_end_of_a_whole_file_is_no_cut() {
    // Before: "truncated: yes: the file was cut short", a false reason, exit 1.
    let (_dir, path, table) = seven_two(|b| {
        let len = b.len() as u64;
        let t = 4096 * 19;
        b[t + 24 * 40..t + 24 * 40 + 8].copy_from_slice(&(len + 4096).to_le_bytes());
    });
    let out = kdrill().arg("inspect").arg(&path).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("cut short"), "{err}");
    assert!(
        err.contains(&format!(
            "\"each page's data starts where the previous page's ends\" does not hold at offset \
             {:#x}: descriptor 40 points at ",
            table + 24 * 40
        )),
        "{err}"
    );
}
