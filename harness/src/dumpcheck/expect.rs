//! Judging a log against a scenario: the lines it must hold (`expect.log`), the lines no log may
//! hold (`expect.absent`), and the panic message. Pure functions over text.

use std::collections::BTreeMap;

use crate::dumpcheck::DumpError;

/// For each pattern, the first line of `log` it matches. Patterns were validated when the
/// scenario was loaded; an invalid one matches nothing.
pub fn check_log(log: &str, patterns: &[String]) -> BTreeMap<String, Option<String>> {
    patterns
        .iter()
        .map(|pattern| {
            let found = regex::Regex::new(pattern).ok().and_then(|re| {
                log.lines()
                    .find(|line| re.is_match(line))
                    .map(|l| l.trim_end().to_string())
            });
            (pattern.clone(), found)
        })
        .collect()
}

/// An error for each `absent` pattern that matches a line of one of the named texts.
pub fn check_absent(texts: &[(&str, &str)], patterns: &[String]) -> Vec<DumpError> {
    let mut reasons = Vec::new();
    for pattern in patterns {
        let Ok(re) = regex::Regex::new(pattern) else {
            continue;
        };
        for (name, text) in texts {
            if let Some(line) = text.lines().find(|line| re.is_match(line)) {
                reasons.push(DumpError::ForbiddenLine {
                    text: name.to_string(),
                    pattern: pattern.clone(),
                    line: line.trim_end().to_string(),
                });
            }
        }
    }
    reasons
}

/// The last `Kernel panic - not syncing:` message in a dmesg text.
pub fn panic_message(log: &str) -> Option<String> {
    let marker = "Kernel panic - not syncing: ";
    log.lines().rev().find_map(|line| {
        line.find(marker)
            .map(|at| line[at + marker.len()..].trim_end().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "[   10.250000] sysrq: Trigger a crash\n\
                       [   10.260000] Kernel panic - not syncing: sysrq triggered crash\n\
                       [   10.270000] CPU: 0 PID: 1 Comm: sh\n";

    #[test]
    fn expected_lines_found_and_missing() {
        let patterns = [
            "sysrq: Trigger a crash".into(),
            "NMI received".into(),
            r"CPU: \d+ PID".into(),
        ];
        let got = check_log(LOG, &patterns);
        assert_eq!(
            got["sysrq: Trigger a crash"].as_deref(),
            Some("[   10.250000] sysrq: Trigger a crash")
        );
        assert_eq!(got["NMI received"], None);
        assert_eq!(
            got[r"CPU: \d+ PID"].as_deref(),
            Some("[   10.270000] CPU: 0 PID: 1 Comm: sh")
        );
    }

    #[test]
    fn absent_patterns_name_the_text_and_line() {
        let texts = [
            ("serial.log", "ok\nshould have crashed\n"),
            ("dmesg.txt", LOG),
        ];
        let reasons: Vec<String> =
            check_absent(&texts, &["should have crashed".into(), "Dazed".into()])
                .iter()
                .map(ToString::to_string)
                .collect();
        assert_eq!(
            reasons,
            ["serial.log holds a line it must not (`should have crashed`): should have crashed"]
        );
    }

    #[test]
    fn panic_message_is_the_last_one() {
        assert_eq!(panic_message(LOG).as_deref(), Some("sysrq triggered crash"));
        assert_eq!(panic_message("no panic here"), None);
    }
}
