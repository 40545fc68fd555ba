//! Developer and CI entry points: `cargo xtask verify`, `cargo xtask test`.

fn main() -> anyhow::Result<()> {
    Ok(())
}
