//! The planner's cases: no QEMU, the fresh machine's backports `qemu-utils` with and without
//! backports listed, a QEMU version no suite serves, nothing missing.

use super::mirror::Entry;
use super::plan::{plan, Step};
use super::view::{Installed, Offer, Policy, Release, View};

const BPO: &str = "1:10.0.2+ds-2+deb13u1~bpo12+1";
const BPO_NEXT: &str = "1:10.0.3+ds-1~bpo12+1";
const REL: &str = "1:7.2+dfsg-7+deb12u18+b3";
const REL_DATA: &str = "1:7.2+dfsg-7+deb12u18";

fn installed(package: &str, version: &str) -> Installed {
    Installed {
        package: package.into(),
        version: version.into(),
        source: "qemu".into(),
    }
}

/// A policy: the installed version (if any), then `(version, suites)` offers; the candidate is
/// the installed version when there is one (apt never downgrades), else the first offer.
fn policy(package: &str, installed: Option<&str>, offers: &[(&str, &[&str])]) -> Policy {
    let mut all: Vec<Offer> = Vec::new();
    if let Some(v) = installed.filter(|v| !offers.iter().any(|(o, _)| o == v)) {
        all.push(Offer {
            version: v.into(),
            suites: vec![],
        });
    }
    all.extend(offers.iter().map(|(v, s)| Offer {
        version: (*v).into(),
        suites: s.iter().map(|s| s.to_string()).collect(),
    }));
    Policy {
        package: package.into(),
        installed: installed.map(String::from),
        candidate: installed
            .map(String::from)
            .or_else(|| offers.first().map(|o| o.0.to_string())),
        offers: all,
    }
}

fn bookworm(installed: Vec<Installed>, policies: Vec<Policy>, suites: &[&str]) -> View {
    View {
        installed,
        policies,
        release: Release {
            id: "debian".into(),
            version_id: "12".into(),
            codename: "bookworm".into(),
        },
        sources: vec![Entry {
            uri: "http://mirror.example/debian".into(),
            suites: suites.iter().map(|s| s.to_string()).collect(),
        }],
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

const MISSING: &[&str] = &["qemu-system-x86", "kexec-tools", "makedumpfile"];

#[test]
fn without_qemu_everything_comes_from_the_default_release() {
    let view = bookworm(
        vec![],
        vec![policy("qemu-system-x86", None, &[(REL, &["bookworm"])])],
        &["bookworm"],
    );
    let plan = plan(&names(MISSING), &view).unwrap();
    assert_eq!(plan.source, None);
    assert!(plan.conflicts.is_empty());
    assert_eq!(
        plan.commands(),
        [
            "apt-get update",
            "apt-get install -y -q --no-install-recommends --no-remove qemu-system-x86 kexec-tools makedumpfile"
        ]
    );
}

/// This project's fresh machine: qemu-utils from bookworm-backports by `dpkg -i`, backports not
/// listed, apt's candidate for qemu-system-x86 is bookworm's 7.2.
fn fresh() -> View {
    bookworm(
        vec![installed("qemu-utils", BPO)],
        vec![
            policy("qemu-utils", Some(BPO), &[(REL, &["bookworm"])]),
            policy("qemu-system-x86", None, &[(REL, &["bookworm"])]),
            policy("qemu-system-common", None, &[(REL, &["bookworm"])]),
            policy("qemu-system-data", None, &[(REL_DATA, &["bookworm"])]),
        ],
        &["bookworm", "bookworm-updates"],
    )
}

#[test]
fn backports_qemu_unlisted_adds_the_suite_from_the_host_mirror_and_pins() {
    let plan = plan(&names(MISSING), &fresh()).unwrap();
    let source = plan.source.as_ref().expect("a source to add");
    assert_eq!(source.suite, "bookworm-backports");
    assert_eq!(
        source.path.to_str(),
        Some("/etc/apt/sources.list.d/kdrill-bookworm-backports.list")
    );
    assert_eq!(
        source.line,
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.example/debian bookworm-backports main"
    );
    assert_eq!(
        plan.steps,
        [
            Step {
                release: None,
                packages: names(&["kexec-tools", "makedumpfile"])
            },
            Step {
                release: Some("bookworm-backports".into()),
                packages: vec![
                    format!("qemu-system-x86={BPO}"),
                    format!("qemu-system-common={BPO}"),
                    format!("qemu-system-data={BPO}"),
                ]
            },
        ]
    );
    assert_eq!(plan.conflicts.len(), 1);
    assert_eq!(
        plan.conflicts[0].to_string(),
        format!("qemu-utils {BPO} is installed, but apt's candidate for qemu-system-x86 is {REL}: QEMU's packages must come from one version, so a plain install would remove or break qemu-utils")
    );
    assert_eq!(
        plan.commands()[0],
        format!(
            "echo '{}' > /etc/apt/sources.list.d/kdrill-bookworm-backports.list",
            source.line
        )
    );
    assert_eq!(plan.commands()[1], "apt-get update");
}

#[test]
fn a_host_without_a_debian_mirror_gets_deb_debian_org() {
    let mut view = fresh();
    view.sources.clear();
    let plan = plan(&names(MISSING), &view).unwrap();
    assert!(plan
        .source
        .unwrap()
        .line
        .ends_with("] http://deb.debian.org/debian bookworm-backports main"));
}

/// The fresh machine once bookworm-backports is listed and its lists fetched, serving `served`.
fn listed(served: &str) -> View {
    let mut view = fresh();
    view.sources[0].suites.push("bookworm-backports".into());
    for p in &mut view.policies {
        match p.offers.iter_mut().find(|o| o.version == served) {
            Some(offer) => offer.suites.push("bookworm-backports".into()),
            None => p.offers.push(Offer {
                version: served.into(),
                suites: vec!["bookworm-backports".into()],
            }),
        }
    }
    view
}

#[test]
fn backports_listed_pins_the_installed_version_and_adds_nothing() {
    let plan = plan(&names(&["qemu-system-x86"]), &listed(BPO)).unwrap();
    assert_eq!(plan.source, None);
    assert_eq!(
        plan.commands(),
        [
            "apt-get update".to_string(),
            format!("apt-get install -y -q --no-install-recommends --no-remove -t bookworm-backports qemu-system-x86={BPO} qemu-system-common={BPO} qemu-system-data={BPO}"),
        ]
    );
}

#[test]
fn backports_moved_on_upgrades_qemu_utils_with_the_rest_never_down() {
    let plan = plan(&names(&["qemu-system-x86"]), &listed(BPO_NEXT)).unwrap();
    assert_eq!(plan.source, None);
    let step = plan.steps.last().unwrap();
    assert_eq!(step.release.as_deref(), Some("bookworm-backports"));
    assert_eq!(
        step.packages,
        [
            format!("qemu-system-x86={BPO_NEXT}"),
            format!("qemu-system-common={BPO_NEXT}"),
            format!("qemu-system-data={BPO_NEXT}"),
            format!("qemu-utils={BPO_NEXT}"),
        ]
    );
}

#[test]
fn a_qemu_no_suite_serves_is_an_error_naming_both_ways_out() {
    let local = "1:9.9.9-local1";
    let view = bookworm(
        vec![installed("qemu-utils", local)],
        vec![
            policy("qemu-utils", Some(local), &[(REL, &["bookworm"])]),
            policy("qemu-system-x86", None, &[(REL, &["bookworm"])]),
            policy("qemu-system-common", None, &[(REL, &["bookworm"])]),
            policy("qemu-system-data", None, &[(REL_DATA, &["bookworm"])]),
        ],
        &["bookworm"],
    );
    let err = plan(&names(MISSING), &view).unwrap_err();
    assert_eq!(err.suite.as_deref(), Some("bookworm"));
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("qemu-utils {local} is installed, but no apt source of this host serves qemu-system-x86 at QEMU {local} (bookworm does not), and kdrill never removes or downgrades")),
        "{text}"
    );
    assert!(
        text.ends_with(&format!("\n  apt-get install -y --no-install-recommends --allow-downgrades qemu-utils={REL} qemu-system-x86={REL} qemu-system-common={REL} qemu-system-data={REL_DATA}")),
        "{text}"
    );
    // A backport of another Debian release: no suite of this host's release can serve it.
    let mut other = fresh();
    other.installed[0].version = "1:8.2.1+ds-1~bpo11+1".into();
    other.policies[0].installed = Some(other.installed[0].version.clone());
    let err = plan(&names(MISSING), &other).unwrap_err();
    assert_eq!(err.suite, None);
    assert!(
        err.to_string()
            .contains("--allow-downgrades qemu-utils=1:7.2"),
        "{err}"
    );
}

#[test]
fn the_release_own_qemu_gets_the_rebuilt_version_without_t() {
    let older = "1:7.2+dfsg-7+deb12u18+b2";
    let view = bookworm(
        vec![
            installed("qemu-system-x86", older),
            installed("qemu-system-common", older),
        ],
        vec![
            policy(
                "qemu-utils",
                None,
                &[
                    (REL, &["bookworm"]),
                    ("1:7.2+dfsg-7+deb12u15", &["bookworm-security"]),
                ],
            ),
            policy("qemu-system-x86", Some(older), &[(REL, &["bookworm"])]),
        ],
        &["bookworm", "bookworm-security"],
    );
    let plan = plan(&names(&["qemu-utils"]), &view).unwrap();
    assert!(plan.conflicts.is_empty(), "{:?}", plan.conflicts);
    assert_eq!(
        plan.steps,
        [Step {
            release: None,
            packages: vec![format!("qemu-utils={REL}")]
        }]
    );
}

#[test]
fn nothing_missing_is_nothing_to_do() {
    let plan = plan(&[], &fresh()).unwrap();
    assert!(plan.is_empty());
    assert!(plan.commands().is_empty());
}
