//! Kernels from the archives, as any Debian or Ubuntu runner sees them: fetched with the host's
//! apt sources hidden, a pin the archive never served refused before any guest, `--repin` on a
//! copy, and a tracking entry resolved and run. These reach the Debian archive (deb.debian.org,
//! as `.ci/run`'s own `apt-get` does); they fail, not skip, when it is unreachable.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{kdrill, workspace};

/// A project folder with the real image recipe, the scenarios and the given kernel entries.
fn project(entries: &[(&str, String)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("project");
    for sub in ["kernels", "scenarios", "images/minimal"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    for file in [
        "images/minimal.yaml",
        "images/minimal/init",
        "scenarios/sysrq.yaml",
    ] {
        std::fs::copy(workspace().join(file), root.join(file)).unwrap();
    }
    for (name, text) in entries {
        std::fs::write(root.join("kernels").join(name), text).unwrap();
    }
    (dir, root)
}

fn sha256(path: &Path) -> String {
    kdrill::fetch::kernel::sha256_file(path).unwrap()
}

/// The debs a cache holds: `package_version` folder name → sha256 of its kept `.deb`.
fn cached_debs(cache: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(cache.join("debs"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("package.deb").is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                sha256(&e.path().join("package.deb")),
            )
        })
        .collect();
    out.sort();
    out
}

/// In a private mount namespace, the host's apt sources are replaced by empty ones (the host's
/// apt then sees no archive at all, checked first), the cache is empty: the kernel and its three
/// header packages must still arrive with the entry's checksums, and a crasher case pass.
#[test]
fn vm_kernels_arrive_with_the_host_apt_sources_hidden() {
    let cache = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let kdrill_bin = assert_cmd::cargo::cargo_bin("kdrill");
    let mut hide = format!(
        "mount --bind '{}' /etc/apt/sources.list.d",
        empty.path().display()
    );
    if Path::new("/etc/apt/sources.list").exists() {
        hide.push_str(" && mount --bind /dev/null /etc/apt/sources.list");
    }
    let script = format!(
        "{hide} && test -z \"$(apt-get indextargets)\" || {{ echo 'host apt still sees sources' >&2; exit 97; }}; \
         exec '{}' verify --kernel debian-6.1 --scenario oops --root '{}'",
        kdrill_bin.display(),
        workspace().display()
    );
    let root = kdrill::host::tools::is_root();
    let mut cmd = assert_cmd::Command::new("unshare");
    if !root {
        cmd.arg("--map-root-user");
    }
    cmd.args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env("KDRILL_CACHE", cache.path())
        .env("CARGO_TARGET_DIR", target.path())
        .env_remove("KDRILL_ARCHIVES")
        .env_remove("KDRILL_ROOT")
        .env_remove("KDRILL_OUT")
        .timeout(Duration::from_secs(900));
    let out = cmd.assert();
    let output = out.get_output();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("PASS debian-6.1/oops"), "{stdout}");
    let spec = kdrill::spec::kernel::load(&workspace(), "debian-6.1").unwrap();
    let kdrill::spec::kernel::KernelSource::Debian { headers, .. } = &spec.source else {
        panic!("debian-6.1 is a Debian entry");
    };
    let image = spec.source.pinned_image().unwrap();
    let mut expected: Vec<(String, String)> = std::iter::once(&image)
        .chain(headers.iter())
        .map(|p| (format!("{}_{}", p.package, p.version), p.sha256.clone()))
        .collect();
    expected.sort();
    assert_eq!(cached_debs(cache.path()), expected);
    assert!(
        cache
            .path()
            .join("apt/etc/sources.list.d/kdrill.sources")
            .is_file(),
        "kdrill's own apt tree"
    );
}

/// A pin of an ABI Debian never published: exit 3 (kdrill could not start) with the one line that says what is gone, the
/// newest of the series and the re-pin command, and no case started (no evidence folder).
#[test]
fn a_pin_the_archive_never_served_fails_before_any_guest() {
    let entry = std::fs::read_to_string(workspace().join("kernels/debian-6.1.yaml"))
        .unwrap()
        .replace("id: debian-6.1\n", "id: gone\n")
        .replace(
            "package: linux-image-6.1.0-47-amd64-unsigned\n  version: 6.1.170-3\n",
            "package: linux-image-6.1.0-1-amd64-unsigned\n  version: 6.1.1-1\n",
        );
    let (_dir, root) = project(&[("gone.yaml", entry)]);
    let cache = tempfile::tempdir().unwrap();
    let out = kdrill()
        .args([
            "verify",
            "--kernel",
            "gone",
            "--scenario",
            "sysrq",
            "--root",
        ])
        .arg(&root)
        .env("KDRILL_CACHE", cache.path())
        .env("CARGO_TARGET_DIR", root.join("target"))
        .env_remove("KDRILL_ARCHIVES")
        .timeout(Duration::from_secs(400))
        .assert()
        .code(3);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("is no longer served"))
        .unwrap_or_else(|| panic!("no 'gone' line in\n{stderr}"));
    assert!(
        line.contains("linux-image-6.1.0-1-amd64-unsigned 6.1.1-1 is no longer served by any configured archive (http://deb.debian.org/debian bookworm, http://deb.debian.org/debian-security bookworm-security); the newest is linux-image-6.1.0-"),
        "{line}"
    );
    assert!(
        line.ends_with(": re-pin with `cargo xtask kernels --repin gone`"),
        "{line}"
    );
    assert!(
        !root.join("target/kdrill/runs").exists(),
        "a case started: no guest may boot for a kernel that cannot be fetched"
    );
}

/// `--repin` on a copy of a real entry: the image and header packages move to the newest of
/// the series (as the archive lists them), every other line stays byte for byte.
#[test]
fn repin_rewrites_a_copy_and_keeps_everything_else() {
    let original = std::fs::read_to_string(workspace().join("kernels/debian-6.1.yaml")).unwrap();
    let (_dir, root) = project(&[("debian-6.1.yaml", original.clone())]);
    let path = root.join("kernels/debian-6.1.yaml");
    let cache = kdrill::host::paths::cache_dir();
    let done = kdrill::fetch::apt::pin::repin_file(&path, &cache).unwrap_or_else(|e| panic!("{e}"));
    let after = std::fs::read_to_string(&path).unwrap();
    let pinned_keys = ["package:", "version:", "sha256:"];
    let is_pin = |l: &str| {
        let t = l.trim_start().trim_start_matches("- ");
        pinned_keys.iter().any(|k| t.starts_with(k))
    };
    assert_eq!(original.lines().count(), after.lines().count());
    for (old, new) in original.lines().zip(after.lines()) {
        if !is_pin(old) {
            assert_eq!(old, new, "a line that is no pin changed");
        }
    }
    let spec = kdrill::spec::kernel::from_file(&path).unwrap();
    let image = spec.source.pinned_image().unwrap();
    assert_eq!(done.to, format!("{} {}", image.package, image.version));
    let archives = kdrill::spec::archive::load(None).unwrap();
    let index = kdrill::fetch::apt::tree::Tree::new(&cache, &archives)
        .index("bookworm", kdrill::fetch::apt::tree::MAX_AGE)
        .unwrap();
    let newest = index.newest_image("6.1", "amd64").unwrap();
    assert_eq!(
        (&image.package, &image.version),
        (&newest.package, &newest.version)
    );
    assert_eq!(image.sha256, newest.sha256);
    let kdrill::spec::kernel::KernelSource::Debian { headers, .. } = &spec.source else {
        panic!("Debian entry");
    };
    for pkg in headers {
        let listed = index
            .find(&pkg.package, &pkg.version)
            .unwrap_or_else(|| panic!("{} {} not in the archive", pkg.package, pkg.version));
        assert_eq!(listed.sha256, pkg.sha256);
    }
    // Repinning again changes nothing.
    let again = kdrill::fetch::apt::pin::repin_file(&path, &cache).unwrap();
    assert!(!again.changed);
}

/// `debian-6.1-track` resolves to the newest 6.1 kernel in the archive and a case passes with
/// it; result.json, the summary and the JUnit-facing record say exactly which package it was.
#[test]
fn vm_a_tracking_entry_resolves_and_passes() {
    let target = tempfile::tempdir().unwrap();
    let out = kdrill()
        .args([
            "verify",
            "--kernel",
            "debian-6.1-track",
            "--scenario",
            "sysrq",
            "--root",
        ])
        .arg(workspace())
        .env("CARGO_TARGET_DIR", target.path())
        .env_remove("KDRILL_ARCHIVES")
        .timeout(Duration::from_secs(900))
        .assert();
    let output = out.get_output();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("PASS debian-6.1-track/sysrq"), "{stdout}");
    let evidence = target
        .path()
        .join("kdrill/runs/debian-6.1-track/sysrq/latest");
    let result: serde_json::Value =
        serde_json::from_slice(&std::fs::read(evidence.join("result.json")).unwrap()).unwrap();
    let package = &result["kernel_package"];
    assert_eq!(package["tracked"], true, "{result}");
    let name = package["package"].as_str().unwrap();
    let version = package["version"].as_str().unwrap();
    let sha = package["sha256"].as_str().unwrap();
    assert!(
        kdrill::fetch::apt::resolve::is_image_of(name, "6.1", "amd64"),
        "{name}"
    );
    let deb = kdrill::fetch::kernel::package_dir(&kdrill::host::paths::cache_dir(), name, version)
        .join("package.deb");
    assert_eq!(
        sha256(&deb),
        sha,
        "result.json names the sha256 of what was downloaded"
    );
    let release = result["kernel_release"].as_str().unwrap();
    assert_eq!(
        Some(release),
        kdrill::fetch::apt::resolve::release_of(name),
        "the kernel that booted is the package's"
    );
    let summary = std::fs::read_to_string(target.path().join("kdrill/summary.md")).unwrap();
    assert!(
        summary.contains(&format!(
            "- debian-6.1-track: {name} {version} (sha256 {}…, tracked)",
            &sha[..12]
        )),
        "{summary}"
    );
}
