//! kdrill's own Debian package (`cargo xtask dist`): what goes where (the binary, its man pages
//! and completions, the systemd units of `dist/systemd/`, the committed calibration files), the
//! control file and maintainer scripts (pure), the glibc ceiling of Debian 12, then the staged
//! tree packed by `dpkg-deb` under a deadline.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The package's version: the `kdrill` crate's.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The newest glibc the binary may need: Debian 12's (2.36). Debian 13 (2.41) and Ubuntu 24.04
/// (2.39) have newer ones, and glibc runs programs built against an older one.
pub const GLIBC_CEILING: [u32; 2] = [2, 36];

/// Where the package puts the committed calibration files; `kdrill check` reads them there
/// (`readiness::SHIPPED_CALIBRATION_DIR`).
pub const CALIBRATION_DIR: &str = "/usr/share/kdrill/calibration";

/// The systemd units of `dist/systemd/` the package installs (the drill's collect unit, started
/// by `kdrill drill` when it arms; the metrics service and its timer, enabled on install).
pub const UNITS: &[&str] = &[
    "kdrill-drill-collect.service",
    "kdrill-metrics.service",
    "kdrill-metrics.timer",
];

/// The timer the package enables and starts on install.
const TIMER: &str = "kdrill-metrics.timer";

/// `dpkg-deb --build` of a few MiB takes well under a second; xz of a 100 MiB debug binary, some.
const DPKG_DEB_DEADLINE: Duration = Duration::from_secs(600);

/// What the package is built from.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The `kdrill` binary to ship (a release build, or any profile's for a test).
    pub binary: PathBuf,
    /// The folder `kdrill dist-assets` wrote: `man/*.1`, `completions/{kdrill.bash,_kdrill,kdrill.fish}`.
    pub assets: PathBuf,
    /// The checkout: `dist/systemd/` and `calibration/` are read from it.
    pub project: PathBuf,
    /// The package version (the crate's).
    pub version: String,
    /// How dpkg-deb compresses the files.
    pub compression: Compression,
}

/// How dpkg-deb compresses the package's files (`-Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Compression {
    /// As Debian's own packages (smallest; a minute or two for a debug binary)
    Xz,
    /// Faster, larger
    Gzip,
    /// Fastest: for a package that is only installed in a test
    None,
}

impl Compression {
    fn flag(self) -> &'static str {
        match self {
            Compression::Xz => "-Zxz",
            Compression::Gzip => "-Zgzip",
            Compression::None => "-Znone",
        }
    }
}

/// A file of the package: where its bytes come from, where it goes, its mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub from: PathBuf,
    /// Absolute path in the installed system (`/usr/bin/kdrill`).
    pub to: String,
    pub mode: u32,
    /// Gzipped on the way (man pages, as Debian policy asks).
    pub gzip: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DebError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot stage {path}")]
    Stage {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a program kdrill can package: {why}")]
    Elf { path: PathBuf, why: String },
    #[error("{path} needs glibc {}.{} (GLIBC_{}.{} symbols), newer than Debian 12's {}.{}: it would not start there; build on Debian 12 (or in a Debian 12 container)", needs[0], needs[1], needs[0], needs[1], GLIBC_CEILING[0], GLIBC_CEILING[1])]
    TooNewGlibc { path: PathBuf, needs: [u32; 2] },
    #[error("{missing} is missing: run `kdrill dist-assets DIR` first (cargo xtask dist does)")]
    Assets { missing: PathBuf },
    #[error("dpkg-deb could not build {deb}")]
    DpkgDeb {
        deb: PathBuf,
        #[source]
        source: crate::host::process::RunError,
    },
    #[error("dpkg-deb could not build {deb}: {why}")]
    DpkgDebFailed { deb: PathBuf, why: String },
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, DebError> {
    let read = |source| DebError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read)?
        .map(|e| e.map(|e| e.path()).map_err(read))
        .collect::<Result<_, _>>()?;
    paths.sort();
    Ok(paths)
}

/// Every file of the package, in install order.
pub fn layout(inputs: &Inputs) -> Result<Vec<Entry>, DebError> {
    let file = |from: PathBuf, to: String, mode| Entry {
        from,
        to,
        mode,
        gzip: false,
    };
    let mut entries = vec![file(inputs.binary.clone(), "/usr/bin/kdrill".into(), 0o755)];
    let man = inputs.assets.join("man");
    let pages = read_dir_sorted(&man).map_err(|_| DebError::Assets {
        missing: man.clone(),
    })?;
    for page in pages
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "1"))
    {
        let name = page
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        entries.push(Entry {
            to: format!("/usr/share/man/man1/{name}.gz"),
            gzip: true,
            ..file(page, String::new(), 0o644)
        });
    }
    for (name, to) in [
        (
            "kdrill.bash",
            "/usr/share/bash-completion/completions/kdrill",
        ),
        ("_kdrill", "/usr/share/zsh/vendor-completions/_kdrill"),
        (
            "kdrill.fish",
            "/usr/share/fish/vendor_completions.d/kdrill.fish",
        ),
    ] {
        let from = inputs.assets.join("completions").join(name);
        if !from.is_file() {
            return Err(DebError::Assets { missing: from });
        }
        entries.push(file(from, to.into(), 0o644));
    }
    for unit in UNITS {
        entries.push(file(
            inputs.project.join("dist/systemd").join(unit),
            format!("/usr/lib/systemd/system/{unit}"),
            0o644,
        ));
    }
    for yaml in read_dir_sorted(&inputs.project.join("calibration"))?
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
    {
        let name = yaml
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        entries.push(file(yaml, format!("{CALIBRATION_DIR}/{name}"), 0o644));
    }
    entries.push(file(
        inputs.project.join("dist/debian/copyright"),
        "/usr/share/doc/kdrill/copyright".into(),
        0o644,
    ));
    Ok(entries)
}

/// The Debian architecture of this build (`amd64` for x86_64).
pub fn architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `DEBIAN/control`. `glibc` is the binary's ceiling (its `libc6` dependency); `installed_kib`
/// the staged files' size.
pub fn control(version: &str, glibc: Option<[u32; 2]>, installed_kib: u64) -> String {
    let mut depends = Vec::new();
    if let Some([major, minor]) = glibc {
        depends.push(format!("libc6 (>= {major}.{minor})"));
    }
    // Rust's unwinder (`libgcc_s.so.1`).
    depends.push("libgcc-s1".into());
    format!(
        "Package: kdrill\n\
         Version: {version}\n\
         Architecture: {arch}\n\
         Maintainer: kdrill developers <kdrill@users.noreply.invalid>\n\
         Installed-Size: {installed_kib}\n\
         Depends: {depends}\n\
         Suggests: kdump-tools, prometheus-node-exporter, makedumpfile, kexec-tools\n\
         Section: admin\n\
         Priority: optional\n\
         Description: prove that Linux crash dumping works before the day it is needed\n \
         kdrill check scores whether this host would leave a usable crash dump if it\n \
         crashed now (crashkernel= reservation, capture kernel, triggers, dump target,\n \
         tools), as a table, JSON or Prometheus metrics (a systemd timer refreshes\n \
         /var/lib/prometheus/node-exporter/kdrill.prom). kdrill report tables many\n \
         hosts' checks; kdrill drill crashes this host on purpose and proves the dump\n \
         it left opens; kdrill inspect reads dumps.\n",
        arch = architecture(),
        depends = depends.join(", "),
    )
}

/// The maintainer scripts, by name: the metrics timer enabled and started on install (only on a
/// real install on a systemd host: never under `dpkg --root`, whose `DPKG_ROOT` is set), stopped
/// on removal with the metrics file it wrote, forgotten on purge.
pub fn scripts() -> Vec<(&'static str, String)> {
    let postinst = format!(
        "#!/bin/sh\nset -e\n\
         if [ \"$1\" = configure ] && [ -z \"${{DPKG_ROOT:-}}\" ]; then\n\
         \tif command -v deb-systemd-helper >/dev/null 2>&1; then\n\
         \t\tif deb-systemd-helper --quiet was-enabled {TIMER}; then\n\
         \t\t\tdeb-systemd-helper enable {TIMER} >/dev/null || true\n\
         \t\telse\n\
         \t\t\tdeb-systemd-helper update-state {TIMER} >/dev/null || true\n\
         \t\tfi\n\
         \tfi\n\
         \tif [ -d /run/systemd/system ]; then\n\
         \t\tsystemctl --system daemon-reload >/dev/null || true\n\
         \t\tsystemctl start {TIMER} >/dev/null || true\n\
         \tfi\n\
         fi\n"
    );
    let prerm = format!(
        "#!/bin/sh\nset -e\n\
         if [ \"$1\" = remove ] && [ -z \"${{DPKG_ROOT:-}}\" ] && [ -d /run/systemd/system ]; then\n\
         \tsystemctl stop {TIMER} kdrill-metrics.service >/dev/null 2>&1 || true\n\
         fi\n"
    );
    let postrm = format!(
        "#!/bin/sh\nset -e\n\
         if [ \"$1\" = remove ] || [ \"$1\" = purge ]; then\n\
         \t# A metrics file nobody refreshes would report a stale verdict as current.\n\
         \trm -f \"${{DPKG_ROOT:-}}/var/lib/prometheus/node-exporter/kdrill.prom\"\n\
         \tif [ -z \"${{DPKG_ROOT:-}}\" ] && [ -d /run/systemd/system ]; then\n\
         \t\tsystemctl --system daemon-reload >/dev/null || true\n\
         \tfi\n\
         fi\n\
         if [ \"$1\" = purge ] && [ -z \"${{DPKG_ROOT:-}}\" ] && command -v deb-systemd-helper >/dev/null 2>&1; then\n\
         \tdeb-systemd-helper purge {TIMER} >/dev/null || true\n\
         fi\n"
    );
    vec![("postinst", postinst), ("prerm", prerm), ("postrm", postrm)]
}

/// Checks the binary against [`GLIBC_CEILING`]; its own ceiling (for `Depends: libc6`).
pub fn check_glibc(binary: &Path) -> Result<Option<[u32; 2]>, DebError> {
    let data = std::fs::read(binary).map_err(|source| DebError::Read {
        path: binary.to_path_buf(),
        source,
    })?;
    let needs = crate::host::elf::glibc_ceiling(&data).map_err(|why| DebError::Elf {
        path: binary.to_path_buf(),
        why,
    })?;
    match needs {
        Some(needs) if needs > GLIBC_CEILING => Err(DebError::TooNewGlibc {
            path: binary.to_path_buf(),
            needs,
        }),
        other => Ok(other),
    }
}

/// Stages the package in a scratch folder beside `out_dir` and packs it into
/// `out_dir/kdrill_<version>_<arch>.deb`, whose path it returns.
pub fn build(inputs: &Inputs, out_dir: &Path) -> Result<PathBuf, DebError> {
    let glibc = check_glibc(&inputs.binary)?;
    let stage_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DebError::Stage { path, source }
    };
    std::fs::create_dir_all(out_dir).map_err(stage_error(out_dir))?;
    let scratch = tempfile::Builder::new()
        .prefix(".kdrill-deb-")
        .tempdir_in(out_dir)
        .map_err(stage_error(out_dir))?;
    let stage = scratch.path().join("kdrill");
    let mut bytes_total = 0u64;
    for entry in layout(inputs)? {
        let to = stage.join(entry.to.trim_start_matches('/'));
        let data = std::fs::read(&entry.from).map_err(|source| DebError::Read {
            path: entry.from.clone(),
            source,
        })?;
        let data = if entry.gzip { gzip(&data) } else { data };
        bytes_total += data.len() as u64;
        write_file(&to, &data, entry.mode).map_err(stage_error(&to))?;
    }
    let debian = stage.join("DEBIAN");
    let control = control(&inputs.version, glibc, bytes_total.div_ceil(1024));
    write_file(&debian.join("control"), control.as_bytes(), 0o644).map_err(stage_error(&debian))?;
    for (name, text) in scripts() {
        write_file(&debian.join(name), text.as_bytes(), 0o755).map_err(stage_error(&debian))?;
    }
    let deb = out_dir.join(format!("kdrill_{}_{}.deb", inputs.version, architecture()));
    let mut command = std::process::Command::new("dpkg-deb");
    // Owned by root whoever builds.
    command
        .args(["--root-owner-group", inputs.compression.flag(), "--build"])
        .arg(&stage)
        .arg(&deb);
    let finished =
        crate::host::process::run(&mut command, DPKG_DEB_DEADLINE).map_err(|source| {
            DebError::DpkgDeb {
                deb: deb.clone(),
                source,
            }
        })?;
    if !finished.status.success() {
        return Err(DebError::DpkgDebFailed {
            deb,
            why: finished.last_line(),
        });
    }
    Ok(deb)
}

fn write_file(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, data)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// gzip -9n: no name or time stamp in the header, so the same page packs to the same bytes.
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_depends_on_the_glibc_the_binary_needs() {
        let text = control("0.1.0", Some([2, 34]), 12345);
        assert!(
            text.contains("\nDepends: libc6 (>= 2.34), libgcc-s1\n"),
            "{text}"
        );
        assert!(text.contains("\nInstalled-Size: 12345\n"), "{text}");
        assert!(
            text.ends_with("opens; kdrill inspect reads dumps.\n"),
            "{text}"
        );
        // Every continuation line of the description starts with a space, as dpkg requires.
        let description = text.split("Description: ").nth(1).unwrap();
        assert!(
            description.lines().skip(1).all(|l| l.starts_with(' ')),
            "{text}"
        );
        assert!(!control("0.1.0", None, 1).contains("libc6"));
    }

    #[test]
    fn scripts_leave_a_dpkg_root_install_alone() {
        for (name, text) in scripts() {
            assert!(text.starts_with("#!/bin/sh\nset -e\n"), "{name}");
            assert!(text.contains("DPKG_ROOT"), "{name}: {text}");
        }
    }

    #[test]
    fn man_pages_gzip_without_a_time_stamp() {
        let packed = gzip(b".TH kdrill 1\n");
        assert_eq!(&packed[..2], [0x1f, 0x8b]);
        assert_eq!(&packed[4..8], [0, 0, 0, 0], "mtime 0");
        assert_eq!(gzip(b".TH kdrill 1\n"), packed, "the same bytes twice");
    }
}
