//! `coexist move ADDRESS --to SYSTEM | --from-csv FILE` and `--finish`:
//! the people to move, the run, what became of each, with where mail to
//! them now goes.

use std::path::Path;

use crate::cli::failure::Failure;
use crate::cli::print::{outln, print_json};
use crate::cli::Output;
use crate::engine::Engine;
use crate::provisioning::{move_people, Move, MoveOptions};

/// The people the command line names: one, or one per CSV row (columns
/// `address` and, unless `--to` says it for all, `to`).
pub fn people(
    address: Option<&str>,
    to: Option<&str>,
    from_csv: Option<&Path>,
) -> Result<Vec<Move>, Failure> {
    if let Some(path) = from_csv {
        let rows = super::provision::csv_rows(path)?;
        return rows
            .into_iter()
            .map(|row| {
                let mut fields = row.fields;
                let address = fields
                    .remove("address")
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| {
                        Failure::usage(format!(
                            "{} line {}: no address (the header must name an `address` column)",
                            path.display(),
                            row.line
                        ))
                    })?;
                let to = fields
                    .remove("to")
                    .filter(|t| !t.is_empty())
                    .or(to.map(str::to_string));
                Ok(Move {
                    line: Some(row.line),
                    address,
                    to,
                })
            })
            .collect();
    }
    let Some(address) = address else {
        return Err(Failure::usage(
            "move needs ADDRESS (and --to SYSTEM), or --from-csv FILE".into(),
        ));
    };
    Ok(vec![Move {
        line: None,
        address: address.to_string(),
        to: to.map(str::to_string),
    }])
}

/// Moves `people` and prints the outcome.
pub async fn run(
    engine: &Engine,
    people: Vec<Move>,
    options: &MoveOptions,
    output: Output,
) -> Result<i32, Failure> {
    let report = move_people(engine, people, options)
        .await
        .map_err(super::provision::failure)?;
    let code = report.exit_code();
    if output == Output::Json {
        print_json(&report)?;
        return Ok(code);
    }
    let many = report.people.len() > 5;
    for moved in &report.people {
        let from = moved.from.as_deref().unwrap_or("?");
        outln!(
            "{}: {} → {}: {}",
            moved.address,
            from,
            moved.to,
            moved.state
        )?;
        if let Some(error) = &moved.error {
            outln!("  failed: {error}")?;
        }
        if many && moved.error.is_none() {
            continue;
        }
        for step in &moved.steps {
            outln!("  - {step}")?;
        }
        if let Some(password) = &moved.initial_password {
            outln!(
                "  initial password on {} (shown once): {password}",
                moved.to
            )?;
        }
        for note in &moved.notes {
            outln!("  note: {note}")?;
        }
        super::provision::print_routes(&moved.routes)?;
    }
    outln!(
        "{} people, {} stub operations{}.",
        report.people.len(),
        report.operations,
        if report.dry_run {
            " (dry run: nothing was changed)"
        } else {
            ""
        }
    )?;
    Ok(code)
}
