#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `coexist move` between Microsoft 365 (the fake tenant of
//! `tests/fakes/m365`) and the mail server on the real slapd, both ways at
//! once, one change at a time: Ann's mailbox moves from the tenant to the
//! mail server (her old mailbox forwarded with Set-Mailbox
//! -ForwardingSmtpAddress, then retired), Mia's from the mail server to
//! the tenant (a Graph user, licensed, its mailbox awaited). After every
//! change, mail to both from every system and from the internet is
//! delivered at the current home, never bounced, never looping.

mod common;

use std::time::Duration;

use coexist_fake_m365::{FakeM365, FakeOptions, FakeUser, RecipientType};
use coexist_testenv::{random, Password, Subtree, TestServer};
use common::{Org, Served};
use serde_json::Value;

/// The fake tenant, served beside the test.
type Tenant = Served<FakeM365>;

impl Served<FakeM365> {
    /// acmecorp.onmicrosoft.com, whose app may also create users.
    fn start_tenant() -> Tenant {
        let mut options = FakeOptions {
            latency: Duration::ZERO,
            ..FakeOptions::default()
        };
        options.graph_roles.push("User.ReadWrite.All".into());
        Served::start(FakeM365::start(options))
    }

    /// A user mailbox `<local>@acmecorp.com` with its routing-domain
    /// address.
    fn mailbox(&self, local: &str) -> String {
        self.fake.add_user(FakeUser {
            user_principal_name: format!("{local}@acmecorp.com"),
            mail: format!("{local}@acmecorp.com"),
            proxy_addresses: vec![
                format!("SMTP:{local}@acmecorp.com"),
                format!("smtp:{local}@{}", self.fake.routing_domain()),
            ],
            display_name: format!("{local} Cloud"),
            given_name: local.into(),
            surname: "Cloud".into(),
            account_enabled: true,
            recipient_type: RecipientType::UserMailbox,
            ..FakeUser::default()
        })
    }
}

/// The mail server (MX, unknown recipients refused) and the tenant (its
/// unknown recipients relayed to the mail server, the shared domain an
/// internal-relay accepted domain), both able to make accounts.
fn config(tenant: &FakeM365, slapd: &Subtree) -> String {
    format!(
        r#"[organisation]
shared_domains = ["acmecorp.com"]

[topology]
mx = "ldap"

{ldap}[systems.connection.provision]
base = "{people}"

[[systems]]
id = "m365"
kind = "m365"
routing_domain = "{routing}"
unknown_recipient = {{ relay = "ldap" }}
[systems.connection]
tenant_id = "{tenant_id}"
client_id = "{client}"
client_secret = {{ file = "m365-secret" }}
authority = "{authority}"
graph_url = "{graph}"
exchange_url = "{exchange}"
retry_base_delay_ms = 5
retry_max_delay_ms = 50
[systems.connection.provision]
usage_location = "FR"
license_sku_id = "{sku}"
mailbox_wait_seconds = 30
mailbox_poll_seconds = 1
"#,
        ldap = slapd.system_toml(
            "ldap",
            "mithi.acmecorp.com",
            Password::File("slapd-password"),
            &slapd.people,
            "unknown_recipient = \"reject\"\n",
        ),
        people = slapd.people,
        routing = tenant.routing_domain(),
        tenant_id = tenant.tenant_id(),
        client = tenant.client_id(),
        authority = tenant.base_url(),
        graph = tenant.graph_url(),
        exchange = tenant.exchange_url(),
        sku = FakeM365::EXCHANGE_SKU,
    )
}

fn slapd_person(t: &Subtree, uid: &str) -> String {
    format!(
        "dn: uid={uid},{people}\nobjectClass: inetOrgPerson\nobjectClass: inetLocalMailRecipient\n\
         uid: {uid}\ncn: {uid} Mithi\ngivenName: {uid}\nsn: Mithi\n\
         mail: {uid}@acmecorp.com\nmailLocalAddress: {uid}@acmecorp.com\n\n",
        people = t.people
    )
}

/// The start of `report`, for a failure's message.
fn brief(report: &Value) -> String {
    let text = report.to_string();
    let mut end = text.len().min(3000);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[test]
fn after_every_change_of_moves_between_m365_and_slapd_mail_is_delivered_at_the_current_home() {
    let tag = &random()[..6];
    let ann = format!("ann{tag}");
    let mia = format!("mia{tag}");
    let tenant = Tenant::start_tenant();
    let ann_id = tenant.mailbox(&ann);
    tenant.mailbox(&format!("bob{tag}"));
    let slapd = Subtree::new(TestServer::slapd());
    slapd
        .server
        .ldapadd(&(slapd_person(&slapd, &mia) + &slapd_person(&slapd, &format!("max{tag}"))));
    let org = Org::new(&config(&tenant.fake, &slapd), &[]);
    std::fs::write(org.path("slapd-password"), &slapd.server.password).unwrap();
    std::fs::write(org.path("m365-secret"), tenant.fake.client_secret()).unwrap();
    let (code, report) = org.json(&["sync"]);
    assert_eq!(code, 0, "{}", brief(&report));

    // (address, old home, new home)
    let people = [
        (format!("{ann}@acmecorp.com"), "m365", "ldap"),
        (format!("{mia}@acmecorp.com"), "ldap", "m365"),
    ];
    // Where mail to each is delivered from every sender, the systems read
    // afresh (`plan --full-read` reads all of each and changes nothing).
    let check = |stage: &str| {
        let (code, plan) = org.json(&["plan", "--full-read"]);
        assert!(
            code == 0 || code == 6,
            "{stage}: plan exited {code}: {}",
            brief(&plan)
        );
        for (address, old_home, new_home) in &people {
            let (_, dry) = org.json(&["move", address, "--to", new_home, "--dry-run"]);
            let steps: Vec<String> = dry["people"][0]["steps"]
                .as_array()
                .map(|s| {
                    s.iter()
                        .map(|x| x.as_str().unwrap_or_default().to_string())
                        .collect()
                })
                .unwrap_or_default();
            let forwarded = !steps.iter().any(|s| s.contains("forwards to"));
            let made = !steps.iter().any(|s| s.starts_with("account made"));
            for from in ["internet", "ldap", "m365"] {
                let (_, traced) = org.json(&["route", address, "--from", from]);
                let outcome = &traced["outcome"];
                assert_eq!(
                    outcome["result"], "delivered",
                    "{stage}: mail from {from} to {address}: {traced}"
                );
                // Before the new account exists, the old home; once the
                // old account forwards, the new home; in between, either.
                let at = outcome["system"].as_str().unwrap();
                let expected = if forwarded && made {
                    *new_home
                } else if !made {
                    *old_home
                } else {
                    at
                };
                assert!(
                    at == expected && (at == *old_home || at == *new_home),
                    "{stage}: mail from {from} to {address} delivered at {at}, expected {expected}: {traced}"
                );
            }
        }
    };
    check("before the moves");
    let mut csv = String::from("address,to\n");
    for (address, _, to) in &people {
        csv.push_str(&format!("{address},{to}\n"));
    }
    std::fs::write(org.path("two.csv"), &csv).unwrap();
    let stepped = |args: &[&str]| -> usize {
        for n in 1..40 {
            let passwords = org.path("passwords.csv");
            let out = org.run(
                &[
                    &["--output", "json"],
                    args,
                    &[
                        "--stop-after",
                        "1",
                        "--password-file",
                        passwords.to_str().unwrap(),
                    ],
                ]
                .concat(),
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            if stderr.contains("stopped after 1 changes") {
                check(&format!("{args:?} after change {n}"));
                continue;
            }
            assert_eq!(
                out.status.code(),
                Some(0),
                "{stderr}\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
            check(&format!("{args:?} done"));
            eprintln!("{args:?}: stopped after each of {} changes", n - 1);
            return n - 1;
        }
        panic!("{args:?} never completes");
    };
    // Placed on the old homes (2), the accounts (2), the stubs on the
    // targets removed, placed on the targets (2), the forwards (2).
    let two = org.path("two.csv");
    assert!(stepped(&["move", "--from-csv", two.to_str().unwrap()]) >= 8);

    // Ann's old mailbox forwards to her address at the mail server's
    // routing domain and keeps no copy; Mia's old entry routes to her
    // mailbox's address at the tenant's routing domain.
    assert_eq!(
        tenant.fake.forwarding(&ann_id),
        Some((Some(format!("smtp:{ann}@mithi.acmecorp.com")), false))
    );
    let old = slapd.server.ldapsearch(
        &slapd.people,
        &format!("(uid={mia})"),
        &["mailRoutingAddress"],
    );
    assert_eq!(
        old[0].one("mailRoutingAddress"),
        format!("{mia}@{}", tenant.fake.routing_domain())
    );
    let (code, sync) = org.json(&["sync", "--full-read"]);
    assert_eq!(code, 0, "{}", brief(&sync));
    assert!(
        sync["plan"]["conflicts"].as_array().unwrap().is_empty(),
        "{}",
        brief(&sync)
    );

    // Finished: each old home gets coexist's stub, each old account is
    // retired.
    let mut csv = String::from("address\n");
    for (address, _, _) in &people {
        csv.push_str(&format!("{address}\n"));
    }
    std::fs::write(org.path("finish.csv"), &csv).unwrap();
    let finish = org.path("finish.csv");
    assert!(stepped(&["move", "--finish", "--from-csv", finish.to_str().unwrap()]) >= 2);
    let retired = tenant.fake.user(&ann_id).unwrap();
    assert!(!retired.account_enabled, "{retired:?}");
    assert_eq!(
        retired.proxy_addresses,
        [format!("SMTP:{ann}@{}", tenant.fake.routing_domain())],
        "only the tenant's own address is left"
    );
    assert_eq!(tenant.fake.forwarding(&ann_id), Some((None, false)));
    let contact = tenant
        .fake
        .mail_contacts()
        .into_iter()
        .find(|c| {
            c.email_addresses
                .iter()
                .any(|a| a.eq_ignore_ascii_case(&format!("SMTP:{ann}@acmecorp.com")))
        })
        .unwrap_or_else(|| {
            panic!(
                "coexist's mail contact at the old home: {:#?}",
                tenant.fake.mail_contacts()
            )
        });
    assert_eq!(
        contact.external_email_address.to_lowercase(),
        format!("smtp:{ann}@mithi.acmecorp.com")
    );
    assert!(contact.custom_attribute1.starts_with("coexist:"));
    let (code, sync) = org.json(&["sync", "--full-read"]);
    assert_eq!(code, 0, "{}", brief(&sync));
    assert_eq!(
        sync["plan"]["operations"].as_array().unwrap().len(),
        0,
        "{}",
        brief(&sync)
    );
    assert!(sync["plan"]["conflicts"].as_array().unwrap().is_empty());
}
