//! `coexist place ADDRESS SYSTEM` (and `--clear`): record or remove a
//! recipient's explicit home, and say what the next sync will do for it.

use crate::cli::failure::Failure;
use crate::cli::print::{outln, print_json, print_plan};
use crate::cli::Output;
use crate::engine::Engine;
use crate::exit;
use crate::provisioning::place;

/// Places (or, with `system` `None`, un-places) the recipient of
/// `address`. Exits 0; 2 for an unknown system or a malformed address.
pub async fn run(
    engine: &Engine,
    address: &str,
    system: Option<&str>,
    actor: &str,
    dry_run: bool,
    output: Output,
) -> Result<i32, Failure> {
    let placed = place(engine, address, system, actor, dry_run)
        .await
        .map_err(super::provision::failure)?;
    if output == Output::Json {
        print_json(&placed)?;
        return Ok(exit::OK);
    }
    if placed.dry_run && placed.changed {
        match &placed.system {
            Some(system) => outln!(
                "Would place {} on {system} (nothing was changed).",
                placed.address
            )?,
            None => outln!(
                "Would remove {}'s placement (nothing was changed).",
                placed.address
            )?,
        }
        outln!("What the next sync would then do for it:")?;
        print_plan(&placed.next_sync)?;
        return Ok(exit::OK);
    }
    match (&placed.system, placed.changed) {
        (Some(system), true) => outln!("{} is placed on {system}.", placed.address)?,
        (Some(system), false) => outln!("{} was placed on {system} already.", placed.address)?,
        (None, true) => outln!(
            "{}'s placement (on {}) is removed: its mailbox decides its home again.",
            placed.address,
            placed.before.as_deref().unwrap_or("?")
        )?,
        (None, false) => outln!("{} had no placement.", placed.address)?,
    }
    outln!("What the next sync does for it:")?;
    print_plan(&placed.next_sync)?;
    Ok(exit::OK)
}
