//! TLS and the failures an admin meets, against the real slapd: each gives
//! one clear error naming the system and what to do.

// Integration tests: helpers fail loudly, like the tests they serve.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use coexist_connector::{
    Connector, ConnectorError, NoProgress, Operation, RecipientKind, Route, Stub,
};
use coexist_ldap::LdapConnector;
use common::{password_file, var, Server, Subtree};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn stub() -> Stub {
    Stub {
        anchor: "google:1".into(),
        kind: RecipientKind::Person,
        primary_address: "x@acmecorp.com".into(),
        aliases: vec![],
        route: Route::Address("x@gapps.acmecorp.com".into()),
        attributes: Default::default(),
    }
}

#[tokio::test]
async fn ldaps_and_starttls_work_with_the_ca_file_and_verification_on() {
    let t = Subtree::new(Server::slapd()).await;
    t.person("a", "a@acmecorp.com", vec![]).await;
    let mut ldaps = t.config();
    ldaps.url = t.server.ldaps_url.clone();
    ldaps.ca_file = Some(var("COEXIST_TEST_CA_FILE"));
    let pull = LdapConnector::new("mail", ldaps.clone())
        .unwrap()
        .pull(None, &NoProgress)
        .await
        .unwrap();
    assert_eq!(pull.recipients.len(), 1);
    let mut starttls = t.config();
    starttls.starttls = true;
    starttls.ca_file = Some(var("COEXIST_TEST_CA_FILE"));
    let pull = LdapConnector::new("mail", starttls)
        .unwrap()
        .pull(None, &NoProgress)
        .await
        .unwrap();
    assert_eq!(pull.recipients.len(), 1);

    // Without the test CA the certificate is not trusted...
    let mut untrusted = ldaps.clone();
    untrusted.ca_file = None;
    let err = LdapConnector::new("mail", untrusted.clone())
        .unwrap()
        .pull(None, &NoProgress)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("`mail`") && text.contains("TLS") && text.contains("ca_file"),
        "{text}"
    );
    // ...unless verification is explicitly turned off.
    untrusted.insecure_skip_verify = true;
    let pull = LdapConnector::new("mail", untrusted)
        .unwrap()
        .pull(None, &NoProgress)
        .await
        .unwrap();
    assert_eq!(pull.recipients.len(), 1);
}

#[tokio::test]
async fn a_full_pull_works_over_ldapi() {
    let t = Subtree::new(Server::slapd()).await;
    t.person("a", "a@acmecorp.com", vec![]).await;
    t.person("b", "b@acmecorp.com", vec![]).await;
    let mut config = t.config();
    config.url = var("COEXIST_TEST_SLAPD_LDAPI");
    config.page_size = 1;
    let pull = LdapConnector::new("mail", config)
        .unwrap()
        .pull(None, &NoProgress)
        .await
        .unwrap();
    assert!(pull.complete);
    assert_eq!(pull.recipients.len(), 2, "{:?}", pull.problems);
}

#[tokio::test]
async fn a_refused_bind_is_an_authentication_error_naming_the_system() {
    let t = Subtree::new(Server::slapd()).await;
    let mut config = t.config();
    config.password = password_file("wrong-password");
    let err = LdapConnector::new("mail", config)
        .unwrap()
        .pull(None, &NoProgress)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, ConnectorError::Authentication { .. }),
        "{err:?}"
    );
    assert!(
        text.contains("`mail`") && text.contains("bind_dn") && text.contains("password"),
        "{text}"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_a_retryable_error() {
    let t = Subtree::new(Server::slapd()).await;
    let mut config = t.config();
    config.url = "ldap://127.0.0.1:1".into();
    let err = LdapConnector::new("mail", config)
        .unwrap()
        .pull(None, &NoProgress)
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(err.to_string().contains("cannot connect"), "{err}");
}

#[tokio::test]
async fn a_missing_stub_ou_is_named() {
    let t = Subtree::new(Server::slapd()).await;
    let mut config = t.config();
    config.stub_base = format!("ou=nowhere,{}", t.dn);
    let connector = LdapConnector::new("mail", config).unwrap();
    let err = connector
        .apply(&Operation::Create { stub: stub() })
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("ou=nowhere") && text.contains("does not exist"),
        "{text}"
    );
    let err = connector
        .apply_many(&[
            Operation::Create { stub: stub() },
            Operation::Create { stub: stub() },
        ])
        .await;
    assert!(err.iter().all(|r| r
        .as_ref()
        .is_err_and(|e| e.to_string().contains("ou=nowhere"))));
}

#[tokio::test]
async fn insufficient_rights_say_which_rights_are_missing() {
    let t = Subtree::new(Server::slapd()).await;
    let user = t.bind_user("limited", "limited-pw").await;
    let err = LdapConnector::new("mail", t.config_as(&user, "limited-pw"))
        .unwrap()
        .apply(&Operation::Create { stub: stub() })
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("`mail`")
            && text.contains("insufficientAccessRights")
            && text.contains("write access"),
        "{text}"
    );
}

#[tokio::test]
async fn a_size_limit_part_way_marks_the_pull_incomplete() {
    let t = Subtree::new(Server::slapd()).await;
    for i in 0..10 {
        t.person(&format!("u{i}"), &format!("u{i}@acmecorp.com"), vec![])
            .await;
    }
    let user = t.bind_user("limited", "limited-pw").await;
    let limit = format!(
        "dn: olcDatabase={{1}}mdb,cn=config\nchangetype: modify\nadd: olcLimits\nolcLimits: dn.exact=\"{user}\" size=4 size.pr=2 size.prtotal=4\n"
    );
    common::slapd_config(&limit);
    let mut config = t.config_as(&user, "limited-pw");
    config.page_size = 2;
    let result = LdapConnector::new("mail", config)
        .unwrap()
        .pull(None, &NoProgress)
        .await;
    common::slapd_config(&format!(
        "dn: olcDatabase={{1}}mdb,cn=config\nchangetype: modify\ndelete: olcLimits\nolcLimits: dn.exact=\"{user}\" size=4 size.pr=2 size.prtotal=4\n"
    ));
    let pull = result.unwrap();
    assert!(!pull.complete);
    assert!(pull.cursor.is_none(), "no cursor from an incomplete read");
    let text = format!("{:?}", pull.problems);
    assert!(
        text.contains("size limit") && text.contains("nothing is deleted"),
        "{text}"
    );
}

/// A TCP proxy to slapd that cuts every connection after `budget` bytes
/// from the server, as a server restart mid-read would.
async fn cutting_proxy(upstream: String, budget: usize) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..10 {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let mut server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
                let (mut cr, mut cw) = client.split();
                let (mut sr, mut sw) = server.split();
                let sent = Arc::new(AtomicUsize::new(0));
                let up = async {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                };
                let down = async {
                    let mut buf = [0u8; 512];
                    while let Ok(n) = sr.read(&mut buf).await {
                        if n == 0 || sent.fetch_add(n, Ordering::SeqCst) + n > budget {
                            break;
                        }
                        if cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                };
                tokio::select! { _ = up => {}, _ = down => {} }
            });
        }
    });
    format!("ldap://{addr}")
}

#[tokio::test]
async fn a_connection_lost_mid_read_marks_the_pull_incomplete() {
    let t = Subtree::new(Server::slapd()).await;
    for i in 0..60 {
        t.person(&format!("u{i}"), &format!("u{i}@acmecorp.com"), vec![])
            .await;
    }
    let upstream = t.server.url.trim_start_matches("ldap://").to_string();
    let mut config = t.config();
    config.url = cutting_proxy(upstream, 12_000).await;
    config.page_size = 5;
    config.timeout_seconds = 5;
    let pull = LdapConnector::new("mail", config)
        .unwrap()
        .pull(None, &NoProgress)
        .await
        .unwrap();
    assert!(!pull.complete);
    assert!(
        !pull.recipients.is_empty() && pull.recipients.len() < 60,
        "{}",
        pull.recipients.len()
    );
    let text = format!("{:?}", pull.problems);
    assert!(
        text.contains("`mail`") && text.contains("stopped part-way"),
        "{text}"
    );
}
