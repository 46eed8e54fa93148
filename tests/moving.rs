#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `coexist move`, run as an admin runs it: the real binary against
//! simulated systems on disk, stopped after every single change and run
//! again, with mail to the person traced from every system and from the
//! internet in between.

mod common;

use common::{person, three_systems, Org};

/// A sync of `org` succeeds, plans no operation and finds no conflict.
fn assert_a_sync_changes_nothing(org: &Org) {
    let (code, sync) = org.json(&["sync"]);
    assert_eq!(code, 0, "{sync}");
    common::assert_nothing_planned(&sync);
}

/// gus on Google, ann on the mail server, nobody on `mail2`
/// ([`three_systems`]), synced once.
fn ann_on_ldap_synced() -> Org {
    let org = Org::new(
        &three_systems(),
        &[
            ("google", vec![person("g1", "gus@acmecorp.com")]),
            ("ldap", vec![person("m1", "ann@acmecorp.com")]),
            ("mail2", vec![]),
        ],
    );
    let (code, report) = org.json(&["sync"]);
    assert_eq!(code, 0, "{report}");
    org
}

const SENDERS: [&str; 4] = ["internet", "google", "ldap", "mail2"];

/// Reads every system (`plan` stages what it reads and changes nothing),
/// then traces mail to `address` from every sender: where it is delivered.
fn delivered_at(org: &Org, address: &str) -> Vec<(String, String)> {
    let (code, plan) = org.json(&["plan"]);
    assert!(code == 0 || code == 6, "plan exited {code}: {plan}");
    SENDERS
        .iter()
        .map(|from| {
            let (code, traced) = org.json(&["route", address, "--from", from]);
            let outcome = &traced["outcome"];
            assert_eq!(
                outcome["result"], "delivered",
                "mail from {from} to {address} is not delivered (exit {code}): {traced}"
            );
            (
                from.to_string(),
                outcome["system"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn journal_has(org: &Org, system: &str, event: &str) -> bool {
    std::fs::read_to_string(org.path(&format!("{system}-state.jsonl")))
        .unwrap_or_default()
        .contains(&format!("\"event\":\"{event}\""))
}

/// Runs `args` with `--stop-after 1` until a run makes no change: after
/// each change, `check` is called with the count of changes so far.
fn step_by_step(org: &Org, args: &[&str], mut check: impl FnMut(usize)) -> serde_json::Value {
    let mut changes = 0;
    loop {
        let mut stepped = vec!["--output", "json"];
        stepped.extend_from_slice(args);
        stepped.extend(["--stop-after", "1"]);
        let out = org.run(&stepped);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("stopped after 1 changes") {
            // Stopped before its second change: one change was made.
            assert_eq!(out.status.code(), Some(4), "{stderr}");
            changes += 1;
            eprintln!("{args:?}: change {changes} made");
            assert!(changes < 20, "the move never completes");
            check(changes);
            continue;
        }
        let code = out.status.code().unwrap_or(-1);
        let report: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
        assert_eq!(code, 0, "{report}");
        // A run with nothing left to change stops nowhere.
        check(changes);
        return report;
    }
}

#[test]
fn after_every_change_of_a_move_mail_is_delivered_at_the_current_home_and_finish_leaves_a_stub() {
    let org = Org::new(
        &three_systems(),
        &[
            ("google", vec![person("g1", "gus@acmecorp.com")]),
            ("ldap", vec![person("m1", "ann@acmecorp.com")]),
            ("mail2", vec![person("x1", "cy@acmecorp.com")]),
        ],
    );
    let (code, report) = org.json(&["sync"]);
    assert_eq!(code, 0, "{report}");
    for (from, at) in delivered_at(&org, "ann@acmecorp.com") {
        assert_eq!(at, "ldap", "from {from} before the move");
    }

    // --dry-run names the steps and changes nothing.
    let (code, dry) = org.json(&["move", "ann@acmecorp.com", "--to", "mail2", "--dry-run"]);
    assert_eq!(code, 0, "{dry}");
    let steps: Vec<&str> = dry["people"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "placed on ldap (the old home)",
            "account made on mail2",
            "the stub on mail2 removed",
            "placed on mail2",
            "the old account on ldap forwards to ann@mail2.acmecorp.com",
            "every other system's stub routes to ann@mail2.acmecorp.com"
        ]
    );
    assert!(!journal_has(&org, "mail2", "account"));

    // The move, one change at a time.
    let report = step_by_step(&org, &["move", "ann@acmecorp.com", "--to", "mail2"], |n| {
        let made = journal_has(&org, "mail2", "account");
        let forwarded = journal_has(&org, "ldap", "forward");
        for (from, at) in delivered_at(&org, "ann@acmecorp.com") {
            let expected = if forwarded {
                "mail2"
            } else if from == "mail2" && made {
                // The target's own users reach the new mailbox at once.
                "mail2"
            } else {
                "ldap"
            };
            assert_eq!(at, expected, "after change {n}, from {from}");
        }
    });
    assert_eq!(report["people"][0]["state"], "moved", "{report}");
    assert!(journal_has(&org, "ldap", "forward"));
    // The old home forwards; no stub of coexist's stands beside it.
    assert!(org
        .stubs("ldap")
        .iter()
        .all(|s| s.stub.primary_address != "ann@acmecorp.com"));
    assert!(org
        .stubs("mail2")
        .iter()
        .all(|s| s.stub.primary_address != "ann@acmecorp.com"));
    assert_a_sync_changes_nothing(&org);

    // --finish, one change at a time: mail stays at the new home.
    let report = step_by_step(&org, &["move", "--finish", "ann@acmecorp.com"], |n| {
        for (from, at) in delivered_at(&org, "ann@acmecorp.com") {
            assert_eq!(at, "mail2", "after change {n} of --finish, from {from}");
        }
    });
    assert_eq!(report["people"][0]["state"], "finished", "{report}");
    assert!(journal_has(&org, "ldap", "retire"));
    let stub = org
        .stubs("ldap")
        .into_iter()
        .find(|s| s.stub.primary_address == "ann@acmecorp.com")
        .expect("an ordinary stub at the old home");
    assert_eq!(stub.stub.route.target(), Some("ann@mail2.acmecorp.com"));
    assert_a_sync_changes_nothing(&org);
}

#[test]
fn an_old_home_that_cannot_forward_keeps_the_person_placed_there_and_a_rerun_completes() {
    let org = ann_on_ldap_synced();
    // The mail server refuses to change ann's account.
    let refusing = three_systems().replace(
        "state = \"ldap-state.jsonl\"",
        "state = \"ldap-state.jsonl\"\nreject_addresses = [\"ann@acmecorp.com\"]",
    );
    org.set_config(&refusing);
    let (code, report) = org.json(&["move", "ann@acmecorp.com", "--to", "mail2"]);
    assert_eq!(code, 4, "{report}");
    let ann = &report["people"][0];
    assert_eq!(ann["state"], "failed");
    assert!(
        ann["error"]
            .as_str()
            .unwrap()
            .contains("stays placed on ldap"),
        "{ann}"
    );
    assert!(journal_has(&org, "mail2", "account"), "step 1 is done");
    for (from, at) in delivered_at(&org, "ann@acmecorp.com") {
        let expected = if from == "mail2" { "mail2" } else { "ldap" };
        assert_eq!(at, expected, "from {from}");
    }
    let (_, placed) = org.json(&["place", "ann@acmecorp.com", "ldap"]);
    assert_eq!(placed["changed"], false, "placed back on the old home");

    org.set_config(&three_systems());
    let (code, report) = org.json(&["move", "ann@acmecorp.com", "--to", "mail2"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["people"][0]["state"], "moved");
    for (from, at) in delivered_at(&org, "ann@acmecorp.com") {
        assert_eq!(at, "mail2", "from {from}");
    }
    // Moving it there again changes nothing.
    let (code, again) = org.json(&["move", "ann@acmecorp.com", "--to", "mail2"]);
    assert_eq!(code, 0, "{again}");
    assert!(
        again["people"][0]["steps"].as_array().unwrap().is_empty(),
        "{again}"
    );
    assert_eq!(again["operations"], 0);
}

#[test]
fn move_refuses_what_it_cannot_move_naming_why_and_changes_nothing() {
    let org = ann_on_ldap_synced();
    let refused = |args: &[&str], words: &str| {
        let out = org.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        assert!(stderr.contains(words), "{args:?}: {stderr}");
    };
    refused(
        &["move", "ann@acmecorp.com", "--to", "nowhere"],
        "not a configured system",
    );
    refused(
        &["move", "zed@acmecorp.com", "--to", "mail2"],
        "no system holds a mailbox",
    );
    refused(
        &["move", "gus@acmecorp.com", "--to", "google"],
        "on google already",
    );
    refused(
        &["move", "--finish", "ann@acmecorp.com"],
        "no move of it to finish",
    );
    assert!(!journal_has(&org, "mail2", "account"));
    let (_, placed) = org.json(&["place", "--clear", "ann@acmecorp.com"]);
    assert_eq!(placed["changed"], false, "nothing was placed");
}

#[test]
fn a_person_named_by_an_alias_moves_with_every_address_and_both_reach_the_new_home() {
    let mut ann = person("m1", "ann@acmecorp.com");
    ann.aliases = vec!["a.nn@acmecorp.com".into()];
    ann.attributes.given_name = Some("Ann".into());
    let org = Org::new(
        &three_systems(),
        &[
            ("google", vec![person("g1", "gus@acmecorp.com")]),
            ("ldap", vec![ann]),
            ("mail2", vec![]),
        ],
    );
    let (code, report) = org.json(&["sync"]);
    assert_eq!(code, 0, "{report}");
    let (code, report) = org.json(&["move", "A.NN@acmecorp.com", "--to", "mail2"]);
    assert_eq!(code, 0, "{report}");
    let moved = &report["people"][0];
    assert_eq!(moved["address"], "ann@acmecorp.com", "the primary address");
    assert!(moved["initial_password"].as_str().unwrap().len() >= 16);
    let journal = std::fs::read_to_string(org.path("mail2-state.jsonl")).unwrap();
    assert!(
        journal.contains("a.nn@acmecorp.com"),
        "the alias on the new account"
    );
    assert!(
        journal.contains("\"given_name\":\"Ann\""),
        "the names copied"
    );
    for address in ["ann@acmecorp.com", "a.nn@acmecorp.com"] {
        for (from, at) in delivered_at(&org, address) {
            assert_eq!(at, "mail2", "{address} from {from}");
        }
    }
    let (code, report) = org.json(&["move", "--finish", "a.nn@acmecorp.com"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["people"][0]["state"], "finished");
    for address in ["ann@acmecorp.com", "a.nn@acmecorp.com"] {
        for (from, at) in delivered_at(&org, address) {
            assert_eq!(at, "mail2", "{address} from {from} once finished");
        }
    }
    let stub = org
        .stubs("ldap")
        .into_iter()
        .find(|s| s.stub.primary_address == "ann@acmecorp.com")
        .expect("the old home's stub");
    assert_eq!(stub.stub.aliases, ["a.nn@acmecorp.com"]);
}
