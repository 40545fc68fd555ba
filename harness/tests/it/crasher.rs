//! The crasher module built for real against debian-6.1's pinned header packages (fetched and
//! cached like the kernel), then served from the cache.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use object::{Object, ObjectKind};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn crasher_builds_for_debian_6_1_then_comes_from_the_cache() {
    let kernel = kdrill::spec::kernel::load(&workspace(), "debian-6.1").unwrap();
    let cache = kdrill::host::paths::cache_dir();
    let files = kdrill::fetch::kernel::resolve(&kernel, &cache).unwrap();
    assert_eq!(files.release, "6.1.0-47-amd64");

    let ko =
        kdrill::fetch::crasher::build(&kernel, &files, &cache).unwrap_or_else(|e| panic!("{e}"));
    assert!(ko.ends_with("crasher.ko"), "{}", ko.display());
    assert!(ko.starts_with(cache.join("crasher")), "{}", ko.display());
    let elf = std::fs::read(&ko).unwrap();
    let parsed = object::File::parse(&*elf).unwrap();
    assert_eq!(parsed.kind(), ObjectKind::Relocatable);
    let vermagic = kdrill::host::elf::modinfo_field(&elf, "vermagic")
        .unwrap()
        .expect("a vermagic= field in .modinfo");
    assert!(
        vermagic.starts_with("6.1.0-47-amd64 "),
        "vermagic `{vermagic}`"
    );
    let name = kdrill::host::elf::modinfo_field(&elf, "name").unwrap();
    assert_eq!(name.as_deref(), Some("crasher"));

    // Second build: nothing fetched, nothing compiled.
    let start = Instant::now();
    let again = kdrill::fetch::crasher::build(&kernel, &files, &cache).unwrap();
    let took = start.elapsed();
    assert_eq!(again, ko);
    assert!(took < Duration::from_secs(1), "cache hit took {took:?}");
}
