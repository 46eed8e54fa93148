//! The per-chunk record of an apply, against SQLite and against the
//! PostgreSQL server of the test environment (`COEXIST_TEST_POSTGRES_URL`,
//! in a schema of its own so it never meets `tests/store.rs`; without the
//! variable that test fails: it never skips).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use coexist_connector::{Attributes, FoundStub, RecipientKind, Route, Stub};

use super::{
    AuditRecord, ChunkRecord, JournalState, PlanStatus, RunStatus, StartedOperation, Store,
    StoreError,
};
use crate::plan::Action;

fn stub(id: &str, address: &str) -> FoundStub {
    FoundStub {
        id: id.into(),
        locator: format!("sim://ldap/{id}"),
        misplaced: false,
        stub: Stub {
            anchor: format!("google:{address}"),
            kind: RecipientKind::Person,
            primary_address: address.into(),
            aliases: vec![],
            route: Route::Address(address.replace("acmecorp.com", "gapps.acmecorp.com")),
            attributes: Attributes::default(),
        },
    }
}

fn audit(address: &str, action: Action) -> AuditRecord {
    AuditRecord {
        at: super::now(),
        run_id: Some(1),
        actor: "store tests".into(),
        system: "ldap".into(),
        action,
        address: address.into(),
        before: None,
        after: Some(serde_json::json!({ "address": address })),
    }
}

async fn stub_ids(store: &Store) -> Vec<String> {
    let staged = store.load_staged(&["ldap".to_string()]).await.unwrap();
    let mut ids: Vec<String> = staged.systems[0]
        .stubs
        .iter()
        .map(|s| s.id.clone())
        .collect();
    ids.sort();
    ids
}

/// A chunk's stub rows, audit records and journal entries land together;
/// within a chunk the last write of a row or an operation wins, as if the
/// operations had been recorded one after the other.
async fn a_chunk_is_recorded_whole(store: &Store) {
    store
        .put_stub("ldap", &stub("old", "cy@acmecorp.com"))
        .await
        .unwrap();
    store
        .put_stub("ldap", &stub("gone", "dan@acmecorp.com"))
        .await
        .unwrap();
    let before = store.fingerprint().await.unwrap();
    store
        .journal(
            "p1",
            &[(0, "ldap"), (1, "ldap"), (2, "ldap"), (3, "ldap")],
            JournalState::Started,
            None,
        )
        .await
        .unwrap();

    let mut chunk = ChunkRecord::default();
    // 0: a create; 1: an update that moved "old" to "new"; 2: a delete;
    // 3: failed. The create's row is written twice: the second wins.
    chunk.put_stub("ldap", stub("s1", "ann@acmecorp.com"));
    chunk.audit.push(audit("ann@acmecorp.com", Action::Create));
    chunk.journal(0, "ldap", JournalState::Done, None);
    chunk.remove_stub("ldap", "old");
    chunk.put_stub("ldap", stub("new", "cy@acmecorp.com"));
    chunk.audit.push(audit("cy@acmecorp.com", Action::Update));
    chunk.journal(1, "ldap", JournalState::Done, None);
    chunk.remove_stub("ldap", "gone");
    chunk.audit.push(audit("dan@acmecorp.com", Action::Delete));
    chunk.journal(2, "ldap", JournalState::Done, None);
    chunk.journal(3, "ldap", JournalState::Failed, Some("refused".into()));
    chunk.put_stub("ldap", stub("s1", "ann.b@acmecorp.com"));
    store.record_chunk("p1", &chunk).await.unwrap();

    assert_eq!(stub_ids(store).await, ["new", "s1"]);
    let staged = store.load_staged(&["ldap".to_string()]).await.unwrap();
    let s1 = staged.systems[0]
        .stubs
        .iter()
        .find(|s| s.id == "s1")
        .unwrap();
    assert_eq!(
        s1.stub.primary_address, "ann.b@acmecorp.com",
        "the last write wins"
    );
    let journal = store.journal_of("p1").await.unwrap();
    assert_eq!(
        journal.values().copied().collect::<Vec<_>>(),
        [
            JournalState::Done,
            JournalState::Done,
            JournalState::Done,
            JournalState::Failed
        ]
    );
    let log = store.audit_log(10).await.unwrap();
    let addresses: Vec<&str> = log.iter().rev().map(|r| r.address.as_str()).collect();
    assert_eq!(
        addresses,
        ["ann@acmecorp.com", "cy@acmecorp.com", "dan@acmecorp.com"],
        "in order"
    );
    assert_ne!(
        store.fingerprint().await.unwrap(),
        before,
        "the fingerprint moves"
    );

    // An empty chunk writes nothing, and the journal alone may change.
    store
        .record_chunk("p1", &ChunkRecord::default())
        .await
        .unwrap();
    let mut retry = ChunkRecord::default();
    retry.journal(3, "ldap", JournalState::Done, None);
    retry.journal(3, "ldap", JournalState::Failed, Some("again".into()));
    store.record_chunk("p1", &retry).await.unwrap();
    assert_eq!(
        store.journal_of("p1").await.unwrap()[&3],
        JournalState::Failed
    );
}

/// A chunk whose record fails part-way writes nothing: its operations stay
/// `started`, no stub row and no audit record of it is kept.
async fn a_chunk_that_fails_part_way_leaves_nothing(store: &Store) {
    store
        .journal(
            "p2",
            &[(0, "ldap"), (1, "ldap")],
            JournalState::Started,
            None,
        )
        .await
        .unwrap();
    let mut chunk = ChunkRecord::default();
    chunk.put_stub("ldap", stub("s1", "ann@acmecorp.com"));
    chunk.audit.push(audit("ann@acmecorp.com", Action::Create));
    chunk.journal(0, "ldap", JournalState::Done, None);
    // A stub without an id is refused before anything is written.
    let mut bad = chunk.clone();
    bad.put_stub("ldap", stub(" ", "bob@acmecorp.com"));
    let error = store.record_chunk("p2", &bad).await.unwrap_err();
    assert!(matches!(error, StoreError::NoId { .. }), "{error}");

    // The database fails after the stub rows were written (the audit table
    // is gone): the transaction takes them back.
    sqlx::query("DROP TABLE audit")
        .execute(&store.pool)
        .await
        .unwrap();
    let error = store.record_chunk("p2", &chunk).await.unwrap_err();
    assert!(
        error.to_string().contains("writing the audit log"),
        "{error}"
    );
    assert!(
        stub_ids(store).await.is_empty(),
        "no stub row of the failed chunk"
    );
    assert_eq!(
        store
            .journal_of("p2")
            .await
            .unwrap()
            .values()
            .copied()
            .collect::<Vec<_>>(),
        [JournalState::Started, JournalState::Started]
    );
}

/// The baseline path writes the same rows, one transaction each.
async fn the_baseline_writes_the_same_rows(store: &Store) {
    let mut chunk = ChunkRecord::default();
    chunk.put_stub("ldap", stub("s1", "ann@acmecorp.com"));
    chunk.audit.push(audit("ann@acmecorp.com", Action::Create));
    chunk.journal(0, "ldap", JournalState::Done, None);
    store.record_per_operation("p3", &chunk).await.unwrap();
    assert_eq!(stub_ids(store).await, ["s1"]);
    assert_eq!(
        store.journal_of("p3").await.unwrap()[&0],
        JournalState::Done
    );
    assert_eq!(store.audit_log(5).await.unwrap().len(), 1);
}

/// The operations started by a run are journalled with it; those left
/// started are listed (with the run and the time they were started) until
/// a later entry settles them, which keeps the run unless it names another.
async fn operations_left_started_name_the_run_that_started_them(store: &Store) {
    assert!(store.operations_left_started().await.unwrap().is_empty());
    store
        .start_operations("p1", Some(7), &[(0, "ldap"), (1, "ldap"), (2, "google")])
        .await
        .unwrap();
    store
        .journal("p1", &[(1, "ldap")], JournalState::Done, None)
        .await
        .unwrap();
    // Started again without a run (as the baseline path journals): still 7's.
    store
        .journal("p1", &[(2, "google")], JournalState::Started, None)
        .await
        .unwrap();
    store
        .start_operations("p0", Some(8), &[(4, "ldap")])
        .await
        .unwrap();
    let left = store.operations_left_started().await.unwrap();
    let brief: Vec<(&str, i64, &str, Option<i64>)> = left
        .iter()
        .map(|o| (o.plan.as_str(), o.seq, o.system.as_str(), o.run))
        .collect();
    assert_eq!(
        brief,
        [
            ("p0", 4, "ldap", Some(8)),
            ("p1", 0, "ldap", Some(7)),
            ("p1", 2, "google", Some(7)),
        ],
        "by plan and operation number"
    );
    assert!(left.iter().all(|o| !o.started_at.is_empty()));
    // A later run starting the operation again makes it its own.
    store
        .start_operations("p0", Some(9), &[(4, "ldap")])
        .await
        .unwrap();
    let again: Vec<StartedOperation> = store.operations_left_started().await.unwrap();
    assert_eq!(
        (again[0].plan.as_str(), again[0].seq, again[0].run),
        ("p0", 4, Some(9))
    );
}

/// Settling an interrupted plan writes its journal entries (done,
/// interrupted), the audit records of what the dead run did and the plan's
/// new status together; nothing of it when the transaction fails.
async fn an_interrupted_plan_is_settled_whole(store: &Store) {
    store.save_plan("p1", "fp", "{}").await.unwrap();
    store
        .set_plan_status("p1", PlanStatus::Applying)
        .await
        .unwrap();
    store
        .start_operations("p1", Some(3), &[(0, "ldap"), (1, "ldap")])
        .await
        .unwrap();
    let mut settled = ChunkRecord::default();
    settled
        .audit
        .push(audit("ann@acmecorp.com", Action::Create));
    settled.journal(0, "ldap", JournalState::Done, None);
    settled.journal(
        1,
        "ldap",
        JournalState::Interrupted,
        Some("not found done".into()),
    );

    // The plans table is gone after the audit and journal were written:
    // the transaction takes them back.
    sqlx::query("ALTER TABLE plans RENAME TO plans_away")
        .execute(&store.pool)
        .await
        .unwrap();
    let error = store
        .settle_plan("p1", &settled, Some(PlanStatus::Superseded))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("settling an interrupted plan"),
        "{error}"
    );
    assert_eq!(store.operations_left_started().await.unwrap().len(), 2);
    assert!(store.audit_log(10).await.unwrap().is_empty());
    sqlx::query("ALTER TABLE plans_away RENAME TO plans")
        .execute(&store.pool)
        .await
        .unwrap();

    store
        .settle_plan("p1", &settled, Some(PlanStatus::Superseded))
        .await
        .unwrap();
    assert!(store.operations_left_started().await.unwrap().is_empty());
    assert_eq!(
        store
            .journal_of("p1")
            .await
            .unwrap()
            .values()
            .copied()
            .collect::<Vec<_>>(),
        [JournalState::Done, JournalState::Interrupted]
    );
    assert_eq!(store.audit_log(10).await.unwrap().len(), 1);
    assert_eq!(
        store.plan("p1").await.unwrap().map(|p| p.status),
        Some(PlanStatus::Superseded)
    );

    // A plan with nothing left started changes status alone; nothing at
    // all writes nothing.
    store.save_plan("p2", "fp", "{}").await.unwrap();
    store
        .set_plan_status("p2", PlanStatus::Applying)
        .await
        .unwrap();
    store
        .settle_plan("p2", &ChunkRecord::default(), Some(PlanStatus::Superseded))
        .await
        .unwrap();
    store
        .settle_plan("p2", &ChunkRecord::default(), None)
        .await
        .unwrap();
    assert_eq!(
        store.plan("p2").await.unwrap().map(|p| p.status),
        Some(PlanStatus::Superseded)
    );
    assert_eq!(store.audit_log(10).await.unwrap().len(), 1);
}

/// The runs still recorded as running are listed; a run is closed (as
/// interrupted, with the time) only while it is still running, so a run
/// that finished meanwhile keeps its own outcome.
async fn a_run_that_died_is_closed_as_interrupted_once(store: &Store) {
    let dead = store.start_run("sync").await.unwrap();
    let finished = store.start_run("apply").await.unwrap();
    store
        .finish_run(finished, RunStatus::Ok, &serde_json::json!({"done": 1}))
        .await
        .unwrap();
    let running = store.start_run("sync").await.unwrap();
    let ids = |runs: Vec<super::RunRecord>| runs.iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.runs_in_progress().await.unwrap()),
        [dead, running],
        "oldest first"
    );
    let why = serde_json::json!({"error": "interrupted: found dead"});
    assert!(store
        .close_run(dead, RunStatus::Interrupted, &why)
        .await
        .unwrap());
    assert!(
        !store
            .close_run(dead, RunStatus::Interrupted, &why)
            .await
            .unwrap(),
        "closed once"
    );
    assert!(
        !store
            .close_run(finished, RunStatus::Interrupted, &why)
            .await
            .unwrap(),
        "a finished run keeps its outcome"
    );
    assert_eq!(ids(store.runs_in_progress().await.unwrap()), [running]);
    let runs = store.runs(10).await.unwrap();
    let closed = runs.iter().find(|r| r.id == dead).unwrap();
    assert_eq!(closed.status, RunStatus::Interrupted);
    assert!(closed.finished_at.is_some());
    assert_eq!(closed.summary, Some(why));
    let kept = runs.iter().find(|r| r.id == finished).unwrap();
    assert_eq!(kept.status, RunStatus::Ok);
}

/// A fresh SQLite store (kept while its folder lives).
async fn sqlite() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!(
        "sqlite:{}",
        dir.path().join("coexist.db").display()
    ))
    .await
    .unwrap();
    (dir, store)
}

/// A fresh schema of the test PostgreSQL server, and a store on it.
struct Postgres {
    url: String,
    schema: String,
    store: Store,
}

impl Postgres {
    async fn new(name: &str) -> Postgres {
        let url = std::env::var("COEXIST_TEST_POSTGRES_URL").expect(
            "COEXIST_TEST_POSTGRES_URL is not set: run the tests through the README's test command (deploy/test.sh), which starts PostgreSQL",
        );
        let schema = format!("coexist_store_{name}_{}", std::process::id());
        Self::execute(&url, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await;
        Self::execute(&url, &format!("CREATE SCHEMA {schema}")).await;
        let separator = if url.contains('?') { '&' } else { '?' };
        let store = Store::open(&format!(
            "{url}{separator}options=-c%20search_path%3D{schema}"
        ))
        .await
        .unwrap();
        Postgres { url, schema, store }
    }

    async fn execute(url: &str, sql: &str) {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query(sql).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
    }

    async fn drop(self) {
        self.store.close().await;
        Self::execute(&self.url, &format!("DROP SCHEMA {} CASCADE", self.schema)).await;
    }
}

#[tokio::test]
async fn a_chunk_is_recorded_whole_on_sqlite() {
    let (_dir, store) = sqlite().await;
    a_chunk_is_recorded_whole(&store).await;
    let (_dir, store) = sqlite().await;
    a_chunk_that_fails_part_way_leaves_nothing(&store).await;
    let (_dir, store) = sqlite().await;
    the_baseline_writes_the_same_rows(&store).await;
}

#[tokio::test]
async fn what_a_dead_run_left_is_settled_on_sqlite() {
    let (_dir, store) = sqlite().await;
    operations_left_started_name_the_run_that_started_them(&store).await;
    let (_dir, store) = sqlite().await;
    an_interrupted_plan_is_settled_whole(&store).await;
    let (_dir, store) = sqlite().await;
    a_run_that_died_is_closed_as_interrupted_once(&store).await;
}

#[tokio::test]
async fn what_a_dead_run_left_is_settled_on_postgres() {
    let pg = Postgres::new("started").await;
    operations_left_started_name_the_run_that_started_them(&pg.store).await;
    pg.drop().await;
    let pg = Postgres::new("settled").await;
    an_interrupted_plan_is_settled_whole(&pg.store).await;
    pg.drop().await;
    let pg = Postgres::new("closed").await;
    a_run_that_died_is_closed_as_interrupted_once(&pg.store).await;
    pg.drop().await;
}

#[tokio::test]
async fn a_chunk_is_recorded_whole_on_postgres() {
    let pg = Postgres::new("whole").await;
    a_chunk_is_recorded_whole(&pg.store).await;
    pg.drop().await;
    let pg = Postgres::new("fails").await;
    a_chunk_that_fails_part_way_leaves_nothing(&pg.store).await;
    pg.drop().await;
    let pg = Postgres::new("baseline").await;
    the_baseline_writes_the_same_rows(&pg.store).await;
    pg.drop().await;
}

#[tokio::test]
async fn a_store_opened_with_one_connection_holds_one_however_many_ask_at_once() {
    let pg = Postgres::new("one_connection").await;
    let url = format!(
        "{}{}options=-c%20search_path%3D{}",
        pg.url,
        if pg.url.contains('?') { '&' } else { '?' },
        pg.schema
    );
    let narrow = Store::open_with_connections(&url, 1).await.unwrap();
    let wide = Store::open(&url).await.unwrap();
    // Four readers at once, each holding its connection for a moment.
    let read = |store: &Store| {
        let pool = store.pool.clone();
        async move {
            sqlx::query("SELECT pg_sleep(0.2)")
                .execute(&pool)
                .await
                .unwrap();
        }
    };
    futures::future::join_all((0..4).map(|_| read(&narrow))).await;
    futures::future::join_all((0..4).map(|_| read(&wide))).await;
    assert_eq!(
        narrow.pool.size(),
        1,
        "the narrow store opened one connection"
    );
    assert!(
        wide.pool.size() > 1,
        "the default store opens more when asked"
    );
    narrow.close().await;
    wide.close().await;
    pg.drop().await;
}
