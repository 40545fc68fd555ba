//! The kernel x scenario matrix as test cases (libtest-mimic): each case boots, crashes and
//! captures a real guest, named `<kernel>/<scenario>` so nextest can list, filter, retry, time out
//! and partition them. The selection comes from the environment (`kdrill::campaign::matrix::from_env`):
//! `KDRILL_MATRIX=ci|nightly` (default `ci`, see matrix.yaml), or `KDRILL_KERNELS` /
//! `KDRILL_SCENARIOS` (comma-separated ids or `all`).
//!
//! A case its kernel entry declares impossible (`skip:`) is an ignored trial: nextest reports it
//! as skipped (and JUnit, with `report-skipped`), and the summary shows SKIP with the reason.
//! The process stops its guest and records the case as interrupted on SIGTERM (nextest's cancel
//! and timeout), SIGINT, SIGHUP, or when nextest itself goes away.

use std::path::{Path, PathBuf};

use kdrill::case::verdict::Verdict;
use kdrill::case::RunOptions;
use libtest_mimic::{Arguments, Failed, Trial};

fn main() {
    let args = Arguments::from_args();
    // From the current folder first (nextest runs tests in the package folder, remapped to this
    // machine's checkout with `--workspace-remap`), else where the binary was built.
    let built_in = || {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root")
            .to_path_buf()
    };
    let root: PathBuf = std::env::current_dir()
        .ok()
        .and_then(|cwd| kdrill::host::paths::find_project_root(&cwd))
        .unwrap_or_else(built_in);
    let cases = match kdrill::campaign::matrix::from_env(&root) {
        Ok(cases) => cases,
        Err(err) => {
            eprintln!("kdrill matrix: {err:#}");
            std::process::exit(kdrill::exit::ERROR);
        }
    };
    if !args.list {
        kdrill::host::interrupt::stop_with_parent();
    }
    // KDRILL_ROOT (cargo xtask verify passes the data it resolved) or the checkout, as it is.
    let project = kdrill::host::paths::Project::checkout(&root);
    let mut options = match RunOptions::for_project(&project) {
        Ok(options) => options,
        Err(err) => {
            eprintln!("kdrill matrix: {err}");
            std::process::exit(kdrill::exit::ERROR);
        }
    };
    // Debian guests run this build's `kdrill check`: KDRILL_BIN when given, else the one cargo
    // built beside this test (where nextest put it when running from an archive).
    if std::env::var_os("KDRILL_BIN").is_none() {
        let built = std::env::var_os("NEXTEST_BIN_EXE_kdrill")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_kdrill")));
        options.kdrill_bin = Some(built);
    }
    let trials = cases
        .into_iter()
        .map(|case| {
            let skipped = case.skip_reason().is_some();
            let options = options.clone();
            Trial::test(case.id(), move || {
                let result = kdrill::campaign::verify::run_one(
                    &case,
                    &options,
                    kdrill::campaign::stream::Format::Text,
                );
                match result.verdict {
                    Verdict::Pass => Ok(()),
                    Verdict::Fail | Verdict::Skip | Verdict::Interrupted => Err(Failed::from(
                        format!("{}\nevidence: {}", result.summary_line(), result.artifacts),
                    )),
                }
            })
            .with_ignored_flag(skipped)
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
