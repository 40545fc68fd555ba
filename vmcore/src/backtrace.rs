//! Kernel stack unwinding with ORC, as the kernel's `arch/x86/kernel/unwind_orc.c` does it,
//! and the frames symbolised as its oops traces print them.
//!
//! A running CPU starts from its `NT_PRSTATUS` registers (a full `pt_regs`, so the first
//! address is looked up as is); a sleeping task from `thread.sp`, which points at its
//! `struct inactive_task_frame` (`bp`, `ret_addr`, the stack after it). Each step finds the
//! ORC entry of the address (minus one after a call, so a call to a `noreturn` function
//! finds its caller's layout), computes the caller's stack pointer from `sp_reg` +
//! `sp_offset`, then its address (`CALL`: the return address below that stack pointer;
//! `REGS`: a whole `pt_regs` there; `REGS_PARTIAL`: an iret frame) and frame pointer. The
//! walk ends at an `END_OF_STACK` entry or user-mode registers; a page the dump lacks ends it
//! early with the missing address named (`partial`), never with a guess. Return addresses
//! are symbolised by the call they follow (`%pB`: address - 1, offset + 1).

use std::collections::HashSet;

use serde::Serialize;

use crate::error::Result;
use crate::kernel::is_missing;
use crate::memory::KernelMemory;
use crate::orc::{self, Entry, Kind, Reg};
use crate::regs::Registers;
use crate::symbols::Location;

/// No real kernel stack is this deep (Debian's stacks are 16 KiB, IRQ and NMI stacks on top).
const MAX_FRAMES: usize = 256;
/// `offsetof(struct pt_regs, ip)` and friends, in 8-byte slots (the order of `Registers`).
const PT_BP: usize = 4;
const PT_R10: usize = 7;
const PT_AX: usize = 10;
const PT_DX: usize = 12;
const PT_DI: usize = 14;
const PT_R13: usize = 2;
const PT_IP: u64 = 16 * 8;
const PT_CS: u64 = 17 * 8;
const PT_SP: u64 = 19 * 8;

/// One frame of a backtrace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Frame {
    #[serde(serialize_with = "crate::hex::addr")]
    pub ip: u64,
    #[serde(serialize_with = "crate::hex::addr")]
    pub sp: u64,
    /// The function, as `%pS`/`%pB` print it; `None` for an address no symbol covers.
    pub location: Option<Location>,
    /// The frame's registers came from an exception, interrupt or NMI frame (`pt_regs`).
    pub interrupted: bool,
    /// No ORC entry covered the caller's address: the frame was guessed from the frame
    /// pointer, as the kernel does for generated code.
    pub guessed: bool,
}

impl Frame {
    /// `function+0xoff/0xsize [module]`, or the bare address.
    pub fn describe(&self) -> String {
        match &self.location {
            Some(l) => l.to_string(),
            None => format!("{:#x}", self.ip),
        }
    }
}

/// How a walk ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum End {
    /// An `END_OF_STACK` entry: the bottom of a kernel stack.
    EndOfStack,
    /// Registers saved on entry from user mode: the kernel stack ends there.
    UserMode {
        #[serde(serialize_with = "crate::hex::addr")]
        ip: u64,
        #[serde(serialize_with = "crate::hex::addr")]
        sp: u64,
    },
    /// A page the dump lacks; the frames before it stand.
    Missing { reason: String },
    /// The unwind data led nowhere (an address without ORC or symbol, an undefined entry).
    Stopped { reason: String },
    /// kdrill cannot read the unwind data (an ORC format it does not know); the frames
    /// before stand.
    Unsupported { reason: String },
}

/// A walk's frames and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Walk {
    pub frames: Vec<Frame>,
    pub end: End,
}

/// What unwinding needs from the reader: memory, the ORC entry for an address, symbols.
pub(crate) trait Unwinder {
    fn mem(&mut self) -> &mut dyn KernelMemory;
    fn orc(&mut self, ip: u64) -> Result<Option<Entry>>;
    fn locate(&self, ip: u64) -> Option<Location>;
}

/// Where the current frame's `pt_regs` are.
#[derive(Clone, Copy)]
enum RegsAt {
    /// The registers the CPU saved (`State::saved`).
    Saved,
    Stack(u64),
}

struct State {
    saved: Registers,
    ip: u64,
    sp: u64,
    bp: u64,
    signal: bool,
    regs: Option<RegsAt>,
    full_regs: bool,
    prev_regs: Option<RegsAt>,
}

fn slot(u: &mut dyn Unwinder, s: &State, at: RegsAt, index: usize) -> Result<u64> {
    match at {
        RegsAt::Saved => Ok(s.saved.values()[index]),
        RegsAt::Stack(a) => u.mem().read_u64(a.wrapping_add(index as u64 * 8)),
    }
}

/// The kernel's `get_reg()`: a register of the last `pt_regs`, when there is one.
fn get_reg(u: &mut dyn Unwinder, s: &State, index: usize) -> Result<Option<u64>> {
    let at = if s.full_regs { s.regs } else { s.prev_regs };
    match (s.regs, at) {
        (Some(_), Some(at)) => slot(u, s, at, index).map(Some),
        _ => Ok(None),
    }
}

/// Unwinds from registers saved by a running CPU.
pub(crate) fn from_registers(u: &mut dyn Unwinder, regs: &Registers) -> Walk {
    if regs.user_mode() {
        return Walk {
            frames: Vec::new(),
            end: End::UserMode {
                ip: regs.rip,
                sp: regs.rsp,
            },
        };
    }
    let state = State {
        saved: *regs,
        ip: regs.rip,
        sp: regs.rsp,
        bp: regs.rbp,
        signal: true,
        regs: Some(RegsAt::Saved),
        full_regs: true,
        prev_regs: None,
    };
    walk(u, state, true)
}

/// Unwinds a task that is not running, from its `inactive_task_frame` at `thread_sp`.
pub(crate) fn from_switch_frame(
    u: &mut dyn Unwinder,
    thread_sp: u64,
    frame_size: u64,
    bp_off: u64,
    ret_off: u64,
    ret_from_fork: Option<u64>,
) -> Walk {
    let read = |u: &mut dyn Unwinder, at| u.mem().read_u64(at);
    let (bp, ip) = match (
        read(u, thread_sp.wrapping_add(bp_off)),
        read(u, thread_sp.wrapping_add(ret_off)),
    ) {
        (Ok(bp), Ok(ip)) => (bp, ip),
        (Err(e), _) | (_, Err(e)) => return stopped(Vec::new(), e),
    };
    let state = State {
        saved: Registers::from_values([0; 27]),
        ip,
        sp: thread_sp.wrapping_add(frame_size),
        bp,
        signal: Some(ip) == ret_from_fork,
        regs: None,
        full_regs: false,
        prev_regs: None,
    };
    walk(u, state, false)
}

fn stopped(frames: Vec<Frame>, e: crate::Error) -> Walk {
    let end = match e {
        crate::Error::Unsupported(reason) => End::Unsupported { reason },
        e if is_missing(&e) => End::Missing {
            reason: e.to_string(),
        },
        e => End::Stopped {
            reason: e.to_string(),
        },
    };
    Walk { frames, end }
}

fn walk(u: &mut dyn Unwinder, mut s: State, mut interrupted: bool) -> Walk {
    let mut frames: Vec<Frame> = Vec::new();
    let mut seen = HashSet::new();
    let mut guessed = false;
    loop {
        // The frame itself: a return address is shown as the call it follows.
        let location = if s.signal {
            u.locate(s.ip)
        } else {
            u.locate(s.ip.wrapping_sub(1)).map(|l| Location {
                offset: l.offset.saturating_add(1),
                ..l
            })
        };
        frames.push(Frame {
            ip: s.ip,
            sp: s.sp,
            location,
            interrupted,
            guessed,
        });
        if frames.len() >= MAX_FRAMES || !seen.insert((s.ip, s.sp)) {
            let reason = format!("the unwind repeats or passes {MAX_FRAMES} frames");
            return Walk {
                frames,
                end: End::Stopped { reason },
            };
        }
        match step(u, &mut s) {
            Ok(Step::Next { regs, guess }) => {
                interrupted = regs;
                guessed = guess;
            }
            Ok(Step::End(end)) => return Walk { frames, end },
            Err(e) => return stopped(frames, e),
        }
    }
}

enum Step {
    Next { regs: bool, guess: bool },
    End(End),
}

/// One step of the kernel's `unwind_next_frame()`.
fn step(u: &mut dyn Unwinder, s: &mut State) -> Result<Step> {
    let lookup = if s.signal { s.ip } else { s.ip.wrapping_sub(1) };
    let (orc, guess) = match u.orc(lookup)? {
        // A function objtool was told to skip (`STACK_FRAME_NON_STANDARD`: 6.12's
        // `__crash_kexec`, where the CPU's registers are saved) has no ORC data.
        Some(e) if e.kind == Kind::Undefined => return scan_for_caller(u, s),
        Some(e) => (e, false),
        None if u.locate(lookup).is_some() => (orc::FRAME_POINTER_GUESS, true),
        None => {
            return Ok(Step::End(End::Stopped {
                reason: format!("no ORC data or symbol covers {:#x}", s.ip),
            }))
        }
    };
    match orc.kind {
        Kind::Undefined => {
            return Ok(Step::End(End::Stopped {
                reason: format!("the ORC entry of {:#x} is undefined", s.ip),
            }))
        }
        Kind::EndOfStack => return Ok(Step::End(End::EndOfStack)),
        _ => {}
    }
    let off = orc.sp_offset as i64 as u64;
    let (mut sp, indirect) = match orc.sp_reg {
        Reg::Sp => (s.sp.wrapping_add(off), false),
        Reg::Bp => (s.bp.wrapping_add(off), false),
        Reg::SpIndirect => (s.sp, true),
        Reg::BpIndirect => (s.bp.wrapping_add(off), true),
        // Registers that may hold the stack pointer for a while (a DRAP stack realignment):
        // read from the last pt_regs; AX since 7.1.
        reg @ (Reg::R10 | Reg::R13 | Reg::Di | Reg::Dx | Reg::Ax) => {
            let index = match reg {
                Reg::R10 => PT_R10,
                Reg::R13 => PT_R13,
                Reg::Di => PT_DI,
                Reg::Ax => PT_AX,
                _ => PT_DX,
            };
            match get_reg(u, s, index)? {
                Some(v) => (v, false),
                None => {
                    return Ok(Step::End(End::Stopped {
                        reason: format!("ORC needs register {reg} at {:#x}, not saved", s.ip),
                    }))
                }
            }
        }
        reg => {
            return Ok(Step::End(End::Stopped {
                reason: format!("unknown ORC sp_reg {reg} at {:#x}", s.ip),
            }))
        }
    };
    if indirect {
        sp = u.mem().read_u64(sp)?;
        if orc.sp_reg == Reg::SpIndirect {
            sp = sp.wrapping_add(off);
        }
    }
    let regs = match orc.kind {
        Kind::Call => {
            s.ip = u.mem().read_u64(sp.wrapping_sub(8))?;
            s.sp = sp;
            s.regs = None;
            s.prev_regs = None;
            false
        }
        Kind::Regs => {
            s.ip = u.mem().read_u64(sp.wrapping_add(PT_IP))?;
            s.sp = u.mem().read_u64(sp.wrapping_add(PT_SP))?;
            s.regs = Some(RegsAt::Stack(sp));
            s.full_regs = true;
            s.prev_regs = None;
            true
        }
        _ => {
            // An iret frame: ip, cs, flags, sp, ss at sp.
            s.ip = u.mem().read_u64(sp)?;
            s.sp = u.mem().read_u64(sp.wrapping_add(24))?;
            s.prev_regs = s.regs;
            s.regs = Some(RegsAt::Stack(sp.wrapping_sub(PT_IP)));
            s.full_regs = false;
            true
        }
    };
    s.signal = orc.signal;
    // Registers saved on entry from user mode end the kernel stack (the kernel checks
    // `user_mode(state->regs)` at its next step; the user frame is not a kernel frame).
    let cs_at = if orc.kind == Kind::Regs {
        sp.wrapping_add(PT_CS)
    } else {
        sp.wrapping_add(8)
    };
    if regs && u.mem().read_u64(cs_at)? & 3 == 3 {
        return Ok(Step::End(End::UserMode { ip: s.ip, sp: s.sp }));
    }
    let boff = orc.bp_offset as i64 as u64;
    match orc.bp_reg {
        Reg::Undefined => {
            if let Some(bp) = get_reg(u, s, PT_BP)? {
                s.bp = bp;
            }
        }
        Reg::PrevSp => s.bp = u.mem().read_u64(sp.wrapping_add(boff))?,
        Reg::Bp => s.bp = u.mem().read_u64(s.bp.wrapping_add(boff))?,
        reg => {
            return Ok(Step::End(End::Stopped {
                reason: format!("unknown ORC bp_reg {reg}"),
            }))
        }
    }
    Ok(Step::Next { regs, guess })
}

/// Slots of the stack searched for the caller's return address.
const SCAN_SLOTS: u64 = 64;

/// Without ORC data for a function, finds its caller as the kernel's `?` scan would, but
/// strictly: the first stack slot above `sp` that holds a return address whose `call rel32`
/// targets the start of the function `ip` is in. The frame is marked as guessed.
fn scan_for_caller(u: &mut dyn Unwinder, s: &mut State) -> Result<Step> {
    let undefined = || {
        Ok(Step::End(End::Stopped {
            reason: format!(
                "no ORC data for {:#x} and no call to its function on the stack",
                s.ip
            ),
        }))
    };
    let Some(here) = u.locate(s.ip) else {
        return undefined();
    };
    let start = s.ip - here.offset;
    for i in 0..SCAN_SLOTS {
        let slot = s.sp.wrapping_add(8 * i);
        let ret = u.mem().read_u64(slot)?;
        if u.locate(ret.wrapping_sub(1)).is_none() {
            continue;
        }
        let mut call = [0u8; 5];
        if u.mem().read_virt(ret.wrapping_sub(5), &mut call).is_err() || call[0] != 0xe8 {
            continue;
        }
        let rel = i32::from_le_bytes([call[1], call[2], call[3], call[4]]);
        if ret.wrapping_add(rel as i64 as u64) == start {
            s.ip = ret;
            s.sp = slot.wrapping_add(8);
            s.regs = None;
            s.prev_regs = None;
            s.signal = false;
            return Ok(Step::Next {
                regs: false,
                guess: true,
            });
        }
    }
    undefined()
}
