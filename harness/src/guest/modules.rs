//! Kernel modules for the guest: find them in a kernel's modules folder, read what each declares
//! (`.modinfo`: `depends=`, `softdep=`, `alias=`) and what is built in (`modules.builtin`,
//! `modules.builtin.modinfo`). `guest/needs/` decides from these what to load.
//!
//! We read `.modinfo` instead of `modules.dep`/`modules.alias` because Debian's packages ship
//! neither (the postinst runs `depmod`), and a user's local modules folder may be read-only: no
//! `depmod` run needed. The aliases of every loadable module are indexed once per kernel
//! (`guest/modalias.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::guest::modalias;
use crate::host::elf::modinfo_section;

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

/// What a module declares about itself in `.modinfo` (or `modules.builtin.modinfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Modinfo {
    /// `depends=`: the modules whose symbols it uses (normalized names).
    pub depends: Vec<String>,
    /// `softdep=pre: …`: what modprobe loads before it (names or aliases, as written).
    pub softdep_pre: Vec<String>,
    /// `softdep=post: …`: what modprobe loads after it.
    pub softdep_post: Vec<String>,
    /// `alias=`: the names modprobe also finds it by (patterns: `pci:v00008086d000025ABsv*…`).
    pub aliases: Vec<String>,
}

impl Modinfo {
    /// Reads the `.modinfo` section of a module's ELF bytes.
    pub fn from_elf(elf: &[u8]) -> Result<Modinfo, String> {
        let mut info = Modinfo::default();
        for field in modinfo_section(elf)?.split(|b| *b == 0) {
            if let Some((key, value)) = String::from_utf8_lossy(field).split_once('=') {
                info.add(key, value);
            }
        }
        Ok(info)
    }

    fn add(&mut self, key: &str, value: &str) {
        match key {
            "depends" => self
                .depends
                .extend(value.split(',').filter(|s| !s.is_empty()).map(normalize)),
            "alias" => self.aliases.push(value.to_string()),
            // `pre: a b post: c`, as modprobe.d's softdep lines.
            "softdep" => {
                let mut post = false;
                for word in value.split_whitespace() {
                    match word {
                        "pre:" => post = false,
                        "post:" => post = true,
                        name if post => self.softdep_post.push(name.to_string()),
                        name => self.softdep_pre.push(name.to_string()),
                    }
                }
            }
            _ => {}
        }
    }
}

/// `modules.builtin.modinfo`: NUL-separated `<module>.<key>=<value>` strings, one module's
/// `.modinfo` for each built-in module.
pub fn parse_builtin_modinfo(data: &[u8]) -> BTreeMap<String, Modinfo> {
    let mut out: BTreeMap<String, Modinfo> = BTreeMap::new();
    for field in data.split(|b| *b == 0) {
        let field = String::from_utf8_lossy(field);
        let Some((module, rest)) = field.split_once('.') else {
            continue;
        };
        if let Some((key, value)) = rest.split_once('=') {
            out.entry(normalize(module)).or_default().add(key, value);
        }
    }
    out
}

/// The modules of one kernel release: name → file, and what is built into the kernel.
#[derive(Debug, Default)]
pub struct ModuleIndex {
    pub release: String,
    pub dir: PathBuf,
    files: BTreeMap<String, PathBuf>,
    builtin: BTreeSet<String>,
    builtin_info: BTreeMap<String, Modinfo>,
    /// Where the alias index of the loadable modules is kept (`None`: built in memory each time).
    alias_cache: Option<PathBuf>,
    aliases: OnceLock<Vec<(String, String)>>,
}

/// `virtio-pci`, `virtio_pci.ko.xz` and `kernel/x/virtio_pci.ko` all name module `virtio_pci`.
pub fn normalize(name: &str) -> String {
    let base = name.rsplit('/').next().unwrap_or(name);
    let base = base.split(".ko").next().unwrap_or(base);
    base.replace('-', "_")
}

impl ModuleIndex {
    /// Indexes every `*.ko*` file under `dir` and reads `modules.builtin` and
    /// `modules.builtin.modinfo` when present.
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
        if let Ok(data) = std::fs::read(dir.join("modules.builtin.modinfo")) {
            index.builtin_info = parse_builtin_modinfo(&data);
        }
        Ok(index)
    }

    /// Keeps the alias index of this kernel's loadable modules under `cache` (built once).
    pub fn with_alias_cache(mut self, cache: &Path) -> ModuleIndex {
        self.alias_cache = Some(cache.to_path_buf());
        self
    }

    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.contains(&normalize(name))
    }

    /// What a built-in module declares (empty when the kernel has no `modules.builtin.modinfo`).
    pub fn builtin_info(&self, name: &str) -> Modinfo {
        self.builtin_info
            .get(&normalize(name))
            .cloned()
            .unwrap_or_default()
    }

    /// Built-in modules one of whose aliases matches `alias`, by name.
    pub fn builtin_with_alias(&self, alias: &str) -> Vec<String> {
        self.builtin_info
            .iter()
            .filter(|(_, info)| info.aliases.iter().any(|p| modalias::matches(p, alias)))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Loadable modules one of whose aliases matches `alias`, by name, each with whether it is
    /// bound to a CPU feature (a `cpu:` alias: it refuses to load on a CPU without it).
    pub fn modules_with_alias(&self, alias: &str) -> Result<Vec<(String, bool)>, ModuleError> {
        let table = match self.aliases.get() {
            Some(table) => table,
            None => {
                let built = modalias::loadable(self, self.alias_cache.as_deref())?;
                self.aliases.get_or_init(|| built)
            }
        };
        let mut out: BTreeMap<String, bool> = BTreeMap::new();
        for (module, pattern) in table {
            if modalias::matches(pattern, alias) {
                out.insert(module.clone(), false);
            }
        }
        for (module, pattern) in table {
            if let Some(cpu) = out.get_mut(module) {
                *cpu |= pattern.starts_with("cpu:");
            }
        }
        Ok(out.into_iter().collect())
    }

    /// Every loadable module: name and file.
    pub fn files(&self) -> impl Iterator<Item = (&str, &Path)> {
        self.files.iter().map(|(n, p)| (n.as_str(), p.as_path()))
    }

    pub fn path(&self, name: &str) -> Option<&Path> {
        self.files.get(&normalize(name)).map(PathBuf::as_path)
    }

    /// The module's ELF bytes, decompressed when it is `.ko.xz`.
    pub fn read(&self, name: &str) -> Result<Vec<u8>, ModuleError> {
        let path = self.path(name).ok_or_else(|| self.not_found(name))?;
        read_module(path)
    }

    /// What a loadable module declares in its `.modinfo`.
    pub fn modinfo(&self, name: &str) -> Result<Modinfo, ModuleError> {
        let bytes = self.read(name)?;
        Modinfo::from_elf(&bytes).map_err(|detail| ModuleError::Unreadable {
            path: self.path(name).unwrap_or(Path::new("?")).into(),
            detail,
        })
    }

    pub fn not_found(&self, name: &str) -> ModuleError {
        ModuleError::NotFound {
            name: name.into(),
            release: self.release.clone(),
            dir: self.dir.clone(),
        }
    }
}

/// A module file's ELF bytes: `.ko` as is, `.ko.xz` decompressed.
pub fn read_module(path: &Path) -> Result<Vec<u8>, ModuleError> {
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
        std::io::Read::read_to_end(
            &mut lzma_rust2::XzReader::new(raw.as_slice(), false),
            &mut out,
        )
        .map_err(|e| unreadable(format!("bad xz data: {e}")))?;
        Ok(out)
    } else {
        Err(unreadable(
            "unsupported module compression (kdrill reads .ko and .ko.xz)".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::elf::tests_support::elf_with_section;

    #[test]
    fn names_are_normalized() {
        assert_eq!(
            normalize("kernel/drivers/virtio/virtio_pci.ko.xz"),
            "virtio_pci"
        );
        assert_eq!(normalize("crc32c-generic"), "crc32c_generic");
    }

    #[test]
    fn modinfo_reads_depends_softdeps_and_aliases() {
        let elf = elf_with_section(
            ".modinfo",
            b"license=GPL\0softdep=pre: crypto-crc32c post: x y\0alias=fs-ext4\0alias=ext3\0depends=jbd2,mbcache,crc16\0name=ext4\0",
        );
        assert_eq!(
            Modinfo::from_elf(&elf).unwrap(),
            Modinfo {
                depends: vec!["jbd2".into(), "mbcache".into(), "crc16".into()],
                softdep_pre: vec!["crypto-crc32c".into()],
                softdep_post: vec!["x".into(), "y".into()],
                aliases: vec!["fs-ext4".into(), "ext3".into()],
            }
        );
        let none = elf_with_section(".modinfo", b"depends=\0name=crc16\0");
        assert_eq!(Modinfo::from_elf(&none).unwrap(), Modinfo::default());
        let err = Modinfo::from_elf(&elf_with_section(".text", b"")).unwrap_err();
        assert_eq!(err, "no .modinfo section");
    }

    #[test]
    fn builtin_modinfo_is_split_by_module() {
        let info = parse_builtin_modinfo(
            b"ext4.softdep=pre: crypto-crc32c\0ext4.alias=fs-ext4\0crc32c_generic.alias=crc32c\0crc32c_generic.license=GPL\0",
        );
        assert_eq!(info["ext4"].softdep_pre, ["crypto-crc32c"]);
        assert_eq!(info["ext4"].aliases, ["fs-ext4"]);
        assert_eq!(info["crc32c_generic"].aliases, ["crc32c"]);
    }
}
