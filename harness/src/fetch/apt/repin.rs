//! Re-pinning a kernel entry's text: the image package, each `parts:` package (a split
//! kernel's modules and base) and each `headers:` package get their new name, version and
//! sha256 in place; every comment, key order and blank line stays as written (`cargo xtask
//! kernels --repin ID`).

use crate::spec::kernel::DebPackage;

/// What a re-pin changes: the image and its header packages, old and new.
#[derive(Debug, Clone)]
pub struct Repin<'a> {
    pub old_image: &'a DebPackage,
    pub new_image: &'a DebPackage,
    /// The new kernel's other packages (a split kernel's `linux-modules-*`, `linux-base-*`).
    pub new_parts: &'a [DebPackage],
    /// The new header packages (the new image's headers package and what it depends on).
    pub new_headers: &'a [DebPackage],
    /// The flavour (`amd64`, `rt-amd64`): what follows the ABI in the release name.
    pub flavour: &'a str,
}

/// The entry's text with the new pins, and notes (a new header package the entry does not
/// list). An old header package with no counterpart among the new ones is an error.
pub fn rewrite(text: &str, repin: &Repin) -> Result<(String, Vec<String>), String> {
    let not_image = |package: &str| {
        format!(
            "{package} is not linux-image-<abi>-{0}-unsigned or linux-binary-unsigned-<abi>-{0}",
            repin.flavour
        )
    };
    let old_abi = abi(&repin.old_image.package, repin.flavour)
        .ok_or_else(|| not_image(&repin.old_image.package))?;
    let new_abi = abi(&repin.new_image.package, repin.flavour)
        .ok_or_else(|| not_image(&repin.new_image.package))?;
    let counterpart = |old: &str| -> Result<&DebPackage, String> {
        if old == repin.old_image.package {
            return Ok(repin.new_image);
        }
        let renamed = old.replace(old_abi, new_abi);
        repin
            .new_parts
            .iter()
            .chain(repin.new_headers)
            .find(|p| p.package == renamed)
            .ok_or_else(|| {
                format!(
                    "package {old} has no counterpart among {}: edit the entry by hand",
                    repin
                        .new_parts
                        .iter()
                        .chain(repin.new_headers)
                        .map(|p| p.package.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    };
    let mut out = String::with_capacity(text.len());
    let mut current: Option<&DebPackage> = None;
    let mut seen: Vec<String> = Vec::new();
    for line in text.split_inclusive('\n') {
        let Some((key, value, _)) = key_value(line) else {
            out.push_str(line);
            continue;
        };
        let new = match key {
            "package" => {
                let pkg = counterpart(value)?;
                current = Some(pkg);
                seen.push(pkg.package.clone());
                Some(pkg.package.as_str())
            }
            "version" => current.map(|p| p.version.as_str()),
            "sha256" => current.map(|p| p.sha256.as_str()),
            _ => None,
        };
        match new {
            Some(new) => out.push_str(&replace_value(line, value, new)),
            None => out.push_str(line),
        }
    }
    let notes = repin
        .new_parts
        .iter()
        .map(|p| (p, "parts"))
        .chain(repin.new_headers.iter().map(|p| (p, "headers")))
        .filter(|(p, _)| !seen.contains(&p.package))
        .map(|(p, key)| {
            format!(
                "{} {} is a new package the entry does not list: add it under `{key}:`",
                p.package, p.version
            )
        })
        .collect();
    Ok((out, notes))
}

/// `linux-image-6.1.0-47-amd64-unsigned`, `amd64` → `6.1.0-47`;
/// `linux-binary-unsigned-7.3.4+deb13-amd64` → `7.3.4+deb13`.
fn abi<'a>(image: &'a str, flavour: &str) -> Option<&'a str> {
    let release = crate::fetch::apt::resolve::release_of(image)?;
    release.strip_suffix(flavour)?.strip_suffix('-')
}

/// A `key: value` line (optionally a list item `- key: value`), its value without a trailing
/// comment, and the indentation.
fn key_value(line: &str) -> Option<(&str, &str, usize)> {
    let body = line.trim_end_matches(['\n', '\r']);
    let indent = body.len() - body.trim_start().len();
    let rest = body.trim_start();
    if rest.starts_with('#') {
        return None;
    }
    let rest = rest.strip_prefix("- ").unwrap_or(rest);
    let (key, value) = rest.split_once(':')?;
    let value = value.split(" #").next().unwrap_or(value).trim();
    let value = value.trim_matches(['"', '\'']);
    (!key.contains(' ') && !value.is_empty()).then_some((key, value, indent))
}

/// `line` with its value `old` replaced by `new` (the first occurrence after the colon).
fn replace_value(line: &str, old: &str, new: &str) -> String {
    let colon = line.find(':').unwrap_or(0);
    let (head, tail) = line.split_at(colon);
    format!("{head}{}", tail.replacen(old, new, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deb(package: &str, version: &str, sha256: &str) -> DebPackage {
        DebPackage {
            package: package.into(),
            version: version.into(),
            sha256: sha256.into(),
        }
    }

    const ENTRY: &str = "\
# Debian 12 (bookworm) stock kernel.
id: debian-6.1
why: the baseline
source:
  kind: debian
  suite: bookworm
  series: \"6.1\"
  flavour: amd64
  package: linux-image-6.1.0-47-amd64-unsigned
  version: 6.1.170-3
  # sha256 of the .deb as served by the Debian archive (measured 2026-11-26).
  sha256: cb9a
  headers:
    # This kernel's own build side.
    - package: linux-headers-6.1.0-47-amd64
      version: 6.1.170-3
      sha256: 2a40
    - package: linux-headers-6.1.0-47-common
      version: 6.1.170-3
      sha256: 845e
    # kbuild: any version >= the kernel's.
    - package: linux-kbuild-6.1
      version: 6.1.176-1   # from bookworm (main)
      sha256: 667d
guest:
  memory_mib: 1024
";

    #[test]
    fn versions_and_checksums_change_and_nothing_else() {
        let old = deb("linux-image-6.1.0-47-amd64-unsigned", "6.1.170-3", "cb9a");
        let new = deb("linux-image-6.1.0-57-amd64-unsigned", "6.1.192-3", "1111");
        let headers = [
            deb("linux-headers-6.1.0-57-amd64", "6.1.192-3", "2222"),
            deb("linux-headers-6.1.0-57-common", "6.1.192-3", "3333"),
            deb("linux-kbuild-6.1", "6.1.192-3", "4444"),
        ];
        let (text, notes) = rewrite(
            ENTRY,
            &Repin {
                old_image: &old,
                new_image: &new,
                new_parts: &[],
                new_headers: &headers,
                flavour: "amd64",
            },
        )
        .unwrap();
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(
            text,
            "\
# Debian 12 (bookworm) stock kernel.
id: debian-6.1
why: the baseline
source:
  kind: debian
  suite: bookworm
  series: \"6.1\"
  flavour: amd64
  package: linux-image-6.1.0-57-amd64-unsigned
  version: 6.1.192-3
  # sha256 of the .deb as served by the Debian archive (measured 2026-11-26).
  sha256: 1111
  headers:
    # This kernel's own build side.
    - package: linux-headers-6.1.0-57-amd64
      version: 6.1.192-3
      sha256: 2222
    - package: linux-headers-6.1.0-57-common
      version: 6.1.192-3
      sha256: 3333
    # kbuild: any version >= the kernel's.
    - package: linux-kbuild-6.1
      version: 6.1.192-3   # from bookworm (main)
      sha256: 4444
guest:
  memory_mib: 1024
"
        );
    }

    #[test]
    fn a_header_without_counterpart_is_an_error_and_a_new_one_a_note() {
        let old = deb("linux-image-6.1.0-47-amd64-unsigned", "6.1.170-3", "cb9a");
        let new = deb("linux-image-6.1.0-57-amd64-unsigned", "6.1.192-3", "1111");
        let headers = [
            deb("linux-headers-6.1.0-57-amd64", "6.1.192-3", "2222"),
            deb("linux-kbuild-6.1", "6.1.192-3", "4444"),
            deb("linux-headers-6.1.0-57-extra", "6.1.192-3", "5555"),
        ];
        let repin = Repin {
            old_image: &old,
            new_image: &new,
            new_parts: &[],
            new_headers: &headers,
            flavour: "amd64",
        };
        let err = rewrite(ENTRY, &repin).unwrap_err();
        assert!(
            err.starts_with("package linux-headers-6.1.0-47-common has no counterpart"),
            "{err}"
        );
        let without_common = ENTRY.replace(
            "    - package: linux-headers-6.1.0-47-common\n      version: 6.1.170-3\n      sha256: 845e\n",
            "",
        );
        let (_, notes) = rewrite(&without_common, &repin).unwrap();
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].starts_with(
                "linux-headers-6.1.0-57-extra 6.1.192-3 is a new package the entry does not list: add it under `headers:`"
            )
        );
    }

    #[test]
    fn the_abi_of_both_series() {
        assert_eq!(
            abi("linux-image-6.1.0-47-rt-amd64-unsigned", "rt-amd64"),
            Some("6.1.0-47")
        );
        assert_eq!(
            abi("linux-image-6.12.117+deb12-amd64-unsigned", "amd64"),
            Some("6.12.117+deb12")
        );
        assert_eq!(abi("linux-image-6.1.0-47-amd64-unsigned", "rt-amd64"), None);
        assert_eq!(
            abi("linux-binary-unsigned-7.3.4+deb13-rt-amd64", "rt-amd64"),
            Some("7.3.4+deb13")
        );
        assert_eq!(abi("linux-binary-unsigned-7.3-amd64", "amd64"), Some("7.3"));
    }

    const SPLIT: &str = "\
id: debian13-backports-7.3
source:
  kind: debian
  suite: trixie-backports
  series: \"7.3\"
  flavour: amd64
  package: linux-binary-unsigned-7.3.4+deb13-amd64
  version: 7.3.4-1~bpo13+1
  sha256: f719
  # The rest of the kernel.
  parts:
    - package: linux-modules-7.3.4+deb13-amd64
      version: 7.3.4-1~bpo13+1
      sha256: b3ea
    - package: linux-base-7.3.4+deb13-amd64
      version: 7.3.4-1~bpo13+1
      sha256: 5663
  headers:
    - package: linux-headers-7.3.4+deb13-amd64
      version: 7.3.4-1~bpo13+1
      sha256: 1c43
    - package: linux-headers-7.3.4+deb13-common
      version: 7.3.4-1~bpo13+1
      sha256: 8866
    - package: linux-kbuild-7.3.4+deb13
      version: 7.3.4-1~bpo13+1
      sha256: 248c
";

    #[test]
    fn a_split_kernel_moves_its_parts_with_its_image() {
        let v = "7.3.5-1~bpo13+1";
        let old = deb(
            "linux-binary-unsigned-7.3.4+deb13-amd64",
            "7.3.4-1~bpo13+1",
            "f719",
        );
        let new = deb("linux-binary-unsigned-7.3.5+deb13-amd64", v, "1111");
        let parts = [
            deb("linux-modules-7.3.5+deb13-amd64", v, "2222"),
            deb("linux-base-7.3.5+deb13-amd64", v, "3333"),
        ];
        let headers = [
            deb("linux-headers-7.3.5+deb13-amd64", v, "4444"),
            deb("linux-headers-7.3.5+deb13-common", v, "5555"),
            deb("linux-kbuild-7.3.5+deb13", v, "6666"),
        ];
        let (text, notes) = rewrite(
            SPLIT,
            &Repin {
                old_image: &old,
                new_image: &new,
                new_parts: &parts,
                new_headers: &headers,
                flavour: "amd64",
            },
        )
        .unwrap();
        assert!(notes.is_empty(), "{notes:?}");
        let expected = SPLIT
            .replace("7.3.4", "7.3.5")
            .replace("f719", "1111")
            .replace("b3ea", "2222")
            .replace("5663", "3333")
            .replace("1c43", "4444")
            .replace("8866", "5555")
            .replace("248c", "6666");
        assert_eq!(text, expected);
    }
}
