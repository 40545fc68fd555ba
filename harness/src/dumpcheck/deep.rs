//! The dump read deep by kdrill's reader, judged against the scenario: the crashed CPU's
//! backtrace (`expect.backtrace`, regexes matched in order), the task it ran (`expect.task`,
//! a regex over its whole comm) and, for the crasher routes, the crasher in the module list. Reading is
//! `kdrill-vmcore`'s; `check` is a pure function of what was read.

use std::path::Path;

use kdrill_vmcore::{End, Vmcore};
use serde::{Deserialize, Serialize};

use crate::dumpcheck::DumpError;
use crate::spec::scenario::Scenario;

/// The module the crasher routes load.
pub const CRASHER_MODULE: &str = "crasher";

/// What kdrill read deep from a dump, and what the scenario's expectations matched
/// (`result.json`'s `deep`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeepSeen {
    pub crashed_cpu: Option<u32>,
    /// The crashed CPU's frames, `function+0xoff/0xsize [module]`, innermost first.
    pub frames: Vec<String>,
    /// How the walk ended (end of stack, entered from user mode, partial: why).
    pub end: String,
    /// Each expected frame regex, in order, and the frame it matched (`null`: none).
    pub frame_matches: Vec<FrameMatch>,
    pub task: Option<TaskSeen>,
    pub modules: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameMatch {
    pub pattern: String,
    pub frame: Option<String>,
}

/// The crashed CPU's task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSeen {
    pub pid: u32,
    pub comm: String,
    /// `task_struct`, or `log` when the dump lacks the task's page (makedumpfile 1.7.2
    /// drops some slab pages of 6.12 kernels) and its comm came from the log's
    /// `PID: N Comm: X` line of the same pid.
    pub from: String,
}

/// Reads the crashed CPU's backtrace and task and the module list from `vmcore`; `log` is
/// the dump's kernel log, for a comm the dump lost.
pub fn read(vmcore: &Path, log: &str) -> Result<DeepSeen, String> {
    let chain = |e: kdrill_vmcore::Error| e.to_string();
    let dump = Vmcore::open(vmcore).map_err(chain)?;
    let cpu = dump
        .crashed_cpu()
        .map_err(chain)?
        .ok_or("no CPU crashed: panic_cpu is unset")?;
    let bt = dump.backtrace(cpu).map_err(chain)?;
    let end = match &bt.end {
        End::EndOfStack => "end of the kernel stack".to_string(),
        End::UserMode { ip, .. } => format!("entered from user mode at {ip:#x}"),
        End::Missing { reason } | End::Unsupported { reason } => format!("partial: {reason}"),
        End::Stopped { reason } => format!("stopped: {reason}"),
    };
    let task = bt.pid.and_then(|pid| match &bt.comm {
        Some(comm) => Some(TaskSeen {
            pid,
            comm: comm.clone(),
            from: "task_struct".into(),
        }),
        None => comm_in_log(log, pid).map(|comm| TaskSeen {
            pid,
            comm,
            from: "log".into(),
        }),
    });
    let modules = dump
        .modules()
        .map_err(chain)?
        .modules
        .into_iter()
        .map(|m| m.name)
        .collect();
    Ok(DeepSeen {
        crashed_cpu: Some(cpu),
        frames: bt.frames.iter().map(|f| f.describe()).collect(),
        end,
        frame_matches: Vec::new(),
        task,
        modules,
    })
}

/// The comm the kernel printed for `pid` (`CPU: 1 PID: 124 Comm: sh …`, 6.12: `CPU: 0 UID: 0
/// PID: 167 Comm: sh …`), the last time it did.
fn comm_in_log(log: &str, pid: u32) -> Option<String> {
    let marker = format!(" PID: {pid} Comm: ");
    log.lines().rev().find_map(|line| {
        let at = line.find(&marker)? + marker.len();
        line[at..].split_whitespace().next().map(str::to_string)
    })
}

/// Matches the scenario's expectations on `seen` (filling `frame_matches`) and returns a
/// reason for each one unmet.
pub fn check(scenario: &Scenario, seen: &mut DeepSeen) -> Vec<DumpError> {
    let mut errors = Vec::new();
    let mut from = 0;
    seen.frame_matches.clear();
    for pattern in &scenario.expect.backtrace {
        let re = regex::Regex::new(pattern).ok();
        let hit = seen.frames[from.min(seen.frames.len())..]
            .iter()
            .position(|f| re.as_ref().is_some_and(|re| re.is_match(f)))
            .map(|i| from + i);
        seen.frame_matches.push(FrameMatch {
            pattern: pattern.clone(),
            frame: hit.map(|i| seen.frames[i].clone()),
        });
        match hit {
            Some(i) => from = i + 1,
            None => errors.push(DumpError::FrameMissing {
                pattern: pattern.clone(),
                frames: format!("{} ({})", seen.frames.join(" < "), seen.end),
            }),
        }
    }
    if let Some(want) = &scenario.expect.task {
        let got = seen
            .task
            .as_ref()
            .map_or("an unreadable task".to_string(), |t| t.comm.clone());
        let whole = regex::Regex::new(&format!("^(?:{want})$"));
        if !whole.is_ok_and(|re| re.is_match(&got)) {
            errors.push(DumpError::WrongTask {
                want: want.clone(),
                got,
            });
        }
    }
    if scenario.trigger.needs_crasher() && !seen.modules.iter().any(|m| m == CRASHER_MODULE) {
        errors.push(DumpError::ModuleMissing(CRASHER_MODULE.into()));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(yaml: &str) -> Scenario {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.yaml");
        std::fs::write(&path, yaml).unwrap();
        crate::spec::scenario::from_file(&path).unwrap()
    }

    fn seen() -> DeepSeen {
        DeepSeen {
            crashed_cpu: Some(1),
            frames: [
                "kdrill_oops+0x10/0x1c [crasher]",
                "kdrill_write.cold+0x11/0x75 [crasher]",
                "proc_reg_write+0x56/0xa0",
                "vfs_write+0xc7/0x3f0",
            ]
            .map(String::from)
            .to_vec(),
            end: "entered from user mode at 0x47b7a0".into(),
            frame_matches: Vec::new(),
            task: Some(TaskSeen {
                pid: 124,
                comm: "sh".into(),
                from: "task_struct".into(),
            }),
            modules: vec!["crasher".into(), "ext4".into()],
        }
    }

    const OOPS: &str = "id: t\ndescription: d\ntrigger: crasher\ncrasher: oops\nexpect:\n  log: [x]\n  task: sh\n  backtrace:\n";

    #[test]
    fn frames_match_in_order_with_gaps() {
        let s = scenario(&format!(
            "{OOPS}    - '^kdrill_oops\\+'\n    - '^vfs_write\\+'\n"
        ));
        let mut got = seen();
        assert!(check(&s, &mut got).is_empty());
        assert_eq!(
            got.frame_matches[1].frame.as_deref(),
            Some("vfs_write+0xc7/0x3f0")
        );
    }

    #[test]
    fn a_frame_out_of_order_or_missing_fails_with_its_kind() {
        let s = scenario(&format!(
            "{OOPS}    - '^vfs_write\\+'\n    - '^kdrill_oops\\+'\n"
        ));
        let errors = check(&s, &mut seen());
        assert_eq!(errors.len(), 1);
        assert!(matches!(errors[0], DumpError::FrameMissing { .. }));
        assert!(
            errors[0].to_string().contains("`^kdrill_oops\\+`"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn wrong_task_and_missing_crasher_fail() {
        let s = scenario(&OOPS.replace("task: sh", "task: init"));
        let mut got = seen();
        got.modules = vec!["ext4".into()];
        let errors = check(&s, &mut got);
        assert!(
            matches!(
                &errors[..],
                [DumpError::WrongTask { .. }, DumpError::ModuleMissing(_)]
            ),
            "{errors:?}"
        );
    }

    #[test]
    fn comm_from_the_log_by_pid() {
        let log = "[ 3.5] CPU: 0 UID: 0 PID: 174 Comm: sh Not tainted 6.12\n\
                   [ 3.6] CPU: 1 PID: 12 Comm: kworker/1:0 Tainted\n";
        assert_eq!(comm_in_log(log, 174).as_deref(), Some("sh"));
        assert_eq!(comm_in_log(log, 12).as_deref(), Some("kworker/1:0"));
        assert_eq!(comm_in_log(log, 1), None);
    }
}
