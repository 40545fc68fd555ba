//! The kernel x scenario matrix as test cases (libtest-mimic): each case boots, crashes and
//! captures a real guest, named `<kernel>/<scenario>` so nextest can list, filter, retry, time out
//! and partition them. `KDRILL_KERNELS` / `KDRILL_SCENARIOS` (comma-separated ids, or `all`)
//! narrow the matrix; the default is every kernel entry x every scenario.

use std::path::{Path, PathBuf};

use kdrill::case::RunOptions;
use kdrill::verdict::Verdict;
use libtest_mimic::{Arguments, Failed, Trial};

fn selection(var: &str) -> Vec<String> {
    match std::env::var(var) {
        Ok(value) if !value.trim().is_empty() => {
            value.split(',').map(|s| s.trim().to_string()).collect()
        }
        _ => vec!["all".to_string()],
    }
}

fn main() {
    let args = Arguments::from_args();
    let root: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf();
    let cases = match kdrill::verify::expand(
        &root,
        &selection("KDRILL_KERNELS"),
        &selection("KDRILL_SCENARIOS"),
    ) {
        Ok(cases) => cases,
        Err(err) => {
            eprintln!("kdrill matrix: {err:#}");
            std::process::exit(2);
        }
    };
    // Cases a kernel entry declares impossible (`skip:`) are not tests: `kdrill verify` reports
    // them as SKIP with the reason.
    let trials = cases
        .into_iter()
        .filter(|case| !case.kernel.skip.contains_key(&case.scenario.id))
        .map(|case| {
            let root = root.clone();
            Trial::test(case.id(), move || {
                let options = RunOptions::for_project(&root);
                let result = kdrill::verify::run_one(&case, &options);
                match result.verdict {
                    Verdict::Pass => Ok(()),
                    Verdict::Fail | Verdict::Skip => Err(Failed::from(format!(
                        "{}\nevidence: {}",
                        result.summary_line(),
                        result.artifacts
                    ))),
                }
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
