//! The Debian image's part of a guest shape (`case::shape`): boot 1 of the case's image, kernel,
//! overlay, `crashkernel=` and machine, up to kdump-tools "ready to kdump" and kdrill's unit
//! waiting for its case, with a case disk of the shape's own (`KDRILL_SHAPE=1`). Its root overlay
//! is kept beside the saved state, and each restored case writes on an overlay of that overlay:
//! the guest's page cache and its disk stay one.

use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::case::budget::debian::Deadlines;
use crate::case::error::{CaseError, SetupContext};
use crate::case::shape::{BootTimes, ShapeBoot};
use crate::guest::debian::{casedisk, BuiltImage};
use crate::vm::qemu::GuestConfig;
use crate::vm::status::EventName;
use crate::vm::watch::{Wait, Watch};

/// The shape's root overlay, kept with its state: restored cases' overlays sit on it.
const ROOT: &str = "root.qcow2";

/// One Debian shape's boot.
pub struct DebianBoot<'a> {
    pub qemu_img: &'a Path,
    pub image: &'a BuiltImage,
    /// The case disk's size, which every restored case's disk has too.
    pub case_disk_mib: u64,
    /// kdrill's binary, for `kdrill check` in the shape's boot.
    pub kdrill: &'a [u8],
    pub deadlines: Deadlines,
}

impl ShapeBoot for DebianBoot<'_> {
    fn build_limit(&self) -> std::time::Duration {
        crate::case::budget::debian::shape(self.deadlines.boot.limit, self.deadlines.ready.limit)
    }

    fn key_words(&self, hasher: &mut Sha256) -> Result<(), String> {
        let disk = &self.image.disk;
        let meta =
            std::fs::metadata(disk).map_err(|e| format!("cannot read {}: {e}", disk.display()))?;
        // A rebuilt image under the same key is other bytes: the shape's overlay would not fit.
        let built = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        hasher.update(
            format!(
                "debian image {} disk {} bytes {built}\ncase disk {} MiB\n",
                self.image.record.key,
                meta.len(),
                self.case_disk_mib,
            )
            .as_bytes(),
        );
        // How the disks are attached, as `machine` attaches them (their files aside).
        let blank = Path::new("-");
        for arg in super::prepare::drives(blank, blank, &[]) {
            hasher.update(arg.as_bytes());
            hasher.update(b"\0");
        }
        Ok(())
    }

    fn arguments(
        &self,
        config: &GuestConfig,
        dir: &Path,
        scratch: &Path,
    ) -> Result<Vec<String>, CaseError> {
        let root = root(dir);
        super::prepare::overlay_disk(self.qemu_img, &self.image.disk, "raw", &root)?;
        let case_disk = scratch.join("case.img");
        let files: casedisk::Files = vec![
            ("case.env".into(), 0o644, casedisk::shape_env().into_bytes()),
            ("kdrill".into(), 0o755, self.kdrill.to_vec()),
        ];
        casedisk::create(
            &case_disk,
            &scratch.join("case"),
            &files,
            self.case_disk_mib,
        )
        .setup("guest shape's case disk")?;
        Ok(super::prepare::machine(config, &root, &case_disk, &[], &[]))
    }

    fn until_waiting(&self, watch: &mut Watch, started: Instant) -> Result<BootTimes, CaseError> {
        let (seen, boot) = watch.until(self.deadlines.boot)?;
        super::boots::unmarked(&boot)?;
        let waiting = Wait {
            event: EventName::Waiting,
            limit: self.deadlines.ready.limit,
            what: "kdump-config to say `ready to kdump` and kdrill's unit to wait for its case (boot 1)",
        };
        let (ready, _) = watch.until(waiting)?;
        Ok(BootTimes {
            boot: (seen - started).as_secs_f64(),
            guest_boot: boot.uptime,
            kexec: None,
            ready: Some((ready - started).as_secs_f64()),
        })
    }

    fn keep(&self, dir: &Path, scratch: &Path) {
        casedisk::collect(&scratch.join("case.img"), dir);
    }
}

/// The shape's root overlay, which a restored case's overlay is made on.
pub fn root(shape_dir: &Path) -> PathBuf {
    shape_dir.join(ROOT)
}
