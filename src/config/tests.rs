//! Configuration errors name the file, the line and the key.

use std::path::Path;

use super::*;

const GOOD: &str = r#"
[organisation]
shared_domains = ["acmecorp.com"]

[topology]
mx = "google"

[precedence]
default = ["ldap"]
title = ["google"]

[[systems]]
id = "google"
kind = "google"
routing_domain = "gapps.acmecorp.com"
unknown_recipient = { relay = "ldap" }

[systems.connection]
domain = "acmecorp.com"

[[systems]]
id = "ldap"
kind = "ldap"
routing_domain = "mithi.acmecorp.com"
stub_style = "routing_address"
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("coexist.toml"), text)
}

fn error(text: &str) -> String {
    match parse(text) {
        Ok(_) => String::from("<accepted>"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_good_file_becomes_a_policy() {
    let config = parse(GOOD).unwrap();
    assert_eq!(config.policy.shared_domains, ["acmecorp.com"]);
    assert_eq!(config.policy.mx.as_deref(), Some("google"));
    assert_eq!(
        config.policy.systems[0].stub_style,
        StubStyle::DomainRouting
    );
    assert_eq!(
        config.policy.systems[0].unknown_recipient,
        UnknownRecipient::Relay("ldap".into())
    );
    assert_eq!(
        config.policy.systems[1].stub_style,
        StubStyle::RoutingAddress
    );
    assert_eq!(config.policy.precedence, ["ldap"]);
    assert_eq!(config.policy.precedence_by_attribute["title"], ["google"]);
    assert_eq!(config.systems[0].connection_line, Some(18));
    assert_eq!(config.store_url().unwrap(), "sqlite:./coexist.db");
    assert_eq!(config.safety.max_deletes, 500);
}

#[test]
fn a_syntax_error_names_the_line() {
    let text = GOOD.replace("mx = \"google\"", "mx = google");
    assert!(
        error(&text).starts_with("coexist.toml:6: "),
        "{}",
        error(&text)
    );
}

#[test]
fn an_unknown_key_names_its_line() {
    let text = GOOD.replace(
        "routing_domain = \"mithi.acmecorp.com\"",
        "routing_domian = \"mithi.acmecorp.com\"",
    );
    let e = error(&text);
    assert!(e.starts_with("coexist.toml:24: "), "{e}");
    assert!(e.contains("unknown field `routing_domian`"), "{e}");
}

#[test]
fn a_bad_value_names_line_key_and_expectation() {
    let text = GOOD.replace(
        "unknown_recipient = { relay = \"ldap\" }",
        "unknown_recipient = { relay = \"exchange\" }",
    );
    assert_eq!(
        error(&text),
        "coexist.toml:16: systems[0].unknown_recipient: `exchange` is not another configured system; expected one of google, ldap"
    );
    let text = GOOD.replace("mx = \"google\"", "mx = \"domino\"");
    assert_eq!(error(&text), "coexist.toml:6: topology.mx: `domino` is not a configured system; expected one of google, ldap");
    let text = GOOD.replace("kind = \"ldap\"", "kind = \"lotus\"");
    assert!(
        error(&text).starts_with("coexist.toml:23: "),
        "{}",
        error(&text)
    );
}

#[test]
fn a_stub_style_that_cannot_reach_a_home_is_refused() {
    let text = GOOD.replace("routing_domain = \"gapps.acmecorp.com\"\n", "");
    assert_eq!(
        error(&text),
        "coexist.toml:13: systems[0].routing_domain: ldap writes stubs routed by routing_domain, so google needs a routing_domain (or set stub_style = \"none\" on ldap)"
    );
}

#[test]
fn a_stub_style_the_kind_of_system_cannot_write_is_refused() {
    let text = GOOD.replace(
        "kind = \"ldap\"\nrouting_domain = \"mithi.acmecorp.com\"\nstub_style = \"routing_address\"",
        "kind = \"ldap\"\nrouting_domain = \"mithi.acmecorp.com\"\nstub_style = \"domain_routing\"",
    );
    assert_eq!(
        error(&text),
        "coexist.toml:25: systems[1].stub_style: a directory stub without a route would be taken for a local mailbox and bounce; expected \"routing_address\" (the default), \"smart_host\" or \"none\""
    );
    let text = GOOD.replace(
        "routing_domain = \"gapps.acmecorp.com\"\n",
        "routing_domain = \"gapps.acmecorp.com\"\nstub_style = \"smart_host\"\n",
    );
    assert!(
        error(&text).starts_with(
            "coexist.toml:16: systems[0].stub_style: Google's shared contacts carry no route"
        ),
        "{}",
        error(&text)
    );
    let text = GOOD
        .replace("kind = \"ldap\"", "kind = \"active_directory\"")
        .replace(
            "stub_style = \"routing_address\"",
            "stub_style = \"smart_host\"\nsmart_host = \"mail.acmecorp.com\"",
        );
    assert!(
        error(&text)
            .contains("systems[1].stub_style: an Active Directory contact routes by targetAddress"),
        "{}",
        error(&text)
    );
}

#[test]
fn routing_domains_must_be_distinct_and_not_shared() {
    let text = GOOD.replace("mithi.acmecorp.com", "gapps.acmecorp.com");
    assert!(
        error(&text).contains("is the routing domain of two systems"),
        "{}",
        error(&text)
    );
    let text = GOOD.replace("mithi.acmecorp.com", "acmecorp.com");
    assert!(
        error(&text).contains("is a shared domain"),
        "{}",
        error(&text)
    );
}

#[test]
fn duplicate_ids_and_bad_precedence_are_refused() {
    let text = GOOD.replace("id = \"ldap\"", "id = \"google\"");
    assert!(
        error(&text).contains("the id `google` is used by two systems"),
        "{}",
        error(&text)
    );
    let text = GOOD.replace("title = [\"google\"]", "colour = [\"google\"]");
    assert!(
        error(&text).starts_with(
            "coexist.toml:10: precedence.colour: expected `default` or an attribute name"
        ),
        "{}",
        error(&text)
    );
}

#[test]
fn the_store_url_may_be_a_secret_reference() {
    let text = format!("{GOOD}\n[store]\nurl = {{ env = \"COEXIST_TEST_UNSET_STORE_URL\" }}\n");
    let config = parse(&text).unwrap();
    let e = config
        .store_url()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("store.url") && e.contains("COEXIST_TEST_UNSET_STORE_URL"),
        "{e}"
    );
    // The reference is what gets printed, never a value.
    assert!(!format!("{config:?}").contains("password"));
}

#[test]
fn a_catch_all_relay_cycle_is_refused_naming_both_lines() {
    // google relays unknown recipients to ldap (line 16), ldap back to google.
    let text = format!("{GOOD}unknown_recipient = {{ relay = \"google\" }}\n");
    assert_eq!(
        error(&text),
        "coexist.toml:16: systems[0].unknown_recipient: the catch-all relays form a cycle (google → ldap → google; lines 16, 26): mail to any address no system knows would loop between them; make one of them reject unknown recipients (unknown_recipient = \"reject\")"
    );
}

#[test]
fn each_kind_says_what_it_does_with_mail_for_a_disabled_account() {
    let config = parse(GOOD).unwrap();
    assert_eq!(
        config.policy.systems[0].disabled_mailboxes,
        DisabledMailboxes::Bounce,
        "Google bounces mail to suspended users"
    );
    assert_eq!(
        config.policy.systems[1].disabled_mailboxes,
        DisabledMailboxes::Deliver
    );
    let qmail = format!("{GOOD}disabled_mailboxes = \"bounce\"\n");
    assert_eq!(
        parse(&qmail).unwrap().policy.systems[1].disabled_mailboxes,
        DisabledMailboxes::Bounce
    );
}

#[test]
fn unset_environment_variables_are_named_with_their_key() {
    let text = format!(
        "{GOOD}\n[systems.connection]\nurl = \"ldap://127.0.0.1\"\npassword = {{ env = \"COEXIST_TEST_SURELY_UNSET_4711\" }}\n"
    );
    let config = parse(&text).unwrap();
    assert_eq!(
        config.unset_env(),
        [(
            "systems[1].connection.password".to_string(),
            "COEXIST_TEST_SURELY_UNSET_4711".to_string()
        )]
    );
    assert!(config
        .store_description()
        .ends_with("(the default: a SQLite file beside the configuration file)"));
}
