//! The project's commented data: kernel entries, crash scenarios, the image recipe, the capture userspaces, and YAML loading with `file:line:column` errors.

pub mod archive;
pub mod bounds;
pub mod cmdline;
pub mod crashkernel;
pub mod debian;
pub mod disk;
pub mod drill;
pub mod excerpt;
pub mod expect;
pub mod image;
pub mod images;
pub mod kernel;
pub mod mode;
pub mod scenario;
pub mod setup;
pub mod trigger;
pub mod userspace;
pub mod yaml;
