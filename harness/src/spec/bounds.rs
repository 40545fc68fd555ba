//! The caps every YAML data file is held to (bytes, nesting depth, values), checked on the text
//! before the YAML parser sees it, and the one rule for ids.
//!
//! The parser's own recursion limit is reached only after it has scanned the whole nesting (100k
//! levels took 20 s), and a long flat list costs ~200 bytes of memory per item: so the text is
//! first measured by [`shape`], a single pass that stops at the first level or value over a cap.
//! It over-counts a little (a multi-line plain scalar counts as nested lines), never under-counts
//! flow nesting, and skips block scalars (`|`, `>`), whose brackets are shell text.

/// The most bytes kdrill reads from one data file. The largest real ones are ~5 KB (matrix.yaml,
/// images/debian-bookworm.yaml, a calibration of 3 memory sizes); a calibration of 12 sizes x 30
/// probes is ~40 KB. 1 MiB is 25 times that, and parsing it costs at most a few tens of MB.
pub const MAX_BYTES: u64 = 1 << 20;

/// The deepest nesting (block levels plus flow brackets) of a data file. Real files nest at most
/// 6 levels as [`shape`] counts them (a calibration's probes); the parser itself stops at 128,
/// but only after scanning all of it.
pub const MAX_DEPTH: usize = 32;

/// The most values (keys, list items, flow items, as counted by [`shape`]) in one data file. The
/// real files hold at most ~100 (a calibration of 3 sizes); 50,000 keeps a parse to a few tens
/// of MB, where a 4M-item list took 794 MB.
pub const MAX_NODES: usize = 50_000;

/// The longest id (kernel entry, scenario, image, matrix set): ids name folders under `runs/`.
pub const MAX_ID_LEN: usize = 64;

/// What [`shape`] measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub depth: usize,
    pub nodes: usize,
}

/// Which cap a text is over, and where (1-based line and column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    Depth { line: usize, column: usize },
    Nodes { line: usize, column: usize },
}

impl Over {
    pub fn at(&self) -> (usize, usize) {
        match *self {
            Over::Depth { line, column } | Over::Nodes { line, column } => (line, column),
        }
    }

    pub fn message(&self) -> String {
        match self {
            Over::Depth { .. } => format!(
                "nested deeper than {MAX_DEPTH} levels (kdrill's depth cap for a data file): is this the right file?"
            ),
            Over::Nodes { .. } => format!(
                "more than {MAX_NODES} values (kdrill's node cap for a data file): split the file or remove entries"
            ),
        }
    }
}

/// The byte cap's message for a text of `len` bytes.
pub fn too_many_bytes(len: u64) -> String {
    format!(
        "{len} bytes is more than the {} MiB kdrill reads from a data file (its byte cap): is this the right file?",
        MAX_BYTES >> 20
    )
}

/// Measures `text`'s nesting and values, stopping at the first one over a cap.
pub fn shape(text: &str) -> Result<Shape, Over> {
    let mut s = Scan::default();
    for (n, line) in text.lines().enumerate() {
        s.line(n + 1, line.as_bytes())?;
    }
    Ok(Shape {
        depth: s.deepest,
        nodes: s.nodes,
    })
}

#[derive(Default)]
struct Scan {
    /// Columns of the open block nodes, outermost first.
    block: Vec<usize>,
    /// Open flow brackets (`[`, `{`), which may span lines.
    flow: usize,
    /// An open quoted scalar's quote, which may span lines.
    quote: Option<u8>,
    /// Inside a block scalar: lines indented more than this column belong to it.
    literal: Option<usize>,
    nodes: usize,
    deepest: usize,
}

impl Scan {
    fn line(&mut self, n: usize, line: &[u8]) -> Result<(), Over> {
        let indent = line.iter().take_while(|&&b| b == b' ').count();
        let blank = line[indent..].iter().all(|b| b.is_ascii_whitespace());
        if let Some(col) = self.literal {
            if blank || indent > col {
                return Ok(());
            }
            self.literal = None;
        }
        let mut at = 0;
        if self.flow == 0 && self.quote.is_none() {
            let body = &line[indent..];
            if blank
                || body.starts_with(b"#")
                || body.starts_with(b"---")
                || body.starts_with(b"...")
                || body.starts_with(b"%")
            {
                return Ok(());
            }
            while self.block.last().is_some_and(|&c| c >= indent) {
                self.block.pop();
            }
            at = indent;
            self.open(n, at)?;
            // `- - x`: each dash opens one more level, and holds one more value after the first.
            let mut dashes = 0;
            while line[at] == b'-' && line.get(at + 1).is_none_or(|&b| b == b' ') {
                at += 1;
                while line.get(at) == Some(&b' ') {
                    at += 1;
                }
                if at >= line.len() {
                    return Ok(());
                }
                self.block.push(at);
                if dashes > 0 {
                    self.count(n, at)?;
                }
                self.deep(n, at)?;
                dashes += 1;
            }
        }
        self.rest(n, line, at)
    }

    /// A block node at `column` (0-based) of line `n`.
    fn open(&mut self, n: usize, column: usize) -> Result<(), Over> {
        self.block.push(column);
        self.count(n, column)?;
        self.deep(n, column)
    }

    fn count(&mut self, n: usize, column: usize) -> Result<(), Over> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(Over::Nodes {
                line: n,
                column: column + 1,
            });
        }
        Ok(())
    }

    fn deep(&mut self, n: usize, column: usize) -> Result<(), Over> {
        let depth = self.block.len() + self.flow;
        self.deepest = self.deepest.max(depth);
        if depth > MAX_DEPTH {
            return Err(Over::Depth {
                line: n,
                column: column + 1,
            });
        }
        Ok(())
    }

    /// The rest of line `n` from byte `from`: quotes, comments, flow brackets and commas, and a
    /// block scalar's header.
    fn rest(&mut self, n: usize, line: &[u8], from: usize) -> Result<(), Over> {
        let mut i = from;
        while i < line.len() {
            let c = line[i];
            let starts = i == from || matches!(line[i - 1], b' ' | b'\t' | b'[' | b'{' | b',');
            if let Some(q) = self.quote {
                if q == b'"' && c == b'\\' {
                    i += 2;
                    continue;
                }
                if c == q {
                    if q == b'\'' && line.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    self.quote = None;
                }
                i += 1;
                continue;
            }
            match c {
                b'#' if i == 0 || matches!(line[i - 1], b' ' | b'\t') => return Ok(()),
                b'"' | b'\'' if starts || line[i - 1] == b':' => self.quote = Some(c),
                b'[' | b'{' if starts || line[i - 1] == b':' || self.flow > 0 => {
                    self.flow += 1;
                    self.count(n, i)?;
                    self.deep(n, i)?;
                }
                b']' | b'}' if self.flow > 0 => self.flow -= 1,
                b',' if self.flow > 0 => self.count(n, i)?,
                b'|' | b'>' if starts && self.flow == 0 => {
                    let header = line[i + 1..]
                        .split(|&b| b == b'#')
                        .next()
                        .unwrap_or_default();
                    if header
                        .iter()
                        .all(|b| b"+-0123456789 \t".contains(b) || *b == b'\r')
                    {
                        // Its lines are those indented more than the node that holds it.
                        self.literal = self.block.last().copied();
                        return Ok(());
                    }
                }
                _ => {}
            }
            i += 1;
        }
        Ok(())
    }
}

/// An id (a kernel entry, scenario, image or matrix set; written in files and on the command
/// line): letters, digits, `.`, `-` and `_`, not starting with `.`, at most [`MAX_ID_LEN`]
/// characters, and not `all` (the word for every entry). Evidence goes to
/// `runs/<kernel>/<scenario>`: such an id can never leave `runs/`.
pub fn check_id_word(id: &str) -> Result<(), String> {
    let chars_ok = id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if id.is_empty() || !chars_ok || id.starts_with('.') || id.len() > MAX_ID_LEN {
        return Err(format!(
            "`{}` is not an id: an id is 1-{MAX_ID_LEN} letters, digits, `.`, `-` or `_`, not starting with `.`",
            id.escape_debug()
        ));
    }
    if id == "all" {
        return Err("`all` is not an id: it is the word for every entry".into());
    }
    Ok(())
}

/// The id of `known` nearest to `word` (at most 2 edits, or one a prefix of the other), for a
/// "did you mean".
pub fn nearest<'a>(word: &str, known: &'a [String]) -> Option<&'a str> {
    let distance = |a: &str, b: &str| {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut diagonal = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let above = row[j + 1];
                row[j + 1] = (diagonal + usize::from(ca != *cb))
                    .min(above + 1)
                    .min(row[j] + 1);
                diagonal = above;
            }
        }
        row[b.len()]
    };
    known
        .iter()
        .map(|k| (distance(word, k), k))
        .filter(|(d, k)| *d <= 2 || k.starts_with(word) || word.starts_with(k.as_str()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn over(text: &str) -> Over {
        shape(text).unwrap_err()
    }

    #[test]
    fn deep_flow_nesting_stops_at_the_cap() {
        let text = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(
            over(&text),
            Over::Depth {
                line: 1,
                column: MAX_DEPTH
            }
        );
        let text = format!("a: {}1{}", "{b: ".repeat(40), "}".repeat(40));
        assert!(matches!(over(&text), Over::Depth { line: 1, .. }));
    }

    #[test]
    fn deep_block_nesting_stops_at_the_cap() {
        let dashes = format!("{}x\n", "- ".repeat(100_000));
        assert_eq!(
            over(&dashes),
            Over::Depth {
                line: 1,
                column: 2 * MAX_DEPTH + 1
            }
        );
        let keys: String = (0..40).map(|d| format!("{}k:\n", " ".repeat(d))).collect();
        assert_eq!(
            over(&keys),
            Over::Depth {
                line: MAX_DEPTH + 1,
                column: MAX_DEPTH + 1
            }
        );
    }

    #[test]
    fn a_long_list_is_over_the_node_cap() {
        let flow = format!("x: [{}]\n", "1,".repeat(MAX_NODES));
        assert!(matches!(over(&flow), Over::Nodes { line: 1, .. }));
        let block = "- 1\n".repeat(MAX_NODES + 1);
        assert_eq!(
            over(&block),
            Over::Nodes {
                line: MAX_NODES + 1,
                column: 1
            }
        );
    }

    #[test]
    fn quotes_comments_and_block_scalars_are_not_nesting() {
        let text = "a: '[[[[' # [[[[\nb: \"{{\\\"{{\"\nc: |\n  [[[[ {{{{\n  x: [\nd: [1, [2]]\ne: it's [x\n";
        let got = shape(text).unwrap();
        assert_eq!(got.depth, 3, "{got:?}");
        let text = format!("run: |\n{}\nnext: 1\n", "  [ \"$x\" = {{ ]\n".repeat(100));
        assert_eq!(shape(&text).unwrap().depth, 1);
    }

    #[test]
    fn the_real_data_files_are_far_below_the_caps() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut seen = 0;
        for folder in ["kernels", "scenarios", "images", "calibration", "."] {
            for name in crate::spec::yaml::stems(&root.join(folder)) {
                let path = root.join(folder).join(format!("{name}.yaml"));
                let text = std::fs::read_to_string(&path).unwrap();
                let got = shape(&text).unwrap();
                assert!(
                    got.depth * 3 <= MAX_DEPTH && got.nodes * 50 <= MAX_NODES,
                    "{}: {got:?}",
                    path.display()
                );
                assert!(text.len() as u64 * 100 <= MAX_BYTES, "{}", path.display());
                seen += 1;
            }
        }
        assert!(seen >= 40, "{seen} files");
    }

    #[test]
    fn nearest_suggests_a_close_id() {
        let known = ["sysrq", "nmi", "oops"].map(String::from);
        assert_eq!(nearest("sysrg", &known), Some("sysrq"));
        assert_eq!(nearest("nmi-button", &known), Some("nmi"));
        assert_eq!(nearest("watchdog", &known), None);
    }

    #[test]
    fn ids_are_plain_words() {
        for good in [
            "debian-6.1",
            "sysrq",
            "debian13-backports-7.3",
            "a_b",
            "x..",
        ] {
            assert_eq!(check_id_word(good), Ok(()), "{good}");
        }
        for bad in ["..", ".hidden", "", "a/b", "a\nb", "a b", "all", "é"] {
            assert!(check_id_word(bad).is_err(), "{bad:?}");
        }
        assert!(check_id_word(&"x".repeat(MAX_ID_LEN + 1)).is_err());
        assert!(check_id_word("a\nb").unwrap_err().contains("a\\nb"));
    }
}
