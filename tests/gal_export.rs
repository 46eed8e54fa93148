#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `coexist export-gal` after a `sync`, run as a user runs it: the real
//! binary against simulated systems on disk. The export shows the GAL, and
//! a group's members there are recipients of the GAL.

mod common;

use coexist_connector::{Recipient, RecipientKind};
use common::{person, Org, GOOGLE_AND_LDAP};

/// Google holds ann and the group team@ (ann, bob and an outside partner);
/// the mail server holds mia and bob, whose account is disabled.
fn org_with_a_disabled_group_member(config: &str) -> Org {
    let mut team = person("g-team", "team@acmecorp.com");
    team.kind = RecipientKind::Group;
    team.mailbox = true;
    team.members = vec![
        "ann@acmecorp.com".into(),
        "bob@acmecorp.com".into(),
        "partner@example.org".into(),
    ];
    let mut bob: Recipient = person("m-bob", "bob@acmecorp.com");
    bob.enabled = false;
    let org = Org::new(
        config,
        &[
            ("google", vec![person("g-ann", "ann@acmecorp.com"), team]),
            ("ldap", vec![person("m-mia", "mia@acmecorp.com"), bob]),
        ],
    );
    let (code, report) = org.json(&["sync"]);
    assert_eq!(code, 0, "{report}");
    org
}

fn export(org: &Org, format: &str) -> String {
    let out = org.run(&["export-gal", "--format", format]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn members_of(json: &str, group: &str) -> Vec<String> {
    let document: serde_json::Value = serde_json::from_str(json).unwrap();
    let entries = document["entries"].as_array().unwrap();
    let entry = entries
        .iter()
        .find(|e| e["primary_address"] == group)
        .unwrap_or_else(|| panic!("{group} is in the export: {json}"));
    entry["members"]
        .as_array()
        .map(|members| {
            members
                .iter()
                .map(|m| m.as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_exported_gal_lists_no_disabled_user_as_a_group_member() {
    let org = org_with_a_disabled_group_member(GOOGLE_AND_LDAP);

    let json = export(&org, "json");
    assert_eq!(
        members_of(&json, "team@acmecorp.com"),
        ["ann@acmecorp.com", "partner@example.org"],
        "{json}"
    );
    assert!(
        !json.contains("bob@acmecorp.com"),
        "bob is disabled: no entry and no membership names him: {json}"
    );

    let ldif = export(&org, "ldif");
    assert!(
        ldif.contains("dn: mail=team@acmecorp.com,ou=gal,dc=acmecorp,dc=com\n"),
        "{ldif}"
    );
    assert!(
        !ldif.to_lowercase().contains("bob@acmecorp.com"),
        "bob is disabled: the LDIF names him nowhere: {ldif}"
    );
}

#[test]
fn with_disabled_accounts_included_the_disabled_member_is_exported_in_the_group() {
    let config = GOOGLE_AND_LDAP.replace(
        "shared_domains = [\"acmecorp.com\"]\n",
        "shared_domains = [\"acmecorp.com\"]\ninclude_disabled = true\n",
    );
    assert_ne!(config, GOOGLE_AND_LDAP, "the organisation table changed");
    let org = org_with_a_disabled_group_member(&config);

    let json = export(&org, "json");
    assert_eq!(
        members_of(&json, "team@acmecorp.com"),
        [
            "ann@acmecorp.com",
            "bob@acmecorp.com",
            "partner@example.org"
        ],
        "{json}"
    );
    let ldif = export(&org, "ldif");
    assert!(
        ldif.contains("dn: mail=bob@acmecorp.com,ou=gal,dc=acmecorp,dc=com\n"),
        "{ldif}"
    );
}
