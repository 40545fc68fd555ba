//! How a case's kernels boot (`mode:` in a scenario, `--mode`, `KDRILL_MODE`): `faithful` or `fast`.

use serde::Deserialize;

/// How a case's kernels boot (README, "Boot modes").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BootMode {
    /// As on a real machine: the bzImage through the firmware (SeaBIOS) and its own
    /// decompressor, the capture bzImage loaded by `kexec -p` with purgatory's SHA-256 check,
    /// the scenario's makedumpfile options.
    Faithful,
    /// Under emulation, skip what no kdump code runs in: the uncompressed vmlinux through its
    /// PVH entry (no firmware, no decompression), the capture kernel as that ELF vmlinux with
    /// `kexec -p -i` (no purgatory checksums), LZO (`-l`) instead of zlib (`-c`).
    #[default]
    Fast,
}

impl BootMode {
    pub fn word(self) -> &'static str {
        match self {
            BootMode::Faithful => "faithful",
            BootMode::Fast => "fast",
        }
    }

    /// `faithful` or `fast` (`KDRILL_MODE`, `--mode`).
    pub fn from_word(word: &str) -> Option<BootMode> {
        [BootMode::Faithful, BootMode::Fast]
            .into_iter()
            .find(|m| m.word() == word)
    }
}
