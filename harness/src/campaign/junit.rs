//! nextest's JUnit report, completed with what only kdrill knows: a declared skip's reason in
//! place of nextest's generic "does not match the run-ignored option", so the report, the summary
//! and the exit code tell the same story; and each case's kernel package as `<properties>`.

use std::path::Path;

use crate::case::verdict::CaseResult;
use crate::case::Case;

/// Adds `<properties>` naming the kernel package (`kernel.package`, `kernel.version`,
/// `kernel.sha256`, `kernel.tracked`) and the capture userspace (`userspace`, `userspace.own`,
/// `userspace.<package>`) to each case's `<testcase>`, from its last result.
pub fn annotate_kernels(xml: &str, results: &[CaseResult]) -> String {
    let mut out = xml.to_string();
    let mut done: Vec<String> = Vec::new();
    let mut latest: Vec<&CaseResult> = results.iter().collect();
    latest.sort_by(|a, b| b.started.total_cmp(&a.started));
    for result in latest {
        let id = result.id();
        let mut pairs: Vec<(String, String)> = Vec::new();
        if let Some(p) = &result.kernel_package {
            pairs.extend([
                ("kernel.package".to_string(), p.package.clone()),
                ("kernel.version".to_string(), p.version.clone()),
                ("kernel.sha256".to_string(), p.sha256.clone()),
                ("kernel.tracked".to_string(), p.tracked.to_string()),
            ]);
        }
        if let Some(used) = &result.userspace {
            pairs.extend(crate::fetch::userspace::used::properties(used));
        }
        if pairs.is_empty() {
            continue;
        }
        if done.contains(&id) {
            continue;
        }
        done.push(id.clone());
        let name = format!("<testcase name=\"{}\"", escape(&id));
        let Some(start) = out.find(&name) else {
            continue;
        };
        let Some(open_end) = out[start..].find('>').map(|e| start + e + 1) else {
            continue;
        };
        let props: String = pairs
            .iter()
            .map(|(k, v)| format!("<property name=\"{}\" value=\"{}\"/>", escape(k), escape(v)))
            .collect();
        let props = format!("<properties>{props}</properties>");
        // nextest writes a passed case as `<testcase …/>`: opened, it holds the properties too.
        if out[start..open_end].ends_with("/>") {
            out.replace_range(open_end - 2..open_end, &format!(">{props}</testcase>"));
        } else {
            out.insert_str(open_end, &props);
        }
    }
    out
}

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

/// Rewrites the report at `path` in place (skip reasons, kernel packages); a missing report is
/// left alone.
pub fn annotate_file(path: &Path, cases: &[Case], results: &[CaseResult]) -> std::io::Result<()> {
    let xml = match std::fs::read_to_string(path) {
        Ok(xml) => xml,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    std::fs::write(
        path,
        annotate_kernels(&annotate_skips(&xml, cases), results),
    )
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
    fn each_testcase_names_the_kernel_package_it_booted() {
        let xml = "<testsuite>\n<testcase name=\"debian-6.1-track/sysrq\" classname=\"kdrill::matrix\" time=\"30.0\">\n</testcase>\n<testcase name=\"k/none\" time=\"1\"/>\n</testsuite>";
        let mut older = CaseResult::new("debian-6.1-track", "sysrq", Path::new("/r/1"));
        older.started = 1.0;
        older.kernel_package = Some(crate::case::verdict::KernelPackage {
            package: "linux-image-6.1.0-50-amd64-unsigned".into(),
            version: "6.1.180-1".into(),
            sha256: "aa".into(),
            tracked: true,
            series: Some("6.1".into()),
            parts: Vec::new(),
        });
        let mut newer = older.clone();
        newer.started = 2.0;
        newer.kernel_package.as_mut().unwrap().version = "6.1.192-3".into();
        let got = annotate_kernels(xml, &[older, newer]);
        assert!(got.contains("time=\"30.0\"><properties><property name=\"kernel.package\" value=\"linux-image-6.1.0-50-amd64-unsigned\"/><property name=\"kernel.version\" value=\"6.1.192-3\"/><property name=\"kernel.sha256\" value=\"aa\"/><property name=\"kernel.tracked\" value=\"true\"/></properties>\n</testcase>"), "{got}");
        assert_eq!(got.matches("<properties>").count(), 1, "{got}");
    }

    #[test]
    fn each_testcase_names_the_capture_userspace_and_its_versions() {
        // A passed case, as nextest writes it: closed in its own tag.
        let xml = "<testsuite>\n<testcase name=\"debian-6.12/sysrq\" time=\"30.0\"/>\n</testsuite>";
        let mut r = CaseResult::new("debian-6.12", "sysrq", Path::new("/r/1"));
        r.userspace = Some(crate::fetch::userspace::Used {
            name: "bookworm".into(),
            own: true,
            packages: [("makedumpfile".to_string(), "1:1.7.2-1".to_string())].into(),
            sysroot: None,
        });
        let got = annotate_kernels(xml, &[r]);
        assert!(got.contains("time=\"30.0\"><properties><property name=\"userspace\" value=\"bookworm\"/><property name=\"userspace.own\" value=\"true\"/><property name=\"userspace.makedumpfile\" value=\"1:1.7.2-1\"/></properties></testcase>\n</testsuite>"), "{got}");
    }

    #[test]
    fn attributes_are_escaped() {
        assert_eq!(escape(r#"a<b & "c""#), "a&lt;b &amp; &quot;c&quot;");
    }
}
