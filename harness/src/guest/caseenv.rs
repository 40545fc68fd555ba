//! The case's settings as every image's agent reads them: shell variables, one `KDRILL_*='…'`
//! line each, that the minimal image's `/init` and the Debian image's `/usr/lib/kdrill/guest`
//! source — from the image (a booted minimal guest), the status channel (a guest restored from
//! its shape) or the case disk (a Debian guest). One home, so a route's setting means the same to
//! both; each agent reads the ones it acts on.

use crate::spec::scenario::Scenario;

/// `KEY='value'` lines. Values were checked for quotes and newlines when the recipe and scenario
/// were loaded.
pub fn lines(vars: &[(&str, String)]) -> String {
    vars.iter().map(|(k, v)| format!("{k}='{v}'\n")).collect()
}

/// The scenario's settings: the route (`KDRILL_TRIGGER`, the guest's word; `KDRILL_ROUTE`, the
/// scenario's), the crasher's word, the CPU to crash on, the sysctls, the memory to dirty first.
pub fn case_env(scenario: &Scenario) -> String {
    let sysctls: Vec<String> = scenario
        .sysctls
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let route = serde_json::to_value(scenario.trigger)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    let mut env = lines(&[
        ("KDRILL_TRIGGER", scenario.trigger.guest_word().to_string()),
        ("KDRILL_ROUTE", route),
        (
            "KDRILL_CRASHER",
            scenario.crasher.clone().unwrap_or_default(),
        ),
        (
            "KDRILL_PIN_CPU",
            scenario.pin_cpu.map(|c| c.to_string()).unwrap_or_default(),
        ),
        ("KDRILL_SYSCTLS", sysctls.join(" ")),
        (
            "KDRILL_DIRTY_MIB",
            scenario
                .guest
                .dirty_mib
                .map(|m| m.to_string())
                .unwrap_or_default(),
        ),
    ]);
    // Only a drill scenario that breaks its own capture says so (the guest's word is unset otherwise).
    if let Some(command) = &scenario.drill_break {
        env.push_str(&lines(&[("KDRILL_DRILL_BREAK", command.clone())]));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_case_env_carries_route_cpu_sysctls_and_memory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nmi.yaml");
        std::fs::write(
            &path,
            "id: nmi\ndescription: d\ntrigger: nmi\npin_cpu: 1\nsysctls:\n  kernel.unknown_nmi_panic: 1\nexpect:\n  log: [x]\n",
        )
        .unwrap();
        let scenario = crate::spec::scenario::from_file(&path).unwrap();
        let env = case_env(&scenario);
        for line in [
            "KDRILL_TRIGGER='host'\n",
            "KDRILL_ROUTE='nmi'\n",
            "KDRILL_CRASHER=''\n",
            "KDRILL_PIN_CPU='1'\n",
            "KDRILL_SYSCTLS='kernel.unknown_nmi_panic=1'\n",
            "KDRILL_DIRTY_MIB=''\n",
        ] {
            assert!(env.contains(line), "{line:?} not in {env}");
        }
        assert_eq!(env.lines().count(), 6, "{env}");
    }
}
