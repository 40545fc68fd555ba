//! `kdrill dist-assets DIR` (hidden): the man pages and shell completions generated from this very
//! command line, for `cargo xtask dist` to package (`man/kdrill.1`, `man/kdrill-<sub>.1`,
//! `completions/kdrill.bash`, `_kdrill`, `kdrill.fish`).

use std::path::{Path, PathBuf};

use anyhow::Context as _;

#[derive(clap::Args, Debug)]
pub struct AssetsArgs {
    /// The folder to write `man/` and `completions/` into (created)
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

pub fn run(args: AssetsArgs, command: clap::Command) -> anyhow::Result<i32> {
    write_all(&args.dir, command)?;
    Ok(kdrill::exit::SUCCESS)
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Every man page (kdrill's, then one per visible subcommand) and the three completions.
pub fn write_all(dir: &Path, mut command: clap::Command) -> anyhow::Result<()> {
    let man = dir.join("man");
    let completions = dir.join("completions");
    for folder in [&man, &completions] {
        std::fs::create_dir_all(folder)
            .with_context(|| format!("cannot create {}", folder.display()))?;
    }
    command.build();
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut page)?;
    write(&man.join("kdrill.1"), &page)?;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("kdrill-{}", sub.get_name());
        // clap names commands with `&'static str` (its `string` feature is off); this runs once.
        let sub = sub.clone().name(&*name.clone().leak());
        let mut page = Vec::new();
        clap_mangen::Man::new(sub).render(&mut page)?;
        write(&man.join(format!("{name}.1")), &page)?;
    }
    for (shell, file) in [
        (clap_complete::Shell::Bash, "kdrill.bash"),
        (clap_complete::Shell::Zsh, "_kdrill"),
        (clap_complete::Shell::Fish, "kdrill.fish"),
    ] {
        let mut text = Vec::new();
        clap_complete::generate(shell, &mut command, "kdrill", &mut text);
        write(&completions.join(file), &text)?;
    }
    Ok(())
}
