//! The staging store: persists, decides nothing.
//!
//! SQLite (a file created on first use) by default, PostgreSQL by URL, both
//! through sqlx's `Any` driver with one migration folder per database.
//! Bodies are JSON documents of the connector contract's types. [`Store`]
//! is one type; its methods are split by job:
//!
//! * `staged`: the staged objects of each system, pull cursors, what each
//!   system's connector skipped at its last read, the fingerprint;
//! * `gal`: the GAL and placements;
//! * `plans`: plans, the journal of their operations (each started one
//!   with the run that started it), the record of what an apply did,
//!   written one chunk of operations per transaction
//!   ([`Store::record_chunk`]), and how the operations a dead run left
//!   started are settled ([`Store::settle_plan`]);
//! * `history`: run history (and closing the runs found dead) and the
//!   audit log;
//! * `lock`: the run lock;
//! * `overview`: what the daemon's status page reads (counts, the last
//!   reads, the GAL by its address index).

mod gal;
mod history;
mod lock;
mod overview;
mod plans;
mod staged;
#[cfg(test)]
mod tests;

use std::str::FromStr;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Row};
use thiserror::Error;

pub use history::{AuditRecord, RunRecord, RunStatus};
pub use lock::LockHolder;
pub use overview::SystemRead;
pub use plans::{
    ChunkRecord, JournalEntry, JournalState, PlanRecord, PlanStatus, StartedOperation, StubWrite,
};
pub use staged::{CursorRecord, StageReport};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// Rows written per INSERT statement when writing in bulk.
const ROWS_PER_STATEMENT: usize = 400;

/// The format of the JSON bodies this version writes and reads: the model's
/// serde encoding, decoded with defaults for fields added since (so adding
/// an attribute does not change the format). A store in a newer format is
/// refused.
pub const BODY_FORMAT: i64 = 1;

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
    #[error("the store holds its objects in format {found}, written by a newer coexist; this version reads format {} at most: run the newer version, or restore a copy of the store", BODY_FORMAT)]
    NewerFormat { found: i64 },
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

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
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
        Self::open_with_connections(url, 4).await
    }

    /// As [`Store::open`], holding at most `connections` PostgreSQL
    /// connections (SQLite always holds one): a store kept open for a long
    /// time, such as the daemon's for its status page, takes one, since
    /// connections stay open until the store closes.
    pub async fn open_with_connections(url: &str, connections: u32) -> Result<Store> {
        let store = Self::connect_with_connections(url, connections).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Opens the store without migrating it.
    pub async fn connect(url: &str) -> Result<Store> {
        Self::connect_with_connections(url, 4).await
    }

    async fn connect_with_connections(url: &str, connections: u32) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let (backend, url) = normalise_url(url)?;
        // No pool maintenance task (no idle timeout, no maximum lifetime,
        // no minimum): sqlx 0.8's task can spin forever on a miscounted
        // idle queue (launchbadge/sqlx#3645, fixed only in 0.9), which hung
        // a test process at exit. Connections close when the store does.
        let mut options = AnyPoolOptions::new()
            .min_connections(0)
            .idle_timeout(None)
            .max_lifetime(None);
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
            options = options.max_connections(connections.max(1));
        }
        let pool = options
            .connect(&url)
            .await
            .map_err(|source| StoreError::Open {
                url: redact(&url),
                source,
            })?;
        if let Some(schema) = search_path_schema(&url) {
            create_schema(&pool, &schema).await?;
        }
        Ok(Store { pool, backend })
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<()> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        let found = self.body_format().await?;
        if found > BODY_FORMAT {
            return Err(StoreError::NewerFormat { found });
        }
        Ok(())
    }

    /// The format of the JSON bodies this store holds (see [`BODY_FORMAT`]).
    pub async fn body_format(&self) -> Result<i64> {
        let row = sqlx::query("SELECT value FROM meta WHERE key = 'body_format'")
            .fetch_one(&self.pool)
            .await
            .map_err(query_err("reading the store's format"))?;
        row.try_get::<i64, _>(0)
            .map_err(query_err("reading the store's format"))
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }
}

/// Takes the next revision of the store (staged objects and placements
/// carry the revision that last wrote them; the fingerprint reads it).
async fn next_revision(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<i64> {
    let row =
        sqlx::query("UPDATE meta SET value = value + 1 WHERE key = 'revision' RETURNING value")
            .fetch_one(&mut **tx)
            .await
            .map_err(query_err("taking a revision"))?;
    row.try_get::<i64, _>(0)
        .map_err(query_err("taking a revision"))
}

/// The placeholders of one statement, in the order they are bound:
/// `$1, $2, …` on PostgreSQL, anonymous `?` on SQLite. (sqlx binds a
/// numbered SQLite parameter by asking SQLite its name, which SQLite finds
/// by a scan of every name of the statement: quadratic in the thousands of
/// parameters of a multi-row INSERT, a quarter of a first sync's time.)
/// A statement takes all its placeholders from one `Placeholders`.
struct Placeholders {
    backend: Backend,
    next: usize,
}

impl Placeholders {
    fn new(backend: Backend) -> Self {
        Placeholders { backend, next: 1 }
    }

    /// The next placeholder.
    fn one(&mut self) -> String {
        let n = self.next;
        self.next += 1;
        match self.backend {
            Backend::Sqlite => "?".to_string(),
            Backend::Postgres => format!("${n}"),
        }
    }

    /// `n` placeholders separated by commas (an `IN (…)` list).
    fn list(&mut self, n: usize) -> String {
        (0..n).map(|_| self.one()).collect::<Vec<_>>().join(",")
    }

    /// The VALUES of a multi-row INSERT: `rows` tuples of `columns`.
    fn rows(&mut self, rows: usize, columns: usize) -> String {
        (0..rows)
            .map(|_| format!("({})", self.list(columns)))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Store {
    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The schema a PostgreSQL URL selects with `options[search_path]=NAME`
/// (one organisation's store among several in one database; see
/// `Config::store_url`), when it is a plain name.
fn search_path_schema(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let schema = parsed
        .query_pairs()
        .find(|(key, _)| key == "options[search_path]")
        .map(|(_, value)| value.trim().to_string())?;
    let plain = !schema.is_empty()
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    plain.then_some(schema)
}

/// Creates `schema` unless it exists. Two processes creating it at once
/// may collide (PostgreSQL's `IF NOT EXISTS` is not atomic): the loser
/// tries again and finds it.
async fn create_schema(pool: &AnyPool, schema: &str) -> Result<()> {
    let statement = format!("CREATE SCHEMA IF NOT EXISTS {schema}");
    let mut last = None;
    for _ in 0..3 {
        match sqlx::query(&statement).execute(pool).await {
            Ok(_) => return Ok(()),
            Err(error) => last = Some(error),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    match last {
        Some(source) => Err(StoreError::Query {
            doing: "creating the organisation's schema",
            source,
        }),
        None => Ok(()),
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
