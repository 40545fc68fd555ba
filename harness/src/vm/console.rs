//! Following the files QEMU writes (serial console, status channel): new complete lines as they
//! arrive, and the last lines for a failure report.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Reads the complete lines appended to a growing file since the last poll.
pub struct LineTail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl LineTail {
    pub fn new(path: &Path) -> LineTail {
        LineTail {
            path: path.into(),
            offset: 0,
            partial: Vec::new(),
        }
    }

    /// New complete lines (without their line ends); a missing file gives none.
    pub fn poll(&mut self) -> Vec<String> {
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        let mut bytes = Vec::new();
        if file.seek(SeekFrom::Start(self.offset)).is_err() || file.read_to_end(&mut bytes).is_err()
        {
            return Vec::new();
        }
        self.offset += bytes.len() as u64;
        self.partial.extend_from_slice(&bytes);
        let mut lines = Vec::new();
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            lines.push(
                String::from_utf8_lossy(&line)
                    .trim_end_matches(['\r', '\n'])
                    .to_string(),
            );
        }
        lines
    }
}

/// The last `n` lines of a file (lossy UTF-8, carriage returns dropped); empty when unreadable.
pub fn last_lines(path: &Path, n: usize) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<String> = text
        .lines()
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_returns_each_line_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serial.log");
        let mut tail = LineTail::new(&path);
        assert!(tail.poll().is_empty());
        std::fs::write(&path, "one\r\ntw").unwrap();
        assert_eq!(tail.poll(), ["one"]);
        std::fs::write(&path, "one\r\ntwo\nthree\n").unwrap();
        assert_eq!(tail.poll(), ["two", "three"]);
        assert!(tail.poll().is_empty());
    }

    #[test]
    fn last_lines_keeps_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serial.log");
        std::fs::write(&path, "a\nb\r\nc\n").unwrap();
        assert_eq!(last_lines(&path, 2), ["b", "c"]);
        assert_eq!(last_lines(&path, 10), ["a", "b", "c"]);
        assert!(last_lines(&dir.path().join("none"), 3).is_empty());
    }
}
