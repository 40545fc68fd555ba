//! kdrill's own Debian package for a drill guest: the case's kdrill binary packed as `cargo xtask
//! dist` packs it (uncompressed: only installed once, in the guest), so the guest installs kdrill
//! with dpkg as an operator would and runs `kdrill check` and `kdrill drill` from `/usr/bin`.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// `kdrill dist-assets` renders a few pages.
const ASSETS_DEADLINE: Duration = Duration::from_secs(60);

/// The checkout kdrill was built from, when it is still there (`dist/systemd/` and
/// `calibration/` go into the package); `None` for an installed kdrill.
pub fn checkout() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    root.join("dist/systemd")
        .is_dir()
        .then(|| root.to_path_buf())
}

/// Packs `binary` into `out` (`kdrill_<version>_<arch>.deb`) from the checkout's files.
pub fn build(binary: &Path, checkout: &Path, out: &Path) -> Result<PathBuf, String> {
    let assets = out.join("assets");
    std::fs::create_dir_all(&assets).map_err(|e| format!("{}: {e}", assets.display()))?;
    let mut command = std::process::Command::new(binary);
    command.arg("dist-assets").arg(&assets);
    let done = crate::host::process::run(&mut command, ASSETS_DEADLINE)
        .map_err(|e| format!("`{} dist-assets`: {e}", binary.display()))?;
    if !done.status.success() {
        return Err(format!(
            "`{} dist-assets` failed ({}): {}",
            binary.display(),
            done.status,
            done.last_line()
        ));
    }
    let inputs = crate::host::deb::Inputs {
        binary: binary.to_path_buf(),
        assets,
        project: checkout.to_path_buf(),
        version: crate::host::deb::VERSION.to_string(),
        compression: crate::host::deb::Compression::None,
    };
    crate::host::deb::build(&inputs, out).map_err(|e| e.to_string())
}
