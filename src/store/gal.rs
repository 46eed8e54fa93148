//! The GAL (one row per recipient, as the last plan joined it) and the
//! placements (explicit homes).

use std::collections::{BTreeMap, HashMap};

use sqlx::Row;

use super::history::{insert_audit, AuditRecord};
use super::{
    next_revision, now, query_err, Placeholders, Result, Store, StoreError, ROWS_PER_STATEMENT,
};
use coexist_model::GalEntry;

impl Store {
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
            let sql = format!(
                "INSERT INTO gal (anchor, primary_address, home, body) VALUES {} \
                 ON CONFLICT (anchor) DO UPDATE SET primary_address = excluded.primary_address, home = excluded.home, body = excluded.body",
                Placeholders::new(self.backend).rows(chunk.len(), 4)
            );
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

    /// The stored GAL, sorted by primary address. Each row is decoded as
    /// it arrives, so the rows' JSON is never held all at once beside the
    /// entries (`coexist serve-gal` reads 100,000 of them at every change).
    pub async fn load_gal(&self) -> Result<Vec<GalEntry>> {
        use futures::TryStreamExt;
        let mut rows =
            sqlx::query("SELECT body FROM gal ORDER BY primary_address").fetch(&self.pool);
        let mut gal = Vec::new();
        while let Some(row) = rows
            .try_next()
            .await
            .map_err(query_err("reading the GAL"))?
        {
            let body: &str = row.try_get(0).map_err(query_err("reading the GAL"))?;
            gal.push(
                serde_json::from_str(body).map_err(|source| StoreError::Corrupt {
                    what: "GAL entry",
                    source,
                })?,
            );
        }
        Ok(gal)
    }

    /// Places the recipient with `address` on `system`.
    pub async fn set_placement(&self, address: &str, system: &str) -> Result<()> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query_err("recording a placement"))?;
        let revision = next_revision(&mut tx).await?;
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

    /// Records (`Some(system)`) or clears (`None`) the placement of
    /// `address`, with its audit record, in one transaction. Returns the
    /// system it was placed on before, if any.
    pub async fn write_placement(
        &self,
        address: &str,
        system: Option<&str>,
        audit: &AuditRecord,
    ) -> Result<Option<String>> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query_err("recording a placement"))?;
        let before: Option<String> =
            sqlx::query("SELECT system_id FROM placements WHERE address = $1")
                .bind(address)
                .fetch_optional(&mut *tx)
                .await
                .map_err(query_err("recording a placement"))?
                .map(|row| row.try_get(0))
                .transpose()
                .map_err(query_err("recording a placement"))?;
        let revision = next_revision(&mut tx).await?;
        match system {
            Some(system) => {
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
            }
            None => {
                sqlx::query("DELETE FROM placements WHERE address = $1")
                    .bind(address)
                    .execute(&mut *tx)
                    .await
                    .map_err(query_err("clearing a placement"))?;
            }
        }
        insert_audit(&mut tx, self.backend, std::slice::from_ref(audit)).await?;
        tx.commit()
            .await
            .map_err(query_err("recording a placement"))?;
        Ok(before)
    }

    /// Whether the audit log records that coexist created the account of
    /// `address` on `system` (`coexist provision`).
    pub async fn account_created(&self, address: &str, system: &str) -> Result<bool> {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM audit WHERE action = 'create' AND address = $1 AND system_id = $2 AND after LIKE $3",
        )
        .bind(address)
        .bind(system)
        .bind("%\"account\"%")
        .fetch_one(&self.pool)
        .await
        .map_err(query_err("reading the audit log"))?;
        let count: i64 = row.try_get(0).map_err(query_err("reading the audit log"))?;
        Ok(count > 0)
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

    /// The audit records of `coexist move` on old homes (the forward it set
    /// on an old account, `"move_forward"`, and the account's retirement,
    /// `"move_retired"`), oldest first, as (system, address, after): what
    /// tells a rerun and `--finish` which forward is coexist's own.
    pub async fn move_records(&self) -> Result<Vec<(String, String, serde_json::Value)>> {
        let rows = sqlx::query(
            "SELECT system_id, address, after FROM audit WHERE after LIKE $1 ORDER BY id",
        )
        .bind("%\"move_%")
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("reading the audit log"))?;
        rows.into_iter()
            .map(|row| {
                let after: Option<String> =
                    row.try_get(2).map_err(query_err("reading the audit log"))?;
                let after =
                    serde_json::from_str(after.as_deref().unwrap_or("null")).map_err(|source| {
                        StoreError::Corrupt {
                            what: "audit record",
                            source,
                        }
                    })?;
                Ok((
                    row.try_get(0).map_err(query_err("reading the audit log"))?,
                    row.try_get(1).map_err(query_err("reading the audit log"))?,
                    after,
                ))
            })
            .collect()
    }
}
