//! Configuration errors name the file, the line and the key; every
//! relative path in the file is relative to the file's folder.

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
    assert_eq!(
        config.store_url().unwrap(),
        format!(
            "sqlite:{}",
            std::path::absolute("coexist.db").unwrap().display()
        )
    );
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
fn a_routing_domain_is_a_blanket_alias_unless_the_configuration_says_otherwise() {
    let config = parse(GOOD).unwrap();
    assert!(config
        .policy
        .systems
        .iter()
        .all(|s| s.routing_domain_is_alias));
    let listed_only = format!("{GOOD}routing_domain_is_alias = false\n");
    assert!(!parse(&listed_only).unwrap().policy.systems[1].routing_domain_is_alias);
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

/// `GOOD` read from `path` with `[store] url = URL` (a TOML value).
fn store_url_of(path: &str, url: &str) -> String {
    let text = format!("{GOOD}\n[store]\nurl = {url}\n");
    Config::parse(Path::new(path), &text)
        .unwrap()
        .store_url()
        .unwrap()
}

#[test]
fn a_relative_sqlite_store_path_is_relative_to_the_configuration_file() {
    for url in [
        r#""sqlite:state/coexist.db""#,
        r#""sqlite://state/coexist.db""#,
        r#""sqlite:./state/coexist.db""#,
    ] {
        assert_eq!(
            store_url_of("/etc/coexist/coexist.toml", url),
            "sqlite:/etc/coexist/state/coexist.db",
            "{url}"
        );
    }
}

#[test]
fn a_relative_sqlite_store_path_keeps_its_query() {
    assert_eq!(
        store_url_of(
            "/etc/coexist/coexist.toml",
            r#""sqlite:state/coexist.db?mode=rwc""#
        ),
        "sqlite:/etc/coexist/state/coexist.db?mode=rwc"
    );
    assert_eq!(
        store_url_of(
            "/etc/coexist/coexist.toml",
            r#""sqlite://coexist.db?mode=ro""#
        ),
        "sqlite:/etc/coexist/coexist.db?mode=ro"
    );
}

#[test]
fn a_relative_sqlite_store_path_beside_a_relative_configuration_is_made_absolute() {
    // `--config conf/coexist.toml`: the store is conf/coexist.db, named so
    // that the store's URL reading cannot take `conf` for a host.
    let expected = std::path::absolute("conf/coexist.db").unwrap();
    assert_eq!(
        store_url_of("conf/coexist.toml", r#""sqlite:coexist.db""#),
        format!("sqlite:{}", expected.display())
    );
    let up = std::path::absolute("conf/../shared/coexist.db").unwrap();
    assert_eq!(
        store_url_of("conf/coexist.toml", r#""sqlite:../shared/coexist.db""#),
        format!("sqlite:{}", up.display())
    );
}

#[test]
fn absolute_memory_and_postgres_store_urls_are_kept_as_written() {
    for url in [
        "sqlite::memory:",
        "sqlite://:memory:",
        "sqlite://?mode=memory",
        "sqlite:/var/lib/coexist/coexist.db",
        "sqlite:///var/lib/coexist/coexist.db",
        "sqlite:/var/lib/coexist/coexist.db?mode=rwc",
        "postgres://coexist@db.acmecorp.com/coexist",
        "postgresql://coexist@db.acmecorp.com/coexist?sslmode=require",
    ] {
        assert_eq!(
            store_url_of("/etc/coexist/coexist.toml", &format!("\"{url}\"")),
            url
        );
    }
}

#[test]
fn the_default_store_is_beside_the_configuration_file() {
    let config = Config::parse(Path::new("/etc/coexist/coexist.toml"), GOOD).unwrap();
    assert_eq!(
        config.store_url().unwrap(),
        "sqlite:/etc/coexist/coexist.db"
    );
}

#[test]
fn a_store_url_read_from_a_relative_file_is_read_beside_the_configuration_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("store-url"), "sqlite:state/coexist.db\n").unwrap();
    let path = dir.path().join("coexist.toml");
    let text = format!("{GOOD}\n[store]\nurl = {{ file = \"store-url\" }}\n");
    let config = Config::parse(&path, &text).unwrap();
    // The file is found beside the configuration, and the relative path
    // it holds follows the same rule.
    assert_eq!(
        config.store_url().unwrap(),
        format!("sqlite:{}", dir.path().join("state/coexist.db").display())
    );
}

#[test]
fn without_a_dns_table_doctor_checks_no_dns_and_systems_override_nothing() {
    let config = parse(GOOD).unwrap();
    assert_eq!(config.dns, None);
    assert_eq!(config.systems[0].dns, SystemDns::default());
}

#[test]
fn the_dns_table_names_the_nameserver_and_timeout_and_systems_override_their_kind() {
    let text = GOOD
        .replace(
            "[precedence]",
            "[dns]\nnameserver = \"127.0.0.1:5300\"\ntimeout = 0.5\n\n[precedence]",
        )
        .replace(
            "[systems.connection]\ndomain = \"acmecorp.com\"",
            "[systems.connection]\ndomain = \"acmecorp.com\"\n\n[systems.dns]\nmx_hosts = [\"*.mx.example.test\", \"ASPMX.l.google.com.\"]\nspf_includes = [\"_spf.example.test\"]\nspf_relays = [\"192.0.2.25\", \"198.51.100.0/24\", \"mail.acmecorp.com\"]\ndkim_selectors = [\"s1\"]\nautodiscover = \"autodiscover.outlook.com\"",
        );
    let config = parse(&text).unwrap();
    let dns = config.dns.unwrap();
    assert_eq!(dns.nameserver, Some("127.0.0.1:5300".parse().unwrap()));
    assert_eq!(dns.timeout, std::time::Duration::from_millis(500));
    let google = &config.systems[0].dns;
    assert_eq!(
        google.mx_hosts.as_deref(),
        Some(
            &[
                "*.mx.example.test".to_string(),
                "aspmx.l.google.com".to_string()
            ][..]
        )
    );
    assert_eq!(
        google.spf_includes.as_deref(),
        Some(&["_spf.example.test".to_string()][..])
    );
    let relays: Vec<String> = google
        .spf_relays
        .iter()
        .flatten()
        .map(|r| r.to_string())
        .collect();
    assert_eq!(
        relays,
        ["192.0.2.25", "198.51.100.0/24", "mail.acmecorp.com"]
    );
    assert_eq!(
        google.dkim_selectors.as_deref(),
        Some(&["s1".to_string()][..])
    );
    assert_eq!(
        google.autodiscover.as_deref(),
        Some("autodiscover.outlook.com")
    );
    // A nameserver without a port asks port 53; an empty [dns] the system's.
    let text = GOOD.replace(
        "[precedence]",
        "[dns]\nnameserver = \"192.0.2.53\"\n\n[precedence]",
    );
    let dns = parse(&text).unwrap().dns.unwrap();
    assert_eq!(dns.nameserver, Some("192.0.2.53:53".parse().unwrap()));
    assert_eq!(dns.timeout, std::time::Duration::from_secs(5));
    let text = GOOD.replace("[precedence]", "[dns]\n\n[precedence]");
    assert_eq!(parse(&text).unwrap().dns.unwrap().nameserver, None);
}

#[test]
fn a_bad_dns_setting_names_its_line_and_key() {
    let with_dns =
        |table: &str| GOOD.replace("[precedence]", &format!("[dns]\n{table}\n\n[precedence]"));
    let e = error(&with_dns("nameserver = \"ns.acmecorp.com\""));
    assert!(
        e.starts_with(
            "coexist.toml:9: dns.nameserver: `ns.acmecorp.com` is not a nameserver address"
        ),
        "{e}"
    );
    let e = error(&with_dns("timeout = 0"));
    assert!(
        e.starts_with("coexist.toml:9: dns.timeout: expected the seconds"),
        "{e}"
    );
    let e = error(&with_dns("nameservers = \"127.0.0.1\""));
    assert!(
        e.starts_with("coexist.toml:9: ") && e.contains("unknown field `nameservers`"),
        "{e}"
    );
    let with_system_dns = |line: &str| {
        GOOD.replace(
            "stub_style = \"routing_address\"\n",
            &format!("stub_style = \"routing_address\"\n\n[systems.dns]\n{line}\n"),
        )
    };
    let e = error(&with_system_dns("spf_relays = [\"192.0.2.0/33\"]"));
    assert!(
        e.starts_with("coexist.toml:28: systems[1].dns.spf_relays: `192.0.2.0/33` is not"),
        "{e}"
    );
    let e = error(&with_system_dns("mx_hosts = [\"not a host\"]"));
    assert!(
        e.starts_with(
            "coexist.toml:28: systems[1].dns.mx_hosts: `not a host` is not a domain name"
        ),
        "{e}"
    );
    let e = error(&with_system_dns("dkim_selector = [\"google\"]"));
    assert!(
        e.starts_with("coexist.toml:28: ") && e.contains("unknown field `dkim_selector`"),
        "{e}"
    );
}

fn with_gal_server(lines: &str) -> String {
    format!("{GOOD}\n[gal_server]\n{lines}\n")
}

#[test]
fn without_a_gal_server_table_the_address_book_listens_on_loopback_under_ou_gal() {
    let config = parse(GOOD).unwrap();
    assert_eq!(config.gal_server, None);
    let defaults = GalServer::defaults(&config.policy.shared_domains);
    assert_eq!(defaults.listen.to_string(), "127.0.0.1:3890");
    assert_eq!(defaults.base, "ou=gal,dc=acmecorp,dc=com");
    assert!(!defaults.anonymous);
    assert!(defaults.accounts.is_empty());
    assert_eq!(defaults.size_limit, 1000);
    assert_eq!(defaults.refresh, std::time::Duration::from_secs(30));
    assert_eq!(defaults.tls, None);
    assert_eq!(defaults.ldaps_listen, None);
    assert_eq!(defaults.requests_per_second, 200);
    assert_eq!(defaults.unbound_timeout, std::time::Duration::from_secs(30));
}

#[test]
fn a_gal_server_table_takes_accounts_by_reference_and_paths_beside_the_file() {
    let text = with_gal_server(
        "listen = \"0.0.0.0:389\"\nldaps_listen = \"[::]:636\"\nbase = \"ou=people,dc=example,dc=org\"\nanonymous = true\nsize_limit = 200\nrefresh_seconds = 5\nmax_connections_per_client = 4\nrequests_per_second = 50\nunbound_timeout_seconds = 10\ntls = { cert_file = \"gal.crt\", key_file = \"/etc/gal.key\" }\n\n[[gal_server.accounts]]\ndn = \"cn=thunderbird,ou=people,dc=example,dc=org\"\npassword = { file = \"secrets/gal\" }\n\n[[gal_server.accounts]]\ndn = \"cn=phones,ou=people,dc=example,dc=org\"\npassword = { env = \"COEXIST_TEST_GAL_PASSWORD_SURELY_UNSET\" }",
    );
    let config = Config::parse(Path::new("/etc/coexist/coexist.toml"), &text).unwrap();
    let gal = config.gal_server.clone().unwrap();
    assert_eq!(gal.listen.to_string(), "0.0.0.0:389");
    assert_eq!(
        gal.ldaps_listen.map(|a| a.to_string()).as_deref(),
        Some("[::]:636")
    );
    assert_eq!(gal.base, "ou=people,dc=example,dc=org");
    assert!(gal.anonymous);
    assert_eq!(gal.size_limit, 200);
    assert_eq!(gal.refresh, std::time::Duration::from_secs(5));
    assert_eq!(gal.max_connections_per_client, 4);
    assert_eq!(gal.requests_per_second, 50);
    assert_eq!(gal.unbound_timeout, std::time::Duration::from_secs(10));
    assert_eq!(
        gal.tls,
        Some(GalTls {
            cert_file: PathBuf::from("/etc/coexist/gal.crt"),
            key_file: PathBuf::from("/etc/gal.key"),
        })
    );
    assert_eq!(gal.accounts.len(), 2);
    assert_eq!(
        gal.accounts[0].password,
        SecretRef::File {
            file: "/etc/coexist/secrets/gal".into()
        }
    );
    assert!(config.unset_env().contains(&(
        "gal_server.accounts[1].password".to_string(),
        "COEXIST_TEST_GAL_PASSWORD_SURELY_UNSET".to_string()
    )));
    // The base defaults to ou=gal under the first shared domain.
    let config = parse(&with_gal_server("anonymous = false")).unwrap();
    assert_eq!(
        config.gal_server.map(|g| g.base).as_deref(),
        Some("ou=gal,dc=acmecorp,dc=com")
    );
}

#[test]
fn a_wrong_gal_server_table_is_named_by_line_and_key() {
    let line = GOOD.lines().count() + 3;
    let e = error(&with_gal_server("listen = \"localhost\""));
    assert!(
        e.starts_with(&format!(
            "coexist.toml:{line}: gal_server.listen: `localhost` is not an address to listen on"
        )),
        "{e}"
    );
    let e = error(&with_gal_server("base = \"acmecorp.com\""));
    assert!(
        e.starts_with(&format!(
            "coexist.toml:{line}: gal_server.base: expected a DN"
        )),
        "{e}"
    );
    let e = error(&with_gal_server("size_limit = 0"));
    assert!(
        e.starts_with(&format!(
            "coexist.toml:{line}: gal_server.size_limit: expected a whole number from 1"
        )),
        "{e}"
    );
    let e = error(&with_gal_server("ldaps_listen = \"127.0.0.1:636\""));
    assert!(
        e.starts_with(&format!(
            "coexist.toml:{line}: gal_server.ldaps_listen: LDAPS needs a certificate"
        )),
        "{e}"
    );
    let e = error(&with_gal_server("anonymus = true"));
    assert!(e.contains("unknown field `anonymus`"), "{e}");
    let e = error(&with_gal_server(
        "[[gal_server.accounts]]\ndn = \"cn=a,dc=x\"\npassword = \"plain\"",
    ));
    // A password written in clear is refused: only references are taken.
    assert!(e.contains("SecretRef"), "{e}");
}
