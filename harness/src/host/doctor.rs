//! `kdrill doctor`: each host program kdrill needs (found where, from which package and version,
//! whether it runs), what is missing or in conflict and the commands that fix it, KVM and
//! `/etc/subuid` as notes; `--install` does the host-package step. [`gather`] is the I/O; the
//! report's text and JSON (schema `kdrill-doctor/1`) are pure.

use std::path::{Path, PathBuf};

use crate::host::packages::{self, plan::Plan, PackagesError};
use crate::host::tools;

/// Output format of `kdrill doctor`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Lines for a person
    Table,
    /// A JSON document (schema `kdrill-doctor/1`)
    Json,
}

#[derive(clap::Args, Debug, Clone)]
#[command(
    after_help = "Exit codes: 0 nothing missing, 1 something missing or in conflict, 3 --install could not install (not root, not Debian or Ubuntu, or apt failed)."
)]
pub struct DoctorArgs {
    /// Install what is missing (as root on Debian or Ubuntu): QEMU's packages as one set with
    /// the QEMU already installed, never removing or downgrading it; then check that QEMU runs
    #[arg(long)]
    pub install: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// One host program kdrill needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub tool: String,
    /// The package kdrill installs it from.
    pub package: String,
    pub path: Option<PathBuf>,
    /// The package dpkg says owns `path`, and its installed version.
    pub owner: Option<(String, String)>,
    /// For the tools of `tools::RUN_CHECKS`: the first line of `--version`, or why it failed.
    pub runs: Option<Result<String, String>>,
}

impl Program {
    pub fn state(&self) -> &'static str {
        match (&self.path, &self.runs) {
            (None, _) => "missing",
            (Some(_), Some(Err(_))) => "broken",
            _ => "ok",
        }
    }
}

/// Whether an ordinary user has a subordinate id range (mmdebstrap's unshare mode needs one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subuid {
    pub user: String,
    pub has_range: bool,
}

/// What `kdrill doctor` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub programs: Vec<Program>,
    /// The packages of the missing programs.
    pub missing: Vec<String>,
    /// How to install them (none when nothing is missing), or why it cannot be planned.
    pub plan: Option<Result<Plan, String>>,
    /// `Ok` when `/dev/kvm` opens read-write, else why not.
    pub kvm: Result<(), String>,
    /// For a user other than root.
    pub subuid: Option<Subuid>,
    /// Packages only the network dump target needs (`ssh` scenario) that are missing: a note,
    /// not a failure (`cargo xtask verify` installs them when such a case is selected).
    pub ssh_target_missing: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.plan.is_none() && self.programs.iter().all(|p| p.state() == "ok")
    }

    pub fn exit_code(&self) -> i32 {
        if self.ok() {
            crate::exit::SUCCESS
        } else {
            crate::exit::PARTIAL
        }
    }

    /// The commands that fix what is missing (empty when nothing is, or it cannot be planned).
    pub fn fix(&self) -> Vec<String> {
        match &self.plan {
            Some(Ok(plan)) => plan.commands(),
            _ => Vec::new(),
        }
    }
}

/// Looks at this host; changes nothing.
pub fn gather() -> Result<Report, PackagesError> {
    let needed = tools::needed();
    let paths: Vec<Option<PathBuf>> = needed
        .iter()
        .map(|(tool, _)| {
            if tool.starts_with('/') {
                Some(PathBuf::from(tool)).filter(|p| p.exists())
            } else {
                tools::find(tool)
            }
        })
        .collect();
    let found: Vec<PathBuf> = paths.iter().flatten().cloned().collect();
    let owners = packages::owners(&found)?;
    let installed = packages::installed()?;
    let programs = needed
        .iter()
        .zip(paths)
        .map(|((tool, package), path)| {
            let owner = path.as_ref().and_then(|p| {
                let (_, owner) = owners.iter().find(|(o, _)| o == p)?;
                let version = installed.iter().find(|i| &i.package == owner)?;
                Some((owner.clone(), version.version.clone()))
            });
            let runs = path.as_ref().and_then(|_| tools::runs(tool));
            Program {
                tool: tool.to_string(),
                package: package.to_string(),
                path,
                owner,
                runs,
            }
        })
        .collect();
    let missing = tools::missing_packages(&needed);
    let plan =
        (!missing.is_empty()).then(|| packages::plan_now(&missing).map_err(|e| e.to_string()));
    let kvm = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(drop)
        .map_err(|e| e.to_string());
    Ok(Report {
        programs,
        missing,
        plan,
        kvm,
        subuid: (!tools::is_root()).then(subuid),
        ssh_target_missing: tools::missing_packages(tools::SSH_TARGET_TOOLS),
    })
}

fn subuid() -> Subuid {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    let user = std::env::var("USER").unwrap_or_else(|_| uid.to_string());
    let text = std::fs::read_to_string("/etc/subuid").unwrap_or_default();
    let has_range = text.lines().any(|l| {
        let owner = l.split(':').next().unwrap_or("");
        owner == user || owner == uid.to_string()
    });
    Subuid { user, has_range }
}

/// `kdrill doctor [--install] [--format json]`; `cargo xtask doctor` runs the same.
pub fn run(args: &DoctorArgs) -> anyhow::Result<i32> {
    if args.install && !tools::missing_packages(&tools::needed()).is_empty() {
        if !tools::can_install() {
            let report = gather()?;
            print(&report, args.format);
            anyhow::bail!(
                "--install needs root on Debian or Ubuntu: run the commands above as root, or `sudo kdrill doctor --install`"
            );
        }
        tools::ensure(&tools::needed())?;
    }
    let report = gather()?;
    print(&report, args.format);
    Ok(report.exit_code())
}

fn print(report: &Report, format: Format) {
    match format {
        Format::Table => print!("{}", table(report)),
        Format::Json => print!("{}", json(report)),
    }
}

/// The report for a person.
pub fn table(report: &Report) -> String {
    let mut out = String::from("Host programs kdrill needs:\n");
    let width = report
        .programs
        .iter()
        .filter(|p| !p.tool.starts_with('/'))
        .map(|p| p.tool.len())
        .max()
        .unwrap_or(0);
    for program in &report.programs {
        let status = match program.state() {
            "ok" => "ok",
            "broken" => "BROKEN",
            _ => "MISSING",
        };
        let mut line = format!("  {status:<8} {:<width$}", program.tool);
        match (&program.path, &program.owner) {
            (None, _) => line.push_str(&format!("  (package {})", program.package)),
            (Some(path), owner) => {
                // A file kdrill names by its path is not named twice.
                if path != Path::new(&program.tool) {
                    line.push_str(&format!("  {}", path.display()));
                }
                match owner {
                    Some((owner, version)) => line.push_str(&format!("  {owner} {version}")),
                    None => line.push_str("  (no package owns it)"),
                }
            }
        }
        match &program.runs {
            Some(Ok(first)) => line.push_str(&format!("  runs: {first}")),
            Some(Err(why)) => line.push_str(&format!("  does not run: {why}")),
            None => {}
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    match &report.plan {
        None if report.ok() => out.push_str("\nNothing is missing.\n"),
        None => out.push_str("\nA program above is installed but does not run: reinstall its package (as root): apt-get install --reinstall PACKAGE\n"),
        Some(Err(why)) => {
            out.push_str(&format!("\nMissing packages: {}\n", report.missing.join(", ")));
            out.push_str(&format!("\nIn conflict, and kdrill will not resolve it by itself:\n  {why}\n"));
        }
        Some(Ok(plan)) => {
            out.push_str(&format!("\nMissing packages: {}\n", report.missing.join(", ")));
            if !plan.conflicts.is_empty() {
                out.push_str("\nIn conflict:\n");
                for conflict in &plan.conflicts {
                    out.push_str(&format!("  {conflict}\n"));
                }
            }
            if let Some(source) = &plan.source {
                out.push_str(&format!(
                    "\nThe installed QEMU comes from {}, which this host's apt does not list: the fix adds it \
                     in a file of its own (backports are opt-in per package: listing them changes nothing else).\n",
                    source.suite
                ));
            }
            out.push_str("\nFix (as root), or let kdrill do it: kdrill doctor --install\n");
            for command in plan.commands() {
                out.push_str(&format!("  {command}\n"));
            }
        }
    }
    out.push_str("\nNotes:\n");
    match &report.kvm {
        Ok(()) => out.push_str("  KVM: /dev/kvm opens; kdrill still probes a guest at run time and falls back to TCG when KVM guests do not run\n"),
        Err(why) => out.push_str(&format!("  KVM: /dev/kvm does not open ({why}): guests run under TCG (slower)\n")),
    }
    match &report.subuid {
        None => out.push_str("  running as root: the Debian image is built in mmdebstrap's root mode\n"),
        Some(s) if s.has_range => out.push_str(&format!("  /etc/subuid has a range for {}: mmdebstrap's unshare mode can build the Debian image\n", s.user)),
        Some(s) => out.push_str(&format!("  /etc/subuid has no range for {0}: the Debian image (mmdebstrap's unshare mode) needs one: sudo usermod --add-subuids 200000-265535 --add-subgids 200000-265535 {0}\n", s.user)),
    }
    if !report.ssh_target_missing.is_empty() {
        out.push_str(&format!(
            "  the network dump target (scenario ssh) also needs {0}: apt-get install --no-install-recommends {0} (cargo xtask verify installs it when such a case is selected; it also enables Debian's ssh service)\n",
            report.ssh_target_missing.join(" ")
        ));
    }
    out
}

/// The report as a `kdrill-doctor/1` document.
pub fn json(report: &Report) -> String {
    let programs: Vec<serde_json::Value> = report
        .programs
        .iter()
        .map(|p| {
            serde_json::json!({
                "program": p.tool,
                "package": p.package,
                "status": p.state(),
                "path": p.path.as_deref().map(Path::display).map(|d| d.to_string()),
                "owner": p.owner.as_ref().map(|(package, version)| serde_json::json!({"package": package, "version": version})),
                "runs": p.runs.as_ref().and_then(|r| r.as_ref().ok()),
                "run_error": p.runs.as_ref().and_then(|r| r.as_ref().err()),
            })
        })
        .collect();
    let plan = report.plan.as_ref().and_then(|p| p.as_ref().ok());
    let conflicts: Vec<serde_json::Value> = plan
        .map(|p| p.conflicts.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|c| {
            serde_json::json!({
                "installed": c.installed,
                "installed_version": c.installed_version,
                "package": c.package,
                "candidate": c.candidate,
                "message": c.to_string(),
            })
        })
        .collect();
    let doc = serde_json::json!({
        "schema": "kdrill-doctor/1",
        "ok": report.ok(),
        "exit_code": report.exit_code(),
        "programs": programs,
        "missing_packages": report.missing,
        "conflicts": conflicts,
        "source_to_add": plan.and_then(|p| p.source.as_ref()).map(|s| serde_json::json!({
            "suite": s.suite, "path": s.path.display().to_string(), "line": s.line,
        })),
        "fix": report.fix(),
        "error": report.plan.as_ref().and_then(|p| p.as_ref().err()),
        "notes": {
            "kvm_opens": report.kvm.is_ok(),
            "kvm_error": report.kvm.as_ref().err(),
            "subuid": report.subuid.as_ref().map(|s| serde_json::json!({"user": s.user, "has_range": s.has_range})),
            "ssh_target_missing": report.ssh_target_missing,
        },
    });
    format!("{doc:#}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::packages::plan::{AddSource, Conflict, Step};

    fn program(tool: &str, package: &str, found: bool) -> Program {
        Program {
            tool: tool.into(),
            package: package.into(),
            path: found.then(|| PathBuf::from(format!("/usr/bin/{tool}"))),
            owner: found.then(|| (package.to_string(), "1.0".to_string())),
            runs: None,
        }
    }

    /// The fresh machine: qemu-img from backports, no emulator.
    fn fresh() -> Report {
        let bpo = "1:10.0.2+ds-2+deb13u1~bpo12+1";
        let mut img = program("qemu-img", "qemu-utils", true);
        img.owner = Some(("qemu-utils".into(), bpo.into()));
        img.runs = Some(Ok("qemu-img version 10.0.2".into()));
        Report {
            programs: vec![program("qemu-system-x86_64", "qemu-system-x86", false), img],
            missing: vec!["qemu-system-x86".into()],
            plan: Some(Ok(Plan {
                source: Some(AddSource {
                    suite: "bookworm-backports".into(),
                    path: "/etc/apt/sources.list.d/kdrill-bookworm-backports.list".into(),
                    line: "deb http://m/debian bookworm-backports main".into(),
                }),
                steps: vec![Step {
                    release: Some("bookworm-backports".into()),
                    packages: vec![format!("qemu-system-x86={bpo}")],
                }],
                conflicts: vec![Conflict {
                    installed: "qemu-utils".into(),
                    installed_version: bpo.into(),
                    package: "qemu-system-x86".into(),
                    candidate: "1:7.2+dfsg-7+deb12u18+b3".into(),
                }],
            })),
            kvm: Err("No such file or directory (os error 2)".into()),
            subuid: Some(Subuid {
                user: "dev".into(),
                has_range: false,
            }),
            ssh_target_missing: vec!["openssh-server".into()],
        }
    }

    #[test]
    fn a_missing_program_is_exit_1_with_the_conflict_and_the_commands() {
        let report = fresh();
        assert_eq!(report.exit_code(), crate::exit::PARTIAL);
        let text = table(&report);
        for line in [
            "  MISSING  qemu-system-x86_64  (package qemu-system-x86)\n",
            "  ok       qemu-img            /usr/bin/qemu-img  qemu-utils 1:10.0.2+ds-2+deb13u1~bpo12+1  runs: qemu-img version 10.0.2\n",
            "In conflict:\n  qemu-utils 1:10.0.2+ds-2+deb13u1~bpo12+1 is installed, but apt's candidate for qemu-system-x86 is 1:7.2+dfsg-7+deb12u18+b3",
            "  echo 'deb http://m/debian bookworm-backports main' > /etc/apt/sources.list.d/kdrill-bookworm-backports.list\n  apt-get update\n  apt-get install -y -q --no-install-recommends --no-remove -t bookworm-backports qemu-system-x86=1:10.0.2+ds-2+deb13u1~bpo12+1\n",
            "/etc/subuid has no range for dev",
            "  the network dump target (scenario ssh) also needs openssh-server: apt-get install --no-install-recommends openssh-server",
        ] {
            assert!(text.contains(line), "{line:?} not in\n{text}");
        }
        let doc: serde_json::Value = serde_json::from_str(&json(&report)).unwrap();
        assert_eq!(doc["schema"], "kdrill-doctor/1");
        assert_eq!(doc["ok"], false);
        assert_eq!(doc["programs"][0]["status"], "missing");
        assert_eq!(
            doc["programs"][1]["owner"]["version"],
            "1:10.0.2+ds-2+deb13u1~bpo12+1"
        );
        assert_eq!(doc["conflicts"][0]["candidate"], "1:7.2+dfsg-7+deb12u18+b3");
        assert_eq!(doc["source_to_add"]["suite"], "bookworm-backports");
        assert_eq!(doc["fix"].as_array().unwrap().len(), 3);
        assert_eq!(doc["notes"]["kvm_opens"], false);
        assert_eq!(doc["notes"]["ssh_target_missing"][0], "openssh-server");
    }

    #[test]
    fn nothing_missing_is_exit_0_and_a_broken_program_is_not() {
        let mut report = fresh();
        report.programs.remove(0);
        report.missing.clear();
        report.plan = None;
        // The network dump target's packages are a note: nothing the main job needs is missing.
        assert_eq!(report.exit_code(), crate::exit::SUCCESS);
        assert!(table(&report).contains("\nNothing is missing.\n"));
        report.programs[0].runs = Some(Err("error while loading shared libraries".into()));
        assert_eq!(report.exit_code(), crate::exit::PARTIAL);
        assert!(table(&report).contains("  BROKEN   qemu-img"));
    }
}
