//! What the commands print on stdout, all through one path: [`line`]
//! (by the [`outln!`] macro), [`write_out`] and [`print_json`]. A write
//! that fails is an [`OutputError`] the command returns like any other
//! error, never a panic (as `println!` would on a closed pipe): a command
//! whose reader went away (`coexist sync | head -1`) stops writing, its
//! run is recorded and its run lock released as after any error, and it
//! exits 1 with one line on stderr. Also the text shared by several
//! commands: a plan and a sync report (`plan`, `sync`).

use std::fmt;
use std::io::{self, Write};

use serde::Serialize;
use thiserror::Error;

use crate::engine::SyncReport;
use crate::plan::Plan;

/// Why the output could not be written to stdout.
#[derive(Debug, Error)]
pub enum OutputError {
    /// The reader of stdout went away (a broken pipe: `coexist sync |
    /// head -1`); what was not written yet is dropped.
    #[error("stdout was closed (broken pipe); the rest of the output was not written")]
    Closed,
    /// Any other failed write (a full disk, say).
    #[error("cannot write to stdout: {0}")]
    Write(#[source] io::Error),
    /// The result could not be encoded as JSON.
    #[error("cannot encode the result as JSON: {0}")]
    Encode(#[source] serde_json::Error),
}

impl From<io::Error> for OutputError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::BrokenPipe {
            OutputError::Closed
        } else {
            OutputError::Write(e)
        }
    }
}

/// Writes `text` to stdout as it is, and flushes it.
pub fn write_out(text: &str) -> Result<(), OutputError> {
    let mut stdout = io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// Writes one line to stdout (stdout is line-buffered: a closed pipe is
/// noticed at this line's end). Called through [`outln!`].
pub fn line(args: fmt::Arguments<'_>) -> Result<(), OutputError> {
    let mut stdout = io::stdout().lock();
    stdout.write_fmt(args)?;
    stdout.write_all(b"\n")?;
    Ok(())
}

/// Writes one line to stderr. Where stderr is closed too there is
/// nowhere left to say anything: the line is dropped, without a panic.
pub fn err_line(args: fmt::Arguments<'_>) {
    let mut stderr = io::stderr().lock();
    let _ = stderr
        .write_fmt(args)
        .and_then(|()| stderr.write_all(b"\n"));
}

/// `println!` that returns a `Result<(), OutputError>` instead of
/// panicking when stdout is closed: `outln!("{x}")?`.
macro_rules! outln {
    () => {
        $crate::cli::print::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::cli::print::line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

/// Prints `value` as one pretty JSON document on stdout.
pub fn print_json<T: Serialize>(value: &T) -> Result<(), OutputError> {
    let mut text = serde_json::to_string_pretty(value).map_err(OutputError::Encode)?;
    text.push('\n');
    write_out(&text)
}

/// Prints a plan: its summary, the first operations, conflicts, notices
/// and gates.
pub fn print_plan(plan: &Plan) -> Result<(), OutputError> {
    let s = &plan.summary;
    outln!(
        "Plan {}: {} to create, {} to update, {} to delete, {} withheld; {} conflicts; GAL of {} recipients.",
        plan.id, s.create, s.update, s.delete, s.withheld, s.conflicts, s.gal
    )?;
    for (system, counts) in &s.by_system {
        outln!(
            "  {system}: {} create, {} update, {} delete",
            counts.create,
            counts.update,
            counts.delete
        )?;
    }
    const SHOWN: usize = 20;
    for step in plan.operations.iter().take(SHOWN) {
        outln!(
            "  {}{:<6} {:<8} {:<36} {}",
            if step.withheld { "(withheld) " } else { "" },
            step.action,
            step.system,
            step.address,
            step.reason
        )?;
    }
    if plan.operations.len() > SHOWN {
        outln!(
            "  … and {} more (use --output json to see them all)",
            plan.operations.len() - SHOWN
        )?;
    }
    for conflict in &plan.conflicts {
        outln!("Conflict: {}", conflict.message)?;
    }
    // Notices (entries skipped by a read, entries coexist did not make):
    // the first few, the rest in JSON.
    for notice in plan.notices.iter().take(SHOWN) {
        outln!(
            "Notice ({}: {}): {}",
            notice.system,
            notice.object,
            notice.message
        )?;
    }
    if plan.notices.len() > SHOWN {
        outln!(
            "  … and {} more notices (use --output json to see them all)",
            plan.notices.len() - SHOWN
        )?;
    }
    for gate in &plan.gates {
        outln!("Safety gate ({}): {}", gate.gate, gate.message)?;
    }
    Ok(())
}

/// Prints what a sync read, planned and applied.
pub fn print_sync(report: &SyncReport) -> Result<(), OutputError> {
    if !report.resumed.is_empty() {
        outln!("An earlier run was interrupted while applying; this run completed its work.")?;
    }
    for pull in &report.pulls {
        match &pull.error {
            Some(error) => outln!("Pulled {}: FAILED: {error}", pull.system)?,
            None => outln!(
                "Pulled {} ({}): {} recipients, {} stubs; {} new, {} changed, {} gone.",
                pull.system,
                pull.mode,
                pull.recipients,
                pull.stubs,
                pull.staged.added,
                pull.staged.changed,
                pull.staged.removed
            )?,
        }
        if let Some(how) = &pull.incremental {
            outln!("  incremental: {how}")?;
        }
        for problem in &pull.problems {
            outln!("  skipped {}: {}", problem.object, problem.message)?;
        }
    }
    print_plan(&report.plan)?;
    outln!(
        "Applied: {} done, {} failed, {} withheld.",
        report.apply.done,
        report.apply.failed,
        report.apply.withheld
    )?;
    for failure in &report.apply.failures {
        outln!("  failed: {failure}")?;
    }
    Ok(())
}
