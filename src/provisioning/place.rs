//! `coexist place ADDRESS SYSTEM` and `--clear`: an explicit home,
//! recorded in the store with its audit record, nothing created anywhere.

use std::collections::BTreeSet;

use serde::Serialize;

use super::{addresses_of, normalised, preview_of, ProvisionError};
use crate::engine::Engine;
use crate::plan::{Action, Plan};
use crate::store::{AuditRecord, RunStatus};

/// What `place` did, and what the next sync will do for the recipient.
#[derive(Debug, Serialize)]
pub struct Placed {
    /// The address placed (normalised).
    pub address: String,
    /// The system it is placed on now (`None`: the placement was cleared).
    pub system: Option<String>,
    /// The system it was placed on before, if any.
    pub before: Option<String>,
    /// `false` when the store already said so (nothing was written).
    pub changed: bool,
    /// `--dry-run`: nothing was written; `next_sync` is as it would be.
    pub dry_run: bool,
    /// What the next sync will do for this recipient: its operations and
    /// the conflicts still naming it.
    pub next_sync: Plan,
}

/// Places the recipient having `address` on `system` (or clears its
/// placement with `None`), audited as done by `actor`, in a run of its own
/// (`place`). With `dry_run` nothing is written, and the next sync is
/// planned as if it were. The caller holds the run lock.
pub async fn place(
    engine: &Engine,
    address: &str,
    system: Option<&str>,
    actor: &str,
    dry_run: bool,
) -> Result<Placed, ProvisionError> {
    let address = normalised(address)?;
    if let Some(system) = system {
        if engine.config.policy.system(system).is_none() {
            return Err(ProvisionError::Usage(format!(
                "{system}: not a configured system (expected one of {})",
                engine.config.system_ids().join(", ")
            )));
        }
    }
    let before = engine.store.placements().await?.remove(&address);
    let changed = before.as_deref() != system;
    if changed && !dry_run {
        let run = engine.store.start_run("place").await?;
        let (action, audited_system) = match (&before, system) {
            (None, Some(system)) => (Action::Create, system.to_string()),
            (Some(_), Some(system)) => (Action::Update, system.to_string()),
            (Some(old), None) => (Action::Delete, old.clone()),
            (None, None) => (Action::Delete, String::new()),
        };
        let placement =
            |s: &Option<String>| s.as_ref().map(|s| serde_json::json!({ "placement": s }));
        let audit = AuditRecord {
            at: crate::store::now(),
            run_id: Some(run),
            actor: actor.to_string(),
            system: audited_system,
            action,
            address: address.clone(),
            before: placement(&before),
            after: placement(&system.map(str::to_string)),
        };
        let written = engine.store.write_placement(&address, system, &audit).await;
        let (status, summary) = match &written {
            Ok(_) => (
                RunStatus::Ok,
                serde_json::json!({ "address": address, "placement": system, "before": before }),
            ),
            Err(e) => (
                RunStatus::Failed,
                serde_json::json!({ "error": e.to_string() }),
            ),
        };
        engine.store.finish_run(run, status, &summary).await?;
        written?;
    }
    let mut staged = engine.staged().await?;
    if dry_run {
        match system {
            Some(system) => staged
                .placements
                .insert(address.clone(), system.to_string()),
            None => staged.placements.remove(&address),
        };
    }
    let only = addresses_of(&staged, &BTreeSet::from([address.clone()]));
    let next_sync = preview_of(engine, &staged, &only).await?;
    Ok(Placed {
        address,
        system: system.map(str::to_string),
        before,
        changed,
        dry_run,
        next_sync,
    })
}
