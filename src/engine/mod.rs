//! The engine: runs pull, stage, reconcile, plan and apply in order.
//!
//! It is the only part that holds connectors and the store at once. It
//! decides nothing itself: what should exist comes from [`crate::reconcile`],
//! what may run from [`gates`].

pub mod gates;
pub mod lock;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::Serialize;
use thiserror::Error;
use tracing::{debug, info, info_span, warn, Instrument};

use coexist_connector::{
    Applied, Connector, ConnectorError, Operation, Problem, Progress, Pull, PullMode,
    RequestCounter, RequestCounts,
};

use crate::config::Config;
use crate::plan::{Plan, PlanStep};
use crate::reconcile::{self, Notice, Reconciliation, Staged};
use crate::store::{
    AuditRecord, ChunkRecord, CursorRecord, JournalState, PlanStatus, RunStatus, StageReport,
    StartedOperation, Store, StoreError,
};

pub use gates::{Shrink, SourceHealth};

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
    #[error("the plan {id} is in format {format}, written by a newer coexist; this version reads plans up to format {}: apply it with that version, or make a new plan", crate::plan::FORMAT)]
    PlanFormat { id: String, format: u32 },
    #[error("the plan names the system `{0}`, which is not configured")]
    UnknownSystem(String),
    #[error(
        "another coexist run is working on this store: `{}` (pid {} on {}, started {}); wait for it to end and try again (a run that died is noticed at once on the same host, from another host once its lock lapses, {} seconds after its last sign of life)",
        holder.command, holder.pid, holder.host, holder.since, lock::LEASE.as_secs()
    )]
    Busy { holder: crate::store::LockHolder },
    #[error("another coexist run took this run's lock over (its lease could not be renewed in time); this run stopped before its next changes, and the run holding the lock completes the work")]
    LockLost,
    /// The process was asked to stop (`coexist daemon` on SIGTERM): the
    /// run stopped between two chunks of its apply, each chunk recorded.
    #[error("stopped on request before the next changes (the process is shutting down); the next run completes the work")]
    Stopped,
    #[error("cannot encode {what}: {source}")]
    Encode {
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("{flag} {name}: not a configured system (expected one of {known})")]
    NotASystem {
        flag: &'static str,
        name: String,
        known: String,
    },
}

fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<serde_json::Value, EngineError> {
    serde_json::to_value(value).map_err(|source| EngineError::Encode { what, source })
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
    /// How the next pulls of this system find changes, and why (the
    /// connector's words: on AD, whether the bind account's rights allow
    /// DirSync).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incremental: Option<String>,
    #[serde(skip)]
    pub health: SourceHealth,
    /// How long the connector took to read the system.
    #[serde(skip)]
    pub elapsed: std::time::Duration,
}

/// What applying a plan did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApplyReport {
    pub plan: String,
    pub done: u64,
    pub skipped_already_done: u64,
    pub failed: u64,
    /// Operations not attempted because their system refused coexist's
    /// credentials earlier in this apply (the next run tries them again).
    pub not_attempted: u64,
    pub withheld: u64,
    /// What failed, in words; identical failures (the same error from the
    /// same system) are told once, with how many more there were.
    pub failures: Vec<String>,
    /// The systems that could not be read when the plan was made: none of
    /// their operations was sent.
    pub unreadable: Vec<String>,
    /// Operations done and failed per system and action (the daemon's
    /// metrics).
    #[serde(skip)]
    pub by_system: BTreeMap<(String, &'static str), AppliedCounts>,
    /// How long each system's part of the apply took.
    #[serde(skip)]
    pub durations: Vec<(String, std::time::Duration)>,
}

/// What became of one system's operations of one action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppliedCounts {
    pub done: u64,
    pub failed: u64,
}

impl ApplyReport {
    /// The process exit code of `coexist apply` (see the README).
    pub fn exit_code(&self) -> i32 {
        if self.failed > 0 || self.not_attempted > 0 || !self.unreadable.is_empty() {
            crate::exit::PARTIAL
        } else if self.withheld > 0 {
            crate::exit::GATE
        } else {
            crate::exit::OK
        }
    }
}

/// The failures of an apply, identical ones (same system, same error)
/// kept once with a count, so a system refusing every write is one line,
/// not hundreds.
#[derive(Default)]
struct Failures {
    entries: Vec<FailureEntry>,
    seen: HashMap<(String, String), usize>,
}

struct FailureEntry {
    line: String,
    system: String,
    repeats: u64,
    note: Option<String>,
}

impl Failures {
    /// Records `line` for `error` on `system`; `true` the first time.
    fn add(&mut self, system: &str, error: &str, line: String) -> bool {
        let key = (system.to_string(), error.to_string());
        if let Some(&at) = self.seen.get(&key) {
            self.entries[at].repeats += 1;
            return false;
        }
        self.seen.insert(key, self.entries.len());
        self.entries.push(FailureEntry {
            line,
            system: system.to_string(),
            repeats: 0,
            note: None,
        });
        true
    }

    /// Adds `note` to the line of `error` on `system`.
    fn annotate(&mut self, system: &str, error: &str, note: String) {
        if let Some(&at) = self.seen.get(&(system.to_string(), error.to_string())) {
            self.entries[at].note = Some(note);
        }
    }

    /// The errors of `system` that happened more than once, with how many
    /// more times.
    fn repeated(&self, system: &str) -> Vec<(String, u64)> {
        self.seen
            .iter()
            .filter(|((s, _), &at)| s == system && self.entries[at].repeats > 0)
            .map(|((_, error), &at)| (error.clone(), self.entries[at].repeats))
            .collect()
    }

    fn finish(self) -> Vec<String> {
        self.entries
            .into_iter()
            .map(|entry| {
                let mut line = entry.line;
                if entry.repeats > 0 {
                    line.push_str(&format!(
                        " (and {} more operations on {} failed the same way)",
                        entry.repeats, entry.system
                    ));
                }
                if let Some(note) = entry.note {
                    line.push_str("; ");
                    line.push_str(&note);
                }
                line
            })
            .collect()
    }
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
    /// Believe the reads of these systems even though they shrank past
    /// `max_shrink_percent` or came back empty (`--accept-shrink SYSTEM`):
    /// the admin says the recipients really are gone.
    pub accept_shrink: Vec<String>,
}

/// One system's read, before it is judged and staged.
struct Read {
    system: String,
    cursor: Option<CursorRecord>,
    result: Result<Pull, ConnectorError>,
    elapsed: std::time::Duration,
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
    /// Set when the process is asked to stop: the apply stops before its
    /// next chunk ([`EngineError::Stopped`]).
    stop: Arc<AtomicBool>,
    /// How long the run lock's lease runs without renewal
    /// ([`lock::LEASE`] unless [`Engine::with_lease`] says otherwise).
    lease: std::time::Duration,
    /// The baseline write path (`benches/first_sync.rs` only): see
    /// [`Engine::with_per_operation_writes`].
    per_operation_writes: bool,
    /// The requests each system's connector sent (the daemon's metrics).
    requests: BTreeMap<String, Arc<RequestCounter>>,
}

impl Engine {
    /// An engine over `store` talking to `connectors` (in configuration order).
    pub fn new(
        config: Config,
        store: Store,
        connectors: Vec<Arc<dyn Connector>>,
        progress: Arc<dyn ProgressSink>,
    ) -> Self {
        let requests = connectors
            .iter()
            .map(|c| (c.system().to_string(), Arc::default()))
            .collect();
        Engine {
            requests,
            config,
            store,
            connectors,
            progress,
            lock_lost: Arc::new(AtomicBool::new(false)),
            stop: Arc::new(AtomicBool::new(false)),
            lease: lock::LEASE,
            per_operation_writes: false,
        }
    }

    /// This engine stops its apply before the next chunk once `stop` is
    /// set (`coexist daemon` sets it on SIGTERM): the chunk in flight
    /// completes and is recorded, and the run ends as interrupted.
    pub fn with_stop(mut self, stop: Arc<AtomicBool>) -> Self {
        self.stop = stop;
        self
    }

    /// The run lock this engine takes has a lease of `lease` (renewed every
    /// quarter of it) instead of [`lock::LEASE`]: a holder that died on
    /// another host is taken over that long after its last renewal.
    pub fn with_lease(mut self, lease: std::time::Duration) -> Self {
        self.lease = lease.max(std::time::Duration::from_secs(2));
        self
    }

    /// THE BASELINE, for `benches/first_sync.rs` only: this engine records
    /// every applied operation as coexist did before the per-chunk
    /// transaction, its stub row, audit record and journal entry each in
    /// a transaction of its own ([`Store::record_per_operation`]), instead
    /// of the results of each chunk in one ([`Store::record_chunk`]). The
    /// benchmark runs both in one process to print today's figure beside
    /// the old one; nothing else should use it.
    pub fn with_per_operation_writes(mut self) -> Self {
        self.per_operation_writes = true;
        self
    }

    /// What counts the requests of `system`'s connector.
    fn requests_of(&self, system: &str) -> Arc<RequestCounter> {
        self.requests.get(system).cloned().unwrap_or_default()
    }

    /// The requests each system's connector sent since the last call.
    pub fn take_requests(&self) -> Vec<(String, RequestCounts)> {
        self.requests
            .iter()
            .map(|(system, counter)| (system.clone(), counter.take()))
            .collect()
    }

    /// The connector of `system`, if it is configured.
    pub fn connector(&self, system: &str) -> Option<&Arc<dyn Connector>> {
        self.connectors.iter().find(|c| c.system() == system)
    }

    /// Pulls every system (concurrently) and stages what was read. With
    /// `full_read` every system is read in full, whatever its cursor.
    pub async fn pull(&self, full_read: bool) -> Result<Vec<PullReport>, EngineError> {
        self.pull_with(&RunOptions {
            full_read,
            ..RunOptions::default()
        })
        .await
    }

    /// Pulls every system (concurrently), judges each read (complete,
    /// incomplete, empty, shrunk, failed) against what is known of the
    /// system, and stages what is believed.
    pub async fn pull_with(&self, options: &RunOptions) -> Result<Vec<PullReport>, EngineError> {
        for name in &options.accept_shrink {
            if self.connector(name).is_none() {
                return Err(EngineError::NotASystem {
                    flag: "--accept-shrink",
                    name: name.clone(),
                    known: self.config.system_ids().join(", "),
                });
            }
        }
        let reads = self.connectors.iter().map(|connector| {
            let system = connector.system().to_string();
            async move {
                let cursor = self.store.cursor(&system).await?;
                let progress = self.progress.start(&format!("pulling {system}"), None);
                let since = if options.full_read {
                    None
                } else {
                    cursor.as_ref().and_then(|c| c.cursor.as_deref())
                };
                let started = std::time::Instant::now();
                let result = coexist_connector::requests::counting(
                    self.requests_of(&system),
                    connector.pull(since, progress.as_ref()),
                )
                .await;
                Ok::<_, EngineError>(Read {
                    system,
                    cursor,
                    result,
                    elapsed: started.elapsed(),
                })
            }
            .instrument(info_span!("system", id = %connector.system()))
        });
        let mut all = Vec::new();
        for read in futures::future::join_all(reads).await {
            all.push(read?);
        }
        let routed = self.routed(&all).await?;
        let mut reports = Vec::new();
        for read in all {
            let span = info_span!("system", id = %read.system);
            let routed = routed.get(&read.system);
            reports.push(self.stage(read, routed, options).instrument(span).await?);
        }
        Ok(reports)
    }

    /// The recipients each system is home to, as the coexist stubs on the
    /// other systems say (a stub's anchor is `<home system>:<id>`): home
    /// system → recipient ids. What a system's read says of its stubs is
    /// taken as far as it goes; the rest comes from what is staged.
    async fn routed(
        &self,
        reads: &[Read],
    ) -> Result<HashMap<String, HashSet<String>>, EngineError> {
        // Only reads that may miss recipients are judged (see `judge`):
        // full reads, and deltas that remove something.
        let judged: HashSet<&str> = reads
            .iter()
            .filter(|r| {
                r.result
                    .as_ref()
                    .is_ok_and(|p| p.mode == PullMode::Full || !p.removed.is_empty())
            })
            .map(|r| r.system.as_str())
            .collect();
        let mut routed: HashMap<String, HashSet<String>> = HashMap::new();
        if judged.is_empty() {
            return Ok(routed);
        }
        let mut add = |holder: &str, anchor: &str| {
            if let Some((home, id)) = anchor.split_once(':') {
                if home != holder && judged.contains(home) {
                    routed
                        .entry(home.to_string())
                        .or_default()
                        .insert(id.to_string());
                }
            }
        };
        for read in reads {
            if coexist_connector::address_book::address_book_of(&read.system).is_some() {
                // An address book's entries route nothing.
                continue;
            }
            let staged = match &read.result {
                // A complete full read lists every stub the system holds.
                Ok(pull) if pull.mode == PullMode::Full && pull.complete => Vec::new(),
                // A delta or a partial read: the staged stubs, less those it
                // removed, and those it read.
                Ok(pull) => {
                    let removed: HashSet<&str> = pull.removed.iter().map(String::as_str).collect();
                    self.store
                        .stub_anchors(&read.system)
                        .await?
                        .into_iter()
                        .filter(|(id, _)| !removed.contains(id.as_str()))
                        .collect()
                }
                Err(_) => self.store.stub_anchors(&read.system).await?,
            };
            for (_, anchor) in &staged {
                add(&read.system, anchor);
            }
            if let Ok(pull) = &read.result {
                for stub in &pull.stubs {
                    add(&read.system, &stub.stub.anchor);
                }
            }
        }
        Ok(routed)
    }

    async fn stage(
        &self,
        read: Read,
        routed: Option<&HashSet<String>>,
        options: &RunOptions,
    ) -> Result<PullReport, EngineError> {
        let system = read.system.as_str();
        let elapsed = read.elapsed;
        let mut pull = match read.result {
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
                    incremental: None,
                    health: SourceHealth::Failed(error.to_string()),
                    elapsed,
                });
            }
        };
        skip_objects_without_ids(&mut pull);
        let mode = match pull.mode {
            PullMode::Full => "full",
            PullMode::Delta => "delta",
        };
        let held_before = match read.cursor.map(|c| c.recipients) {
            Some(n) => n,
            None => self.store.staged_recipients(system).await?,
        };
        let accepted = options.accept_shrink.iter().any(|s| s == system);
        let health = self
            .judge(system, &pull, held_before, routed, accepted)
            .await?;
        let mut report = PullReport {
            system: system.to_string(),
            mode,
            recipients: pull.recipients.len() as u64,
            stubs: pull.stubs.len() as u64,
            staged: StageReport::default(),
            error: None,
            problems: pull.problems.clone(),
            incremental: pull.incremental.clone(),
            health: health.clone(),
            elapsed,
        };
        // A full read says everything the connector skipped; a delta only
        // what it read again.
        self.store
            .record_problems(
                system,
                &pull.problems,
                pull.mode == PullMode::Full && pull.complete,
            )
            .await?;
        match health {
            // A source that suddenly returns nothing, or far less than is
            // known of it, is not believed: what was staged stays as it was.
            SourceHealth::SuddenlyEmpty { before, routed } => {
                warn!(
                    before,
                    routed, "the pull returned no recipients; keeping what was staged"
                );
            }
            SourceHealth::Shrunk(shrink) => {
                warn!(
                    listed = shrink.listed,
                    known = shrink.known,
                    missing = shrink.missing,
                    "the pull misses too many of the known recipients; keeping what was staged"
                );
            }
            SourceHealth::Incomplete(_) => {
                report.staged = self.store.stage_pull(system, &pull, true).await?;
                warn!("the pull was incomplete; nothing was removed from the staged objects");
            }
            SourceHealth::Complete | SourceHealth::Failed(_) => {
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

    /// How far a read of `system` is to be believed. The recipients known
    /// for it are those staged from its last good read and those the stubs
    /// on the other systems route to (`routed`), so a fresh store judges
    /// too. A read that lists none of them, or misses more than
    /// `max_shrink_percent` of them, is not believed unless `accepted`.
    async fn judge(
        &self,
        system: &str,
        pull: &Pull,
        held_before: i64,
        routed: Option<&HashSet<String>>,
        accepted: bool,
    ) -> Result<SourceHealth, EngineError> {
        let empty = HashSet::new();
        let routed = routed.unwrap_or(&empty);
        let listed: HashSet<&str> = pull.recipients.iter().map(|r| r.anchor.as_str()).collect();
        // Only what a read could miss is worth counting: for a delta, the
        // objects it removes (and nothing when it removes nothing).
        let judged = match pull.mode {
            PullMode::Full => true,
            PullMode::Delta => !pull.removed.is_empty(),
        };
        let (known, missing) = if judged {
            let staged = if held_before > 0 {
                self.store.staged_recipient_ids(system).await?
            } else {
                HashSet::new()
            };
            let mut known: HashSet<&str> = staged.iter().map(String::as_str).collect();
            known.extend(routed.iter().map(String::as_str));
            let missing = match pull.mode {
                PullMode::Full => known.iter().filter(|id| !listed.contains(*id)).count(),
                PullMode::Delta => {
                    let removed: HashSet<&str> = pull.removed.iter().map(String::as_str).collect();
                    known
                        .iter()
                        .filter(|id| removed.contains(*id) && !listed.contains(*id))
                        .count()
                }
            };
            (known.len() as u64, missing as u64)
        } else {
            (0, 0)
        };
        let empties = pull.recipients.is_empty() && known > 0 && missing >= known;
        let shrunk = gates::shrank(&self.config.safety, known, missing);
        if accepted && (empties || shrunk) {
            warn!(
                known,
                missing, "the read shrank, and the run accepts it (--accept-shrink)"
            );
        }
        Ok(if empties && !accepted {
            SourceHealth::SuddenlyEmpty {
                before: held_before,
                routed: routed.len() as u64,
            }
        } else if !pull.complete {
            SourceHealth::Incomplete(
                pull.problems
                    .first()
                    .map(|p| p.message.clone())
                    .unwrap_or_else(|| "the connector said the read was incomplete".into()),
            )
        } else if shrunk && !accepted {
            SourceHealth::Shrunk(Shrink {
                listed: match pull.mode {
                    PullMode::Full => pull.recipients.len() as u64,
                    PullMode::Delta => known - missing,
                },
                known,
                missing,
                held_before: u64::try_from(held_before).unwrap_or(0),
                routed: routed.len() as u64,
            })
        } else {
            SourceHealth::Complete
        })
    }

    /// What a plan is made from: the staged state (the store's fingerprint)
    /// and the policy of the configuration (homes, routing domains, smart
    /// hosts, stub styles, precedence). A saved plan applies only while both
    /// are as they were.
    pub async fn fingerprint(&self) -> Result<String, EngineError> {
        let staged = self.store.fingerprint().await?;
        Ok(crate::plan::fingerprint(&staged, &self.config.policy))
    }

    /// The fingerprint as the plan format `format` computes it: plans saved
    /// by versions before the stable policy encoding (format 1) digest the
    /// policy as those versions did, so they still apply after an upgrade.
    pub async fn fingerprint_for_format(&self, format: u32) -> Result<String, EngineError> {
        let staged = self.store.fingerprint().await?;
        Ok(if format < 2 {
            crate::plan::legacy::fingerprint(&staged, &self.config.policy)
        } else {
            crate::plan::fingerprint(&staged, &self.config.policy)
        })
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
        self.plan_for(health, options, None).await
    }

    /// [`Engine::plan`], restricted to some recipients when `only` is
    /// given: the plan holds the operations on the stubs of the recipients
    /// having one of those (normalised) addresses, and the conflicts and
    /// notices naming them; everything else waits for the next sync. The
    /// GAL saved is still the whole GAL, and the gates judge the
    /// restricted plan (`provision`, `move`, `deprovision`).
    pub async fn plan_for(
        &self,
        health: &BTreeMap<String, SourceHealth>,
        options: &RunOptions,
        only: Option<&BTreeSet<String>>,
    ) -> Result<(Plan, Reconciliation), EngineError> {
        let staged = self.staged().await?;
        let fingerprint = self.fingerprint().await?;
        let mut reconciliation = reconcile::reconcile(&staged, &self.config.policy);
        self.store.save_gal(&reconciliation.gal).await?;
        // The address books, staged apart: one entry per GAL recipient,
        // planned after every system's stubs (`reconcile::address_book`).
        let book_ids = self.config.address_book_ids();
        let books = if book_ids.is_empty() {
            Staged::default()
        } else {
            self.store.load_staged(&book_ids).await?
        };
        for book in &books.systems {
            reconciliation
                .operations
                .extend(reconcile::address_book::plan(&reconciliation.gal, book));
        }
        if let Some(only) = only {
            restrict(&mut reconciliation, only);
        }
        let mut plan =
            Plan::new(&reconciliation, &fingerprint, crate::store::now()).map_err(|source| {
                EngineError::Encode {
                    what: "an operation of the plan",
                    source,
                }
            })?;
        // What the connectors skipped at their last reads, recorded with
        // them, so a plan made without reading lists them too.
        for system in self.config.system_ids() {
            for problem in self.store.problems_of(&system).await? {
                plan.notices.push(Notice {
                    object: problem.object,
                    message: format!("skipped when {system} was last read: {}", problem.message),
                    system: system.clone(),
                });
            }
        }
        let stubs_held: BTreeMap<String, u64> = staged
            .systems
            .iter()
            .chain(&books.systems)
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
        if self.stop.load(Ordering::SeqCst) {
            return Err(EngineError::Stopped);
        }
        if plan.format > crate::plan::FORMAT {
            return Err(EngineError::PlanFormat {
                id: plan.id.clone(),
                format: plan.format,
            });
        }
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
        if status == Some(PlanStatus::Applying) {
            // Interrupted while applying: its own writes changed the staged
            // state, so the journal, not the fingerprint, says what is left.
            info!(plan = %plan.id, journalled = journal.len(), left, "resuming a plan from its journal");
        } else if left > 0 {
            // A new plan, or one applied in part or superseded by a later
            // run: it may only run on the state it was made from.
            let actual = self.fingerprint_for_format(plan.format).await?;
            if actual != plan.fingerprint {
                return Err(EngineError::StalePlan {
                    id: plan.id.clone(),
                    expected: plan.fingerprint.clone(),
                    actual,
                });
            }
        }
        let body = serde_json::to_string(plan).map_err(|source| EngineError::Encode {
            what: "the plan",
            source,
        })?;
        self.store
            .save_plan(&plan.id, &plan.fingerprint, &body)
            .await?;
        self.store
            .set_plan_status(&plan.id, PlanStatus::Applying)
            .await?;

        let mut report = ApplyReport {
            plan: plan.id.clone(),
            unreadable: plan.unreadable().map(str::to_string).collect(),
            ..ApplyReport::default()
        };
        let mut failures = Failures::default();
        report.withheld = plan.operations.iter().filter(|s| s.withheld).count() as u64;
        // An operation a run that died left started, withheld now (its
        // system could not be read): whether it was done is not known until
        // a run reads that system in full, so it stays started and the
        // plan applying (see `Engine::settle_interrupted`).
        let left_started = |s: &&PlanStep| journal.get(&s.seq) == Some(&JournalState::Started);
        let unsettled = plan
            .operations
            .iter()
            .filter(|s| s.withheld)
            .filter(left_started)
            .count();
        let withheld: Vec<(i64, &str)> = plan
            .operations
            .iter()
            .filter(|s| s.withheld && !left_started(s))
            .map(|s| (s.seq, s.system.as_str()))
            .collect();
        if !withheld.is_empty() {
            self.store
                .journal(&plan.id, &withheld, JournalState::Withheld, None)
                .await?;
        }

        // Group by system, keeping the plan's order within each.
        let mut by_system: BTreeMap<&str, Vec<&PlanStep>> = BTreeMap::new();
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
            let system_started = std::time::Instant::now();
            let connector = self
                .connector(system)
                .ok_or_else(|| EngineError::UnknownSystem(system.to_string()))?
                .clone();
            let span = info_span!("system", id = %system);
            // Credentials refused: nothing more is sent to this system.
            let mut refused: Option<String> = None;
            let mut attempted = 0usize;
            for chunk in steps.chunks(APPLY_CHUNK) {
                if self.lock_lost.load(Ordering::SeqCst) {
                    return Err(EngineError::LockLost);
                }
                if self.stop.load(Ordering::SeqCst) {
                    // Each chunk done is recorded; the plan stays
                    // applying and the next run resumes it.
                    return Err(EngineError::Stopped);
                }
                let entries: Vec<(i64, &str)> = chunk.iter().map(|s| (s.seq, system)).collect();
                self.store
                    .start_operations(&plan.id, run_id, &entries)
                    .await?;
                let operations: Vec<Operation> =
                    chunk.iter().map(|s| s.operation.clone()).collect();
                let results = coexist_connector::requests::counting(
                    self.requests_of(system),
                    connector.apply_many(&operations).instrument(span.clone()),
                )
                .await;
                // The results of the whole chunk (stub rows, audit, journal
                // done/failed) go to the store in one transaction; until it
                // commits, the journal says `started` and a killed run's
                // successor re-reads the systems (see `Store::record_chunk`).
                let mut written = ChunkRecord::default();
                for (step, result) in chunk.iter().zip(results) {
                    if let Err(error) = &result {
                        if error.is_authentication() && refused.is_none() {
                            refused = Some(error.to_string());
                        }
                    }
                    self.record(
                        plan,
                        step,
                        result,
                        run_id,
                        options,
                        &mut report,
                        &mut failures,
                        &mut written,
                    )?;
                    if self.per_operation_writes {
                        self.store.record_per_operation(&plan.id, &written).await?;
                        written = ChunkRecord::default();
                    }
                }
                self.store.record_chunk(&plan.id, &written).await?;
                attempted += chunk.len();
                progress.advance(chunk.len() as u64);
                if refused.is_some() {
                    break;
                }
            }
            let left = (steps.len() - attempted) as u64;
            if let Some(error) = refused.filter(|_| left > 0) {
                report.not_attempted += left;
                progress.advance(left);
                warn!(system, left, %error, "the system refused coexist's credentials; its remaining operations are not attempted");
                failures.annotate(
                    system,
                    &error,
                    format!("{system} refused coexist's credentials, so the {left} operations left for it were not attempted: fix its credentials (`coexist doctor` checks them) and run again"),
                );
            }
            for (error, repeats) in failures.repeated(system) {
                warn!(system, repeats, %error, "more operations failed the same way");
            }
            report
                .durations
                .push((system.to_string(), system_started.elapsed()));
        }
        report.failures = failures.finish();
        let status = if unsettled > 0 {
            warn!(plan = %plan.id, operations = unsettled, "operations a run that died left started are withheld: the plan stays applying until a run reads their systems in full");
            PlanStatus::Applying
        } else if report.failed > 0 || report.not_attempted > 0 {
            PlanStatus::Partial
        } else {
            PlanStatus::Applied
        };
        self.store.set_plan_status(&plan.id, status).await?;
        Ok(report)
    }

    /// Adds what `step`'s `result` changes in the store (its stub row, its
    /// audit record, its journal entry) to `written`, the record of its
    /// chunk.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        plan: &Plan,
        step: &PlanStep,
        result: Result<Applied, ConnectorError>,
        run_id: Option<i64>,
        options: &RunOptions,
        report: &mut ApplyReport,
        failures: &mut Failures,
        written: &mut ChunkRecord,
    ) -> Result<(), EngineError> {
        let applied = match result {
            Ok(applied) => applied,
            Err(error) => {
                self.failed(plan, step, &error.to_string(), report, failures, written);
                return Ok(());
            }
        };
        match (&step.operation, applied.found) {
            (Operation::Delete { id, .. }, _) => written.remove_stub(&step.system, id),
            // A stub without an id could never be found, updated or
            // deleted again: it is not recorded, and the next read of the
            // system finds what was written.
            (_, Some(found)) if found.id.trim().is_empty() => {
                let error = format!(
                    "{} reported the stub written but returned it without an id, so coexist did not record it (the next read of {} finds it)",
                    step.system, step.system
                );
                self.failed(plan, step, &error, report, failures, written);
                return Ok(());
            }
            (_, Some(found)) => {
                // An update may have moved the stub (a rename): forget the old row.
                if let Operation::Update { id, .. } = &step.operation {
                    if *id != found.id {
                        written.remove_stub(&step.system, id);
                    }
                }
                written.put_stub(&step.system, found);
            }
            (_, None) => {}
        }
        written.audit.push(audit_record(
            step,
            crate::store::now(),
            run_id,
            options.actor.clone(),
        )?);
        written.journal(step.seq, &step.system, JournalState::Done, None);
        report.done += 1;
        report
            .by_system
            .entry((step.system.clone(), step.action.as_str()))
            .or_default()
            .done += 1;
        Ok(())
    }

    /// Records that `step` failed with `error`.
    fn failed(
        &self,
        plan: &Plan,
        step: &PlanStep,
        error: &str,
        report: &mut ApplyReport,
        failures: &mut Failures,
        written: &mut ChunkRecord,
    ) {
        let message = format!(
            "{} {} on {}: {error}",
            step.action, step.address, step.system
        );
        if failures.add(&step.system, error, message.clone()) {
            warn!(plan = %plan.id, system = %step.system, address = %step.address, %error, "operation failed");
        } else {
            debug!(plan = %plan.id, system = %step.system, address = %step.address, %error, "operation failed");
        }
        written.journal(step.seq, &step.system, JournalState::Failed, Some(message));
        report.failed += 1;
        report
            .by_system
            .entry((step.system.clone(), step.action.as_str()))
            .or_default()
            .failed += 1;
    }

    /// Plans that an earlier run started applying and never finished.
    pub async fn interrupted(&self) -> Result<Vec<String>, EngineError> {
        Ok(self.store.unfinished_plans().await?)
    }

    /// Settles what runs that died left in the journal, once every system
    /// was read in full (`pulls`): each operation of an interrupted plan
    /// (`resumed`, still `applying`) left `started` is `done` when the
    /// read finds its effect — and its audit record is written then, as the
    /// dead run's, so every change it made reaches the audit log — else
    /// `interrupted` (the plan made next does what is left, under its own
    /// journal and audit). Each plan is then `superseded`, in the same
    /// transaction. An operation on a system whose read was not complete
    /// cannot be judged: it stays `started` and its plan `applying`, for
    /// the next run (which reads in full again). Operations left `started`
    /// in plans no longer applying (by versions that superseded a plan
    /// before reading) are `interrupted`: what they did was read and
    /// planned since, by runs that cannot be told apart from them.
    ///
    /// Returns the plans left applying.
    pub async fn settle_interrupted(
        &self,
        resumed: &[String],
        pulls: &[PullReport],
        run_id: Option<i64>,
        options: &RunOptions,
    ) -> Result<Vec<String>, EngineError> {
        let mut left: BTreeMap<String, Vec<StartedOperation>> = resumed
            .iter()
            .map(|plan| (plan.clone(), Vec::new()))
            .collect();
        for operation in self.store.operations_left_started().await? {
            left.entry(operation.plan.clone())
                .or_default()
                .push(operation);
        }
        if left.is_empty() {
            return Ok(Vec::new());
        }
        // The systems whose read tells what they hold now.
        let read_whole: HashSet<&str> = pulls
            .iter()
            .filter(|p| p.mode == "full" && p.health == SourceHealth::Complete)
            .map(|p| p.system.as_str())
            .collect();
        let wanted: Vec<String> = left
            .values()
            .flatten()
            .map(|o| o.system.clone())
            .filter(|s| read_whole.contains(s.as_str()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let staged = if wanted.is_empty() {
            Staged::default()
        } else {
            self.store.load_staged(&wanted).await?
        };
        let holds: HashMap<&str, Holds> = staged
            .systems
            .iter()
            .map(|s| (s.id.as_str(), Holds::of(&s.stubs)))
            .collect();

        let mut still_applying = Vec::new();
        for (plan_id, started) in left {
            let interrupted = resumed.contains(&plan_id);
            let steps: HashMap<i64, PlanStep> = if interrupted {
                match self.store.plan(&plan_id).await? {
                    Some(record) => match serde_json::from_str::<Plan>(&record.body) {
                        Ok(plan) => plan.operations.into_iter().map(|s| (s.seq, s)).collect(),
                        Err(error) => {
                            warn!(plan = %plan_id, %error, "the interrupted plan cannot be read back; its operations left started are settled as interrupted");
                            HashMap::new()
                        }
                    },
                    None => HashMap::new(),
                }
            } else {
                HashMap::new()
            };
            let mut settled = ChunkRecord::default();
            let (mut done, mut not_seen, mut unjudged) = (0u64, 0u64, 0u64);
            for operation in &started {
                let by = match operation.run {
                    Some(run) => format!("run {run}"),
                    None => "a run".to_string(),
                };
                if !interrupted {
                    settled.journal(
                        operation.seq,
                        &operation.system,
                        JournalState::Interrupted,
                        Some(format!("left started by {by}, which died, in a plan superseded before this version settled such operations; the runs since read {} and planned what was left", operation.system)),
                    );
                    not_seen += 1;
                    continue;
                }
                let Some(step) = steps.get(&operation.seq) else {
                    settled.journal(
                        operation.seq,
                        &operation.system,
                        JournalState::Interrupted,
                        Some(format!("started by {by}, which died; the plan does not say what the operation was, so this run planned afresh what was left")),
                    );
                    not_seen += 1;
                    continue;
                };
                let Some(holds) = holds.get(operation.system.as_str()) else {
                    if self.connector(&operation.system).is_some() {
                        // Not read in full: whether it was done cannot be told.
                        unjudged += 1;
                    } else {
                        settled.journal(
                            step.seq,
                            &step.system,
                            JournalState::Interrupted,
                            Some(format!(
                                "started by {by}, which died; {} is no longer configured",
                                step.system
                            )),
                        );
                        not_seen += 1;
                    }
                    continue;
                };
                if holds.shows(&step.operation) {
                    let actor = match run_id {
                        Some(run) => format!(
                            "{by}, interrupted (recorded by run {run}: {})",
                            options.actor
                        ),
                        None => format!("{by}, interrupted (recorded by {})", options.actor),
                    };
                    settled.audit.push(audit_record(
                        step,
                        operation.started_at.clone(),
                        operation.run,
                        actor,
                    )?);
                    settled.journal(step.seq, &step.system, JournalState::Done, None);
                    done += 1;
                } else {
                    settled.journal(
                        step.seq,
                        &step.system,
                        JournalState::Interrupted,
                        Some(format!(
                            "started by {by}, which died; the full read of {} that followed did not find it done, so the run after planned afresh what was left",
                            step.system
                        )),
                    );
                    not_seen += 1;
                }
            }
            let status = if !interrupted {
                None
            } else if unjudged > 0 {
                still_applying.push(plan_id.clone());
                None
            } else {
                Some(PlanStatus::Superseded)
            };
            self.store.settle_plan(&plan_id, &settled, status).await?;
            if done + not_seen + unjudged > 0 {
                warn!(
                    plan = %plan_id,
                    done,
                    interrupted = not_seen,
                    unjudged,
                    "settled the operations a run that died left started: those found done are audited as its own"
                );
            }
        }
        Ok(still_applying)
    }
}

/// What one system holds after a full read, as far as telling whether an
/// operation was done goes: its stubs by anchor, and their ids.
struct Holds<'a> {
    by_anchor: HashMap<&'a str, &'a coexist_connector::FoundStub>,
    ids: HashSet<&'a str>,
}

impl<'a> Holds<'a> {
    fn of(stubs: &'a [coexist_connector::FoundStub]) -> Self {
        Holds {
            by_anchor: stubs.iter().map(|s| (s.stub.anchor.as_str(), s)).collect(),
            ids: stubs.iter().map(|s| s.id.as_str()).collect(),
        }
    }

    /// Whether the system shows `operation` done: the stub it creates is
    /// there, the stub it updates is as it makes it, the stub it deletes
    /// is gone. (Planned from a read where none of this held, so only
    /// the operation itself made it so.)
    fn shows(&self, operation: &Operation) -> bool {
        match operation {
            Operation::Create { stub } => self.by_anchor.contains_key(stub.anchor.as_str()),
            Operation::Update { after, .. } => self
                .by_anchor
                .get(after.anchor.as_str())
                .is_some_and(|found| found.stub == **after),
            Operation::Delete { id, .. } => !self.ids.contains(id.as_str()),
        }
    }
}

/// The audit record of `step`, done: what it changed, before and after.
fn audit_record(
    step: &PlanStep,
    at: String,
    run_id: Option<i64>,
    actor: String,
) -> Result<AuditRecord, EngineError> {
    let (before, after) = match &step.operation {
        Operation::Create { stub } => (None, Some(encode("an audit record", stub)?)),
        Operation::Update { before, after, .. } => (
            Some(encode("an audit record", before)?),
            Some(encode("an audit record", after)?),
        ),
        Operation::Delete { stub, .. } => (Some(encode("an audit record", stub)?), None),
    };
    Ok(AuditRecord {
        at,
        run_id,
        actor,
        system: step.system.clone(),
        action: step.action,
        address: step.address.clone(),
        before,
        after,
    })
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
    /// How long each phase took: `pull` (with settling an interrupted
    /// run's journal), `plan`, `apply` (the daemon's metrics).
    #[serde(skip)]
    pub phases: Vec<(&'static str, std::time::Duration)>,
    /// The requests each system's connector sent during the run, and how
    /// many its system throttled (the daemon's metrics).
    #[serde(skip)]
    pub requests: Vec<(String, RequestCounts)>,
}

impl SyncReport {
    /// The process exit code this run deserves (see the README). Mail
    /// that loops is the most urgent news, so a routing loop says 8 even
    /// when the run was also partial or gated.
    pub fn exit_code(&self) -> i32 {
        if self.plan.has_routing_loop() {
            crate::exit::ROUTING_LOOP
        } else if self.apply.failed > 0
            || self.apply.not_attempted > 0
            || self.pulls.iter().any(|p| p.error.is_some())
        {
            crate::exit::PARTIAL
        } else if self.apply.withheld > 0 || !self.plan.gates.is_empty() {
            crate::exit::GATE
        } else {
            crate::exit::OK
        }
    }
}

/// The process exit code of `coexist plan` (see the README): 8 when mail
/// loops, 4 when a system could not be read, 3 when a gate tripped, with
/// `detailed` 6 when the plan changes something, else 0.
pub fn plan_exit_code(pulls: &[PullReport], plan: &Plan, detailed: bool) -> i32 {
    let changes = plan.summary.create + plan.summary.update + plan.summary.delete > 0;
    if plan.has_routing_loop() {
        crate::exit::ROUTING_LOOP
    } else if pulls.iter().any(|p| p.error.is_some()) || plan.unreadable().next().is_some() {
        crate::exit::PARTIAL
    } else if !plan.gates.is_empty() {
        crate::exit::GATE
    } else if detailed && changes {
        crate::exit::CHANGES
    } else {
        crate::exit::OK
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
            let mut options = options.clone();
            if !resumed.is_empty() {
                // What the interrupted run wrote after its read is in no
                // cursor's delta: only a full read finds it.
                warn!(plans = ?resumed, "an earlier run was interrupted while applying; this run re-reads every system in full (ignoring the incremental cursors) and completes its work");
                options.full_read = true;
            }
            let options = &options;
            let started = std::time::Instant::now();
            let pulls = self.pull_with(options).await?;
            // What the dead run did is known from the full read: settle its
            // journal (and audit what it did) before planning what is left.
            let unsettled = self
                .settle_interrupted(&resumed, &pulls, Some(run), options)
                .await?;
            if !unsettled.is_empty() {
                warn!(plans = ?unsettled, "some operations of an interrupted plan are on systems not read in full this run; they stay started until a run reads them");
            }
            let pulled = started.elapsed();
            let started = std::time::Instant::now();
            let (plan, _) = self.plan(&self.health(&pulls), options).await?;
            let planned = started.elapsed();
            let started = std::time::Instant::now();
            let apply = self.apply(&plan, Some(run), options).await?;
            let phases = vec![("pull", pulled), ("plan", planned), ("apply", started.elapsed())];
            let requests = self.take_requests();
            Ok::<_, EngineError>(SyncReport {
                run,
                resumed,
                pulls,
                plan,
                apply,
                phases,
                requests,
            })
        }
        .instrument(info_span!("run", id = run, command = "sync"))
        .await;
        match &result {
            Ok(report) => {
                let status = RunStatus::of_exit_code(report.exit_code());
                let summary = serde_json::json!({
                    "plan": report.plan.id,
                    "summary": report.plan.summary,
                    "done": report.apply.done,
                    "failed": report.apply.failed,
                    "not_attempted": report.apply.not_attempted,
                    "withheld": report.apply.withheld,
                    "gates": report.plan.gates,
                });
                self.store.finish_run(run, status, &summary).await?;
            }
            Err(error) => {
                // The run's own error is what the admin must see. A run
                // stopped on request is interrupted, not failed: the next
                // run completes it.
                let status = if matches!(error, EngineError::Stopped) {
                    RunStatus::Interrupted
                } else {
                    RunStatus::Failed
                };
                if let Err(store) = self
                    .store
                    .finish_run(
                        run,
                        status,
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

/// Keeps in `reconciliation` only the operations on the stubs of the
/// recipients having one of the addresses `only`, and the conflicts and
/// notices naming one of them.
pub fn restrict(reconciliation: &mut Reconciliation, only: &BTreeSet<String>) {
    fn named<'a>(only: &BTreeSet<String>, mut addresses: impl Iterator<Item = &'a String>) -> bool {
        addresses.any(|a| coexist_connector::normalize_address(a).is_ok_and(|a| only.contains(&a)))
    }
    reconciliation.operations.retain(|planned| {
        let stub = planned.operation.stub();
        named(
            only,
            std::iter::once(&stub.primary_address).chain(stub.aliases.iter()),
        )
    });
    reconciliation
        .conflicts
        .retain(|conflict| named(only, conflict.addresses.iter()));
    reconciliation.notices.retain(|notice| {
        only.iter()
            .any(|a| notice.object.contains(a.as_str()) || notice.message.contains(a.as_str()))
    });
}

/// Takes the objects a connector returned without an id out of `pull`,
/// as problems: an object without an id cannot be staged, found or
/// changed again.
fn skip_objects_without_ids(pull: &mut Pull) {
    let mut skipped = Vec::new();
    pull.recipients.retain(|r| {
        let keep = !r.anchor.trim().is_empty();
        if !keep {
            skipped.push(Problem {
                object: r
                    .locator
                    .clone()
                    .unwrap_or_else(|| r.primary_address.clone()),
                message: "the connector returned this recipient without an id; it is skipped"
                    .into(),
            });
        }
        keep
    });
    pull.stubs.retain(|s| {
        let keep = !s.id.trim().is_empty();
        if !keep {
            skipped.push(Problem {
                object: if s.locator.is_empty() {
                    s.stub.primary_address.clone()
                } else {
                    s.locator.clone()
                },
                message: "the connector returned this stub without an id; it is skipped".into(),
            });
        }
        keep
    });
    pull.problems.extend(skipped);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::{Conflict, ConflictKind};

    fn plan(conflicts: Vec<ConflictKind>) -> Plan {
        let reconciliation = Reconciliation {
            conflicts: conflicts
                .into_iter()
                .map(|kind| Conflict {
                    kind,
                    addresses: vec!["ann@acmecorp.com".into()],
                    systems: vec!["google".into(), "ldap".into()],
                    message: "mail for ann@acmecorp.com loops".into(),
                })
                .collect(),
            ..Reconciliation::default()
        };
        Plan::new(&reconciliation, "fp", String::new()).unwrap()
    }

    fn unreadable(system: &str) -> PullReport {
        PullReport {
            system: system.into(),
            mode: "none",
            recipients: 0,
            stubs: 0,
            staged: StageReport::default(),
            error: Some("connection refused".into()),
            problems: Vec::new(),
            incremental: None,
            health: SourceHealth::Failed("connection refused".into()),
            elapsed: std::time::Duration::ZERO,
        }
    }

    fn sync(plan: Plan, pulls: Vec<PullReport>, failed: u64) -> SyncReport {
        SyncReport {
            run: 1,
            resumed: Vec::new(),
            pulls,
            plan,
            apply: ApplyReport {
                failed,
                ..ApplyReport::default()
            },
            phases: Vec::new(),
            requests: Vec::new(),
        }
    }

    #[test]
    fn a_routing_loop_is_the_first_thing_the_exit_code_says() {
        let looping = || plan(vec![ConflictKind::RoutingLoop]);
        assert_eq!(
            sync(looping(), vec![unreadable("ldap")], 3).exit_code(),
            crate::exit::ROUTING_LOOP
        );
        assert_eq!(
            plan_exit_code(&[unreadable("ldap")], &looping(), true),
            crate::exit::ROUTING_LOOP
        );
        // Other conflicts stop nothing else and change no exit code.
        let other = || plan(vec![ConflictKind::MailboxInTwoSystems]);
        assert_eq!(sync(other(), vec![], 0).exit_code(), crate::exit::OK);
        assert_eq!(
            sync(other(), vec![unreadable("ldap")], 0).exit_code(),
            crate::exit::PARTIAL
        );
        assert_eq!(
            plan_exit_code(&[unreadable("ldap")], &other(), true),
            crate::exit::PARTIAL
        );
        assert_eq!(plan_exit_code(&[], &other(), false), crate::exit::OK);
    }

    #[test]
    fn identical_failures_are_one_line_with_a_count_and_a_note() {
        let mut failures = Failures::default();
        assert!(failures.add("ldap", "refused", "create a@x on ldap: refused".into()));
        assert!(!failures.add("ldap", "refused", "create b@x on ldap: refused".into()));
        assert!(!failures.add("ldap", "refused", "create c@x on ldap: refused".into()));
        assert!(failures.add("google", "refused", "create d@x on google: refused".into()));
        failures.annotate("ldap", "refused", "5 not attempted".into());
        assert_eq!(failures.repeated("ldap"), [("refused".to_string(), 2)]);
        assert_eq!(
            failures.finish(),
            [
                "create a@x on ldap: refused (and 2 more operations on ldap failed the same way); 5 not attempted",
                "create d@x on google: refused",
            ]
        );
    }
}
