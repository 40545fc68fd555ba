//! The `kdrill` command: `verify` (crash guests and check their dumps), `check` (host readiness), `inspect` (read a dump).

mod cli;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    let code = match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("kdrill: error: {err:#}");
            2
        }
    };
    std::process::exit(code);
}
