//! `coexist doctor`: print the findings of [`crate::doctor::examine`];
//! exits 4 when any check failed.
//!
//! As JSON, every finding carries `check`, `status` (`ok`, `fail` or
//! `look`), `record`, `found` and `expected` (the record looked at, what it
//! holds and what it should hold; `null` for a check of no record), and
//! `ok`, `manual` and `detail` as before.

use serde_json::{json, Value};

use coexist_connector::Finding;

use crate::cli::failure::Failure;
use crate::cli::print::{outln, print_json};
use crate::cli::Output;
use crate::engine::Engine;
use crate::exit;

pub async fn run(engine: &Engine, output: Output) -> Result<i32, Failure> {
    let findings = crate::doctor::examine(engine).await?;
    let ok = findings.iter().all(|f| f.ok);
    if output == Output::Json {
        let findings: Vec<Value> = findings.iter().map(finding_json).collect();
        print_json(&json!({ "ok": ok, "findings": findings }))?;
    } else {
        if findings.is_empty() {
            outln!("Nothing to report: every system reaches every other.")?;
        }
        for finding in &findings {
            outln!(
                "[{}] {}: {}",
                match finding.status() {
                    "look" => "LOOK",
                    "ok" => " ok ",
                    _ => "FAIL",
                },
                finding.check,
                finding.detail
            )?;
        }
    }
    Ok(if ok { exit::OK } else { exit::PARTIAL })
}

/// One finding as JSON: the same keys for every finding.
fn finding_json(finding: &Finding) -> Value {
    json!({
        "check": finding.check,
        "status": finding.status(),
        "record": finding.record,
        "found": finding.found,
        "expected": finding.expected,
        "ok": finding.ok,
        "manual": finding.manual,
        "detail": finding.detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_finding_has_check_record_found_expected_and_status() {
        let dns = Finding::failed("MX", "acmecorp.com's MX points at another system").about(
            "acmecorp.com MX",
            "10 mail.acmecorp.com",
            "aspmx.l.google.com",
        );
        let value = finding_json(&dns);
        assert_eq!(value["check"], "MX");
        assert_eq!(value["status"], "fail");
        assert_eq!(value["record"], "acmecorp.com MX");
        assert_eq!(value["found"], "10 mail.acmecorp.com");
        assert_eq!(value["expected"], "aspmx.l.google.com");
        let manual = finding_json(&Finding::manual("catch-all", "look at Gmail routing"));
        assert_eq!(manual["status"], "look");
        assert_eq!(manual["record"], Value::Null);
        assert_eq!(
            finding_json(&Finding::passed("bind", "bound"))["status"],
            "ok"
        );
    }
}
