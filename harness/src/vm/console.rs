//! Following the files QEMU writes (serial console, status channel): new complete lines as they
//! arrive (the last lines for a failure report: `host::process::last_lines`).

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
}
