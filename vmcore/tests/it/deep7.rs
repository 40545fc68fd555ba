//! Deep reading of real Linux 7.x dumps: Debian's 7.3.4 (trixie-backports) after SysRq-c and
//! 7.2.13 (sid) after an NMI, captured by kdrill's minimal guest with the host's makedumpfile
//! 1.7.2 and compacted as the 6.x fixtures (`cargo run -p kdrill-vmcore --example compact --
//! DUMP OUT --deep --prune-btf --whole-orc`, then `xz -9e`: the BTF keeps only what the reader
//! reaches, the ORC arrays are whole for drgn, with filler where kdrill read nothing; see
//! `examples/compact.rs`). Both kernels carry the 7.1 ORC format (registers renumbered,
//! `.orc_header` hash 137c36ad…); the frames pinned here are the ones drgn 0.3.0 unwinds with
//! the same built-in ORC (`harness/tests/it/drgn.rs`). makedumpfile 1.7.2 drops some tail pages of 7.x slabs
//! (`compound_info`, Linux 7.1), so both task lists are partial, naming the pages.
//! Then the same dumps with an `.orc_header` kdrill does not know: everything but the
//! backtraces reads, and a backtrace stops after its first frame, saying why.

use kdrill_vmcore::{CpuSource, End, Vmcore};

use crate::deep::{names, xz};

pub(crate) fn debian_7_3_sysrq() -> Vec<u8> {
    xz(include_bytes!("../fixtures/debian-7.3-sysrq.deep.kdump.xz"))
}

pub(crate) fn debian_7_2_nmi() -> Vec<u8> {
    xz(include_bytes!("../fixtures/debian-7.2-nmi.deep.kdump.xz"))
}

/// The 7.1+ `.orc_header` (`scripts/orc_hash.sh` of 7.2's and 7.3's `orc_types.h`).
const HASH_7_1: [u8; 20] = [
    0x13, 0x7c, 0x36, 0xad, 0x76, 0x27, 0xc4, 0xdd, 0x55, 0x93, 0x21, 0x76, 0xbb, 0x0e, 0xcd, 0xbd,
    0x50, 0x41, 0xfc, 0x82,
];

#[test]
fn debian_7_3_sysrq_unwinds_with_the_7_1_orc_registers() {
    let dump = Vmcore::from_source(debian_7_3_sysrq()).unwrap();
    assert_eq!(
        dump.info().kernel_release.as_deref(),
        Some("7.3.4+deb13-amd64")
    );
    assert_eq!(dump.symbols().unwrap().len(), 209812);
    let regs = dump.cpu_registers().unwrap();
    assert!(regs.iter().all(|c| c.cpu_from == CpuSource::CrashNotes));
    assert_eq!((regs[0].cpu, regs[0].pid), (0, 124));
    assert_eq!(dump.crashed_cpu().unwrap(), Some(0));
    let bt = dump.backtrace(0).unwrap();
    // 7.x: panic() is vpanic()'s wrapper; __crash_kexec has no ORC data (the scan finds
    // vpanic, marked guessed); every frame after it is the 7.1 format's.
    assert_eq!(
        names(&dump, 0),
        [
            "__crash_kexec",
            "vpanic",
            "panic",
            "sysrq_handle_crash",
            "__handle_sysrq.cold",
            "write_sysrq_trigger",
            "proc_reg_write",
            "vfs_write",
            "ksys_write",
            "do_syscall_64",
            "entry_SYSCALL_64_after_hwframe"
        ]
    );
    assert!(bt.frames[1].guessed && !bt.frames[2].guessed);
    assert_eq!(bt.frames[3].describe(), "sysrq_handle_crash+0x1a/0x20");
    assert_eq!(
        (bt.frames[10].ip, bt.frames[10].sp),
        (0xffff_ffff_9820_012f, 0xffff_cf4e_8042_ff48)
    );
    assert!(matches!(bt.end, End::UserMode { ip: 0x47b7a0, .. }));
    assert_eq!(
        (bt.comm.as_deref(), bt.pid, bt.crashed),
        (Some("sh"), Some(124), true)
    );
    let idle = names(&dump, 1);
    assert_eq!(
        idle.first().map(String::as_str),
        Some("pv_native_safe_halt")
    );
    assert_eq!(idle.last().map(String::as_str), Some("common_startup_64"));
    assert_eq!(dump.backtrace(1).unwrap().end, End::EndOfStack);

    let tasks = dump.tasks().unwrap();
    assert_eq!(tasks.tasks.len(), 48);
    let lost = tasks
        .partial
        .as_deref()
        .expect("makedumpfile 1.7.2 lost pages");
    assert!(
        lost.contains("was excluded from the dump by its dump level"),
        "{lost}"
    );
    let sh = tasks.tasks.iter().find(|t| t.pid == 124).unwrap();
    assert_eq!((sh.comm.as_str(), sh.cpu), ("sh", Some(0)));

    let modules = dump.modules().unwrap();
    assert_eq!(modules.partial, None);
    let listed: Vec<(&str, u64)> = modules
        .modules
        .iter()
        .map(|m| (m.name.as_str(), m.size))
        .collect();
    assert_eq!(
        listed,
        [
            ("ext4", 1302528),
            ("mbcache", 20480),
            ("crc16", 12288),
            ("jbd2", 200704),
            ("virtio_blk", 36864)
        ]
    );
    assert_eq!(modules.modules[0].base, 0xffff_ffff_c061_6000);

    // A sleeping task, from its inactive_task_frame: init waits for its shell.
    let init = dump.task_backtrace(1).unwrap();
    let frames: Vec<String> = init.frames.iter().map(|f| f.describe()).collect();
    assert!(frames[0].starts_with("__schedule+"), "{frames:?}");
    assert!(
        frames.iter().any(|f| f.starts_with("do_wait+")),
        "{frames:?}"
    );
    assert!(matches!(init.end, End::UserMode { .. }), "{:?}", init.end);
    // The log: the ring changed in 6.19 and printk_info grew in 7.0 (112 bytes here).
    let log = dump.dmesg_records().unwrap();
    assert_eq!(log.len(), 400);
    assert!(log
        .iter()
        .any(|r| r.text_lossy() == "Kernel panic - not syncing: sysrq triggered crash"));
}

#[test]
fn debian_7_2_nmi_unwinds_through_the_nmi_into_a_sleeping_task() {
    let dump = Vmcore::from_source(debian_7_2_nmi()).unwrap();
    assert_eq!(
        dump.info().kernel_release.as_deref(),
        Some("7.2.13+deb14-amd64")
    );
    assert_eq!(dump.symbols().unwrap().len(), 199097);
    assert_eq!(dump.crashed_cpu().unwrap(), Some(0));
    let bt = dump.backtrace(0).unwrap();
    assert_eq!(
        names(&dump, 0),
        [
            "__crash_kexec",
            "vpanic",
            "panic",
            "nmi_panic.cold",
            "unknown_nmi_error",
            "exc_nmi",
            "end_repeat_nmi",
            // The NMI's pt_regs: it hit `sleep` at the first byte of a function.
            "hrtimer_start_range_ns_user",
            "hrtimer_sleeper_start_expires",
            "do_nanosleep",
            "hrtimer_nanosleep",
            "common_nsleep",
            "__x64_sys_clock_nanosleep",
            "do_syscall_64",
            "entry_SYSCALL_64_after_hwframe"
        ]
    );
    assert!(bt.frames[7].interrupted);
    assert_eq!(
        bt.frames[7].describe(),
        "hrtimer_start_range_ns_user+0x0/0x220"
    );
    assert!(matches!(bt.end, End::UserMode { ip: 0x4bfde3, .. }));
    assert_eq!((bt.comm.as_deref(), bt.pid), (Some("sleep"), Some(141)));
    assert_eq!(
        names(&dump, 1).last().map(String::as_str),
        Some("common_startup_64")
    );
    let tasks = dump.tasks().unwrap();
    assert_eq!(tasks.tasks.len(), 49);
    assert!(tasks.partial.is_some());
    let modules = dump.modules().unwrap();
    let listed: Vec<&str> = modules.modules.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(listed, ["ext4", "mbcache", "crc16", "jbd2", "virtio_blk"]);
    // init's task_struct page is one makedumpfile 1.7.2 dropped: its backtrace says which.
    let init = dump.task_backtrace(1).unwrap_err().to_string();
    assert!(init.contains("page 0x46c9"), "{init}");
    assert_eq!(dump.dmesg_records().unwrap().len(), 422);
}

/// `bytes` with the (one) 7.1 `.orc_header` hash replaced by one no kernel has.
pub(crate) fn with_unknown_orc_header(mut bytes: Vec<u8>) -> Vec<u8> {
    let at: Vec<usize> = bytes
        .windows(20)
        .enumerate()
        .filter(|(_, w)| *w == HASH_7_1)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(at.len(), 1, "the fixture holds the hash once, uncompressed");
    bytes[at[0]..at[0] + 20].copy_from_slice(&[0xab; 20]);
    bytes
}

#[test]
fn an_unknown_orc_format_stops_only_the_backtraces() {
    let dump = Vmcore::from_source(with_unknown_orc_header(debian_7_3_sysrq())).unwrap();
    // What needs no unwinder reads as before.
    let modules = dump.modules().unwrap();
    assert_eq!(modules.modules.len(), 5);
    assert_eq!(dump.tasks().unwrap().tasks.len(), 48);
    assert_eq!(dump.cpu_registers().unwrap().len(), 2);
    assert_eq!(dump.crashed_cpu().unwrap(), Some(0));
    assert_eq!(dump.dmesg_records().unwrap().len(), 400);
    // A backtrace: the CPU's own frame, then why it stops.
    let bt = dump.backtrace(0).unwrap();
    assert_eq!(bt.frames.len(), 1);
    assert_eq!(bt.frames[0].describe(), "__crash_kexec+0x13d/0x150");
    let End::Unsupported { reason } = &bt.end else {
        panic!("{:?}", bt.end)
    };
    assert!(
        reason.contains("ORC format with header hash abababab")
            && reason.contains("kdrill knows those of 6.3, 6.4-7.0 and 7.1-7.3"),
        "{reason}"
    );
    assert_eq!(bt.partial(), Some(reason.as_str()));
    let sleeping = dump.task_backtrace(1).unwrap();
    assert_eq!(sleeping.frames.len(), 1);
    assert!(matches!(sleeping.end, End::Unsupported { .. }));
}
