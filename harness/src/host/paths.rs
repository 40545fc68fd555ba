//! Where things live: the per-user cache, the project's data (a checkout, or kdrill's built-in data in the cache), the run artifacts.

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
    env_out().unwrap_or_else(|| target_dir(project_root).join("kdrill"))
}

/// A dump holds all of the guest's memory: owner-only.
pub fn restrict(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
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

/// Where a run reads kdrill's data and writes its evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// The folder holding `kernels/`, `scenarios/`, `images/`, `matrix.yaml`…: a checkout, or
    /// kdrill's built-in data materialised in the cache (with `--root`'s files over it).
    pub root: PathBuf,
    /// Evidence and summaries (see [`project`]).
    pub out_dir: PathBuf,
    pub origin: Origin,
}

/// Where a [`Project`]'s data came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A kdrill checkout found from the current folder, or `$KDRILL_ROOT`: used as it is.
    Checkout,
    /// kdrill's built-in data: no checkout, no `--root`.
    BuiltIn,
    /// kdrill's built-in data with the files of this `--root` folder added or replacing theirs.
    Merged(PathBuf),
}

/// The default out folder without a checkout, in the current folder.
pub const OUT_NAME: &str = "kdrill-out";

impl Project {
    /// A checkout (or any complete project folder) used as it is, its out folder [`out_dir`].
    pub fn checkout(root: &Path) -> Project {
        Project {
            root: root.to_path_buf(),
            out_dir: out_dir(root),
            origin: Origin::Checkout,
        }
    }

    /// The operator's own folder, where kdrill writes what belongs with the data (a calibration
    /// file): the checkout or the `--root` folder; `None` for the built-in data.
    pub fn own_dir(&self) -> Option<&Path> {
        match &self.origin {
            Origin::Checkout => Some(&self.root),
            Origin::Merged(dir) => Some(dir),
            Origin::BuiltIn => None,
        }
    }
}

/// The data and out folder of a run:
/// - `--root DIR`: kdrill's built-in data with DIR's files over it (a file at the same path
///   replaces the built-in one, others add), materialised in the cache; evidence in
///   `$KDRILL_OUT`, else `<target>/kdrill` of DIR as before (`$CARGO_TARGET_DIR` or `DIR/target`);
/// - else `$KDRILL_ROOT` or a checkout around the current folder, used as it is; evidence in
///   [`out_dir`] of it;
/// - else kdrill's built-in data, materialised in the cache; evidence in `$KDRILL_OUT`, else
///   `./kdrill-out`.
pub fn project(given: Option<&Path>) -> Result<Project, ProjectError> {
    let cwd = std::env::current_dir().map_err(ProjectError::Cwd)?;
    if let Some(dir) = given {
        // `../ops` as `/home/me/ops`: the folder's own name in errors and in the merged root.
        let dir = cwd.join(dir);
        let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
        let root = crate::host::bundle::merged(&cache_dir(), &dir)?;
        return Ok(Project {
            root,
            out_dir: env_out().unwrap_or_else(|| target_dir(&dir).join("kdrill")),
            origin: Origin::Merged(dir),
        });
    }
    if let Some(root) = find_project_root(&cwd) {
        return Ok(Project::checkout(&root));
    }
    Ok(Project {
        root: crate::host::bundle::builtin(&cache_dir())?,
        out_dir: env_out().unwrap_or_else(|| cwd.join(OUT_NAME)),
        origin: Origin::BuiltIn,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("cannot read the current folder")]
    Cwd(#[source] std::io::Error),
    #[error(transparent)]
    Bundle(#[from] crate::host::bundle::BundleError),
}

fn env_out() -> Option<PathBuf> {
    std::env::var_os("KDRILL_OUT")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}
