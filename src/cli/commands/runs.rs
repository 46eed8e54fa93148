//! `coexist runs`: the history of runs, newest first.

use std::path::Path;

use crate::cli::failure::Failure;
use crate::cli::print::{outln, print_json};
use crate::cli::Output;
use crate::config::Config;
use crate::exit;
use crate::store::Store;

/// Shows the last `limit` runs, each with a one-line summary.
pub async fn run(config_path: &Path, limit: i64, output: Output) -> Result<i32, Failure> {
    let config = Config::load(config_path)?;
    let store = Store::open(&config.store_url()?).await?;
    let runs = store.runs(limit).await?;
    if output == Output::Json {
        print_json(&runs)?;
    } else {
        outln!(
            "{:>5}  {:<8} {:<26} {:<9} summary",
            "run",
            "command",
            "started",
            "status"
        )?;
        for run in runs {
            let summary = run
                .summary
                .as_ref()
                .map(
                    |s| match (s.get("done"), s.get("withheld"), s.get("error")) {
                        (_, _, Some(error)) => format!("error: {error}"),
                        (Some(done), Some(withheld), _) => {
                            format!("{done} operations done, {withheld} withheld")
                        }
                        _ => s.to_string(),
                    },
                )
                .unwrap_or_default();
            outln!(
                "{:>5}  {:<8} {:<26} {:<9} {summary}",
                run.id,
                run.command,
                run.started_at,
                run.status
            )?;
        }
    }
    Ok(exit::OK)
}
