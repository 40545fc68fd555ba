//! What a root has installed, from dpkg's own record of it (`var/lib/dpkg/status`): the version
//! of each package whose status is `install ok installed`. Pure over the file's text.

use std::collections::BTreeMap;

/// Installed package → version, from the text of a dpkg status file. Paragraphs of packages
/// that are not fully installed (removed with their configuration kept, half-installed) are
/// left out; an architecture qualifier is not part of the name.
pub fn installed(status: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for paragraph in status.split("\n\n") {
        let (mut name, mut version, mut state) = (None, None, None);
        for line in paragraph.lines() {
            if line.starts_with([' ', '\t']) {
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match key {
                "Package" => name = Some(value),
                "Version" => version = Some(value),
                "Status" => state = Some(value),
                _ => {}
            }
        }
        if let (Some(name), Some(version), Some("install ok installed")) = (name, version, state) {
            out.insert(name.to_string(), version.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Package: makedumpfile\n\
Status: install ok installed\n\
Priority: optional\n\
Architecture: amd64\n\
Version: 1:1.7.6-1\n\
Depends: perl:any, libc6 (>= 2.34)\n\
Description: VMcore extraction tool\n \
This program shrinks a vmcore.\n \
Version: 9:9.9-9\n\
\n\
Package: kexec-tools\n\
Status: install ok installed\n\
Version: 1:2.0.29-2+b2\n\
\n\
Package: old-tool\n\
Status: deinstall ok config-files\n\
Version: 1.0-1\n\
\n\
Package: busybox-static\n\
Status: install ok installed\n\
Version: 1:1.37.0-6+b9\n";

    #[test]
    fn installed_packages_and_their_versions() {
        let got = installed(STATUS);
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            [
                ("busybox-static".to_string(), "1:1.37.0-6+b9".to_string()),
                ("kexec-tools".to_string(), "1:2.0.29-2+b2".to_string()),
                // The description's indented `Version:` line is not the package's.
                ("makedumpfile".to_string(), "1:1.7.6-1".to_string()),
            ]
        );
    }

    #[test]
    fn an_empty_or_odd_file_lists_nothing() {
        assert!(installed("").is_empty());
        assert!(installed("garbage\n\nPackage: x\n").is_empty());
    }
}
