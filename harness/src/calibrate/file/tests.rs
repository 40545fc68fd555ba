//! The calibration file's tests: written and read back, the committed files, the table, a
//! host's choice.

use super::*;

pub(crate) fn sample() -> Calibration {
    let size = |memory_mib, min, rec| SizeEntry {
        memory_mib,
        smallest_working_mib: Some(min),
        largest_failing_mib: Some(min - 8),
        failure_below: Some("capture-oom".into()),
        recommended_mib: Some(rec),
        heuristics: Heuristics {
            kdumpctl_estimate_mib: 176,
            x86_64_default_mib: (memory_mib >= 2048).then_some(256),
            debian_default_mib: Some(128),
            kdump_tools_suggested_mib: None,
        },
        wall_seconds: 120.0,
        non_monotonic: vec![],
        unfinished: None,
        probes: vec![ProbeEntry {
            crashkernel_mib: min,
            outcome: "works".into(),
            seconds: 18.5,
            evidence: "target/kdrill/runs/debian-6.1/calibrate-1024M-96M/x".into(),
        }],
    };
    Calibration {
        kernel: "debian-6.1".into(),
        release: "6.1.0-47-amd64".into(),
        image: crate::spec::images::Image::default().name().into(),
        scenario: "sysrq".into(),
        measured: "2026-12-05T10:00:00Z".into(),
        kdrill: "0.1.0".into(),
        qemu: "QEMU emulator version 7.2.22".into(),
        host: "AMD EPYC, 2 cores, tcg".into(),
        wall_seconds: 240.0,
        estimate_inputs: EstimateInputs {
            kernel_image_bytes: 8_233_472,
            modules_bytes: 1_000_000,
            capture_initrd_bytes: 9_000_000,
        },
        margin: "+25%, at least 32M, rounded up to 16M".into(),
        debian_default: Some(DEBIAN_DEFAULT.into()),
        sizes: vec![size(1024, 96, 128), size(2048, 104, 144)],
        range: Some("0M-2G:128M,2G-:144M".into()),
    }
}

#[test]
fn the_written_file_reads_back_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("debian-6.1-minimal.yaml");
    std::fs::write(&path, to_yaml(&sample())).unwrap();
    assert_eq!(load(&path).unwrap(), sample());
    let bad = to_yaml(&sample()).replace("margin:", "margins:");
    std::fs::write(&path, bad).unwrap();
    let err = load(&path).unwrap_err().to_string();
    assert!(
        err.contains("debian-6.1-minimal.yaml:") && err.contains("margins"),
        "{err}"
    );
}

#[test]
fn the_committed_calibrations_read_and_agree_with_their_probes() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../calibration");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&folder).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let c = load(&path).unwrap_or_else(|e| panic!("{e}"));
        let name = format!("{}-{}.yaml", c.kernel, c.image);
        assert_eq!(path.file_name().unwrap().to_str(), Some(name.as_str()));
        for size in &c.sizes {
            let works = size.smallest_working_mib.unwrap();
            let fails = size.largest_failing_mib.unwrap();
            assert!(fails < works, "{name}: {size:?}");
            assert!(size.recommended_mib.unwrap() >= works, "{name}");
            assert!(size.non_monotonic.is_empty() && size.unfinished.is_none());
            let outcome = |mib: u64| {
                size.probes
                    .iter()
                    .find(|p| p.crashkernel_mib == mib)
                    .map(|p| p.outcome.clone())
            };
            assert_eq!(outcome(works).as_deref(), Some("works"), "{name}");
            assert!(outcome(fails).unwrap().starts_with("too-small"), "{name}");
        }
        seen.push(name);
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "debian-6.1-debian-bookworm.yaml",
            "debian-6.1-minimal.yaml",
            "debian-6.12-minimal.yaml",
            "debian13-6.12-debian-trixie.yaml"
        ]
    );
}

#[test]
fn the_table_compares_the_heuristics() {
    let table = markdown(&sample());
    assert!(table.contains("| 1024M | 96M | 88M: capture-oom | 128M | 176M (over by 80M) | – (reserves nothing: no dump at all) | 128M (over by 32M) |\n"), "{table}");
    assert!(
        table.contains("| Debian default (384M-:128M) |\n"),
        "{table}"
    );
    assert!(table.contains("crashkernel=0M-2G:128M,2G-:144M"), "{table}");
    // A Debian 13 image: its own default, and kdump-tools' suggestion as a column.
    let mut trixie = sample();
    trixie.debian_default = Some("512M-:192M".into());
    for s in &mut trixie.sizes {
        s.heuristics.debian_default_mib = Some(192);
        s.heuristics.kdump_tools_suggested_mib = Some(161);
    }
    let table = markdown(&trixie);
    assert!(table.contains("| Debian default (512M-:192M) | kdump-tools suggests |\n|---|---|---|---|---|---|---|---|\n"), "{table}");
    assert!(
        table.contains("| 192M (over by 96M) | 161M (over by 65M) |\n"),
        "{table}"
    );
}

#[test]
fn a_file_without_the_new_fields_reads_as_debian_12s() {
    let text = to_yaml(&sample())
        .lines()
        .filter(|l| !l.starts_with("debian_default:"))
        .map(|l| l.replace(", kdump_tools_suggested_mib: null", "") + "\n")
        .collect::<String>();
    assert!(!text.contains("kdump_tools_suggested_mib"), "{text}");
    let back = parse(Path::new("old.yaml"), &text).unwrap();
    assert_eq!(back, sample());
}

#[test]
fn a_host_gets_the_nearest_measurement_and_is_told_how() {
    let c = sample();
    let at = |mib| choose(&c, mib).unwrap();
    assert_eq!(at(1023).min_mib, 96);
    assert_eq!(at(1023).how, "measured at 1024M");
    assert_eq!(at(1500).min_mib, 104);
    assert!(at(1500).how.contains("between the 1024M and 2048M"));
    assert_eq!(at(512).min_mib, 96);
    assert!(at(8192).how.contains("above every measurement (2048M)"));
}
