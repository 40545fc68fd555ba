//! What the integration tests share: the workspace folder and the `kdrill` binary as a command.

use std::path::{Path, PathBuf};

/// The checkout this test binary was built from.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The `kdrill` binary, with no project root forced by the environment.
pub fn kdrill() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("kdrill").expect("the kdrill binary");
    cmd.env_remove("KDRILL_ROOT").env_remove("KDRILL_OUT");
    cmd
}
