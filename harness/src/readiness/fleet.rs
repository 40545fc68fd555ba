//! `kdrill report`: many hosts' `kdrill check --format json` documents as one fleet table (pure):
//! host × check, worst host first, with counts per check and per status; also as JSON.
//!
//! A `kdrill-error/1` document (a host whose check could not run) is a host row of its own,
//! worse than NOT READY; anything else is a [`FleetError`] naming the file.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::readiness::report::SCHEMA as CHECK_SCHEMA;

/// Identifies the `kdrill report --format json` layout.
pub const SCHEMA: &str = "kdrill-report/1";

/// What a check document must hold for the fleet table; every other field is ignored, so
/// documents of later kdrill versions (fields added within `kdrill-check/1`) read as well.
#[derive(Debug, serde::Deserialize)]
struct CheckDocument {
    #[serde(default)]
    hostname: Option<String>,
    #[serde(default)]
    machine_id: Option<String>,
    verdict: String,
    checks: Vec<CheckRow>,
}

#[derive(Debug, serde::Deserialize)]
struct CheckRow {
    id: String,
    number: u32,
    status: String,
}

/// The statuses of a check row, mildest first (the order of `readiness::Status`).
pub const STATUSES: [&str; 5] = ["pass", "info", "skip", "warn", "fail"];

/// Verdicts, mildest first; `error` is a host whose check could not run.
const VERDICTS: [&str; 4] = ["ready", "ready_with_warnings", "not_ready", "error"];

/// Why a file could not join the fleet table.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FleetError {
    #[error("{source_name}:{line}:{column}: not JSON ({message}): give the files `kdrill check --format json` wrote, one host per file")]
    Json {
        source_name: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{source_name}: {found}, not a `kdrill check --format json` document (schema {CHECK_SCHEMA}): give one host's check JSON per file")]
    Schema { source_name: String, found: String },
    #[error("{source_name}: unknown {what} `{value}` (a newer kdrill?): report with a kdrill as new as the one that checked")]
    Unknown {
        source_name: String,
        what: &'static str,
        value: String,
    },
}

/// One host's line of the table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Host {
    /// Its hostname, else its machine id, else the name of the file it came from (`web1` of
    /// `fleet/web1.json`).
    pub host: String,
    /// The file it came from.
    pub source: String,
    /// `ready`, `ready_with_warnings`, `not_ready`, or `error` (its check could not run).
    pub verdict: String,
    /// Why its check could not run (a `kdrill-error/1` document's message).
    pub error: Option<String>,
    /// Each check's status, by id.
    pub checks: BTreeMap<String, String>,
    /// How many of its checks have each status.
    pub counts: BTreeMap<&'static str, usize>,
    /// Each check's number, by id (the table's column order).
    #[serde(skip)]
    numbers: Vec<(String, u32)>,
}

/// One check's column: how many hosts have each status.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CheckColumn {
    pub id: String,
    pub number: u32,
    pub counts: BTreeMap<&'static str, usize>,
}

/// The whole fleet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Fleet {
    /// Worst first: by verdict, then fails, warnings and skips, then name.
    pub hosts: Vec<Host>,
    /// By check number.
    pub checks: Vec<CheckColumn>,
    /// How many hosts have each verdict.
    pub verdicts: BTreeMap<&'static str, usize>,
}

impl Fleet {
    /// The exit code: the worst host's (0 ready, 1 ready with warnings, 2 not ready), 3 when a
    /// host's check could not run.
    pub fn exit_code(&self) -> i32 {
        match self.hosts.iter().map(|h| rank(&h.verdict)).max() {
            Some(3) => crate::exit::ERROR,
            Some(2) => crate::exit::NEGATIVE,
            Some(1) => crate::exit::PARTIAL,
            _ => crate::exit::SUCCESS,
        }
    }
}

fn rank(verdict: &str) -> usize {
    VERDICTS.iter().position(|v| *v == verdict).unwrap_or(0)
}

/// `web1` of `fleet/web1.json`.
fn file_stem(source_name: &str) -> String {
    std::path::Path::new(source_name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| source_name.to_string())
}

fn known(list: &[&'static str], value: &str) -> Option<&'static str> {
    list.iter().copied().find(|v| *v == value)
}

/// Reads one file's text (`source_name` names it in errors) as a host.
pub fn host(source_name: &str, text: &str) -> Result<Host, FleetError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| FleetError::Json {
        source_name: source_name.to_string(),
        line: e.line(),
        column: e.column(),
        message: e.to_string().split(" at line ").next().unwrap_or("").into(),
    })?;
    let schema = value.get("schema").and_then(|s| s.as_str());
    if schema == Some("kdrill-error/1") {
        let error = value.get("error").and_then(|e| e.as_str()).unwrap_or("");
        return Ok(Host {
            host: file_stem(source_name),
            source: source_name.to_string(),
            verdict: "error".into(),
            error: Some(error.to_string()),
            checks: BTreeMap::new(),
            counts: STATUSES.iter().map(|s| (*s, 0)).collect(),
            numbers: Vec::new(),
        });
    }
    let schema_error = |found: String| FleetError::Schema {
        source_name: source_name.to_string(),
        found,
    };
    match schema {
        Some(CHECK_SCHEMA) => {}
        Some(other) => return Err(schema_error(format!("schema `{other}`"))),
        None => return Err(schema_error("no `schema` field".into())),
    }
    let doc: CheckDocument = serde_json::from_value(value).map_err(|e| {
        schema_error(format!(
            "a {CHECK_SCHEMA} document that is incomplete ({e})"
        ))
    })?;
    let unknown = |what, value: &str| FleetError::Unknown {
        source_name: source_name.to_string(),
        what,
        value: value.to_string(),
    };
    let verdict =
        known(&VERDICTS[..3], &doc.verdict).ok_or_else(|| unknown("verdict", &doc.verdict))?;
    let mut counts: BTreeMap<&'static str, usize> = STATUSES.iter().map(|s| (*s, 0)).collect();
    let mut checks = BTreeMap::new();
    for row in &doc.checks {
        let status = known(&STATUSES, &row.status).ok_or_else(|| unknown("status", &row.status))?;
        *counts.entry(status).or_default() += 1;
        checks.insert(row.id.clone(), status.to_string());
    }
    let host = doc
        .hostname
        .clone()
        .or(doc.machine_id.clone())
        .unwrap_or_else(|| file_stem(source_name));
    Ok(Host {
        host,
        source: source_name.to_string(),
        verdict: verdict.to_string(),
        error: None,
        checks,
        counts,
        numbers: doc.checks.into_iter().map(|c| (c.id, c.number)).collect(),
    })
}

/// Every file's text, named: the fleet, or the first file that could not be read as a host.
pub fn fleet(files: &[(String, String)]) -> Result<Fleet, FleetError> {
    let mut hosts = Vec::new();
    let mut numbers: BTreeMap<String, u32> = BTreeMap::new();
    for (name, text) in files {
        let host = host(name, text)?;
        for (id, number) in &host.numbers {
            numbers.entry(id.clone()).or_insert(*number);
        }
        hosts.push(host);
    }
    hosts.sort_by(|a, b| {
        let key = |h: &Host| {
            let count = |s: &str| std::cmp::Reverse(h.counts.get(s).copied().unwrap_or(0));
            (
                std::cmp::Reverse(rank(&h.verdict)),
                count("fail"),
                count("warn"),
                count("skip"),
            )
        };
        key(a).cmp(&key(b)).then_with(|| a.host.cmp(&b.host))
    });
    let mut checks: Vec<CheckColumn> = numbers
        .into_iter()
        .map(|(id, number)| {
            let mut counts: BTreeMap<&'static str, usize> =
                STATUSES.iter().map(|s| (*s, 0)).collect();
            for host in &hosts {
                if let Some(status) = host.checks.get(&id).and_then(|s| known(&STATUSES, s)) {
                    *counts.entry(status).or_default() += 1;
                }
            }
            CheckColumn { id, number, counts }
        })
        .collect();
    checks.sort_by(|a, b| (a.number, &a.id).cmp(&(b.number, &b.id)));
    let mut verdicts: BTreeMap<&'static str, usize> = VERDICTS.iter().map(|v| (*v, 0)).collect();
    for host in &hosts {
        if let Some(v) = known(&VERDICTS, &host.verdict) {
            *verdicts.entry(v).or_default() += 1;
        }
    }
    Ok(Fleet {
        hosts,
        checks,
        verdicts,
    })
}

fn verdict_label(verdict: &str) -> &'static str {
    match verdict {
        "ready" => "READY",
        "ready_with_warnings" => "READY WITH WARNINGS",
        "not_ready" => "NOT READY",
        _ => "CHECK FAILED",
    }
}

/// The table: hosts worst first with one column per check (by number), then each check's counts
/// per status, then the verdicts' counts.
pub fn table(fleet: &Fleet) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "kdrill report: {} hosts, {} checks\n",
        fleet.hosts.len(),
        fleet.checks.len()
    );
    let width = fleet
        .hosts
        .iter()
        .map(|h| h.host.chars().count())
        .chain(["host".len()])
        .max()
        .unwrap_or(4);
    let verdict_width = "READY WITH WARNINGS".len();
    let mut head = format!("{:width$}  {:verdict_width$}", "host", "verdict");
    for check in &fleet.checks {
        let _ = write!(head, "  {:>4}", check.number);
    }
    let _ = writeln!(out, "{}", head.trim_end());
    for host in &fleet.hosts {
        let mut line = format!(
            "{:width$}  {:verdict_width$}",
            host.host,
            verdict_label(&host.verdict)
        );
        for check in &fleet.checks {
            let cell = host
                .checks
                .get(&check.id)
                .map(|s| s.to_uppercase())
                .unwrap_or_else(|| "-".into());
            let _ = write!(line, "  {cell:>4}");
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let id_width = fleet.checks.iter().map(|c| c.id.len()).max().unwrap_or(5);
    let _ = writeln!(out, "\nChecks (hosts per status)");
    let mut head = format!("{:>3}  {:id_width$}", "#", "check");
    for status in STATUSES.iter().rev() {
        let _ = write!(head, "  {:>4}", status);
    }
    let _ = writeln!(out, "{head}");
    for check in &fleet.checks {
        let mut line = format!("{:>3}  {:id_width$}", check.number, check.id);
        for status in STATUSES.iter().rev() {
            let _ = write!(line, "  {:>4}", check.counts.get(status).unwrap_or(&0));
        }
        let _ = writeln!(out, "{line}");
    }
    let verdicts: Vec<String> = VERDICTS
        .iter()
        .rev()
        .filter_map(|v| {
            let n = *fleet.verdicts.get(v)?;
            (n > 0).then(|| format!("{n} {}", verdict_label(v).to_lowercase()))
        })
        .collect();
    let _ = writeln!(out, "\nVerdicts: {}", verdicts.join(", "));
    let failed: Vec<&Host> = fleet.hosts.iter().filter(|h| h.error.is_some()).collect();
    if !failed.is_empty() {
        let _ = writeln!(out, "\nChecks that could not run");
        for host in failed {
            let _ = writeln!(
                out,
                "  {}: {}",
                host.source,
                host.error.as_deref().unwrap_or("")
            );
        }
    }
    out
}

#[derive(serde::Serialize)]
struct Document<'a> {
    schema: &'static str,
    kdrill_version: &'static str,
    exit_code: i32,
    #[serde(flatten)]
    fleet: &'a Fleet,
}

/// The `--format json` document (pretty-printed, with a final newline).
pub fn json(fleet: &Fleet) -> String {
    let document = Document {
        schema: SCHEMA,
        kdrill_version: env!("CARGO_PKG_VERSION"),
        exit_code: fleet.exit_code(),
        fleet,
    };
    let mut text = serde_json::to_string_pretty(&document)
        .unwrap_or_else(|err| format!("{{\"error\": \"{err}\"}}"));
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(host: &str, verdict: &str, statuses: &[&str]) -> String {
        let checks: Vec<serde_json::Value> = statuses
            .iter()
            .enumerate()
            .map(|(i, s)| serde_json::json!({"id": format!("c{}", i + 1), "number": i + 1, "status": s}))
            .collect();
        serde_json::json!({"schema": "kdrill-check/1", "hostname": host, "verdict": verdict, "checks": checks, "later": 1})
            .to_string()
    }

    fn check(files: &[(&str, String)]) -> Result<Fleet, FleetError> {
        let files: Vec<(String, String)> = files
            .iter()
            .map(|(n, t)| (n.to_string(), t.clone()))
            .collect();
        fleet(&files)
    }

    #[test]
    fn worst_host_first_with_counts() {
        let fleet = check(&[
            ("a.json", doc("alpha", "ready", &["pass", "pass"])),
            ("b.json", doc("bravo", "not_ready", &["fail", "warn"])),
            (
                "c.json",
                doc("charlie", "ready_with_warnings", &["warn", "pass"]),
            ),
            (
                "d.json",
                r#"{"schema":"kdrill-error/1","exit_code":3,"error":"cannot open the root"}"#
                    .into(),
            ),
        ])
        .unwrap();
        let order: Vec<&str> = fleet.hosts.iter().map(|h| h.host.as_str()).collect();
        assert_eq!(order, ["d", "bravo", "charlie", "alpha"]);
        assert_eq!(fleet.checks[0].counts["fail"], 1);
        assert_eq!(fleet.checks[0].counts["warn"], 1);
        assert_eq!(fleet.checks[0].counts["pass"], 1);
        assert_eq!(fleet.verdicts["not_ready"], 1);
        assert_eq!(fleet.exit_code(), 3);
        let table = table(&fleet);
        assert!(
            table.contains("bravo    NOT READY            FAIL  WARN"),
            "{table}"
        );
        assert!(table.contains("d.json: cannot open the root"), "{table}");
    }

    #[test]
    fn bad_input_names_the_file_and_where() {
        let err = check(&[("x.json", "{\n  \"schema\": ,\n}".into())]).unwrap_err();
        assert!(
            matches!(
                &err,
                FleetError::Json {
                    line: 2,
                    column: 13,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("x.json:2:13: not JSON (expected value)"),
            "{err}"
        );
        let err = check(&[("y.json", r#"{"schema":"kdrill-verify/1"}"#.into())]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("y.json: schema `kdrill-verify/1`, not a `kdrill check"),
            "{err}"
        );
        let err = check(&[("z.json", "[]".into())]).unwrap_err();
        assert!(
            err.to_string().starts_with("z.json: no `schema` field"),
            "{err}"
        );
        let err = check(&[("w.json", doc("h", "ready", &["maybe"]))]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("w.json: unknown status `maybe`"),
            "{err}"
        );
    }
}
