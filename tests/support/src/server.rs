//! The test servers' settings, and the ldap-utils programs run against
//! them as an admin would.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::env::var;
use crate::ldif::{parse_ldif, LdifEntry};

/// Which kind of directory a [`TestServer`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Directory {
    /// OpenLDAP's slapd (also in the shape of a qmail-ldap server).
    OpenLdap,
    /// Samba's Active Directory domain controller.
    ActiveDirectory,
}

/// One directory server of the test environment, and its admin.
///
/// Every server listens on loopback with plain LDAP that accepts StartTLS;
/// its certificate is signed by the test CA ([`TestServer::ca_file`]).
#[derive(Debug, Clone)]
pub struct TestServer {
    pub directory: Directory,
    /// `ldap://host:port`.
    pub url: String,
    /// `ldaps://host:port`; empty for [`TestServer::slapd_qmail`], which has
    /// no LDAPS port.
    pub ldaps_url: String,
    /// The naming context the tests work below.
    pub base: String,
    /// The admin's DN, with rights to everything below [`TestServer::base`].
    pub bind_dn: String,
    pub password: String,
    /// The test CA's certificate (PEM), which signed the servers'.
    pub ca_file: String,
}

impl TestServer {
    /// slapd's database `COEXIST_TEST_SLAPD_BASE` (acmecorp's directory),
    /// with syncprov (RFC 4533 content sync) and misc.schema
    /// (`inetLocalMailRecipient`).
    pub fn slapd() -> TestServer {
        TestServer {
            directory: Directory::OpenLdap,
            url: var("COEXIST_TEST_SLAPD_URL"),
            ldaps_url: var("COEXIST_TEST_SLAPD_LDAPS_URL"),
            base: var("COEXIST_TEST_SLAPD_BASE"),
            bind_dn: var("COEXIST_TEST_SLAPD_BIND_DN"),
            password: var("COEXIST_TEST_SLAPD_PASSWORD"),
            ca_file: var("COEXIST_TEST_CA_FILE"),
        }
    }

    /// The same slapd's second database, without syncprov (deltas by
    /// modifyTimestamp): its own base and admin, the same password.
    pub fn slapd_plain() -> TestServer {
        TestServer {
            base: var("COEXIST_TEST_SLAPD_PLAIN_BASE"),
            bind_dn: var("COEXIST_TEST_SLAPD_PLAIN_BIND_DN"),
            ..TestServer::slapd()
        }
    }

    /// The second slapd, shaped like a qmail-ldap server: the qmail-ldap
    /// schema (`qmailUser`), no misc.schema (no `inetLocalMailRecipient`).
    /// Plain LDAP (StartTLS capable), no LDAPS port.
    pub fn slapd_qmail() -> TestServer {
        TestServer {
            directory: Directory::OpenLdap,
            url: var("COEXIST_TEST_SLAPD_QMAIL_URL"),
            ldaps_url: String::new(),
            base: var("COEXIST_TEST_SLAPD_QMAIL_BASE"),
            bind_dn: var("COEXIST_TEST_SLAPD_QMAIL_BIND_DN"),
            password: var("COEXIST_TEST_SLAPD_QMAIL_PASSWORD"),
            ca_file: var("COEXIST_TEST_CA_FILE"),
        }
    }

    /// Samba's Active Directory domain, its Administrator.
    pub fn samba() -> TestServer {
        TestServer {
            directory: Directory::ActiveDirectory,
            url: var("COEXIST_TEST_SAMBA_URL"),
            ldaps_url: var("COEXIST_TEST_SAMBA_LDAPS_URL"),
            base: var("COEXIST_TEST_SAMBA_BASE"),
            bind_dn: var("COEXIST_TEST_SAMBA_BIND_DN"),
            password: var("COEXIST_TEST_SAMBA_PASSWORD"),
            ca_file: var("COEXIST_TEST_CA_FILE"),
        }
    }

    /// The ldap-utils `program` (`ldapadd`, `ldapsearch`…) bound as the
    /// admin over StartTLS, the server's certificate checked against the
    /// test CA: `program -x -ZZ -H URL -D BIND_DN -w PASSWORD`. Add the
    /// program's own arguments.
    pub fn command(&self, program: &str) -> Command {
        let mut command = self.plain_command(program);
        command.env("LDAPTLS_CACERT", &self.ca_file).arg("-ZZ");
        command
    }

    /// [`TestServer::command`] without TLS: `program -x -H URL -D BIND_DN
    /// -w PASSWORD`. For a reference measurement that must speak what the
    /// connector it is compared with speaks.
    pub fn plain_command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .args(["-x", "-H", &self.url, "-D", &self.bind_dn, "-w"])
            .arg(&self.password);
        command
    }

    /// Runs [`TestServer::command`]`(program)` with `args`, `stdin` on its
    /// standard input (`""` for none), and returns what it did, failed or
    /// not.
    ///
    /// # Panics
    ///
    /// When the program does not run (ldap-utils missing).
    pub fn tool(&self, program: &str, args: &[&str], stdin: &str) -> Output {
        let mut command = self.command(program);
        command.args(args);
        run(program, command, stdin)
    }

    /// [`TestServer::tool`], which must succeed.
    ///
    /// # Panics
    ///
    /// When the program fails, with its error output and `stdin`.
    pub fn must(&self, program: &str, args: &[&str], stdin: &str) -> Output {
        let out = self.tool(program, args, stdin);
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}\n{stdin}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Adds the entries of `ldif` with `ldapadd`; panics when one fails.
    pub fn ldapadd(&self, ldif: &str) {
        self.must("ldapadd", &[], ldif);
    }

    /// Applies the changes of `ldif` (`changetype: modify`…) with
    /// `ldapmodify`; panics when one fails.
    pub fn ldapmodify(&self, ldif: &str) {
        self.must("ldapmodify", &[], ldif);
    }

    /// Deletes the leaf entry `dn` with `ldapdelete`; panics when that fails.
    pub fn ldapdelete(&self, dn: &str) {
        self.must("ldapdelete", &[dn], "");
    }

    /// The entries below `base` (the whole subtree) matching `filter`, with
    /// `attrs` (none: all user attributes), as `ldapsearch -LLL` prints
    /// them, parsed; panics when the search fails.
    pub fn ldapsearch(&self, base: &str, filter: &str, attrs: &[&str]) -> Vec<LdifEntry> {
        let mut args = vec!["-LLL", "-o", "ldif-wrap=no", "-b", base, filter];
        args.extend_from_slice(attrs);
        let out = self.must("ldapsearch", &args, "");
        parse_ldif(&String::from_utf8_lossy(&out.stdout))
    }
}

/// Applies `ldif` to the configuration (`cn=config`) of slapd
/// ([`TestServer::slapd`]): `ldapmodify -Y EXTERNAL` on its ldapi socket
/// (`COEXIST_TEST_SLAPD_LDAPI`), as the local root the tests run as.
///
/// # Panics
///
/// When `ldapmodify` fails, with its error output.
pub fn slapd_config(ldif: &str) {
    let mut command = Command::new("ldapmodify");
    command.args([
        "-Q",
        "-Y",
        "EXTERNAL",
        "-H",
        &var("COEXIST_TEST_SLAPD_LDAPI"),
    ]);
    let out = run("ldapmodify", command, ldif);
    assert!(
        out.status.success(),
        "ldapmodify on cn=config failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The URL of the test environment's PostgreSQL database
/// (`COEXIST_TEST_POSTGRES_URL`), `postgres://user:password@host:port/db`.
///
/// # Panics
///
/// When it is not set, as [`var`](crate::var) does.
pub fn postgres_url() -> String {
    var("COEXIST_TEST_POSTGRES_URL")
}

/// Runs `command` (the ldap-utils `program`) with `stdin` on its standard
/// input, collecting its output.
fn run(program: &str, mut command: Command, stdin: &str) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} (ldap-utils) does not run: {e}"));
    // A program that stops before reading all of its input (it failed)
    // says why in its output and status, which the caller reads.
    let _ = child
        .stdin
        .take()
        .expect("a piped stdin")
        .write_all(stdin.as_bytes());
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for {program}: {e}"))
}
