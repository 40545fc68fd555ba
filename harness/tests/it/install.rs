//! An installed `kdrill`, away from any checkout: `--version`, and `verify` from an empty folder
//! on the data compiled into the binary (the default case, a named set, `--root` adding and
//! replacing files, a run of declared skips with its evidence in `./kdrill-out`, the JSON lines
//! and the error document), and `check --calibration` finding the built-in calibrations.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::{kdrill, workspace};

/// The built binary copied out of the target folder, run from an empty folder with a home of
/// its own (so its cache is `$HOME/.cache/kdrill`) and nothing pointing at the checkout.
struct Installed {
    dir: tempfile::TempDir,
}

impl Installed {
    fn new() -> Installed {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["bin", "empty", "home"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let bin = dir.path().join("bin/kdrill");
        std::fs::copy(assert_cmd::cargo::cargo_bin("kdrill"), &bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        Installed { dir }
    }

    fn cwd(&self) -> PathBuf {
        self.dir.path().join("empty")
    }

    fn cache(&self) -> PathBuf {
        self.dir.path().join("home/.cache/kdrill")
    }

    fn kdrill(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::new(self.dir.path().join("bin/kdrill"));
        cmd.current_dir(self.cwd())
            .env("HOME", self.dir.path().join("home"));
        for var in [
            "KDRILL_ROOT",
            "KDRILL_OUT",
            "KDRILL_CACHE",
            "XDG_CACHE_HOME",
            "CARGO_TARGET_DIR",
            "KDRILL_BIN",
            "KDRILL_ARCHIVES",
            "KDRILL_MATRIX",
        ] {
            cmd.env_remove(var);
        }
        cmd
    }

    /// An operator's folder beside the empty one.
    fn ops(&self) -> PathBuf {
        self.dir.path().join("ops")
    }
}

fn stdout(out: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&out.get_output().stdout).into_owned()
}

fn stderr(out: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&out.get_output().stderr).into_owned()
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// What `build.rs` compiled in is the checkout's data, file for file, mode for mode.
#[test]
fn the_binary_carries_the_checkouts_data_file_for_file() {
    use kdrill::host::bundle::{embedded, Data};
    use kdrill::host::datafiles::{walk, DataKind};
    let on_disk = walk(&workspace()).unwrap();
    let rels: Vec<&str> = on_disk.iter().map(|f| f.rel.as_str()).collect();
    let ours: Vec<&str> = embedded().iter().map(|e| e.rel).collect();
    assert_eq!(ours, rels);
    for (file, e) in on_disk.iter().zip(embedded()) {
        match (&file.kind, &e.data) {
            (DataKind::File(path), Data::File(bytes)) => {
                assert_eq!(std::fs::read(path).unwrap(), *bytes, "{}", e.rel);
                assert_eq!(file.mode, e.mode, "{}", e.rel);
            }
            (DataKind::Link(target), Data::Link(t)) => assert_eq!(target, t, "{}", e.rel),
            _ => panic!("{}: a file on one side, a link on the other", e.rel),
        }
    }
    for needed in [
        "kernels/debian-6.1.yaml",
        "scenarios/sysrq.yaml",
        "scenarios/overlays/ssh/etc/default/kdump-tools",
        "images/minimal/init",
        "images/crasher/crasher.c",
        "images/debian-bookworm.yaml",
        "images/debian/finish",
        "images/debian/root/usr/lib/kdrill/guest",
        "matrix.yaml",
        "archives.yaml",
        "calibration/debian-6.1-minimal.yaml",
    ] {
        assert!(ours.contains(&needed), "{needed} is not compiled in");
    }
}

#[test]
fn version_names_the_commit_and_the_build_date() {
    let out = kdrill().arg("--version").assert().success();
    let text = stdout(&out);
    let shape = regex::Regex::new(
        r"^kdrill \d+\.\d+\.\d+ \(([0-9a-f]{7,}|unknown commit) \d{4}-\d{2}-\d{2}\)\n$",
    )
    .unwrap();
    assert!(shape.is_match(&text), "{text:?}");
}

#[test]
fn an_installed_kdrill_lists_the_default_case_from_an_empty_folder() {
    let kd = Installed::new();
    let out = kd.kdrill().args(["verify", "--list"]).assert().success();
    assert_eq!(stdout(&out), "debian-6.1/sysrq\n", "{}", stderr(&out));
    // The data went into the cache once, by content; nothing into the current folder.
    let roots: Vec<_> = std::fs::read_dir(kd.cache().join("roots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(roots.len(), 1, "{roots:?}");
    assert!(roots[0].len() == 16 && roots[0].chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(std::fs::read_dir(kd.cwd()).unwrap().count(), 0);
}

#[test]
fn an_installed_kdrill_lists_a_named_set_as_the_checkout_does() {
    let kd = Installed::new();
    let installed = kd
        .kdrill()
        .args(["verify", "--list", "--set", "nightly"])
        .assert()
        .success();
    let checkout = kdrill()
        .args(["verify", "--list", "--set", "nightly"])
        .current_dir(workspace())
        .assert()
        .success();
    assert!(
        stdout(&installed).lines().count() > 10,
        "{}",
        stdout(&installed)
    );
    assert_eq!(stdout(&installed), stdout(&checkout));
}

#[test]
fn root_adds_a_kernel_entry_and_replaces_a_scenario() {
    let kd = Installed::new();
    let ops = kd.ops();
    std::fs::create_dir_all(ops.join("kernels")).unwrap();
    std::fs::create_dir_all(ops.join("scenarios")).unwrap();
    let entry = std::fs::read_to_string(workspace().join("kernels/debian-6.1.yaml"))
        .unwrap()
        .replace("id: debian-6.1\n", "id: my-kernel\n");
    std::fs::write(ops.join("kernels/my-kernel.yaml"), entry).unwrap();
    // The operator's sysrq runs on the Debian image only: on the minimal image it is a SKIP,
    // which the built-in sysrq never is.
    std::fs::write(
        ops.join("scenarios/sysrq.yaml"),
        "id: sysrq\ndescription: the operator's\ntrigger: sysrq\nimage:\n  only: debian\nexpect:\n  log: [x]\n",
    )
    .unwrap();
    let out = kd
        .kdrill()
        .args([
            "verify",
            "--list",
            "--kernel",
            "all",
            "--scenario",
            "sysrq",
            "--scenario",
            "nmi",
            // Relative to the current folder, as an operator would write it.
            "--root",
            "../ops",
        ])
        .assert()
        .success();
    let text = stdout(&out);
    assert!(text.contains("my-kernel/nmi\n"), "{text}");
    assert!(text.contains("debian-6.1/nmi\n"), "{text}");
    assert!(
        text.contains("my-kernel/sysrq  (SKIP: ") && text.contains("runs on debian images only"),
        "{text}"
    );
    // Without --root: the built-in data, as before.
    let plain = kd
        .kdrill()
        .args(["verify", "--list", "--kernel", "all", "--scenario", "sysrq"])
        .assert()
        .success();
    assert!(!stdout(&plain).contains("my-kernel"), "{}", stdout(&plain));
    assert!(!stdout(&plain).contains("SKIP"), "{}", stdout(&plain));
    // An error in the operator's file names that file, not its copy in the cache.
    std::fs::write(
        ops.join("scenarios/bad.yaml"),
        "id: bad\ndescription: d\ntrigger: nope\n",
    )
    .unwrap();
    let bad = kd
        .kdrill()
        .args(["verify", "--list", "--scenario", "bad", "--root", "../ops"])
        .assert()
        .code(3);
    let written = std::fs::canonicalize(&ops)
        .unwrap()
        .join("scenarios/bad.yaml");
    assert!(
        stderr(&bad).contains(&format!("{}:3:", written.display())),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn a_root_that_does_not_exist_is_a_tool_error() {
    let kd = Installed::new();
    let out = kd
        .kdrill()
        .args(["verify", "--list", "--root", "no-such-folder"])
        .assert()
        .code(3);
    let err = stderr(&out);
    assert!(err.contains("no-such-folder: no such folder"), "{err}");
    assert!(!err.contains("checkout"), "{err}");
}

/// A selection whose only case is a declared skip runs end to end without a guest: the verdict,
/// `result.json` and the summary land in `./kdrill-out`, and kdrill says so.
#[test]
fn a_run_of_declared_skips_keeps_its_evidence_in_kdrill_out() {
    let kd = Installed::new();
    let out = kd
        .kdrill()
        .args([
            "verify",
            "--kernel",
            "debian-6.1-cloud",
            "--scenario",
            "watchdog",
        ])
        .assert()
        .code(0);
    let text = stdout(&out);
    assert!(text.contains("SKIP debian-6.1-cloud/watchdog"), "{text}");
    assert!(text.contains("0 passed, 0 failed, 1 skipped"), "{text}");
    let evidence = kd.cwd().join("kdrill-out");
    assert!(
        stderr(&out).contains(&format!("evidence goes to {}", evidence.display())),
        "{}",
        stderr(&out)
    );
    assert!(text.contains(&format!(
        "summary: {}",
        evidence.join("summary.md").display()
    )));
    let result = evidence.join("runs/debian-6.1-cloud/watchdog/latest/result.json");
    let result: serde_json::Value =
        serde_json::from_slice(&std::fs::read(result).unwrap()).unwrap();
    assert_eq!(result["verdict"], "SKIP");
}

#[test]
fn json_lines_carry_each_case_then_the_summary_and_nothing_else() {
    let kd = Installed::new();
    let out = kd
        .kdrill()
        .args([
            "verify",
            "--kernel",
            "debian-6.1-cloud",
            "--scenario",
            "watchdog",
            "--format",
            "json",
        ])
        .assert()
        .code(0);
    let lines = json_lines(&stdout(&out));
    assert_eq!(lines.len(), 2, "{}", stdout(&out));
    let case = &lines[0];
    assert_eq!(case["schema"], "kdrill-verify-case/1");
    assert_eq!(case["id"], "debian-6.1-cloud/watchdog");
    assert_eq!(case["verdict"], "SKIP");
    assert!(
        case["reason"].as_str().unwrap().contains("i6300esb"),
        "{case}"
    );
    assert!(case["failure"].is_null());
    let folder = Path::new(case["evidence"].as_str().unwrap());
    assert!(folder.join("result.json").is_file(), "{case}");
    let summary = &lines[1];
    assert_eq!(summary["schema"], "kdrill-verify-summary/1");
    assert_eq!(
        (
            summary["passed"].as_u64(),
            summary["failed"].as_u64(),
            summary["skipped"].as_u64()
        ),
        (Some(0), Some(0), Some(1))
    );
    assert_eq!(summary["exit_code"], 0);
    // The people's lines went to stderr.
    assert!(
        stderr(&out).contains("SKIP debian-6.1-cloud/watchdog"),
        "{}",
        stderr(&out)
    );

    let list = kd
        .kdrill()
        .args(["verify", "--list", "--format", "json"])
        .assert()
        .success();
    let lines = json_lines(&stdout(&list));
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["schema"], "kdrill-verify-list/1");
    assert_eq!(lines[0]["id"], "debian-6.1/sysrq");
    assert!(lines[0]["skip"].is_null());
}

#[test]
fn under_json_an_error_before_any_case_is_the_only_line() {
    let kd = Installed::new();
    for (args, code, kind) in [
        (&["--scenario", "nosuch"][..], 3, "error"),
        (&["--image", "nosuch"][..], 64, "usage"),
        (&["--crashkernel", "lots"][..], 64, "usage"),
    ] {
        let out = kd
            .kdrill()
            .arg("verify")
            .args(args)
            .args(["--format", "json"])
            .assert()
            .code(code);
        let lines = json_lines(&stdout(&out));
        assert_eq!(lines.len(), 1, "{args:?}: {}", stdout(&out));
        assert_eq!(lines[0]["schema"], "kdrill-error/1");
        assert_eq!(lines[0]["command"], "verify");
        assert_eq!(lines[0]["exit_code"], code);
        assert_eq!(lines[0]["kind"], kind, "{args:?}");
    }
}

/// The README's `kdrill check --calibration calibration/debian-6.1-minimal.yaml` from a folder
/// without that file: the calibration compiled into kdrill is used.
#[test]
fn check_finds_a_built_in_calibration_by_its_path() {
    let kd = Installed::new();
    let tree = workspace().join("harness/tests/fixtures/check/debian-ready");
    let out = kd
        .kdrill()
        .args([
            "check",
            "--format",
            "json",
            "--calibration",
            "calibration/debian-6.1-minimal.yaml",
            "--root",
        ])
        .arg(&tree)
        .assert();
    let code = out.get_output().status.code();
    assert!(matches!(code, Some(0..=2)), "{code:?}: {}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let size = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "crashkernel-size")
        .unwrap();
    // Judged by kdrill's measurement, not only by the estimate.
    assert!(
        size["seen"].as_str().unwrap().contains("measured minimum"),
        "{size}"
    );
}
