//! `kdrill verify`: run kernel x scenario cases end to end.

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {}

pub fn run(_args: VerifyArgs) -> anyhow::Result<i32> {
    anyhow::bail!("`kdrill verify` is not implemented yet")
}
