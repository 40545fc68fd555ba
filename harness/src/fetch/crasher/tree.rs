//! The crasher's build tree for a Debian kernel: its pinned header packages merged into one
//! folder (hard links into the cache), the `-amd64` Makefile's absolute paths (`include
//! /usr/src/…`; from 6.19 also `KBUILD_OUTPUT=/usr/src/…`) pointed into it as the build sees it
//! (`/kdrill/tree` in the release's sysroot), absolute symlinks made relative so they resolve in
//! either view, and every symlink checked to resolve inside it, never into the host's `/usr/src`.

use std::path::{Path, PathBuf};

use super::{io, CrasherError};
use crate::fetch::apt::pin::Pinned;

/// What a build needs from the header packages: the headers (`usr/src`) and kbuild's programs
/// (`usr/lib`). Not `lib/modules/<release>/{build,source}`: links to the host's `/usr/src`.
const MERGED: &[&str] = &["usr/src", "usr/lib"];

/// Merges the header packages into one tree at `tree` and returns its
/// `usr/src/linux-headers-<release>` folder, ready for `make -C`; the build sees the tree at
/// `seen_as` (where its Makefile's absolute paths point).
pub(super) fn assemble_debian(
    kernel: &str,
    pinned: &Pinned,
    cache: &Path,
    tree: &Path,
    seen_as: &Path,
    release: &str,
) -> Result<PathBuf, CrasherError> {
    let roots = pinned
        .headers
        .iter()
        .map(|pkg| crate::fetch::kernel::fetch_package(pkg, pinned, cache))
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
    let (rewritten, included) = rewrite_includes(&text, seen_as);
    let on_host = |p: &Path| tree.join(p.strip_prefix(seen_as).unwrap_or(p));
    if let Some(path) = included.iter().find(|p| !on_host(p).is_file()) {
        return Err(CrasherError::Layout {
            path: makefile,
            detail: format!(
                "includes {}, which none of the `headers:` packages of kernel entry `{kernel}` provides: add linux-headers-<abi>-common",
                on_host(path).display()
            ),
        });
    }
    let (rewritten, outputs) = rewrite_output(&rewritten, seen_as);
    if let Some(path) = outputs.iter().find(|p| !on_host(p).is_dir()) {
        return Err(CrasherError::Layout {
            path: makefile,
            detail: format!(
                "sets KBUILD_OUTPUT to {}, which none of the `headers:` packages of kernel entry `{kernel}` provides: pin the headers of the kernel's own release",
                on_host(path).display()
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
/// symlinks recreated, an absolute target as the relative path to the same place under `tree`
/// (so it resolves wherever the tree is seen). Returns the symlinks made.
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
                    Ok(inside) => relative(
                        target.parent().and_then(|p| p.strip_prefix(tree).ok()),
                        inside,
                    ),
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

/// The relative path from the folder `from` to `to`, both relative to the tree's top.
fn relative(from: Option<&Path>, to: &Path) -> PathBuf {
    let from: Vec<_> = from.map(|f| f.components().collect()).unwrap_or_default();
    let to_parts: Vec<_> = to.components().collect();
    let common = from
        .iter()
        .zip(&to_parts)
        .take_while(|(a, b)| a == b)
        .count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for part in &to_parts[common..] {
        out.push(part);
    }
    out
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

/// Points an absolute `KBUILD_OUTPUT=/usr/src/linux-headers-<release>` (Debian's 6.19 and later
/// headers Makefile: with `M=`, kbuild takes objtree from it, so it would build against the
/// host's `/usr/src`, or fail when the host has no such folder) under `tree`; returns the new
/// text and the folders now named.
fn rewrite_output(makefile: &str, tree: &Path) -> (String, Vec<PathBuf>) {
    let mut text = String::with_capacity(makefile.len());
    let mut outputs = Vec::new();
    for line in makefile.split_inclusive('\n') {
        let assignment = line.strip_prefix("KBUILD_OUTPUT").and_then(|rest| {
            let rest = rest.trim_start();
            let op = ["?=", ":=", "="]
                .into_iter()
                .find(|op| rest.starts_with(op))?;
            let value = rest[op.len()..].trim_start();
            value.strip_prefix('/').map(|target| (op, target))
        });
        match assignment {
            Some((op, target)) => {
                let (target, newline) = match target.strip_suffix('\n') {
                    Some(target) => (target.trim_end(), "\n"),
                    None => (target.trim_end(), ""),
                };
                let path = tree.join(target);
                text.push_str(&format!("KBUILD_OUTPUT{op}{}{newline}", path.display()));
                outputs.push(path);
            }
            None => text.push_str(line),
        }
    }
    (text, outputs)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// The 7.x headers Makefile (linux-headers-7.2.13+deb14-amd64, verbatim).
    #[test]
    fn the_7x_kbuild_output_points_into_the_tree() {
        let makefile = "KBUILD_OUTPUT=/usr/src/linux-headers-7.2.13+deb14-amd64\ninclude /usr/src/linux-headers-7.2.13+deb14-common/Makefile\n";
        let tree = Path::new("/cache/crasher/x.partial/tree");
        let (text, included) = rewrite_includes(makefile, tree);
        let (text, outputs) = rewrite_output(&text, tree);
        assert_eq!(
            text,
            "KBUILD_OUTPUT=/cache/crasher/x.partial/tree/usr/src/linux-headers-7.2.13+deb14-amd64\ninclude /cache/crasher/x.partial/tree/usr/src/linux-headers-7.2.13+deb14-common/Makefile\n"
        );
        assert_eq!(
            outputs,
            [tree.join("usr/src/linux-headers-7.2.13+deb14-amd64")]
        );
        assert_eq!(included.len(), 1);
        // A relative or already-rewritten value, or another variable, stays.
        let other = "KBUILD_OUTPUT := build\nKBUILD_OUTPUTS=/x\nO=/usr/src/x\n";
        let (same, none) = rewrite_output(other, tree);
        assert_eq!(same, other);
        assert!(none.is_empty());
        let (spaced, _) = rewrite_output("KBUILD_OUTPUT ?= /usr/src/h", tree);
        assert_eq!(
            spaced,
            "KBUILD_OUTPUT?=/cache/crasher/x.partial/tree/usr/src/h"
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
        std::fs::create_dir_all(dir.path().join("pkg/usr/lib/deep")).unwrap();
        std::os::unix::fs::symlink("/usr/src/real", dir.path().join("pkg/usr/lib/deep/up"))
            .unwrap();
        let tree = dir.path().join("tree");
        let links = merge_tree(&dir.path().join("pkg/usr"), &tree.join("usr"), &tree).unwrap();
        check_links_inside(&links, &tree).unwrap();
        // Relative, so the tree resolves the same wherever a build sees it (`/kdrill/tree`).
        assert_eq!(
            std::fs::read_link(tree.join("usr/src/alias")).unwrap(),
            PathBuf::from("real")
        );
        assert_eq!(
            std::fs::read_link(tree.join("usr/lib/deep/up")).unwrap(),
            PathBuf::from("../../src/real")
        );
        assert!(tree.join("usr/lib/deep/up").is_dir());
    }
}
