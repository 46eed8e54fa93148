//! `coexist apply FILE`: apply exactly a saved plan, recorded as a run.

use std::path::Path;

use crate::cli::failure::Failure;
use crate::cli::print::{outln, print_json};
use crate::cli::Output;
use crate::engine::{Engine, RunOptions};
use crate::exit;
use crate::plan::Plan;
use crate::store::RunStatus;

/// Applies the plan saved in `file`. A refusal (a stale plan, say) is
/// recorded in the history before it is returned; a plan with a routing
/// loop exits 8 as `sync` and `plan` do.
pub async fn run(
    engine: &Engine,
    file: &Path,
    options: &RunOptions,
    output: Output,
) -> Result<i32, Failure> {
    let text = std::fs::read_to_string(file)?;
    let plan: Plan = serde_json::from_str(&text)?;
    let run = engine.store.start_run("apply").await?;
    let report = match engine.apply(&plan, Some(run), options).await {
        Ok(report) => report,
        Err(error) => {
            // The refusal is what the admin must see, even if the
            // history cannot record it.
            if let Err(store) = engine
                .store
                .finish_run(
                    run,
                    RunStatus::Refused,
                    &serde_json::json!({ "error": error.to_string() }),
                )
                .await
            {
                tracing::warn!(%store, "the refused apply could not be recorded in the history");
            }
            return Err(error.into());
        }
    };
    // A saved plan with a loop in it says so as `sync` and `plan` do.
    let code = if plan.has_routing_loop() {
        exit::ROUTING_LOOP
    } else {
        report.exit_code()
    };
    engine
        .store
        .finish_run(
            run,
            RunStatus::of_exit_code(code),
            &serde_json::to_value(&report)?,
        )
        .await?;
    if output == Output::Json {
        print_json(&report)?;
    } else {
        outln!(
            "Applied plan {}: {} done, {} already done before, {} failed, {} withheld.",
            report.plan,
            report.done,
            report.skipped_already_done,
            report.failed,
            report.withheld
        )?;
        for failure in &report.failures {
            outln!("  failed: {failure}")?;
        }
    }
    Ok(code)
}
