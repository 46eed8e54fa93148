//! `coexist plan`: what a sync would change, optionally saved for `apply`.

use std::path::Path;

use crate::cli::failure::Failure;
use crate::cli::print::{outln, print_json, print_plan};
use crate::cli::Output;
use crate::engine::{Engine, RunOptions};

/// Plans after pulling (unless `no_pull`), saves the plan to `save`.
/// With `detailed_exitcode`, a plan with changes exits 6.
pub async fn run(
    engine: &Engine,
    options: &RunOptions,
    no_pull: bool,
    save: Option<&Path>,
    detailed_exitcode: bool,
    output: Output,
) -> Result<i32, Failure> {
    let pulls = if no_pull {
        Vec::new()
    } else {
        engine.pull_with(options).await?
    };
    let health = engine.health(&pulls);
    let (plan, _) = engine.plan(&health, options).await?;
    if let Some(path) = save {
        std::fs::write(path, serde_json::to_vec_pretty(&plan)?)?;
    }
    if output == Output::Json {
        print_json(&plan)?;
    } else {
        print_plan(&plan)?;
        if let Some(path) = save {
            outln!(
                "\nPlan {} saved to {}; apply it with: coexist apply {}",
                plan.id,
                path.display(),
                path.display()
            )?;
        }
    }
    Ok(crate::engine::plan_exit_code(
        &pulls,
        &plan,
        detailed_exitcode,
    ))
}
