//! Building the Debian image as an ordinary user: mmdebstrap's `unshare` mode runs its hooks
//! as a subordinate uid, which must reach the scratch folder and write the disk file.

use std::path::Path;

use crate::guest::debian::{io, set_mode, ImageError};

/// Not root, mmdebstrap runs in unshare mode and its hooks as a subordinate uid, which may enter
/// the scratch folder (not list it) and write the disk file kdrill made for it; the disk is
/// kdrill's own, closed again after the build.
pub fn can_write(scratch: &Path, disk: &Path) -> Result<(), ImageError> {
    use std::os::unix::fs::PermissionsExt;
    for dir in scratch.ancestors().skip(1) {
        let mode = std::fs::metadata(dir)
            .map_err(io(dir))?
            .permissions()
            .mode()
            & 0o7777;
        if !others_may_enter(mode) {
            return Err(ImageError::Unenterable {
                dir: dir.to_path_buf(),
                mode,
            });
        }
    }
    set_mode(scratch, 0o711)?;
    std::fs::File::create(disk).map_err(io(disk))?;
    set_mode(disk, 0o666)
}

/// Whether a folder of this mode lets any user pass through it.
fn others_may_enter(mode: u32) -> bool {
    mode & 0o001 != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_scratch_folder_the_namespace_cannot_reach_is_refused_with_the_way_out() {
        let top = tempfile::tempdir().unwrap();
        let closed = top.path().join("closed");
        let scratch = closed.join("scratch");
        std::fs::create_dir_all(&scratch).unwrap();
        set_mode(top.path(), 0o755).unwrap();
        set_mode(&closed, 0o700).unwrap();
        let err = can_write(&scratch, &scratch.join("disk.raw")).unwrap_err();
        assert!(
            matches!(&err, ImageError::Unenterable { dir, mode: 0o700 } if *dir == closed),
            "{err}"
        );
        assert!(err.to_string().contains("KDRILL_CACHE"), "{err}");

        set_mode(&closed, 0o711).unwrap();
        let disk = scratch.join("disk.raw");
        can_write(&scratch, &disk).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&scratch), mode(&disk)), (0o711, 0o666));
    }
}
