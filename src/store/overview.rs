//! What the daemon's status page reads (`crate::status`): each system's
//! staged counts and last read, the GAL looked up by an index or by
//! addresses, the GAL streamed entry by entry (for the page's name index,
//! built once per run), and whether the store answers at all. Reads only;
//! the page's own reads are bounded (a `LIMIT`, an index).

use serde::Serialize;
use sqlx::Row;

use super::{query_err, Result, Store, StoreError};
use coexist_model::GalEntry;

/// One system's staged objects and its last good read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SystemRead {
    pub system: String,
    /// Recipients staged for it.
    pub recipients: i64,
    /// coexist's stubs staged for it.
    pub stubs: i64,
    /// When its last good read finished (RFC 3339); `None`: never read.
    pub read_at: Option<String>,
    /// How many recipients that read listed.
    pub read_recipients: Option<i64>,
    /// Whether its next read is a delta (a cursor is kept).
    pub incremental: bool,
}

impl Store {
    /// Whether the store answers (`SELECT 1`).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .fetch_one(&self.pool)
            .await
            .map_err(query_err("answering a ping"))?;
        Ok(())
    }

    /// The staged counts and the last read of each of `systems`, in that
    /// order.
    pub async fn system_reads(&self, systems: &[String]) -> Result<Vec<SystemRead>> {
        let counts = sqlx::query(
            "SELECT system_id, class, COUNT(*) FROM staged_objects GROUP BY system_id, class",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("counting staged objects"))?;
        let cursors = sqlx::query("SELECT system_id, cursor, recipients, pulled_at FROM cursors")
            .fetch_all(&self.pool)
            .await
            .map_err(query_err("reading cursors"))?;
        let mut reads: Vec<SystemRead> = systems
            .iter()
            .map(|system| SystemRead {
                system: system.clone(),
                recipients: 0,
                stubs: 0,
                read_at: None,
                read_recipients: None,
                incremental: false,
            })
            .collect();
        for row in counts {
            let system: String = row
                .try_get(0)
                .map_err(query_err("counting staged objects"))?;
            let class: String = row
                .try_get(1)
                .map_err(query_err("counting staged objects"))?;
            let count: i64 = row
                .try_get(2)
                .map_err(query_err("counting staged objects"))?;
            if let Some(read) = reads.iter_mut().find(|r| r.system == system) {
                if class == "stub" {
                    read.stubs = count;
                } else {
                    read.recipients = count;
                }
            }
        }
        for row in cursors {
            let system: String = row.try_get(0).map_err(query_err("reading cursors"))?;
            if let Some(read) = reads.iter_mut().find(|r| r.system == system) {
                let cursor: Option<String> =
                    row.try_get(1).map_err(query_err("reading cursors"))?;
                read.incremental = cursor.is_some();
                read.read_recipients = Some(row.try_get(2).map_err(query_err("reading cursors"))?);
                read.read_at = Some(row.try_get(3).map_err(query_err("reading cursors"))?);
            }
        }
        Ok(reads)
    }

    /// When the last read of any system was staged (RFC 3339); `None`
    /// before the first.
    pub async fn last_read_at(&self) -> Result<Option<String>> {
        let row = sqlx::query("SELECT MAX(pulled_at) FROM cursors")
            .fetch_one(&self.pool)
            .await
            .map_err(query_err("reading cursors"))?;
        row.try_get(0).map_err(query_err("reading cursors"))
    }

    /// At most `limit` GAL entries whose primary address starts with
    /// `prefix` (normalised: lower case), by the GAL's address index, sorted.
    pub async fn gal_by_address_prefix(&self, prefix: &str, limit: i64) -> Result<Vec<GalEntry>> {
        // [prefix, prefix + U+10FFFF): a range the index answers, unlike LIKE.
        let upper = format!("{prefix}\u{10FFFF}");
        let rows = sqlx::query(
            "SELECT body FROM gal WHERE primary_address >= $1 AND primary_address < $2 ORDER BY primary_address LIMIT $3",
        )
        .bind(prefix)
        .bind(upper)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("searching the GAL"))?;
        rows.iter().map(gal_entry).collect()
    }

    /// At most `limit` GAL entries whose stored entry contains `text`
    /// (a name, an alias, a title: any part of the entry), without regard
    /// to ASCII case. Scans the GAL until `limit` are found.
    pub async fn gal_containing(&self, text: &str, limit: i64) -> Result<Vec<GalEntry>> {
        let escaped = text
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let rows = sqlx::query(
            "SELECT body FROM gal WHERE LOWER(body) LIKE $1 ESCAPE '\\' ORDER BY primary_address LIMIT $2",
        )
        .bind(format!("%{}%", escaped.to_lowercase()))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("searching the GAL"))?;
        rows.iter().map(gal_entry).collect()
    }

    /// The GAL entries whose primary address is one of `addresses`
    /// (normalised), sorted by it; an address the GAL no longer holds is
    /// left out.
    pub async fn gal_by_addresses(&self, addresses: &[String]) -> Result<Vec<GalEntry>> {
        if addresses.is_empty() {
            return Ok(Vec::new());
        }
        let statement = format!(
            "SELECT body FROM gal WHERE primary_address IN ({}) ORDER BY primary_address",
            super::Placeholders::new(self.backend).list(addresses.len())
        );
        let mut query = sqlx::query(&statement);
        for address in addresses {
            query = query.bind(address);
        }
        let rows = query
            .fetch_all(&self.pool)
            .await
            .map_err(query_err("searching the GAL"))?;
        rows.iter().map(gal_entry).collect()
    }

    /// Calls `each` with every GAL entry in the order of their primary
    /// addresses, one row read at a time (the status page's name index is
    /// built so, without holding the whole GAL).
    pub async fn gal_each(&self, mut each: impl FnMut(GalEntry)) -> Result<()> {
        use futures::TryStreamExt;
        let mut rows =
            sqlx::query("SELECT body FROM gal ORDER BY primary_address").fetch(&self.pool);
        while let Some(row) = rows
            .try_next()
            .await
            .map_err(query_err("reading the GAL"))?
        {
            each(gal_entry(&row)?);
        }
        Ok(())
    }

    /// How many entries the GAL holds.
    pub async fn gal_size(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) FROM gal")
            .fetch_one(&self.pool)
            .await
            .map_err(query_err("counting the GAL"))?;
        row.try_get(0).map_err(query_err("counting the GAL"))
    }
}

/// A row whose first column is a GAL entry's body.
fn gal_entry(row: &sqlx::any::AnyRow) -> Result<GalEntry> {
    let body: String = row.try_get(0).map_err(query_err("reading the GAL"))?;
    serde_json::from_str(&body).map_err(|source| StoreError::Corrupt {
        what: "GAL entry",
        source,
    })
}
