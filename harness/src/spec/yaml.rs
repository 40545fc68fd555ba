//! Loading the project's YAML data files with errors that name file:line:column.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Reads and parses `path`; unknown fields and type errors point at their line and column.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, YamlError> {
    let text = std::fs::read_to_string(path).map_err(|source| YamlError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Parses `text` as if it were read from `path` (the path only labels errors).
pub fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, YamlError> {
    yaml_serde::from_str(text).map_err(|err| {
        let (line, column) = err
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((1, 1));
        // The location is already in our prefix: drop the crate's own " at line N column M" suffix.
        let mut message = err.to_string();
        if let Some(cut) = message.find(" at line ") {
            message.truncate(cut);
        }
        YamlError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            message,
        }
    })
}

/// `<root>/<folder>/<id>.yaml`, or an error that lists the ids there (`missing` prefixes the list).
pub fn entry_path(
    root: &Path,
    folder: &str,
    id: &str,
    missing: &str,
) -> Result<PathBuf, YamlError> {
    let path = root.join(folder).join(format!("{id}.yaml"));
    if !path.is_file() {
        let known = stems(&root.join(folder)).join(", ");
        return Err(YamlError::Invalid {
            path,
            message: format!("{missing}: {known}"),
        });
    }
    Ok(path)
}

/// An entry's `id` must equal its file name, so ids on the command line find their file.
pub fn check_id(path: &Path, id: &str) -> Result<(), YamlError> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    if id != stem {
        return Err(YamlError::Invalid {
            path: path.to_path_buf(),
            message: format!("id `{id}` differs from the file name `{stem}`: rename one of them"),
        });
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
    fn unknown_field_is_an_error() {
        let err = parse::<Sample>(Path::new("s.yaml"), "name: a\nsize: 1\nsise: 2\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `sise`"), "{err}");
    }
}
