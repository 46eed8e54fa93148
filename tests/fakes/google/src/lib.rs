//! A fake Google for coexist's tests: an in-process HTTP server (axum on tokio,
//! bound to `127.0.0.1:0`) that behaves like the parts of Google that the Google
//! connector uses, built from the official descriptions:
//!
//! - the OAuth 2.0 token endpoint for service accounts with domain-wide
//!   delegation (<https://developers.google.com/identity/protocols/oauth2/service-account>),
//! - the Admin SDK Directory API v1: users, groups, members, domains and domain
//!   aliases (<https://developers.google.com/admin-sdk/directory/reference/rest>),
//!   validated at run time against a copy of the parts of Google's discovery
//!   document that coexist uses (`testdata/directory_v1_subset.json`),
//! - the Domain Shared Contacts API, Atom / GData 3.0, with its batch endpoint
//!   (<https://developers.google.com/workspace/admin/domain-shared-contacts>).
//!
//! It rejects what the real service rejects (unknown query parameters, page
//! sizes over the maximum, unknown fields in `fields`, missing, invalid or
//! expired bearer tokens, bad JWTs, a wrong `GData-Version`, batches of more than
//! 100 operations, contacts over 2 KB) with the error bodies Google documents,
//! and it injects faults on command (rate-limit bursts, 5xx, a forbidden
//! answer, slow replies, expired tokens, revoked domain-wide delegation, a
//! listing that fails half-way, a token endpoint that cannot be reached).
//!
//! Directory errors are JSON (`{"error":{"code":…,"message":…,"errors":[…],"status":…}}`);
//! Shared Contacts errors are GData XML documents
//! (`<errors xmlns="http://schemas.google.com/g/2005"><error><domain>…</domain><code>…</code><internalReason>…</internalReason></error></errors>`),
//! as the GData protocol sends them.
//!
//! What a client must do, as with Google:
//!
//! - Directory: `customer=my_customer` (or the customer id) or `domain=` on
//!   users.list and groups.list; page tokens are opaque and `nextPageToken`
//!   is absent on the last page; `maxResults` at most 500 (users) or 200
//!   (groups, members), from the discovery document.
//! - Contacts: `GData-Version: 3.0` (or `v=3.0`), `Content-Type:
//!   application/atom+xml` on writes. Edit links carry the entry's version
//!   (`…/full/{id}/{version}`); `…/full/{id}` is served too. PUT and DELETE
//!   need `If-Match` (the entry's etag or `*`), or the entry's `gd:etag`
//!   attribute (PUT), or a versioned edit link: a stale etag is 412, a stale
//!   version 409, none of them 403. In a batch, update and delete entries name
//!   their contact by `<id>` (or the edit link) and carry `gd:etag` (or a
//!   versioned edit link); each entry gets its own `batch:status`.
//! - Tokens: the JWT's `scope` may only name [`AUTHORIZED_SCOPES`], and each
//!   method needs one of the scopes the discovery document lists for it
//!   (contacts: [`CONTACTS_SCOPE`]).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use coexist_fake_google::{FakeGoogle, FakeOptions, FakeUser};
//! let google = FakeGoogle::start(FakeOptions::default()).await?;
//! google.add_user(FakeUser {
//!     primary_email: "ann@acmecorp.com".into(),
//!     given_name: "Ann".into(),
//!     family_name: "Lee".into(),
//!     ..FakeUser::default()
//! });
//! let key_file = google.service_account_key_json(); // token_uri points at the fake
//! # let _ = key_file; Ok(()) }
//! ```

// Handlers return `Result<Response, Response>`: the error side is the HTTP
// answer itself, built once per refused request, so its size does not matter.
#![allow(clippy::result_large_err)]

mod atom;
mod auth;
mod contacts;
mod directory;
mod errors;
mod gmail;
mod spec;
mod state;
mod unreachable;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use parking_lot::Mutex;
use tokio::task::JoinHandle;

pub use state::{FakeContact, FakeGroup, FakeUser, MemberType};
pub use unreachable::UnreachableEndpoint;

/// The scope that the Domain Shared Contacts API requires.
pub const CONTACTS_SCOPE: &str = "https://www.google.com/m8/feeds";

/// The scopes the fake's domain-wide delegation grants the test service
/// account (as an admin would list them in the Admin console). A JWT asking
/// for any other scope is refused with `unauthorized_client`, as Google does.
pub const AUTHORIZED_SCOPES: &[&str] = &[
    "https://www.googleapis.com/auth/admin.directory.user",
    "https://www.googleapis.com/auth/admin.directory.user.readonly",
    "https://www.googleapis.com/auth/admin.directory.group",
    "https://www.googleapis.com/auth/admin.directory.group.readonly",
    "https://www.googleapis.com/auth/admin.directory.group.member",
    "https://www.googleapis.com/auth/admin.directory.group.member.readonly",
    "https://www.googleapis.com/auth/admin.directory.domain",
    "https://www.googleapis.com/auth/admin.directory.domain.readonly",
    CONTACTS_SCOPE,
    GMAIL_SETTINGS_SCOPE,
];

/// The Gmail scope of the forwarding settings (users.settings.forwardingAddresses,
/// users.settings.updateAutoForwarding); a token for it acts as one user.
pub const GMAIL_SETTINGS_SCOPE: &str = "https://www.googleapis.com/auth/gmail.settings.sharing";

/// How the fake is set up.
#[derive(Debug, Clone)]
pub struct FakeOptions {
    /// The customer's primary domain, e.g. `acmecorp.com`.
    pub domain: String,
    /// The customer id, e.g. `C0123abc` (`my_customer` is accepted too).
    pub customer_id: String,
    /// The admin email that a JWT's `sub` must name (domain-wide delegation).
    pub admin: String,
    /// A fixed delay added to every request (token endpoint included).
    pub latency: Duration,
    /// How long issued access tokens live (`expires_in`).
    pub token_lifetime: Duration,
}

impl Default for FakeOptions {
    /// `acmecorp.com`, customer `C0123abc`, admin `admin@acmecorp.com`, no
    /// latency, tokens living 3600 s.
    fn default() -> Self {
        FakeOptions {
            domain: "acmecorp.com".to_owned(),
            customer_id: "C0123abc".to_owned(),
            admin: "admin@acmecorp.com".to_owned(),
            latency: Duration::ZERO,
            token_lifetime: Duration::from_secs(3600),
        }
    }
}

/// A fault to inject into the next requests (see [`FakeGoogle::fail_next`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// 403 `usageLimits` / `userRateLimitExceeded` (per-user rate limit).
    RateLimit403,
    /// 403 `usageLimits` / `quotaExceeded` (concurrent requests limit).
    Quota403,
    /// 429 `usageLimits` / `rateLimitExceeded`, with a `Retry-After` header.
    TooMany429,
    /// 500 `backendError`.
    ServerError500,
    /// 503 `backendError`, service unavailable.
    Unavailable503,
    /// 403 `global` / `forbidden`, "Not Authorized to access this
    /// resource/api": the caller lacks the rights (the admin lost the
    /// privilege, access to the API was turned off), as
    /// <https://developers.google.com/admin-sdk/reseller/v1/support/directory_api_common_errors>
    /// ("403:forbidden") describes it. Not a throttling answer: a client must
    /// not retry it.
    Forbidden403,
}

/// Requests the fake has received, by endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// POST /token.
    pub token: u64,
    /// users.list and users.get, and Gmail's getAutoForwarding.
    pub users: u64,
    /// groups.list and groups.get.
    pub groups: u64,
    /// members.list and members.get.
    pub members: u64,
    /// domains.list and domains.get.
    pub domains: u64,
    /// domainAliases.list and domainAliases.get.
    pub domain_aliases: u64,
    /// users.insert, users.patch, users.update, users.delete,
    /// users.aliases.insert and users.aliases.delete, and the Gmail
    /// settings writes.
    pub user_writes: u64,
    /// GET and POST on the contacts feed (`…/full`).
    pub contacts_feed: u64,
    /// POST on the contacts batch feed (`…/full/batch`).
    pub contacts_batch: u64,
    /// GET, PUT and DELETE on one contact (`…/full/{id}`).
    pub contacts_entry: u64,
    /// Every request, token endpoint and unknown paths included.
    pub total: u64,
    /// Requests refused as malformed or unauthorised (400, 401, 403 other
    /// than injected faults, 404 for an unknown path, 405, 415).
    pub rejected: u64,
    /// Requests answered with an injected fault ([`FakeGoogle::fail_next`],
    /// [`FakeGoogle::fail_listing_after_pages`]).
    pub faults: u64,
}

/// A running fake Google. The server task is aborted when this is dropped.
pub struct FakeGoogle {
    shared: Arc<state::Shared>,
    addr: SocketAddr,
    server: JoinHandle<()>,
}

impl Drop for FakeGoogle {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl std::fmt::Debug for FakeGoogle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeGoogle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl FakeGoogle {
    /// Starts the fake on `127.0.0.1` with a free port.
    pub async fn start(options: FakeOptions) -> std::io::Result<FakeGoogle> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let base_url = format!("http://{addr}");
        let spec = spec::Spec::load().map_err(std::io::Error::other)?;
        let keys = auth::Keys::load(&base_url).map_err(std::io::Error::other)?;
        let shared = Arc::new(state::Shared {
            base_url,
            domain: options.domain.to_ascii_lowercase(),
            customer_id: options.customer_id.clone(),
            admin: options.admin.to_ascii_lowercase(),
            kinds: state::Kinds::from_spec(&spec),
            spec,
            keys,
            latency_micros: AtomicU64::new(duration_micros(options.latency)),
            state: Mutex::new(state::State::new(options.token_lifetime)),
        });
        let app = router(shared.clone());
        let server = tokio::spawn(async move {
            // The fake's task ends when the listener fails or the task is aborted.
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeGoogle {
            shared,
            addr,
            server,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The Directory API root: base + `/admin/directory/v1/`.
    pub fn directory_url(&self) -> String {
        format!("{}/admin/directory/v1/", self.shared.base_url)
    }

    /// The Shared Contacts root: base + `/m8/feeds/contacts/` (append `{domain}/full`).
    pub fn contacts_url(&self) -> String {
        format!("{}/m8/feeds/contacts/", self.shared.base_url)
    }

    /// The OAuth 2.0 token endpoint: base + `/token`.
    pub fn token_uri(&self) -> String {
        self.shared.keys.token_uri.clone()
    }

    /// The test service account's email (the JWT `iss`).
    pub fn client_email(&self) -> String {
        auth::CLIENT_EMAIL.to_owned()
    }

    /// A Google service-account key file (JSON) for the fixed test key, whose
    /// `token_uri` is [`FakeGoogle::token_uri`].
    pub fn service_account_key_json(&self) -> String {
        self.shared
            .keys
            .key_file_json(auth::PRIVATE_KEY_PEM, &self.shared.keys.token_uri)
    }

    /// The test key file with another `token_uri` (for instance an
    /// [`UnreachableEndpoint`]'s): for "the token endpoint is down" tests.
    pub fn service_account_key_json_with_token_uri(&self, token_uri: &str) -> String {
        self.shared
            .keys
            .key_file_json(auth::PRIVATE_KEY_PEM, token_uri)
    }

    /// A key file with the same identity but another private key: JWTs signed
    /// with it are refused (`invalid_grant`, bad signature). For negative tests.
    pub fn foreign_service_account_key_json(&self) -> String {
        self.shared
            .keys
            .key_file_json(auth::OTHER_PRIVATE_KEY_PEM, &self.shared.keys.token_uri)
    }

    /// The admin removes the service account's domain-wide delegation (Admin
    /// console, Security > API controls): from now on every JWT is refused
    /// with 401 `unauthorized_client`, as for a client "not authorized for
    /// any of the scopes requested"
    /// (<https://developers.google.com/identity/protocols/oauth2/service-account>).
    /// Tokens already issued stay valid until they expire.
    pub fn revoke_delegation(&self) {
        self.shared.state.lock().delegation_revoked = true;
    }

    /// Issues an access token directly (no JWT), with the given scopes, for
    /// tests that exercise the APIs without the token exchange. Counts as no
    /// request.
    pub fn mint_token(&self, scopes: &[&str]) -> String {
        let scopes = scopes.iter().map(|s| (*s).to_owned()).collect();
        let admin = self.shared.admin.clone();
        self.shared.state.lock().issue_token(scopes, admin).0
    }

    /// Adds (or replaces, same id or primary email) a user. An empty `id` gets
    /// a generated 21-digit id; an empty `full_name` is "given family".
    pub fn add_user(&self, user: FakeUser) {
        self.shared.state.lock().add_user(user);
    }

    /// Changes a user in place; its etag changes with its content.
    /// The user with this address (primary or alias), as stored.
    pub fn user(&self, email: &str) -> Option<FakeUser> {
        let st = self.shared.state.lock();
        let id = st.find_user_id(email)?;
        st.users.get(&id).map(|stored| stored.user.clone())
    }

    pub fn update_user(&self, primary_email: &str, f: impl FnOnce(&mut FakeUser)) {
        self.shared.state.lock().update_user(primary_email, f);
    }

    /// Deletes a user (and its group memberships). It is then listed only with
    /// `showDeleted=true`.
    pub fn remove_user(&self, primary_email: &str) {
        self.shared.state.lock().remove_user(primary_email);
    }

    /// Adds (or replaces, same id or email) a group.
    pub fn add_group(&self, group: FakeGroup) {
        self.shared.state.lock().add_group(group);
    }

    /// Makes `member_email` a direct `MEMBER` of the group. A
    /// [`MemberType::Customer`] member ignores `member_email`.
    pub fn add_member(&self, group_email: &str, member_email: &str, kind: MemberType) {
        self.add_member_with_role(group_email, member_email, kind, "MEMBER");
    }

    /// Like [`FakeGoogle::add_member`] with a role: `OWNER`, `MANAGER` or `MEMBER`.
    pub fn add_member_with_role(
        &self,
        group_email: &str,
        member_email: &str,
        kind: MemberType,
        role: &str,
    ) {
        let customer = self.shared.customer_id.clone();
        self.shared
            .state
            .lock()
            .add_member(group_email, member_email, kind, role, &customer);
    }

    /// Removes a direct member from a group.
    pub fn remove_member(&self, group_email: &str, member_email: &str) {
        self.shared
            .state
            .lock()
            .remove_member(group_email, member_email);
    }

    /// Adds a domain alias of the primary domain, e.g. `gapps.acmecorp.com`.
    pub fn add_domain_alias(&self, alias: &str) {
        let parent = self.shared.domain.clone();
        self.shared.state.lock().add_domain_alias(alias, &parent);
    }

    /// Adds a secondary domain of the customer.
    pub fn add_domain(&self, domain: &str) {
        self.shared.state.lock().add_domain(domain);
    }

    /// Seeds a shared contact; returns its id (the given one, or a generated
    /// one when `id` is empty). Its etag is generated.
    pub fn add_contact(&self, contact: FakeContact) -> String {
        self.shared.state.lock().add_contact(contact)
    }

    /// The shared contacts that exist (deleted ones excluded), in id order.
    pub fn contacts(&self) -> Vec<FakeContact> {
        self.shared.state.lock().live_contacts()
    }

    /// Changes the maximum number of shared contacts (default 200,000).
    pub fn set_max_contacts(&self, max: usize) {
        self.shared.state.lock().max_contacts = max;
    }

    /// Bulk seeding for benchmarks, deterministic: users `user{N}@domain`
    /// (N from 0), groups `group{N}@domain`, each with `members_per_group`
    /// users as members (user `(g * members_per_group + k) % users`).
    pub fn seed_synthetic(&self, users: usize, groups: usize, members_per_group: usize) {
        let domain = self.shared.domain.clone();
        self.shared
            .state
            .lock()
            .seed_synthetic(&domain, users, groups, members_per_group);
    }

    /// The next `n` requests (token endpoint excluded) fail with `fault`.
    /// Calls accumulate: faults are served in the order they were asked for.
    pub fn fail_next(&self, n: usize, fault: Fault) {
        let mut st = self.shared.state.lock();
        for _ in 0..n {
            st.faults.push_back(fault);
        }
    }

    /// The next `n` requests to the token endpoint fail with `fault`.
    pub fn fail_next_token(&self, n: usize, fault: Fault) {
        let mut st = self.shared.state.lock();
        for _ in 0..n {
            st.token_faults.push_back(fault);
        }
    }

    /// The `(pages + 1)`-th page of any users, groups or members listing fails
    /// with 500: once (the retry succeeds), or every time (`persistent`).
    pub fn fail_listing_after_pages(&self, pages: usize, persistent: bool) {
        self.shared.state.lock().listing_fault = Some(state::ListingFault { pages, persistent });
    }

    /// Removes pending faults (both [`FakeGoogle::fail_next`] and listing faults).
    pub fn clear_faults(&self) {
        let mut st = self.shared.state.lock();
        st.faults.clear();
        st.token_faults.clear();
        st.listing_fault = None;
    }

    /// The `Retry-After` value (seconds) sent with [`Fault::TooMany429`]; default 1.
    pub fn set_retry_after(&self, seconds: u64) {
        self.shared.state.lock().retry_after_secs = seconds;
    }

    /// Changes the fixed delay added to every request.
    pub fn set_latency(&self, latency: Duration) {
        self.shared
            .latency_micros
            .store(duration_micros(latency), Ordering::Relaxed);
    }

    /// Changes the lifetime of tokens issued from now on.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.shared.state.lock().token_lifetime = lifetime;
    }

    /// Tokens issued so far answer 401 from now on.
    pub fn expire_all_tokens(&self) {
        self.shared.state.lock().tokens.clear();
    }

    /// Requests received since the start or the last [`FakeGoogle::reset_counts`].
    pub fn requests(&self) -> RequestCounts {
        self.shared.state.lock().counts.clone()
    }

    /// Sets all request counts to zero.
    pub fn reset_counts(&self) {
        self.shared.state.lock().counts = RequestCounts::default();
    }
}

fn duration_micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn router(shared: Arc<state::Shared>) -> Router {
    let dir = "/admin/directory/v1";
    let contacts = "/m8/feeds/contacts/{domain}/{projection}";
    Router::new()
        .route("/token", post(auth::token))
        .route(
            "/gmail/v1/users/{userId}/settings/forwardingAddresses",
            post(gmail::forwarding_addresses_create),
        )
        .route(
            "/gmail/v1/users/{userId}/settings/autoForwarding",
            get(gmail::get_auto_forwarding).put(gmail::update_auto_forwarding),
        )
        .route(
            &format!("{dir}/users"),
            get(directory::users_list).post(directory::users_insert),
        )
        .route(
            &format!("{dir}/users/{{userKey}}/aliases"),
            post(directory::aliases_insert),
        )
        .route(
            &format!("{dir}/users/{{userKey}}/aliases/{{alias}}"),
            axum::routing::delete(directory::aliases_delete),
        )
        .route(
            &format!("{dir}/users/{{userKey}}"),
            get(directory::users_get)
                .patch(directory::users_patch)
                .put(directory::users_update)
                .delete(directory::users_delete),
        )
        .route(&format!("{dir}/groups"), get(directory::groups_list))
        .route(
            &format!("{dir}/groups/{{groupKey}}"),
            get(directory::groups_get),
        )
        .route(
            &format!("{dir}/groups/{{groupKey}}/members"),
            get(directory::members_list),
        )
        .route(
            &format!("{dir}/groups/{{groupKey}}/members/{{memberKey}}"),
            get(directory::members_get),
        )
        .route(
            &format!("{dir}/customer/{{customer}}/domains"),
            get(directory::domains_list),
        )
        .route(
            &format!("{dir}/customer/{{customer}}/domains/{{domainName}}"),
            get(directory::domains_get),
        )
        .route(
            &format!("{dir}/customer/{{customer}}/domainaliases"),
            get(directory::domain_aliases_list),
        )
        .route(
            &format!("{dir}/customer/{{customer}}/domainaliases/{{domainAliasName}}"),
            get(directory::domain_aliases_get),
        )
        .route(contacts, get(contacts::feed_get).post(contacts::feed_post))
        .route(&format!("{contacts}/batch"), post(contacts::batch))
        .route(
            &format!("{contacts}/{{id}}"),
            get(contacts::entry_get)
                .put(contacts::entry_put)
                .delete(contacts::entry_delete),
        )
        .route(
            &format!("{contacts}/{{id}}/{{version}}"),
            get(contacts::entry_get_versioned)
                .put(contacts::entry_put_versioned)
                .delete(contacts::entry_delete_versioned),
        )
        .fallback(errors::not_found_page)
        .method_not_allowed_fallback(errors::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            every_request,
        ))
        .with_state(shared)
}

/// Latency, the total count, and the rejected / fault counts of every request.
async fn every_request(
    State(shared): State<Arc<state::Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let micros = shared.latency_micros.load(Ordering::Relaxed);
    if micros > 0 {
        tokio::time::sleep(Duration::from_micros(micros)).await;
    }
    shared.state.lock().counts.total += 1;
    let response = next.run(request).await;
    let rejected = response.extensions().get::<errors::Rejected>().is_some();
    let fault = response
        .extensions()
        .get::<errors::InjectedFault>()
        .is_some();
    if rejected || fault {
        let mut st = shared.state.lock();
        if rejected {
            st.counts.rejected += 1;
        }
        if fault {
            st.counts.faults += 1;
        }
    }
    response
}
