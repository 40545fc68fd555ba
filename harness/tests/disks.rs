//! The operator's own disk image (`kdrill verify --image path/to/golden.qcow2`), on images
//! nobody here built by hand: golden images made by a real image builder from Debian's packages
//! (`tests/disks/*.sh`, through `support_disks.rs`, cached), booted through their own firmware,
//! bootloader and kdump service, crashed, captured and read back. Each VM trial runs the real
//! `kdrill` binary and checks its verdict, its reason, its evidence and the image file's sha256.
//!
//! A libtest-mimic binary, selected as the `production` binary is: `KDRILL_MATRIX=nightly`
//! (`cargo xtask verify --set nightly`) runs every trial; the `ci` set (the default, what
//! `cargo xtask test` runs) runs the BIOS image's sysrq case only ([`CI`]); a kernel x scenario
//! selection or another set runs none. The trials that boot nothing run always.

#[path = "support_disks.rs"]
mod support_disks;

use std::path::{Path, PathBuf};
use std::time::Instant;

use libtest_mimic::{Arguments, Failed, Trial};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn kdrill() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("kdrill").expect("the kdrill binary");
    cmd.env_remove("KDRILL_ROOT")
        .env_remove("KDRILL_OUT")
        .env_remove("KDRILL_DISK_FIRMWARE")
        .env_remove("KDRILL_DISK_INJECT");
    cmd
}

/// One case on a disk image: its exit code, stdout, result and evidence folder.
struct Ran {
    code: i32,
    stdout: String,
    result: serde_json::Value,
    evidence: PathBuf,
    _out: tempfile::TempDir,
}

impl Ran {
    fn reason(&self) -> String {
        self.result["reasons"][0]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// An evidence file as text (a console holds firmware's bytes that are not UTF-8).
    fn text(&self, name: &str) -> String {
        let bytes = std::fs::read(self.evidence.join(name))
            .unwrap_or_else(|e| panic!("evidence {name}: {e}"));
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// `kdrill verify --image <image> --scenario <scenario> [more]`, evidence in a folder of its own.
fn verify(image: &Path, scenario: &str, more: &[&str]) -> Ran {
    let out = tempfile::tempdir().unwrap();
    let done = kdrill()
        .args(["verify", "--image"])
        .arg(image)
        .args(["--scenario", scenario, "--root"])
        .arg(workspace())
        .args(more)
        .env("KDRILL_OUT", out.path())
        .timeout(std::time::Duration::from_secs(3600))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&done.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&done.stderr);
    let runs = out.path().join("runs/own");
    let label = std::fs::read_dir(&runs)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}\nstdout: {stdout}\nstderr: {stderr}",
                runs.display()
            )
        })
        .flatten()
        .next()
        .expect("one case folder")
        .file_name();
    let evidence = runs.join(label).join("latest");
    let result: serde_json::Value = serde_json::from_slice(
        &std::fs::read(evidence.join("result.json"))
            .unwrap_or_else(|e| panic!("result.json: {e}\n{stderr}")),
    )
    .unwrap();
    Ran {
        code: done.status.code().unwrap_or(-1),
        stdout,
        result,
        evidence,
        _out: out,
    }
}

fn sha256(path: &Path) -> String {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    let mut file = std::fs::File::open(path).unwrap();
    std::io::copy(&mut file, &mut hasher).unwrap();
    format!("{:x}", hasher.finalize())
}

/// A capture that must PASS: the three consoles, the service's words, the in-guest check, the
/// dump folder and the judged dump are in the evidence, and the file is unchanged.
fn passes(name: &str, scenario: &str, more: &[&str]) {
    let image = support_disks::golden(name);
    let before = sha256(&image);
    let ran = verify(&image, scenario, more);
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.result);
    assert_eq!(ran.result["verdict"], "PASS", "{}", ran.result);
    for file in [
        "serial.log",
        "serial-boot1.log",
        "serial-boot2.log",
        "serial-boot3.log",
        "status.log",
        "qemu-cmdline.txt",
        "boot1-service-status.txt",
        "boot3-service-status.txt",
        "boot1-check.json",
        "boot3-copy.txt",
    ] {
        assert!(ran.evidence.join(file).is_file(), "missing evidence {file}");
    }
    assert!(ran
        .text("boot1-service-status.txt")
        .contains("ready to kdump"));
    let check: serde_json::Value = serde_json::from_str(&ran.text("boot1-check.json")).unwrap();
    assert_eq!(check["schema"], "kdrill-check/1");
    // The capture kernel's console: kdump-tools saving the dump between the crash and boot 3.
    assert!(
        ran.text("serial-boot2.log").contains("kdump-tools"),
        "serial-boot2.log"
    );
    let production = &ran.result["production"];
    let folder = &production["dump_folder"];
    assert_eq!(folder["source"], "agent", "{production}");
    let copied = PathBuf::from(folder["copied_to"].as_str().unwrap());
    assert!(
        std::fs::read_dir(&copied)
            .unwrap()
            .flatten()
            .any(|f| f.file_name().to_string_lossy().starts_with("dump.")),
        "{}",
        copied.display()
    );
    // The dump was judged: its panic and the crashed CPU's frames.
    assert!(ran.result["panic_message"].is_string(), "{}", ran.result);
    assert!(
        ran.result["capture"]["dumped_pages"].as_u64().unwrap_or(0) > 0,
        "{}",
        ran.result
    );
    let disk = &production["disk"];
    assert_eq!(disk["sha256_before"], disk["sha256_after"], "{disk}");
    assert_eq!(disk["sha256_before"].as_str(), Some(before.as_str()));
    assert_eq!(sha256(&image), before, "the image file changed");
}

fn golden_bios_sysrq() {
    passes("golden-bios", "sysrq", &[]);
}

fn golden_bios_nmi() {
    passes("golden-bios", "nmi", &[]);
}

fn golden_uefi_sysrq() {
    passes("golden-uefi", "sysrq", &["--inject", "libguestfs"]);
}

/// kdump switched off in the image's own configuration: FAIL, in the service's own words,
/// before any crash.
fn golden_bios_nokdump() {
    let image = support_disks::golden("golden-bios-nokdump");
    let ran = verify(&image, "sysrq", &[]);
    assert_eq!(ran.code, 1, "{}", ran.stdout);
    assert_eq!(ran.result["failure"], "kdump-service", "{}", ran.result);
    let reason = ran.reason();
    assert!(
        reason.contains("kdump-config status") && reason.contains("ot ready"),
        "{reason}"
    );
    assert!(
        !ran.text("status.log").contains("KDRILL trigger"),
        "it crashed"
    );
}

/// No `crashkernel=`: FAIL saying so, before any crash.
fn golden_bios_nocrashkernel() {
    let image = support_disks::golden("golden-bios-nocrashkernel");
    let ran = verify(&image, "sysrq", &[]);
    assert_eq!(ran.code, 1, "{}", ran.stdout);
    assert_eq!(ran.result["failure"], "no-crashkernel", "{}", ran.result);
    let reason = ran.reason();
    assert!(
        reason.contains("no crashkernel= on the kernel command line"),
        "{reason}"
    );
    assert!(
        reason.contains("does not edit the image's bootloader unless asked"),
        "{reason}"
    );
    assert!(
        !ran.text("status.log").contains("KDRILL trigger"),
        "it crashed"
    );
}

/// An image without cloud-init given the cloud-init route: the agent never speaks, and the case
/// says so with the console's last lines, at the boot deadline (scaled down here).
fn golden_uefi_no_agent() {
    let image = support_disks::golden("golden-uefi");
    let out = tempfile::tempdir().unwrap();
    let done = kdrill()
        .args(["verify", "--image"])
        .arg(&image)
        .args(["--scenario", "sysrq", "--inject", "cloud-init", "--root"])
        .arg(workspace())
        .env("KDRILL_OUT", out.path())
        .env("KDRILL_TIMEOUT_SCALE", "0.5")
        .timeout(std::time::Duration::from_secs(1800))
        .output()
        .unwrap();
    assert_eq!(done.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&done.stdout);
    assert!(
        stdout.contains("the image did not boot to kdrill's agent"),
        "{stdout}"
    );
    assert!(stdout.contains("the console's last lines:"), "{stdout}");
}

/// Files that cannot boot are refused before any guest starts, each with why.
fn not_bootable_files_are_refused_before_any_guest() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.qcow2");
    std::fs::write(&text, "these are notes, not a disk\n".repeat(100)).unwrap();
    let zeros = dir.path().join("blank.img");
    std::fs::File::create(&zeros)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    for (file, words) in [(&text, "no boot signature"), (&zeros, "no boot signature")] {
        let started = Instant::now();
        let ran = verify(file, "sysrq", &[]);
        assert_eq!(ran.code, 1, "{}", ran.stdout);
        assert_eq!(ran.result["failure"], "not-bootable", "{}", ran.result);
        assert!(
            ran.reason().contains("not a bootable disk image") && ran.reason().contains(words),
            "{}",
            ran.reason()
        );
        assert!(
            !ran.evidence.join("serial.log").exists(),
            "a guest was started"
        );
        eprintln!(
            "{}: refused in {:.1}s",
            file.display(),
            started.elapsed().as_secs_f64()
        );
    }
}

/// What makes no sense with a disk image is a usage error.
fn a_disk_image_takes_no_kernel_entry() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("golden.qcow2");
    std::fs::write(&file, b"x").unwrap();
    let out = kdrill()
        .args(["verify", "--kernel", "debian-6.1", "--image"])
        .arg(&file)
        .args(["--root"])
        .arg(workspace())
        .assert()
        .code(64);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("boots its own kernel"), "{stderr}");
    let out = kdrill()
        .args(["verify", "--list", "--image"])
        .arg(&file)
        .args(["--scenario", "oops", "--scenario", "sysrq", "--root"])
        .arg(workspace())
        .assert()
        .code(0);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("own/sysrq@golden\n"), "{stdout}");
    assert!(
        stdout.contains("own/oops@golden  (SKIP: the crasher module"),
        "{stdout}"
    );
    kdrill()
        .args([
            "verify",
            "--firmware",
            "uefi",
            "--scenario",
            "sysrq",
            "--list",
            "--root",
        ])
        .arg(workspace())
        .assert()
        .code(64);
}

type Check = fn();

/// Every VM trial: (name, check).
const VM: [(&str, Check); 6] = [
    ("golden-bios/sysrq", golden_bios_sysrq),
    ("golden-bios/nmi", golden_bios_nmi),
    ("golden-uefi/sysrq", golden_uefi_sysrq),
    ("golden-bios-nokdump/sysrq", golden_bios_nokdump),
    ("golden-bios-nocrashkernel/sysrq", golden_bios_nocrashkernel),
    ("golden-uefi/no-agent", golden_uefi_no_agent),
];

/// The `ci` set's one disk-image case (a golden image's first build and its three boots are
/// ~8 minutes under TCG): the BIOS image through cloud-init, the README's example.
const CI: [&str; 1] = ["golden-bios/sysrq"];

fn selected() -> Vec<(&'static str, Check)> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let set = var("KDRILL_MATRIX");
    if set.is_none() && (var("KDRILL_KERNELS").is_some() || var("KDRILL_SCENARIOS").is_some()) {
        return Vec::new();
    }
    match set.as_deref().unwrap_or("ci") {
        "nightly" => VM.to_vec(),
        "ci" => VM.iter().filter(|(n, _)| CI.contains(n)).copied().collect(),
        _ => Vec::new(),
    }
}

fn main() {
    let args = Arguments::from_args();
    let trial = |name: &str, check: Check| {
        Trial::test(name.to_string(), move || {
            check();
            Ok::<(), Failed>(())
        })
    };
    let mut trials = vec![
        trial(
            "not_bootable_files_are_refused_before_any_guest",
            not_bootable_files_are_refused_before_any_guest,
        ),
        trial(
            "a_disk_image_takes_no_kernel_entry",
            a_disk_image_takes_no_kernel_entry,
        ),
    ];
    for (name, check) in selected() {
        trials.push(trial(&format!("vm_{name}"), check));
    }
    libtest_mimic::run(&args, trials).exit();
}
