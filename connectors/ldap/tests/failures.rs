//! TLS and the failures an admin meets, against the real slapd: each gives
//! one clear error naming the system and what to do.

// Integration tests: helpers fail loudly, like the tests they serve.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use coexist_connector::{
    Connector, ConnectorError, NoProgress, Operation, RecipientKind, Route, Stub,
};
use coexist_ldap::LdapConnector;
use coexist_testenv::var;
use common::{password_file, proxy, Cut, Subtree, TestServer};

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
    let t = Subtree::new(TestServer::slapd()).await;
    t.person("a", "a@acmecorp.com", vec![]).await;
    let mut ldaps = t.config();
    ldaps.url = t.server.ldaps_url.clone();
    ldaps.starttls = false;
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
    let t = Subtree::new(TestServer::slapd()).await;
    t.person("a", "a@acmecorp.com", vec![]).await;
    t.person("b", "b@acmecorp.com", vec![]).await;
    let mut config = t.config();
    config.url = var("COEXIST_TEST_SLAPD_LDAPI");
    config.starttls = false;
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
    let t = Subtree::new(TestServer::slapd()).await;
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
    let t = Subtree::new(TestServer::slapd()).await;
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
    let t = Subtree::new(TestServer::slapd()).await;
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
    let t = Subtree::new(TestServer::slapd()).await;
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
    let t = Subtree::new(TestServer::slapd()).await;
    for i in 0..10 {
        t.person(&format!("u{i}"), &format!("u{i}@acmecorp.com"), vec![])
            .await;
    }
    let user = t.bind_user("limited", "limited-pw").await;
    let limit = format!(
        "dn: olcDatabase={{1}}mdb,cn=config\nchangetype: modify\nadd: olcLimits\nolcLimits: dn.exact=\"{user}\" size=4 size.pr=2 size.prtotal=4\n"
    );
    coexist_testenv::slapd_config(&limit);
    let mut config = t.config_as(&user, "limited-pw");
    config.page_size = 2;
    let result = LdapConnector::new("mail", config)
        .unwrap()
        .pull(None, &NoProgress)
        .await;
    coexist_testenv::slapd_config(&format!(
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

#[tokio::test]
async fn a_connection_lost_mid_read_marks_the_pull_incomplete() {
    let t = Subtree::new(TestServer::slapd()).await;
    for i in 0..60 {
        t.person(&format!("u{i}"), &format!("u{i}@acmecorp.com"), vec![])
            .await;
    }
    let upstream = t.server.url.trim_start_matches("ldap://").to_string();
    let mut config = t.cleartext_config();
    // Every connection is cut after 12,000 bytes from the server, as a
    // server restart mid-read would.
    config.url = format!(
        "ldap://{}",
        proxy("127.0.0.1", upstream, Cut::AfterServerSent(12_000)).await
    );
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

/// What an admin must read when the server's certificate is not trusted:
/// what ca_file must hold, the file, and the URL.
fn assert_explains_ca_file(err: &ConnectorError, ca_file: &str, url: &str) {
    let text = err.to_string();
    assert!(matches!(err, ConnectorError::Permanent { .. }), "{err:?}");
    for words in [
        "`mail`",
        url,
        ca_file,
        "the CA certificate that issued the server's certificate",
        "not the server's own certificate",
    ] {
        assert!(text.contains(words), "`{words}` missing from: {text}");
    }
}

#[tokio::test]
async fn the_server_certificate_given_as_ca_file_is_explained_on_every_tls_connection() {
    let t = Subtree::new(TestServer::slapd()).await;
    t.person("a", "a@acmecorp.com", vec![]).await;
    // The mistake: the server's own certificate instead of its CA's.
    let server_cert = format!("{}/certs/slapd.pem", var("COEXIST_TESTENV_DIR"));
    let mut ldaps = t.config();
    ldaps.url = t.server.ldaps_url.clone();
    ldaps.starttls = false;
    ldaps.ca_file = Some(server_cert.clone());
    // ldap3 (the connector's own connection) over ldaps://
    let err = LdapConnector::new("mail", ldaps.clone())
        .unwrap()
        .pull(None, &NoProgress)
        .await
        .unwrap_err();
    assert_explains_ca_file(&err, &server_cert, &ldaps.url);
    // the lean reader of full reads (and of followed references)
    let err = coexist_ldap::Endpoint::new("mail", &ldaps)
        .lean()
        .await
        .unwrap_err();
    assert_explains_ca_file(&err, &server_cert, &ldaps.url);
    // StartTLS, through both
    let mut starttls = t.config();
    starttls.starttls = true;
    starttls.ca_file = Some(server_cert.clone());
    let err = LdapConnector::new("mail", starttls.clone())
        .unwrap()
        .pull(None, &NoProgress)
        .await
        .unwrap_err();
    assert_explains_ca_file(&err, &server_cert, &starttls.url);
    let err = coexist_ldap::Endpoint::new("mail", &starttls)
        .lean()
        .await
        .unwrap_err();
    assert_explains_ca_file(&err, &server_cert, &starttls.url);
}

#[tokio::test]
async fn a_ca_file_of_another_ca_is_explained() {
    let t = Subtree::new(TestServer::slapd()).await;
    // A CA of its own, which never issued slapd's certificate.
    let dir = std::env::temp_dir().join(format!("coexist-other-ca-{}", common::random()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("other-ca.pem").display().to_string();
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-new", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=another CA", "-keyout"])
        .arg(dir.join("other-ca.key"))
        .args(["-out", &ca_file])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let mut ldaps = t.config();
    ldaps.url = t.server.ldaps_url.clone();
    ldaps.starttls = false;
    ldaps.ca_file = Some(ca_file.clone());
    let err = LdapConnector::new("mail", ldaps.clone())
        .unwrap()
        .pull(None, &NoProgress)
        .await
        .unwrap_err();
    let _ = std::fs::remove_dir_all(&dir);
    assert_explains_ca_file(&err, &ca_file, &ldaps.url);
}

#[tokio::test]
async fn a_ca_certificate_served_as_the_server_certificate_is_explained() {
    // The usual self-signed certificate (`openssl req -x509`: CA:TRUE),
    // served by a TLS server of the test's own and given as ca_file: TLS
    // refuses a CA certificate as a server's (webpki's CaUsedAsEndEntity).
    let dir = std::env::temp_dir().join(format!("coexist-self-signed-{}", common::random()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-new", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .args(["-addext", "basicConstraints=critical,CA:TRUE", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    use rustls::pki_types::pem::PemObject;
    let chain: Vec<rustls::pki_types::CertificateDer<'static>> =
        rustls::pki_types::CertificateDer::pem_file_iter(&cert)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    let private = rustls::pki_types::PrivateKeyDer::from_pem_file(&key).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, private)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = acceptor.accept(tcp).await;
        }
    });
    let t = Subtree::new(TestServer::slapd()).await;
    let mut config = t.config();
    config.url = format!("ldaps://127.0.0.1:{port}");
    config.starttls = false;
    let ca_file = cert.display().to_string();
    config.ca_file = Some(ca_file.clone());
    let errors = [
        LdapConnector::new("mail", config.clone())
            .unwrap()
            .pull(None, &NoProgress)
            .await
            .unwrap_err(),
        coexist_ldap::Endpoint::new("mail", &config)
            .lean()
            .await
            .unwrap_err(),
    ];
    let _ = std::fs::remove_dir_all(&dir);
    for err in errors {
        assert_explains_ca_file(&err, &ca_file, &config.url);
        assert!(
            err.to_string().contains("presents a CA certificate"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn a_certificate_not_naming_the_host_of_the_url_is_explained() {
    let t = Subtree::new(TestServer::slapd()).await;
    let upstream = t
        .server
        .ldaps_url
        .trim_start_matches("ldaps://")
        .to_string();
    let mut ldaps = t.config();
    // slapd's certificate names 127.0.0.1 and localhost, not 127.0.0.3.
    // A forwarder on another loopback address, so that the url names a
    // host the server's certificate does not.
    ldaps.url = format!("ldaps://{}", proxy("127.0.0.3", upstream, Cut::Never).await);
    ldaps.starttls = false;
    ldaps.ca_file = Some(var("COEXIST_TEST_CA_FILE"));
    for err in [
        LdapConnector::new("mail", ldaps.clone())
            .unwrap()
            .pull(None, &NoProgress)
            .await
            .unwrap_err(),
        coexist_ldap::Endpoint::new("mail", &ldaps)
            .lean()
            .await
            .unwrap_err(),
    ] {
        let text = err.to_string();
        assert!(matches!(err, ConnectorError::Permanent { .. }), "{err:?}");
        assert!(
            text.contains(&ldaps.url)
                && text.contains("127.0.0.3")
                && text.contains("does not name"),
            "{text}"
        );
    }
}
