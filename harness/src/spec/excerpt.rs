//! What a message may quote of a file's content: one line, cut at 120 characters (`excerpt`),
//! and a parser's message with its quoted value cut the same way (`bounded`), so no error or
//! finding echoes a whole file (`/etc/passwd` given as a calibration file, a sysctl file holding
//! a megabyte).

/// Most characters of a file's content a message quotes.
pub const EXCERPT_CHARS: usize = 120;

/// What a message may quote of a file's content: its first line, cut at [`EXCERPT_CHARS`]
/// characters, with `…` where something was left out (a sysctl file holding a megabyte, or
/// `/etc/passwd` given as a calibration file, is not echoed whole).
pub fn excerpt(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    let mut out: String = line.chars().take(EXCERPT_CHARS).collect();
    if out.len() < line.len() || line.len() < text.trim_end().len() {
        out.push('…');
    }
    out
}

/// `message` with its quoted value cut to the one line of `text` it starts on (at `line`:`column`).
pub fn bounded(message: &str, text: &str, line: usize, column: usize) -> String {
    let (Some(open), Some(close)) = (message.find('"'), message.rfind('"')) else {
        return message.to_string();
    };
    if close <= open {
        return message.to_string();
    }
    let quoted = &message[open + 1..close];
    let at: String = text
        .lines()
        .nth(line.saturating_sub(1))
        .unwrap_or("")
        .chars()
        .skip(column.saturating_sub(1))
        .collect();
    let at = at.trim_end();
    let shown = match quoted.strip_prefix(at) {
        Some(folded) if !at.is_empty() && !folded.is_empty() => excerpt(&format!("{at}\n{folded}")),
        _ => excerpt(quoted),
    };
    format!("{}\"{shown}\"{}", &message[..open], &message[close + 1..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibrate::file::parse;
    use std::path::Path;

    #[test]
    fn one_line_cut_at_120() {
        assert_eq!(excerpt("0x1\n"), "0x1");
        assert_eq!(excerpt("a\nb\n"), "a…");
        assert_eq!(excerpt(&"é".repeat(200)), format!("{}…", "é".repeat(120)));
        assert_eq!(excerpt(""), "");
    }

    /// A file that is not a calibration (`/etc/passwd`) is quoted by its first line, not whole.
    #[test]
    fn an_error_quotes_one_line_of_the_file() {
        let passwd =
            "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
                .repeat(40);
        let err = parse(Path::new("/etc/passwd"), &passwd)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "/etc/passwd:1:1: invalid type: string \"root:x:0:0:root:/root:/bin/bash…\", expected struct Calibration"
        );
        let long = format!("{}\n", "x".repeat(500));
        let err = parse(Path::new("/tmp/long"), &long)
            .unwrap_err()
            .to_string();
        assert!(err.len() < 250, "{err}");
        assert!(err.contains(&format!("\"{}…\"", "x".repeat(120))), "{err}");
    }
}
