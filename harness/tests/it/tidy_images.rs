//! Style check as a test: an image is a value. No code outside the registry (`spec/images.rs`)
//! names an image or an image kind, or matches on `ImageKind`'s variants: what differs between
//! images is asked of the image, so a new recipe in `images/` needs no Rust. The one other place
//! that matches on a kind is where each kind picks its flow (`case/image.rs`); it names no image.
//! Tests may name the images they load.

use std::collections::BTreeSet;

use crate::support::workspace;
use crate::tidy::rust_files;

/// The one module that may spell images' names and kinds.
const REGISTRY: &str = "harness/src/spec/images.rs";

/// Where each image kind picks its flow: it may match on `ImageKind`, not name an image.
const KIND_FLOWS: &str = "harness/src/case/image.rs";

/// Files where `"debian"` is a distribution's id (`/etc/os-release`'s `ID=`), not an image.
const OS_RELEASE_IDS: &[&str] = &[
    "harness/src/readiness/distro.rs",
    "harness/src/host/packages/view.rs",
    "harness/src/host/packages/plan.rs",
    "harness/src/host/packages/tests.rs",
];

/// Every image name, alias and kind word of the project's recipes.
fn image_words() -> BTreeSet<String> {
    let mut words = BTreeSet::new();
    for entry in std::fs::read_dir(workspace().join("images"))
        .unwrap()
        .flatten()
    {
        let path = entry.path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if path.extension().is_none_or(|e| e != "yaml") || stem == "userspace" {
            continue;
        }
        words.insert(stem.to_string());
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines() {
            if let Some(kind) = line.strip_prefix("kind: ") {
                words.insert(kind.trim().to_string());
            }
            if let Some(list) = line.strip_prefix("aliases: ") {
                for alias in list.trim_matches(|c| c == '[' || c == ']').split(',') {
                    words.insert(alias.trim().to_string());
                }
            }
        }
    }
    words
}

#[test]
fn no_code_outside_the_registry_names_an_image_or_matches_on_its_kind() {
    let root = workspace();
    let words = image_words();
    for word in ["minimal", "debian", "debian-bookworm", "debian-trixie"] {
        assert!(
            words.contains(word),
            "{word} is not an image word: {words:?}"
        );
    }
    let mut files = rust_files(&root.join("harness/src"));
    files.extend(rust_files(&root.join("xtask/src")));
    let mut found = Vec::new();
    for file in files {
        let rel = file
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        // The registry, and test modules of their own (`tests.rs`), which may name images.
        if rel == REGISTRY || rel.ends_with("/tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        // A module's tests (its `#[cfg(test)]` part, last by the house's habit) may name the
        // images they load.
        let code_part = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (n, line) in code_part.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for word in &words {
                let quoted = format!("\"{word}\"");
                if code.contains(&quoted)
                    && !(word == "debian" && OS_RELEASE_IDS.contains(&rel.as_str()))
                {
                    found.push(format!("{rel}:{}: names the image word {quoted}", n + 1));
                }
            }
            if code.contains("ImageKind::") && rel != KIND_FLOWS {
                found.push(format!("{rel}:{}: matches on ImageKind", n + 1));
            }
        }
    }
    let flows = std::fs::read_to_string(root.join(KIND_FLOWS)).unwrap();
    assert!(
        flows.contains("ImageKind::Minimal") && flows.contains("ImageKind::Debian"),
        "{KIND_FLOWS} no longer picks each kind's flow: update KIND_FLOWS"
    );
    assert!(
        found.is_empty(),
        "ask the image (spec/images.rs: `Image`'s methods, `Registry::find`) instead of naming it:\n{}",
        found.join("\n")
    );
}
