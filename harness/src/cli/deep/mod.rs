//! `kdrill inspect --bt/--tasks/--modules/--regs`: the deep views of a dump, as text or as
//! JSON values. All reading is `kdrill-vmcore`'s; this only chooses and lays out.
//!
//! `--bt` and `--regs` take an optional CPU selector (`crashed`, `all`, a CPU number). Users of
//! crash and makedumpfile put flags first (`kdrill inspect --bt DUMP`): a value that is no
//! selector but names an existing file or folder (or is `-`) is the dump, not the selector.

mod text;

use std::path::PathBuf;

use anyhow::Context;
use kdrill::exit::Exit;
use kdrill_vmcore::{Backtrace, CpuRegisters, ModuleReport, TaskList, Vmcore};

/// Which CPUs `--bt` or `--regs` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cpus {
    /// The crashed CPU's (every CPU's when no CPU crashed, as in a live QEMU dump).
    Crashed,
    All,
    Cpu(u32),
}

/// What followed `--bt` or `--regs`: a selector, or the dump itself (`kdrill inspect --bt DUMP`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CpuArg {
    Cpus(Cpus),
    Dump(PathBuf),
}

pub fn parse_cpus(s: &str) -> Result<CpuArg, String> {
    match s {
        "crashed" => Ok(CpuArg::Cpus(Cpus::Crashed)),
        "all" => Ok(CpuArg::Cpus(Cpus::All)),
        n if n.parse::<u32>().is_ok() => Ok(CpuArg::Cpus(Cpus::Cpu(n.parse().unwrap_or(0)))),
        path if path == "-" || std::path::Path::new(path).exists() => {
            Ok(CpuArg::Dump(PathBuf::from(path)))
        }
        other => Err(format!(
            "`{other}` is no CPU selector (crashed, all or a CPU number) and no file"
        )),
    }
}

/// The deep views asked for, with the files that supply symbols for old kernels.
#[derive(clap::Args, Debug, Default)]
pub struct DeepArgs {
    /// Print backtraces: `crashed` (the default: the CPU that crashed, or every CPU when none
    /// did, as in a QEMU dump of a live guest), `all`, or CPU N's. A value that is none of these
    /// but an existing file or folder is the dump: `--bt DUMP` means `--bt=crashed DUMP`
    #[arg(long, num_args = 0..=1, default_missing_value = "crashed", value_parser = parse_cpus, value_name = "crashed|all|N")]
    pub bt: Option<CpuArg>,
    /// Print the task list: pid, ppid, CPU if running, state, comm
    #[arg(long)]
    pub tasks: bool,
    /// Print the loaded modules: name, base, size
    #[arg(long)]
    pub modules: bool,
    /// Print the registers each CPU saved in its NT_PRSTATUS note: `all` (the default),
    /// `crashed`, or CPU N's. An existing file or folder after it is the dump, as for --bt
    #[arg(long, num_args = 0..=1, default_missing_value = "all", value_parser = parse_cpus, value_name = "crashed|all|N")]
    pub regs: Option<CpuArg>,
    /// Symbols for kernels before 6.0 (no kallsyms in VMCOREINFO): the kernel's System.map
    #[arg(long, value_name = "FILE")]
    pub system_map: Option<PathBuf>,
    /// Symbols for kernels before 6.0: the kernel's vmlinux (its ELF symbol table is read)
    #[arg(long, value_name = "FILE")]
    pub vmlinux: Option<PathBuf>,
}

impl DeepArgs {
    pub fn any(&self) -> bool {
        self.bt.is_some() || self.tasks || self.modules || self.regs.is_some()
    }

    /// Takes out the dumps `--bt` or `--regs` swallowed as their values (`kdrill inspect --bt
    /// DUMP`), leaving their default selectors.
    pub fn take_dumps(&mut self) -> Vec<PathBuf> {
        let mut dumps = Vec::new();
        for (arg, default) in [(&mut self.bt, Cpus::Crashed), (&mut self.regs, Cpus::All)] {
            if let Some(CpuArg::Dump(p)) = arg {
                dumps.push(std::mem::take(p));
                *arg = Some(CpuArg::Cpus(default));
            }
        }
        dumps
    }

    fn bt(&self) -> Option<Cpus> {
        selector(&self.bt)
    }

    fn regs(&self) -> Option<Cpus> {
        selector(&self.regs)
    }
}

fn selector(arg: &Option<CpuArg>) -> Option<Cpus> {
    match arg {
        Some(CpuArg::Cpus(c)) => Some(*c),
        Some(CpuArg::Dump(_)) => Some(Cpus::Crashed),
        None => None,
    }
}

/// A CPU number the dump does not have is a usage error (64), not a fault of the dump:
/// "no CPU 5; this dump has CPUs 0-1".
pub fn check_cpus(dump: &Vmcore, args: &DeepArgs) -> anyhow::Result<()> {
    let asked: Vec<u32> = [args.bt(), args.regs()]
        .into_iter()
        .filter_map(|c| match c {
            Some(Cpus::Cpu(n)) => Some(n),
            _ => None,
        })
        .collect();
    if asked.is_empty() {
        return Ok(());
    }
    // Without readable notes the view itself says why; there is nothing to check against.
    let Ok(regs) = dump.cpu_registers() else {
        return Ok(());
    };
    let have: Vec<u32> = regs.iter().map(|c| c.cpu).collect();
    match asked.into_iter().find(|n| !have.contains(n)) {
        Some(n) => Err(anyhow::Error::new(Exit::usage(format!(
            "no CPU {n}; {}",
            cpu_list(&have)
        )))),
        None => Ok(()),
    }
}

/// "this dump has CPUs 0-1, 4", from the CPUs whose notes the dump holds.
fn cpu_list(cpus: &[u32]) -> String {
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for c in sorted {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == c => *end = c,
            _ => runs.push((c, c)),
        }
    }
    let text: Vec<String> = runs
        .iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    match cpus.len() {
        0 => "this dump saved no CPU's registers".to_string(),
        1 => format!("this dump has CPU {}", text.join(", ")),
        _ => format!("this dump has CPUs {}", text.join(", ")),
    }
}

/// What the deep views read; each part is a value or the error that stopped it (in JSON:
/// the value, or `{"error": "…"}`).
#[derive(serde::Serialize, Default)]
pub struct Deep {
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "part")]
    pub backtraces: Option<Result<Vec<Backtrace>, String>>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "part")]
    pub tasks: Option<Result<TaskList, String>>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "part")]
    pub modules: Option<Result<ModuleReport, String>>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "part")]
    pub registers: Option<Result<Vec<CpuRegisters>, String>>,
}

fn part<T: serde::Serialize, S: serde::Serializer>(
    v: &Option<Result<T, String>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    #[derive(serde::Serialize)]
    struct Failed<'a> {
        error: &'a str,
    }
    match v {
        Some(Ok(t)) => t.serialize(s),
        Some(Err(e)) => serde::Serialize::serialize(&Failed { error: e }, s),
        None => s.serialize_none(),
    }
}

fn chain(e: &kdrill_vmcore::Error) -> String {
    super::inspect::message_chain(e)
}

/// Supplies the symbol files, if any.
pub fn load_symbols(dump: &mut Vmcore, args: &DeepArgs) -> anyhow::Result<()> {
    if let Some(map) = &args.system_map {
        let text = std::fs::read(map).with_context(|| format!("cannot read {}", map.display()))?;
        dump.use_system_map(&text)
            .with_context(|| format!("cannot use {} for this dump", map.display()))?;
    }
    if let Some(vmlinux) = &args.vmlinux {
        let file = std::fs::File::open(vmlinux)
            .with_context(|| format!("cannot open {}", vmlinux.display()))?;
        dump.use_vmlinux(file)
            .with_context(|| format!("cannot use {} for this dump", vmlinux.display()))?;
    }
    Ok(())
}

/// Reads what `args` ask for.
pub fn read(dump: &Vmcore, args: &DeepArgs) -> Deep {
    let mut deep = Deep::default();
    if let Some(which) = args.bt() {
        deep.backtraces = Some(backtraces(dump, which).map_err(|e| chain(&e)));
    }
    if args.tasks {
        deep.tasks = Some(dump.tasks().map_err(|e| chain(&e)));
    }
    if args.modules {
        deep.modules = Some(dump.modules().map_err(|e| chain(&e)));
    }
    if let Some(which) = args.regs() {
        deep.registers = Some(registers(dump, which).map_err(|e| chain(&e)));
    }
    deep
}

/// The CPUs `which` selects, of those whose notes the dump holds.
fn chosen(dump: &Vmcore, which: Cpus) -> kdrill_vmcore::Result<Vec<u32>> {
    let cpus: Vec<u32> = dump.cpu_registers()?.iter().map(|c| c.cpu).collect();
    Ok(match which {
        Cpus::Cpu(n) => vec![n],
        Cpus::All => cpus,
        Cpus::Crashed => match dump.crashed_cpu()? {
            Some(c) => vec![c],
            None => cpus,
        },
    })
}

fn backtraces(dump: &Vmcore, which: Cpus) -> kdrill_vmcore::Result<Vec<Backtrace>> {
    chosen(dump, which)?
        .into_iter()
        .map(|c| dump.backtrace(c))
        .collect()
}

fn registers(dump: &Vmcore, which: Cpus) -> kdrill_vmcore::Result<Vec<CpuRegisters>> {
    let all = dump.cpu_registers()?;
    if which == Cpus::All {
        return Ok(all);
    }
    // `crashed` needs symbols (panic_cpu); without them, every CPU, as when none crashed.
    let keep = chosen(dump, which).unwrap_or_else(|_| all.iter().map(|c| c.cpu).collect());
    Ok(all.into_iter().filter(|c| keep.contains(&c.cpu)).collect())
}

impl Deep {
    /// Whether everything asked for was read whole.
    pub fn complete(&self) -> bool {
        let bt = match &self.backtraces {
            Some(Ok(b)) => b.iter().all(|b| b.partial().is_none()),
            Some(Err(_)) => false,
            None => true,
        };
        let tasks = !matches!(
            &self.tasks,
            Some(Err(_))
                | Some(Ok(TaskList {
                    partial: Some(_),
                    ..
                }))
        );
        let modules = !matches!(
            &self.modules,
            Some(Err(_))
                | Some(Ok(ModuleReport {
                    partial: Some(_),
                    ..
                }))
        );
        bt && tasks && modules && !matches!(self.registers, Some(Err(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_values_and_a_dump_in_their_place() {
        assert_eq!(parse_cpus("all"), Ok(CpuArg::Cpus(Cpus::All)));
        assert_eq!(parse_cpus("crashed"), Ok(CpuArg::Cpus(Cpus::Crashed)));
        assert_eq!(parse_cpus("3"), Ok(CpuArg::Cpus(Cpus::Cpu(3))));
        assert_eq!(parse_cpus("-"), Ok(CpuArg::Dump("-".into())));
        let dir = tempfile::tempdir().unwrap();
        let dump = dir.path().join("vmcore");
        std::fs::write(&dump, "x").unwrap();
        let text = dump.to_str().unwrap();
        assert_eq!(parse_cpus(text), Ok(CpuArg::Dump(dump.clone())));
        let typo = parse_cpus("al").unwrap_err();
        assert!(
            typo.contains("no CPU selector (crashed, all or a CPU number)"),
            "{typo}"
        );
        let mut args = DeepArgs {
            bt: Some(CpuArg::Dump(dump.clone())),
            regs: Some(CpuArg::Cpus(Cpus::Cpu(1))),
            ..Default::default()
        };
        assert_eq!(args.take_dumps(), [dump]);
        assert_eq!(
            (args.bt(), args.regs()),
            (Some(Cpus::Crashed), Some(Cpus::Cpu(1)))
        );
    }

    #[test]
    fn cpu_lists_read_as_ranges() {
        assert_eq!(cpu_list(&[1, 0]), "this dump has CPUs 0-1");
        assert_eq!(
            cpu_list(&[0, 1, 2, 5, 7, 8]),
            "this dump has CPUs 0-2, 5, 7-8"
        );
        assert_eq!(cpu_list(&[3]), "this dump has CPU 3");
    }
}
