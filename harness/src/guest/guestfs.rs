//! libguestfs (guestfish, virt-customize) made usable on a host with no kernel of its own in
//! `/boot`, no KVM and no device-mapper: supermin's appliance boots a Debian kernel kdrill already
//! caches, its modules prepared in the cache, never in `/lib/modules`.
//!
//! supermin builds libguestfs' appliance from the host's kernel, `/boot/vmlinuz-*` and
//! `/lib/modules/<release>`. A container or a CI machine has neither, so [`Guestfs::prepare`]
//! names a cached kernel package through `SUPERMIN_KERNEL`, `SUPERMIN_KERNEL_VERSION` and
//! `SUPERMIN_MODULES`. A Debian kernel package ships no `modules.dep` (its postinst runs depmod),
//! and supermin reads it to put the appliance's modules and their dependencies in its initrd: the
//! modules are hard-linked (copied across filesystems) to
//! `<cache>/guestfs/<release>/lib/modules/<release>` and `depmod -b` writes the index there. The
//! appliance itself is cached beside it (`LIBGUESTFS_CACHEDIR`), so a new kernel builds a new one.
//! The appliance's own `mkfs`, LVM and device-mapper run inside it: the host needs none of them.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::fetch::kernel::KernelFiles;
use crate::host::lock::{FileLock, LockError};
use crate::host::process::{self, RunError};
use crate::host::tools;
use crate::vm::accel::{self, Accel};

/// The appliance's memory when the caller's environment does not set `LIBGUESTFS_MEMSIZE`:
/// libguestfs' default (1280 MiB on Debian 12) is tight for `update-initramfs` with
/// `MODULES=most` inside a guest tree; 2048 MiB was measured to build both golden images.
const MEMSIZE_MIB: u32 = 2048;

/// `depmod -b` over one kernel's modules: about 2 s on a 2-core machine.
const DEPMOD_LIMIT: Duration = Duration::from_secs(300);

/// Another process preparing the same kernel's modules: a copy and a depmod.
const LOCK_LIMIT: Duration = Duration::from_secs(600);

/// The programs libguestfs needs on the host, with the Debian package of each. libguestfs-tools
/// brings guestfish, guestfs-tools virt-customize; both pull QEMU, so they are installed after
/// kdrill's QEMU set (`kdrill doctor --install`), never before it.
const PROGRAMS: &[(&str, &str)] = &[
    ("guestfish", "libguestfs-tools"),
    ("virt-customize", "guestfs-tools"),
    ("supermin", "supermin"),
    ("depmod", "kmod"),
    ("qemu-img", "qemu-utils"),
    ("qemu-system-x86_64", "qemu-system-x86"),
];

/// What libguestfs' programs run with on this host (the environment of [`Guestfs::command`]).
#[derive(Debug, Clone)]
pub struct Guestfs {
    env: Vec<(&'static str, OsString)>,
}

#[derive(Debug, thiserror::Error)]
pub enum GuestfsError {
    #[error("`{program}` is not installed (package {package}): after `sudo kdrill doctor --install` (kdrill's QEMU first: these pull QEMU too), run `sudo apt-get install --no-install-recommends libguestfs-tools libguestfs-xfs`")]
    Missing { program: String, package: String },
    #[error("the kernel {release} has no modules folder at {}: its package was not unpacked whole; remove it from the cache to fetch it again", .path.display())]
    NoModules { release: String, path: PathBuf },
    #[error("cannot prepare supermin's copy of the {release} modules at {}", .path.display())]
    Io {
        release: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`depmod -b` for the {release} modules failed: {detail}")]
    Depmod { release: String, detail: String },
    #[error("cannot run depmod for the {release} modules")]
    Run {
        release: String,
        #[source]
        source: RunError,
    },
    #[error(transparent)]
    Lock(#[from] LockError),
}

impl Guestfs {
    /// `kernel`: an unpacked Debian kernel package kdrill already caches, booted by supermin's
    /// appliance in place of the host's own; `cache`: kdrill's cache folder, where the prepared
    /// modules (with their `depmod` index) and the appliance go. Checks that libguestfs' programs
    /// are installed; prepares the modules once per kernel release (later calls only look).
    pub fn prepare(cache: &Path, kernel: &KernelFiles) -> Result<Guestfs, GuestfsError> {
        for (program, package) in PROGRAMS {
            if tools::find(program).is_none() {
                return Err(GuestfsError::Missing {
                    program: program.to_string(),
                    package: package.to_string(),
                });
            }
        }
        let dir = cache.join("guestfs").join(&kernel.release);
        let modules = prepare_modules(&dir, kernel)?;
        let kvm = kvm_runs(cache, kernel)?;
        Ok(Guestfs {
            env: environment(&Inputs {
                vmlinuz: &kernel.vmlinuz,
                release: &kernel.release,
                modules: &modules,
                appliance_cache: &dir,
                kvm,
                memsize: std::env::var_os("LIBGUESTFS_MEMSIZE"),
            }),
        })
    }

    /// A `Command` for `program` (guestfish, virt-customize, a builder script through `bash`…)
    /// with libguestfs' environment set. The caller runs it under a deadline with
    /// [`crate::host::process`].
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// The variables [`Guestfs::command`] sets, in order (for logs and evidence).
    pub fn env(&self) -> &[(&'static str, OsString)] {
        &self.env
    }
}

/// What the environment is made of.
struct Inputs<'a> {
    vmlinuz: &'a Path,
    release: &'a str,
    modules: &'a Path,
    appliance_cache: &'a Path,
    kvm: bool,
    memsize: Option<OsString>,
}

/// libguestfs' environment (pure). `direct`: libguestfs runs QEMU itself, no libvirt daemon;
/// `force_tcg` unless KVM runs guests: libguestfs tries KVM whenever `/dev/kvm` opens.
fn environment(inputs: &Inputs) -> Vec<(&'static str, OsString)> {
    let mut env = vec![("LIBGUESTFS_BACKEND", OsString::from("direct"))];
    if !inputs.kvm {
        env.push(("LIBGUESTFS_BACKEND_SETTINGS", OsString::from("force_tcg")));
    }
    let memsize = inputs
        .memsize
        .clone()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| OsString::from(MEMSIZE_MIB.to_string()));
    env.push(("LIBGUESTFS_MEMSIZE", memsize));
    env.push((
        "LIBGUESTFS_CACHEDIR",
        inputs.appliance_cache.as_os_str().to_owned(),
    ));
    env.push(("SUPERMIN_KERNEL", inputs.vmlinuz.as_os_str().to_owned()));
    env.push(("SUPERMIN_KERNEL_VERSION", OsString::from(inputs.release)));
    env.push(("SUPERMIN_MODULES", inputs.modules.as_os_str().to_owned()));
    env
}

/// Does a KVM guest really run here? libguestfs only checks that `/dev/kvm` opens, and on a host
/// without nested virtualisation it opens and QEMU then aborts ("failed to set MSR 0x10a",
/// measured): so kdrill's own answer decides, `KDRILL_ACCEL` or the probe guest booting the same
/// kernel under KVM (cached per host boot, `vm::accel`).
fn kvm_runs(cache: &Path, kernel: &KernelFiles) -> Result<bool, GuestfsError> {
    let qemu = tools::find("qemu-system-x86_64").ok_or_else(|| GuestfsError::Missing {
        program: "qemu-system-x86_64".into(),
        package: "qemu-system-x86".into(),
    })?;
    let scratch = cache.join("guestfs").join("accel-probe");
    std::fs::create_dir_all(&scratch).map_err(|source| GuestfsError::Io {
        release: kernel.release.clone(),
        path: scratch.clone(),
        source,
    })?;
    let (accel, _why) = accel::choose(&qemu, &kernel.vmlinuz, cache, &scratch);
    Ok(accel == Accel::Kvm)
}

/// The stamp that says `dir` holds a finished copy, and of which folder.
fn stamp(dir: &Path) -> PathBuf {
    dir.join("source")
}

/// `dir/lib/modules/<release>`: the kernel's modules with a `depmod` index, made once (under a
/// lock, in a scratch folder renamed into place), reused while the stamp names the same source.
fn prepare_modules(dir: &Path, kernel: &KernelFiles) -> Result<PathBuf, GuestfsError> {
    let release = &kernel.release;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| GuestfsError::Io {
            release: release.clone(),
            path,
            source,
        }
    };
    if !kernel.modules.is_dir() {
        return Err(GuestfsError::NoModules {
            release: release.clone(),
            path: kernel.modules.clone(),
        });
    }
    let modules = dir.join("lib/modules").join(release);
    let source = kernel.modules.to_string_lossy().into_owned();
    if is_ready(dir, &source) {
        return Ok(modules);
    }
    let parent = dir.parent().unwrap_or(dir);
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let _lock = FileLock::acquire(&parent.join(format!("{release}.lock")), LOCK_LIMIT)?;
    if is_ready(dir, &source) {
        return Ok(modules);
    }
    let scratch = parent.join(format!(".{release}.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let staged = scratch.join("lib/modules").join(release);
    link_tree(&kernel.modules, &staged).map_err(io(&staged))?;
    let mut depmod = Command::new("depmod");
    depmod.arg("-b").arg(&scratch).arg(release);
    let done = process::run(&mut depmod, DEPMOD_LIMIT).map_err(|source| GuestfsError::Run {
        release: release.clone(),
        source,
    })?;
    if !done.status.success() || !staged.join("modules.dep").is_file() {
        let _ = std::fs::remove_dir_all(&scratch);
        return Err(GuestfsError::Depmod {
            release: release.clone(),
            detail: format!(
                "{}: {}",
                done.status,
                String::from_utf8_lossy(&done.stderr).trim()
            ),
        });
    }
    std::fs::write(stamp(&scratch), &source).map_err(io(&scratch))?;
    // A stale copy (another source) goes; its appliance cache with it, as it boots that copy.
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::rename(&scratch, dir).map_err(io(dir))?;
    Ok(modules)
}

fn is_ready(dir: &Path, source: &str) -> bool {
    std::fs::read_to_string(stamp(dir)).is_ok_and(|s| s == source)
        && dir.join("lib/modules").is_dir()
}

/// Mirrors the tree `from` at `to`: folders made, files hard-linked (copied when `to` is on
/// another filesystem), symbolic links recreated. depmod only adds files, so the cached package
/// is never written through a link.
fn link_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            link_tree(&src, &dst)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else if std::fs::hard_link(&src, &dst).is_err() {
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(kvm: bool, memsize: Option<&str>, expected: &[(&str, &str)]) {
        let env = environment(&Inputs {
            vmlinuz: Path::new("/c/debs/k/root/boot/vmlinuz-6.1.0-47-amd64"),
            release: "6.1.0-47-amd64",
            modules: Path::new("/c/guestfs/6.1.0-47-amd64/lib/modules/6.1.0-47-amd64"),
            appliance_cache: Path::new("/c/guestfs/6.1.0-47-amd64"),
            kvm,
            memsize: memsize.map(OsString::from),
        });
        let got: Vec<(&str, String)> = env
            .iter()
            .map(|(k, v)| (*k, v.to_string_lossy().into_owned()))
            .collect();
        let expected: Vec<(&str, String)> =
            expected.iter().map(|(k, v)| (*k, v.to_string())).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn without_kvm_libguestfs_is_told_to_use_tcg() {
        check(
            false,
            None,
            &[
                ("LIBGUESTFS_BACKEND", "direct"),
                ("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg"),
                ("LIBGUESTFS_MEMSIZE", "2048"),
                ("LIBGUESTFS_CACHEDIR", "/c/guestfs/6.1.0-47-amd64"),
                (
                    "SUPERMIN_KERNEL",
                    "/c/debs/k/root/boot/vmlinuz-6.1.0-47-amd64",
                ),
                ("SUPERMIN_KERNEL_VERSION", "6.1.0-47-amd64"),
                (
                    "SUPERMIN_MODULES",
                    "/c/guestfs/6.1.0-47-amd64/lib/modules/6.1.0-47-amd64",
                ),
            ],
        );
    }

    #[test]
    fn with_kvm_and_the_callers_memsize() {
        check(
            true,
            Some("4096"),
            &[
                ("LIBGUESTFS_BACKEND", "direct"),
                ("LIBGUESTFS_MEMSIZE", "4096"),
                ("LIBGUESTFS_CACHEDIR", "/c/guestfs/6.1.0-47-amd64"),
                (
                    "SUPERMIN_KERNEL",
                    "/c/debs/k/root/boot/vmlinuz-6.1.0-47-amd64",
                ),
                ("SUPERMIN_KERNEL_VERSION", "6.1.0-47-amd64"),
                (
                    "SUPERMIN_MODULES",
                    "/c/guestfs/6.1.0-47-amd64/lib/modules/6.1.0-47-amd64",
                ),
            ],
        );
        // An empty LIBGUESTFS_MEMSIZE is no setting.
        let env = environment(&Inputs {
            vmlinuz: Path::new("/v"),
            release: "r",
            modules: Path::new("/m"),
            appliance_cache: Path::new("/a"),
            kvm: true,
            memsize: Some(OsString::new()),
        });
        assert!(env.contains(&("LIBGUESTFS_MEMSIZE", OsString::from("2048"))));
    }

    #[test]
    fn the_module_tree_is_linked_and_indexed_beside_the_package_not_in_it() {
        let tmp = tempfile::tempdir().unwrap();
        let package = tmp.path().join("debs/root/lib/modules/9.9.9-test");
        std::fs::create_dir_all(package.join("kernel/fs")).unwrap();
        std::fs::write(package.join("kernel/fs/a.ko"), b"not really a module").unwrap();
        std::fs::write(package.join("modules.order"), b"kernel/fs/a.ko\n").unwrap();
        std::os::unix::fs::symlink("/nowhere/build", package.join("build")).unwrap();
        let to = tmp.path().join("copy");
        link_tree(&package, &to).unwrap();
        assert_eq!(
            std::fs::read(to.join("kernel/fs/a.ko")).unwrap(),
            b"not really a module"
        );
        assert_eq!(
            std::fs::read_link(to.join("build")).unwrap(),
            Path::new("/nowhere/build")
        );
        std::fs::write(to.join("modules.dep"), b"").unwrap();
        assert!(!package.join("modules.dep").exists());
    }

    #[test]
    fn a_copy_is_ready_only_when_its_stamp_names_the_same_source() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("6.1.0-47-amd64");
        assert!(!is_ready(&dir, "/a"));
        std::fs::create_dir_all(dir.join("lib/modules")).unwrap();
        std::fs::write(stamp(&dir), "/a").unwrap();
        assert!(is_ready(&dir, "/a"));
        assert!(!is_ready(&dir, "/b"));
    }

    #[test]
    fn a_missing_program_names_its_package_and_the_order_to_install() {
        let err = GuestfsError::Missing {
            program: "guestfish".into(),
            package: "libguestfs-tools".into(),
        };
        let text = err.to_string();
        assert!(text.starts_with("`guestfish` is not installed (package libguestfs-tools)"));
        assert!(text.contains("kdrill doctor --install"));
    }
}
