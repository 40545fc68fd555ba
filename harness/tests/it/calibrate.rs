//! `kdrill calibrate` for real, short: two reservations around debian-6.1's boundary with the
//! minimal image (calibration/debian-6.1-minimal.yaml, measured here: 104M captures, 96M does
//! not: the capture kernel runs out of memory unpacking its initramfs), each a real case with its
//! own evidence, written as a calibration file that reads back.

use crate::support::{kdrill, workspace};

#[test]
fn vm_two_reservations_around_the_known_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let out = kdrill()
        .args([
            "calibrate",
            "--kernel",
            "debian-6.1",
            "--memory",
            "1G",
            "--try",
            "96M,104M",
            "--out",
        ])
        .arg(dir.path())
        .env("KDRILL_OUT", dir.path().join("runs"))
        .current_dir(workspace())
        .timeout(std::time::Duration::from_secs(900))
        .assert();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert_eq!(out.get_output().status.code(), Some(0), "{stdout}");
    let file = dir.path().join("debian-6.1-minimal.yaml");
    let calibration = kdrill::calibrate::file::load(&file).unwrap();
    assert_eq!(calibration.release, "6.1.0-47-amd64");
    let size = &calibration.sizes[0];
    assert_eq!(size.memory_mib, 1024);
    assert_eq!(size.smallest_working_mib, Some(104), "{stdout}");
    assert_eq!(size.largest_failing_mib, Some(96), "{stdout}");
    assert_eq!(
        size.failure_below.as_deref(),
        Some("capture-oom"),
        "{stdout}"
    );
    assert_eq!(size.recommended_mib, Some(144));
    let outcomes: Vec<&str> = size.probes.iter().map(|p| p.outcome.as_str()).collect();
    assert_eq!(outcomes, ["works", "too-small: capture-oom"], "{stdout}");
    for probe in &size.probes {
        let evidence = std::path::Path::new(&probe.evidence);
        assert!(evidence.join("result.json").is_file(), "{}", probe.evidence);
        assert!(evidence.join("serial.log").is_file(), "{}", probe.evidence);
    }
    assert!(
        stdout.contains("| 1024M | 104M | 96M: capture-oom | 144M |"),
        "{stdout}"
    );
}
