//! `kdrill inspect`: print a crash dump's metadata and kernel log (and, with `cli/deep.rs`,
//! its backtraces, tasks, modules and registers).
//!
//! The reading is all `kdrill-vmcore`; this module only chooses what to print.
//! With `--dmesg` the output is the log alone, byte for byte what
//! `makedumpfile --dump-dmesg` writes, so the two can be compared with `cmp`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use kdrill_vmcore::{format_dmesg, panic_message, DumpInfo, LogRecord, Vmcore};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// The crash dump: ELF, kdump-compressed, or flattened (makedumpfile -F, QEMU kdump-*)
    pub dump: PathBuf,
    /// Print the kernel log instead of the summary, exactly as `makedumpfile --dump-dmesg` writes it
    /// (with --format json: add the log records to the summary)
    #[arg(long)]
    pub dmesg: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    #[command(flatten)]
    pub deep: super::deep::DeepArgs,
}

#[derive(serde::Serialize)]
struct JsonReport<'a> {
    dump: &'a std::path::Path,
    info: &'a DumpInfo,
    log_records: Option<usize>,
    panic_message: Option<String>,
    log_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    records: Option<&'a [LogRecord]>,
    #[serde(flatten)]
    deep: super::deep::Deep,
}

/// Refuses anything but a regular file (or a link to one) before opening it:
/// a FIFO would block the open until a writer comes, and a device or folder is
/// no dump. The reader needs random access, so a stream must be saved first.
fn check_regular_file(path: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read the crash dump {}", path.display()))?;
    let t = meta.file_type();
    let kind = if t.is_file() {
        return Ok(());
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_dir() {
        "a folder"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    anyhow::bail!(
        "{} is {kind}, not a dump file: kdrill inspect reads a saved dump with random access; \
         save the stream to a file first (e.g. `cat {} > vmcore`) and pass that file",
        path.display(),
        path.display()
    )
}

/// Exit codes: 0 all read; 1 the metadata was read but the kernel log was not,
/// or the file was cut short and lost pages; an error (2, from main) when the
/// dump cannot be opened at all.
pub fn run(args: InspectArgs) -> anyhow::Result<i32> {
    check_regular_file(&args.dump)?;
    let mut dump = Vmcore::open(&args.dump)
        .with_context(|| format!("cannot read the crash dump {}", args.dump.display()))?;
    super::deep::load_symbols(&mut dump, &args.deep)?;
    let mut out = std::io::stdout().lock();
    if args.deep.any() && !args.dmesg && args.format == OutputFormat::Text {
        // The deep views alone: the log is not read.
        let deep = super::deep::read(&dump, &args.deep);
        write_out(&mut out, deep.text().as_bytes())?;
        if dump.info().truncated {
            eprintln!("kdrill: {}", loss(dump.info()));
        }
        return Ok(if deep.complete() && !dump.info().truncated {
            0
        } else {
            1
        });
    }
    let log = dump.dmesg_records();
    let deep = super::deep::read(&dump, &args.deep);
    let whole = !dump.info().truncated && deep.complete();
    match args.format {
        OutputFormat::Text if args.dmesg => {
            let records = log.with_context(|| {
                format!("cannot read the kernel log in {}", args.dump.display())
            })?;
            // In slices: escapes can make the text 16 times longer than the records.
            for slice in records.chunks(256) {
                write_out(&mut out, format_dmesg(slice).as_bytes())?;
            }
            if args.deep.any() {
                write_out(&mut out, format!("\n{}", deep.text()).as_bytes())?;
            }
            if dump.info().truncated {
                eprintln!("kdrill: {}", loss(dump.info()));
            }
            Ok(if whole { 0 } else { 1 })
        }
        OutputFormat::Text => {
            write_out(&mut out, summary(&args.dump, dump.info(), &log).as_bytes())?;
            Ok(if log.is_ok() && whole { 0 } else { 1 })
        }
        OutputFormat::Json => {
            let report = JsonReport {
                dump: &args.dump,
                info: dump.info(),
                log_records: log.as_ref().ok().map(Vec::len),
                panic_message: log.as_ref().ok().and_then(|r| panic_message(r)),
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
            let written = serde_json::to_writer_pretty(&mut buffered, &report)
                .map_err(std::io::Error::from)
                .and_then(|()| buffered.write_all(b"\n"))
                .and_then(|()| buffered.flush());
            match written {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                r => r?,
            }
            Ok(if log.is_ok() && whole { 0 } else { 1 })
        }
    }
}

/// What a cut-short file lost, in one line.
fn loss(info: &DumpInfo) -> String {
    format!(
        "yes: the file was cut short; the data of {} dumped pages lies past its end, so this is a partial answer",
        info.incomplete_pages
    )
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

fn summary(
    path: &std::path::Path,
    info: &DumpInfo,
    log: &Result<Vec<LogRecord>, kdrill_vmcore::Error>,
) -> String {
    let unknown = || "unknown".to_string();
    let mut lines: Vec<(&str, String)> = vec![
        ("dump", path.display().to_string()),
        (
            "format",
            if info.flattened {
                format!("{} (flattened)", info.format)
            } else {
                info.format.to_string()
            },
        ),
        ("compression", info.compression.to_string()),
        (
            "kernel release",
            info.kernel_release.clone().unwrap_or_else(unknown),
        ),
        (
            "crash time",
            info.crash_time
                .map(|t| format!("{} ({t})", utc(t)))
                .unwrap_or_else(unknown),
        ),
        ("machine", info.machine.clone().unwrap_or_else(unknown)),
        (
            "cpus",
            info.cpus.map(|c| c.to_string()).unwrap_or_else(unknown),
        ),
        ("page size", info.page_size.to_string()),
        (
            "pages",
            format!(
                "{} dumped, {} excluded, {} incomplete",
                info.dumped_pages, info.excluded_pages, info.incomplete_pages
            ),
        ),
    ];
    if let Some(level) = info.dump_level {
        lines.push(("dump level", level.to_string()));
    }
    if info.incomplete {
        lines.push(("incomplete", "yes: the writer ran out of space".to_string()));
    }
    if info.truncated {
        lines.push(("truncated", loss(info)));
    }
    match log {
        Ok(records) => {
            lines.push(("log records", records.len().to_string()));
            lines.push((
                "panic",
                panic_message(records).unwrap_or_else(|| "none in the log".to_string()),
            ));
        }
        Err(e) => lines.push(("kernel log", format!("unreadable: {}", message_chain(e)))),
    }
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    lines
        .iter()
        .map(|(k, v)| format!("{:width$} {v}\n", format!("{k}:")))
        .collect()
}

/// `YYYY-MM-DD HH:MM:SS UTC` for seconds since the epoch.
fn utc(t: i64) -> String {
    kdrill::host::clock::Civil::from_unix(t).readable()
}
