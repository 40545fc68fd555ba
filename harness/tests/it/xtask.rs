//! `cargo xtask verify` from the outside, on the nextest path: `--root` chooses the project the
//! matrix tests read, and a selection whose every case is a declared skip passes with SKIP rows.

use std::process::Command;

use crate::support::workspace;

#[test]
fn xtask_verify_honours_root_and_passes_a_declared_skip() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("project");
    std::fs::create_dir_all(root.join("kernels")).unwrap();
    std::fs::create_dir_all(root.join("scenarios")).unwrap();
    // A scenario and a kernel that exist only in this root: if `--root` were ignored, the matrix
    // binary would read the workspace's folders, know neither, and exit 2.
    std::fs::write(
        root.join("kernels/mine.yaml"),
        "id: mine\nwhy: test\nsource:\n  kind: local\n  vmlinuz: bzImage\n  modules: lib/modules/9.9\n\
         skip:\n  only-here: \"this route cannot work on this kernel (test)\"\n",
    )
    .unwrap();
    std::fs::write(
        root.join("scenarios/only-here.yaml"),
        "id: only-here\ndescription: d\ntrigger: sysrq\nexpect:\n  log: [x]\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let run = Command::new(env!("CARGO"))
        .args([
            "xtask",
            "verify",
            "--kernel",
            "mine",
            "--scenario",
            "only-here",
            "--root",
        ])
        .arg(&root)
        .env("KDRILL_OUT", &out)
        .current_dir(workspace())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("SKIP mine/only-here"), "{stdout}");
    assert!(stdout.contains("0 passed, 0 failed, 1 skipped"), "{stdout}");
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(
        summary.contains("- **SKIP** mine/only-here: this route cannot work on this kernel (test)"),
        "{summary}"
    );
}
