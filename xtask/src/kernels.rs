//! `cargo xtask kernels [--repin ID]`: each kernel entry's pin beside the newest kernel of its
//! series in the archives, and whether it is cached; `--repin` rewrites an entry to the newest.

use std::collections::BTreeMap;
use std::path::Path;

use kdrill::fetch::apt::resolve::Index;
use kdrill::fetch::apt::tree::{Tree, MAX_AGE};
use kdrill::spec::kernel::{KernelSource, KernelSpec};

#[derive(clap::Args, Debug)]
pub struct KernelsArgs {
    /// Rewrite kernels/ID.yaml to the newest kernel of its series and flavour (version and
    /// sha256 of the image and its header packages; comments kept)
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
    let mut indexes: BTreeMap<String, Result<Index, String>> = BTreeMap::new();
    for id in kdrill::spec::kernel::list_ids(root) {
        let spec = kdrill::spec::kernel::load(root, &id)?;
        let cached = if kdrill::fetch::kernel::is_cached(&spec, &cache) {
            "cached"
        } else {
            "not cached"
        };
        println!("{id:<20} {cached:<11} {}", pinned(&spec));
        if let KernelSource::Debian {
            suite,
            series: Some(series),
            flavour: Some(flavour),
            ..
        } = &spec.source
        {
            let index = indexes
                .entry(suite.clone())
                .or_insert_with(|| tree.index(suite, MAX_AGE).map_err(|e| e.to_string()));
            println!("{:<20} {}", "", newest(&spec, index, series, flavour));
        }
        println!("{:<20} {}", "", spec.why);
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
        KernelSource::Debian { .. } if spec.source.is_tracking() => "tracks the newest".into(),
        KernelSource::Debian { .. } => spec
            .source
            .pinned_image()
            .map(|p| format!("pins {} {}", p.package, p.version))
            .unwrap_or_default(),
        KernelSource::Local { vmlinuz, .. } => format!("local {}", vmlinuz.display()),
    }
}

/// `newest: <package> <version> (up to date | newer than the pin | the pin is gone …)`.
fn newest(spec: &KernelSpec, index: &Result<Index, String>, series: &str, flavour: &str) -> String {
    let index = match index {
        Ok(index) => index,
        Err(err) => return format!("newest: unknown ({err})"),
    };
    let Some(newest) = index.newest_image(series, flavour) else {
        return format!("newest: none of {series} {flavour} in the archives");
    };
    let line = format!("newest: {} {}", newest.package, newest.version);
    let Some(pin) = spec.source.pinned_image() else {
        return line;
    };
    if pin.package == newest.package && pin.version == newest.version {
        format!("{line} (up to date)")
    } else if index.find(&pin.package, &pin.version).is_none() {
        format!(
            "{line} (the pin is no longer served: `cargo xtask kernels --repin {}`)",
            spec.id
        )
    } else {
        format!(
            "{line} (newer than the pin; `cargo xtask kernels --repin {}` moves to it)",
            spec.id
        )
    }
}
