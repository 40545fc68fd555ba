//! Running a sysroot's programs from the host. A program that needs only its libraries
//! (makedumpfile reading a dump's log) runs through the sysroot's own dynamic loader, with the
//! sysroot's library folders and no `ld.so.cache`, so its newer C library is the one it gets, as
//! any user may. A program that runs others by their paths (make → gcc → cc1, as, ld) runs in a
//! chroot of the sysroot inside a mount namespace of its own (`unshare --mount`; not root, also
//! `--map-root-user`), where the host's `/dev` and `/proc`, a fresh `/tmp` and the work folder (at
//! `/kdrill`) are mounted for it and vanish with it. Command lines are built here; every run
//! goes through `host::process` under a deadline.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::host::elf::elf_needs;
use crate::host::process;
use crate::host::rootfs::{resolve_in, LIBRARY_DIRS};

/// Where a chroot sees the work folder it was given.
pub const WORK: &str = "/kdrill";

/// The `PATH` a sysroot's programs run with.
const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// A command that runs `program` (a real path inside `root`) with `root`'s own loader and
/// libraries: `<loader> --inhibit-cache --library-path <root's library folders> <program>`.
pub fn loader_command(root: &Path, program: &Path) -> Result<Command, String> {
    let elf = std::fs::read(program).map_err(|e| format!("{}: {e}", program.display()))?;
    let (interp, _) = elf_needs(&elf).map_err(|e| format!("{}: {e}", program.display()))?;
    let interp = interp.ok_or_else(|| format!("{}: not a dynamic program", program.display()))?;
    let loader = resolve_in(root, Path::new(&interp))
        .ok_or_else(|| format!("{}: no {interp} in {}", program.display(), root.display()))?;
    let mut command = Command::new(loader);
    command
        .arg("--inhibit-cache")
        .arg("--library-path")
        .arg(library_path(root))
        .arg(program);
    Ok(command)
}

/// The sysroot's library folders that exist, as the loader searches them, `:`-separated.
fn library_path(root: &Path) -> OsString {
    let dirs: Vec<String> = LIBRARY_DIRS
        .iter()
        .filter(|d| resolve_in(root, Path::new(d)).is_some_and(|r| r.is_dir()))
        .map(|d| root.join(d.trim_start_matches('/')).display().to_string())
        .collect();
    dirs.join(":").into()
}

/// The shell lines that set up a chroot's mounts and run the command in it: `$1` is the root,
/// `$2` the work folder, the rest the command.
const CHROOT_SCRIPT: &str = "set -e\n\
r=$1\n\
w=$2\n\
shift 2\n\
mount --rbind /dev \"$r/dev\"\n\
mount --rbind /proc \"$r/proc\"\n\
mount -t tmpfs tmpfs \"$r/tmp\"\n\
mount --bind \"$w\" \"$r/kdrill\"\n\
exec chroot \"$r\" \"$@\"\n";

/// A command that runs `argv` in a chroot of `root`, with `work` mounted at [`WORK`]: in a
/// private mount namespace (as root), or a user namespace that maps the user to root (not).
pub fn chroot_command(root: &Path, work: &Path, argv: &[OsString], as_root: bool) -> Command {
    let mut command = Command::new("unshare");
    if !as_root {
        command.arg("--map-root-user");
    }
    command
        .args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
        .arg(CHROOT_SCRIPT)
        .arg("sh")
        .arg(root)
        .arg(work)
        .args(argv)
        .env("PATH", PATH);
    command
}

/// Unpacks the tarball `tar` into `into` (as root with its owners, else as the user's own
/// files); on failure the exit status and tar's last line.
pub fn unpack(tar: &Path, into: &Path, limit: Duration) -> Result<(), (String, String)> {
    let mut command = Command::new("tar");
    command
        .arg("-x")
        .arg("-p")
        .arg("-f")
        .arg(tar)
        .arg("-C")
        .arg(into);
    if crate::host::tools::is_root() {
        command.arg("--numeric-owner");
    } else {
        command.arg("--no-same-owner");
    }
    match process::run(&mut command, limit) {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err((out.status.to_string(), out.last_line())),
        Err(e) => Err(("not run".into(), e.to_string())),
    }
}

/// What the files under `dir` take on disk (links not followed).
pub fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(here) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&here) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            total += meta.blocks() * 512;
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chroot_mounts_dev_tmp_and_the_work_folder_then_runs_the_command() {
        let argv: Vec<OsString> = ["make", "-C", "/kdrill/tree"].map(Into::into).to_vec();
        let command = chroot_command(Path::new("/c/u/root"), Path::new("/c/w"), &argv, true);
        let args: Vec<String> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(command.get_program(), "unshare");
        assert_eq!(
            &args[..6],
            ["--mount", "--propagation", "private", "--", "/bin/sh", "-c"]
        );
        assert_eq!(
            &args[7..],
            ["sh", "/c/u/root", "/c/w", "make", "-C", "/kdrill/tree"]
        );
        assert!(args[6].contains("mount --bind \"$w\" \"$r/kdrill\""));
        // objtool reads its stack limit from /proc (7.x: "read_stack_limit: fopen failed").
        assert!(args[6].contains("mount --rbind /proc \"$r/proc\""));
        assert!(args[6].ends_with("exec chroot \"$r\" \"$@\"\n"));
        let user = chroot_command(Path::new("/r"), Path::new("/w"), &argv, false);
        assert_eq!(user.get_args().next().unwrap(), "--map-root-user");
    }

    #[test]
    fn a_program_runs_with_its_roots_own_loader_and_libraries() {
        // The host as the root: its loader, its library folders, the program last.
        let command = loader_command(Path::new("/"), Path::new("/bin/sh")).unwrap();
        let args: Vec<String> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(
            Path::new(command.get_program()).ends_with("ld-linux-x86-64.so.2"),
            "{command:?}"
        );
        assert_eq!(args[0], "--inhibit-cache");
        assert_eq!(args[1], "--library-path");
        assert!(
            args[2].split(':').any(|d| d == "/lib/x86_64-linux-gnu"),
            "{}",
            args[2]
        );
        assert_eq!(args[3], "/bin/sh");
        let out = process::run(
            loader_command(Path::new("/"), Path::new("/bin/sh"))
                .unwrap()
                .args(["-c", "echo ran"]),
            Duration::from_secs(30),
        )
        .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "ran\n");
        assert!(loader_command(Path::new("/"), Path::new("/nonexistent")).is_err());
    }
}
