//! `cargo xtask dist`: kdrill's Debian package. Builds the binary (release by default), has it
//! write its man pages and completions (`kdrill dist-assets`), then `kdrill::host::deb` stages
//! and packs everything; every child process under a deadline.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

#[derive(clap::Args)]
pub struct DistArgs {
    /// Cargo profile to build the binary with (`release` for a package to ship; `dev` reuses the
    /// test build's)
    #[arg(long, default_value = "release", conflicts_with = "binary")]
    pub profile: String,
    /// Package this kdrill binary instead of building one (e.g. target/debug/kdrill)
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,
    /// Where to write the .deb [default: <target>/dist]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// How dpkg-deb compresses the files
    #[arg(long, value_enum, default_value_t = kdrill::host::deb::Compression::Xz)]
    pub compression: kdrill::host::deb::Compression,
}

/// A release build of kdrill from scratch; an incremental one takes seconds.
const BUILD_DEADLINE: Duration = Duration::from_secs(3600);
/// `kdrill dist-assets` renders a few pages.
const ASSETS_DEADLINE: Duration = Duration::from_secs(60);

pub fn run(root: &Path, args: &DistArgs) -> anyhow::Result<i32> {
    let target = kdrill::host::paths::target_dir(root);
    let binary = match &args.binary {
        Some(path) => std::fs::canonicalize(path)
            .with_context(|| format!("cannot find --binary {}", path.display()))?,
        None => build(root, &target, &args.profile)?,
    };
    let assets = tempfile::tempdir().context("cannot create a scratch folder")?;
    let mut command = std::process::Command::new(&binary);
    command.arg("dist-assets").arg(assets.path());
    let out = kdrill::host::process::run(&mut command, ASSETS_DEADLINE)?;
    anyhow::ensure!(
        out.status.success(),
        "`{} dist-assets` failed ({}): {}",
        binary.display(),
        out.status,
        out.last_line()
    );
    let inputs = kdrill::host::deb::Inputs {
        binary: binary.clone(),
        assets: assets.path().to_path_buf(),
        project: root.to_path_buf(),
        version: kdrill::host::deb::VERSION.to_string(),
        compression: args.compression,
    };
    let out_dir = args.out.clone().unwrap_or_else(|| target.join("dist"));
    let deb = kdrill::host::deb::build(&inputs, &out_dir)?;
    let glibc = kdrill::host::deb::check_glibc(&binary)?
        .map(|[major, minor]| format!("glibc {major}.{minor}"))
        .unwrap_or_else(|| "no glibc".into());
    let size = std::fs::metadata(&deb).map(|m| m.len()).unwrap_or(0);
    println!(
        "{} ({} KiB; {} needs {glibc}, Debian 12 has {}.{})",
        deb.display(),
        size.div_ceil(1024),
        binary.display(),
        kdrill::host::deb::GLIBC_CEILING[0],
        kdrill::host::deb::GLIBC_CEILING[1],
    );
    Ok(kdrill::exit::SUCCESS)
}

/// `cargo build -p kdrill --bin kdrill --profile PROFILE`; the binary it wrote.
fn build(root: &Path, target: &Path, profile: &str) -> anyhow::Result<PathBuf> {
    let mut command = std::process::Command::new(crate::cargo_bin());
    command
        .args([
            "build",
            "-p",
            "kdrill",
            "--bin",
            "kdrill",
            "--profile",
            profile,
        ])
        .current_dir(root);
    let status = kdrill::host::process::run_status(&mut command, BUILD_DEADLINE)?;
    anyhow::ensure!(
        status.success(),
        "cargo build -p kdrill --profile {profile} failed ({status})"
    );
    // Cargo writes the dev profile's output to `debug/`, every other profile's to its name.
    let folder = if profile == "dev" { "debug" } else { profile };
    Ok(target.join(folder).join("kdrill"))
}
