//! Reading apt's package indexes (`Packages` files, deb822 paragraphs) into the records kdrill
//! needs: name, version, sha256, size, where the file is, and its `Depends`.

use crate::host::packages::version::Constraint;

/// One binary package as an archive index lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub package: String,
    pub version: String,
    pub sha256: String,
    pub size: u64,
    /// The path of the `.deb` under the archive's URL (`pool/main/l/linux/…`).
    pub filename: String,
    /// The `Depends` field, each entry a list of alternatives.
    pub depends: Vec<Vec<Dependency>>,
    /// The index this record came from (a file name under apt's lists folder), for messages.
    pub origin: String,
    /// The archive's URL (`http://deb.debian.org/debian`) and suite of that index, filled in by
    /// the tree that read it.
    pub site: String,
    pub suite: String,
}

impl Record {
    /// Where the `.deb` is served.
    pub fn url(&self) -> String {
        format!("{}/{}", self.site.trim_end_matches('/'), self.filename)
    }
}

/// One alternative of a `Depends` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub package: String,
    pub constraint: Option<Constraint>,
}

/// The records of one `Packages` file whose names pass `keep` (a whole Debian archive lists
/// ~60 000 packages; kdrill needs the kernel ones). Paragraphs missing a field kdrill needs are
/// left out.
pub fn parse(text: &str, origin: &str, keep: &dyn Fn(&str) -> bool) -> Vec<Record> {
    let mut records = Vec::new();
    for paragraph in text.split("\n\n") {
        let Some(name) = field(paragraph, "Package") else {
            continue;
        };
        if !keep(name) {
            continue;
        }
        let (Some(version), Some(sha256), Some(filename)) = (
            field(paragraph, "Version"),
            field(paragraph, "SHA256"),
            field(paragraph, "Filename"),
        ) else {
            continue;
        };
        records.push(Record {
            package: name.to_string(),
            version: version.to_string(),
            sha256: sha256.to_ascii_lowercase(),
            size: field(paragraph, "Size")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            filename: filename.to_string(),
            depends: field(paragraph, "Depends")
                .map(parse_depends)
                .unwrap_or_default(),
            origin: origin.to_string(),
            site: String::new(),
            suite: String::new(),
        });
    }
    records
}

/// The value of a single-line field of a paragraph (`Name: value`), continuation lines joined.
fn field<'a>(paragraph: &'a str, name: &str) -> Option<&'a str> {
    for line in paragraph.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        if key.eq_ignore_ascii_case(name) && !key.starts_with([' ', '\t']) {
            // The fields kdrill reads fit on one line in Debian's indexes; a folded one is read
            // up to its first line, which still names whole dependencies.
            return Some(value.trim());
        }
    }
    None
}

/// `a (>= 1), b | c (= 2), d:any` → `[[a >= 1], [b, c = 2], [d]]`.
pub fn parse_depends(text: &str) -> Vec<Vec<Dependency>> {
    text.split(',')
        .map(|entry| {
            entry
                .split('|')
                .filter_map(|alt| {
                    let alt = alt.trim();
                    let (name, rest) = match alt.find(['(', ' ', '[', '<']) {
                        Some(i) => (&alt[..i], &alt[i..]),
                        None => (alt, ""),
                    };
                    let name = name.split(':').next().unwrap_or(name).trim();
                    if name.is_empty() {
                        return None;
                    }
                    let constraint = rest
                        .split_once('(')
                        .and_then(|(_, r)| r.split_once(')'))
                        .and_then(|(inside, _)| {
                            let inside = inside.trim();
                            let split = inside
                                .find(|c: char| !matches!(c, '<' | '>' | '='))
                                .unwrap_or(inside.len());
                            let (op, version) = inside.split_at(split);
                            (!op.is_empty()).then(|| Constraint {
                                op: op.to_string(),
                                version: version.trim().to_string(),
                            })
                        });
                    Some(Dependency {
                        package: name.to_string(),
                        constraint,
                    })
                })
                .collect::<Vec<_>>()
        })
        .filter(|alts| !alts.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = "\
Package: linux-headers-6.1.0-47-amd64
Source: linux
Version: 6.1.170-3
Installed-Size: 5432
Depends: linux-headers-6.1.0-47-common (= 6.1.170-3), linux-kbuild-6.1 (>= 6.1.170-3), linux-compiler-gcc-12-x86
Description: Header files for Linux 6.1.0-47-amd64
 This package provides the architecture-specific kernel header files.
Filename: pool/main/l/linux/linux-headers-6.1.0-47-amd64_6.1.170-3_amd64.deb
Size: 1500220
SHA256: 2A40C463E108B1EA3ABF2E16E38EB9E27B237693B974B862ADDE73873C7D85C1

Package: zsh
Version: 5.9-4
Filename: pool/main/z/zsh/zsh_5.9-4_amd64.deb
SHA256: 00

Package: linux-image-6.1.0-47-amd64-unsigned
Version: 6.1.170-3
Filename: pool/main/l/linux/linux-image-6.1.0-47-amd64-unsigned_6.1.170-3_amd64.deb
Size: 70000000

Package: linux-image-6.12.117+deb12-amd64-unsigned
Version: 6.12.117-1~deb12u1
Depends: kmod, linux-base (>= 4.12~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool
Filename: pool/main/l/linux/linux-image-6.12.117+deb12-amd64-unsigned_6.12.117-1~deb12u1_amd64.deb
Size: 71000000
SHA256: 5de3e329c887173debec07ff1325c975cf4f286d364929d17fecb1e1325c5c46
";

    #[test]
    fn reads_the_records_it_keeps_and_needs() {
        let records = parse(INDEX, "lists/x_Packages", &|n| n.starts_with("linux-"));
        // zsh is not kept; the -47 image has no SHA256 and is left out.
        let names: Vec<&str> = records.iter().map(|r| r.package.as_str()).collect();
        assert_eq!(
            names,
            [
                "linux-headers-6.1.0-47-amd64",
                "linux-image-6.12.117+deb12-amd64-unsigned"
            ]
        );
        let headers = &records[0];
        assert_eq!(headers.version, "6.1.170-3");
        assert_eq!(headers.size, 1_500_220);
        assert_eq!(
            headers.sha256,
            "2a40c463e108b1ea3abf2e16e38eb9e27b237693b974b862adde73873c7d85c1"
        );
        assert_eq!(headers.depends.len(), 3);
        assert_eq!(headers.depends[1][0].package, "linux-kbuild-6.1");
        assert_eq!(
            headers.depends[1][0].constraint,
            Some(Constraint {
                op: ">=".into(),
                version: "6.1.170-3".into()
            })
        );
        assert_eq!(headers.depends[2][0].constraint, None);
        assert_eq!(records[1].depends[2].len(), 2, "alternatives are kept");
        assert_eq!(records[1].origin, "lists/x_Packages");
    }

    #[test]
    fn depends_with_arch_qualifiers_and_restrictions() {
        let d = parse_depends("gcc-12:any (>= 12), libc6 [amd64] (<< 3)|foo");
        assert_eq!(d[0][0].package, "gcc-12");
        assert_eq!(d[0][0].constraint.as_ref().unwrap().op, ">=");
        assert_eq!(d[1][0].package, "libc6");
        assert_eq!(d[1][0].constraint.as_ref().unwrap().version, "3");
        assert_eq!(d[1][1].package, "foo");
    }
}
