//! Debian packages from the archives in `archives.yaml`, through kdrill's own apt tree: the
//! tree (I/O: `apt-get update`, `apt-helper download-file`), which suite a failed update names,
//! the index reader, Debian version
//! order, the choice of packages (pure), and pinning a kernel entry to exact packages.

pub mod failures;
pub mod index;
pub mod pin;
pub mod repin;
pub mod resolve;
pub mod tree;
