//! The listener, the connections and the operations.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use coexist_model::GalEntry;
use futures::{SinkExt, StreamExt};
use ldap3_proto::control::LdapControl;
use ldap3_proto::proto::{
    LdapBindCred, LdapBindRequest, LdapBindResponse, LdapExtendedRequest, LdapExtendedResponse,
    LdapMsg, LdapOp, LdapPartialAttribute, LdapResult, LdapResultCode, LdapSearchRequest,
    LdapSearchResultEntry, LdapSearchScope,
};
use ldap3_proto::LdapCodec;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::codec::Framed;

use crate::directory::{key, Attr, Entry, EntryRef, Snapshot};
use crate::dn::normalise;
use crate::filter::Filter;
use crate::{ServeError, Settings, Verdict, SCHEMA_DN};

const OID_PAGED_RESULTS: &str = "1.2.840.113556.1.4.319";
const OID_WHOAMI: &str = "1.3.6.1.4.1.4203.1.11.3";
const OID_NOTICE_OF_DISCONNECTION: &str = "1.3.6.1.4.1.1466.20036";
const OID_START_TLS: &str = "1.3.6.1.4.1.1466.20037";
/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The paged searches one connection may keep open at once.
const OPEN_PAGED_SEARCHES: usize = 8;

/// The server: its settings, the directory it serves, and the connections
/// each client address holds. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct GalServer {
    shared: Arc<Shared>,
}

struct Shared {
    settings: Settings,
    /// Normalised bind DNs of the accounts, in the order of `settings`.
    account_dns: Vec<Vec<String>>,
    snapshot: RwLock<Arc<Snapshot>>,
    clients: Mutex<HashMap<IpAddr, Client>>,
}

/// What one client address holds: its connections, and its token bucket
/// of requests.
struct Client {
    connections: usize,
    tokens: f64,
    refilled: Instant,
}

impl GalServer {
    /// A server for `settings` serving `gal`.
    pub fn new(settings: Settings, gal: &[GalEntry]) -> Result<Self, ServeError> {
        if normalise(&settings.base).is_none_or(|rdns| rdns.is_empty()) {
            return Err(ServeError::Base(settings.base.clone()));
        }
        let account_dns = settings
            .accounts
            .iter()
            .map(|a| {
                normalise(&a.dn)
                    .filter(|rdns| !rdns.is_empty())
                    .ok_or_else(|| ServeError::AccountDn(a.dn.clone()))
            })
            .collect::<Result<_, _>>()?;
        let snapshot = Arc::new(Snapshot::build(&settings.base, gal));
        Ok(GalServer {
            shared: Arc::new(Shared {
                settings,
                account_dns,
                snapshot: RwLock::new(snapshot),
                clients: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Serves `gal` from now on: the new directory is built first, then
    /// swapped in at once (searches under way finish on the old one).
    pub fn replace(&self, gal: &[GalEntry]) {
        let next = Arc::new(Snapshot::build(&self.shared.settings.base, gal));
        let (entries, bytes) = (next.len(), next.bytes());
        // The old directory is dropped here, once no paged search holds it
        // (a few large buffers: freed at once).
        let old = match self.shared.snapshot.write() {
            Ok(mut current) => std::mem::replace(&mut *current, next),
            Err(poisoned) => std::mem::replace(&mut *poisoned.into_inner(), next),
        };
        drop(old);
        tracing::info!(entries, bytes, "serving a new version of the GAL");
    }

    /// How many GAL entries are served.
    pub fn len(&self) -> usize {
        self.shared.current().len()
    }

    /// Whether the served GAL is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Accepts LDAP connections on `listener` (StartTLS offered when a
    /// certificate is configured) until the task is dropped; each
    /// connection runs on its own task.
    pub async fn serve(&self, listener: TcpListener) -> Result<(), ServeError> {
        self.accept(listener, None).await
    }

    /// Accepts LDAPS connections (TLS from the first byte) on `listener`;
    /// refused without a certificate in the settings.
    pub async fn serve_ldaps(&self, listener: TcpListener) -> Result<(), ServeError> {
        let Some(config) = self.shared.settings.tls.clone() else {
            return Err(ServeError::NoCertificate);
        };
        self.accept(listener, Some(tokio_rustls::TlsAcceptor::from(config)))
            .await
    }

    async fn accept(
        &self,
        listener: TcpListener,
        ldaps: Option<tokio_rustls::TlsAcceptor>,
    ) -> Result<(), ServeError> {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) if is_transient(&e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Err(e) => return Err(ServeError::Accept(e)),
            };
            let shared = Arc::clone(&self.shared);
            let ldaps = ldaps.clone();
            tokio::spawn(async move {
                let Some(_slot) = Slot::take(&shared, peer.ip()) else {
                    tracing::warn!(%peer, "refused: too many connections from this address");
                    let mut framed = Framed::new(stream, LdapCodec::default());
                    let _ = framed
                        .send(notice(
                            LdapResultCode::Busy,
                            "too many connections from your address",
                        ))
                        .await;
                    return;
                };
                let _ = stream.set_nodelay(true);
                connection(&shared, stream, peer, ldaps).await;
            });
        }
    }
}

fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) || e
        .raw_os_error()
        .is_some_and(|code| code == 24 || code == 23)
}

impl Shared {
    /// Takes one request from `ip`'s bucket; how long to wait first when
    /// the address sent more than its rate allows.
    fn throttle(&self, ip: IpAddr) -> Option<Duration> {
        let rate = f64::from(self.settings.requests_per_second.max(1));
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let client = clients.get_mut(&ip)?;
        let now = Instant::now();
        let elapsed = now.duration_since(client.refilled).as_secs_f64();
        client.tokens = (client.tokens + elapsed * rate).min(rate);
        client.refilled = now;
        client.tokens -= 1.0;
        (client.tokens < 0.0).then(|| Duration::from_secs_f64(-client.tokens / rate))
    }

    fn current(&self) -> Arc<Snapshot> {
        match self.snapshot.read() {
            Ok(current) => Arc::clone(&current),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}

/// One connection of a client address, given back when dropped.
struct Slot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Slot {
    fn take(shared: &Arc<Shared>, ip: IpAddr) -> Option<Slot> {
        let mut clients = shared.clients.lock().unwrap_or_else(|p| p.into_inner());
        let client = clients.entry(ip).or_insert_with(|| Client {
            connections: 0,
            tokens: f64::from(shared.settings.requests_per_second.max(1)),
            refilled: Instant::now(),
        });
        if client.connections >= shared.settings.max_connections_per_client {
            return None;
        }
        client.connections += 1;
        Some(Slot {
            shared: Arc::clone(shared),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut clients = self
            .shared
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(client) = clients.get_mut(&self.ip) {
            client.connections = client.connections.saturating_sub(1);
            if client.connections == 0 {
                clients.remove(&self.ip);
            }
        }
    }
}

/// A paged search under way: the snapshot it started on, the entries it
/// matched, how many were sent.
struct Paged {
    cookie: u64,
    snapshot: Arc<Snapshot>,
    matched: Vec<usize>,
    sent: usize,
    attrs: Vec<String>,
    types_only: bool,
}

/// What a connection knows between requests.
struct Session {
    /// When the connection opened (it must bind in time).
    opened: Instant,
    /// Whether the connection is encrypted (LDAPS, or after StartTLS).
    secure: bool,
    /// The normalised DN bound as, `Some(empty)` for an anonymous bind.
    bound: Option<String>,
    paged: VecDeque<Paged>,
    next_cookie: u64,
}

/// What to do after answering a request.
enum After {
    Continue,
    Close,
    /// StartTLS was answered with success: the handshake comes next.
    StartTls,
}

/// One connection: LDAPS from the first byte when `ldaps` is given, else
/// plain LDAP until a StartTLS.
async fn connection(
    shared: &Shared,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    ldaps: Option<tokio_rustls::TlsAcceptor>,
) {
    tracing::debug!(%peer, "connection opened");
    let mut session = Session {
        opened: Instant::now(),
        secure: false,
        bound: None,
        paged: VecDeque::new(),
        next_cookie: 1,
    };
    let plain = match ldaps {
        Some(acceptor) => Some((acceptor, stream)),
        None => match run(shared, &mut session, stream, peer).await {
            Some(stream) => shared
                .settings
                .tls
                .clone()
                .map(|config| (tokio_rustls::TlsAcceptor::from(config), stream)),
            None => None,
        },
    };
    if let Some((acceptor, stream)) = plain {
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => {
                session.secure = true;
                run(shared, &mut session, tls, peer).await;
            }
            Ok(Err(e)) => tracing::info!(%peer, error = %e, "TLS handshake failed"),
            Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
        }
    }
    tracing::debug!(%peer, "connection closed");
}

/// Answers the requests on `stream` until the client leaves or is cut
/// off; gives the stream back after a StartTLS was accepted.
async fn run<S>(shared: &Shared, session: &mut Session, stream: S, peer: SocketAddr) -> Option<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let codec = LdapCodec::new(Some(shared.settings.max_request_bytes), None);
    let mut framed = Framed::new(stream, codec);
    loop {
        let bound =
            shared.settings.anonymous || session.bound.as_deref().is_some_and(|dn| !dn.is_empty());
        let wait = if bound {
            shared.settings.idle_timeout
        } else {
            (session.opened + shared.settings.unbound_timeout)
                .saturating_duration_since(Instant::now())
                .min(shared.settings.idle_timeout)
        };
        let next = tokio::time::timeout(wait, framed.next()).await;
        let msg = match next {
            Err(_) => {
                let why = if bound {
                    "idle for too long"
                } else {
                    "no bind in time"
                };
                tracing::debug!(%peer, why, "closing the connection");
                let _ = framed.send(notice(LdapResultCode::Unavailable, why)).await;
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                tracing::warn!(%peer, error = %e, "malformed or oversized request; closing the connection");
                let _ = framed
                    .send(notice(
                        LdapResultCode::ProtocolError,
                        "malformed or oversized request",
                    ))
                    .await;
                break;
            }
            Ok(Some(Ok(msg))) => msg,
        };
        if let Some(delay) = shared.throttle(peer.ip()) {
            tracing::debug!(%peer, ?delay, "slowing down a client past its request rate");
            tokio::time::sleep(delay).await;
        }
        let mut replies = Replies(Vec::new());
        let after = handle(shared, session, msg, &mut replies).await;
        if send(&mut framed, replies).await.is_err() || framed.flush().await.is_err() {
            break;
        }
        match after {
            After::Continue => {}
            After::Close => break,
            After::StartTls => {
                let parts = framed.into_parts();
                if !parts.read_buf.is_empty() {
                    // RFC 4511 §4.14.1: nothing may follow StartTLS before
                    // the handshake.
                    tracing::warn!(%peer, "data after StartTLS before the handshake; closing");
                    return None;
                }
                return Some(parts.io);
            }
        }
    }
    None
}

/// What answers one request: messages, and the entries of a search, turned
/// into messages only as they are sent (a large result is never held
/// whole as messages).
struct Replies(Vec<Reply>);

enum Reply {
    Message(LdapMsg),
    Entries(Entries),
}

/// Entries of `snapshot` to send as search results.
struct Entries {
    msgid: i32,
    snapshot: Arc<Snapshot>,
    matched: Vec<usize>,
    attrs: Vec<String>,
    types_only: bool,
}

impl Replies {
    fn push(&mut self, msg: LdapMsg) {
        self.0.push(Reply::Message(msg));
    }

    fn entries(&mut self, entries: Entries) {
        self.0.push(Reply::Entries(entries));
    }
}

/// How many entries are written between two flushes (at most).
const ENTRIES_PER_FLUSH: usize = 256;
/// How many bytes of entries are written between two flushes (at most).
const FLUSH_BYTES: usize = 128 * 1024;

/// The attributes a search asked for, resolved once per search.
enum Selection {
    All,
    /// By [`key`]; `1.1` alone matches none.
    Keys(Vec<String>),
}

impl Selection {
    fn of(attrs: &[String]) -> Self {
        if attrs.is_empty() || attrs.iter().any(|a| a == "*" || a == "+") {
            Selection::All
        } else {
            Selection::Keys(attrs.iter().map(|a| key(a)).collect())
        }
    }

    fn wants(&self, attr: &Attr<'_>) -> bool {
        match self {
            Selection::All => true,
            Selection::Keys(keys) => keys.iter().any(|k| attr.is(k)),
        }
    }
}

async fn send<S>(framed: &mut Framed<S, LdapCodec>, replies: Replies) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    for item in replies.0 {
        match item {
            Reply::Message(msg) => framed.feed(msg).await?,
            Reply::Entries(entries) => {
                let selection = Selection::of(&entries.attrs);
                for (n, &index) in entries.matched.iter().enumerate() {
                    let Some(entry) = entries.snapshot.entry(index) else {
                        continue;
                    };
                    if entries.types_only {
                        let op = to_result_entry(entry, &entries.attrs, entries.types_only);
                        framed.feed(reply(entries.msgid, op)).await?;
                    } else {
                        // Encoded once per snapshot: only the headers are
                        // written here.
                        entry.write(framed.write_buffer_mut(), entries.msgid, |a| {
                            selection.wants(a)
                        });
                    }
                    if (n + 1) % ENTRIES_PER_FLUSH == 0
                        || framed.write_buffer().len() >= FLUSH_BYTES
                    {
                        framed.flush().await?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// The unsolicited notice of disconnection (RFC 4511 §4.4.1).
fn notice(code: LdapResultCode, message: &str) -> LdapMsg {
    LdapMsg {
        msgid: 0,
        op: LdapOp::ExtendedResponse(LdapExtendedResponse {
            res: result(code, message),
            name: Some(OID_NOTICE_OF_DISCONNECTION.to_string()),
            value: None,
        }),
        ctrl: Vec::new(),
    }
}

fn result(code: LdapResultCode, message: &str) -> LdapResult {
    LdapResult {
        code,
        matcheddn: String::new(),
        message: message.to_string(),
        referral: Vec::new(),
    }
}

fn reply(msgid: i32, op: LdapOp) -> LdapMsg {
    LdapMsg {
        msgid,
        op,
        ctrl: Vec::new(),
    }
}

const REFUSED_WRITE: &str = "the GAL is read-only: coexist computes it from the mail systems";

async fn handle(shared: &Shared, session: &mut Session, msg: LdapMsg, out: &mut Replies) -> After {
    let LdapMsg { msgid, op, ctrl } = msg;
    let refused = || result(LdapResultCode::UnwillingToPerform, REFUSED_WRITE);
    match op {
        LdapOp::BindRequest(request) => {
            let res = bind(shared, session, &request).await;
            out.push(reply(
                msgid,
                LdapOp::BindResponse(LdapBindResponse {
                    res,
                    saslcreds: None,
                }),
            ));
        }
        LdapOp::UnbindRequest => return After::Close,
        LdapOp::SearchRequest(request) => search(shared, session, msgid, &request, &ctrl, out),
        LdapOp::AddRequest(_) => out.push(reply(msgid, LdapOp::AddResponse(refused()))),
        LdapOp::ModifyRequest(_) => out.push(reply(msgid, LdapOp::ModifyResponse(refused()))),
        LdapOp::DelRequest(_) => out.push(reply(msgid, LdapOp::DelResponse(refused()))),
        LdapOp::ModifyDNRequest(_) => out.push(reply(msgid, LdapOp::ModifyDNResponse(refused()))),
        LdapOp::CompareRequest(_) => out.push(reply(
            msgid,
            LdapOp::CompareResult(result(
                LdapResultCode::UnwillingToPerform,
                "compare is not offered; search instead",
            )),
        )),
        LdapOp::AbandonRequest(_) => {}
        LdapOp::ExtendedRequest(request) if request.name == OID_START_TLS => {
            let (code, message) = if session.secure {
                (
                    LdapResultCode::OperationsError,
                    "TLS is already established",
                )
            } else if shared.settings.tls.is_none() {
                (
                    LdapResultCode::ProtocolError,
                    "StartTLS is not offered: no certificate is configured",
                )
            } else {
                (LdapResultCode::Success, "")
            };
            out.push(reply(
                msgid,
                LdapOp::ExtendedResponse(LdapExtendedResponse {
                    res: result(code.clone(), message),
                    name: Some(OID_START_TLS.to_string()),
                    value: None,
                }),
            ));
            if code == LdapResultCode::Success {
                session.paged.clear();
                return After::StartTls;
            }
        }
        LdapOp::ExtendedRequest(request) => extended(session, msgid, &request, out),
        other => {
            tracing::warn!(op = ?std::mem::discriminant(&other), "a response sent by a client; closing the connection");
            out.push(notice(LdapResultCode::ProtocolError, "not a request"));
            return After::Close;
        }
    }
    After::Continue
}

/// Whom a simple bind names, once the rules every bind meets hold.
enum Binder {
    /// The anonymous bind, allowed.
    Anonymous,
    /// A configured account (its normalised DN), password checked.
    Account(String),
    /// Not a configured account: the pass-through directory decides.
    Directory { name: String, password: String },
}

/// Checks what every bind must meet (version 3, simple, anonymous only
/// when allowed, over TLS when the server has a certificate, a password)
/// and whom it names; `Err` is the answer to a bind that fails them or a
/// configured account's wrong password.
fn bind_rules(
    shared: &Shared,
    session: &Session,
    request: &LdapBindRequest,
) -> Result<Binder, LdapResult> {
    if request.version != 3 {
        return Err(result(
            LdapResultCode::ProtocolError,
            "only LDAP version 3 is spoken",
        ));
    }
    let password = match &request.cred {
        LdapBindCred::Simple(password) => password,
        _ => {
            return Err(result(
                LdapResultCode::AuthMethodNotSupported,
                "only simple binds are offered",
            ))
        }
    };
    if request.dn.is_empty() && password.is_empty() {
        if shared.settings.anonymous {
            return Ok(Binder::Anonymous);
        }
        tracing::info!("anonymous bind refused");
        return Err(result(
            LdapResultCode::InappropriateAuthentication,
            "anonymous access is off; bind with a configured account",
        ));
    }
    if shared.settings.tls.is_some() && !session.secure {
        return Err(result(
            LdapResultCode::ConfidentialityRequired,
            "bind over TLS: use StartTLS or LDAPS",
        ));
    }
    if password.is_empty() {
        // RFC 4513 §5.1.2: an unauthenticated bind.
        return Err(result(
            LdapResultCode::UnwillingToPerform,
            "unauthenticated binds (a DN without a password) are refused",
        ));
    }
    let rdns = normalise(&request.dn);
    let account = rdns.as_ref().and_then(|rdns| {
        shared
            .account_dns
            .iter()
            .zip(&shared.settings.accounts)
            .find(|(dn, _)| *dn == rdns)
    });
    match (account, &shared.settings.pass_through) {
        (Some((dn, account)), _) => {
            if account.password.accepts(password) {
                tracing::info!(dn = %account.dn, "bound");
                Ok(Binder::Account(dn.join(",")))
            } else {
                tracing::info!(dn = %request.dn, "bind refused: invalid credentials");
                Err(result(LdapResultCode::InvalidCredentials, ""))
            }
        }
        // A directory takes names that are not DNs too (a UPN on AD).
        (None, Some(_)) => Ok(Binder::Directory {
            name: request.dn.trim().to_string(),
            password: password.clone(),
        }),
        (None, None) if rdns.is_none() => Err(result(
            LdapResultCode::InvalidDNSyntax,
            "the bind DN is not a DN",
        )),
        (None, None) => {
            tracing::info!(dn = %request.dn, "bind refused: invalid credentials");
            Err(result(LdapResultCode::InvalidCredentials, ""))
        }
    }
}

/// Answers a bind. A name the pass-through directory must check is asked
/// there (the only request that waits on another server).
async fn bind(shared: &Shared, session: &mut Session, request: &LdapBindRequest) -> LdapResult {
    session.bound = None;
    session.paged.clear();
    let (name, password) = match bind_rules(shared, session, request) {
        Err(refusal) => return refusal,
        Ok(Binder::Anonymous) => {
            session.bound = Some(String::new());
            return result(LdapResultCode::Success, "");
        }
        Ok(Binder::Account(dn)) => {
            session.bound = Some(dn);
            return result(LdapResultCode::Success, "");
        }
        Ok(Binder::Directory { name, password }) => (name, password),
    };
    let Some(directory) = &shared.settings.pass_through else {
        return result(LdapResultCode::InvalidCredentials, "");
    };
    match directory.check(&name, &password).await {
        Verdict::Accepted => {
            tracing::info!(name = %name, directory = %directory.directory(), "bound through the directory");
            session.bound =
                Some(normalise(&name).map_or_else(|| name.to_lowercase(), |rdns| rdns.join(",")));
            result(LdapResultCode::Success, "")
        }
        Verdict::Refused => {
            tracing::info!(name = %name, directory = %directory.directory(), "bind refused by the directory");
            result(LdapResultCode::InvalidCredentials, "")
        }
        Verdict::Unavailable(why) => {
            tracing::warn!(name = %name, directory = %directory.directory(), why = %why, "the directory that checks passwords could not be asked");
            result(
                LdapResultCode::Unavailable,
                "the directory that checks passwords did not answer; try again later",
            )
        }
    }
}

fn extended(session: &Session, msgid: i32, request: &LdapExtendedRequest, out: &mut Replies) {
    let response = if request.name == OID_WHOAMI {
        let authzid = match &session.bound {
            // A name bound through the directory that is not a DN (a
            // UPN) is a user id (RFC 4513 §5.2.1.8).
            Some(name) if !name.is_empty() && !name.contains('=') => format!("u:{name}"),
            Some(dn) if !dn.is_empty() => format!("dn:{dn}"),
            _ => String::new(),
        };
        LdapExtendedResponse {
            res: result(LdapResultCode::Success, ""),
            name: None,
            value: Some(authzid.into_bytes()),
        }
    } else {
        LdapExtendedResponse {
            res: result(
                LdapResultCode::ProtocolError,
                &format!("the extended operation {} is not offered", request.name),
            ),
            name: None,
            value: None,
        }
    };
    out.push(reply(msgid, LdapOp::ExtendedResponse(response)));
}

/// Which attributes a search asked for.
fn wanted(attrs: &[String], attr: &Attr<'_>) -> bool {
    if attrs.is_empty() || attrs.iter().any(|a| a == "*" || a == "+") {
        return true;
    }
    attrs.iter().any(|a| attr.is(&key(a)))
}

fn to_result_entry(entry: EntryRef<'_>, attrs: &[String], types_only: bool) -> LdapOp {
    let only_none = attrs.len() == 1 && attrs.iter().any(|a| a == "1.1");
    let attributes = if only_none {
        Vec::new()
    } else {
        entry
            .attrs()
            .filter(|a| wanted(attrs, a))
            .map(|a| LdapPartialAttribute {
                atype: a.name.to_string(),
                vals: if types_only {
                    Vec::new()
                } else {
                    a.values().map(|v| v.as_bytes().to_vec()).collect()
                },
            })
            .collect()
    };
    LdapOp::SearchResultEntry(LdapSearchResultEntry {
        dn: entry.dn().to_string(),
        attributes,
    })
}

fn done(msgid: i32, code: LdapResultCode, message: &str, ctrl: Vec<LdapControl>) -> LdapMsg {
    LdapMsg {
        msgid,
        op: LdapOp::SearchResultDone(result(code, message)),
        ctrl,
    }
}

fn in_scope(entry: &[String], base: &[String], scope: &LdapSearchScope) -> bool {
    let under = entry.len() >= base.len() && entry[entry.len() - base.len()..] == *base;
    match scope {
        LdapSearchScope::Base => entry == base,
        LdapSearchScope::OneLevel => under && entry.len() == base.len() + 1,
        LdapSearchScope::Subtree => under,
        LdapSearchScope::Children => under && entry.len() > base.len(),
    }
}

fn search(
    shared: &Shared,
    session: &mut Session,
    msgid: i32,
    request: &LdapSearchRequest,
    ctrl: &[LdapControl],
    out: &mut Replies,
) {
    let Some(base) = normalise(&request.base) else {
        out.push(done(
            msgid,
            LdapResultCode::InvalidDNSyntax,
            "the search base is not a DN",
            Vec::new(),
        ));
        return;
    };
    let mut paging = None;
    for control in ctrl {
        match control {
            LdapControl::SimplePagedResults { size, cookie } => paging = Some((*size, cookie)),
            LdapControl::Unknown {
                oid,
                criticality: true,
                ..
            } => {
                out.push(done(
                    msgid,
                    LdapResultCode::UnavailableCriticalExtension,
                    &format!("the control {oid} is not offered"),
                    Vec::new(),
                ));
                return;
            }
            _ => {}
        }
    }

    // The root DSE and the schema entry: read by clients before they bind.
    if request.scope == LdapSearchScope::Base && (base.is_empty() || base == schema_rdns()) {
        let entry = if base.is_empty() {
            root_dse(&shared.settings)
        } else {
            schema_entry()
        };
        if Filter::new(&request.filter).matches(entry.view()) {
            out.push(reply(
                msgid,
                to_result_entry(entry.view(), &request.attrs, request.typesonly),
            ));
        }
        out.push(done(msgid, LdapResultCode::Success, "", Vec::new()));
        return;
    }

    if !shared.settings.anonymous && session.bound.as_deref().is_none_or(str::is_empty) {
        out.push(done(
            msgid,
            LdapResultCode::InsufficentAccessRights,
            "bind first: anonymous access is off",
            Vec::new(),
        ));
        return;
    }

    let limit = match usize::try_from(request.sizelimit) {
        Ok(client) if client > 0 => client.min(shared.settings.size_limit),
        _ => shared.settings.size_limit,
    };

    if let Some((size, cookie)) = paging {
        paged(
            session, msgid, request, &base, size, cookie, limit, shared, out,
        );
        return;
    }

    let snapshot = shared.current();
    let Some(()) = check_base(&snapshot, &base, &request.scope, msgid, out) else {
        return;
    };
    let filter = Filter::new(&request.filter);
    let mut matched = Vec::new();
    let mut code = LdapResultCode::Success;
    for n in matching(&snapshot, &base, &request.scope, &filter) {
        if matched.len() == limit {
            code = LdapResultCode::SizeLimitExceeded;
            break;
        }
        matched.push(n);
    }
    out.entries(Entries {
        msgid,
        snapshot,
        matched,
        attrs: request.attrs.clone(),
        types_only: request.typesonly,
    });
    out.push(done(msgid, code, "", Vec::new()));
}

/// The positions of the entries in scope that `filter` matches,
/// ascending: through the snapshot's indexes when the filter allows, else
/// every entry read.
fn matching<'a>(
    snapshot: &'a Snapshot,
    base: &'a [String],
    scope: &'a LdapSearchScope,
    filter: &'a Filter,
) -> Box<dyn Iterator<Item = usize> + 'a> {
    let target = snapshot.position(base);
    let test = move |n: &usize| {
        snapshot.in_scope(*n, base, target, scope)
            && snapshot.entry(*n).is_some_and(|e| filter.matches(e))
    };
    match filter.candidates(snapshot) {
        Some(candidates) => Box::new(candidates.into_iter().map(|n| n as usize).filter(test)),
        None => Box::new((0..snapshot.entries()).filter(test)),
    }
}

/// Whether the search base exists (or lies above the GAL's base, so a
/// subtree search from the domain finds the GAL); answers noSuchObject
/// otherwise.
fn check_base(
    snapshot: &Snapshot,
    base: &[String],
    scope: &LdapSearchScope,
    msgid: i32,
    out: &mut Replies,
) -> Option<()> {
    let above = base.len() < snapshot.base_rdns.len()
        && snapshot.base_rdns[snapshot.base_rdns.len() - base.len()..] == *base;
    let reachable = matches!(scope, LdapSearchScope::Subtree | LdapSearchScope::Children)
        || (matches!(scope, LdapSearchScope::OneLevel)
            && base.len() + 1 == snapshot.base_rdns.len());
    if snapshot.find(base).is_some() || (above && reachable) {
        return Some(());
    }
    let mut res = result(LdapResultCode::NoSuchObject, "no such entry in the GAL");
    if in_scope(base, &snapshot.base_rdns, &LdapSearchScope::Subtree) {
        res.matcheddn = snapshot
            .entry(0)
            .map(|e| e.dn().to_string())
            .unwrap_or_default();
    }
    out.push(reply(msgid, LdapOp::SearchResultDone(res)));
    None
}

#[allow(clippy::too_many_arguments)]
fn paged(
    session: &mut Session,
    msgid: i32,
    request: &LdapSearchRequest,
    base: &[String],
    size: i64,
    cookie: &[u8],
    limit: usize,
    shared: &Shared,
    out: &mut Replies,
) {
    let page = usize::try_from(size).unwrap_or(0).min(limit);
    let mut state = if cookie.is_empty() {
        let snapshot = shared.current();
        let Some(()) = check_base(&snapshot, base, &request.scope, msgid, out) else {
            return;
        };
        let filter = Filter::new(&request.filter);
        let matched = matching(&snapshot, base, &request.scope, &filter).collect();
        let cookie = session.next_cookie;
        session.next_cookie += 1;
        Paged {
            cookie,
            snapshot,
            matched,
            sent: 0,
            attrs: request.attrs.clone(),
            types_only: request.typesonly,
        }
    } else {
        let wanted = <[u8; 8]>::try_from(cookie).ok().map(u64::from_be_bytes);
        let found = session
            .paged
            .iter()
            .position(|p| Some(p.cookie) == wanted)
            .and_then(|n| session.paged.remove(n));
        match found {
            Some(state) => state,
            None => {
                out.push(done(
                    msgid,
                    LdapResultCode::UnwillingToPerform,
                    "unknown or expired paged-results cookie",
                    Vec::new(),
                ));
                return;
            }
        }
    };
    if size == 0 {
        // RFC 2696 §3: a size of zero abandons the paged search.
        out.push(done(
            msgid,
            LdapResultCode::Success,
            "",
            vec![paged_control(0, Vec::new())],
        ));
        return;
    }
    let end = (state.sent + page.max(1)).min(state.matched.len());
    out.entries(Entries {
        msgid,
        snapshot: Arc::clone(&state.snapshot),
        matched: state.matched[state.sent..end].to_vec(),
        attrs: state.attrs.clone(),
        types_only: state.types_only,
    });
    state.sent = end;
    let total = i64::try_from(state.matched.len()).unwrap_or(i64::MAX);
    if state.sent < state.matched.len() {
        let cookie = state.cookie.to_be_bytes().to_vec();
        if session.paged.len() >= OPEN_PAGED_SEARCHES {
            session.paged.pop_front();
        }
        session.paged.push_back(state);
        out.push(done(
            msgid,
            LdapResultCode::Success,
            "",
            vec![paged_control(total, cookie)],
        ));
    } else {
        out.push(done(
            msgid,
            LdapResultCode::Success,
            "",
            vec![paged_control(total, Vec::new())],
        ));
    }
}

fn paged_control(size: i64, cookie: Vec<u8>) -> LdapControl {
    LdapControl::SimplePagedResults { size, cookie }
}

fn schema_rdns() -> Vec<String> {
    normalise(SCHEMA_DN).unwrap_or_default()
}

/// The root DSE (RFC 4512 §5.1).
fn root_dse(settings: &Settings) -> Entry {
    let strings = |values: &[&str]| values.iter().map(|v| (*v).to_string()).collect();
    Entry::new(
        String::new(),
        vec![
            ("objectClass", strings(&["top"])),
            ("namingContexts", vec![settings.base.clone()]),
            ("supportedControl", strings(&[OID_PAGED_RESULTS])),
            (
                "supportedExtension",
                if settings.tls.is_some() {
                    strings(&[OID_WHOAMI, OID_START_TLS])
                } else {
                    strings(&[OID_WHOAMI])
                },
            ),
            ("supportedLDAPVersion", strings(&["3"])),
            ("supportedSASLMechanisms", Vec::new()),
            ("subschemaSubentry", strings(&[SCHEMA_DN])),
            ("vendorName", strings(&["coexist"])),
            (
                "vendorVersion",
                vec![format!("coexist {}", env!("CARGO_PKG_VERSION"))],
            ),
        ],
    )
}

/// A minimal schema entry (RFC 4512 §4.2): the attribute types and object
/// classes the GAL's entries use, as RFC 4519, RFC 2798 and RFC 4524 define
/// them (`department` as Active Directory names it).
fn schema_entry() -> Entry {
    const DIRECTORY_STRING: &str = "SYNTAX 1.3.6.1.4.1.1466.115.121.1.15";
    let string_type = |oid: &str, names: &str| {
        format!("( {oid} NAME {names} EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch {DIRECTORY_STRING} )")
    };
    let attribute_types = vec![
        "( 2.5.4.0 NAME 'objectClass' EQUALITY objectIdentifierMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.38 )".to_string(),
        "( 2.5.4.41 NAME 'name' EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )".to_string(),
        "( 2.5.4.3 NAME ( 'cn' 'commonName' ) SUP name )".to_string(),
        "( 2.5.4.4 NAME ( 'sn' 'surname' ) SUP name )".to_string(),
        "( 2.5.4.42 NAME ( 'givenName' 'gn' ) SUP name )".to_string(),
        "( 2.5.4.12 NAME 'title' SUP name )".to_string(),
        "( 2.5.4.11 NAME ( 'ou' 'organizationalUnitName' ) SUP name )".to_string(),
        "( 2.5.4.10 NAME ( 'o' 'organizationName' ) SUP name )".to_string(),
        string_type("2.16.840.1.113730.3.1.241", "'displayName' SINGLE-VALUE"),
        string_type("1.2.840.113556.1.2.141", "'department' SINGLE-VALUE"),
        "( 0.9.2342.19200300.100.1.3 NAME ( 'mail' 'rfc822Mailbox' ) EQUALITY caseIgnoreIA5Match SUBSTR caseIgnoreIA5SubstringsMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.26{256} )".to_string(),
        "( 2.5.4.20 NAME 'telephoneNumber' EQUALITY telephoneNumberMatch SUBSTR telephoneNumberSubstringsMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.50 )".to_string(),
        "( 0.9.2342.19200300.100.1.41 NAME ( 'mobile' 'mobileTelephoneNumber' ) EQUALITY telephoneNumberMatch SUBSTR telephoneNumberSubstringsMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.50 )".to_string(),
        "( 2.5.4.31 NAME 'member' EQUALITY distinguishedNameMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.12 )".to_string(),
    ];
    let object_classes = vec![
        "( 2.5.6.0 NAME 'top' ABSTRACT MUST objectClass )".to_string(),
        "( 2.5.6.6 NAME 'person' SUP top STRUCTURAL MUST ( sn $ cn ) MAY ( telephoneNumber ) )".to_string(),
        "( 2.5.6.7 NAME 'organizationalPerson' SUP person STRUCTURAL MAY ( title $ ou ) )".to_string(),
        "( 2.16.840.1.113730.3.2.2 NAME 'inetOrgPerson' SUP organizationalPerson STRUCTURAL MAY ( displayName $ givenName $ mail $ mobile $ o $ department ) )".to_string(),
        "( 2.5.6.9 NAME 'groupOfNames' SUP top STRUCTURAL MUST ( member $ cn ) MAY ( o $ ou ) )".to_string(),
        "( 2.5.6.5 NAME 'organizationalUnit' SUP top STRUCTURAL MUST ou )".to_string(),
    ];
    Entry::new(
        SCHEMA_DN.to_string(),
        vec![
            (
                "objectClass",
                vec!["top".into(), "subentry".into(), "subschema".into()],
            ),
            ("cn", vec!["Subschema".into()]),
            ("attributeTypes", attribute_types),
            ("objectClasses", object_classes),
        ],
    )
}
