//! `kdrill verify` from the outside: case selection, bad input, and a case that must FAIL.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::{kdrill, workspace};

/// A project root with the real kernel entry and image recipe and the given scenario files, in a
/// folder whose path has a space (as in `/home/me/my projects/`).
fn project_with(scenarios: &[(&str, &str)]) -> Project {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("my projects/kdrill");
    let root = root.as_path();
    std::fs::create_dir_all(root.join("kernels")).unwrap();
    std::fs::create_dir_all(root.join("scenarios")).unwrap();
    std::fs::create_dir_all(root.join("images/minimal")).unwrap();
    std::fs::copy(
        workspace().join("kernels/debian-6.1.yaml"),
        root.join("kernels/debian-6.1.yaml"),
    )
    .unwrap();
    std::fs::copy(
        workspace().join("images/minimal.yaml"),
        root.join("images/minimal.yaml"),
    )
    .unwrap();
    std::fs::copy(
        workspace().join("images/minimal/init"),
        root.join("images/minimal/init"),
    )
    .unwrap();
    for (name, text) in scenarios {
        std::fs::write(root.join("scenarios").join(name), text).unwrap();
    }
    Project {
        root: root.to_path_buf(),
        _dir: dir,
    }
}

struct Project {
    root: PathBuf,
    _dir: tempfile::TempDir,
}

impl Project {
    fn path(&self) -> &Path {
        &self.root
    }
}

#[test]
fn list_shows_the_default_case() {
    let out = kdrill()
        .args(["verify", "--list"])
        .current_dir(workspace())
        .assert()
        .success();
    assert_eq!(
        String::from_utf8_lossy(&out.get_output().stdout),
        "debian-6.1/sysrq\n"
    );
}

/// `--root` adds to kdrill's own data: the project's two scenarios join the built-in ones.
#[test]
fn list_all_expands_every_scenario_of_the_root_and_the_built_in_ones() {
    let project = project_with(&[
        (
            "a.yaml",
            "id: a\ndescription: d\ntrigger: sysrq\nexpect:\n  log: [x]\n",
        ),
        (
            "b.yaml",
            "id: b\ndescription: d\ntrigger: sysrq\nexpect:\n  log: [x]\n",
        ),
    ]);
    let out = kdrill()
        .args(["verify", "--list", "--scenario", "all", "--root"])
        .arg(project.path())
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout);
    let ids: Vec<&str> = stdout.lines().collect();
    for id in [
        "debian-6.1/a",
        "debian-6.1/b",
        "debian-6.1/sysrq",
        "debian-6.1/nmi",
    ] {
        assert!(ids.contains(&id), "{id} missing from\n{stdout}");
    }
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "one sorted list, not two");
}

#[test]
fn bad_scenario_yaml_names_file_line_and_column() {
    let project = project_with(&[(
        "bad.yaml",
        "id: bad\ndescription: d\ntrigger: sysrq\nexpect:\n  logs: [x]\n",
    )]);
    let out = kdrill()
        .args(["verify", "--list", "--scenario", "bad", "--root"])
        .arg(project.path())
        .assert()
        .code(3);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr);
    // The operator's own file, not its copy in the cache.
    let written = project.path().join("scenarios/bad.yaml");
    assert!(
        stderr.contains(&format!(
            "{}:5:3: expect: unknown field `logs`",
            written.display()
        )),
        "{stderr}"
    );
}

#[test]
fn unknown_scenario_lists_the_known_ones() {
    let out = kdrill()
        .args(["verify", "--list", "--scenario", "nosuch"])
        .current_dir(workspace())
        .assert()
        .code(3);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr);
    // The list is sorted and grows with scenarios/: check its start and one known id.
    assert!(
        stderr.contains("no such scenario; known scenarios: ") && stderr.contains("sysrq"),
        "{stderr}"
    );
}

/// A real guest: the capture works, but the scenario expects a line the kernel never prints. The
/// case must FAIL, say which line is missing, and keep the evidence. The project and its target
/// folder sit under a path with a space: the dump must still be extracted and read.
#[test]
fn vm_missing_expected_line_fails_with_reason_and_evidence() {
    let scenario = "id: broken\ndescription: expects a line that never appears\ntrigger: sysrq\n\
                    expect:\n  log:\n    - \"sysrq: Trigger a crash\"\n    - \"kdrill: this line never appears\"\n";
    let project = project_with(&[("broken.yaml", scenario)]);
    let target = project.path().join("target");
    let out = kdrill()
        .args(["verify", "--scenario", "broken", "--root"])
        .arg(project.path())
        .env("CARGO_TARGET_DIR", &target)
        .timeout(std::time::Duration::from_secs(480))
        .assert()
        .code(1);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout);
    assert!(stdout.contains("FAIL debian-6.1/broken"), "{stdout}");
    assert!(
        stdout.contains(
            "reason: expected log line absent from the dump: `kdrill: this line never appears`"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("0 passed, 1 failed, 0 skipped"), "{stdout}");

    let evidence = target.join("kdrill/runs/debian-6.1/broken/latest");
    for file in [
        "qemu-cmdline.txt",
        "serial.log",
        "status.log",
        "makedumpfile.log",
        "dmesg.txt",
        "result.json",
    ] {
        assert!(evidence.join(file).is_file(), "missing evidence {file}");
    }
    let vmcore = std::fs::metadata(evidence.join("vmcore")).unwrap();
    assert_eq!(
        vmcore.permissions().mode() & 0o777,
        0o600,
        "a dump holds all of the guest's memory"
    );
    assert!(
        vmcore.len() > 1_000_000,
        "dump of {} bytes is too small",
        vmcore.len()
    );
    // The capture itself worked: the dump's log holds the crash.
    let dmesg = std::fs::read_to_string(evidence.join("dmesg.txt")).unwrap();
    assert!(dmesg.contains("sysrq: Trigger a crash"));
    let result: serde_json::Value =
        serde_json::from_slice(&std::fs::read(evidence.join("result.json")).unwrap()).unwrap();
    assert_eq!(result["verdict"], "FAIL");
    assert_eq!(result["failure"], "expectation-missing");
    assert_eq!(result["route"], "sysrq");
    assert!(
        result["accel"] == "tcg" || result["accel"] == "kvm",
        "{}",
        result["accel"]
    );
    let matched = result["expectations"]["sysrq: Trigger a crash"]
        .as_str()
        .unwrap_or_default();
    assert!(matched.ends_with("sysrq: Trigger a crash"), "{matched}");
    assert!(result["expectations"]["kdrill: this line never appears"].is_null());
    // kdrill's reader and makedumpfile read the same log from the dump.
    let theirs = std::fs::read(evidence.join("dmesg.makedumpfile.txt")).unwrap();
    assert_eq!(theirs, dmesg.as_bytes());
    assert_eq!(result["panic_message"], "sysrq triggered crash");
}

/// Two fast cases of one machine: the first boots the guest shape once and saves it, both start
/// from it, and each still gets its own settings (the NMI route crashes only with the sysctl the
/// restored guest is handed) and its own capture options (LZO on the dump disk).
#[test]
fn vm_fast_cases_restore_one_saved_shape_with_their_own_settings() {
    let sysrq =
        "id: a\ndescription: d\ntrigger: sysrq\nexpect:\n  log: [\"sysrq: Trigger a crash\"]\n";
    let nmi = "id: b\ndescription: d\ntrigger: nmi\nsysctls:\n  kernel.unknown_nmi_panic: 1\n\
               expect:\n  log: [\"Kernel panic - not syncing: NMI: Not continuing\"]\n";
    let project = project_with(&[("a.yaml", sysrq), ("b.yaml", nmi)]);
    let target = project.path().join("target");
    let out = kdrill()
        .args(["verify", "--scenario", "a", "--scenario", "b", "--root"])
        .arg(project.path())
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("KDRILL_MODE")
        .env_remove("KDRILL_RESTORE")
        .timeout(std::time::Duration::from_secs(600))
        .assert();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("2 passed, 0 failed"), "{stdout}");
    let result = |id: &str| -> serde_json::Value {
        let path = target.join(format!("kdrill/runs/debian-6.1/{id}/latest/result.json"));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    let (a, b) = (result("a"), result("b"));
    for r in [&a, &b] {
        assert_eq!(r["plan"]["mode"], "fast", "{r}");
        assert_eq!(r["plan"]["restore"], true, "{r}");
        assert_eq!(
            r["plan"]["makedumpfile"],
            serde_json::json!(["-l", "-d", "31"])
        );
        assert_eq!(r["plan"]["crashkernel"], "256M@256M");
        assert!(r["phases"]["restore"].as_f64().unwrap() > 0.0, "{r}");
        assert!(
            r["phases"]["boot"].is_null(),
            "a restored case does not boot: {r}"
        );
    }
    let key = a["shape"]["key"].as_str().unwrap();
    assert_eq!(b["shape"]["key"], key, "both cases share one shape");
    assert_eq!(a["boot"], format!("restored from {}", &key[..16]));
    // The first case built the shape (and says how long that took), the second found it.
    assert!(a["phases"]["shape"].as_f64().unwrap() > 0.0, "{a}");
    assert!(b["phases"]["shape"].is_null(), "{b}");
    let shape = target.join("kdrill/shapes").join(&key[..16]);
    for file in [
        "state",
        "shape.json",
        "serial.log",
        "status.log",
        "qemu-cmdline.txt",
    ] {
        assert!(shape.join(file).is_file(), "the shape lacks {file}");
    }
    // The shape's guest loaded the capture kernel before it was saved.
    let status = std::fs::read_to_string(shape.join("status.log")).unwrap();
    assert!(status.contains("KDRILL kexec-loaded"), "{status}");
    assert!(a["shape"]["kexec"].as_f64().is_some(), "{a}");
    // The restored guest said which case it took.
    let b_status =
        std::fs::read_to_string(target.join("kdrill/runs/debian-6.1/b/latest/status.log")).unwrap();
    assert!(b_status.contains("KDRILL case t="), "{b_status}");
    assert!(b_status.contains("trigger=host"), "{b_status}");
}
