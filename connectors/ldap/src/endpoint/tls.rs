//! The TLS policy of a system: which server certificates are trusted
//! (`ca_file`, else this machine's store; none checked with
//! `insecure_skip_verify`), the rustls client configuration built from it
//! once and shared by every TLS connection of the connector, and what a
//! failed handshake means for the admin.

use std::sync::{Arc, OnceLock};

use coexist_connector::ConnectorError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

use crate::config::LdapConfig;

/// The TLS settings of a system, and the client configuration made of them.
pub struct Tls {
    ca_file: Option<String>,
    insecure_skip_verify: bool,
    /// Built on the first TLS connection (so a bad `ca_file` fails a
    /// connection, not the construction of the connector), then reused.
    built: OnceLock<Arc<ClientConfig>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("ca_file", &self.ca_file)
            .field("insecure_skip_verify", &self.insecure_skip_verify)
            .field("built", &self.built.get().is_some())
            .finish()
    }
}

impl Tls {
    /// The policy of `config` (`ca_file`, `insecure_skip_verify`).
    pub fn new(config: &LdapConfig) -> Self {
        Tls {
            ca_file: config.ca_file.clone(),
            insecure_skip_verify: config.insecure_skip_verify,
            built: OnceLock::new(),
        }
    }

    /// The PEM file of the CA certificates trusted, when not the system's.
    pub fn ca_file(&self) -> Option<&str> {
        self.ca_file.as_deref()
    }

    /// Whether certificates go unchecked.
    pub fn insecure_skip_verify(&self) -> bool {
        self.insecure_skip_verify
    }

    /// The client configuration for a TLS connection of `system`: built
    /// the first time, the same one afterwards. Warns on every call when
    /// verification is off.
    pub fn client_config(&self, system: &str) -> Result<Arc<ClientConfig>, ConnectorError> {
        if self.insecure_skip_verify {
            tracing::warn!(
                system,
                "TLS certificate verification is turned off (insecure_skip_verify): the connection can be intercepted"
            );
        }
        if let Some(built) = self.built.get() {
            return Ok(built.clone());
        }
        let made = self.build(system)?;
        // Two first connections may race: both configurations are sound,
        // the first one stored is kept.
        Ok(self.built.get_or_init(|| made).clone())
    }

    /// The trusted CA certificates (`ca_file`, else the system's), or no
    /// verification at all when `insecure_skip_verify` is set.
    fn build(&self, system: &str) -> Result<Arc<ClientConfig>, ConnectorError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| {
                ConnectorError::permanent(format!("LDAP system `{system}`: TLS setup failed: {e}"))
            })?;
        let client = if self.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
                .with_no_client_auth()
        } else {
            let roots = root_store(system, self.ca_file.as_deref())?;
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        Ok(Arc::new(client))
    }

    /// A TLS handshake with `url` (whose host is `host`) failed with
    /// `error`: what went wrong and what the admin should do, naming the
    /// url and the `ca_file`. Every TLS connection of the connector
    /// (ldap3's, the lean reader's, those to referred servers, after
    /// StartTLS or from the first byte) reports its failure through this.
    pub fn failure(
        &self,
        system: &str,
        url: &str,
        host: &str,
        error: &rustls::Error,
    ) -> ConnectorError {
        use rustls::{CertificateError as C, Error as E};
        let trust = match &self.ca_file {
            Some(path) => format!(
                "ca_file {path} must hold the CA certificate that issued the server's certificate (not the server's own certificate)"
            ),
            None => "set ca_file to a PEM file holding the CA certificate that issued the server's certificate (not the server's own certificate); without ca_file only the CAs of this machine's store are trusted".to_string(),
        };
        let advice = match error {
            E::InvalidCertificate(C::UnknownIssuer) => {
                format!("the server's certificate was not issued by a CA coexist trusts: {trust}")
            }
            E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
                format!(
                    "the server's certificate does not name {host}, the host of the url: write the url with a host name (or address) the certificate names, or have the certificate reissued with this one among its subject alternative names"
                )
            }
            E::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
                "the server's certificate has expired: renew it on the server".to_string()
            }
            E::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => {
                "the server's certificate is not valid yet: check the clocks of the server and of this machine".to_string()
            }
            // webpki's CaUsedAsEndEntity reaches rustls as an `Other` error.
            E::InvalidCertificate(other) if format!("{other:?}").contains("CaUsedAsEndEntity") => {
                format!(
                    "the server presents a CA certificate (basicConstraints CA:TRUE, as `openssl req -x509` makes by default) as its own certificate, which TLS refuses: {trust}; give the server a certificate issued by that CA"
                )
            }
            E::InvalidCertificate(_) => format!("the server's certificate was refused: {trust}"),
            _ => "check that the url's port speaks TLS (ldaps://, usually 636) or StartTLS (ldap://, usually 389), and the server's TLS settings".to_string(),
        };
        ConnectorError::permanent(format!(
            "LDAP system `{system}`: TLS with {url} failed: {advice} ({error})"
        ))
        .caused_by(error.clone())
    }
}

/// Accepts any server certificate (`insecure_skip_verify`), while still
/// checking that the handshake signatures are sound.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The CA certificates to trust: those of `ca_file`, or the system's.
fn root_store(system: &str, ca_file: Option<&str>) -> Result<RootCertStore, ConnectorError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path).map_err(|e| {
                ConnectorError::permanent(format!(
                    "LDAP system `{system}`: cannot read ca_file {path}: {e}"
                ))
            })?;
            for cert in certs {
                let cert = cert.map_err(|e| {
                    ConnectorError::permanent(format!(
                        "LDAP system `{system}`: ca_file {path} holds a malformed certificate: {e}"
                    ))
                })?;
                roots.add(cert).map_err(|e| {
                    ConnectorError::permanent(format!(
                        "LDAP system `{system}`: ca_file {path}: unusable CA certificate: {e}"
                    ))
                })?;
            }
            if roots.is_empty() {
                return Err(ConnectorError::permanent(format!(
                    "LDAP system `{system}`: ca_file {path} holds no PEM certificate"
                )));
            }
        }
        None => {
            for path in [
                "/etc/ssl/certs/ca-certificates.crt",
                "/etc/pki/tls/certs/ca-bundle.crt",
                "/etc/ssl/cert.pem",
            ] {
                if let Ok(iter) = CertificateDer::pem_file_iter(path) {
                    for cert in iter.flatten() {
                        let _ = roots.add(cert);
                    }
                    break;
                }
            }
        }
    }
    Ok(roots)
}
