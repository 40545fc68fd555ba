//! kdrill's Debian package: `cargo xtask dist --binary` packs the test build (CI pays for no
//! release build), the package installs with dpkg into a throwaway root, the installed `kdrill`
//! runs `--version` and `check` there and reads the packaged calibration files, its binary needs
//! no glibc newer than Debian 12's, its systemd units verify and name the installed binary, and
//! removing it takes the metrics file with it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::check::{tree, DEBIAN};
use crate::support::workspace;

/// xtask is built by the other xtask tests already; packing an uncompressed package takes seconds.
const DIST_DEADLINE: Duration = Duration::from_secs(1200);
const DPKG_DEADLINE: Duration = Duration::from_secs(120);

fn run(command: &mut Command, limit: Duration) -> kdrill::host::process::Finished {
    let shown = format!("{command:?}");
    let out = kdrill::host::process::run(command, limit).unwrap();
    assert!(
        out.status.success(),
        "{shown}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `cargo xtask dist` of the test build into `out`; the .deb.
fn dist(out: &Path) -> PathBuf {
    let binary = assert_cmd::cargo::cargo_bin("kdrill");
    let mut command = Command::new(env!("CARGO"));
    command
        .args(["xtask", "dist", "--compression", "none", "--binary"])
        .arg(&binary)
        .arg("--out")
        .arg(out)
        .current_dir(workspace());
    let finished = run(&mut command, DIST_DEADLINE);
    let stdout = String::from_utf8_lossy(&finished.stdout);
    assert!(stdout.contains("needs glibc 2."), "{stdout}");
    out.join(format!(
        "kdrill_{}_{}.deb",
        kdrill::host::deb::VERSION,
        kdrill::host::deb::architecture()
    ))
}

/// An empty dpkg database under `root`, and the package installed into it with dpkg itself
/// (maintainer scripts run on this host with `DPKG_ROOT` set: they must leave the host alone).
fn install(deb: &Path, root: &Path) {
    std::fs::create_dir_all(root.join("var/lib/dpkg/info")).unwrap();
    std::fs::create_dir_all(root.join("var/lib/dpkg/updates")).unwrap();
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    let mut command = Command::new("dpkg");
    command
        .arg(format!("--root={}", root.display()))
        .args([
            "--force-script-chrootless",
            "--force-depends",
            "--force-not-root",
            "--log=/dev/null",
            "--install",
        ])
        .arg(deb);
    run(&mut command, DPKG_DEADLINE);
}

#[test]
fn the_package_installs_into_a_throwaway_root_and_checks_from_there() {
    let dir = tempfile::tempdir().unwrap();
    let deb = dist(&dir.path().join("out"));
    let root = dir.path().join("root");
    install(&deb, &root);

    // What dpkg says it installed.
    let mut listing = Command::new("dpkg");
    listing
        .arg(format!("--root={}", root.display()))
        .args(["--listfiles", "kdrill"]);
    let files = String::from_utf8(run(&mut listing, DPKG_DEADLINE).stdout).unwrap();
    let mut want = vec![
        "/usr/bin/kdrill".to_string(),
        "/usr/share/man/man1/kdrill.1.gz".into(),
        "/usr/share/bash-completion/completions/kdrill".into(),
        "/usr/share/zsh/vendor-completions/_kdrill".into(),
        "/usr/share/fish/vendor_completions.d/kdrill.fish".into(),
        "/usr/share/doc/kdrill/copyright".into(),
    ];
    for sub in [
        "check",
        "report",
        "verify",
        "inspect",
        "calibrate",
        "doctor",
    ] {
        want.push(format!("/usr/share/man/man1/kdrill-{sub}.1.gz"));
    }
    for unit in kdrill::host::deb::UNITS {
        want.push(format!("/usr/lib/systemd/system/{unit}"));
    }
    for yaml in std::fs::read_dir(workspace().join("calibration")).unwrap() {
        let name = yaml.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".yaml") {
            want.push(format!("/usr/share/kdrill/calibration/{name}"));
        }
    }
    for path in &want {
        assert!(files.lines().any(|l| l == path), "{path} not in\n{files}");
    }
    assert!(!files.contains("dist-assets"), "hidden: {files}");
    // Every page kdrill.1 refers to (`kdrill-check(1)`, …) is in the package.
    let page = std::fs::read(root.join("usr/share/man/man1/kdrill.1.gz")).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&page[..]), &mut text).unwrap();
    let text = text.replace("\\-", "-");
    let mut referred = 0;
    for found in regex::Regex::new(r"kdrill-([a-z-]+)\(1\)")
        .unwrap()
        .captures_iter(&text)
    {
        let path = format!("/usr/share/man/man1/kdrill-{}.1.gz", &found[1]);
        assert!(files.lines().any(|l| l == path), "{path} not in\n{files}");
        referred += 1;
    }
    assert!(referred >= 6, "{text}");

    // The installed binary runs and needs no glibc newer than Debian 12's.
    let kdrill_bin = root.join("usr/bin/kdrill");
    let version = run(Command::new(&kdrill_bin).arg("--version"), DPKG_DEADLINE);
    let version = String::from_utf8_lossy(&version.stdout);
    assert!(
        version.starts_with(&format!("kdrill {}", kdrill::host::deb::VERSION)),
        "{version}"
    );
    let ceiling = kdrill::host::deb::check_glibc(&kdrill_bin).unwrap();
    assert!(
        ceiling.is_some_and(|c| c <= kdrill::host::deb::GLIBC_CEILING),
        "{ceiling:?}"
    );

    // `check` from the package on a captured Debian host: without the package's calibration
    // files nothing is measured for its kernel; with them under the checked root it is.
    let host = tree(DEBIAN, &[]);
    let calibrated = |host: &Path| {
        let out = kdrill::host::process::run(
            Command::new(&kdrill_bin)
                .args(["check", "--format", "json", "--root"])
                .arg(host),
            DPKG_DEADLINE,
        )
        .unwrap();
        assert!(out.status.code().is_some_and(|c| c <= 2), "{}", out.status);
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["schema"], "kdrill-check/1");
        doc["facts"]["calibrated_bytes"].clone()
    };
    assert_eq!(calibrated(host.path()), serde_json::Value::Null);
    let shipped = host.path().join("usr/share/kdrill/calibration");
    std::fs::create_dir_all(&shipped).unwrap();
    for yaml in std::fs::read_dir(root.join("usr/share/kdrill/calibration")).unwrap() {
        let yaml = yaml.unwrap();
        std::fs::copy(yaml.path(), shipped.join(yaml.file_name())).unwrap();
    }
    assert!(
        calibrated(host.path()).as_u64().is_some(),
        "the package's calibration for 6.1.0-47-amd64 is read"
    );

    verify_units(&root);

    // Removing the package takes the metrics file with it (a file nobody refreshes would
    // report an old verdict as current) and leaves no kdrill file behind.
    let textfile = root.join("var/lib/prometheus/node-exporter/kdrill.prom");
    std::fs::create_dir_all(textfile.parent().unwrap()).unwrap();
    std::fs::write(&textfile, "kdrill_ready 1\n").unwrap();
    let mut remove = Command::new("dpkg");
    remove.arg(format!("--root={}", root.display())).args([
        "--force-script-chrootless",
        "--force-not-root",
        "--log=/dev/null",
        "--remove",
        "kdrill",
    ]);
    run(&mut remove, DPKG_DEADLINE);
    assert!(!textfile.exists());
    assert!(!kdrill_bin.exists());
}

/// The installed units: every `ExecStart` names the binary the package installs, and, where the
/// host has systemd-analyze, `systemd-analyze verify` finds nothing to say about them (it exits
/// 0 even on unknown keys, so its silence is the test; a broken unit shows it can speak).
fn verify_units(root: &Path) {
    let units = root.join("usr/lib/systemd/system");
    for unit in kdrill::host::deb::UNITS {
        let text = std::fs::read_to_string(units.join(unit)).unwrap();
        for line in text.lines().filter(|l| l.starts_with("ExecStart=")) {
            let program = line["ExecStart=".len()..].split(' ').next().unwrap();
            assert_eq!(program, "/usr/bin/kdrill", "{unit}");
            assert!(root.join(program.trim_start_matches('/')).is_file());
        }
    }
    let collect = std::fs::read_to_string(units.join("kdrill-drill-collect.service")).unwrap();
    assert!(collect.contains("\nExecStart=/usr/bin/kdrill drill --collect\n"));
    assert!(collect.contains("\nConditionPathExists=/var/lib/kdrill/drill/armed\n"));
    let metrics = std::fs::read_to_string(units.join("kdrill-metrics.service")).unwrap();
    assert!(metrics.contains(
        "\nExecStart=/usr/bin/kdrill check --format prometheus --output /var/lib/prometheus/node-exporter/kdrill.prom\n"
    ));
    let Some(analyze) = kdrill::host::tools::find("systemd-analyze") else {
        eprintln!("systemd-analyze is not installed: the units were checked by structure only");
        return;
    };
    // systemd-analyze with --root needs the targets the units hang off: the host's own.
    for host_units in ["/usr/lib/systemd/system", "/lib/systemd/system"] {
        for entry in std::fs::read_dir(host_units)
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            let to = units.join(&name);
            if (name.ends_with(".target") || name.ends_with(".slice")) && !to.exists() {
                std::fs::copy(entry.path(), to).unwrap();
            }
        }
    }
    let verify = |names: &[&str]| {
        let mut command = Command::new(&analyze);
        command
            .args(["verify", "--man=no"])
            .arg(format!("--root={}", root.display()));
        for name in names {
            command.arg(format!("/usr/lib/systemd/system/{name}"));
        }
        kdrill::host::process::run(&mut command, DPKG_DEADLINE).unwrap()
    };
    let out = verify(kdrill::host::deb::UNITS);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && said.is_empty(), "{said}");
    std::fs::write(
        units.join("kdrill-broken.service"),
        "[Service]\nType=sometimes\nExecStart=/usr/bin/kdrill check\n",
    )
    .unwrap();
    let out = verify(&["kdrill-broken.service"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("kdrill-broken.service:2: "),
        "systemd-analyze names a bad unit's line: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
