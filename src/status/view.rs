//! What the status page and its JSON twin show, read from an
//! organisation's store: each system's health and last read, the last
//! runs, the gates of the last plan and what they hold back, its
//! conflicts, and GAL searches with each recipient's stubs and mail routes.
//!
//! Reads are bounded: the runs by a limit, the GAL by its address index,
//! the staged counts counted once per run, the last plan parsed once per
//! plan and kept. The searches' routing directory (the mail directory
//! `route` reads, the stubs by recipient, and the name index: every
//! entry's names, addresses, title, department and company, searched for
//! any part in memory) is loaded in the background once per run, when a
//! search first needs it and again after each run of the daemon while it
//! is kept; the search that starts a load waits for it at most
//! [`DIRECTORY_WAIT`], then, like every search while it goes, answers
//! from the previous directory, or without routes (and by a scan of the
//! GAL for names) when there is none yet. It is dropped when no
//! search used it for [`DIRECTORY_IDLE`]. Runs change what is staged
//! (`sync`, `apply`, `provision`, each recorded as a run; `coexist plan`
//! stages its reads without one, which the cursors' time tells), so what
//! is kept is read again when the newest run changes or finishes, or a
//! read is staged.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{Organisation, StatusError};
use crate::engine::gates;
use crate::plan::{Action, Gate};
use crate::reconcile::route::{trace, Origin, StagedView, Trace};
use crate::reconcile::Conflict;
use crate::store::{RunRecord, RunStatus, SystemRead};
use coexist_model::{GalEntry, Route};

/// Runs shown per organisation.
pub const RUNS_SHOWN: i64 = 10;
/// Withheld operations listed one by one (the rest are counted).
pub const WITHHELD_SHOWN: usize = 20;
/// GAL entries a search returns at most.
pub const SEARCH_LIMIT: i64 = 20;
/// A search's routing directory is dropped after this long unused.
pub const DIRECTORY_IDLE: Duration = Duration::from_secs(600);
/// How long a search waits for a routing directory being loaded before it
/// answers from the previous one (or without routes, saying they are
/// being read): short enough for the page to answer in under 50 ms; a
/// small organisation's directory is there by then.
pub const DIRECTORY_WAIT: Duration = Duration::from_millis(30);

/// One organisation at a glance.
#[derive(Debug, Clone, Serialize)]
pub struct OrganisationStatus {
    pub organisation: String,
    /// Ready (see [`Readiness`]).
    pub readiness: Readiness,
    pub systems: Vec<SystemStatus>,
    pub runs: Vec<RunView>,
    /// The last plan's id and when it was made; `None` before the first.
    pub plan: Option<PlanHeader>,
    /// What the last plan's safety gates hold back, and how to release it.
    pub gates: Vec<GateView>,
    /// The operations withheld, counted per system and action.
    pub withheld: Vec<WithheldCount>,
    /// The first [`WITHHELD_SHOWN`] withheld operations.
    pub withheld_operations: Vec<WithheldOperation>,
    /// The last plan's conflicts with their sentences.
    pub conflicts: Vec<Conflict>,
}

/// Whether an organisation needs nobody: its store answers and its last
/// run did not end in a way that needs a person.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    pub ready: bool,
    /// Why not, in words (empty when ready).
    pub reasons: Vec<String>,
}

/// One system's health and last read.
#[derive(Debug, Clone, Serialize)]
pub struct SystemStatus {
    pub system: String,
    pub kind: String,
    /// `ok`, `never_read`, or the gate of the last plan that concerns it
    /// (`unreadable_source`, `incomplete_source`, `source_shrunk`), or
    /// `unreadable` when the daemon's last run could not read it.
    pub health: String,
    /// Why it is not `ok`, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(flatten)]
    pub read: SystemRead,
}

/// One run, with its counts.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    pub id: i64,
    pub command: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub status: RunStatus,
    pub create: Option<u64>,
    pub update: Option<u64>,
    pub delete: Option<u64>,
    pub done: Option<u64>,
    pub failed: Option<u64>,
    pub withheld: Option<u64>,
    pub conflicts: Option<u64>,
    pub error: Option<String>,
}

/// The plan the page describes.
#[derive(Debug, Clone, Serialize)]
pub struct PlanHeader {
    pub id: String,
    pub created_at: String,
    pub operations: usize,
    pub gal: u64,
}

/// A safety gate that tripped, and how to release what it holds.
#[derive(Debug, Clone, Serialize)]
pub struct GateView {
    pub gate: String,
    pub system: String,
    /// What happened and what to do (the gate's own words).
    pub message: String,
    /// How to release it, in one line.
    pub release: String,
}

/// Withheld operations of one system and action.
#[derive(Debug, Clone, Serialize)]
pub struct WithheldCount {
    pub system: String,
    pub action: Action,
    pub count: u64,
}

/// One withheld operation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WithheldOperation {
    pub system: String,
    pub action: Action,
    pub address: String,
    pub reason: String,
}

/// One GAL entry found by a search: where the recipient is, which stubs
/// stand for it, and how mail reaches it from the internet and from each
/// system (`coexist route`'s result).
#[derive(Debug, Clone, Serialize)]
pub struct SearchHit {
    pub entry: GalEntry,
    pub stubs: Vec<StubView>,
    pub routes: Vec<RouteView>,
    /// The mail directory is still being loaded (the first search of an
    /// organisation with a large GAL): no stubs or routes yet, search
    /// again in a moment.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub routes_pending: bool,
}

/// A stub of coexist's standing for a recipient in one system.
#[derive(Debug, Clone, Serialize)]
pub struct StubView {
    pub system: String,
    pub address: String,
    /// Where it sends mail (`via … to …`).
    pub route: Route,
    /// Where the connector finds it (a DN, a link).
    pub locator: String,
}

/// Mail to the recipient's primary address from one origin.
#[derive(Debug, Clone, Serialize)]
pub struct RouteView {
    /// `internet` or a system.
    pub from: String,
    #[serde(flatten)]
    pub trace: Trace,
}

/// The last plan, as much of it as the page shows (parsed once per plan).
#[derive(Debug, Default)]
pub(super) struct PlanView {
    id: String,
    created_at: String,
    operations: usize,
    gal: u64,
    gates: Vec<Gate>,
    conflicts: Vec<Conflict>,
    withheld: Vec<WithheldCount>,
    withheld_operations: Vec<WithheldOperation>,
}

/// The stored plan, read without the operations' stubs.
#[derive(Deserialize)]
struct StoredPlan {
    id: String,
    #[serde(default)]
    created_at: String,
    #[serde(default)]
    operations: Vec<StoredStep>,
    #[serde(default)]
    conflicts: Vec<Conflict>,
    #[serde(default)]
    gates: Vec<Gate>,
    #[serde(default)]
    summary: StoredSummary,
}

#[derive(Deserialize, Default)]
struct StoredSummary {
    #[serde(default)]
    gal: u64,
}

#[derive(Deserialize)]
struct StoredStep {
    system: String,
    action: Action,
    address: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    withheld: bool,
}

/// The routing directory of an organisation's searches: today's staged
/// mail directory as `coexist route` reads it, and the stubs by recipient.
pub(super) struct RouteDirectory {
    /// The run and the read after which it was loaded.
    run: ReadsKey,
    view: StagedView,
    stubs: HashMap<String, Vec<StubView>>,
    names: NameIndex,
    used: Mutex<Instant>,
}

/// Every GAL entry's searchable words, lower case, one line per entry in
/// the order of primary addresses: `address<TAB>aliases<TAB>names…`. A
/// search for any part of an entry is one pass over one string.
#[derive(Default)]
struct NameIndex {
    text: String,
}

impl NameIndex {
    /// Adds `entry` (entries come in the order of their primary address).
    fn push(&mut self, entry: &GalEntry) {
        let attributes = &entry.attributes;
        let mut line = entry.primary_address.clone();
        for word in entry.aliases().chain(
            [
                &attributes.display_name,
                &attributes.given_name,
                &attributes.surname,
                &attributes.title,
                &attributes.department,
                &attributes.company,
            ]
            .into_iter()
            .filter_map(|a| a.as_deref()),
        ) {
            line.push('\t');
            line.push_str(word);
        }
        // No line break or tab inside a word: they separate lines and words.
        let line = line.replace(['\n', '\r'], " ").to_lowercase();
        self.text.push_str(&line);
        self.text.push('\n');
    }

    /// The primary addresses of the first `limit` entries containing
    /// `query` (lower case), in address order; a query with a line break
    /// finds nothing (it would match across entries).
    fn find(&self, query: &str, limit: usize) -> Vec<String> {
        let mut found = Vec::new();
        if query.is_empty() || query.contains('\n') {
            return found;
        }
        let mut from = 0;
        while found.len() < limit {
            let Some(at) = self.text[from..].find(query).map(|at| from + at) else {
                break;
            };
            let start = self.text[..at].rfind('\n').map_or(0, |i| i + 1);
            let end = self.text[at..]
                .find('\n')
                .map_or(self.text.len(), |i| at + i);
            let line = &self.text[start..end];
            found.push(line.split('\t').next().unwrap_or(line).to_string());
            from = end;
        }
        found
    }
}

/// Where a routing directory being loaded will be sent.
type Loading = watch::Receiver<Option<Arc<RouteDirectory>>>;

/// An organisation's routing directory: the one kept, and the load going.
#[derive(Default)]
struct DirectorySlot {
    current: Option<Arc<RouteDirectory>>,
    /// The load going, if any.
    loading: Option<Loading>,
}

type Directories = Arc<Mutex<HashMap<String, DirectorySlot>>>;

/// The last plan of each organisation, parsed once (shared with the task
/// that parses it after a run).
type Plans = Arc<Mutex<HashMap<String, Arc<PlanView>>>>;

/// Each organisation's staged counts and last read per system, with the
/// newest run and last read they were counted after.
type Reads = Arc<Mutex<HashMap<String, (ReadsKey, Vec<SystemRead>)>>>;

/// What the state keeps between requests, per organisation.
pub(super) struct Kept {
    plans: Plans,
    directories: Directories,
    /// Each system's staged counts and last read, with the newest run and
    /// the last read they were counted after.
    reads: Reads,
    /// The runtime the directories are loaded on (the one the state was
    /// made in; the daemon's runs end on threads of their own).
    runtime: Option<tokio::runtime::Handle>,
}

impl Default for Kept {
    fn default() -> Self {
        Kept {
            plans: Plans::default(),
            directories: Directories::default(),
            reads: Reads::default(),
            runtime: tokio::runtime::Handle::try_current().ok(),
        }
    }
}

/// The newest run of a store, and whether and when it finished: what the
/// page keeps is counted again once it changes.
type NewestRun = Option<(i64, Option<String>)>;

/// The newest run and the time of the last read staged (`coexist plan`
/// stages reads without a run): the staged counts change with them only.
type ReadsKey = (NewestRun, Option<String>);

impl Kept {
    /// Drops the routing directories no search used for [`DIRECTORY_IDLE`].
    pub(super) fn forget_idle(&self) {
        if let Ok(mut directories) = self.directories.lock() {
            for slot in directories.values_mut() {
                let idle = slot.current.as_ref().is_some_and(|d| {
                    d.used
                        .lock()
                        .map(|used| used.elapsed() >= DIRECTORY_IDLE)
                        .unwrap_or(true)
                });
                if idle {
                    slot.current = None;
                }
            }
            directories.retain(|_, slot| slot.current.is_some() || slot.loading.is_some());
        }
    }

    /// A run of `organisation` ended: its routing directory, when one is
    /// kept (a search used it lately), is loaded again in the background,
    /// so that the next search finds it ready.
    pub(super) fn run_ended(&self, organisation: &Arc<Organisation>) {
        self.forget_idle();
        // The run's plan is parsed and each system's staged objects counted
        // now, in the background, rather than by the first page asked after
        // the run (a third of a second after a first sync of 100,000
        // recipients).
        if let Some(runtime) = self
            .runtime
            .clone()
            .or_else(|| tokio::runtime::Handle::try_current().ok())
        {
            let (plans, reads, organisation) =
                (self.plans.clone(), self.reads.clone(), organisation.clone());
            runtime.spawn(async move {
                let parsed = match organisation.store.runs(RUNS_SHOWN).await {
                    Ok(runs) => match last_plan(&plans, &organisation, &runs).await {
                        Ok(_) => system_reads(&reads, &organisation, &runs).await.map(|_| ()),
                        Err(error) => Err(error),
                    },
                    Err(error) => Err(error.into()),
                };
                if let Err(error) = parsed {
                    tracing::debug!(organisation = %organisation.id, %error, "the last plan was not parsed after the run; the page will");
                }
            });
        }
        let kept = self
            .directories
            .lock()
            .ok()
            .and_then(|d| d.get(&organisation.id).map(|s| s.current.is_some()))
            .unwrap_or(false);
        if kept {
            self.start_loading(organisation);
        }
    }

    /// Starts loading `organisation`'s routing directory unless a load is
    /// going; returns where it will be sent, and whether this call started
    /// it.
    fn start_loading(&self, organisation: &Arc<Organisation>) -> Option<(Loading, bool)> {
        let mut directories = self.directories.lock().ok()?;
        let slot = directories.entry(organisation.id.clone()).or_default();
        if let Some(loading) = &slot.loading {
            return Some((loading.clone(), false));
        }
        let runtime = self
            .runtime
            .clone()
            .or_else(|| tokio::runtime::Handle::try_current().ok())?;
        let (sender, receiver) = watch::channel(None);
        slot.loading = Some(receiver.clone());
        runtime.spawn(load_in_background(
            self.directories.clone(),
            organisation.clone(),
            sender,
        ));
        Some((receiver, true))
    }
}

/// Loads `organisation`'s routing directory, keeps it and sends it to the
/// searches waiting for it.
async fn load_in_background(
    directories: Directories,
    organisation: Arc<Organisation>,
    sender: watch::Sender<Option<Arc<RouteDirectory>>>,
) {
    let started = Instant::now();
    let loaded = load_directory(&organisation).await;
    let Ok(mut directories) = directories.lock() else {
        return;
    };
    let slot = directories.entry(organisation.id.clone()).or_default();
    slot.loading = None;
    match loaded {
        Ok(directory) => {
            let directory = Arc::new(directory);
            tracing::debug!(
                organisation = %organisation.id,
                elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "the searches' mail directory is loaded"
            );
            slot.current = Some(directory.clone());
            let _ = sender.send(Some(directory));
        }
        Err(error) => {
            tracing::warn!(organisation = %organisation.id, %error, "the searches' mail directory cannot be loaded: searches answer without routes");
        }
    }
}

/// Why a run status needs a person: `None` when it does not. A gate that
/// held changes (3), mail that loops (8), a run that stopped on an error
/// (1) and a refused plan (5) wait for an admin; a partial run (4: a system
/// unreadable, operations failed) is retried by the next run, and an
/// interrupted one is completed by it.
pub fn needs_a_person(status: RunStatus) -> Option<&'static str> {
    match status {
        RunStatus::Withheld => {
            Some("a safety gate withheld changes (exit 3): look at the gates and release them")
        }
        RunStatus::RoutingLoop => {
            Some("mail loops (exit 8): a routing entry sends an address round in circles")
        }
        RunStatus::Failed => Some("the run stopped on an error (exit 1)"),
        RunStatus::Refused => Some("a saved plan was refused (exit 5)"),
        RunStatus::Ok | RunStatus::Partial | RunStatus::Running | RunStatus::Interrupted => None,
    }
}

/// How to release what `gate` holds back, in one line.
pub fn release(gate: &Gate) -> String {
    let system = &gate.system;
    match gate.gate.as_str() {
        gates::DELETE_THRESHOLD => format!(
            "check why {system} would lose so many stubs; if it is right, run `coexist sync --allow-deletes` once"
        ),
        gates::SOURCE_SHRUNK => format!(
            "check {system}'s connection (base, filter, read rights); if it really lost them, run `coexist sync --accept-shrink {system}`"
        ),
        gates::INCOMPLETE_SOURCE | gates::UNREADABLE_SOURCE => format!(
            "make {system} readable again (connection, credentials, rights); the next run that reads it releases this by itself"
        ),
        gates::CAPACITY => format!(
            "make room on {system} or raise its limit; the next run creates what fits"
        ),
        _ => "see the message".to_string(),
    }
}

/// The status of `organisation`.
pub(super) async fn organisation_status(
    kept: &Kept,
    organisation: &Organisation,
    pulls: Option<Vec<super::metrics::PullOutcome>>,
) -> Result<OrganisationStatus, StatusError> {
    let store = &organisation.store;
    let mut reasons = Vec::new();
    if let Err(error) = store.ping().await {
        reasons.push(format!("the store does not answer: {error}"));
        return Ok(OrganisationStatus {
            organisation: organisation.id.clone(),
            readiness: Readiness {
                ready: false,
                reasons,
            },
            systems: Vec::new(),
            runs: Vec::new(),
            plan: None,
            gates: Vec::new(),
            withheld: Vec::new(),
            withheld_operations: Vec::new(),
            conflicts: Vec::new(),
        });
    }
    let runs = store.runs(RUNS_SHOWN).await?;
    if let Some(last) = runs.iter().find(|r| r.status != RunStatus::Running) {
        if let Some(why) = needs_a_person(last.status) {
            reasons.push(format!("run {} ({}): {why}", last.id, last.command));
        }
    }
    let plan = last_plan(&kept.plans, organisation, &runs).await?;
    let reads = system_reads(&kept.reads, organisation, &runs).await?;
    let systems = reads
        .into_iter()
        .map(|read| {
            let kind = organisation
                .config
                .systems
                .iter()
                .find(|s| s.id == read.system)
                .map(|s| s.kind.name().to_string())
                .unwrap_or_default();
            let pulled = pulls
                .as_ref()
                .and_then(|p| p.iter().find(|p| p.system == read.system));
            let gate = plan.as_ref().and_then(|p| {
                p.gates.iter().find(|g| {
                    g.system == read.system
                        && matches!(
                            g.gate.as_str(),
                            gates::UNREADABLE_SOURCE
                                | gates::INCOMPLETE_SOURCE
                                | gates::SOURCE_SHRUNK
                        )
                })
            });
            let (health, detail) = if let Some(error) = pulled.and_then(|p| p.error.clone()) {
                ("unreadable".to_string(), Some(error))
            } else if let Some(gate) = gate {
                (gate.gate.clone(), Some(gate.message.clone()))
            } else if read.read_at.is_none() {
                ("never_read".to_string(), None)
            } else {
                ("ok".to_string(), None)
            };
            SystemStatus {
                system: read.system.clone(),
                kind,
                health,
                detail,
                read,
            }
        })
        .collect();
    Ok(OrganisationStatus {
        organisation: organisation.id.clone(),
        readiness: Readiness {
            ready: reasons.is_empty(),
            reasons,
        },
        systems,
        runs: runs.iter().map(run_view).collect(),
        plan: plan.as_ref().map(|p| PlanHeader {
            id: p.id.clone(),
            created_at: p.created_at.clone(),
            operations: p.operations,
            gal: p.gal,
        }),
        gates: plan
            .as_ref()
            .map(|p| {
                p.gates
                    .iter()
                    .map(|g| GateView {
                        gate: g.gate.clone(),
                        system: g.system.clone(),
                        message: g.message.clone(),
                        release: release(g),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        withheld: plan
            .as_ref()
            .map(|p| p.withheld.clone())
            .unwrap_or_default(),
        withheld_operations: plan
            .as_ref()
            .map(|p| p.withheld_operations.clone())
            .unwrap_or_default(),
        conflicts: plan
            .as_ref()
            .map(|p| p.conflicts.clone())
            .unwrap_or_default(),
    })
}

/// Whether `organisation` is ready: its store answers and its last
/// finished run needs nobody. Cheaper than [`organisation_status`].
pub(super) async fn readiness(organisation: &Organisation) -> Readiness {
    let mut reasons = Vec::new();
    match organisation.store.ping().await {
        Err(error) => reasons.push(format!(
            "{}: the store does not answer: {error}",
            organisation.id
        )),
        Ok(()) => match organisation.store.runs(RUNS_SHOWN).await {
            Err(error) => reasons.push(format!(
                "{}: the run history cannot be read: {error}",
                organisation.id
            )),
            Ok(runs) => {
                if let Some(last) = runs.iter().find(|r| r.status != RunStatus::Running) {
                    if let Some(why) = needs_a_person(last.status) {
                        reasons.push(format!(
                            "{}: run {} ({}): {why}",
                            organisation.id, last.id, last.command
                        ));
                    }
                }
            }
        },
    }
    Readiness {
        ready: reasons.is_empty(),
        reasons,
    }
}

fn run_view(run: &RunRecord) -> RunView {
    let summary = run.summary.as_ref();
    let number = |path: &[&str]| -> Option<u64> {
        let mut value = summary?;
        for key in path {
            value = value.get(key)?;
        }
        value.as_u64()
    };
    RunView {
        id: run.id,
        command: run.command.clone(),
        started_at: run.started_at.clone(),
        finished_at: run.finished_at.clone(),
        status: run.status,
        create: number(&["summary", "create"]),
        update: number(&["summary", "update"]),
        delete: number(&["summary", "delete"]),
        done: number(&["done"]),
        failed: number(&["failed"]),
        withheld: number(&["withheld"]),
        conflicts: number(&["summary", "conflicts"]),
        error: summary
            .and_then(|s| s.get("error"))
            .and_then(|e| e.as_str())
            .map(str::to_string),
    }
}

/// Each system's staged counts and last read, counted once per run and
/// read (counting scans every staged row).
async fn system_reads(
    kept: &Reads,
    organisation: &Organisation,
    runs: &[RunRecord],
) -> Result<Vec<SystemRead>, StatusError> {
    let newest: ReadsKey = (
        runs.first().map(|r| (r.id, r.finished_at.clone())),
        organisation.store.last_read_at().await?,
    );
    let systems = organisation.config.system_ids();
    if let Some(reads) = kept.lock().ok().and_then(|reads| {
        reads
            .get(&organisation.id)
            .filter(|(run, reads)| {
                *run == newest
                    && reads.len() == systems.len()
                    && reads.iter().zip(&systems).all(|(r, s)| r.system == *s)
            })
            .map(|(_, reads)| reads.clone())
    }) {
        return Ok(reads);
    }
    let reads = organisation.store.system_reads(&systems).await?;
    if let Ok(mut kept) = kept.lock() {
        kept.insert(organisation.id.clone(), (newest, reads.clone()));
    }
    Ok(reads)
}

/// The plan of the newest run that made one, parsed once per plan.
async fn last_plan(
    plans: &Plans,
    organisation: &Organisation,
    runs: &[RunRecord],
) -> Result<Option<Arc<PlanView>>, StatusError> {
    let Some(id) = runs.iter().find_map(|r| {
        r.summary
            .as_ref()
            .and_then(|s| s.get("plan"))
            .and_then(|p| p.as_str())
            .map(str::to_string)
    }) else {
        return Ok(None);
    };
    if let Some(view) = plans
        .lock()
        .ok()
        .and_then(|plans| plans.get(&organisation.id).cloned())
        .filter(|view| view.id == id)
    {
        return Ok(Some(view));
    }
    let Some(record) = organisation.store.plan(&id).await? else {
        return Ok(None);
    };
    let stored: StoredPlan =
        serde_json::from_str(&record.body).map_err(|source| StatusError::Plan {
            id: id.clone(),
            source,
        })?;
    let mut counts: BTreeMap<(String, &'static str), (Action, u64)> = BTreeMap::new();
    let mut withheld_operations = Vec::new();
    for step in stored.operations.iter().filter(|s| s.withheld) {
        counts
            .entry((step.system.clone(), step.action.as_str()))
            .or_insert((step.action, 0))
            .1 += 1;
        if withheld_operations.len() < WITHHELD_SHOWN {
            withheld_operations.push(WithheldOperation {
                system: step.system.clone(),
                action: step.action,
                address: step.address.clone(),
                reason: step.reason.clone(),
            });
        }
    }
    let view = Arc::new(PlanView {
        id: stored.id,
        created_at: stored.created_at,
        operations: stored.operations.len(),
        gal: stored.summary.gal,
        gates: stored.gates,
        conflicts: stored.conflicts,
        withheld: counts
            .into_iter()
            .map(|((system, _), (action, count))| WithheldCount {
                system,
                action,
                count,
            })
            .collect(),
        withheld_operations,
    });
    if let Ok(mut plans) = plans.lock() {
        plans.insert(organisation.id.clone(), view.clone());
    }
    Ok(Some(view))
}

/// The GAL entries `query` finds in `organisation` (by address prefix
/// through the index, else by any part of the entry: names, addresses,
/// title, department, company), each with its stubs and its routes.
pub(super) async fn search(
    kept: &Kept,
    organisation: &Arc<Organisation>,
    query: &str,
) -> Result<Vec<SearchHit>, StatusError> {
    let query = query.trim().replace(['\n', '\r', '\t'], " ").to_lowercase();
    if query.is_empty() {
        return Ok(Vec::new());
    }
    let store = &organisation.store;
    // An address (or its beginning) through the GAL's index; only when
    // no address begins so, any part of the entries, through the name
    // index of the routing directory (a scan of the GAL while there is
    // none yet).
    let mut entries = store.gal_by_address_prefix(&query, SEARCH_LIMIT).await?;
    let directory = directory(kept, organisation).await?;
    if entries.is_empty() {
        entries = match &directory {
            Some(directory) => {
                let limit = usize::try_from(SEARCH_LIMIT).unwrap_or(usize::MAX);
                store
                    .gal_by_addresses(&directory.names.find(&query, limit))
                    .await?
            }
            None => store.gal_containing(&query, SEARCH_LIMIT).await?,
        };
    }
    let mut origins = vec![Origin::Internet];
    origins.extend(
        organisation
            .config
            .system_ids()
            .into_iter()
            .map(Origin::System),
    );
    Ok(entries
        .into_iter()
        .map(|entry| {
            let Some(directory) = &directory else {
                return SearchHit {
                    entry,
                    stubs: Vec::new(),
                    routes: Vec::new(),
                    routes_pending: true,
                };
            };
            let routes = origins
                .iter()
                .map(|origin| RouteView {
                    from: match origin {
                        Origin::Internet => "internet".to_string(),
                        Origin::System(s) => s.clone(),
                    },
                    trace: trace(
                        &organisation.config.policy,
                        &directory.view,
                        origin,
                        &entry.primary_address,
                    ),
                })
                .collect();
            SearchHit {
                stubs: directory
                    .stubs
                    .get(&entry.anchor)
                    .cloned()
                    .unwrap_or_default(),
                routes,
                entry,
                routes_pending: false,
            }
        })
        .collect())
}

/// The newest run and the last read of `store`: what a routing directory
/// was loaded after.
async fn newest_key(store: &crate::store::Store) -> Result<ReadsKey, StatusError> {
    Ok((
        store
            .runs(1)
            .await?
            .first()
            .map(|r| (r.id, r.finished_at.clone())),
        store.last_read_at().await?,
    ))
}

/// The routing directory of `organisation`: the one kept when no run
/// finished since it was loaded; else a new load is started and awaited
/// at most [`DIRECTORY_WAIT`] (while a load is going, it is not awaited
/// again), after which the previous directory answers, or none (`None`)
/// before the first.
async fn directory(
    kept: &Kept,
    organisation: &Arc<Organisation>,
) -> Result<Option<Arc<RouteDirectory>>, StatusError> {
    kept.forget_idle();
    let newest = newest_key(&organisation.store).await?;
    let current = kept
        .directories
        .lock()
        .ok()
        .and_then(|d| d.get(&organisation.id).and_then(|s| s.current.clone()));
    let fresh = match &current {
        Some(directory) if directory.run == newest => Some(directory.clone()),
        _ => {
            let waited = match kept.start_loading(organisation) {
                // Only the search that starts a load waits for it; the
                // others answer at once from what there is.
                Some((mut loading, true)) => {
                    match tokio::time::timeout(DIRECTORY_WAIT, loading.wait_for(|d| d.is_some()))
                        .await
                    {
                        Ok(Ok(loaded)) => loaded.clone(),
                        _ => None,
                    }
                }
                Some((_, false)) | None => None,
            };
            waited.or(current)
        }
    };
    if let Some(directory) = &fresh {
        if let Ok(mut used) = directory.used.lock() {
            *used = Instant::now();
        }
    }
    Ok(fresh)
}

/// What a routing directory is built from: the run it follows, the
/// staged mail directory, and the GAL's name index.
async fn read_directory(
    organisation: &Organisation,
    store: &crate::store::Store,
) -> Result<(ReadsKey, coexist_model::Staged, NameIndex), StatusError> {
    let run = newest_key(store).await?;
    let staged = store.load_staged(&organisation.config.system_ids()).await?;
    let mut names = NameIndex::default();
    store.gal_each(|entry| names.push(&entry)).await?;
    Ok((run, staged, names))
}

/// Reads `organisation`'s routing directory from its store: the staged
/// mail directory and stubs, and the GAL's name index.
async fn load_directory(organisation: &Organisation) -> Result<RouteDirectory, StatusError> {
    // On a connection of its own, closed after: the page's store holds
    // one connection, which the page's other reads need meanwhile.
    let url = organisation
        .config
        .store_url()
        .map_err(|e| StatusError::Load(e.to_string()))?;
    let store = crate::store::Store::connect(&url).await?;
    let read = read_directory(organisation, &store).await;
    store.close().await;
    let (run, staged, names) = read?;
    // Building the view takes a while for a large GAL: off the workers
    // that answer requests.
    let built = tokio::task::spawn_blocking(move || {
        let mut stubs: HashMap<String, Vec<StubView>> = HashMap::new();
        for system in &staged.systems {
            for found in &system.stubs {
                stubs
                    .entry(found.stub.anchor.clone())
                    .or_default()
                    .push(StubView {
                        system: system.id.clone(),
                        address: found.stub.primary_address.clone(),
                        route: found.stub.route.clone(),
                        locator: found.locator.clone(),
                    });
            }
        }
        (StagedView::new(&staged), stubs)
    })
    .await;
    let (view, stubs) = built.map_err(|e| StatusError::Load(e.to_string()))?;
    Ok(RouteDirectory {
        run,
        view,
        stubs,
        names,
        used: Mutex::new(Instant::now()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use coexist_model::{Attributes, RecipientKind};

    fn entry(address: &str, display_name: &str, department: &str) -> GalEntry {
        GalEntry {
            anchor: format!("ldap:{address}"),
            kind: RecipientKind::Person,
            primary_address: address.into(),
            addresses: vec![address.into(), format!("alias.{address}")],
            home: "ldap".into(),
            attributes: Attributes {
                display_name: Some(display_name.into()),
                department: Some(department.into()),
                ..Attributes::default()
            },
            members: Vec::new(),
            systems: vec!["ldap".into()],
            routing_address: None,
        }
    }

    #[test]
    fn the_name_index_finds_any_part_of_an_entry_in_address_order() {
        let mut names = NameIndex::default();
        names.push(&entry("ann@acme.com", "Ann Ärger", "Sales"));
        names.push(&entry("bob@acme.com", "Bob\nBuilder", "R&D"));
        names.push(&entry("carl@acme.com", "Carl Sales", "Finance"));
        assert_eq!(
            names.find("ärger", 20),
            ["ann@acme.com"],
            "unicode, any case"
        );
        assert_eq!(names.find("sales", 20), ["ann@acme.com", "carl@acme.com"]);
        assert_eq!(
            names.find("sales", 1),
            ["ann@acme.com"],
            "at most the limit"
        );
        assert_eq!(names.find("alias.bob", 20), ["bob@acme.com"], "an alias");
        assert_eq!(names.find("bob builder", 20), ["bob@acme.com"]);
        assert!(names.find("finance\tann", 20).is_empty());
        assert!(
            names.find("r&d\ncarl", 20).is_empty(),
            "never across entries"
        );
        assert!(names.find("nobody", 20).is_empty());
    }
}
