//! How the connector reaches a directory server, decided in one place for
//! both of its LDAP clients.
//!
//! An [`Endpoint`] is that decision, made once from the configuration:
//! the transport of the URL (TCP, or the local socket of `ldapi://`), its
//! protection (cleartext, StartTLS, or TLS from the first byte), the TLS
//! policy with the rustls client configuration built once from `ca_file`
//! and `insecure_skip_verify` ([`tls`]), and the bind (a simple bind with
//! `bind_dn` and the password secret). Both clients consume it:
//! [`Endpoint::ldap3`] for ldap3 (deltas, member reads, writes, doctor),
//! given the socket opened here, the StartTLS choice and the shared rustls
//! configuration through its `LdapConnSettings`; [`Endpoint::lean`] for
//! the lean reader of [`crate::wire`] (the bulk of a full read). A search
//! reference to another server gets the same decision for that host
//! ([`Endpoint::referred`]): same credentials and TLS, StartTLS never
//! downgraded. Every failure on the way (connecting, TLS, the bind) is
//! explained here, naming the url, the `ca_file` and the bind DN.
//!
//! A simple bind over cleartext TCP (`ldap://` without StartTLS) sends the
//! password readable on the wire: it is refused ([`Endpoint::check`] when
//! the connector is set up, and every connection attempt) unless the
//! configuration says `allow_cleartext_bind = true`, and then warned about
//! on every set-up. A local socket (`ldapi://`) is not on the wire and
//! needs no opt-in. Every bind counts, an empty password (an unauthenticated
//! bind) too: the password is a secret read only when connecting, and the
//! bind DN and everything read and written would still cross in the clear.
//! A `ca_file` with such a connection is refused as well: it would be
//! ignored.

pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use coexist_connector::{ConnectorError, Secret, SecretRef};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, LdapResult, StdStream};
use rustls::ClientConfig;
use tokio::net::{TcpStream, UnixStream};

use crate::config::LdapConfig;
use crate::error::{self, rc};
use crate::referral::{LdapUrl, Scheme, Server};
use crate::wire::{self, WireConn, WireError};
use tls::Tls;

/// Where the bytes of a connection go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// TCP to `host` (a name or an address; `localhost` when the URL names
    /// none) and `port` (the scheme's default when the URL names none).
    Tcp { host: String, port: u16 },
    /// The local Unix socket at `path` (`ldapi://`, percent-decoded).
    Unix { path: String },
}

/// How a connection is protected on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Not encrypted: `ldap://` without StartTLS, or `ldapi://` (local).
    Cleartext,
    /// `ldap://` upgraded with the StartTLS operation before the bind.
    StartTls,
    /// `ldaps://`: TLS from the first byte.
    Tls,
}

/// How the connector authenticates to the server.
#[derive(Debug, Clone)]
pub enum Bind {
    /// A simple bind (RFC 4513 5.1.3) as `dn`, with the password `password`
    /// refers to (read when connecting, never kept).
    Simple { dn: String, password: SecretRef },
}

/// How to reach one server: transport, protection, TLS policy, bind. See
/// the module documentation.
#[derive(Debug, Clone)]
pub struct Endpoint {
    system: String,
    /// The URL connected to, as messages name it: the configured one, or
    /// the referred server's (`scheme://host:port`).
    url: String,
    /// `Err` says why the URL cannot be connected to (reported by every
    /// connection attempt, as the configuration is only checked for its
    /// scheme).
    transport: Result<Transport, String>,
    security: Security,
    /// The server of the URL, `None` when it names no host.
    server: Option<Server>,
    /// Shared with the endpoints of referred servers: one rustls
    /// configuration per system.
    tls: Arc<Tls>,
    bind: Bind,
    /// `allow_cleartext_bind`: a simple bind over cleartext TCP is allowed.
    allow_cleartext_bind: bool,
    timeout: Duration,
}

/// A socket just opened.
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Endpoint {
    /// The endpoint of the system `system` configured by `config` (its
    /// `url`, `starttls`, `ca_file`, `insecure_skip_verify`,
    /// `allow_cleartext_bind`, `bind_dn`, `password` and `timeout_seconds`).
    /// Nothing is read or connected yet; [`Endpoint::check`] says whether
    /// connections may be made so.
    pub fn new(system: &str, config: &LdapConfig) -> Endpoint {
        let url = LdapUrl::parse(&config.url);
        let transport = match &url {
            Ok(u) => transport_of(u),
            Err(e) => Err(e.to_string()),
        };
        let security = match url.as_ref().map(|u| u.scheme) {
            Ok(Scheme::Ldaps) => Security::Tls,
            Ok(Scheme::Ldap) if config.starttls => Security::StartTls,
            _ => Security::Cleartext,
        };
        Endpoint {
            system: system.to_string(),
            url: config.url.clone(),
            transport,
            security,
            server: url.ok().and_then(|u| u.server()),
            tls: Arc::new(Tls::new(config)),
            bind: Bind::Simple {
                dn: config.bind_dn.clone(),
                password: config.password.clone(),
            },
            allow_cleartext_bind: config.allow_cleartext_bind,
            timeout: Duration::from_secs(config.timeout_seconds),
        }
    }

    /// The endpoint of `server`, named by a search reference: the same
    /// bind and TLS policy, TLS if the URL says `ldaps://`, and StartTLS on
    /// an `ldap://` one when this endpoint is protected (never a silent
    /// downgrade: the reference fails if the server cannot upgrade). `Err`
    /// says why the server is not to be reached (another local socket).
    pub fn referred(&self, server: &Server) -> Result<Endpoint, String> {
        let security = match server.scheme {
            Scheme::Ldaps => Security::Tls,
            Scheme::Ldap if self.is_protected() => Security::StartTls,
            Scheme::Ldap => Security::Cleartext,
            Scheme::Ldapi => {
                return Err(format!(
                    "it points at a local socket ({}) other than the system's; coexist does not send the system's credentials there",
                    server.host
                ))
            }
        };
        Ok(Endpoint {
            system: self.system.clone(),
            url: server.url(),
            transport: Ok(Transport::Tcp {
                host: server.host.clone(),
                port: server.port,
            }),
            security,
            server: Some(server.clone()),
            tls: self.tls.clone(),
            bind: self.bind.clone(),
            allow_cleartext_bind: self.allow_cleartext_bind,
            timeout: self.timeout,
        })
    }

    /// The system's id in the configuration.
    pub fn system(&self) -> &str {
        &self.system
    }

    /// The URL connected to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where the connection goes; `Err` says why the URL cannot be used.
    pub fn transport(&self) -> Result<&Transport, &str> {
        self.transport.as_ref().map_err(String::as_str)
    }

    /// How the connection is protected.
    pub fn security(&self) -> Security {
        self.security
    }

    /// The server of the URL, `None` when it names no host.
    pub fn server(&self) -> Option<&Server> {
        self.server.as_ref()
    }

    /// The TLS policy (shared with the endpoints of referred servers).
    pub fn tls(&self) -> &Arc<Tls> {
        &self.tls
    }

    /// How the connector binds.
    pub fn bind(&self) -> &Bind {
        &self.bind
    }

    /// Whether the connection is protected (TLS, StartTLS, or a local
    /// socket): then a referred server must be reached with TLS too.
    pub fn is_protected(&self) -> bool {
        self.security != Security::Cleartext || matches!(self.transport, Ok(Transport::Unix { .. }))
    }

    /// Whether connections may be made as configured, checked when the
    /// connector is set up: `Err` says why not (the module documentation
    /// has the rule). A simple bind over cleartext TCP allowed by
    /// `allow_cleartext_bind` logs a warning here, on every set-up.
    pub fn check(&self) -> Result<(), String> {
        if let Some(why) = self.refusal() {
            return Err(why);
        }
        if self.is_cleartext_tcp() {
            tracing::warn!(
                system = %self.system,
                url = %self.url,
                "allow_cleartext_bind is on: the bind password goes over the wire in clear text; set starttls = true or use an ldaps:// url"
            );
        }
        Ok(())
    }

    /// Whether the connection is TCP without TLS (`ldap://` without
    /// StartTLS): on the wire, readable.
    fn is_cleartext_tcp(&self) -> bool {
        self.security == Security::Cleartext && matches!(self.transport, Ok(Transport::Tcp { .. }))
    }

    /// Why no connection may be made as configured, if so.
    fn refusal(&self) -> Option<String> {
        if !self.is_cleartext_tcp() {
            return None;
        }
        let url = &self.url;
        if let Some(ca_file) = self.tls.ca_file() {
            return Some(format!(
                "ca_file {ca_file} would be ignored: {url} is a cleartext connection (ldap:// without starttls); set starttls = true or use an ldaps:// url"
            ));
        }
        if self.allow_cleartext_bind {
            return None;
        }
        let Bind::Simple { dn, .. } = &self.bind;
        Some(format!(
            "a simple bind as `{dn}` over {url} would send the password over the wire in clear text; set starttls = true or use an ldaps:// url (or, for a server without TLS on a network you trust, allow_cleartext_bind = true)"
        ))
    }

    /// Refuses a connection [`Endpoint::refusal`] forbids.
    fn refuse(&self) -> Result<(), ConnectorError> {
        match self.refusal() {
            Some(why) => Err(ConnectorError::permanent(format!(
                "LDAP system `{}`: {why}",
                self.system
            ))),
            None => Ok(()),
        }
    }

    /// Opens a connection for ldap3 and binds. The connection's driver
    /// runs on a tokio task until the returned handle is dropped or
    /// unbound.
    ///
    /// ldap3 is given the socket opened here (with the URL's scheme and
    /// host, for TLS and the certificate's name), whether to StartTLS, and
    /// the shared rustls configuration.
    pub async fn ldap3(&self) -> Result<Ldap, ConnectorError> {
        let mut ldap = self.ldap3_unbound().await?;
        let Bind::Simple { dn, .. } = &self.bind;
        let password = self.password()?;
        error::request_sent();
        let result = ldap
            .simple_bind(dn, password.expose())
            .await
            .map_err(|e| self.connect_failure(e))?;
        if result.rc != rc::SUCCESS {
            return Err(self.bind_failure(&result));
        }
        Ok(ldap)
    }

    /// Whether the server accepts a simple bind as `name` with `password`
    /// (someone else's: an address-book client's, passed through by
    /// `coexist serve-gal`), on a connection of its own made as this
    /// endpoint makes them (so never in clear text unless the system
    /// allows it). `Ok(false)`: invalid credentials (a wrong password, an
    /// unknown name, a disabled or locked account); other refusals and
    /// failures to connect are errors. An empty password is refused here:
    /// the server would take it as an unauthenticated bind.
    pub async fn check_password(&self, name: &str, password: &str) -> Result<bool, ConnectorError> {
        if name.trim().is_empty() || password.is_empty() {
            return Ok(false);
        }
        let mut ldap = self.ldap3_unbound().await?;
        let outcome = ldap.simple_bind(name, password).await;
        let _ = ldap.unbind().await;
        match outcome {
            Ok(result) if result.rc == rc::SUCCESS => Ok(true),
            Ok(result) if result.rc == rc::INVALID_CREDENTIALS => Ok(false),
            Ok(result) => Err(error::from_result(&self.system, "bind", &result)),
            Err(LdapError::LdapResult { result }) if result.rc == rc::INVALID_CREDENTIALS => {
                Ok(false)
            }
            Err(e) => Err(self.connect_failure(e)),
        }
    }

    /// Opens a connection for ldap3 (socket, StartTLS or TLS) without
    /// binding.
    async fn ldap3_unbound(&self) -> Result<Ldap, ConnectorError> {
        self.refuse()?;
        let tls = self.tls_config()?;
        let stream = match self.open().await? {
            Stream::Tcp(tcp) => StdStream::Tcp(tcp.into_std().map_err(|e| self.io_failure(e))?),
            Stream::Unix(unix) => StdStream::Unix(unix.into_std().map_err(|e| self.io_failure(e))?),
        };
        let url = self.ldap3_url();
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(self.timeout)
            .set_std_stream(stream)
            .set_starttls(self.security == Security::StartTls);
        if let Some(config) = tls {
            settings = settings
                .set_no_tls_verify(self.tls.insecure_skip_verify())
                .set_config(config);
        }
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &url)
            .await
            .map_err(|e| self.connect_failure(e))?;
        let driver_system = self.system.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(system = %driver_system, error = %e, "LDAP connection closed");
            }
        });
        ldap.with_timeout(self.timeout);
        Ok(ldap)
    }

    /// Opens a connection for the lean reader of [`crate::wire`] and binds.
    pub async fn lean(&self) -> Result<WireConn, ConnectorError> {
        self.refuse()?;
        let tls = self.tls_config()?;
        let mut next_id = 1;
        let io: Box<dyn wire::Io> = match (self.open().await?, tls) {
            (Stream::Unix(unix), _) => Box::new(unix),
            (Stream::Tcp(tcp), None) => {
                let _ = tcp.set_nodelay(true);
                Box::new(tcp)
            }
            (Stream::Tcp(mut tcp), Some(config)) => {
                let _ = tcp.set_nodelay(true);
                if self.security == Security::StartTls {
                    let result = wire::start_tls(&mut tcp, next_id, self.timeout)
                        .await
                        .map_err(|e| e.into_connector_error(&self.system, "StartTLS"))?;
                    next_id += 1;
                    if result.rc != rc::SUCCESS {
                        return Err(error::from_result(&self.system, "StartTLS", &result));
                    }
                }
                Box::new(self.handshake(config, tcp).await?)
            }
        };
        let mut conn = WireConn::new(&self.system, io, next_id, self.timeout);
        let Bind::Simple { dn, .. } = &self.bind;
        let password = self.password()?;
        error::request_sent();
        let result = conn
            .simple_bind(dn, password.expose())
            .await
            .map_err(|e| match e {
                WireError::Result(r) => self.bind_failure(&r),
                other => other.into_connector_error(&self.system, "bind"),
            })?;
        if result.rc != rc::SUCCESS {
            return Err(self.bind_failure(&result));
        }
        Ok(conn)
    }

    /// The URL ldap3 is given with the socket opened here: its scheme says
    /// whether TLS starts with the first byte, its host is the name the
    /// server's certificate must hold (the path of a local socket is not
    /// read: the socket is open).
    fn ldap3_url(&self) -> String {
        match &self.transport {
            Ok(Transport::Tcp { host, port }) => Server {
                scheme: match self.security {
                    Security::Tls => Scheme::Ldaps,
                    Security::Cleartext | Security::StartTls => Scheme::Ldap,
                },
                host: host.clone(),
                port: *port,
            }
            .url(),
            Ok(Transport::Unix { .. }) | Err(_) => "ldapi:///".to_string(),
        }
    }

    /// The rustls configuration when the connection uses TLS.
    fn tls_config(&self) -> Result<Option<Arc<ClientConfig>>, ConnectorError> {
        match self.security {
            Security::Cleartext => Ok(None),
            Security::StartTls | Security::Tls => self.tls.client_config(&self.system).map(Some),
        }
    }

    /// Opens the socket of the transport, within the timeout.
    async fn open(&self) -> Result<Stream, ConnectorError> {
        let transport = self.transport.as_ref().map_err(|why| {
            ConnectorError::permanent(format!(
                "LDAP system `{}`: bad url {}: {why}",
                self.system, self.url
            ))
        })?;
        let connect = async {
            match transport {
                Transport::Tcp { host, port } => TcpStream::connect((host.as_str(), *port))
                    .await
                    .map(Stream::Tcp),
                Transport::Unix { path } => UnixStream::connect(path).await.map(Stream::Unix),
            }
        };
        tokio::time::timeout(self.timeout, connect)
            .await
            .map_err(|_| self.connect_timed_out())?
            .map_err(|e| self.io_failure(e))
    }

    /// The TLS handshake over `tcp` (after StartTLS, or from the first
    /// byte), checking the certificate against the URL's host.
    async fn handshake(
        &self,
        config: Arc<ClientConfig>,
        tcp: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ConnectorError> {
        let name =
            rustls_pki_types::ServerName::try_from(self.host().to_string()).map_err(|e| {
                ConnectorError::permanent(format!(
                    "LDAP system `{}`: the host of {} is not a valid TLS server name: {e}",
                    self.system, self.url
                ))
            })?;
        tokio::time::timeout(
            self.timeout,
            tokio_rustls::TlsConnector::from(config).connect(name, tcp),
        )
        .await
        .map_err(|_| self.connect_timed_out())?
        .map_err(|e| self.io_failure(e))
    }

    /// The password of the bind, read now.
    fn password(&self) -> Result<Secret, ConnectorError> {
        let Bind::Simple { password, .. } = &self.bind;
        password.resolve().map_err(|e| {
            ConnectorError::authentication(format!("LDAP system `{}`: {e}", self.system))
        })
    }

    /// The host the URL names (the URL itself when it names none).
    fn host(&self) -> &str {
        match &self.transport {
            Ok(Transport::Tcp { host, .. }) => host,
            _ => &self.url,
        }
    }

    fn connect_timed_out(&self) -> ConnectorError {
        ConnectorError::retryable(format!(
            "LDAP system `{}`: connecting to {} timed out; check that the server runs and the url is right",
            self.system, self.url
        ))
    }

    fn io_failure(&self, error: std::io::Error) -> ConnectorError {
        self.connect_failure(LdapError::Io { source: error })
    }

    /// The server refused the bind with `result`.
    fn bind_failure(&self, result: &LdapResult) -> ConnectorError {
        let system = &self.system;
        let Bind::Simple { dn, .. } = &self.bind;
        let detail = error::describe(result);
        match result.rc {
            rc::INVALID_CREDENTIALS => ConnectorError::authentication(format!(
                "LDAP system `{system}`: the server refused the bind as `{dn}` ({detail}); check bind_dn and the password secret"
            )),
            rc::UNWILLING_TO_PERFORM | rc::INSUFFICIENT_ACCESS | 8 | 13 => {
                ConnectorError::authentication(format!(
                    "LDAP system `{system}`: the server will not accept a simple bind as `{dn}` ({detail}); use ldaps:// or starttls, or allow simple binds (Samba: `ldap server require strong auth = no`)"
                ))
            }
            _ => error::from_result(system, "bind", result),
        }
    }

    /// Connecting (the socket, StartTLS, TLS or the bind) failed with
    /// `error`.
    fn connect_failure(&self, error: LdapError) -> ConnectorError {
        let (system, url) = (&self.system, &self.url);
        match error {
            LdapError::LdapResult { result } => self.bind_failure(&result),
            LdapError::Rustls { source } => self.tls.failure(system, url, self.host(), &source),
            LdapError::Io { source } => match rustls_error(&source) {
                Some(tls) => self.tls.failure(system, url, self.host(), tls),
                None => ConnectorError::retryable(format!(
                    "LDAP system `{system}`: cannot connect to {url}: {source}; check that the server runs and the url is right"
                ))
                .caused_by(source),
            },
            LdapError::DNSName { source } => ConnectorError::permanent(format!(
                "LDAP system `{system}`: the host of {url} is not a valid TLS server name: {source}"
            ))
            .caused_by(source),
            LdapError::UrlParsing { .. } | LdapError::UnknownScheme(_) => {
                ConnectorError::permanent(format!("LDAP system `{system}`: bad url {url}: {error}"))
            }
            other => {
                let text = other.to_string();
                if text.contains("certificate") || text.contains("tls") || text.contains("TLS") {
                    return ConnectorError::permanent(format!(
                        "LDAP system `{system}`: TLS with {url} failed: {text}; ca_file must hold the CA certificate that issued the server's certificate (not the server's own certificate), and the certificate must name the host of the url"
                    ))
                    .caused_by(other);
                }
                ConnectorError::retryable(format!(
                    "LDAP system `{system}`: cannot connect to {url}: {text}; check that the server runs and the url is right"
                ))
                .caused_by(other)
            }
        }
    }
}

/// Where a parsed URL's connection goes.
fn transport_of(url: &LdapUrl) -> Result<Transport, String> {
    match url.scheme {
        Scheme::Ldapi => url
            .host
            .clone()
            .map(|path| Transport::Unix { path })
            .ok_or_else(|| {
                "an ldapi:// url names the socket's path (percent-encoded) as its host".to_string()
            }),
        Scheme::Ldap | Scheme::Ldaps => Ok(Transport::Tcp {
            host: url.host.clone().unwrap_or_else(|| "localhost".to_string()),
            port: url.effective_port(),
        }),
    }
}

/// The TLS error inside an I/O error, when a TLS handshake failed (ldap3
/// and tokio-rustls report it so).
fn rustls_error(error: &std::io::Error) -> Option<&rustls::Error> {
    error.get_ref()?.downcast_ref::<rustls::Error>()
}

/// The ldap3 connection a connector keeps to its [`Endpoint`]: opened and
/// bound when first needed, reused while it stays open, and forgotten
/// after a connection-level failure, so that the next call opens another.
#[derive(Default)]
pub(crate) struct Reused(tokio::sync::Mutex<Option<Ldap>>);

impl Reused {
    /// The connection kept, or a new one to `endpoint` when there is none
    /// or it has closed.
    pub(crate) async fn get(&self, endpoint: &Endpoint) -> Result<Ldap, ConnectorError> {
        let mut guard = self.0.lock().await;
        if let Some(l) = guard.as_mut() {
            if !l.is_closed() {
                return Ok(l.clone());
            }
        }
        let l = endpoint.ldap3().await?;
        *guard = Some(l.clone());
        Ok(l)
    }

    /// Forgets the connection when `error` is a connection-level
    /// (transient) failure.
    pub(crate) async fn forget_after(&self, error: &ConnectorError) {
        if error.is_transient() {
            *self.0.lock().await = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use coexist_connector::SecretRef;

    use super::*;
    use crate::Flavor;

    fn config(url: &str) -> LdapConfig {
        LdapConfig::new(
            Flavor::Openldap,
            url,
            "cn=admin",
            SecretRef::Env { env: "X".into() },
            vec!["dc=x".into()],
            "ou=c,dc=x",
        )
    }

    fn transport(url: &str) -> Result<Transport, String> {
        Endpoint::new("x", &config(url))
            .transport()
            .cloned()
            .map_err(str::to_string)
    }

    fn server(url: &str) -> Server {
        LdapUrl::parse(url).unwrap().server().unwrap()
    }

    #[test]
    fn urls_give_their_transports() {
        let tcp = |host: &str, port| Transport::Tcp {
            host: host.into(),
            port,
        };
        assert_eq!(
            transport("ldap://127.0.0.1:3389"),
            Ok(tcp("127.0.0.1", 3389))
        );
        assert_eq!(
            transport("LDAPS://dc.example.com/"),
            Ok(tcp("dc.example.com", 636))
        );
        assert_eq!(transport("ldap://[::1]:1389/dc=x"), Ok(tcp("::1", 1389)));
        assert_eq!(transport("ldap://"), Ok(tcp("localhost", 389)));
        assert_eq!(
            transport("ldapi://%2Ftmp%2Fslapd%2Fldapi"),
            Ok(Transport::Unix {
                path: "/tmp/slapd/ldapi".into()
            })
        );
        assert!(transport("http://x").is_err());
        assert!(transport("ldap://x:notaport").is_err());
        assert!(transport("ldapi://").is_err());
    }

    #[test]
    fn ldap3_is_given_the_scheme_and_host_of_the_decision() {
        let url = |url: &str, starttls: bool| {
            let mut c = config(url);
            c.starttls = starttls;
            Endpoint::new("x", &c).ldap3_url()
        };
        assert_eq!(
            url("LDAPS://DC.example.com/dc=x", false),
            "ldaps://DC.example.com:636"
        );
        assert_eq!(
            url("ldap://h:3389", true),
            "ldap://h:3389",
            "StartTLS is a setting"
        );
        assert_eq!(url("ldap://[::1]", false), "ldap://[::1]:389");
        assert_eq!(url("ldap://", false), "ldap://localhost:389");
        assert_eq!(url("ldapi://%2Frun%2Fx", false), "ldapi:///");
    }

    #[test]
    fn the_tls_configuration_is_built_once_and_shared_with_referred_servers() {
        let mut c = config("ldaps://a.example.com");
        c.insecure_skip_verify = true;
        let own = Endpoint::new("x", &c);
        let referred = own.referred(&server("ldap://b.example.com")).unwrap();
        let first = own.tls().client_config("x").unwrap();
        assert!(Arc::ptr_eq(&first, &own.tls().client_config("x").unwrap()));
        assert!(Arc::ptr_eq(
            &first,
            &referred.tls().client_config("x").unwrap()
        ));
        // A file that cannot be read fails every connection, naming it.
        c.insecure_skip_verify = false;
        c.ca_file = Some("/nonexistent/ca.pem".into());
        let own = Endpoint::new("x", &c);
        for _ in 0..2 {
            let e = own.tls().client_config("x").unwrap_err().to_string();
            assert!(e.contains("cannot read ca_file /nonexistent/ca.pem"), "{e}");
        }
    }

    #[test]
    fn the_scheme_and_starttls_decide_the_protection() {
        let security = |url: &str, starttls: bool| {
            let mut c = config(url);
            c.starttls = starttls;
            let e = Endpoint::new("x", &c);
            (e.security(), e.is_protected())
        };
        assert_eq!(security("ldap://h", false), (Security::Cleartext, false));
        assert_eq!(security("ldap://h", true), (Security::StartTls, true));
        assert_eq!(security("ldaps://h", false), (Security::Tls, true));
        assert_eq!(
            security("ldapi://%2Frun%2Fx", false),
            (Security::Cleartext, true),
            "a local socket is protected"
        );
    }

    fn check(url: &str, edit: impl FnOnce(&mut LdapConfig)) -> Result<(), String> {
        let mut c = config(url);
        edit(&mut c);
        Endpoint::new("x", &c).check()
    }

    #[test]
    fn a_simple_bind_over_cleartext_tcp_is_refused_without_the_opt_in() {
        let e = check("ldap://dc.example.com", |_| {}).unwrap_err();
        for part in [
            "ldap://dc.example.com",
            "clear text",
            "`cn=admin`",
            "starttls = true",
            "ldaps://",
            "allow_cleartext_bind = true",
        ] {
            assert!(e.contains(part), "{part}: {e}");
        }
        // The connector is not set up (check-config fails), naming the system.
        let mut c = config("ldap://dc.example.com");
        c.flavor = Flavor::ActiveDirectory;
        c.stub_schema = crate::config::StubSchema::AdContact;
        c.disabled_when = crate::config::DisabledWhen::defaults(Flavor::ActiveDirectory);
        let e = crate::LdapConnector::new("ad", c).unwrap_err().to_string();
        assert!(
            e.contains("`ad`") && e.contains("bad configuration") && e.contains("clear text"),
            "{e}"
        );
        // Nor does a connection made without the connector.
        let e = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(Endpoint::new("x", &config("ldap://127.0.0.1:1")).lean())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("clear text"), "{e}");
    }

    #[test]
    fn a_simple_bind_over_cleartext_tcp_is_accepted_with_the_opt_in() {
        assert_eq!(check("ldap://h", |c| c.allow_cleartext_bind = true), Ok(()));
        let mut c = config("ldap://h");
        c.allow_cleartext_bind = true;
        assert!(crate::LdapConnector::new("x", c).is_ok());
    }

    #[test]
    fn tls_and_local_sockets_need_no_opt_in() {
        assert_eq!(check("ldap://h", |c| c.starttls = true), Ok(()));
        assert_eq!(check("ldaps://h", |_| {}), Ok(()));
        assert_eq!(check("ldapi://%2Frun%2Fslapd%2Fldapi", |_| {}), Ok(()));
        let with_ca = |c: &mut LdapConfig| c.ca_file = Some("/ca.pem".into());
        assert_eq!(check("ldaps://h", with_ca), Ok(()));
        assert_eq!(
            check("ldapi://%2Frun%2Fx", with_ca),
            Ok(()),
            "an ldap:// referral is reached with StartTLS and the ca_file"
        );
        assert!(crate::LdapConnector::new("x", config("ldapi://%2Frun%2Fx")).is_ok());
    }

    #[test]
    fn a_ca_file_without_tls_is_refused() {
        for allow in [false, true] {
            let e = check("ldap://h:389", |c| {
                c.ca_file = Some("/etc/ca.pem".into());
                c.allow_cleartext_bind = allow;
            })
            .unwrap_err();
            for part in [
                "ca_file /etc/ca.pem would be ignored",
                "ldap://h:389",
                "starttls = true",
                "ldaps://",
            ] {
                assert!(e.contains(part), "{part}: {e}");
            }
        }
        assert_eq!(
            check("ldap://h", |c| {
                c.ca_file = Some("/ca.pem".into());
                c.starttls = true;
            }),
            Ok(())
        );
    }

    #[test]
    fn a_protected_system_reaches_referred_servers_only_with_tls() {
        let mut c = config("ldaps://a.example.com");
        c.ca_file = Some("/ca.pem".into());
        let own = Endpoint::new("x", &c);
        let plain = server("ldap://b.example.com/dc=y");
        let e = own.referred(&plain).unwrap();
        assert_eq!(e.url(), "ldap://b.example.com:389");
        assert_eq!(
            e.security(),
            Security::StartTls,
            "upgraded, never downgraded"
        );
        assert!(Arc::ptr_eq(e.tls(), own.tls()), "the same TLS policy");
        assert_eq!(e.tls().ca_file(), Some("/ca.pem"));
        assert!(
            matches!(e.bind(), Bind::Simple { dn, password } if dn == "cn=admin" && *password == c.password),
            "the same credentials"
        );
        let tls = server("ldaps://b.example.com/dc=y");
        assert_eq!(own.referred(&tls).unwrap().security(), Security::Tls);
        let socket = server("ldapi://%2Frun%2Fx/dc=y");
        assert!(own.referred(&socket).is_err());

        c.url = "ldap://a.example.com".into();
        let own = Endpoint::new("x", &c);
        assert_eq!(
            own.referred(&plain).unwrap().security(),
            Security::Cleartext
        );
        c.starttls = true;
        let own = Endpoint::new("x", &c);
        assert_eq!(own.referred(&plain).unwrap().security(), Security::StartTls);
    }
}
