//! The kernel × makedumpfile table (`cargo xtask compat`): one row per kernel, one column per
//! capture userspace (its release's makedumpfile), each cell the last attempt of one case of the
//! compat set (the `dirty-free` scenario): its verdict, the share of the guest's pages the dump
//! holds, pages dumped and excluded, the dump's size, makedumpfile's time and what it warned.
//! Built from `result.json` files (pure), written as `compat.md` and `compat.json`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::campaign::matrix::Case;
use crate::case::verdict::CaseResult;

/// The JSON document's schema.
pub const SCHEMA: &str = "kdrill-compat/1";

/// One case of the table: where it goes and which results are its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub kernel: String,
    /// The case's label (`dirty-free+userspace=trixie`): results carry it as their scenario.
    pub label: String,
    /// The column: the capture userspace's name (`bookworm`, `host`).
    pub userspace: String,
}

/// The slots of `cases`, in their order.
pub fn slots(cases: &[Case]) -> Vec<Slot> {
    cases
        .iter()
        .map(|case| Slot {
            kernel: case.kernel.id.clone(),
            label: case.label(),
            userspace: userspace_of_case(case),
        })
        .collect()
}

/// Whose tools capture `case`: its release's, or the one a `userspace:` key names.
fn userspace_of_case(case: &Case) -> String {
    case.userspace().name().to_string()
}

/// The makedumpfile version a result's capture used (upstream's: `1.7.6`), when it says.
fn makedumpfile_of(result: &CaseResult) -> Option<String> {
    let version = result.userspace.as_ref()?.packages.get("makedumpfile")?;
    Some(crate::spec::userspace::upstream_version(version).to_string())
}

#[derive(Debug, Clone, Serialize)]
pub struct Table {
    pub schema: &'static str,
    /// The scenario of the cells (the first slot's label, up to its `+`/`@`).
    pub scenario: String,
    pub rows: Vec<Row>,
    pub columns: Vec<Column>,
    pub cells: Vec<Cell>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub kernel: String,
    /// The kernel's release as its dumps say (`6.12.117+deb12-amd64`).
    pub release: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Column {
    pub userspace: String,
    /// makedumpfile's version in that userspace, as the results recorded it.
    pub makedumpfile: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub kernel: String,
    pub userspace: String,
    /// `PASS`, `FAIL`, `SKIP`, `INTERRUPTED` or `NOT RUN`.
    pub verdict: String,
    pub failure: Option<String>,
    pub reason: Option<String>,
    pub dump_bytes: Option<u64>,
    pub dumped_pages: Option<u64>,
    pub excluded_pages: Option<u64>,
    pub dumped_percent: Option<f64>,
    /// makedumpfile's run in the capture guest (guest clock).
    pub makedumpfile_seconds: Option<f64>,
    /// What makedumpfile printed besides progress and success.
    pub makedumpfile_said: Vec<String>,
    pub artifacts: Option<String>,
}

/// The table of `slots` from `results` (each slot's latest attempt; a slot without one is NOT
/// RUN). Rows and columns keep the order in which the slots first name them.
pub fn table(slots: &[Slot], results: &[CaseResult]) -> Table {
    let mut rows: Vec<Row> = Vec::new();
    let mut columns: Vec<Column> = Vec::new();
    let mut cells = Vec::new();
    for slot in slots {
        let last = results
            .iter()
            .filter(|r| r.kernel == slot.kernel && r.scenario == slot.label)
            .max_by(|a, b| a.started.total_cmp(&b.started));
        if !rows.iter().any(|r| r.kernel == slot.kernel) {
            rows.push(Row {
                kernel: slot.kernel.clone(),
                release: None,
            });
        }
        if !columns.iter().any(|c| c.userspace == slot.userspace) {
            columns.push(Column {
                userspace: slot.userspace.clone(),
                makedumpfile: None,
            });
        }
        let mut cell = Cell {
            kernel: slot.kernel.clone(),
            userspace: slot.userspace.clone(),
            verdict: "NOT RUN".into(),
            failure: None,
            reason: None,
            dump_bytes: None,
            dumped_pages: None,
            excluded_pages: None,
            dumped_percent: None,
            makedumpfile_seconds: None,
            makedumpfile_said: Vec::new(),
            artifacts: None,
        };
        if let Some(result) = last {
            let row = rows.iter_mut().find(|r| r.kernel == slot.kernel);
            if let Some(row) = row.filter(|r| r.release.is_none()) {
                row.release = result.kernel_release.clone();
            }
            let column = columns.iter_mut().find(|c| c.userspace == slot.userspace);
            if let Some(column) = column.filter(|c| c.makedumpfile.is_none()) {
                column.makedumpfile = makedumpfile_of(result);
            }
            cell.verdict = result.verdict.label().into();
            cell.failure = result.failure.clone();
            cell.reason = result.reasons.first().cloned();
            cell.dump_bytes = result.dump_bytes;
            cell.makedumpfile_seconds = result.minimal.as_ref().and_then(|m| m.makedumpfile);
            cell.artifacts = Some(result.artifacts.clone());
            if let Some(capture) = &result.capture {
                cell.dumped_pages = Some(capture.dumped_pages);
                cell.excluded_pages = Some(capture.excluded_pages);
                cell.dumped_percent = Some(capture.dumped_percent);
                cell.makedumpfile_said = capture.makedumpfile_said.clone().unwrap_or_default();
            }
        }
        cells.push(cell);
    }
    let scenario = slots
        .first()
        .map(|s| {
            s.label
                .split(['+', '@'])
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_default();
    Table {
        schema: SCHEMA,
        scenario,
        rows,
        columns,
        cells,
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The Markdown table, the messages makedumpfile printed (numbered, referred to from the cells)
/// and each failure's reason with its evidence folder.
pub fn markdown(table: &Table) -> String {
    let mut notes: Vec<&str> = Vec::new();
    for cell in &table.cells {
        for line in &cell.makedumpfile_said {
            if !notes.contains(&line.as_str()) {
                notes.push(line);
            }
        }
    }
    let mut out = String::from("# kdrill compat: kernel × makedumpfile\n\n");
    out.push_str(&format!(
        "Each cell is the case `<kernel>/{}` captured by that column's makedumpfile: its verdict, the \
         share of the guest's RAM pages the dump holds (pages dumped / excluded), the dump's size, \
         makedumpfile's time in the capture guest, and [n]: what makedumpfile printed (below).\n\n",
        table.scenario
    ));
    out.push_str("| kernel |");
    for column in &table.columns {
        match &column.makedumpfile {
            Some(version) => {
                out.push_str(&format!(" makedumpfile {version} ({}) |", column.userspace))
            }
            None => out.push_str(&format!(" {} userspace |", column.userspace)),
        }
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(table.columns.len()));
    out.push('\n');
    let by_place: BTreeMap<(&str, &str), &Cell> = table
        .cells
        .iter()
        .map(|c| ((c.kernel.as_str(), c.userspace.as_str()), c))
        .collect();
    for row in &table.rows {
        match &row.release {
            Some(release) => out.push_str(&format!("| {} ({release}) |", row.kernel)),
            None => out.push_str(&format!("| {} |", row.kernel)),
        }
        for column in &table.columns {
            let text = by_place
                .get(&(row.kernel.as_str(), column.userspace.as_str()))
                .map(|cell| cell_text(cell, &notes))
                .unwrap_or_else(|| "·".into());
            out.push_str(&format!(" {text} |"));
        }
        out.push('\n');
    }
    if !notes.is_empty() {
        out.push_str("\nWhat makedumpfile printed:\n\n");
        for (i, line) in notes.iter().enumerate() {
            out.push_str(&format!("{}. {line}\n", i + 1));
        }
    }
    let failed: Vec<&Cell> = table.cells.iter().filter(|c| c.reason.is_some()).collect();
    if !failed.is_empty() {
        out.push_str("\nWhy:\n\n");
        for cell in failed {
            out.push_str(&format!(
                "- {} × {}: {} ({})\n",
                cell.kernel,
                cell.userspace,
                cell.reason.as_deref().unwrap_or_default(),
                cell.artifacts.as_deref().unwrap_or("no evidence folder")
            ));
        }
    }
    out
}

/// `**FAIL** 71.3 % (140,000 / 56,475), 75 MB, 12.1 s [1][2]`.
fn cell_text(cell: &Cell, notes: &[&str]) -> String {
    let mut text = match cell.verdict.as_str() {
        "PASS" => "PASS".to_string(),
        other => format!("**{other}**"),
    };
    if let (Some(percent), Some(dumped), Some(excluded)) =
        (cell.dumped_percent, cell.dumped_pages, cell.excluded_pages)
    {
        text.push_str(&format!(
            " {percent:.1} % ({} / {})",
            thousands(dumped),
            thousands(excluded)
        ));
    }
    let mut figures = Vec::new();
    if let Some(bytes) = cell.dump_bytes {
        figures.push(format!("{} MB", (bytes as f64 / 1e6).round()));
    }
    if let Some(secs) = cell.makedumpfile_seconds {
        figures.push(format!("{secs:.1} s"));
    }
    if !figures.is_empty() {
        text.push_str(&format!(", {}", figures.join(", ")));
    }
    if cell.dumped_percent.is_none() {
        if let Some(failure) = &cell.failure {
            text.push_str(&format!(" ({failure})"));
        }
    }
    for line in &cell.makedumpfile_said {
        if let Some(n) = notes.iter().position(|l| l == line) {
            text.push_str(&format!(" [{}]", n + 1));
        }
    }
    text
}

/// Writes `compat.md` and `compat.json` into `out_dir`; returns the Markdown.
pub fn write(out_dir: &Path, table: &Table) -> std::io::Result<String> {
    std::fs::create_dir_all(out_dir)?;
    let md = markdown(table);
    std::fs::write(out_dir.join("compat.md"), &md)?;
    let json = serde_json::to_string_pretty(table).unwrap_or_default();
    std::fs::write(out_dir.join("compat.json"), json + "\n")?;
    Ok(md)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::case::verdict::Verdict;

    fn slot(kernel: &str, userspace: &str) -> Slot {
        Slot {
            kernel: kernel.into(),
            label: format!("dirty-free+userspace={userspace}"),
            userspace: userspace.into(),
        }
    }

    fn result(
        kernel: &str,
        userspace: &str,
        dumped: u64,
        excluded: u64,
        said: &[&str],
    ) -> CaseResult {
        let label = format!("dirty-free+userspace={userspace}");
        let mut r = CaseResult::new(kernel, &label, Path::new("target/kdrill/runs/x"));
        r.verdict = Verdict::Pass;
        r.kernel_release = Some(format!("{kernel}-amd64"));
        let makedumpfile = if userspace == "bookworm" {
            "1:1.7.2-1"
        } else {
            "1:1.7.6-1"
        };
        r.userspace = Some(crate::fetch::userspace::Used {
            name: userspace.into(),
            own: true,
            packages: [("makedumpfile".to_string(), makedumpfile.to_string())].into(),
            sysroot: None,
        });
        r.dump_bytes = Some(30_400_000);
        r.minimal_phases().makedumpfile = Some(9.84);
        r.capture = Some(crate::dumpcheck::facts::tests::facts(
            dumped, excluded, said,
        ));
        r
    }

    #[test]
    fn the_table_has_a_row_per_kernel_a_column_per_userspace_and_the_last_attempt_in_each_cell() {
        let slots = [
            slot("6.1", "bookworm"),
            slot("6.1", "trixie"),
            slot("6.12", "bookworm"),
            slot("6.12", "trixie"),
        ];
        let unsupported = [
            "The kernel version is not supported.",
            "The makedumpfile operation may be incomplete.",
        ];
        let mut failed = result("6.12", "bookworm", 160_000, 36_475, &unsupported);
        failed.verdict = Verdict::Fail;
        failed.failure = Some("dump-not-reduced".into());
        failed.reasons = vec!["the dump holds 81.4 % of the guest's pages".into()];
        failed.dump_bytes = Some(92_000_000);
        let mut older = result("6.1", "bookworm", 1, 1, &[]);
        older.started -= 100.0;
        older.verdict = Verdict::Fail;
        let results = [
            older,
            result("6.1", "bookworm", 28_559, 167_916, &[]),
            result("6.12", "trixie", 29_000, 167_475, &unsupported[..1]),
            failed,
        ];
        let table = table(&slots, &results);
        assert_eq!(table.scenario, "dirty-free");
        assert_eq!(
            table
                .rows
                .iter()
                .map(|r| r.kernel.as_str())
                .collect::<Vec<_>>(),
            ["6.1", "6.12"]
        );
        assert_eq!(table.rows[1].release.as_deref(), Some("6.12-amd64"));
        assert_eq!(
            table
                .columns
                .iter()
                .map(|c| c.userspace.as_str())
                .collect::<Vec<_>>(),
            ["bookworm", "trixie"]
        );
        assert_eq!(
            markdown(&table),
            "# kdrill compat: kernel × makedumpfile\n\n\
             Each cell is the case `<kernel>/dirty-free` captured by that column's makedumpfile: its verdict, the share of the guest's RAM pages the dump holds (pages dumped / excluded), the dump's size, makedumpfile's time in the capture guest, and [n]: what makedumpfile printed (below).\n\n\
             | kernel | makedumpfile 1.7.2 (bookworm) | makedumpfile 1.7.6 (trixie) |\n\
             |---|---|---|\n\
             | 6.1 (6.1-amd64) | PASS 14.5 % (28,559 / 167,916), 30 MB, 9.8 s | **NOT RUN** |\n\
             | 6.12 (6.12-amd64) | **FAIL** 81.4 % (160,000 / 36,475), 92 MB, 9.8 s [1] [2] | PASS 14.8 % (29,000 / 167,475), 30 MB, 9.8 s [1] |\n\
             \nWhat makedumpfile printed:\n\n\
             1. The kernel version is not supported.\n\
             2. The makedumpfile operation may be incomplete.\n\
             \nWhy:\n\n\
             - 6.12 × bookworm: the dump holds 81.4 % of the guest's pages (target/kdrill/runs/x)\n"
        );
        let json = serde_json::to_value(&table).unwrap();
        assert_eq!(json["schema"], "kdrill-compat/1");
        assert_eq!(json["cells"][1]["verdict"], "NOT RUN");
        assert_eq!(json["cells"][2]["dumped_pages"], 160_000);
        assert_eq!(json["cells"][2]["failure"], "dump-not-reduced");
    }

    #[test]
    fn a_cell_without_page_figures_names_its_failure() {
        let mut r = result("7.3", "sid", 0, 0, &[]);
        r.capture = None;
        r.dump_bytes = None;
        r.minimal_phases().makedumpfile = None;
        r.verdict = Verdict::Fail;
        r.failure = Some("timeout".into());
        r.reasons = vec!["no sign of the capture kernel".into()];
        let table = table(&[slot("7.3", "sid")], &[r]);
        assert_eq!(cell_text(&table.cells[0], &[]), "**FAIL** (timeout)");
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(323_037), "323,037");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
