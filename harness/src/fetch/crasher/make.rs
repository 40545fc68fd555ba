//! Running kbuild on the crasher: `make -C <headers> M=<dir> modules` under a deadline with the
//! compiler the headers name (in the kernel's release's sysroot, or on the host for a local
//! kernel), and the built module's `vermagic` checked against the release.

use std::ffi::OsString;
use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{io, CrasherError};
use crate::host::elf;
use crate::host::process::last_lines;
use crate::host::process::{self, RunError};

/// A build took 1–4 s here; the margin covers a machine whose 2 cores are busy with VM tests.
pub(super) const MAKE_DEADLINE: Duration = Duration::from_secs(300);

/// How many lines of make's output a build error carries.
const TAIL_LINES: usize = 30;

/// The compiler the headers call (Debian's `.kernelvariables`: `CC = … $(CROSS_COMPILE)gcc-12`),
/// else `gcc`.
pub(super) fn compiler_of(headers: &Path) -> String {
    std::fs::read_to_string(headers.join(".kernelvariables"))
        .ok()
        .and_then(|text| kernel_compiler(&text))
        .unwrap_or_else(|| "gcc".into())
}

fn kernel_compiler(kernelvariables: &str) -> Option<String> {
    kernelvariables.lines().find_map(|line| {
        let (name, value) = line.split_once('=')?;
        if name.trim_end_matches([':', '?', ' ']) != "CC" {
            return None;
        }
        let last = value.split_whitespace().last()?;
        // `$(CROSS_COMPILE)gcc-12` → `gcc-12` (the cross prefix names the same package's binary).
        let tool = last.rsplit(')').next()?;
        (!tool.is_empty()).then(|| tool.to_string())
    })
}

/// make's arguments: `-C <headers> M=<module_dir> … modules`, as the make that runs sees the
/// paths.
pub(super) fn make_args(headers: &Path, module_dir: &Path) -> Vec<OsString> {
    let mut dir = OsString::from("M=");
    dir.push(module_dir);
    vec![
        "-C".into(),
        headers.into(),
        dir,
        // 6.12 generates BTF for modules with pahole; the crasher needs none, and this spares
        // the build the `dwarves` package.
        "CONFIG_DEBUG_INFO_BTF_MODULES=".into(),
        "modules".into(),
    ]
}

/// Runs `command` (a make of [`make_args`], on the host or in a chroot of `sysroot`) with its
/// output in `log`, killed after [`MAKE_DEADLINE`].
pub(super) fn run_make(
    mut command: Command,
    log: &Path,
    release: &str,
    sysroot: Option<&Path>,
) -> Result<(), CrasherError> {
    let out = File::create(log).map_err(io(log))?;
    let err = out.try_clone().map_err(io(log))?;
    command
        // English messages, for the error's tail and hints (kbuild unexports LC_ALL).
        .env("LC_MESSAGES", "C")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    // Its own process group, so a timeout (or a stop) kills gcc as well as make.
    let output = || last_lines(log, TAIL_LINES).join("\n");
    match process::run_status(&mut command, MAKE_DEADLINE) {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => {
            let tail = output();
            Err(CrasherError::Make {
                release: release.into(),
                status: status.to_string(),
                log: log.into(),
                hint: hint(&tail, sysroot),
                tail,
            })
        }
        Err(RunError::Timeout { after, .. }) => Err(CrasherError::Timeout {
            release: release.into(),
            after,
            log: log.into(),
            tail: output(),
        }),
        Err(other) => Err(CrasherError::Run(other)),
    }
}

/// A way out for failures whose cause is the build environment rather than the module.
fn hint(output: &str, sysroot: Option<&Path>) -> String {
    let missing = output.contains("error while loading shared libraries")
        || output.contains("command not found")
        || output.contains("No such file or directory");
    match sysroot {
        _ if !missing => String::new(),
        Some(root) => format!(
            "\nhint: the build sysroot {} lacks a program or library kbuild runs: add its package to `build:` in images/userspace.yaml",
            root.display()
        ),
        None => "\nhint: the linux-kbuild tools need libelf1 and libssl3: apt-get install -y libelf1 libssl3".into(),
    }
}

/// Is this a kernel module, and is it for `release`?
pub(super) fn check_module(path: &Path, release: &str) -> Result<(), CrasherError> {
    let elf = std::fs::read(path).map_err(io(path))?;
    let bad = |detail: String| CrasherError::BadModule {
        path: path.into(),
        detail,
    };
    let vermagic = elf::modinfo_field(&elf, "vermagic")
        .map_err(bad)?
        .ok_or_else(|| bad("its .modinfo has no vermagic".into()))?;
    if vermagic_matches(&vermagic, release) {
        Ok(())
    } else {
        Err(CrasherError::Vermagic {
            path: path.into(),
            vermagic,
            release: release.into(),
        })
    }
}

/// `6.1.0-47-amd64 SMP preempt mod_unload modversions ` is for release `6.1.0-47-amd64`, and
/// not for `6.1.0-47` (the kernel refuses a module whose vermagic differs).
fn vermagic_matches(vermagic: &str, release: &str) -> bool {
    vermagic
        .strip_prefix(release)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiler_comes_from_kernelvariables() {
        let debian_6_1 = "override ARCH = x86\nCCACHE = ccache\nCC = $(if $(DEBIAN_KERNEL_USE_CCACHE),$(CCACHE)) $(CROSS_COMPILE)gcc-12\n";
        assert_eq!(kernel_compiler(debian_6_1).as_deref(), Some("gcc-12"));
        assert_eq!(kernel_compiler("CC := clang\n").as_deref(), Some("clang"));
        assert_eq!(
            kernel_compiler("override CROSS_COMPILE = x86_64-linux-gnu-\n"),
            None
        );
    }

    #[test]
    fn vermagic_must_name_the_release() {
        let vermagic = "6.1.0-47-amd64 SMP preempt mod_unload modversions ";
        assert!(vermagic_matches(vermagic, "6.1.0-47-amd64"));
        assert!(vermagic_matches("6.1.0-47-amd64", "6.1.0-47-amd64"));
        assert!(!vermagic_matches(vermagic, "6.1.0-47"));
        assert!(!vermagic_matches(vermagic, "6.1.0-47-amd64-rt"));
        assert!(!vermagic_matches(
            "6.12.117+deb12-amd64 SMP",
            "6.1.0-47-amd64"
        ));
    }

    #[test]
    fn hint_names_the_missing_libraries() {
        let tail = "modpost: error while loading shared libraries: libelf.so.1";
        assert!(hint(tail, None).contains("libelf1"));
        assert!(
            hint(tail, Some(Path::new("/c/u/root"))).contains("`build:` in images/userspace.yaml")
        );
        assert_eq!(hint("crasher.c:3: error: expected ';'", None), "");
    }

    #[test]
    fn make_builds_the_module_folder_against_the_headers() {
        let args = make_args(
            Path::new("/kdrill/tree/usr/src/linux-headers-6.12.117+deb13-amd64"),
            Path::new("/kdrill/module"),
        );
        assert_eq!(
            args,
            [
                "-C",
                "/kdrill/tree/usr/src/linux-headers-6.12.117+deb13-amd64",
                "M=/kdrill/module",
                "CONFIG_DEBUG_INFO_BTF_MODULES=",
                "modules"
            ]
        );
    }
}
