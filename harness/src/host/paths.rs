//! Where things live: the per-user cache, the project's data folders, the run artifacts.

use std::path::{Path, PathBuf};

/// The per-user cache that outlives clones: `$KDRILL_CACHE`, else `$XDG_CACHE_HOME/kdrill`, else `~/.cache/kdrill`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KDRILL_CACHE").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir).join("kdrill");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".cache").join("kdrill")
}

/// The folder holding `kernels/`, `scenarios/` and `images/`: `$KDRILL_ROOT`, else the first ancestor of
/// `start` that has both `kernels/` and `scenarios/`.
pub fn find_project_root(start: &Path) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("KDRILL_ROOT").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    start
        .ancestors()
        .find(|dir| dir.join("kernels").is_dir() && dir.join("scenarios").is_dir())
        .map(Path::to_path_buf)
}

/// Where a run's evidence and summaries go: `$KDRILL_OUT`, else `<target>/kdrill` (the target
/// folder of [`target_dir`]).
pub fn out_dir(project_root: &Path) -> PathBuf {
    match std::env::var_os("KDRILL_OUT").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => target_dir(project_root).join("kdrill"),
    }
}

/// The attempts of one case: `<out>/runs/<kernel>/<scenario>/` (each attempt a folder inside).
pub fn case_dir(out_dir: &Path, kernel: &str, scenario: &str) -> PathBuf {
    out_dir.join("runs").join(kernel).join(scenario)
}

/// Cargo's target folder for a project root: `$CARGO_TARGET_DIR` when set, else `<root>/target`.
pub fn target_dir(project_root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => project_root.join("target"),
    }
}
