//! How a case's kernels boot (`mode:` in a scenario, `--mode`, `KDRILL_MODE`): `faithful` or `fast`,
//! and the [`Plan`] of one case's boot that follows from it.

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

/// The boot of one case, recorded in `result.json`: decided by `case::plan::plan`, read by the
/// guest's settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Plan {
    pub mode: BootMode,
    /// Start from a saved shape (the first boot up to "capture kernel loaded", or the image's
    /// own kdump service ready) instead of booting.
    pub restore: bool,
    /// Why a case that could start from a shape boots instead, when it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boots_because: Option<String>,
    /// Why a case meant to be `fast` boots `faithful`, when it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faithful_because: Option<String>,
    /// The first kernel's `crashkernel=`: the kernel entry's, at
    /// `case::plan::FAST_CRASH_BASE_MIB` for a fast boot.
    pub crashkernel: String,
    /// `kexec -p`'s options in the first boot.
    pub kexec: Vec<String>,
    /// makedumpfile's options in the capture boot.
    pub makedumpfile: Vec<String>,
}
