//! The run lock: one leased row while a command that changes the store
//! runs. The store only records who holds it; whether a holder is gone is
//! the engine's call (`engine::lock`).

use serde::Serialize;
use sqlx::Row;

use super::{query_err, Result, Store, StoreError};

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

impl Store {
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
}
