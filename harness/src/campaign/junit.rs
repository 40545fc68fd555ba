//! nextest's JUnit report, completed with what only kdrill knows: a declared skip's reason in
//! place of nextest's generic "does not match the run-ignored option", so the report, the summary
//! and the exit code tell the same story.

use std::path::Path;

use crate::case::Case;

/// Puts each skipped case's declared reason into its `<skipped message="…"/>` element.
pub fn annotate_skips(xml: &str, cases: &[Case]) -> String {
    let mut out = xml.to_string();
    for case in cases {
        let Some(why) = case.skip_reason() else {
            continue;
        };
        let name = format!("<testcase name=\"{}\"", escape(&case.id()));
        let Some(start) = out.find(&name) else {
            continue;
        };
        let end = out[start..]
            .find("</testcase>")
            .map_or(out.len(), |e| start + e);
        let marker = "<skipped message=\"";
        let Some(at) = out[start..end]
            .find(marker)
            .map(|a| start + a + marker.len())
        else {
            continue;
        };
        let Some(close) = out[at..end].find('"').map(|c| at + c) else {
            continue;
        };
        out.replace_range(at..close, &escape(&format!("declared skip: {why}")));
    }
    out
}

/// Rewrites the report at `path` in place; a missing report is left alone.
pub fn annotate_file(path: &Path, cases: &[Case]) -> std::io::Result<()> {
    let xml = match std::fs::read_to_string(path) {
        Ok(xml) => xml,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    std::fs::write(path, annotate_skips(&xml, cases))
}

/// XML attribute escaping.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skipped_testcase_carries_the_declared_reason() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let cases = crate::campaign::matrix::expand(
            root,
            &["debian-6.1-cloud".into()],
            &["watchdog".into(), "sysrq".into()],
        )
        .unwrap();
        // What nextest 0.9 writes for an ignored trial with `report-skipped = "ignored"`.
        let xml = r#"<testsuite name="kdrill::matrix" tests="2" skipped="1">
        <testcase name="debian-6.1-cloud/watchdog" classname="kdrill::matrix" time="0.000">
            <skipped message="Skipped: test does not match the run-ignored option"/>
        </testcase>
        <testcase name="debian-6.1-cloud/sysrq" classname="kdrill::matrix" time="20.1">
        </testcase>
</testsuite>"#;
        let got = annotate_skips(xml, &cases);
        let why = cases[0].skip_reason().unwrap();
        assert!(
            got.contains(&format!(
                "<skipped message=\"{}\"/>",
                escape(&format!("declared skip: {why}"))
            )),
            "{got}"
        );
        assert!(!got.contains("run-ignored"));
        assert!(got.ends_with("time=\"20.1\">\n        </testcase>\n</testsuite>"));
    }

    #[test]
    fn attributes_are_escaped() {
        assert_eq!(escape(r#"a<b & "c""#), "a&lt;b &amp; &quot;c&quot;");
    }
}
