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
