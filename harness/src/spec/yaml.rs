//! Loading the project's YAML data files with errors that name file:line:column: every YAML
//! file kdrill reads goes through [`read`] and [`parse`], which hold it to the caps of
//! [`crate::spec::bounds`] (bytes, depth, values) before the parser sees it.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::spec::bounds;

/// A file is named as the operator wrote it: one that `--root` merged into kdrill's data in the
/// cache by its path in the `--root` folder ([`crate::host::bundle::origin_of`]).
#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error("cannot read {}", shown(path).display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", shown(path).display())]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: {message}", shown(path).display())]
    Invalid { path: PathBuf, message: String },
}

/// Where the operator wrote `path`, when it came from `--root`; else `path`.
fn shown(path: &Path) -> PathBuf {
    crate::host::bundle::origin_of(path).unwrap_or_else(|| path.to_path_buf())
}

/// Reads and parses `path`; unknown fields and type errors point at their line and column.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, YamlError> {
    parse(path, &read(path)?)
}

/// The text of a data file, of at most [`bounds::MAX_BYTES`] (a larger file is an error, and
/// only the cap and one byte more are read).
pub fn read(path: &Path) -> Result<String, YamlError> {
    use std::io::Read;
    let failed = |source| YamlError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(failed)?;
    let size = file.metadata().map_err(failed)?.len();
    if size > bounds::MAX_BYTES {
        return Err(YamlError::Invalid {
            path: path.to_path_buf(),
            message: bounds::too_many_bytes(size),
        });
    }
    let mut text = String::new();
    file.take(bounds::MAX_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(failed)?;
    check_bytes(path, &text)?;
    Ok(text)
}

fn check_bytes(path: &Path, text: &str) -> Result<(), YamlError> {
    if text.len() as u64 > bounds::MAX_BYTES {
        return Err(YamlError::Invalid {
            path: path.to_path_buf(),
            message: bounds::too_many_bytes(text.len() as u64),
        });
    }
    Ok(())
}

/// An error about `key`'s value in `text`, at the line and column of the first `key:` (after
/// `- ` or indentation); without one, at the file.
pub fn at_key(path: &Path, text: &str, key: &str, message: String) -> YamlError {
    at(path, position_of_key(text, key), message)
}

/// An error at `position` (line, column) of `path`, or at the file when it is unknown.
pub fn at(path: &Path, position: Option<(usize, usize)>, message: String) -> YamlError {
    match position {
        Some((line, column)) => YamlError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            message,
        },
        None => YamlError::Invalid {
            path: path.to_path_buf(),
            message,
        },
    }
}

/// (line, column) of the first `key:` in `text`.
pub fn key_position(text: &str, key: &str) -> Option<(usize, usize)> {
    key_and_value(text, key).map(|(line, key, _)| (line, key))
}

/// (line, column) of the value of the first `key:` in `text` (of the key when its value is on
/// the next lines).
pub fn position_of_key(text: &str, key: &str) -> Option<(usize, usize)> {
    key_and_value(text, key).map(|(line, _, value)| (line, value))
}

/// (line, key's column, value's column) of the first `key:` in `text`.
fn key_and_value(text: &str, key: &str) -> Option<(usize, usize, usize)> {
    let forms = [
        format!("{key}:"),
        format!("\"{key}\":"),
        format!("'{key}':"),
    ];
    for (n, line) in text.lines().enumerate() {
        let body = line.trim_start_matches([' ', '-']);
        let Some(form) = forms.iter().find(|f| body.starts_with(f.as_str())) else {
            continue;
        };
        let start = line.len() - body.len();
        let after = &body[form.len()..];
        let value = after.len() - after.trim_start().len();
        let column = if after.trim().is_empty() || after.trim_start().starts_with('#') {
            start
        } else {
            start + form.len() + value
        };
        let chars = |at: usize| line[..at].chars().count() + 1;
        return Some((n + 1, chars(start), chars(column)));
    }
    None
}

/// (line, column) of the first scalar in `text` whose value is `value`: written plain, in
/// single quotes or in double quotes (with `\\` and `\"` escapes), so a check made after
/// parsing (a regex that does not compile) can point at what it rejects.
pub fn position_of(text: &str, value: &str) -> Option<(usize, usize)> {
    let double = format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""));
    let single = format!("'{}'", value.replace('\'', "''"));
    for (n, line) in text.lines().enumerate() {
        let code = line.split(" #").next().unwrap_or(line);
        let quoted = [&double, &single]
            .iter()
            .find_map(|form| code.find(form.as_str()));
        // A plain scalar starts after `: `, `- `, `[` or `, `, never at a key's place.
        let plain = || {
            code.match_indices(value)
                .map(|(at, _)| at)
                .find(|&at| at > 0 && matches!(code.as_bytes()[at - 1], b' ' | b'[' | b','))
        };
        if let Some(at) = quoted.or_else(plain) {
            return Some((n + 1, line[..at].chars().count() + 1));
        }
    }
    None
}

/// Parses `text` as if it were read from `path` (the path only labels errors). A key given twice
/// in any mapping is an error at the second one (a map field such as `sysctls:` would otherwise
/// keep the last value silently).
pub fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, YamlError> {
    check_bytes(path, text)?;
    bounds::shape(text).map_err(|over| {
        let (line, column) = over.at();
        YamlError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            message: over.message(),
        }
    })?;
    yaml_serde::from_str::<yaml_serde::Value>(text).map_err(|err| located(path, text, err))?;
    yaml_serde::from_str(text).map_err(|err| located(path, text, err))
}

/// A parser error as file:line:column.
fn located(path: &Path, text: &str, err: yaml_serde::Error) -> YamlError {
    {
        // A value refused by a `TryFrom` of ours is placed at the start of the document: point
        // at the value its message quotes in backticks instead.
        let quoted = || {
            let message = err.to_string();
            let value = message.split('`').nth(1)?.to_string();
            position_of(text, &value)
        };
        let (line, column) = err
            .location()
            .map(|l| (l.line(), l.column()))
            .filter(|&at| at != (1, 1))
            .or_else(quoted)
            .unwrap_or((1, 1));
        // The location is already in our prefix: drop the crate's own " at line N column M" suffix.
        let mut message = err.to_string();
        if let Some(cut) = message.find(" at line ") {
            message.truncate(cut);
        }
        // The parser reports a duplicate key at the start of its mapping: point at the second
        // occurrence instead, and say where the first one is.
        if let Some(key) = duplicate_key(&message) {
            if let Some((first, second)) = find_duplicate(text, line, &key) {
                return YamlError::Parse {
                    path: path.to_path_buf(),
                    line: second.0,
                    column: second.1,
                    message: format!(
                        "duplicate key `{key}` (first at line {}): remove one of them",
                        first.0
                    ),
                };
            }
        }
        YamlError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            message,
        }
    }
}

/// The key named by a duplicate-key message.
fn duplicate_key(message: &str) -> Option<String> {
    // serde's derive says "duplicate field `k`", a map says "duplicate entry with key \"k\"".
    let rest = ["duplicate field ", "duplicate entry with key "]
        .iter()
        .find_map(|lead| message.split(lead).nth(1))?;
    let key = rest.trim().trim_matches(['"', '\'', '`']);
    (!key.is_empty()).then(|| key.to_string())
}

/// (line, column) of the first and second `key:` of the mapping that starts at line `from`
/// (1-based), both at the same indentation, before the mapping ends (a line indented less).
fn find_duplicate(text: &str, from: usize, key: &str) -> Option<((usize, usize), (usize, usize))> {
    let mut first: Option<(usize, usize)> = None;
    for (n, raw) in text.lines().enumerate().skip(from.saturating_sub(1)) {
        let body = raw.trim_start();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let mut column = raw.len() - body.len() + 1;
        let mut entry = body;
        if let Some(item) = body.strip_prefix("- ") {
            entry = item.trim_start();
            column += body.len() - entry.len();
        }
        if let Some((_, col)) = first {
            if column < col || (column == col && entry.len() != body.len()) {
                return None; // the mapping ended, or a new list item began
            }
        }
        let named = [
            format!("{key}:"),
            format!("\"{key}\":"),
            format!("'{key}':"),
        ]
        .iter()
        .any(|k| entry.starts_with(k.as_str()));
        if !named {
            continue;
        }
        match first {
            None => first = Some((n + 1, column)),
            Some((_, col)) if col == column => return Some((first?, (n + 1, column))),
            Some(_) => {}
        }
    }
    None
}

/// `<root>/<folder>/<id>.yaml`, or an error that lists the ids there (`missing` prefixes the list).
pub fn entry_path(
    root: &Path,
    folder: &str,
    id: &str,
    missing: &str,
) -> Result<PathBuf, YamlError> {
    let path = root.join(folder).join(format!("{id}.yaml"));
    // An id never becomes a path outside `folder`; a file there with an odd name (listed by
    // `all`) is refused by [`check_id`], at its `id:` line.
    let listed = !id.contains('/') && path.is_file();
    if !listed {
        bounds::check_id_word(id).map_err(|message| YamlError::Invalid {
            path: root.join(folder),
            message,
        })?;
    }
    if !path.is_file() {
        let known = stems(&root.join(folder)).join(", ");
        return Err(YamlError::Invalid {
            path,
            message: format!("{missing}: {known}"),
        });
    }
    Ok(path)
}

/// An entry's `id` is an id ([`bounds::check_id_word`]) and equals its file name, so ids on the
/// command line find their file; `text` is the file's, to point at the `id:` line.
pub fn check_id(path: &Path, text: &str, id: &str) -> Result<(), YamlError> {
    bounds::check_id_word(id).map_err(|message| at_key(path, text, "id", message))?;
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    if id != stem {
        return Err(at_key(
            path,
            text,
            "id",
            format!("id `{id}` differs from the file name `{stem}`: rename one of them"),
        ));
    }
    Ok(())
}

/// File stems of the `*.yaml` files in `dir`, sorted; empty when `dir` is unreadable.
pub fn stems(dir: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let path = entry.path();
            (path.extension()? == "yaml").then(|| path.file_stem()?.to_str().map(String::from))?
        })
        .collect();
    ids.sort();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        name: String,
        size: u32,
    }

    #[test]
    fn parse_error_names_file_line_and_column() {
        let err =
            parse::<Sample>(Path::new("kernels/x.yaml"), "name: a\nsize: many\n").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("kernels/x.yaml:2:7: "), "{text}");
        assert!(text.contains("invalid type"), "{text}");
    }

    #[test]
    fn duplicate_key_points_at_the_second_one() {
        let text = "# kernel\nname: a\nsize: 1\nname: b\n";
        let err = parse::<Sample>(Path::new("k.yaml"), text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "k.yaml:4:1: duplicate key `name` (first at line 2): remove one of them"
        );
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Outer {
            inner: std::collections::BTreeMap<String, u32>,
        }
        let text = "inner:\n  a: 1\n  b: 2\n  a: 3\n";
        let err = parse::<Outer>(Path::new("o.yaml"), text).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("o.yaml:4:3: duplicate key `a` (first at line 2)"),
            "{err}"
        );
    }

    #[test]
    fn position_of_finds_plain_and_quoted_scalars() {
        let text = "x: [x]\nb: \"\\\\d(\"\nc: 'it''s'\n";
        assert_eq!(position_of(text, "x"), Some((1, 5)));
        assert_eq!(position_of(text, "\\d("), Some((2, 4)));
        assert_eq!(position_of(text, "it's"), Some((3, 4)));
        assert_eq!(position_of(text, "absent"), None);
    }

    #[test]
    fn the_caps_are_errors_that_name_the_cap_the_file_and_where() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.yaml");
        let big = "#".repeat(bounds::MAX_BYTES as usize + 1);
        std::fs::write(&path, &big).unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.ends_with("big.yaml: 1048577 bytes is more than the 1 MiB kdrill reads from a data file (its byte cap): is this the right file?"), "{err}");
        let err = parse::<Sample>(Path::new("b.yaml"), &big).unwrap_err();
        assert!(err.to_string().contains("b.yaml: 1048577 bytes"), "{err}");
        let deep = format!("name: a\nsize: {}\n", "[".repeat(1000));
        let err = parse::<Sample>(Path::new("d.yaml"), &deep).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("d.yaml:2:38: nested deeper than 32 levels (kdrill's depth cap"),
            "{err}"
        );
        let long = format!(
            "name: a\nsize: 1\nx: [{}]\n",
            "1,".repeat(bounds::MAX_NODES)
        );
        let err = parse::<Sample>(Path::new("n.yaml"), &long).unwrap_err();
        assert!(
            err.to_string().contains("n.yaml:3:") && err.to_string().contains("node cap"),
            "{err}"
        );
    }

    #[test]
    fn an_id_is_checked_where_it_is_written() {
        let text = "# entry\nid: \"..\"\n";
        let err = check_id(Path::new("k/...yaml"), text, "..").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("k/...yaml:2:5: `..` is not an id"),
            "{err}"
        );
        let err = entry_path(Path::new("/nowhere"), "kernels", "../etc/x", "none").unwrap_err();
        assert!(err.to_string().contains("`../etc/x` is not an id"), "{err}");
    }

    #[test]
    fn unknown_field_is_an_error() {
        let err = parse::<Sample>(Path::new("s.yaml"), "name: a\nsize: 1\nsise: 2\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `sise`"), "{err}");
    }
}
