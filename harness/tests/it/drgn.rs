//! drgn against kdrill on real dumps (the compacted Debian 6.1 oops, 6.12 panic, 7.2 NMI and
//! 7.3 SysRq of vmcore's fixtures): the symbol of every backtrace frame of every CPU, and of a
//! few hundred addresses sampled across the kernel's text, named by both from the dump's own
//! kallsyms; and on the 7.x dumps (the ORC format of 7.1, registers renumbered) every CPU's
//! frames, unwound by both from the same registers with the kernel's built-in ORC.
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

const SEVEN_TWO: &[u8] =
    include_bytes!("../../../vmcore/tests/fixtures/debian-7.2-nmi.deep.kdump.xz");
const SEVEN_THREE: &[u8] =
    include_bytes!("../../../vmcore/tests/fixtures/debian-7.3-sysrq.deep.kdump.xz");

/// drgn's Python, or `None` (having said why) when PyPI cannot be reached.
fn python() -> Option<PathBuf> {
    match drgn::ensure() {
        Ok(p) => Some(p),
        Err(DrgnError::Unreachable(why)) => {
            eprintln!("SKIPPED: {why}");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn drgn_unwinds_every_cpu_of_the_7_x_dumps_as_kdrill_does() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut compared = 0;
    for path in [
        fixture(SEVEN_TWO, &dir, "7.2"),
        fixture(SEVEN_THREE, &dir, "7.3"),
    ] {
        let dump = Vmcore::open(&path).unwrap();
        for c in dump.cpu_registers().unwrap() {
            let bt = dump.backtrace(c.cpu).unwrap();
            let values = c.registers.values();
            let mut regs: Vec<(&str, u64)> = PT_REGS.iter().copied().zip(values).collect();
            // __crash_kexec has no ORC data (drgn stops there): start both at the caller
            // kdrill's scan found.
            let skip = usize::from(bt.frames.get(1).is_some_and(|f| f.guessed));
            if skip == 1 {
                regs.retain(|(n, _)| !matches!(*n, "ip" | "sp"));
                regs.extend([("ip", bt.frames[1].ip), ("sp", bt.frames[1].sp)]);
            }
            let (version, theirs) = drgn::unwind(&python, &path, &regs).unwrap();
            let ours: Vec<(u64, u64, &str)> = bt.frames[skip..]
                .iter()
                .map(|f| (f.ip, f.sp, f.location.as_ref().unwrap().symbol.as_str()))
                .collect();
            let kernel: Vec<(u64, u64, &str)> = theirs
                .iter()
                .take_while(|f| f.pc >= 0xffff_8000_0000_0000)
                .map(|f| (f.pc, f.sp, f.name.as_deref().unwrap_or("?")))
                .collect();
            assert_eq!(
                ours,
                kernel,
                "{} CPU {}: kdrill's frames, then drgn {version}'s",
                path.display(),
                c.cpu
            );
            // Frames after the first: both say which came from an interrupt's registers.
            let flags = |v: Vec<bool>| v.into_iter().skip(1).collect::<Vec<_>>();
            assert_eq!(
                flags(bt.frames[skip..].iter().map(|f| f.interrupted).collect()),
                flags(
                    theirs[..kernel.len()]
                        .iter()
                        .map(|f| f.interrupted)
                        .collect()
                ),
                "{} CPU {}",
                path.display(),
                c.cpu
            );
            // Past the kernel's frames drgn goes on into user space only.
            let user = matches!(bt.end, kdrill_vmcore::End::UserMode { .. });
            assert!(
                theirs.len() == kernel.len() + usize::from(user),
                "{theirs:?}"
            );
            eprintln!(
                "{} CPU {}: drgn {version} and kdrill unwind the same {} frames",
                path.display(),
                c.cpu,
                kernel.len()
            );
            compared += kernel.len();
        }
    }
    assert_eq!(compared, 38, "frames compared");
}

/// `struct pt_regs`'s members, in the order of kdrill's `Registers::values()`.
const PT_REGS: [&str; 21] = [
    "r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8", "ax", "cx", "dx", "si", "di",
    "orig_ax", "ip", "cs", "flags", "sp", "ss",
];

#[test]
fn drgn_names_every_frame_and_sampled_address_as_kdrill_does() {
    let Some(python) = python() else { return };
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
        fixture(SEVEN_TWO, &dir, "7.2"),
        fixture(SEVEN_THREE, &dir, "7.3"),
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
