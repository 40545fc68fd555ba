//! `kdrill drill` from the command line, where it must stop before arming anything: without a
//! terminal and without --yes, and `--collect` with no drill armed. (The drill itself crashes
//! its host: it runs inside the Debian guests, the `drill` scenario and the broken
//! `drill-immutable` trial.)

use crate::support::kdrill;

#[test]
fn drill_without_a_terminal_or_yes_is_a_usage_error_and_arms_nothing() {
    let out = kdrill().args(["drill"]).write_stdin("").assert().code(64);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("give --yes"), "{stderr}");
    assert!(!std::path::Path::new("/var/lib/kdrill/drill/armed").exists());
}

#[test]
fn collect_with_no_drill_armed_says_so_and_succeeds() {
    // This machine never arms a drill: the collect unit's run at every boot is a no-op.
    if std::path::Path::new("/var/lib/kdrill/drill/armed").exists() {
        panic!("a drill is armed on the test machine: /var/lib/kdrill/drill/armed");
    }
    let out = kdrill().args(["drill", "--collect"]).assert().code(0);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("no drill is armed"), "{stdout}");
}

#[test]
fn collect_and_yes_do_not_go_together() {
    kdrill()
        .args(["drill", "--collect", "--yes"])
        .assert()
        .code(64);
}
