//! The mail-flow tables of the seeds, traced with `coexist route` after a
//! sync: where a message goes, in how many hops, or why it bounces.

mod common;

use common::{person, Org, GOOGLE_AND_LDAP};
use serde_json::Value;

fn route(org: &Org, from: &str, address: &str) -> Value {
    let (_, traced) = org.json(&["route", address, "--from", from]);
    traced["outcome"].clone()
}

fn delivered(system: &str, hops: u64) -> Value {
    serde_json::json!({ "result": "delivered", "system": system, "hops": hops })
}

fn synced(org: &Org) {
    let (code, report) = org.json(&["sync"]);
    assert_eq!(code, 0, "{report}");
}

mod google_coexistence {
    //! google-coexistence.txt: MX on Google, catch-all to the Mithi (LDAP)
    //! server, Mithi forwards Google users to gapps.acmecorp.com.
    use super::*;

    fn org() -> Org {
        let org = Org::new(
            GOOGLE_AND_LDAP,
            &[
                (
                    "google",
                    vec![
                        person("g1", "gina@acmecorp.com"),
                        person("g2", "gus@acmecorp.com"),
                    ],
                ),
                (
                    "ldap",
                    vec![
                        person("m1", "mia@acmecorp.com"),
                        person("m2", "max@acmecorp.com"),
                    ],
                ),
            ],
        );
        synced(&org);
        org
    }

    #[test]
    fn inbound_mail_lands_on_google_and_unknown_users_go_to_mithi() {
        let org = org();
        assert_eq!(
            route(&org, "internet", "gina@acmecorp.com"),
            delivered("google", 1)
        );
        assert_eq!(
            route(&org, "internet", "mia@acmecorp.com"),
            delivered("ldap", 2)
        );
    }

    #[test]
    fn the_four_local_flows_are_delivered() {
        let org = org();
        // 1. GApps to GApps: delivered internally.
        assert_eq!(
            route(&org, "google", "gus@acmecorp.com"),
            delivered("google", 0)
        );
        // 2. GApps to Mithi: unknown on Google, the catch-all sends it to Mithi.
        assert_eq!(
            route(&org, "google", "mia@acmecorp.com"),
            delivered("ldap", 1)
        );
        // 3. Mithi to GApps: forward to the alternate domain gapps.acmecorp.com.
        assert_eq!(
            route(&org, "ldap", "gina@acmecorp.com"),
            delivered("google", 1)
        );
        let (_, traced) = org.json(&["route", "gina@acmecorp.com", "--from", "ldap"]);
        assert_eq!(
            traced["hops"][0]["action"],
            "forwarding entry → gina@gapps.acmecorp.com"
        );
        // 4. Mithi to Mithi: delivered internally.
        assert_eq!(
            route(&org, "ldap", "max@acmecorp.com"),
            delivered("ldap", 0)
        );
    }
}

mod o365_coexistence {
    //! o365-coexistence.txt: MX on SkyConnect; SkyConnect forwards O365 users
    //! to the tenant's routing domain; O365 sends what it does not host back
    //! to SkyConnect through its outbound connector.
    use super::*;

    const CONFIG: &str = r#"
[organisation]
shared_domains = ["acmecorp.com"]
[topology]
mx = "skyconnect"
[[systems]]
id = "skyconnect"
kind = "simulated"
routing_domain = "sky.acmecorp.com"
stub_style = "routing_address"
[systems.connection]
seed = "skyconnect.json"
state = "skyconnect-state.jsonl"
[[systems]]
id = "o365"
kind = "simulated"
routing_domain = "acmecorp.mail.onmicrosoft.com"
stub_style = "routing_address"
unknown_recipient = { relay = "skyconnect" }
[systems.connection]
seed = "o365.json"
state = "o365-state.jsonl"
"#;

    #[test]
    fn the_eight_flows_of_the_table() {
        let org = Org::new(
            CONFIG,
            &[
                (
                    "skyconnect",
                    vec![
                        person("s1", "sam@acmecorp.com"),
                        person("s2", "sue@acmecorp.com"),
                    ],
                ),
                (
                    "o365",
                    vec![
                        person("o1", "oli@acmecorp.com"),
                        person("o2", "ora@acmecorp.com"),
                    ],
                ),
            ],
        );
        synced(&org);
        let external =
            serde_json::json!({ "result": "external", "domain": "example.org", "hops": 0 });
        // External → SkyConnect user: S0 ⇒ LD.
        assert_eq!(
            route(&org, "internet", "sam@acmecorp.com"),
            delivered("skyconnect", 1)
        );
        // External → O365 user: S0 ⇒ S4 ⇒ O1 ⇒ LD.
        assert_eq!(
            route(&org, "internet", "oli@acmecorp.com"),
            delivered("o365", 2)
        );
        // SkyConnect → SkyConnect: S2 ⇒ LD.
        assert_eq!(
            route(&org, "skyconnect", "sue@acmecorp.com"),
            delivered("skyconnect", 0)
        );
        // SkyConnect → O365: S2 ⇒ S4 ⇒ O1 ⇒ LD.
        assert_eq!(
            route(&org, "skyconnect", "oli@acmecorp.com"),
            delivered("o365", 1)
        );
        // SkyConnect → external: S2 ⇒ S3 ⇒ ED.
        assert_eq!(route(&org, "skyconnect", "someone@example.org"), external);
        // O365 → SkyConnect: O2 ⇒ O3 ⇒ S1 ⇒ LD.
        assert_eq!(
            route(&org, "o365", "sam@acmecorp.com"),
            delivered("skyconnect", 1)
        );
        // O365 → O365: O2 ⇒ LD.
        assert_eq!(
            route(&org, "o365", "ora@acmecorp.com"),
            delivered("o365", 0)
        );
        // O365 → external: O2 ⇒ O4 ⇒ ED.
        assert_eq!(route(&org, "o365", "someone@example.org"), external);
    }
}

mod inotes_smarthost {
    //! inotes-smarthost-coexistence.txt: MX on Domino, Person records of
    //! iNotes users relay to the iNotes smart host; iNotes sends outbound
    //! mail for corporate.com back through the MX.
    use super::*;

    const CONFIG: &str = r#"
[organisation]
shared_domains = ["corporate.com"]
[topology]
mx = "domino"
[[systems]]
id = "domino"
kind = "simulated"
smart_host = "domino.corporate.com"
routing_domain = "onprem.corporate.com"
stub_style = "smart_host"
unknown_recipient = "reject"
[systems.connection]
seed = "domino.json"
state = "domino-state.jsonl"
[[systems]]
id = "inotes"
kind = "simulated"
smart_host = "smtp.inotes.example"
routing_domain = "corporate.inotes.example"
stub_style = "none"
unknown_recipient = { relay = "domino" }
[systems.connection]
seed = "inotes.json"
state = "inotes-state.jsonl"
"#;

    fn org() -> Org {
        let org = Org::new(
            CONFIG,
            &[
                (
                    "domino",
                    vec![
                        person("d1", "duser1@corporate.com"),
                        person("d2", "duser2@corporate.com"),
                    ],
                ),
                (
                    "inotes",
                    vec![
                        person("i1", "iuser1@corporate.com"),
                        person("i2", "iuser2@corporate.com"),
                    ],
                ),
            ],
        );
        synced(&org);
        org
    }

    #[test]
    fn person_records_relay_to_the_smart_host() {
        let org = org();
        assert_eq!(
            route(&org, "domino", "iuser1@corporate.com"),
            delivered("inotes", 1)
        );
        assert_eq!(
            route(&org, "internet", "iuser1@corporate.com"),
            delivered("inotes", 2)
        );
        // iNotes to iNotes makes the round trip through the on-premises server.
        assert_eq!(
            route(&org, "inotes", "iuser2@corporate.com"),
            delivered("inotes", 0)
        );
        assert_eq!(
            route(&org, "inotes", "duser1@corporate.com"),
            delivered("domino", 1)
        );
    }

    #[test]
    fn an_invalid_address_bounces_and_does_not_loop() {
        let org = org();
        for from in ["internet", "domino", "inotes"] {
            let outcome = route(&org, from, "nonexistent@corporate.com");
            assert_eq!(outcome["result"], "bounced", "from {from}: {outcome}");
            assert_eq!(outcome["system"], "domino", "from {from}: {outcome}");
        }
        let out = org.run(&["route", "nonexistent@corporate.com", "--from", "inotes"]);
        assert_eq!(out.status.code(), Some(4));
        assert!(String::from_utf8_lossy(&out.stdout).contains("Bounced by domino"));
    }
}

mod the_world_coexist_did_not_write {
    //! Entries coexist did not make take part in the loop and reachability
    //! checks (the issue "Mail must never loop or vanish", items 1 to 5).
    use super::*;

    /// google-coexistence.txt with a third system, Microsoft 365, simulated.
    fn three_systems() -> String {
        format!(
            "{GOOGLE_AND_LDAP}
[[systems]]
id = \"m365\"
kind = \"simulated\"
routing_domain = \"acmecorp.mail.onmicrosoft.com\"
stub_style = \"routing_address\"
[systems.connection]
seed = \"m365.json\"
state = \"m365-state.jsonl\"
"
        )
    }

    fn forwarder(anchor: &str, dn: &str, address: &str, to: &str) -> coexist_connector::Recipient {
        let mut entry = person(anchor, address);
        entry.mailbox = false;
        entry.forwards_to = Some(to.into());
        entry.locator = Some(dn.into());
        entry
    }

    #[test]
    fn a_forwarder_to_the_wrong_system_stops_sync_with_exit_8_and_fails_doctor() {
        let org = Org::new(
            &three_systems(),
            &[
                ("google", vec![person("g1", "gina@acmecorp.com")]),
                (
                    "ldap",
                    vec![forwarder(
                        "l1",
                        "uid=bob,ou=people,dc=acmecorp,dc=com",
                        "bob@acmecorp.com",
                        "bob@gapps.acmecorp.com",
                    )],
                ),
                ("m365", vec![person("m1", "bob@acmecorp.com")]),
            ],
        );
        let (code, report) = org.json(&["sync"]);
        assert_eq!(code, 8, "{report}");
        let conflicts = report["plan"]["conflicts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let looping: Vec<&serde_json::Value> = conflicts
            .iter()
            .filter(|c| c["kind"] == "routing_loop")
            .collect();
        assert_eq!(looping.len(), 1, "{report}");
        let message = looping[0]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("uid=bob,ou=people,dc=acmecorp,dc=com"),
            "{message}"
        );
        assert!(
            org.stubs("google")
                .iter()
                .all(|s| s.stub.primary_address != "bob@acmecorp.com"),
            "no Google contact that would feed the loop"
        );

        // `plan` says the same, in text too; a saved plan applied exits 8.
        let saved = org.path("loop-plan.json").display().to_string();
        let out = org.run(&["plan", "--save", &saved]);
        assert_eq!(out.status.code(), Some(8));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("Conflict: mail from the internet to bob@acmecorp.com loops"),
            "{text}"
        );
        let out = org.run(&["apply", &saved]);
        assert_eq!(
            out.status.code(),
            Some(8),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        let (code, doctor) = org.json(&["doctor"]);
        assert_eq!(code, 4, "{doctor}");
        assert_eq!(doctor["ok"], false);
        assert!(
            doctor["findings"]
                .as_array()
                .is_some_and(|f| f.iter().any(|f| f["ok"] == false
                    && f["detail"]
                        .as_str()
                        .is_some_and(|d| d.contains("uid=bob,ou=people,dc=acmecorp,dc=com")))),
            "{doctor}"
        );
        // What `route` shows today: the loop, exit 4.
        let (code, traced) = org.json(&["route", "bob@acmecorp.com", "--from", "internet"]);
        assert_eq!(code, 4, "{traced}");
        assert_eq!(traced["outcome"]["result"], "looping");
    }

    #[test]
    fn an_address_a_correct_forwarder_does_not_cover_is_delivered_from_ldap() {
        let mut leo = person("g1", "leo.clark@acmecorp.com");
        leo.aliases = vec!["lclark@acmecorp.com".into()];
        let org = Org::new(
            GOOGLE_AND_LDAP,
            &[
                ("google", vec![leo]),
                (
                    "ldap",
                    vec![forwarder(
                        "l1",
                        "uid=leo.clark,ou=people,dc=acmecorp,dc=com",
                        "leo.clark@acmecorp.com",
                        "leo.clark@gapps.acmecorp.com",
                    )],
                ),
            ],
        );
        synced(&org);
        assert_eq!(
            route(&org, "ldap", "lclark@acmecorp.com"),
            delivered("google", 1)
        );
        assert_eq!(
            route(&org, "ldap", "leo.clark@acmecorp.com"),
            delivered("google", 1)
        );
        let (code, second) = org.json(&["plan"]);
        assert_eq!(code, 0, "{second}");
        assert_eq!(second["summary"]["create"], 0, "{second}");
    }

    #[test]
    fn a_catch_all_relay_cycle_is_refused_by_check_config_and_doctor() {
        let cycle = GOOGLE_AND_LDAP.replace(
            "stub_style = \"routing_address\"\n",
            "stub_style = \"routing_address\"\nunknown_recipient = { relay = \"google\" }\n",
        );
        let org = Org::new(&cycle, &[("google", vec![]), ("ldap", vec![])]);
        for command in ["check-config", "doctor"] {
            let out = org.run(&[command]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
            assert!(
                stderr.contains(
                    "the catch-all relays form a cycle (google → ldap → google; lines 13, 23)"
                ),
                "{command}: {stderr}"
            );
        }
    }

    #[test]
    fn logs_written_to_a_file_carry_no_colour_codes() {
        let org = Org::new(GOOGLE_AND_LDAP, &[("google", vec![]), ("ldap", vec![])]);
        let out = org.run(&["-v", "sync"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.is_empty(), "-v logs something");
        assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
    }
}

mod refused_configurations {
    //! Settings that would put a secret on the wire or loop mail are
    //! refused before anything runs.
    use super::*;

    #[test]
    fn a_cleartext_ldap_bind_is_refused_by_check_config_unless_opted_in() {
        let ldap = |extra: &str| {
            GOOGLE_AND_LDAP.replace(
                "[systems.connection]\nseed = \"ldap.json\"\nstate = \"ldap-state.jsonl\"\n",
                &format!("[systems.connection]\nurl = \"ldap://ldap.acmecorp.com\"\nbind_dn = \"cn=coexist,dc=acmecorp,dc=com\"\npassword = {{ env = \"COEXIST_LDAP_PASSWORD\" }}\nbase_dns = [\"ou=people,dc=acmecorp,dc=com\"]\nstub_base = \"ou=coexist,dc=acmecorp,dc=com\"\n{extra}"),
            ).replace("id = \"ldap\"\nkind = \"simulated\"", "id = \"ldap\"\nkind = \"ldap\"")
        };
        let org = Org::new(&ldap(""), &[("google", vec![])]);
        let out = org.run(&["check-config"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("ldap://ldap.acmecorp.com"), "{stderr}");
        assert!(stderr.contains("clear text"), "{stderr}");

        org.set_config(&ldap("allow_cleartext_bind = true\n"));
        let out = org.run(&["check-config"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
