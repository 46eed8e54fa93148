//! `coexist plan`: what a sync would change, optionally saved for `apply`.

use std::path::Path;

use crate::cli::args::PlanFormat;
use crate::cli::failure::Failure;
use crate::cli::print::{outln, print_json, print_plan, write_out};
use crate::cli::Output;
use crate::engine::{Engine, RunOptions};
use crate::plan::Plan;

/// What `coexist plan` does besides planning.
#[derive(Debug, Clone, Copy)]
pub struct Printing<'a> {
    /// Plan from what is staged, without reading the systems.
    pub no_pull: bool,
    /// Where to save the plan for `coexist apply`.
    pub save: Option<&'a Path>,
    /// A plan with changes exits 6.
    pub detailed_exitcode: bool,
    /// Text (or JSON), or a PowerShell script of the Microsoft 365 systems'
    /// operations.
    pub format: PlanFormat,
}

/// Plans after pulling (unless `no_pull`), saves the plan to `save`.
/// With `detailed_exitcode`, a plan with changes exits 6.
pub async fn run(
    engine: &Engine,
    options: &RunOptions,
    printing: Printing<'_>,
    output: Output,
) -> Result<i32, Failure> {
    let Printing {
        no_pull,
        save,
        detailed_exitcode,
        format,
    } = printing;
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
    if format == PlanFormat::Powershell {
        write_out(&powershell(engine, &plan))?;
    } else if output == Output::Json {
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

/// The operations of every system whose kind writes them as PowerShell
/// (Microsoft 365), one script after another; withheld operations are left
/// out, as `apply` would leave them. A plan with no such system says so in
/// a comment.
fn powershell(engine: &Engine, plan: &Plan) -> String {
    let mut out = String::new();
    for system in &engine.config.systems {
        let operations: Vec<coexist_connector::Operation> = plan
            .operations
            .iter()
            .filter(|step| step.system == system.id && !step.withheld)
            .map(|step| step.operation.clone())
            .collect();
        if let Some(script) = system.kind.0.powershell(&system.id, &operations) {
            out.push_str(&script);
            if !out.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    if out.is_empty() {
        out.push_str(
            "# coexist plan: no configured system writes its operations as PowerShell (only kind = \"m365\" does).\n",
        );
    }
    out
}
