//! The task list: every thread of every process, and each CPU's idle task, with layouts from
//! BTF (`task_struct`, `signal_struct`).
//!
//! Processes are `init_task.tasks` (thread-group leaders); each one's threads are its
//! `signal->thread_head` list (`task_struct.thread_node`, Linux 3.14 on). The idle tasks of
//! CPUs other than 0 are in no list: they are each CPU's `runqueues.idle`. A task is
//! running on a CPU when it is that CPU's current task (`current_task`, or
//! `pcpu_hot.current_task` from 6.2 to 6.14). The state letter is `ps`'s, from `__state`
//! (`state` before 5.14) and `exit_state` (`fs/proc/array.c`'s `task_state_array`).

use std::collections::HashSet;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::kernel::{is_missing, Kernel};

/// `TASK_COMM_LEN`.
const COMM_LEN: usize = 16;
/// `PID_MAX_LIMIT` on 64-bit: no kernel has more tasks.
const MAX_TASKS: usize = 4 << 20;
/// `PF_KTHREAD`.
const PF_KTHREAD: u32 = 0x0020_0000;

/// One task, as `kdrill inspect --tasks` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Task {
    pub pid: u32,
    /// The thread group (process) id.
    pub tgid: u32,
    /// The parent's tgid (`getppid()`), 0 for the idle tasks and the first kernel threads.
    pub ppid: u32,
    pub comm: String,
    /// `ps`'s state letter: R, S, D, T, t, X, Z, P, I.
    pub state: char,
    /// The CPU it is running on, when it is one's current task.
    pub cpu: Option<u32>,
    pub kernel_thread: bool,
    /// The `task_struct`.
    #[serde(serialize_with = "crate::hex::addr")]
    pub address: u64,
}

/// The tasks, and why the list is partial if a page was missing.
#[derive(Debug, Clone, Serialize)]
pub struct TaskList {
    pub tasks: Vec<Task>,
    pub partial: Option<String>,
}

pub(crate) struct Offsets {
    tasks: u64,
    pid: u64,
    tgid: u64,
    comm: u64,
    state: u64,
    exit_state: u64,
    flags: u64,
    real_parent: u64,
    signal: u64,
    thread_node: u64,
    thread_head: u64,
}

impl Offsets {
    pub(crate) fn new(k: &Kernel<'_>) -> Result<Offsets> {
        let btf = k.btf()?;
        let t = |m: &str| btf.offset("task_struct", m);
        Ok(Offsets {
            tasks: t("tasks")?,
            pid: t("pid")?,
            tgid: t("tgid")?,
            comm: t("comm")?,
            state: t("__state").or_else(|_| t("state"))?,
            exit_state: t("exit_state")?,
            flags: t("flags")?,
            real_parent: t("real_parent")?,
            signal: t("signal")?,
            thread_node: t("thread_node")?,
            thread_head: btf.offset("signal_struct", "thread_head")?,
        })
    }
}

/// `ps`'s letter for a task's state (`get_task_state()`; TASK_REPORT bits, then idle).
fn state_letter(state: u32, exit_state: u32) -> char {
    const LETTERS: [char; 8] = ['S', 'D', 'T', 't', 'X', 'Z', 'P', 'I'];
    // TASK_IDLE is TASK_UNINTERRUPTIBLE | TASK_NOLOAD (0x402): shown as I.
    if state & 0x402 == 0x402 && exit_state == 0 {
        return 'I';
    }
    let bits = (state & 0x7f) | exit_state;
    if bits == 0 {
        return 'R';
    }
    // The highest bit decides, as the kernel's fls().
    LETTERS[((31 - bits.leading_zeros()) as usize).min(7)]
}

/// Reads one task.
fn task(k: &mut Kernel<'_>, o: &Offsets, at: u64, current: &[(u32, u64)]) -> Result<Task> {
    let pid = k.u32(at.wrapping_add(o.pid))?;
    let tgid = k.u32(at.wrapping_add(o.tgid))?;
    let parent = k.u64(at.wrapping_add(o.real_parent))?;
    let ppid = if parent == 0 || parent == at {
        0
    } else {
        k.u32(parent.wrapping_add(o.tgid))?
    };
    let state = k.u32(at.wrapping_add(o.state))?;
    let exit_state = k.u32(at.wrapping_add(o.exit_state))?;
    let flags = k.u32(at.wrapping_add(o.flags))?;
    Ok(Task {
        pid,
        tgid,
        ppid: if pid == 0 { 0 } else { ppid },
        comm: k.string(at.wrapping_add(o.comm), COMM_LEN)?,
        state: state_letter(state, exit_state),
        cpu: current.iter().find(|&&(_, t)| t == at).map(|&(c, _)| c),
        kernel_thread: flags & PF_KTHREAD != 0,
        address: at,
    })
}

/// Every task; `cpus` are the CPUs whose current (and idle) task is looked up.
pub(crate) fn read(k: &mut Kernel<'_>, cpus: &[u32]) -> Result<TaskList> {
    let o = Offsets::new(k)?;
    let init = k.syms.need("init_task")?;
    let mut current = Vec::new();
    let mut idle = Vec::new();
    let rq_idle = k.btf()?.offset("rq", "idle").ok();
    for &cpu in cpus {
        if let Ok(t) = k.current_task(cpu) {
            current.push((cpu, t));
        }
        if let (Some(off), Ok(rq)) = (rq_idle, k.per_cpu("runqueues", cpu)) {
            if let Ok(t) = k.u64(rq.wrapping_add(off)) {
                idle.push(t);
            }
        }
    }
    let mut w = Walker {
        o: &o,
        current: &current,
        seen: HashSet::new(),
        list: TaskList {
            tasks: Vec::new(),
            partial: None,
        },
        missing: Vec::new(),
    };
    w.task(k, init)?;
    for &t in &idle {
        if t != 0 {
            w.task(k, t)?;
        }
    }
    // Forward from init_task; if a link is lost, back from init_task to the gap.
    let head = init.wrapping_add(o.tasks);
    for (dir, link) in [("next", 0u64), ("prev", 8)] {
        let mut node = match k.u64(head.wrapping_add(link)) {
            Ok(n) => n,
            Err(e) if is_missing(&e) => {
                w.missing.push(format!("init_task.tasks.{dir}: {e}"));
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut steps = 0usize;
        let mut broken = false;
        while node != head {
            steps += 1;
            if steps > MAX_TASKS {
                return Err(Error::Corrupt(
                    "the task list does not come back to init_task".into(),
                ));
            }
            let leader = node.wrapping_sub(o.tasks);
            if link == 8 && w.seen.contains(&leader) {
                break; // met the forward walk
            }
            w.process(k, leader)?;
            match k.u64(node.wrapping_add(link)) {
                Ok(n) => node = n,
                Err(e) if is_missing(&e) => {
                    w.missing
                        .push(format!("the task list's {dir} link at {node:#x}: {e}"));
                    broken = true;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        if !broken {
            break;
        }
    }
    let mut list = w.list;
    if !w.missing.is_empty() {
        list.partial = Some(format!(
            "{} tasks read; the dump lacks pages of others: {}",
            list.tasks.len(),
            w.missing.join("; ")
        ));
    }
    Ok(list)
}

/// The walk's state: what was read, what was missing.
struct Walker<'a> {
    o: &'a Offsets,
    current: &'a [(u32, u64)],
    seen: HashSet<u64>,
    list: TaskList,
    missing: Vec<String>,
}

impl Walker<'_> {
    /// Adds one task; a missing page is noted, not fatal.
    fn task(&mut self, k: &mut Kernel<'_>, at: u64) -> Result<()> {
        if self.list.tasks.len() >= MAX_TASKS {
            return Err(Error::Corrupt(format!(
                "the task list runs past {MAX_TASKS} tasks (a loop?)"
            )));
        }
        if !self.seen.insert(at) {
            return Ok(());
        }
        match task(k, self.o, at, self.current) {
            Ok(t) => self.list.tasks.push(t),
            Err(e) if is_missing(&e) => self.missing.push(format!("task {at:#x}: {e}")),
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// A thread-group leader and its threads.
    fn process(&mut self, k: &mut Kernel<'_>, leader: u64) -> Result<()> {
        self.task(k, leader)?;
        let threads = (|| -> Result<Vec<u64>> {
            let head = k
                .u64(leader.wrapping_add(self.o.signal))?
                .wrapping_add(self.o.thread_head);
            let mut node = k.u64(head)?;
            let mut out = Vec::new();
            while node != head {
                if out.len() >= MAX_TASKS {
                    return Err(Error::Corrupt(format!("the threads of {leader:#x} loop")));
                }
                out.push(node.wrapping_sub(self.o.thread_node));
                node = k.u64(node)?;
            }
            Ok(out)
        })();
        match threads {
            Ok(ts) => {
                for t in ts {
                    self.task(k, t)?;
                }
            }
            Err(e) if is_missing(&e) => self
                .missing
                .push(format!("the threads of task {leader:#x}: {e}")),
            Err(e) => return Err(e),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_letters_follow_ps() {
        assert_eq!(state_letter(0, 0), 'R');
        assert_eq!(state_letter(1, 0), 'S');
        assert_eq!(state_letter(2, 0), 'D');
        assert_eq!(state_letter(0x402, 0), 'I');
        assert_eq!(state_letter(4, 0), 'T');
        assert_eq!(state_letter(0, 32), 'Z');
        assert_eq!(state_letter(0x40, 0), 'P');
    }
}
