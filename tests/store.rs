#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The store's specification, run against SQLite and against a real
//! PostgreSQL server (started by `deploy/testenv.sh`, whose URL arrives in
//! `COEXIST_TEST_POSTGRES_URL`, in the environment or in the env file the
//! script writes). Without that setting the PostgreSQL test fails: it never
//! skips.

use coexist::reconcile::{GalEntry, Staged};
use coexist::store::{JournalState, LockHolder, PlanStatus, RunStatus, Store};
use coexist_connector::{
    Attributes, FoundStub, Pull, PullMode, Recipient, RecipientKind, Route, Stub,
};

fn person(anchor: &str, address: &str) -> Recipient {
    Recipient::mailbox(anchor, RecipientKind::Person, address)
}

fn stub(id: &str, address: &str) -> FoundStub {
    FoundStub {
        id: id.into(),
        locator: format!("cn={address}"),
        misplaced: false,
        stub: Stub {
            anchor: format!("google:{id}"),
            kind: RecipientKind::Person,
            primary_address: address.into(),
            aliases: vec![],
            route: Route::Address(address.replace("acmecorp.com", "gapps.acmecorp.com")),
            attributes: Attributes::default(),
        },
    }
}

async fn load(store: &Store) -> Staged {
    store
        .load_staged(&["ldap".to_string(), "google".to_string()])
        .await
        .unwrap()
}

async fn a_full_pull_replaces_what_a_system_holds(store: &Store) {
    let first = Pull::full(
        vec![
            person("1", "ann@acmecorp.com"),
            person("2", "bob@acmecorp.com"),
        ],
        vec![stub("s1", "cy@acmecorp.com")],
    );
    let report = store.stage_pull("ldap", &first, false).await.unwrap();
    assert_eq!((report.added, report.changed, report.removed), (3, 0, 0));

    let mut bob = person("2", "bob@acmecorp.com");
    bob.attributes.title = Some("CTO".into());
    let second = Pull::full(vec![bob], vec![stub("s1", "cy@acmecorp.com")]);
    let report = store.stage_pull("ldap", &second, false).await.unwrap();
    assert_eq!(
        (
            report.added,
            report.changed,
            report.unchanged,
            report.removed
        ),
        (0, 1, 1, 1)
    );

    let staged = load(store).await;
    let ldap = staged.system("ldap").unwrap();
    assert_eq!(ldap.recipients.len(), 1);
    assert_eq!(ldap.recipients[0].attributes.title.as_deref(), Some("CTO"));
    assert_eq!(ldap.stubs.len(), 1);
}

async fn an_incomplete_pull_removes_nothing(store: &Store) {
    let all = Pull::full(
        vec![
            person("1", "ann@acmecorp.com"),
            person("2", "bob@acmecorp.com"),
        ],
        vec![],
    );
    store.stage_pull("ldap", &all, false).await.unwrap();
    let part = Pull {
        complete: false,
        ..Pull::full(vec![person("1", "ann@acmecorp.com")], vec![])
    };
    let report = store.stage_pull("ldap", &part, true).await.unwrap();
    assert_eq!(report.removed, 0);
    assert_eq!(
        load(store).await.system("ldap").unwrap().recipients.len(),
        2
    );
}

async fn an_incomplete_delta_removes_nothing(store: &Store) {
    store
        .stage_pull(
            "google",
            &Pull::full(
                vec![
                    person("g1", "ann@acmecorp.com"),
                    person("g2", "bob@acmecorp.com"),
                ],
                vec![],
            ),
            false,
        )
        .await
        .unwrap();
    // A delta naming g1 gone, from a read that stopped part-way.
    let delta = Pull {
        mode: PullMode::Delta,
        removed: vec!["g1".into()],
        complete: false,
        ..Pull::full(vec![person("g3", "cat@acmecorp.com")], vec![])
    };
    let report = store.stage_pull("google", &delta, true).await.unwrap();
    assert_eq!((report.added, report.removed), (1, 0));
    assert_eq!(
        load(store).await.system("google").unwrap().recipients.len(),
        3,
        "g1 stays staged"
    );
}

async fn an_object_without_an_id_is_never_stored(store: &Store) {
    let error = store
        .put_stub("ldap", &stub("", "ann@acmecorp.com"))
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        error.contains("without an object id") && error.contains("ann@acmecorp.com"),
        "{error}"
    );
    let pull = Pull::full(vec![person("", "bob@acmecorp.com")], vec![]);
    assert!(store.stage_pull("ldap", &pull, false).await.is_err());
    let staged = load(store).await;
    let ldap = staged.system("ldap").unwrap();
    assert!(ldap.stubs.is_empty() && ldap.recipients.is_empty());
}

async fn the_problems_of_the_last_read_are_kept(store: &Store) {
    let problem = |object: &str| coexist_connector::Problem {
        object: object.into(),
        message: "no mail attribute".into(),
    };
    assert!(store.problems_of("ldap").await.unwrap().is_empty());
    store
        .record_problems("ldap", &[problem("uid=a"), problem("uid=b")], true)
        .await
        .unwrap();
    // A delta adds what it read; it cannot know what was fixed.
    store
        .record_problems("ldap", &[problem("uid=b"), problem("uid=c")], false)
        .await
        .unwrap();
    assert_eq!(
        store.problems_of("ldap").await.unwrap(),
        [problem("uid=a"), problem("uid=b"), problem("uid=c")]
    );
    // A full read says everything.
    store
        .record_problems("ldap", &[problem("uid=c")], true)
        .await
        .unwrap();
    assert_eq!(store.problems_of("ldap").await.unwrap(), [problem("uid=c")]);
    assert!(store.problems_of("google").await.unwrap().is_empty());
}

async fn stub_anchors_say_where_each_stub_routes(store: &Store) {
    store
        .stage_pull(
            "ldap",
            &Pull::full(
                vec![person("m1", "ann@acmecorp.com")],
                vec![stub("s1", "cy@acmecorp.com"), stub("s2", "di@acmecorp.com")],
            ),
            false,
        )
        .await
        .unwrap();
    let mut anchors = store.stub_anchors("ldap").await.unwrap();
    anchors.sort();
    assert_eq!(
        anchors,
        [
            ("s1".to_string(), "google:s1".to_string()),
            ("s2".to_string(), "google:s2".to_string())
        ]
    );
}

async fn a_delta_upserts_and_removes_what_it_names(store: &Store) {
    store
        .stage_pull(
            "google",
            &Pull::full(
                vec![
                    person("g1", "ann@acmecorp.com"),
                    person("g2", "bob@acmecorp.com"),
                ],
                vec![],
            ),
            false,
        )
        .await
        .unwrap();
    let delta = Pull {
        mode: PullMode::Delta,
        removed: vec!["g1".into()],
        cursor: Some("c2".into()),
        ..Pull::full(vec![person("g3", "cat@acmecorp.com")], vec![])
    };
    store.stage_pull("google", &delta, false).await.unwrap();
    let mut anchors: Vec<_> = load(store)
        .await
        .system("google")
        .unwrap()
        .recipients
        .iter()
        .map(|r| r.anchor.clone())
        .collect();
    anchors.sort();
    assert_eq!(anchors, ["g2", "g3"]);
}

async fn the_fingerprint_follows_staged_changes_only(store: &Store) {
    let pull = Pull::full(vec![person("1", "ann@acmecorp.com")], vec![]);
    store.stage_pull("ldap", &pull, false).await.unwrap();
    let before = store.fingerprint().await.unwrap();
    store.stage_pull("ldap", &pull, false).await.unwrap();
    assert_eq!(
        store.fingerprint().await.unwrap(),
        before,
        "an unchanged pull keeps the fingerprint"
    );
    store
        .set_placement("ann@acmecorp.com", "google")
        .await
        .unwrap();
    let placed = store.fingerprint().await.unwrap();
    assert_ne!(placed, before);
    store
        .put_stub("google", &stub("s9", "ann@acmecorp.com"))
        .await
        .unwrap();
    assert_ne!(store.fingerprint().await.unwrap(), placed);
    assert_eq!(
        load(store)
            .await
            .placements
            .get("ann@acmecorp.com")
            .map(String::as_str),
        Some("google")
    );
}

async fn cursors_gal_journal_runs_and_audit_persist(store: &Store) {
    store
        .set_cursor("ldap", Some("cookie-1"), 900)
        .await
        .unwrap();
    store
        .set_cursor("ldap", Some("cookie-2"), 901)
        .await
        .unwrap();
    let cursor = store.cursor("ldap").await.unwrap().unwrap();
    assert_eq!(
        (cursor.cursor.as_deref(), cursor.recipients),
        (Some("cookie-2"), 901)
    );
    assert!(store.cursor("google").await.unwrap().is_none());

    let entry = GalEntry {
        anchor: "google:1".into(),
        kind: RecipientKind::Person,
        primary_address: "ann@acmecorp.com".into(),
        addresses: vec!["ann@acmecorp.com".into()],
        home: "google".into(),
        attributes: Attributes::default(),
        members: vec![],
        systems: vec!["google".into()],
        routing_address: None,
    };
    assert_eq!(
        store.save_gal(std::slice::from_ref(&entry)).await.unwrap(),
        1
    );
    assert_eq!(
        store.save_gal(std::slice::from_ref(&entry)).await.unwrap(),
        0,
        "an unchanged GAL writes nothing"
    );
    assert_eq!(store.load_gal().await.unwrap(), vec![entry]);
    assert_eq!(store.save_gal(&[]).await.unwrap(), 1);

    store.save_plan("p1", "fp", "{}").await.unwrap();
    store
        .set_plan_status("p1", PlanStatus::Applying)
        .await
        .unwrap();
    assert_eq!(
        store.plan("p1").await.unwrap().map(|p| p.status),
        Some(PlanStatus::Applying)
    );
    store
        .journal(
            "p1",
            &[(0, "ldap"), (1, "ldap")],
            JournalState::Started,
            None,
        )
        .await
        .unwrap();
    store
        .journal("p1", &[(0, "ldap")], JournalState::Done, None)
        .await
        .unwrap();
    let journal = store.journal_of("p1").await.unwrap();
    assert_eq!(journal.get(&0), Some(&JournalState::Done));
    assert_eq!(journal.get(&1), Some(&JournalState::Started));
    assert_eq!(store.unfinished_plans().await.unwrap(), ["p1"]);

    let run = store.start_run("sync").await.unwrap();
    store
        .finish_run(run, RunStatus::Ok, &serde_json::json!({"operations": 3}))
        .await
        .unwrap();
    let runs = store.runs(10).await.unwrap();
    assert_eq!(runs[0].status, RunStatus::Ok);
    assert_eq!(runs[0].summary, Some(serde_json::json!({"operations": 3})));

    store
        .audit(&coexist::store::AuditRecord {
            at: coexist::store::now(),
            run_id: Some(run),
            actor: "coexist sync".into(),
            system: "ldap".into(),
            action: coexist::plan::Action::Create,
            address: "ann@acmecorp.com".into(),
            before: None,
            after: Some(serde_json::json!({"route": "x"})),
        })
        .await
        .unwrap();
    assert_eq!(
        store.audit_log(5).await.unwrap()[0].address,
        "ann@acmecorp.com"
    );
}

async fn a_thousand_objects_stage_in_bulk(store: &Store) {
    let recipients = (0..1000)
        .map(|i| person(&format!("b{i}"), &format!("user{i}@acmecorp.com")))
        .collect();
    let report = store
        .stage_pull("google", &Pull::full(recipients, vec![]), false)
        .await
        .unwrap();
    assert_eq!(report.added, 1000);
    assert_eq!(store.staged_recipients("google").await.unwrap(), 1000);
}

fn holder(pid: i64, host: &str) -> LockHolder {
    LockHolder {
        pid,
        host: host.into(),
        command: "sync".into(),
        since: format!("2026-11-27T05:00:{:02}Z", pid % 60),
        expires_at: 2_000_000_000,
    }
}

async fn the_run_lock_has_one_holder_at_a_time(store: &Store) {
    let first = holder(101, "mx1");
    let second = holder(202, "mx2");
    assert_eq!(store.try_lock(&first).await.unwrap(), None, "free: taken");
    assert_eq!(
        store.try_lock(&second).await.unwrap(),
        Some(first.clone()),
        "held: the holder is named"
    );
    // Only the holder it names is replaced by a take-over.
    assert!(!store.take_over_lock(&second, &second).await.unwrap());
    assert!(store.renew_lock(&first, 2_000_000_100).await.unwrap());
    assert!(!store.renew_lock(&second, 2_000_000_100).await.unwrap());
    let renewed = LockHolder {
        expires_at: 2_000_000_100,
        ..first.clone()
    };
    assert!(store.take_over_lock(&renewed, &second).await.unwrap());
    assert!(
        !store.renew_lock(&first, 2_000_000_200).await.unwrap(),
        "the first holder lost it"
    );
    // A release by a former holder changes nothing; by the holder, frees it.
    store.unlock(&first).await.unwrap();
    assert_eq!(store.try_lock(&first).await.unwrap(), Some(second.clone()));
    store.unlock(&second).await.unwrap();
    assert_eq!(store.try_lock(&first).await.unwrap(), None);
}

async fn placements_are_written_and_cleared_with_their_audit(store: &Store) {
    use coexist::plan::Action;
    use coexist::store::AuditRecord;
    let audit = |action: Action, system: &str| AuditRecord {
        at: "2026-12-03T00:00:00Z".into(),
        run_id: None,
        actor: "test".into(),
        system: system.into(),
        action,
        address: "ann@acmecorp.com".into(),
        before: None,
        after: Some(serde_json::json!({ "placement": system })),
    };
    let before = store.fingerprint().await.unwrap();
    let previous = store
        .write_placement(
            "ann@acmecorp.com",
            Some("google"),
            &audit(Action::Create, "google"),
        )
        .await
        .unwrap();
    assert_eq!(previous, None);
    let placed = store.fingerprint().await.unwrap();
    assert_ne!(placed, before, "a placement changes the fingerprint");
    let previous = store
        .write_placement(
            "ann@acmecorp.com",
            Some("ldap"),
            &audit(Action::Update, "ldap"),
        )
        .await
        .unwrap();
    assert_eq!(previous.as_deref(), Some("google"));
    assert_eq!(
        store
            .placements()
            .await
            .unwrap()
            .get("ann@acmecorp.com")
            .map(String::as_str),
        Some("ldap")
    );
    let previous = store
        .write_placement("ann@acmecorp.com", None, &audit(Action::Delete, "ldap"))
        .await
        .unwrap();
    assert_eq!(previous.as_deref(), Some("ldap"));
    assert!(store.placements().await.unwrap().is_empty());
    let log = store.audit_log(10).await.unwrap();
    assert_eq!(log.len(), 3);
    assert_eq!(log[0].action, Action::Delete);
    // An account is known as coexist's only by a create naming an account.
    assert!(!store
        .account_created("ann@acmecorp.com", "google")
        .await
        .unwrap());
    let mut made = audit(Action::Create, "google");
    made.after = Some(serde_json::json!({ "account": "users/1" }));
    store.audit(&made).await.unwrap();
    assert!(store
        .account_created("ann@acmecorp.com", "google")
        .await
        .unwrap());
    assert!(!store
        .account_created("ann@acmecorp.com", "ldap")
        .await
        .unwrap());
}

macro_rules! cases {
    ($($case:ident),* $(,)?) => {
        const CASES: &[&str] = &[$(stringify!($case)),*];
        async fn run_case(name: &str, store: &Store) {
            match name {
                $(stringify!($case) => $case(store).await,)*
                other => panic!("unknown case {other}"),
            }
        }
    };
}

cases!(
    a_full_pull_replaces_what_a_system_holds,
    an_incomplete_pull_removes_nothing,
    a_delta_upserts_and_removes_what_it_names,
    an_incomplete_delta_removes_nothing,
    an_object_without_an_id_is_never_stored,
    the_problems_of_the_last_read_are_kept,
    stub_anchors_say_where_each_stub_routes,
    the_fingerprint_follows_staged_changes_only,
    cursors_gal_journal_runs_and_audit_persist,
    a_thousand_objects_stage_in_bulk,
    the_run_lock_has_one_holder_at_a_time,
    placements_are_written_and_cleared_with_their_audit,
);

#[tokio::test]
async fn the_store_suite_passes_on_sqlite() {
    for case in CASES {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!(
            "sqlite:{}",
            dir.path().join("nested/coexist.db").display()
        ))
        .await
        .unwrap();
        run_case(case, &store).await;
        store.close().await;
    }
}

#[tokio::test]
async fn the_store_suite_passes_on_postgres() {
    let url = coexist_testenv::postgres_url();
    for case in CASES {
        // A clean database for every case.
        {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::query("DROP SCHEMA IF EXISTS public CASCADE")
                .execute(&mut conn)
                .await
                .unwrap();
            sqlx::query("CREATE SCHEMA public")
                .execute(&mut conn)
                .await
                .unwrap();
            conn.close().await.unwrap();
        }
        let store = Store::open(&url).await.unwrap();
        assert_eq!(store.backend(), coexist::store::Backend::Postgres);
        run_case(case, &store).await;
        store.close().await;
    }
}

#[tokio::test]
async fn unreadable_json_in_the_audit_log_or_the_run_history_is_an_error() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coexist.db");
    let store = Store::open(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    let run = store.start_run("sync").await.unwrap();
    store
        .finish_run(run, RunStatus::Ok, &serde_json::json!({"done": 1}))
        .await
        .unwrap();
    store
        .audit(&coexist::store::AuditRecord {
            at: coexist::store::now(),
            run_id: Some(run),
            actor: "coexist sync".into(),
            system: "ldap".into(),
            action: coexist::plan::Action::Create,
            address: "ann@acmecorp.com".into(),
            before: None,
            after: Some(serde_json::json!({"route": "x"})),
        })
        .await
        .unwrap();
    store.close().await;
    // Someone edits the database by hand.
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE audit SET after = '{not json'")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("UPDATE runs SET summary = 'truncated {'")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    let store = Store::open(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    let audit = store
        .audit_log(5)
        .await
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(audit.contains("unreadable audit record"), "{audit}");
    let runs = store.runs(5).await.map(|_| ()).unwrap_err().to_string();
    assert!(runs.contains("unreadable run summary"), "{runs}");
}

#[tokio::test]
async fn a_folder_the_store_cannot_be_created_in_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let error = Store::open(&format!("sqlite:{}", file.join("sub/coexist.db").display()))
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        error.contains("cannot create the folder") && error.contains("a-file/sub"),
        "{error}"
    );
}

#[tokio::test]
async fn a_bad_store_url_is_named() {
    let error = Store::open("mysql://nope")
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(error.contains("not sqlite:… or postgres://…"), "{error}");
}

#[tokio::test]
async fn the_store_refuses_a_plan_or_run_status_it_does_not_know() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coexist.db");
    let store = Store::open(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    store.save_plan("p1", "fp", "{}").await.unwrap();
    store.start_run("sync").await.unwrap();
    store.close().await;
    // Someone edits the database by hand, or an older tool writes a word
    // the enums do not have.
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    for update in [
        "UPDATE plans SET status = 'half-done'",
        "UPDATE runs SET status = 'meh'",
    ] {
        let refused = sqlx::query(update).execute(&mut conn).await.unwrap_err();
        assert!(
            refused.to_string().contains("unknown"),
            "{update}: {refused}"
        );
    }
    // A run found dead is `interrupted`, a word the store knows.
    sqlx::query("UPDATE runs SET status = 'interrupted'")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
}

#[tokio::test]
async fn a_store_of_the_previous_version_keeps_its_journal_and_can_settle_a_dead_runs_operations() {
    // The store `tests/upgrade.rs` upgrades: written before the journal
    // kept the run of each operation and knew `interrupted`.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coexist.db");
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/previous-version/coexist.db"),
        &path,
    )
    .unwrap();
    let store = Store::open(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    let plan = "96780c646455f10c9080";
    let journal = store.journal_of(plan).await.unwrap();
    assert_eq!(journal.len(), 4, "the journal's rows are kept");
    assert!(journal.values().all(|s| *s == JournalState::Done));
    assert!(store.operations_left_started().await.unwrap().is_empty());

    store
        .start_operations(plan, Some(1), &[(9, "ldap")])
        .await
        .unwrap();
    let mut settled = coexist::store::ChunkRecord::default();
    settled.journal(9, "ldap", JournalState::Interrupted, None);
    store.settle_plan(plan, &settled, None).await.unwrap();
    assert_eq!(
        store.journal_of(plan).await.unwrap().get(&9),
        Some(&JournalState::Interrupted)
    );
    let run = store.start_run("sync").await.unwrap();
    assert!(store
        .close_run(run, RunStatus::Interrupted, &serde_json::json!({}))
        .await
        .unwrap());
    store.close().await;
}

#[tokio::test]
async fn a_store_in_a_newer_format_is_refused_saying_so() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coexist.db");
    let url = format!("sqlite:{}", path.display());
    let store = Store::open(&url).await.unwrap();
    assert_eq!(
        store.body_format().await.unwrap(),
        coexist::store::BODY_FORMAT
    );
    store.close().await;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE meta SET value = 7 WHERE key = 'body_format'")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let refused = Store::open(&url).await.map(|_| ()).unwrap_err().to_string();
    assert!(
        refused.contains("format 7, written by a newer coexist"),
        "{refused}"
    );
}
