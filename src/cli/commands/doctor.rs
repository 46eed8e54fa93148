//! `coexist doctor`: print the findings of [`crate::doctor::examine`];
//! exits 4 when any check failed.

use crate::cli::failure::Failure;
use crate::cli::print::{outln, print_json};
use crate::cli::Output;
use crate::engine::Engine;
use crate::exit;

pub async fn run(engine: &Engine, output: Output) -> Result<i32, Failure> {
    let findings = crate::doctor::examine(engine).await?;
    let ok = findings.iter().all(|f| f.ok);
    if output == Output::Json {
        print_json(&serde_json::json!({ "ok": ok, "findings": findings }))?;
    } else {
        if findings.is_empty() {
            outln!("Nothing to report: every system reaches every other.")?;
        }
        for finding in &findings {
            outln!(
                "[{}] {}: {}",
                match (finding.ok, finding.manual) {
                    (_, true) => "LOOK",
                    (true, false) => " ok ",
                    (false, false) => "FAIL",
                },
                finding.check,
                finding.detail
            )?;
        }
    }
    Ok(if ok { exit::OK } else { exit::PARTIAL })
}
