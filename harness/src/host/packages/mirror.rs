//! Where the Debian image's packages come from: the recipe's `mirror:` and `security:`, where
//! `host` means the mirror this host's apt already uses for the suite (`/etc/apt/sources.list`
//! and `sources.list.d/`, one-line and deb822), else deb.debian.org. Pure over the files' text;
//! [`host_sources`] reads them.

use std::path::Path;

/// Used when `host` finds nothing for the suite (a host of another release or distribution).
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
pub const DEFAULT_SECURITY: &str = "http://deb.debian.org/debian-security";

/// One `deb` entry of an apt sources file: a URI and the suites it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub uri: String,
    pub suites: Vec<String>,
}

/// The `deb` entries of a one-line `sources.list` (options in `[…]` skipped, `deb-src` left out).
pub fn parse_one_line(text: &str) -> Vec<Entry> {
    let mut entries = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace().peekable();
        if words.next() != Some("deb") {
            continue;
        }
        if words.peek().is_some_and(|w| w.starts_with('[')) {
            for word in words.by_ref() {
                if word.ends_with(']') {
                    break;
                }
            }
        }
        if let (Some(uri), Some(suite)) = (words.next(), words.next()) {
            entries.push(Entry {
                uri: uri.to_string(),
                suites: vec![suite.to_string()],
            });
        }
    }
    entries
}

/// The `deb` entries of a deb822 `.sources` file (`Enabled: no` paragraphs left out).
pub fn parse_deb822(text: &str) -> Vec<Entry> {
    let mut entries = Vec::new();
    for paragraph in text.split("\n\n") {
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in paragraph.lines() {
            if line.trim_start().starts_with('#') || line.trim().is_empty() {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = fields.last_mut() {
                    value.push(' ');
                    value.push_str(line.trim());
                }
            } else if let Some((key, value)) = line.split_once(':') {
                fields.push((key.trim().to_ascii_lowercase(), value.trim().to_string()));
            }
        }
        let get = |key: &str| {
            fields
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let is_deb = get("types").is_some_and(|t| t.split_whitespace().any(|w| w == "deb"));
        let enabled = get("enabled").is_none_or(|e| !e.eq_ignore_ascii_case("no"));
        let (Some(uris), Some(suites)) = (get("uris"), get("suites")) else {
            continue;
        };
        if !is_deb || !enabled {
            continue;
        }
        for uri in uris.split_whitespace() {
            entries.push(Entry {
                uri: uri.to_string(),
                suites: suites.split_whitespace().map(String::from).collect(),
            });
        }
    }
    entries
}

/// The URI serving `suite` among `entries` (http or https only: a `file:` or `cdrom:` source
/// cannot be handed to a build).
pub fn uri_for(entries: &[Entry], suite: &str) -> Option<String> {
    entries
        .iter()
        .filter(|e| e.uri.starts_with("http://") || e.uri.starts_with("https://"))
        .find(|e| e.suites.iter().any(|s| s == suite))
        .map(|e| e.uri.trim_end_matches('/').to_string())
}

/// The apt source lines for the image: `<suite>` and `<suite>-updates` from the mirror,
/// `<suite>-security` from the security archive (unless `none`). `host` values are looked up in
/// `host` entries.
pub fn source_lines(
    suite: &str,
    components: &[String],
    mirror: &str,
    security: &str,
    host: &[Entry],
) -> Vec<String> {
    let components = components.join(" ");
    let mirror = match mirror {
        "host" => uri_for(host, suite).unwrap_or_else(|| DEFAULT_MIRROR.into()),
        url => url.trim_end_matches('/').to_string(),
    };
    let mut lines = vec![
        format!("deb {mirror} {suite} {components}"),
        format!("deb {mirror} {suite}-updates {components}"),
    ];
    let security_suite = format!("{suite}-security");
    let security = match security {
        "none" => None,
        "host" => Some(uri_for(host, &security_suite).unwrap_or_else(|| DEFAULT_SECURITY.into())),
        url => Some(url.trim_end_matches('/').to_string()),
    };
    if let Some(security) = security {
        lines.push(format!("deb {security} {security_suite} {components}"));
    }
    lines
}

/// The host's apt entries: `sources.list`, `sources.list.d/*.list` and `*.sources` under `etc_apt`
/// (`/etc/apt`). Unreadable files are skipped: the defaults stand in.
pub fn host_sources(etc_apt: &Path) -> Vec<Entry> {
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let mut entries = parse_one_line(&read(&etc_apt.join("sources.list")));
    let mut files: Vec<_> = std::fs::read_dir(etc_apt.join("sources.list.d"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    for file in files {
        match file.extension().and_then(|e| e.to_str()) {
            Some("list") => entries.extend(parse_one_line(&read(&file))),
            Some("sources") => entries.extend(parse_deb822(&read(&file))),
            _ => {}
        }
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEB822: &str = "Types: deb\n# http://snapshot.debian.org/archive/debian/20250520T000000Z\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb\nURIs: http://security.example/debian-security/\nSuites: bookworm-security\nComponents: main\n\nTypes: deb\nEnabled: no\nURIs: http://off.example/debian\nSuites: bookworm\n";

    #[test]
    fn deb822_paragraphs_give_their_uris_and_suites() {
        let entries = parse_deb822(DEB822);
        assert_eq!(entries.len(), 2, "{entries:?}");
        assert_eq!(
            uri_for(&entries, "bookworm").as_deref(),
            Some("http://deb.debian.org/debian")
        );
        assert_eq!(
            uri_for(&entries, "bookworm-security").as_deref(),
            Some("http://security.example/debian-security")
        );
    }

    #[test]
    fn one_line_entries_skip_options_sources_and_comments() {
        let text = "# deb http://commented/debian bookworm main\ndeb-src http://src/debian bookworm main\ndeb [arch=amd64 signed-by=/k.gpg] http://ftp.de.debian.org/debian/ bookworm main\ndeb cdrom:[Debian]/ bookworm main\n";
        let entries = parse_one_line(text);
        assert_eq!(entries.len(), 2);
        assert_eq!(
            uri_for(&entries, "bookworm").as_deref(),
            Some("http://ftp.de.debian.org/debian")
        );
    }

    #[test]
    fn host_mirrors_with_defaults_when_the_host_has_none() {
        let comps = ["main".to_string()];
        let host = parse_deb822(DEB822);
        assert_eq!(
            source_lines("bookworm", &comps, "host", "host", &host),
            [
                "deb http://deb.debian.org/debian bookworm main",
                "deb http://deb.debian.org/debian bookworm-updates main",
                "deb http://security.example/debian-security bookworm-security main",
            ]
        );
        // An Ubuntu host has no bookworm: deb.debian.org for both.
        let ubuntu = parse_one_line("deb http://archive.ubuntu.com/ubuntu noble main\n");
        let lines = source_lines("bookworm", &comps, "host", "host", &ubuntu);
        assert_eq!(lines[0], "deb http://deb.debian.org/debian bookworm main");
        assert_eq!(
            lines[2],
            "deb http://deb.debian.org/debian-security bookworm-security main"
        );
        let none = source_lines("bookworm", &comps, "http://m/debian/", "none", &host);
        assert_eq!(none.len(), 2);
        assert_eq!(none[0], "deb http://m/debian bookworm main");
    }
}
