//! Plans, the journal of their operations, and the record of what
//! applying them did.
//!
//! An apply journals a chunk of operations `started` (one transaction)
//! before it hands them to the connector, then records the results of the
//! whole chunk in one transaction ([`Store::record_chunk`]).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use sqlx::Row;

use coexist_connector::FoundStub;

use super::history::insert_audit;
use super::staged::{delete_objects, stub_body, upsert_objects};
use super::{
    next_revision, now, query_err, AuditRecord, Backend, Placeholders, Result, Store, StoreError,
    ROWS_PER_STATEMENT,
};

/// The state of one journalled operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JournalState {
    Started,
    Done,
    Failed,
    Withheld,
    /// Started by a run that died, and not seen done by the full read of
    /// the run that settled it (which planned afresh what was left).
    Interrupted,
}

impl JournalState {
    fn as_str(self) -> &'static str {
        match self {
            JournalState::Started => "started",
            JournalState::Done => "done",
            JournalState::Failed => "failed",
            JournalState::Withheld => "withheld",
            JournalState::Interrupted => "interrupted",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "started" => Ok(JournalState::Started),
            "done" => Ok(JournalState::Done),
            "failed" => Ok(JournalState::Failed),
            "withheld" => Ok(JournalState::Withheld),
            "interrupted" => Ok(JournalState::Interrupted),
            _ => Err(StoreError::Unknown {
                what: "journal state",
                value: s.to_string(),
            }),
        }
    }
}

/// Where a plan stands. Stored as its name; the store refuses any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanStatus {
    /// Made and saved, not applied yet.
    Planned,
    /// Being applied (or interrupted while it was: its journal says how far).
    Applying,
    /// Every operation done.
    Applied,
    /// Applied, but some operations failed or were not attempted.
    Partial,
    /// Interrupted, then completed by a later run's own plan.
    Superseded,
}

impl PlanStatus {
    /// The name stored.
    pub fn as_str(self) -> &'static str {
        match self {
            PlanStatus::Planned => "planned",
            PlanStatus::Applying => "applying",
            PlanStatus::Applied => "applied",
            PlanStatus::Partial => "partial",
            PlanStatus::Superseded => "superseded",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "planned" => Ok(PlanStatus::Planned),
            "applying" => Ok(PlanStatus::Applying),
            "applied" => Ok(PlanStatus::Applied),
            "partial" => Ok(PlanStatus::Partial),
            "superseded" => Ok(PlanStatus::Superseded),
            _ => Err(StoreError::Unknown {
                what: "plan status",
                value: s.to_string(),
            }),
        }
    }
}

/// A stored plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRecord {
    pub id: String,
    pub fingerprint: String,
    pub status: PlanStatus,
    pub body: String,
}

/// One operation's entry in the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    /// The operation's number in its plan.
    pub seq: i64,
    pub system: String,
    pub state: JournalState,
    /// What failed, for a failed operation.
    pub error: Option<String>,
}

/// An operation the journal says was started and never finished: the run
/// that started it died (or, while a run applies, is still sending it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedOperation {
    pub plan: String,
    /// The operation's number in its plan.
    pub seq: i64,
    pub system: String,
    /// The run that started it, when known (journals written before the
    /// journal kept it say nothing).
    pub run: Option<i64>,
    /// When it was started (RFC 3339).
    pub started_at: String,
}

/// A write of an apply to the stub rows of the staged objects.
#[derive(Debug, Clone)]
pub enum StubWrite {
    /// A stub written (created or updated), as the connector returned it.
    Put {
        system: String,
        stub: Box<FoundStub>,
    },
    /// A stub deleted, or the old row of a stub an update moved.
    Remove { system: String, id: String },
}

impl StubWrite {
    fn key(&self) -> (&str, &str) {
        match self {
            StubWrite::Put { system, stub } => (system, &stub.id),
            StubWrite::Remove { system, id } => (system, id),
        }
    }
}

/// What applying one chunk of a plan's operations did, as the store keeps
/// it, in the order the operations ran. [`Store::record_chunk`] writes it
/// in one transaction.
#[derive(Debug, Clone, Default)]
pub struct ChunkRecord {
    pub stubs: Vec<StubWrite>,
    pub audit: Vec<AuditRecord>,
    pub journal: Vec<JournalEntry>,
}

impl ChunkRecord {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.stubs.is_empty() && self.audit.is_empty() && self.journal.is_empty()
    }

    /// Records that a stub was written on `system`.
    pub fn put_stub(&mut self, system: &str, stub: FoundStub) {
        self.stubs.push(StubWrite::Put {
            system: system.to_string(),
            stub: Box::new(stub),
        });
    }

    /// Records that the stub `id` of `system` is gone.
    pub fn remove_stub(&mut self, system: &str, id: &str) {
        self.stubs.push(StubWrite::Remove {
            system: system.to_string(),
            id: id.to_string(),
        });
    }

    /// Records an operation's new journal state.
    pub fn journal(&mut self, seq: i64, system: &str, state: JournalState, error: Option<String>) {
        self.journal.push(JournalEntry {
            seq,
            system: system.to_string(),
            state,
            error,
        });
    }
}

impl Store {
    /// Stores a plan (idempotent: a plan already stored keeps its journal).
    pub async fn save_plan(&self, id: &str, fingerprint: &str, body: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO plans (id, created_at, fingerprint, status, body) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(now())
        .bind(fingerprint)
        .bind(PlanStatus::Planned.as_str())
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
                status: PlanStatus::parse(
                    &row.try_get::<String, _>(2)
                        .map_err(query_err("reading a plan"))?,
                )?,
                body: row.try_get(3).map_err(query_err("reading a plan"))?,
            })
        })
        .transpose()
    }

    /// Plans that started applying and never finished (a crash, a kill).
    pub async fn unfinished_plans(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT id FROM plans WHERE status = $1 ORDER BY created_at")
            .bind(PlanStatus::Applying.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(query_err("reading plans"))?;
        rows.into_iter()
            .map(|row| row.try_get(0).map_err(query_err("reading plans")))
            .collect()
    }

    /// Sets a plan's status.
    pub async fn set_plan_status(&self, id: &str, status: PlanStatus) -> Result<()> {
        sqlx::query("UPDATE plans SET status = $2 WHERE id = $1")
            .bind(id)
            .bind(status.as_str())
            .execute(&self.pool)
            .await
            .map_err(query_err("updating a plan"))?;
        Ok(())
    }

    /// Journals operations `entries` (operation number, system) of a plan
    /// as being in `state`, in one transaction.
    pub async fn journal(
        &self,
        plan: &str,
        entries: &[(i64, &str)],
        state: JournalState,
        error: Option<&str>,
    ) -> Result<()> {
        let rows: Vec<(i64, &str, JournalState, Option<&str>)> = entries
            .iter()
            .map(|(seq, system)| (*seq, *system, state, error))
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query_err("writing the journal"))?;
        journal_rows(&mut tx, self.backend, plan, None, &rows).await?;
        tx.commit().await.map_err(query_err("writing the journal"))
    }

    /// Journals operations `entries` (operation number, system) of a plan
    /// as started by run `run`, in one transaction, before they are sent:
    /// what a run that dies leaves started is known to be its own
    /// ([`Store::operations_left_started`]). Later entries of the same
    /// operations keep the run unless they name another.
    pub async fn start_operations(
        &self,
        plan: &str,
        run: Option<i64>,
        entries: &[(i64, &str)],
    ) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let rows: Vec<(i64, &str, JournalState, Option<&str>)> = entries
            .iter()
            .map(|(seq, system)| (*seq, *system, JournalState::Started, None))
            .collect();
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query_err("writing the journal"))?;
        journal_rows(&mut tx, self.backend, plan, run, &rows).await?;
        tx.commit().await.map_err(query_err("writing the journal"))
    }

    /// Every journalled operation, of any plan, still `started`, by plan
    /// and operation number. Between runs there are none unless a run died
    /// while applying.
    pub async fn operations_left_started(&self) -> Result<Vec<StartedOperation>> {
        let rows = sqlx::query(
            "SELECT plan_id, seq, system_id, run_id, updated_at FROM journal \
             WHERE state = $1 ORDER BY plan_id, seq",
        )
        .bind(JournalState::Started.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("reading the journal"))?;
        rows.into_iter()
            .map(|row| {
                let read = || query_err("reading the journal");
                Ok(StartedOperation {
                    plan: row.try_get(0).map_err(read())?,
                    seq: row.try_get(1).map_err(read())?,
                    system: row.try_get(2).map_err(read())?,
                    run: row.try_get(3).map_err(read())?,
                    started_at: row.try_get(4).map_err(read())?,
                })
            })
            .collect()
    }

    /// Records what applying one chunk of `plan`'s operations did — its
    /// stub rows put and removed, its audit records, each operation's
    /// journal entry (done or failed) — in ONE transaction.
    ///
    /// With the journal's `started` entries of the chunk written (and
    /// committed) before the connector was called, a kill at any point
    /// leaves one of two states: nothing of the chunk's results (its
    /// operations stay `started`; operations are idempotent, so the next
    /// run re-reads the systems and plans what is left, or `apply` re-runs
    /// them), or all of them (each operation `done` or `failed`, and the
    /// stub rows and audit records of those done). Never a journal that
    /// says `done` without the row and the audit record behind it.
    ///
    /// Writes of the same stub row, or entries of the same operation, keep
    /// the last one, as if written one after the other. A stub without an
    /// object id is refused before anything is written.
    pub async fn record_chunk(&self, plan: &str, chunk: &ChunkRecord) -> Result<()> {
        self.write_chunk(plan, chunk, None, "recording an applied chunk")
            .await
    }

    /// Records how the operations a dead run left started are settled —
    /// their journal entries (`done`, `interrupted`), the audit records of
    /// what the dead run did — and, with `status`, the plan's new status,
    /// in ONE transaction, written as [`Store::record_chunk`] writes a
    /// chunk: a run killed while settling leaves the plan as it found it.
    pub async fn settle_plan(
        &self,
        plan: &str,
        chunk: &ChunkRecord,
        status: Option<PlanStatus>,
    ) -> Result<()> {
        self.write_chunk(plan, chunk, status, "settling an interrupted plan")
            .await
    }

    /// Writes `chunk` of `plan` and, with `status`, the plan's status, in
    /// one transaction (see [`Store::record_chunk`]).
    async fn write_chunk(
        &self,
        plan: &str,
        chunk: &ChunkRecord,
        status: Option<PlanStatus>,
        doing: &'static str,
    ) -> Result<()> {
        if chunk.is_empty() && status.is_none() {
            return Ok(());
        }
        // Encode and check everything before the transaction opens.
        let mut last: HashMap<(&str, &str), usize> = HashMap::with_capacity(chunk.stubs.len());
        for (i, write) in chunk.stubs.iter().enumerate() {
            last.insert(write.key(), i);
        }
        let mut puts: Vec<(&str, &str, String)> = Vec::new();
        let mut removes: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (i, write) in chunk.stubs.iter().enumerate() {
            if last.get(&write.key()) != Some(&i) {
                continue;
            }
            match write {
                StubWrite::Put { system, stub } => {
                    puts.push((system, stub.id.as_str(), stub_body(system, stub)?));
                }
                StubWrite::Remove { system, id } => {
                    removes.entry(system).or_default().push(id);
                }
            }
        }
        let journal: Vec<(i64, &str, JournalState, Option<&str>)> = chunk
            .journal
            .iter()
            .map(|e| (e.seq, e.system.as_str(), e.state, e.error.as_deref()))
            .collect();

        let mut tx = self.pool.begin().await.map_err(query_err(doing))?;
        if !chunk.stubs.is_empty() {
            let revision = next_revision(&mut tx).await?;
            for (system, ids) in &removes {
                delete_objects(&mut tx, self.backend, system, ids, true, "removing stubs").await?;
            }
            let rows: Vec<(&str, &str, &str, &str)> = puts
                .iter()
                .map(|(system, id, body)| (*system, *id, "stub", body.as_str()))
                .collect();
            upsert_objects(&mut tx, self.backend, &rows, revision, "recording stubs").await?;
        }
        insert_audit(&mut tx, self.backend, &chunk.audit).await?;
        journal_rows(&mut tx, self.backend, plan, None, &journal).await?;
        if let Some(status) = status {
            sqlx::query("UPDATE plans SET status = $2 WHERE id = $1")
                .bind(plan)
                .bind(status.as_str())
                .execute(&mut *tx)
                .await
                .map_err(query_err(doing))?;
        }
        tx.commit().await.map_err(query_err(doing))
    }

    /// THE BASELINE, not the write path: records `chunk` as an apply did
    /// before [`Store::record_chunk`], each stub row, audit record and
    /// journal entry in a transaction (or statement) of its own, in that
    /// order. Called once per operation, that is today's per-operation
    /// write sequence (several transactions per operation), kept only so
    /// `benches/first_sync.rs` can measure the per-chunk transaction
    /// against it in the same process (`Engine::with_per_operation_writes`).
    pub async fn record_per_operation(&self, plan: &str, chunk: &ChunkRecord) -> Result<()> {
        for write in &chunk.stubs {
            match write {
                StubWrite::Put { system, stub } => self.put_stub(system, stub).await?,
                StubWrite::Remove { system, id } => self.remove_stub(system, id).await?,
            }
        }
        for record in &chunk.audit {
            self.audit(record).await?;
        }
        for entry in &chunk.journal {
            self.journal(
                plan,
                &[(entry.seq, entry.system.as_str())],
                entry.state,
                entry.error.as_deref(),
            )
            .await?;
        }
        Ok(())
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
}

/// Upserts journal entries `(seq, system, state, error)` of `plan` in `tx`,
/// in statements of many rows; a later entry for the same operation wins.
/// With `run`, the entries are that run's; without, an entry keeps the run
/// the operation was started by.
async fn journal_rows(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    plan: &str,
    run: Option<i64>,
    entries: &[(i64, &str, JournalState, Option<&str>)],
) -> Result<()> {
    // PostgreSQL refuses an INSERT that touches one row twice.
    let mut last: HashMap<i64, usize> = HashMap::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        last.insert(entry.0, i);
    }
    let entries: Vec<_> = entries
        .iter()
        .enumerate()
        .filter(|(i, entry)| last.get(&entry.0) == Some(i))
        .map(|(_, entry)| entry)
        .collect();
    let at = now();
    for chunk in entries.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO journal (plan_id, seq, system_id, state, error, updated_at, run_id) VALUES {} \
             ON CONFLICT (plan_id, seq) DO UPDATE SET state = excluded.state, error = excluded.error, \
             updated_at = excluded.updated_at, run_id = COALESCE(excluded.run_id, journal.run_id)",
            Placeholders::new(backend).rows(chunk.len(), 7)
        );
        let mut query = sqlx::query(&sql);
        for (seq, system, state, error) in chunk {
            query = query
                .bind(plan)
                .bind(*seq)
                .bind(*system)
                .bind(state.as_str())
                .bind(*error)
                .bind(at.as_str())
                .bind(run);
        }
        query
            .execute(&mut **tx)
            .await
            .map_err(query_err("writing the journal"))?;
    }
    Ok(())
}
