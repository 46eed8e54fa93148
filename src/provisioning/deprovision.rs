//! `coexist deprovision ADDRESS`: suspends the account at its home and
//! removes the person's stubs from every other system (a disabled account
//! leaves the GAL, so the reconciler plans the deletes), through a plan
//! restricted to the person with its journal, gates and audit. Only an
//! account coexist created (`coexist provision`, in the audit log) is
//! suspended: coexist changes nothing it did not make. Mail data is never
//! deleted. Rerunning after a failure completes it: a suspended account is
//! not suspended again, and the stubs left are removed.

use std::collections::BTreeSet;

use serde::Serialize;

use super::provision::read_and_settle;
use super::{addresses_of, normalised, routes, ProvisionError, RouteResult};
use crate::engine::{restrict, ApplyReport, Engine, EngineError, RunOptions};
use crate::plan::{Action, Plan};
use crate::reconcile::{self, Staged};
use crate::store::{AuditRecord, RunStatus};

/// What `deprovision` did (or, with `--dry-run`, would do).
#[derive(Debug, Serialize)]
pub struct Deprovisioned {
    pub dry_run: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<i64>,
    pub address: String,
    pub home: String,
    /// Where the account is (a DN, a user id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locator: Option<String>,
    /// `suspended`, `was_suspended` (an earlier run did it), or with
    /// `--dry-run` `would_suspend`.
    pub state: &'static str,
    /// The removal of the person's stubs.
    pub plan: Plan,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apply: Option<ApplyReport>,
    /// Where mail to the address goes now.
    pub routes: Vec<RouteResult>,
}

impl Deprovisioned {
    /// The exit code: the apply's (README).
    pub fn exit_code(&self) -> i32 {
        self.apply
            .as_ref()
            .map_or(crate::exit::OK, ApplyReport::exit_code)
    }
}

/// Deprovisions the person of `address` (the caller holds the run lock and
/// has had the admin confirm).
pub async fn deprovision(
    engine: &Engine,
    address: &str,
    options: &RunOptions,
    dry_run: bool,
) -> Result<Deprovisioned, ProvisionError> {
    let address = normalised(address)?;
    if dry_run {
        return deprovision_in(engine, &address, options, None).await;
    }
    let run = engine.store.start_run("deprovision").await?;
    let result = deprovision_in(engine, &address, options, Some(run)).await;
    let (status, summary) = match &result {
        Ok(done) => (
            RunStatus::of_exit_code(done.exit_code()),
            serde_json::json!({ "address": done.address, "home": done.home, "state": done.state, "plan": done.plan.id, "summary": done.plan.summary }),
        ),
        Err(
            ProvisionError::Taken(_) | ProvisionError::Unreadable(_) | ProvisionError::Usage(_),
        ) => (
            RunStatus::Refused,
            serde_json::json!({ "error": result.as_ref().err().map(ToString::to_string) }),
        ),
        Err(error) => (
            RunStatus::Failed,
            serde_json::json!({ "error": error.to_string() }),
        ),
    };
    engine.store.finish_run(run, status, &summary).await?;
    result
}

async fn deprovision_in(
    engine: &Engine,
    address: &str,
    options: &RunOptions,
    run: Option<i64>,
) -> Result<Deprovisioned, ProvisionError> {
    let (staged, _) = read_and_settle(engine, options, run).await?;
    let (home, recipient) = home_of(&staged, address)?;
    let primary = normalised(&recipient.primary_address)?;
    if !engine.store.account_created(&primary, &home).await? {
        return Err(ProvisionError::Taken(vec![format!(
            "coexist did not create {primary}'s account on {home} (no `provision` of it in the audit log), and it changes nothing it did not make: suspend it at {home} by hand, and the next sync removes its stubs"
        )]));
    }
    let only = addresses_of(&staged, &BTreeSet::from([address.to_string()]));
    let Some(run) = run else {
        // --dry-run: the plan as it would be once the account is suspended.
        let mut after = staged.clone();
        for system in after.systems.iter_mut().filter(|s| s.id == home) {
            for r in system
                .recipients
                .iter_mut()
                .filter(|r| r.anchor == recipient.anchor)
            {
                r.enabled = false;
            }
        }
        let mut reconciliation = reconcile::reconcile(&after, &engine.config.policy);
        restrict(&mut reconciliation, &only);
        let fingerprint = engine.fingerprint().await?;
        let plan =
            Plan::new(&reconciliation, &fingerprint, crate::store::now()).map_err(|source| {
                EngineError::Encode {
                    what: "an operation of the plan",
                    source,
                }
            })?;
        return Ok(Deprovisioned {
            dry_run: true,
            run: None,
            address: primary,
            home,
            locator: recipient.locator.clone(),
            state: if recipient.enabled {
                "would_suspend"
            } else {
                "was_suspended"
            },
            plan,
            apply: None,
            routes: Vec::new(),
        });
    };
    let state = if recipient.enabled {
        let connector = engine
            .connector(&home)
            .ok_or_else(|| ProvisionError::Usage(format!("{home} is not configured")))?;
        connector.suspend(&recipient).await.map_err(|e| {
            ProvisionError::Unreadable(format!("{home} did not suspend {primary}: {e}"))
        })?;
        engine
            .store
            .audit(&AuditRecord {
                at: crate::store::now(),
                run_id: Some(run),
                actor: options.actor.clone(),
                system: home.clone(),
                action: Action::Update,
                address: primary.clone(),
                before: Some(serde_json::json!({ "account": recipient.locator, "enabled": true })),
                after: Some(serde_json::json!({ "account": recipient.locator, "enabled": false })),
            })
            .await?;
        "suspended"
    } else {
        "was_suspended"
    };
    let pulls = engine.pull_with(options).await?;
    let (plan, _) = engine
        .plan_for(&engine.health(&pulls), options, Some(&only))
        .await?;
    let apply = engine.apply(&plan, Some(run), options).await?;
    let staged = engine.staged().await?;
    Ok(Deprovisioned {
        dry_run: false,
        run: Some(run),
        routes: routes(engine, &staged, &primary),
        address: primary,
        home,
        locator: recipient.locator.clone(),
        state,
        plan,
        apply: Some(apply),
    })
}

/// The system holding the person's account, and the account: the one
/// mailbox with the address, or the one on its placement.
fn home_of(
    staged: &Staged,
    address: &str,
) -> Result<(String, coexist_connector::Recipient), ProvisionError> {
    let mut found = Vec::new();
    for system in &staged.systems {
        for recipient in system.recipients.iter().filter(|r| r.mailbox) {
            let holds = std::iter::once(&recipient.primary_address)
                .chain(recipient.aliases.iter())
                .any(|a| coexist_connector::normalize_address(a).is_ok_and(|a| a == address));
            if holds {
                found.push((system.id.clone(), recipient.clone()));
            }
        }
    }
    let placed = staged.placements.get(address);
    match found.len() {
        0 => Err(ProvisionError::Usage(format!(
            "no system holds a mailbox for {address}"
        ))),
        1 => Ok(found.remove(0)),
        _ => {
            let systems: Vec<String> = found.iter().map(|(s, _)| s.clone()).collect();
            found
                .into_iter()
                .find(|(s, _)| Some(s) == placed)
                .ok_or_else(|| {
                    ProvisionError::Usage(format!(
                        "{address} has a mailbox on {}; place it on one (`coexist place`) first",
                        systems.join(" and ")
                    ))
                })
        }
    }
}
