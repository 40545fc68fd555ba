//! `kdrill verify`: run kernel x scenario cases end to end (the logic is `kdrill::verify`).

pub use kdrill::verify::VerifyArgs;

pub fn run(args: VerifyArgs) -> anyhow::Result<i32> {
    kdrill::verify::run(&args)
}
