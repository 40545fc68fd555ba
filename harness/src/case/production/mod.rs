//! The production capture path: a case on the Debian image (`images/debian-bookworm.yaml`),
//! where Debian's own kdump-tools loads the capture kernel, saves the dump from a full systemd
//! boot of it into the dump folder, and the guest reboots and comes back ready; with the
//! operator's overlay and `crashkernel=`, and `kdrill check` run inside the guest before the
//! crash. `prepare` builds or reuses the image and the disks, `boots` follows the three boots,
//! `dumpfolder` reads the dump folder off the disk, `diagnose` says why a capture failed.

pub(crate) mod boots;
pub mod diagnose;
mod drilled;
pub(crate) mod dumpfolder;
pub(crate) mod prepare;
pub mod record;
mod shaped;

use std::path::Path;
use std::time::Instant;

use crate::case::error::{CaseError, SetupContext};
use crate::case::flow::Run;
use crate::case::image::{ImageFlow, Launch, PreparedGuest};
use crate::case::verdict::CaseResult;
use crate::case::{Case, RunOptions};
use crate::guest::debian::{casedisk, BuiltImage};
use crate::host::interrupt;
use crate::vm::watch::{Watch, WatchError};
use record::{CheckSummary, Production};

/// The image `case` boots, from the cache or built now (for prefetching before the cases run).
pub fn image_for(
    case: &Case,
    options: &RunOptions,
    progress: &dyn Fn(&str),
) -> Result<BuiltImage, CaseError> {
    progress("fetching kernel");
    let files = crate::fetch::kernel::resolve(&case.kernel, &options.cache).setup("kernel")?;
    let recipe = prepare::recipe(case, options)?;
    let overlay = prepare::overlay(case)?;
    crate::guest::debian::image(&recipe, &files, overlay.as_ref(), &options.cache, progress)
        .setup("Debian image")
}

/// The Debian image's kind: kdrill's image of a Debian release, three boots, the dump folder.
pub struct DebianFlow;

impl ImageFlow for DebianFlow {
    fn prepare(
        &self,
        run: &Run,
        result: &mut CaseResult,
    ) -> Result<Box<dyn PreparedGuest>, CaseError> {
        let case = run.case;
        result.production = Some(Production {
            crashkernel: case.crashkernel().to_string(),
            dump_target: case.scenario.image.dump_target,
            ..Production::default()
        });
        // The plan of an image with its own kdump: booted as a host boots (`KDRILL_MODE=fast`,
        // a scenario's `mode: fast` say why they do not apply), boot 1 restored when it can be.
        let plan = crate::case::plan::plan(case, run.options.overrides);
        if let Some(why) = &plan.faithful_because {
            result.notes.push(why.clone());
        }
        let restore = plan.restore;
        result.plan = Some(plan);
        if case.scenario.capture.makedumpfile
            != crate::spec::scenario::Capture::default().makedumpfile
        {
            result.notes.push("the scenario's capture.makedumpfile does not apply: kdump-tools runs makedumpfile with MAKEDUMP_ARGS from /etc/default/kdump-tools".into());
        }
        let prepared = prepare::prepare(case, run.options, run.dir, result, run.progress, restore)?;
        Ok(Box::new(DebianGuest {
            prepared,
            capture_failed: None,
            followed_s: None,
        }))
    }
}

/// A prepared Debian guest, and how its capture went once followed.
struct DebianGuest {
    prepared: prepare::Prepared,
    /// The capture failed and the guest rebooted on (boot 3 is still followed and read).
    capture_failed: Option<CaseError>,
    /// QEMU start → the guest gone, on the host's clock (bounds the times the guest measured).
    followed_s: Option<f64>,
}

impl PreparedGuest for DebianGuest {
    fn launch(&self) -> Launch {
        Launch {
            qemu: self.prepared.qemu.clone(),
            args: self.prepared.args.clone(),
            serial_log: self.prepared.config.serial_log.clone(),
        }
    }

    fn follow(
        &mut self,
        run: &Run,
        watch: &mut Watch,
        started: Instant,
        result: &mut CaseResult,
    ) -> Result<(), CaseError> {
        let prepared = &self.prepared;
        let mut boots = boots::Boots::new(
            watch,
            &prepared.config,
            &run.case.scenario,
            result,
            run.progress,
            prepared.deadlines,
            started,
        );
        boots.restore = prepared
            .shape
            .as_ref()
            .map(|shape| (&shape.record.key[..16], &prepared.case_settings[..]));
        let ran = boots.run();
        self.followed_s = Some(started.elapsed().as_secs_f64());
        self.capture_failed = ran?.capture_failed;
        Ok(())
    }

    fn collect(
        self: Box<Self>,
        run: &Run,
        followed: Result<(), CaseError>,
        result: &mut CaseResult,
    ) -> Result<(), CaseError> {
        let DebianGuest {
            prepared,
            capture_failed,
            followed_s,
        } = *self;
        collect(
            run,
            &prepared,
            followed.map(|()| capture_failed),
            followed_s,
            result,
        )
    }
}

/// Reads the evidence, the in-guest check and the dump folder after the guest is gone; `outcome`
/// is how following it ended (a failed capture the guest rebooted from is `Ok(Some(_))`);
/// `followed_s` how long, on the host's clock.
fn collect(
    run: &Run,
    prepared: &prepare::Prepared,
    outcome: Result<Option<CaseError>, CaseError>,
    followed_s: Option<f64>,
    result: &mut CaseResult,
) -> Result<(), CaseError> {
    let case = run.case;
    (run.progress)("reading the evidence");
    let read_started = Instant::now();
    let found = casedisk::collect(&prepared.case_disk, run.dir);
    // A restored guest's console starts inside boot 1: no kernel banner opens it.
    let restored = prepared.shape.is_some();
    split_serial(run.dir, restored);
    record_check(run.dir, result);
    let suggested = read_text(run.dir, "boot1-kdump-config-show.txt")
        .and_then(|s| diagnose::suggested_from_show(&s));
    if let (Some(size), Some(production)) = (&suggested, result.production.as_mut()) {
        result.notes.push(format!(
            "kdump-tools suggests crashkernel={size} (kdump-config show); this case reserved {}",
            production.crashkernel
        ));
        production.kdump_suggested = suggested;
    }
    if let Some(stop) = interrupt::interrupted() {
        return outcome.and(Err(CaseError::interrupted(stop)));
    }
    let capture_failed = match outcome {
        Ok(capture_failed) => capture_failed.map(|e| explain(e, run.dir, restored)),
        // No crash happened (boot 1 failed), or the flow stopped: nothing to read.
        Err(error) if !crashed(run.dir) => return Err(explain(error, run.dir, restored)),
        Err(error) => Some(explain(error, run.dir, restored)),
    };
    let coredir = read_text(run.dir, "coredir.txt")
        .or_else(|| {
            read_text(run.dir, "boot1-kdump-config-show.txt")
                .and_then(|s| diagnose::coredir_from_show(&s))
        })
        .unwrap_or_else(|| "/var/crash".into());
    let mount = read_text(run.dir, "coredir-mount.txt");
    let raw = disks_after_root(prepared);
    let receive = prepared.sshd.as_ref().map(|s| s.receive_dir());
    let source = match &receive {
        Some(receive) => dumpfolder::Source::Received(receive),
        None => dumpfolder::Source::Disks {
            root_qcow2: &prepared.root,
            raw: &raw,
            scratch: prepared.scratch.path(),
        },
    };
    let mut later = Vec::new();
    let folder = dumpfolder::read(
        source,
        coredir.trim(),
        mount.as_deref(),
        run.dir,
        &case.scenario,
        result,
        &mut later,
    );
    result.phases.verify = Some(read_started.elapsed().as_secs_f64());
    if !found.iter().any(|f| f == "boot3-kdump-config-status.txt") {
        result
            .notes
            .push("boot 3 left no evidence on the case disk".into());
    }
    let first = match (capture_failed, folder) {
        (Some(failed), _) => Err(failed),
        // The folder lacks the dump: say what the capture boot's console shows.
        (None, Err(CaseError::DumpFolder { folder, problem })) => {
            Err(match capture_console(run.dir, restored) {
                Some(why) => CaseError::CaptureFailed {
                    reason: format!("{why}; {folder}/{problem}"),
                },
                None => CaseError::DumpFolder { folder, problem },
            })
        }
        (None, other) => other,
    };
    // A drill's own verdict comes first: it is what the case is about.
    if case.scenario.trigger == crate::spec::scenario::Trigger::Drill {
        let dump = result
            .production
            .as_ref()
            .and_then(|p| p.dump_folder.as_ref())
            .and_then(|f| f.files.iter().find(|x| x.name.starts_with("dump.")))
            .map(|x| x.name.clone());
        let (notes, errors) = drilled::judge(run.dir, dump.as_deref(), followed_s);
        result.notes.extend(notes);
        for error in errors {
            result.fail(error);
        }
    }
    // The first failure is the case's reason; what is wrong beside it follows.
    if let Err(error) = first {
        result.fail(error);
    }
    for error in later {
        result.fail(error);
    }
    Ok(())
}

/// Did boot 1 get as far as the crash (the guest said `ready`)?
fn crashed(dir: &Path) -> bool {
    let status = std::fs::read_to_string(dir.join("status.log")).unwrap_or_default();
    status.contains("KDRILL ready") && status.contains("boot=1")
}

/// A failed capture, refined with what the serial log shows: whether a capture kernel booted at
/// all, and what its console says went wrong.
fn explain(error: CaseError, dir: &Path, restored: bool) -> CaseError {
    match error {
        CaseError::CaptureFailed { reason } => {
            let boots = read_text(dir, "serial.log")
                .map(|s| diagnose::split_boots(&s, restored).len())
                .unwrap_or(0);
            let what = match boots {
                0..=2 => "the panic did not reach a capture kernel: no kernel booted between the crash and the reboot".to_string(),
                _ => "a capture kernel booted (serial-boot2.log)".to_string(),
            };
            let reason = format!("{what}; {reason}");
            match capture_console(dir, restored) {
                Some(why) => CaseError::CaptureFailed {
                    reason: format!("{why}; {reason}"),
                },
                None => CaseError::CaptureFailed { reason },
            }
        }
        CaseError::Watch(WatchError::Timeout { .. }) => match capture_console(dir, restored) {
            Some(why) => CaseError::CaptureFailed {
                reason: format!("{why}; {error}"),
            },
            None => error,
        },
        other => other,
    }
}

/// What the capture boot's console (the second boot in serial.log) says went wrong.
fn capture_console(dir: &Path, restored: bool) -> Option<String> {
    let serial = read_text(dir, "serial.log")?;
    let boots = diagnose::split_boots(&serial, restored);
    diagnose::capture_failure(boots.get(1)?)
}

/// serial-boot1.log, serial-boot2.log (the capture), serial-boot3.log beside serial.log (a
/// restored case's boot 1 is its part after the restore; the shape's evidence has the rest).
fn split_serial(dir: &Path, restored: bool) {
    let Some(serial) = read_text(dir, "serial.log") else {
        return;
    };
    for (n, boot) in diagnose::split_boots(&serial, restored).iter().enumerate() {
        let _ = std::fs::write(dir.join(format!("serial-boot{}.log", n + 1)), boot);
    }
}

/// The in-guest check's verdict into `result.json` (and a note everyone sees).
pub(crate) fn record_check(dir: &Path, result: &mut CaseResult) {
    let Some(json) = read_text(dir, "boot1-check.json") else {
        return;
    };
    match CheckSummary::from_json(&json) {
        Ok(summary) => {
            result
                .notes
                .push(format!("kdrill check in boot 1: {}", summary.describe()));
            if let Some(p) = result.production.as_mut() {
                p.check = Some(summary);
            }
        }
        Err(e) => result
            .notes
            .push(format!("boot1-check.json cannot be read: {e}")),
    }
}

pub(crate) fn read_text(dir: &Path, name: &str) -> Option<String> {
    std::fs::read(dir.join(name))
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// The raw disks after the root, in `/dev/vdb`, `/dev/vdc`… order.
fn disks_after_root(prepared: &prepare::Prepared) -> Vec<std::path::PathBuf> {
    std::iter::once(prepared.case_disk.clone())
        .chain(prepared.extra_disks.iter().cloned())
        .collect()
}
