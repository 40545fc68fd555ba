//! drgn against kdrill on real dumps (the compacted Debian 6.1 oops and 6.12 panic of
//! vmcore's fixtures): the symbol of every backtrace frame of every CPU, and of a few hundred
//! addresses sampled across the kernel's text, named by both from the dump's own kallsyms.
//! Skipped only when PyPI cannot be reached to install drgn, and then it says so.

use std::path::PathBuf;

use kdrill::crosscheck::drgn::{self, DrgnError};
use kdrill_vmcore::Vmcore;

fn fixture(xz: &[u8], dir: &tempfile::TempDir, name: &str) -> PathBuf {
    let mut bytes = Vec::new();
    lzma_rs::xz_decompress(&mut &xz[..], &mut bytes).unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn drgn_names_every_frame_and_sampled_address_as_kdrill_does() {
    let python = match drgn::ensure() {
        Ok(p) => p,
        Err(DrgnError::Unreachable(why)) => {
            eprintln!("SKIPPED: {why}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let dir = tempfile::tempdir().unwrap();
    let dumps = [
        fixture(
            include_bytes!("../../../vmcore/tests/fixtures/debian-6.1-oops.deep.kdump.xz"),
            &dir,
            "6.1",
        ),
        fixture(
            include_bytes!("../../../vmcore/tests/fixtures/debian-6.12-panic.deep.kdump.xz"),
            &dir,
            "6.12",
        ),
    ];
    for path in dumps {
        let dump = Vmcore::open(&path).unwrap();
        let syms = dump.symbols().unwrap();
        // Every frame: the address kdrill looked up (a return address minus one).
        let mut frames = Vec::new();
        for c in dump.cpu_registers().unwrap() {
            for f in dump.backtrace(c.cpu).unwrap().frames {
                let at = if f.interrupted { f.ip } else { f.ip - 1 };
                frames.push((at, f.location.unwrap()));
            }
        }
        let (kernel, modules): (Vec<_>, Vec<_>) =
            frames.into_iter().partition(|(_, l)| l.module.is_none());
        // Sampled: every 300th text symbol, at an offset inside it.
        let text: Vec<u64> = syms
            .iter()
            .filter(|s| matches!(s.kind, 't' | 'T'))
            .map(|s| s.address)
            .collect();
        let step = (text.len() / 300).max(1);
        let sampled: Vec<u64> = text
            .iter()
            .step_by(step)
            .enumerate()
            .map(|(i, &a)| {
                let size = dump.symbolize(a).unwrap().map_or(1, |l| l.size.max(1));
                a + (i as u64 * 7919) % size
            })
            .collect();
        let addrs: Vec<u64> = kernel
            .iter()
            .map(|(a, _)| *a)
            .chain(sampled.iter().copied())
            .collect();
        let (version, theirs) = drgn::symbolize(&python, &path, &addrs).unwrap();
        let mut disagree = Vec::new();
        let mut aliases = 0;
        for (&addr, d) in addrs.iter().zip(&theirs) {
            let ours = dump.symbolize(addr).unwrap().expect("kdrill names it");
            let start = addr - ours.offset;
            match &d.name {
                Some(n) if *n == ours.symbol => {
                    assert_eq!(d.address, Some(start), "{n} starts at the same address");
                }
                // The kernel prints the first of names sharing an address, drgn the last.
                Some(n) if syms.address_of(n) == Some(start) => aliases += 1,
                other => disagree.push(format!("{addr:#x}: kdrill {ours}, drgn {other:?}")),
            }
        }
        eprintln!(
            "{}: drgn {version} and kdrill agree on {} of {} addresses ({} frames of every CPU, {} sampled; {} where drgn names another alias at the same address); {} module frames not compared (drgn without debuginfo has no module symbols)",
            path.display(),
            addrs.len() - disagree.len(),
            addrs.len(),
            kernel.len(),
            sampled.len(),
            aliases,
            modules.len()
        );
        assert!(
            disagree.is_empty(),
            "drgn disagrees:\n{}",
            disagree.join("\n")
        );
        assert!(kernel.len() >= 10 && sampled.len() >= 250);
    }
}
