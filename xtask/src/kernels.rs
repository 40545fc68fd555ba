//! `cargo xtask kernels [--repin ID]`: every kernel entry, release by release, its pin beside
//! the newest complete kernel of its series in the archives, whether a newer series has appeared
//! in its suite, and whether it is cached; `--repin` rewrites an entry to the newest.

use std::collections::BTreeMap;
use std::path::Path;

use kdrill::fetch::apt::resolve::{Index, Series};
use kdrill::fetch::apt::tree::{Tree, MAX_AGE};
use kdrill::spec::kernel::{KernelSource, KernelSpec};

#[derive(clap::Args, Debug)]
pub struct KernelsArgs {
    /// Rewrite kernels/ID.yaml to the newest complete kernel of its series and flavour (version
    /// and sha256 of its packages and header packages; comments kept)
    #[arg(long, value_name = "ID")]
    pub repin: Option<String>,
}

pub fn run(root: &Path, args: &KernelsArgs) -> anyhow::Result<i32> {
    let cache = kdrill::host::paths::cache_dir();
    if let Some(id) = &args.repin {
        let path = kdrill::spec::yaml::entry_path(
            root,
            "kernels",
            id,
            "no such kernel entry; known kernels",
        )?;
        let done = kdrill::fetch::apt::pin::repin_file(&path, &cache)?;
        if done.changed {
            println!("{id}: {} → {} ({})", done.from, done.to, path.display());
        } else {
            println!("{id}: already pins the newest, {}", done.to);
        }
        for note in &done.notes {
            println!("  note: {note}");
        }
        return Ok(0);
    }
    let archives = kdrill::spec::archive::load(Some(root))?;
    let tree = Tree::new(&cache, &archives);
    // Entries by release (a Debian entry's suite; local kernels last), each release once.
    let mut releases: BTreeMap<String, Vec<KernelSpec>> = BTreeMap::new();
    for id in kdrill::spec::kernel::list_ids(root) {
        let spec = kdrill::spec::kernel::load(root, &id)?;
        let release = match &spec.source {
            KernelSource::Debian { suite, .. } => suite.clone(),
            KernelSource::Local { .. } | KernelSource::Image => "~local".into(),
        };
        releases.entry(release).or_default().push(spec);
    }
    for (release, specs) in &releases {
        let index = match release.as_str() {
            "~local" => {
                println!("local kernels:");
                None
            }
            _ => {
                println!("{release} ({}):", archives.describe_release(release));
                Some(tree.index(release, MAX_AGE).map_err(|e| e.to_string()))
            }
        };
        for spec in specs {
            let cached = if kdrill::fetch::kernel::is_cached(spec, &cache) {
                "cached"
            } else {
                "not cached"
            };
            println!("  {:<24} {cached:<11} {}", spec.id, pinned(spec));
            if let (
                Some(index),
                KernelSource::Debian {
                    series: Some(series),
                    flavour: Some(flavour),
                    ..
                },
            ) = (&index, &spec.source)
            {
                for line in newest(spec, index, series, flavour) {
                    println!("  {:<24} {line}", "");
                }
            }
            println!("  {:<24} {}", "", spec.why);
        }
    }
    println!(
        "archives: {} (from {})",
        archives.describe(),
        archives.from.display()
    );
    println!("cache: {}", cache.display());
    Ok(0)
}

fn pinned(spec: &KernelSpec) -> String {
    match &spec.source {
        KernelSource::Debian {
            series, flavour, ..
        } if spec.source.is_tracking() => format!(
            "tracks the newest {} {}",
            match series.as_deref() {
                Some(kdrill::spec::kernel::NEWEST) => "kernel of the newest series,".to_string(),
                Some(series) => series.to_string(),
                None => String::new(),
            },
            flavour.as_deref().unwrap_or("")
        ),
        KernelSource::Debian { parts, .. } => spec
            .source
            .pinned_image()
            .map(|p| {
                let more = if parts.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (+ {})",
                        parts
                            .iter()
                            .map(|p| p.package.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                format!("pins {} {}{more}", p.package, p.version)
            })
            .unwrap_or_default(),
        KernelSource::Local { vmlinuz, .. } => format!("local {}", vmlinuz.display()),
        KernelSource::Image => "the disk image's own".into(),
    }
}

/// `newest: <package> <version> (series S, up to date | newer than the pin | the pin is gone …)`
/// and, for an entry of a fixed series, `newer series: …` when its suite has moved on.
fn newest(
    spec: &KernelSpec,
    index: &Result<Index, String>,
    series: &str,
    flavour: &str,
) -> Vec<String> {
    let index = match index {
        Ok(index) => index,
        Err(err) => return vec![format!("newest: unknown ({err})")],
    };
    let mut lines = Vec::new();
    match index.newest_kernel(Series::parse(series), flavour) {
        Err(why) => lines.push(format!("newest: none ({why})")),
        Ok(newest) => {
            let line = format!(
                "newest: {} {} (series {}, {})",
                newest.image.package, newest.image.version, newest.series, newest.image.suite
            );
            lines.push(match spec.source.pinned_image() {
                None => line,
                Some(pin)
                    if pin.package == newest.image.package
                        && pin.version == newest.image.version =>
                {
                    format!("{line}: up to date")
                }
                Some(pin) if index.find(&pin.package, &pin.version).is_none() => format!(
                    "{line}: the pin is no longer served, `cargo xtask kernels --repin {}`",
                    spec.id
                ),
                Some(_) => format!(
                    "{line}: newer than the pin, `cargo xtask kernels --repin {}` moves to it",
                    spec.id
                ),
            });
            for skipped in &newest.skipped {
                lines.push(format!("skipped: {skipped}"));
            }
        }
    }
    if let Series::Fixed(series) = Series::parse(series) {
        if let Some(newer) = index.newer_series(series, flavour) {
            lines.push(format!(
                "newer series: {} has appeared in {} ({} {}); `series: newest` follows it",
                newer.series, newer.image.suite, newer.image.package, newer.image.version
            ));
        }
    }
    lines
}
