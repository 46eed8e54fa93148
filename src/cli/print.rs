//! Output shared by several commands: a plan and a sync report as text
//! (`plan`, `sync`), and any result as one JSON document (`--output json`).

use serde::Serialize;

use crate::engine::SyncReport;
use crate::plan::Plan;

/// Prints `value` as one pretty JSON document on stdout.
pub fn print_json<T: Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("coexist: cannot encode the result: {e}"),
    }
}

/// Prints a plan: its summary, the first operations, conflicts, notices
/// and gates.
pub fn print_plan(plan: &Plan) {
    let s = &plan.summary;
    println!(
        "Plan {}: {} to create, {} to update, {} to delete, {} withheld; {} conflicts; GAL of {} recipients.",
        plan.id, s.create, s.update, s.delete, s.withheld, s.conflicts, s.gal
    );
    for (system, counts) in &s.by_system {
        println!(
            "  {system}: {} create, {} update, {} delete",
            counts.create, counts.update, counts.delete
        );
    }
    const SHOWN: usize = 20;
    for step in plan.operations.iter().take(SHOWN) {
        println!(
            "  {}{:<6} {:<8} {:<36} {}",
            if step.withheld { "(withheld) " } else { "" },
            step.action,
            step.system,
            step.address,
            step.reason
        );
    }
    if plan.operations.len() > SHOWN {
        println!(
            "  … and {} more (use --output json to see them all)",
            plan.operations.len() - SHOWN
        );
    }
    for conflict in &plan.conflicts {
        println!("Conflict: {}", conflict.message);
    }
    // Notices (entries skipped by a read, entries coexist did not make):
    // the first few, the rest in JSON.
    for notice in plan.notices.iter().take(SHOWN) {
        println!(
            "Notice ({}: {}): {}",
            notice.system, notice.object, notice.message
        );
    }
    if plan.notices.len() > SHOWN {
        println!(
            "  … and {} more notices (use --output json to see them all)",
            plan.notices.len() - SHOWN
        );
    }
    for gate in &plan.gates {
        println!("Safety gate ({}): {}", gate.gate, gate.message);
    }
}

/// Prints what a sync read, planned and applied.
pub fn print_sync(report: &SyncReport) {
    if !report.resumed.is_empty() {
        println!("An earlier run was interrupted while applying; this run completed its work.");
    }
    for pull in &report.pulls {
        match &pull.error {
            Some(error) => println!("Pulled {}: FAILED: {error}", pull.system),
            None => println!(
                "Pulled {} ({}): {} recipients, {} stubs; {} new, {} changed, {} gone.",
                pull.system,
                pull.mode,
                pull.recipients,
                pull.stubs,
                pull.staged.added,
                pull.staged.changed,
                pull.staged.removed
            ),
        }
        for problem in &pull.problems {
            println!("  skipped {}: {}", problem.object, problem.message);
        }
    }
    print_plan(&report.plan);
    println!(
        "Applied: {} done, {} failed, {} withheld.",
        report.apply.done, report.apply.failed, report.apply.withheld
    );
    for failure in &report.apply.failures {
        println!("  failed: {failure}");
    }
}
