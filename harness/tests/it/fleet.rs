//! Fleet readiness: `kdrill check --format prometheus` validated by promtool, `--output` written
//! atomically for every format, and `kdrill report` over the five captured trees' check JSON
//! (the table, the JSON, the exit code, and bad files named with where they went wrong).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::check::tree;
use crate::support::kdrill;

/// The captured trees of `tests/fixtures/check/`: five hosts.
const HOSTS: [&str; 5] = [
    "debian-ready",
    "firecracker-no-kexec",
    "no-crashkernel",
    "odd-files",
    "rhel-warnings",
];

/// promtool answers in well under a second.
const PROMTOOL_DEADLINE: Duration = Duration::from_secs(60);

fn promtool() -> PathBuf {
    kdrill::host::tools::find("promtool").unwrap_or_else(|| {
        panic!(
            "promtool is missing: `apt-get install --no-install-recommends prometheus` (Debian's \
             package ships it; .ci/run installs it so that no prometheus server starts)"
        )
    })
}

/// `kdrill check --root <fixture copy> --format FORMAT --output FILE`; the exit code.
fn check_to(name: &str, format: &str, file: &Path) -> i32 {
    let root = tree(name, &[]);
    let out = kdrill()
        .args(["check", "--format", format, "--output"])
        .arg(file)
        .arg("--root")
        .arg(root.path())
        .output()
        .unwrap();
    assert!(
        out.stdout.is_empty(),
        "--output leaves stdout empty: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    out.status.code().unwrap()
}

#[test]
fn check_prometheus_output_passes_promtool_on_every_captured_tree() {
    let promtool = promtool();
    let dir = tempfile::tempdir().unwrap();
    for name in HOSTS {
        let file = dir.path().join(format!("{name}.prom"));
        let code = check_to(name, "prometheus", &file);
        assert!((0..=2).contains(&code), "{name}: exit {code}");
        let text = std::fs::read_to_string(&file).unwrap();
        let run = promtool_check(&promtool, &file);
        assert!(
            run.status.success() && run.stdout.is_empty() && run.stderr.is_empty(),
            "{name}: promtool says\n{}{}\n{text}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
        // kdrill_ready follows the exit code: 2 (NOT READY) is 0, 0 and 1 are 1.
        let ready = if code == 2 { "0" } else { "1" };
        assert!(
            text.contains(&format!("\nkdrill_ready {ready}\n")),
            "{name}: {text}"
        );
        // One series per check and status; exactly one status is 1 per check.
        let ones = text
            .lines()
            .filter(|l| l.starts_with("kdrill_check_status{") && l.ends_with(" 1"))
            .count();
        let series = text
            .lines()
            .filter(|l| l.starts_with("kdrill_check_status{"))
            .count();
        assert_eq!(series, ones * 5, "{name}: {text}");
        assert!(ones >= 13, "{name}: {text}");
        // No drill on record in any tree: the series are left out, their HELP kept.
        assert!(!text.contains("\nkdrill_last_drill_success "), "{name}");
        assert!(text.contains("# HELP kdrill_last_drill_success "), "{name}");
    }
    // A reservation was read on the Debian host: its bytes are a sample.
    let debian = std::fs::read_to_string(dir.path().join("debian-ready.prom")).unwrap();
    assert!(
        debian.contains("\nkdrill_crashkernel_reserved_bytes 268435456\n"),
        "{debian}"
    );
    assert!(
        debian.contains("\nkdrill_crashkernel_recommended_bytes "),
        "{debian}"
    );
    // The folder holds the five files and nothing else: no temporary file left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), HOSTS.len());
}

#[test]
fn promtool_refuses_a_broken_file_so_the_test_above_can_fail() {
    let promtool = promtool();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.prom");
    std::fs::write(&file, "kdrill_ready{ 1\n").unwrap();
    let run = promtool_check(&promtool, &file);
    assert!(!run.status.success());
}

#[test]
fn output_replaces_the_file_for_every_format_and_matches_stdout() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = tree("rhel-warnings", &[]);
    for format in ["table", "json", "prometheus"] {
        let file = dir.path().join(format!("out.{format}"));
        std::fs::write(&file, "old contents\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let to_file = kdrill()
            .args(["check", "--color", "always", "--format", format, "-o"])
            .arg(&file)
            .arg("--root")
            .arg(root.path())
            .output()
            .unwrap();
        let to_stdout = kdrill()
            .args(["check", "--color", "never", "--format", format, "--root"])
            .arg(root.path())
            .output()
            .unwrap();
        assert_eq!(to_file.status.code(), to_stdout.status.code(), "{format}");
        assert!(to_file.stdout.is_empty(), "{format}");
        let written = std::fs::read(&file).unwrap();
        // --color always still colours a file; the words are the same.
        let plain = String::from_utf8_lossy(&written).replace("\x1b[", "");
        if format != "table" {
            assert_eq!(written, to_stdout.stdout, "{format}");
        } else {
            assert!(plain.contains("Verdict: "), "{plain}");
        }
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "{format}: the replaced file's mode is kept");
    }
    // A folder that does not exist: exit 3, the file named, nothing on stdout.
    let missing = dir.path().join("no/such/folder/kdrill.prom");
    let out = kdrill()
        .args(["check", "--format", "prometheus", "--output"])
        .arg(&missing)
        .arg("--root")
        .arg(root.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot write the check's output to") && stderr.contains("kdrill.prom"),
        "{stderr}"
    );
    // --quiet is the table's verdict line: with a whole document it is a usage error.
    let out = kdrill()
        .args(["check", "--quiet", "--format", "prometheus", "--root"])
        .arg(root.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
}

/// The five trees' `check --format json`, as files named after the trees.
fn fleet_files(dir: &Path) -> Vec<PathBuf> {
    HOSTS
        .iter()
        .map(|name| {
            let file = dir.join(format!("{name}.json"));
            check_to(name, "json", &file);
            file
        })
        .collect()
}

#[test]
fn report_tables_five_hosts_worst_first_with_counts() {
    let dir = tempfile::tempdir().unwrap();
    let files = fleet_files(dir.path());
    let out = kdrill().arg("report").args(&files).output().unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    // Three hosts are NOT READY: the worst host's exit code.
    assert_eq!(out.status.code(), Some(2), "{table}");
    assert!(
        table.starts_with(&format!(
            "kdrill report: 5 hosts, {} checks\n",
            kdrill::readiness::CHECKS.len()
        )),
        "{table}"
    );
    let rows: Vec<&str> = table
        .lines()
        .skip_while(|l| !l.starts_with("host "))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(rows.len(), 5, "{table}");
    let verdicts: Vec<bool> = rows.iter().map(|r| r.contains("NOT READY")).collect();
    assert_eq!(
        verdicts,
        [true, true, true, false, false],
        "worst first: {table}"
    );
    // A host without a hostname is named by its file; the Debian tree's is `db1`.
    assert!(
        rows.iter().any(|r| r.starts_with("no-crashkernel ")),
        "{table}"
    );
    assert!(
        rows[4].starts_with("db1 "),
        "the mildest host last: {table}"
    );
    assert!(
        table.contains("\nVerdicts: 3 not ready, 1 ready with warnings, 1 ready\n"),
        "{table}"
    );
    // Every check's counts add up to the five hosts.
    let json = kdrill()
        .args(["report", "--format", "json"])
        .args(&files)
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["schema"], "kdrill-report/1");
    assert_eq!(doc["exit_code"], 2);
    assert_eq!(doc["hosts"].as_array().unwrap().len(), 5);
    for check in doc["checks"].as_array().unwrap() {
        let total: u64 = check["counts"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(total, 5, "{check}");
    }
    assert_eq!(doc["checks"][0]["id"], "crashkernel-param");
    assert_eq!(doc["hosts"][4]["host"], "db1");
}

#[test]
fn report_names_a_bad_file_and_where_it_went_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.json");
    check_to("debian-ready", "json", &good);
    let cases: [(&str, &[u8], &str); 4] = [
        (
            "broken.json",
            b"{\n  \"schema\": \"kdrill-check/1\",\n  \"verdict\" \"ready\"\n}\n",
            "broken.json:3:13: not JSON",
        ),
        (
            "other.json",
            b"{\"schema\": \"kdrill-inspect/1\"}",
            "other.json: schema `kdrill-inspect/1`, not a `kdrill check --format json` document",
        ),
        ("empty.json", b"", "empty.json:1:0: not JSON"),
        (
            "binary.json",
            b"{\xff\xfe}",
            "binary.json: not UTF-8 text (byte 1)",
        ),
    ];
    for (name, text, want) in cases {
        let bad = dir.path().join(name);
        std::fs::write(&bad, text).unwrap();
        let out = kdrill()
            .arg("report")
            .arg(&good)
            .arg(&bad)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{name}: {stderr}");
        assert!(stderr.contains(want), "{name}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        // Under --format json the error is a document too.
        let out = kdrill()
            .args(["report", "--format", "json"])
            .arg(&bad)
            .output()
            .unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["schema"], "kdrill-error/1");
        assert_eq!(doc["kind"], "bad-check-document");
    }
    let missing = dir.path().join("missing.json");
    let out = kdrill().arg("report").arg(&missing).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("cannot read ") && stderr.contains("missing.json"),
        "{stderr}"
    );
    // A host whose check could not run is a row of its own, worse than NOT READY.
    let failed = dir.path().join("web9.json");
    let out = kdrill()
        .args(["check", "--format", "json", "--root"])
        .arg(dir.path().join("no-such-root"))
        .output()
        .unwrap();
    std::fs::write(&failed, &out.stdout).unwrap();
    let out = kdrill()
        .arg("report")
        .arg(&good)
        .arg(&failed)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{table}");
    assert!(table.contains("\nweb9 "), "{table}");
    assert!(table.contains("CHECK FAILED"), "{table}");
    assert!(table.contains("Checks that could not run"), "{table}");
    // No files at all is a usage error.
    assert_eq!(
        kdrill().arg("report").output().unwrap().status.code(),
        Some(64)
    );
}

/// `promtool check metrics < file`, under a deadline.
fn promtool_check(
    promtool: &std::path::Path,
    file: &std::path::Path,
) -> kdrill::host::process::Finished {
    let mut command = std::process::Command::new(promtool);
    command.args(["check", "metrics"]);
    kdrill::host::process::run_with_input(
        &mut command,
        std::fs::File::open(file).unwrap().into(),
        PROMTOOL_DEADLINE,
    )
    .unwrap()
}
