//! A kernel's debug vmlinux (`linux-image-<release>-dbg`, ~850 MB), fetched through kdrill's
//! own apt tree like the kernel itself and cached as the vmlinux alone: for `crash` in
//! `cargo xtask deep`, never for a normal run.
//!
//! The `.deb` is checked against the sha256 of the archive's signed index (the entry pins
//! only the image), streamed through `dpkg-deb --fsys-tarfile | tar -x` for the one file
//! `usr/lib/debug/boot/vmlinux-<release>`, then deleted.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::fetch::apt::pin;
use crate::fetch::apt::resolve::release_of;
use crate::fetch::apt::tree::Tree;
use crate::fetch::kernel::FetchError;
use crate::host::lock::FileLock;
use crate::host::process;
use crate::spec::kernel::KernelSpec;

/// Extracting a 4 GB vmlinux from an 850 MB `.deb`.
const EXTRACT_DEADLINE: Duration = Duration::from_secs(900);

fn failed(entry: &str, detail: String) -> FetchError {
    FetchError::Resolve {
        entry: entry.to_string(),
        detail,
    }
}

/// The debug vmlinux of a Debian kernel entry, fetched once into `<cache>/dbg/`.
pub fn vmlinux(spec: &KernelSpec, cache: &Path) -> Result<PathBuf, FetchError> {
    let pinned = pin::pin(spec, cache)?
        .ok_or_else(|| failed(&spec.id, "a local kernel has no Debian -dbg package".into()))?;
    let release = release_of(&pinned.image.package)
        .ok_or_else(|| {
            failed(
                &spec.id,
                format!("{} names no release", pinned.image.package),
            )
        })?
        .to_string();
    let package = format!("linux-image-{release}-dbg");
    let dir = cache
        .join("dbg")
        .join(format!("{package}_{}", pinned.image.version));
    let out = dir.join(format!("vmlinux-{release}"));
    if out.is_file() {
        return Ok(out);
    }
    std::fs::create_dir_all(&dir).map_err(|e| failed(&spec.id, e.to_string()))?;
    let _lock = FileLock::acquire(&dir.with_extension("lock"), EXTRACT_DEADLINE * 2)?;
    if out.is_file() {
        return Ok(out);
    }
    let tree = Tree::new(cache, &pinned.archives);
    let index = tree.index_with(&pinned.suite, &package, &pinned.image.version)?;
    let record = index
        .find(&package, &pinned.image.version)
        .ok_or_else(|| {
            failed(
                &spec.id,
                format!("{package} {} is not in the archive", pinned.image.version),
            )
        })?
        .clone();
    let deb = dir.join("package.deb");
    eprintln!(
        "kdrill: fetching {package} {} (~850 MB, for crash)",
        record.version
    );
    tree.download(&record.url(), &record.sha256, &deb)?;
    let partial = dir.join("vmlinux.partial");
    let member = format!("./usr/lib/debug/boot/vmlinux-{release}");
    let script = r#"dpkg-deb --fsys-tarfile "$1" | tar -xO "$2" > "$3""#;
    let done = process::run(
        Command::new("sh")
            .args(["-c", script, "sh"])
            .arg(&deb)
            .arg(&member)
            .arg(&partial),
        EXTRACT_DEADLINE,
    )?;
    let _ = std::fs::remove_file(&deb);
    if !done.status.success() {
        return Err(failed(
            &spec.id,
            format!("extracting {member} from {package}: {}", done.last_line()),
        ));
    }
    std::fs::rename(&partial, &out).map_err(|e| failed(&spec.id, e.to_string()))?;
    Ok(out)
}
