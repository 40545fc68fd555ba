//! Root-relative file access: every file the checklist looks at is read through a [`Root`], so a captured tree is read exactly like the live host.
//!
//! Symlinks are followed by hand, one component at a time, and an absolute target is re-rooted under the
//! root: `var/lib/kdump/initrd.img -> /var/lib/kdump/initrd.img-6.1.0` in a captured tree stays inside it.
//! Nothing here panics on odd files: every problem becomes a [`Problem`] that the checks report
//! (`readiness::unread` names any a check would otherwise have judged as an absent file).

use std::fmt;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// Largest text file the checklist reads (`/proc/cpuinfo` on a big host is well under this).
const TEXT_LIMIT: u64 = 16 << 20;
/// Symlink hops allowed while resolving one path (the kernel's own limit is 40).
const MAX_HOPS: usize = 40;

/// Why a file could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The file does not exist (in a captured tree: it was not captured).
    Missing,
    /// The file exists but reading it failed (permissions, I/O error).
    Unreadable(String),
    /// The file was read but is not what it should be (a directory, binary data, a symlink loop).
    Odd(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing => f.write_str("missing"),
            Problem::Unreadable(why) => write!(f, "unreadable ({why})"),
            Problem::Odd(why) => f.write_str(why),
        }
    }
}

/// The result of reading one file.
pub type Got<T> = Result<T, Problem>;

/// What `stat` says about a file, after following symlinks inside the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub len: u64,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    pub is_dir: bool,
}

/// A tree to read host files from: `/` for the live host, or a captured copy of `/proc`, `/sys` and `/etc`.
#[derive(Debug, Clone)]
pub struct Root {
    base: PathBuf,
}

impl Root {
    pub fn new(base: impl Into<PathBuf>) -> Self {
        Root { base: base.into() }
    }

    /// The folder this root reads from.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// Whether this root is the running host itself (the only case where kdrill may ask systemd or `statvfs`).
    pub fn is_live(&self) -> bool {
        self.base == Path::new("/")
    }

    /// Host path of `path` (an absolute path as seen on the checked host), with every symlink on the way
    /// resolved inside the root.
    pub fn resolve(&self, path: &str) -> Got<PathBuf> {
        let mut done: Vec<String> = Vec::new();
        let mut todo: Vec<String> = components(path).into_iter().rev().collect();
        let mut hops = 0;
        while let Some(part) = todo.pop() {
            match part.as_str() {
                "." => continue,
                ".." => {
                    done.pop();
                    continue;
                }
                _ => done.push(part),
            }
            let here = self.join(&done);
            let meta = match std::fs::symlink_metadata(&here) {
                Ok(meta) => meta,
                // Under a file (`/var/crash/kexec_cmd` where /var/crash is a file): not there.
                Err(err)
                    if matches!(
                        err.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                    ) =>
                {
                    return Err(Problem::Missing)
                }
                Err(err) => return Err(Problem::Unreadable(err.to_string())),
            };
            if !meta.file_type().is_symlink() {
                continue;
            }
            hops += 1;
            if hops > MAX_HOPS {
                return Err(Problem::Odd(format!(
                    "{path}: a symlink loop (over {MAX_HOPS} links on the way)"
                )));
            }
            let target =
                std::fs::read_link(&here).map_err(|err| Problem::Unreadable(err.to_string()))?;
            let target = target.to_string_lossy().into_owned();
            done.pop();
            if target.starts_with('/') {
                done.clear();
            }
            todo.extend(components(&target).into_iter().rev());
        }
        Ok(self.join(&done))
    }

    /// The whole of a text file (lossy UTF-8). Binary content (NUL bytes) and directories are [`Problem::Odd`].
    pub fn text(&self, path: &str) -> Got<String> {
        let bytes = self.bytes(path, TEXT_LIMIT)?;
        if bytes.contains(&0) {
            return Err(Problem::Odd(format!(
                "{path}: binary content (NUL bytes), not a text file"
            )));
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// A whole file of at most `limit` bytes. A larger file is [`Problem::Odd`], never judged from
    /// its first `limit` bytes as if whole; a FIFO, socket or device is refused without opening
    /// it (reading a FIFO in a captured tree would wait forever for a writer).
    pub fn bytes(&self, path: &str, limit: u64) -> Got<Vec<u8>> {
        use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
        let host = self.resolve(path)?;
        let kind = std::fs::metadata(&host).map_err(io_problem)?.file_type();
        if kind.is_dir() {
            return Err(Problem::Odd(format!("{path} is a directory")));
        }
        if !kind.is_file() {
            let what = if kind.is_fifo() {
                "a FIFO (named pipe)"
            } else if kind.is_socket() {
                "a socket"
            } else if kind.is_char_device() || kind.is_block_device() {
                "a device"
            } else {
                "not a regular file"
            };
            return Err(Problem::Odd(format!(
                "{path} is {what}, not a file kdrill can read; a captured tree must hold copies of the files"
            )));
        }
        // O_NONBLOCK: should the file be swapped for a FIFO after the check, opening it still
        // returns at once.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&host)
            .map_err(io_problem)?;
        let mut bytes = Vec::new();
        file.take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(io_problem)?;
        if bytes.len() as u64 > limit {
            return Err(Problem::Odd(format!(
                "{path} is larger than the {} kdrill reads of it: not judged from a part (is it the right file?)",
                shown_limit(limit)
            )));
        }
        Ok(bytes)
    }

    /// `stat` of a file, following symlinks inside the root.
    pub fn meta(&self, path: &str) -> Got<Meta> {
        use std::os::unix::fs::MetadataExt;
        let host = self.resolve(path)?;
        let meta = std::fs::metadata(host).map_err(io_problem)?;
        Ok(Meta {
            len: meta.len(),
            mode: meta.mode() & 0o7777,
            mtime: meta.mtime(),
            is_dir: meta.is_dir(),
        })
    }

    /// Whether a file (after following symlinks) exists.
    pub fn exists(&self, path: &str) -> bool {
        self.meta(path).is_ok()
    }

    /// Whether `path` itself (without following a final symlink) exists: a dangling symlink counts.
    pub fn entry_exists(&self, path: &str) -> bool {
        let Some((parent, name)) = split_last(path) else {
            return false;
        };
        match self.resolve(parent) {
            Ok(dir) => std::fs::symlink_metadata(dir.join(name)).is_ok(),
            Err(_) => false,
        }
    }

    /// The target of a symlink (the last component is not followed; the folders leading to it are).
    pub fn read_link(&self, path: &str) -> Got<String> {
        let (parent, name) =
            split_last(path).ok_or_else(|| Problem::Odd(format!("{path} names no file")))?;
        let host = self.resolve(parent)?.join(name);
        std::fs::read_link(host)
            .map(|t| t.to_string_lossy().into_owned())
            .map_err(io_problem)
    }

    /// Names in a folder, sorted.
    pub fn list(&self, path: &str) -> Got<Vec<String>> {
        let host = self.resolve(path)?;
        let entries = std::fs::read_dir(host).map_err(io_problem)?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_problem)?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn join(&self, parts: &[String]) -> PathBuf {
        let mut path = self.base.clone();
        path.extend(parts);
        path
    }
}

/// `/a/b/c` → (`/a/b`, `c`); `None` for a path without a file name.
fn split_last(path: &str) -> Option<(&str, &str)> {
    let (parent, name) = path.trim_end_matches('/').rsplit_once('/')?;
    if name.is_empty() || name == "." || name == ".." {
        return None;
    }
    Some((if parent.is_empty() { "/" } else { parent }, name))
}

/// The normal components of a path, as strings (`.` and `..` kept for the resolver to apply).
fn components(path: &str) -> Vec<String> {
    Path::new(path)
        .components()
        .filter_map(|part| match part {
            Component::Normal(name) => Some(name.to_string_lossy().into_owned()),
            Component::CurDir => Some(".".to_string()),
            Component::ParentDir => Some("..".to_string()),
            Component::RootDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// `16 MiB`, `64 bytes`: a read cap in words.
fn shown_limit(limit: u64) -> String {
    if limit >= 1 << 20 && limit % (1 << 20) == 0 {
        format!("{} MiB", limit >> 20)
    } else {
        format!("{limit} bytes")
    }
}

fn io_problem(err: std::io::Error) -> Problem {
    match err.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory => Problem::Missing,
        std::io::ErrorKind::IsADirectory => Problem::Odd("is a directory".to_string()),
        _ => Problem::Unreadable(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn absolute_symlinks_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        std::fs::create_dir_all(dir.path().join("var/lib/kdump")).unwrap();
        std::fs::write(dir.path().join("var/lib/kdump/initrd.img-6.1"), "inside").unwrap();
        symlink(
            "/var/lib/kdump/initrd.img-6.1",
            dir.path().join("var/lib/kdump/initrd.img"),
        )
        .unwrap();
        assert_eq!(root.text("/var/lib/kdump/initrd.img").unwrap(), "inside");
        // `..` above the root stays at the root.
        assert_eq!(
            root.text("/../../var/lib/kdump/initrd.img").unwrap(),
            "inside"
        );
    }

    #[test]
    fn odd_files_are_problems_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        std::fs::create_dir_all(dir.path().join("proc/cmdline")).unwrap();
        std::fs::write(dir.path().join("binary"), b"a\0b").unwrap();
        symlink("loop", dir.path().join("loop")).unwrap();
        symlink("/nowhere", dir.path().join("dangling")).unwrap();
        assert!(matches!(root.text("/proc/cmdline"), Err(Problem::Odd(_))));
        assert!(matches!(root.text("/binary"), Err(Problem::Odd(_))));
        assert!(matches!(root.text("/loop"), Err(Problem::Odd(_))));
        assert_eq!(root.text("/dangling"), Err(Problem::Missing));
        assert!(root.entry_exists("/dangling"));
        assert_eq!(root.read_link("/dangling").as_deref(), Ok("/nowhere"));
        assert!(!root.exists("/dangling"));
        assert_eq!(root.text("/absent"), Err(Problem::Missing));
    }

    #[test]
    fn fifos_sockets_and_devices_are_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        std::fs::create_dir_all(dir.path().join("proc")).unwrap();
        let fifo = dir.path().join("proc/cmdline");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0);
        let _socket = std::os::unix::net::UnixListener::bind(dir.path().join("sock")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero")).unwrap();
        // Reading the FIFO would block this test forever without a writer: a wrong answer here
        // is a hang, so the read runs on a thread with a deadline.
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = root.clone();
        std::thread::spawn(move || {
            let _ = tx.send((
                reader.text("/proc/cmdline"),
                reader.text("/sock"),
                // Re-rooted: /dev/zero inside the tree does not exist.
                reader.text("/zero"),
            ));
        });
        let (fifo, socket, zero) = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("reading a FIFO in the tree hung");
        let odd = |got: Got<String>, word: &str| match got {
            Err(Problem::Odd(why)) => assert!(why.contains(word), "{why}"),
            other => panic!("expected Odd naming {word}, got {other:?}"),
        };
        odd(fifo, "FIFO");
        odd(socket, "socket");
        assert_eq!(zero, Err(Problem::Missing));
        let live = Root::new("/");
        odd(live.text("/dev/zero"), "device");
    }

    #[test]
    fn a_file_over_the_cap_is_a_problem_not_its_first_part() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        std::fs::write(dir.path().join("big"), vec![b'x'; 65]).unwrap();
        std::fs::write(dir.path().join("fits"), vec![b'x'; 64]).unwrap();
        match root.bytes("/big", 64) {
            Err(Problem::Odd(why)) => assert!(why.contains("larger than the 64 bytes"), "{why}"),
            other => panic!("a 65-byte file under a 64-byte cap: {other:?}"),
        }
        assert_eq!(root.bytes("/fits", 64).unwrap().len(), 64);
        assert_eq!(shown_limit(TEXT_LIMIT), "16 MiB");
    }
}
