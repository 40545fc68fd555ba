//! What a capture wrote, as figures a table can compare across kernels and makedumpfile
//! releases: the pages the dump holds and leaves out (read from the dump's own bitmaps by
//! kdrill's reader), makedumpfile's own messages in the capture guest (its warnings: "The kernel
//! version is not supported."), and `expect.dump`, the bound on the share of pages dumped.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::dumpcheck::DumpError;
use crate::spec::expect::ExpectDump;

/// `result.json`'s `capture`: what the dump holds, by its headers and bitmaps.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CaptureFacts {
    /// The guest's RAM pages the dump covers: dumped + excluded (the capture kernel's own
    /// reservation is not in a dump).
    pub ram_pages: u64,
    /// Pages whose contents the dump holds (as makedumpfile's own report counts them: without
    /// the zero pages it writes as one shared page).
    pub dumped_pages: u64,
    /// RAM pages the dump level left out (zero, cache, user and free pages at `-d 31`).
    pub excluded_pages: u64,
    /// Of `excluded_pages`, the zero pages (kept in the dump's bitmap as one shared page).
    #[serde(default)]
    pub zero_pages: u64,
    /// `dumped_pages` as a share of `ram_pages`, in percent, one decimal.
    pub dumped_percent: f64,
    pub page_size: u64,
    /// makedumpfile's `-d` level, as its header records it (kdump-compressed dumps).
    #[serde(default)]
    pub dump_level: Option<i32>,
    /// What makedumpfile printed in the capture guest besides its progress and its success
    /// lines: its warnings and errors, in order (`null`: its output was not kept).
    #[serde(default)]
    pub makedumpfile_said: Option<Vec<String>>,
}

impl CaptureFacts {
    /// The figures of `info`.
    pub fn from_info(info: &kdrill_vmcore::DumpInfo) -> CaptureFacts {
        let ram = info.dumped_pages + info.excluded_pages;
        let dumped = info.dumped_pages - info.zero_pages.min(info.dumped_pages);
        CaptureFacts {
            ram_pages: ram,
            dumped_pages: dumped,
            excluded_pages: ram - dumped,
            zero_pages: info.zero_pages,
            dumped_percent: percent(dumped, ram),
            page_size: info.page_size,
            dump_level: info.dump_level,
            makedumpfile_said: None,
        }
    }
}

/// The figures of the dump at `path`, by kdrill's reader.
pub fn read(path: &Path) -> Result<CaptureFacts, String> {
    let dump = kdrill_vmcore::Vmcore::open(path).map_err(|e| e.to_string())?;
    Ok(CaptureFacts::from_info(dump.info()))
}

/// `part` of `whole` in percent, rounded to one decimal (0 of nothing is 0).
pub fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    (part as f64 * 1000.0 / whole as f64).round() / 10.0
}

/// makedumpfile's messages in its output: every line but the progress meters (`Copying data
/// : [ 12.3 %] \`, redrawn with carriage returns) and the lines of a good ending (`The dumpfile
/// is saved to …`, `makedumpfile Completed.`).
pub fn messages(output: &str) -> Vec<String> {
    output
        .split(['\n', '\r'])
        .map(str::trim)
        .filter(|line| {
            !line.is_empty()
                && !is_progress(line)
                && !line.starts_with("The dumpfile is saved to")
                && *line != "makedumpfile Completed."
        })
        .map(String::from)
        .collect()
}

/// `Checking for memory holes : [100.0 %] |`, with or without an `eta:`.
fn is_progress(line: &str) -> bool {
    line.split_once(": [").is_some_and(|(_, rest)| {
        rest.split_once("%]")
            .is_some_and(|(figure, _)| figure.trim().parse::<f64>().is_ok())
    })
}

/// `expect.dump` against the figures: the reason the case fails, if it does. The reason says
/// what it means, and quotes makedumpfile's own warning when it gave one.
pub fn check(facts: &CaptureFacts, bound: &ExpectDump) -> Option<DumpError> {
    if facts.dumped_percent <= bound.max_dumped_percent {
        return None;
    }
    let warned = facts
        .makedumpfile_said
        .iter()
        .flatten()
        .find(|line| line.contains("not supported"))
        .map(|line| format!(" (it said: \"{line}\")"))
        .unwrap_or_default();
    Some(DumpError::DumpNotReduced {
        percent: facts.dumped_percent,
        max: bound.max_dumped_percent,
        dumped: facts.dumped_pages,
        ram: facts.ram_pages,
        why: format!(
            "this makedumpfile did not exclude the free pages{warned}: is the kernel newer than it supports?"
        ),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const OUTPUT: &str = "\rChecking for memory holes                         : [  0.0 %] /                  \rChecking for memory holes                         : [100.0 %] |                  \rCopying data                                      : [ 12.3 %] \\           eta: 4s\rCopying data                                      : [100.0 %] |           eta: 0s\nThe kernel version is not supported.\nThe makedumpfile operation may be incomplete.\n\nThe dumpfile is saved to /mnt/vmcore.\n\nmakedumpfile Completed.\n";

    #[test]
    fn messages_are_what_is_left_without_progress_and_success() {
        assert_eq!(
            messages(OUTPUT),
            [
                "The kernel version is not supported.",
                "The makedumpfile operation may be incomplete."
            ]
        );
        let quiet = "\rCopying data : [100.0 %] |\nThe dumpfile is saved to /mnt/vmcore.\n\nmakedumpfile Completed.\n";
        assert!(messages(quiet).is_empty());
        assert_eq!(
            messages("get_mem_map: Can't distinguish the memory type.\n"),
            ["get_mem_map: Can't distinguish the memory type."]
        );
    }

    /// Facts of a capture at dump level 31, for this module's and the compat table's tests.
    pub(crate) fn facts(dumped: u64, excluded: u64, said: &[&str]) -> CaptureFacts {
        CaptureFacts {
            ram_pages: dumped + excluded,
            dumped_pages: dumped,
            excluded_pages: excluded,
            dumped_percent: percent(dumped, dumped + excluded),
            zero_pages: 0,
            page_size: 4096,
            dump_level: Some(31),
            makedumpfile_said: Some(said.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn zero_pages_count_as_excluded_as_makedumpfile_reports_them() {
        let info = kdrill_vmcore::DumpInfo {
            format: kdrill_vmcore::DumpFormat::KdumpCompressed,
            flattened: false,
            compression: kdrill_vmcore::Compression::Zlib,
            kernel_release: None,
            crash_time: None,
            machine: None,
            cpus: None,
            page_size: 4096,
            dumped_pages: 196_475,
            excluded_pages: 0,
            zero_pages: 20_000,
            incomplete_pages: 0,
            incomplete: false,
            truncated: false,
            dump_level: Some(1),
            header_version: Some(6),
            has_vmcoreinfo: true,
        };
        let facts = CaptureFacts::from_info(&info);
        assert_eq!(
            (
                facts.ram_pages,
                facts.dumped_pages,
                facts.excluded_pages,
                facts.zero_pages
            ),
            (196_475, 176_475, 20_000, 20_000)
        );
        assert_eq!(facts.dumped_percent, 89.8);
    }

    #[test]
    fn the_share_of_pages_is_rounded_to_a_tenth() {
        assert_eq!(percent(28_559, 196_475), 14.5);
        assert_eq!(percent(1, 3), 33.3);
        assert_eq!(percent(0, 0), 0.0);
    }

    #[test]
    fn a_dump_above_its_bound_fails_with_what_it_means() {
        let bound = ExpectDump {
            max_dumped_percent: 30.0,
        };
        assert!(check(&facts(28_559, 167_916, &[]), &bound).is_none());
        let err = check(
            &facts(140_000, 56_475, &["The kernel version is not supported."]),
            &bound,
        )
        .unwrap();
        assert!(matches!(err, DumpError::DumpNotReduced { .. }));
        assert_eq!(
            err.to_string(),
            "the dump holds 71.3 % of the guest's pages (140000 of 196475) where at most 30 % is expected: this makedumpfile did not exclude the free pages (it said: \"The kernel version is not supported.\"): is the kernel newer than it supports?"
        );
        let silent = check(&facts(140_000, 56_475, &[]), &bound).unwrap();
        assert!(silent
            .to_string()
            .ends_with("did not exclude the free pages: is the kernel newer than it supports?"));
    }
}
