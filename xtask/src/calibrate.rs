//! `cargo xtask calibrate`: `kdrill calibrate` with the host packages installed first; the same
//! arguments (`--kernel`, `--image`, `--memory`, `--scenario`, `--out`, `--root`, `--format`).
//! xtask runs in the checkout, so without `--root` the checkout's data is used as it is.

use kdrill::calibrate::run::CalibrateArgs;

pub fn run(args: CalibrateArgs) -> anyhow::Result<i32> {
    kdrill::calibrate::run::run(&args)
}
