//! Kernel modules for the guest: find them in a `/lib/modules/<release>` folder, resolve their
//! dependencies from each module's `.modinfo`, and order them for loading.
//!
//! We read `depends=` from `.modinfo` instead of `modules.dep` because Debian's image packages ship
//! no `modules.dep`, and a user's local modules folder may be read-only: no `depmod` run needed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error("module `{name}` is neither built into kernel {release} nor found under {dir}")]
    NotFound {
        name: String,
        release: String,
        dir: PathBuf,
    },
    #[error("{path}: {detail}")]
    Unreadable { path: PathBuf, detail: String },
}

/// The modules of one kernel release: name → file, and the names built into the kernel.
#[derive(Debug, Default)]
pub struct ModuleIndex {
    pub release: String,
    pub dir: PathBuf,
    files: BTreeMap<String, PathBuf>,
    builtin: BTreeSet<String>,
}

/// `virtio-pci`, `virtio_pci.ko.xz` and `kernel/x/virtio_pci.ko` all name module `virtio_pci`.
pub fn normalize(name: &str) -> String {
    let base = name.rsplit('/').next().unwrap_or(name);
    let base = base.split(".ko").next().unwrap_or(base);
    base.replace('-', "_")
}

impl ModuleIndex {
    /// Indexes every `*.ko*` file under `dir` and reads `modules.builtin` when present.
    pub fn scan(dir: &Path, release: &str) -> Result<ModuleIndex, ModuleError> {
        let mut index = ModuleIndex {
            release: release.into(),
            dir: dir.into(),
            ..Default::default()
        };
        let mut stack = vec![dir.to_path_buf()];
        while let Some(folder) = stack.pop() {
            let entries = std::fs::read_dir(&folder).map_err(|e| ModuleError::Unreadable {
                path: folder.clone(),
                detail: e.to_string(),
            })?;
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if kind.is_dir() {
                    stack.push(path);
                } else if path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.contains(".ko"))
                {
                    index
                        .files
                        .entry(normalize(&path.to_string_lossy()))
                        .or_insert(path);
                }
            }
        }
        if let Ok(text) = std::fs::read_to_string(dir.join("modules.builtin")) {
            index.builtin = text
                .lines()
                .filter(|l| !l.is_empty())
                .map(normalize)
                .collect();
        }
        Ok(index)
    }

    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.contains(&normalize(name))
    }

    pub fn path(&self, name: &str) -> Option<&Path> {
        self.files.get(&normalize(name)).map(PathBuf::as_path)
    }

    /// The module's ELF bytes, decompressed when it is `.ko.xz`.
    pub fn read(&self, name: &str) -> Result<Vec<u8>, ModuleError> {
        let path = self.path(name).ok_or_else(|| self.not_found(name))?;
        let unreadable = |detail: String| ModuleError::Unreadable {
            path: path.into(),
            detail,
        };
        let raw = std::fs::read(path).map_err(|e| unreadable(e.to_string()))?;
        let file_name = path.to_string_lossy();
        if file_name.ends_with(".ko") {
            Ok(raw)
        } else if file_name.ends_with(".ko.xz") {
            let mut out = Vec::new();
            lzma_rs::xz_decompress(&mut raw.as_slice(), &mut out)
                .map_err(|e| unreadable(format!("bad xz data: {e}")))?;
            Ok(out)
        } else {
            Err(unreadable(
                "unsupported module compression (kdrill reads .ko and .ko.xz)".into(),
            ))
        }
    }

    fn not_found(&self, name: &str) -> ModuleError {
        ModuleError::NotFound {
            name: name.into(),
            release: self.release.clone(),
            dir: self.dir.clone(),
        }
    }

    /// `wanted` and everything they depend on, dependencies first; built-in modules are left out.
    pub fn load_order(&self, wanted: &[String]) -> Result<Vec<String>, ModuleError> {
        load_order(wanted, |name| {
            if self.is_builtin(name) {
                return Ok(None);
            }
            let bytes = self.read(name)?;
            let path = self.path(name).unwrap_or(Path::new("?"));
            modinfo_depends(&bytes)
                .map(Some)
                .map_err(|detail| ModuleError::Unreadable {
                    path: path.into(),
                    detail,
                })
        })
    }
}

/// A module's direct dependencies, or `None` when it is built into the kernel.
type DepsOf<'a> = dyn FnMut(&str) -> Result<Option<Vec<String>>, ModuleError> + 'a;

/// Depth-first dependency closure. `deps_of` returns `None` for a built-in module (nothing to load)
/// and the module's direct dependencies otherwise.
pub fn load_order(
    wanted: &[String],
    mut deps_of: impl FnMut(&str) -> Result<Option<Vec<String>>, ModuleError>,
) -> Result<Vec<String>, ModuleError> {
    fn visit(
        name: String,
        deps_of: &mut DepsOf,
        seen: &mut BTreeSet<String>,
        order: &mut Vec<String>,
    ) -> Result<(), ModuleError> {
        if !seen.insert(name.clone()) {
            return Ok(());
        }
        if let Some(deps) = deps_of(&name)? {
            for dep in deps {
                visit(normalize(&dep), deps_of, seen, order)?;
            }
            order.push(name);
        }
        Ok(())
    }
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    for name in wanted {
        visit(normalize(name), &mut deps_of, &mut seen, &mut order)?;
    }
    Ok(order)
}

/// The `depends=` list of a module's `.modinfo` section (empty when it has none).
pub fn modinfo_depends(elf: &[u8]) -> Result<Vec<String>, String> {
    Ok(modinfo_values(elf, "depends")?
        .into_iter()
        .flat_map(|list| {
            String::from_utf8_lossy(list)
                .split(',')
                .filter(|s| !s.is_empty())
                .map(normalize)
                .collect::<Vec<_>>()
        })
        .collect())
}

/// The first `<key>=` value of a module's `.modinfo` section, e.g. `vermagic` (`None` when absent).
pub fn modinfo_field(elf: &[u8], key: &str) -> Result<Option<String>, String> {
    Ok(modinfo_values(elf, key)?
        .first()
        .map(|value| String::from_utf8_lossy(value).into_owned()))
}

/// Every value of `<key>=` in `.modinfo`, a list of NUL-terminated `key=value` strings.
fn modinfo_values<'a>(elf: &'a [u8], key: &str) -> Result<Vec<&'a [u8]>, String> {
    use object::{Object, ObjectSection};
    let file = object::File::parse(elf).map_err(|e| format!("not an ELF module: {e}"))?;
    let section = file
        .section_by_name(".modinfo")
        .ok_or("no .modinfo section")?;
    let data = section
        .data()
        .map_err(|e| format!("bad .modinfo section: {e}"))?;
    let prefix = format!("{key}=");
    Ok(data
        .split(|b| *b == 0)
        .filter_map(|field| field.strip_prefix(prefix.as_bytes()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(graph: &[(&str, Option<&[&str]>)], wanted: &[&str], expected: &[&str]) {
        let graph: BTreeMap<&str, Option<&[&str]>> = graph.iter().copied().collect();
        let wanted: Vec<String> = wanted.iter().map(|s| s.to_string()).collect();
        let order = load_order(&wanted, |name| match graph.get(name) {
            Some(deps) => Ok(deps.map(|d| d.iter().map(|s| s.to_string()).collect())),
            None => Err(ModuleError::NotFound {
                name: name.into(),
                release: "r".into(),
                dir: "/m".into(),
            }),
        })
        .unwrap();
        assert_eq!(order, expected);
    }

    #[test]
    fn dependencies_come_first_and_once() {
        check(
            &[
                ("ext4", Some(&["crc16", "mbcache", "jbd2"])),
                ("crc16", Some(&[])),
                ("mbcache", Some(&[])),
                ("jbd2", Some(&[])),
                ("virtio_blk", Some(&["virtio_ring", "virtio"])),
                ("virtio_ring", Some(&[])),
                ("virtio", Some(&[])),
                ("virtio_pci", Some(&["virtio_ring", "virtio"])),
            ],
            &["virtio_pci", "virtio_blk", "ext4"],
            &[
                "virtio_ring",
                "virtio",
                "virtio_pci",
                "virtio_blk",
                "crc16",
                "mbcache",
                "jbd2",
                "ext4",
            ],
        );
    }

    #[test]
    fn builtin_modules_are_not_loaded() {
        check(
            &[
                ("virtio_pci", None),
                ("ext4", Some(&["jbd2"])),
                ("jbd2", Some(&[])),
            ],
            &["virtio-pci", "ext4"],
            &["jbd2", "ext4"],
        );
    }

    #[test]
    fn missing_module_is_an_error_naming_it() {
        let err = load_order(&["nosuch".to_string()], |name| {
            Err(ModuleError::NotFound {
                name: name.into(),
                release: "6.1".into(),
                dir: "/lib/modules/6.1".into(),
            })
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "module `nosuch` is neither built into kernel 6.1 nor found under /lib/modules/6.1"
        );
    }

    #[test]
    fn names_are_normalized() {
        assert_eq!(
            normalize("kernel/drivers/virtio/virtio_pci.ko.xz"),
            "virtio_pci"
        );
        assert_eq!(normalize("crc32c-generic"), "crc32c_generic");
    }

    #[test]
    fn modinfo_depends_reads_the_section() {
        let elf = crate::guest::initramfs::tests_support::elf_with_section(
            ".modinfo",
            b"license=GPL\0depends=jbd2,mbcache,crc16\0name=ext4\0",
        );
        assert_eq!(modinfo_depends(&elf).unwrap(), ["jbd2", "mbcache", "crc16"]);
        let none = crate::guest::initramfs::tests_support::elf_with_section(
            ".modinfo",
            b"depends=\0name=crc16\0",
        );
        assert!(modinfo_depends(&none).unwrap().is_empty());
    }

    #[test]
    fn modinfo_field_reads_one_value() {
        let elf = crate::guest::initramfs::tests_support::elf_with_section(
            ".modinfo",
            b"license=GPL\0vermagic=6.1.0-47-amd64 SMP preempt mod_unload modversions \0name=crasher\0",
        );
        assert_eq!(
            modinfo_field(&elf, "vermagic").unwrap().as_deref(),
            Some("6.1.0-47-amd64 SMP preempt mod_unload modversions ")
        );
        assert_eq!(
            modinfo_field(&elf, "name").unwrap().as_deref(),
            Some("crasher")
        );
        assert_eq!(modinfo_field(&elf, "author").unwrap(), None);
        // `name=` must not match a key that merely ends in `name`.
        let other =
            crate::guest::initramfs::tests_support::elf_with_section(".modinfo", b"srcname=x\0");
        assert_eq!(modinfo_field(&other, "name").unwrap(), None);
    }
}
