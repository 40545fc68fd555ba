//! What one kernel must load for the guest's needs (`spec::image::Need`): each need is looked up
//! as modprobe would (`find` as a module name, else as an alias), built-in first; a module
//! brings its `depends=` and `softdep=` closure, dependencies first. Nothing here names a module:
//! the kernel's own `modules.builtin`, `modules.builtin.modinfo` and `.modinfo` decide.
//!
//! Where this differs from modprobe, on purpose:
//! - a `softdep=` alias that several modules provide takes one, the first by name that is not
//!   bound to a CPU feature (`alias=cpu:…`: `crc32c-intel` refuses to load on a CPU without
//!   SSE4.2, which QEMU's TCG CPU lacks); modprobe tries them all and ignores their failures, the
//!   guest's `/init` fails on any `insmod` that fails;
//! - a softdep nothing provides, or only CPU-bound modules, is skipped: an optional helper, the
//!   kernel has the function built in (a library) or does not need it.

use std::collections::BTreeSet;

use crate::guest::modules::{normalize, ModuleError, ModuleIndex};
use crate::spec::image::Need;

#[cfg(test)]
mod tests;

/// How a kernel provides a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Built into the kernel: nothing to load.
    BuiltIn(String),
    /// This module (with its closure).
    Module(String),
}

/// What one kernel loads for a list of needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Every module to load, each after its dependencies and `softdep=pre` modules.
    pub order: Vec<String>,
    /// What provides each need, in the needs' order.
    pub found: Vec<Found>,
}

impl Resolved {
    /// The parameters for `module`: those of the needs it provides.
    pub fn params_of<'a>(&self, needs: &'a [Need], module: &str) -> Vec<&'a str> {
        needs
            .iter()
            .zip(&self.found)
            .filter(|(_, found)| **found == Found::Module(module.to_string()))
            .flat_map(|(need, _)| need.params.iter().map(String::as_str))
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NeedError {
    #[error("kernel {release} has no {need}: `{find}` is neither built in nor a module, nor an alias of one, under {dir}")]
    Missing {
        need: String,
        find: String,
        release: String,
        dir: String,
    },
    #[error("kernel {release} has {need} built in (`{module}`), so its parameters ({params}) cannot be given to a module: put them on the kernel command line as `{module}.<param>=<value>` (the scenario's guest.cmdline)")]
    BuiltInParams {
        need: String,
        module: String,
        release: String,
        params: String,
    },
    #[error(transparent)]
    Module(#[from] ModuleError),
}

/// What `index`'s kernel loads for `needs`; a need it lacks is an error naming the need.
pub fn resolve(index: &ModuleIndex, needs: &[Need]) -> Result<Resolved, NeedError> {
    let mut closure = Closure {
        index,
        seen: BTreeSet::new(),
        order: Vec::new(),
    };
    let mut found = Vec::new();
    for need in needs {
        let got = lookup(index, &need.find, Want::Need)?.ok_or_else(|| NeedError::Missing {
            need: need.need.clone(),
            find: need.find.clone(),
            release: index.release.clone(),
            dir: index.dir.display().to_string(),
        })?;
        match &got {
            Found::BuiltIn(module) if !need.params.is_empty() => {
                return Err(NeedError::BuiltInParams {
                    need: need.need.clone(),
                    module: module.clone(),
                    release: index.release.clone(),
                    params: need.params.join(" "),
                })
            }
            Found::BuiltIn(_) => {}
            Found::Module(module) => closure.visit(module)?,
        }
        found.push(got);
    }
    Ok(Resolved {
        order: closure.order,
        found,
    })
}

/// Looks each need up on the kernel of `modules`, for the side effect: the kernel's alias index
/// (`guest/modalias.rs`: seconds, once per kernel) is built now, when a need asks for it, rather
/// than in the first case. What the kernel lacks is left to the case that needs it to report.
pub fn warm(modules: &std::path::Path, release: &str, cache: &std::path::Path, needs: &[Need]) {
    if let Ok(index) = ModuleIndex::scan(modules, release) {
        let index = index.with_alias_cache(cache);
        for need in needs {
            let _ = resolve(&index, std::slice::from_ref(need));
        }
    }
}

/// Who asks: a need (any provider will do) or a softdep (an optional helper).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    Need,
    Softdep,
}

/// What provides `find` in this kernel, as modprobe looks: a built-in module of that name, a
/// module file of that name, a built-in module with a matching alias, a module with one.
fn lookup(index: &ModuleIndex, find: &str, want: Want) -> Result<Option<Found>, ModuleError> {
    let name = normalize(find);
    if index.is_builtin(&name) {
        return Ok(Some(Found::BuiltIn(name)));
    }
    if index.path(&name).is_some() {
        return Ok(Some(Found::Module(name)));
    }
    if let Some(module) = index.builtin_with_alias(find).into_iter().next() {
        return Ok(Some(Found::BuiltIn(module)));
    }
    let providers = index.modules_with_alias(find)?;
    let portable = providers.iter().find(|(_, cpu_bound)| !cpu_bound);
    let chosen = match want {
        Want::Need => portable.or(providers.first()),
        Want::Softdep => portable,
    };
    Ok(chosen.map(|(module, _)| Found::Module(module.clone())))
}

/// The load order being built: modprobe's, depth first.
struct Closure<'a> {
    index: &'a ModuleIndex,
    seen: BTreeSet<String>,
    order: Vec<String>,
}

impl Closure<'_> {
    fn visit(&mut self, module: &str) -> Result<(), ModuleError> {
        let module = normalize(module);
        // `depends=` never names a built-in module; a softdep already resolved to one.
        if !self.seen.insert(module.clone()) || self.index.is_builtin(&module) {
            return Ok(());
        }
        let info = self.index.modinfo(&module)?;
        self.softdeps(&info.softdep_pre)?;
        for dep in &info.depends {
            self.visit(dep)?;
        }
        self.order.push(module);
        self.softdeps(&info.softdep_post)
    }

    fn softdeps(&mut self, names: &[String]) -> Result<(), ModuleError> {
        for name in names {
            if let Some(Found::Module(module)) = lookup(self.index, name, Want::Softdep)? {
                self.visit(&module)?;
            }
        }
        Ok(())
    }
}
