//! The `kdrill` command: `verify` (crash guests and check their dumps), `check` (host readiness), `report` (a fleet's checks), `inspect` (read a dump).

mod cli;

use clap::Parser;
use kdrill::exit;

fn main() {
    let raw: Vec<String> = std::env::args().collect();
    let json = exit::wants_json(&raw);
    let command = raw.get(1).cloned().unwrap_or_default();
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(err) => {
            use clap::error::ErrorKind;
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
            ) {
                let _ = err.print();
                std::process::exit(exit::SUCCESS);
            }
            if json {
                let message = first_line(&err.to_string()).to_string();
                print!(
                    "{}",
                    exit::error_json(&command, exit::USAGE, "usage", &message)
                );
            }
            let _ = err.print();
            std::process::exit(exit::USAGE);
        }
    };
    let code = match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            let (code, kind) = exit::classify(&err);
            if json {
                print!(
                    "{}",
                    exit::error_json(&command, code, kind, &format!("{err:#}"))
                );
            }
            eprintln!("kdrill: error: {err:#}");
            code
        }
    };
    std::process::exit(code);
}

/// clap's message without its "Usage:" lines and tips.
fn first_line(text: &str) -> &str {
    text.lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("error: ")
}
