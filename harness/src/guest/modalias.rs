//! Module aliases: modprobe's matching of a name against `alias=` patterns (`fnmatch`, with `-`
//! and `_` equal), and the alias index of a kernel's loadable modules, which Debian does not ship
//! (`depmod` writes `modules.alias` on the installed system). Building it reads every module's
//! `.modinfo` (seconds: the `.ko.xz` files are decompressed), so it is kept in the cache, keyed by
//! the release and every module file's path, size and modification time.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::guest::modules::{read_module, Modinfo, ModuleError, ModuleIndex};

/// Bumped when the cache file's format or content changes.
const FORMAT: &str = "kdrill-modaliases/1";

/// Does alias pattern `pattern` (as a module declares it) match `name` (what modprobe was given)?
/// As kmod: `fnmatch` with `*`, `?` and `[...]`, after `-` becomes `_` outside brackets.
pub fn matches(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = underscores(pattern).chars().collect();
    let name: Vec<char> = underscores(name).chars().collect();
    glob(&pattern, &name)
}

/// `-` → `_`, except inside `[...]` (kmod's `alias_normalize`).
fn underscores(text: &str) -> String {
    let mut depth = false;
    text.chars()
        .map(|c| match c {
            '[' => {
                depth = true;
                c
            }
            ']' => {
                depth = false;
                c
            }
            '-' if !depth => '_',
            c => c,
        })
        .collect()
}

/// `fnmatch(pattern, name, 0)`: iterative, with one backtrack point for the last `*`.
fn glob(pattern: &[char], name: &[char]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        let step = match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
                continue;
            }
            Some('?') => Some(p + 1),
            Some('[') => class(pattern, p, name[n]),
            Some(&c) if c == name[n] => Some(p + 1),
            _ => None,
        };
        match (step, star) {
            (Some(next), _) => {
                p = next;
                n += 1;
            }
            (None, Some((sp, sn))) => {
                p = sp + 1;
                n = sn + 1;
                star = Some((sp, sn + 1));
            }
            (None, None) => return false,
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

/// A bracket expression at `pattern[start]` against `c`: the index after it when `c` is in the
/// class, `None` when not (or when the bracket never closes, which then matches a literal `[`).
fn class(pattern: &[char], start: usize, c: char) -> Option<usize> {
    let mut i = start + 1;
    let negate = matches!(pattern.get(i), Some('!' | '^'));
    if negate {
        i += 1;
    }
    let mut found = false;
    let first = i;
    while let Some(&x) = pattern.get(i) {
        if x == ']' && i > first {
            return (found != negate).then_some(i + 1);
        }
        if pattern.get(i + 1) == Some(&'-') && pattern.get(i + 2).is_some_and(|e| *e != ']') {
            found |= x <= c && c <= pattern[i + 2];
            i += 3;
        } else {
            found |= x == c;
            i += 1;
        }
    }
    (c == '[').then_some(start + 1)
}

/// Every `(module, alias pattern)` of the kernel's loadable modules, from `cache` when it holds
/// this kernel's index, else read from the modules and written there.
pub fn loadable(
    index: &ModuleIndex,
    cache: Option<&Path>,
) -> Result<Vec<(String, String)>, ModuleError> {
    let file = cache.map(|dir| {
        dir.join("modaliases")
            .join(format!("{}-{}", index.release, key(index)))
    });
    if let Some(text) = file.as_ref().and_then(|f| std::fs::read_to_string(f).ok()) {
        if let Some(table) = parse(&text) {
            return Ok(table);
        }
    }
    let table = build(index)?;
    if let Some(file) = file {
        // A cache that cannot be written only costs the next run the same seconds.
        let _ = store(&file, &table);
    }
    Ok(table)
}

/// The index's identity: the release and every module file's path, size and modification time.
fn key(index: &ModuleIndex) -> String {
    let mut hash = Sha256::new();
    hash.update(format!("{FORMAT}\n{}\n", index.release));
    for (_, path) in index.files() {
        let meta = std::fs::metadata(path).ok();
        let (len, mtime) = meta.map_or((0, 0), |m| {
            let mtime = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            (m.len(), mtime)
        });
        let rel = path.strip_prefix(&index.dir).unwrap_or(path);
        hash.update(format!("{}\t{len}\t{mtime}\n", rel.display()));
    }
    let digest = hash.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads every loadable module's aliases, on as many threads as the machine has cores.
fn build(index: &ModuleIndex) -> Result<Vec<(String, String)>, ModuleError> {
    let files: Vec<(&str, &Path)> = index.files().collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = files.len().div_ceil(threads).max(1);
    let parts: Vec<Result<Vec<(String, String)>, ModuleError>> = std::thread::scope(|scope| {
        let workers: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    let mut out = Vec::new();
                    for (name, path) in part {
                        let info = Modinfo::from_elf(&read_module(path)?).map_err(|detail| {
                            ModuleError::Unreadable {
                                path: path.to_path_buf(),
                                detail,
                            }
                        })?;
                        out.extend(info.aliases.into_iter().map(|a| (name.to_string(), a)));
                    }
                    Ok(out)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("alias worker panicked"))
            .collect()
    });
    let mut table = Vec::new();
    for part in parts {
        table.extend(part?);
    }
    table.sort();
    Ok(table)
}

/// The cache file: a format line, then `module<TAB>alias` lines.
fn parse(text: &str) -> Option<Vec<(String, String)>> {
    let mut lines = text.lines();
    (lines.next()? == FORMAT).then_some(())?;
    lines
        .map(|l| {
            l.split_once('\t')
                .map(|(m, a)| (m.to_string(), a.to_string()))
        })
        .collect()
}

/// Written beside and renamed into place, so a reader never sees half a file.
fn store(file: &PathBuf, table: &[(String, String)]) -> std::io::Result<()> {
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut text = format!("{FORMAT}\n");
    for (module, alias) in table {
        text.push_str(&format!("{module}\t{alias}\n"));
    }
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::fs::write(tmp.path(), text)?;
    tmp.persist(file).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_match_as_modprobe_matches_them() {
        for (pattern, name, expected) in [
            ("crypto-crc32c", "crypto-crc32c", true),
            ("crypto-crc32c", "crypto_crc32c", true),
            ("crypto-crc32c", "crypto-crc32c-generic", false),
            ("fs-ext4", "ext4", false),
            (
                "pci:v00008086d000025ABsv*sd*bc*sc*i*",
                "pci:v00008086d000025ABsv00001AF4sd00001100bc08sc80i00",
                true,
            ),
            (
                "pci:v00008086d000025ABsv*sd*bc*sc*i*",
                "pci:v00008086d000025ACsv0sd0bc08sc80i00",
                false,
            ),
            ("acpi*:QEMU0002:*", "acpi:QEMU0002:", true),
            ("cpu:type:x86,ven*fam*mod*:feature:*0094*", "crc32c", false),
            ("virtio:d00000002v*", "virtio:d00000002v00001AF4", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("x[0-9]y", "x5y", true),
            ("x[!0-9]y", "x5y", false),
            ("x[a-]y", "x-y", false), // the name's `-` is `_` by then
            ("x[_-]y", "x-y", true),
            ("*", "", true),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
            ("[", "[", true),
        ] {
            assert_eq!(matches(pattern, name), expected, "{pattern} ~ {name}");
        }
    }

    #[test]
    fn the_index_is_cached_by_the_modules_it_was_read_from() {
        let tree = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let write = |name: &str, modinfo: &[u8]| {
            let elf = crate::host::elf::tests_support::elf_with_section(".modinfo", modinfo);
            std::fs::write(tree.path().join(name), elf).unwrap();
        };
        write("ext4.ko", b"alias=fs-ext4\0depends=\0");
        write("crc16.ko", b"depends=\0");
        let index = ModuleIndex::scan(tree.path(), "6.1.0-47-amd64").unwrap();
        let table = loadable(&index, Some(cache.path())).unwrap();
        assert_eq!(table, [("ext4".to_string(), "fs-ext4".to_string())]);
        let files: Vec<_> = std::fs::read_dir(cache.path().join("modaliases"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        assert!(files[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("6.1.0-47-amd64-"));
        // The cached copy is what a second index reads: edit it and see the edit.
        std::fs::write(&files[0], format!("{FORMAT}\next4\tfs-ext9\n")).unwrap();
        let again = ModuleIndex::scan(tree.path(), "6.1.0-47-amd64").unwrap();
        assert_eq!(
            loadable(&again, Some(cache.path())).unwrap()[0].1,
            "fs-ext9"
        );
        // A module that changes makes another key: read afresh.
        write("crc16.ko", b"alias=crc-16\0depends=\0");
        let changed = ModuleIndex::scan(tree.path(), "6.1.0-47-amd64").unwrap();
        let table = loadable(&changed, Some(cache.path())).unwrap();
        assert!(
            table.contains(&("crc16".into(), "crc-16".into())),
            "{table:?}"
        );
        // A cache file of another format is not trusted.
        assert_eq!(parse("kdrill-modaliases/0\next4\tfs-ext4\n"), None);
    }
}
