//! The configuration file (`coexist.toml`).
//!
//! One TOML file describes the organisation: its shared domains, each system
//! (id, kind, routing domain, stub style, what it does with unknown
//! recipients, connection settings), how a recipient's home is decided,
//! attribute precedence, the safety limits and the store. Secrets appear only
//! by reference (`{ env = "NAME" }` or `{ file = "PATH" }`).
//!
//! Every error names the file, the line and the key, and says what was
//! expected. [`Config::load`] touches no system.
//!
//! `[dns]` (optional) says how `coexist doctor` resolves when it checks
//! the domains' DNS (MX, SPF, DKIM, DMARC), and each system's
//! `[systems.dns]` overrides what its kind publishes by default.
//!
//! Every relative path in the file is relative to the folder of the file
//! ([`Config::folder`]), wherever coexist runs from: seed and state files,
//! key and CA files, secrets `{ file = "PATH" }`, the default store and a
//! relative `sqlite:` path in `[store] url`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;
use toml::Spanned;

use coexist_connector::{normalize_address, Attributes, Kind, SecretRef};

use crate::reconcile::{
    policy::relay_cycle, DisabledMailboxes, HomeAttribute, Policy, StubStyle, SystemPolicy,
    UnknownRecipient,
};

mod daemon;

pub use daemon::{Daemon, DEFAULT_LISTEN};

/// A configuration error, located.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct ConfigError {
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The key concerned (`systems[1].routing_domain`).
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: ", self.file)?,
            None => write!(f, "{}: ", self.file)?,
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// A kind of system, as registered in [`crate::kinds`] (`kind = "…"`).
#[derive(Clone, Copy)]
pub struct SystemKind(pub &'static dyn Kind);

impl SystemKind {
    /// Its name in the configuration.
    pub fn name(self) -> &'static str {
        self.0.name()
    }
}

impl fmt::Debug for SystemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

impl PartialEq for SystemKind {
    fn eq(&self, other: &Self) -> bool {
        self.0.name() == other.0.name()
    }
}

impl Eq for SystemKind {}

impl std::ops::Deref for SystemKind {
    type Target = dyn Kind;

    fn deref(&self) -> &Self::Target {
        self.0
    }
}

/// The safety gates of an apply.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Safety {
    /// At most this many deletes in one system per run. Entra Connect's
    /// export-deletion threshold defaults to 500; so does this.
    pub max_deletes: u64,
    /// At most this share (percent) of a system's stubs deleted per run,
    /// in the spirit of GCDS's delete limits...
    pub max_delete_percent: f64,
    /// ...once more than this many deletes are planned (deleting 3 of 5
    /// stubs in a tiny system is not a disaster). The same count applies
    /// to `max_shrink_percent`: more than this many recipients must be
    /// missing before a read counts as shrunk.
    pub percent_applies_above: u64,
    /// A read of a system is not believed when more than this share
    /// (percent) of the recipients known for it are missing from it: those
    /// it held at its last good read, and those other systems hold coexist
    /// stubs for (so a fresh store, with no history, judges too). Default
    /// 50: losing more than half of a system's recipients in one go is far
    /// likelier a broken read (lost read rights, a changed filter or base,
    /// a renamed OU: the cases Entra Connect's export-deletion threshold
    /// is there for) than real departures.
    /// A shrunk source stays staged as it was, no stub is deleted anywhere,
    /// and the run exits 3 until `sync --accept-shrink SYSTEM` (not
    /// `--allow-deletes`) says the shrink is real.
    pub max_shrink_percent: f64,
}

impl Default for Safety {
    fn default() -> Self {
        Safety {
            max_deletes: 500,
            max_delete_percent: 20.0,
            percent_applies_above: 10,
            max_shrink_percent: 50.0,
        }
    }
}

/// One configured system.
#[derive(Debug, Clone, PartialEq)]
pub struct SystemConfig {
    pub id: String,
    pub kind: SystemKind,
    /// The kind-specific settings, handed to the connector.
    pub connection: toml::Table,
    /// Where `connection` starts in the file.
    pub connection_line: Option<usize>,
    /// The line of each key of `connection`, so an error about one key
    /// (a misspelt setting) points at it.
    pub connection_keys: BTreeMap<String, usize>,
    /// `[systems.dns]`: what the system publishes in DNS, where it differs
    /// from its kind's defaults.
    pub dns: SystemDns,
    /// `[systems.address_book]`: a copy of the GAL kept as entries under
    /// an OU of this (LDAP or AD) system.
    pub address_book: Option<AddressBookConfig>,
}

/// A system's `[systems.address_book]` table: the GAL kept as entries
/// under `base` ([`coexist_model::address_book`]), staged and planned as
/// the system `id` (`<system>.address_book`), which routes no mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressBookConfig {
    /// `<system>.address_book`.
    pub id: String,
    /// The OU the entries are kept in (`ou=gal,dc=acmecorp,dc=com`); it
    /// must exist, outside the stub base.
    pub base: String,
    /// The line of `base` in the file.
    pub line: Option<usize>,
}

/// A system's `[systems.dns]` table: each key given replaces its kind's
/// default ([`coexist_connector::kind::Kind::dns_defaults`]) for
/// `coexist doctor`'s DNS checks; an empty list says "none".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemDns {
    /// The hosts it receives mail on (its routing domain's MX, and the
    /// shared domains' when it is the MX system); `*.` matches any name
    /// under the rest.
    pub mx_hosts: Option<Vec<String>>,
    /// The SPF includes its provider publishes (`_spf.google.com`).
    pub spf_includes: Option<Vec<String>>,
    /// The relays it sends from: addresses, networks or host names.
    pub spf_relays: Option<Vec<coexist_dns::Relay>>,
    /// The DKIM selectors it signs with (`google`).
    pub dkim_selectors: Option<Vec<String>>,
    /// Where `autodiscover.<shared domain>` should point for its clients.
    pub autodiscover: Option<String>,
}

/// The store's URL: a string, or a secret reference (a Postgres URL holds a password).
/// A relative SQLite path in it is relative to the configuration file's
/// folder ([`store_url_beside`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
enum StoreUrl {
    Plain(String),
    Secret(SecretRef),
}

/// A loaded and validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    pub policy: Policy,
    pub systems: Vec<SystemConfig>,
    /// `[store] url`, a relative SQLite path in it (or the file of its
    /// secret) already resolved against [`Config::folder`].
    store_url: StoreUrl,
    /// No `[store]` table: the SQLite file `coexist.db` beside this file.
    default_store: bool,
    pub safety: Safety,
    /// `[dns]`: how `coexist doctor` resolves the domains' records. `None`
    /// (no `[dns]` table): doctor does not check DNS.
    pub dns: Option<coexist_dns::Settings>,
    /// `[gal_server]`: how `coexist serve-gal` serves the GAL over LDAP.
    /// `None` (no table): the defaults of [`GalServer::defaults`].
    pub gal_server: Option<GalServer>,
    /// `[organisation] id`: names the organisation among those one
    /// `coexist daemon --config-dir` serves; on PostgreSQL its store is
    /// the schema `coexist_<id>` ([`Config::store_url`]).
    pub organisation_id: Option<String>,
    /// `[daemon]`: how `coexist daemon` runs this organisation.
    pub daemon: Daemon,
}

/// `[gal_server]`: the read-only LDAP server over the GAL (`coexist
/// serve-gal`).
#[derive(Debug, Clone, PartialEq)]
pub struct GalServer {
    /// Where to listen (default `127.0.0.1:3890`).
    pub listen: std::net::SocketAddr,
    /// The DN the GAL's entries sit under (default `ou=gal` under the first
    /// shared domain, as `export-gal` writes it).
    pub base: String,
    /// The accounts clients bind as, each password by reference.
    pub accounts: Vec<GalAccount>,
    /// Whether searches need no bind (default false).
    pub anonymous: bool,
    /// The most entries one search (or one page) returns (default 1000).
    pub size_limit: usize,
    /// How often the store is read for a new GAL (default 30 seconds).
    pub refresh: std::time::Duration,
    /// The most connections one client address holds (default 16).
    pub max_connections_per_client: usize,
    /// The requests a second one client address may send; more wait their
    /// turn (default 200).
    pub requests_per_second: u32,
    /// A connection that has not bound this long after opening is closed
    /// (default 30 seconds; not with `anonymous`).
    pub unbound_timeout: std::time::Duration,
    /// A certificate for StartTLS and LDAPS (PEM files, relative to the
    /// configuration's folder). With one, binds are accepted over TLS only.
    pub tls: Option<GalTls>,
    /// Where to listen for LDAPS (TLS from the first byte); needs `tls`.
    pub ldaps_listen: Option<std::net::SocketAddr>,
    /// `pass_through`: the LDAP or AD system that checks binds whose name
    /// is none of `accounts` (people bind with their own name and
    /// password); `None`: such binds are refused.
    pub pass_through: Option<String>,
}

/// A bind account of `[[gal_server.accounts]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct GalAccount {
    pub dn: String,
    pub password: SecretRef,
}

/// `[gal_server.tls]`: the certificate chain and key, PEM.
#[derive(Debug, Clone, PartialEq)]
pub struct GalTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl GalServer {
    /// The settings without a `[gal_server]` table: loopback port 3890,
    /// `ou=gal` under the first shared domain, no account, no anonymous
    /// access.
    pub fn defaults(shared_domains: &[String]) -> Self {
        GalServer {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 3890)),
            base: crate::export::default_base(shared_domains),
            accounts: Vec::new(),
            anonymous: false,
            size_limit: 1000,
            refresh: std::time::Duration::from_secs(30),
            max_connections_per_client: 16,
            requests_per_second: 200,
            unbound_timeout: std::time::Duration::from_secs(30),
            tls: None,
            ldaps_listen: None,
            pass_through: None,
        }
    }
}

/// `[gal_server]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGalServer {
    listen: Option<Spanned<String>>,
    ldaps_listen: Option<Spanned<String>>,
    base: Option<Spanned<String>>,
    #[serde(default)]
    accounts: Vec<RawGalAccount>,
    #[serde(default)]
    anonymous: bool,
    size_limit: Option<Spanned<i64>>,
    refresh_seconds: Option<Spanned<i64>>,
    max_connections_per_client: Option<Spanned<i64>>,
    requests_per_second: Option<Spanned<i64>>,
    unbound_timeout_seconds: Option<Spanned<i64>>,
    tls: Option<RawGalTls>,
    pass_through: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGalAccount {
    dn: Spanned<String>,
    password: SecretRef,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGalTls {
    cert_file: String,
    key_file: String,
}

/// `[gal_server]` checked: an IP address and port to listen on, DNs
/// (`attr=value,…`), positive limits; relative paths beside the file.
fn gal_server(
    at: &Locator<'_>,
    folder: &Path,
    shared_domains: &[String],
    systems: &[SystemConfig],
    raw: RawGalServer,
) -> Result<GalServer, ConfigError> {
    let mut out = GalServer::defaults(shared_domains);
    if let Some(written) = &raw.pass_through {
        let name = written.get_ref().trim();
        let kind = systems.iter().find(|s| s.id == name).map(|s| s.kind.name());
        match kind {
            Some("ldap" | "active_directory") => out.pass_through = Some(name.to_string()),
            Some(other) => {
                return Err(at.at(
                    written,
                    "gal_server.pass_through",
                    format!(
                        "`{name}` is a `{other}` system; binds can be passed through to an `ldap` or `active_directory` system only"
                    ),
                ))
            }
            None => {
                return Err(at.at(
                    written,
                    "gal_server.pass_through",
                    format!("no system has the id `{name}`"),
                ))
            }
        }
    }
    let is_dn = |text: &str| {
        !text.trim().is_empty()
            && text.split(',').all(|rdn| {
                rdn.split_once('=')
                    .is_some_and(|(k, _)| !k.trim().is_empty())
            })
    };
    if let Some(written) = &raw.listen {
        out.listen = written.get_ref().trim().parse().map_err(|_| {
            at.at(
                written,
                "gal_server.listen",
                format!(
                    "`{}` is not an address to listen on: expected an IP address and port, like \"127.0.0.1:3890\" or \"[::]:636\"",
                    written.get_ref()
                ),
            )
        })?;
    }
    if let Some(written) = &raw.ldaps_listen {
        if raw.tls.is_none() {
            return Err(at.at(
                written,
                "gal_server.ldaps_listen",
                "LDAPS needs a certificate: add tls = { cert_file = \"…\", key_file = \"…\" }",
            ));
        }
        out.ldaps_listen = Some(written.get_ref().trim().parse().map_err(|_| {
            at.at(
                written,
                "gal_server.ldaps_listen",
                format!(
                    "`{}` is not an address to listen on: expected an IP address and port, like \"0.0.0.0:636\"",
                    written.get_ref()
                ),
            )
        })?);
    }
    if let Some(written) = &raw.base {
        if !is_dn(written.get_ref()) {
            return Err(at.at(
                written,
                "gal_server.base",
                "expected a DN, like \"ou=gal,dc=acmecorp,dc=com\"",
            ));
        }
        out.base = written.get_ref().trim().to_string();
    }
    for (n, account) in raw.accounts.into_iter().enumerate() {
        if !is_dn(account.dn.get_ref()) {
            return Err(at.at(
                &account.dn,
                format!("gal_server.accounts[{n}].dn"),
                "expected a bind DN, like \"cn=addressbook,ou=gal,dc=acmecorp,dc=com\"",
            ));
        }
        out.accounts.push(GalAccount {
            dn: account.dn.into_inner().trim().to_string(),
            password: secret_beside(folder, account.password),
        });
    }
    out.anonymous = raw.anonymous;
    let positive =
        |written: &Option<Spanned<i64>>, key: &str, max: i64, default: usize| match written {
            Some(value) if (1..=max).contains(value.get_ref()) => {
                Ok(usize::try_from(*value.get_ref()).unwrap_or(default))
            }
            Some(value) => Err(at.at(
                value,
                format!("gal_server.{key}"),
                format!("expected a whole number from 1 to {max}"),
            )),
            None => Ok(default),
        };
    out.size_limit = positive(&raw.size_limit, "size_limit", 10_000_000, out.size_limit)?;
    out.refresh = std::time::Duration::from_secs(positive(
        &raw.refresh_seconds,
        "refresh_seconds",
        86_400,
        30,
    )? as u64);
    out.max_connections_per_client = positive(
        &raw.max_connections_per_client,
        "max_connections_per_client",
        100_000,
        out.max_connections_per_client,
    )?;
    out.requests_per_second = u32::try_from(positive(
        &raw.requests_per_second,
        "requests_per_second",
        1_000_000,
        200,
    )?)
    .unwrap_or(200);
    out.unbound_timeout = std::time::Duration::from_secs(positive(
        &raw.unbound_timeout_seconds,
        "unbound_timeout_seconds",
        86_400,
        30,
    )? as u64);
    out.tls = raw.tls.map(|tls| GalTls {
        cert_file: folder.join(tls.cert_file),
        key_file: folder.join(tls.key_file),
    });
    Ok(out)
}

// ---- the file as written ----------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    organisation: RawOrganisation,
    #[serde(default)]
    store: Option<RawStore>,
    #[serde(default)]
    topology: Option<RawTopology>,
    #[serde(default)]
    home: Option<RawHome>,
    #[serde(default)]
    precedence: BTreeMap<Spanned<String>, Vec<Spanned<String>>>,
    #[serde(default)]
    safety: Safety,
    #[serde(default)]
    dns: Option<RawDns>,
    #[serde(default)]
    gal_server: Option<RawGalServer>,
    #[serde(default)]
    daemon: Option<daemon::RawDaemon>,
    systems: Vec<RawSystem>,
}

/// `[dns]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDns {
    /// `"127.0.0.1"` or `"127.0.0.1:5353"`; absent: the system's resolvers.
    nameserver: Option<Spanned<String>>,
    /// Seconds to wait for one answer (integer or fraction).
    timeout: Option<Spanned<toml::Value>>,
}

/// `[systems.dns]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSystemDns {
    mx_hosts: Option<Vec<Spanned<String>>>,
    spf_includes: Option<Vec<Spanned<String>>>,
    spf_relays: Option<Vec<Spanned<String>>>,
    dkim_selectors: Option<Vec<Spanned<String>>>,
    autodiscover: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOrganisation {
    id: Option<Spanned<String>>,
    shared_domains: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    include_disabled: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    /// `[store] url`: `sqlite:PATH`, `sqlite://PATH` (with an optional
    /// query such as `?mode=rwc`), `sqlite::memory:`, or
    /// `postgres://…`; or a secret reference holding one. A relative
    /// `PATH` is relative to the folder of the configuration file, as
    /// every path in the file is, not to the current directory:
    /// `sqlite:state/coexist.db` beside `/etc/coexist/coexist.toml` is
    /// `/etc/coexist/state/coexist.db`. So is a relative `{ file = "PATH" }`.
    url: StoreUrl,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopology {
    mx: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHome {
    attribute: Option<RawHomeAttribute>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHomeAttribute {
    system: Spanned<String>,
    name: String,
    values: BTreeMap<String, Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum RawStubStyle {
    RoutingAddress,
    SmartHost,
    DomainRouting,
    None,
    MailContact,
    MailboxContacts,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum RawDisabledMailboxes {
    Bounce,
    Deliver,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawUnknown {
    Word(String),
    Relay { relay: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSystem {
    id: Spanned<String>,
    kind: Spanned<String>,
    routing_domain: Option<Spanned<String>>,
    smart_host: Option<Spanned<String>>,
    stub_style: Option<Spanned<RawStubStyle>>,
    unknown_recipient: Option<Spanned<RawUnknown>>,
    disabled_mailboxes: Option<RawDisabledMailboxes>,
    /// Whether the routing domain is a blanket alias of the shared domain
    /// (default: as the kind says).
    routing_domain_is_alias: Option<bool>,
    #[serde(default)]
    connection: Option<Spanned<toml::Table>>,
    #[serde(default)]
    dns: Option<RawSystemDns>,
    #[serde(default)]
    address_book: Option<Spanned<RawAddressBook>>,
}

/// `[systems.address_book]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAddressBook {
    base: Spanned<String>,
}

/// Where the keys of each `[systems.connection]` table are (read apart
/// from [`RawConfig`], whose connection tables keep no positions).
#[derive(Deserialize)]
struct KeyPositions {
    #[serde(default)]
    systems: Vec<SystemKeyPositions>,
}

#[derive(Deserialize)]
struct SystemKeyPositions {
    #[serde(default)]
    connection: BTreeMap<Spanned<String>, toml::Value>,
}

/// Turns byte offsets into line numbers.
struct Locator<'a> {
    file: String,
    text: &'a str,
}

impl Locator<'_> {
    fn line(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .bytes()
            .filter(|&b| b == b'\n')
            .count()
            + 1
    }

    fn at<T>(
        &self,
        spanned: &Spanned<T>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: Some(self.line(spanned.span().start)),
            key: key.into(),
            message: message.into(),
        }
    }

    fn nowhere(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: None,
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The folder of the file at `path` (`.` for a bare file name).
fn folder_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// `url` with a relative SQLite path resolved against `folder` (the
/// configuration file's): `sqlite:state/coexist.db` and
/// `sqlite://state/coexist.db` become `sqlite:/FOLDER/state/coexist.db`,
/// a query (`?mode=rwc`) kept as it was. An absolute path,
/// `sqlite::memory:`, a URL of no path (`sqlite://?mode=memory`) and any
/// other database's URL are returned as they are.
///
/// The path is made absolute (from the current directory, when the folder
/// itself is relative): the store reads it as a URL (`sqlite://PATH`),
/// where a relative path's first folder would be taken for a host and a
/// `..` after it dropped.
fn store_url_beside(folder: &Path, url: &str) -> String {
    let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        return url.to_string();
    };
    let (database, query) = match rest.split_once('?') {
        Some((database, query)) => (database, Some(query)),
        None => (rest, None),
    };
    if database.is_empty() || database == ":memory:" || Path::new(database).is_absolute() {
        return url.to_string();
    }
    let joined = folder.join(database);
    let path = std::path::absolute(&joined).unwrap_or(joined);
    match query {
        Some(query) => format!("sqlite:{}?{query}", path.display()),
        None => format!("sqlite:{}", path.display()),
    }
}

/// `secret` with a relative file resolved against `folder`.
fn secret_beside(folder: &Path, secret: SecretRef) -> SecretRef {
    match secret {
        SecretRef::File { file } if Path::new(&file).is_relative() => SecretRef::File {
            file: folder.join(file).display().to_string(),
        },
        other => other,
    }
}

fn valid_domain(raw: &str) -> Option<String> {
    normalize_address(&format!("x@{raw}"))
        .ok()
        .map(|a| a[2..].to_string())
}

/// `[dns]` checked: the nameserver an address (port 53 unless given),
/// the timeout a number of seconds above 0 and at most 300.
fn dns_settings(at: &Locator<'_>, raw: &RawDns) -> Result<coexist_dns::Settings, ConfigError> {
    let mut settings = coexist_dns::Settings::default();
    if let Some(written) = &raw.nameserver {
        let text = written.get_ref().trim();
        let address = text
            .parse::<std::net::SocketAddr>()
            .ok()
            .or_else(|| {
                text.parse::<std::net::IpAddr>()
                    .ok()
                    .map(|ip| std::net::SocketAddr::new(ip, 53))
            })
            .ok_or_else(|| {
                at.at(
                    written,
                    "dns.nameserver",
                    format!("`{text}` is not a nameserver address: expected an IP address with an optional port, like \"192.0.2.53\" or \"127.0.0.1:5353\""),
                )
            })?;
        settings.nameserver = Some(address);
    }
    if let Some(written) = &raw.timeout {
        let seconds = match written.get_ref() {
            toml::Value::Integer(n) => Some(*n as f64),
            toml::Value::Float(x) => Some(*x),
            _ => None,
        }
        .filter(|s| *s > 0.0 && *s <= 300.0)
        .ok_or_else(|| {
            at.at(
                written,
                "dns.timeout",
                "expected the seconds to wait for one answer, above 0 and at most 300 (like 5 or 0.5)",
            )
        })?;
        settings.timeout = std::time::Duration::from_secs_f64(seconds);
    }
    Ok(settings)
}

/// A system's `[systems.address_book]` checked: only on LDAP and AD
/// systems, its base a DN.
fn address_book(
    at: &Locator<'_>,
    n: usize,
    id: &str,
    kind: &str,
    table: &Spanned<RawAddressBook>,
) -> Result<AddressBookConfig, ConfigError> {
    if kind != "ldap" && kind != "active_directory" {
        return Err(at.at(
            table,
            format!("systems[{n}].address_book"),
            format!("a `{kind}` system keeps no address book: only ldap and active_directory systems can"),
        ));
    }
    let base = &table.get_ref().base;
    let text = base.get_ref().trim();
    let is_dn = text.split(',').all(|rdn| {
        rdn.split_once('=')
            .is_some_and(|(k, v)| !k.trim().is_empty() && !v.trim().is_empty())
    });
    if text.is_empty() || !is_dn {
        return Err(at.at(
            base,
            format!("systems[{n}].address_book.base"),
            format!("`{text}` is not the DN of an OU (like \"ou=gal,dc=acmecorp,dc=com\")"),
        ));
    }
    Ok(AddressBookConfig {
        id: coexist_model::address_book::address_book_id(id),
        base: text.to_string(),
        line: Some(at.line(base.span().start)),
    })
}

/// A system's `[systems.dns]` checked: names are domain names (`*.` allowed
/// in front of an MX host), relays addresses, networks or host names.
fn system_dns(
    at: &Locator<'_>,
    n: usize,
    raw: Option<&RawSystemDns>,
) -> Result<SystemDns, ConfigError> {
    let Some(raw) = raw else {
        return Ok(SystemDns::default());
    };
    let key = |field: &str| format!("systems[{n}].dns.{field}");
    let names = |field: &str,
                 list: &Option<Vec<Spanned<String>>>,
                 wildcard: bool|
     -> Result<Option<Vec<String>>, ConfigError> {
        let Some(list) = list else { return Ok(None) };
        let mut out = Vec::new();
        for written in list {
            let text = written.get_ref().trim();
            let name = if wildcard {
                text.strip_prefix("*.").unwrap_or(text)
            } else {
                text
            };
            if !coexist_dns::net::is_domain(name) {
                return Err(at.at(
                    written,
                    key(field),
                    format!("`{text}` is not a domain name"),
                ));
            }
            out.push(coexist_dns::records::normalise(text));
        }
        Ok(Some(out))
    };
    let spf_relays = match &raw.spf_relays {
        None => None,
        Some(list) => {
            let mut out = Vec::new();
            for written in list {
                let relay = written
                    .get_ref()
                    .parse::<coexist_dns::Relay>()
                    .map_err(|e| at.at(written, key("spf_relays"), e.to_string()))?;
                out.push(relay);
            }
            Some(out)
        }
    };
    let autodiscover = match &raw.autodiscover {
        None => None,
        Some(written) if coexist_dns::net::is_domain(written.get_ref().trim()) => {
            Some(coexist_dns::records::normalise(written.get_ref()))
        }
        Some(written) => {
            return Err(at.at(
                written,
                key("autodiscover"),
                format!("`{}` is not a domain name", written.get_ref()),
            ))
        }
    };
    Ok(SystemDns {
        mx_hosts: names("mx_hosts", &raw.mx_hosts, true)?,
        spf_includes: names("spf_includes", &raw.spf_includes, false)?,
        spf_relays,
        dkim_selectors: names("dkim_selectors", &raw.dkim_selectors, false)?,
        autodiscover,
    })
}

/// An organisation id: it names a PostgreSQL schema (`coexist_<id>`), so
/// lowercase ASCII letters, digits and underscores, starting with a letter.
fn valid_organisation_id(id: &str) -> bool {
    id.len() <= 48
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// A PostgreSQL `url` with the search path set to the organisation's
/// schema `coexist_<id>`, unless it sets one itself; any other URL as it is.
fn with_organisation_schema(url: &str, id: &str) -> String {
    let postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
    if !postgres || url.contains("search_path") {
        return url.to_string();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options%5Bsearch_path%5D=coexist_{id}")
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            line: None,
            key: String::new(),
            message: format!("cannot read the configuration: {e}"),
        })?;
        Self::parse(path, &text)
    }

    /// Parses and validates `text`, read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let at = Locator {
            file: path.display().to_string(),
            text,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| at.line(s.start));
            ConfigError {
                file: at.file.clone(),
                line,
                key: String::new(),
                message: e.message().trim().to_string(),
            }
        })?;

        // Shared domains.
        let mut shared_domains = Vec::new();
        if raw.organisation.shared_domains.get_ref().is_empty() {
            return Err(at.at(
                &raw.organisation.shared_domains,
                "organisation.shared_domains",
                "expected at least one shared domain, like [\"acmecorp.com\"]",
            ));
        }
        for domain in raw.organisation.shared_domains.get_ref() {
            let normalised = valid_domain(domain.get_ref()).ok_or_else(|| {
                at.at(
                    domain,
                    "organisation.shared_domains",
                    format!("`{}` is not a domain name", domain.get_ref()),
                )
            })?;
            shared_domains.push(normalised);
        }

        let key_positions = toml::from_str::<KeyPositions>(text)
            .map(|k| k.systems)
            .unwrap_or_default();

        // Systems.
        if raw.systems.is_empty() {
            return Err(at.nowhere("systems", "expected at least one [[systems]] table"));
        }
        let ids: Vec<String> = raw.systems.iter().map(|s| s.id.get_ref().clone()).collect();
        let mut systems = Vec::new();
        let mut policies = Vec::new();
        for (n, system) in raw.systems.iter().enumerate() {
            let key = |field: &str| format!("systems[{n}].{field}");
            let id = system.id.get_ref();
            if !valid_id(id) {
                return Err(at.at(
                    &system.id,
                    key("id"),
                    format!("`{id}` is not a system id: use lower-case letters, digits, - and _"),
                ));
            }
            if ids.iter().filter(|other| *other == id).count() > 1 {
                return Err(at.at(
                    &system.id,
                    key("id"),
                    format!("the id `{id}` is used by two systems"),
                ));
            }
            let kind = match crate::kinds::find(system.kind.get_ref()) {
                Some(kind) => SystemKind(kind),
                None => {
                    return Err(at.at(
                        &system.kind,
                        key("kind"),
                        format!(
                            "`{}` is not a kind of system coexist knows; expected one of {}",
                            system.kind.get_ref(),
                            crate::kinds::names().join(", ")
                        ),
                    ))
                }
            };
            let routing_domain = match &system.routing_domain {
                Some(rd) => {
                    let domain = valid_domain(rd.get_ref()).ok_or_else(|| {
                        at.at(
                            rd,
                            key("routing_domain"),
                            format!("`{}` is not a domain name", rd.get_ref()),
                        )
                    })?;
                    if shared_domains.contains(&domain) {
                        return Err(at.at(rd, key("routing_domain"), format!("`{domain}` is a shared domain; a routing domain must deliver to {id} alone (like gapps.acmecorp.com)")));
                    }
                    if raw.systems.iter().enumerate().any(|(m, other)| {
                        m != n
                            && other
                                .routing_domain
                                .as_ref()
                                .and_then(|d| valid_domain(d.get_ref()))
                                == Some(domain.clone())
                    }) {
                        return Err(at.at(rd, key("routing_domain"), format!("`{domain}` is the routing domain of two systems; mail to it would not know where to go")));
                    }
                    Some(domain)
                }
                None => None,
            };
            let stub_style = match system.stub_style.as_ref().map(Spanned::get_ref) {
                Some(RawStubStyle::RoutingAddress) => StubStyle::RoutingAddress,
                Some(RawStubStyle::SmartHost) => StubStyle::SmartHost,
                Some(RawStubStyle::DomainRouting) => StubStyle::DomainRouting,
                Some(RawStubStyle::None) => StubStyle::None,
                Some(RawStubStyle::MailContact) => StubStyle::MailContact,
                Some(RawStubStyle::MailboxContacts) => StubStyle::MailboxContacts,
                None => kind
                    .stub_styles()
                    .first()
                    .copied()
                    .unwrap_or(StubStyle::None),
            };
            if let Some(spanned) = &system.stub_style {
                if !kind.stub_styles().contains(&stub_style) {
                    return Err(at.at(spanned, key("stub_style"), kind.why_not(stub_style)));
                }
            }
            let unknown_recipient = match &system.unknown_recipient {
                None => UnknownRecipient::Reject,
                Some(spanned) => match spanned.get_ref() {
                    RawUnknown::Word(word) if word == "reject" => UnknownRecipient::Reject,
                    RawUnknown::Word(word) => {
                        return Err(at.at(
                            spanned,
                            key("unknown_recipient"),
                            format!(
                                "expected \"reject\" or {{ relay = \"SYSTEM\" }}, found \"{word}\""
                            ),
                        ))
                    }
                    RawUnknown::Relay { relay } => {
                        if !ids.contains(relay) || relay == id {
                            return Err(at.at(spanned, key("unknown_recipient"), format!("`{relay}` is not another configured system; expected one of {}", ids.join(", "))));
                        }
                        UnknownRecipient::Relay(relay.clone())
                    }
                },
            };
            let (connection, connection_line) = match &system.connection {
                Some(table) => (table.get_ref().clone(), Some(at.line(table.span().start))),
                None => (toml::Table::new(), None),
            };
            let connection_keys = key_positions
                .get(n)
                .map(|k| {
                    k.connection
                        .keys()
                        .map(|key| (key.get_ref().clone(), at.line(key.span().start)))
                        .collect()
                })
                .unwrap_or_default();
            let address_book = match &system.address_book {
                None => None,
                Some(table) => Some(address_book(&at, n, id, kind.name(), table)?),
            };
            systems.push(SystemConfig {
                id: id.clone(),
                kind,
                connection,
                connection_line,
                connection_keys,
                dns: system_dns(&at, n, system.dns.as_ref())?,
                address_book,
            });
            policies.push(SystemPolicy {
                id: id.clone(),
                routing_domain,
                smart_host: system
                    .smart_host
                    .as_ref()
                    .map(|h| h.get_ref().to_ascii_lowercase()),
                stub_style,
                unknown_recipient,
                disabled_mailboxes: match system.disabled_mailboxes {
                    Some(RawDisabledMailboxes::Bounce) => DisabledMailboxes::Bounce,
                    Some(RawDisabledMailboxes::Deliver) => DisabledMailboxes::Deliver,
                    None => kind.disabled_mailboxes(),
                },
                routing_domain_is_alias: system
                    .routing_domain_is_alias
                    .unwrap_or_else(|| kind.routing_domain_is_alias()),
            });
        }

        // Catch-all relays that come back where they started would send mail
        // for any unknown address round in circles.
        let cycle = relay_cycle(&policies);
        if let Some(&first) = cycle.first() {
            let lines: Vec<String> = cycle
                .iter()
                .filter_map(|&n| raw.systems[n].unknown_recipient.as_ref())
                .map(|spanned| at.line(spanned.span().start).to_string())
                .collect();
            let path: Vec<&str> = cycle
                .iter()
                .chain(std::iter::once(&first))
                .map(|&n| policies[n].id.as_str())
                .collect();
            let message = format!(
                "the catch-all relays form a cycle ({}; lines {}): mail to any address no system knows would loop between them; make one of them reject unknown recipients (unknown_recipient = \"reject\")",
                path.join(" → "),
                lines.join(", ")
            );
            return Err(match raw.systems[first].unknown_recipient.as_ref() {
                Some(spanned) => at.at(
                    spanned,
                    format!("systems[{first}].unknown_recipient"),
                    message,
                ),
                None => at.nowhere(format!("systems[{first}].unknown_recipient"), message),
            });
        }

        // Every stub style must be able to reach every other system.
        for (n, system) in policies.iter().enumerate() {
            for (m, home) in policies.iter().enumerate() {
                if n == m {
                    continue;
                }
                let missing = match system.stub_style {
                    StubStyle::RoutingAddress | StubStyle::MailContact
                        if home.routing_domain.is_none() =>
                    {
                        Some("routing_domain")
                    }
                    StubStyle::SmartHost if home.smart_host.is_none() => Some("smart_host"),
                    _ => None,
                };
                if let Some(field) = missing {
                    let key = format!("systems[{m}].{field}");
                    let message = format!(
                        "{} writes stubs routed by {field}, so {} needs a {field} (or set stub_style = \"none\" on {})",
                        system.id, home.id, system.id
                    );
                    return Err(at.at(&raw.systems[m].id, key, message));
                }
            }
        }

        let mx = match raw.topology.as_ref().and_then(|t| t.mx.as_ref()) {
            Some(mx) if !ids.contains(mx.get_ref()) => {
                return Err(at.at(
                    mx,
                    "topology.mx",
                    format!(
                        "`{}` is not a configured system; expected one of {}",
                        mx.get_ref(),
                        ids.join(", ")
                    ),
                ))
            }
            Some(mx) => Some(mx.get_ref().clone()),
            None => None,
        };

        let home_attribute = match raw.home.and_then(|h| h.attribute) {
            None => None,
            Some(rule) => {
                if !ids.contains(rule.system.get_ref()) {
                    return Err(at.at(
                        &rule.system,
                        "home.attribute.system",
                        format!("`{}` is not a configured system", rule.system.get_ref()),
                    ));
                }
                let mut values = BTreeMap::new();
                for (value, system) in rule.values {
                    if !ids.contains(system.get_ref()) {
                        return Err(at.at(
                            &system,
                            format!("home.attribute.values.{value}"),
                            format!("`{}` is not a configured system", system.get_ref()),
                        ));
                    }
                    values.insert(value, system.into_inner());
                }
                Some(HomeAttribute {
                    system: rule.system.into_inner(),
                    attribute: rule.name,
                    values,
                })
            }
        };

        let mut precedence = Vec::new();
        let mut precedence_by_attribute = BTreeMap::new();
        for (name, order) in &raw.precedence {
            let key = format!("precedence.{}", name.get_ref());
            if name.get_ref() != "default" && !Attributes::NAMES.contains(&name.get_ref().as_str())
            {
                return Err(at.at(
                    name,
                    key,
                    format!(
                        "expected `default` or an attribute name ({})",
                        Attributes::NAMES.join(", ")
                    ),
                ));
            }
            let mut systems_in_order = Vec::new();
            for system in order {
                if !ids.contains(system.get_ref()) {
                    return Err(at.at(
                        system,
                        key.clone(),
                        format!("`{}` is not a configured system", system.get_ref()),
                    ));
                }
                systems_in_order.push(system.get_ref().clone());
            }
            if name.get_ref() == "default" {
                precedence = systems_in_order;
            } else {
                precedence_by_attribute.insert(name.get_ref().clone(), systems_in_order);
            }
        }

        if !(0.0..=100.0).contains(&raw.safety.max_delete_percent) {
            return Err(at.nowhere(
                "safety.max_delete_percent",
                "expected a percentage from 0 to 100",
            ));
        }
        if !(0.0..=100.0).contains(&raw.safety.max_shrink_percent) {
            return Err(at.nowhere(
                "safety.max_shrink_percent",
                "expected a percentage from 0 to 100",
            ));
        }

        let dns = match &raw.dns {
            Some(dns) => Some(dns_settings(&at, dns)?),
            None => None,
        };

        // One rule for every path of the file, the store's too: relative
        // to the folder of the file.
        let folder = folder_of(path);
        let gal_server = match raw.gal_server {
            Some(table) => Some(gal_server(&at, folder, &shared_domains, &systems, table)?),
            None => None,
        };
        let daemon = daemon::daemon(&at, folder, raw.daemon)?;
        let organisation_id = match &raw.organisation.id {
            Some(id) if valid_organisation_id(id.get_ref()) => Some(id.get_ref().clone()),
            Some(id) => {
                return Err(at.at(
                    id,
                    "organisation.id",
                    format!(
                        "`{}` is not an organisation id: expected 1 to 48 lowercase letters, digits and underscores, starting with a letter, like \"acmecorp\"",
                        id.get_ref()
                    ),
                ))
            }
            None => None,
        };
        let default_store = raw.store.is_none();
        let store_url = match raw.store.map(|store| store.url) {
            Some(StoreUrl::Plain(url)) => StoreUrl::Plain(store_url_beside(folder, &url)),
            Some(StoreUrl::Secret(secret)) => StoreUrl::Secret(secret_beside(folder, secret)),
            None => StoreUrl::Plain(store_url_beside(folder, "sqlite:coexist.db")),
        };

        Ok(Config {
            path: path.to_path_buf(),
            policy: Policy {
                shared_domains,
                systems: policies,
                home_attribute,
                precedence,
                precedence_by_attribute,
                include_disabled: raw.organisation.include_disabled,
                mx,
            },
            systems,
            store_url,
            default_store,
            safety: raw.safety,
            dns,
            gal_server,
            organisation_id,
            daemon,
        })
    }

    /// Where the store is, for people: its URL with any password hidden, or
    /// the environment variable or file holding it, and whether it is the
    /// default SQLite file beside the configuration file.
    pub fn store_description(&self) -> String {
        match &self.store_url {
            StoreUrl::Plain(url) if self.default_store => format!(
                "{} (the default: a SQLite file beside the configuration file)",
                crate::store::redact(url)
            ),
            StoreUrl::Plain(url) => crate::store::redact(url),
            StoreUrl::Secret(SecretRef::Env { env }) => {
                format!("the URL in the environment variable {env}")
            }
            StoreUrl::Secret(SecretRef::File { file }) => format!("the URL in the file {file}"),
        }
    }

    /// The store URL, its secret resolved, a relative SQLite path in it
    /// resolved against [`Config::folder`] (whether written in the file or
    /// read from its secret).
    ///
    /// On PostgreSQL, an organisation with an `[organisation] id` keeps
    /// its store in the schema `coexist_<id>` (the URL selects it through
    /// the connection's `search_path`, and the store creates it): many
    /// organisations share one database, each with its own tables, runs
    /// and run lock. A URL that sets `search_path` itself is kept as it is.
    pub fn store_url(&self) -> Result<String, ConfigError> {
        let url = match &self.store_url {
            StoreUrl::Plain(url) => url.clone(),
            StoreUrl::Secret(secret) => secret
                .resolve()
                .map(|s| store_url_beside(self.folder(), s.expose()))
                .map_err(|e| ConfigError {
                    file: self.path.display().to_string(),
                    line: None,
                    key: "store.url".into(),
                    message: e.to_string(),
                })?,
        };
        Ok(match &self.organisation_id {
            Some(id) => with_organisation_schema(&url, id),
            None => url,
        })
    }

    /// The environment variables the configuration refers to (`{ env =
    /// "NAME" }`, in the store URL and in every connection table) that are
    /// not set in this process, each with the key that names it.
    pub fn unset_env(&self) -> Vec<(String, String)> {
        fn walk(value: &toml::Value, key: &str, out: &mut Vec<(String, String)>) {
            match value {
                toml::Value::Table(table) => {
                    if let (1, Some(toml::Value::String(name))) = (table.len(), table.get("env")) {
                        if std::env::var_os(name).is_none() {
                            out.push((key.to_string(), name.clone()));
                        }
                        return;
                    }
                    for (k, v) in table {
                        walk(v, &format!("{key}.{k}"), out);
                    }
                }
                toml::Value::Array(values) => {
                    for (n, v) in values.iter().enumerate() {
                        walk(v, &format!("{key}[{n}]"), out);
                    }
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        if let StoreUrl::Secret(SecretRef::Env { env }) = &self.store_url {
            if std::env::var_os(env).is_none() {
                out.push(("store.url".to_string(), env.clone()));
            }
        }
        let accounts = self.gal_server.iter().flat_map(|g| g.accounts.iter());
        for (n, account) in accounts.enumerate() {
            if let SecretRef::Env { env } = &account.password {
                if std::env::var_os(env).is_none() {
                    out.push((format!("gal_server.accounts[{n}].password"), env.clone()));
                }
            }
        }
        for (n, system) in self.systems.iter().enumerate() {
            walk(
                &toml::Value::Table(system.connection.clone()),
                &format!("systems[{n}].connection"),
                &mut out,
            );
        }
        out
    }

    /// The system ids in configuration order.
    pub fn system_ids(&self) -> Vec<String> {
        self.systems.iter().map(|s| s.id.clone()).collect()
    }

    /// The ids of the address books (`<system>.address_book`), in
    /// configuration order: staged and planned apart from the systems.
    pub fn address_book_ids(&self) -> Vec<String> {
        self.systems
            .iter()
            .filter_map(|s| s.address_book.as_ref().map(|b| b.id.clone()))
            .collect()
    }

    /// The folder of the configuration file: every relative path in it
    /// (seed and state files, key and CA files, secret files, the default
    /// store, a relative `sqlite:` path in `[store] url`) is resolved
    /// against it, never against the current directory.
    pub fn folder(&self) -> &Path {
        folder_of(&self.path)
    }

    /// An error about `system`'s connection settings.
    pub fn connection_error(
        &self,
        system: &SystemConfig,
        message: impl Into<String>,
    ) -> ConfigError {
        let n = self
            .systems
            .iter()
            .position(|s| s.id == system.id)
            .unwrap_or(0);
        ConfigError {
            file: self.path.display().to_string(),
            line: system.connection_line,
            key: format!("systems[{n}].connection"),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests;
