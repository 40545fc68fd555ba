//! The uncompressed vmlinux of a kernel, extracted once per bzImage into the per-user cache
//! (`<cache>/vmlinux/<sha256 of the bzImage>/vmlinux`, under a file lock) for `fast` boots: QEMU
//! starts it through its PVH entry, and `kexec -p -i` loads it as the capture kernel, so neither
//! boot runs firmware or the kernel's own decompressor under emulation.

pub mod bzimage;
pub mod elf;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::fetch::kernel::{sha256_file, FetchError};
use crate::host::lock::{FileLock, LockError};

/// Extraction takes about a second (xz of Debian's 8 MB bzImage into 66 MB); waiting for
/// another process doing it is bounded generously.
pub const LOCK_WAIT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum VmlinuxError {
    #[error("{bzimage}: {source}")]
    Image {
        bzimage: PathBuf,
        #[source]
        source: bzimage::BzImageError,
    },
    #[error(transparent)]
    Fetch(Box<FetchError>),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The uncompressed vmlinux of `vmlinuz`, extracted into `cache` on first use.
pub fn uncompressed(vmlinuz: &Path, cache: &Path) -> Result<PathBuf, VmlinuxError> {
    let digest = sha256_file(vmlinuz).map_err(|e| VmlinuxError::Fetch(Box::new(e)))?;
    let dir = cache.join("vmlinux").join(&digest[..32]);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| VmlinuxError::Io { path, source }
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let out = dir.join("vmlinux");
    if out.is_file() {
        return Ok(out);
    }
    let _lock = FileLock::acquire(&dir.join("lock"), LOCK_WAIT)?;
    if out.is_file() {
        return Ok(out);
    }
    let image = std::fs::read(vmlinuz).map_err(io(vmlinuz))?;
    let elf = bzimage::extract(&image).map_err(|source| VmlinuxError::Image {
        bzimage: vmlinuz.into(),
        source,
    })?;
    // Written aside and renamed: a file named `vmlinux` is always whole.
    let partial = dir.join("vmlinux.partial");
    std::fs::write(&partial, &elf).map_err(io(&partial))?;
    std::fs::rename(&partial, &out).map_err(io(&out))?;
    Ok(out)
}

/// `vmlinux` with its physical load addresses moved to `base` (see `elf::rebase`), beside it in
/// the cache: the capture kernel of a fast boot, loaded by `kexec -p` into the reservation there.
pub fn rebased(vmlinux: &Path, base: u64) -> Result<PathBuf, VmlinuxError> {
    let out = vmlinux.with_file_name(format!("vmlinux-at-{base:#x}"));
    if out.is_file() {
        return Ok(out);
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| VmlinuxError::Io { path, source }
    };
    let dir = vmlinux.parent().unwrap_or(Path::new("."));
    let _lock = FileLock::acquire(&dir.join("lock"), LOCK_WAIT)?;
    if out.is_file() {
        return Ok(out);
    }
    let mut elf = std::fs::read(vmlinux).map_err(io(vmlinux))?;
    elf::rebase(&mut elf, base).map_err(|detail| VmlinuxError::Image {
        bzimage: vmlinux.into(),
        source: bzimage::BzImageError::NotElf(detail),
    })?;
    let partial = out.with_extension("partial");
    std::fs::write(&partial, &elf).map_err(io(&partial))?;
    std::fs::rename(&partial, &out).map_err(io(&out))?;
    Ok(out)
}
