//! Deep reading of real dumps, compacted to the pages it reads (`cargo run -p kdrill-vmcore
//! --example compact -- DUMP OUT --deep`, then `xz -9`): a Debian 6.1 oops in the crasher
//! module (ORC v1, module frames) and a Debian 6.12 panic (ORC v3, `__crash_kexec` without
//! ORC). The frames pinned here are the ones the kernels printed in their own oops traces.
//! Then the same dumps with a stack page taken out (a partial answer naming the address),
//! and with bytes flipped all over the pages, with the 7.x dumps of `deep7.rs` (no panic,
//! bounded time and memory).

use std::time::Duration;

use kdrill_vmcore::{CpuSource, End, Vmcore, MEMORY_BUDGET};

use crate::hardening::ALLOCATED;

pub(crate) fn xz(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    lzma_rs::xz_decompress(&mut &bytes[..], &mut out).unwrap();
    out
}

pub(crate) fn debian_6_1_oops() -> Vec<u8> {
    xz(include_bytes!("../fixtures/debian-6.1-oops.deep.kdump.xz"))
}

pub(crate) fn debian_6_12_panic() -> Vec<u8> {
    xz(include_bytes!(
        "../fixtures/debian-6.12-panic.deep.kdump.xz"
    ))
}

pub(crate) fn names(dump: &Vmcore, cpu: u32) -> Vec<String> {
    let bt = dump.backtrace(cpu).unwrap();
    bt.frames
        .iter()
        .map(|f| {
            let l = f.location.as_ref().expect("every frame symbolised");
            match &l.module {
                Some(m) => format!("{} [{m}]", l.symbol),
                None => l.symbol.clone(),
            }
        })
        .collect()
}

#[test]
fn debian_6_1_oops_in_a_module() {
    let dump = Vmcore::from_source(debian_6_1_oops()).unwrap();
    let syms = dump.symbols().unwrap();
    assert_eq!(syms.len(), 94105);
    assert!(syms.address_of("sysrq_handle_crash").is_some());
    let regs = dump.cpu_registers().unwrap();
    assert_eq!(regs.len(), 2);
    assert!(regs.iter().all(|c| c.cpu_from == CpuSource::CrashNotes));
    assert_eq!((regs[1].cpu, regs[1].pid), (1, 124));
    assert_eq!(dump.crashed_cpu().unwrap(), Some(1));
    // As the kernel printed it: "RIP: 0010:kdrill_oops+0x10/0x1c [crasher]", then the trace.
    let bt = dump.backtrace(1).unwrap();
    assert_eq!(bt.frames[0].describe(), "kdrill_oops+0x10/0x1c [crasher]");
    assert_eq!(
        bt.frames[1].describe(),
        "kdrill_write.cold+0x11/0x75 [crasher]"
    );
    assert_eq!(bt.frames[2].describe(), "proc_reg_write+0x56/0xa0");
    assert_eq!(
        names(&dump, 1),
        [
            "kdrill_oops [crasher]",
            "kdrill_write.cold [crasher]",
            "proc_reg_write",
            "vfs_write",
            "ksys_write",
            "do_syscall_64",
            "entry_SYSCALL_64_after_hwframe"
        ]
    );
    assert!(matches!(bt.end, End::UserMode { ip: 0x47b7a0, .. }));
    assert_eq!((bt.comm.as_deref(), bt.crashed), (Some("sh"), true));
    let idle = names(&dump, 0);
    assert_eq!(idle.first().map(String::as_str), Some("native_safe_halt"));
    assert_eq!(
        idle.last().map(String::as_str),
        Some("secondary_startup_64_no_verify")
    );
    assert_eq!(dump.backtrace(0).unwrap().end, End::EndOfStack);

    let tasks = dump.tasks().unwrap();
    assert_eq!(tasks.partial, None);
    assert_eq!(tasks.tasks.len(), 55);
    let sh = tasks.tasks.iter().find(|t| t.pid == 124).unwrap();
    assert_eq!(
        (sh.comm.as_str(), sh.ppid, sh.cpu, sh.state),
        ("sh", 1, Some(1), 'R')
    );
    let swapper1 = tasks.tasks.iter().find(|t| t.comm == "swapper/1").unwrap();
    assert_eq!((swapper1.pid, swapper1.cpu), (0, None));

    let modules = dump.modules().unwrap();
    let names: Vec<&str> = modules.modules.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(&names[..3], ["crasher", "ext4", "crc16"]);
    assert_eq!(modules.modules[0].size, 16384);

    // A sleeping task, from its inactive_task_frame: init waits in a system call.
    let init = dump.task_backtrace(1).unwrap();
    let first = init.frames[0].describe();
    assert!(first.starts_with("__schedule+"), "{first}");
    assert!(matches!(init.end, End::UserMode { .. }), "{:?}", init.end);
    serde_json::to_string(&bt).unwrap();
}

#[test]
fn debian_6_12_panic_through_crash_kexec_without_orc() {
    let dump = Vmcore::from_source(debian_6_12_panic()).unwrap();
    assert_eq!(dump.symbols().unwrap().len(), 163205);
    let cpu = dump.crashed_cpu().unwrap().unwrap();
    let bt = dump.backtrace(cpu).unwrap();
    // 6.12 marks __crash_kexec STACK_FRAME_NON_STANDARD: no ORC; the caller is found by a
    // strict scan for the return address of a call to it (marked guessed).
    assert_eq!(
        bt.frames[0].location.as_ref().unwrap().symbol,
        "__crash_kexec"
    );
    assert!(bt.frames[1].guessed && !bt.frames[2].guessed);
    assert_eq!(
        names(&dump, cpu),
        [
            "__crash_kexec",
            "panic",
            "kdrill_write [crasher]",
            "proc_reg_write",
            "vfs_write",
            "ksys_write",
            "do_syscall_64",
            "entry_SYSCALL_64_after_hwframe"
        ]
    );
    assert_eq!(
        bt.frames[2].describe(),
        "kdrill_write+0x184/0x190 [crasher]"
    );
    let other = names(&dump, 1 - cpu);
    assert_eq!(other.last().map(String::as_str), Some("common_startup_64"));
}

#[test]
fn a_qemu_dump_names_each_cpu_s_task_by_its_own_pid() {
    // QEMU writes its vCPU index + 1 into each note's pr_pid: the idle task on CPU 0 is
    // swapper/0 with pid 0 (as --tasks lists it), not "pid 1".
    let qemu = kdrill_vmcore::synth::with_qemu_notes(&debian_6_1_oops()).unwrap();
    let dump = Vmcore::from_source(qemu).unwrap();
    let regs = dump.cpu_registers().unwrap();
    assert!(regs.iter().all(|c| c.cpu_from == CpuSource::QemuOrder));
    assert_eq!((regs[0].pid, regs[1].pid), (1, 2), "QEMU's pr_pid");
    let idle = dump.backtrace(0).unwrap();
    assert_eq!(
        (idle.pid, idle.comm.as_deref()),
        (Some(0), Some("swapper/0"))
    );
    let sh = dump.backtrace(1).unwrap();
    assert_eq!((sh.pid, sh.comm.as_deref()), (Some(124), Some("sh")));
    let tasks = dump.tasks().unwrap();
    let swapper0 = tasks.tasks.iter().find(|t| t.comm == "swapper/0").unwrap();
    assert_eq!((swapper0.pid, swapper0.cpu), (idle.pid.unwrap(), Some(0)));
}

/// Every number in `v`, with its path.
fn numbers(v: &serde_json::Value, path: &str, out: &mut Vec<(String, f64)>) {
    match v {
        serde_json::Value::Number(n) => {
            let exact = n.as_u64().map(|u| u as f64).or(n.as_f64()).unwrap();
            out.push((path.to_string(), exact));
            // A u64 too big for a double comes back changed.
            if let Some(u) = n.as_u64() {
                assert_eq!(u as f64 as u64, u, "{path} = {u} does not survive a double");
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                numbers(x, &format!("{path}[{i}]"), out);
            }
        }
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                numbers(x, &format!("{path}.{k}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn serialized_views_write_addresses_as_hex_strings() {
    let dump = Vmcore::from_source(debian_6_1_oops()).unwrap();
    let bts: Vec<_> = [0, 1].map(|c| dump.backtrace(c).unwrap()).to_vec();
    let v = serde_json::json!({
        "backtraces": bts,
        "registers": dump.cpu_registers().unwrap(),
        "tasks": dump.tasks().unwrap(),
        "modules": dump.modules().unwrap(),
        "symbol": dump.symbols().unwrap().iter().next(),
        "records": dump.dmesg_records().unwrap(),
    });
    let mut all = Vec::new();
    numbers(&v, "", &mut all);
    let big: Vec<_> = all.iter().filter(|(_, n)| *n > 2f64.powi(53)).collect();
    assert!(big.is_empty(), "numbers above 2^53: {big:?}");
    let bt = &v["backtraces"][1];
    assert_eq!(bt["frames"][0]["ip"], "0xffffffffc0612128");
    assert_eq!(bt["end"]["ip"], "0x47b7a0");
    assert!(bt["task"].as_str().unwrap().starts_with("0xffff"));
    assert_eq!(v["registers"][1]["registers"]["rip"], "0xffffffffc0612128");
    assert_eq!(v["registers"][1]["pr_pid"], 124);
    assert_eq!(v["modules"]["modules"][0]["base"], "0xffffffffc0612000");
    assert!(v["tasks"]["tasks"][0]["address"]
        .as_str()
        .unwrap()
        .starts_with("0xffffffff"));
    assert!(v["symbol"]["address"].as_str().unwrap().starts_with("0x"));
    assert!(v["records"][0]["timestamp_ns"].is_string());
}

/// The dump with the page holding `value` (8 bytes, little-endian) dropped from the 2nd
/// bitmap and its descriptor, as if the dump level had excluded it.
fn without_page_holding(d: &[u8], value: u64) -> Vec<u8> {
    let u32_at = |at: usize| u32::from_le_bytes(d[at..at + 4].try_into().unwrap()) as usize;
    let u64_at = |at: usize| u64::from_le_bytes(d[at..at + 8].try_into().unwrap());
    let bs = u32_at(428);
    let bitmap1 = (1 + u32_at(432)) * bs;
    let half = u32_at(436) * bs / 2;
    let desc = bitmap1 + 2 * half;
    let dumped: Vec<usize> = (0..half * 8)
        .filter(|p| d[bitmap1 + half + p / 8] & (1 << (p % 8)) != 0)
        .collect();
    let needle = value.to_le_bytes();
    let (rank, pfn) = dumped
        .iter()
        .enumerate()
        .find(|&(i, _)| {
            let (off, size, flags) = (
                u64_at(desc + i * 24) as usize,
                u32_at(desc + i * 24 + 8),
                u32_at(desc + i * 24 + 12),
            );
            flags == 0 && d[off..off + size].chunks_exact(8).any(|c| c == needle)
        })
        .map(|(i, &p)| (i, p))
        .expect("a page holds the value");
    // As makedumpfile would have written it: no descriptor and no data for the page, the
    // data of the others moved up (a table and data that disagree do not open).
    let mut out = d.to_vec();
    out[bitmap1 + half + pfn / 8] &= !(1 << (pfn % 8));
    let at = desc + rank * 24;
    let (gone, gone_size) = (u64_at(at), u32_at(at + 8) as u64);
    out.drain(gone as usize..(gone + gone_size) as usize);
    out.drain(at..at + 24);
    for i in 0..dumped.len() - 1 {
        let o = desc + i * 24;
        let offset = u64::from_le_bytes(out[o..o + 8].try_into().unwrap());
        let moved = offset - 24 - if offset > gone { gone_size } else { 0 };
        out[o..o + 8].copy_from_slice(&moved.to_le_bytes());
    }
    out
}

#[test]
fn an_excluded_stack_page_makes_a_partial_backtrace_naming_it() {
    let bytes = debian_6_1_oops();
    let full = Vmcore::from_source(bytes.clone()).unwrap();
    let bt = full.backtrace(1).unwrap();
    // The stack page that holds the return address into vfs_write.
    let dump = Vmcore::from_source(without_page_holding(&bytes, bt.frames[3].ip)).unwrap();
    let cut = dump.backtrace(1).unwrap();
    let reason = cut.partial().expect("partial").to_string();
    assert!(
        reason.contains("was excluded from the dump by its dump level"),
        "{reason}"
    );
    assert!(cut.frames.len() < bt.frames.len());
    assert_eq!(
        cut.frames[..],
        bt.frames[..cut.frames.len()],
        "the frames before stand"
    );
}

/// Every deep view over `bytes` in a thread, under a deadline and an allocation count.
fn bounded_deep(bytes: Vec<u8>) {
    let input = bytes.len() as u64;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        ALLOCATED.with(|a| a.set(0));
        if let Ok(dump) = Vmcore::from_source(bytes) {
            let cpus = dump.cpu_registers().map(|r| r.len()).unwrap_or(0);
            for cpu in 0..cpus as u32 {
                let _ = dump.backtrace(cpu);
            }
            let _ = dump.tasks();
            let _ = dump.modules();
            let _ = dump.task_backtrace(1);
        }
        let _ = tx.send(ALLOCATED.with(|a| a.get()));
    });
    let allocated = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(a) => a,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("deep reading ran over 60 s"),
        Err(_) => panic!("deep reading panicked (see the thread's message above)"),
    };
    let limit = MEMORY_BUDGET + 2 * input + (32 << 20);
    assert!(
        allocated <= limit,
        "deep reading allocated {allocated} bytes, over {limit}"
    );
}

#[test]
fn flipped_bytes_in_the_pages_never_panic_or_run_away() {
    for bytes in [
        debian_6_1_oops(),
        debian_6_12_panic(),
        crate::deep7::debian_7_2_nmi(),
        crate::deep7::debian_7_3_sysrq(),
    ] {
        let start = bytes.len() / 10;
        for k in 0..24u64 {
            let mut bad = bytes.clone();
            // A spread of offsets over the page data, each with a run of bytes set high.
            let at = start + ((bytes.len() - start) as u64 * k / 24) as usize;
            for b in bad.iter_mut().skip(at).take(64) {
                *b ^= 0xa5;
            }
            bounded_deep(bad);
        }
    }
}

/// `cargo xtask fuzz`'s read_deep finding (crash-0ee6bb5c…): five bytes at 0x10000 of the
/// 6.12 fixture (a page descriptor) sent a task pointer near 2^64, and `task + offset`
/// overflowed. Addresses read from the dump are added with wrapping arithmetic now: the
/// read fails as unmapped instead.
#[test]
fn fuzz_finding_a_task_pointer_near_the_top_of_memory() {
    let mut bytes = debian_6_12_panic();
    bytes[0x10000..0x10005].copy_from_slice(&[0, 0, 0, 0, 2]);
    bounded_deep(bytes);
}
