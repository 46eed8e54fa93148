//! coexist's Google Workspace connector.
//!
//! * **Reads** users, groups and their members, domains and domain aliases
//!   through the Admin SDK Directory API v1
//!   (<https://developers.google.com/admin-sdk/directory/reference/rest>),
//!   with the largest page sizes the API allows and `fields` partial
//!   responses, and the domain's shared contacts through the Domain Shared
//!   Contacts API (<https://developers.google.com/workspace/admin/domain-shared-contacts>).
//!   The Directory API has no delta query, so every pull is
//!   [`PullMode::Full`]; each recipient carries its etag so the engine skips
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
pub mod xml;

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use coexist_connector::retry::{RateLimiter, RetryPolicy};
use coexist_connector::{
    Applied, Capacity, Connector, ConnectorError, Finding, FoundStub, Operation, Problem, Progress,
    Pull, PullMode, Stub,
};
use futures::stream::{self, StreamExt};
use reqwest::{Method, Url};
use tokio::sync::Mutex;
use tracing::Instrument;

pub use config::GoogleConfig;

use crate::auth::{ServiceAccountKey, TokenSource};
use crate::contacts::{BatchEntry, BatchKind, ContactEntry};
use crate::directory::{Directory, ListedGroup, Listing};
use crate::http::{Http, Request};

/// A connection to one Google Workspace customer.
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
}

impl std::fmt::Debug for GoogleConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleConnector")
            .field("system", &self.system)
            .field("domain", &self.config.domain)
            .finish_non_exhaustive()
    }
}

/// Where coexist's contacts are, from the last read of the feed and the
/// writes since: makes a create of an anchor that already has a contact an
/// update, and gives updates and deletes the newest edit link and etag.
#[derive(Debug, Default)]
struct ContactIndex {
    /// Whether a complete read of the feed filled the index.
    loaded: bool,
    /// anchor → contact id.
    by_anchor: HashMap<String, String>,
    /// contact id → (edit link, etag).
    by_id: HashMap<String, (String, Option<String>)>,
}

impl ContactIndex {
    fn record(&mut self, anchor: &str, id: &str, edit_link: &str, etag: Option<String>) {
        self.by_anchor.insert(anchor.to_string(), id.to_string());
        self.by_id
            .insert(id.to_string(), (edit_link.to_string(), etag));
    }

    fn forget(&mut self, id: &str) {
        self.by_id.remove(id);
        self.by_anchor.retain(|_, contact| contact != id);
    }
}

/// What one operation does on Google, resolved against the index.
#[derive(Debug, Clone)]
enum Action {
    Insert,
    Update {
        id: String,
        edit_link: String,
        etag: Option<String>,
    },
    Delete {
        id: String,
        edit_link: String,
        etag: Option<String>,
    },
}

#[derive(Debug, Clone)]
struct Planned {
    action: Action,
    /// The stub written (create, update) or removed (delete).
    stub: Stub,
    /// The anchor the contact carries now (differs from `stub.anchor` when
    /// an update changes it).
    current_anchor: String,
    /// The operation was a create (a vanished contact is then inserted).
    from_create: bool,
    /// A version conflict was already resolved once.
    conflict_retried: bool,
}

impl Planned {
    fn describe(&self) -> String {
        let verb = match (&self.action, self.from_create) {
            (Action::Insert, _) => "creating",
            (Action::Update { .. }, true) => "creating (as an update of the existing contact)",
            (Action::Update { .. }, false) => "updating",
            (Action::Delete { .. }, _) => "deleting",
        };
        format!(
            "{verb} the shared contact for {} ({})",
            self.stub.primary_address, self.stub.anchor
        )
    }
}

/// The result of one attempt at one operation (short-lived: its size does
/// not matter).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum Outcome {
    Done(Result<Applied, ConnectorError>),
    /// A transient failure of this operation alone: send it again later.
    Again(ConnectorError),
    /// 409 / 412: the contact changed since it was read.
    Conflict(String),
    /// 404: the contact is gone.
    Vanished,
}

/// The first authentication error of one apply: after it, nothing more is
/// sent to the system.
#[derive(Debug, Default)]
struct Stop(OnceLock<ConnectorError>);

impl Stop {
    fn error(&self) -> Option<ConnectorError> {
        self.0.get().cloned()
    }

    fn note_error(&self, error: &ConnectorError) {
        if error.is_authentication() {
            let _ = self.0.set(error.clone());
        }
    }

    fn note(&self, outcome: &Outcome) {
        if let Outcome::Done(Err(error)) = outcome {
            self.note_error(error);
        }
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
        let invalid = |message: String| {
            Err(ConnectorError::permanent(format!(
                "system {system_id}: {message}"
            )))
        };
        if config.domain.trim().is_empty() {
            return invalid("`domain` is empty".into());
        }
        if config.admin.trim().is_empty() {
            return invalid("`admin` is empty".into());
        }
        if !(1..=config::MAX_PAGE_SIZE_USERS).contains(&config.page_size_users) {
            return invalid(format!(
                "`page_size_users` must be between 1 and {} (users.list maxResults)",
                config::MAX_PAGE_SIZE_USERS
            ));
        }
        if !(1..=config::MAX_PAGE_SIZE_GROUPS).contains(&config.page_size_groups) {
            return invalid(format!(
                "`page_size_groups` must be between 1 and {} (groups.list and members.list maxResults)",
                config::MAX_PAGE_SIZE_GROUPS
            ));
        }
        if config.page_size_contacts == 0 {
            return invalid("`page_size_contacts` must be at least 1".into());
        }
        if config.concurrency == 0 {
            return invalid("`concurrency` must be at least 1".into());
        }
        if config.max_attempts == 0 {
            return invalid("`max_attempts` must be at least 1".into());
        }
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
        })
    }

    /// The Shared Contacts feed URL of the domain.
    pub fn feed_url(&self) -> &Url {
        &self.feed_url
    }

    // ----- reads ---------------------------------------------------------

    /// Lists the groups, then the members of each (at most `concurrency`
    /// groups at a time).
    async fn read_groups(
        &self,
        progress: &dyn Progress,
    ) -> (Vec<ListedGroup>, Option<ConnectorError>, Vec<Problem>) {
        let listing = self.directory.list_groups(&self.http, progress).await;
        let listed: Vec<(ListedGroup, Option<ConnectorError>)> = stream::iter(listing.items)
            .map(|group| async move {
                let Some(key) = group.id.clone().or_else(|| group.email.clone()) else {
                    let listed = ListedGroup {
                        group,
                        members: Vec::new(),
                        members_complete: true,
                    };
                    return (listed, None);
                };
                let label = group.email.clone().unwrap_or_else(|| key.clone());
                let members = self.directory.list_members(&self.http, &key, &label).await;
                if let Some(error) = &members.failure {
                    tracing::warn!(%error, group = %label, "a member listing failed");
                }
                let listed = ListedGroup {
                    group,
                    members: members.items,
                    members_complete: members.failure.is_none(),
                };
                (listed, members.failure)
            })
            // Leave room for the users and contacts listings, whose pages
            // are sequential.
            .buffered(self.config.concurrency.saturating_sub(2).max(1))
            .collect()
            .await;
        let mut problems = Vec::new();
        let mut groups = Vec::with_capacity(listed.len());
        for (group, failure) in listed {
            if let Some(error) = failure {
                problems.push(Problem {
                    object: group
                        .group
                        .email
                        .clone()
                        .unwrap_or_else(|| "a group".to_string()),
                    message: format!(
                        "its members could not all be read, so the read is incomplete: {error}"
                    ),
                });
            }
            groups.push(group);
        }
        (groups, listing.failure, problems)
    }

    /// Reads the whole shared contacts feed: the first page, then the rest
    /// concurrently when the feed says how many entries it holds.
    async fn read_contacts(&self, progress: &dyn Progress) -> Listing<ContactEntry> {
        let size = self.config.page_size_contacts;
        let mut listing = Listing {
            items: Vec::new(),
            failure: None,
            pages: 0,
        };
        let first = self.contacts_page(1, size).await;
        let first = match first {
            Ok(page) => page,
            Err(error) => {
                listing.failure = Some(error);
                return listing;
            }
        };
        listing.pages = 1;
        progress.advance(first.entries.len() as u64);
        let full = first.entries.len() as u64 >= u64::from(size);
        let mut has_next = first.has_next || (full && first.total_results.is_none());
        let total = first.total_results;
        listing.items.extend(first.entries);
        let mut page_number = 1u64;
        if let (Some(total), true) = (total, has_next || full) {
            let pages = total.div_ceil(u64::from(size)).max(1);
            let results: Vec<_> = stream::iter(2..=pages)
                .map(|n| async move { (n, self.contacts_page(n, size).await) })
                .buffered(self.config.concurrency)
                .collect()
                .await;
            for (n, page) in results {
                match page {
                    Ok(page) => {
                        listing.pages += 1;
                        page_number = n;
                        progress.advance(page.entries.len() as u64);
                        has_next = page.has_next;
                        listing.items.extend(page.entries);
                    }
                    Err(error) => {
                        listing.failure = Some(error);
                        return listing;
                    }
                }
            }
            if page_number == pages {
                // The feed may have grown while it was read: follow it on.
                has_next = has_next && listing.items.len() as u64 >= pages * u64::from(size);
            }
        }
        while has_next {
            page_number += 1;
            match self.contacts_page(page_number, size).await {
                Ok(page) => {
                    listing.pages += 1;
                    progress.advance(page.entries.len() as u64);
                    has_next = page.has_next && !page.entries.is_empty();
                    listing.items.extend(page.entries);
                }
                Err(error) => {
                    listing.failure = Some(error);
                    return listing;
                }
            }
        }
        // Pages read concurrently may overlap if the feed moved.
        let mut seen = std::collections::HashSet::new();
        listing.items.retain(|entry| seen.insert(entry.id.clone()));
        listing
    }

    /// Reads page `n` (from 1) of the contacts feed.
    async fn contacts_page(&self, n: u64, size: u32) -> Result<contacts::FeedPage, ConnectorError> {
        let what = format!("reading shared contacts page {n}");
        let start = (n - 1) * u64::from(size) + 1;
        let mut url = self.feed_url.clone();
        url.query_pairs_mut()
            .append_pair("start-index", &start.to_string())
            .append_pair("max-results", &size.to_string());
        let reply = self.http.execute(&what, &Request::get(url).gdata()).await?;
        let text = String::from_utf8_lossy(&reply.body);
        contacts::parse_feed(&text).map_err(|e| {
            ConnectorError::permanent(format!("{what}: the answer is not an Atom feed: {e}"))
        })
    }

    /// Fills the contact index from the feed when no complete read did yet
    /// (an apply without a pull in this process).
    async fn ensure_index(&self) -> Result<(), ConnectorError> {
        if self.index.lock().await.loaded {
            return Ok(());
        }
        let listing = self.read_contacts(&coexist_connector::NoProgress).await;
        if let Some(error) = listing.failure {
            return Err(error);
        }
        self.load_index(&listing.items, true).await;
        Ok(())
    }

    async fn load_index(&self, entries: &[ContactEntry], complete: bool) {
        let mut index = self.index.lock().await;
        if complete {
            *index = ContactIndex::default();
            index.loaded = true;
        }
        for entry in entries {
            let (Some(anchor), Some(edit_link)) = (
                entry.anchor(&self.config.marker_property),
                entry.edit_link.as_deref(),
            ) else {
                continue;
            };
            if entry.id.is_empty() {
                continue;
            }
            if index.by_anchor.contains_key(anchor) && complete {
                // Two contacts with one anchor: the first one is updated; the
                // engine sees both stubs and removes the extra one.
                index.by_id.insert(
                    entry.id.clone(),
                    (edit_link.to_string(), entry.etag.clone()),
                );
                continue;
            }
            index.record(anchor, &entry.id, edit_link, entry.etag.clone());
        }
    }

    // ----- writes --------------------------------------------------------

    /// Resolves operations against the index: a create of an anchor that
    /// already has a contact becomes an update of that contact.
    async fn plan(&self, operations: &[Operation]) -> Vec<Planned> {
        let index = self.index.lock().await;
        let known = |id: &str, locator: &str| match index.by_id.get(id) {
            Some((edit_link, etag)) => (edit_link.clone(), etag.clone()),
            None => (locator.to_string(), None),
        };
        operations
            .iter()
            .map(|operation| match operation {
                Operation::Create { stub } => {
                    let existing = index
                        .by_anchor
                        .get(&stub.anchor)
                        .and_then(|id| index.by_id.get(id).map(|entry| (id, entry)));
                    let action = match existing {
                        Some((id, (edit_link, etag))) => Action::Update {
                            id: id.clone(),
                            edit_link: edit_link.clone(),
                            etag: etag.clone(),
                        },
                        None => Action::Insert,
                    };
                    Planned {
                        action,
                        stub: stub.clone(),
                        current_anchor: stub.anchor.clone(),
                        from_create: true,
                        conflict_retried: false,
                    }
                }
                Operation::Update {
                    id,
                    locator,
                    before,
                    after,
                    ..
                } => {
                    let (edit_link, etag) = known(id, locator);
                    Planned {
                        action: Action::Update {
                            id: id.clone(),
                            edit_link,
                            etag,
                        },
                        stub: (**after).clone(),
                        current_anchor: before.anchor.clone(),
                        from_create: false,
                        conflict_retried: false,
                    }
                }
                Operation::Delete { id, locator, stub } => {
                    let (edit_link, etag) = known(id, locator);
                    Planned {
                        action: Action::Delete {
                            id: id.clone(),
                            edit_link,
                            etag,
                        },
                        stub: stub.clone(),
                        current_anchor: stub.anchor.clone(),
                        from_create: false,
                        conflict_retried: false,
                    }
                }
            })
            .collect()
    }

    /// Carries out planned operations, through batches or one request each,
    /// until each is done: transient failures of single entries are sent
    /// again (with backoff, up to `max_attempts` rounds), a version conflict
    /// is resolved once by reading the contact again. After the first
    /// authentication error nothing more is sent: every operation not yet
    /// sent fails with that error.
    async fn run(
        &self,
        mut planned: Vec<Planned>,
        batched: bool,
    ) -> Vec<Result<Applied, ConnectorError>> {
        let mut results: Vec<Option<Result<Applied, ConnectorError>>> =
            planned.iter().map(|_| None).collect();
        let mut pending: Vec<usize> = (0..planned.len()).collect();
        let policy = self.http.retry_policy();
        let mut round = 1u32;
        let stop = Stop::default();
        while !pending.is_empty() {
            if let Some(error) = stop.error() {
                for i in pending {
                    results[i] = Some(Err(error.clone()));
                }
                break;
            }
            let outcomes = if batched {
                self.send_batches(&planned, &pending, &stop).await
            } else {
                let mut outcomes = Vec::with_capacity(pending.len());
                for &i in &pending {
                    let outcome = match stop.error() {
                        Some(error) => Outcome::Done(Err(error)),
                        None => self.send_one(&planned[i]).await,
                    };
                    stop.note(&outcome);
                    outcomes.push((i, outcome));
                }
                outcomes
            };
            let mut now = Vec::new();
            let mut later = Vec::new();
            let mut last_error = None;
            for (i, outcome) in outcomes {
                match outcome {
                    Outcome::Done(result) => {
                        self.note(&planned[i], &result).await;
                        results[i] = Some(result);
                    }
                    Outcome::Again(error) => {
                        later.push((i, error.clone()));
                        last_error = Some(error);
                    }
                    Outcome::Conflict(detail) => match stop.error() {
                        Some(error) => results[i] = Some(Err(error)),
                        None => match self.resolve_conflict(&mut planned[i], &detail).await {
                            Ok(()) => now.push(i),
                            Err(error) => {
                                stop.note_error(&error);
                                results[i] = Some(Err(error));
                            }
                        },
                    },
                    Outcome::Vanished => {
                        let p = &mut planned[i];
                        match p.action {
                            Action::Delete { ref id, .. } => {
                                let id = id.clone();
                                self.index.lock().await.forget(&id);
                                results[i] = Some(Ok(Applied { found: None }));
                            }
                            Action::Update { ref id, .. } if p.from_create => {
                                // The indexed contact is gone: create it anew.
                                let id = id.clone();
                                self.index.lock().await.forget(&id);
                                p.action = Action::Insert;
                                p.from_create = false;
                                now.push(i);
                            }
                            _ => {
                                results[i] = Some(Err(ConnectorError::permanent(format!(
                                    "{}: the contact no longer exists (deleted outside coexist); the next sync creates it again",
                                    p.describe()
                                ))));
                            }
                        }
                    }
                }
            }
            if !later.is_empty() {
                let wait = last_error
                    .as_ref()
                    .filter(|_| stop.error().is_none())
                    .and_then(|error| policy.delay_after(round, error));
                match wait {
                    Some(wait) => {
                        tracing::warn!(
                            operations = later.len(),
                            wait_ms = wait.as_millis() as u64,
                            "shared contact operations failed transiently; sending them again"
                        );
                        tokio::time::sleep(wait).await;
                        round += 1;
                        now.extend(later.iter().map(|(i, _)| *i));
                    }
                    None => {
                        for (i, error) in later {
                            results[i] = Some(Err(error));
                        }
                    }
                }
            }
            pending = now;
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(ConnectorError::retryable(
                        "the operation was not carried out (internal bookkeeping error)",
                    ))
                })
            })
            .collect()
    }

    /// Reads the contact again after a version conflict and takes its new
    /// edit link and etag, once; refuses when the contact no longer carries
    /// coexist's marker for the anchor.
    async fn resolve_conflict(
        &self,
        planned: &mut Planned,
        detail: &str,
    ) -> Result<(), ConnectorError> {
        let what = planned.describe();
        if planned.conflict_retried {
            return Err(ConnectorError::retryable(format!(
                "{what}: the contact keeps changing under coexist ({detail}); retry later"
            )));
        }
        planned.conflict_retried = true;
        let id = match &planned.action {
            Action::Update { id, .. } | Action::Delete { id, .. } => id.clone(),
            Action::Insert => {
                return Err(ConnectorError::permanent(format!("{what}: {detail}")));
            }
        };
        tracing::debug!(contact = %id, "version conflict; reading the contact again");
        let fresh = self.get_contact(&id).await?;
        let Some(fresh) = fresh else {
            // Gone: a delete is done, an update of a created stub inserts.
            return match planned.action {
                Action::Delete { .. } | Action::Update { .. } => {
                    let mut index = self.index.lock().await;
                    index.forget(&id);
                    drop(index);
                    if planned.from_create {
                        planned.action = Action::Insert;
                        planned.from_create = false;
                        Ok(())
                    } else if matches!(planned.action, Action::Delete { .. }) {
                        // Sent again, the delete meets a 404: success.
                        Ok(())
                    } else {
                        Err(ConnectorError::permanent(format!(
                            "{what}: the contact no longer exists (deleted outside coexist); the next sync creates it again"
                        )))
                    }
                }
                Action::Insert => Ok(()),
            };
        };
        if fresh.anchor(&self.config.marker_property) != Some(planned.current_anchor.as_str()) {
            return Err(ConnectorError::permanent(format!(
                "{what}: contact {id} no longer carries coexist's marker for {}; it is left alone",
                planned.current_anchor
            )));
        }
        let Some(edit_link) = fresh.edit_link.clone() else {
            return Err(ConnectorError::permanent(format!(
                "{what}: contact {id} read again has no edit link"
            )));
        };
        match &mut planned.action {
            Action::Update {
                edit_link: link,
                etag,
                ..
            }
            | Action::Delete {
                edit_link: link,
                etag,
                ..
            } => {
                *link = edit_link;
                *etag = fresh.etag.clone();
            }
            Action::Insert => {}
        }
        Ok(())
    }

    /// Reads one contact by id; `None` when it does not exist.
    async fn get_contact(&self, id: &str) -> Result<Option<ContactEntry>, ConnectorError> {
        let what = format!("reading shared contact {id}");
        let mut url = self.feed_url.clone();
        url.path_segments_mut()
            .map_err(|_| {
                ConnectorError::permanent(format!("{what}: the feed URL cannot take a path"))
            })?
            .push(id);
        let reply = self
            .http
            .execute(&what, &Request::get(url).gdata().accepting(&[404]))
            .await?;
        if reply.status.as_u16() == 404 {
            return Ok(None);
        }
        contacts::parse_entry(&String::from_utf8_lossy(&reply.body))
            .map(Some)
            .map_err(|e| {
                ConnectorError::permanent(format!("{what}: the answer is not an entry: {e}"))
            })
    }

    /// Keeps the index in step with a finished operation.
    async fn note(&self, planned: &Planned, result: &Result<Applied, ConnectorError>) {
        let Ok(applied) = result else { return };
        let mut index = self.index.lock().await;
        match (&planned.action, &applied.found) {
            (Action::Delete { id, .. }, _) => index.forget(id),
            (_, Some(found)) => {
                if planned.current_anchor != planned.stub.anchor {
                    index.by_anchor.remove(&planned.current_anchor);
                }
                // The etag travels in `locator`'s version; the etag itself
                // was stored by `found_from`.
                let etag = index.by_id.get(&found.id).and_then(|(_, e)| e.clone());
                index.record(&planned.stub.anchor, &found.id, &found.locator, etag);
            }
            _ => {}
        }
    }

    /// The `Applied` of a successful insert or update, from the answer.
    async fn found_from(&self, planned: &Planned, entry: &ContactEntry) -> Outcome {
        let (id, edit_link) = match &planned.action {
            Action::Update { id, edit_link, .. } => (
                if entry.id.is_empty() {
                    id.clone()
                } else {
                    entry.id.clone()
                },
                entry.edit_link.clone().unwrap_or_else(|| edit_link.clone()),
            ),
            _ => match entry.edit_link.clone() {
                Some(link) if !entry.id.is_empty() => (entry.id.clone(), link),
                _ => {
                    return Outcome::Done(Err(ConnectorError::permanent(format!(
                        "{}: Google's answer names no contact id or edit link",
                        planned.describe()
                    ))))
                }
            },
        };
        self.index
            .lock()
            .await
            .by_id
            .insert(id.clone(), (edit_link.clone(), entry.etag.clone()));
        Outcome::Done(Ok(Applied {
            found: Some(FoundStub {
                id,
                locator: edit_link,
                stub: planned.stub.clone(),
            }),
        }))
    }

    /// Maps the status of one operation (an HTTP status, or a batch
    /// entry's `batch:status`) to its outcome.
    async fn outcome(
        &self,
        planned: &Planned,
        code: u16,
        reason: &str,
        entry: Option<&ContactEntry>,
    ) -> Outcome {
        let what = planned.describe();
        match code {
            200..=299 => match (&planned.action, entry) {
                (Action::Delete { .. }, _) => Outcome::Done(Ok(Applied { found: None })),
                (_, Some(entry)) => self.found_from(planned, entry).await,
                (_, None) => self.found_from(planned, &ContactEntry::default()).await,
            },
            404 => Outcome::Vanished,
            409 | 412 => Outcome::Conflict(format!("HTTP {code} {reason}")),
            429 => Outcome::Again(ConnectorError::throttled(
                None,
                format!("{what}: HTTP {code} {reason}"),
            )),
            403 if {
                let reason = reason.to_lowercase();
                reason.contains("rate limit")
                    || reason.contains("ratelimit")
                    || reason.contains("quota")
            } =>
            {
                Outcome::Again(ConnectorError::throttled(
                    None,
                    format!("{what}: HTTP {code} {reason}"),
                ))
            }
            500..=599 => Outcome::Again(ConnectorError::retryable(format!(
                "{what}: HTTP {code} {reason}"
            ))),
            _ => Outcome::Done(Err(ConnectorError::permanent(format!(
                "{what}: Google refused it: HTTP {code} {reason}"
            )))),
        }
    }

    /// Sends pending operations in batches of at most 100, several batches
    /// at a time; once a batch failed authentication, the batches not yet
    /// sent fail with its error, unsent.
    async fn send_batches(
        &self,
        planned: &[Planned],
        pending: &[usize],
        stop: &Stop,
    ) -> Vec<(usize, Outcome)> {
        let chunks: Vec<Vec<usize>> = pending
            .chunks(config::MAX_BATCH_OPERATIONS)
            .map(<[usize]>::to_vec)
            .collect();
        stream::iter(chunks)
            .map(|chunk| async move {
                if let Some(error) = stop.error() {
                    return chunk
                        .iter()
                        .map(|&i| (i, Outcome::Done(Err(error.clone()))))
                        .collect();
                }
                let outcomes = self.send_batch(planned, &chunk).await;
                for (_, outcome) in &outcomes {
                    stop.note(outcome);
                }
                outcomes
            })
            .buffer_unordered(self.config.concurrency)
            .flat_map(stream::iter)
            .collect()
            .await
    }

    async fn send_batch(&self, planned: &[Planned], chunk: &[usize]) -> Vec<(usize, Outcome)> {
        let marker = &self.config.marker_property;
        let entries: Vec<BatchEntry> = chunk
            .iter()
            .filter_map(|&i| planned.get(i).map(|p| (i, p)))
            .map(|(i, p)| match &p.action {
                Action::Insert => BatchEntry {
                    batch_id: i.to_string(),
                    kind: BatchKind::Insert,
                    edit_link: None,
                    etag: None,
                    body: Some(contacts::stub_body(&p.stub, marker)),
                },
                Action::Update {
                    edit_link, etag, ..
                } => BatchEntry {
                    batch_id: i.to_string(),
                    kind: BatchKind::Update,
                    edit_link: Some(edit_link.clone()),
                    etag: Some(etag.clone().unwrap_or_else(|| "*".to_string())),
                    body: Some(contacts::stub_body(&p.stub, marker)),
                },
                Action::Delete {
                    edit_link, etag, ..
                } => BatchEntry {
                    batch_id: i.to_string(),
                    kind: BatchKind::Delete,
                    edit_link: Some(edit_link.clone()),
                    etag: Some(etag.clone().unwrap_or_else(|| "*".to_string())),
                    body: None,
                },
            })
            .collect();
        let what = format!(
            "writing a batch of {} shared contact operations (the first: {})",
            entries.len(),
            chunk
                .first()
                .and_then(|&i| planned.get(i))
                .map(Planned::describe)
                .unwrap_or_default()
        );
        let request = Request::get(self.batch_url.clone())
            .gdata()
            .atom(Method::POST, contacts::batch_document(&entries));
        let reply = match self.http.execute(&what, &request).await {
            Ok(reply) => reply,
            Err(error) => {
                return chunk
                    .iter()
                    .map(|&i| (i, Outcome::Done(Err(error.clone()))))
                    .collect()
            }
        };
        let answers = match contacts::parse_batch(&String::from_utf8_lossy(&reply.body)) {
            Ok(answers) => answers,
            Err(e) => {
                let error = ConnectorError::permanent(format!(
                    "{what}: the answer is not a batch feed: {e}"
                ));
                return chunk
                    .iter()
                    .map(|&i| (i, Outcome::Done(Err(error.clone()))))
                    .collect();
            }
        };
        let mut by_id: HashMap<String, contacts::BatchResult> = answers
            .into_iter()
            .map(|answer| (answer.batch_id.clone(), answer))
            .collect();
        let mut outcomes = Vec::with_capacity(chunk.len());
        for &i in chunk {
            let Some(p) = planned.get(i) else { continue };
            let outcome = match by_id.remove(&i.to_string()) {
                Some(answer) => {
                    self.outcome(p, answer.code, &answer.reason, Some(&answer.entry))
                        .await
                }
                None => Outcome::Again(ConnectorError::retryable(format!(
                    "{}: the batch answer has no result for it (the batch was interrupted)",
                    p.describe()
                ))),
            };
            outcomes.push((i, outcome));
        }
        outcomes
    }

    /// Carries out one operation through the entry endpoints.
    async fn send_one(&self, planned: &Planned) -> Outcome {
        let what = planned.describe();
        let marker = &self.config.marker_property;
        let request = match &planned.action {
            Action::Insert => Request::get(self.feed_url.clone()).gdata().atom(
                Method::POST,
                contacts::entry_document(&planned.stub, marker, None),
            ),
            Action::Update {
                edit_link, etag, ..
            } => {
                let url = match parse_url("the edit link", edit_link) {
                    Ok(url) => url,
                    Err(error) => return Outcome::Done(Err(error)),
                };
                Request::get(url)
                    .gdata()
                    .header("If-Match", etag.clone().unwrap_or_else(|| "*".to_string()))
                    .atom(
                        Method::PUT,
                        contacts::entry_document(&planned.stub, marker, etag.as_deref()),
                    )
                    .accepting(&[404, 409, 412])
            }
            Action::Delete {
                edit_link, etag, ..
            } => {
                let url = match parse_url("the edit link", edit_link) {
                    Ok(url) => url,
                    Err(error) => return Outcome::Done(Err(error)),
                };
                let mut request = Request::get(url)
                    .gdata()
                    .header("If-Match", etag.clone().unwrap_or_else(|| "*".to_string()))
                    .accepting(&[404, 409, 412]);
                request.method = Method::DELETE;
                request
            }
        };
        let reply = match self.http.execute(&what, &request).await {
            Ok(reply) => reply,
            Err(error) => return Outcome::Done(Err(error)),
        };
        let code = reply.status.as_u16();
        let entry = if reply.status.is_success() && !reply.body.is_empty() {
            match contacts::parse_entry(&String::from_utf8_lossy(&reply.body)) {
                Ok(entry) => Some(entry),
                Err(_) if matches!(planned.action, Action::Delete { .. }) => None,
                Err(e) => {
                    return Outcome::Done(Err(ConnectorError::permanent(format!(
                        "{what}: the answer is not an Atom entry: {e}"
                    ))))
                }
            }
        } else {
            None
        };
        let reason = if reply.status.is_success() {
            String::new()
        } else {
            http::error_message(&reply.body)
        };
        self.outcome(planned, code, &reason, entry.as_ref()).await
    }

    /// Reads the feed into the index first when no pull did in this
    /// process: a create of an anchor that already has a contact must update
    /// it, and updates and deletes need the contacts' etags.
    async fn prepare(&self, operations: &[Operation]) -> Result<Vec<Planned>, ConnectorError> {
        if !operations.is_empty() {
            self.ensure_index().await.map_err(|error| {
                error.context(
                    "reading the shared contacts before writing (to find coexist's existing contacts) failed",
                )
            })?;
        }
        Ok(self.plan(operations).await)
    }

    // ----- doctor --------------------------------------------------------

    async fn routing_finding(&self) -> Finding {
        let check = "routing domain".to_string();
        let Some(routing) = self
            .config
            .routing_domain
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
        else {
            return Finding {
                check,
                ok: false,
                manual: false,
                detail: format!(
                    "no routing_domain is configured for system {}: add the domain alias that \
                     delivers straight to Google (for example gapps.{}), which the other \
                     systems forward Google's mailboxes to",
                    self.system, self.config.domain
                ),
            };
        };
        let aliases = self.directory.list_domain_aliases(&self.http).await;
        let domains = self.directory.list_domains(&self.http).await;
        let wanted = routing.to_lowercase();
        match (&aliases, &domains) {
            (Ok(aliases), _)
                if aliases
                    .iter()
                    .any(|a| a.domain_alias_name.to_lowercase() == wanted) =>
            {
                let verified = aliases
                    .iter()
                    .any(|a| a.domain_alias_name.to_lowercase() == wanted && a.verified);
                Finding {
                    check,
                    ok: verified,
                    manual: false,
                    detail: if verified {
                        format!("{routing} is a verified domain alias of the customer")
                    } else {
                        format!(
                            "{routing} is a domain alias of the customer but is not verified yet: \
                             verify it in the Admin console (Account > Domains > Manage domains) \
                             before Google accepts mail for it"
                        )
                    },
                }
            }
            (_, Ok(domains))
                if domains
                    .iter()
                    .any(|d| d.domain_name.to_lowercase() == wanted) =>
            {
                Finding {
                    check,
                    ok: true,
                    manual: false,
                    detail: format!("{routing} is a domain of the customer"),
                }
            }
            (Err(error), _) | (_, Err(error)) => Finding {
                check,
                ok: false,
                manual: false,
                detail: format!("the domains could not be read: {error}"),
            },
            _ => Finding {
                check,
                ok: false,
                manual: false,
                detail: format!(
                    "{routing} is neither a domain nor a domain alias of the customer: add it in \
                     the Admin console (Account > Domains > Manage domains > Add a domain, as a \
                     domain alias of {}) and add its MX records, so mail the other systems \
                     forward to local@{routing} reaches Google",
                    self.config.domain
                ),
            },
        }
    }

    fn manual_routing_finding(&self) -> Finding {
        let routing = self
            .config
            .routing_domain
            .clone()
            .unwrap_or_else(|| format!("gapps.{}", self.config.domain));
        Finding {
            check: "Gmail routing for people not on Google (manual check)".to_string(),
            ok: true,
            manual: true,
            detail: format!(
                "MANUAL CHECK — no Google API exposes this setting, so coexist cannot verify it. \
                 In the Google Admin console open Apps > Google Workspace > Gmail > Routing, \
                 section Default routing, and make sure a setting for \"Unknown mailbox \
                 accounts\" (the catch-all) changes the route to the other mail system's host, \
                 so mail for {domain} addresses without a Google mailbox — the people coexist \
                 lists as shared contacts — is delivered there. (Split delivery, routing all \
                 mail for those recipients to the other host, works too.) The other system must \
                 in turn forward mail for Google's people to local@{routing}.",
                domain = self.config.domain
            ),
        }
    }
}

/// Google's limit of shared contacts per domain.
pub const MAX_SHARED_CONTACTS: u64 = 200_000;

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
    /// Always a full read ([`PullMode::Full`], no cursor): the Directory API
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
        async move {
            let started = std::time::Instant::now();
            let (users, groups, contacts) = tokio::join!(
                self.directory.list_users(&self.http, progress),
                self.read_groups(progress),
                self.read_contacts(progress),
            );
            let (groups, groups_failure, mut problems) = groups;
            let failures: Vec<(&str, &ConnectorError)> = [
                ("users", users.failure.as_ref()),
                ("groups", groups_failure.as_ref()),
                ("shared contacts", contacts.failure.as_ref()),
            ]
            .into_iter()
            .filter_map(|(what, failure)| failure.map(|f| (what, f)))
            .collect();
            if let Some((_, error)) = failures
                .iter()
                .find(|(_, e)| matches!(e, ConnectorError::Authentication { .. }))
            {
                return Err((*error).clone());
            }
            if failures.len() == 3
                && users.items.is_empty()
                && groups.is_empty()
                && contacts.items.is_empty()
            {
                if let Some((_, error)) = failures.first() {
                    return Err((*error).clone());
                }
            }
            let mut recipients = Vec::with_capacity(users.items.len() + groups.len());
            for user in &users.items {
                match directory::user_to_recipient(user) {
                    Ok(recipient) => recipients.push(recipient),
                    Err(problem) => problems.push(problem),
                }
            }
            let members_complete = groups.iter().all(|g| g.members_complete);
            let (group_recipients, group_problems) = directory::groups_to_recipients(&groups);
            recipients.extend(group_recipients);
            problems.extend(group_problems);
            let mut stubs = Vec::new();
            for entry in &contacts.items {
                match entry.to_found_stub(&self.config.marker_property) {
                    Some(Ok(stub)) => stubs.push(stub),
                    Some(Err(problem)) => problems.push(problem),
                    None => {}
                }
            }
            self.load_index(&contacts.items, contacts.failure.is_none())
                .await;
            for (what, error) in &failures {
                problems.push(Problem {
                    object: format!("Google {what} of {}", self.config.domain),
                    message: format!(
                        "the listing stopped after its retries, so the read is incomplete and \
                         nothing will be deleted in this run: {error}"
                    ),
                });
            }
            let complete = failures.is_empty() && members_complete;
            tracing::info!(
                users = users.items.len(),
                groups = groups.len(),
                stubs = stubs.len(),
                complete,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "pulled Google"
            );
            Ok(Pull {
                mode: PullMode::Full,
                recipients,
                stubs,
                removed: Vec::new(),
                cursor: None,
                complete,
                problems,
            })
        }
        .instrument(span)
        .await
    }

    /// Carries out one operation through the contact's own endpoints
    /// (POST to the feed, PUT or DELETE on the edit link).
    async fn apply(&self, operation: &Operation) -> Result<Applied, ConnectorError> {
        let span = tracing::info_span!("google_apply", system = %self.system, action = operation.action(), anchor = %operation.stub().anchor);
        async move {
            if let Some(error) = self.http.tokens().failure() {
                return Err(error);
            }
            let planned = self.prepare(std::slice::from_ref(operation)).await?;
            self.run(planned, false).await.pop().unwrap_or_else(|| {
                Err(ConnectorError::retryable(
                    "the operation was not carried out",
                ))
            })
        }
        .instrument(span)
        .await
    }

    /// Carries out operations through the batch endpoint, 100 a request and
    /// several requests at a time; one result per operation, in order. After
    /// an authentication failure (now or earlier in the run) the operations
    /// not yet sent all fail with that error, unsent.
    async fn apply_many(&self, operations: &[Operation]) -> Vec<Result<Applied, ConnectorError>> {
        let span = tracing::info_span!("google_apply_many", system = %self.system, operations = operations.len());
        async move {
            if let Some(error) = self.http.tokens().failure() {
                return operations.iter().map(|_| Err(error.clone())).collect();
            }
            let planned = match self.prepare(operations).await {
                Ok(planned) => planned,
                Err(error) => return operations.iter().map(|_| Err(error.clone())).collect(),
            };
            self.run(planned, true).await
        }
        .instrument(span)
        .await
    }

    /// Checks the credentials and scopes, the routing domain, and explains
    /// the Gmail routing no API exposes.
    async fn doctor(&self) -> Vec<Finding> {
        let span = tracing::info_span!("google_doctor", system = %self.system);
        async move {
            let mut findings = Vec::new();
            let token = self.http.tokens().token().await;
            findings.push(Finding {
                check: "Google service account credentials".to_string(),
                ok: token.is_ok(),
                manual: false,
                detail: match &token {
                    Ok(_) => format!(
                        "an access token was obtained for {} with the scopes {}",
                        self.config.admin,
                        auth::SCOPES.join(" ")
                    ),
                    Err(error) => format!(
                        "{error}. In the Admin console (Security > Access and data control > API \
                         controls > Domain-wide delegation) the service account's client id must \
                         be granted the scopes {}",
                        auth::SCOPES.join(",")
                    ),
                },
            });
            if token.is_err() {
                findings.push(self.manual_routing_finding());
                return findings;
            }
            let users = self.directory.probe_users(&self.http).await;
            findings.push(Finding {
                check: "Directory API: users and groups readable".to_string(),
                ok: users.is_ok(),
                manual: false,
                detail: match users {
                    Ok(_) => format!("users of customer {} can be listed", self.config.customer),
                    Err(error) => error.to_string(),
                },
            });
            let feed = self.contacts_page(1, 1).await;
            findings.push(Finding {
                check: "Shared Contacts API: the domain's feed readable".to_string(),
                ok: feed.is_ok(),
                manual: false,
                detail: match feed {
                    Ok(_) => format!("the shared contacts of {} can be read", self.config.domain),
                    Err(error) => error.to_string(),
                },
            });
            findings.push(self.routing_finding().await);
            findings.push(self.manual_routing_finding());
            findings
        }
        .instrument(span)
        .await
    }
}
