//! Run history and the audit log (who changed what, when, before and
//! after).

use serde::Serialize;
use sqlx::Row;

use super::{now, query_err, Backend, Placeholders, Result, Store, StoreError, ROWS_PER_STATEMENT};
use crate::plan::Action;

/// How a run ended (or that it is still running). Stored as its name; the
/// store refuses any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    /// Everything asked for was done.
    Ok,
    /// A safety gate withheld changes.
    Withheld,
    /// A system could not be read, or some operations failed.
    Partial,
    /// Mail loops: a routing_loop conflict.
    RoutingLoop,
    /// The run stopped on an error.
    Failed,
    /// `apply FILE` refused the plan (stale, unknown system, newer format).
    Refused,
    /// The run died before it finished (kill -9, a crash, a power cut):
    /// a later run found it still recorded as running and closed it.
    Interrupted,
}

impl RunStatus {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Ok => "ok",
            RunStatus::Withheld => "withheld",
            RunStatus::Partial => "partial",
            RunStatus::RoutingLoop => "routing_loop",
            RunStatus::Failed => "failed",
            RunStatus::Refused => "refused",
            RunStatus::Interrupted => "interrupted",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "running" => Ok(RunStatus::Running),
            "ok" => Ok(RunStatus::Ok),
            "withheld" => Ok(RunStatus::Withheld),
            "partial" => Ok(RunStatus::Partial),
            "routing_loop" => Ok(RunStatus::RoutingLoop),
            "failed" => Ok(RunStatus::Failed),
            "refused" => Ok(RunStatus::Refused),
            "interrupted" => Ok(RunStatus::Interrupted),
            _ => Err(StoreError::Unknown {
                what: "run status",
                value: s.to_string(),
            }),
        }
    }

    /// The status a finished run's exit code stands for.
    pub fn of_exit_code(code: i32) -> Self {
        match code {
            crate::exit::OK => RunStatus::Ok,
            crate::exit::GATE => RunStatus::Withheld,
            crate::exit::ROUTING_LOOP => RunStatus::RoutingLoop,
            _ => RunStatus::Partial,
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of the run history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunRecord {
    pub id: i64,
    pub command: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub status: RunStatus,
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

impl Store {
    /// Appends to the audit log (one statement of its own: the baseline
    /// path of an apply, see [`Store::put_stub`]; an apply records its
    /// audit with [`Store::record_chunk`]).
    pub async fn audit(&self, record: &AuditRecord) -> Result<()> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query_err("writing the audit log"))?;
        insert_audit(&mut tx, self.backend, std::slice::from_ref(record)).await?;
        tx.commit()
            .await
            .map_err(query_err("writing the audit log"))
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
        let row = sqlx::query(
            "INSERT INTO runs (command, started_at, status) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(command)
        .bind(now())
        .bind(RunStatus::Running.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(query_err("starting a run"))?;
        row.try_get(0).map_err(query_err("starting a run"))
    }

    /// Finishes a run with its status and summary.
    pub async fn finish_run(
        &self,
        id: i64,
        status: RunStatus,
        summary: &serde_json::Value,
    ) -> Result<()> {
        sqlx::query("UPDATE runs SET finished_at = $2, status = $3, summary = $4 WHERE id = $1")
            .bind(id)
            .bind(now())
            .bind(status.as_str())
            .bind(summary.to_string())
            .execute(&self.pool)
            .await
            .map_err(query_err("finishing a run"))?;
        Ok(())
    }

    /// Finishes run `id` with `status` and `summary` if it is still
    /// recorded as running: `false` when it is not (it finished, or was
    /// closed already). How a run that died is closed.
    pub async fn close_run(
        &self,
        id: i64,
        status: RunStatus,
        summary: &serde_json::Value,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE runs SET finished_at = $2, status = $3, summary = $4 WHERE id = $1 AND status = $5",
        )
        .bind(id)
        .bind(now())
        .bind(status.as_str())
        .bind(summary.to_string())
        .bind(RunStatus::Running.as_str())
        .execute(&self.pool)
        .await
        .map_err(query_err("closing a run"))?;
        Ok(done.rows_affected() == 1)
    }

    /// The newest `limit` runs.
    pub async fn runs(&self, limit: i64) -> Result<Vec<RunRecord>> {
        let rows = sqlx::query("SELECT id, command, started_at, finished_at, status, summary FROM runs ORDER BY id DESC LIMIT $1")
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(query_err("reading runs"))?;
        rows.iter().map(run_record).collect()
    }

    /// The runs recorded as running, oldest first.
    pub async fn runs_in_progress(&self) -> Result<Vec<RunRecord>> {
        let rows = sqlx::query("SELECT id, command, started_at, finished_at, status, summary FROM runs WHERE status = $1 ORDER BY id")
            .bind(RunStatus::Running.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(query_err("reading runs"))?;
        rows.iter().map(run_record).collect()
    }
}

/// A row of `runs` (id, command, started_at, finished_at, status, summary).
fn run_record(row: &sqlx::any::AnyRow) -> Result<RunRecord> {
    let summary: Option<String> = row.try_get(5).map_err(query_err("reading runs"))?;
    Ok(RunRecord {
        id: row.try_get(0).map_err(query_err("reading runs"))?,
        command: row.try_get(1).map_err(query_err("reading runs"))?,
        started_at: row.try_get(2).map_err(query_err("reading runs"))?,
        finished_at: row.try_get(3).map_err(query_err("reading runs"))?,
        status: RunStatus::parse(
            &row.try_get::<String, _>(4)
                .map_err(query_err("reading runs"))?,
        )?,
        summary: summary
            .map(|s| {
                serde_json::from_str(&s).map_err(|source| StoreError::Corrupt {
                    what: "run summary",
                    source,
                })
            })
            .transpose()?,
    })
}

/// Appends `records` to the audit log in `tx`, in order, in statements of
/// many rows.
pub(super) async fn insert_audit(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    records: &[AuditRecord],
) -> Result<()> {
    for chunk in records.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO audit (at, run_id, actor, system_id, action, address, before, after) VALUES {}",
            Placeholders::new(backend).rows(chunk.len(), 8)
        );
        let mut query = sqlx::query(&sql);
        for record in chunk {
            query = query
                .bind(record.at.as_str())
                .bind(record.run_id)
                .bind(record.actor.as_str())
                .bind(record.system.as_str())
                .bind(record.action.as_str())
                .bind(record.address.as_str())
                .bind(record.before.as_ref().map(|v| v.to_string()))
                .bind(record.after.as_ref().map(|v| v.to_string()));
        }
        query
            .execute(&mut **tx)
            .await
            .map_err(query_err("writing the audit log"))?;
    }
    Ok(())
}
