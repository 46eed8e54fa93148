//! `coexist sync`: pull every system, plan, and apply within the gates.

use crate::cli::failure::Failure;
use crate::cli::print::{print_json, print_sync};
use crate::cli::Output;
use crate::engine::{Engine, RunOptions};

pub async fn run(engine: &Engine, options: &RunOptions, output: Output) -> Result<i32, Failure> {
    let report = engine.sync(options).await?;
    if output == Output::Json {
        print_json(&report)?;
    } else {
        print_sync(&report)?;
    }
    Ok(report.exit_code())
}
