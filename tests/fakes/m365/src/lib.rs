//! A fake Microsoft 365 tenant for coexist's tests and benchmarks: an
//! in-process HTTP server (axum on tokio, bound to `127.0.0.1:0`) that behaves
//! like the parts of Microsoft 365 the Microsoft 365 connector uses, built
//! from the official descriptions:
//!
//! - the Microsoft identity platform token endpoint, client credentials with a
//!   client secret or a certificate assertion, one token per resource
//!   (<https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow>),
//! - Microsoft Graph v1.0: users, groups, members and transitive members,
//!   users and groups delta, domains, mailbox contact folders and contacts,
//!   and JSON batching, every `$select`, `$filter` and body property checked
//!   against the Graph CSDL (`shared/specs/msgraph-v1.0.csdl`, parsed once per
//!   process),
//! - Exchange Online's admin REST transport (`InvokeCommand`) for the
//!   recipient and mail-contact cmdlets.
//!
//! It refuses what the real services refuse (unknown properties, `$top` over
//! 999, batches over 20, a missing, expired or other-audience token,
//! New-MailContact's `-PrimarySmtpAddress`, a name or address already used)
//! with their error bodies, and injects faults on command: 429 bursts with
//! `Retry-After` (also inside `$batch` and on `InvokeCommand`), 5xx, expired
//! tokens, expired delta links, a fixed latency. Requests are counted per kind
//! ([`Counters`]) for tests and benchmarks.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use coexist_fake_m365::{FakeM365, FakeOptions, FakeUser};
//! let m365 = FakeM365::start(FakeOptions::default()).await?;
//! let id = m365.add_user(FakeUser {
//!     user_principal_name: "ann@acmecorp.com".into(),
//!     mail: "ann@acmecorp.com".into(),
//!     display_name: "Ann Lee".into(),
//!     ..FakeUser::default()
//! });
//! // token_url(), client_id(), client_secret() for the connector's settings.
//! # let _ = id; Ok(()) }
//! ```

// Handlers return `Result<Reply, Reply>`: the error side is the answer itself,
// built once per refused request, so its size does not matter.
#![allow(clippy::result_large_err)]

mod auth;
mod batch;
mod contacts;
mod csdl;
mod errors;
mod exchange;
mod filter;
mod graph;
mod state;
mod users;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{any, post};
use axum::Router;
use parking_lot::Mutex;
use serde_json::Value;
use tokio::task::JoinHandle;

pub use auth::{EXCHANGE_RESOURCE, GRAPH_RESOURCE, JWT_BEARER_ASSERTION};
pub use state::{FakeGroup, FakeMailContact, FakePersonalContact, FakeUser, RecipientType};

use state::{Audience, DomainRec, MemberEvent, Shared, StoredGroup};

/// The application roles a Graph token carries by default.
pub const DEFAULT_GRAPH_ROLES: &[&str] = &[
    "User.Read.All",
    "Group.Read.All",
    "GroupMember.Read.All",
    "Domain.Read.All",
    "Contacts.ReadWrite",
];

/// The application role an Exchange token carries by default.
pub const DEFAULT_EXCHANGE_ROLES: &[&str] = &["Exchange.ManageAsApp"];

/// How the fake tenant is set up.
#[derive(Debug, Clone)]
pub struct FakeOptions {
    /// The tenant id (a GUID); the token endpoint also answers under the
    /// tenant's domains.
    pub tenant_id: String,
    /// The tenant's initial domain, e.g. `acmecorp.onmicrosoft.com`; its
    /// routing domain is `acmecorp.mail.onmicrosoft.com`.
    pub tenant_domain: String,
    /// The organisation's (shared) mail domain, verified and default.
    pub domain: String,
    /// The app registration's client id.
    pub client_id: String,
    /// The app's client secret; empty for none (certificate only).
    pub client_secret: String,
    /// The app's certificate credential (PEM); `None` registers the fake's
    /// test certificate, whose key [`FakeM365::private_key_pem`] gives.
    pub certificate_pem: Option<String>,
    /// How long issued tokens live (`expires_in`).
    pub token_lifetime: Duration,
    /// A fixed delay added to every request.
    pub latency: Duration,
    /// Application roles (permissions) in Graph tokens.
    pub graph_roles: Vec<String>,
    /// Application roles in Exchange tokens.
    pub exchange_roles: Vec<String>,
}

impl Default for FakeOptions {
    /// Tenant `acmecorp.onmicrosoft.com`, domain `acmecorp.com`, a client
    /// secret and the test certificate, tokens living 3600 s, no latency, the
    /// default roles.
    fn default() -> Self {
        FakeOptions {
            tenant_id: "8f4c1b2e-3d5a-4e6f-9a7b-0c1d2e3f4a5b".to_owned(),
            tenant_domain: "acmecorp.onmicrosoft.com".to_owned(),
            domain: "acmecorp.com".to_owned(),
            client_id: "5e7a3c1d-2b4f-4a6e-8d9c-1f2e3d4c5b6a".to_owned(),
            client_secret: "fake~secret.0123456789abcdefghijklmnopqrstu".to_owned(),
            certificate_pem: None,
            token_lifetime: Duration::from_secs(3600),
            latency: Duration::ZERO,
            graph_roles: DEFAULT_GRAPH_ROLES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            exchange_roles: DEFAULT_EXCHANGE_ROLES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        }
    }
}

/// A fault to inject (see [`FakeM365::fail_next`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// 429 Too Many Requests with `Retry-After` ([`FakeM365::set_retry_after`]).
    TooMany429,
    /// 500 (`generalException` on Graph).
    ServerError500,
    /// 503 (`serviceNotAvailable` on Graph) with `Retry-After`.
    Unavailable503,
    /// 504 Gateway Timeout.
    GatewayTimeout504,
}

/// Requests the fake has received, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// POST to the token endpoint.
    pub token: u64,
    /// HTTP requests under `/v1.0` (a `$batch` counts once).
    pub graph_requests: u64,
    /// Collection pages served (users, groups, members, delta, contact
    /// folders, contacts), alone or inside a batch.
    pub graph_pages: u64,
    /// [`Counters::graph_pages`] by kind: `users`, `users/delta`, `groups`,
    /// `groups/delta`, `members`, `transitiveMembers`, `contactFolders`, `contacts`.
    pub pages_by_kind: BTreeMap<String, u64>,
    /// Writes to mailbox contacts and folders (POST, PATCH, DELETE), alone or
    /// inside a batch.
    pub graph_writes: u64,
    /// POST `/v1.0/$batch`.
    pub batch_requests: u64,
    /// Requests inside batches.
    pub inner_batch_requests: u64,
    /// POST `InvokeCommand`.
    pub exchange_calls: u64,
    /// [`Counters::exchange_calls`] by cmdlet name.
    pub exchange_by_cmdlet: BTreeMap<String, u64>,
    /// Every HTTP request.
    pub total: u64,
    /// Requests (and inner batch requests) refused as malformed or unauthorised.
    pub rejected: u64,
    /// Requests (and inner batch requests) answered with an injected fault.
    pub faults: u64,
    /// The time the fake spent answering requests, after its added latency
    /// (its own work and the wait for its state's lock): its service time,
    /// which a benchmark counts as the server's like the latency.
    pub service_time: Duration,
}

/// A running fake tenant. The server task is aborted when this is dropped.
pub struct FakeM365 {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: JoinHandle<()>,
}

impl Drop for FakeM365 {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl std::fmt::Debug for FakeM365 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeM365")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn duration_micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn routing_domain_of(tenant_domain: &str) -> String {
    match tenant_domain.strip_suffix(".onmicrosoft.com") {
        Some(name) => format!("{name}.mail.onmicrosoft.com"),
        None => format!("mail.{tenant_domain}"),
    }
}

impl FakeM365 {
    /// Starts the fake on `127.0.0.1` with a free port. Fails when the Graph
    /// CSDL cannot be read or the certificate holds no RSA key.
    pub async fn start(options: FakeOptions) -> std::io::Result<FakeM365> {
        csdl::schema().map_err(std::io::Error::other)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let certificate = options
            .certificate_pem
            .clone()
            .unwrap_or_else(|| auth::CERTIFICATE_PEM.to_owned());
        let keys = auth::Keys::load(Some(&certificate)).map_err(std::io::Error::other)?;
        let mut st = state::State::new(options.token_lifetime);
        let routing = routing_domain_of(&options.tenant_domain);
        for (name, is_default, is_initial) in [
            (options.domain.clone(), true, false),
            (options.tenant_domain.clone(), false, true),
            (routing, false, false),
        ] {
            st.domains.push(DomainRec {
                name,
                verified: true,
                is_default,
                is_initial,
                accepted_type: "Authoritative".to_owned(),
            });
        }
        let shared = Arc::new(Shared {
            base_url: format!("http://{addr}"),
            tenant_id: options.tenant_id.clone(),
            tenant_domain: options.tenant_domain.to_ascii_lowercase(),
            domain: options.domain.to_ascii_lowercase(),
            client_id: options.client_id.clone(),
            client_secret: Some(options.client_secret.clone()).filter(|s| !s.is_empty()),
            keys,
            graph_roles: options.graph_roles.clone(),
            exchange_roles: options.exchange_roles.clone(),
            latency_micros: AtomicU64::new(duration_micros(options.latency)),
            state: Mutex::new(st),
        });
        let app = router(shared.clone());
        let server = tokio::spawn(async move {
            // The fake's task ends when the listener fails or the task is aborted.
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeM365 {
            shared,
            addr,
            server,
        })
    }

    /// `http://127.0.0.1:PORT` (the "authority" and the hosts of Graph and Exchange).
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The token endpoint: base + `/{tenant}/oauth2/v2.0/token` (also the
    /// `aud` a certificate assertion must carry).
    pub fn token_url(&self) -> String {
        self.shared.token_url()
    }

    /// Graph's version root: base + `/v1.0`.
    pub fn graph_url(&self) -> String {
        self.shared.graph_url()
    }

    /// Exchange's admin API root: base + `/adminapi/beta/{tenant}` (append
    /// `/InvokeCommand`).
    pub fn exchange_url(&self) -> String {
        self.shared.exchange_url()
    }

    /// The tenant id.
    pub fn tenant_id(&self) -> String {
        self.shared.tenant_id.clone()
    }

    /// The tenant's initial domain (`acmecorp.onmicrosoft.com`).
    pub fn tenant_domain(&self) -> String {
        self.shared.tenant_domain.clone()
    }

    /// The routing domain (`acmecorp.mail.onmicrosoft.com`).
    pub fn routing_domain(&self) -> String {
        routing_domain_of(&self.shared.tenant_domain)
    }

    /// The organisation's mail domain (`acmecorp.com`).
    pub fn domain(&self) -> String {
        self.shared.domain.clone()
    }

    /// The app's client id.
    pub fn client_id(&self) -> String {
        self.shared.client_id.clone()
    }

    /// The app's client secret (empty when the app has none).
    pub fn client_secret(&self) -> String {
        self.shared.client_secret.clone().unwrap_or_default()
    }

    /// The app's registered certificate (PEM).
    pub fn certificate_pem(&self) -> String {
        self.shared.keys.certificate_pem.clone()
    }

    /// The private key of the fake's test certificate (PKCS#8 PEM). It signs
    /// valid assertions only when [`FakeOptions::certificate_pem`] was `None`.
    pub fn private_key_pem(&self) -> String {
        auth::PRIVATE_KEY_PEM.to_owned()
    }

    /// A certificate the fake does not trust.
    pub fn other_certificate_pem(&self) -> String {
        auth::OTHER_CERTIFICATE_PEM.to_owned()
    }

    /// The private key of [`FakeM365::other_certificate_pem`].
    pub fn other_private_key_pem(&self) -> String {
        auth::OTHER_PRIVATE_KEY_PEM.to_owned()
    }

    /// The `x5t` of a certificate: base64url of the SHA-1 of its DER.
    pub fn thumbprint(certificate_pem: &str) -> Option<String> {
        auth::x5t(certificate_pem).ok()
    }

    /// Issues a Graph token directly (no request counted), for tests that
    /// exercise Graph without the token exchange.
    pub fn issue_graph_token(&self) -> String {
        auth::issue(&self.shared, Audience::Graph).0
    }

    /// Issues an Exchange token directly (no request counted).
    pub fn issue_exchange_token(&self) -> String {
        auth::issue(&self.shared, Audience::Exchange).0
    }

    // ----- directory -----

    /// Adds (or replaces, same id or UPN) a user; returns its id.
    pub fn add_user(&self, user: FakeUser) -> String {
        self.shared.state.lock().add_user(user)
    }

    /// Changes a user in place (a delta change); false when there is none.
    pub fn update_user(&self, id: &str, f: impl FnOnce(&mut FakeUser)) -> bool {
        self.shared.state.lock().update_user(id, f)
    }

    /// Deletes a user the way Microsoft Entra does (soft delete: restorable,
    /// `@removed` reason `changed` in delta); its memberships end and its
    /// mailbox contacts go.
    pub fn remove_user(&self, id: &str) -> bool {
        self.shared.state.lock().remove_user(id, true)
    }

    /// Deletes a user for good (`@removed` reason `deleted`), also one that
    /// was soft-deleted.
    pub fn purge_user(&self, id: &str) -> bool {
        self.shared.state.lock().remove_user(id, false)
    }

    /// A user by id.
    pub fn user(&self, id: &str) -> Option<FakeUser> {
        self.shared
            .state
            .lock()
            .users
            .get(id)
            .map(|s| s.user.clone())
    }

    /// Adds (or replaces, same id) a group; returns its id.
    /// The id of the license SKU the tenant owns (Office 365 E3's), with
    /// Exchange Online: `assignLicense` of any other is refused.
    pub const EXCHANGE_SKU: &'static str = users::EXCHANGE_SKU;

    /// How many Exchange calls a user licensed through Graph waits for its
    /// mailbox (0: it is there at the next call; Exchange Online takes
    /// minutes).
    /// Mailboxes already on their way come no later than that.
    pub fn set_mailbox_delay(&self, calls: u32) {
        let mut st = self.shared.state.lock();
        st.provisioned.mailbox_delay = calls;
        for pending in st.provisioned.users.values_mut() {
            if let Some(n) = pending.mailbox_in.as_mut() {
                *n = (*n).min(calls);
            }
        }
    }

    /// The forwarding of the user `id`'s mailbox (an id or a UPN), as
    /// Set-Mailbox set it: `ForwardingSmtpAddress` (`smtp:…`) and
    /// `DeliverToMailboxAndForward`; `None` when never set.
    pub fn forwarding(&self, id: &str) -> Option<(Option<String>, bool)> {
        let st = self.shared.state.lock();
        let id = st.user_id(id)?;
        st.provisioned.forwarding.get(&id).cloned()
    }

    /// The license SKUs assigned to the user `id` (an id or a UPN) through
    /// Graph.
    pub fn licenses(&self, id: &str) -> Vec<String> {
        let st = self.shared.state.lock();
        st.user_id(id)
            .map(|id| users::licenses_of(&st, &id))
            .unwrap_or_default()
    }

    pub fn add_group(&self, group: FakeGroup) -> String {
        self.shared.state.lock().add_group(group)
    }

    /// Changes a group in place; false when there is none.
    pub fn update_group(&self, id: &str, f: impl FnOnce(&mut FakeGroup)) -> bool {
        self.shared.state.lock().update_group(id, f)
    }

    /// Deletes a group (Microsoft 365 groups soft, others for good).
    pub fn remove_group(&self, id: &str) -> bool {
        self.shared.state.lock().remove_group(id)
    }

    /// Makes a user or group a direct member of a group; false when either is
    /// unknown.
    pub fn add_member(&self, group_id: &str, member_id: &str) -> bool {
        self.shared.state.lock().add_member(group_id, member_id)
    }

    /// Ends a direct membership; false when there was none.
    pub fn remove_member(&self, group_id: &str, member_id: &str) -> bool {
        self.shared.state.lock().remove_member(group_id, member_id)
    }

    /// Adds a domain of the tenant (Graph `domains`, and an accepted domain of
    /// Exchange when verified).
    pub fn add_domain(&self, name: &str, verified: bool) {
        let mut st = self.shared.state.lock();
        st.domains.retain(|d| !d.name.eq_ignore_ascii_case(name));
        st.domains.push(DomainRec {
            name: name.to_ascii_lowercase(),
            verified,
            is_default: false,
            is_initial: false,
            accepted_type: "Authoritative".to_owned(),
        });
    }

    /// Sets an accepted domain's `DomainType` (`Authoritative` or
    /// `InternalRelay`); false when the tenant has no such domain.
    pub fn set_accepted_domain_type(&self, name: &str, domain_type: &str) -> bool {
        let mut st = self.shared.state.lock();
        match st
            .domains
            .iter_mut()
            .find(|d| d.name.eq_ignore_ascii_case(name))
        {
            Some(d) => {
                d.accepted_type = domain_type.to_owned();
                true
            }
            None => false,
        }
    }

    // ----- Exchange and mailboxes -----

    /// Adds a mail contact (one coexist did not write, or a stub to find);
    /// returns its Guid.
    pub fn add_mail_contact(&self, contact: FakeMailContact) -> String {
        self.shared.state.lock().add_mail_contact(contact)
    }

    /// The tenant's mail contacts, in Guid order.
    pub fn mail_contacts(&self) -> Vec<FakeMailContact> {
        self.shared
            .state
            .lock()
            .mail_contacts
            .values()
            .cloned()
            .collect()
    }

    /// A user's contact folders as (id, display name).
    pub fn contact_folders(&self, user_id: &str) -> Vec<(String, String)> {
        self.shared
            .state
            .lock()
            .folders
            .get(user_id)
            .map(|fs| {
                fs.iter()
                    .map(|f| (f.id.clone(), f.display_name.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The personal contacts in every contact folder of a user's mailbox.
    pub fn personal_contacts(&self, user_id: &str) -> Vec<FakePersonalContact> {
        let st = self.shared.state.lock();
        let Some(folders) = st.folders.get(user_id) else {
            return Vec::new();
        };
        let text = |m: &serde_json::Map<String, Value>, k: &str| {
            m.get(k).and_then(Value::as_str).unwrap_or("").to_owned()
        };
        let strings = |m: &serde_json::Map<String, Value>, k: &str| -> Vec<String> {
            m.get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        folders
            .iter()
            .flat_map(|f| f.contacts.values().map(move |c| (f, c)))
            .map(|(f, c)| FakePersonalContact {
                id: text(c, "id"),
                folder_id: f.id.clone(),
                display_name: text(c, "displayName"),
                given_name: text(c, "givenName"),
                surname: text(c, "surname"),
                email_addresses: c
                    .get("emailAddresses")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .map(|e| {
                                (
                                    e.get("name")
                                        .and_then(Value::as_str)
                                        .unwrap_or("")
                                        .to_owned(),
                                    e.get("address")
                                        .and_then(Value::as_str)
                                        .unwrap_or("")
                                        .to_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                job_title: text(c, "jobTitle"),
                department: text(c, "department"),
                company_name: text(c, "companyName"),
                business_phones: strings(c, "businessPhones"),
                mobile_phone: text(c, "mobilePhone"),
                properties: Value::Object(c.clone()),
            })
            .collect()
    }

    /// Bulk seeding for benchmarks, deterministic: users `user{N}@domain`
    /// (ids `00000001-0000-4000-8000-{N:012x}`, user mailboxes, with a
    /// routing-domain proxy address), mail-enabled groups `group{G}@domain`
    /// (ids `00000002-…`), each with `members_per_group` users as members
    /// (user `(G * members_per_group + k) % users`).
    pub fn seed_synthetic(&self, users: usize, groups: usize, members_per_group: usize) {
        let domain = self.shared.domain.clone();
        let routing = self.routing_domain();
        let mut st = self.shared.state.lock();
        let mut user_ids = Vec::with_capacity(users);
        for n in 0..users {
            let mail = format!("user{n}@{domain}");
            let id = st.add_user(FakeUser {
                id: state::synthetic_guid(1, n as u64),
                user_principal_name: mail.clone(),
                proxy_addresses: vec![format!("SMTP:{mail}"), format!("smtp:user{n}@{routing}")],
                mail,
                mail_nickname: format!("user{n}"),
                display_name: format!("User {n}"),
                given_name: "User".to_owned(),
                surname: n.to_string(),
                job_title: "Engineer".to_owned(),
                department: format!("Department {}", n % 20),
                company_name: "Acme Corp".to_owned(),
                business_phones: vec![format!("+1 555 {:04}", n % 10_000)],
                ..FakeUser::default()
            });
            user_ids.push(id);
        }
        for g in 0..groups {
            let mail = format!("group{g}@{domain}");
            let id = st.add_group(FakeGroup {
                id: state::synthetic_guid(2, g as u64),
                display_name: format!("Group {g}"),
                mail,
                mail_enabled: true,
                ..FakeGroup::default()
            });
            if user_ids.is_empty() {
                continue;
            }
            let mut seen = HashSet::new();
            let mut members = Vec::new();
            for k in 0..members_per_group {
                let member = &user_ids[(g * members_per_group + k) % user_ids.len()];
                if seen.insert(member.clone()) {
                    members.push(member.clone());
                }
            }
            for m in &members {
                let seq = st.next_seq();
                st.member_events.push(MemberEvent {
                    seq,
                    group: id.clone(),
                    member: m.clone(),
                    added: true,
                });
            }
            if let Some(StoredGroup { members: list, .. }) = st.groups.get_mut(&id) {
                *list = members;
            }
        }
    }

    // ----- faults -----

    /// The next `n` Graph requests (a `$batch` counts as one; the token
    /// endpoint and Exchange excluded) fail with `fault`. Calls accumulate.
    pub fn fail_next(&self, n: usize, fault: Fault) {
        let mut st = self.shared.state.lock();
        st.faults.extend(std::iter::repeat_n(fault, n));
    }

    /// The next `n` requests inside batches fail with `fault`, each in its own
    /// inner response (the batch itself answers 200).
    pub fn fail_next_in_batch(&self, n: usize, fault: Fault) {
        let mut st = self.shared.state.lock();
        st.batch_faults.extend(std::iter::repeat_n(fault, n));
    }

    /// The next `n` Exchange `InvokeCommand` calls fail with `fault`.
    pub fn fail_next_exchange(&self, n: usize, fault: Fault) {
        let mut st = self.shared.state.lock();
        st.exchange_faults.extend(std::iter::repeat_n(fault, n));
    }

    /// The next `n` token requests fail with `fault`.
    pub fn fail_next_token(&self, n: usize, fault: Fault) {
        let mut st = self.shared.state.lock();
        st.token_faults.extend(std::iter::repeat_n(fault, n));
    }

    /// Drops every pending fault.
    pub fn clear_faults(&self) {
        let mut st = self.shared.state.lock();
        st.faults.clear();
        st.batch_faults.clear();
        st.exchange_faults.clear();
        st.token_faults.clear();
    }

    /// The `Retry-After` (seconds) sent with 429 and 503; default 1.
    pub fn set_retry_after(&self, seconds: u64) {
        self.shared.state.lock().retry_after_secs = seconds;
    }

    /// Every token issued so far answers 401 from now on
    /// (`InvalidAuthenticationToken`, "Lifetime validation failed, the token
    /// is expired." on Graph).
    pub fn expire_tokens(&self) {
        let now = std::time::Instant::now();
        for info in self.shared.state.lock().tokens.values_mut() {
            info.expires_at = now;
        }
    }

    /// Changes the lifetime of tokens issued from now on.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.shared.state.lock().token_lifetime = lifetime;
    }

    /// Every delta link (and delta `$skiptoken`) issued so far answers 410
    /// Gone with `syncStateNotFound` from now on.
    pub fn expire_delta_links(&self) {
        self.shared.state.lock().delta_generation += 1;
    }

    /// Changes the fixed delay added to every request.
    pub fn set_latency(&self, latency: Duration) {
        self.shared
            .latency_micros
            .store(duration_micros(latency), Ordering::Relaxed);
    }

    /// Requests received since the start or the last [`FakeM365::reset_counters`].
    pub fn counters(&self) -> Counters {
        self.shared.state.lock().counters.clone()
    }

    /// Sets every counter to zero.
    pub fn reset_counters(&self) {
        self.shared.state.lock().counters = Counters::default();
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(auth::token))
        .route("/v1.0/{*rest}", any(graph_entry))
        .route(
            "/adminapi/beta/{tenant}/InvokeCommand",
            post(exchange::invoke),
        )
        .fallback(errors::not_found_page)
        .method_not_allowed_fallback(errors::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            every_request,
        ))
        .with_state(shared)
}

/// `%XX` in a path.
fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = path
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every request under `/v1.0`: token, fault, then `$batch` or the dispatcher
/// (errors as <https://learn.microsoft.com/graph/errors>, throttling as
/// <https://learn.microsoft.com/graph/throttling>).
async fn graph_entry(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let client_request_id = headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let crid = client_request_id.as_deref();
    shared.count(|c| c.graph_requests += 1);
    let roles = match auth::check_bearer(&shared, &headers, Audience::Graph) {
        Ok(r) => r,
        Err(refusal) => return auth::graph_refusal(refusal).into_response(crid),
    };
    let fault = {
        let mut st = shared.state.lock();
        st.faults.pop_front().map(|f| (f, st.retry_after_secs))
    };
    if let Some((fault, retry_after)) = fault {
        return errors::graph_fault(fault, retry_after).into_response(crid);
    }
    let path = percent_decode(uri.path());
    let path = path.strip_prefix("/v1.0").unwrap_or(&path).to_owned();
    if path == "/$batch" {
        if method != Method::POST {
            return errors::graph_rejected(
                StatusCode::METHOD_NOT_ALLOWED,
                "BadRequest",
                "$batch takes POST.",
            )
            .into_response(crid);
        }
        return batch::run(&shared, &roles, &body).into_response(crid);
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let call = graph::Call {
        shared: &shared,
        method,
        path,
        query: uri
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default(),
        prefer: header("prefer"),
        body: body.to_vec(),
        roles: &roles,
    };
    graph::dispatch(&call).into_response(crid)
}

/// Latency, the total count, and the rejected / fault counts of every request.
async fn every_request(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let micros = shared.latency_micros.load(Ordering::Relaxed);
    if micros > 0 {
        tokio::time::sleep(Duration::from_micros(micros)).await;
    }
    shared.state.lock().counters.total += 1;
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    shared.state.lock().counters.service_time += started.elapsed();
    let rejected = response.extensions().get::<errors::Rejected>().is_some();
    let fault = response
        .extensions()
        .get::<errors::InjectedFault>()
        .is_some();
    if rejected || fault {
        let mut st = shared.state.lock();
        if rejected {
            st.counters.rejected += 1;
        }
        if fault {
            st.counters.faults += 1;
        }
    }
    response
}
