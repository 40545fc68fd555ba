//! Each CPU's registers from its `NT_PRSTATUS` note (x86_64 `struct elf_prstatus`).
//!
//! Layout from the kernel's `include/linux/elfcore.h` and `arch/x86/include/asm/user_64.h`:
//! `pr_pid` at byte 32, `pr_reg` (27 `unsigned long`s in `struct user_regs_struct` order) at
//! byte 112, 336 bytes in all. The notes come in the order the capture kernel (or QEMU)
//! wrote them, which is not always CPU number: a kdump skips CPUs that saved nothing, so the
//! CPU of each note is found by matching it against the per-CPU `crash_notes` buffers in
//! memory (see `analysis.rs`); QEMU writes one note per vCPU in CPU order with
//! `pr_pid` = CPU index + 1.

use serde::Serialize;

use crate::error::{Error, Result};

/// Bytes of an x86_64 `elf_prstatus`.
pub(crate) const PRSTATUS_SIZE: usize = 336;
const PID_AT: usize = 32;
const REGS_AT: usize = 112;

/// The register names in `struct user_regs_struct` order.
pub const REG_NAMES: [&str; 27] = [
    "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx", "rsi",
    "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs",
    "gs",
];

/// The general registers one CPU saved at the crash (`struct user_regs_struct`); serialized as
/// a map from [`REG_NAMES`] to `"0x…"` strings (see `hex.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registers {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub orig_rax: u64,
    pub rip: u64,
    pub cs: u64,
    pub eflags: u64,
    pub rsp: u64,
    pub ss: u64,
    pub fs_base: u64,
    pub gs_base: u64,
    pub ds: u64,
    pub es: u64,
    pub fs: u64,
    pub gs: u64,
}

impl Registers {
    /// The registers in `struct user_regs_struct` order, beside [`REG_NAMES`].
    pub fn values(&self) -> [u64; 27] {
        [
            self.r15,
            self.r14,
            self.r13,
            self.r12,
            self.rbp,
            self.rbx,
            self.r11,
            self.r10,
            self.r9,
            self.r8,
            self.rax,
            self.rcx,
            self.rdx,
            self.rsi,
            self.rdi,
            self.orig_rax,
            self.rip,
            self.cs,
            self.eflags,
            self.rsp,
            self.ss,
            self.fs_base,
            self.gs_base,
            self.ds,
            self.es,
            self.fs,
            self.gs,
        ]
    }

    pub(crate) fn from_values(v: [u64; 27]) -> Registers {
        Registers {
            r15: v[0],
            r14: v[1],
            r13: v[2],
            r12: v[3],
            rbp: v[4],
            rbx: v[5],
            r11: v[6],
            r10: v[7],
            r9: v[8],
            r8: v[9],
            rax: v[10],
            rcx: v[11],
            rdx: v[12],
            rsi: v[13],
            rdi: v[14],
            orig_rax: v[15],
            rip: v[16],
            cs: v[17],
            eflags: v[18],
            rsp: v[19],
            ss: v[20],
            fs_base: v[21],
            gs_base: v[22],
            ds: v[23],
            es: v[24],
            fs: v[25],
            gs: v[26],
        }
    }

    /// A CPU stopped in user mode (the low two bits of CS are its privilege level).
    pub fn user_mode(&self) -> bool {
        self.cs & 3 == 3
    }
}

impl Serialize for Registers {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(REG_NAMES.len()))?;
        for (name, v) in REG_NAMES.iter().zip(self.values()) {
            map.serialize_entry(name, &format_args!("{v:#x}").to_string())?;
        }
        map.end()
    }
}

/// How a note's CPU number was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CpuSource {
    /// The note's bytes equal the per-CPU `crash_notes` buffer of that CPU in memory.
    CrashNotes,
    /// A QEMU dump: one note per vCPU in CPU order, `pr_pid` = CPU index + 1.
    QemuOrder,
    /// Nothing better: the note's position among the notes.
    NoteOrder,
}

/// One CPU's saved state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CpuRegisters {
    /// The CPU number.
    pub cpu: u32,
    /// How `cpu` was decided.
    pub cpu_from: CpuSource,
    /// The note's position among the dump's `NT_PRSTATUS` notes.
    pub note: usize,
    /// `pr_pid`: the pid of the task the CPU ran (0 for the idle task) in a kdump; QEMU writes
    /// its vCPU index + 1 there, which is no pid (`pr_pid` in JSON).
    #[serde(rename = "pr_pid")]
    pub pid: u32,
    pub registers: Registers,
}

/// Parses one `NT_PRSTATUS` body.
pub(crate) fn parse(note: usize, desc: &[u8]) -> Result<(u32, Registers)> {
    if desc.len() < REGS_AT + 27 * 8 {
        return Err(Error::Corrupt(format!(
            "NT_PRSTATUS note {note} is {} bytes, an x86_64 elf_prstatus is {PRSTATUS_SIZE}",
            desc.len()
        )));
    }
    let u64_at = |at: usize| u64::from_le_bytes(desc[at..at + 8].try_into().unwrap());
    let pid = u32::from_le_bytes(desc[PID_AT..PID_AT + 4].try_into().unwrap());
    let mut v = [0u64; 27];
    for (i, slot) in v.iter_mut().enumerate() {
        *slot = u64_at(REGS_AT + i * 8);
    }
    Ok((pid, Registers::from_values(v)))
}

/// Encodes a `NT_PRSTATUS` body, for synthetic dumps.
pub fn encode_prstatus(pid: u32, regs: &Registers) -> Vec<u8> {
    let mut out = vec![0u8; PRSTATUS_SIZE];
    out[PID_AT..PID_AT + 4].copy_from_slice(&pid.to_le_bytes());
    for (i, v) in regs.values().iter().enumerate() {
        out[REGS_AT + i * 8..REGS_AT + i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_a_short_note() {
        let mut v = [0u64; 27];
        for (i, x) in v.iter_mut().enumerate() {
            *x = 0x1000 + i as u64;
        }
        let regs = Registers::from_values(v);
        let bytes = encode_prstatus(124, &regs);
        assert_eq!(bytes.len(), PRSTATUS_SIZE);
        let (pid, back) = parse(0, &bytes).unwrap();
        assert_eq!((pid, back), (124, regs));
        assert_eq!(back.rip, 0x1000 + 16);
        assert_eq!(back.rsp, 0x1000 + 19);
        assert!(!back.user_mode());
        let err = parse(3, &bytes[..200]).unwrap_err();
        assert!(err.to_string().contains("note 3 is 200 bytes"), "{err}");
    }
}
