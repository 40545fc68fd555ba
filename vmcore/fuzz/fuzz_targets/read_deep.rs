//! Fuzz deep reading: kallsyms, BTF, the task and module lists, ORC and the unwinder.
//!
//! Coverage-guided mutation of whole dumps rarely reaches these (they need a valid
//! VMCOREINFO, page tables and megabytes of kernel tables), so the input is a list of patches
//! laid over a real dump: the Debian 6.1 oops, 6.12 panic, 7.2 NMI and 7.3 SysRq fixtures of
//! vmcore's tests (pages uncompressed), picked by the first byte. Each patch is `offset: u32, len: u8,
//! bytes`; offsets fall in the file modulo its length, so mutations land in real kallsyms
//! tables, BTF, task structs, stacks and ORC entries.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn unxz(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    lzma_rs::xz_decompress(&mut &bytes[..], &mut out).expect("the fixture decompresses");
    out
}

fn dumps() -> &'static [Vec<u8>; 4] {
    static DUMPS: OnceLock<[Vec<u8>; 4]> = OnceLock::new();
    DUMPS.get_or_init(|| {
        [
            unxz(include_bytes!("../../tests/fixtures/debian-6.1-oops.deep.kdump.xz")),
            unxz(include_bytes!("../../tests/fixtures/debian-6.12-panic.deep.kdump.xz")),
            unxz(include_bytes!("../../tests/fixtures/debian-7.2-nmi.deep.kdump.xz")),
            unxz(include_bytes!("../../tests/fixtures/debian-7.3-sysrq.deep.kdump.xz")),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, mut rest)) = data.split_first() else {
        return;
    };
    let mut dump = dumps()[usize::from(pick & 3)].clone();
    while rest.len() >= 5 {
        let at = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize % dump.len();
        let len = usize::from(rest[4]).min(rest.len() - 5);
        let end = (at + len).min(dump.len());
        dump[at..end].copy_from_slice(&rest[5..5 + (end - at)]);
        rest = &rest[5 + len..];
    }
    let Ok(dump) = kdrill_vmcore::Vmcore::from_source(dump) else {
        return;
    };
    if let Ok(cpus) = dump.cpu_registers() {
        for c in cpus {
            let _ = dump.backtrace(c.cpu);
        }
    }
    let _ = dump.crashed_cpu();
    if let Ok(list) = dump.tasks() {
        for t in list.tasks.iter().take(4) {
            let _ = dump.task_backtrace(t.pid);
        }
    }
    let _ = dump.modules();
});
