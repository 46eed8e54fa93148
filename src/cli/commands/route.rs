//! `coexist route ADDRESS --from SYSTEM`: trace a message through the
//! staged GAL, stubs and topology, hop by hop.

use std::path::Path;

use crate::cli::failure::Failure;
use crate::cli::print::{outln, print_json};
use crate::cli::Output;
use crate::config::Config;
use crate::exit;
use crate::reconcile::route::{trace, Origin, Outcome, StagedView};
use crate::store::Store;

/// Traces a message to `address` from a user of `from` (or `internet`).
/// Exits 0 when it is delivered or leaves the organisation, 4 when it
/// bounces or loops.
pub async fn run(
    config_path: &Path,
    address: &str,
    from: &str,
    output: Output,
) -> Result<i32, Failure> {
    let config = Config::load(config_path)?;
    let store = Store::open(&config.store_url()?).await?;
    let origin = if from == "internet" {
        Origin::Internet
    } else if config.policy.system(from).is_some() {
        Origin::System(from.to_string())
    } else {
        return Err(Failure::usage(format!(
            "--from {from}: not a configured system (expected internet or one of {})",
            config.system_ids().join(", ")
        )));
    };
    let staged = store.load_staged(&config.system_ids()).await?;
    let traced = trace(&config.policy, &StagedView::new(&staged), &origin, address);
    if output == Output::Json {
        print_json(&traced)?;
    } else {
        for (n, hop) in traced.hops.iter().enumerate() {
            outln!(
                "{:>2}. {:<12} {:<36} {}",
                n + 1,
                hop.system,
                hop.address,
                hop.action
            )?;
        }
        match &traced.outcome {
            Outcome::Delivered { system, hops } => {
                outln!("Delivered to a mailbox on {system} after {hops} hop(s).")?
            }
            Outcome::External { domain, hops } => {
                outln!("Leaves the organisation for {domain} after {hops} hop(s).")?
            }
            Outcome::Bounced { system, reason } => outln!("Bounced by {system}: {reason}.")?,
            Outcome::Looping { cycle } => outln!("Loops: {}.", cycle.join(" → "))?,
        }
    }
    Ok(match traced.outcome {
        Outcome::Delivered { .. } | Outcome::External { .. } => exit::OK,
        _ => exit::PARTIAL,
    })
}
