//! `kdrill inspect`: print a crash dump's metadata and kernel log.

#[derive(clap::Args, Debug)]
pub struct InspectArgs {}

pub fn run(_args: InspectArgs) -> anyhow::Result<i32> {
    anyhow::bail!("`kdrill inspect` is not implemented yet")
}
