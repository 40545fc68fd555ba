//! A case on the operator's own disk image (`kind: disk`): the file is checked (a qcow2 or raw
//! disk that its firmware can boot) and hashed, a qcow2 overlay takes every write, kdrill's agent
//! goes in by a cloud-init seed or by libguestfs into the overlay, and the image boots through
//! its own firmware, bootloader and kernel. Its own kdump service captures and reboots it; the
//! agent copies the dump folder onto the case disk, and the host judges the dump as it judges the
//! Debian image's. The file's sha256 must be the same afterwards.

mod boots;
pub mod budget;
pub mod settings;

use std::path::PathBuf;
use std::time::Instant;

use crate::case::budget::disk as limits;
use crate::case::error::{CaseError, SetupContext};
use crate::case::flow::Run;
use crate::case::image::{ImageFlow, Launch, PreparedGuest};
use crate::case::production::dumpfolder;
use crate::case::production::prepare::drive;
use crate::case::production::record::{DiskSeen, Production};
use crate::case::verdict::CaseResult;
use crate::guest::agent::EVIDENCE;
use crate::guest::debian::casedisk;
use crate::guest::diskimage;
use crate::guest::dumpdisk;
use crate::host::tools;
use crate::spec::disk::{DiskRecipe, DiskSource, Inject};
use crate::vm::qemu::{self, GuestConfig};
use crate::vm::watch::Watch;

/// The operator's disk image's kind.
pub struct DiskFlow;

impl ImageFlow for DiskFlow {
    fn prepare(
        &self,
        run: &Run,
        result: &mut CaseResult,
    ) -> Result<Box<dyn PreparedGuest>, CaseError> {
        let prepared = prepare(run, result)?;
        Ok(Box::new(prepared))
    }
}

/// A disk-image guest ready to start, and what following it found.
struct DiskGuest {
    qemu: PathBuf,
    args: Vec<String>,
    config: GuestConfig,
    base: PathBuf,
    sha256_before: String,
    case_disk: PathBuf,
    scratch: tempfile::TempDir,
    /// Where the console log was at the crash and at boot 3's agent (bytes).
    cuts: boots::Cuts,
    capture_failed: Option<CaseError>,
}

/// The recipe of the case's image: a file named on the command line (with `KDRILL_DISK_*`
/// over the defaults) or `images/<name>.yaml`.
pub fn recipe(run: &Run) -> Result<DiskRecipe, CaseError> {
    let image = &run.case.setup.image;
    let mut recipe = match image.file() {
        Some(file) => DiskRecipe::for_file(file),
        None => {
            let root = match &run.options.project_root {
                Some(root) => root.clone(),
                None => crate::host::bundle::builtin(&run.options.cache).setup("image recipe")?,
            };
            crate::spec::disk::from_file(&root.join(image.recipe())).setup("image recipe")?
        }
    };
    settings::apply(&mut recipe).map_err(|detail| CaseError::Setup {
        what: "disk image settings",
        detail,
    })?;
    Ok(recipe)
}

fn prepare(run: &Run, result: &mut CaseResult) -> Result<DiskGuest, CaseError> {
    let case = run.case;
    let scenario = &case.scenario;
    if scenario.capture.makedumpfile != crate::spec::scenario::Capture::default().makedumpfile {
        result.notes.push("the scenario's capture.makedumpfile does not apply: the image's own kdump service runs makedumpfile as it is configured".into());
    }
    let qemu_bin = tools::require("qemu-system-x86_64").setup("host tools")?;
    let qemu_img = tools::require("qemu-img").setup("host tools")?;
    let recipe = recipe(run)?;
    let progress = run.progress;
    let base = match &recipe.source {
        DiskSource::Path(path) => path.clone(),
        DiskSource::Url { url, sha256 } => {
            progress("downloading the disk image");
            diskimage::download(url, sha256, &run.options.cache, limits::DOWNLOAD)
                .setup("disk image")?
        }
    };
    if !base.is_file() {
        return Err(CaseError::NotBootable(format!(
            "{}: no such disk image file ({})",
            base.display(),
            recipe.path.display()
        )));
    }
    let scratch = tempfile::Builder::new()
        .prefix("kdrill-disk-")
        .tempdir()
        .setup("scratch folder")?;
    let s = scratch.path();

    // The file first: a file that cannot boot is said within seconds, before any guest.
    progress("reading the disk image");
    let info = diskimage::info(&qemu_img, &base, limits::QEMU_IMG)
        .map_err(|e| CaseError::NotBootable(e.to_string()))?;
    let sectors = diskimage::first_sectors(&qemu_img, &base, &info.format, s, limits::QEMU_IMG)
        .map_err(|e| CaseError::NotBootable(e.to_string()))?;
    let look = diskimage::look(&sectors).map_err(|detail| {
        CaseError::NotBootable(format!(
            "{}: not a bootable disk image: {detail}",
            base.display()
        ))
    })?;
    // A file named on the command line boots as its partition table says, unless told.
    let firmware = match (case.setup.image.file(), settings::firmware_override()) {
        (_, Some(firmware)) => firmware,
        (Some(_), None) => look.firmware(),
        (None, None) => recipe.firmware,
    };
    if let Some(why) = look.refuses(firmware) {
        return Err(CaseError::NotBootable(format!(
            "{}: not bootable with {} firmware: {why}",
            base.display(),
            firmware.word()
        )));
    }
    progress("hashing the disk image");
    let sha256_before = diskimage::sha256(&base).setup("disk image")?;

    progress("preparing the overlay and the case disk");
    let root = s.join("root.qcow2");
    crate::case::production::prepare::overlay_disk(&qemu_img, &base, &info.format, &root)?;
    let kdrill_path = run.options.kdrill_bin.as_ref().ok_or(CaseError::Setup {
        what: "kdrill binary",
        detail: "no kdrill program for the image's agent: build it (`cargo build -p kdrill`) or set KDRILL_BIN".into(),
    })?;
    let kdrill = std::fs::read(kdrill_path).setup("kdrill binary")?;
    // The guest's size: the case's (calibrate's probes) over the recipe's.
    let guest = &case.kernel.guest;
    let memory_mib = if guest.memory_mib > 0 {
        guest.memory_mib
    } else {
        recipe.memory_mib
    };
    let cpus = if guest.cpus > 0 {
        guest.cpus
    } else {
        recipe.cpus
    };
    // A reservation asked for (`--crashkernel`, the scenario's, a calibration probe's) is set
    // through the image's bootloader by the agent; else the image's own stands.
    let asked = Some(case.crashkernel()).filter(|c| *c != crate::spec::kernel::OWN_CRASHKERNEL);
    let mut env = crate::guest::caseenv::case_env(scenario);
    env.push_str(&settings::agent_env(&recipe, asked));
    let files: casedisk::Files = vec![
        ("case.env".into(), 0o644, env.into_bytes()),
        (
            "modules".into(),
            0o644,
            casedisk::modules_list(scenario).into_bytes(),
        ),
        ("kdrill".into(), 0o755, kdrill),
    ];
    // Room for the dump the agent copies: at most the guest's memory (a dump with nothing
    // excluded and nothing compressed), sparse until written.
    let case_disk = s.join("case.img");
    let size = casedisk::size_mib(&files) + u64::from(memory_mib);
    casedisk::create(&case_disk, &s.join("case"), &files, size).setup("case disk")?;

    // kdrill's helper kernel (cached): libguestfs's appliance boots it, and the KVM probe.
    let helper = settings::helper_kernel(run.options, progress);
    let mut drives = vec![
        drive(&root, "qcow2", "writeback", false),
        drive(&case_disk, "raw", "unsafe", false),
    ];
    match recipe.inject {
        Inject::CloudInit => {
            progress("writing the cloud-init seed");
            let instance = &sha256_before[..12];
            let seed = diskimage::seed(&s.join("seed"), instance, limits::QEMU_IMG)
                .setup("cloud-init seed (cloud-localds, package cloud-image-utils)")?;
            drives.push(drive(&seed, "raw", "unsafe", true));
        }
        Inject::Libguestfs => {
            progress("writing kdrill's unit into the overlay (libguestfs)");
            let helper = helper.as_ref().map_err(|e| CaseError::Setup {
                what: "libguestfs",
                detail: e.to_string(),
            })?;
            let guestfs = crate::guest::guestfs::Guestfs::prepare(&run.options.cache, helper)
                .setup("libguestfs")?;
            diskimage::inject(&guestfs, &root, s, limits::INJECT)
                .setup("libguestfs (virt-customize into the overlay)")?;
        }
    }

    // Whether KVM works is probed once per host boot with a kernel kdrill caches (the one
    // libguestfs's appliance boots): a /dev/kvm that opens may still run nothing.
    let (accel, why) = match &helper {
        Ok(files) => crate::vm::accel::choose(&qemu_bin, &files.vmlinuz, &run.options.cache, s),
        Err(e) => (
            crate::vm::accel::Accel::Tcg,
            format!("TCG: no kernel to probe KVM with ({e})"),
        ),
    };
    result.accel = Some(accel);
    result.accel_reason = Some(why);
    let config = GuestConfig {
        accel,
        memory_mib,
        cpus: scenario.guest.cpus.unwrap_or(cpus),
        kernel: PathBuf::new(),
        initrd: None,
        append: String::new(),
        disk: None,
        serial_log: run.dir.join("serial.log"),
        console_socket: Some(s.join("console.sock")),
        status_log: Some(run.dir.join("status.log")),
        status_socket: None,
        qmp_socket: Some(s.join("qmp.sock")),
        incoming: None,
    };
    let (machine, flash) = settings::firmware_files(firmware, recipe.secure_boot, s)?;
    let mut args = qemu::firmware_line(&config, &machine, &flash);
    for d in drives {
        args.extend(d);
    }
    args.extend(scenario.guest.qemu.iter().cloned());
    std::fs::write(
        run.dir.join("qemu-cmdline.txt"),
        qemu::shell_line(&qemu_bin, &args) + "\n",
    )
    .setup("evidence")?;

    result.boot = Some("booted".into());
    result.production = Some(Production {
        image: Some(format!("sha256:{sha256_before}")),
        image_dir: Some(base.display().to_string()),
        crashkernel: case.crashkernel().to_string(),
        dump_target: scenario.image.dump_target,
        disk: Some(DiskSeen {
            file: base.display().to_string(),
            format: info.format.clone(),
            firmware: firmware.word().into(),
            inject: recipe.inject.word().into(),
            sha256_before: sha256_before.clone(),
            sha256_after: None,
            service: None,
        }),
        ..Production::default()
    });
    Ok(DiskGuest {
        qemu: qemu_bin,
        args,
        config,
        base,
        sha256_before,
        case_disk,
        scratch,
        cuts: boots::Cuts::default(),
        capture_failed: None,
    })
}

impl PreparedGuest for DiskGuest {
    fn launch(&self) -> Launch {
        Launch {
            qemu: self.qemu.clone(),
            args: self.args.clone(),
            serial_log: self.config.serial_log.clone(),
        }
    }

    fn follow(
        &mut self,
        run: &Run,
        watch: &mut Watch,
        started: Instant,
        result: &mut CaseResult,
    ) -> Result<(), CaseError> {
        let mut boots = boots::Boots {
            watch,
            config: &self.config,
            scenario: &run.case.scenario,
            result,
            progress: run.progress,
            started,
            last: started,
            cuts: boots::Cuts::default(),
        };
        let ran = boots.run();
        self.cuts = boots.cuts;
        self.capture_failed = ran?;
        Ok(())
    }

    fn collect(
        self: Box<Self>,
        run: &Run,
        followed: Result<(), CaseError>,
        result: &mut CaseResult,
    ) -> Result<(), CaseError> {
        collect(*self, run, followed, result)
    }
}

fn collect(
    guest: DiskGuest,
    run: &Run,
    followed: Result<(), CaseError>,
    result: &mut CaseResult,
) -> Result<(), CaseError> {
    (run.progress)("reading the evidence");
    let read_started = Instant::now();
    casedisk::collect_named(&guest.case_disk, run.dir, EVIDENCE);
    boots::split_serial(run.dir, &guest.cuts);
    crate::case::production::record_check(run.dir, result);
    let service = crate::case::production::read_text(run.dir, "agent-service.txt");
    // The image's own kdump packages: whose makedumpfile wrote the dump and its dmesg file.
    if let (Some(text), Some(production)) = (
        crate::case::production::read_text(run.dir, "packages.txt"),
        result.production.as_mut(),
    ) {
        production.packages.extend(settings::packages(&text));
    }
    // The file must be as it was, whatever else happened.
    (run.progress)("hashing the disk image again");
    let after = diskimage::sha256(&guest.base).map_err(|e| e.to_string());
    if let Some(disk) = result.production.as_mut().and_then(|p| p.disk.as_mut()) {
        disk.sha256_after = after.as_ref().ok().cloned();
        disk.service = service.map(|s| s.trim().to_string());
    }
    let changed = match after {
        Ok(after) if after != guest.sha256_before => Some(CaseError::ImageChanged {
            path: guest.base.display().to_string(),
            before: guest.sha256_before.clone(),
            after,
        }),
        Ok(_) => None,
        Err(e) => Some(CaseError::Setup {
            what: "disk image",
            detail: format!("cannot hash it again: {e}"),
        }),
    };
    let crashed = guest.cuts.crash.is_some();
    let capture_failed = match followed {
        Ok(()) => guest.capture_failed,
        // No crash happened (boot 1 failed), or the flow stopped: nothing to read.
        Err(error) if !crashed => {
            if let Some(changed) = changed {
                result.fail(changed);
            }
            return Err(error);
        }
        Err(error) => Some(error),
    };
    let coredir = crate::case::production::read_text(run.dir, "coredir.txt")
        .map(|s| s.trim().to_string())
        .filter(|s| s.starts_with('/'))
        .unwrap_or_else(|| "/var/crash".into());
    // The agent's copy: `dump/<dump folder>/<crash folder>/` on the case disk.
    let received = guest.scratch.path().join("received");
    let _ = std::fs::create_dir_all(&received);
    let copied = dumpdisk::rdump(
        &guest.case_disk,
        &format!("/{}", crate::guest::agent::DUMP_COPY),
        &received,
    );
    let mut later = Vec::new();
    let folder = match copied {
        Ok(()) => dumpfolder::read(
            dumpfolder::Source::Agent(&received.join(crate::guest::agent::DUMP_COPY)),
            &coredir,
            None,
            run.dir,
            &run.case.scenario,
            result,
            &mut later,
        ),
        Err(e) => Err(CaseError::DumpFolder {
            folder: coredir.clone(),
            problem: format!(
                "the agent copied nothing onto the case disk ({e}); see boot3-copy.txt and boot3-coredir-listing.txt"
            ),
        }),
    };
    result.phases.verify = Some(read_started.elapsed().as_secs_f64());
    match (capture_failed, folder) {
        (Some(failed), _) => result.fail(failed),
        (None, Err(error)) => result.fail(error),
        (None, Ok(())) => {}
    }
    for error in later {
        result.fail(error);
    }
    if let Some(changed) = changed {
        result.fail(changed);
    }
    Ok(())
}
