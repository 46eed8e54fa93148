//! `coexist daemon`: runs each organisation's sync on its schedule until
//! stopped.
//!
//! One task per organisation sleeps until its next time (its `[daemon]`
//! schedules, read in its time zone, plus a small random delay), then runs
//! the same engine path `coexist sync` runs, under the store's run lock (a
//! leased row: no second lock). A run that finds the lock held (by an
//! admin's `coexist sync`, or by another daemon serving the same
//! organisation from the same PostgreSQL store) is skipped and counted; a
//! daemon that died is taken over once its lease lapses (at once on the
//! same host).
//!
//! Stopping ([`Daemon::shutdown`], SIGTERM): idle organisations stop at
//! once; a run in flight stops before its next chunk of operations (each
//! chunk done is recorded), is recorded as interrupted and its lock
//! released; a run still going after the stop timeout is abandoned, its
//! lock released (the next run closes it as interrupted and completes its
//! work). Reloading ([`Daemon::reload`], SIGHUP) re-reads every
//! configuration file: an invalid one keeps the organisation's previous
//! configuration, and the log says why.

pub mod schedule;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, info_span, warn, Instrument};

use crate::config::{Config, ConfigError};
use crate::engine::{Engine, EngineError, Quiet, RunOptions, SyncReport};
use crate::store::{Store, StoreError};

/// Why the daemon could not start.
#[derive(Debug, Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot read the configuration folder {path}: {source}")]
    Folder {
        path: String,
        source: std::io::Error,
    },
    #[error("the configuration folder {0} holds no organisation (no *.toml file)")]
    NoOrganisation(String),
    #[error("{file}: organisation.id: every file of a configuration folder needs an [organisation] id (it names the organisation in the logs, the metrics and its PostgreSQL schema)")]
    NoId { file: String },
    #[error("{file}: organisation.id: `{id}` is also the id of {other}; each organisation needs its own")]
    DuplicateId {
        file: String,
        id: String,
        other: String,
    },
    #[error("{file}: daemon.{key}: {what} differs from {other}'s; one daemon has one status endpoint, so every file that sets it must agree")]
    Disagree {
        file: String,
        key: &'static str,
        what: String,
        other: String,
    },
    #[error("organisation {organisation}: {source}")]
    Store {
        organisation: String,
        source: StoreError,
    },
}

/// Where the organisations come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// One configuration file (`--config`).
    File(PathBuf),
    /// Every `*.toml` file of a folder, each with an `[organisation] id`
    /// (`--config-dir`).
    Folder(PathBuf),
}

/// One organisation the daemon serves.
#[derive(Debug, Clone)]
pub struct Organisation {
    /// Its `[organisation] id` (`default` for a single file without one).
    pub id: String,
    /// Its configuration as last read.
    pub config: Arc<Config>,
    /// Its store (on PostgreSQL, its own schema of the shared database).
    pub store: Store,
}

/// What happened to a scheduled run.
#[derive(Debug)]
pub enum RunOutcome {
    /// The run ended, with the exit code `coexist sync` would give.
    Done {
        report: Box<SyncReport>,
        elapsed: Duration,
    },
    /// Another run held the organisation's store: skipped.
    Skipped,
    /// The run could not be made or failed, with the exit code `coexist
    /// sync` would give and why.
    Failed { exit_code: i32, error: String },
}

/// Told of every run and of the organisations served (the status endpoint's
/// metrics; the log says it all anyway).
pub trait Observer: Send + Sync {
    /// A run of `organisation` ended as `outcome`.
    fn run_ended(&self, organisation: &str, outcome: &RunOutcome);
    /// The organisations served changed (at start and after a reload).
    fn organisations(&self, organisations: &[Organisation]);
}

/// An [`Observer`] that does nothing beyond the log.
pub struct LogOnly;

impl Observer for LogOnly {
    fn run_ended(&self, _organisation: &str, _outcome: &RunOutcome) {}
    fn organisations(&self, _organisations: &[Organisation]) {}
}

/// Counts kept for each organisation.
#[derive(Debug, Default)]
pub struct Counts {
    /// Runs that ended (whatever their exit code).
    pub runs: AtomicU64,
    /// Runs skipped because the run lock was held.
    pub skipped: AtomicU64,
    /// Runs that failed before or while syncing.
    pub failed: AtomicU64,
}

/// The loaded organisations, by the file they come from.
type Loaded = BTreeMap<PathBuf, Arc<Config>>;

/// Reads the organisations of `source`, each checked.
pub fn load(source: &Source) -> Result<Loaded, DaemonError> {
    let mut loaded = Loaded::new();
    match source {
        Source::File(path) => {
            loaded.insert(path.clone(), Arc::new(Config::load(path)?));
        }
        Source::Folder(folder) => {
            for path in organisation_files(folder)? {
                let config = Config::load(&path)?;
                if config.organisation_id.is_none() {
                    return Err(DaemonError::NoId {
                        file: path.display().to_string(),
                    });
                }
                loaded.insert(path, Arc::new(config));
            }
            if loaded.is_empty() {
                return Err(DaemonError::NoOrganisation(folder.display().to_string()));
            }
        }
    }
    check_together(&loaded)?;
    Ok(loaded)
}

/// The `*.toml` files of `folder`, sorted.
fn organisation_files(folder: &Path) -> Result<Vec<PathBuf>, DaemonError> {
    let folder_error = |source| DaemonError::Folder {
        path: folder.display().to_string(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(folder).map_err(folder_error)? {
        let path = entry.map_err(folder_error)?.path();
        if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The organisations' ids are distinct, and the files that set the
/// process's own settings (`listen`, `token`) agree.
fn check_together(loaded: &Loaded) -> Result<(), DaemonError> {
    let mut ids: BTreeMap<String, &Path> = BTreeMap::new();
    let mut listen: Option<(std::net::SocketAddr, &Path)> = None;
    let mut token: Option<(&coexist_connector::SecretRef, &Path)> = None;
    for (path, config) in loaded {
        let id = organisation_id(config);
        if let Some(other) = ids.insert(id.clone(), path) {
            return Err(DaemonError::DuplicateId {
                file: path.display().to_string(),
                id,
                other: other.display().to_string(),
            });
        }
        if let Some(address) = config.daemon.listen {
            match listen {
                Some((first, other)) if first != address => {
                    return Err(DaemonError::Disagree {
                        file: path.display().to_string(),
                        key: "listen",
                        what: address.to_string(),
                        other: other.display().to_string(),
                    })
                }
                _ => listen = Some((address, path)),
            }
        }
        if let Some(secret) = &config.daemon.token {
            match token {
                Some((first, other)) if first != secret => {
                    return Err(DaemonError::Disagree {
                        file: path.display().to_string(),
                        key: "token",
                        what: "the token's reference".into(),
                        other: other.display().to_string(),
                    })
                }
                _ => token = Some((secret, path)),
            }
        }
    }
    Ok(())
}

/// The id an organisation is known by: its `[organisation] id`, else
/// `default`.
pub fn organisation_id(config: &Config) -> String {
    config
        .organisation_id
        .clone()
        .unwrap_or_else(|| "default".to_string())
}

/// Where the status endpoint listens and the reference of its token: the
/// first configuration's that sets them (they agree, [`load`] checked).
pub fn endpoint_of(
    configs: &[&Config],
) -> (std::net::SocketAddr, Option<coexist_connector::SecretRef>) {
    let listen = configs
        .iter()
        .find_map(|c| c.daemon.listen)
        .or_else(|| crate::config::DEFAULT_LISTEN.parse().ok())
        .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 9464)));
    let token = configs.iter().find_map(|c| c.daemon.token.clone());
    (listen, token)
}

/// An organisation as its task sees it.
struct Served {
    organisation: Organisation,
}

/// The running daemon.
pub struct Daemon {
    source: Source,
    observer: Arc<dyn Observer>,
    /// Set on shutdown: runs stop before their next chunk.
    stop: Arc<AtomicBool>,
    /// `true` on shutdown: idle organisations stop.
    shutdown: watch::Sender<bool>,
    /// `true` once the stop timeout passed: runs still going are abandoned.
    abandon: watch::Sender<bool>,
    tasks: BTreeMap<String, Task>,
    counts: BTreeMap<String, Arc<Counts>>,
    /// At most this many runs at once (each holds connections to its
    /// store and to its systems, and memory while it plans).
    slots: Arc<tokio::sync::Semaphore>,
}

/// One organisation's task and what it is sent.
struct Task {
    path: PathBuf,
    config: watch::Sender<Arc<Served>>,
    wake: mpsc::Sender<()>,
    handle: JoinHandle<()>,
}

impl Daemon {
    /// Opens (and migrates) every organisation's store of `loaded` and
    /// starts their schedules.
    ///
    /// At most `concurrent_runs` runs go at once (at least one); others
    /// wait for a slot.
    pub async fn start(
        source: Source,
        loaded: Loaded,
        observer: Arc<dyn Observer>,
        concurrent_runs: usize,
    ) -> Result<Daemon, DaemonError> {
        let (shutdown, _) = watch::channel(false);
        let (abandon, _) = watch::channel(false);
        let mut daemon = Daemon {
            source,
            observer,
            stop: Arc::new(AtomicBool::new(false)),
            shutdown,
            abandon,
            tasks: BTreeMap::new(),
            counts: BTreeMap::new(),
            slots: Arc::new(tokio::sync::Semaphore::new(concurrent_runs.max(1))),
        };
        for (path, config) in loaded {
            let organisation = open(config).await?;
            daemon.spawn(path, organisation);
        }
        daemon.observer.organisations(&daemon.organisations());
        Ok(daemon)
    }

    /// The organisations served, in id order.
    pub fn organisations(&self) -> Vec<Organisation> {
        self.tasks
            .values()
            .map(|task| task.config.borrow().organisation.clone())
            .collect()
    }

    /// The counts of organisation `id`.
    pub fn counts(&self, id: &str) -> Option<Arc<Counts>> {
        self.counts.get(id).cloned()
    }

    /// Starts a run of organisation `id` now (unless one is due or going
    /// already); `false` when no such organisation is served.
    pub fn sync_now(&self, id: &str) -> bool {
        match self.tasks.get(id) {
            Some(task) => {
                // A wake-up already waiting is enough.
                let _ = task.wake.try_send(());
                true
            }
            None => false,
        }
    }

    fn spawn(&mut self, path: PathBuf, organisation: Organisation) {
        let id = organisation.id.clone();
        let counts = self.counts.entry(id.clone()).or_default().clone();
        let (config, watched) = watch::channel(Arc::new(Served { organisation }));
        let (wake, woken) = mpsc::channel(1);
        let handle = tokio::spawn(serve(
            watched,
            woken,
            Context {
                observer: self.observer.clone(),
                stop: self.stop.clone(),
                shutdown: self.shutdown.subscribe(),
                abandon: self.abandon.subscribe(),
                counts,
                slots: self.slots.clone(),
            },
        ));
        self.tasks.insert(
            id,
            Task {
                path,
                config,
                wake,
                handle,
            },
        );
    }

    /// Re-reads every configuration file (SIGHUP). An organisation whose
    /// file is invalid keeps its previous configuration (the log says
    /// why); a new valid file starts an organisation, a removed file stops
    /// one (after its run in flight). Returns how many organisations are
    /// served.
    pub async fn reload(&mut self) -> usize {
        let files: Vec<PathBuf> = match &self.source {
            Source::File(path) => vec![path.clone()],
            Source::Folder(folder) => match organisation_files(folder) {
                Ok(files) => files,
                Err(error) => {
                    warn!(%error, "the configuration was not reloaded: the previous one stays");
                    return self.tasks.len();
                }
            },
        };
        let mut seen = Vec::new();
        for path in files {
            let config = match Config::load(&path) {
                Ok(config) => config,
                Err(error) => {
                    warn!(file = %path.display(), %error, "this configuration file is invalid: its organisation keeps its previous configuration (a new file is not served until it is valid)");
                    seen.push(self.id_of_path(&path));
                    continue;
                }
            };
            if matches!(self.source, Source::Folder(_)) && config.organisation_id.is_none() {
                warn!(file = %path.display(), "this configuration file has no [organisation] id: it is not served (an organisation it served keeps its previous configuration)");
                seen.push(self.id_of_path(&path));
                continue;
            }
            let id = organisation_id(&config);
            if let Some(other) = self.tasks.get(&id).filter(|t| t.path != path) {
                warn!(file = %path.display(), %id, other = %other.path.display(), "this organisation id is already served from another file: this file is not served");
                seen.push(self.id_of_path(&path));
                continue;
            }
            // An organisation whose id changed in its file: the old id stops.
            if let Some(old) = self.id_of_path(&path).filter(|old| *old != id) {
                self.remove(&old);
            }
            seen.push(Some(id.clone()));
            let config = Arc::new(config);
            match self.tasks.get(&id) {
                Some(task) => {
                    let previous = task.config.borrow().organisation.clone();
                    let store = if previous.config.store_url().ok() == config.store_url().ok() {
                        Ok(previous.store.clone())
                    } else {
                        open(config.clone()).await.map(|o| o.store)
                    };
                    match store {
                        Ok(store) => {
                            let served = Served {
                                organisation: Organisation {
                                    id: id.clone(),
                                    config,
                                    store,
                                },
                            };
                            let _ = task.config.send(Arc::new(served));
                            info!(organisation = %id, "configuration reloaded");
                        }
                        Err(error) => {
                            warn!(organisation = %id, %error, "the new store cannot be opened: the organisation keeps its previous configuration");
                        }
                    }
                }
                None => match open(config).await {
                    Ok(organisation) => {
                        info!(organisation = %id, file = %path.display(), "a new organisation is served");
                        self.spawn(path, organisation);
                    }
                    Err(error) => {
                        warn!(organisation = %id, %error, "the new organisation's store cannot be opened: it is not served");
                    }
                },
            }
        }
        let gone: Vec<String> = self
            .tasks
            .keys()
            .filter(|id| !seen.iter().any(|s| s.as_deref() == Some(id.as_str())))
            .cloned()
            .collect();
        for id in gone {
            info!(organisation = %id, "its configuration file is gone: the organisation is no longer served (after its run in flight)");
            self.remove(&id);
        }
        self.observer.organisations(&self.organisations());
        self.tasks.len()
    }

    /// The id served from `path`, if any.
    fn id_of_path(&self, path: &Path) -> Option<String> {
        self.tasks
            .iter()
            .find(|(_, task)| task.path == path)
            .map(|(id, _)| id.clone())
    }

    /// Stops serving organisation `id`: dropping its sender ends its task
    /// after the run in flight.
    fn remove(&mut self, id: &str) {
        if let Some(task) = self.tasks.remove(id) {
            drop(task.config);
            // The task ends by itself; nobody waits for it.
            drop(task.handle);
        }
    }

    /// Stops: idle organisations at once; runs in flight before their next
    /// chunk of operations, each recorded and its lock released; runs
    /// still going after `timeout` are abandoned (their locks released;
    /// the next run closes them as interrupted and completes their work).
    pub async fn shutdown(self, timeout: Duration) {
        info!(
            timeout_seconds = timeout.as_secs(),
            "stopping: runs in flight stop before their next changes"
        );
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.shutdown.send(true);
        let handles: Vec<JoinHandle<()>> = self.tasks.into_values().map(|t| t.handle).collect();
        let all = futures::future::join_all(handles);
        tokio::pin!(all);
        if tokio::time::timeout(timeout, &mut all).await.is_err() {
            warn!(
                timeout_seconds = timeout.as_secs(),
                "runs still going after the stop timeout are abandoned; their locks are released and the next run completes their work"
            );
            let _ = self.abandon.send(true);
            let _ = tokio::time::timeout(Duration::from_secs(10), all).await;
        }
        info!("stopped");
    }
}

/// Opens and migrates the store of `config`: the one the daemon keeps open
/// for the status endpoints, with one connection (runs open their own).
async fn open(config: Arc<Config>) -> Result<Organisation, DaemonError> {
    let id = organisation_id(&config);
    let url = config.store_url()?;
    let store = Store::open_with_connections(&url, 1)
        .await
        .map_err(|source| DaemonError::Store {
            organisation: id.clone(),
            source,
        })?;
    Ok(Organisation { id, config, store })
}

/// What an organisation's task shares with the daemon.
#[derive(Clone)]
struct Context {
    observer: Arc<dyn Observer>,
    stop: Arc<AtomicBool>,
    shutdown: watch::Receiver<bool>,
    abandon: watch::Receiver<bool>,
    counts: Arc<Counts>,
    slots: Arc<tokio::sync::Semaphore>,
}

/// One organisation's task: sleeps until the next time of its schedule (or
/// a request to sync now), runs, and again, until the daemon stops or the
/// organisation is no longer served.
async fn serve(
    mut watched: watch::Receiver<Arc<Served>>,
    mut woken: mpsc::Receiver<()>,
    mut context: Context,
) {
    loop {
        let served = watched.borrow_and_update().clone();
        let organisation = &served.organisation;
        let timing = &organisation.config.daemon.timing;
        let now = chrono::Utc::now();
        let Some(next) = timing.next_after(now) else {
            warn!(organisation = %organisation.id, "its schedules never fire again: no more runs until the configuration changes");
            tokio::select! {
                changed = watched.changed() => if changed.is_err() { return } else { continue },
                _ = context.shutdown.wait_for(|stop| *stop) => return,
            }
        };
        let wait = (next.at - now).to_std().unwrap_or_default() + timing.delay();
        let full_read = tokio::select! {
            _ = tokio::time::sleep(wait) => next.full_read,
            Some(()) = woken.recv() => false,
            changed = watched.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
            _ = context.shutdown.wait_for(|stop| *stop) => return,
        };
        // Wait for a slot among the runs going at once (or stop).
        let slots = context.slots.clone();
        let slot = tokio::select! {
            slot = slots.acquire_owned() => slot,
            _ = context.shutdown.wait_for(|stop| *stop) => return,
        };
        if *context.shutdown.borrow() {
            return;
        }
        run_on_its_own_thread(organisation.clone(), full_read, context.clone()).await;
        drop(slot);
    }
}

/// Runs `organisation` once on a thread of its own, with a runtime and a
/// store connection of its own, and tells the observer there: everything
/// the run allocates is allocated and freed on that thread, so its memory
/// goes back to the system when the thread ends (the allocator keeps freed
/// memory in the heap of the thread that allocated it, and an idle worker
/// thread of the daemon's runtime would keep it between runs).
async fn run_on_its_own_thread(organisation: Organisation, full_read: bool, mut context: Context) {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let id = organisation.id.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("run-{id}"))
        .spawn(move || {
            let outcome = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(async {
                    let opened = match organisation.config.store_url() {
                        Ok(url) => Store::open(&url).await.map_err(|e| e.to_string()),
                        Err(error) => Err(error.to_string()),
                    };
                    match opened {
                        Ok(store) => {
                            let organisation = Organisation {
                                store: store.clone(),
                                ..organisation.clone()
                            };
                            let outcome = run(&organisation, full_read, &mut context).await;
                            store.close().await;
                            outcome
                        }
                        Err(error) => {
                            context.counts.failed.fetch_add(1, Ordering::Relaxed);
                            warn!(organisation = %organisation.id, %error, "the run cannot start: the store cannot be opened");
                            RunOutcome::Failed {
                                exit_code: crate::exit::FAILURE,
                                error,
                            }
                        }
                    }
                }),
                Err(error) => {
                    context.counts.failed.fetch_add(1, Ordering::Relaxed);
                    warn!(organisation = %organisation.id, %error, "the run cannot start: no runtime for it");
                    RunOutcome::Failed {
                        exit_code: crate::exit::FAILURE,
                        error: error.to_string(),
                    }
                }
            };
            context.counts.runs.fetch_add(
                u64::from(matches!(outcome, RunOutcome::Done { .. })),
                Ordering::Relaxed,
            );
            context.observer.run_ended(&organisation.id, &outcome);
            let _ = sender.send(());
        });
    match spawned {
        Ok(_) => {
            // The thread ends the run whatever happens; an error here is
            // only that it ended without saying so.
            let _ = receiver.await;
        }
        Err(error) => {
            warn!(organisation = %id, %error, "the run cannot start: no thread for it");
        }
    }
}

/// One run of `organisation`: the engine path of `coexist sync`, under the
/// store's run lock.
async fn run(organisation: &Organisation, full_read: bool, context: &mut Context) -> RunOutcome {
    let span = info_span!("organisation", id = %organisation.id, full_read);
    async {
        let config = &organisation.config;
        let connectors = match crate::connectors::connect_all(config) {
            Ok(connectors) => connectors,
            Err(error) => {
                context.counts.failed.fetch_add(1, Ordering::Relaxed);
                warn!(%error, "the run cannot start: a system's connection settings are wrong");
                return RunOutcome::Failed {
                    exit_code: crate::exit::USAGE,
                    error: error.to_string(),
                };
            }
        };
        let engine = Engine::new(
            (**config).clone(),
            organisation.store.clone(),
            connectors,
            Arc::new(Quiet),
        )
        .with_stop(context.stop.clone())
        .with_lease(config.daemon.lock_lease);
        let lock = match engine.lock("daemon").await {
            Ok(lock) => lock,
            Err(EngineError::Busy { holder }) => {
                context.counts.skipped.fetch_add(1, Ordering::Relaxed);
                info!(
                    holder_command = %holder.command,
                    holder_pid = holder.pid,
                    holder_host = %holder.host,
                    "skipped: another run holds this organisation's store"
                );
                return RunOutcome::Skipped;
            }
            Err(error) => {
                context.counts.failed.fetch_add(1, Ordering::Relaxed);
                warn!(%error, "the run lock could not be taken");
                return RunOutcome::Failed {
                    exit_code: crate::exit::FAILURE,
                    error: error.to_string(),
                };
            }
        };
        let options = RunOptions {
            allow_deletes: false,
            actor: "coexist daemon".to_string(),
            full_read,
            accept_shrink: Vec::new(),
        };
        let started = Instant::now();
        info!("run starts");
        let result = tokio::select! {
            result = engine.sync(&options) => Some(result),
            _ = context.abandon.wait_for(|abandon| *abandon) => None,
        };
        lock.release().await;
        let elapsed = started.elapsed();
        match result {
            Some(Ok(report)) => {
                let exit_code = report.exit_code();
                info!(
                    run = report.run,
                    exit_code,
                    elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
                    done = report.apply.done,
                    failed = report.apply.failed,
                    withheld = report.apply.withheld,
                    conflicts = report.plan.conflicts.len(),
                    "run ended"
                );
                RunOutcome::Done {
                    report: Box::new(report),
                    elapsed,
                }
            }
            Some(Err(error)) => {
                context.counts.failed.fetch_add(1, Ordering::Relaxed);
                let exit_code = match error {
                    EngineError::LockLost | EngineError::Busy { .. } => crate::exit::BUSY,
                    _ => crate::exit::FAILURE,
                };
                warn!(%error, exit_code, "run failed");
                RunOutcome::Failed {
                    exit_code,
                    error: error.to_string(),
                }
            }
            None => {
                context.counts.failed.fetch_add(1, Ordering::Relaxed);
                warn!("run abandoned at the stop timeout; the next run completes its work");
                RunOutcome::Failed {
                    exit_code: crate::exit::FAILURE,
                    error: "abandoned at the stop timeout".into(),
                }
            }
        }
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn organisation(id: Option<&str>, daemon: &str) -> String {
        let id = id.map(|id| format!("id = \"{id}\"\n")).unwrap_or_default();
        format!(
            "[organisation]\n{id}shared_domains = [\"acmecorp.com\"]\n\n[[systems]]\nid = \"ldap\"\nkind = \"simulated\"\nrouting_domain = \"mithi.acmecorp.com\"\n{daemon}"
        )
    }

    fn folder(files: &[(&str, String)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    fn load_folder(dir: &tempfile::TempDir) -> Result<Loaded, String> {
        load(&Source::Folder(dir.path().to_path_buf())).map_err(|e| e.to_string())
    }

    #[test]
    fn a_folder_serves_each_toml_file_by_its_id() {
        let dir = folder(&[
            ("b.toml", organisation(Some("beta"), "")),
            ("a.toml", organisation(Some("alpha"), "")),
            ("notes.txt", "not an organisation".into()),
        ]);
        let loaded = load_folder(&dir).unwrap();
        let ids: Vec<String> = loaded.values().map(|c| organisation_id(c)).collect();
        assert_eq!(ids, ["alpha", "beta"]);
    }

    #[test]
    fn every_file_of_a_folder_needs_its_own_id() {
        let dir = folder(&[("a.toml", organisation(None, ""))]);
        let error = load_folder(&dir).unwrap_err();
        assert!(error.ends_with("a.toml: organisation.id: every file of a configuration folder needs an [organisation] id (it names the organisation in the logs, the metrics and its PostgreSQL schema)"), "{error}");
        let dir = folder(&[
            ("a.toml", organisation(Some("acme"), "")),
            ("b.toml", organisation(Some("acme"), "")),
        ]);
        let error = load_folder(&dir).unwrap_err();
        assert!(
            error.contains("b.toml: organisation.id: `acme` is also the id of"),
            "{error}"
        );
        let dir = folder(&[]);
        assert!(load_folder(&dir)
            .unwrap_err()
            .contains("holds no organisation"));
    }

    #[test]
    fn the_files_setting_the_endpoint_agree() {
        let dir = folder(&[
            (
                "a.toml",
                organisation(Some("alpha"), "[daemon]\nlisten = \"127.0.0.1:9000\"\n"),
            ),
            ("b.toml", organisation(Some("beta"), "")),
        ]);
        let loaded = load_folder(&dir).unwrap();
        let configs: Vec<&Config> = loaded.values().map(|c| c.as_ref()).collect();
        assert_eq!(endpoint_of(&configs).0, "127.0.0.1:9000".parse().unwrap());
        let dir = folder(&[
            (
                "a.toml",
                organisation(Some("alpha"), "[daemon]\nlisten = \"127.0.0.1:9000\"\n"),
            ),
            (
                "b.toml",
                organisation(Some("beta"), "[daemon]\nlisten = \"127.0.0.1:9001\"\n"),
            ),
        ]);
        let error = load_folder(&dir).unwrap_err();
        assert!(
            error.contains("b.toml: daemon.listen: 127.0.0.1:9001 differs from"),
            "{error}"
        );
        // Without any: the default, loopback.
        let dir = folder(&[("a.toml", organisation(Some("alpha"), ""))]);
        let loaded = load_folder(&dir).unwrap();
        let configs: Vec<&Config> = loaded.values().map(|c| c.as_ref()).collect();
        assert_eq!(
            endpoint_of(&configs),
            ("127.0.0.1:9464".parse().unwrap(), None)
        );
    }
}
