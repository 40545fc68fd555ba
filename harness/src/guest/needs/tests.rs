//! The needs resolver over synthetic module trees: `.ko` and `.ko.xz` files whose `.modinfo` is
//! that of the real modules (Debian 6.1.0-47, 6.12.117+deb12, 7.3.4+deb13, read 2026-12-06),
//! with real `modules.builtin` excerpts where the test says so.

use std::path::{Path, PathBuf};

use super::*;
use crate::host::elf::tests_support::elf_with_section;
use crate::spec::image;

/// A kernel's modules folder, written by the test.
struct Tree {
    dir: tempfile::TempDir,
    release: &'static str,
}

impl Tree {
    fn new(release: &'static str) -> Tree {
        Tree {
            dir: tempfile::tempdir().unwrap(),
            release,
        }
    }

    /// A module at `kernel/<path>` (`.ko` or `.ko.xz`, compressed as Debian does), whose
    /// `.modinfo` holds `fields` (and `name=`).
    fn module(&self, path: &str, fields: &[&str]) -> &Tree {
        let name = normalize(path);
        let mut modinfo: Vec<u8> = Vec::new();
        for field in fields
            .iter()
            .copied()
            .chain([format!("name={name}").as_str()])
        {
            modinfo.extend(field.as_bytes());
            modinfo.push(0);
        }
        let elf = elf_with_section(".modinfo", &modinfo);
        let file = self.dir.path().join("kernel").join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        let bytes = if path.ends_with(".xz") {
            let mut w =
                lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::default()).unwrap();
            std::io::Write::write_all(&mut w, &elf).unwrap();
            w.finish().unwrap()
        } else {
            elf
        };
        std::fs::write(file, bytes).unwrap();
        self
    }

    /// `modules.builtin` lines and `modules.builtin.modinfo` records.
    fn builtin(&self, lines: &[&str], modinfo: &[&str]) -> &Tree {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(self.dir.path().join("modules.builtin"), text).unwrap();
        let data: Vec<u8> = modinfo
            .iter()
            .flat_map(|r| [r.as_bytes(), b"\0"].concat())
            .collect();
        std::fs::write(self.dir.path().join("modules.builtin.modinfo"), data).unwrap();
        self
    }

    /// The committed excerpt of a real kernel's built-in lists.
    fn real_builtin(&self) -> &Tree {
        let from = fixture(self.release);
        for file in ["modules.builtin", "modules.builtin.modinfo"] {
            std::fs::copy(from.join(file), self.dir.path().join(file)).unwrap();
        }
        self
    }

    fn index(&self) -> ModuleIndex {
        ModuleIndex::scan(self.dir.path(), self.release).unwrap()
    }

    fn resolve(&self) -> Result<Resolved, NeedError> {
        resolve(&self.index(), &image::minimal(None).unwrap().needs)
    }
}

fn fixture(release: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/modules")
        .join(release)
}

const EXT4_ALIASES: &[&str] = &[
    "alias=fs-ext4",
    "alias=ext3",
    "alias=fs-ext3",
    "alias=ext2",
    "alias=fs-ext2",
];
const CRC32C_INTEL: &[&str] = &[
    "alias=crypto-crc32c-intel",
    "alias=crc32c-intel",
    "alias=crypto-crc32c",
    "alias=crc32c",
    "alias=cpu:type:x86,ven*fam*mod*:feature:*0094*",
    "depends=",
];
const CRC32C_GENERIC: &[&str] = &[
    "alias=crypto-crc32c-generic",
    "alias=crc32c-generic",
    "alias=crypto-crc32c",
    "alias=crc32c",
    "depends=",
];

/// What Debian's 6.x amd64 flavours have of ext4 and crc32c, in files named `<x><ext>`.
fn ext4_6x(tree: &Tree, ext: &str) {
    let ext4: Vec<&str> = ["softdep=pre: crypto-crc32c", "depends=jbd2,mbcache,crc16"]
        .into_iter()
        .chain(EXT4_ALIASES.iter().copied())
        .collect();
    tree.module(&format!("fs/ext4/ext4{ext}"), &ext4)
        .module(
            &format!("fs/jbd2/jbd2{ext}"),
            &["softdep=pre: crypto-crc32c", "depends="],
        )
        .module(&format!("fs/mbcache{ext}"), &["depends="])
        .module(&format!("lib/crc16{ext}"), &["depends="])
        .module(&format!("crypto/crc32c_generic{ext}"), CRC32C_GENERIC)
        .module(&format!("arch/x86/crypto/crc32c-intel{ext}"), CRC32C_INTEL)
        .module(
            &format!("lib/libcrc32c{ext}"),
            &["softdep=pre: crc32c", "depends="],
        )
        .module(
            &format!("drivers/block/virtio_blk{ext}"),
            &["alias=virtio:d00000002v*", "depends=virtio,virtio_ring"],
        );
}

fn modules(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn bookworm_6_1_loads_virtio_pci_and_crc32c_generic_for_ext4() {
    let tree = Tree::new("6.1.0-47-amd64");
    ext4_6x(&tree, ".ko");
    tree.module(
        "drivers/virtio/virtio_pci.ko",
        &[
            "alias=pci:v00001AF4d*sv*sd*bc*sc*i*",
            "depends=virtio_ring,virtio_pci_modern_dev,virtio_pci_legacy_dev,virtio",
        ],
    )
    .module("drivers/virtio/virtio_pci_modern_dev.ko", &["depends="])
    .module("drivers/virtio/virtio_pci_legacy_dev.ko", &["depends="])
    .module("drivers/virtio/virtio.ko", &["depends="])
    .module("drivers/virtio/virtio_ring.ko", &["depends="])
    .builtin(&["kernel/lib/crc32.ko"], &["crc32.license=GPL"]);
    let resolved = tree.resolve().unwrap();
    // ext4's softdep `crypto-crc32c` is provided by crc32c_generic and crc32c-intel: the one
    // bound to SSE4.2 is passed over.
    assert_eq!(
        resolved.order,
        modules(&[
            "virtio_ring",
            "virtio_pci_modern_dev",
            "virtio_pci_legacy_dev",
            "virtio",
            "virtio_pci",
            "virtio_blk",
            "crc32c_generic",
            "jbd2",
            "mbcache",
            "crc16",
            "ext4",
        ])
    );
    assert_eq!(
        resolved.found,
        [
            Found::Module("virtio_pci".into()),
            Found::Module("virtio_blk".into()),
            Found::Module("ext4".into()),
        ]
    );
}

#[test]
fn bookworm_6_12_has_virtio_pci_built_in_and_xz_modules() {
    let tree = Tree::new("6.12.117+deb12-amd64");
    ext4_6x(&tree, ".ko.xz");
    tree.builtin(
        &[
            "kernel/lib/crc32.ko",
            "kernel/drivers/virtio/virtio.ko",
            "kernel/drivers/virtio/virtio_ring.ko",
            "kernel/drivers/virtio/virtio_pci.ko",
        ],
        &["virtio_pci.version=1", "crc32.license=GPL"],
    );
    let resolved = tree.resolve().unwrap();
    assert_eq!(
        resolved.order,
        modules(&[
            "virtio_blk",
            "crc32c_generic",
            "jbd2",
            "mbcache",
            "crc16",
            "ext4"
        ])
    );
    assert_eq!(resolved.found[0], Found::BuiltIn("virtio_pci".into()));
}

/// 7.x: no crc32c_generic (ext4 calls the built-in crc32c library and declares no softdep);
/// jbd2 still declares `pre: crypto-crc32c`, which crc32c-cryptoapi provides, as modprobe loads it.
fn ext4_7x(tree: &Tree) -> &Tree {
    let ext4: Vec<&str> = EXT4_ALIASES
        .iter()
        .copied()
        .chain(["depends=jbd2,crc16,mbcache"])
        .collect();
    tree.module("fs/ext4/ext4.ko.xz", &ext4)
        .module(
            "fs/jbd2/jbd2.ko.xz",
            &["softdep=pre: crypto-crc32c", "depends="],
        )
        .module("fs/mbcache.ko.xz", &["depends="])
        .module("lib/crc/crc16.ko.xz", &["depends="])
        .module(
            "drivers/block/virtio_blk.ko.xz",
            &["alias=virtio:d00000002v*", "depends="],
        )
}

#[test]
fn seven_x_needs_no_crc32c_generic() {
    let tree = Tree::new("7.3.4+deb13-amd64");
    ext4_7x(&tree)
        .module(
            "crypto/crc32c-cryptoapi.ko.xz",
            &["alias=crypto-crc32c", "alias=crc32c", "depends="],
        )
        .real_builtin();
    let resolved = tree.resolve().unwrap();
    assert_eq!(
        resolved.order,
        modules(&[
            "virtio_blk",
            "crc32c_cryptoapi",
            "jbd2",
            "crc16",
            "mbcache",
            "ext4"
        ])
    );
    assert_eq!(resolved.found[0], Found::BuiltIn("virtio_pci".into()));
}

#[test]
fn a_softdep_built_in_or_absent_is_skipped() {
    // crc32c provided by the kernel itself: a built-in module with that alias.
    let tree = Tree::new("7.3.4+deb13-amd64");
    ext4_7x(&tree).builtin(
        &[
            "kernel/drivers/virtio/virtio_pci.ko",
            "kernel/crypto/crc32c-cryptoapi.ko",
        ],
        &[
            "crc32c_cryptoapi.alias=crypto-crc32c",
            "crc32c_cryptoapi.alias=crc32c",
        ],
    );
    let order = tree.resolve().unwrap().order;
    assert_eq!(
        order,
        modules(&["virtio_blk", "jbd2", "crc16", "mbcache", "ext4"])
    );
    // Nothing provides it at all (a library the kernel calls directly): not an error either.
    let tree = Tree::new("7.3.4+deb13-amd64");
    ext4_7x(&tree).real_builtin();
    let order = tree.resolve().unwrap().order;
    assert_eq!(
        order,
        modules(&["virtio_blk", "jbd2", "crc16", "mbcache", "ext4"])
    );
    // A provider bound to a CPU feature is passed over even when it sorts first by name.
    let tree = Tree::new("6.1.0-47-amd64");
    ext4_6x(&tree, ".ko");
    tree.module("arch/x86/crypto/crc32c-avx.ko", CRC32C_INTEL)
        .builtin(
            &[
                "kernel/drivers/virtio/virtio.ko",
                "kernel/drivers/virtio/virtio_ring.ko",
                "kernel/drivers/virtio/virtio_pci.ko",
            ],
            &[],
        );
    let order = tree.resolve().unwrap().order;
    assert!(order.contains(&"crc32c_generic".to_string()), "{order:?}");
    assert!(
        !order
            .iter()
            .any(|m| m == "crc32c_avx" || m == "crc32c_intel"),
        "{order:?}"
    );
    // Only a provider bound to a CPU feature: an optional helper that may refuse to load.
    let tree = Tree::new("7.3.4+deb13-amd64");
    ext4_7x(&tree)
        .module("arch/x86/crypto/crc32c-intel.ko.xz", CRC32C_INTEL)
        .real_builtin();
    assert!(!tree
        .resolve()
        .unwrap()
        .order
        .contains(&"crc32c_intel".to_string()));
}

#[test]
fn cloud_has_ext4_built_in() {
    // 6.1 cloud: ext4, its dependencies and crc32c_generic built in; crc32c-intel a module.
    let tree = Tree::new("6.1.0-47-cloud-amd64");
    tree.module(
        "drivers/block/virtio_blk.ko",
        &["depends=virtio,virtio_ring"],
    )
    .module(
        "drivers/virtio/virtio_pci.ko",
        &["depends=virtio_ring,virtio"],
    )
    .module("drivers/virtio/virtio.ko", &["depends="])
    .module("drivers/virtio/virtio_ring.ko", &["depends="])
    .module("arch/x86/crypto/crc32c-intel.ko", CRC32C_INTEL)
    .builtin(
        &[
            "kernel/fs/mbcache.ko",
            "kernel/fs/ext4/ext4.ko",
            "kernel/fs/jbd2/jbd2.ko",
            "kernel/crypto/crc32c_generic.ko",
            "kernel/lib/crc16.ko",
        ],
        &[
            "ext4.softdep=pre: crypto-crc32c",
            "ext4.alias=fs-ext4",
            "crc32c_generic.alias=crypto-crc32c",
        ],
    );
    let resolved = tree.resolve().unwrap();
    assert_eq!(
        resolved.order,
        modules(&["virtio_ring", "virtio", "virtio_pci", "virtio_blk"])
    );
    assert_eq!(resolved.found[2], Found::BuiltIn("ext4".into()));
    // 7.3 cloud, from the real lists: virtio_pci and ext4 built in; nothing for jbd2's softdep.
    let tree = Tree::new("7.3.4+deb13-cloud-amd64");
    tree.module("drivers/block/virtio_blk.ko.xz", &["depends="])
        .module(
            "crypto/crc32c-cryptoapi.ko.xz",
            &["alias=crypto-crc32c", "depends="],
        )
        .real_builtin();
    assert_eq!(tree.resolve().unwrap().order, modules(&["virtio_blk"]));
}

#[test]
fn a_need_is_found_by_its_alias_built_in_or_not() {
    let need = |find: &str| Need {
        need: "ext4".into(),
        find: find.into(),
        params: vec![],
    };
    let tree = Tree::new("7.3.4+deb13-amd64");
    ext4_7x(&tree).real_builtin();
    let resolved = resolve(&tree.index(), &[need("fs-ext4")]).unwrap();
    assert_eq!(resolved.found, [Found::Module("ext4".into())]);
    let cloud = Tree::new("7.3.4+deb13-cloud-amd64");
    cloud.real_builtin();
    let resolved = resolve(&cloud.index(), &[need("fs-ext4")]).unwrap();
    assert_eq!(resolved.found, [Found::BuiltIn("ext4".into())]);
    assert!(resolved.order.is_empty());
}

#[test]
fn a_need_nobody_provides_is_an_error_naming_need_and_kernel() {
    let tree = Tree::new("7.3.4+deb13-cloud-amd64");
    tree.module("drivers/block/virtio_blk.ko.xz", &["depends="])
        .real_builtin();
    let watchdog = Need {
        need: "i6300esb watchdog driver".into(),
        find: "i6300esb".into(),
        params: vec!["heartbeat=1".into()],
    };
    let err = resolve(&tree.index(), &[watchdog]).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "kernel 7.3.4+deb13-cloud-amd64 has no i6300esb watchdog driver: `i6300esb` is neither built in nor a module, nor an alias of one, under {}",
            tree.dir.path().display()
        )
    );
    // A module whose `depends=` names a file the tree lacks: the module is named.
    let broken = Tree::new("6.1.0-47-amd64");
    broken.module("fs/ext4/ext4.ko", &["depends=jbd2"]);
    let err = resolve(&broken.index(), &image::minimal(None).unwrap().needs[2..])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("module `jbd2` is neither built into kernel 6.1.0-47-amd64"),
        "{err}"
    );
}

#[test]
fn params_go_to_the_module_that_provides_the_need() {
    let needs = [Need {
        need: "i6300esb watchdog driver".into(),
        find: "pci:v00008086d000025ABsv00001AF4sd00001100bc08sc80i00".into(),
        params: vec!["heartbeat=1".into()],
    }];
    let tree = Tree::new("6.12.117+deb12-amd64");
    tree.module(
        "drivers/watchdog/i6300esb.ko.xz",
        &[
            "alias=pci:v00008086d000025ABsv*sd*bc*sc*i*",
            "depends=watchdog",
        ],
    )
    .module("drivers/watchdog/watchdog.ko.xz", &["depends="]);
    let resolved = resolve(&tree.index(), &needs).unwrap();
    assert_eq!(resolved.order, modules(&["watchdog", "i6300esb"]));
    assert_eq!(resolved.params_of(&needs, "i6300esb"), ["heartbeat=1"]);
    assert!(resolved.params_of(&needs, "watchdog").is_empty());
    // Built in, the parameters have no module to go to: say where they go instead.
    let builtin = Tree::new("7.3.4+deb13-amd64");
    builtin.builtin(
        &["kernel/drivers/watchdog/i6300esb.ko"],
        &["i6300esb.alias=pci:v00008086d000025ABsv*sd*bc*sc*i*"],
    );
    let err = resolve(&builtin.index(), &needs).unwrap_err().to_string();
    assert!(
        err.contains("has i6300esb watchdog driver built in (`i6300esb`)"),
        "{err}"
    );
    assert!(err.contains("`i6300esb.<param>=<value>`"), "{err}");
}
