//! The crasher's build tree for a Debian kernel: its pinned header packages merged into one
//! folder (hard links into the cache), the `-amd64` Makefile's `include /usr/src/…` (and 7.x's
//! `KBUILD_OUTPUT=/usr/src/…`) pointed into it as the build sees it (`/kdrill/tree` in the
//! release's sysroot), absolute symlinks made relative so they resolve in either view, and every
//! symlink checked to resolve inside it, never into the host's `/usr/src`.

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
/// and `KBUILD_OUTPUT=/…` lines (7.x: `KBUILD_OUTPUT=/usr/src/linux-headers-<release>`) under
/// `tree`; returns the new text and the files now included.
fn rewrite_includes(makefile: &str, tree: &Path) -> (String, Vec<PathBuf>) {
    let mut text = String::with_capacity(makefile.len());
    let mut included = Vec::new();
    for line in makefile.split_inclusive('\n') {
        let (word, rest) = match (
            line.strip_prefix("include /"),
            line.strip_prefix("KBUILD_OUTPUT=/"),
        ) {
            (Some(rest), _) => ("include ", rest),
            (_, Some(rest)) => ("KBUILD_OUTPUT=", rest),
            _ => {
                text.push_str(line);
                continue;
            }
        };
        let (target, newline) = match rest.strip_suffix('\n') {
            Some(target) => (target.trim_end(), "\n"),
            None => (rest.trim_end(), ""),
        };
        let path = tree.join(target);
        text.push_str(&format!("{word}{}{newline}", path.display()));
        if word == "include " {
            included.push(path);
        }
    }
    (text, included)
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
    fn the_7_x_output_folder_points_into_the_tree_too() {
        let (text, included) = rewrite_includes(
            "KBUILD_OUTPUT=/usr/src/linux-headers-7.2.13+deb14-amd64\ninclude /usr/src/linux-headers-7.2.13+deb14-common/Makefile\n",
            Path::new("/kdrill/tree"),
        );
        assert_eq!(
            text,
            "KBUILD_OUTPUT=/kdrill/tree/usr/src/linux-headers-7.2.13+deb14-amd64\ninclude /kdrill/tree/usr/src/linux-headers-7.2.13+deb14-common/Makefile\n"
        );
        assert_eq!(included.len(), 1);
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
