//! The guest's needs resolved on Debian's real kernels (fetched and cached like any kernel: these
//! reach the Debian archive when the cache lacks them): the modules each kernel loads for the
//! minimal image's needs are exactly those its recipe named before it stated needs, and a
//! scenario's need a flavour lacks is an error naming it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use kdrill::guest::modules::ModuleIndex;
use kdrill::guest::needs::{self, Found};
use kdrill::spec::image::Need;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn index_of(entry: &str, cache: &Path) -> ModuleIndex {
    let kernel = kdrill::spec::kernel::load(&workspace(), entry).unwrap();
    let files = kdrill::fetch::kernel::resolve(&kernel, cache).unwrap_or_else(|e| panic!("{e}"));
    ModuleIndex::scan(&files.modules, &files.release)
        .unwrap()
        .with_alias_cache(cache)
}

/// The first-boot needs of a scenario file.
fn scenario_needs(id: &str) -> Vec<Need> {
    let path = workspace().join("scenarios").join(format!("{id}.yaml"));
    kdrill::spec::scenario::from_file(&path)
        .unwrap()
        .guest
        .needs
}

const VIRTIO_PCI_6_1: &[&str] = &[
    "virtio_ring",
    "virtio_pci_modern_dev",
    "virtio_pci_legacy_dev",
    "virtio",
    "virtio_pci",
];
const EXT4_6X: &[&str] = &["crc32c_generic", "jbd2", "mbcache", "crc16", "ext4"];

#[test]
fn the_minimal_image_loads_on_each_debian_kernel_what_it_loaded_before_needs() {
    let cache = kdrill::host::paths::cache_dir();
    let recipe = kdrill::spec::image::minimal(Some(&workspace())).unwrap();
    // What the recipe's old list (virtio_pci, virtio_blk, crc32c_generic, ext4 and their
    // `depends=`, minus modules.builtin) loaded on each, booted by every route up to 2026-12-06.
    let cases: [(&str, Vec<&str>); 6] = [
        (
            "debian-6.1",
            [VIRTIO_PCI_6_1, &["virtio_blk"], EXT4_6X].concat(),
        ),
        (
            "debian-6.1-rt",
            [VIRTIO_PCI_6_1, &["virtio_blk"], EXT4_6X].concat(),
        ),
        (
            "debian-6.1-cloud",
            [VIRTIO_PCI_6_1, &["virtio_blk"]].concat(),
        ),
        ("debian-6.12", [&["virtio_blk"], EXT4_6X].concat()),
        ("debian-6.12-rt", [&["virtio_blk"], EXT4_6X].concat()),
        ("debian-6.12-cloud", vec!["virtio_blk"]),
    ];
    for (entry, expected) in cases {
        let index = index_of(entry, &cache);
        let start = Instant::now();
        let resolved = needs::resolve(&index, &recipe.needs).unwrap_or_else(|e| panic!("{e}"));
        let mut got = resolved.order.clone();
        let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{entry}: {:?}", resolved.order);
        // Dependencies first: ext4 after jbd2, virtio_pci after virtio.
        let at = |m: &str| resolved.order.iter().position(|x| x == m);
        if let (Some(jbd2), Some(ext4)) = (at("jbd2"), at("ext4")) {
            assert!(jbd2 < ext4, "{entry}: {:?}", resolved.order);
        }
        eprintln!(
            "{entry} ({}): {} in {:?}",
            index.release,
            resolved.order.join(" "),
            start.elapsed()
        );
    }
}

#[test]
fn route_needs_resolve_or_name_what_the_kernel_lacks() {
    let cache = kdrill::host::paths::cache_dir();
    let watchdog = scenario_needs("watchdog");
    let vm_dump = scenario_needs("vm-dump");
    for entry in ["debian-6.1", "debian-6.12", "debian-6.12-cloud"] {
        let index = index_of(entry, &cache);
        let resolved = needs::resolve(&index, &watchdog).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(resolved.order, ["watchdog", "i6300esb"], "{entry}");
        assert_eq!(resolved.params_of(&watchdog, "i6300esb"), ["heartbeat=1"]);
        let resolved = needs::resolve(&index, &vm_dump).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            resolved.found,
            [Found::Module("qemu_fw_cfg".into())],
            "{entry}"
        );
    }
    // The 6.1 cloud flavour has no i6300esb at all (its entry skips the watchdog route).
    let cloud = index_of("debian-6.1-cloud", &cache);
    let err = needs::resolve(&cloud, &watchdog).unwrap_err().to_string();
    assert!(
        err.starts_with("kernel 6.1.0-47-cloud-amd64 has no i6300esb watchdog driver"),
        "{err}"
    );
}
