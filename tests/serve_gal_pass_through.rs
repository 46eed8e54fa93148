#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `coexist serve-gal` with `[gal_server] pass_through`: people bind to
//! the address book with the name and password their directory already
//! knows. The real binary, the real slapd and Samba AD of the test
//! environment (`deploy/testenv.sh`), and `ldapwhoami` as the client.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Output, Stdio};

use coexist_testenv::{random, Password, Subtree, TestServer};

const SLAPD_PASSWORD: &str = "COEXIST_PT_SLAPD_PASSWORD";
const SAMBA_PASSWORD: &str = "COEXIST_PT_SAMBA_PASSWORD";

/// An organisation of an OpenLDAP mail server (`ldap`, the slapd subtree
/// `t`) and Active Directory (`ad`), served by `serve-gal` with binds
/// passed through to `pass_through`.
fn config(t: &Subtree, samba: &TestServer, pass_through: &str) -> String {
    format!(
        r#"[organisation]
shared_domains = ["acmecorp.com"]

[topology]
mx = "ldap"

{ldap}
[[systems]]
id = "ad"
kind = "active_directory"
routing_domain = "onprem.acmecorp.com"
stub_style = "routing_address"
[systems.connection]
url = "{ad_url}"
starttls = true
ca_file = "{ca}"
bind_dn = "{ad_bind_dn}"
password = {{ env = "{SAMBA_PASSWORD}" }}
base_dns = ["{ad_base}"]
stub_base = "{ad_base}"

[gal_server]
listen = "127.0.0.1:0"
pass_through = "{pass_through}"
"#,
        ldap = t.system_toml(
            "ldap",
            "mithi.acmecorp.com",
            Password::Env(SLAPD_PASSWORD),
            &t.people,
            "",
        ),
        ca = t.server.ca_file,
        ad_url = samba.url,
        ad_bind_dn = samba.bind_dn,
        ad_base = samba.base,
    )
}

/// A running `coexist serve-gal`; killed when dropped.
struct Server {
    _dir: tempfile::TempDir,
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(config_text: &str, slapd: &TestServer, samba: &TestServer) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("coexist.toml");
        std::fs::write(&config, config_text).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_coexist"))
            .arg("--config")
            .arg(&config)
            .arg("serve-gal")
            .env(SLAPD_PASSWORD, &slapd.password)
            .env(SAMBA_PASSWORD, &samba.password)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        let port = loop {
            let mut line = String::new();
            if stderr.read_line(&mut line).unwrap() == 0 {
                panic!("serve-gal stopped before serving: {seen}");
            }
            seen.push_str(&line);
            let port = line
                .split("ldap://127.0.0.1:")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|p| p.parse::<u16>().ok());
            if let Some(port) = port {
                break port;
            }
        };
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = stderr.read_to_string(&mut sink);
        });
        Server {
            _dir: dir,
            child,
            port,
        }
    }

    /// `ldapwhoami` bound as `name` with `password`.
    fn whoami(&self, name: &str, password: &str) -> Output {
        Command::new("ldapwhoami")
            .args(["-x", "-H", &format!("ldap://127.0.0.1:{}", self.port)])
            .args(["-o", "nettimeout=10", "-D", name, "-w", password])
            .output()
            .unwrap_or_else(|e| panic!("ldapwhoami (deploy/testenv.sh installs it): {e}"))
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_person_binds_with_the_dn_and_password_their_openldap_entry_holds() {
    let t = Subtree::new(TestServer::slapd());
    let samba = TestServer::samba();
    let secret = format!("pw-{}", random());
    let dn = format!("uid=ann,{}", t.people);
    t.server.ldapadd(&format!(
        "dn: {dn}\nobjectClass: inetOrgPerson\nuid: ann\ncn: Ann Example\nsn: Example\nmail: ann@acmecorp.com\nuserPassword: {secret}\n"
    ));
    let server = Server::start(&config(&t, &samba, "ldap"), &t.server, &samba);

    let bound = server.whoami(&dn, &secret);
    assert_eq!(bound.status.code(), Some(0), "{}", text(&bound));
    assert_eq!(
        String::from_utf8_lossy(&bound.stdout).trim().to_lowercase(),
        format!("dn:{}", dn.to_lowercase()),
    );

    // The directory's refusal is the address book's: invalidCredentials (49).
    let wrong = server.whoami(&dn, "not the password");
    assert_eq!(wrong.status.code(), Some(49), "{}", text(&wrong));
    let unknown = server.whoami(&format!("uid=nobody,{}", t.people), &secret);
    assert_eq!(unknown.status.code(), Some(49), "{}", text(&unknown));
}

#[test]
fn an_active_directory_user_binds_with_their_user_principal_name() {
    let t = Subtree::new(TestServer::slapd());
    let samba = TestServer::samba();
    let realm = samba
        .base
        .split(',')
        .filter_map(|rdn| rdn.split_once('='))
        .map(|(_, v)| v.to_lowercase())
        .collect::<Vec<_>>()
        .join(".");
    let upn = format!("Administrator@{realm}");
    let server = Server::start(&config(&t, &samba, "ad"), &t.server, &samba);

    let bound = server.whoami(&upn, &samba.password);
    assert_eq!(bound.status.code(), Some(0), "{}", text(&bound));
    // Not a DN: the authorization identity is a user id (RFC 4513).
    assert_eq!(
        String::from_utf8_lossy(&bound.stdout).trim(),
        format!("u:{}", upn.to_lowercase())
    );

    let wrong = server.whoami(&upn, "not the password");
    assert_eq!(wrong.status.code(), Some(49), "{}", text(&wrong));
}

#[test]
fn pass_through_must_name_an_ldap_or_active_directory_system() {
    let t = Subtree::new(TestServer::slapd());
    let samba = TestServer::samba();
    let dir = tempfile::tempdir().unwrap();
    for (name, expected) in [
        ("nowhere", "no system has the id `nowhere`"),
        ("", "no system has the id ``"),
    ] {
        let path = dir.path().join("coexist.toml");
        std::fs::write(&path, config(&t, &samba, name)).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_coexist"))
            .arg("--config")
            .arg(&path)
            .arg("check-config")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let said = text(&out);
        assert!(said.contains(expected), "{said}");
        assert!(said.contains("gal_server.pass_through"), "{said}");
        // The error names the line of the key.
        let line = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .position(|l| l.starts_with("pass_through"))
            .unwrap()
            + 1;
        assert!(said.contains(&format!(":{line}")), "{said}");
    }
}
