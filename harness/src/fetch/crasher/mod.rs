//! The crasher kernel module (`images/crasher/`): built against the guest kernel's own headers with the compiler they name, cached per kernel release.
//!
//! Debian kernels: the entry's pinned `headers:` packages are fetched like the kernel, merged into
//! one build tree in a scratch folder (hard links into the cache, so it costs no space), with the
//! `-amd64` Makefile's `include /usr/src/…` pointed into that tree as the build sees it and every
//! symlink checked to resolve inside it, never into the host's `/usr/src` or `/usr/lib`; built in
//! a chroot of the kernel's release's sysroot (`fetch/userspace/`: its compiler, gcc-14 for
//! trixie, make, libc, libelf), the scratch folder at `/kdrill`, so a host without that compiler
//! is no reason to skip. Local kernels: their `build` link, the host's make and compiler. Then
//! `make -C <headers> M=<dir> modules` with a deadline; `vermagic` must name the release.

mod make;
mod tree;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::fetch::apt::pin::Pinned;
use crate::fetch::kernel::{FetchError, KernelFiles};
use crate::fetch::userspace::UserspaceError;
use crate::host::lock::{FileLock, LockError};
use crate::host::process::RunError;
use crate::host::tools::{self, MissingTool};
use crate::spec::kernel::{KernelSource, KernelSpec};
use make::{check_module, compiler_of, make_args, run_make};
use tree::assemble_debian;

/// The module's source, compiled into kdrill so that building it needs no checkout of the project.
/// Editing a file here rebuilds kdrill (cargo tracks `include_str!`), which changes the cache key.
const SOURCES: &[(&str, &str)] = &[
    (
        "crasher.c",
        include_str!("../../../../images/crasher/crasher.c"),
    ),
    ("Kbuild", include_str!("../../../../images/crasher/Kbuild")),
];

/// Header packages a Debian entry pins (headers, their -common, kbuild).
const HEADER_PACKAGES: u32 = 3;
/// The longest getting the module can take: fetching its header packages, making the build
/// sysroot, and the build.
pub const BUILD_WORST: Duration = Duration::from_secs(
    HEADER_PACKAGES as u64 * crate::fetch::kernel::PACKAGE_WORST.as_secs()
        + crate::fetch::userspace::BUILD_WORST.as_secs()
        + make::MAKE_DEADLINE.as_secs(),
);
/// Waiting for another kdrill building the same module: what its build may take (the wait
/// stands in for the work, as for a kernel fetch).
const LOCK_WAIT: Duration = BUILD_WORST;

/// What `make` produces, and the name it is cached under.
pub const MODULE_FILE: &str = "crasher.ko";

#[derive(Debug, thiserror::Error)]
pub enum CrasherError {
    #[error(transparent)]
    MissingTool(#[from] MissingTool),
    /// Boxed: a fetch error names packages, versions and archives.
    #[error(transparent)]
    Fetch(Box<FetchError>),
    #[error(transparent)]
    Run(RunError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Userspace(Box<UserspaceError>),
    #[error("kernel entry `{kernel}` pins no `headers:` packages, so the crasher module cannot be built for it: add linux-headers-<release>, its -common package and linux-kbuild-<series> (see kernels/debian-6.1.yaml)")]
    NoHeaders { kernel: String },
    #[error("the `headers:` packages of kernel entry `{kernel}` hold no {expected}: pin the headers of the kernel package's exact version")]
    WrongHeaders { kernel: String, expected: PathBuf },
    #[error("{path}: not a kernel build tree (it needs a Makefile and a .config): point the local kernel's `build` link at the tree it was built in, or at its headers")]
    NotBuildTree { path: PathBuf },
    #[error("{path}: {detail}")]
    Layout { path: PathBuf, detail: String },
    #[error("{path}: kbuild cannot build in a folder whose path has whitespace: set KDRILL_CACHE to a folder without it")]
    Whitespace { path: PathBuf },
    #[error("building the crasher module for {release} failed ({status}); full output in {log}, last lines:\n{tail}{hint}")]
    Make {
        release: String,
        status: String,
        log: PathBuf,
        tail: String,
        hint: String,
    },
    #[error("building the crasher module for {release} took over {}s and was killed; full output in {log}, last lines:\n{tail}", .after.as_secs())]
    Timeout {
        release: String,
        after: Duration,
        log: PathBuf,
        tail: String,
    },
    #[error("{path}: vermagic is `{vermagic}`, not kernel release {release}: the headers used do not belong to this kernel")]
    Vermagic {
        path: PathBuf,
        vermagic: String,
        release: String,
    },
    #[error("{path}: not a usable kernel module: {detail}")]
    BadModule { path: PathBuf, detail: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<UserspaceError> for CrasherError {
    fn from(err: UserspaceError) -> Self {
        CrasherError::Userspace(Box::new(err))
    }
}

impl From<FetchError> for CrasherError {
    fn from(err: FetchError) -> Self {
        CrasherError::Fetch(Box::new(err))
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CrasherError + '_ {
    move |source| CrasherError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What the module is built against.
enum Against<'a> {
    /// A Debian kernel: its pinned header packages, built in its release's sysroot.
    Debian {
        kernel: &'a KernelSpec,
        pinned: &'a Pinned,
        release: String,
    },
    /// A local kernel: its build tree (`<modules>/build`), built on the host.
    Local { tree: PathBuf },
}

/// Returns the cached `crasher.ko` for this kernel, building it first when the release, the
/// module's source or the headers pinned changed since the last build. Parallel callers wait
/// for one build (`flock`).
pub fn build(
    kernel: &KernelSpec,
    files: &KernelFiles,
    cache: &Path,
) -> Result<PathBuf, CrasherError> {
    let release = &files.release;
    let against = match &kernel.source {
        KernelSource::Debian { .. } | KernelSource::Image => match &files.packages {
            Some(pinned) if !pinned.headers.is_empty() => Against::Debian {
                kernel,
                pinned,
                release: kernel.own_userspace().name().to_string(),
            },
            _ => {
                return Err(CrasherError::NoHeaders {
                    kernel: kernel.id.clone(),
                })
            }
        },
        KernelSource::Local { .. } => {
            let tree = files.modules.join("build");
            if !(tree.join("Makefile").is_file() && tree.join(".config").is_file()) {
                return Err(CrasherError::NotBuildTree { path: tree });
            }
            Against::Local { tree }
        }
    };
    let key = cache_key(SOURCES, &fingerprint(&against)?);
    let folder = cache.join("crasher");
    std::fs::create_dir_all(&folder).map_err(io(&folder))?;
    let name = format!("{release}-{key}");
    let _lock = FileLock::acquire(&folder.join(format!("{name}.lock")), LOCK_WAIT)?;
    let done = folder.join(&name);
    let ko = done.join(MODULE_FILE);
    if ko.is_file() {
        match check_module(&ko, release) {
            Ok(()) => return Ok(ko),
            Err(err) => {
                eprintln!("kdrill: cached crasher module is unusable ({err}); building it again")
            }
        }
    }

    eprintln!("kdrill: building the crasher module for {release}");
    let scratch = folder.join(format!("{name}.partial"));
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch).map_err(io(&scratch))?;
    }
    let built = compile(&against, release, cache, &scratch)?;
    std::fs::create_dir_all(&done).map_err(io(&done))?;
    let partial = done.join(format!("{MODULE_FILE}.partial"));
    std::fs::copy(&built, &partial).map_err(io(&partial))?;
    std::fs::rename(&partial, &ko).map_err(io(&ko))?;
    // Kept beside the module: the compiler's warnings, if any, are worth a look.
    let log = done.join("make.log");
    std::fs::copy(scratch.join("make.log"), &log).map_err(io(&log))?;
    // Only a successful build's scratch is dropped: a failed one keeps make.log for the error.
    std::fs::remove_dir_all(&scratch).map_err(io(&scratch))?;
    Ok(ko)
}

/// Builds the module in `scratch` (`tree/`: the headers, `module/`: source and output,
/// `make.log`) and returns the checked `crasher.ko`.
fn compile(
    against: &Against,
    release: &str,
    cache: &Path,
    scratch: &Path,
) -> Result<PathBuf, CrasherError> {
    let module_dir = scratch.join("module");
    std::fs::create_dir_all(&module_dir).map_err(io(&module_dir))?;
    for (file, text) in SOURCES {
        let path = module_dir.join(file);
        std::fs::write(&path, text).map_err(io(&path))?;
    }
    let log = scratch.join("make.log");
    match against {
        Against::Debian {
            kernel,
            pinned,
            release: userspace,
        } => {
            // In the chroot, `scratch` is `/kdrill`.
            let work = Path::new(crate::fetch::userspace::run::WORK);
            let seen = work.join("tree");
            let headers = assemble_debian(
                &kernel.id,
                pinned,
                cache,
                &scratch.join("tree"),
                &seen,
                release,
            )?;
            let compiler = compiler_of(&headers);
            let data = crate::fetch::userspace::data(kernel.project_root())?;
            let packages = [data.build.clone(), vec![compiler]].concat();
            let sysroot = crate::fetch::userspace::sysroot(
                userspace,
                &packages,
                kernel.project_root(),
                cache,
                &|_| {},
            )?;
            if sysroot.fresh {
                eprintln!("kdrill: {}", sysroot.describe());
            }
            let inside = seen.join(
                headers
                    .strip_prefix(scratch.join("tree"))
                    .unwrap_or(&headers),
            );
            let mut argv: Vec<std::ffi::OsString> = vec!["make".into()];
            argv.extend(make_args(&inside, &work.join("module")));
            let command = crate::fetch::userspace::run::chroot_command(
                &sysroot.root,
                scratch,
                &argv,
                tools::is_root(),
            );
            run_make(command, &log, release, Some(&sysroot.root))?;
        }
        Against::Local { tree } => {
            if scratch.to_string_lossy().chars().any(char::is_whitespace) {
                return Err(CrasherError::Whitespace {
                    path: scratch.into(),
                });
            }
            let make = tools::require("make")?;
            tools::require(&compiler_of(tree))?;
            let mut command = std::process::Command::new(make);
            command.args(make_args(tree, &module_dir));
            run_make(command, &log, release, None)?;
        }
    }
    let built = module_dir.join(MODULE_FILE);
    check_module(&built, release)?;
    Ok(built)
}

/// What besides the source decides the built module: the header pins, or a local tree's config
/// and symbol versions (a rebuilt local kernel keeps its release but may change symbol CRCs).
fn fingerprint(against: &Against) -> Result<String, CrasherError> {
    let mut text = String::new();
    match against {
        Against::Debian {
            pinned, release, ..
        } => {
            // Built in that release's sysroot (an older kdrill built with the host's compiler).
            text.push_str(&format!("built in the {release} sysroot\n"));
            for pkg in &pinned.headers {
                text.push_str(&format!("{}={} {}\n", pkg.package, pkg.version, pkg.sha256));
            }
        }
        Against::Local { tree } => {
            text.push_str(&format!("local {}\n", tree.display()));
            for file in [".config", "Module.symvers"] {
                let path = tree.join(file);
                if path.is_file() {
                    text.push_str(&format!(
                        "{file} {}\n",
                        crate::fetch::kernel::sha256_file(&path)?
                    ));
                }
            }
        }
    }
    Ok(text)
}

/// 12 hex digits of sha256 over the source files and `inputs`: enough to tell builds apart.
fn cache_key(sources: &[(&str, &str)], inputs: &str) -> String {
    let mut hasher = Sha256::new();
    for (name, text) in sources {
        // Length-prefixed, so moving bytes between a name and a file changes the key.
        for part in [name.as_bytes(), text.as_bytes()] {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
    }
    hasher.update(inputs.as_bytes());
    hasher.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::kernel::GuestSize;

    #[test]
    fn cache_key_follows_source_and_inputs() {
        let key = cache_key(
            &[("crasher.c", "int x;"), ("Kbuild", "obj-m := crasher.o")],
            "h=1",
        );
        assert_eq!(key.len(), 12);
        assert!(key.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(
            key,
            cache_key(
                &[("crasher.c", "int x;"), ("Kbuild", "obj-m := crasher.o")],
                "h=1"
            )
        );
        assert_ne!(
            key,
            cache_key(
                &[("crasher.c", "int y;"), ("Kbuild", "obj-m := crasher.o")],
                "h=1"
            )
        );
        assert_ne!(
            key,
            cache_key(
                &[("crasher.c", "int x;"), ("Kbuild", "obj-m := crasher.o")],
                "h=2"
            )
        );
        assert_ne!(
            cache_key(&[("a", "bc")], ""),
            cache_key(&[("ab", "c")], ""),
            "bytes moved between name and text"
        );
    }

    #[test]
    fn the_embedded_source_is_the_module() {
        let (_, c) = SOURCES[0];
        for word in [
            "oops",
            "bug",
            "panic",
            "softlockup",
            "hardlockup",
            "kdrill_hang_irqs_off",
        ] {
            assert!(c.contains(word), "crasher.c lacks {word}");
        }
        assert!(c.contains("MODULE_LICENSE(\"GPL\")"));
        assert!(SOURCES[1].1.contains("obj-m := crasher.o"));
    }

    fn spec(source: KernelSource) -> KernelSpec {
        KernelSpec {
            id: "k".into(),
            why: "test".into(),
            source,
            guest: GuestSize::default(),
            skip: Default::default(),
            userspace: None,
            path: PathBuf::new(),
        }
    }

    #[test]
    fn a_local_kernel_without_build_tree_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let modules = dir.path().join("lib/modules/9.9");
        std::fs::create_dir_all(&modules).unwrap();
        let kernel = spec(KernelSource::Local {
            vmlinuz: dir.path().join("bzImage"),
            modules: modules.clone(),
        });
        let files = KernelFiles {
            release: "9.9".into(),
            vmlinuz: dir.path().join("bzImage"),
            modules: modules.clone(),
            packages: None,
        };
        let err = build(&kernel, &files, &dir.path().join("cache"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!("{}: not a kernel build tree (it needs a Makefile and a .config): point the local kernel's `build` link at the tree it was built in, or at its headers", modules.join("build").display())
        );
    }

    #[test]
    fn a_debian_kernel_without_headers_is_refused() {
        let kernel = spec(KernelSource::Debian {
            suite: "bookworm".into(),
            series: None,
            flavour: None,
            package: Some("linux-image-9.9".into()),
            version: "1".into(),
            sha256: Some("0".into()),
            parts: Vec::new(),
            headers: Vec::new(),
        });
        let files = KernelFiles {
            release: "9.9".into(),
            vmlinuz: "/nonexistent".into(),
            modules: "/nonexistent".into(),
            packages: None,
        };
        let err = build(&kernel, &files, Path::new("/nonexistent"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("kernel entry `k` pins no `headers:` packages"),
            "{err}"
        );
    }
}
