//! `kdrill verify`: run kernel x scenario cases end to end (the logic is `kdrill::campaign::verify`).

pub use kdrill::campaign::verify::VerifyArgs;

pub fn run(args: VerifyArgs) -> anyhow::Result<i32> {
    kdrill::campaign::verify::run(&args)
}
