#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `coexist sync`, `plan`, `apply` and the other commands, run as a user
//! runs them: the real binary against simulated systems on disk.

mod common;

use std::time::{Duration, Instant};

use common::{people, person, Org, GOOGLE_AND_LDAP};

fn org(google: usize, ldap: usize) -> Org {
    Org::new(
        GOOGLE_AND_LDAP,
        &[
            ("google", people("g", "acmecorp.com", google)),
            ("ldap", people("m", "acmecorp.com", ldap)),
        ],
    )
}

#[test]
fn the_demo_syncs_acmecorp_twice_and_the_second_run_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::binary())
        .args(["demo", "--output", "json", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["recipients"], 1007,
        "1000 people and 7 groups: {report}"
    );
    // Each system gets a stub for everyone homed on the two others: 100
    // Google people and their group, 100 on Microsoft 365, 800 on the mail
    // server and its 6 groups.
    assert_eq!(report["operations_first_run"], 906 + 201 + 907);
    assert_eq!(report["operations_second_run"], 0);
    assert_eq!(report["conflicts"], 0);
    assert_eq!(
        report["stubs_by_system"]["google"], 906,
        "800 people and 6 groups of the mail server, 100 of Microsoft 365"
    );
    assert_eq!(report["stubs_by_system"]["ldap"], 201);
    assert_eq!(report["stubs_by_system"]["m365"], 907);
    let ldif = std::fs::read_to_string(dir.path().join("gal.ldif")).unwrap();
    assert_eq!(
        ldif.matches("\ndn: ").count() + usize::from(ldif.starts_with("dn: ")),
        1007
    );

    // The text demo tells a person the same story.
    let out = std::process::Command::new(common::binary())
        .args(["demo", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("GAL: 1007 recipients, 0 conflicts"), "{text}");
    assert!(text.contains("Second sync: 0 operations"), "{text}");
    // Mail between every pair of systems is delivered, to Microsoft 365 by
    // the proxy address its mailbox lists in the routing domain.
    let flows: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("Mail from"))
        .collect();
    assert_eq!(flows.len(), 6, "{text}");
    assert!(
        flows.iter().all(|l| l.ends_with("(local delivery)")),
        "{text}"
    );
    assert!(
        text.contains("@acmecorp.mail.onmicrosoft.com) → ldap (send to acmecorp.mail.onmicrosoft.com → m365) → m365 (local delivery)"),
        "{text}"
    );
}

#[test]
fn a_sync_writes_stubs_both_ways_and_a_second_sync_changes_nothing() {
    let org = org(3, 5);
    let (code, first) = org.json(&["sync"]);
    assert_eq!(code, 0, "{first}");
    assert_eq!(first["plan"]["summary"]["by_system"]["ldap"]["create"], 3);
    assert_eq!(first["plan"]["summary"]["by_system"]["google"]["create"], 5);
    assert_eq!(org.stubs("ldap").len(), 3);
    let (code, second) = org.json(&["sync"]);
    assert_eq!(code, 0);
    assert_eq!(second["apply"]["done"], 0, "{second}");

    // A change at the source propagates as an update of the changed attribute only.
    let mut google = people("g", "acmecorp.com", 3);
    google[1].attributes.title = Some("CFO".into());
    org.seed("google", google);
    let (_, third) = org.json(&["sync"]);
    let ops = third["plan"]["operations"].as_array().unwrap();
    assert_eq!(ops.len(), 1, "{third}");
    assert_eq!(ops[0]["action"], "update");
    assert_eq!(ops[0]["operation"]["changed"], serde_json::json!(["title"]));
}

#[test]
fn the_plan_json_has_the_documented_shape() {
    let org = org(1, 1);
    let (code, plan) = org.json(&["plan"]);
    assert_eq!(code, 0);
    let op = &plan["operations"][0];
    for key in ["system", "action", "kind", "address", "reason"] {
        assert!(op.get(key).is_some(), "missing {key}: {op}");
    }
    let to_ldap = plan["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["system"] == "ldap")
        .unwrap();
    assert_eq!(to_ldap["target"], "g0@gapps.acmecorp.com");
    assert!(plan["conflicts"].is_array());
    assert_eq!(plan["summary"]["create"], 2);
    // plan changes nothing.
    assert!(org.stubs("ldap").is_empty());
    let out = org.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(6));
}

#[test]
fn apply_runs_exactly_the_saved_plan_once() {
    let org = org(2, 2);
    let saved = org.path("plan.json");
    let out = org.run(&["plan", "--save", saved.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, applied) = org.json(&["apply", saved.to_str().unwrap()]);
    assert_eq!(code, 0, "{applied}");
    assert_eq!(applied["done"], 4);
    // Applying it again finds every operation done in the journal.
    let (code, again) = org.json(&["apply", saved.to_str().unwrap()]);
    assert_eq!(code, 0, "{again}");
    assert_eq!(
        (
            again["done"].as_u64(),
            again["skipped_already_done"].as_u64()
        ),
        (Some(0), Some(4))
    );
    assert_eq!(org.stubs("ldap").len(), 2);
    // And a fresh plan from the store is empty.
    let (_, plan) = org.json(&["plan", "--no-pull"]);
    assert_eq!(
        plan["operations"].as_array().map(Vec::len),
        Some(0),
        "{plan}"
    );
}

#[test]
fn a_stale_plan_is_refused_with_its_own_exit_code() {
    let org = org(2, 2);
    let saved = org.path("plan.json");
    org.run(&["plan", "--save", saved.to_str().unwrap()]);
    // Someone is added at the source, and a later plan stages it.
    let mut google = people("g", "acmecorp.com", 2);
    google.push(person("g-new", "newbie@acmecorp.com"));
    org.seed("google", google);
    org.run(&["plan"]);
    let out = org.run(&["apply", saved.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(5));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("has changed since") && stderr.contains("make a new plan"),
        "{stderr}"
    );
    assert!(org.stubs("ldap").is_empty(), "nothing was applied");
}

fn with(config_addition: &str, system: &str) -> String {
    // Adds settings to the [systems.connection] table of `system`.
    let marker = format!("seed = \"{system}.json\"");
    GOOGLE_AND_LDAP.replace(&marker, &format!("{marker}\n{config_addition}"))
}

#[test]
fn a_source_that_suddenly_returns_nothing_deletes_nothing() {
    // A full read of nothing, and a delta removing every recipient held.
    for fault in [
        "pull_returns_nothing = true",
        "pull_removes_everything = true",
    ] {
        let org = org(3, 4);
        assert_eq!(org.json(&["sync"]).0, 0);
        org.set_config(&with(fault, "google"));
        let (code, report) = org.json(&["sync"]);
        assert_eq!(code, 3, "{fault}: {report}");
        assert_eq!(report["plan"]["gates"][0]["gate"], "incomplete_source");
        assert!(report["plan"]["gates"][0]["message"]
            .as_str()
            .unwrap()
            .contains("google suddenly lists no recipients although it held 3"));
        assert_eq!(
            report["plan"]["summary"]["gal"], 7,
            "{fault}: google's people stay in the GAL"
        );
        assert_eq!(
            org.stubs("ldap").len(),
            3,
            "{fault}: the stubs of google's users are kept"
        );
        // The source comes back: nothing to do.
        org.set_config(GOOGLE_AND_LDAP);
        let (code, report) = org.json(&["sync"]);
        assert_eq!(
            (code, report["apply"]["done"].as_u64()),
            (0, Some(0)),
            "{fault}: {report}"
        );
    }
}

#[test]
fn creates_past_a_systems_capacity_are_held_back_with_exit_3_and_nothing_fails() {
    // google can hold 10 stubs; the 30 people on ldap would need 30.
    let org = org(3, 30);
    org.set_config(&with("max_stubs = 10", "google"));
    let (code, report) = org.json(&["sync"]);
    assert_eq!(code, 3, "{report}");
    let gate = &report["plan"]["gates"][0];
    assert_eq!(
        (gate["gate"].as_str(), gate["system"].as_str()),
        (Some("capacity"), Some("google"))
    );
    assert!(
        gate["message"].as_str().unwrap().contains(
            "with this plan's creates coexist would hold 30 stubs on google, so 20 creates are held back"
        ),
        "{gate}"
    );
    assert_eq!(
        report["apply"]["failed"], 0,
        "nothing is sent past the limit"
    );
    assert_eq!(org.stubs("google").len(), 10);
    assert_eq!(
        org.stubs("ldap").len(),
        3,
        "the other system is served in full"
    );

    // The next run holds back the same 20 and changes nothing else.
    let (code, again) = org.json(&["sync"]);
    assert_eq!(code, 3, "{again}");
    assert_eq!(
        (
            again["apply"]["done"].as_u64(),
            again["apply"]["withheld"].as_u64()
        ),
        (Some(0), Some(20))
    );
}

#[test]
fn a_saved_plan_is_refused_once_the_configuration_changed() {
    let org = org(2, 2);
    let saved = org.path("plan.json");
    org.run(&["plan", "--save", saved.to_str().unwrap()]);
    // google's routing domain changes: the saved stubs would route to the old one.
    org.set_config(&GOOGLE_AND_LDAP.replace("gapps.acmecorp.com", "g.acmecorp.com"));
    let out = org.run(&["apply", saved.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(org.stubs("ldap").is_empty(), "nothing was applied");
}

#[test]
fn a_partly_applied_plan_is_refused_once_the_state_moved_on() {
    let org = org(2, 2);
    org.set_config(&with("reject_addresses = [\"g1@acmecorp.com\"]", "ldap"));
    let saved = org.path("plan.json");
    org.run(&["plan", "--save", saved.to_str().unwrap()]);
    let (code, applied) = org.json(&["apply", saved.to_str().unwrap()]);
    assert_eq!(
        (code, applied["failed"].as_u64()),
        (4, Some(1)),
        "{applied}"
    );

    // A scheduled sync runs meanwhile (the fault fixed, g0 gone from google).
    org.set_config(GOOGLE_AND_LDAP);
    org.seed(
        "google",
        people("g", "acmecorp.com", 2).into_iter().skip(1).collect(),
    );
    assert_eq!(org.json(&["sync"]).0, 0);
    let stubs = org.stubs("ldap").len();

    // The old plan would re-create what the sync just settled: refused.
    let out = org.run(&["apply", saved.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("make a new plan"));
    assert_eq!(org.stubs("ldap").len(), stubs, "nothing was applied");
}

#[test]
fn a_pull_that_fails_part_way_holds_every_delete() {
    let org = org(4, 2);
    assert_eq!(org.json(&["sync"]).0, 0);
    // google can only read 1 of its 4 users now, and one ldap user left.
    org.set_config(&with("fail_pull_after = 1", "google"));
    org.seed("ldap", people("m", "acmecorp.com", 1));
    let (code, report) = org.json(&["sync"]);
    assert_eq!(code, 3, "{report}");
    assert_eq!(
        report["plan"]["summary"]["withheld"], 1,
        "the delete of m1's stub on google waits: {report}"
    );
    assert_eq!(
        org.stubs("ldap").len(),
        4,
        "no stub of the unread google users is deleted"
    );
    assert_eq!(org.stubs("google").len(), 2);
    org.set_config(GOOGLE_AND_LDAP);
    let (code, _) = org.json(&["sync"]);
    assert_eq!(code, 0);
    assert_eq!(org.stubs("google").len(), 1);
}

#[test]
fn too_many_deletes_trip_the_threshold_until_explicitly_allowed() {
    let org = org(40, 1);
    assert_eq!(org.json(&["sync"]).0, 0);
    org.seed("google", people("g", "acmecorp.com", 20)); // half of them leave
    let (code, report) = org.json(&["sync"]);
    assert_eq!(code, 3);
    assert_eq!(report["plan"]["gates"][0]["gate"], "delete_threshold");
    assert!(report["plan"]["gates"][0]["message"]
        .as_str()
        .unwrap()
        .contains("20 deletes planned on ldap (50% of its 40 stubs)"));
    assert_eq!(org.stubs("ldap").len(), 40);
    let out = org.run(&["sync"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Safety gate (delete_threshold)"));
    let (code, _) = org.json(&["sync", "--allow-deletes"]);
    assert_eq!(code, 0);
    assert_eq!(org.stubs("ldap").len(), 20);
}

#[test]
fn a_failed_operation_fails_alone_and_the_next_run_converges() {
    let org = org(3, 1);
    org.set_config(&with("reject_addresses = [\"g1@acmecorp.com\"]", "ldap"));
    let (code, report) = org.json(&["sync"]);
    assert_eq!(code, 4, "{report}");
    assert_eq!(report["apply"]["failed"], 1);
    assert_eq!(report["apply"]["done"], 3);
    assert!(report["apply"]["failures"][0]
        .as_str()
        .unwrap()
        .contains("create g1@acmecorp.com on ldap"));
    org.set_config(GOOGLE_AND_LDAP);
    let (code, report) = org.json(&["sync"]);
    assert_eq!((code, report["apply"]["done"].as_u64()), (0, Some(1)));
    assert_eq!(org.stubs("ldap").len(), 3);
}

/// Starts `coexist sync` in the background, each ldap operation taking
/// 4 ms, so a test can act while it applies.
fn start_slow_sync(org: &Org) -> std::process::Child {
    org.set_config(&with("apply_delay_ms = 4", "ldap"));
    std::process::Command::new(common::binary())
        .arg("--config")
        .arg(org.config())
        .args(["sync"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits until the simulated ldap system journalled `n` operations.
fn wait_until_ldap_holds(org: &Org, n: usize) {
    let state = org.path("ldap-state.jsonl");
    let started = Instant::now();
    // One event a non-blank line (each is written with a leading newline).
    let events = |s: String| s.lines().filter(|l| !l.trim().is_empty()).count();
    while std::fs::read_to_string(&state).map_or(0, events) < n {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the sync never applied {n} operations"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_run_killed_in_the_middle_of_an_apply_completes_on_the_next_run() {
    // Each kill lands at a different point of the apply.
    for kill_after in [1usize, 37, 120] {
        let org = org(150, 30);
        let mut child = start_slow_sync(&org);
        wait_until_ldap_holds(&org, kill_after);
        // kill -9
        child.kill().unwrap();
        child.wait().unwrap();
        let written = org.stubs("ldap").len();
        assert!(
            written >= kill_after && written < 150,
            "killed after {written} stubs"
        );

        org.set_config(GOOGLE_AND_LDAP);
        let (code, report) = org.json(&["sync"]);
        assert_eq!(code, 0, "{report}");
        assert!(
            !report["resumed"].as_array().unwrap().is_empty(),
            "the interrupted plan is noticed"
        );
        let stubs = org.stubs("ldap");
        assert_eq!(stubs.len(), 150, "no stub lost");
        let anchors: std::collections::HashSet<_> =
            stubs.iter().map(|s| s.stub.anchor.clone()).collect();
        assert_eq!(anchors.len(), 150, "no stub duplicated");
        let (_, again) = org.json(&["sync"]);
        assert_eq!(again["apply"]["done"], 0);

        // What the killed run left is reconciled too: its run is closed as
        // interrupted, none of its operations stays `started`, and every
        // stub it wrote is in the audit log.
        let context = format!("killed after {kill_after} operations on ldap");
        let runs = the_runs_of_a_kill_are_reconciled(&org, &context);
        let interrupted: Vec<_> = runs
            .iter()
            .filter(|r| r["status"] == "interrupted")
            .collect();
        assert_eq!(interrupted.len(), 1, "{context}: {runs:?}");
        assert!(
            interrupted[0]["finished_at"].is_string(),
            "{context}: the time it was found dead: {runs:?}"
        );
        assert!(
            interrupted[0]["summary"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("interrupted")),
            "{context}: {runs:?}"
        );
    }
}

/// After a run that follows one or more `kill -9`: no run is left shown as
/// `running` (`coexist runs`), no journalled operation of any plan is left
/// `started`, and the audit log holds one create for each stub the systems
/// hold (whoever made it: the killed run or the one after). Returns the
/// runs, newest first.
fn the_runs_of_a_kill_are_reconciled(org: &Org, context: &str) -> Vec<serde_json::Value> {
    let (code, runs) = org.json(&["runs", "--limit", "100"]);
    assert_eq!(code, 0, "{context}: {runs}");
    let runs = runs.as_array().unwrap().clone();
    assert!(
        runs.iter().all(|r| r["status"] != "running"),
        "{context}: a run is still shown as running: {runs:?}"
    );
    let url = coexist::config::Config::load(&org.config())
        .unwrap()
        .store_url()
        .unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = coexist::store::Store::open(&url).await.unwrap();
        let started = store.operations_left_started().await.unwrap();
        assert!(
            started.is_empty(),
            "{context}: journalled operations left started: {started:?}"
        );
        let audit = store.audit_log(100_000).await.unwrap();
        for system in ["google", "ldap"] {
            let mut created: Vec<&str> = audit
                .iter()
                .filter(|a| a.system == system && a.action == coexist::plan::Action::Create)
                .map(|a| a.address.as_str())
                .collect();
            created.sort_unstable();
            let stubs = org.stubs(system);
            let mut held: Vec<&str> = stubs
                .iter()
                .map(|s| s.stub.primary_address.as_str())
                .collect();
            held.sort_unstable();
            assert_eq!(
                created, held,
                "{context}: the audit log's creates on {system} against the stubs it holds"
            );
        }
        store.close().await;
    });
    runs
}

#[test]
fn a_second_run_while_one_is_applying_waits_its_turn_with_exit_7() {
    let org = org(150, 30);
    let mut first = start_slow_sync(&org);
    // Wait until the first run is applying.
    wait_until_ldap_holds(&org, 5);

    for command in [&["sync"][..], &["plan"][..]] {
        let out = org.run(command);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(7), "{command:?}: {stderr}");
        assert!(
            stderr.contains("another coexist run is working on this store: `sync` (pid")
                && stderr.contains("wait for it to end"),
            "{stderr}"
        );
    }
    assert!(first.wait().unwrap().success());

    // The first run did all the work; the lock is free again.
    assert_eq!(org.stubs("ldap").len(), 150);
    let (code, report) = org.json(&["sync"]);
    assert_eq!((code, report["apply"]["done"].as_u64()), (0, Some(0)));
    let (_, runs) = org.json(&["runs"]);
    assert_eq!(
        runs.as_array().map(Vec::len),
        Some(2),
        "the refused runs left no trace"
    );
}

#[test]
fn a_bad_configuration_names_file_line_and_key_and_exits_2() {
    let org = org(1, 1);
    org.set_config(&GOOGLE_AND_LDAP.replace(
        "unknown_recipient = { relay = \"ldap\" }",
        "unknown_recipient = { relay = \"exchange\" }",
    ));
    let out = org.run(&["check-config"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("coexist.toml:13: systems[0].unknown_recipient: `exchange` is not another configured system"), "{stderr}");

    org.set_config(&with("colour = \"blue\"", "ldap"));
    let out = org.run(&["check-config"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("systems[1].connection: unknown field `colour`"),
        "{stderr}"
    );

    org.set_config(GOOGLE_AND_LDAP);
    let out = org.run(&["check-config"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("OK (2 systems: google, ldap"), "{stdout}");
}

#[test]
fn conflicts_are_reported_and_get_no_stubs() {
    let org = Org::new(
        GOOGLE_AND_LDAP,
        &[
            (
                "google",
                vec![
                    person("g1", "ann@acmecorp.com"),
                    person("g2", "bob@acmecorp.com"),
                ],
            ),
            ("ldap", vec![person("m1", "ann@acmecorp.com")]),
        ],
    );
    let (code, report) = org.json(&["sync"]);
    assert_eq!(code, 0);
    assert_eq!(
        report["plan"]["conflicts"][0]["kind"],
        "mailbox_in_two_systems"
    );
    assert_eq!(org.stubs("ldap").len(), 1, "only bob");
    let out = org.run(&["plan"]);
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("Conflict: ann@acmecorp.com has a mailbox on both google and ldap"));
}

#[test]
fn runs_history_export_and_audit_are_kept() {
    let org = org(2, 2);
    org.json(&["sync"]);
    org.json(&["sync"]);
    let (code, runs) = org.json(&["runs"]);
    assert_eq!(code, 0);
    assert_eq!(runs.as_array().map(Vec::len), Some(2));
    assert_eq!(runs[1]["summary"]["done"], 4);
    for (format, needle) in [
        ("ldif", "dn: mail=g0@acmecorp.com,ou=gal,dc=acmecorp,dc=com"),
        ("csv", "g0@acmecorp.com,,person,google"),
        ("vcard", "BEGIN:VCARD"),
        ("json", "\"home\": \"google\""),
    ] {
        let out = org.run(&["export-gal", "--format", format]);
        assert_eq!(out.status.code(), Some(0));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(needle),
            "{format}"
        );
    }
}

#[test]
fn help_explains_the_commands_and_exit_codes() {
    let out = std::process::Command::new(common::binary())
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "sync",
        "plan",
        "apply",
        "check-config",
        "export-gal",
        "route",
        "demo",
        "Exit codes",
        "3 a safety gate",
        "7 another coexist run holds the",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}");
    }
}

// ---- Mail must never loop or vanish -------------------------------------
//
// Faults the configuration of a simulated system cannot express (a read
// that fails outright, a delta, refused credentials, a connector reporting
// a write without an id) are injected in-process: the engine runs against
// the organisation's own store and simulated systems, one wrapped.

mod in_process {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;
    use coexist::config::Config;
    use coexist::engine::{Engine, Quiet, RunOptions};
    use coexist::store::Store;
    use coexist_connector::{Applied, Connector, ConnectorError, Operation, Progress, Pull};

    use super::Org;

    type PullHook = Box<dyn Fn(Pull) -> Result<Pull, ConnectorError> + Send + Sync>;
    type ApplyHook =
        Box<dyn Fn(&Operation, Applied) -> Result<Applied, ConnectorError> + Send + Sync>;

    /// A system's own connector, with faults put in its answers.
    pub struct Faulty {
        inner: Arc<dyn Connector>,
        pull: Mutex<Option<PullHook>>,
        apply: Mutex<Option<ApplyHook>>,
        /// The cursor each pull was given.
        pub cursors: Mutex<Vec<Option<String>>>,
        /// Operations the system was asked to carry out.
        pub received: AtomicUsize,
    }

    impl Faulty {
        /// Every pull's result passes through `hook`.
        pub fn on_pull(
            &self,
            hook: impl Fn(Pull) -> Result<Pull, ConnectorError> + Send + Sync + 'static,
        ) {
            *self.pull.lock().unwrap() = Some(Box::new(hook));
        }

        /// Every operation is carried out, then its result passes through `hook`.
        pub fn on_apply(
            &self,
            hook: impl Fn(&Operation, Applied) -> Result<Applied, ConnectorError>
                + Send
                + Sync
                + 'static,
        ) {
            *self.apply.lock().unwrap() = Some(Box::new(hook));
        }

        pub fn received(&self) -> usize {
            self.received.load(Ordering::SeqCst)
        }
    }

    #[async_trait]
    impl Connector for Faulty {
        fn system(&self) -> &str {
            self.inner.system()
        }

        async fn pull(
            &self,
            cursor: Option<&str>,
            progress: &dyn Progress,
        ) -> Result<Pull, ConnectorError> {
            self.cursors
                .lock()
                .unwrap()
                .push(cursor.map(str::to_string));
            let pull = self.inner.pull(cursor, progress).await?;
            match &*self.pull.lock().unwrap() {
                Some(hook) => hook(pull),
                None => Ok(pull),
            }
        }

        async fn apply(&self, operation: &Operation) -> Result<Applied, ConnectorError> {
            self.received.fetch_add(1, Ordering::SeqCst);
            let applied = self.inner.apply(operation).await?;
            match &*self.apply.lock().unwrap() {
                Some(hook) => hook(operation, applied),
                None => Ok(applied),
            }
        }
    }

    /// The engine of `org` (its configuration, store and simulated systems),
    /// with the systems named in `faulty` wrapped.
    pub async fn engine(org: &Org, faulty: &[&str]) -> (Engine, BTreeMap<String, Arc<Faulty>>) {
        let config = Config::load(&org.config()).unwrap();
        let mut wrapped = BTreeMap::new();
        let connectors = coexist::connectors::connect_all(&config)
            .unwrap()
            .into_iter()
            .map(|inner| -> Arc<dyn Connector> {
                if !faulty.contains(&inner.system()) {
                    return inner;
                }
                let system = inner.system().to_string();
                let faulty = Arc::new(Faulty {
                    inner,
                    pull: Mutex::new(None),
                    apply: Mutex::new(None),
                    cursors: Mutex::new(Vec::new()),
                    received: AtomicUsize::new(0),
                });
                wrapped.insert(system, faulty.clone());
                faulty
            })
            .collect();
        let store = Store::open(&config.store_url().unwrap()).await.unwrap();
        (
            Engine::new(config, store, connectors, Arc::new(Quiet)),
            wrapped,
        )
    }

    pub fn options() -> RunOptions {
        RunOptions {
            actor: "tests/sync.rs".into(),
            ..RunOptions::default()
        }
    }

    /// A sync run by the engine, as JSON (so new fields read as null, not
    /// as a build failure).
    pub async fn sync(engine: &Engine) -> (i32, serde_json::Value) {
        let report = engine.sync(&options()).await.unwrap();
        (report.exit_code(), serde_json::to_value(&report).unwrap())
    }
}

use coexist_connector::{ConnectorError, FoundStub, Operation, PullMode};

#[tokio::test]
async fn an_incomplete_delta_removes_nothing_staged_and_a_plan_from_the_store_deletes_nothing() {
    let org = org(4, 2);
    let (engine, faulty) = in_process::engine(&org, &["google"]).await;
    assert_eq!(in_process::sync(&engine).await.0, 0);

    // google's next read is a delta naming g-1 as gone, then failing part-way.
    faulty["google"].on_pull(|mut pull| {
        pull.mode = PullMode::Delta;
        pull.recipients.clear();
        pull.stubs.clear();
        pull.removed = vec!["g-1".into()];
        pull.complete = false;
        Ok(pull)
    });
    engine.pull(false).await.unwrap();
    let staged = engine.staged().await.unwrap();
    assert_eq!(
        staged.system("google").unwrap().recipients.len(),
        4,
        "g-1 stays staged: the read that named it gone was incomplete"
    );

    // `plan --no-pull`: planned from the store alone, with no health to go by.
    let (plan, _) = engine
        .plan(&Default::default(), &in_process::options())
        .await
        .unwrap();
    assert_eq!(plan.summary.delete, 0, "{:?}", plan.operations);
}

#[test]
fn a_source_that_shrinks_is_not_believed_until_the_shrink_is_accepted() {
    let org = org(60, 2);
    assert_eq!(org.json(&["sync"]).0, 0);
    assert_eq!(org.stubs("ldap").len(), 60);

    // google lists 1 of its 60 people (a filter changed, read rights lost).
    org.seed("google", people("g", "acmecorp.com", 1));
    for args in [&["sync"][..], &["sync", "--allow-deletes"][..]] {
        let (code, report) = org.json(args);
        assert_eq!(code, 3, "{args:?}: {report}");
        let gate = &report["plan"]["gates"][0];
        assert_eq!(
            (gate["gate"].as_str(), gate["system"].as_str()),
            (Some("source_shrunk"), Some("google")),
            "{args:?}: {report}"
        );
        let message = gate["message"].as_str().unwrap();
        for needle in ["google lists 1 recipient", "60", "--accept-shrink google"] {
            assert!(message.contains(needle), "{args:?}: {needle}: {message}");
        }
        assert_eq!(report["plan"]["summary"]["gal"], 62, "google's people stay");
        assert_eq!(report["plan"]["summary"]["delete"], 0, "{report}");
        assert_eq!(org.stubs("ldap").len(), 60, "{args:?}: no stub deleted");
    }

    // Accepting the shrink believes google; the deletes it brings still
    // face the delete threshold, lifted on its own.
    let (code, report) = org.json(&["sync", "--accept-shrink", "google"]);
    assert_eq!(code, 3, "{report}");
    assert_eq!(report["plan"]["gates"][0]["gate"], "delete_threshold");
    assert_eq!(org.stubs("ldap").len(), 60);
    let (code, report) = org.json(&["sync", "--accept-shrink", "google", "--allow-deletes"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(org.stubs("ldap").len(), 1);
}

#[test]
fn a_source_that_shrinks_is_not_believed_by_a_fresh_store_either() {
    let org = org(60, 2);
    assert_eq!(org.json(&["sync"]).0, 0);
    // The configuration copied to another folder: a store with no history,
    // while ldap still holds the 60 stubs routing to google's people.
    std::fs::remove_file(org.path("coexist.db")).unwrap();
    org.seed("google", people("g", "acmecorp.com", 1));
    let (code, report) = org.json(&["sync", "--allow-deletes"]);
    assert_eq!(code, 3, "{report}");
    let gate = &report["plan"]["gates"][0];
    assert_eq!(
        (gate["gate"].as_str(), gate["system"].as_str()),
        (Some("source_shrunk"), Some("google")),
        "{report}"
    );
    assert!(
        gate["message"].as_str().unwrap().contains("60"),
        "the stubs routing to google are the evidence: {gate}"
    );
    assert_eq!(org.stubs("ldap").len(), 60, "no stub deleted");
}

#[tokio::test]
async fn a_run_resuming_an_interrupted_plan_reads_every_system_in_full() {
    let org = org(3, 2);
    let (engine, faulty) = in_process::engine(&org, &["google"]).await;
    // google hands out a cursor for incremental reads.
    faulty["google"].on_pull(|mut pull| {
        pull.cursor = Some("cursor-1".into());
        Ok(pull)
    });
    assert_eq!(in_process::sync(&engine).await.0, 0);
    assert_eq!(in_process::sync(&engine).await.0, 0);
    assert_eq!(
        faulty["google"].cursors.lock().unwrap().last().cloned(),
        Some(Some("cursor-1".into())),
        "an ordinary run reads incrementally"
    );

    // A run was killed while applying a plan.
    engine.store.save_plan("killed", "fp", "{}").await.unwrap();
    engine
        .store
        .set_plan_status("killed", coexist::store::PlanStatus::Applying)
        .await
        .unwrap();
    let (code, report) = in_process::sync(&engine).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["resumed"], serde_json::json!(["killed"]));
    assert_eq!(
        faulty["google"].cursors.lock().unwrap().last().cloned(),
        Some(None),
        "the run completing a killed one reads google in full"
    );
}

#[tokio::test]
async fn what_a_dead_run_left_started_on_a_system_that_cannot_be_read_waits_for_a_run_that_reads_it(
) {
    use coexist::store::{JournalState, PlanStatus, RunStatus};
    use coexist_connector::Connector;

    let org = org(3, 2);
    let (engine, faulty) = in_process::engine(&org, &["ldap"]).await;
    // A run planned, started ldap's three creates, made the first, and died.
    let pulls = engine.pull(false).await.unwrap();
    let (plan, _) = engine
        .plan(&engine.health(&pulls), &in_process::options())
        .await
        .unwrap();
    let dead = engine.store.start_run("sync").await.unwrap();
    engine
        .store
        .save_plan(
            &plan.id,
            &plan.fingerprint,
            &serde_json::to_string(&plan).unwrap(),
        )
        .await
        .unwrap();
    engine
        .store
        .set_plan_status(&plan.id, PlanStatus::Applying)
        .await
        .unwrap();
    let on_ldap: Vec<_> = plan.runnable().filter(|s| s.system == "ldap").collect();
    assert_eq!(on_ldap.len(), 3);
    let entries: Vec<(i64, &str)> = on_ldap.iter().map(|s| (s.seq, "ldap")).collect();
    engine
        .store
        .start_operations(&plan.id, Some(dead), &entries)
        .await
        .unwrap();
    faulty["ldap"].apply(&on_ldap[0].operation).await.unwrap();

    // The next run cannot read ldap: it closes the dead run, but cannot
    // tell what the dead run did there, so its operations stay started.
    faulty["ldap"].on_pull(|_| Err(ConnectorError::retryable("ldap://mail: connection refused")));
    let lock = engine.lock("sync").await.unwrap();
    let (code, report) = in_process::sync(&engine).await;
    lock.release().await;
    assert_eq!(code, 4, "{report}");
    assert_eq!(report["resumed"], serde_json::json!([plan.id]));
    let runs = engine.store.runs(10).await.unwrap();
    let closed = runs.iter().find(|r| r.id == dead).unwrap();
    assert_eq!(closed.status, RunStatus::Interrupted, "{runs:?}");
    assert!(closed.finished_at.is_some());
    assert_eq!(
        engine.store.operations_left_started().await.unwrap().len(),
        3
    );
    assert_eq!(
        engine.store.plan(&plan.id).await.unwrap().map(|p| p.status),
        Some(PlanStatus::Applying)
    );

    // A run that reads ldap settles them: the stub the dead run made is
    // done and audited as its own; the others are interrupted, and made
    // (and audited) by this run's plan.
    faulty["ldap"].on_pull(Ok);
    let lock = engine.lock("sync").await.unwrap();
    let (code, report) = in_process::sync(&engine).await;
    lock.release().await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["resumed"], serde_json::json!([plan.id]));
    assert!(engine
        .store
        .operations_left_started()
        .await
        .unwrap()
        .is_empty());
    let journal = engine.store.journal_of(&plan.id).await.unwrap();
    let states: Vec<JournalState> = on_ldap.iter().map(|s| journal[&s.seq]).collect();
    assert_eq!(
        states,
        [
            JournalState::Done,
            JournalState::Interrupted,
            JournalState::Interrupted
        ]
    );
    assert_eq!(
        engine.store.plan(&plan.id).await.unwrap().map(|p| p.status),
        Some(PlanStatus::Superseded)
    );
    let audit = engine.store.audit_log(100).await.unwrap();
    let on_ldap_audit: Vec<_> = audit.iter().filter(|a| a.system == "ldap").collect();
    assert_eq!(on_ldap_audit.len(), 3, "{audit:?}");
    let by_dead: Vec<_> = on_ldap_audit
        .iter()
        .filter(|a| a.run_id == Some(dead))
        .collect();
    assert_eq!(by_dead.len(), 1, "{audit:?}");
    assert_eq!(by_dead[0].address, on_ldap[0].address);
    assert!(
        by_dead[0]
            .actor
            .contains(&format!("run {dead}, interrupted")),
        "{}",
        by_dead[0].actor
    );
    assert_eq!(org.stubs("ldap").len(), 3);
}

#[tokio::test]
async fn a_system_that_cannot_be_read_is_sent_nothing_and_the_run_exits_4() {
    let org = org(3, 2);
    assert_eq!(org.json(&["sync"]).0, 0);
    // A newcomer on google, for whom ldap needs a stub; and the contact of
    // m0 deleted from google by hand, so google needs it again.
    org.seed("google", people("g", "acmecorp.com", 4));
    let (engine, faulty) = in_process::engine(&org, &["google", "ldap"]).await;
    faulty["google"].on_pull(|mut pull| {
        pull.stubs
            .retain(|s| s.stub.primary_address != "m0@acmecorp.com");
        Ok(pull)
    });
    // ldap cannot be read.
    faulty["ldap"].on_pull(|_| Err(ConnectorError::retryable("ldap://mail: connection refused")));

    let (code, report) = in_process::sync(&engine).await;
    assert_eq!(code, 4, "{report}");
    assert_eq!(
        faulty["ldap"].received(),
        0,
        "nothing sent to ldap: {report}"
    );
    assert_eq!(faulty["google"].received(), 1, "google is served: {report}");
    let gate = report["plan"]["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["system"] == "ldap")
        .unwrap_or_else(|| panic!("a gate names ldap: {report}"));
    assert_eq!(gate["gate"], "unreadable_source");
    assert!(
        gate["message"].as_str().unwrap().contains(
            "ldap could not be read (temporary failure: ldap://mail: connection refused)"
        ),
        "{gate}"
    );

    // The same plan saved and applied later: still nothing for ldap, exit 4.
    let pulls = engine.pull(false).await.unwrap();
    let (plan, _) = engine
        .plan(&engine.health(&pulls), &in_process::options())
        .await
        .unwrap();
    let saved = org.path("plan.json");
    std::fs::write(&saved, serde_json::to_vec(&plan).unwrap()).unwrap();
    engine.store.close().await;
    let (code, applied) = org.json(&["apply", saved.to_str().unwrap()]);
    assert_eq!(code, 4, "{applied}");
    assert_eq!(applied["unreadable"], serde_json::json!(["ldap"]));
    assert_eq!(org.stubs("ldap").len(), 3, "nothing written to ldap");
}

#[tokio::test]
async fn credentials_refused_mid_apply_stop_that_system_with_one_message() {
    // 250 creates for ldap: three chunks of at most 100.
    let org = org(250, 1);
    let (engine, faulty) = in_process::engine(&org, &["ldap"]).await;
    faulty["ldap"].on_apply(|_, _| {
        Err(ConnectorError::authentication(
            "ldap refused the bind as cn=coexist (invalidCredentials)",
        ))
    });
    let (code, report) = in_process::sync(&engine).await;
    assert_eq!(code, 4, "{report}");
    assert_eq!(faulty["ldap"].received(), 100, "one chunk, then no more");
    let apply = &report["apply"];
    assert_eq!(apply["failed"], 100, "{apply}");
    assert_eq!(apply["not_attempted"], 150, "{apply}");
    assert_eq!(apply["done"], 1, "google is served: {apply}");
    let failures = apply["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{failures:?}");
    let message = failures[0].as_str().unwrap();
    assert!(
        message.contains("invalidCredentials") && message.contains("150"),
        "{message}"
    );
}

#[tokio::test]
async fn identical_failures_are_summarised_not_repeated() {
    let org = org(30, 1);
    let (engine, faulty) = in_process::engine(&org, &["ldap"]).await;
    faulty["ldap"].on_apply(|_, _| {
        Err(ConnectorError::permanent(
            "object class inetLocalMailRecipient is not in the schema",
        ))
    });
    let (code, report) = in_process::sync(&engine).await;
    assert_eq!(code, 4);
    assert_eq!(report["apply"]["failed"], 30);
    let failures = report["apply"]["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0]
            .as_str()
            .unwrap()
            .contains("and 29 more operations on ldap failed the same way"),
        "{failures:?}"
    );
}

#[tokio::test]
async fn a_write_reported_without_an_id_is_a_failure_and_never_stored() {
    let org = org(2, 1);
    let (engine, faulty) = in_process::engine(&org, &["ldap"]).await;
    faulty["ldap"].on_apply(|operation, applied| match operation {
        Operation::Create { stub } => Ok(coexist_connector::Applied {
            found: Some(FoundStub {
                id: String::new(),
                locator: String::new(),
                misplaced: false,
                stub: stub.clone(),
            }),
        }),
        _ => Ok(applied),
    });
    let (code, report) = in_process::sync(&engine).await;
    assert_eq!(code, 4, "{report}");
    assert_eq!(report["apply"]["failed"], 2, "{report}");
    let failure = report["apply"]["failures"][0].as_str().unwrap();
    assert!(failure.contains("without an id"), "{failure}");
    let staged = engine.staged().await.unwrap();
    assert!(
        staged
            .system("ldap")
            .unwrap()
            .stubs
            .iter()
            .all(|s| !s.id.is_empty()),
        "no stub without an id is staged"
    );
}

#[test]
fn plan_lists_the_entries_a_read_skipped_even_without_reading() {
    let org = org(4, 2);
    org.set_config(&with("fail_pull_after = 1", "google"));
    for args in [&["plan"][..], &["plan", "--no-pull"][..]] {
        let (_, plan) = org.json(args);
        let notices = plan["notices"].as_array().unwrap();
        assert!(
            notices.iter().any(|n| n["system"] == "google"
                && n["object"] == "google"
                && n["message"]
                    .as_str()
                    .unwrap()
                    .contains("the listing failed part-way")),
            "{args:?}: {plan}"
        );
    }
}

#[test]
fn a_plan_step_with_an_unknown_action_is_not_a_plan() {
    let org = org(1, 1);
    let saved = org.path("plan.json");
    org.run(&["plan", "--save", saved.to_str().unwrap()]);
    let text = std::fs::read_to_string(&saved).unwrap();
    let mut plan: serde_json::Value = serde_json::from_str(&text).unwrap();
    plan["operations"][0]["action"] = "frobnicate".into();
    std::fs::write(&saved, plan.to_string()).unwrap();
    let out = org.run(&["apply", saved.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(org.stubs("ldap").is_empty() && org.stubs("google").is_empty());
}

/// A small generator of random numbers (splitmix64), so a seed replays a run.
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

#[test]
fn a_sync_killed_at_random_points_completes_with_no_stub_lost_or_duplicated() {
    // kill -9 lands anywhere: while reading, planning, applying google's
    // chunk, inside one of ldap's three slow chunks or between them, while
    // a chunk's results are recorded, or after the end; sometimes twice or
    // three times before a run completes. The seed is printed; set
    // COEXIST_KILL_SEED to replay a failure.
    let seed = std::env::var("COEXIST_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("kill -9 at random points: seed {seed} (COEXIST_KILL_SEED={seed} replays it)");
    let mut random = Random(seed);
    let (google, ldap) = (250, 40);
    let mut mid_apply = false;
    for round in 0..5 {
        let org = org(google, ldap);
        let mut kills = Vec::new();
        for _ in 0..=random.below(3) {
            let mut child = start_slow_sync(&org);
            let after = random.below(1_500);
            std::thread::sleep(Duration::from_millis(after));
            let finished = child.try_wait().unwrap().is_some();
            let _ = child.kill();
            child.wait().unwrap();
            let held = org.stubs("ldap").len();
            mid_apply |= !finished && held > 0 && held < google;
            kills.push(if finished {
                format!("{after} ms (it had ended)")
            } else {
                format!("{after} ms (ldap held {held} stubs)")
            });
        }
        let context = format!("seed {seed}, round {round}, killed after {kills:?}");
        eprintln!("{context}");

        org.set_config(GOOGLE_AND_LDAP);
        let (code, report) = org.json(&["sync"]);
        assert_eq!(code, 0, "{context}: {report}");
        // Every recipient has exactly one stub where it should, and no more.
        for (system, home, n, prefix) in [
            ("ldap", "google", google, "g"),
            ("google", "ldap", ldap, "m"),
        ] {
            let stubs = org.stubs(system);
            let mut anchors: Vec<String> = stubs.iter().map(|s| s.stub.anchor.clone()).collect();
            anchors.sort();
            let mut expected: Vec<String> =
                (0..n).map(|i| format!("{home}:{prefix}-{i}")).collect();
            expected.sort();
            assert_eq!(anchors, expected, "{context}: the stubs on {system}");
        }
        // Planning again, from the systems and from the store alone, finds
        // nothing to do: the store recorded what the systems hold.
        for args in [&["plan"][..], &["plan", "--no-pull"][..]] {
            let (code, plan) = org.json(args);
            assert_eq!(code, 0, "{context}: {args:?}: {plan}");
            assert_eq!(
                plan["operations"].as_array().map(Vec::len),
                Some(0),
                "{context}: {args:?}: {plan}"
            );
        }
        the_runs_of_a_kill_are_reconciled(&org, &context);
    }
    assert!(
        mid_apply,
        "seed {seed}: no kill landed while ldap's stubs were being written"
    );
}
