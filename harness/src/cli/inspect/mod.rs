//! `kdrill inspect`: print a crash dump's metadata and kernel log (and, with `cli/deep/`,
//! its backtraces, tasks, modules and registers).
//!
//! The reading is all `kdrill-vmcore`'s; `input.rs` finds the file (a crash folder, standard
//! input), `report.rs` lays out the summary and the JSON, this module chooses what to print.
//! With `--dmesg` the output is the log alone, byte for byte what
//! `makedumpfile --dump-dmesg` writes, so the two can be compared with `cmp`.

mod input;
mod report;

use std::io::Write;
use std::path::PathBuf;

use kdrill::exit::Exit;
use kdrill_vmcore::format_dmesg;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Flags may come before or after the dump: `kdrill inspect --bt DUMP` and `kdrill inspect DUMP --bt` \
are the same. A value after --bt or --regs is a CPU selector when it is `crashed`, `all` or a \
number; otherwise it is the dump when a file or folder of that name exists, or when it is `-` \
(a dump named `all` or `3`: write `./all`).

Exit codes: 0 everything asked for was read; 1 the dump opened but part of it could not be read \
(a cut-short or incomplete file, the kernel log, a backtrace, task or module list); 2 not a crash \
dump or nothing in it readable; 3 the file cannot be read (missing, permission); 64 usage (a bad \
flag, a CPU the dump lacks, a folder with several dumps). Under --format json a failure still \
prints a JSON document (schema kdrill-error/1) on stdout.")]
pub struct InspectArgs {
    /// The crash dump: a file (ELF, kdump-compressed, or flattened: makedumpfile -F, QEMU
    /// kdump-*); a crash folder holding one (kdump-tools' /var/crash/<stamp>/ with dump.<stamp>,
    /// kdump-utils' /var/crash/<host>-<date>/ with vmcore); or - for standard input, saved to a
    /// temporary file in $TMPDIR first (the reader needs random access) unless it is a file
    #[arg(value_name = "DUMP")]
    pub dump: Option<PathBuf>,
    /// Print the kernel log instead of the summary, exactly as `makedumpfile --dump-dmesg` writes it
    /// (with --format json: add the log records to the summary)
    #[arg(long)]
    pub dmesg: bool,
    /// Output format (JSON: schema kdrill-inspect/1; addresses and register values are
    /// "0x…" strings, a log record's timestamp_ns a decimal string)
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    #[command(flatten)]
    pub deep: super::deep::DeepArgs,
}

/// The one dump of the command line: the argument, or what `--bt`/`--regs` took as their value.
fn the_dump(args: &mut InspectArgs) -> anyhow::Result<PathBuf> {
    let mut dumps: Vec<PathBuf> = args.dump.take().into_iter().collect();
    dumps.extend(args.deep.take_dumps());
    match dumps.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(anyhow::Error::new(Exit::usage(
            "no dump given: kdrill inspect DUMP (a dump file, a crash folder, or - for standard input)",
        ))),
        [..] => Err(anyhow::Error::new(Exit::usage(format!(
            "several dumps given ({}): kdrill inspect reads one",
            dumps
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )))),
    }
}

/// Exit codes: see `report::exit_code` for a dump that opened, `input::open` for one that did not.
pub fn run(mut args: InspectArgs) -> anyhow::Result<i32> {
    let path = the_dump(&mut args)?;
    let input = input::resolve(&path)?;
    let shown = input.shown.clone();
    let mut dump = input::open(input)?;
    super::deep::load_symbols(&mut dump, &args.deep)?;
    super::deep::check_cpus(&dump, &args.deep)?;
    let mut out = std::io::stdout().lock();
    let warn = |info| {
        for line in report::losses(info) {
            eprintln!("kdrill: {line}");
        }
    };
    if args.deep.any() && !args.dmesg && args.format == OutputFormat::Text {
        // The deep views alone: the log is not read.
        let deep = super::deep::read(&dump, &args.deep);
        write_out(&mut out, deep.text().as_bytes())?;
        warn(dump.info());
        return Ok(report::exit_code(dump.info(), true, &deep));
    }
    let log = dump.dmesg_records();
    let deep = super::deep::read(&dump, &args.deep);
    let code = report::exit_code(dump.info(), log.is_ok(), &deep);
    match args.format {
        OutputFormat::Text if args.dmesg => {
            match &log {
                // In slices: escapes can make the text 16 times longer than the records.
                Ok(records) => {
                    for slice in records.chunks(256) {
                        write_out(&mut out, format_dmesg(slice).as_bytes())?;
                    }
                }
                Err(e) => eprintln!(
                    "kdrill: cannot read the kernel log in {shown}: {}",
                    message_chain(e)
                ),
            }
            if args.deep.any() {
                write_out(&mut out, format!("\n{}", deep.text()).as_bytes())?;
            }
            warn(dump.info());
        }
        OutputFormat::Text => {
            write_out(
                &mut out,
                report::summary(&shown, dump.info(), &log).as_bytes(),
            )?;
        }
        OutputFormat::Json => {
            let doc = report::JsonReport {
                schema: report::SCHEMA,
                dump: &shown,
                info: dump.info(),
                log_records: log.as_ref().ok().map(Vec::len),
                panic_message: log
                    .as_ref()
                    .ok()
                    .and_then(|r| kdrill_vmcore::panic_message(r)),
                log_error: log.as_ref().err().map(message_chain),
                records: if args.dmesg {
                    log.as_ref().ok().map(Vec::as_slice)
                } else {
                    None
                },
                deep,
            };
            // Streamed, not built whole: escaped text can be several times the records' size.
            let mut buffered = std::io::BufWriter::new(&mut out);
            let written = serde_json::to_writer_pretty(&mut buffered, &doc)
                .map_err(std::io::Error::from)
                .and_then(|()| buffered.write_all(b"\n"))
                .and_then(|()| buffered.flush());
            match written {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                r => r?,
            }
        }
    }
    Ok(code)
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
fn write_out(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

/// An error and its sources as one line, as anyhow's `{:#}` prints them.
pub(crate) fn message_chain(e: &kdrill_vmcore::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.join(": ")
}
