//! Connecting and binding, TLS settings, and turning LDAP failures into
//! [`ConnectorError`]s that name the system and say what to do.

use std::sync::Arc;
use std::time::Duration;

use coexist_connector::ConnectorError;
use ldap3::{LdapConnAsync, LdapConnSettings, LdapError, LdapResult};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

use crate::config::LdapConfig;

/// LDAP result codes the connector tells apart (RFC 4511 and extensions).
pub mod rc {
    pub const SUCCESS: u32 = 0;
    pub const OPERATIONS_ERROR: u32 = 1;
    pub const PROTOCOL_ERROR: u32 = 2;
    pub const TIME_LIMIT: u32 = 3;
    pub const SIZE_LIMIT: u32 = 4;
    pub const REFERRAL: u32 = 10;
    pub const ADMIN_LIMIT: u32 = 11;
    pub const UNAVAILABLE_CRITICAL_EXTENSION: u32 = 12;
    pub const NO_SUCH_ATTRIBUTE: u32 = 16;
    pub const UNDEFINED_ATTRIBUTE_TYPE: u32 = 17;
    pub const CONSTRAINT_VIOLATION: u32 = 19;
    pub const ATTRIBUTE_OR_VALUE_EXISTS: u32 = 20;
    pub const INVALID_ATTRIBUTE_SYNTAX: u32 = 21;
    pub const NO_SUCH_OBJECT: u32 = 32;
    pub const INVALID_DN_SYNTAX: u32 = 34;
    pub const INVALID_CREDENTIALS: u32 = 49;
    pub const INSUFFICIENT_ACCESS: u32 = 50;
    pub const BUSY: u32 = 51;
    pub const UNAVAILABLE: u32 = 52;
    pub const UNWILLING_TO_PERFORM: u32 = 53;
    pub const OBJECT_CLASS_VIOLATION: u32 = 65;
    pub const ENTRY_ALREADY_EXISTS: u32 = 68;
    pub const OTHER: u32 = 80;
    /// RFC 4533: the sync cookie is no longer usable, start over.
    pub const SYNC_REFRESH_REQUIRED: u32 = 4096;
}

/// Builds the ldap3 connection settings for `config`: timeouts, StartTLS,
/// and the TLS configuration of [`tls_config`].
pub fn settings(system: &str, config: &LdapConfig) -> Result<LdapConnSettings, ConnectorError> {
    let mut settings = LdapConnSettings::new()
        .set_conn_timeout(Duration::from_secs(config.timeout_seconds))
        .set_starttls(config.starttls);
    let tls = config.starttls || config.url.to_ascii_lowercase().starts_with("ldaps://");
    if tls {
        if config.insecure_skip_verify {
            tracing::warn!(
                system,
                "TLS certificate verification is turned off (insecure_skip_verify): the connection can be intercepted"
            );
            settings = settings.set_no_tls_verify(true);
        }
        settings = settings.set_config(tls_config(system, config)?);
    }
    Ok(settings)
}

/// The TLS client configuration for `config`: the trusted CA certificates
/// (`ca_file`, else the system's), or no verification at all when
/// `insecure_skip_verify` is set. Used by ldap3 and by [`crate::wire`].
pub fn tls_config(system: &str, config: &LdapConfig) -> Result<Arc<ClientConfig>, ConnectorError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| {
            ConnectorError::permanent(format!("LDAP system `{system}`: TLS setup failed: {e}"))
        })?;
    let client = if config.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth()
    } else {
        let roots = root_store(system, config.ca_file.as_deref())?;
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(client))
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

/// Opens a connection to the system and binds. The connection's driver
/// runs on a tokio task until the returned handle is dropped or unbound.
pub async fn connect(system: &str, config: &LdapConfig) -> Result<ldap3::Ldap, ConnectorError> {
    let settings = settings(system, config)?;
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &config.url)
        .await
        .map_err(|e| connect_error(system, config, e))?;
    let driver_system = system.to_string();
    tokio::spawn(async move {
        if let Err(e) = conn.drive().await {
            tracing::debug!(system = %driver_system, error = %e, "LDAP connection closed");
        }
    });
    let password = config
        .password
        .resolve()
        .map_err(|e| ConnectorError::authentication(format!("LDAP system `{system}`: {e}")))?;
    ldap.with_timeout(Duration::from_secs(config.timeout_seconds));
    let result = ldap
        .simple_bind(&config.bind_dn, password.expose())
        .await
        .map_err(|e| connect_error(system, config, e))?;
    if result.rc != rc::SUCCESS {
        return Err(bind_error(system, config, &result));
    }
    Ok(ldap)
}

pub(crate) fn bind_error(system: &str, config: &LdapConfig, result: &LdapResult) -> ConnectorError {
    let detail = describe(result);
    match result.rc {
        rc::INVALID_CREDENTIALS => ConnectorError::authentication(format!(
            "LDAP system `{system}`: the server refused the bind as `{}` ({detail}); check bind_dn and the password secret",
            config.bind_dn
        )),
        rc::UNWILLING_TO_PERFORM | rc::INSUFFICIENT_ACCESS | 8 | 13 => {
            ConnectorError::authentication(format!(
                "LDAP system `{system}`: the server will not accept a simple bind as `{}` ({detail}); use ldaps:// or starttls, or allow simple binds (Samba: `ldap server require strong auth = no`)",
                config.bind_dn
            ))
        }
        _ => from_result(system, "bind", result),
    }
}

/// The TLS error inside an I/O error, when a TLS handshake failed (ldap3
/// and tokio-rustls report it so).
fn rustls_error(error: &std::io::Error) -> Option<&rustls::Error> {
    error.get_ref()?.downcast_ref::<rustls::Error>()
}

/// A TLS handshake with the server of `config` failed with `error`: what
/// went wrong and what the admin should do, naming the url and the
/// `ca_file`. Every TLS connection of the connector (ldap3's, the lean
/// reader's of [`crate::wire`], those to referred servers, after StartTLS
/// or from the first byte) reports its failure through this.
pub fn tls_failure(system: &str, config: &LdapConfig, error: &rustls::Error) -> ConnectorError {
    use rustls::{CertificateError as C, Error as E};
    let url = &config.url;
    let trust = match &config.ca_file {
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
            let host = crate::referral::LdapUrl::parse(url)
                .ok()
                .and_then(|u| u.host)
                .unwrap_or_else(|| url.clone());
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

pub(crate) fn connect_error(system: &str, config: &LdapConfig, error: LdapError) -> ConnectorError {
    match error {
        LdapError::LdapResult { result } => bind_error(system, config, &result),
        LdapError::Rustls { source } => tls_failure(system, config, &source),
        LdapError::Io { source } => match rustls_error(&source) {
            Some(tls) => tls_failure(system, config, tls),
            None => ConnectorError::retryable(format!(
                "LDAP system `{system}`: cannot connect to {}: {source}; check that the server runs and the url is right",
                config.url
            ))
            .caused_by(source),
        },
        LdapError::DNSName { source } => ConnectorError::permanent(format!(
            "LDAP system `{system}`: the host of {} is not a valid TLS server name: {source}",
            config.url
        ))
        .caused_by(source),
        LdapError::UrlParsing { .. } | LdapError::UnknownScheme(_) => ConnectorError::permanent(
            format!("LDAP system `{system}`: bad url {}: {error}", config.url),
        ),
        other => {
            let text = other.to_string();
            if text.contains("certificate") || text.contains("tls") || text.contains("TLS") {
                return ConnectorError::permanent(format!(
                    "LDAP system `{system}`: TLS with {} failed: {text}; ca_file must hold the CA certificate that issued the server's certificate (not the server's own certificate), and the certificate must name the host of the url",
                    config.url
                ))
                .caused_by(other);
            }
            ConnectorError::retryable(format!(
                "LDAP system `{system}`: cannot connect to {}: {text}; check that the server runs and the url is right",
                config.url
            ))
            .caused_by(other)
        }
    }
}

/// `code (name): text` of a result.
pub fn describe(result: &LdapResult) -> String {
    let text = result.text.trim();
    if text.is_empty() {
        format!("result code {} ({})", result.rc, rc_name(result.rc))
    } else {
        format!("result code {} ({}): {text}", result.rc, rc_name(result.rc))
    }
}

fn rc_name(code: u32) -> &'static str {
    match code {
        0 => "success",
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        10 => "referral",
        11 => "adminLimitExceeded",
        12 => "unavailableCriticalExtension",
        16 => "noSuchAttribute",
        17 => "undefinedAttributeType",
        19 => "constraintViolation",
        20 => "attributeOrValueExists",
        21 => "invalidAttributeSyntax",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        64 => "namingViolation",
        65 => "objectClassViolation",
        67 => "notAllowedOnRDN",
        68 => "entryAlreadyExists",
        80 => "other",
        4096 => "e-syncRefreshRequired",
        _ => "unknown",
    }
}

/// Turns a failed result of operation `what` into an error naming the
/// system, with advice on what to do.
pub fn from_result(system: &str, what: &str, result: &LdapResult) -> ConnectorError {
    let detail = describe(result);
    let msg = |advice: &str| format!("LDAP system `{system}`: {what} failed, {detail}; {advice}");
    match result.rc {
        rc::INVALID_CREDENTIALS => ConnectorError::authentication(msg("check bind_dn and the password")),
        rc::INSUFFICIENT_ACCESS => ConnectorError::permanent(msg(
            "grant the bind DN the rights coexist needs (read on the base DNs, write on stub_base)",
        )),
        rc::NO_SUCH_OBJECT => ConnectorError::permanent(msg(
            "the DN does not exist: create it (for stub_base: the OU stubs go to) or correct the configuration",
        )),
        rc::UNDEFINED_ATTRIBUTE_TYPE | rc::OBJECT_CLASS_VIOLATION | rc::INVALID_ATTRIBUTE_SYNTAX => {
            ConnectorError::permanent(msg(
                "the server's schema does not allow this entry: load the schema of the stub_schema (misc.schema for inetLocalMailRecipient, qmail.schema for qmail, the Exchange attribute targetAddress on AD) or choose another stub_schema",
            ))
        }
        rc::SIZE_LIMIT | rc::ADMIN_LIMIT => ConnectorError::permanent(msg(
            "the server's size limit stopped the read: raise the limit for the bind DN (OpenLDAP olcLimits `size.pr=unlimited size.prtotal=unlimited`, AD MaxPageSize) or lower page_size",
        )),
        rc::TIME_LIMIT => ConnectorError::retryable(msg(
            "the server's time limit stopped the read: raise the limit for the bind DN or narrow base_dns/filters",
        )),
        rc::BUSY | rc::UNAVAILABLE | rc::OTHER | rc::OPERATIONS_ERROR => {
            ConnectorError::retryable(msg("the server is busy or restarting; coexist will retry"))
        }
        _ => ConnectorError::permanent(msg("see the server's log")),
    }
}

/// Turns a library error of operation `what` into a [`ConnectorError`].
pub fn from_ldap(system: &str, what: &str, error: LdapError) -> ConnectorError {
    match error {
        LdapError::LdapResult { result } => from_result(system, what, &result),
        LdapError::FilterParsing => ConnectorError::permanent(format!(
            "LDAP system `{system}`: {what}: a filter does not parse; check user_filter and group_filter"
        )),
        LdapError::Timeout { .. } => timed_out(system, what),
        other => connection_failed(system, what, &other.to_string()),
    }
}

/// Operation `what` timed out.
pub fn timed_out(system: &str, what: &str) -> ConnectorError {
    ConnectorError::retryable(format!(
        "LDAP system `{system}`: {what} timed out; the server is slow or unreachable (raise timeout_seconds if it is merely slow)"
    ))
}

/// The connection failed during operation `what`, as `detail` says.
pub fn connection_failed(system: &str, what: &str, detail: &str) -> ConnectorError {
    ConnectorError::retryable(format!(
        "LDAP system `{system}`: {what}: the connection failed ({detail}); the server may have restarted, coexist will retry"
    ))
}
