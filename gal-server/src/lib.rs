//! A read-only LDAP v3 server over coexist's global address list, for the
//! address books people use (Thunderbird, Outlook's LDAP address book,
//! macOS Contacts, Roundcube, desk phones).
//!
//! [`GalServer`] holds the directory as an immutable [`directory::Snapshot`]
//! behind a lock held only to clone or swap an `Arc`: [`GalServer::replace`]
//! builds the new directory first and swaps it in at once, so a search sees
//! the whole old list or the whole new one, never an empty or half list.
//! A paged search keeps the snapshot it started on until its last page.
//!
//! The protocol codec is kanidm's `ldap3_proto`; what is served, how binds
//! are checked and what is refused is decided here:
//!
//! - entries `cn=<display name or address>,<base>` (inetOrgPerson, groups as
//!   groupOfNames) carrying only GAL attributes: cn, sn, givenName,
//!   displayName, mail (every shared address), telephoneNumber, mobile,
//!   title, ou and department, o; never coexist's internal ids;
//! - base, one-level and subtree searches, every filter RFC 4511 defines
//!   except extensible matches, attribute selection, the size limit, the
//!   paged-results control (RFC 2696), the root DSE and a schema entry;
//! - anonymous access only when configured; simple binds against the
//!   configured accounts; every write answered unwillingToPerform;
//! - a malformed or oversized request closes that connection only, and
//!   each client address may hold a bounded number of connections and send
//!   a bounded number of requests a second (more wait their turn); a
//!   connection that does not bind in time is closed;
//! - with a certificate ([`tls_config`]): StartTLS on the plain listener
//!   and LDAPS on a second one ([`GalServer::serve_ldaps`]); simple binds
//!   in clear text are then refused (confidentialityRequired).

pub mod directory;
pub mod dn;
pub mod filter;
pub mod pass_through;
mod server;
mod wire;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use pass_through::{PasswordCheck, Verdict};
pub use server::GalServer;

/// The DN of the schema entry (`subschemaSubentry` of the root DSE).
pub const SCHEMA_DN: &str = "cn=Subschema";

/// A password, compared in constant time; `Debug` prints `[redacted]`.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Wraps a password read from its secret.
    pub fn new(value: impl Into<String>) -> Self {
        Password(value.into())
    }

    /// Whether `offered` is this password (time independent of where they
    /// differ).
    pub fn accepts(&self, offered: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), offered.as_bytes());
        let mut differ = a.len() ^ b.len();
        for (n, x) in a.iter().enumerate() {
            differ |= usize::from(x ^ b.get(n).copied().unwrap_or(!x));
        }
        differ == 0 && !a.is_empty()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// An account that may bind with a simple bind.
#[derive(Debug, Clone)]
pub struct Account {
    /// Its bind DN (compared normalised: case and spaces do not matter).
    pub dn: String,
    pub password: Password,
}

/// What the server serves and allows.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the GAL's entries are (`ou=gal,dc=acmecorp,dc=com`).
    pub base: String,
    /// The accounts simple binds are checked against.
    pub accounts: Vec<Account>,
    /// Whether searches without a bind (or after an anonymous bind) are
    /// answered. The root DSE and the schema entry always are.
    pub anonymous: bool,
    /// The most entries one search returns (a paged search: one page);
    /// a client's lower limit wins.
    pub size_limit: usize,
    /// The most connections one client address holds at once.
    pub max_connections_per_client: usize,
    /// The largest request accepted, in bytes; a larger one closes the
    /// connection.
    pub max_request_bytes: usize,
    /// A connection idle this long is closed.
    pub idle_timeout: Duration,
    /// A connection that has not bound this long after it opened is
    /// closed (unless anonymous access is on).
    pub unbound_timeout: Duration,
    /// The requests per second one client address may send, all its
    /// connections together, with bursts of as many; past it, requests
    /// wait their turn.
    pub requests_per_second: u32,
    /// The certificate for StartTLS and LDAPS ([`tls_config`]). With one,
    /// a simple bind is accepted only over TLS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Where binds whose name is none of `accounts` are checked (a
    /// configured LDAP or AD system); `None`: such binds are refused.
    pub pass_through: Option<Arc<dyn PasswordCheck>>,
}

impl Settings {
    /// Settings serving `base` with the defaults: no account, anonymous
    /// off, 1000 entries a search, 16 connections and 200 requests a
    /// second a client address, 64 KiB requests, 10 minutes idle, 30
    /// seconds to bind.
    pub fn new(base: impl Into<String>) -> Self {
        Settings {
            base: base.into(),
            accounts: Vec::new(),
            anonymous: false,
            size_limit: 1000,
            max_connections_per_client: 16,
            max_request_bytes: 64 * 1024,
            idle_timeout: Duration::from_secs(600),
            unbound_timeout: Duration::from_secs(30),
            requests_per_second: 200,
            tls: None,
            pass_through: None,
        }
    }
}

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("the base `{0}` is not a distinguished name")]
    Base(String),
    #[error("the bind DN `{0}` is not a distinguished name")]
    AccountDn(String),
    #[error("cannot accept connections: {0}")]
    Accept(#[source] std::io::Error),
    #[error("LDAPS needs a certificate")]
    NoCertificate,
    #[error("cannot read the certificate chain {path}: {reason}")]
    Certificate { path: String, reason: String },
    #[error("cannot read the private key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("the certificate {cert} and the key {key} cannot serve TLS: {reason}")]
    Tls {
        cert: String,
        key: String,
        reason: String,
    },
}

/// The TLS configuration of a certificate chain and its private key, both
/// PEM files (the server's certificate first, then its intermediates).
pub fn tls_config(
    cert_file: &Path,
    key_file: &Path,
) -> Result<Arc<rustls::ServerConfig>, ServeError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};

    let cert = cert_file.display().to_string();
    let key = key_file.display().to_string();
    let chain = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ServeError::Certificate {
            path: cert.clone(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(ServeError::Certificate {
            path: cert,
            reason: "it holds no certificate".into(),
        });
    }
    let private = PrivateKeyDer::from_pem_file(key_file).map_err(|e| ServeError::Key {
        path: key.clone(),
        reason: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| {
            builder
                .with_no_client_auth()
                .with_single_cert(chain, private)
        })
        .map_err(|e| ServeError::Tls {
            cert,
            key,
            reason: e.to_string(),
        })?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_compare_exactly_and_never_print() {
        let password = Password::new("s3cret");
        assert!(password.accepts("s3cret"));
        assert!(!password.accepts("s3cre"));
        assert!(!password.accepts("s3cret!"));
        assert!(!password.accepts(""));
        assert!(!Password::new("").accepts(""));
        assert_eq!(format!("{password:?}"), "[redacted]");
    }

    #[test]
    fn a_missing_or_empty_certificate_is_named() {
        let dir = std::env::temp_dir().join(format!("coexist-gal-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cert = dir.join("gal.crt");
        let key = dir.join("gal.key");
        let e = tls_config(&cert, &key).unwrap_err().to_string();
        assert!(
            e.contains("cannot read the certificate chain") && e.contains("gal.crt"),
            "{e}"
        );
        std::fs::write(&cert, "no PEM here\n").unwrap();
        let e = tls_config(&cert, &key).unwrap_err().to_string();
        assert!(e.contains("holds no certificate"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
