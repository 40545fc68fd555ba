//! Fuzz the whole reader: format sniffing, headers, flattened index, pages, log walk.
//!
//! Seed the corpus with synthetic dumps (`kdrill_vmcore::synth`), e.g. the ELF,
//! kdump-compressed and flattened files the crate's tests build, so mutations
//! start deep in the format rather than at the magic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(dump) = kdrill_vmcore::Vmcore::from_source(data.to_vec()) {
        let _ = dump.info();
        if let Ok(records) = dump.dmesg_records() {
            let _ = kdrill_vmcore::format_dmesg(&records);
            let _ = kdrill_vmcore::panic_message(&records);
        }
        // Deep reading too (a synthetic dump has no kallsyms: this ends early unless the
        // fuzzer grows a VMCOREINFO that names them).
        if let Ok(cpus) = dump.cpu_registers() {
            for c in cpus.iter().take(4) {
                let _ = dump.backtrace(c.cpu);
            }
        }
        let _ = dump.tasks();
        let _ = dump.modules();
    }
});
