//! The staging store: persists, decides nothing.
//!
//! SQLite (a file created on first use) by default, PostgreSQL by URL, both
//! through sqlx's `Any` driver with one migration folder per database. The
//! store keeps the staged objects of each system, pull cursors, what each
//! system's connector skipped at its last read, the GAL, placements, plans
//! with the journal of their operations, run history and the audit log. Bodies are JSON documents of the connector contract's
//! types.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use serde::Serialize;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use thiserror::Error;

use coexist_connector::{FoundStub, Problem, Pull, PullMode, Recipient};

use crate::plan::Action;
use crate::reconcile::{GalEntry, Staged, StagedSystem};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// Rows written per INSERT statement when staging in bulk.
const ROWS_PER_STATEMENT: usize = 400;

/// A failure of the store.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("the store URL `{0}` is not sqlite:… or postgres://…")]
    UnsupportedUrl(String),
    #[error("cannot open the store at {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error("cannot migrate the store: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the store failed while {doing}: {source}")]
    Query {
        doing: &'static str,
        source: sqlx::Error,
    },
    #[error("the run lock changes hands too fast to take; try again")]
    Busy,
    #[error("the store holds an unreadable {what}: {source}")]
    Corrupt {
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("the store holds an unknown {what} `{value}`")]
    Unknown { what: &'static str, value: String },
    #[error("cannot encode {what} for the store: {source}")]
    Encode {
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("cannot create the folder {path} for the SQLite store: {source}")]
    CreateFolder {
        path: String,
        source: std::io::Error,
    },
    #[error("refusing to record a {what} of {system} without an object id{}", address.as_ref().map(|a| format!(" ({a})")).unwrap_or_default())]
    NoId {
        what: &'static str,
        system: String,
        address: Option<String>,
    },
}

type Result<T> = std::result::Result<T, StoreError>;

fn query_err(doing: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { doing, source }
}

/// Who holds the run lock: one process of one host, since when, and until
/// when its lease runs unless renewed (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockHolder {
    pub pid: i64,
    pub host: String,
    pub command: String,
    pub since: String,
    pub expires_at: i64,
}

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// How a pull changed a system's staged objects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StageReport {
    pub added: u64,
    pub changed: u64,
    pub unchanged: u64,
    pub removed: u64,
}

/// Where a system's next pull resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorRecord {
    pub cursor: Option<String>,
    /// How many recipients the system held after its last good pull.
    pub recipients: i64,
}

/// The state of one journalled operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JournalState {
    Started,
    Done,
    Failed,
    Withheld,
}

impl JournalState {
    fn as_str(self) -> &'static str {
        match self {
            JournalState::Started => "started",
            JournalState::Done => "done",
            JournalState::Failed => "failed",
            JournalState::Withheld => "withheld",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "started" => Ok(JournalState::Started),
            "done" => Ok(JournalState::Done),
            "failed" => Ok(JournalState::Failed),
            "withheld" => Ok(JournalState::Withheld),
            _ => Err(StoreError::Unknown {
                what: "journal state",
                value: s.to_string(),
            }),
        }
    }
}

/// One row of the run history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunRecord {
    pub id: i64,
    pub command: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub status: String,
    pub summary: Option<serde_json::Value>,
}

/// One row of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    pub at: String,
    pub run_id: Option<i64>,
    pub actor: String,
    pub system: String,
    pub action: Action,
    pub address: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

/// A stored plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRecord {
    pub id: String,
    pub fingerprint: String,
    pub status: String,
    pub body: String,
}

/// The staging store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

/// The current time, RFC 3339.
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl Store {
    /// Opens (creating an SQLite file if needed) and migrates the store at `url`.
    pub async fn open(url: &str) -> Result<Store> {
        let store = Self::connect(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Opens the store without migrating it.
    pub async fn connect(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let (backend, url) = normalise_url(url)?;
        let mut options = AnyPoolOptions::new();
        if backend == Backend::Sqlite {
            // One writer at a time; WAL keeps readers out of its way.
            options = options.max_connections(1).after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::query("PRAGMA journal_mode=WAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA synchronous=NORMAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA busy_timeout=10000")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            });
        } else {
            options = options.max_connections(4);
        }
        let pool = options
            .connect(&url)
            .await
            .map_err(|source| StoreError::Open {
                url: redact(&url),
                source,
            })?;
        Ok(Store { pool, backend })
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<()> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    async fn next_revision(&self, tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<i64> {
        let row =
            sqlx::query("UPDATE meta SET value = value + 1 WHERE key = 'revision' RETURNING value")
                .fetch_one(&mut **tx)
                .await
                .map_err(query_err("taking a revision"))?;
        row.try_get::<i64, _>(0)
            .map_err(query_err("taking a revision"))
    }

    /// Stages a pull of `system`. A full pull replaces the system's objects
    /// (removing what it does not list), a delta upserts and removes what
    /// it names; with `keep_missing` (an incomplete read) either only
    /// upserts and removes nothing. Only rows whose body changed are
    /// written. An object without an id is refused.
    pub async fn stage_pull(
        &self,
        system: &str,
        pull: &Pull,
        keep_missing: bool,
    ) -> Result<StageReport> {
        let mut existing: HashMap<String, String> = HashMap::new();
        {
            let rows =
                sqlx::query("SELECT object_id, body FROM staged_objects WHERE system_id = $1")
                    .bind(system)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(query_err("reading staged objects"))?;
            for row in rows {
                let id: String = row
                    .try_get(0)
                    .map_err(query_err("reading staged objects"))?;
                let body: String = row
                    .try_get(1)
                    .map_err(query_err("reading staged objects"))?;
                existing.insert(id, body);
            }
        }

        let mut incoming: Vec<(String, &'static str, String)> =
            Vec::with_capacity(pull.recipients.len() + pull.stubs.len());
        for recipient in &pull.recipients {
            if recipient.anchor.is_empty() {
                return Err(StoreError::NoId {
                    what: "recipient",
                    system: system.to_string(),
                    address: Some(recipient.primary_address.clone()),
                });
            }
            let body = serde_json::to_string(recipient).map_err(|source| StoreError::Encode {
                what: "recipient",
                source,
            })?;
            incoming.push((recipient.anchor.clone(), "recipient", body));
        }
        for stub in &pull.stubs {
            if stub.id.is_empty() {
                return Err(StoreError::NoId {
                    what: "stub",
                    system: system.to_string(),
                    address: Some(stub.stub.primary_address.clone()),
                });
            }
            let body = serde_json::to_string(stub).map_err(|source| StoreError::Encode {
                what: "stub",
                source,
            })?;
            incoming.push((stub.id.clone(), "stub", body));
        }

        let mut report = StageReport::default();
        let mut writes = Vec::new();
        let mut seen = std::collections::HashSet::with_capacity(incoming.len());
        for (id, class, body) in incoming {
            seen.insert(id.clone());
            match existing.get(&id) {
                Some(old) if *old == body => report.unchanged += 1,
                Some(_) => {
                    report.changed += 1;
                    writes.push((id, class, body));
                }
                None => {
                    report.added += 1;
                    writes.push((id, class, body));
                }
            }
        }
        let removals: Vec<String> = match pull.mode {
            // An incomplete read, full or delta, removes nothing.
            _ if keep_missing => Vec::new(),
            PullMode::Full => existing
                .keys()
                .filter(|id| !seen.contains(*id))
                .cloned()
                .collect(),
            PullMode::Delta => pull
                .removed
                .iter()
                .filter(|id| existing.contains_key(*id))
                .cloned()
                .collect(),
        };
        report.removed = removals.len() as u64;
        if writes.is_empty() && removals.is_empty() {
            return Ok(report);
        }

        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query_err("staging a pull"))?;
        let revision = self.next_revision(&mut tx).await?;
        for chunk in writes.chunks(ROWS_PER_STATEMENT) {
            let mut sql = String::from(
                "INSERT INTO staged_objects (system_id, object_id, class, body, revision) VALUES ",
            );
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push(',');
                }
                let b = i * 5;
                sql.push_str(&format!(
                    "(${},${},${},${},${})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5
                ));
            }
            sql.push_str(" ON CONFLICT (system_id, object_id) DO UPDATE SET class = excluded.class, body = excluded.body, revision = excluded.revision");
            let mut query = sqlx::query(&sql);
            for (id, class, body) in chunk {
                query = query
                    .bind(system)
                    .bind(id.as_str())
                    .bind(*class)
                    .bind(body.as_str())
                    .bind(revision);
            }
            query
                .execute(&mut *tx)
                .await
                .map_err(query_err("staging a pull"))?;
        }
        for chunk in removals.chunks(ROWS_PER_STATEMENT) {
            let placeholders: Vec<String> =
                (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "DELETE FROM staged_objects WHERE system_id = $1 AND object_id IN ({})",
                placeholders.join(",")
            );
            let mut query = sqlx::query(&sql).bind(system);
            for id in chunk {
                query = query.bind(id.as_str());
            }
            query
                .execute(&mut *tx)
                .await
                .map_err(query_err("staging a pull"))?;
        }
        tx.commit().await.map_err(query_err("staging a pull"))?;
        Ok(report)
    }

    /// Records a stub written by an apply. A stub without an object id is
    /// refused: it could never be found, updated or deleted again.
    pub async fn put_stub(&self, system: &str, stub: &FoundStub) -> Result<()> {
        if stub.id.trim().is_empty() {
            return Err(StoreError::NoId {
                what: "stub",
                system: system.to_string(),
                address: Some(stub.stub.primary_address.clone()),
            });
        }
        let body = serde_json::to_string(stub).map_err(|source| StoreError::Encode {
            what: "stub",
            source,
        })?;
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query_err("recording a stub"))?;
        let revision = self.next_revision(&mut tx).await?;
        sqlx::query(
            "INSERT INTO staged_objects (system_id, object_id, class, body, revision) VALUES ($1, $2, 'stub', $3, $4) \
             ON CONFLICT (system_id, object_id) DO UPDATE SET class = excluded.class, body = excluded.body, revision = excluded.revision",
        )
        .bind(system)
        .bind(stub.id.as_str())
        .bind(body)
        .bind(revision)
        .execute(&mut *tx)
        .await
        .map_err(query_err("recording a stub"))?;
        tx.commit().await.map_err(query_err("recording a stub"))
    }

    /// Forgets a stub removed by an apply.
    pub async fn remove_stub(&self, system: &str, id: &str) -> Result<()> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query_err("removing a stub"))?;
        self.next_revision(&mut tx).await?;
        sqlx::query(
            "DELETE FROM staged_objects WHERE system_id = $1 AND object_id = $2 AND class = 'stub'",
        )
        .bind(system)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(query_err("removing a stub"))?;
        tx.commit().await.map_err(query_err("removing a stub"))
    }

    /// Loads everything staged for `systems` (in that order) and the
    /// placements. Rows are streamed and decoded one at a time, so the raw
    /// rows never sit in memory beside the decoded objects.
    pub async fn load_staged(&self, systems: &[String]) -> Result<Staged> {
        use futures::TryStreamExt;
        let mut by_system: BTreeMap<String, StagedSystem> = systems
            .iter()
            .map(|id| {
                (
                    id.clone(),
                    StagedSystem {
                        id: id.clone(),
                        ..StagedSystem::default()
                    },
                )
            })
            .collect();
        {
            let mut rows =
                sqlx::query("SELECT system_id, class, body FROM staged_objects").fetch(&self.pool);
            while let Some(row) = rows
                .try_next()
                .await
                .map_err(query_err("loading staged objects"))?
            {
                let row: AnyRow = row;
                let system: &str = row
                    .try_get(0)
                    .map_err(query_err("loading staged objects"))?;
                let Some(staged) = by_system.get_mut(system) else {
                    continue;
                };
                let class: &str = row
                    .try_get(1)
                    .map_err(query_err("loading staged objects"))?;
                let body: &str = row
                    .try_get(2)
                    .map_err(query_err("loading staged objects"))?;
                if class == "stub" {
                    let stub: FoundStub =
                        serde_json::from_str(body).map_err(|source| StoreError::Corrupt {
                            what: "stub",
                            source,
                        })?;
                    staged.stubs.push(stub);
                } else {
                    let recipient: Recipient =
                        serde_json::from_str(body).map_err(|source| StoreError::Corrupt {
                            what: "recipient",
                            source,
                        })?;
                    staged.recipients.push(recipient);
                }
            }
        }
        let placements = self.placements().await?;
        let systems = systems
            .iter()
            .filter_map(|id| by_system.remove(id))
            .collect();
        Ok(Staged {
            systems,
            placements,
        })
    }

    /// A digest of everything the reconciler reads: it changes whenever a
    /// staged object or placement does. A saved plan records it; applying a
    /// plan whose fingerprint no longer matches is refused.
    pub async fn fingerprint(&self) -> Result<String> {
        let rows = sqlx::query(
            "SELECT system_id, COUNT(*), COALESCE(MAX(revision), 0) FROM staged_objects GROUP BY system_id ORDER BY system_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("computing the fingerprint"))?;
        let mut parts = Vec::new();
        for row in rows {
            let system: String = row
                .try_get(0)
                .map_err(query_err("computing the fingerprint"))?;
            let count: i64 = row
                .try_get(1)
                .map_err(query_err("computing the fingerprint"))?;
            let revision: i64 = row
                .try_get(2)
                .map_err(query_err("computing the fingerprint"))?;
            parts.push(format!("{system}:{count}:{revision}"));
        }
        let row = sqlx::query("SELECT COUNT(*), COALESCE(MAX(revision), 0) FROM placements")
            .fetch_one(&self.pool)
            .await
            .map_err(query_err("computing the fingerprint"))?;
        let count: i64 = row
            .try_get(0)
            .map_err(query_err("computing the fingerprint"))?;
        let revision: i64 = row
            .try_get(1)
            .map_err(query_err("computing the fingerprint"))?;
        parts.push(format!("placements:{count}:{revision}"));
        use sha2::Digest;
        Ok(hex::encode(
            &sha2::Sha256::digest(parts.join("|").as_bytes())[..12],
        ))
    }

    /// The cursor of `system`, if it was pulled before.
    pub async fn cursor(&self, system: &str) -> Result<Option<CursorRecord>> {
        let row = sqlx::query("SELECT cursor, recipients FROM cursors WHERE system_id = $1")
            .bind(system)
            .fetch_optional(&self.pool)
            .await
            .map_err(query_err("reading a cursor"))?;
        row.map(|row| {
            Ok(CursorRecord {
                cursor: row.try_get(0).map_err(query_err("reading a cursor"))?,
                recipients: row.try_get(1).map_err(query_err("reading a cursor"))?,
            })
        })
        .transpose()
    }

    /// Records where `system`'s next pull resumes and how many recipients it held.
    pub async fn set_cursor(
        &self,
        system: &str,
        cursor: Option<&str>,
        recipients: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO cursors (system_id, cursor, recipients, pulled_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (system_id) DO UPDATE SET cursor = excluded.cursor, recipients = excluded.recipients, pulled_at = excluded.pulled_at",
        )
        .bind(system)
        .bind(cursor)
        .bind(recipients)
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(query_err("recording a cursor"))?;
        Ok(())
    }

    /// How many recipients `system` has staged.
    pub async fn staged_recipients(&self, system: &str) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM staged_objects WHERE system_id = $1 AND class = 'recipient'",
        )
        .bind(system)
        .fetch_one(&self.pool)
        .await
        .map_err(query_err("counting recipients"))?;
        row.try_get(0).map_err(query_err("counting recipients"))
    }

    /// The object ids of the recipients staged for `system`.
    pub async fn staged_recipient_ids(
        &self,
        system: &str,
    ) -> Result<std::collections::HashSet<String>> {
        let rows = sqlx::query(
            "SELECT object_id FROM staged_objects WHERE system_id = $1 AND class = 'recipient'",
        )
        .bind(system)
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("reading recipient ids"))?;
        rows.into_iter()
            .map(|row| row.try_get(0).map_err(query_err("reading recipient ids")))
            .collect()
    }

    /// The object id and marker anchor of every stub staged for `system`
    /// (the anchor says which system the stub's recipient is homed on).
    pub async fn stub_anchors(&self, system: &str) -> Result<Vec<(String, String)>> {
        #[derive(serde::Deserialize)]
        struct Marked {
            stub: Anchor,
        }
        #[derive(serde::Deserialize)]
        struct Anchor {
            anchor: String,
        }
        let rows = sqlx::query(
            "SELECT object_id, body FROM staged_objects WHERE system_id = $1 AND class = 'stub'",
        )
        .bind(system)
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("reading stub anchors"))?;
        rows.into_iter()
            .map(|row| {
                let id: String = row.try_get(0).map_err(query_err("reading stub anchors"))?;
                let body: String = row.try_get(1).map_err(query_err("reading stub anchors"))?;
                let marked: Marked =
                    serde_json::from_str(&body).map_err(|source| StoreError::Corrupt {
                        what: "stub",
                        source,
                    })?;
                Ok((id, marked.stub.anchor))
            })
            .collect()
    }

    /// Records what the connector of `system` skipped at its last read.
    /// With `replace` (a full read) they replace what was recorded; else (a
    /// delta, which reads only what changed) they are added to it, and a
    /// full read clears what was fixed since.
    pub async fn record_problems(
        &self,
        system: &str,
        problems: &[Problem],
        replace: bool,
    ) -> Result<()> {
        let mut all = if replace {
            Vec::new()
        } else {
            self.problems_of(system).await?
        };
        for problem in problems {
            if !all.contains(problem) {
                all.push(problem.clone());
            }
        }
        let body = serde_json::to_string(&all).map_err(|source| StoreError::Encode {
            what: "the problems of a read",
            source,
        })?;
        sqlx::query(
            "INSERT INTO pull_problems (system_id, body, recorded_at) VALUES ($1, $2, $3) \
             ON CONFLICT (system_id) DO UPDATE SET body = excluded.body, recorded_at = excluded.recorded_at",
        )
        .bind(system)
        .bind(body)
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(query_err("recording the problems of a read"))?;
        Ok(())
    }

    /// What the connector of `system` skipped, as last recorded.
    pub async fn problems_of(&self, system: &str) -> Result<Vec<Problem>> {
        let row = sqlx::query("SELECT body FROM pull_problems WHERE system_id = $1")
            .bind(system)
            .fetch_optional(&self.pool)
            .await
            .map_err(query_err("reading the problems of a read"))?;
        match row {
            None => Ok(Vec::new()),
            Some(row) => {
                let body: String = row
                    .try_get(0)
                    .map_err(query_err("reading the problems of a read"))?;
                serde_json::from_str(&body).map_err(|source| StoreError::Corrupt {
                    what: "list of problems",
                    source,
                })
            }
        }
    }

    /// Replaces the stored GAL with `gal`, writing only the entries that changed.
    pub async fn save_gal(&self, gal: &[GalEntry]) -> Result<u64> {
        let rows = sqlx::query("SELECT anchor, body FROM gal")
            .fetch_all(&self.pool)
            .await
            .map_err(query_err("reading the GAL"))?;
        let mut existing: HashMap<String, String> = HashMap::with_capacity(rows.len());
        for row in rows {
            existing.insert(
                row.try_get(0).map_err(query_err("reading the GAL"))?,
                row.try_get(1).map_err(query_err("reading the GAL"))?,
            );
        }
        let mut writes = Vec::new();
        for entry in gal {
            let body = serde_json::to_string(entry).map_err(|source| StoreError::Encode {
                what: "GAL entry",
                source,
            })?;
            if existing.remove(&entry.anchor).as_deref() != Some(body.as_str()) {
                writes.push((entry, body));
            }
        }
        let changed = (writes.len() + existing.len()) as u64;
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query_err("saving the GAL"))?;
        for chunk in writes.chunks(ROWS_PER_STATEMENT) {
            let mut sql =
                String::from("INSERT INTO gal (anchor, primary_address, home, body) VALUES ");
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push(',');
                }
                let b = i * 4;
                sql.push_str(&format!("(${},${},${},${})", b + 1, b + 2, b + 3, b + 4));
            }
            sql.push_str(" ON CONFLICT (anchor) DO UPDATE SET primary_address = excluded.primary_address, home = excluded.home, body = excluded.body");
            let mut query = sqlx::query(&sql);
            for (entry, body) in chunk {
                query = query
                    .bind(entry.anchor.as_str())
                    .bind(entry.primary_address.as_str())
                    .bind(entry.home.as_str())
                    .bind(body.as_str());
            }
            query
                .execute(&mut *tx)
                .await
                .map_err(query_err("saving the GAL"))?;
        }
        for anchor in existing.keys() {
            sqlx::query("DELETE FROM gal WHERE anchor = $1")
                .bind(anchor.as_str())
                .execute(&mut *tx)
                .await
                .map_err(query_err("saving the GAL"))?;
        }
        tx.commit().await.map_err(query_err("saving the GAL"))?;
        Ok(changed)
    }

    /// The stored GAL, sorted by primary address.
    pub async fn load_gal(&self) -> Result<Vec<GalEntry>> {
        let rows = sqlx::query("SELECT body FROM gal ORDER BY primary_address")
            .fetch_all(&self.pool)
            .await
            .map_err(query_err("reading the GAL"))?;
        rows.into_iter()
            .map(|row| {
                let body: String = row.try_get(0).map_err(query_err("reading the GAL"))?;
                serde_json::from_str(&body).map_err(|source| StoreError::Corrupt {
                    what: "GAL entry",
                    source,
                })
            })
            .collect()
    }

    /// Places the recipient with `address` on `system`.
    pub async fn set_placement(&self, address: &str, system: &str) -> Result<()> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query_err("recording a placement"))?;
        let revision = self.next_revision(&mut tx).await?;
        sqlx::query(
            "INSERT INTO placements (address, system_id, revision, placed_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (address) DO UPDATE SET system_id = excluded.system_id, revision = excluded.revision, placed_at = excluded.placed_at",
        )
        .bind(address)
        .bind(system)
        .bind(revision)
        .bind(now())
        .execute(&mut *tx)
        .await
        .map_err(query_err("recording a placement"))?;
        tx.commit()
            .await
            .map_err(query_err("recording a placement"))
    }

    /// Every placement: address → system.
    pub async fn placements(&self) -> Result<BTreeMap<String, String>> {
        let rows = sqlx::query("SELECT address, system_id FROM placements")
            .fetch_all(&self.pool)
            .await
            .map_err(query_err("reading placements"))?;
        rows.into_iter()
            .map(|row| {
                Ok((
                    row.try_get(0).map_err(query_err("reading placements"))?,
                    row.try_get(1).map_err(query_err("reading placements"))?,
                ))
            })
            .collect()
    }

    /// Stores a plan (idempotent: a plan already stored keeps its journal).
    pub async fn save_plan(&self, id: &str, fingerprint: &str, body: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO plans (id, created_at, fingerprint, status, body) VALUES ($1, $2, $3, 'planned', $4) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(now())
        .bind(fingerprint)
        .bind(body)
        .execute(&self.pool)
        .await
        .map_err(query_err("saving a plan"))?;
        Ok(())
    }

    /// A stored plan.
    pub async fn plan(&self, id: &str) -> Result<Option<PlanRecord>> {
        let row = sqlx::query("SELECT id, fingerprint, status, body FROM plans WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(query_err("reading a plan"))?;
        row.map(|row| {
            Ok(PlanRecord {
                id: row.try_get(0).map_err(query_err("reading a plan"))?,
                fingerprint: row.try_get(1).map_err(query_err("reading a plan"))?,
                status: row.try_get(2).map_err(query_err("reading a plan"))?,
                body: row.try_get(3).map_err(query_err("reading a plan"))?,
            })
        })
        .transpose()
    }

    /// Plans that started applying and never finished (a crash, a kill).
    pub async fn unfinished_plans(&self) -> Result<Vec<String>> {
        let rows =
            sqlx::query("SELECT id FROM plans WHERE status = 'applying' ORDER BY created_at")
                .fetch_all(&self.pool)
                .await
                .map_err(query_err("reading plans"))?;
        rows.into_iter()
            .map(|row| row.try_get(0).map_err(query_err("reading plans")))
            .collect()
    }

    /// Sets a plan's status (`planned`, `applying`, `applied`, `partial`, `superseded`).
    pub async fn set_plan_status(&self, id: &str, status: &str) -> Result<()> {
        sqlx::query("UPDATE plans SET status = $2 WHERE id = $1")
            .bind(id)
            .bind(status)
            .execute(&self.pool)
            .await
            .map_err(query_err("updating a plan"))?;
        Ok(())
    }

    /// Journals operations `seqs` of a plan as being in `state`.
    pub async fn journal(
        &self,
        plan: &str,
        entries: &[(i64, &str)],
        state: JournalState,
        error: Option<&str>,
    ) -> Result<()> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query_err("writing the journal"))?;
        let at = now();
        for (seq, system) in entries {
            sqlx::query(
                "INSERT INTO journal (plan_id, seq, system_id, state, error, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (plan_id, seq) DO UPDATE SET state = excluded.state, error = excluded.error, updated_at = excluded.updated_at",
            )
            .bind(plan)
            .bind(*seq)
            .bind(*system)
            .bind(state.as_str())
            .bind(error)
            .bind(at.as_str())
            .execute(&mut *tx)
            .await
            .map_err(query_err("writing the journal"))?;
        }
        tx.commit().await.map_err(query_err("writing the journal"))
    }

    /// The journal of a plan: operation number → state.
    pub async fn journal_of(&self, plan: &str) -> Result<BTreeMap<i64, JournalState>> {
        let rows = sqlx::query("SELECT seq, state FROM journal WHERE plan_id = $1")
            .bind(plan)
            .fetch_all(&self.pool)
            .await
            .map_err(query_err("reading the journal"))?;
        let mut out = BTreeMap::new();
        for row in rows {
            let seq: i64 = row.try_get(0).map_err(query_err("reading the journal"))?;
            let state: String = row.try_get(1).map_err(query_err("reading the journal"))?;
            out.insert(seq, JournalState::parse(&state)?);
        }
        Ok(out)
    }

    /// Appends to the audit log.
    pub async fn audit(&self, record: &AuditRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit (at, run_id, actor, system_id, action, address, before, after) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(record.at.as_str())
        .bind(record.run_id)
        .bind(record.actor.as_str())
        .bind(record.system.as_str())
        .bind(record.action.as_str())
        .bind(record.address.as_str())
        .bind(record.before.as_ref().map(|v| v.to_string()))
        .bind(record.after.as_ref().map(|v| v.to_string()))
        .execute(&self.pool)
        .await
        .map_err(query_err("writing the audit log"))?;
        Ok(())
    }

    /// The newest `limit` audit records.
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditRecord>> {
        let rows = sqlx::query(
            "SELECT at, run_id, actor, system_id, action, address, before, after FROM audit ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("reading the audit log"))?;
        rows.into_iter()
            .map(|row| {
                let json = |i: usize| -> Result<Option<serde_json::Value>> {
                    let text: Option<String> =
                        row.try_get(i).map_err(query_err("reading the audit log"))?;
                    text.map(|t| {
                        serde_json::from_str(&t).map_err(|source| StoreError::Corrupt {
                            what: "audit record",
                            source,
                        })
                    })
                    .transpose()
                };
                let action: String = row.try_get(4).map_err(query_err("reading the audit log"))?;
                Ok(AuditRecord {
                    at: row.try_get(0).map_err(query_err("reading the audit log"))?,
                    run_id: row.try_get(1).map_err(query_err("reading the audit log"))?,
                    actor: row.try_get(2).map_err(query_err("reading the audit log"))?,
                    system: row.try_get(3).map_err(query_err("reading the audit log"))?,
                    action: Action::parse(&action).ok_or(StoreError::Unknown {
                        what: "audit action",
                        value: action.clone(),
                    })?,
                    address: row.try_get(5).map_err(query_err("reading the audit log"))?,
                    before: json(6)?,
                    after: json(7)?,
                })
            })
            .collect()
    }

    /// Starts a run in the history.
    pub async fn start_run(&self, command: &str) -> Result<i64> {
        let row = sqlx::query("INSERT INTO runs (command, started_at, status) VALUES ($1, $2, 'running') RETURNING id")
            .bind(command)
            .bind(now())
            .fetch_one(&self.pool)
            .await
            .map_err(query_err("starting a run"))?;
        row.try_get(0).map_err(query_err("starting a run"))
    }

    /// Finishes a run with its status and summary.
    pub async fn finish_run(
        &self,
        id: i64,
        status: &str,
        summary: &serde_json::Value,
    ) -> Result<()> {
        sqlx::query("UPDATE runs SET finished_at = $2, status = $3, summary = $4 WHERE id = $1")
            .bind(id)
            .bind(now())
            .bind(status)
            .bind(summary.to_string())
            .execute(&self.pool)
            .await
            .map_err(query_err("finishing a run"))?;
        Ok(())
    }

    /// The newest `limit` runs.
    pub async fn runs(&self, limit: i64) -> Result<Vec<RunRecord>> {
        let rows = sqlx::query("SELECT id, command, started_at, finished_at, status, summary FROM runs ORDER BY id DESC LIMIT $1")
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(query_err("reading runs"))?;
        rows.into_iter()
            .map(|row| {
                let summary: Option<String> = row.try_get(5).map_err(query_err("reading runs"))?;
                Ok(RunRecord {
                    id: row.try_get(0).map_err(query_err("reading runs"))?,
                    command: row.try_get(1).map_err(query_err("reading runs"))?,
                    started_at: row.try_get(2).map_err(query_err("reading runs"))?,
                    finished_at: row.try_get(3).map_err(query_err("reading runs"))?,
                    status: row.try_get(4).map_err(query_err("reading runs"))?,
                    summary: summary
                        .map(|s| {
                            serde_json::from_str(&s).map_err(|source| StoreError::Corrupt {
                                what: "run summary",
                                source,
                            })
                        })
                        .transpose()?,
                })
            })
            .collect()
    }

    /// Takes the run lock for `me` unless somebody holds it: `None` when
    /// taken, else who holds it. The store only records; whether a holder
    /// is gone is the engine's call ([`Store::take_over_lock`]).
    pub async fn try_lock(&self, me: &LockHolder) -> Result<Option<LockHolder>> {
        // A holder may release between the insert and the read: try again.
        for _ in 0..3 {
            let taken = sqlx::query(
                "INSERT INTO run_lock (name, pid, host, command, since, expires_at) \
                 VALUES ('store', $1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING",
            )
            .bind(me.pid)
            .bind(&me.host)
            .bind(&me.command)
            .bind(&me.since)
            .bind(me.expires_at)
            .execute(&self.pool)
            .await
            .map_err(query_err("taking the run lock"))?
            .rows_affected()
                == 1;
            if taken {
                return Ok(None);
            }
            let row = sqlx::query(
                "SELECT pid, host, command, since, expires_at FROM run_lock WHERE name = 'store'",
            )
            .fetch_optional(&self.pool)
            .await
            .map_err(query_err("reading the run lock"))?;
            if let Some(row) = row {
                let read = || query_err("reading the run lock");
                return Ok(Some(LockHolder {
                    pid: row.try_get(0).map_err(read())?,
                    host: row.try_get(1).map_err(read())?,
                    command: row.try_get(2).map_err(read())?,
                    since: row.try_get(3).map_err(read())?,
                    expires_at: row.try_get(4).map_err(read())?,
                }));
            }
        }
        Err(StoreError::Busy)
    }

    /// Hands the run lock from `gone` to `me`, if `gone` still holds it as
    /// it was read (a holder that renewed its lease in between keeps it).
    pub async fn take_over_lock(&self, gone: &LockHolder, me: &LockHolder) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE run_lock SET pid = $1, host = $2, command = $3, since = $4, expires_at = $5 \
             WHERE name = 'store' AND pid = $6 AND host = $7 AND since = $8 AND expires_at = $9",
        )
        .bind(me.pid)
        .bind(&me.host)
        .bind(&me.command)
        .bind(&me.since)
        .bind(me.expires_at)
        .bind(gone.pid)
        .bind(&gone.host)
        .bind(&gone.since)
        .bind(gone.expires_at)
        .execute(&self.pool)
        .await
        .map_err(query_err("taking over the run lock"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Extends `me`'s lease to `expires_at`; `false` when `me` no longer
    /// holds the lock.
    pub async fn renew_lock(&self, me: &LockHolder, expires_at: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE run_lock SET expires_at = $1 \
             WHERE name = 'store' AND pid = $2 AND host = $3 AND since = $4",
        )
        .bind(expires_at)
        .bind(me.pid)
        .bind(&me.host)
        .bind(&me.since)
        .execute(&self.pool)
        .await
        .map_err(query_err("renewing the run lock"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Releases the run lock if `me` holds it.
    pub async fn unlock(&self, me: &LockHolder) -> Result<()> {
        sqlx::query(
            "DELETE FROM run_lock WHERE name = 'store' AND pid = $1 AND host = $2 AND since = $3",
        )
        .bind(me.pid)
        .bind(&me.host)
        .bind(&me.since)
        .execute(&self.pool)
        .await
        .map_err(query_err("releasing the run lock"))?;
        Ok(())
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Accepts `sqlite:PATH`, `sqlite://PATH` and `postgres://…` / `postgresql://…`.
fn normalise_url(url: &str) -> Result<(Backend, String)> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((Backend::Postgres, url.to_string()));
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| StoreError::UnsupportedUrl(redact(url)))?;
    if path == ":memory:" || path.contains('?') {
        return Ok((Backend::Sqlite, format!("sqlite:{path}")));
    }
    if let Some(parent) = std::path::Path::new(path).parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateFolder {
                path: parent.display().to_string(),
                source,
            })?;
        }
    }
    Ok((Backend::Sqlite, format!("sqlite://{path}?mode=rwc")))
}

/// The URL with any password replaced.
pub fn redact(url: &str) -> String {
    match url::Url::from_str(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("****"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}
