//! The Debian images' broken configurations: each a real three-boot case that must FAIL with the
//! reason naming what happened, after the in-guest `kdrill check` said so before the crash, with
//! the evidence kept — on Debian 12 (`debian-bookworm`, its 6.1 kernel) and Debian 13
//! (`debian-trixie`, its 6.12 kernel). The fixtures (scenario + overlay) are in
//! `tests/fixtures/production/`.
//!
//! A libtest-mimic binary, so the matrix set chooses its trials as it chooses the matrix's cases:
//! `KDRILL_MATRIX=nightly` (`cargo xtask verify --set nightly`) runs every configuration on both
//! images; the `ci` set (the default, what `cargo xtask test` runs) runs each configuration once,
//! on one image ([`CI`]); a kernel x scenario selection (`KDRILL_KERNELS`/`KDRILL_SCENARIOS`) or
//! another set runs none. The fixtures' own check runs always.

use std::path::{Path, PathBuf};

use libtest_mimic::{Arguments, Failed as TrialFailed, Trial};

/// The checkout this test binary was built from.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The `kdrill` binary, with no project root forced by the environment.
fn kdrill() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("kdrill").expect("the kdrill binary");
    cmd.env_remove("KDRILL_ROOT").env_remove("KDRILL_OUT");
    cmd
}

/// A Debian image and the kernel entry of its release.
#[derive(Clone, Copy)]
struct Image {
    name: &'static str,
    kernel: &'static str,
}

const BOOKWORM: Image = Image {
    name: "debian-bookworm",
    kernel: "debian-6.1",
};
const TRIXIE: Image = Image {
    name: "debian-trixie",
    kernel: "debian13-6.12",
};

/// A project holding the image's kernel entry, its recipe and kdrill's files for it, and the
/// fixture's scenario (and overlay), in a folder whose path has a space.
struct Project {
    root: PathBuf,
    _dir: tempfile::TempDir,
}

fn project(fixture: &str, image: Image) -> Project {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("my projects/kdrill");
    for folder in ["kernels", "scenarios", "overlays", "images"] {
        std::fs::create_dir_all(root.join(folder)).unwrap();
    }
    let ws = workspace();
    let entry = format!("kernels/{}.yaml", image.kernel);
    std::fs::copy(ws.join(&entry), root.join(&entry)).unwrap();
    let recipe = format!("images/{}.yaml", image.name);
    std::fs::copy(ws.join(&recipe), root.join(&recipe)).unwrap();
    copy_tree(&ws.join("images/debian"), &root.join("images/debian"));
    let fixtures = fixtures().join(fixture);
    std::fs::copy(
        fixtures.join("scenario.yaml"),
        root.join("scenarios").join(format!("{fixture}.yaml")),
    )
    .unwrap();
    if fixtures.join("overlay").is_dir() {
        copy_tree(
            &fixtures.join("overlay"),
            &root.join("overlays").join(fixture),
        );
    }
    Project { root, _dir: dir }
}

fn fixtures() -> PathBuf {
    workspace().join("harness/tests/fixtures/production")
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// What a broken case left: its result and in-guest check, for the assertions.
struct Failed {
    stdout: String,
    result: serde_json::Value,
    check: serde_json::Value,
    evidence: PathBuf,
    /// Kept until the test's assertions are done.
    _project: Project,
}

impl Failed {
    /// The in-guest check's status for `id` (`fail`, `warn`, …).
    fn check_status(&self, id: &str) -> String {
        self.check["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .map(|c| c["status"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("no check {id}"))
    }

    fn reason(&self) -> String {
        self.result["reasons"][0]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// Runs the fixture's case on a Debian image; it must FAIL and keep its evidence.
fn run_broken(fixture: &str, image: Image) -> Failed {
    let project = project(fixture, image);
    let target = project.root.join("target");
    let out = kdrill()
        .args([
            "verify",
            "--image",
            image.name,
            "--kernel",
            image.kernel,
            "--scenario",
            fixture,
            "--root",
        ])
        .arg(&project.root)
        .env("CARGO_TARGET_DIR", &target)
        .timeout(std::time::Duration::from_secs(3600))
        .assert()
        .code(1);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let (kernel, name) = (image.kernel, image.name);
    assert!(
        stdout.contains(&format!("FAIL {kernel}/{fixture}@{name}")),
        "{stdout}"
    );
    let evidence = target.join(format!("kdrill/runs/{kernel}/{fixture}@{name}/latest"));
    for file in [
        "result.json",
        "qemu-cmdline.txt",
        "serial.log",
        "serial-boot1.log",
        "status.log",
        "boot1-kdump-config-show.txt",
        "boot1-kdump-config-test.txt",
        "boot1-kdump-config-status.txt",
        "boot1-check.json",
    ] {
        assert!(evidence.join(file).is_file(), "missing evidence {file}");
    }
    let read = |name: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(evidence.join(name)).unwrap()).unwrap()
    };
    let result = read("result.json");
    assert_eq!(result["verdict"], "FAIL", "{result}");
    let check = read("boot1-check.json");
    assert_eq!(check["schema"], "kdrill-check/1");
    // The check was taken before the crash: boot 1 said `ready` (or failed) after writing it.
    assert!(
        result["production"]["check"]["verdict"].is_string(),
        "{result}"
    );
    Failed {
        stdout,
        result,
        check,
        evidence,
        _project: project,
    }
}

fn the_broken_fixtures_are_valid_scenarios() {
    for entry in std::fs::read_dir(fixtures()).unwrap().flatten() {
        let path = entry.path().join("scenario.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("only: debian"), "{}", path.display());
        assert!(
            text.starts_with("# Broken on purpose"),
            "{}",
            path.display()
        );
    }
}

/// kdump-tools' systemd capture does not fit in 96M: the capture kernel runs out of memory.
fn crashkernel_96m_fails_out_of_memory(image: Image) {
    let failed = run_broken("crashkernel-96m", image);
    assert_eq!(
        failed.result["failure"], "capture-failed",
        "{}",
        failed.stdout
    );
    let reason = failed.reason();
    assert!(reason.contains("ran out of memory"), "{reason}");
    assert_eq!(failed.check_status("crashkernel-size"), "warn");
    assert_eq!(failed.result["production"]["crashkernel"], "96M");
    assert!(failed.evidence.join("serial-boot2.log").is_file());
}

/// USE_KDUMP=0: kdump-tools never loads; the case fails in boot 1.
fn use_kdump_0_fails_not_ready(image: Image) {
    let failed = run_broken("use-kdump-0", image);
    assert_eq!(failed.result["failure"], "not-ready", "{}", failed.stdout);
    let reason = failed.reason();
    assert!(reason.contains("USE_KDUMP is not set or zero"), "{reason}");
    assert_eq!(failed.check_status("kdump-service"), "fail");
    assert!(failed.result["production"]["overlay"].is_string());
}

/// kernel.sysrq=0: the serial console's BREAK + c cannot crash the guest.
fn sysrq_0_serial_fails_refused(image: Image) {
    let failed = run_broken("sysrq-0-serial", image);
    assert_eq!(
        failed.result["failure"], "guest-failed",
        "{}",
        failed.stdout
    );
    let reason = failed.reason();
    assert!(
        reason.contains("phase trigger") && reason.contains("kernel.sysrq = 0"),
        "{reason}"
    );
    assert_eq!(failed.check_status("sysrq"), "warn");
}

/// The dump folder's own disk is too full: kdump-tools saves no dump.
fn crash_disk_full_fails_no_dump(image: Image) {
    let failed = run_broken("crash-disk-full", image);
    let reason = failed.reason();
    assert_eq!(failed.result["failure"], "capture-failed", "{reason}");
    assert!(reason.contains("disk is full"), "{reason}");
    assert!(reason.contains("no dump."), "{reason}");
    let target = failed.check_status("dump-target");
    assert!(target == "fail" || target == "warn", "{target}");
    assert_eq!(
        failed.result["production"]["dump_folder"]["source"],
        "/dev/vdc"
    );
}

/// `kdrill drill` armed, then the dump folder made immutable before its crash: the capture writes
/// nothing, and the drill's own record (its collect unit, in boot 3) FAILs saying so.
fn drill_immutable_fails_no_dump(image: Image) {
    let failed = run_broken("drill-immutable", image);
    let reason = failed.reason();
    assert_eq!(failed.result["failure"], "drill", "{reason}");
    assert!(
        reason.contains("FAILED: no dump was written for this drill"),
        "{reason}"
    );
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(failed.evidence.join("drill-record.json")).unwrap())
            .unwrap();
    assert_eq!(record["schema"], "kdrill-drill/1");
    assert_eq!(record["success"], false);
    assert!(failed.evidence.join("drill-collect.journal").is_file());
    // The in-guest check before the drill could not see the break coming.
    assert_ne!(failed.result["production"]["check"]["verdict"], "not_ready");
}

/// A broken configuration: its fixture and the check of what it left.
struct Broken {
    fixture: &'static str,
    check: fn(Image),
}

const BROKEN: [Broken; 5] = [
    Broken {
        fixture: "crashkernel-96m",
        check: crashkernel_96m_fails_out_of_memory,
    },
    Broken {
        fixture: "use-kdump-0",
        check: use_kdump_0_fails_not_ready,
    },
    Broken {
        fixture: "sysrq-0-serial",
        check: sysrq_0_serial_fails_refused,
    },
    Broken {
        fixture: "crash-disk-full",
        check: crash_disk_full_fails_no_dump,
    },
    Broken {
        fixture: "drill-immutable",
        check: drill_immutable_fails_no_dump,
    },
];

/// The `ci` set's trials: each configuration once, the three that crash (~100-220 s each) on
/// Debian 13, the two that stop before the capture (~40-60 s) on Debian 12, so both recipes
/// meet a broken configuration in every CI run and the run stays under its 45 minutes.
/// `nightly` runs all ten.
const CI: [(&str, Image); 5] = [
    ("crashkernel-96m", TRIXIE),
    ("crash-disk-full", TRIXIE),
    ("drill-immutable", TRIXIE),
    ("use-kdump-0", BOOKWORM),
    ("sysrq-0-serial", BOOKWORM),
];

/// Which (fixture, image) pairs the environment's selection runs, as `kdrill::campaign::matrix`
/// reads it: a kernel x scenario selection none, `KDRILL_MATRIX` unset or `ci` the [`CI`] pairs,
/// `nightly` all, another set none.
fn selected() -> Vec<(&'static Broken, Image)> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let set = var("KDRILL_MATRIX");
    if set.is_none() && (var("KDRILL_KERNELS").is_some() || var("KDRILL_SCENARIOS").is_some()) {
        return Vec::new();
    }
    let all = || BROKEN.iter().flat_map(|b| [(b, BOOKWORM), (b, TRIXIE)]);
    match set.as_deref().unwrap_or("ci") {
        "nightly" => all().collect(),
        "ci" => all()
            .filter(|(b, image)| {
                CI.iter()
                    .any(|(f, i)| *f == b.fixture && i.name == image.name)
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn main() {
    let args = Arguments::from_args();
    let mut trials = vec![Trial::test(
        "the_broken_fixtures_are_valid_scenarios",
        || {
            the_broken_fixtures_are_valid_scenarios();
            Ok(())
        },
    )];
    for (broken, image) in selected() {
        let check = broken.check;
        trials.push(Trial::test(
            format!("{}/{}", image.name, broken.fixture),
            move || {
                check(image);
                Ok::<(), TrialFailed>(())
            },
        ));
    }
    libtest_mimic::run(&args, trials).exit();
}
