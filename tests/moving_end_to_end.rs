#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `coexist move` against the real slapd, the real Samba AD and the fake
//! Google: a batch of 500 people moved from the mail server and Active
//! Directory to Google, the command killed (-9) midway and run again; then
//! some of the moves finished.

mod common;

use std::time::{Duration, Instant};

use coexist_testenv::{random, Password, Subtree, TestServer};
use common::{google_system, Org, Served};

const SAMBA_PASSWORD: &str = "COEXIST_MOVE_SAMBA_PASSWORD";

/// The fake Google, served beside the test.
type Google = Served<coexist_fake_google::FakeGoogle>;

/// Google (the MX, catch-all to the mail server), the mail server on the
/// real slapd (catch-all to AD), Active Directory on the real Samba.
fn config(google: &Google, slapd: &Subtree, samba: &Subtree) -> String {
    format!(
        r#"[organisation]
shared_domains = ["acmecorp.com"]

[topology]
mx = "google"

{google}[systems.connection.provision]
org_unit_path = "/Moved"

{ldap}[systems.connection.provision]
base = "{slapd_people}"

{ad}"#,
        google = google_system(google),
        ldap = slapd.system_toml(
            "ldap",
            "mithi.acmecorp.com",
            Password::File("slapd-password"),
            &slapd.people,
            "unknown_recipient = { relay = \"ad\" }\n",
        ),
        slapd_people = slapd.people,
        ad = samba.system_toml(
            "ad",
            "onprem.acmecorp.com",
            Password::Env(SAMBA_PASSWORD),
            &samba.people,
            "",
        ),
    )
}

/// The organisation of [`config`] on disk, with the slapd password file,
/// the Samba password in its variable and the fake Google's key.
fn org_on_disk(google: &Google, slapd: &Subtree, samba: &Subtree) -> Org {
    let mut org = Org::new(&config(google, slapd, samba), &[]);
    org.set_env(SAMBA_PASSWORD, &samba.server.password);
    std::fs::write(org.path("slapd-password"), &slapd.server.password).unwrap();
    org.write_google_key(google);
    org
}

/// Person `i` of the batch: even on slapd, odd on Samba.
fn address(i: usize, tag: &str) -> String {
    format!("mv{i}.{tag}@acmecorp.com")
}

fn slapd_entry(t: &Subtree, i: usize, tag: &str) -> String {
    format!(
        "dn: uid=mv{i}.{tag},{people}\nobjectClass: inetOrgPerson\nobjectClass: inetLocalMailRecipient\n\
         uid: mv{i}.{tag}\ncn: Mo {i} Ver\ngivenName: Mo{i}\nsn: Ver\nmail: {address}\n\
         mailLocalAddress: {address}\n\n",
        people = t.people,
        address = address(i, tag),
    )
}

fn samba_user(t: &Subtree, i: usize, tag: &str) -> String {
    format!(
        "dn: CN=Mo {i} {tag},{people}\nobjectClass: top\nobjectClass: person\n\
         objectClass: organizationalPerson\nobjectClass: user\nsAMAccountName: mv{tag}{i}\n\
         userAccountControl: 544\ndisplayName: Mo {i} Ver\ngivenName: Mo{i}\nsn: Ver\n\
         mail: {address}\nproxyAddresses: SMTP:{address}\n\n",
        people = t.people,
        address = address(i, tag),
    )
}

/// `coexist --output json ARGS` in the organisation's folder.
fn json(org: &Org, args: &[&str]) -> (i32, serde_json::Value) {
    common::json(|all| org.command().args(all).output().unwrap(), args)
}

/// The start of `report`, for a failure's message.
fn brief(report: &serde_json::Value) -> String {
    let text = report.to_string();
    let mut end = text.len().min(3000);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// Every route of every person in `report` is delivered at Google.
fn all_delivered_at_google(report: &serde_json::Value) {
    for person in report["people"].as_array().unwrap() {
        for route in person["routes"].as_array().unwrap() {
            assert_eq!(route["outcome"], "delivered", "{person}");
            assert_eq!(route["at"], "google", "{person}");
        }
    }
}

/// 500 people, half on slapd and half on Samba, moved to Google in one
/// `--from-csv` run that is killed while it flips them, then run again:
/// each account made once on Google, each old account forwarding to
/// Google's routing domain, every stub retargeted, mail to everyone
/// delivered at Google; then ten of the moves finished. Prints the times.
#[test]
fn a_batch_of_500_from_slapd_and_samba_to_google_killed_midway_completes_when_run_again() {
    const N: usize = 500;
    let tag = &random()[..6];
    let google = common::fake_google();
    let slapd = Subtree::new(TestServer::slapd());
    let samba = Subtree::new(TestServer::samba());
    let started = Instant::now();
    let ldif: String = (0..N)
        .step_by(2)
        .map(|i| slapd_entry(&slapd, i, tag))
        .collect();
    slapd.server.ldapadd(&ldif);
    let ldif: String = (1..N)
        .step_by(2)
        .map(|i| samba_user(&samba, i, tag))
        .collect();
    samba.server.ldapadd(&ldif);
    let org = org_on_disk(&google, &slapd, &samba);
    let (code, report) = json(&org, &["sync"]);
    assert_eq!(code, 0, "{}", brief(&report));
    eprintln!(
        "500 people on slapd and Samba, synced in {:?}",
        started.elapsed()
    );

    let mut csv = String::from("address,to\n");
    for i in 0..N {
        csv.push_str(&format!("{},google\n", address(i, tag)));
    }
    std::fs::write(org.path("moves.csv"), csv).unwrap();
    let args = [
        "move",
        "--from-csv",
        "moves.csv",
        "--password-file",
        "passwords.csv",
    ];
    let forwarding = || {
        slapd
            .server
            .ldapsearch(
                &slapd.people,
                &format!("(&(uid=mv*.{tag})(mailRoutingAddress=*))"),
                &["1.1"],
            )
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
        Duration::from_secs(600),
        Duration::from_millis(50),
        "no old account forwards",
        || forwarding() >= 50,
    );
    let killed_after = started.elapsed();
    let forwarded = forwarding();
    assert!(
        (50..N / 2).contains(&forwarded),
        "killed after {forwarded} forwards"
    );

    let started = Instant::now();
    let (code, report) = json(&org, &args);
    let rerun = started.elapsed();
    eprintln!(
        "500 people moved to Google: killed after {killed_after:?} ({forwarded} of 250 slapd forwards), the rerun took {rerun:?}, {} stub operations",
        report["operations"]
    );
    assert_eq!(code, 0, "{}", brief(&report));
    let people = report["people"].as_array().unwrap();
    assert_eq!(people.len(), N);
    assert!(
        people.iter().all(|p| p["state"] == "moved"),
        "{}",
        brief(&report)
    );
    all_delivered_at_google(&report);
    // Each account made once, each old account forwarding.
    for i in 0..N {
        let user = google.fake.user(&address(i, tag)).expect("the Google user");
        assert_eq!(user.org_unit_path, "/Moved");
    }
    assert_eq!(forwarding(), N / 2);
    let targets = samba.server.ldapsearch(
        &samba.people,
        &format!("(&(sn=Ver)(mail=mv*.{tag}@acmecorp.com))"),
        &["targetAddress", "mail"],
    );
    assert_eq!(targets.len(), N / 2);
    for user in &targets {
        let mail = user.one("mail");
        let local = mail.split('@').next().unwrap();
        assert_eq!(
            user.one("targetAddress"),
            format!("SMTP:{local}@gapps.acmecorp.com")
        );
    }
    let lines = std::fs::read_to_string(org.path("passwords.csv")).unwrap();
    assert!(lines.lines().count() >= N - 1, "{}", lines.lines().count());
    // Nothing left to do, nothing in conflict.
    let (code, sync) = json(&org, &["sync"]);
    assert_eq!(code, 0, "{}", brief(&sync));
    common::assert_nothing_planned(&sync);

    // Ten moves finished: each old home gets coexist's stub, the old
    // account is retired, mail still reaches Google.
    let mut csv = String::from("address\n");
    for i in 0..10 {
        csv.push_str(&format!("{}\n", address(i, tag)));
    }
    std::fs::write(org.path("finish.csv"), csv).unwrap();
    let (code, report) = json(&org, &["move", "--finish", "--from-csv", "finish.csv"]);
    assert_eq!(code, 0, "{}", brief(&report));
    assert!(report["people"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["state"] == "finished"));
    all_delivered_at_google(&report);
    let old = slapd.server.ldapsearch(
        &slapd.people,
        &format!("(uid=mv0.{tag})"),
        &["mail", "mailRoutingAddress", "mailLocalAddress"],
    );
    assert_eq!(old.len(), 1);
    assert!(old[0].all("mail").is_empty(), "{:?}", old[0].attrs);
    assert!(old[0].all("mailRoutingAddress").is_empty());
    let stub = slapd.server.ldapsearch(
        &slapd.stubs,
        &format!("(mail={})", address(0, tag)),
        &["mailRoutingAddress"],
    );
    assert_eq!(stub.len(), 1, "coexist's stub at the old home");
    assert_eq!(
        stub[0].one("mailRoutingAddress"),
        format!("mv0.{tag}@gapps.acmecorp.com")
    );
    let contact = samba.server.ldapsearch(
        &samba.stubs,
        &format!("(mail={})", address(1, tag)),
        &["targetAddress"],
    );
    assert_eq!(contact.len(), 1, "coexist's contact at the old home");
    let old = samba.server.ldapsearch(
        &samba.people,
        "(displayName=Mo 1 Ver)",
        &["mail", "targetAddress", "userAccountControl"],
    );
    assert_eq!(old.len(), 1);
    assert!(old[0].all("targetAddress").is_empty(), "{:?}", old[0].attrs);
    assert_eq!(
        old[0].one("userAccountControl").parse::<u64>().unwrap() & 2,
        2
    );
    let (code, sync) = json(&org, &["sync"]);
    assert_eq!(code, 0, "{}", brief(&sync));
    common::assert_nothing_planned(&sync);
}

/// One person on slapd and one on Samba moved to Google one change at a
/// time (`--stop-after 1`, run again until nothing is left), then
/// finished so: after every change, mail to each from every system and
/// from the internet is delivered at the current home, never bounced,
/// never looping.
#[test]
fn after_every_change_of_a_move_from_slapd_and_samba_to_google_mail_is_delivered_at_the_current_home(
) {
    let tag = &random()[..6];
    let google = common::fake_google();
    let slapd = Subtree::new(TestServer::slapd());
    let samba = Subtree::new(TestServer::samba());
    // mv0 and mv1 move; mv2 and mv3 stay where they are.
    slapd
        .server
        .ldapadd(&(slapd_entry(&slapd, 0, tag) + &slapd_entry(&slapd, 2, tag)));
    samba
        .server
        .ldapadd(&(samba_user(&samba, 1, tag) + &samba_user(&samba, 3, tag)));
    let org = org_on_disk(&google, &slapd, &samba);
    let (code, report) = json(&org, &["sync"]);
    assert_eq!(code, 0, "{}", brief(&report));
    let people = [(address(0, tag), "ldap"), (address(1, tag), "ad")];

    // Where mail to each person is delivered from every sender, read
    // afresh (`plan` reads every system and changes nothing).
    let check = |stage: &str| {
        let (code, plan) = json(&org, &["plan"]);
        assert!(
            code == 0 || code == 6,
            "{stage}: plan exited {code}: {}",
            brief(&plan)
        );
        for (address, old_home) in &people {
            let on_google = google.fake.user(address).is_some();
            let forwarded = !json(&org, &["move", address, "--to", "google", "--dry-run"]).1
                ["people"][0]["steps"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s.as_str().unwrap().contains("forwards to"));
            for from in ["internet", "google", "ldap", "ad"] {
                let (_, traced) = json(&org, &["route", address, "--from", from]);
                let outcome = &traced["outcome"];
                assert_eq!(
                    outcome["result"], "delivered",
                    "{stage}: mail from {from} to {address}: {traced}"
                );
                // Before the account on Google exists, the old home; once
                // the old account forwards, Google; in between (the
                // placement flipped, some stubs retargeted), either.
                let at = outcome["system"].as_str().unwrap();
                let expected = if forwarded {
                    "google"
                } else if !on_google {
                    old_home
                } else if at == "google" {
                    "google"
                } else {
                    old_home
                };
                assert_eq!(
                    outcome["system"], *expected,
                    "{stage}: mail from {from} to {address}: {traced}"
                );
            }
        }
    };
    check("before the move");
    let mut csv = String::from("address,to\n");
    for (address, _) in &people {
        csv.push_str(&format!("{address},google\n"));
    }
    std::fs::write(org.path("two.csv"), csv).unwrap();
    let stepped = |args: &[&str]| -> usize {
        for n in 1..40 {
            let out = org
                .command()
                .args(["--output", "json"])
                .args(args)
                .args(["--stop-after", "1", "--password-file", "passwords.csv"])
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            if stderr.contains("stopped after 1 changes") {
                check(&format!("{args:?} after change {n}"));
                continue;
            }
            assert_eq!(out.status.code(), Some(0), "{stderr}");
            check(&format!("{args:?} done"));
            eprintln!("{args:?}: stopped after each of {} changes", n - 1);
            return n - 1;
        }
        panic!("{args:?} never completes");
    };
    // Placed on the old homes (2), the accounts (2), the Google contacts
    // removed (1), placed on Google (2), the forwards (2), at least.
    assert!(stepped(&["move", "--from-csv", "two.csv"]) >= 8);
    let routing = slapd.server.ldapsearch(
        &slapd.people,
        &format!("(uid=mv0.{tag})"),
        &["mailRoutingAddress"],
    );
    assert_eq!(
        routing[0].one("mailRoutingAddress"),
        format!("mv0.{tag}@gapps.acmecorp.com")
    );
    let mut csv = String::from("address\n");
    for (address, _) in &people {
        csv.push_str(&format!("{address}\n"));
    }
    std::fs::write(org.path("finish.csv"), csv).unwrap();
    // The old homes' stubs (1), the old accounts retired (2).
    assert!(stepped(&["move", "--finish", "--from-csv", "finish.csv"]) >= 2);
}

/// Ann on the fake Google (the MX, catch-all to the simulated mail
/// server `ldap`), with an alias and an external id of her own; the
/// Google connection retires old users by renaming them. Returns the
/// fake, the organisation and Ann's user id.
fn ann_on_google() -> (Google, Org, String) {
    let google = common::fake_google();
    google.fake.add_user(coexist_fake_google::FakeUser {
        primary_email: "ann@acmecorp.com".into(),
        given_name: "Ann".into(),
        family_name: "Lee".into(),
        aliases: vec!["ann.lee@acmecorp.com".into()],
        non_editable_aliases: vec!["ann@gapps.acmecorp.com".into()],
        external_ids: vec![("organization".into(), "E-1234".into())],
        ..Default::default()
    });
    let ann_id = google.fake.user("ann@acmecorp.com").unwrap().id;
    let table = format!(
        "{}gmail_url = \"{}\"\n[systems.connection.provision]\norg_unit_path = \"/\"\n\
         retire = \"rename\"\n",
        google_system(&google),
        google.fake.base_url(),
    );
    let config =
        coexist_testenv::acmecorp::config(&table, coexist_testenv::acmecorp::LDAP_SIMULATED);
    let org = Org::new(&config, &[("ldap", common::people("m", "acmecorp.com", 2))]);
    org.write_google_key(&google);
    (google, org, ann_id)
}

/// Mail to Ann's addresses from every system and from the internet is
/// delivered at `home`.
fn delivered_at(org: &Org, home: &str, stage: &str) {
    for address in ["ann@acmecorp.com", "ann.lee@acmecorp.com"] {
        for from in ["internet", "google", "ldap"] {
            let (_, traced) = org.json(&["route", address, "--from", from]);
            let outcome = &traced["outcome"];
            assert_eq!(
                outcome["result"], "delivered",
                "{stage}, {address} from {from}: {traced}"
            );
            assert_eq!(
                outcome["system"], home,
                "{stage}, {address} from {from}: {traced}"
            );
        }
    }
}

/// A `--finish` that died half-way through the retirement of the old
/// Google user (renamed, the old primary address still its alias, still
/// forwarding) is completed by the next `--finish`: the renamed user is
/// the person's old account, its new name no address of the person's.
#[test]
fn a_finish_that_died_after_renaming_the_old_google_user_completes_when_run_again() {
    let (google, org, ann_id) = ann_on_google();
    let (code, report) = org.json(&["move", "ann@acmecorp.com", "--to", "ldap"]);
    assert_eq!(code, 0, "{}", brief(&report));
    // What the dead run left: the rename done, nothing after it.
    google.fake.update_user(&ann_id, |u| {
        u.primary_email = "retired.ann@acmecorp.com".into();
        u.aliases.push("ann@acmecorp.com".into());
    });
    delivered_at(&org, "ldap", "after the rename");

    let (code, finish) = org.json(&["move", "--finish", "ann@acmecorp.com"]);

    assert_eq!(code, 0, "{}", brief(&finish));
    let person = &finish["people"][0];
    assert_eq!(person["address"], "ann@acmecorp.com", "{}", brief(&finish));
    assert_eq!(person["state"], "finished");
    let old = google.fake.user(&ann_id).unwrap();
    assert_eq!(
        old.primary_email, "retired.ann@acmecorp.com",
        "not renamed twice"
    );
    assert!(old.aliases.is_empty(), "{:?}", old.aliases);
    assert!(old.suspended && old.auto_forwarding.is_none());
    delivered_at(&org, "ldap", "finished");
    let (code, sync) = org.json(&["sync"]);
    assert_eq!(code, 0, "{}", brief(&sync));
    assert!(sync["plan"]["conflicts"].as_array().unwrap().is_empty());
}

/// A person on Google (the MX) moved to the mail server (simulated) one
/// change at a time: Gmail forwarding set on the old user through the
/// fake's Gmail settings API, the user marked so reads see the forward;
/// then finished one change at a time with `retire = "rename"`: coexist's
/// shared contact written beside the old user, the old user renamed to
/// `retired.ann@acmecorp.com`, the alias Google kept and the person's
/// other alias deleted, its forward turned off, suspended. After every
/// change, mail to the person from every system and from the internet is
/// delivered at the current home.
#[test]
fn a_move_from_google_forwards_the_old_gmail_then_finishes_and_mail_follows_after_every_change() {
    let (google, org, ann_id) = ann_on_google();
    let (code, report) = org.json(&["sync"]);
    assert_eq!(code, 0, "{}", brief(&report));

    let check = |stage: &str| {
        let (code, plan) = org.json(&["plan"]);
        assert!(code == 0 || code == 6, "{stage}: {}", brief(&plan));
        let made = std::fs::read_to_string(org.path("ldap-state.jsonl"))
            .unwrap_or_default()
            .contains("\"event\":\"account\"");
        // Forwarding, or renamed by the retirement: mail is for ldap.
        let old = google.fake.user(&ann_id).unwrap();
        let forwarded = old.auto_forwarding.is_some() || old.primary_email != "ann@acmecorp.com";
        for (address, from) in ["ann@acmecorp.com", "ann.lee@acmecorp.com"]
            .into_iter()
            .flat_map(|a| ["internet", "google", "ldap"].map(|f| (a, f)))
        {
            let (_, traced) = org.json(&["route", address, "--from", from]);
            let outcome = &traced["outcome"];
            assert_eq!(
                outcome["result"], "delivered",
                "{stage}, {address} from {from}: {traced}"
            );
            let at = outcome["system"].as_str().unwrap();
            let expected = if forwarded {
                "ldap"
            } else if !made {
                "google"
            } else {
                at
            };
            assert!(
                at == expected && (at == "google" || made),
                "{stage}, {address} from {from}: {traced}"
            );
        }
    };
    check("before the move");
    let mut stops = 0;
    loop {
        let out = org.run(&[
            "--output",
            "json",
            "move",
            "ann@acmecorp.com",
            "--to",
            "ldap",
            "--stop-after",
            "1",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("stopped after 1 changes") {
            stops += 1;
            assert!(stops < 20, "the move never completes");
            check(&format!("after change {stops}"));
            continue;
        }
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        check("moved");
        break;
    }
    assert!(stops >= 4, "placed, made, placed, forwarded: {stops}");
    let ann = google.fake.user("ann@acmecorp.com").unwrap();
    assert_eq!(
        ann.auto_forwarding,
        Some(("ann@mithi.acmecorp.com".into(), "archive".into()))
    );
    assert_eq!(ann.forwarding_addresses, ["ann@mithi.acmecorp.com"]);
    assert!(
        ann.external_ids
            .contains(&("organization".into(), "E-1234".into())),
        "the user's own external id kept: {:?}",
        ann.external_ids
    );
    let (code, sync) = org.json(&["sync"]);
    assert_eq!(code, 0, "{}", brief(&sync));
    assert!(sync["plan"]["conflicts"].as_array().unwrap().is_empty());

    // Finished one change at a time: the contact first (beside the old
    // user, which Google allows), then the retirement.
    let mut stops = 0;
    loop {
        let out = org.run(&[
            "--output",
            "json",
            "move",
            "--finish",
            "ann@acmecorp.com",
            "--stop-after",
            "1",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("stopped after 1 changes") {
            stops += 1;
            assert!(stops < 20, "the finish never completes");
            check(&format!("after change {stops} of --finish"));
            if stops == 1 {
                let old = google.fake.user(&ann_id).unwrap();
                assert_eq!(old.primary_email, "ann@acmecorp.com", "not retired yet");
                assert!(old.auto_forwarding.is_some(), "still forwarding");
                assert!(
                    google
                        .fake
                        .contacts()
                        .iter()
                        .any(|c| c.emails.iter().any(|(e, _)| e == "ann@acmecorp.com")),
                    "coexist's contact first"
                );
            }
            continue;
        }
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(out.status.code(), Some(0), "{stderr} {}", brief(&report));
        assert_eq!(report["people"][0]["state"], "finished");
        check("finished");
        break;
    }
    assert!(stops >= 1, "the contact, then the retirement: {stops}");
    let old = google.fake.user(&ann_id).unwrap();
    assert_eq!(old.primary_email, "retired.ann@acmecorp.com");
    assert!(old.aliases.is_empty(), "{:?}", old.aliases);
    assert_eq!(old.non_editable_aliases, ["retired.ann@gapps.acmecorp.com"]);
    assert!(old.suspended);
    assert_eq!(old.auto_forwarding, None);
    assert_eq!(
        old.external_ids,
        [("organization".to_string(), "E-1234".to_string())],
        "coexist's mark off, the user's own id kept"
    );
    let contact = google
        .fake
        .contacts()
        .into_iter()
        .find(|c| c.emails.iter().any(|(e, _)| e == "ann@acmecorp.com"))
        .expect("coexist's shared contact for ann at the old home");
    assert!(contact
        .emails
        .iter()
        .any(|(e, _)| e == "ann.lee@acmecorp.com"));

    // Settled: a sync plans nothing, and a rerun of --finish changes nothing.
    let (code, sync) = org.json(&["sync"]);
    assert_eq!(code, 0, "{}", brief(&sync));
    assert!(sync["plan"]["conflicts"].as_array().unwrap().is_empty());
    let (code, again) = org.json(&["move", "--finish", "ann@acmecorp.com"]);
    assert_eq!(code, 0, "{}", brief(&again));
    assert_eq!(again["people"][0]["state"], "finished");
    assert_eq!(again["operations"], 0, "{}", brief(&again));
    assert_eq!(google.fake.user(&ann_id).unwrap(), old);
    check("after a second --finish");
}
