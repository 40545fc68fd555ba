//! How Debian packages a kernel, as data ([`LAYOUTS`]): each layout's package names (`{release}`
//! stands for the kernel release, e.g. `6.1.0-47-amd64`, `7.3.4+deb13-amd64`, `7.3-amd64`),
//! where its bzImage and modules folder are once extracted, and which files the cache's
//! integrity check hashes. Finding a kernel in extracted packages; merging a split kernel's
//! packages into one tree (hard links).

use std::path::{Path, PathBuf};

use crate::fetch::kernel::FetchError;

/// One way Debian packages a kernel.
#[derive(Debug, PartialEq, Eq)]
pub struct Layout {
    /// `split`, `merged-usr` or `boot`: named in messages.
    pub name: &'static str,
    /// The package kdrill fetches the kernel image from (the unsigned one: the same bzImage
    /// without the Authenticode signature the signed package appends).
    pub image: &'static str,
    /// The signed package of the same kernel: kdrill never fetches it, but a release listed only
    /// signed is named when a tracking entry finds nothing complete.
    pub signed: &'static str,
    /// The other packages of the kernel, at the image's version.
    pub parts: &'static [&'static str],
    /// Where the bzImage is, once the packages are extracted into one root.
    pub vmlinuz: &'static str,
    /// Where the modules are (and `modules.builtin`).
    pub modules: &'static str,
}

/// Debian's kernel layouts, tried in this order (the first whose files are there wins).
pub const LAYOUTS: &[Layout] = &[
    // 6.19 and later (trixie-backports 7.x, forky, sid, experimental): the kernel is split in
    // three packages. `linux-image-<release>` is a 2 KB metapackage that depends on the signed
    // `linux-binary-<release>`; there is no /boot at all. `linux-base-<release>` holds config,
    // the System.map stub, modules.builtin, modules.builtin.modinfo and modules.order.
    Layout {
        name: "split",
        image: "linux-binary-unsigned-{release}",
        signed: "linux-binary-{release}",
        parts: &["linux-modules-{release}", "linux-base-{release}"],
        vmlinuz: "usr/lib/modules/{release}/vmlinuz.unsigned",
        modules: "usr/lib/modules/{release}",
    },
    // trixie's 6.12 (and bookworm-backports' 6.12 built for trixie's merged /usr): one package,
    // the bzImage in /boot, the modules under /usr/lib/modules (no ./lib/ path at all).
    Layout {
        name: "merged-usr",
        image: "linux-image-{release}-unsigned",
        signed: "linux-image-{release}",
        parts: &[],
        vmlinuz: "boot/vmlinuz-{release}",
        modules: "usr/lib/modules/{release}",
    },
    // bookworm's 6.1 and 6.12: one package, /boot and /lib/modules.
    Layout {
        name: "boot",
        image: "linux-image-{release}-unsigned",
        signed: "linux-image-{release}",
        parts: &[],
        vmlinuz: "boot/vmlinuz-{release}",
        modules: "lib/modules/{release}",
    },
];

/// The files of an extracted package hashed into its cache stamp and checked at each use: every
/// layout's bzImage with `*` for the release (`boot/*` also covers config and System.map, as it
/// always did). A layout whose bzImage one of these does not cover is a test failure.
pub const MANIFEST: &[&str] = &["boot/*", "usr/lib/modules/*/vmlinuz*"];

/// The folders of a kernel's packages that make up the kernel (documentation stays out).
const MERGED: &[&str] = &["boot", "lib/modules", "usr/lib/modules"];

/// `pattern` with `{release}` replaced.
pub fn fill(pattern: &str, release: &str) -> String {
    pattern.replace("{release}", release)
}

/// The release `name` stands for in `pattern` (`None`: another shape, or an empty release).
fn release_in<'a>(pattern: &str, name: &'a str) -> Option<&'a str> {
    let (head, tail) = pattern.split_once("{release}")?;
    let release = name.strip_prefix(head)?.strip_suffix(tail)?;
    (!release.is_empty()).then_some(release)
}

/// The release of a kernel image package of any layout: `linux-image-6.1.0-47-amd64-unsigned`
/// → `6.1.0-47-amd64`, `linux-binary-unsigned-7.3-amd64` → `7.3-amd64`.
pub fn release_of(package: &str) -> Option<&str> {
    LAYOUTS.iter().find_map(|l| release_in(l.image, package))
}

/// The layouts an image package name can be (the unsigned image's name decides the packages;
/// where the files are is known once they are extracted).
pub fn layouts_of(package: &str) -> impl Iterator<Item = &'static Layout> + '_ {
    LAYOUTS
        .iter()
        .filter(move |l| release_in(l.image, package).is_some())
}

/// The other packages of the kernel whose image is `package` (none for a one-package layout).
pub fn parts_of(package: &str) -> Vec<String> {
    let Some(release) = release_of(package) else {
        return Vec::new();
    };
    layouts_of(package)
        .next()
        .map(|l| l.parts.iter().map(|p| fill(p, release)).collect())
        .unwrap_or_default()
}

/// A kernel found in an extracted root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub layout: &'static str,
    pub release: String,
    pub vmlinuz: PathBuf,
    pub modules: PathBuf,
}

/// Finds the kernel of image package `package` in `root` (its packages extracted there): the
/// first layout of that name whose bzImage and modules folder are both present.
pub fn find(root: &Path, package: &str) -> Result<Found, FetchError> {
    let release = release_of(package).ok_or_else(|| FetchError::Layout {
        path: root.into(),
        detail: format!(
            "{package} is no kernel image package kdrill knows: {}",
            LAYOUTS
                .iter()
                .map(|l| l.image)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })?;
    let mut looked = Vec::new();
    for layout in layouts_of(package) {
        let vmlinuz = root.join(fill(layout.vmlinuz, release));
        let modules = root.join(fill(layout.modules, release));
        if vmlinuz.is_file() && modules.is_dir() {
            return Ok(Found {
                layout: layout.name,
                release: release.to_string(),
                vmlinuz,
                modules,
            });
        }
        looked.push(format!(
            "{} with {} ({})",
            fill(layout.vmlinuz, release),
            fill(layout.modules, release),
            layout.name
        ));
    }
    let has_kernel = layouts_of(package).any(|l| root.join(fill(l.vmlinuz, release)).is_file());
    Err(FetchError::Layout {
        path: root.into(),
        detail: format!(
            "{}: looked for {}",
            if has_kernel {
                "the package has no modules for its kernel"
            } else {
                "the package has no kernel image where Debian puts it"
            },
            looked.join(", or ")
        ),
    })
}

/// Does `name` match a one-component pattern with at most one `*`?
fn component_matches(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        Some((head, tail)) => {
            name.len() >= head.len() + tail.len() && name.starts_with(head) && name.ends_with(tail)
        }
        None => pattern == name,
    }
}

/// The files under `root` that [`MANIFEST`] names, sorted.
pub fn manifest_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for pattern in MANIFEST {
        let mut paths = vec![root.to_path_buf()];
        for component in pattern.split('/') {
            paths = paths
                .iter()
                .flat_map(|dir| std::fs::read_dir(dir).into_iter().flatten().flatten())
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| component_matches(component, n))
                })
                .collect();
        }
        out.extend(paths.into_iter().filter(|p| p.is_file()));
    }
    out.sort();
    out.dedup();
    out
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
    move |source| FetchError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Merges the kernel folders ([`MERGED`]) of several extracted packages into `into`: folders
/// made, files hard-linked (copied across file systems), symlinks recreated as they are. Debian's
/// split packages share folders but no file; a file two packages provide is an error.
pub fn merge(roots: &[PathBuf], into: &Path) -> Result<(), FetchError> {
    for root in roots {
        for sub in MERGED {
            let mut stack = vec![(root.join(sub), into.join(sub))];
            while let Some((from, to)) = stack.pop() {
                if !from.is_dir() {
                    continue;
                }
                std::fs::create_dir_all(&to).map_err(io(&to))?;
                for entry in std::fs::read_dir(&from).map_err(io(&from))? {
                    let entry = entry.map_err(io(&from))?;
                    let (path, target) = (entry.path(), to.join(entry.file_name()));
                    let kind = entry.file_type().map_err(io(&path))?;
                    if kind.is_dir() {
                        stack.push((path, target));
                    } else if target.symlink_metadata().is_ok() {
                        return Err(FetchError::Layout {
                            path: target,
                            detail: "two packages of the kernel provide this file: pin packages of one kernel version".into(),
                        });
                    } else if kind.is_symlink() {
                        let link = std::fs::read_link(&path).map_err(io(&path))?;
                        std::os::unix::fs::symlink(&link, &target).map_err(io(&target))?;
                    } else if std::fs::hard_link(&path, &target).is_err() {
                        std::fs::copy(&path, &target).map_err(io(&target))?;
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(root: &Path, rel: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, rel).unwrap();
    }

    #[test]
    fn releases_of_every_layout() {
        assert_eq!(
            release_of("linux-image-6.1.0-47-amd64-unsigned"),
            Some("6.1.0-47-amd64")
        );
        assert_eq!(
            release_of("linux-image-6.12.115+deb13.1-rt-amd64-unsigned"),
            Some("6.12.115+deb13.1-rt-amd64")
        );
        assert_eq!(
            release_of("linux-binary-unsigned-7.3-amd64"),
            Some("7.3-amd64")
        );
        // Signed packages and metapackages are no image kdrill fetches.
        assert_eq!(release_of("linux-binary-7.3-amd64"), None);
        assert_eq!(release_of("linux-image-7.3-amd64"), None);
        assert_eq!(
            parts_of("linux-binary-unsigned-7.3.4+deb13-amd64"),
            [
                "linux-modules-7.3.4+deb13-amd64",
                "linux-base-7.3.4+deb13-amd64"
            ]
        );
        assert!(parts_of("linux-image-6.12.118+deb13-amd64-unsigned").is_empty());
    }

    #[test]
    fn each_layout_is_found_in_its_own_tree() {
        let cases = [
            (
                "linux-image-6.1.0-47-amd64-unsigned",
                &[
                    "boot/vmlinuz-6.1.0-47-amd64",
                    "lib/modules/6.1.0-47-amd64/modules.builtin",
                ][..],
                "boot",
                "lib/modules/6.1.0-47-amd64",
            ),
            (
                "linux-image-6.12.118+deb13-amd64-unsigned",
                &[
                    "boot/vmlinuz-6.12.118+deb13-amd64",
                    "usr/lib/modules/6.12.118+deb13-amd64/modules.builtin",
                ],
                "merged-usr",
                "usr/lib/modules/6.12.118+deb13-amd64",
            ),
            (
                "linux-binary-unsigned-7.3-amd64",
                &[
                    "usr/lib/modules/7.3-amd64/vmlinuz.unsigned",
                    "usr/lib/modules/7.3-amd64/modules.builtin",
                ],
                "split",
                "usr/lib/modules/7.3-amd64",
            ),
        ];
        for (package, files, layout, modules) in cases {
            let dir = tempfile::tempdir().unwrap();
            for file in files {
                touch(dir.path(), file);
            }
            let found = find(dir.path(), package).unwrap();
            assert_eq!(found.layout, layout, "{package}");
            assert_eq!(found.vmlinuz, dir.path().join(files[0]));
            assert_eq!(found.modules, dir.path().join(modules));
            assert_eq!(Some(found.release.as_str()), release_of(package));
        }
    }

    #[test]
    fn what_is_missing_is_said() {
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), "boot/vmlinuz-9.9-amd64");
        let err = find(dir.path(), "linux-image-9.9-amd64-unsigned")
            .unwrap_err()
            .to_string();
        assert!(err.contains("the package has no modules for its kernel: looked for boot/vmlinuz-9.9-amd64 with usr/lib/modules/9.9-amd64 (merged-usr), or boot/vmlinuz-9.9-amd64 with lib/modules/9.9-amd64 (boot)"), "{err}");
        let err = find(dir.path(), "linux-binary-unsigned-9.9-amd64")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no kernel image where Debian puts it"),
            "{err}"
        );
        let err = find(dir.path(), "linux-image-9.9-amd64").unwrap_err();
        assert!(err
            .to_string()
            .contains("no kernel image package kdrill knows"));
    }

    #[test]
    fn the_manifest_covers_every_layouts_kernel_image() {
        let dir = tempfile::tempdir().unwrap();
        let mut images = Vec::new();
        for layout in LAYOUTS {
            let rel = fill(layout.vmlinuz, "9.9-amd64");
            touch(dir.path(), &rel);
            images.push(dir.path().join(rel));
        }
        touch(dir.path(), "usr/lib/modules/9.9-amd64/modules.builtin");
        touch(dir.path(), "usr/lib/modules/9.9-amd64/kernel/fs/ext4.ko.xz");
        let files = manifest_files(dir.path());
        for image in &images {
            assert!(files.contains(image), "{image:?} not in {files:?}");
        }
        assert!(!files.iter().any(|f| f.ends_with("modules.builtin")));
        assert!(
            LAYOUTS.iter().all(|l| [l.vmlinuz, l.modules]
                .iter()
                .all(|path| MERGED.iter().any(|m| path.starts_with(m)))),
            "every layout's files are in a merged folder"
        );
    }

    #[test]
    fn split_packages_merge_into_one_root() {
        let dir = tempfile::tempdir().unwrap();
        let (binary, modules, base) = (
            dir.path().join("b"),
            dir.path().join("m"),
            dir.path().join("s"),
        );
        touch(&binary, "usr/lib/modules/7.3-amd64/vmlinuz.unsigned");
        touch(&binary, "usr/share/doc/x/copyright");
        touch(&modules, "usr/lib/modules/7.3-amd64/kernel/fs/ext4.ko.xz");
        touch(&base, "usr/lib/modules/7.3-amd64/modules.builtin");
        let root = dir.path().join("root");
        merge(&[binary.clone(), modules, base.clone()], &root).unwrap();
        let found = find(&root, "linux-binary-unsigned-7.3-amd64").unwrap();
        assert!(found.modules.join("kernel/fs/ext4.ko.xz").is_file());
        assert!(found.modules.join("modules.builtin").is_file());
        assert!(!root.join("usr/share").exists(), "documentation stays out");
        let err = merge(&[binary, base], &dir.path().join("twice"))
            .and_then(|()| merge(&[dir.path().join("s")], &dir.path().join("twice")))
            .unwrap_err();
        assert!(err
            .to_string()
            .contains("two packages of the kernel provide this file"));
    }
}
