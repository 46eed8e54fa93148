//! Staged objects and cursors: what each system holds as last read, where
//! its next read resumes, what its connector skipped, and the fingerprint
//! of it all.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use coexist_connector::{FoundStub, Problem, Pull, PullMode, Recipient};

use super::{
    next_revision, now, query_err, Backend, Placeholders, Result, Store, StoreError,
    ROWS_PER_STATEMENT,
};
use coexist_model::{Staged, StagedSystem};

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

impl Store {
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
                Some(old) if *old == body || same_object(class, old, &body) => {
                    report.unchanged += 1
                }
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
        let revision = next_revision(&mut tx).await?;
        let rows: Vec<(&str, &str, &str, &str)> = writes
            .iter()
            .map(|(id, class, body)| (system, id.as_str(), *class, body.as_str()))
            .collect();
        upsert_objects(&mut tx, self.backend, &rows, revision, "staging a pull").await?;
        let ids: Vec<&str> = removals.iter().map(String::as_str).collect();
        delete_objects(&mut tx, self.backend, system, &ids, false, "staging a pull").await?;
        tx.commit().await.map_err(query_err("staging a pull"))?;
        Ok(report)
    }

    /// Records a stub written by an apply. A stub without an object id is
    /// refused: it could never be found, updated or deleted again.
    ///
    /// One transaction per stub: the per-operation write path an apply used
    /// before [`Store::record_chunk`], kept as the baseline the benchmark
    /// measures against (`benches/first_sync.rs`).
    pub async fn put_stub(&self, system: &str, stub: &FoundStub) -> Result<()> {
        let body = stub_body(system, stub)?;
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query_err("recording a stub"))?;
        let revision = next_revision(&mut tx).await?;
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

    /// Forgets a stub removed by an apply (one transaction: the baseline
    /// path, as [`Store::put_stub`]).
    pub async fn remove_stub(&self, system: &str, id: &str) -> Result<()> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query_err("removing a stub"))?;
        next_revision(&mut tx).await?;
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
}

/// The body of a stub row; a stub without an object id is refused: it
/// could never be found, updated or deleted again.
pub(super) fn stub_body(system: &str, stub: &FoundStub) -> Result<String> {
    if stub.id.trim().is_empty() {
        return Err(StoreError::NoId {
            what: "stub",
            system: system.to_string(),
            address: Some(stub.stub.primary_address.clone()),
        });
    }
    serde_json::to_string(stub).map_err(|source| StoreError::Encode {
        what: "stub",
        source,
    })
}

/// Upserts staged objects `(system, object id, class, body)` in `tx`, in
/// statements of many rows. No (system, id) may appear twice (PostgreSQL
/// refuses an INSERT that touches a row twice).
pub(super) async fn upsert_objects(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    rows: &[(&str, &str, &str, &str)],
    revision: i64,
    doing: &'static str,
) -> Result<()> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO staged_objects (system_id, object_id, class, body, revision) VALUES {} \
             ON CONFLICT (system_id, object_id) DO UPDATE SET class = excluded.class, body = excluded.body, revision = excluded.revision",
            Placeholders::new(backend).rows(chunk.len(), 5)
        );
        let mut query = sqlx::query(&sql);
        for (system, id, class, body) in chunk {
            query = query
                .bind(*system)
                .bind(*id)
                .bind(*class)
                .bind(*body)
                .bind(revision);
        }
        query.execute(&mut **tx).await.map_err(query_err(doing))?;
    }
    Ok(())
}

/// Deletes the staged objects `ids` of `system` in `tx` (with
/// `stubs_only`, only stub rows).
pub(super) async fn delete_objects(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    system: &str,
    ids: &[&str],
    stubs_only: bool,
    doing: &'static str,
) -> Result<()> {
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let mut params = Placeholders::new(backend);
        let sql = format!(
            "DELETE FROM staged_objects WHERE system_id = {}{} AND object_id IN ({})",
            params.one(),
            if stubs_only {
                " AND class = 'stub'"
            } else {
                ""
            },
            params.list(chunk.len())
        );
        let mut query = sqlx::query(&sql).bind(system);
        for id in chunk {
            query = query.bind(*id);
        }
        query.execute(&mut **tx).await.map_err(query_err(doing))?;
    }
    Ok(())
}

/// Whether a stored body and a new one describe the same object. The text
/// differs, with the object unchanged, when the model gained a field since
/// the row was written (the older version wrote no such key, and decoding
/// fills its default) or the encoding changed: such rows are not "changed",
/// so upgrading coexist does not make every staged row look new.
fn same_object(class: &str, old: &str, new: &str) -> bool {
    fn decoded_eq<T: serde::de::DeserializeOwned + PartialEq>(old: &str, new: &str) -> bool {
        matches!(
            (serde_json::from_str::<T>(old), serde_json::from_str::<T>(new)),
            (Ok(a), Ok(b)) if a == b
        )
    }
    match class {
        "recipient" => decoded_eq::<Recipient>(old, new),
        _ => decoded_eq::<FoundStub>(old, new),
    }
}

#[cfg(test)]
mod format_tests {
    use super::same_object;

    #[test]
    fn a_row_written_before_a_field_existed_is_the_same_object() {
        // Written by a version whose recipients had no `aliases` and no
        // `enabled` yet: decoding fills their defaults.
        let older = r#"{"anchor":"l1","kind":"person","primary_address":"mia@acmecorp.com","mailbox":true}"#;
        let now = r#"{"anchor":"l1","kind":"person","primary_address":"mia@acmecorp.com","aliases":[],"mailbox":true,"enabled":true,"attributes":{}}"#;
        assert!(same_object("recipient", older, now));
        let changed = now.replace("mia@", "mira@");
        assert!(!same_object("recipient", older, &changed));
    }
}
