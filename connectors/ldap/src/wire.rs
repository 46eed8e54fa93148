//! A lean LDAP client for the bulk read of a full pull.
//!
//! A full read of a big directory is dominated by decoding: ldap3 turns
//! every message into a tree of tags (an allocation per element), clones
//! it, sends it through a channel, and `SearchEntry::construct` turns it
//! into hash maps of strings. This module speaks just enough LDAP (RFC 4511)
//! for that one job on a connection of its own: StartTLS, simple bind,
//! paged searches (RFC 2696), unbind. Each received message is decoded in
//! place, straight from the receive buffer into an [`Entry`].
//!
//! How the connection is made (transport, StartTLS or TLS, the TLS
//! configuration, the credentials) is [`crate::endpoint`]'s decision,
//! shared with ldap3: [`crate::endpoint::Endpoint::lean`] opens the socket
//! and uses this module's operations on it. Everything else (deltas, group
//! members, writes) keeps using ldap3.

use std::io;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use coexist_connector::ConnectorError;
use lber::structures::ASNTag;
use ldap3::LdapResult;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::entry::Entry;
use crate::error::{self, rc};

/// The OID of the paged results control (RFC 2696).
const PAGED_RESULTS_OID: &[u8] = b"1.2.840.113556.1.4.319";
/// The OID of the StartTLS extended operation (RFC 4511 4.14).
const STARTTLS_OID: &[u8] = b"1.3.6.1.4.1.1466.20037";
/// The largest message accepted (a sanity bound against a corrupt length).
const MAX_MESSAGE: usize = 256 * 1024 * 1024;
/// How much the receive buffer grows by at a time.
const READ_CHUNK: usize = 256 * 1024;

/// The BER tags of the LDAP messages and elements this client handles.
mod tag {
    pub const BOOLEAN: u8 = 0x01;
    pub const INTEGER: u8 = 0x02;
    pub const OCTET_STRING: u8 = 0x04;
    pub const ENUMERATED: u8 = 0x0a;
    pub const SEQUENCE: u8 = 0x30;
    pub const SET: u8 = 0x31;
    pub const BIND_REQUEST: u8 = 0x60;
    pub const BIND_RESPONSE: u8 = 0x61;
    pub const UNBIND_REQUEST: u8 = 0x42;
    pub const SEARCH_REQUEST: u8 = 0x63;
    pub const SEARCH_ENTRY: u8 = 0x64;
    pub const SEARCH_DONE: u8 = 0x65;
    pub const SEARCH_REFERENCE: u8 = 0x73;
    pub const EXTENDED_REQUEST: u8 = 0x77;
    pub const EXTENDED_RESPONSE: u8 = 0x78;
    /// `[0]` primitive: the simple bind password, the extended request name.
    pub const CONTEXT_0: u8 = 0x80;
    /// `[0]` constructed: the controls of a message.
    pub const CONTROLS: u8 = 0xa0;
    /// `[3]` constructed: the referral URIs of a result.
    pub const REFERRAL: u8 = 0xa3;
}

/// What can go wrong on the wire, before it is told to the user.
#[derive(Debug)]
pub enum WireError {
    /// The connection failed or closed.
    Io(io::Error),
    /// No data arrived within the configured timeout.
    Timeout,
    /// The server sent bytes that are not the LDAP message expected.
    Malformed(&'static str),
    /// The server answered an operation with an error result.
    Result(LdapResult),
}

impl From<io::Error> for WireError {
    fn from(e: io::Error) -> Self {
        WireError::Io(e)
    }
}

impl WireError {
    /// The error as the connector reports it, for operation `what`.
    pub fn into_connector_error(self, system: &str, what: &str) -> ConnectorError {
        match self {
            WireError::Io(e) => error::connection_failed(system, what, &e.to_string()),
            WireError::Timeout => error::timed_out(system, what),
            WireError::Malformed(detail) => ConnectorError::retryable(format!(
                "LDAP system `{system}`: {what}: the server sent a message coexist cannot decode ({detail}); coexist will retry"
            )),
            WireError::Result(result) => error::from_result(system, what, &result),
        }
    }
}

type Malformed = WireError;

fn malformed(what: &'static str) -> Malformed {
    WireError::Malformed(what)
}

// --- BER reading ------------------------------------------------------------

/// The length of a BER element whose length octets start `b`: `(length,
/// octets used)`, or `None` while incomplete.
fn read_length(b: &[u8]) -> Result<Option<(usize, usize)>, Malformed> {
    let Some(&first) = b.first() else {
        return Ok(None);
    };
    if first < 0x80 {
        return Ok(Some((usize::from(first), 1)));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 4 {
        return Err(malformed("unsupported BER length"));
    }
    let Some(octets) = b.get(1..=n) else {
        return Ok(None);
    };
    let len = octets
        .iter()
        .fold(0usize, |acc, &o| (acc << 8) | usize::from(o));
    Ok(Some((len, n + 1)))
}

/// The size of the first complete LDAP message in `buf`, if it holds one.
fn frame_len(buf: &[u8]) -> Result<Option<usize>, Malformed> {
    let Some(&t) = buf.first() else {
        return Ok(None);
    };
    if t != tag::SEQUENCE {
        return Err(malformed("a message is not a SEQUENCE"));
    }
    let Some((len, used)) = read_length(&buf[1..])? else {
        return Ok(None);
    };
    if len > MAX_MESSAGE {
        return Err(malformed("a message is implausibly large"));
    }
    let total = 1 + used + len;
    Ok((buf.len() >= total).then_some(total))
}

/// A cursor over consecutive BER elements.
#[derive(Debug, Clone, Copy)]
struct Ber<'a>(&'a [u8]);

impl<'a> Ber<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn peek_tag(&self) -> Option<u8> {
        self.0.first().copied()
    }

    /// The next element: its tag and its content.
    fn next(&mut self) -> Result<(u8, &'a [u8]), Malformed> {
        let (&t, rest) = self.0.split_first().ok_or(malformed("truncated"))?;
        if t & 0x1f == 0x1f {
            return Err(malformed("multi-byte BER tag"));
        }
        let (len, used) = read_length(rest)?.ok_or(malformed("truncated length"))?;
        let end = used.checked_add(len).ok_or(malformed("bad length"))?;
        let content = rest.get(used..end).ok_or(malformed("truncated element"))?;
        self.0 = &rest[end..];
        Ok((t, content))
    }

    /// The next element, which must have tag `want`.
    fn expect(&mut self, want: u8, what: &'static str) -> Result<&'a [u8], Malformed> {
        match self.next()? {
            (t, content) if t == want => Ok(content),
            _ => Err(malformed(what)),
        }
    }
}

/// A BER INTEGER's content as a number.
fn integer(content: &[u8]) -> Result<i64, Malformed> {
    if content.is_empty() || content.len() > 8 {
        return Err(malformed("bad INTEGER"));
    }
    let negative = content[0] & 0x80 != 0;
    let start: i64 = if negative { -1 } else { 0 };
    Ok(content
        .iter()
        .fold(start, |acc, &b| (acc << 8) | i64::from(b)))
}

/// One LDAP message, borrowed from the receive buffer.
struct Message<'a> {
    id: i64,
    op: u8,
    body: &'a [u8],
    controls: Option<&'a [u8]>,
}

fn message(frame: &[u8]) -> Result<Message<'_>, Malformed> {
    let mut outer = Ber(frame);
    let mut m = Ber(outer.expect(tag::SEQUENCE, "a message is not a SEQUENCE")?);
    let id = integer(m.expect(tag::INTEGER, "no message id")?)?;
    let (op, body) = m.next()?;
    let mut controls = None;
    // Anything else after the operation (AD puts a stray element in a
    // notice of disconnection) is ignored.
    while !m.is_empty() {
        let (t, content) = m.next()?;
        if t == tag::CONTROLS {
            controls = Some(content);
        }
    }
    Ok(Message {
        id,
        op,
        body,
        controls,
    })
}

fn utf8_lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// An LDAPResult (the body of a response), with the referral URIs.
fn ldap_result(body: &[u8]) -> Result<LdapResult, Malformed> {
    let mut b = Ber(body);
    let code = integer(b.expect(tag::ENUMERATED, "no result code")?)?;
    let matched = b.expect(tag::OCTET_STRING, "no matched DN")?;
    let text = b.expect(tag::OCTET_STRING, "no diagnostic message")?;
    let mut refs = Vec::new();
    if b.peek_tag() == Some(tag::REFERRAL) {
        let mut uris = Ber(b.expect(tag::REFERRAL, "bad referral")?);
        while !uris.is_empty() {
            refs.push(utf8_lossy(uris.expect(tag::OCTET_STRING, "bad referral")?));
        }
    }
    Ok(LdapResult {
        rc: u32::try_from(code).map_err(|_| malformed("bad result code"))?,
        matched: utf8_lossy(matched),
        text: utf8_lossy(text),
        refs,
        ctrls: Vec::new(),
    })
}

/// The cookie of the paged results control among `controls`, if any.
fn paged_cookie(controls: &[u8]) -> Result<Option<&[u8]>, Malformed> {
    let mut list = Ber(controls);
    while !list.is_empty() {
        let mut control = Ber(list.expect(tag::SEQUENCE, "bad control")?);
        let oid = control.expect(tag::OCTET_STRING, "bad control type")?;
        if oid != PAGED_RESULTS_OID {
            continue;
        }
        if control.peek_tag() == Some(tag::BOOLEAN) {
            control.next()?;
        }
        let value = control.expect(tag::OCTET_STRING, "paged results without a value")?;
        let mut value = Ber(value);
        let mut seq = Ber(value.expect(tag::SEQUENCE, "bad paged results value")?);
        seq.expect(tag::INTEGER, "bad paged results size")?;
        let cookie = seq.expect(tag::OCTET_STRING, "bad paged results cookie")?;
        return Ok(Some(cookie));
    }
    Ok(None)
}

/// Decodes a SearchResultEntry body into an [`Entry`]. Attributes whose
/// values are all UTF-8 are text; any other is binary (as ldap3 does).
fn decode_entry(body: &[u8]) -> Result<Entry, Malformed> {
    let mut b = Ber(body);
    let dn = b.expect(tag::OCTET_STRING, "an entry without a DN")?;
    let mut entry = Entry::new(utf8_lossy(dn));
    let mut attrs = Ber(b.expect(tag::SEQUENCE, "an entry without attributes")?);
    while !attrs.is_empty() {
        let mut attr = Ber(attrs.expect(tag::SEQUENCE, "bad attribute")?);
        let name = attr.expect(tag::OCTET_STRING, "bad attribute type")?;
        let name = std::str::from_utf8(name).map_err(|_| malformed("bad attribute type"))?;
        let set = Ber(attr.expect(tag::SET, "bad attribute values")?);
        // Text in one pass in the usual case; binary values (a second
        // pass) when one of them is not UTF-8.
        let mut values = Vec::new();
        let mut text = true;
        let mut walk = set;
        while !walk.is_empty() {
            let v = walk.expect(tag::OCTET_STRING, "bad attribute value")?;
            match std::str::from_utf8(v) {
                Ok(t) => values.push(t.to_string()),
                Err(_) => {
                    text = false;
                    break;
                }
            }
        }
        if text {
            entry.push_text(name, values);
        } else {
            let mut bin = Vec::new();
            let mut walk = set;
            while !walk.is_empty() {
                bin.push(
                    walk.expect(tag::OCTET_STRING, "bad attribute value")?
                        .to_vec(),
                );
            }
            entry.push_bin(name, bin);
        }
    }
    Ok(entry)
}

// --- BER writing ------------------------------------------------------------

fn put_length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// Appends one element.
fn put(out: &mut Vec<u8>, t: u8, content: &[u8]) {
    out.push(t);
    put_length(out, content.len());
    out.extend_from_slice(content);
}

/// Appends a constructed element whose content `fill` writes.
fn put_with(out: &mut Vec<u8>, t: u8, fill: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    fill(&mut inner);
    put(out, t, &inner);
}

fn put_integer(out: &mut Vec<u8>, t: u8, value: i64) {
    let bytes = value.to_be_bytes();
    let mut start = 0;
    while start < 7 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    put(out, t, &bytes[start..]);
}

/// A whole message: id, operation, optional controls.
fn envelope(id: i32, op: impl FnOnce(&mut Vec<u8>), controls: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    put_with(&mut out, tag::SEQUENCE, |m| {
        put_integer(m, tag::INTEGER, i64::from(id));
        op(m);
        if let Some(c) = controls {
            put(m, tag::CONTROLS, c);
        }
    });
    out
}

/// The paged results request control with `size` and `cookie`.
fn paged_control(size: u32, cookie: &[u8]) -> Vec<u8> {
    let mut controls = Vec::new();
    put_with(&mut controls, tag::SEQUENCE, |c| {
        put(c, tag::OCTET_STRING, PAGED_RESULTS_OID);
        let mut value = Vec::new();
        put_with(&mut value, tag::SEQUENCE, |v| {
            put_integer(v, tag::INTEGER, i64::from(size));
            put(v, tag::OCTET_STRING, cookie);
        });
        put(c, tag::OCTET_STRING, &value);
    });
    controls
}

/// A filter in its BER form (RFC 4515 text parsed by ldap3).
fn encode_filter(filter: &str) -> Option<Vec<u8>> {
    let tag = ldap3::parse_filter(filter).ok()?;
    let mut buf = BytesMut::new();
    lber::write::encode_into(&mut buf, tag.into_structure()).ok()?;
    Some(buf.to_vec())
}

// --- transport ------------------------------------------------------------

/// A byte stream the client runs over: TCP, TLS over TCP, or a Unix socket
/// (opened by [`crate::endpoint::Endpoint::lean`]).
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Reads until `buf` holds a whole message; returns its size.
async fn fill_frame<S: AsyncRead + Unpin + ?Sized>(
    io: &mut S,
    buf: &mut BytesMut,
    timeout: Duration,
) -> Result<usize, WireError> {
    loop {
        if let Some(n) = frame_len(buf)? {
            return Ok(n);
        }
        buf.reserve(READ_CHUNK);
        let read = tokio::time::timeout(timeout, io.read_buf(buf))
            .await
            .map_err(|_| WireError::Timeout)??;
        if read == 0 {
            return Err(WireError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            )));
        }
    }
}

/// Sends `request` and reads messages until the response to `id`, which
/// must be an operation `op`; returns its LDAPResult.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin + ?Sized>(
    io: &mut S,
    buf: &mut BytesMut,
    timeout: Duration,
    request: &[u8],
    id: i32,
    op: u8,
) -> Result<LdapResult, WireError> {
    tokio::time::timeout(timeout, io.write_all(request))
        .await
        .map_err(|_| WireError::Timeout)??;
    loop {
        let n = fill_frame(io, buf, timeout).await?;
        let result = {
            let m = message(&buf[..n])?;
            if m.id == i64::from(id) && m.op == op {
                Some(ldap_result(m.body)?)
            } else if m.id == 0 {
                // An unsolicited notification: the server is disconnecting.
                let r = ldap_result(m.body)?;
                return Err(WireError::Result(r));
            } else {
                None
            }
        };
        buf.advance(n);
        if let Some(r) = result {
            return Ok(r);
        }
    }
}

/// Asks the server to start TLS (RFC 4511 4.14) on `io`, as message `id`;
/// returns its result. Nothing the server sends after the response is
/// kept: the TLS handshake comes next.
pub(crate) async fn start_tls<S: AsyncRead + AsyncWrite + Unpin + ?Sized>(
    io: &mut S,
    id: i32,
    timeout: Duration,
) -> Result<LdapResult, WireError> {
    let request = envelope(
        id,
        |m| {
            put_with(m, tag::EXTENDED_REQUEST, |e| {
                put(e, tag::CONTEXT_0, STARTTLS_OID)
            })
        },
        None,
    );
    let mut buf = BytesMut::new();
    exchange(io, &mut buf, timeout, &request, id, tag::EXTENDED_RESPONSE).await
}

/// One bound connection of the lean client.
pub struct WireConn {
    system: String,
    io: Box<dyn Io>,
    buf: BytesMut,
    next_id: i32,
    timeout: Duration,
}

impl std::fmt::Debug for WireConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WireConn")
            .field("system", &self.system)
            .finish()
    }
}

/// One paged search (a subtree unless told) for [`WireConn::search`].
#[derive(Debug, Clone, Copy)]
pub struct PagedSearch<'q> {
    /// The base DN of the subtree.
    pub base: &'q str,
    /// The filter (RFC 4515 text).
    pub filter: &'q str,
    /// The attributes to return.
    pub attrs: &'q [String],
    /// The entries per page (RFC 2696 size).
    pub page_size: u32,
    /// The scope: the subtree for the configured bases; what a followed
    /// reference says for a continuation.
    pub scope: ldap3::Scope,
}

/// A search that failed, with how many entries it delivered before.
#[derive(Debug)]
pub struct Stopped {
    /// What went wrong.
    pub error: WireError,
    /// How many entries the search delivered before.
    pub entries_before: usize,
}

impl WireConn {
    /// The client over `io`, a connection [`crate::endpoint::Endpoint`]
    /// opened (and protected) already; its first message has the id
    /// `next_id`.
    pub(crate) fn new(system: &str, io: Box<dyn Io>, next_id: i32, timeout: Duration) -> WireConn {
        WireConn {
            system: system.to_string(),
            io,
            buf: BytesMut::with_capacity(READ_CHUNK),
            next_id,
            timeout,
        }
    }

    /// A simple bind as `dn` with `password`; the server's result (a
    /// refusal is a result too, for the caller to explain).
    pub(crate) async fn simple_bind(
        &mut self,
        dn: &str,
        password: &str,
    ) -> Result<LdapResult, WireError> {
        let id = self.take_id();
        let request = envelope(
            id,
            |m| {
                put_with(m, tag::BIND_REQUEST, |b| {
                    put_integer(b, tag::INTEGER, 3);
                    put(b, tag::OCTET_STRING, dn.as_bytes());
                    put(b, tag::CONTEXT_0, password.as_bytes());
                })
            },
            None,
        );
        exchange(
            &mut self.io,
            &mut self.buf,
            self.timeout,
            &request,
            id,
            tag::BIND_RESPONSE,
        )
        .await
    }

    fn take_id(&mut self) -> i32 {
        let id = self.next_id;
        self.next_id = if id == i32::MAX { 1 } else { id + 1 };
        id
    }

    /// Runs a paged search, handing every entry to `each` as it arrives
    /// and collecting search references (RFC 4511 4.5.3) in `references`,
    /// one list of URLs (alternatives) per reference. Returns the final
    /// result (success, or the error code the server ended the search
    /// with, and its referral URLs).
    pub async fn search(
        &mut self,
        query: PagedSearch<'_>,
        mut each: impl FnMut(Entry) -> Result<(), ConnectorError>,
        references: &mut Vec<Vec<String>>,
    ) -> Result<LdapResult, SearchStop> {
        let mut n = 0usize;
        let stop = |error: WireError, n: usize| {
            SearchStop::Wire(Stopped {
                error,
                entries_before: n,
            })
        };
        let Some(filter) = encode_filter(query.filter) else {
            return Err(stop(
                WireError::Result(LdapResult {
                    rc: rc::PROTOCOL_ERROR,
                    matched: String::new(),
                    text: format!("the filter {} does not parse", query.filter),
                    refs: Vec::new(),
                    ctrls: Vec::new(),
                }),
                0,
            ));
        };
        let scope = match query.scope {
            ldap3::Scope::Base => 0,
            ldap3::Scope::OneLevel => 1,
            ldap3::Scope::Subtree => 2,
        };
        let mut cookie: Vec<u8> = Vec::new();
        loop {
            let id = self.take_id();
            let controls = paged_control(query.page_size, &cookie);
            let request = envelope(
                id,
                |m| {
                    put_with(m, tag::SEARCH_REQUEST, |s| {
                        put(s, tag::OCTET_STRING, query.base.as_bytes());
                        put_integer(s, tag::ENUMERATED, scope);
                        put_integer(s, tag::ENUMERATED, 0); // neverDerefAliases
                        put_integer(s, tag::INTEGER, 0); // no size limit
                        put_integer(s, tag::INTEGER, 0); // no time limit
                        put(s, tag::BOOLEAN, &[0]); // typesOnly: false
                        s.extend_from_slice(&filter);
                        put_with(s, tag::SEQUENCE, |a| {
                            for name in query.attrs {
                                put(a, tag::OCTET_STRING, name.as_bytes());
                            }
                        });
                    })
                },
                Some(&controls),
            );
            crate::error::request_sent();
            tokio::time::timeout(self.timeout, self.io.write_all(&request))
                .await
                .map_err(|_| stop(WireError::Timeout, n))?
                .map_err(|e| stop(e.into(), n))?;
            let (result, next) = loop {
                let size = fill_frame(&mut self.io, &mut self.buf, self.timeout)
                    .await
                    .map_err(|e| stop(e, n))?;
                let frame = &self.buf[..size];
                let m = message(frame).map_err(|e| stop(e, n))?;
                if m.id != i64::from(id) {
                    if m.id == 0 {
                        // A notice of disconnection.
                        let r = ldap_result(m.body).map_err(|e| stop(e, n))?;
                        return Err(stop(WireError::Result(r), n));
                    }
                    self.buf.advance(size);
                    continue;
                }
                match m.op {
                    tag::SEARCH_ENTRY => {
                        let entry = decode_entry(m.body).map_err(|e| stop(e, n))?;
                        self.buf.advance(size);
                        n += 1;
                        each(entry).map_err(|error| SearchStop::Caller {
                            error,
                            entries_before: n,
                        })?;
                    }
                    tag::SEARCH_REFERENCE => {
                        let mut uris = Ber(m.body);
                        let mut urls = Vec::new();
                        while !uris.is_empty() {
                            let uri = uris
                                .expect(tag::OCTET_STRING, "bad search reference")
                                .map_err(|e| stop(e, n))?;
                            urls.push(utf8_lossy(uri));
                        }
                        references.push(urls);
                        self.buf.advance(size);
                    }
                    tag::SEARCH_DONE => {
                        let result = ldap_result(m.body).map_err(|e| stop(e, n))?;
                        let next = match m.controls {
                            Some(c) => paged_cookie(c)
                                .map_err(|e| stop(e, n))?
                                .map(<[u8]>::to_vec)
                                .unwrap_or_default(),
                            None => Vec::new(),
                        };
                        self.buf.advance(size);
                        break (result, next);
                    }
                    _ => {
                        return Err(stop(malformed("an unexpected response to a search"), n));
                    }
                }
            };
            if result.rc != rc::SUCCESS || next.is_empty() {
                return Ok(result);
            }
            cookie = next;
        }
    }

    /// Unbinds and closes the connection (best effort).
    pub async fn close(mut self) {
        let id = self.take_id();
        let request = envelope(id, |m| put(m, tag::UNBIND_REQUEST, &[]), None);
        let _ = tokio::time::timeout(self.timeout, async {
            let _ = self.io.write_all(&request).await;
            let _ = self.io.shutdown().await;
        })
        .await;
    }
}

/// Why [`WireConn::search`] stopped before the end.
#[derive(Debug)]
pub enum SearchStop {
    /// The connection or the server failed.
    Wire(Stopped),
    /// `each` returned an error.
    Caller {
        /// The error `each` returned.
        error: ConnectorError,
        /// How many entries the search delivered, the failing one included.
        entries_before: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_and_lengths_round_trip() {
        for v in [
            0i64,
            1,
            127,
            128,
            255,
            256,
            1000,
            -1,
            -128,
            -129,
            i64::from(i32::MAX),
        ] {
            let mut out = Vec::new();
            put_integer(&mut out, tag::INTEGER, v);
            let mut b = Ber(&out);
            assert_eq!(integer(b.expect(tag::INTEGER, "x").unwrap()).unwrap(), v);
        }
        for len in [0usize, 1, 127, 128, 255, 256, 65_535, 65_536, 1 << 20] {
            let mut out = Vec::new();
            put_length(&mut out, len);
            assert_eq!(read_length(&out).unwrap(), Some((len, out.len())));
        }
    }

    #[test]
    fn a_search_entry_decodes_with_text_and_binary_attributes() {
        let frame = envelope(
            7,
            |m| {
                put_with(m, tag::SEARCH_ENTRY, |e| {
                    put(e, tag::OCTET_STRING, b"uid=a,dc=x");
                    put_with(e, tag::SEQUENCE, |attrs| {
                        put_with(attrs, tag::SEQUENCE, |a| {
                            put(a, tag::OCTET_STRING, b"mail");
                            put_with(a, tag::SET, |s| {
                                put(s, tag::OCTET_STRING, b"a@x.com");
                                put(s, tag::OCTET_STRING, b"b@x.com");
                            });
                        });
                        put_with(attrs, tag::SEQUENCE, |a| {
                            put(a, tag::OCTET_STRING, b"objectGUID");
                            put_with(a, tag::SET, |s| put(s, tag::OCTET_STRING, &[0xff, 0, 1]));
                        });
                    });
                })
            },
            None,
        );
        assert_eq!(frame_len(&frame).unwrap(), Some(frame.len()));
        assert_eq!(frame_len(&frame[..frame.len() - 1]).unwrap(), None);
        let m = message(&frame).unwrap();
        assert_eq!((m.id, m.op), (7, tag::SEARCH_ENTRY));
        let e = decode_entry(m.body).unwrap();
        assert_eq!(e.dn, "uid=a,dc=x");
        assert_eq!(e.values("MAIL"), ["a@x.com", "b@x.com"]);
        assert_eq!(e.first_bytes("objectGUID"), Some(&[0xff, 0, 1][..]));
    }

    #[test]
    fn a_search_done_gives_its_result_and_paging_cookie() {
        let value = {
            let mut v = Vec::new();
            put_with(&mut v, tag::SEQUENCE, |s| {
                put_integer(s, tag::INTEGER, 0);
                put(s, tag::OCTET_STRING, b"cookie");
            });
            v
        };
        let mut controls = Vec::new();
        put_with(&mut controls, tag::SEQUENCE, |c| {
            put(c, tag::OCTET_STRING, b"1.2.3");
        });
        put_with(&mut controls, tag::SEQUENCE, |c| {
            put(c, tag::OCTET_STRING, PAGED_RESULTS_OID);
            put(c, tag::OCTET_STRING, &value);
        });
        let frame = envelope(
            3,
            |m| {
                put_with(m, tag::SEARCH_DONE, |r| {
                    put_integer(r, tag::ENUMERATED, 10);
                    put(r, tag::OCTET_STRING, b"");
                    put(r, tag::OCTET_STRING, b"see elsewhere");
                    put_with(r, tag::REFERRAL, |u| {
                        put(u, tag::OCTET_STRING, b"ldap://b/")
                    });
                })
            },
            Some(&controls),
        );
        let m = message(&frame).unwrap();
        let r = ldap_result(m.body).unwrap();
        assert_eq!(r.rc, rc::REFERRAL);
        assert_eq!(r.text, "see elsewhere");
        assert_eq!(r.refs, vec!["ldap://b/"]);
        assert_eq!(
            paged_cookie(m.controls.unwrap()).unwrap(),
            Some(&b"cookie"[..])
        );
    }

    #[test]
    fn the_search_request_matches_what_ldap3_encodes() {
        let controls = paged_control(1000, b"");
        let filter = encode_filter("(&(objectClass=person)(mail=*))").unwrap();
        assert_eq!(filter[0], 0xa0, "an AND filter");
        let mut b = Ber(&controls);
        let mut c = Ber(b.expect(tag::SEQUENCE, "x").unwrap());
        assert_eq!(c.expect(tag::OCTET_STRING, "x").unwrap(), PAGED_RESULTS_OID);
        assert!(encode_filter("(unbalanced").is_none());
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for bad in [
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff][..],
            &[0x31, 0x00],
            &[0x30, 0x03, 0x02, 0x05, 0x01],
            &[0x30, 0x02, 0x02, 0x00],
        ] {
            let r = frame_len(bad).and_then(|n| match n {
                Some(n) => message(&bad[..n]).map(|_| ()),
                None => Ok(()),
            });
            assert!(
                r.is_err() || frame_len(bad).ok().flatten().is_none(),
                "{bad:?}"
            );
        }
        assert!(decode_entry(&[0x04, 0x01]).is_err());
    }
}

/// Properties of the decoders on untrusted input: whatever the server
/// sends, they answer (a value, an error, or "more bytes needed") without
/// panicking, and never size an allocation by a declared length.
#[cfg(test)]
mod fuzz {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    use lber::common::TagClass;
    use lber::structures::{Boolean, Enumerated, Integer, OctetString, Sequence, Set, Tag};
    use proptest::prelude::*;

    use super::*;

    /// The system allocator, noting the largest single allocation each
    /// thread makes (so tests running in parallel do not disturb it).
    struct Watch;

    thread_local! {
        static LARGEST: Cell<usize> = const { Cell::new(0) };
    }

    fn note(size: usize) {
        let _ = LARGEST.try_with(|c| c.set(c.get().max(size)));
    }

    unsafe impl GlobalAlloc for Watch {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            note(layout.size());
            unsafe { System.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            note(layout.size());
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            note(new_size);
            unsafe { System.realloc(ptr, layout, new_size) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static WATCH: Watch = Watch;

    /// The largest single allocation `f` makes on this thread.
    fn largest_allocation(f: impl FnOnce()) -> usize {
        LARGEST.with(|c| c.set(0));
        f();
        LARGEST.with(Cell::get)
    }

    /// What decoding `input` may allocate at most: a small multiple of the
    /// bytes present (an empty value of 2 bytes becomes a `String` of 24,
    /// in a `Vec` that may have doubled), whatever the lengths declare.
    fn allocation_bound(input: &[u8]) -> usize {
        1024 + 32 * input.len()
    }

    /// Runs the input through the client's receive path: frames, messages,
    /// then the decoder of each message's operation and its controls.
    fn receive(mut buf: &[u8]) -> Result<(), WireError> {
        while let Some(n) = frame_len(buf)? {
            assert!(n >= 2 && n <= buf.len(), "frame of {n} in {}", buf.len());
            let m = message(&buf[..n])?;
            match m.op {
                tag::SEARCH_ENTRY => {
                    decode_entry(m.body)?;
                }
                tag::SEARCH_REFERENCE => {
                    let mut uris = Ber(m.body);
                    while !uris.is_empty() {
                        utf8_lossy(uris.expect(tag::OCTET_STRING, "bad search reference")?);
                    }
                }
                _ => {
                    ldap_result(m.body)?;
                }
            }
            if let Some(c) = m.controls {
                paged_cookie(c)?;
            }
            buf = &buf[n..];
        }
        Ok(())
    }

    /// Every decoder on `input`, as a frame and as the body of each part.
    fn decode_everything(input: &[u8]) {
        let _ = receive(input);
        let _ = read_length(input);
        let _ = integer(input);
        let _ = message(input);
        let _ = ldap_result(input);
        let _ = paged_cookie(input);
        let _ = decode_entry(input);
        let mut walk = Ber(input);
        while !walk.is_empty() && walk.next().is_ok() {}
    }

    fn check_decoders(input: &[u8]) -> Result<(), TestCaseError> {
        let largest = largest_allocation(|| decode_everything(input));
        prop_assert!(
            largest <= allocation_bound(input),
            "allocated {largest} bytes decoding {} bytes",
            input.len()
        );
        // A frame is never longer than the bytes present, and a prefix of
        // a frame is "more bytes needed" or an error, never a frame.
        if let Ok(Some(n)) = frame_len(input) {
            prop_assert!(n <= input.len());
            for cut in 0..n {
                prop_assert!(!matches!(frame_len(&input[..cut]), Ok(Some(_))));
            }
        }
        Ok(())
    }

    // --- valid messages, encoded with lber ---------------------------------

    fn octets(bytes: &[u8]) -> Tag {
        Tag::OctetString(OctetString {
            inner: bytes.to_vec(),
            ..Default::default()
        })
    }

    fn sequence(inner: Vec<Tag>) -> Tag {
        Tag::Sequence(Sequence {
            inner,
            ..Default::default()
        })
    }

    fn ber(tag: Tag) -> Vec<u8> {
        let mut buf = BytesMut::new();
        lber::write::encode_into(&mut buf, tag.into_structure()).unwrap();
        buf.to_vec()
    }

    /// An LDAPMessage with `id`, operation `op` and `controls` if any.
    fn frame(id: i32, op: Tag, controls: Option<Vec<Tag>>) -> Vec<u8> {
        let mut inner = vec![
            Tag::Integer(Integer {
                inner: i64::from(id),
                ..Default::default()
            }),
            op,
        ];
        if let Some(controls) = controls {
            inner.push(Tag::Sequence(Sequence {
                id: 0,
                class: TagClass::Context,
                inner: controls,
            }));
        }
        ber(sequence(inner))
    }

    /// A SearchResultEntry.
    fn entry_op(dn: &str, attrs: &[(String, Vec<Vec<u8>>)]) -> Tag {
        let attrs = attrs
            .iter()
            .map(|(name, values)| {
                sequence(vec![
                    octets(name.as_bytes()),
                    Tag::Set(Set {
                        inner: values.iter().map(|v| octets(v)).collect(),
                        ..Default::default()
                    }),
                ])
            })
            .collect();
        Tag::Sequence(Sequence {
            id: 4,
            class: TagClass::Application,
            inner: vec![octets(dn.as_bytes()), sequence(attrs)],
        })
    }

    /// A SearchResultDone.
    fn done_op(rc: u32, matched: &str, text: &str, refs: &[String]) -> Tag {
        let mut inner = vec![
            Tag::Enumerated(Enumerated {
                inner: i64::from(rc),
                ..Default::default()
            }),
            octets(matched.as_bytes()),
            octets(text.as_bytes()),
        ];
        if !refs.is_empty() {
            inner.push(Tag::Sequence(Sequence {
                id: 3,
                class: TagClass::Context,
                inner: refs.iter().map(|r| octets(r.as_bytes())).collect(),
            }));
        }
        Tag::Sequence(Sequence {
            id: 5,
            class: TagClass::Application,
            inner,
        })
    }

    /// A control: its type, criticality if given, and value.
    fn control(oid: &[u8], critical: Option<bool>, value: &[u8]) -> Tag {
        let mut inner = vec![octets(oid)];
        if let Some(c) = critical {
            inner.push(Tag::Boolean(Boolean {
                inner: c,
                ..Default::default()
            }));
        }
        inner.push(octets(value));
        sequence(inner)
    }

    /// The value of a paged results control.
    fn paged_value(size: i32, cookie: &[u8]) -> Vec<u8> {
        ber(sequence(vec![
            Tag::Integer(Integer {
                inner: i64::from(size),
                ..Default::default()
            }),
            octets(cookie),
        ]))
    }

    /// Attributes with distinct names (any case), each with values that
    /// are text, or arbitrary bytes.
    fn attributes() -> impl Strategy<Value = Vec<(String, Vec<Vec<u8>>)>> {
        let value = prop_oneof![
            ".{0,40}".prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..40),
        ];
        prop::collection::vec(
            (
                "[a-zA-Z][a-zA-Z0-9-]{0,12}(;range=0-[0-9]{1,3})?",
                prop::collection::vec(value, 0..6),
            ),
            0..8,
        )
        .prop_map(|attrs| {
            // One form of an attribute per entry: a server sends `member`
            // or `member;range=0-999`, never both (`Entry::values` finds
            // the ranged form when the plain one is absent).
            let mut seen = std::collections::HashSet::new();
            attrs
                .into_iter()
                .filter(|(name, _)| {
                    let base = name.split(';').next().unwrap_or(name);
                    seen.insert(base.to_ascii_lowercase())
                })
                .collect()
        })
    }

    /// A SearchResultDone with a paged results control among others.
    fn done_frame() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
        (
            0..=i32::MAX,
            any::<u32>(),
            ".{0,30}",
            ".{0,60}",
            prop::collection::vec("ldap://[a-z.]{1,20}/.{0,20}", 0..3),
            prop::collection::vec(
                (
                    "[0-9]{1,3}(\\.[0-9]{1,5}){1,6}",
                    any::<Option<bool>>(),
                    prop::collection::vec(any::<u8>(), 0..20),
                ),
                0..3,
            ),
            any::<Option<bool>>(),
            prop::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(|(id, rc, matched, text, refs, others, critical, cookie)| {
                let mut controls: Vec<Tag> = others
                    .iter()
                    .map(|(oid, c, v)| control(oid.as_bytes(), *c, v))
                    .collect();
                controls.push(control(
                    PAGED_RESULTS_OID,
                    critical,
                    &paged_value(0, &cookie),
                ));
                let f = frame(id, done_op(rc, &matched, &text, &refs), Some(controls));
                (f, cookie)
            })
    }

    /// A SearchResultEntry frame.
    fn entry_frame() -> impl Strategy<Value = Vec<u8>> {
        (0..=i32::MAX, ".{0,80}", attributes())
            .prop_map(|(id, dn, attrs)| frame(id, entry_op(&dn, &attrs), None))
    }

    // --- mutations ------------------------------------------------------------

    /// Where the length octets of every element of `ber` are: `(offset,
    /// count)`, descending into constructed elements and into OCTET
    /// STRINGs that hold BER (a control's value).
    fn length_positions(ber: &[u8], base: usize, out: &mut Vec<(usize, usize)>) {
        let mut at = 0;
        while at < ber.len() {
            let t = ber[at];
            let Ok(Some((len, used))) = read_length(&ber[at + 1..]) else {
                return;
            };
            let start = at + 1 + used;
            let Some(end) = start.checked_add(len) else {
                return;
            };
            let Some(content) = ber.get(start..end) else {
                return;
            };
            out.push((base + at + 1, used));
            if t & 0x20 != 0 || t == tag::OCTET_STRING {
                length_positions(content, base + start, out);
            }
            at = end;
        }
    }

    /// Length octets an attacker might write instead of the real ones.
    const BAD_LENGTHS: &[&[u8]] = &[
        &[0x84, 0xff, 0xff, 0xff, 0xff],
        &[0x84, 0x7f, 0xff, 0xff, 0xff],
        &[0x84, 0x10, 0x00, 0x00, 0x00],
        &[0x84, 0x0f, 0xff, 0xff, 0xff],
        &[0x83, 0xff, 0xff, 0xff],
        &[0x82, 0xff, 0xff],
        &[0x81, 0xff],
        &[0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        &[0x88, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01],
        &[0x80],
        &[0xff],
        &[0x7f],
        &[0x00],
        &[0x84],
        &[0x84, 0xff],
    ];

    #[derive(Debug, Clone)]
    enum Mutation {
        /// XORs a byte.
        Flip(prop::sample::Index, u8),
        /// Overwrites a byte.
        Set(prop::sample::Index, u8),
        /// Cuts the message short.
        Truncate(prop::sample::Index),
        /// Inserts a byte.
        Insert(prop::sample::Index, u8),
        /// Removes a byte.
        Remove(prop::sample::Index),
        /// Replaces an element's length octets with bad ones.
        Length(prop::sample::Index, prop::sample::Index),
        /// Changes an element's length by a little.
        Nudge(prop::sample::Index, i8),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        use prop::sample::Index;
        prop_oneof![
            (any::<Index>(), 1..=255u8).prop_map(|(i, x)| Mutation::Flip(i, x)),
            (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
            any::<Index>().prop_map(Mutation::Truncate),
            (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
            any::<Index>().prop_map(Mutation::Remove),
            (any::<Index>(), any::<Index>()).prop_map(|(i, l)| Mutation::Length(i, l)),
            (any::<Index>(), -3..=3i8).prop_map(|(i, d)| Mutation::Nudge(i, d)),
        ]
    }

    fn mutate(bytes: &mut Vec<u8>, m: &Mutation) {
        if bytes.is_empty() {
            return;
        }
        let mut lengths = Vec::new();
        length_positions(bytes, 0, &mut lengths);
        match m {
            Mutation::Flip(i, x) => {
                let i = i.index(bytes.len());
                bytes[i] ^= x;
            }
            Mutation::Set(i, b) => {
                let i = i.index(bytes.len());
                bytes[i] = *b;
            }
            Mutation::Truncate(i) => bytes.truncate(i.index(bytes.len())),
            Mutation::Insert(i, b) => bytes.insert(i.index(bytes.len() + 1), *b),
            Mutation::Remove(i) => {
                bytes.remove(i.index(bytes.len()));
            }
            Mutation::Length(i, l) => {
                if lengths.is_empty() {
                    return;
                }
                let (at, used) = lengths[i.index(lengths.len())];
                let bad = BAD_LENGTHS[l.index(BAD_LENGTHS.len())];
                bytes.splice(at..at + used, bad.iter().copied());
            }
            Mutation::Nudge(i, d) => {
                if lengths.is_empty() {
                    return;
                }
                let (at, used) = lengths[i.index(lengths.len())];
                let Ok(Some((len, _))) = read_length(&bytes[at..]) else {
                    return;
                };
                let Some(len) = len.checked_add_signed(isize::from(*d)) else {
                    return;
                };
                let mut octets = Vec::new();
                put_length(&mut octets, len);
                bytes.splice(at..at + used, octets);
            }
        }
    }

    fn mutated(
        valid: impl Strategy<Value = Vec<u8>>,
    ) -> impl Strategy<Value = (Vec<u8>, Vec<Mutation>)> {
        (valid, prop::collection::vec(mutation(), 1..5)).prop_map(|(mut bytes, ms)| {
            for m in &ms {
                mutate(&mut bytes, m);
            }
            (bytes, ms)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Any bytes at all: no panic, no allocation out of proportion.
        #[test]
        fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..4096)) {
            check_decoders(&input)?;
        }

    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

        /// Bytes that start like a message (a SEQUENCE, maybe with a long
        /// length), which gets further into the decoders than noise.
        #[test]
        fn message_like_bytes_never_panic(
            head in prop::sample::select(vec![
                vec![0x30u8], vec![0x30, 0x84], vec![0x30, 0x82], vec![0x30, 0x81],
                vec![0x64], vec![0x65], vec![0x04], vec![0xa0],
            ]),
            tail in prop::collection::vec(
                prop_oneof![
                    3 => any::<u8>(),
                    1 => prop::sample::select(vec![
                        0x02u8, 0x04, 0x0a, 0x30, 0x31, 0x64, 0x65, 0x73, 0xa0, 0xa3, 0x84, 0xff,
                    ]),
                ],
                0..512,
            ),
        ) {
            let mut input = head;
            input.extend(tail);
            check_decoders(&input)?;
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

        /// A mangled SearchResultEntry: no panic, no allocation sized by
        /// a length the bytes do not back.
        #[test]
        fn a_mangled_entry_never_panics((input, _how) in mutated(entry_frame())) {
            check_decoders(&input)?;
        }

        /// A mangled SearchResultDone with its paged results control.
        #[test]
        fn a_mangled_search_done_never_panics(
            (input, _how) in mutated(done_frame().prop_map(|(f, _)| f)),
        ) {
            check_decoders(&input)?;
        }

        /// A mangled controls list alone.
        #[test]
        fn a_mangled_paged_control_never_panics(
            (input, _how) in mutated(
                (any::<Option<bool>>(), prop::collection::vec(any::<u8>(), 0..200))
                    .prop_map(|(c, cookie)| ber(control(PAGED_RESULTS_OID, c, &paged_value(500, &cookie)))),
            ),
        ) {
            check_decoders(&input)?;
            let largest = largest_allocation(|| { let _ = paged_cookie(&input); });
            prop_assert_eq!(largest, 0, "the cookie is borrowed, not copied");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// An entry encoded by lber decodes to its DN and values: text
        /// when every value of an attribute is UTF-8, bytes otherwise.
        #[test]
        fn an_entry_round_trips(id in 0..=i32::MAX, dn in ".{0,80}", attrs in attributes()) {
            let bytes = frame(id, entry_op(&dn, &attrs), None);
            prop_assert_eq!(frame_len(&bytes).unwrap(), Some(bytes.len()));
            let m = message(&bytes).unwrap();
            prop_assert_eq!((m.id, m.op), (i64::from(id), tag::SEARCH_ENTRY));
            prop_assert!(m.controls.is_none());
            let entry = decode_entry(m.body).unwrap();
            prop_assert_eq!(&entry.dn, &dn);
            let mut expected = Entry::new(dn.clone());
            for (name, values) in &attrs {
                let text: Option<Vec<String>> = values
                    .iter()
                    .map(|v| String::from_utf8(v.clone()).ok())
                    .collect();
                match text {
                    Some(text) => {
                        prop_assert_eq!(entry.values(name), &text[..]);
                        expected.push_text(name, text);
                    }
                    None => {
                        prop_assert!(entry.values(name).is_empty());
                        prop_assert_eq!(entry.first_bytes(name), values.first().map(Vec::as_slice));
                        expected.push_bin(name, values.clone());
                    }
                }
            }
            prop_assert_eq!(format!("{entry:?}"), format!("{expected:?}"));
        }

        /// A SearchResultDone encoded by lber gives back its result and
        /// the paging cookie, past other controls.
        #[test]
        fn a_search_done_round_trips((bytes, cookie) in done_frame()) {
            prop_assert_eq!(frame_len(&bytes).unwrap(), Some(bytes.len()));
            let m = message(&bytes).unwrap();
            prop_assert_eq!(m.op, tag::SEARCH_DONE);
            ldap_result(m.body).unwrap();
            prop_assert_eq!(paged_cookie(m.controls.unwrap()).unwrap(), Some(&cookie[..]));
        }

        /// The result fields themselves.
        #[test]
        fn a_result_round_trips(
            rc in any::<u32>(),
            matched in ".{0,40}",
            text in ".{0,200}",
            refs in prop::collection::vec("ldap://[a-z.]{1,20}/.{0,20}", 0..4),
        ) {
            let bytes = frame(1, done_op(rc, &matched, &text, &refs), None);
            let r = ldap_result(message(&bytes).unwrap().body).unwrap();
            prop_assert_eq!((r.rc, r.matched, r.text, r.refs), (rc, matched, text, refs));
        }

        /// Messages arriving back to back, cut anywhere: the framing waits
        /// for more bytes rather than failing, then finds each in turn.
        #[test]
        fn frames_are_found_in_a_stream_cut_anywhere(
            frames in prop::collection::vec(
                prop_oneof![entry_frame(), done_frame().prop_map(|(f, _)| f)],
                1..4,
            ),
        ) {
            let stream: Vec<u8> = frames.concat();
            let mut at = 0;
            for f in &frames {
                for cut in at..at + f.len() {
                    prop_assert_eq!(frame_len(&stream[at..cut]).unwrap(), None);
                }
                prop_assert_eq!(frame_len(&stream[at..]).unwrap(), Some(f.len()));
                prop_assert!(message(&stream[at..at + f.len()]).is_ok());
                at += f.len();
            }
            receive(&stream).unwrap();
        }
    }

    // --- the whole search, over a scripted server --------------------------

    /// A SearchResultReference.
    fn reference_frame(id: i32, uris: &[String]) -> Vec<u8> {
        let op = Tag::Sequence(Sequence {
            id: 19,
            class: TagClass::Application,
            inner: uris.iter().map(|u| octets(u.as_bytes())).collect(),
        });
        frame(id, op, None)
    }

    /// What the server of a one-page search sends: entries, references,
    /// then the SearchResultDone (without a cookie: the last page).
    fn search_stream() -> impl Strategy<Value = (Vec<u8>, Vec<String>, Vec<Vec<String>>)> {
        (
            prop::collection::vec((".{0,40}", attributes()), 0..4),
            prop::collection::vec(prop::collection::vec("ldap://[a-z]{1,10}/", 1..3), 0..2),
        )
            .prop_map(|(entries, refs)| {
                let mut stream = Vec::new();
                for (dn, attrs) in &entries {
                    stream.extend(frame(1, entry_op(dn, attrs), None));
                }
                for uris in &refs {
                    stream.extend(reference_frame(1, uris));
                }
                let controls = vec![control(PAGED_RESULTS_OID, None, &paged_value(0, b""))];
                stream.extend(frame(1, done_op(0, "", "", &[]), Some(controls)));
                let dns = entries.into_iter().map(|(dn, _)| dn).collect();
                (stream, dns, refs)
            })
    }

    /// Runs a search over a connection whose server sends `input` (then
    /// closes); returns the outcome, the entries and the references, and
    /// the largest allocation made meanwhile.
    #[allow(clippy::type_complexity)]
    fn search_over(
        input: Vec<u8>,
    ) -> (
        Result<LdapResult, SearchStop>,
        Vec<Entry>,
        Vec<Vec<String>>,
        usize,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let mut wire = WireConn {
            system: "fuzz".into(),
            io: Box::new(tokio::io::join(
                std::io::Cursor::new(input),
                tokio::io::sink(),
            )),
            buf: BytesMut::with_capacity(READ_CHUNK),
            next_id: 1,
            timeout: Duration::from_secs(10),
        };
        let attrs = vec!["mail".to_string()];
        let mut entries = Vec::new();
        let mut references = Vec::new();
        let mut outcome = None;
        let largest = largest_allocation(|| {
            outcome = Some(rt.block_on(wire.search(
                PagedSearch {
                    base: "dc=x",
                    filter: "(objectClass=*)",
                    attrs: &attrs,
                    page_size: 100,
                    scope: ldap3::Scope::Subtree,
                },
                |e| {
                    entries.push(e);
                    Ok(())
                },
                &mut references,
            )));
        });
        (outcome.unwrap(), entries, references, largest)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// A whole search over a server that sends noise or a mangled
        /// stream: it ends (with a result or an error), without a panic,
        /// and the receive buffer grows with the bytes received, not with
        /// the lengths they declare.
        #[test]
        fn a_search_survives_a_mangled_server(
            (input, _how) in prop_oneof![
                1 => prop::collection::vec(any::<u8>(), 0..1024).prop_map(|b| (b, Vec::new())),
                3 => mutated(search_stream().prop_map(|(s, _, _)| s)),
            ],
        ) {
            // The buffer keeps a READ_CHUNK free to read into, and may
            // double once to make room for it.
            let bound = allocation_bound(&input) + 2 * READ_CHUNK;
            let (_, _, _, largest) = search_over(input);
            prop_assert!(largest <= bound, "allocated {largest} bytes, bound {bound}");
        }

        /// A well-formed search gives back every entry and reference.
        #[test]
        fn a_search_round_trips((input, dns, refs) in search_stream()) {
            let (outcome, entries, references, _) = search_over(input);
            let result = outcome.map_err(|e| format!("{e:?}")).unwrap();
            prop_assert_eq!(result.rc, rc::SUCCESS);
            let got: Vec<String> = entries.into_iter().map(|e| e.dn).collect();
            prop_assert_eq!(got, dns);
            prop_assert_eq!(references, refs);
        }
    }
}
