//! Data files kdrill must refuse, naming the file, the line and the cap or rule: files over the
//! caps every YAML file is held to (bytes, nesting, values), matrix sets over theirs, and kernel
//! entries, scenarios and sets with values or ids they may not hold.

use std::path::Path;
use std::time::Instant;

use crate::support::kdrill;

/// A `--root` project holding `files` (path, text).
fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

/// `kdrill verify --list <args> --root <root>`: the exit code and stderr.
fn list(root: &Path, args: &[&str]) -> (i32, String) {
    let out = kdrill()
        .args(["verify", "--list"])
        .args(args)
        .arg("--root")
        .arg(root)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), stderr)
}

/// A local kernel entry `id` with `extra` lines appended.
fn entry(id: &str, extra: &str) -> String {
    format!("id: {id}\nwhy: w\nsource:\n  kind: local\n  vmlinuz: v\n  modules: m\n{extra}")
}

/// Asserts that listing `args` in a project with `files` fails (3) with `want` in its message.
fn refused(files: &[(&str, &str)], args: &[&str], want: &str) {
    let dir = project(files);
    let (code, stderr) = list(dir.path(), args);
    assert_eq!(code, 3, "{args:?}: {stderr}");
    assert!(
        stderr.contains(want),
        "{args:?}: want {want:?} in\n{stderr}"
    );
}

/// 100k nesting levels (200 KB) took 20 s before the parser's recursion limit: now the depth cap
/// refuses them before parsing, in a kernel entry, matrix.yaml and a calibration file.
#[test]
fn deep_nesting_is_refused_before_parsing() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let kernel = format!("id: deep\nwhy: w\nsource: {deep}\n");
    let matrix = format!("sets:\n  deep: {deep}\n");
    let want = "nested deeper than 32 levels (kdrill's depth cap for a data file)";
    for (files, args, at) in [
        (
            [("kernels/deep.yaml", kernel.as_str())],
            ["--kernel", "deep"],
            "kernels/deep.yaml:3:40: ",
        ),
        (
            [("matrix.yaml", matrix.as_str())],
            ["--set", "deep"],
            "matrix.yaml:2:39: ",
        ),
    ] {
        let start = Instant::now();
        refused(&files, &args, &format!("{at}{want}"));
        eprintln!("{args:?}: refused in {:?}", start.elapsed());
    }
    let dir = project(&[("deep.yaml", &format!("kernel: {deep}\n"))]);
    let start = Instant::now();
    let stderr = check_with_calibration(&dir.path().join("deep.yaml"));
    eprintln!("--calibration: refused in {:?}", start.elapsed());
    assert!(
        stderr.contains(&format!("deep.yaml:1:40: {want}")),
        "{stderr}"
    );
}

/// `kdrill check --calibration <file>` on a fixture tree: exit 3, and its stderr.
fn check_with_calibration(file: &Path) -> String {
    let tree = crate::support::workspace().join("harness/tests/fixtures/check/debian-ready");
    let out = kdrill()
        .args(["check", "--root"])
        .arg(tree)
        .arg("--calibration")
        .arg(file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    stderr
}

/// An 8 MB calibration file took 794 MB of memory: the byte cap refuses it unread.
#[test]
fn a_calibration_file_over_the_byte_cap_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flat.yaml");
    std::fs::write(&path, format!("kernel: [{}]\n", "0,".repeat(4_000_000))).unwrap();
    let stderr = check_with_calibration(&path);
    assert!(
        stderr.contains("flat.yaml: 8000011 bytes is more than the 1 MiB kdrill reads from a data file (its byte cap)"),
        "{stderr}"
    );
}

/// A kernel entry with 4M list items took 794 MB: over the byte cap; 60,000 items fit in it but
/// are over the node cap, refused at the line and column where the count passed it.
#[test]
fn a_huge_list_in_a_kernel_entry_is_refused() {
    let items = |n: usize| format!("  cmdline: [{}]\n", "x,".repeat(n));
    let big = entry("big", &format!("guest:\n{}", items(4_000_000)));
    refused(
        &[("kernels/big.yaml", &big)],
        &["--kernel", "big"],
        "kernels/big.yaml: 8000084 bytes is more than the 1 MiB",
    );
    let many = entry("many", &format!("guest:\n{}", items(60_000)));
    refused(
        &[("kernels/many.yaml", &many)],
        &["--kernel", "many"],
        "kernels/many.yaml:8:99996: more than 50000 values (kdrill's node cap for a data file)",
    );
}

/// 2,000 `[all] x [all]` blocks took 13 s: a set holds at most 64 blocks, and expands to at
/// most 5,000 cases.
#[test]
fn a_matrix_set_over_its_caps_is_refused() {
    let block = "    - kernels: [all]\n      scenarios: [all]\n";
    let matrix = format!("sets:\n  huge:\n{}", block.repeat(2_000));
    let start = Instant::now();
    refused(
        &[("matrix.yaml", &matrix)],
        &["--set", "huge"],
        "matrix.yaml:2:3: set `huge` has 2000 blocks, more than 64 (kdrill's cap on a set's blocks)",
    );
    eprintln!("2,000 blocks: refused in {:?}", start.elapsed());
    // 64 blocks that differ by their crashkernel=: 64 x every kernel x every scenario.
    let blocks: String = (0..64)
        .map(|i| format!("{block}      crashkernel: {}M\n", 200 + i))
        .collect();
    refused(
        &[("matrix.yaml", &format!("sets:\n  wide:\n{blocks}"))],
        &["--set", "wide"],
        "matrix.yaml:2:3: set `wide` expands to more than 5000 cases (kdrill's cap on a set)",
    );
}

/// A kernel entry's `guest:` is held to the rules of `--crashkernel` and to stated limits.
#[test]
fn a_kernel_entry_with_an_impossible_guest_is_refused() {
    for (guest, want) in [
        (
            "  crashkernel: \"256M panic=1 init=/bin/sh\"\n",
            "kernels/k.yaml:8:16: guest.crashkernel: crashkernel `256M panic=1 init=/bin/sh` must be one word",
        ),
        (
            "  crashkernel: garbage\n",
            "kernels/k.yaml:8:16: guest.crashkernel: crashkernel `garbage`",
        ),
        (
            "  crashkernel: \"\"\n",
            "kernels/k.yaml:8:16: guest.crashkernel: crashkernel `` must be one word",
        ),
        (
            "  crashkernel: 2G\n",
            "kernels/k.yaml:8:16: guest.crashkernel: `2G` reserves all of memory_mib 1024",
        ),
        (
            "  cpus: 0\n",
            "kernels/k.yaml:8:9: guest.cpus: 0 is outside 1..=64",
        ),
        (
            "  memory_mib: 0\n",
            "kernels/k.yaml:8:15: guest.memory_mib: 0 is outside 128..=65536 (MiB)",
        ),
        (
            "  memory_mib: 1048576\n",
            "kernels/k.yaml:8:15: guest.memory_mib: 1048576 is outside 128..=65536 (MiB)",
        ),
    ] {
        let text = entry("k", &format!("guest:\n{guest}"));
        refused(&[("kernels/k.yaml", &text)], &["--kernel", "k"], want);
    }
}

/// A scenario's own `guest.cpus` is held to the kernel entry's limits.
#[test]
fn a_scenario_with_no_cpus_is_refused() {
    let scenario =
        "id: s\ndescription: d\ntrigger: sysrq\nguest:\n  cpus: 0\nexpect:\n  log: [x]\n";
    refused(
        &[("scenarios/s.yaml", scenario)],
        &["--scenario", "s"],
        "scenarios/s.yaml:5:9: guest.cpus: 0 is outside 1..=64",
    );
}

/// `skip:` names a scenario that exists: a misspelt one is refused with a "did you mean", an
/// unknown one with the list of scenarios.
#[test]
fn a_skip_of_an_unknown_scenario_is_refused() {
    let text = entry("k", "skip:\n  sysrg: not on this kernel\n");
    refused(
        &[("kernels/k.yaml", &text)],
        &["--kernel", "k"],
        "kernels/k.yaml:8:3: skip: no scenario `sysrg`: did you mean `sysrq`?",
    );
    let text = entry("k", "skip:\n  teleport: not on this kernel\n");
    refused(
        &[("kernels/k.yaml", &text)],
        &["--kernel", "k"],
        "kernels/k.yaml:8:3: skip: no scenario `teleport`: known scenarios: ",
    );
}

/// Ids are letters, digits, `.`, `-` and `_`, not starting with `.`, and not `all`: `runs/<kernel>/
/// <scenario>` can never leave `runs/`, and a listing is one line per case.
#[test]
fn ids_that_are_not_plain_words_are_refused() {
    let not_an_id =
        "is not an id: an id is 1-64 letters, digits, `.`, `-` or `_`, not starting with `.`";
    // An entry whose file is named as its odd id.
    refused(
        &[("kernels/...yaml", &entry("..", ""))],
        &["--kernel", "all"],
        &format!("kernels/...yaml:1:5: `..` {not_an_id}"),
    );
    refused(
        &[("kernels/all.yaml", &entry("all", ""))],
        &["--kernel", "all"],
        "kernels/all.yaml:1:5: `all` is not an id: it is the word for every entry",
    );
    refused(
        &[("kernels/k.yaml", &entry("\"a\\nb\"", ""))],
        &["--kernel", "k"],
        &format!("kernels/k.yaml:1:5: `a\\nb` {not_an_id}"),
    );
    let scenario = "id: \"..\"\ndescription: d\ntrigger: sysrq\nexpect:\n  log: [x]\n";
    refused(
        &[("scenarios/...yaml", scenario)],
        &["--scenario", "all"],
        &format!("scenarios/...yaml:1:5: `..` {not_an_id}"),
    );
    // On the command line, and in a matrix block, an id never becomes a path.
    refused(&[], &["--kernel", "../kernels/debian-6.1"], not_an_id);
    refused(&[], &["--scenario", ".hidden"], not_an_id);
    let matrix = "sets:\n  mine:\n    - kernels: [../x]\n      scenarios: [sysrq]\n";
    refused(&[("matrix.yaml", matrix)], &["--set", "mine"], not_an_id);
    let matrix = "sets:\n  \"my set\":\n    - kernels: [debian-6.1]\n      scenarios: [sysrq]\n";
    refused(
        &[("matrix.yaml", matrix)],
        &["--set", "my set"],
        &format!("matrix.yaml:2:3: set `my set` {not_an_id}"),
    );
}
