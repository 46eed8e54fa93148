//! One-shot provisioning: placing a recipient on a system (`coexist
//! place`) and creating a person's account at its home with the stubs
//! every other system needs (`coexist provision`).
//!
//! Like the engine, this module decides nothing about what should exist:
//! whether an address is free comes from the staged state and the
//! reconciler's GAL, the stubs from a plan the reconciler makes (restricted
//! to the people concerned, [`Engine::plan_for`]), and every change goes
//! through the store's journal and audit log and the safety gates.

pub mod csv;
mod deprovision;
mod moving;
mod place;
mod provision;

use std::collections::BTreeSet;

use serde::Serialize;
use thiserror::Error;

use crate::engine::{Engine, EngineError};
use crate::plan::Plan;
use crate::reconcile::route::{trace, Origin, Outcome, StagedView};
use crate::reconcile::{self, Staged};
use crate::store::StoreError;

pub use deprovision::{deprovision, Deprovisioned};
pub use moving::{move_people, Move, MoveOptions, MoveReport, Moved};
pub use place::{place, Placed};
pub use provision::{provision, Person, ProvisionOptions, ProvisionReport, Provisioned};

/// Why a provisioning command stopped.
#[derive(Debug, Error)]
pub enum ProvisionError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The request itself is wrong: an address that is not one, a system
    /// that is not configured, a CSV file without the columns it needs.
    #[error("{0}")]
    Usage(String),
    /// The addresses are not free: nothing was changed.
    #[error("refused, nothing was changed: {}", .0.join("; "))]
    Taken(Vec<String>),
    /// A system could not be read, so whether the addresses are free there
    /// is not known: nothing was changed.
    #[error("refused, nothing was changed: {0}")]
    Unreadable(String),
    /// `--stop-after N` (a test aid) stopped the command before its next
    /// change, as a crash there would: rerunning it goes on.
    #[error("stopped after {0} changes (--stop-after); run the same command again to go on")]
    Stopped(usize),
    /// The initial passwords' file could not be written.
    #[error("the password file {path}: {source}")]
    PasswordFile {
        path: String,
        source: std::io::Error,
    },
}

/// Where mail to an address goes from one sender (a system or the
/// internet), as `coexist route` says.
#[derive(Debug, Clone, Serialize)]
pub struct RouteResult {
    /// The sender's system, or `internet`.
    pub from: String,
    /// `delivered`, `external`, `bounced` or `looping`.
    pub outcome: &'static str,
    /// The system that delivers (or bounces) it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// The hops, in words (`ldap → google (local delivery)`).
    pub path: String,
}

impl RouteResult {
    /// Whether the message reaches a mailbox (or leaves the organisation).
    pub fn delivered(&self) -> bool {
        matches!(self.outcome, "delivered" | "external")
    }
}

/// Where mail to `address` goes from every configured system and from the
/// internet, with the staged state as it is now.
pub fn routes(engine: &Engine, staged: &Staged, address: &str) -> Vec<RouteResult> {
    let view = StagedView::new(staged);
    let origins = engine
        .config
        .system_ids()
        .into_iter()
        .map(Origin::System)
        .chain(std::iter::once(Origin::Internet));
    origins
        .map(|origin| {
            let from = match &origin {
                Origin::System(id) => id.clone(),
                Origin::Internet => "internet".to_string(),
            };
            let traced = trace(&engine.config.policy, &view, &origin, address);
            let path = traced
                .hops
                .iter()
                .map(|hop| format!("{} ({})", hop.system, hop.action))
                .collect::<Vec<_>>()
                .join(" → ");
            let (outcome, at) = match traced.outcome {
                Outcome::Delivered { system, .. } => ("delivered", Some(system)),
                Outcome::External { domain, .. } => ("external", Some(domain)),
                Outcome::Bounced { system, .. } => ("bounced", Some(system)),
                Outcome::Looping { .. } => ("looping", None),
            };
            RouteResult {
                from,
                outcome,
                at,
                path,
            }
        })
        .collect()
}

/// The normalised form of `address`, or a usage error naming it.
pub fn normalised(address: &str) -> Result<String, ProvisionError> {
    coexist_connector::normalize_address(address)
        .map_err(|e| ProvisionError::Usage(format!("{address}: not an email address ({e})")))
}

/// Every address of the recipients holding one of `addresses` in the
/// staged state (their aliases too), with `addresses` themselves.
pub fn addresses_of(staged: &Staged, addresses: &BTreeSet<String>) -> BTreeSet<String> {
    let mut all = addresses.clone();
    for system in &staged.systems {
        for recipient in &system.recipients {
            let mine: Vec<String> = std::iter::once(&recipient.primary_address)
                .chain(recipient.aliases.iter())
                .filter_map(|a| coexist_connector::normalize_address(a).ok())
                .collect();
            if mine.iter().any(|a| addresses.contains(a)) {
                all.extend(mine);
            }
        }
    }
    all
}

/// What the next sync would do for the recipients having one of `only`'s
/// addresses, from the staged state as it is (nothing is read, saved or
/// applied; gates are not judged).
pub async fn preview(engine: &Engine, only: &BTreeSet<String>) -> Result<Plan, ProvisionError> {
    let staged = engine.staged().await?;
    preview_of(engine, &staged, only).await
}

/// [`preview`] of `staged` as given (a placement not yet recorded, with
/// `--dry-run`).
pub async fn preview_of(
    engine: &Engine,
    staged: &Staged,
    only: &BTreeSet<String>,
) -> Result<Plan, ProvisionError> {
    let fingerprint = engine.fingerprint().await?;
    let mut reconciliation = reconcile::reconcile(staged, &engine.config.policy);
    crate::engine::restrict(&mut reconciliation, only);
    Plan::new(&reconciliation, &fingerprint, crate::store::now()).map_err(|source| {
        ProvisionError::Engine(EngineError::Encode {
            what: "an operation of the plan",
            source,
        })
    })
}
