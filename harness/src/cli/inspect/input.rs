//! What `kdrill inspect` opens: a dump file, the one dump in a crash folder (kdump-tools'
//! `/var/crash/<stamp>/dump.<stamp>`, kdump-utils' `/var/crash/<host>-<date>/vmcore`), or
//! standard input (`-`, saved to a temporary file first: the reader needs random access);
//! and what a file that does not open is, with its exit code (`kdrill::exit`).

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::Context;
use kdrill::exit::Exit;
use kdrill_vmcore::{Error, Vmcore};

/// A dump to open.
pub struct Input {
    /// What the summary and the JSON call it: the file opened, or `-`.
    pub shown: String,
    file: File,
    stdin: bool,
}

/// Finds the file `given` names (`-`: standard input) and opens it for reading.
pub fn resolve(given: &Path) -> anyhow::Result<Input> {
    if given == Path::new("-") {
        return stdin();
    }
    let meta = std::fs::metadata(given)
        .with_context(|| format!("cannot read the crash dump {}", given.display()))?;
    let path = if meta.is_dir() {
        let found = in_folder(given)?;
        eprintln!(
            "kdrill: reading {} (the dump in the folder {})",
            found.display(),
            given.display()
        );
        found
    } else {
        refuse_special(given, &meta)?;
        given.to_path_buf()
    };
    let file = File::open(&path)
        .with_context(|| format!("cannot read the crash dump {}", path.display()))?;
    Ok(Input {
        shown: path.display().to_string(),
        file,
        stdin: false,
    })
}

/// Opens the dump; what does not open is not a dump (2), unreadable (2) or an I/O failure (3).
pub fn open(input: Input) -> anyhow::Result<Vmcore> {
    let Input { shown, file, stdin } = input;
    let context = if stdin {
        "cannot read the crash dump on standard input".to_string()
    } else {
        format!("cannot read the crash dump {shown}")
    };
    Vmcore::from_source(file).map_err(|e| {
        let exit = match &e {
            Error::Io { .. } | Error::Open { .. } => return anyhow::Error::new(e).context(context),
            Error::Compressed { format } => {
                Exit::negative("not-a-dump", decompress_advice(format, &shown, stdin))
            }
            Error::NotADump { .. } => Exit::negative("not-a-dump", super::message_chain(&e)),
            // The file contradicts itself: no page can be trusted to be the one asked for.
            Error::Inconsistent { .. } => Exit::negative("inconsistent", super::message_chain(&e)),
            _ => Exit::negative("unreadable", super::message_chain(&e)),
        };
        anyhow::Error::new(exit).context(context)
    })
}

/// A FIFO, device or socket is refused at once (a FIFO would block the open until a writer
/// comes): the reader needs random access, so a stream goes through standard input.
fn refuse_special(path: &Path, meta: &std::fs::Metadata) -> anyhow::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    let kind = if t.is_file() {
        return Ok(());
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Err(anyhow::Error::new(Exit::usage(format!(
        "{} is {kind}, not a dump file: kdrill inspect reads a dump with random access; \
         pass the stream on standard input (`kdrill inspect - < {}`), which saves it to a \
         temporary file first",
        path.display(),
        path.display()
    ))))
}

/// Standard input: read in place when it is a file (`< vmcore`), else saved to a temporary
/// file (deleted on exit) in `$TMPDIR`.
fn stdin() -> anyhow::Result<Input> {
    use std::io::IsTerminal;
    use std::os::fd::AsFd;
    let input = std::io::stdin();
    let fd = input
        .as_fd()
        .try_clone_to_owned()
        .context("cannot read standard input")?;
    let file = File::from(fd);
    let shown = "-".to_string();
    if file.metadata().is_ok_and(|m| m.is_file()) {
        return Ok(Input {
            shown,
            file,
            stdin: true,
        });
    }
    if input.is_terminal() {
        return Err(anyhow::Error::new(Exit::usage(
            "`-` reads the dump from standard input, which is a terminal here: \
             pipe the dump in (e.g. `zcat vmcore.gz | kdrill inspect -`)",
        )));
    }
    let dir = std::env::temp_dir();
    eprintln!(
        "kdrill: saving standard input to a temporary file in {} (the reader needs random access)",
        dir.display()
    );
    let mut spool = tempfile::tempfile_in(&dir).with_context(|| {
        format!(
            "cannot create a temporary file in {} for standard input (set TMPDIR to a folder with room)",
            dir.display()
        )
    })?;
    std::io::copy(&mut input.lock(), &mut spool).with_context(|| {
        format!(
            "cannot save standard input to a temporary file in {}",
            dir.display()
        )
    })?;
    Ok(Input {
        shown,
        file: spool,
        stdin: true,
    })
}

/// The dump names of a crash folder: kdump-tools' `dump.<stamp>` (`dump-incomplete` while
/// makedumpfile writes it), kdump-utils' `vmcore` (`vmcore.flat` on an ssh target,
/// `vmcore-incomplete` while it writes). The logs beside them (`dmesg.<stamp>`,
/// `vmcore-dmesg.txt`) are not dumps.
pub(crate) fn dump_names(names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = names
        .iter()
        .filter(|n| {
            matches!(
                n.as_str(),
                "vmcore" | "vmcore.flat" | "vmcore-incomplete" | "dump-incomplete"
            ) || n.strip_prefix("dump.").is_some_and(|s| !s.is_empty())
        })
        .cloned()
        .collect();
    out.sort();
    out
}

/// The names of the regular files (or links to them) in `dir`.
fn file_names(dir: &Path) -> anyhow::Result<Vec<String>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the folder {}", dir.display()))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read the folder {}", dir.display()))?;
        if std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file()) {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    Ok(names)
}

/// The one dump in a crash folder. Several: a usage error naming them. None, but dump folders
/// inside (`/var/crash` itself): a usage error naming those. Nothing: not a dump (2).
fn in_folder(dir: &Path) -> anyhow::Result<PathBuf> {
    let found = dump_names(&file_names(dir)?);
    match found.as_slice() {
        [one] => return Ok(dir.join(one)),
        [] => {}
        several => {
            return Err(anyhow::Error::new(Exit::usage(format!(
                "the folder {} holds several dumps ({}): name the one to read, e.g. `kdrill inspect {}`",
                dir.display(),
                several.join(", "),
                dir.join(&several[0]).display()
            ))))
        }
    }
    let mut folders: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter(|e| file_names(&e.path()).is_ok_and(|n| !dump_names(&n).is_empty()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    if let Some(newest) = folders.last() {
        let shown: Vec<&str> = folders.iter().rev().take(10).map(String::as_str).collect();
        let more = folders.len().saturating_sub(10);
        return Err(anyhow::Error::new(Exit::usage(format!(
            "the folder {} holds dump folders, not a dump: name one ({}{}), e.g. `kdrill inspect {}`",
            dir.display(),
            shown.join(", "),
            if more > 0 {
                format!(" and {more} older")
            } else {
                String::new()
            },
            dir.join(newest).display()
        ))));
    }
    Err(anyhow::Error::new(Exit::negative(
        "not-a-dump",
        format!(
            "the folder {} holds no crash dump: kdrill looks there for dump.<stamp> \
             (kdump-tools), vmcore or vmcore.flat (kdump-utils), dump-incomplete or vmcore-incomplete",
            dir.display()
        ),
    )))
}

/// How to undo a whole-file compression: "gzip: decompress first (…)".
fn decompress_advice(format: &str, shown: &str, stdin: bool) -> String {
    let (suffix, unpack, cat) = match format {
        "gzip" => (".gz", "gunzip -k", "zcat"),
        "xz" => (".xz", "unxz -k", "xzcat"),
        "zstd" => (".zst", "unzstd", "zstdcat"),
        "bzip2" => (".bz2", "bunzip2 -k", "bzcat"),
        _ => (".lz4", "unlz4", "lz4cat"),
    };
    if stdin {
        return format!(
            "{format}: decompress it in the pipe first (`… | {cat} | kdrill inspect -`)"
        );
    }
    let first = match shown.strip_suffix(suffix) {
        Some(plain) => format!("`{unpack} {shown}`, then `kdrill inspect {plain}`"),
        None => format!("`{cat} {shown} > vmcore`, then `kdrill inspect vmcore`"),
    };
    format!(
        "{format}: decompress first ({first}), or stream it (`{cat} {shown} | kdrill inspect -`)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_folders_of_kdump_tools_and_kdump_utils() {
        let names = |n: &[&str]| dump_names(&n.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            names(&["dmesg.202612061200", "dump.202612061200"]),
            ["dump.202612061200"]
        );
        assert_eq!(
            names(&["vmcore", "vmcore-dmesg.txt", "kexec_cmd"]),
            ["vmcore"]
        );
        assert_eq!(names(&["dump-incomplete"]), ["dump-incomplete"]);
        assert_eq!(names(&["vmcore-incomplete"]), ["vmcore-incomplete"]);
        assert_eq!(names(&["vmcore.flat"]), ["vmcore.flat"]);
        assert!(names(&["dump.", "dmesg.1", "notes.txt"]).is_empty());
        assert_eq!(names(&["vmcore", "dump.1"]), ["dump.1", "vmcore"]);
    }

    #[test]
    fn advice_names_the_tool_and_the_file() {
        assert_eq!(
            decompress_advice("gzip", "/tmp/vmcore.gz", false),
            "gzip: decompress first (`gunzip -k /tmp/vmcore.gz`, then `kdrill inspect /tmp/vmcore`), \
             or stream it (`zcat /tmp/vmcore.gz | kdrill inspect -`)"
        );
        assert_eq!(
            decompress_advice("xz", "dump.1", false),
            "xz: decompress first (`xzcat dump.1 > vmcore`, then `kdrill inspect vmcore`), \
             or stream it (`xzcat dump.1 | kdrill inspect -`)"
        );
        assert_eq!(
            decompress_advice("zstd", "-", true),
            "zstd: decompress it in the pipe first (`… | zstdcat | kdrill inspect -`)"
        );
    }
}
