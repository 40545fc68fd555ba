//! Every deadline of one case, in one place, and their sum: the longest a case can take before
//! one of its own deadlines ends it. nextest's kill time (`.config/nextest.toml`) must stay above
//! that sum (a test checks it), so a stuck case always fails with its own reason, never by being
//! killed from outside without evidence.
//!
//! Measured under TCG on 2 cores (see FACTS.md): boot 4.5–10 s, `kexec -p` 0.9–2.9 s, crash →
//! capture 5–7.4 s, makedumpfile 3–13 s. The limits leave a wide margin for a loaded machine and
//! are all multiplied by `KDRILL_TIMEOUT_SCALE`.

use std::time::Duration;

use crate::vm::status::EventName;
use crate::vm::watch::Wait;

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub const BOOT: Wait = Wait {
    event: EventName::Boot,
    limit: secs(120),
    what: "the first boot's init to start",
};
pub const KEXEC: Wait = Wait {
    event: EventName::KexecLoaded,
    limit: secs(60),
    what: "kexec -p to load the capture kernel",
};
/// A host-side route waits this long for the guest to say it is ready to be crashed.
pub const READY: Wait = Wait {
    event: EventName::Ready,
    limit: secs(60),
    what: "the guest to be ready for the crash",
};
pub const HANGING: Wait = Wait {
    event: EventName::Hanging,
    limit: secs(60),
    what: "the guest to hang a CPU",
};
/// `vm-dump`: the guest writes its marker to the kernel log, then says `ready`.
pub const MARKER: Wait = Wait {
    event: EventName::Ready,
    limit: secs(60),
    what: "the guest to write its marker",
};
/// A scenario's `guest.dirty_mib`: the guest fills that much memory and frees it (512 MiB
/// under TCG on a loaded 2-core machine: 45 s, 2026-12-06).
pub const DIRTY: Wait = Wait {
    event: EventName::Dirtied,
    limit: secs(180),
    what: "the guest to dirty and free its memory",
};
pub const CAPTURE: Wait = Wait {
    event: EventName::CaptureStart,
    limit: secs(120),
    what: "the capture kernel to boot (did the crash reach kexec?)",
};
pub const SAVE: Wait = Wait {
    event: EventName::Makedumpfile,
    limit: secs(180),
    what: "makedumpfile to finish",
};
pub const DONE: Wait = Wait {
    event: EventName::Done,
    limit: secs(30),
    what: "the capture boot to finish",
};
/// A shape's guest says it waits for its case (each second once `kexec -p` is done).
pub const WAITING: Wait = Wait {
    event: EventName::Waiting,
    limit: secs(30),
    what: "the shape's guest to wait for its case",
};
/// A restored guest acknowledges its case's settings; the host sends them again each time this
/// passes without an answer, [`CASE_TRIES`] times.
pub const CASE: Wait = Wait {
    event: EventName::Case,
    limit: secs(5),
    what: "the restored guest to take its case's settings",
};
pub const CASE_TRIES: u32 = 4;
/// Saving a shape's state (~80 MB of a 1 GiB guest: under a second here).
pub const SHAPE_SAVE: Duration = secs(120);
/// A restored QEMU reading the saved state back.
pub const RESTORE: Duration = secs(60);
/// Restoring a shape and handing the guest its case: QMP, the state read back, the status
/// channel, the case's settings until acknowledged.
pub const RESTORING: Duration =
    secs(QMP_CONNECT.as_secs() * 2 + RESTORE.as_secs() + CASE.limit.as_secs() * CASE_TRIES as u64);
/// Booting and saving a shape: its first boot, `kexec -p`, the wait, the save, QMP.
pub const SHAPE: Duration = secs(
    BOOT.limit.as_secs()
        + KEXEC.limit.as_secs()
        + WAITING.limit.as_secs()
        + SHAPE_SAVE.as_secs()
        + QMP_CONNECT.as_secs()
        + QMP_REPLY.as_secs(),
);

/// QEMU exits after the capture boot's power-off.
pub const POWEROFF: Duration = secs(30);
/// QEMU creates its QMP socket while it starts.
pub const QMP_CONNECT: Duration = secs(20);
/// A QMP command's answer (a `dump-guest-memory` takes longer: [`VM_DUMP`]).
pub const QMP_REPLY: Duration = secs(10);
/// One `dump-guest-memory` (elf of 1 GiB: ~1 s; kdump-zlib: ~1.6 s).
pub const VM_DUMP: Duration = secs(120);
/// The `vm-dump` formats a scenario may ask for at most (elf, kdump-zlib, kdump-lzo, kdump-snappy).
pub const VM_DUMP_FORMATS: u32 = 4;
/// The longest simulated hang (`hang_seconds` in a scenario).
pub use crate::spec::scenario::MAX_HANG;
/// Reading the dump back on the host: each debugfs extraction, each makedumpfile run
/// (`-R` then `--dump-dmesg`), kdrill's own reader.
pub const EXTRACT: Duration = secs(60);
pub const EXTRACTIONS: u32 = 3;
pub use crate::dumpcheck::makedumpfile::READ as MAKEDUMPFILE_READ;
/// Before the guest: fetching the kernel (all its packages), fetching its headers and building
/// the crasher (in its release's build sysroot), making the capture userspace's sysroot, making
/// the disk, the KVM probe: the sum of those steps' own deadlines (`fetch/apt/tree.rs`,
/// `fetch/kernel.rs`, `fetch/crasher/`, `fetch/userspace/`, `guest/dumpdisk.rs`, `vm/accel.rs`). A wait for another run's lock on the
/// same kernel or module is bounded by the same figure and replaces the work.
pub const SETUP: Duration = secs(
    crate::fetch::apt::tree::UPDATE_DEADLINE.as_secs()
        + crate::fetch::kernel::KERNEL_WORST.as_secs()
        + crate::fetch::crasher::BUILD_WORST.as_secs()
        + crate::fetch::userspace::BUILD_WORST.as_secs()
        + crate::guest::dumpdisk::DISK_TOOL_DEADLINE.as_secs()
        + crate::vm::accel::PROBE_TIMEOUT.as_secs(),
);

/// The Debian image's three boots (measured here, TCG, 2 vCPUs, 1 GiB: ready ~21 s, crash →
/// saved ~27 s, of which ~17 s is systemd starting in the capture kernel, boot 3 ready ~19 s).
pub mod debian {
    use super::{secs, Duration, EventName, Wait};

    pub const BOOT: Wait = Wait {
        event: EventName::Boot,
        limit: secs(120),
        what: "the Debian guest's systemd to start kdrill's first unit (boot 1)",
    };
    pub const READY: Wait = Wait {
        event: EventName::Ready,
        limit: secs(240),
        what: "kdump-config to say `ready to kdump` (boot 1)",
    };
    pub const HANGING: Wait = Wait {
        event: EventName::Hanging,
        limit: secs(60),
        what: "the guest to hang a CPU",
    };
    pub const CAPTURE: Wait = Wait {
        event: EventName::CaptureStart,
        limit: secs(120),
        what: "the capture kernel's initrd to start (did the crash reach kexec?)",
    };
    pub const SAVING: Wait = Wait {
        event: EventName::Saving,
        limit: secs(240),
        what: "kdump-tools-dump.service to start in the capture kernel",
    };
    pub const REBOOT: Wait = Wait {
        event: EventName::Boot,
        limit: secs(300),
        what: "kdump-tools to save the dump and the guest to boot again",
    };
    pub const READY_AGAIN: Wait = Wait {
        event: EventName::Ready,
        limit: secs(240),
        what: "kdump-config to say `ready to kdump` again (boot 3)",
    };
    pub const DONE: Wait = Wait {
        event: EventName::Done,
        limit: secs(30),
        what: "kdrill's unit to finish boot 3",
    };
    /// QEMU exits after boot 3 powers off.
    pub const POWEROFF: Duration = secs(60);
    /// `qemu-img create` of the overlay, `qemu-img convert` of it back to raw (a 2 GB image).
    pub const QEMU_IMG: Duration = secs(180);
    /// debugfs copying one small evidence file off the case disk.
    pub const EVIDENCE_FILE: Duration = secs(10);
    /// Before the guest, beyond the minimal case's setup: the image build, the case disk.
    pub const SETUP: Duration = secs(
        crate::guest::debian::BUILD_WORST.as_secs()
            + crate::guest::dumpdisk::DISK_TOOL_DEADLINE.as_secs() * 4,
    );

    /// How far a recipe may stretch one of these waits (`deadlines:` in its YAML): a release
    /// that needs more than twice kdrill's default is a finding, not a setting.
    pub const MAX_FACTOR: u32 = 2;

    /// The waits a recipe may set (`deadlines:`): each counts at its ceiling in [`total`].
    pub const SETTABLE: [Wait; 6] = [BOOT, READY, CAPTURE, SAVING, REBOOT, READY_AGAIN];

    /// One Debian image's waits: kdrill's defaults with its recipe's `deadlines:` over them.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Deadlines {
        pub boot: Wait,
        pub ready: Wait,
        pub capture: Wait,
        pub saving: Wait,
        pub reboot: Wait,
        pub ready_again: Wait,
    }

    impl Default for Deadlines {
        fn default() -> Deadlines {
            Deadlines {
                boot: BOOT,
                ready: READY,
                capture: CAPTURE,
                saving: SAVING,
                reboot: REBOOT,
                ready_again: READY_AGAIN,
            }
        }
    }

    impl Deadlines {
        /// `set` (a recipe's `deadlines:`) over the defaults; a wait over [`MAX_FACTOR`] times
        /// its default is refused, naming it, its default and the ceiling.
        pub fn with(set: &crate::spec::debian::Deadlines) -> Result<Deadlines, String> {
            Ok(Deadlines {
                boot: stretch(BOOT, "boot", set.boot)?,
                ready: stretch(READY, "ready", set.ready)?,
                capture: stretch(CAPTURE, "capture", set.capture)?,
                saving: stretch(SAVING, "saving", set.saving)?,
                reboot: stretch(REBOOT, "reboot", set.reboot)?,
                ready_again: stretch(READY_AGAIN, "ready_again", set.ready_again)?,
            })
        }
    }

    /// `default` with the recipe's `seconds` for it (named `deadlines.<name>` in a refusal).
    fn stretch(default: Wait, name: &str, seconds: Option<u64>) -> Result<Wait, String> {
        let Some(seconds) = seconds else {
            return Ok(default);
        };
        let ceiling = default.limit * MAX_FACTOR;
        if secs(seconds) > ceiling {
            return Err(format!(
                "deadlines.{name}: {seconds} s is over {MAX_FACTOR} times kdrill's {} s ({}): at most {} s; a release that needs more is worth a look at its serial logs",
                default.limit.as_secs(),
                default.what,
                ceiling.as_secs()
            ));
        }
        Ok(Wait {
            limit: secs(seconds),
            ..default
        })
    }

    /// Booting and saving the shape of boot 1 whose waits are `boot` and `ready`: QMP, boot 1
    /// to kdump-tools ready, the save, and the disks it is made with.
    pub fn shape(boot: Duration, ready: Duration) -> Duration {
        super::QMP_CONNECT
            + super::QMP_REPLY
            + boot
            + ready
            + super::SHAPE_SAVE
            + QEMU_IMG
            + crate::guest::dumpdisk::DISK_TOOL_DEADLINE
    }

    /// Every wait of the three boots (the settable ones at their ceiling), the host reading the
    /// dump folder, and the setup. A restored case first builds its shape (or waits as long for
    /// another run building it) and restores it; a shape that cannot be made leaves the case to
    /// boot 1 itself.
    pub fn total() -> Duration {
        let settable: Duration = SETTABLE.iter().map(|w| w.limit * MAX_FACTOR).sum();
        let restored = shape(BOOT.limit * MAX_FACTOR, READY.limit * MAX_FACTOR) + super::RESTORING;
        let guest = settable + HANGING.limit + super::MAX_HANG + DONE.limit + POWEROFF + restored;
        let host = QEMU_IMG * 2
            + super::EXTRACT * super::EXTRACTIONS
            + EVIDENCE_FILE * crate::guest::debian::casedisk::EVIDENCE.len() as u32
            + super::MAKEDUMPFILE_READ * 2;
        guest + host + SETUP
    }
}

/// An operator's disk image's waits live with its flow.
pub use crate::case::disk::budget as disk;

/// The longest a case can run at `scale` before its own deadlines end it.
pub fn total(scale: f64) -> Duration {
    // A restored case builds its shape (or waits for another run building it) instead of the
    // first boot, then restores it and hands it its case.
    let first_boot =
        (BOOT.limit + KEXEC.limit).max(SHAPE + RESTORE + WAITING.limit + CASE.limit * CASE_TRIES);
    let capture = first_boot
        + DIRTY.limit
        + READY.limit.max(HANGING.limit + MAX_HANG)
        + CAPTURE.limit
        + SAVE.limit
        + DONE.limit
        + POWEROFF
        + EXTRACT * EXTRACTIONS
        + MAKEDUMPFILE_READ * 2;
    let vm_dump = BOOT.limit + MARKER.limit + QMP_REPLY + VM_DUMP * VM_DUMP_FORMATS;
    (QMP_CONNECT + QMP_REPLY + SETUP + capture.max(vm_dump).max(debian::total()).max(disk::total()))
        .mul_f64(scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// nextest's kill time for the VM tests: `period × terminate-after` of the matrix override
    /// in `.config/nextest.toml`, for `profile`.
    fn nextest_kill_time(profile: &str) -> Duration {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.config/nextest.toml"),
        )
        .unwrap();
        let header = format!("[[profile.{profile}.overrides]]");
        let block = text.split(&header).nth(1).expect("a matrix override");
        let line = block
            .lines()
            .find(|l| l.starts_with("slow-timeout"))
            .expect("slow-timeout in the override");
        let number = |key: &str| -> u64 {
            let rest = &line[line.find(key).unwrap() + key.len()..];
            rest.trim_start_matches(|c: char| !c.is_ascii_digit())
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .unwrap()
        };
        Duration::from_secs(number("period") * number("terminate-after"))
    }

    #[test]
    fn the_case_budget_stays_below_nextests_kill_time() {
        for profile in ["default", "ci"] {
            let kill = nextest_kill_time(profile);
            assert!(
                total(1.0) < kill,
                "{profile}: a case may take {}s by its own deadlines, nextest kills at {}s",
                total(1.0).as_secs(),
                kill.as_secs()
            );
        }
    }

    #[test]
    fn a_recipe_stretches_a_debian_wait_up_to_twice_the_default() {
        let set = |reboot| crate::spec::debian::Deadlines {
            reboot: Some(reboot),
            ..Default::default()
        };
        let d = debian::Deadlines::with(&set(420)).unwrap();
        assert_eq!(d.reboot.limit, secs(420));
        assert_eq!(d.reboot.what, debian::REBOOT.what);
        assert_eq!(d.ready, debian::READY);
        let err = debian::Deadlines::with(&set(601)).unwrap_err();
        assert!(
            err.contains("deadlines.reboot: 601 s is over 2 times kdrill's 300 s")
                && err.contains("at most 600 s"),
            "{err}"
        );
        assert_eq!(
            debian::Deadlines::with(&Default::default()).unwrap(),
            debian::Deadlines::default()
        );
    }

    /// Every committed Debian recipe's waits are within the ceiling the budget counts.
    #[test]
    fn the_committed_recipes_deadlines_are_accepted() {
        let images = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../images");
        let mut seen = 0;
        for entry in std::fs::read_dir(&images).unwrap().flatten() {
            let path = entry.path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if !name.starts_with("debian-") || !name.ends_with(".yaml") {
                continue;
            }
            let recipe = crate::spec::debian::from_file(&path).unwrap();
            debian::Deadlines::with(&recipe.deadlines).unwrap_or_else(|e| panic!("{name}: {e}"));
            seen += 1;
        }
        assert!(seen >= 2, "{seen}");
    }

    #[test]
    fn the_budget_scales() {
        assert_eq!(total(2.0), total(1.0) * 2);
    }
}
