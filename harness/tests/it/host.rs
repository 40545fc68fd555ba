//! The host-package step on a machine of this project's kind, for real: a throwaway bookworm
//! chroot (mmdebstrap) holding bookworm-backports' `qemu-utils`, installed from its `.deb` with
//! backports absent from the chroot's apt sources, as this project's machines start. There the
//! old install lines fail (apt's simulation, checked first: the chroot reproduces the machine),
//! and `kdrill doctor --install` must leave `qemu-system-x86_64 --version` and `qemu-img
//! --version` both running, `qemu-utils` neither removed nor downgraded. The chroot is built and
//! removed by mmdebstrap in a temporary folder (root mode as root, as CI runs it; unshare mode
//! otherwise). It needs the Debian archive: when the archive is unreachable the test says so and
//! skips.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kdrill::host::packages::mirror;
use kdrill::host::process;

/// apt-get update of the throwaway tree, and the one `.deb`.
const FETCH_DEADLINE: Duration = Duration::from_secs(300);
/// The chroot (~30 s), then kdrill's step in it: QEMU, gcc, mmdebstrap… (~100 MB) and checks.
const BUILD_DEADLINE: Duration = Duration::from_secs(2400);

/// Words apt prints when it could not reach the archive at all.
const UNREACHABLE: &[&str] = &[
    "Temporary failure resolving",
    "Could not resolve",
    "Could not connect",
    "Network is unreachable",
    "Connection timed out",
    "Connection failed",
];

/// The throwaway apt tree (only bookworm-backports listed) and the `.deb` of the `qemu-utils`
/// it serves now; `Err` says why the archive could not be reached.
fn backports_qemu_utils(dir: &Path, uri: &str) -> Result<PathBuf, String> {
    let apt = dir.join("apt");
    for sub in [
        "etc/apt.conf.d",
        "etc/preferences.d",
        "etc/trusted.gpg.d",
        "etc/sources.list.d",
        "state/lists/partial",
        "cache/archives/partial",
        "debs",
    ] {
        std::fs::create_dir_all(apt.join(sub)).unwrap();
    }
    std::fs::write(
        apt.join("etc/sources.list.d/backports.sources"),
        format!("Types: deb\nURIs: {uri}\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"),
    )
    .unwrap();
    let mut config = kdrill::fetch::apt::tree::config_text(&apt, kdrill::host::tools::is_root());
    config.push_str("Acquire::http::Timeout \"20\";\nAcquire::Retries \"0\";\n");
    std::fs::write(apt.join("apt.conf"), config).unwrap();
    let apt_get = |args: &[&str]| {
        let mut command = Command::new("apt-get");
        command
            .args(args)
            .current_dir(apt.join("debs"))
            .env("APT_CONFIG", apt.join("apt.conf"))
            .env("LC_ALL", "C");
        process::run(&mut command, FETCH_DEADLINE).unwrap()
    };
    let update = apt_get(&["update", "-q"]);
    let text = String::from_utf8_lossy(&update.stderr).into_owned();
    if let Some(word) = UNREACHABLE.iter().find(|w| text.contains(*w)) {
        return Err(format!("{uri} is unreachable (apt-get update: \"{word}\")"));
    }
    assert!(
        update.status.success() && !text.contains("E:"),
        "apt-get update of the throwaway tree: {text}"
    );
    let download = apt_get(&["download", "-q", "qemu-utils/bookworm-backports"]);
    assert!(
        download.status.success(),
        "apt-get download: {}",
        download.last_line()
    );
    let deb = std::fs::read_dir(apt.join("debs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("the downloaded qemu-utils .deb");
    // A plain name: apt reads `%3a` in a file name as it is, but the shell script is simpler.
    let plain = apt.join("qemu-utils.deb");
    std::fs::rename(&deb, &plain).unwrap();
    Ok(plain)
}

/// The customize hook: the fresh machine's state, the old lines simulated, then kdrill. Every
/// result goes to a file in `out`; the hook itself never fails, so mmdebstrap cleans up.
fn hook(deb: &Path, kdrill: &Path, out: &Path) -> String {
    let q = |p: &Path| process::shell_quote(&p.display().to_string());
    let (deb, kdrill, out) = (q(deb), q(kdrill), q(out));
    format!(
        r#"set -u
R="$1"; O={out}
run() {{ name=$1; shift; chroot "$R" env DEBIAN_FRONTEND=noninteractive LC_ALL=C "$@" > "$O/$name.out" 2> "$O/$name.err"; echo $? > "$O/$name.rc"; }}
cp {deb} "$R/tmp/qemu-utils.deb"
run backports apt-get install -y -q --no-install-recommends /tmp/qemu-utils.deb
rm -f "$R/tmp/qemu-utils.deb"
run before dpkg-query -W -f '${{Version}}' qemu-utils
cat "$R/etc/apt/sources.list" "$R"/etc/apt/sources.list.d/* > "$O/sources-before" 2>/dev/null
run old-ci apt-get install -s -y --no-install-recommends qemu-system-x86 qemu-utils
run old-xtask apt-get install -s -y --no-install-recommends qemu-system-x86
cp {kdrill} "$R/usr/local/bin/kdrill"
run doctor /usr/local/bin/kdrill doctor
run install /usr/local/bin/kdrill doctor --install
run qemu-system qemu-system-x86_64 --version
run qemu-img qemu-img --version
run after dpkg-query -W -f '${{Version}}' qemu-utils
ls "$R/etc/apt/sources.list.d" > "$O/sources-after"
exit 0
"#
    )
}

fn read(out: &Path, name: &str) -> String {
    std::fs::read_to_string(out.join(name)).unwrap_or_default()
}

/// A step's exit code, its output and stderr (for messages).
fn step(out: &Path, name: &str) -> (Option<i32>, String) {
    let rc = read(out, &format!("{name}.rc")).trim().parse().ok();
    let text = format!(
        "--- {name}: exit {rc:?}\n{}{}\n",
        read(out, &format!("{name}.out")),
        read(out, &format!("{name}.err"))
    );
    (rc, text)
}

#[test]
fn vm_doctor_install_makes_qemu_whole_on_a_fresh_machine() {
    let dir = tempfile::tempdir().unwrap();
    let host = mirror::host_sources(Path::new("/etc/apt"));
    let lines = mirror::source_lines("bookworm", &["main".to_string()], "host", "host", &host);
    let uri = mirror::uri_for(&host, "bookworm").unwrap_or_else(|| mirror::DEFAULT_MIRROR.into());
    let deb = match backports_qemu_utils(dir.path(), &uri) {
        Ok(deb) => deb,
        Err(why) => {
            eprintln!("SKIPPED vm_doctor_install_makes_qemu_whole_on_a_fresh_machine: {why}; it needs the Debian archive");
            return;
        }
    };
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let kdrill_bin = assert_cmd::cargo::cargo_bin("kdrill");
    let script = dir.path().join("hook.sh");
    std::fs::write(&script, hook(&deb, &kdrill_bin, &out)).unwrap();
    let root = kdrill::host::tools::is_root();
    let mut mmdebstrap = Command::new("mmdebstrap");
    mmdebstrap
        .arg(if root {
            "--mode=root"
        } else {
            "--mode=unshare"
        })
        .args(["--variant=apt", "-q"])
        .arg(format!("--customize-hook=sh {} \"$1\"", script.display()))
        .args(["bookworm", "/dev/null"])
        .args(&lines)
        // The chroot is built under the temporary folder and removed by mmdebstrap.
        .env("TMPDIR", dir.path());
    let built = process::run(&mut mmdebstrap, BUILD_DEADLINE).unwrap();
    let logs: String = [
        "backports",
        "before",
        "old-ci",
        "old-xtask",
        "doctor",
        "install",
        "qemu-system",
        "qemu-img",
        "after",
    ]
    .iter()
    .map(|name| step(&out, name).1)
    .collect();
    eprintln!("{logs}");
    assert!(
        built.status.success(),
        "mmdebstrap failed: {}\n{logs}",
        String::from_utf8_lossy(&built.stderr)
    );

    // The chroot is this project's fresh machine: backports' qemu-utils, backports not listed,
    // and the old lines fail there as they did on the machine.
    let before = read(&out, "before.out");
    assert!(
        before.contains("~bpo12+"),
        "qemu-utils from backports: {before:?}\n{logs}"
    );
    assert!(
        !read(&out, "sources-before").contains("backports"),
        "{logs}"
    );
    let (rc, old_ci) = step(&out, "old-ci");
    assert!(
        rc != Some(0) && old_ci.contains("held broken packages"),
        "{old_ci}"
    );
    let (_, old_xtask) = step(&out, "old-xtask");
    assert!(old_xtask.contains("Remv qemu-utils"), "{old_xtask}");

    // `kdrill doctor` names the conflict and the fix (exit 1), `--install` does it (exit 0).
    let (rc, doctor) = step(&out, "doctor");
    assert_eq!(rc, Some(1), "{doctor}");
    assert!(
        doctor.contains("In conflict") && doctor.contains("-t bookworm-backports"),
        "{doctor}"
    );
    let (rc, install) = step(&out, "install");
    assert_eq!(rc, Some(0), "{logs}");
    assert!(
        install.contains("Backports are opt-in per package"),
        "{install}"
    );
    assert!(install.contains("Nothing is missing."), "{install}");
    assert!(
        read(&out, "sources-after").contains("kdrill-bookworm-backports.list"),
        "{logs}"
    );

    // QEMU runs, both halves, and qemu-utils was neither removed nor downgraded.
    let (rc, system) = step(&out, "qemu-system");
    assert!(
        rc == Some(0) && system.contains("QEMU emulator version"),
        "{system}"
    );
    let (rc, img) = step(&out, "qemu-img");
    assert!(rc == Some(0) && img.contains("qemu-img version"), "{img}");
    let after = read(&out, "after.out");
    assert!(
        kdrill::host::packages::version::compare(&after, &before).is_ge(),
        "qemu-utils went from {before:?} to {after:?}\n{logs}"
    );
}

/// `kdrill doctor` on this host, whatever it has: a `kdrill-doctor/1` document whose exit code
/// is the process's, 0 exactly when nothing is missing, every needed program listed once.
#[test]
fn doctor_reports_this_host_and_exits_by_what_is_missing() {
    let out = crate::support::kdrill()
        .args(["doctor", "--format", "json"])
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["schema"], "kdrill-doctor/1");
    assert_eq!(
        Some(doc["exit_code"].as_i64().unwrap() as i32),
        out.status.code()
    );
    let missing = doc["missing_packages"].as_array().unwrap();
    assert_eq!(
        out.status.code() == Some(0),
        missing.is_empty() && doc["ok"] == true
    );
    let programs = doc["programs"].as_array().unwrap();
    let needed = kdrill::host::tools::needed();
    assert_eq!(programs.len(), needed.len());
    for ((tool, package), program) in needed.iter().zip(programs) {
        assert_eq!(program["program"], *tool);
        assert_eq!(program["package"], *package);
        let absent = program["status"] == "missing";
        assert_eq!(absent, program["path"].is_null(), "{program}");
        if absent {
            assert!(
                missing.iter().any(|m| m == package),
                "{package} not in {missing:?}"
            );
            assert!(!doc["fix"].as_array().unwrap().is_empty() || !doc["error"].is_null());
        }
    }
}
