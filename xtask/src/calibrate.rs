//! `cargo xtask calibrate`: `kdrill calibrate` with the host packages installed first; the same
//! arguments (`--kernel`, `--image`, `--memory`, `--scenario`, `--out`).

use std::path::Path;

use kdrill::calibrate::run::CalibrateArgs;

pub fn run(root: &Path, mut args: CalibrateArgs) -> anyhow::Result<i32> {
    args.root.get_or_insert(root.to_path_buf());
    kdrill::calibrate::run::run(&args)
}
