//! The matrix's cases: sets, blocks, `all`, images, userspaces, the environment's selections.

use super::*;

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("kernels")).unwrap();
    std::fs::create_dir_all(root.join("scenarios")).unwrap();
    std::fs::create_dir_all(root.join("images")).unwrap();
    std::fs::write(root.join("images/minimal.yaml"), "kind: minimal\n").unwrap();
    std::fs::write(
        root.join("images/debian-bookworm.yaml"),
        "kind: debian\naliases: [debian]\n",
    )
    .unwrap();
    for k in ["k1", "k2"] {
        let entry = format!(
            "id: {k}\nwhy: test\nsource:\n  kind: local\n  vmlinuz: /boot/vmlinuz\n  modules: /lib/modules/x\n"
        );
        std::fs::write(root.join(format!("kernels/{k}.yaml")), entry).unwrap();
    }
    for s in ["a", "b"] {
        let text = format!("id: {s}\ndescription: d\ntrigger: sysrq\nexpect:\n  log: [x]\n");
        std::fs::write(root.join(format!("scenarios/{s}.yaml")), text).unwrap();
    }
    std::fs::write(
        root.join("matrix.yaml"),
        "sets:\n  ci:\n    - kernels: [k1]\n      scenarios: [all]\n    - kernels: [all]\n      scenarios: [a]\n",
    )
    .unwrap();
    dir
}

#[test]
fn a_set_is_the_union_of_its_blocks_without_repeats() {
    let dir = project();
    let ids: Vec<String> = set(dir.path(), "ci")
        .unwrap()
        .iter()
        .map(Case::id)
        .collect();
    assert_eq!(ids, ["k1/a", "k1/b", "k2/a"]);
}

#[test]
fn a_block_names_its_image_overlay_and_crashkernel() {
    let dir = project();
    std::fs::write(
        dir.path().join("matrix.yaml"),
        "sets:\n  prod:\n    - kernels: [k1]\n      scenarios: [a]\n      image: debian\n      overlay: ops/etc\n      crashkernel: 192M\n  bad:\n    - kernels: [k1]\n      scenarios: [a]\n      overlay: ops/etc\n",
    )
    .unwrap();
    let cases = set(dir.path(), "prod").unwrap();
    assert_eq!(cases[0].id(), "k1/a@debian-bookworm+etc+crashkernel=192M");
    assert_eq!(
        cases[0].overlay(),
        Some(dir.path().join("ops/etc").as_path())
    );
    assert_eq!(cases[0].crashkernel(), "192M");
    let err = set(dir.path(), "bad").unwrap_err().to_string();
    assert!(
        err.contains("set `bad`: an overlay needs an image with its own kdump"),
        "{err}"
    );
}

#[test]
fn a_block_names_its_userspace_and_the_command_line_overrides_it() {
    let dir = project();
    let debian = "id: d\nwhy: test\nsource:\n  kind: debian\n  suite: bookworm\n  package: p\n  version: v\n  sha256: s\nuserspace: sid\n";
    std::fs::write(dir.path().join("kernels/d.yaml"), debian).unwrap();
    std::fs::write(
        dir.path().join("scenarios/t.yaml"),
        "id: t\ndescription: d\ntrigger: sysrq\nuserspace: bookworm\nexpect:\n  log: [x]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("matrix.yaml"),
        "sets:\n  two:\n    - kernels: [d]\n      scenarios: [a, t]\n    - kernels: [d]\n      scenarios: [a]\n      userspace: trixie\n  bad:\n    - kernels: [d]\n      scenarios: [a]\n      image: debian\n      userspace: trixie\n",
    )
    .unwrap();
    let cases = set(dir.path(), "two").unwrap();
    let got: Vec<(String, String)> = cases
        .iter()
        .map(|c| (c.id(), c.userspace().name().to_string()))
        .collect();
    // Entry (sid) < scenario (bookworm, the kernel's own: no suffix) < block (trixie).
    assert_eq!(
        got,
        [
            ("d/a+userspace=sid".to_string(), "sid".to_string()),
            ("d/t".to_string(), "bookworm".to_string()),
            ("d/a+userspace=trixie".to_string(), "trixie".to_string()),
        ]
    );
    // The command line beats the block.
    let host = Userspace::Host;
    let ids: Vec<String> = with_userspace(cases, Some(&host))
        .iter()
        .map(Case::id)
        .collect();
    assert_eq!(ids, ["d/a+userspace=host", "d/t+userspace=host"]);
    let err = set(dir.path(), "bad").unwrap_err().to_string();
    assert!(
        err.contains("set `bad`: a userspace is for the minimal image"),
        "{err}"
    );
}

#[test]
fn all_leaves_out_scenarios_of_another_image_and_a_named_one_stays_a_declared_skip() {
    let dir = project();
    let only =
        "id: c\ndescription: d\ntrigger: sysrq\nimage:\n  only: debian\nexpect:\n  log: [x]\n";
    std::fs::write(dir.path().join("scenarios/c.yaml"), only).unwrap();
    let images = Registry::load(dir.path()).unwrap();
    let ids = |scenarios: &[&str], image: Option<&str>| -> Vec<String> {
        let setup = Setup {
            image: image.map(|i| images.find(i).unwrap()).unwrap_or_default(),
            ..Setup::default()
        };
        let wanted: Vec<String> = scenarios.iter().map(|s| s.to_string()).collect();
        expand_with(dir.path(), &["k1".into()], &wanted, &setup)
            .unwrap()
            .iter()
            .map(Case::id)
            .collect()
    };
    assert_eq!(ids(&["all"], None), ["k1/a", "k1/b"]);
    let named_only = "id: n\ndescription: d\ntrigger: sysrq\nin_all: false\nexpect:\n  log: [x]\n";
    std::fs::write(dir.path().join("scenarios/n.yaml"), named_only).unwrap();
    assert_eq!(ids(&["all"], None), ["k1/a", "k1/b"]);
    assert_eq!(ids(&["all", "n"], None), ["k1/a", "k1/b"]);
    assert_eq!(ids(&["n"], None), ["k1/n"]);
    assert_eq!(
        ids(&["all"], Some("debian-bookworm")),
        [
            "k1/a@debian-bookworm",
            "k1/b@debian-bookworm",
            "k1/c@debian-bookworm"
        ]
    );
    let named = expand(dir.path(), &["k1".into()], &["c".into()]).unwrap();
    assert!(named[0]
        .skip_reason()
        .unwrap()
        .contains("debian images only"));
}

#[test]
fn except_leaves_kernels_out_of_a_block() {
    let dir = project();
    std::fs::write(
        dir.path().join("matrix.yaml"),
        "sets:\n  nightly:\n    - kernels: [all]\n      except: [k2]\n      scenarios: [a]\n  canary:\n    - kernels: [k2]\n      scenarios: [a]\n",
    )
    .unwrap();
    let ids = |name: &str| -> Vec<String> {
        set(dir.path(), name)
            .unwrap()
            .iter()
            .map(Case::id)
            .collect()
    };
    assert_eq!(ids("nightly"), ["k1/a"]);
    assert_eq!(ids("canary"), ["k2/a"]);
}

#[test]
fn unknown_set_names_the_known_ones() {
    let dir = project();
    let err = set(dir.path(), "weekly").unwrap_err().to_string();
    assert!(
        err.ends_with("matrix.yaml: no set `weekly`; sets: ci"),
        "{err}"
    );
}

#[test]
fn parallelism_follows_cores_and_memory() {
    assert_eq!(parallel_guests(2, 24 << 20), 1);
    assert_eq!(parallel_guests(16, 24 << 20), 8);
    assert_eq!(parallel_guests(16, 4 << 20), 2);
    assert_eq!(parallel_guests(1, 512 << 10), 1);
}
