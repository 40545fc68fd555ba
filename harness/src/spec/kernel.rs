//! Kernel matrix entries (`kernels/*.yaml`): where a guest kernel comes from and how its guest is sized.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::spec::userspace::Userspace;
use crate::spec::yaml::{self, YamlError};

/// One kernel of the matrix, as written in `kernels/<id>.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelSpec {
    /// User-facing id, e.g. `debian-6.1`; must equal the file stem.
    pub id: String,
    /// Why this kernel is in the matrix.
    pub why: String,
    pub source: KernelSource,
    #[serde(default)]
    pub guest: GuestSize,
    /// Capability gates: scenario id → why the route cannot work on this kernel. These cases
    /// are reported as SKIP with the reason and are not run; an undeclared gap is a FAIL.
    #[serde(default)]
    pub skip: BTreeMap<String, String>,
    /// Whose tools capture this kernel (`images/userspace.yaml`): a Debian release, or `host`;
    /// by default the entry's own release (`suite:` up to its first `-`), `host` for a local
    /// kernel. A scenario, a matrix block or `--userspace` may name another.
    #[serde(default)]
    pub userspace: Option<Userspace>,
    /// The file this entry was read from (archives are looked up beside its `kernels/` folder).
    #[serde(skip)]
    pub path: PathBuf,
}

/// The id of a disk image's own kernel in case ids (`own/sysrq@golden`).
pub const OWN: &str = "own";
/// A disk image's case's `crashkernel=` when none is asked for: its bootloader's own.
pub const OWN_CRASHKERNEL: &str = "image";

impl KernelSpec {
    /// The entry of a disk image's cases: the image boots its own kernel, with `memory_mib` and
    /// `cpus` (0: the image recipe's; calibrate sets its sizes here); its `crashkernel=` is the
    /// image's own unless the case asks for one.
    pub fn own(memory_mib: u32, cpus: u32) -> KernelSpec {
        KernelSpec {
            id: OWN.into(),
            why: "the disk image boots its own kernel".into(),
            source: KernelSource::Image,
            guest: GuestSize {
                memory_mib,
                cpus,
                crashkernel: OWN_CRASHKERNEL.into(),
            },
            skip: BTreeMap::new(),
            userspace: None,
            path: PathBuf::new(),
        }
    }

    /// The project folder of this entry: the parent of its `kernels/` folder.
    pub fn project_root(&self) -> Option<&Path> {
        self.path.parent()?.parent()
    }

    /// The userspace of the kernel's own release: a Debian entry's suite up to its first `-`
    /// (`trixie-backports` → `trixie`); `host` for a local kernel, which has no release.
    pub fn own_userspace(&self) -> Userspace {
        match &self.source {
            KernelSource::Debian { suite, .. } => Userspace::of_suite(suite),
            KernelSource::Local { .. } | KernelSource::Image => Userspace::Host,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum KernelSource {
    /// A Debian binary package from the archives in `archives.yaml`, pinned by version and
    /// checksum, or `version: track` for the newest of its series and flavour.
    Debian {
        /// The release whose suites are searched: `bookworm` covers bookworm and
        /// bookworm-security (see `archives.yaml`).
        suite: String,
        /// The kernel series (`6.1`, `6.12`, `7.3`), or `newest` for the newest series the
        /// suite has: with `flavour`, names the kernels `version: track` follows and `cargo
        /// xtask kernels` compares the pin with.
        #[serde(default)]
        series: Option<String>,
        /// `amd64`, `cloud-amd64`, `rt-amd64`.
        #[serde(default)]
        flavour: Option<String>,
        /// The image package (`linux-image-<release>-unsigned`, or from 6.19 on
        /// `linux-binary-unsigned-<release>`); a tracking entry leaves it out (it is resolved).
        #[serde(default)]
        package: Option<String>,
        /// A Debian version, or `track`.
        version: String,
        #[serde(default)]
        sha256: Option<String>,
        /// The other packages of a kernel Debian splits (6.19 and later: `linux-modules-<release>`
        /// and `linux-base-<release>`), at the image's version; a tracking entry leaves them out.
        #[serde(default)]
        parts: Vec<DebPackage>,
        /// Header packages to build out-of-tree modules (the crasher) against this kernel; a
        /// tracking entry leaves them out (they follow from the image's headers package).
        #[serde(default)]
        headers: Vec<DebPackage>,
    },
    /// A kernel the user built: a bzImage and its `/lib/modules/<release>` folder.
    Local { vmlinuz: PathBuf, modules: PathBuf },
    /// The kernel a disk image boots itself (its own bootloader picks it): nothing to fetch.
    /// Not written in `kernels/`; a case on a disk image has this entry ([`KernelSpec::own`]).
    #[serde(skip)]
    Image,
}

/// The word that makes a Debian entry follow its series' newest kernel.
pub const TRACK: &str = "track";
/// The `series` that follows the newest series of the entry's suite (sid, backports: 7.2 → 7.3).
pub const NEWEST: &str = "newest";

impl KernelSource {
    /// The pinned image package of a Debian entry (`None`: local, or tracking).
    pub fn pinned_image(&self) -> Option<DebPackage> {
        match self {
            KernelSource::Debian {
                package: Some(package),
                version,
                sha256: Some(sha256),
                ..
            } if version != TRACK => Some(DebPackage {
                package: package.clone(),
                version: version.clone(),
                sha256: sha256.clone(),
            }),
            _ => None,
        }
    }

    /// Does this entry follow the newest kernel of its series?
    pub fn is_tracking(&self) -> bool {
        matches!(self, KernelSource::Debian { version, .. } if version == TRACK)
    }
}

/// One pinned Debian package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebPackage {
    pub package: String,
    pub version: String,
    pub sha256: String,
}

/// Guest shape; every default is the smallest that passed on our 2-core machines.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestSize {
    #[serde(default = "default_memory")]
    pub memory_mib: u32,
    #[serde(default = "default_cpus")]
    pub cpus: u32,
    #[serde(default = "default_crashkernel")]
    pub crashkernel: String,
}

fn default_memory() -> u32 {
    1024
}
fn default_cpus() -> u32 {
    2
}
fn default_crashkernel() -> String {
    "256M".to_string()
}

impl Default for GuestSize {
    fn default() -> Self {
        GuestSize {
            memory_mib: default_memory(),
            cpus: default_cpus(),
            crashkernel: default_crashkernel(),
        }
    }
}

/// Reads `kernels/<id>.yaml` under `root`.
pub fn load(root: &Path, id: &str) -> Result<KernelSpec, YamlError> {
    from_file(&yaml::entry_path(
        root,
        "kernels",
        id,
        "no such kernel entry; known kernels",
    )?)
}

/// Parses one kernel entry file and checks that its id matches its file name.
pub fn from_file(path: &Path) -> Result<KernelSpec, YamlError> {
    let text = yaml::read(path)?;
    let mut spec: KernelSpec = yaml::parse(path, &text)?;
    yaml::check_id(path, &text, &spec.id)?;
    if let Some((scenario, _)) = spec.skip.iter().find(|(_, why)| why.trim().is_empty()) {
        return Err(yaml::at_key(
            path,
            &text,
            scenario,
            format!("skip: `{scenario}` needs a reason"),
        ));
    }
    check_skips(path, &text, &spec.skip)?;
    check_guest(&spec.guest).map_err(|(key, message)| yaml::at_key(path, &text, key, message))?;
    check_debian(path, &spec.source)?;
    spec.path = path.to_path_buf();
    if let KernelSource::Local { vmlinuz, modules } = &mut spec.source {
        // Relative paths in a local entry are relative to the entry's folder (for a `--root`
        // entry, the folder the operator wrote it in: the kernel is not copied into the cache).
        *vmlinuz = crate::host::bundle::beside(path, vmlinuz);
        *modules = crate::host::bundle::beside(path, modules);
    }
    Ok(spec)
}

/// The most vCPUs a guest may have: far above what a kdump test needs (1-2), and what QEMU gives
/// a guest without an accelerator's own limits getting in the way.
pub const MAX_CPUS: u32 = 64;
/// The least memory a guest may have: a Debian kernel, its initramfs and a 64 MiB capture
/// reservation need about that much to boot.
pub const MIN_MEMORY_MIB: u32 = 128;
/// The most memory a guest may have (64 GiB): QEMU allocates it on the host.
pub const MAX_MEMORY_MIB: u32 = 65536;

/// A guest's size is one QEMU can start and its `crashkernel=` one the kernel parses (the rule
/// `--crashkernel` uses) and fits in its memory. Err: the key to point at, and why.
pub fn check_guest(guest: &GuestSize) -> Result<(), (&'static str, String)> {
    if !(1..=MAX_CPUS).contains(&guest.cpus) {
        return Err((
            "cpus",
            format!("guest.cpus: {} is outside 1..={MAX_CPUS}", guest.cpus),
        ));
    }
    if !(MIN_MEMORY_MIB..=MAX_MEMORY_MIB).contains(&guest.memory_mib) {
        return Err((
            "memory_mib",
            format!(
                "guest.memory_mib: {} is outside {MIN_MEMORY_MIB}..={MAX_MEMORY_MIB} (MiB)",
                guest.memory_mib
            ),
        ));
    }
    crate::spec::setup::check_crashkernel(&guest.crashkernel)
        .map_err(|e| ("crashkernel", format!("guest.crashkernel: {e}")))?;
    use crate::spec::crashkernel::{from_cmdline, Resolution};
    let params = from_cmdline(&format!("crashkernel={}", guest.crashkernel));
    if let Some(Resolution::TooLarge { .. }) = params.resolve(u64::from(guest.memory_mib) << 20) {
        return Err((
            "crashkernel",
            format!(
                "guest.crashkernel: `{}` reserves all of memory_mib {}: reserve less, or give the guest more",
                guest.crashkernel, guest.memory_mib
            ),
        ));
    }
    Ok(())
}

/// Every `skip:` names a scenario of the project (`scenarios/` beside `kernels/`; an entry read
/// outside a project, with no such folder, cannot be checked).
fn check_skips(path: &Path, text: &str, skip: &BTreeMap<String, String>) -> Result<(), YamlError> {
    let Some(root) = path
        .parent()
        .and_then(Path::parent)
        .filter(|root| root.join("scenarios").is_dir())
    else {
        return Ok(());
    };
    let known = crate::spec::scenario::list_ids(root);
    for scenario in skip.keys() {
        if !known.contains(scenario) {
            let hint = match crate::spec::bounds::nearest(scenario, &known) {
                Some(k) => format!("did you mean `{k}`?"),
                None => format!("known scenarios: {}", known.join(", ")),
            };
            let message = format!("skip: no scenario `{scenario}`: {hint}");
            return Err(yaml::at(path, yaml::key_position(text, scenario), message));
        }
    }
    Ok(())
}

/// A Debian entry is either pinned (package, version, sha256) or tracking (`version: track`
/// with series and flavour, nothing pinned).
fn check_debian(path: &Path, source: &KernelSource) -> Result<(), YamlError> {
    let KernelSource::Debian {
        series,
        flavour,
        package,
        version,
        sha256,
        parts,
        headers,
        ..
    } = source
    else {
        return Ok(());
    };
    let invalid = |message: String| YamlError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    if version == TRACK {
        if series.is_none() || flavour.is_none() {
            return Err(invalid(
                "source: `version: track` needs `series` (e.g. \"6.1\", or `newest`) and `flavour` (e.g. amd64) to know which kernels to follow".into(),
            ));
        }
        if package.is_some() || sha256.is_some() || !parts.is_empty() || !headers.is_empty() {
            return Err(invalid(
                "source: a `version: track` entry pins nothing: remove `package`, `sha256`, `parts` and `headers` (they are resolved at run time), or pin a version".into(),
            ));
        }
        return Ok(());
    }
    if package.is_none() || sha256.is_none() {
        return Err(invalid(format!(
            "source: version {version} is a pin, so `package` and `sha256` are needed (or write `version: track`; `cargo xtask kernels --repin <id>` fills a pin in)"
        )));
    }
    Ok(())
}

/// The ids of every `kernels/*.yaml`, sorted.
pub fn list_ids(root: &Path) -> Vec<String> {
    yaml::stems(&root.join("kernels"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn local_paths_are_relative_to_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "mine.yaml",
            "id: mine\nwhy: my build\nsource:\n  kind: local\n  vmlinuz: build/bzImage\n  modules: build/lib/modules/6.6.0\n",
        );
        let spec = from_file(&path).unwrap();
        let KernelSource::Local { vmlinuz, modules } = spec.source else {
            panic!("not local")
        };
        assert_eq!(vmlinuz, dir.path().join("build/bzImage"));
        assert_eq!(modules, dir.path().join("build/lib/modules/6.6.0"));
        assert_eq!(spec.guest.crashkernel, "256M");
    }

    #[test]
    fn an_entry_is_captured_by_its_own_release_unless_it_names_another() {
        let dir = tempfile::tempdir().unwrap();
        let debian = "id: k\nwhy: w\nsource:\n  kind: debian\n  suite: trixie-backports\n  series: \"7.3\"\n  flavour: amd64\n  version: track\n";
        let spec = from_file(&write(dir.path(), "k.yaml", debian)).unwrap();
        assert_eq!(spec.own_userspace(), Userspace::Release("trixie".into()));
        assert_eq!(spec.userspace, None);
        let named = format!("{debian}userspace: bookworm\n");
        let spec = from_file(&write(dir.path(), "k.yaml", &named)).unwrap();
        assert_eq!(spec.userspace, Some(Userspace::Release("bookworm".into())));
        let local = "id: k\nwhy: w\nsource:\n  kind: local\n  vmlinuz: v\n  modules: m\n";
        let spec = from_file(&write(dir.path(), "k.yaml", local)).unwrap();
        assert_eq!(spec.own_userspace(), Userspace::Host);
        let bad = format!("{local}userspace: Debian 13\n");
        let err = from_file(&write(dir.path(), "k.yaml", &bad))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "k.yaml:7:12: userspace `Debian 13` must be `host` or a Debian release name"
            ),
            "{err}"
        );
    }

    #[test]
    fn a_skip_needs_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "k.yaml",
            "id: k\nwhy: w\nsource:\n  kind: local\n  vmlinuz: v\n  modules: m\nskip:\n  watchdog: \"\"\n",
        );
        assert!(from_file(&path)
            .unwrap_err()
            .to_string()
            .ends_with("skip: `watchdog` needs a reason"));
    }

    #[test]
    fn debian_source_needs_a_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "k.yaml",
            "id: k\nwhy: w\nsource:\n  kind: debian\n  suite: bookworm\n  package: p\n  version: v\n",
        );
        let err = from_file(&path).unwrap_err().to_string();
        assert!(
            err.contains(
                "k.yaml: source: version v is a pin, so `package` and `sha256` are needed"
            ),
            "{err}"
        );
    }

    #[test]
    fn a_tracking_entry_names_its_series_and_pins_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let track = "id: k\nwhy: w\nsource:\n  kind: debian\n  suite: bookworm\n  series: \"6.1\"\n  flavour: amd64\n  version: track\n";
        let spec = from_file(&write(dir.path(), "k.yaml", track)).unwrap();
        assert!(spec.source.is_tracking());
        assert_eq!(spec.source.pinned_image(), None);
        let no_series = track.replace("  series: \"6.1\"\n", "");
        let err = from_file(&write(dir.path(), "k.yaml", &no_series))
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs `series`"), "{err}");
        let pinned_too = format!("{track}  sha256: abc\n");
        let err = from_file(&write(dir.path(), "k.yaml", &pinned_too))
            .unwrap_err()
            .to_string();
        assert!(err.contains("pins nothing"), "{err}");
    }

    #[test]
    fn an_entry_without_a_suite_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "k.yaml",
            "id: k\nwhy: w\nsource:\n  kind: debian\n  package: p\n  version: v\n  sha256: s\n",
        );
        let err = from_file(&path).unwrap_err().to_string();
        assert!(err.contains("missing field `suite`"), "{err}");
    }
}
