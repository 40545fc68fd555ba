//! `kdrill check`: the field readiness checklist.

#[derive(clap::Args, Debug)]
pub struct CheckArgs {}

pub fn run(_args: CheckArgs) -> anyhow::Result<i32> {
    anyhow::bail!("`kdrill check` is not implemented yet")
}
