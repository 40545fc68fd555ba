//! `kdrill calibrate`: the smallest `crashkernel=` that captures (the logic is `kdrill::calibrate`).

pub use kdrill::calibrate::run::CalibrateArgs;

pub fn run(args: CalibrateArgs) -> anyhow::Result<i32> {
    kdrill::calibrate::run::run(&args)
}
