//! Command-line front end: argument parsing and dispatch to one module per subcommand.

mod agent;
mod assets;
mod calibrate;
mod check;
mod deep;
mod doctor;
mod drill;
mod inspect;
mod report;
mod verify;

use clap::{CommandFactory as _, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "kdrill",
    version = kdrill::VERSION,
    about = "Prove that Linux crash dumping works before the day it is needed"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Boot QEMU guests, crash them, capture the dump with kexec + makedumpfile, and check it
    Verify(verify::VerifyArgs),
    /// Check whether this host (or a captured tree) would leave a usable dump if it crashed now
    Check(check::CheckArgs),
    /// Print the metadata and kernel log of a crash dump
    Inspect(inspect::InspectArgs),
    /// Measure the smallest crashkernel= that still captures, per memory size
    Calibrate(calibrate::CalibrateArgs),
    /// Show the host programs kdrill needs, what is missing or in conflict, and the commands
    /// that fix it; --install fixes it (as root)
    Doctor(doctor::DoctorArgs),
    /// Crash this host on purpose through its own kdump service, and after the reboot prove the
    /// dump it wrote opens and holds that crash (as root; asks for the host's name)
    Drill(drill::DrillArgs),
    /// Many hosts' `kdrill check --format json` as one table: host x check, worst host first,
    /// with counts per check and status
    Report(report::ReportArgs),
    /// Write the man pages and shell completions generated from this command line into DIR (for
    /// packaging)
    #[command(hide = true)]
    DistAssets(assets::AssetsArgs),
    /// kdrill's side of an operator's disk image under `kdrill verify --image DISK` (run in the
    /// guest by kdrill's own unit)
    #[command(hide = true)]
    Agent(agent::AgentArgs),
}

/// Runs one subcommand and returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Verify(args) => verify::run(args),
        Command::Agent(args) => agent::run(args),
        Command::Check(args) => check::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Calibrate(args) => calibrate::run(args),
        Command::Doctor(args) => doctor::run(args),
        Command::Drill(args) => drill::run(args),
        Command::Report(args) => report::run(args),
        Command::DistAssets(args) => assets::run(args, Cli::command()),
    }
}
