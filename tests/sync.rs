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
    assert_eq!(report["operations_first_run"], 1007);
    assert_eq!(report["operations_second_run"], 0);
    assert_eq!(report["conflicts"], 0);
    assert_eq!(
        report["stubs_by_system"]["google"], 906,
        "900 people and 6 groups of the mail server"
    );
    assert_eq!(report["stubs_by_system"]["ldap"], 101);
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
    while std::fs::read_to_string(&state).map_or(0, |s| s.lines().count()) < n {
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
    }
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
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK (2 systems: google, ldap)"));
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
