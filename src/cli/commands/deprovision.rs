//! `coexist deprovision ADDRESS [--yes] [--dry-run]`: the confirmation,
//! the run, and what became of the account and its stubs.

use std::io::{BufRead, IsTerminal, Write};

use crate::cli::failure::Failure;
use crate::cli::print::{outln, print_json, print_plan};
use crate::cli::Output;
use crate::engine::{Engine, RunOptions};
use crate::provisioning::deprovision;

/// Asks the admin at the terminal to confirm, unless `confirmed`; refuses
/// without a terminal to ask at.
pub fn confirm(address: &str, confirmed: bool) -> Result<(), Failure> {
    if confirmed {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::usage(format!(
            "deprovision {address}: no terminal to confirm at; say --yes (or --dry-run to see the steps)"
        )));
    }
    eprint!("Suspend the account of {address} at its home and remove its stubs from every other system? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Failure::usage("not confirmed: nothing was changed".into()))
    }
}

/// Deprovisions `address` and prints the outcome.
pub async fn run(
    engine: &Engine,
    address: &str,
    options: &RunOptions,
    dry_run: bool,
    output: Output,
) -> Result<i32, Failure> {
    let done = deprovision(engine, address, options, dry_run)
        .await
        .map_err(super::provision::failure)?;
    let code = done.exit_code();
    if output == Output::Json {
        print_json(&done)?;
        return Ok(code);
    }
    let place = done.locator.as_deref().unwrap_or(&done.home);
    match done.state {
        "suspended" => outln!("Suspended {} on {} ({place}).", done.address, done.home)?,
        "would_suspend" => outln!(
            "Would suspend {} on {} ({place}) and remove its stubs (nothing was changed):",
            done.address,
            done.home
        )?,
        _ => outln!(
            "{} on {} was suspended already (by an earlier run).",
            done.address,
            done.home
        )?,
    }
    print_plan(&done.plan)?;
    super::provision::print_routes(&done.routes)?;
    Ok(code)
}
