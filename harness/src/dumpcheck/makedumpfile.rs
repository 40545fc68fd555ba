//! The peer tool's reading of a dump's log: `makedumpfile --dump-dmesg` (Debian 12's 1.7.2), with
//! a flattened dump (`-F`) first converted by `makedumpfile -R`, since `--dump-dmesg` cannot read
//! that format. Both under a deadline.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::case::budget::MAKEDUMPFILE_READ;
use crate::host::{process, tools};

/// Runs `makedumpfile --dump-dmesg` on `vmcore` into `out` and returns what it wrote.
pub fn dmesg(vmcore: &Path, out: &Path) -> Result<Vec<u8>, String> {
    let makedumpfile = tools::require("makedumpfile").map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(out);
    let converted = out.with_extension("rearranged");
    let input = if is_flattened(vmcore) {
        rearrange(&makedumpfile, vmcore, &converted)?;
        converted.clone()
    } else {
        vmcore.to_path_buf()
    };
    let run = process::run(
        Command::new(&makedumpfile)
            .arg("--dump-dmesg")
            .arg(&input)
            .arg(out),
        MAKEDUMPFILE_READ,
    );
    let _ = std::fs::remove_file(&converted);
    let run = run.map_err(|e| e.to_string())?;
    if !run.status.success() || !out.is_file() {
        return Err(format!(
            "makedumpfile --dump-dmesg could not read the dump ({}): {}",
            run.status,
            run.last_line()
        ));
    }
    std::fs::read(out).map_err(|e| format!("cannot read {}: {e}", out.display()))
}

/// `makedumpfile -R OUT < FLATTENED`.
fn rearrange(makedumpfile: &Path, vmcore: &Path, out: &Path) -> Result<(), String> {
    let source = std::fs::File::open(vmcore)
        .map_err(|e| format!("cannot open {}: {e}", vmcore.display()))?;
    let mut command = Command::new(makedumpfile);
    command.arg("-R").arg(out);
    let run = process::run_with_input(&mut command, Stdio::from(source), MAKEDUMPFILE_READ)
        .map_err(|e| e.to_string())?;
    if !run.status.success() {
        return Err(format!(
            "makedumpfile -R could not convert the flattened dump ({}): {}",
            run.status,
            run.last_line()
        ));
    }
    Ok(())
}

/// makedumpfile's flattened format starts with the signature `makedumpfile` (IMPLEMENTATION).
pub fn is_flattened(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 12];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && &head == b"makedumpfile"
}
