//! `cargo xtask verify` from the outside, on the nextest path: `--root` chooses the project the
//! matrix tests read, a selection whose every case is a declared skip passes with SKIP rows (and
//! installs no host packages), and `--format json` prints JSON lines after nextest.

use std::process::Command;

use crate::support::workspace;

/// A `--root` folder with a kernel and a scenario of its own, the kernel declaring the scenario
/// impossible: selecting the pair boots nothing and installs nothing.
fn skip_project(dir: &std::path::Path) -> std::path::PathBuf {
    let root = dir.join("project");
    std::fs::create_dir_all(root.join("kernels")).unwrap();
    std::fs::create_dir_all(root.join("scenarios")).unwrap();
    // A scenario and a kernel that exist only in this root: if `--root` were ignored, the matrix
    // binary would read the workspace's folders, know neither, and exit 3. Every case selected
    // is a declared skip, so xtask installs no host packages for it.
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
    root
}

#[test]
fn xtask_verify_honours_root_and_passes_a_declared_skip() {
    let dir = tempfile::tempdir().unwrap();
    let root = skip_project(dir.path());
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
    xtask_verify_json_prints_the_cases_then_the_summary_after_nextest();
}

/// `--format json` through nextest: after nextest, one `kdrill-verify-case/1` line per case and
/// the `kdrill-verify-summary/1` line, and nothing else on stdout (nextest's lines go to stderr).
/// (Called from the test above: two xtask runs at once would share the target folder's JUnit.)
fn xtask_verify_json_prints_the_cases_then_the_summary_after_nextest() {
    let dir = tempfile::tempdir().unwrap();
    let root = skip_project(dir.path());
    let run = Command::new(env!("CARGO"))
        .args([
            "xtask",
            "verify",
            "--kernel",
            "mine",
            "--scenario",
            "only-here",
            "--format",
            "json",
            "--root",
        ])
        .arg(&root)
        .env("KDRILL_OUT", dir.path().join("out"))
        .current_dir(workspace())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stdout}\n{stderr}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(lines[0]["schema"], "kdrill-verify-case/1");
    assert_eq!(lines[0]["id"], "mine/only-here");
    assert_eq!(lines[0]["verdict"], "SKIP");
    assert_eq!(
        lines[0]["reason"],
        "this route cannot work on this kernel (test)"
    );
    assert_eq!(lines[1]["schema"], "kdrill-verify-summary/1");
    assert_eq!(lines[1]["skipped"], 1);
    assert_eq!(lines[1]["exit_code"], 0);
    assert!(stderr.contains("through nextest"), "{stderr}");
}
