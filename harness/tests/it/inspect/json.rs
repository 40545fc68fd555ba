//! `kdrill inspect --format json` keeps every address exact: hex strings, no number above 2^53
//! (checked here, and by Python's `json` reading numbers as doubles, as jq and JavaScript do).

use std::time::Duration;

use super::{kdrill, real_oops, stdout_of};

/// Every number in `v` that a double does not hold exactly (or that passes 2^53), with its path.
fn unsafe_numbers(v: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Number(n) => {
            let big = match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => u > 1 << 53,
                (None, Some(i)) => i.unsigned_abs() > 1 << 53,
                _ => false,
            };
            if big {
                out.push(format!("{path} = {n}"));
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                unsafe_numbers(x, &format!("{path}[{i}]"), out);
            }
        }
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                unsafe_numbers(x, &format!("{path}.{k}"), out);
            }
        }
        _ => {}
    }
}

/// Reads `json` as a double-based reader does and compares each number with its exact value.
const PYTHON_ROUND_TRIP: &str = r#"
import json, sys
text = sys.stdin.read()
exact = json.loads(text)
doubles = json.loads(text, parse_int=float)
bad = []
def walk(a, b, path):
    if isinstance(a, dict):
        for k in a:
            walk(a[k], b[k], path + "." + k)
    elif isinstance(a, list):
        for i, (x, y) in enumerate(zip(a, b)):
            walk(x, y, "%s[%d]" % (path, i))
    elif isinstance(a, int) and not isinstance(a, bool) and int(b) != a:
        bad.append("%s = %d read as %.0f" % (path, a, b))
walk(exact, doubles, "")
print("\n".join(bad[:20]) if bad else "exact")
sys.exit(1 if bad else 0)
"#;

#[test]
fn every_address_survives_a_reader_of_doubles() {
    let (dir, path) = real_oops();
    let json = stdout_of(
        kdrill().arg("inspect").arg(&path).args([
            "--bt=all",
            "--regs",
            "--tasks",
            "--modules",
            "--dmesg",
            "--format",
            "json",
        ]),
        0,
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["schema"], "kdrill-inspect/1");
    let mut big = Vec::new();
    unsafe_numbers(&v, "", &mut big);
    assert!(
        big.is_empty(),
        "numbers a double does not keep:\n{}",
        big.join("\n")
    );
    // The crashed CPU's rip, as `--regs` prints it in text: ffffffffc0612128.
    assert_eq!(v["registers"][1]["registers"]["rip"], "0xffffffffc0612128");
    assert_eq!(v["registers"][1]["pr_pid"], 124);
    assert_eq!(v["backtraces"][1]["frames"][0]["ip"], "0xffffffffc0612128");
    assert_eq!(v["backtraces"][1]["end"]["ip"], "0x47b7a0");
    assert_eq!(v["modules"]["modules"][0]["base"], "0xffffffffc0612000");
    assert_eq!(
        v["modules"]["modules"][0]["size"], 16384,
        "a size stays a number"
    );
    assert!(v["tasks"]["tasks"][0]["address"]
        .as_str()
        .is_some_and(|a| a.starts_with("0xffff")));

    // The same document through Python's json with every integer read as a double.
    let file = dir.path().join("inspect.json");
    std::fs::write(&file, &json).unwrap();
    let finished = kdrill::host::process::run_with_input(
        std::process::Command::new("python3").args(["-c", PYTHON_ROUND_TRIP]),
        std::fs::File::open(&file).unwrap().into(),
        Duration::from_secs(60),
    )
    .unwrap();
    let said = String::from_utf8_lossy(&finished.stdout);
    assert!(
        finished.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&finished.stderr)
    );
    assert_eq!(said.trim(), "exact");
}
