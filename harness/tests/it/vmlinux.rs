//! The uncompressed vmlinux of real Debian kernels, one per compression Debian uses here (6.1:
//! xz with the x86 BCJ filter, 6.1-cloud: lz4, 6.12: zstd), extracted into an empty cache: an ELF
//! whose loadable segments are whole and that QEMU can boot through its PVH entry.

use object::{Object, ObjectSegment};

use crate::support::workspace;

#[test]
fn debian_kernels_of_every_compression_yield_a_bootable_vmlinux() {
    let cache = kdrill::host::paths::cache_dir();
    let scratch = tempfile::tempdir().unwrap();
    for (id, release) in [
        ("debian-6.1", "6.1.0-47-amd64"),
        ("debian-6.1-cloud", "6.1.0-47-cloud-amd64"),
        ("debian-6.12", "6.12.117+deb12-amd64"),
    ] {
        let kernel = kdrill::spec::kernel::load(&workspace(), id).unwrap();
        let files = kdrill::fetch::kernel::resolve(&kernel, &cache).unwrap();
        let started = std::time::Instant::now();
        let vmlinux = kdrill::fetch::vmlinux::uncompressed(&files.vmlinuz, scratch.path())
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        let took = started.elapsed();
        let elf = std::fs::read(&vmlinux).unwrap();
        let parsed = object::File::parse(&*elf).unwrap_or_else(|e| panic!("{id}: {e}"));
        let loads: Vec<_> = parsed.segments().collect();
        assert!(loads.len() >= 3, "{id}: {} segments", loads.len());
        for segment in &loads {
            let (offset, size) = segment.file_range();
            assert!(
                offset + size <= elf.len() as u64,
                "{id}: a segment past the end"
            );
        }
        // The kernel's banner is in its .rodata: the right kernel was extracted.
        let banner = format!("Linux version {release} ");
        assert!(
            elf.windows(banner.len()).any(|w| w == banner.as_bytes()),
            "{id}: no `{banner}` in the vmlinux"
        );
        eprintln!("{id}: {} bytes in {took:.2?}", elf.len());
        // A second call is served from the cache.
        let again = kdrill::fetch::vmlinux::uncompressed(&files.vmlinuz, scratch.path()).unwrap();
        assert_eq!(again, vmlinux);
    }
}
