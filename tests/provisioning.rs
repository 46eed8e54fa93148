#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `coexist place` and `coexist provision`, run as an admin runs them: the
//! real binary against simulated systems on disk.

mod common;

use std::time::{Duration, Instant};

use common::{google_system, people, person, three_systems, Org, GOOGLE_AND_LDAP};

fn stub_addresses(org: &Org, system: &str) -> Vec<String> {
    let mut addresses: Vec<String> = org
        .stubs(system)
        .into_iter()
        .map(|s| s.stub.primary_address)
        .collect();
    addresses.sort();
    addresses
}

#[test]
fn a_placement_settles_a_mailbox_in_two_systems_and_clear_undoes_it() {
    let org = Org::new(
        &three_systems(),
        &[
            (
                "google",
                vec![
                    person("g1", "ann@acmecorp.com"),
                    person("g2", "bob@acmecorp.com"),
                ],
            ),
            ("ldap", vec![person("m1", "ann@acmecorp.com")]),
            ("mail2", vec![person("x1", "cy@acmecorp.com")]),
        ],
    );
    let (code, report) = org.json(&["sync"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        report["plan"]["conflicts"][0]["kind"],
        "mailbox_in_two_systems"
    );
    assert_eq!(stub_addresses(&org, "mail2"), ["bob@acmecorp.com"]);

    // --dry-run: what placing would do, nothing recorded.
    let (code, dry) = org.json(&["place", "ann@acmecorp.com", "google", "--dry-run"]);
    assert_eq!(code, 0, "{dry}");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["next_sync"]["operations"][0]["system"], "mail2");
    let (_, report) = org.json(&["plan", "--no-pull"]);
    assert_eq!(report["conflicts"][0]["kind"], "mailbox_in_two_systems");

    // The admin decides Google is ann's home.
    let (code, placed) = org.json(&["place", "Ann@AcmeCorp.com", "google"]);
    assert_eq!(code, 0, "{placed}");
    assert_eq!(placed["address"], "ann@acmecorp.com");
    assert_eq!(placed["system"], "google");
    assert_eq!(placed["changed"], true);
    let next = &placed["next_sync"];
    assert_eq!(next["conflicts"].as_array().unwrap().len(), 0, "{next}");
    let steps = next["operations"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "only ann's stub on mail2: {next}");
    assert_eq!(steps[0]["system"], "mail2");
    assert_eq!(steps[0]["action"], "create");
    assert_eq!(steps[0]["target"], "ann@gapps.acmecorp.com");
    // Placing writes no stub: the next sync does.
    assert_eq!(stub_addresses(&org, "mail2"), ["bob@acmecorp.com"]);

    let (code, report) = org.json(&["sync"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["plan"]["conflicts"].as_array().unwrap().len(), 0);
    assert_eq!(
        stub_addresses(&org, "mail2"),
        ["ann@acmecorp.com", "bob@acmecorp.com"]
    );
    // The LDAP server holds ann's old mailbox: no stub of coexist's there.
    assert!(!stub_addresses(&org, "ldap").contains(&"ann@acmecorp.com".to_string()));
    let out = org.run(&["route", "ann@acmecorp.com", "--from", "mail2"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Delivered to a mailbox on google"));

    // Placing it again changes nothing; the text says so.
    let out = org.run(&["place", "ann@acmecorp.com", "google"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("was placed on google already"));

    // --clear: the conflict is back, and the next sync says so again.
    let (code, cleared) = org.json(&["place", "--clear", "ann@acmecorp.com"]);
    assert_eq!(code, 0, "{cleared}");
    assert_eq!(cleared["system"], serde_json::Value::Null);
    assert_eq!(cleared["before"], "google");
    assert_eq!(
        cleared["next_sync"]["conflicts"][0]["kind"],
        "mailbox_in_two_systems"
    );
    let (_, report) = org.json(&["sync"]);
    assert_eq!(
        report["plan"]["conflicts"][0]["kind"],
        "mailbox_in_two_systems"
    );
    // Its stub on mail2 stays (a conflicted recipient keeps its stubs).
    assert!(stub_addresses(&org, "mail2").contains(&"ann@acmecorp.com".to_string()));

    // Both placements are in the history.
    let (_, runs) = org.json(&["runs"]);
    let places = runs
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["command"] == "place")
        .count();
    assert_eq!(places, 2, "{runs}");
}

#[test]
fn place_refuses_an_unknown_system_and_a_malformed_address() {
    let org = Org::new(GOOGLE_AND_LDAP, &[("google", vec![]), ("ldap", vec![])]);
    let out = org.run(&["place", "ann@acmecorp.com", "exchange"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("exchange: not a configured system"));
    let out = org.run(&["place", "not-an-address", "google"]);
    assert_eq!(out.status.code(), Some(2));
    let out = org.run(&["place", "ann@acmecorp.com"]);
    assert_eq!(out.status.code(), Some(2), "SYSTEM or --clear is needed");
}

fn acmecorp() -> Org {
    let org = Org::new(
        GOOGLE_AND_LDAP,
        &[
            ("google", people("g", "acmecorp.com", 2)),
            ("ldap", people("m", "acmecorp.com", 2)),
        ],
    );
    let (code, report) = org.json(&["sync"]);
    assert_eq!(code, 0, "{report}");
    org
}

#[test]
fn provision_creates_the_account_at_home_and_the_stubs_elsewhere_and_mail_is_delivered() {
    let org = acmecorp();
    let (code, report) = org.json(&[
        "provision",
        "ann@acmecorp.com",
        "--home",
        "google",
        "--given-name",
        "Ann",
        "--surname",
        "Smith",
        "--alias",
        "A.Smith@acmecorp.com",
        "--attribute",
        "title=Director",
    ]);
    assert_eq!(code, 0, "{report}");
    let ann = &report["people"][0];
    assert_eq!(ann["state"], "created");
    assert_eq!(ann["home"], "google");
    let password = ann["initial_password"].as_str().unwrap().to_string();
    assert_eq!(password.len(), 20);
    // The stub on the mail server carries both addresses and routes to
    // ann's Google routing address.
    let stubs = org.stubs("ldap");
    let stub = stubs
        .iter()
        .find(|s| s.stub.primary_address == "ann@acmecorp.com")
        .expect("ann's stub on ldap");
    assert_eq!(stub.stub.aliases, ["a.smith@acmecorp.com"]);
    assert_eq!(stub.stub.attributes.title.as_deref(), Some("Director"));
    assert_eq!(
        stub.stub.route.target(),
        Some("ann@gapps.acmecorp.com"),
        "{stub:?}"
    );
    // Only ann's operation ran: the plan was restricted to her.
    assert_eq!(report["plan"]["operations"].as_array().unwrap().len(), 1);
    assert_eq!(report["apply"]["done"], 1);
    // Mail to ann is delivered on Google from everywhere.
    let routes = ann["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 3, "google, ldap and the internet: {routes:?}");
    for route in routes {
        assert_eq!(route["outcome"], "delivered", "{route}");
        assert_eq!(route["at"], "google", "{route}");
    }
    // The password is in no file of the store.
    let store = std::fs::read_dir(org.dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".db"))
        .collect::<Vec<_>>();
    assert!(!store.is_empty());
    for file in store {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes
                .windows(password.len())
                .any(|w| w == password.as_bytes()),
            "{} holds the password",
            file.display()
        );
    }
    // A sync afterwards has nothing left to do for ann.
    let (code, sync) = org.json(&["sync"]);
    assert_eq!(code, 0);
    assert_eq!(
        sync["plan"]["operations"].as_array().unwrap().len(),
        0,
        "{sync}"
    );

    // The same command again: ann exists, made by this command; carried
    // on with, nothing created twice, no new password.
    let (code, again) = org.json(&["provision", "ann@acmecorp.com", "--home", "google"]);
    assert_eq!(code, 0, "{again}");
    assert_eq!(again["people"][0]["state"], "existed");
    assert!(again["people"][0]["initial_password"].is_null());
}

#[test]
fn provision_refuses_an_address_or_alias_in_use_naming_where() {
    let org = acmecorp();
    let out = org.run(&["provision", "m0@acmecorp.com", "--home", "google"]);
    assert_eq!(out.status.code(), Some(9));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("m0@acmecorp.com is a mailbox on ldap"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    // An alias held by a stub coexist wrote for a Google person.
    let (code, refused) = org.json(&[
        "provision",
        "new@acmecorp.com",
        "--home",
        "ldap",
        "--alias",
        "g1@acmecorp.com",
    ]);
    assert_eq!(code, 9);
    let message = refused["error"].as_str().unwrap();
    assert!(
        message.contains("g1@acmecorp.com is a mailbox on google"),
        "{message}"
    );
    assert!(
        message.contains("g1@acmecorp.com is routed by coexist's stub on ldap"),
        "{message}"
    );
    // Nothing was placed or created.
    let (_, placed) = org.json(&["place", "--clear", "new@acmecorp.com"]);
    assert_eq!(placed["changed"], false);
    assert!(!stub_addresses(&org, "google").contains(&"new@acmecorp.com".to_string()));
}

#[test]
fn a_dry_run_prints_the_steps_and_changes_nothing() {
    let org = acmecorp();
    let (code, report) = org.json(&[
        "provision",
        "ann@acmecorp.com",
        "--home",
        "ldap",
        "--dry-run",
    ]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["people"][0]["state"], "would_create");
    let steps = report["plan"]["operations"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "{report}");
    assert_eq!(steps[0]["system"], "google");
    assert_eq!(steps[0]["address"], "ann@acmecorp.com");
    assert_eq!(steps[0]["action"], "create");
    // Nothing was placed, created or written.
    let (_, placed) = org.json(&["place", "--clear", "ann@acmecorp.com"]);
    assert_eq!(placed["changed"], false);
    assert_eq!(stub_addresses(&org, "google").len(), 2);
    assert!(!std::fs::read_to_string(org.path("ldap-state.jsonl"))
        .unwrap_or_default()
        .contains("ann@acmecorp.com"));
}

#[test]
fn a_home_that_cannot_create_accounts_leaves_nothing_placed() {
    // The simulated ldap refuses ann (an injected fault).
    let org = acmecorp();
    org.set_config(&GOOGLE_AND_LDAP.replace(
        "state = \"ldap-state.jsonl\"",
        "state = \"ldap-state.jsonl\"\nreject_addresses = [\"ann@acmecorp.com\"]",
    ));
    let (code, report) = org.json(&["provision", "ann@acmecorp.com", "--home", "ldap"]);
    assert_eq!(code, 4, "{report}");
    assert_eq!(report["people"][0]["state"], "failed");
    assert!(report["people"][0]["error"]
        .as_str()
        .unwrap()
        .contains("refused to create"));
    let (_, placed) = org.json(&["place", "--clear", "ann@acmecorp.com"]);
    assert_eq!(placed["changed"], false, "the placement was removed");
}

fn write_csv(org: &Org, n: usize) -> std::path::PathBuf {
    let mut csv = String::from("address,given_name,surname,home,title\n");
    for i in 0..n {
        let home = if i % 2 == 0 { "google" } else { "ldap" };
        csv.push_str(&format!(
            "p{i}@acmecorp.com,P{i},\"Person, {i}\",{home},Engineer\n"
        ));
    }
    let path = org.path("people.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

#[test]
fn a_csv_batch_killed_midway_completes_when_run_again() {
    const N: usize = 40;
    let org = acmecorp();
    let csv = write_csv(&org, N);
    let passwords = org.path("passwords.csv");
    // Each account takes 20 ms to make, so the kill lands among them.
    let slow = GOOGLE_AND_LDAP.replace(
        "state = \"ldap-state.jsonl\"",
        "state = \"ldap-state.jsonl\"\napply_delay_ms = 20",
    );
    let slow = slow.replace(
        "state = \"google-state.jsonl\"",
        "state = \"google-state.jsonl\"\napply_delay_ms = 20",
    );
    org.set_config(&slow);
    let mut child = std::process::Command::new(common::binary())
        .arg("--config")
        .arg(org.config())
        .arg("provision")
        .arg("--from-csv")
        .arg(&csv)
        .arg("--password-file")
        .arg(&passwords)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let accounts = |org: &Org| {
        ["google", "ldap"]
            .iter()
            .map(|s| {
                std::fs::read_to_string(org.path(&format!("{s}-state.jsonl")))
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.contains("\"event\":\"account\""))
                    .count()
            })
            .sum::<usize>()
    };
    let started = Instant::now();
    while accounts(&org) < 10 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no accounts made"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let made = accounts(&org);
    assert!((10..N).contains(&made), "killed after {made} accounts");

    org.set_config(GOOGLE_AND_LDAP);
    let (code, report) = org.json(&[
        "provision",
        "--from-csv",
        csv.to_str().unwrap(),
        "--password-file",
        passwords.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{report}");
    let people = report["people"].as_array().unwrap();
    assert_eq!(people.len(), N);
    // Every account made once: by the killed run or by this one.
    assert_eq!(accounts(&org), N);
    let created = people.iter().filter(|p| p["state"] == "created").count();
    assert_eq!(created, N - made, "the rest were made by the killed run");
    // Every person's stub is on the other system, and mail is delivered.
    let ldap_stubs = stub_addresses(&org, "ldap");
    let google_stubs = stub_addresses(&org, "google");
    for i in 0..N {
        let address = format!("p{i}@acmecorp.com");
        let stubs = if i % 2 == 0 {
            &ldap_stubs
        } else {
            &google_stubs
        };
        assert!(stubs.contains(&address), "{address}");
    }
    assert!(people.iter().all(|p| p["routes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["outcome"] == "delivered")));
    assert_eq!(people[3]["address"], "p3@acmecorp.com");
    // The passwords: one line for each account made, in a file only its
    // owner reads, and none printed.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&passwords).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let lines = std::fs::read_to_string(&passwords).unwrap();
    assert!(lines.lines().count() >= N - 1, "{lines}");
    assert!(people.iter().all(|p| p["initial_password"].is_null()));
    // Nothing left to do.
    let (code, sync) = org.json(&["sync"]);
    assert_eq!(code, 0);
    assert_eq!(
        sync["plan"]["operations"].as_array().unwrap().len(),
        0,
        "{sync}"
    );
}

#[test]
fn a_csv_batch_needs_a_password_file_and_well_formed_rows() {
    let org = acmecorp();
    let csv = write_csv(&org, 2);
    let out = org.run(&["provision", "--from-csv", csv.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--password-file"));
    std::fs::write(&csv, "address,home\nx@acmecorp.com\n").unwrap();
    let out = org.run(&[
        "provision",
        "--from-csv",
        csv.to_str().unwrap(),
        "--password-file",
        "p.csv",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2"));
}

// ---- Google as the home: the fake Google beside the binary ----------------

#[test]
fn provision_on_google_inserts_the_user_and_the_mail_server_gets_its_stub() {
    let google = common::fake_google();
    let table = format!(
        "{}[systems.connection.provision]\norg_unit_path = \"/Management\"\n",
        google_system(&google)
    );
    let config =
        coexist_testenv::acmecorp::config(&table, coexist_testenv::acmecorp::LDAP_SIMULATED);
    let org = Org::new(&config, &[("ldap", people("m", "acmecorp.com", 2))]);
    org.write_google_key(&google);
    let (code, report) = org.json(&["sync"]);
    assert_eq!(code, 0, "{report}");

    let (code, report) = org.json(&[
        "provision",
        "ann@acmecorp.com",
        "--home",
        "google",
        "--given-name",
        "Ann",
        "--surname",
        "Lee",
        "--alias",
        "a.lee@acmecorp.com",
    ]);
    assert_eq!(code, 0, "{report}");
    let ann = &report["people"][0];
    assert_eq!(ann["state"], "created", "{report}");
    let user = google
        .fake
        .user("ann@acmecorp.com")
        .expect("the user on Google");
    assert_eq!(user.org_unit_path, "/Management");
    assert!(user.change_password_at_next_login);
    assert_eq!(user.aliases, ["a.lee@acmecorp.com"]);
    // The mail server forwards both addresses to Google's routing domain.
    let stubs = org.stubs("ldap");
    let stub = stubs
        .iter()
        .find(|s| s.stub.primary_address == "ann@acmecorp.com")
        .expect("ann's stub on the mail server");
    assert_eq!(stub.stub.aliases, ["a.lee@acmecorp.com"]);
    assert_eq!(stub.stub.route.target(), Some("ann@gapps.acmecorp.com"));
    for route in ann["routes"].as_array().unwrap() {
        assert_eq!(route["outcome"], "delivered", "{route}");
        assert_eq!(route["at"], "google", "{route}");
    }
    // Google refuses a user without a surname: nothing placed, exit 4.
    let (code, report) = org.json(&["provision", "bo@acmecorp.com", "--home", "google"]);
    assert_eq!(code, 4, "{report}");
    assert!(report["people"][0]["error"]
        .as_str()
        .unwrap()
        .contains("surname"));
    let (_, placed) = org.json(&["place", "--clear", "bo@acmecorp.com"]);
    assert_eq!(placed["changed"], false);

    // Deprovisioned: suspended on Google, its stub gone from the mail server.
    let (code, done) = org.json(&["deprovision", "ann@acmecorp.com", "--yes"]);
    assert_eq!(code, 0, "{done}");
    assert_eq!(done["state"], "suspended");
    assert!(google.fake.user("ann@acmecorp.com").unwrap().suspended);
    assert!(!stub_addresses(&org, "ldap").contains(&"ann@acmecorp.com".to_string()));
}

// ---- a batch on the real slapd ----------------------------------------------

/// A batch of 500 people provisioned on the real slapd (Google simulated),
/// the command killed (-9) while it makes the accounts, then run again: each
/// account is made once, each person's stub is on Google, mail is
/// delivered. Prints the time each run took.
#[test]
fn a_batch_of_500_on_the_real_slapd_killed_midway_completes_when_run_again() {
    const N: usize = 500;
    let t = coexist_testenv::Subtree::new(coexist_testenv::TestServer::slapd());
    let org = Org::new("", &[("google", people("g", "acmecorp.com", 2))]);
    std::fs::write(org.path("slapd-password"), &t.server.password).unwrap();
    let ldap = format!(
        "{}[systems.connection.provision]\nbase = \"{people}\"\n\
         attributes = {{ mailHost = [\"mail.acmecorp.com\"] }}\n",
        t.system_toml(
            "ldap",
            "mithi.acmecorp.com",
            coexist_testenv::Password::File("slapd-password"),
            &t.people,
            "",
        ),
        people = t.people,
    );
    org.set_config(&coexist_testenv::acmecorp::config(
        coexist_testenv::acmecorp::GOOGLE_SIMULATED,
        &ldap,
    ));
    let (code, report) = org.json(&["sync"]);
    assert_eq!(code, 0, "{report}");
    let tag = &coexist_testenv::random()[..6];
    let mut csv = String::from("address,given_name,surname,aliases\n");
    for i in 0..N {
        csv.push_str(&format!(
            "b{i}.{tag}@acmecorp.com,B{i},Batch,b{i}.{tag}.alias@acmecorp.com\n"
        ));
    }
    std::fs::write(org.path("batch.csv"), csv).unwrap();
    let args = [
        "provision",
        "--home",
        "ldap",
        "--from-csv",
        "batch.csv",
        "--password-file",
        "passwords.csv",
    ];
    let accounts = || {
        t.server
            .ldapsearch(&t.people, &format!("(uid=b*.{tag})"), &["1.1"])
            .len()
    };

    let started = Instant::now();
    let mut child = org
        .command()
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    common::kill_when(
        &mut child,
        started,
        Duration::from_secs(120),
        Duration::from_millis(20),
        "no accounts made",
        || accounts() >= 100,
    );
    let killed_after = started.elapsed();
    let made = accounts();
    assert!((100..N).contains(&made), "killed after {made} accounts");

    let started = Instant::now();
    let out = org
        .command()
        .args(["--output", "json"])
        .args(args)
        .output()
        .unwrap();
    let rerun = started.elapsed();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    assert_eq!(out.status.code(), Some(0), "{report}");
    eprintln!(
        "500 people on slapd: killed after {killed_after:?} ({made} accounts), the rerun took {rerun:?}"
    );
    assert_eq!(accounts(), N, "each account made once");
    let people = report["people"].as_array().unwrap();
    let created = people.iter().filter(|p| p["state"] == "created").count();
    assert_eq!(created, N - made);
    assert!(people.iter().all(|p| p["routes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["outcome"] == "delivered" && r["at"] == "ldap")));
    let google = stub_addresses(&org, "google");
    for i in 0..N {
        assert!(google.contains(&format!("b{i}.{tag}@acmecorp.com")), "b{i}");
    }
    // The killed run's password lines and the rerun's: one an account,
    // but for at most the one killed between its account and its line.
    let lines = std::fs::read_to_string(org.path("passwords.csv")).unwrap();
    assert!(lines.lines().count() >= N - 1, "{}", lines.lines().count());
    let (code, sync) = org.json(&["sync"]);
    assert_eq!(code, 0);
    assert_eq!(
        sync["plan"]["operations"].as_array().unwrap().len(),
        0,
        "{sync}"
    );
}

// ---- deprovision --------------------------------------------------------------

#[test]
fn deprovision_suspends_an_account_coexist_made_and_removes_its_stubs() {
    let org = acmecorp();
    let (code, report) = org.json(&["provision", "ann@acmecorp.com", "--home", "google"]);
    assert_eq!(code, 0, "{report}");
    assert!(stub_addresses(&org, "ldap").contains(&"ann@acmecorp.com".to_string()));

    // No terminal to confirm at, no --yes: refused, nothing changed.
    let out = org.run(&["deprovision", "ann@acmecorp.com"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));

    // --dry-run: the exact steps, nothing changed.
    let (code, dry) = org.json(&["deprovision", "ann@acmecorp.com", "--dry-run"]);
    assert_eq!(code, 0, "{dry}");
    assert_eq!(dry["state"], "would_suspend");
    assert_eq!(dry["home"], "google");
    let steps = dry["plan"]["operations"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "{dry}");
    assert_eq!(
        (steps[0]["system"].as_str(), steps[0]["action"].as_str()),
        (Some("ldap"), Some("delete"))
    );
    assert!(stub_addresses(&org, "ldap").contains(&"ann@acmecorp.com".to_string()));

    let (code, done) = org.json(&["deprovision", "ann@acmecorp.com", "--yes"]);
    assert_eq!(code, 0, "{done}");
    assert_eq!(done["state"], "suspended");
    assert_eq!(done["apply"]["done"], 1);
    assert!(!stub_addresses(&org, "ldap").contains(&"ann@acmecorp.com".to_string()));
    let google = std::fs::read_to_string(org.path("google-state.jsonl")).unwrap();
    assert!(google.contains("\"event\":\"suspend\""), "{google}");
    // Mail from the mail server is no longer forwarded to the suspended
    // account: it bounces there.
    let from_ldap = done["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["from"] == "ldap")
        .unwrap();
    assert_eq!(from_ldap["outcome"], "bounced", "{from_ldap}");
    // The account is out of the GAL; the next sync changes nothing.
    let (code, sync) = org.json(&["sync"]);
    assert_eq!(code, 0);
    assert_eq!(
        sync["plan"]["operations"].as_array().unwrap().len(),
        0,
        "{sync}"
    );

    // Again: it was suspended; nothing more to do.
    let (code, again) = org.json(&["deprovision", "ann@acmecorp.com", "--yes"]);
    assert_eq!(code, 0, "{again}");
    assert_eq!(again["state"], "was_suspended");
    assert_eq!(again["plan"]["operations"].as_array().unwrap().len(), 0);

    // An account coexist did not make is not touched.
    let (code, refused) = org.json(&["deprovision", "m0@acmecorp.com", "--yes"]);
    assert_eq!(code, 9, "{refused}");
    assert!(refused["error"]
        .as_str()
        .unwrap()
        .contains("coexist did not create m0@acmecorp.com's account on ldap"));
    assert!(stub_addresses(&org, "google").contains(&"m0@acmecorp.com".to_string()));
    let (_, runs) = org.json(&["runs"]);
    let deprovisions = runs
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["command"] == "deprovision")
        .count();
    assert_eq!(deprovisions, 3, "{runs}");
}
