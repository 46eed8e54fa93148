//! The engine: runs pull, stage, reconcile, plan and apply in order.
//!
//! It is the only part that holds connectors and the store at once. It
//! decides nothing itself: what should exist comes from [`crate::reconcile`],
//! what may run from [`gates`].

pub mod gates;
pub mod lock;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::Serialize;
use thiserror::Error;
use tracing::{info, info_span, warn, Instrument};

use coexist_connector::{Applied, Connector, ConnectorError, Operation, Progress, PullMode};

use crate::config::Config;
use crate::plan::Plan;
use crate::reconcile::{self, Reconciliation, Staged};
use crate::store::{AuditRecord, JournalState, StageReport, Store, StoreError};

pub use gates::SourceHealth;

/// Operations handed to a connector at once (Google's batch takes 100).
const APPLY_CHUNK: usize = 100;

/// A failure that stops a run.
#[derive(Debug, Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the plan {id} was computed from a staged state that has changed since (it expected {expected}, the store is at {actual}); make a new plan")]
    StalePlan {
        id: String,
        expected: String,
        actual: String,
    },
    #[error("the plan names the system `{0}`, which is not configured")]
    UnknownSystem(String),
    #[error(
        "another coexist run is working on this store: `{}` (pid {} on {}, started {}); wait for it to end and try again (a run that died is noticed at once on the same host, from another host once its lock lapses, {} seconds after its last sign of life)",
        holder.command, holder.pid, holder.host, holder.since, lock::LEASE.as_secs()
    )]
    Busy { holder: crate::store::LockHolder },
    #[error("another coexist run took this run's lock over (its lease could not be renewed for {} seconds); this run stopped before its next changes, and the run holding the lock completes the work", lock::LEASE.as_secs())]
    LockLost,
}

/// Receives progress of long steps (a progress bar, or nothing).
pub trait ProgressSink: Send + Sync {
    /// Starts a step; `total` when known.
    fn start(&self, label: &str, total: Option<u64>) -> Box<dyn Progress>;
}

/// A [`ProgressSink`] that shows nothing.
pub struct Quiet;

impl ProgressSink for Quiet {
    fn start(&self, _label: &str, _total: Option<u64>) -> Box<dyn Progress> {
        Box::new(coexist_connector::NoProgress)
    }
}

/// What the pull of one system did.
#[derive(Debug, Clone, Serialize)]
pub struct PullReport {
    pub system: String,
    pub mode: &'static str,
    pub recipients: u64,
    pub stubs: u64,
    pub staged: StageReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub problems: Vec<coexist_connector::Problem>,
    #[serde(skip)]
    pub health: SourceHealth,
}

/// What applying a plan did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApplyReport {
    pub plan: String,
    pub done: u64,
    pub skipped_already_done: u64,
    pub failed: u64,
    pub withheld: u64,
    pub failures: Vec<String>,
}

/// Options of a run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Lift the delete thresholds for this run.
    pub allow_deletes: bool,
    /// Who asked (recorded in the audit log).
    pub actor: String,
    /// Read every system in full, ignoring the cursors of incremental
    /// reads (catches what a delta can miss, such as a member deleted
    /// from the directory while the groups listing it did not change).
    pub full_read: bool,
}

/// The engine of one organisation.
pub struct Engine {
    pub config: Config,
    pub store: Store,
    connectors: Vec<Arc<dyn Connector>>,
    progress: Arc<dyn ProgressSink>,
    /// Set when the run lock this engine took was taken over by another
    /// run: the apply stops before its next chunk.
    lock_lost: Arc<AtomicBool>,
}

impl Engine {
    /// An engine over `store` talking to `connectors` (in configuration order).
    pub fn new(
        config: Config,
        store: Store,
        connectors: Vec<Arc<dyn Connector>>,
        progress: Arc<dyn ProgressSink>,
    ) -> Self {
        Engine {
            config,
            store,
            connectors,
            progress,
            lock_lost: Arc::new(AtomicBool::new(false)),
        }
    }

    fn connector(&self, system: &str) -> Option<&Arc<dyn Connector>> {
        self.connectors.iter().find(|c| c.system() == system)
    }

    /// Pulls every system (concurrently) and stages what was read. With
    /// `full_read` every system is read in full, whatever its cursor.
    pub async fn pull(&self, full_read: bool) -> Result<Vec<PullReport>, EngineError> {
        let pulls = self.connectors.iter().map(|connector| {
            let system = connector.system().to_string();
            async move {
                let cursor = self.store.cursor(&system).await?;
                let progress = self.progress.start(&format!("pulling {system}"), None);
                let since = if full_read {
                    None
                } else {
                    cursor.as_ref().and_then(|c| c.cursor.as_deref())
                };
                let result = connector.pull(since, progress.as_ref()).await;
                self.stage(&system, result, cursor.map(|c| c.recipients))
                    .await
            }
            .instrument(info_span!("system", id = %connector.system()))
        });
        let mut reports = Vec::new();
        for report in futures::future::join_all(pulls).await {
            reports.push(report?);
        }
        Ok(reports)
    }

    async fn stage(
        &self,
        system: &str,
        result: Result<coexist_connector::Pull, ConnectorError>,
        before: Option<i64>,
    ) -> Result<PullReport, EngineError> {
        let pull = match result {
            Ok(pull) => pull,
            Err(error) => {
                warn!(%error, "pull failed");
                return Ok(PullReport {
                    system: system.to_string(),
                    mode: "none",
                    recipients: 0,
                    stubs: 0,
                    staged: StageReport::default(),
                    error: Some(error.to_string()),
                    problems: Vec::new(),
                    health: SourceHealth::Failed(error.to_string()),
                });
            }
        };
        let mode = match pull.mode {
            PullMode::Full => "full",
            PullMode::Delta => "delta",
        };
        let held_before = match before {
            Some(n) => n,
            None => self.store.staged_recipients(system).await?,
        };
        // A full read of nothing, or a delta removing every recipient held,
        // from a system that held recipients: not believed. (A delta may
        // name objects that were never staged, so only staged ones count.)
        let empties = match pull.mode {
            PullMode::Full => pull.recipients.is_empty(),
            // Only when it names at least as many objects as were held is
            // it worth reading which of them were staged.
            PullMode::Delta
                if pull.recipients.is_empty() && pull.removed.len() as i64 >= held_before =>
            {
                let staged = self.store.staged_recipient_ids(system).await?;
                let gone = pull
                    .removed
                    .iter()
                    .filter(|id| staged.contains(*id))
                    .count();
                gone as i64 >= held_before
            }
            PullMode::Delta => false,
        };
        let health = if empties && held_before > 0 {
            SourceHealth::SuddenlyEmpty {
                before: held_before,
            }
        } else if !pull.complete {
            SourceHealth::Incomplete(
                pull.problems
                    .first()
                    .map(|p| p.message.clone())
                    .unwrap_or_else(|| "the connector said the read was incomplete".into()),
            )
        } else {
            SourceHealth::Complete
        };
        let mut report = PullReport {
            system: system.to_string(),
            mode,
            recipients: pull.recipients.len() as u64,
            stubs: pull.stubs.len() as u64,
            staged: StageReport::default(),
            error: None,
            problems: pull.problems.clone(),
            health: health.clone(),
        };
        match health {
            // A source that suddenly returns nothing is not believed: what
            // was staged stays as it was.
            SourceHealth::SuddenlyEmpty { before } => {
                warn!(
                    before,
                    "the pull returned no recipients; keeping what was staged"
                );
            }
            SourceHealth::Incomplete(_) => {
                report.staged = self.store.stage_pull(system, &pull, true).await?;
                warn!("the pull was incomplete; nothing was removed from the staged objects");
            }
            _ => {
                report.staged = self.store.stage_pull(system, &pull, false).await?;
                let recipients = self.store.staged_recipients(system).await?;
                self.store
                    .set_cursor(system, pull.cursor.as_deref(), recipients)
                    .await?;
            }
        }
        info!(
            mode,
            recipients = report.recipients,
            stubs = report.stubs,
            added = report.staged.added,
            changed = report.staged.changed,
            removed = report.staged.removed,
            "pulled"
        );
        Ok(report)
    }

    /// What a plan is made from: the staged state (the store's fingerprint)
    /// and the policy of the configuration (homes, routing domains, smart
    /// hosts, stub styles, precedence). A saved plan applies only while both
    /// are as they were.
    pub async fn fingerprint(&self) -> Result<String, EngineError> {
        use sha2::Digest as _;
        let staged = self.store.fingerprint().await?;
        let policy = sha2::Sha256::digest(format!("{:?}", self.config.policy).as_bytes());
        Ok(format!("{staged}-{}", hex::encode(&policy[..6])))
    }

    /// Loads the staged state of every configured system.
    pub async fn staged(&self) -> Result<Staged, EngineError> {
        Ok(self.store.load_staged(&self.config.system_ids()).await?)
    }

    /// Reconciles the staged state, saves the GAL, and makes the plan with
    /// its safety gates applied.
    pub async fn plan(
        &self,
        health: &BTreeMap<String, SourceHealth>,
        options: &RunOptions,
    ) -> Result<(Plan, Reconciliation), EngineError> {
        let staged = self.staged().await?;
        let fingerprint = self.fingerprint().await?;
        let reconciliation = reconcile::reconcile(&staged, &self.config.policy);
        self.store.save_gal(&reconciliation.gal).await?;
        let mut plan = Plan::new(&reconciliation, &fingerprint, crate::store::now());
        let stubs_held: BTreeMap<String, u64> = staged
            .systems
            .iter()
            .map(|s| (s.id.clone(), s.stubs.len() as u64))
            .collect();
        gates::apply_gates(
            &mut plan,
            &self.config.safety,
            health,
            &stubs_held,
            options.allow_deletes,
        );
        let capacity = self
            .connectors
            .iter()
            .filter_map(|c| Some((c.system().to_string(), c.capacity()?)))
            .collect();
        gates::apply_capacity(&mut plan, &stubs_held, &capacity);
        Ok((plan, reconciliation))
    }

    /// Applies `plan` exactly. A plan applied before and interrupted resumes
    /// from its journal; a new plan is refused if the staged state changed
    /// since it was made.
    pub async fn apply(
        &self,
        plan: &Plan,
        run_id: Option<i64>,
        options: &RunOptions,
    ) -> Result<ApplyReport, EngineError> {
        // Every system the plan names must be here before anything runs.
        if let Some(step) = plan
            .runnable()
            .find(|s| self.connector(&s.system).is_none())
        {
            return Err(EngineError::UnknownSystem(step.system.clone()));
        }
        let journal = self.store.journal_of(&plan.id).await?;
        let status = self.store.plan(&plan.id).await?.map(|r| r.status);
        let left = plan
            .runnable()
            .filter(|s| journal.get(&s.seq) != Some(&JournalState::Done))
            .count();
        if status.as_deref() == Some("applying") {
            // Interrupted while applying: its own writes changed the staged
            // state, so the journal, not the fingerprint, says what is left.
            info!(plan = %plan.id, journalled = journal.len(), left, "resuming a plan from its journal");
        } else if left > 0 {
            // A new plan, or one applied in part or superseded by a later
            // run: it may only run on the state it was made from.
            let actual = self.fingerprint().await?;
            if actual != plan.fingerprint {
                return Err(EngineError::StalePlan {
                    id: plan.id.clone(),
                    expected: plan.fingerprint.clone(),
                    actual,
                });
            }
        }
        let body = serde_json::to_string(plan).unwrap_or_default();
        self.store
            .save_plan(&plan.id, &plan.fingerprint, &body)
            .await?;
        self.store.set_plan_status(&plan.id, "applying").await?;

        let mut report = ApplyReport {
            plan: plan.id.clone(),
            ..ApplyReport::default()
        };
        let withheld: Vec<(i64, &str)> = plan
            .operations
            .iter()
            .filter(|s| s.withheld)
            .map(|s| (s.seq, s.system.as_str()))
            .collect();
        report.withheld = withheld.len() as u64;
        if !withheld.is_empty() {
            self.store
                .journal(&plan.id, &withheld, JournalState::Withheld, None)
                .await?;
        }

        // Group by system, keeping the plan's order within each.
        let mut by_system: BTreeMap<&str, Vec<&crate::plan::PlanStep>> = BTreeMap::new();
        for step in plan.runnable() {
            if journal.get(&step.seq) == Some(&JournalState::Done) {
                report.skipped_already_done += 1;
                continue;
            }
            by_system
                .entry(step.system.as_str())
                .or_default()
                .push(step);
        }
        let total: u64 = by_system.values().map(|v| v.len() as u64).sum();
        let progress = self.progress.start("applying", Some(total));

        for (system, steps) in by_system {
            let connector = self
                .connector(system)
                .ok_or_else(|| EngineError::UnknownSystem(system.to_string()))?
                .clone();
            let span = info_span!("system", id = %system);
            for chunk in steps.chunks(APPLY_CHUNK) {
                if self.lock_lost.load(Ordering::SeqCst) {
                    return Err(EngineError::LockLost);
                }
                let entries: Vec<(i64, &str)> = chunk.iter().map(|s| (s.seq, system)).collect();
                self.store
                    .journal(&plan.id, &entries, JournalState::Started, None)
                    .await?;
                let operations: Vec<Operation> =
                    chunk.iter().map(|s| s.operation.clone()).collect();
                let results = connector
                    .apply_many(&operations)
                    .instrument(span.clone())
                    .await;
                for (step, result) in chunk.iter().zip(results) {
                    self.record(plan, step, result, run_id, options, &mut report)
                        .await?;
                }
                progress.advance(chunk.len() as u64);
            }
        }
        let status = if report.failed > 0 {
            "partial"
        } else {
            "applied"
        };
        self.store.set_plan_status(&plan.id, status).await?;
        Ok(report)
    }

    async fn record(
        &self,
        plan: &Plan,
        step: &crate::plan::PlanStep,
        result: Result<Applied, ConnectorError>,
        run_id: Option<i64>,
        options: &RunOptions,
        report: &mut ApplyReport,
    ) -> Result<(), EngineError> {
        match result {
            Ok(applied) => {
                match (&step.operation, applied.found) {
                    (Operation::Delete { id, .. }, _) => {
                        self.store.remove_stub(&step.system, id).await?
                    }
                    (_, Some(found)) => {
                        // An update may have moved the stub (a rename): forget the old row.
                        if let Operation::Update { id, .. } = &step.operation {
                            if *id != found.id {
                                self.store.remove_stub(&step.system, id).await?;
                            }
                        }
                        self.store.put_stub(&step.system, &found).await?;
                    }
                    (_, None) => {}
                }
                let (before, after) = match &step.operation {
                    Operation::Create { stub } => (None, serde_json::to_value(stub).ok()),
                    Operation::Update { before, after, .. } => (
                        serde_json::to_value(before).ok(),
                        serde_json::to_value(after).ok(),
                    ),
                    Operation::Delete { stub, .. } => (serde_json::to_value(stub).ok(), None),
                };
                self.store
                    .audit(&AuditRecord {
                        at: crate::store::now(),
                        run_id,
                        actor: options.actor.clone(),
                        system: step.system.clone(),
                        action: step.action.clone(),
                        address: step.address.clone(),
                        before,
                        after,
                    })
                    .await?;
                self.store
                    .journal(
                        &plan.id,
                        &[(step.seq, step.system.as_str())],
                        JournalState::Done,
                        None,
                    )
                    .await?;
                report.done += 1;
            }
            Err(error) => {
                warn!(system = %step.system, address = %step.address, %error, "operation failed");
                let message = format!(
                    "{} {} on {}: {error}",
                    step.action, step.address, step.system
                );
                self.store
                    .journal(
                        &plan.id,
                        &[(step.seq, step.system.as_str())],
                        JournalState::Failed,
                        Some(&message),
                    )
                    .await?;
                report.failed += 1;
                report.failures.push(message);
            }
        }
        Ok(())
    }

    /// Plans that an earlier run started applying and never finished.
    pub async fn interrupted(&self) -> Result<Vec<String>, EngineError> {
        Ok(self.store.unfinished_plans().await?)
    }

    /// Marks interrupted plans as superseded by a fresh pull and plan.
    pub async fn supersede(&self, plans: &[String]) -> Result<(), EngineError> {
        for id in plans {
            self.store.set_plan_status(id, "superseded").await?;
        }
        Ok(())
    }
}

/// What a `sync` did.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub run: i64,
    /// Plans of earlier runs that were interrupted and are completed by this one.
    pub resumed: Vec<String>,
    pub pulls: Vec<PullReport>,
    pub plan: Plan,
    pub apply: ApplyReport,
}

impl SyncReport {
    /// The process exit code this run deserves (see the README).
    pub fn exit_code(&self) -> i32 {
        if self.apply.failed > 0 || self.pulls.iter().any(|p| p.error.is_some()) {
            crate::exit::PARTIAL
        } else if self.apply.withheld > 0 || !self.plan.gates.is_empty() {
            crate::exit::GATE
        } else {
            crate::exit::OK
        }
    }
}

impl Engine {
    /// Health of every system: complete unless a pull report says otherwise.
    pub fn health(&self, pulls: &[PullReport]) -> BTreeMap<String, SourceHealth> {
        pulls
            .iter()
            .map(|p| (p.system.clone(), p.health.clone()))
            .collect()
    }

    /// Pull, plan and apply within the safety gates, as one run.
    pub async fn sync(&self, options: &RunOptions) -> Result<SyncReport, EngineError> {
        let run = self.store.start_run("sync").await?;
        let result = async {
            let resumed = self.interrupted().await?;
            if !resumed.is_empty() {
                warn!(plans = ?resumed, "an earlier run was interrupted while applying; this run re-reads every system and completes its work");
                self.supersede(&resumed).await?;
            }
            let pulls = self.pull(options.full_read).await?;
            let (plan, _) = self.plan(&self.health(&pulls), options).await?;
            let apply = self.apply(&plan, Some(run), options).await?;
            Ok::<_, EngineError>(SyncReport { run, resumed, pulls, plan, apply })
        }
        .instrument(info_span!("run", id = run, command = "sync"))
        .await;
        match &result {
            Ok(report) => {
                let status = match report.exit_code() {
                    crate::exit::OK => "ok",
                    crate::exit::GATE => "withheld",
                    _ => "partial",
                };
                let summary = serde_json::json!({
                    "plan": report.plan.id,
                    "summary": report.plan.summary,
                    "done": report.apply.done,
                    "failed": report.apply.failed,
                    "withheld": report.apply.withheld,
                    "gates": report.plan.gates,
                });
                self.store.finish_run(run, status, &summary).await?;
            }
            Err(error) => {
                // The run's own error is what the admin must see.
                if let Err(store) = self
                    .store
                    .finish_run(
                        run,
                        "failed",
                        &serde_json::json!({ "error": error.to_string() }),
                    )
                    .await
                {
                    warn!(%store, "the run's failure could not be recorded in its history");
                }
            }
        }
        result
    }
}
