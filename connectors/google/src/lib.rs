//! coexist's Google Workspace connector.
//!
//! * **Reads** users, groups and their members, domains and domain aliases
//!   through the Admin SDK Directory API v1
//!   (<https://developers.google.com/admin-sdk/directory/reference/rest>),
//!   with the largest page sizes the API allows and `fields` partial
//!   responses, and the domain's shared contacts through the Domain Shared
//!   Contacts API (<https://developers.google.com/workspace/admin/domain-shared-contacts>).
//!   The Directory API has no delta query, so every pull is
//!   [`PullMode::Full`](coexist_connector::PullMode::Full); each recipient carries its etag so the engine skips
//!   unchanged ones.
//! * **Writes** coexist's stubs as shared contacts (names, addresses, phones,
//!   organization, and coexist's marker in an extended property), through the
//!   batch endpoint (100 operations a request) in [`Connector::apply_many`]
//!   and the entry endpoints in [`Connector::apply`]. Contacts without the
//!   marker are never touched. Stubs on Google route through the domain's
//!   own catch-all / split-delivery routing ([`coexist_connector::Route::DomainRouting`]).
//! * **Authenticates** as a service account with domain-wide delegation
//!   (see [`auth`]), under a client-side rate limit and bounded concurrency,
//!   retrying throttling and server errors with backoff (see [`http`]).
//! * **Checks** (`coexist doctor`) the credentials and scopes, the routing
//!   domain, and explains the Gmail routing settings no API exposes.

pub mod auth;
pub mod config;
pub mod contacts;
pub mod directory;
pub mod http;
pub mod kind;
pub mod xml;

mod apply;
mod contact_index;
mod doctor;
mod feed;
mod forward;
mod provision;
mod pull;
mod retire;

use std::time::Duration;

use async_trait::async_trait;
use coexist_connector::retry::{RateLimiter, RetryPolicy};
use coexist_connector::{
    Applied, Capacity, Connector, ConnectorError, Finding, NewAccount, Operation, Progress,
    Provisioned, Pull, Recipient,
};
use reqwest::Url;
use tokio::sync::Mutex;
use tracing::Instrument;

pub use config::GoogleConfig;
pub use kind::{GoogleKind, KIND};

use crate::auth::{ServiceAccountKey, TokenSource};
use crate::contact_index::ContactIndex;
use crate::directory::Directory;
use crate::http::Http;

/// Google's limit of shared contacts per domain.
pub const MAX_SHARED_CONTACTS: u64 = 200_000;

/// A connection to one Google Workspace customer.
///
/// Its work is spread over the crate's private modules, each adding the
/// methods of one job: `pull` (the Directory API reads and the pull),
/// `feed` (reads of the shared contacts feed), `contact_index` (coexist's
/// existing contacts by anchor), `apply` (the writes) and `doctor` (the
/// checks). The [`Connector`] implementation below only delegates to them.
pub struct GoogleConnector {
    system: String,
    config: GoogleConfig,
    http: Http,
    directory: Directory,
    /// `<contacts_url><domain>/full`.
    feed_url: Url,
    /// `<contacts_url><domain>/full/batch`.
    batch_url: Url,
    index: Mutex<ContactIndex>,
    /// The client of `coexist provision`, with a token of its own for the
    /// user-management scope ([`auth::PROVISION_SCOPES`]); only with a
    /// `provision` table.
    provisioner: Option<Http>,
    /// What a Gmail settings client acting as one user is made of
    /// (`coexist move`); only with a `provision` table.
    gmail: Option<forward::GmailAccess>,
}

impl std::fmt::Debug for GoogleConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleConnector")
            .field("system", &self.system)
            .field("domain", &self.config.domain)
            .finish_non_exhaustive()
    }
}

fn trailing_slash(url: &str) -> String {
    if url.ends_with('/') {
        url.to_string()
    } else {
        format!("{url}/")
    }
}

fn parse_url(what: &str, url: &str) -> Result<Url, ConnectorError> {
    Url::parse(url)
        .map_err(|e| ConnectorError::permanent(format!("{what} `{url}` is not a URL: {e}")))
}

impl GoogleConnector {
    /// Sets up the connector: reads and parses the service-account key (an
    /// unreadable or malformed key is an [`ConnectorError::Authentication`]
    /// error) and checks the configuration. No request is made.
    pub fn new(system_id: &str, config: GoogleConfig) -> Result<Self, ConnectorError> {
        config.check().map_err(|message| {
            ConnectorError::permanent(format!("system {system_id}: {message}"))
        })?;
        let secret = config
            .service_account_key
            .resolve()
            .map_err(|e| ConnectorError::authentication(format!("system {system_id}: {e}")))?;
        let key = ServiceAccountKey::parse(&secret)
            .map_err(|e| ConnectorError::authentication(format!("system {system_id}: {e}")))?;
        let directory_base = parse_url("directory_url", &trailing_slash(&config.directory_url))?;
        let contacts_base = parse_url("contacts_url", &trailing_slash(&config.contacts_url))?;
        let feed_url = contacts_base
            .join(&format!("{}/full", config.domain.trim()))
            .map_err(|e| ConnectorError::permanent(format!("the contacts feed URL: {e}")))?;
        let batch_url = parse_url("the batch URL", &format!("{feed_url}/batch"))?;
        let client = reqwest::Client::builder()
            .user_agent(concat!("coexist/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .timeout(Duration::from_secs(config.request_timeout_secs.max(1)))
            .pool_max_idle_per_host(config.concurrency)
            .build()
            .map_err(|e| {
                ConnectorError::permanent(format!("system {system_id}: the HTTP client: {e}"))
            })?;
        let retry = RetryPolicy {
            max_attempts: config.max_attempts,
            base_delay: Duration::from_millis(config.retry_base_delay_ms),
            max_delay: Duration::from_millis(config.retry_max_delay_ms),
        };
        let gmail_base = parse_url("gmail_url", &trailing_slash(&config.gmail_url))?;
        let mut gmail = None;
        let provisioner = match &config.provision {
            Some(_) => {
                let key = ServiceAccountKey::parse(&secret).map_err(|e| {
                    ConnectorError::authentication(format!("system {system_id}: {e}"))
                })?;
                gmail = Some(forward::GmailAccess {
                    key: key.clone(),
                    client: client.clone(),
                    retry,
                    base: gmail_base,
                    requests_per_minute: config.requests_per_minute,
                });
                let tokens = TokenSource::new(key, config.admin.trim(), client.clone(), retry)
                    .with_scopes(&auth::PROVISION_SCOPES);
                Some(Http::new(
                    client.clone(),
                    tokens,
                    RateLimiter::per_minute(config.requests_per_minute),
                    1,
                    retry,
                ))
            }
            None => None,
        };
        let tokens = TokenSource::new(key, config.admin.trim(), client.clone(), retry);
        let http = Http::new(
            client,
            tokens,
            RateLimiter::per_minute(config.requests_per_minute),
            config.concurrency,
            retry,
        );
        let directory = Directory {
            base: directory_base,
            customer: config.customer.clone(),
            page_size_users: config.page_size_users,
            page_size_groups: config.page_size_groups,
        };
        Ok(GoogleConnector {
            system: system_id.to_string(),
            config,
            http,
            directory,
            feed_url,
            batch_url,
            index: Mutex::new(ContactIndex::default()),
            provisioner,
            gmail,
        })
    }

    /// The Shared Contacts feed URL of the domain.
    pub fn feed_url(&self) -> &Url {
        &self.feed_url
    }
}

#[async_trait]
impl Connector for GoogleConnector {
    fn system(&self) -> &str {
        &self.system
    }

    /// Google's documented limit: at most 200,000 shared contacts a domain
    /// (<https://developers.google.com/workspace/admin/domain-shared-contacts#limits>).
    /// Contacts coexist did not make count against it too; the engine
    /// counts only its own, so the limit is an upper bound.
    fn capacity(&self) -> Option<Capacity> {
        Some(Capacity {
            stubs: MAX_SHARED_CONTACTS,
            source: format!(
                "Google allows at most {MAX_SHARED_CONTACTS} shared contacts per domain ({})",
                self.config.domain
            ),
        })
    }

    /// Reads users, groups (members resolved) and coexist's shared contacts.
    /// Always a full read ([`PullMode::Full`](coexist_connector::PullMode::Full), no cursor): the Directory API
    /// has no delta query. A listing that fails after its retries leaves the
    /// pull incomplete (`complete = false`, with a problem naming it) rather
    /// than failing it, unless nothing could be read at all or the
    /// credentials were refused.
    async fn pull(
        &self,
        _cursor: Option<&str>,
        progress: &dyn Progress,
    ) -> Result<Pull, ConnectorError> {
        let span =
            tracing::info_span!("google_pull", system = %self.system, domain = %self.config.domain);
        self.read_all(progress).instrument(span).await
    }

    /// Carries out one operation through the contact's own endpoints
    /// (POST to the feed, PUT or DELETE on the edit link).
    async fn apply(&self, operation: &Operation) -> Result<Applied, ConnectorError> {
        let span = tracing::info_span!("google_apply", system = %self.system, action = operation.action(), anchor = %operation.stub().anchor);
        self.apply_one(operation).instrument(span).await
    }

    /// Carries out operations through the batch endpoint, 100 a request and
    /// several requests at a time; one result per operation, in order. After
    /// an authentication failure (now or earlier in the run) the operations
    /// not yet sent all fail with that error, unsent.
    async fn apply_many(&self, operations: &[Operation]) -> Vec<Result<Applied, ConnectorError>> {
        let span = tracing::info_span!("google_apply_many", system = %self.system, operations = operations.len());
        self.apply_batched(operations).instrument(span).await
    }

    /// Creates a user with users.insert (see the `provision` module).
    async fn provision(&self, account: &NewAccount) -> Result<Provisioned, ConnectorError> {
        let span = tracing::info_span!("google_provision", system = %self.system, address = %account.primary_address);
        self.create_user(account).instrument(span).await
    }

    /// Suspends a user with users.patch (see the `provision` module).
    async fn suspend(&self, recipient: &Recipient) -> Result<(), ConnectorError> {
        let span = tracing::info_span!("google_suspend", system = %self.system, address = %recipient.primary_address);
        self.suspend_user(recipient).instrument(span).await
    }

    /// Makes the user's Gmail forward to `to` and marks the user so reads
    /// list it as a forwarding entry (see the `forward` module).
    async fn forward(&self, recipient: &Recipient, to: &str) -> Result<(), ConnectorError> {
        let span = tracing::info_span!("google_forward", system = %self.system, address = %recipient.primary_address);
        self.forward_user(recipient, to).instrument(span).await
    }

    /// Retires the old user of a person moved away as the `provision`
    /// table's `retire` says: renamed, the person's aliases deleted,
    /// coexist's forward turned off, suspended; or deleted (see the
    /// `retire` module). Refused without `retire`.
    async fn retire(
        &self,
        recipient: &Recipient,
        addresses: &[String],
        forward: &str,
    ) -> Result<(), ConnectorError> {
        let span = tracing::info_span!("google_retire", system = %self.system, address = %recipient.primary_address);
        self.retire_user(recipient, addresses, forward)
            .instrument(span)
            .await
    }

    /// Checks the credentials and scopes, the routing domain, and explains
    /// the Gmail routing no API exposes.
    async fn doctor(&self) -> Vec<Finding> {
        let span = tracing::info_span!("google_doctor", system = %self.system);
        self.checks().instrument(span).await
    }
}
