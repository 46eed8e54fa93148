//! `coexist demo`: print what [`crate::demo::run`] did; exits 0 when the
//! second sync had nothing left to do, 4 otherwise.

use std::path::Path;
use std::sync::Arc;

use crate::cli::failure::Failure;
use crate::cli::print::{outln, print_json, OutputError};
use crate::cli::Output;
use crate::demo::DemoRun;
use crate::engine::ProgressSink;
use crate::exit;

/// Runs the demo in `dir` (default: a new temporary folder).
pub async fn run(
    dir: Option<&Path>,
    progress: Arc<dyn ProgressSink>,
    actor: String,
    output: Output,
) -> Result<i32, Failure> {
    let dir = dir.map_or_else(crate::demo::default_dir, Path::to_path_buf);
    if output == Output::Text {
        outln!("coexist demo: acmecorp.com, 1000 people: 100 on Google Workspace (gapps.acmecorp.com), 100 on Microsoft 365 (acmecorp.mail.onmicrosoft.com), 800 on an LDAP mail server; all three simulated, no credentials.")?;
        outln!(
            "Organisation, configuration and store in {}\n",
            dir.display()
        )?;
    }
    let demo = crate::demo::run(&dir, progress, actor).await?;
    if output == Output::Text {
        print_text(&demo)?;
    } else {
        print_json(&demo.report)?;
    }
    Ok(if demo.settled() {
        exit::OK
    } else {
        exit::PARTIAL
    })
}

fn print_text(demo: &DemoRun) -> Result<(), OutputError> {
    let first = &demo.first;
    outln!("First sync:")?;
    for pull in &first.pulls {
        outln!(
            "  read {:<6} {:>4} recipients, {:>4} stubs",
            pull.system,
            pull.recipients,
            pull.stubs
        )?;
    }
    outln!(
        "  GAL: {} recipients, {} conflicts",
        first.plan.summary.gal,
        first.plan.summary.conflicts
    )?;
    for (system, counts) in &first.plan.summary.by_system {
        outln!("  wrote {:>4} stubs into {system}", counts.create)?;
    }
    outln!(
        "\nSecond sync: {} operations (nothing left to change).",
        demo.report.operations_second_run
    )?;
    outln!("\nStubs held now:")?;
    for (system, count) in &demo.report.stubs_by_system {
        outln!("  {system:<6} {count}")?;
    }
    for flow in &demo.flows {
        let path: Vec<String> = flow
            .trace
            .hops
            .iter()
            .map(|h| format!("{} ({})", h.system, h.action))
            .collect();
        outln!(
            "\nMail from {} to {}: {}",
            flow.from,
            flow.to,
            path.join(" → ")
        )?;
    }
    outln!("\nGAL written as LDIF: {}", demo.report.gal_ldif)?;
    outln!(
        "Look around: coexist --config {} plan   (or route, export-gal, runs)",
        demo.config.display()
    )?;
    Ok(())
}
