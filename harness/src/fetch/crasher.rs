//! The crasher kernel module (`images/crasher/`): built with the host gcc against the guest kernel's own headers, cached per kernel release.
//!
//! Debian kernels: the entry's pinned `headers:` packages are fetched like the kernel, merged into
//! one build tree in a scratch folder (hard links into the cache, so it costs no space), with the
//! `-amd64` Makefile's `include /usr/src/…` pointed into that tree and every symlink checked to
//! resolve inside it, never into the host's `/usr/src` or `/usr/lib`. Local kernels: their
//! modules folder's `build` link must be a kernel build tree. Then `make -C <headers> M=<dir>
//! modules` with a deadline, and the result's `vermagic` must name the kernel release.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::fetch::kernel::{FetchError, FileLock, KernelFiles};
use crate::guest::modules;
use crate::host::process::GroupChild;
use crate::host::tools::{self, MissingTool};
use crate::spec::kernel::{DebPackage, KernelSource, KernelSpec};
use crate::vm::console::last_lines;

/// The module's source, compiled into kdrill so that building it needs no checkout of the project.
/// Editing a file here rebuilds kdrill (cargo tracks `include_str!`), which changes the cache key.
const SOURCES: &[(&str, &str)] = &[
    (
        "crasher.c",
        include_str!("../../../images/crasher/crasher.c"),
    ),
    ("Kbuild", include_str!("../../../images/crasher/Kbuild")),
];

/// What `make` produces, and the name it is cached under.
pub const MODULE_FILE: &str = "crasher.ko";

/// A build took 1–4 s here; the margin covers a machine whose 2 cores are busy with VM tests.
const MAKE_DEADLINE: Duration = Duration::from_secs(300);

/// How many lines of make's output a build error carries.
const TAIL_LINES: usize = 30;

#[derive(Debug, thiserror::Error)]
pub enum CrasherError {
    #[error(transparent)]
    MissingTool(#[from] MissingTool),
    #[error(transparent)]
    Fetch(#[from] FetchError),
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

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CrasherError + '_ {
    move |source| CrasherError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What the module is built against.
enum Against<'a> {
    /// A Debian kernel: its pinned header packages.
    Debian {
        kernel: &'a str,
        headers: &'a [DebPackage],
    },
    /// A local kernel: its build tree (`<modules>/build`).
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
        KernelSource::Debian { headers, .. } if headers.is_empty() => {
            return Err(CrasherError::NoHeaders {
                kernel: kernel.id.clone(),
            })
        }
        KernelSource::Debian { headers, .. } => Against::Debian {
            kernel: &kernel.id,
            headers,
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
    let _lock = FileLock::acquire(&folder.join(format!("{name}.lock")))?;
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
    if scratch.to_string_lossy().chars().any(char::is_whitespace) {
        return Err(CrasherError::Whitespace { path: scratch });
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
    let headers = match against {
        Against::Debian { kernel, headers } => {
            assemble_debian(kernel, headers, cache, &scratch.join("tree"), release)?
        }
        Against::Local { tree } => tree.clone(),
    };
    let module_dir = scratch.join("module");
    std::fs::create_dir_all(&module_dir).map_err(io(&module_dir))?;
    for (file, text) in SOURCES {
        let path = module_dir.join(file);
        std::fs::write(&path, text).map_err(io(&path))?;
    }
    let make = tools::require("make")?;
    tools::require(&compiler_of(&headers))?;
    let log = scratch.join("make.log");
    run_make(&make, &headers, &module_dir, &log, release)?;
    let built = module_dir.join(MODULE_FILE);
    check_module(&built, release)?;
    Ok(built)
}

/// What besides the source decides the built module: the header pins, or a local tree's config
/// and symbol versions (a rebuilt local kernel keeps its release but may change symbol CRCs).
fn fingerprint(against: &Against) -> Result<String, CrasherError> {
    let mut text = String::new();
    match against {
        Against::Debian { headers, .. } => {
            for pkg in *headers {
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

/// What a build needs from the header packages: the headers (`usr/src`) and kbuild's programs
/// (`usr/lib`). Not `lib/modules/<release>/{build,source}`: links to the host's `/usr/src`.
const MERGED: &[&str] = &["usr/src", "usr/lib"];

/// Merges the header packages into one tree at `tree` and returns its
/// `usr/src/linux-headers-<release>` folder, ready for `make -C`.
fn assemble_debian(
    kernel: &str,
    packages: &[DebPackage],
    cache: &Path,
    tree: &Path,
    release: &str,
) -> Result<PathBuf, CrasherError> {
    let roots = packages
        .iter()
        .map(|pkg| crate::fetch::kernel::fetch_package(pkg, cache))
        .collect::<Result<Vec<_>, _>>()?;
    merge_roots(&roots, tree)?;
    let headers = tree
        .join("usr/src")
        .join(format!("linux-headers-{release}"));
    let makefile = headers.join("Makefile");
    if !makefile.is_file() {
        return Err(CrasherError::WrongHeaders {
            kernel: kernel.into(),
            expected: headers.strip_prefix(tree).unwrap_or(&headers).into(),
        });
    }
    let text = std::fs::read_to_string(&makefile).map_err(io(&makefile))?;
    let (rewritten, included) = rewrite_includes(&text, tree);
    if let Some(path) = included.iter().find(|p| !p.is_file()) {
        return Err(CrasherError::Layout {
            path: makefile,
            detail: format!(
                "includes {}, which none of the `headers:` packages of kernel entry `{kernel}` provides: add linux-headers-<abi>-common",
                path.display()
            ),
        });
    }
    // A hard link into the cache: replace the file, never write through it.
    std::fs::remove_file(&makefile).map_err(io(&makefile))?;
    std::fs::write(&makefile, rewritten).map_err(io(&makefile))?;
    Ok(headers)
}

/// Merges the [`MERGED`] folders of extracted packages into `tree`; every symlink must resolve inside it.
fn merge_roots(roots: &[PathBuf], tree: &Path) -> Result<(), CrasherError> {
    let mut links = Vec::new();
    for root in roots {
        for sub in MERGED {
            if root.join(sub).is_dir() {
                links.extend(merge_tree(&root.join(sub), &tree.join(sub), tree)?);
            }
        }
    }
    check_links_inside(&links, tree)
}

/// Recreates `src` under `dst`: folders made, files hard-linked (copied across file systems),
/// symlinks recreated with absolute targets moved under `tree`. Returns the symlinks made.
fn merge_tree(src: &Path, dst: &Path, tree: &Path) -> Result<Vec<PathBuf>, CrasherError> {
    let mut links = Vec::new();
    let mut stack = vec![(src.to_path_buf(), dst.to_path_buf())];
    while let Some((from, to)) = stack.pop() {
        std::fs::create_dir_all(&to).map_err(io(&to))?;
        for entry in std::fs::read_dir(&from).map_err(io(&from))? {
            let entry = entry.map_err(io(&from))?;
            let (path, target) = (entry.path(), to.join(entry.file_name()));
            let kind = entry.file_type().map_err(io(&path))?;
            if kind.is_dir() {
                stack.push((path, target));
                continue;
            }
            if target.symlink_metadata().is_ok() {
                return Err(CrasherError::Layout {
                    path: target,
                    detail:
                        "two header packages provide this file: pin packages of one kernel version"
                            .into(),
                });
            }
            if kind.is_symlink() {
                let link = std::fs::read_link(&path).map_err(io(&path))?;
                let link = match link.strip_prefix("/") {
                    Ok(inside) => tree.join(inside),
                    Err(_) => link,
                };
                std::os::unix::fs::symlink(&link, &target).map_err(io(&target))?;
                links.push(target);
            } else if std::fs::hard_link(&path, &target).is_err() {
                std::fs::copy(&path, &target).map_err(io(&target))?;
            }
        }
    }
    Ok(links)
}

/// Every symlink must resolve, and inside `tree`: a dangling one means a package is missing.
fn check_links_inside(links: &[PathBuf], tree: &Path) -> Result<(), CrasherError> {
    let root = tree.canonicalize().map_err(io(tree))?;
    for link in links {
        match link.canonicalize() {
            Ok(real) if real.starts_with(&root) => {}
            resolved => {
                let target = std::fs::read_link(link).unwrap_or_default();
                let detail = match resolved {
                    Ok(real) => format!("links to {}, outside the header tree", real.display()),
                    Err(_) => format!(
                        "links to {}, which no header package provides: is linux-kbuild-<series> missing from `headers:`?",
                        target.display()
                    ),
                };
                return Err(CrasherError::Layout {
                    path: link.strip_prefix(tree).unwrap_or(link).into(),
                    detail,
                });
            }
        }
    }
    Ok(())
}

/// Points absolute `include /…` lines (Debian's `include /usr/src/linux-headers-<abi>-common/Makefile`)
/// under `tree`; returns the new text and the files now included.
fn rewrite_includes(makefile: &str, tree: &Path) -> (String, Vec<PathBuf>) {
    let mut text = String::with_capacity(makefile.len());
    let mut included = Vec::new();
    for line in makefile.split_inclusive('\n') {
        match line.strip_prefix("include /") {
            Some(rest) => {
                let (target, newline) = match rest.strip_suffix('\n') {
                    Some(target) => (target.trim_end(), "\n"),
                    None => (rest.trim_end(), ""),
                };
                let path = tree.join(target);
                text.push_str(&format!("include {}{newline}", path.display()));
                included.push(path);
            }
            None => text.push_str(line),
        }
    }
    (text, included)
}

/// The compiler the headers call (Debian's `.kernelvariables`: `CC = … $(CROSS_COMPILE)gcc-12`),
/// else `gcc`.
fn compiler_of(headers: &Path) -> String {
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

/// `make -C <headers> M=<module_dir> modules`, output to `log`, killed after [`MAKE_DEADLINE`].
fn run_make(
    make: &Path,
    headers: &Path,
    module_dir: &Path,
    log: &Path,
    release: &str,
) -> Result<(), CrasherError> {
    let out = File::create(log).map_err(io(log))?;
    let err = out.try_clone().map_err(io(log))?;
    let mut command = Command::new(make);
    command
        .arg("-C")
        .arg(headers)
        .arg(format!("M={}", module_dir.display()))
        // 6.12 generates BTF for modules with pahole; the crasher needs none, and this spares
        // the host the `dwarves` package.
        .arg("CONFIG_DEBUG_INFO_BTF_MODULES=")
        .arg("modules")
        // English messages, for the error's tail and hints (kbuild unexports LC_ALL).
        .env("LC_MESSAGES", "C")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    // Its own process group, so a timeout (or Ctrl-C) kills gcc as well as make.
    let mut child = GroupChild::start(&mut command).map_err(io(make))?;
    let status = child.wait_exit(MAKE_DEADLINE);
    let output = || last_lines(log, TAIL_LINES).join("\n");
    match status {
        Some(status) if status.success() => Ok(()),
        Some(status) => {
            let tail = output();
            Err(CrasherError::Make {
                release: release.into(),
                status: status.to_string(),
                log: log.into(),
                hint: hint(&tail),
                tail,
            })
        }
        None => {
            // Teardown trouble would only hide the timeout, which is the error to report.
            let _ = child.kill();
            Err(CrasherError::Timeout {
                release: release.into(),
                after: MAKE_DEADLINE,
                log: log.into(),
                tail: output(),
            })
        }
    }
}

/// A way out for failures whose cause is on the host rather than in the module.
fn hint(output: &str) -> String {
    if output.contains("error while loading shared libraries") {
        "\nhint: the linux-kbuild tools need libelf1 and libssl3: apt-get install -y libelf1 libssl3".into()
    } else {
        String::new()
    }
}

/// Is this a kernel module, and is it for `release`?
fn check_module(path: &Path, release: &str) -> Result<(), CrasherError> {
    let elf = std::fs::read(path).map_err(io(path))?;
    let bad = |detail: String| CrasherError::BadModule {
        path: path.into(),
        detail,
    };
    let vermagic = modules::modinfo_field(&elf, "vermagic")
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
    use crate::spec::kernel::GuestSize;

    #[test]
    fn include_of_the_common_makefile_points_into_the_tree() {
        let (text, included) = rewrite_includes(
            "include /usr/src/linux-headers-6.1.0-47-common/Makefile\n",
            Path::new("/cache/crasher/x.partial/tree"),
        );
        assert_eq!(
            text,
            "include /cache/crasher/x.partial/tree/usr/src/linux-headers-6.1.0-47-common/Makefile\n"
        );
        assert_eq!(
            included,
            [PathBuf::from(
                "/cache/crasher/x.partial/tree/usr/src/linux-headers-6.1.0-47-common/Makefile"
            )]
        );
    }

    #[test]
    fn other_makefile_lines_stay() {
        let makefile = "# comment\nVERSION = 6\ninclude scripts/Kbuild.include\ninclude /abs/x.mk";
        let (text, included) = rewrite_includes(makefile, Path::new("/t"));
        assert_eq!(
            text,
            "# comment\nVERSION = 6\ninclude scripts/Kbuild.include\ninclude /t/abs/x.mk"
        );
        assert_eq!(included, [PathBuf::from("/t/abs/x.mk")]);
    }

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
        assert!(
            hint("modpost: error while loading shared libraries: libelf.so.1").contains("libelf1")
        );
    }

    /// Three fake packages laid out like Debian's: the -amd64 headers link scripts/ into kbuild.
    fn fake_packages(dir: &Path, with_kbuild: bool) -> Vec<PathBuf> {
        let amd64 = dir.join("amd64");
        let src = amd64.join("usr/src/linux-headers-9.9-amd64");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(
            src.join("Makefile"),
            "include /usr/src/linux-headers-9.9-common/Makefile\n",
        )
        .unwrap();
        std::os::unix::fs::symlink("../../lib/linux-kbuild-9.9/scripts", src.join("scripts"))
            .unwrap();
        std::fs::create_dir_all(amd64.join("lib/modules/9.9-amd64")).unwrap();
        std::os::unix::fs::symlink(
            "/usr/src/linux-headers-9.9-amd64",
            amd64.join("lib/modules/9.9-amd64/build"),
        )
        .unwrap();
        let common = dir.join("common");
        std::fs::create_dir_all(common.join("usr/src/linux-headers-9.9-common")).unwrap();
        std::fs::write(
            common.join("usr/src/linux-headers-9.9-common/Makefile"),
            "VERSION = 9\n",
        )
        .unwrap();
        let mut roots = vec![amd64, common];
        if with_kbuild {
            let kbuild = dir.join("kbuild");
            std::fs::create_dir_all(kbuild.join("usr/lib/linux-kbuild-9.9/scripts")).unwrap();
            std::fs::write(
                kbuild.join("usr/lib/linux-kbuild-9.9/scripts/Makefile.build"),
                "",
            )
            .unwrap();
            roots.push(kbuild);
        }
        roots
    }

    #[test]
    fn packages_merge_into_one_tree_whose_links_resolve_inside() {
        let dir = tempfile::tempdir().unwrap();
        let roots = fake_packages(dir.path(), true);
        let tree = dir.path().join("tree");
        merge_roots(&roots, &tree).unwrap();
        let scripts = tree.join("usr/src/linux-headers-9.9-amd64/scripts/Makefile.build");
        assert!(scripts.is_file());
        assert!(scripts
            .canonicalize()
            .unwrap()
            .starts_with(tree.canonicalize().unwrap()));
        assert!(
            !tree.join("lib").exists(),
            "lib/modules links to the host's /usr/src"
        );
    }

    #[test]
    fn a_missing_kbuild_package_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let roots = fake_packages(dir.path(), false);
        let err = merge_roots(&roots, &dir.path().join("tree"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "usr/src/linux-headers-9.9-amd64/scripts: links to ../../lib/linux-kbuild-9.9/scripts, which no header package provides: is linux-kbuild-<series> missing from `headers:`?"
        );
    }

    #[test]
    fn absolute_links_stay_inside_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        let pkg = dir.path().join("pkg/usr/src");
        std::fs::create_dir_all(pkg.join("real")).unwrap();
        std::os::unix::fs::symlink("/usr/src/real", pkg.join("alias")).unwrap();
        let tree = dir.path().join("tree");
        let links = merge_tree(&dir.path().join("pkg/usr"), &tree.join("usr"), &tree).unwrap();
        check_links_inside(&links, &tree).unwrap();
        assert_eq!(
            std::fs::read_link(tree.join("usr/src/alias")).unwrap(),
            tree.join("usr/src/real")
        );
    }

    fn spec(source: KernelSource) -> KernelSpec {
        KernelSpec {
            id: "k".into(),
            why: "test".into(),
            source,
            guest: GuestSize::default(),
            skip: Default::default(),
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
            package: "linux-image-9.9".into(),
            version: "1".into(),
            sha256: "0".into(),
            headers: Vec::new(),
        });
        let files = KernelFiles {
            release: "9.9".into(),
            vmlinuz: "/nonexistent".into(),
            modules: "/nonexistent".into(),
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
