//! Reading: paged subtree searches over the configured scopes (and, when
//! configured, the search references they meet: see [`crate::referral`]),
//! entries classified into recipients, stubs and problems, and group
//! members resolved to addresses (nested groups expanded, cycles
//! tolerated).

use std::collections::{HashMap, HashSet, VecDeque};

use rustc_hash::FxHashMap;
use std::time::Duration;

use coexist_connector::{ConnectorError, FoundStub, Problem, Progress, Recipient};
use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::controls::RawControl;
use ldap3::{Ldap, LdapResult, ResultEntry, Scope, SearchEntry};

use crate::config::LdapConfig;
use crate::conn::{self, rc};
use crate::entry::{guid_to_bytes, normalize, parse_proxy_addresses, Classified, Entry, Mapper};
use crate::escape::{filter_bytes, filter_value, is_within, normalize_dn};
use crate::referral::{self, LdapUrl, Server, MAX_HOPS};
use crate::wire::{PagedSearch, SearchStop, Stopped, WireConn};

/// How many changed DNs one search for the groups holding them names.
pub const MEMBER_DNS_PER_SEARCH: usize = 50;

/// How many levels of groups above a changed entry a delta reads again
/// (a group in a group in a group ... of the entry).
pub const PARENT_GROUP_DEPTH: usize = 8;

/// One subtree search the connector runs: a base and its filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope_ {
    pub base: String,
    pub filter: String,
}

/// What a member DN stands for, as far as group expansion cares.
#[derive(Debug, Clone, Default)]
pub struct Node {
    /// The primary address, for a member with one.
    pub address: Option<String>,
    /// The member DNs, for a group.
    pub members: Option<Vec<String>>,
}

/// What a read collected.
#[derive(Debug, Default)]
pub struct Collected {
    pub recipients: Vec<(Recipient, Vec<String>)>,
    pub stubs: Vec<FoundStub>,
    pub problems: Vec<Problem>,
    /// Every entry seen, by DN as read, for member resolution (which
    /// normalises the DNs when there are members to resolve).
    pub nodes: FxHashMap<String, Node>,
    /// `false` when a search stopped part-way.
    pub complete: bool,
    /// Search references and referral URLs met (followed only when
    /// `follow_referrals` is on).
    pub references: Vec<String>,
    /// The URLs whose subtrees were read by following a reference.
    pub followed: Vec<String>,
    /// The DN of every entry added (recipients, stubs and entries skipped
    /// with a problem), kept only by [`Collected::tracking`] (deltas: the
    /// groups holding these entries are read again, see
    /// [`Reader::add_parent_groups`]).
    pub dns: Option<Vec<String>>,
}

impl Collected {
    pub fn new() -> Self {
        Collected {
            complete: true,
            ..Collected::default()
        }
    }

    /// A collection that also keeps the DN of every entry added (see
    /// [`Collected::dns`]).
    pub fn tracking() -> Self {
        Collected {
            dns: Some(Vec::new()),
            ..Collected::new()
        }
    }

    /// Takes in what another read collected: its recipients whose anchors
    /// are not among `anchors` (which then holds them too), its entries for
    /// member resolution, its problems not reported already, its
    /// references and its completeness. Its stubs are left out (it reads
    /// groups).
    fn absorb(&mut self, other: Collected, anchors: &mut HashSet<String>) {
        for (recipient, members) in other.recipients {
            if anchors.insert(recipient.anchor.clone()) {
                self.recipients.push((recipient, members));
            }
        }
        self.nodes.extend(other.nodes);
        for p in other.problems {
            if !self.problems.contains(&p) {
                self.problems.push(p);
            }
        }
        self.references.extend(other.references);
        self.followed.extend(other.followed);
        self.complete &= other.complete;
    }

    /// Adds one entry.
    pub fn add(&mut self, mapper: &Mapper, entry: Entry) {
        let classified = mapper.classify(&entry);
        self.add_classified(mapper, entry, classified);
    }

    /// Adds one entry classified already.
    pub fn add_classified(&mut self, mapper: &Mapper, entry: Entry, classified: Classified) {
        if let Some(dns) = &mut self.dns {
            dns.push(entry.dn.clone());
        }
        match classified {
            Classified::Recipient {
                recipient,
                member_dns,
                warnings,
            } => {
                // Two entries with one primary address are both kept: the
                // reconciler reports the address as claimed twice and
                // holds its stubs (the connector decides nothing).
                self.nodes.insert(
                    entry.dn,
                    Node {
                        address: Some(recipient.primary_address.clone()),
                        members: (recipient.kind == coexist_connector::RecipientKind::Group)
                            .then(|| member_dns.clone()),
                    },
                );
                self.problems.extend(warnings);
                self.recipients.push((recipient, member_dns));
            }
            Classified::Stub(s) => self.stubs.push(s),
            Classified::Problem(p) => {
                // A group without an address can still be nested in one.
                let members: Vec<String> = mapper
                    .attrs
                    .members
                    .iter()
                    .flat_map(|m| entry.values(m).iter().cloned())
                    .collect();
                if !members.is_empty() {
                    self.nodes.insert(
                        entry.dn,
                        Node {
                            address: None,
                            members: Some(members),
                        },
                    );
                }
                self.problems.push(p)
            }
        }
    }
}

/// One subtree search: where, what, which attributes, which controls,
/// and whether with paged results.
pub struct Query<'q> {
    pub base: &'q str,
    pub filter: &'q str,
    pub attrs: &'q [String],
    pub controls: Vec<RawControl>,
    pub paged: bool,
}

/// The connection a read goes through.
#[derive(Debug)]
pub enum Via<'c> {
    /// ldap3 (deltas, and reads of a few entries).
    Ldap3(&'c mut Ldap),
    /// The lean client of [`crate::wire`] (the bulk of a full read).
    Wire(&'c mut WireConn),
}

impl Via<'_> {
    /// The same connection, borrowed again for one more search.
    fn reborrow(&mut self) -> Via<'_> {
        match self {
            Via::Ldap3(l) => Via::Ldap3(l),
            Via::Wire(w) => Via::Wire(w),
        }
    }
}

/// One search of a read: the configured scopes, or the continuation of one
/// at a referred place.
struct Search<'s> {
    base: &'s str,
    scope: Scope,
    filter: &'s str,
    attrs: &'s [String],
}

/// A reference still to follow: its URLs (any of which may be used,
/// RFC 4511 4.5.3) and the search that met it.
struct Pending {
    urls: Vec<String>,
    /// The base of the search that met it (the base of a continuation
    /// whose URL names no DN).
    base: String,
    /// The scope of that search (a continuation's scope when its URL names
    /// none).
    scope: Scope,
    filter: String,
    /// How many references away from a configured scope it leads (1 for a
    /// reference a configured scope met).
    hops: usize,
}

/// The state of following references during one read: where the read has
/// been, and the connections to other servers it opened.
struct Follow {
    /// The system's own server (`None` when its URL names no host).
    own: Option<Server>,
    /// The searches done or started: server, normalised base, scope.
    visited: Vec<(Option<Server>, String, Scope)>,
    /// Connections to other servers, or why there is none.
    others: HashMap<Server, Result<WireConn, String>>,
}

impl Follow {
    /// Whether a search of `base` with `scope` on `server` reads nothing a
    /// search of this read has not read (or tried to read) already.
    fn covered(&self, server: &Option<Server>, base: &str, scope: Scope) -> bool {
        self.visited.iter().any(|(s, b, sc)| {
            s == server
                && ((*sc == Scope::Subtree
                    && (b.is_empty() || base == b || base.ends_with(&format!(",{b}"))))
                    || (base == b && *sc == scope))
        })
    }

    /// Closes the connections to other servers.
    async fn close(self) {
        for (_, c) in self.others {
            if let Ok(c) = c {
                c.close().await;
            }
        }
    }
}

/// A failure of a search, with how many entries came before it.
pub struct SearchFailure {
    pub error: ConnectorError,
    pub entries_before: usize,
}

/// The reading side of the connector.
#[derive(Debug, Clone)]
pub struct Reader {
    pub system: String,
    pub config: LdapConfig,
    pub mapper: Mapper,
    pub timeout: Duration,
}

impl Reader {
    pub fn new(system: &str, config: &LdapConfig) -> Self {
        Reader {
            system: system.to_string(),
            config: config.clone(),
            mapper: Mapper::new(config),
            timeout: Duration::from_secs(config.timeout_seconds),
        }
    }

    /// The filter matching stubs.
    pub fn stub_filter(&self) -> String {
        format!("({}=coexist:*)", self.mapper.marker_attribute)
    }

    /// The searches of a full read: every base DN with the recipient
    /// filters (and the stub marker), plus the stub base when it lies
    /// outside them.
    pub fn scopes(&self) -> Vec<Scope_> {
        let recipients = format!(
            "(|{}{}{})",
            self.config.effective_user_filter(),
            self.config.effective_group_filter(),
            self.stub_filter()
        );
        let mut scopes: Vec<Scope_> = self
            .config
            .base_dns
            .iter()
            .map(|b| Scope_ {
                base: b.clone(),
                filter: recipients.clone(),
            })
            .collect();
        if !self
            .config
            .base_dns
            .iter()
            .any(|b| is_within(&self.config.stub_base, b))
        {
            scopes.push(Scope_ {
                base: self.config.stub_base.clone(),
                filter: self.stub_filter(),
            });
        }
        scopes
    }

    /// Runs one paged subtree search, handing every entry to `each`.
    /// The URLs of the search references met are added to `references`
    /// (this search does not follow them; [`Reader::read_all`] does when
    /// configured).
    pub async fn search(
        &self,
        ldap: &mut Ldap,
        query: Query<'_>,
        each: impl FnMut(ResultEntry) -> Result<(), ConnectorError>,
        references: &mut Vec<String>,
    ) -> Result<LdapResult, SearchFailure> {
        let mut grouped = Vec::new();
        let result = self
            .search_in(ldap, query, Scope::Subtree, each, &mut grouped)
            .await;
        references.extend(grouped.into_iter().flatten());
        result
    }

    /// [`Reader::search`] with the given scope, the URLs of each search
    /// reference kept together (they are alternatives).
    async fn search_in(
        &self,
        ldap: &mut Ldap,
        query: Query<'_>,
        scope: Scope,
        mut each: impl FnMut(ResultEntry) -> Result<(), ConnectorError>,
        references: &mut Vec<Vec<String>>,
    ) -> Result<LdapResult, SearchFailure> {
        let Query {
            base,
            filter,
            attrs,
            controls,
            paged,
        } = query;
        let what = format!("search {base}");
        let fail = |error: ConnectorError, n: usize| SearchFailure {
            error,
            entries_before: n,
        };
        let adapters: Vec<Box<dyn Adapter<'_, String, Vec<String>>>> = if paged {
            vec![Box::new(PagedResults::new(
                i32::try_from(self.config.page_size).unwrap_or(1000),
            ))]
        } else {
            vec![]
        };
        let handle = ldap.with_timeout(self.timeout);
        if !controls.is_empty() {
            handle.with_controls(controls);
        }
        let mut stream = handle
            .streaming_search_with(adapters, base, scope, filter, attrs.to_vec())
            .await
            .map_err(|e| fail(conn::from_ldap(&self.system, &what, e), 0))?;
        let mut n = 0usize;
        loop {
            match stream.next().await {
                Ok(Some(e)) if e.is_ref() => {
                    references.push(ldap3::parse_refs(e.0));
                }
                Ok(Some(e)) => {
                    n += 1;
                    each(e).map_err(|e| fail(e, n))?;
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = stream.finish().await;
                    return Err(fail(conn::from_ldap(&self.system, &what, e), n));
                }
            }
        }
        let res = stream.finish().await;
        Ok(res)
    }

    /// A full read of the scopes into `out`, through ldap3. A search that
    /// fails part-way leaves `out.complete == false` and a problem saying
    /// why; a failure before anything was read is returned as an error.
    pub async fn read_all(
        &self,
        ldap: &mut Ldap,
        out: &mut Collected,
        progress: &dyn Progress,
        extra_filter: Option<&str>,
    ) -> Result<(), ConnectorError> {
        self.read_all_via(Via::Ldap3(ldap), out, progress, extra_filter)
            .await
    }

    /// [`Reader::read_all`] over the given connection. With
    /// `follow_referrals` on, the references the searches meet are then
    /// followed (see [`crate::referral`]); one that cannot be makes the
    /// read incomplete, with a problem naming its URL.
    pub async fn read_all_via(
        &self,
        mut via: Via<'_>,
        out: &mut Collected,
        progress: &dyn Progress,
        extra_filter: Option<&str>,
    ) -> Result<(), ConnectorError> {
        let attrs = self.mapper.read_attributes();
        let scopes = self.scopes();
        let mut follow = Follow {
            own: Server::of_config(&self.config),
            visited: Vec::new(),
            others: HashMap::new(),
        };
        for scope in &scopes {
            follow.visited.push((
                follow.own.clone(),
                normalize_dn(&scope.base),
                Scope::Subtree,
            ));
        }
        let mut pending = VecDeque::new();
        for scope in &scopes {
            let filter = match extra_filter {
                Some(x) => format!("(&{}{x})", scope.filter),
                None => scope.filter.clone(),
            };
            let mut refs = Vec::new();
            let result = self
                .run_search(
                    via.reborrow(),
                    &Search {
                        base: &scope.base,
                        scope: Scope::Subtree,
                        filter: &filter,
                        attrs: &attrs,
                    },
                    out,
                    progress,
                    &mut refs,
                )
                .await;
            let referral = matches!(&result, Ok((res, _)) if res.rc == rc::REFERRAL);
            if let Ok((res, _)) = &result {
                if referral && !res.refs.is_empty() {
                    refs.push(res.refs.clone());
                }
            }
            self.references_met(
                out,
                &mut pending,
                refs,
                Pending {
                    urls: Vec::new(),
                    base: scope.base.clone(),
                    scope: Scope::Subtree,
                    filter,
                    hops: 1,
                },
            );
            match result {
                Ok((res, _)) if res.rc == rc::SUCCESS || referral => {}
                Ok((res, _))
                    if res.rc == rc::NO_SUCH_OBJECT && scope.base == self.config.stub_base =>
                {
                    follow.close().await;
                    return Err(ConnectorError::permanent(format!(
                        "LDAP system `{}`: the stub OU `{}` does not exist; create it (an organizationalUnit) or correct stub_base",
                        self.system, scope.base
                    )));
                }
                Ok((res, _)) => {
                    let error =
                        conn::from_result(&self.system, &format!("search {}", scope.base), &res);
                    if let Err(e) = self.partial(out, &scope.base, error) {
                        follow.close().await;
                        return Err(e);
                    }
                }
                Err(failure) => {
                    let fatal = failure.entries_before == 0
                        && out.recipients.is_empty()
                        && out.stubs.is_empty();
                    let outcome = if fatal {
                        Err(failure.error)
                    } else {
                        self.partial(out, &scope.base, failure.error)
                    };
                    if let Err(e) = outcome {
                        follow.close().await;
                        return Err(e);
                    }
                }
            }
        }
        while let Some(p) = pending.pop_front() {
            self.follow_reference(
                &mut via,
                &mut follow,
                p,
                &attrs,
                out,
                progress,
                &mut pending,
            )
            .await;
        }
        follow.close().await;
        Ok(())
    }

    /// Runs one search of a read over `via`, adding every entry to `out`.
    /// Returns the final result and how many entries came.
    async fn run_search(
        &self,
        via: Via<'_>,
        search: &Search<'_>,
        out: &mut Collected,
        progress: &dyn Progress,
        refs: &mut Vec<Vec<String>>,
    ) -> Result<(LdapResult, usize), SearchFailure> {
        let mapper = &self.mapper;
        let mut batch = 0u64;
        let mut count = 0usize;
        let result = {
            let mut add = |entry: Entry| {
                out.add(mapper, entry);
                count += 1;
                batch += 1;
                if batch == 1000 {
                    progress.advance(batch);
                    batch = 0;
                }
                Ok(())
            };
            match via {
                Via::Ldap3(ldap) => {
                    self.search_in(
                        ldap,
                        Query {
                            base: search.base,
                            filter: search.filter,
                            attrs: search.attrs,
                            controls: Vec::new(),
                            paged: true,
                        },
                        search.scope,
                        |e| add(Entry::from(SearchEntry::construct(e))),
                        refs,
                    )
                    .await
                }
                Via::Wire(wire) => wire
                    .search(
                        PagedSearch {
                            base: search.base,
                            filter: search.filter,
                            attrs: search.attrs,
                            page_size: self.config.page_size,
                            scope: search.scope,
                        },
                        &mut add,
                        refs,
                    )
                    .await
                    .map_err(|stop| match stop {
                        SearchStop::Wire(Stopped {
                            error,
                            entries_before,
                        }) => SearchFailure {
                            error: error.into_connector_error(
                                &self.system,
                                &format!("search {}", search.base),
                            ),
                            entries_before,
                        },
                        SearchStop::Caller {
                            error,
                            entries_before,
                        } => SearchFailure {
                            error,
                            entries_before,
                        },
                    }),
            }
        };
        progress.advance(batch);
        result.map(|r| (r, count))
    }

    /// Records the references a search met (`refs`, each a list of
    /// alternative URLs) and, when they are to be followed, queues them as
    /// continuations of `from` (whose `urls` are ignored).
    fn references_met(
        &self,
        out: &mut Collected,
        pending: &mut VecDeque<Pending>,
        refs: Vec<Vec<String>>,
        from: Pending,
    ) {
        let refs: Vec<Vec<String>> = refs.into_iter().filter(|r| !r.is_empty()).collect();
        if refs.is_empty() {
            return;
        }
        out.references.extend(refs.iter().flatten().cloned());
        if !self.config.follow_referrals {
            tracing::debug!(system = %self.system, base = %from.base, references = ?refs, "search references skipped (follow_referrals is off)");
            return;
        }
        for urls in refs {
            pending.push_back(Pending {
                urls,
                base: from.base.clone(),
                scope: from.scope,
                filter: from.filter.clone(),
                hops: from.hops,
            });
        }
    }

    /// Follows one reference: searches the first of its URLs that can be
    /// reached, with the original filter and attributes. References met
    /// there are queued one hop further. A reference that leads where the
    /// read has been already is skipped; one that cannot be followed
    /// makes the read incomplete, with a problem naming its URL.
    #[allow(clippy::too_many_arguments)]
    async fn follow_reference(
        &self,
        via: &mut Via<'_>,
        follow: &mut Follow,
        p: Pending,
        attrs: &[String],
        out: &mut Collected,
        progress: &dyn Progress,
        pending: &mut VecDeque<Pending>,
    ) {
        let shown = p.urls.join(" ");
        if p.hops > MAX_HOPS {
            self.unfollowed(
                out,
                &shown,
                &p.base,
                &format!(
                    "it is more than {MAX_HOPS} references away from the configured base DNs (a chain of referrals this long is taken for a misconfiguration)"
                ),
            );
            return;
        }
        let mut failures: Vec<String> = Vec::new();
        for text in &p.urls {
            let url = match LdapUrl::parse(text) {
                Ok(u) => u,
                Err(e) => {
                    failures.push(format!("{text}: {e}"));
                    continue;
                }
            };
            let base = url.dn.clone().unwrap_or_else(|| p.base.clone());
            let scope = url.scope.unwrap_or(p.scope);
            let server = url.server();
            let same = match (&server, &follow.own) {
                (None, _) => true,
                (Some(s), Some(own)) => s.same_endpoint(own),
                (Some(_), None) => false,
            };
            let key = if same {
                follow.own.clone()
            } else {
                server.clone()
            };
            let normal = normalize_dn(&base);
            if follow.covered(&key, &normal, scope) {
                tracing::info!(system = %self.system, url = %text, "search reference to a subtree this read covers already: not read again");
                return;
            }
            follow.visited.push((key, normal, scope));
            let conn = match (same, server) {
                (true, _) | (false, None) => via.reborrow(),
                (false, Some(server)) => {
                    let slot = match follow.others.entry(server.clone()) {
                        std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                        std::collections::hash_map::Entry::Vacant(v) => {
                            let connected = match referral::config_for(&self.config, &server) {
                                Ok(config) => WireConn::connect(&self.system, &config)
                                    .await
                                    .map_err(|e| e.to_string()),
                                Err(why) => Err(why),
                            };
                            v.insert(connected)
                        }
                    };
                    match slot {
                        Ok(w) => Via::Wire(w),
                        Err(why) => {
                            failures.push(format!("{text}: {why}"));
                            continue;
                        }
                    }
                }
            };
            tracing::info!(system = %self.system, url = %text, base = %base, scope = ?scope, hops = p.hops, "following a search reference");
            let mut refs = Vec::new();
            let result = self
                .run_search(
                    conn,
                    &Search {
                        base: &base,
                        scope,
                        filter: &p.filter,
                        attrs,
                    },
                    out,
                    progress,
                    &mut refs,
                )
                .await;
            if let Ok((res, _)) = &result {
                if res.rc == rc::REFERRAL && !res.refs.is_empty() {
                    refs.push(res.refs.clone());
                }
            }
            self.references_met(
                out,
                pending,
                refs,
                Pending {
                    urls: Vec::new(),
                    base: base.clone(),
                    scope,
                    filter: p.filter.clone(),
                    hops: p.hops + 1,
                },
            );
            let (why, entries) = match result {
                Ok((res, _)) if res.rc == rc::SUCCESS || res.rc == rc::REFERRAL => {
                    out.followed.push(text.clone());
                    return;
                }
                Ok((res, n)) if res.rc == rc::NO_SUCH_OBJECT => (
                    format!(
                        "{text}: {base} does not exist there ({})",
                        conn::describe(&res)
                    ),
                    n,
                ),
                Ok((res, n)) => (
                    format!(
                        "{text}: {}",
                        conn::from_result(&self.system, &format!("search {base}"), &res)
                    ),
                    n,
                ),
                Err(failure) => {
                    if !same {
                        if let Some(server) = url.server() {
                            // The connection may be broken: the next
                            // reference to this server connects again.
                            if let Some(Ok(w)) = follow.others.remove(&server) {
                                w.close().await;
                            }
                        }
                    }
                    (format!("{text}: {}", failure.error), failure.entries_before)
                }
            };
            failures.push(why);
            if entries > 0 {
                // Part of the subtree came: another URL would repeat it.
                break;
            }
        }
        if !failures.is_empty() {
            self.unfollowed(out, &shown, &p.base, &failures.join("; "));
        }
    }

    /// Records a reference that could not be followed.
    fn unfollowed(&self, out: &mut Collected, urls: &str, base: &str, why: &str) {
        tracing::error!(system = %self.system, urls, base, why, "a search reference could not be followed: the pull is incomplete");
        out.complete = false;
        out.problems.push(Problem {
            object: urls.to_string(),
            message: format!(
                "the search reference {urls} (met reading {base}) could not be followed, so the read is incomplete and nothing is deleted on this run: {why}"
            ),
        });
    }

    /// Records a search that stopped part-way.
    fn partial(
        &self,
        out: &mut Collected,
        base: &str,
        error: ConnectorError,
    ) -> Result<(), ConnectorError> {
        if matches!(error, ConnectorError::Authentication { .. }) {
            return Err(error);
        }
        tracing::error!(system = %self.system, base, %error, "the read stopped part-way: the pull is incomplete");
        out.complete = false;
        out.problems.push(Problem {
            object: base.to_string(),
            message: format!(
                "the read stopped part-way, so nothing is deleted on this run: {error}"
            ),
        });
        Ok(())
    }

    /// Reads one entry for member resolution.
    async fn fetch_node(&self, ldap: &mut Ldap, dn: &str) -> Result<Option<Node>, ConnectorError> {
        let mut attrs: Vec<String> = vec![
            "objectClass".into(),
            self.mapper.attrs.mail.clone(),
            "proxyAddresses".into(),
        ];
        attrs.extend(self.mapper.attrs.aliases.iter().cloned());
        attrs.extend(self.mapper.attrs.members.iter().cloned());
        let res = ldap
            .with_timeout(self.timeout)
            .streaming_search_with(
                EntriesOnly::new(),
                dn,
                Scope::Base,
                "(objectClass=*)",
                attrs,
            )
            .await
            .map_err(|e| conn::from_ldap(&self.system, &format!("read member {dn}"), e))?;
        let mut stream = res;
        let mut node = None;
        while let Ok(Some(e)) = stream.next().await {
            let entry = Entry::from(SearchEntry::construct(e));
            let is_group = entry.has_class("group")
                || entry.has_class("groupOfNames")
                || entry.has_class("groupOfUniqueNames");
            // As a recipient's primary address is chosen: the SMTP: proxy
            // address, else mail, else the first valid alias address
            // (an entry known by mailLocalAddress alone).
            let address = parse_proxy_addresses(entry.values("proxyAddresses"))
                .0
                .or_else(|| entry.first(&self.mapper.attrs.mail).map(str::to_string))
                .or_else(|| {
                    self.mapper
                        .attrs
                        .aliases
                        .iter()
                        .flat_map(|a| {
                            if a.eq_ignore_ascii_case("proxyAddresses") {
                                parse_proxy_addresses(entry.values(a)).1
                            } else {
                                entry
                                    .values(a)
                                    .iter()
                                    .map(|v| v.trim().to_string())
                                    .collect()
                            }
                        })
                        .find(|v| normalize(v).is_some())
                });
            let members = is_group.then(|| {
                self.mapper
                    .attrs
                    .members
                    .iter()
                    .flat_map(|m| entry.values(m).iter().cloned())
                    .collect()
            });
            node = Some(Node { address, members });
        }
        let _ = stream.finish().await;
        Ok(node)
    }

    /// Resolves every group's member DNs to addresses, expanding nested
    /// groups and tolerating cycles. Unknown DNs are read on demand.
    pub async fn resolve_members(
        &self,
        ldap: &mut Ldap,
        out: &mut Collected,
    ) -> Result<(), ConnectorError> {
        if out.recipients.iter().all(|(_, m)| m.is_empty()) {
            return Ok(());
        }
        let mut nodes = std::mem::take(&mut out.nodes);
        // Member DNs are compared in normal form (case, spacing, escapes).
        let mut normal: FxHashMap<String, Node> =
            nodes.drain().map(|(k, v)| (normalize_dn(&k), v)).collect();
        let nodes = &mut normal;
        let mut missing: HashSet<String> = HashSet::new();
        for (recipient, member_dns) in out.recipients.iter_mut() {
            if member_dns.is_empty() {
                continue;
            }
            let mut addresses: Vec<String> = Vec::new();
            let mut seen_addr: HashSet<String> = HashSet::new();
            let mut visited: HashSet<String> = HashSet::new();
            let mut stack: Vec<String> = member_dns.clone();
            while let Some(dn) = stack.pop() {
                let key = normalize_dn(&dn);
                if !visited.insert(key.clone()) {
                    continue; // a cycle, or the same member twice
                }
                if !nodes.contains_key(&key) && !missing.contains(&key) {
                    match self.fetch_node(ldap, &dn).await? {
                        Some(n) => {
                            nodes.insert(key.clone(), n);
                        }
                        None => {
                            missing.insert(key.clone());
                        }
                    }
                }
                let Some(node) = nodes.get(&key) else {
                    continue;
                };
                match &node.members {
                    Some(members) => stack.extend(members.iter().cloned()),
                    None => {
                        if let Some(a) = &node.address {
                            if let Some(n) = normalize(a) {
                                if seen_addr.insert(n) {
                                    addresses.push(a.clone());
                                }
                            }
                        }
                    }
                }
            }
            addresses.sort_by_key(|a| a.to_lowercase());
            recipient.members = addresses;
        }
        out.nodes = std::mem::take(nodes);
        Ok(())
    }

    /// Reads the entries with the given anchors (within the scopes and
    /// filters), in chunks; used by deltas that only learn ids.
    pub async fn read_by_anchors(
        &self,
        ldap: &mut Ldap,
        anchors: &[String],
        out: &mut Collected,
    ) -> Result<(), ConnectorError> {
        let anchor_attr = self.mapper.attrs.anchor.clone();
        let is_guid = anchor_attr.eq_ignore_ascii_case("objectGUID");
        for chunk in anchors.chunks(100) {
            let mut alternatives = String::new();
            for a in chunk {
                let value = if is_guid {
                    match guid_to_bytes(a) {
                        Some(b) => filter_bytes(&b),
                        None => continue,
                    }
                } else {
                    filter_value(a)
                };
                alternatives.push_str(&format!("({anchor_attr}={value})"));
            }
            if alternatives.is_empty() {
                continue;
            }
            let extra = format!("(|{alternatives})");
            self.read_all(ldap, out, &coexist_connector::NoProgress, Some(&extra))
                .await?;
        }
        Ok(())
    }

    /// The filter matching the groups that hold any of `dns` as a member
    /// value, in any of the flavour's member attributes:
    /// `(|(member=DN1)(uniqueMember=DN1)(member=DN2)...)`, each DN escaped
    /// as an RFC 4515 assertion value.
    pub fn member_filter(&self, dns: &[String]) -> String {
        let mut alternatives = String::new();
        for dn in dns {
            let value = filter_value(dn);
            for attr in &self.mapper.attrs.members {
                alternatives.push_str(&format!("({attr}={value})"));
            }
        }
        format!("(|{alternatives})")
    }

    /// Adds to a delta the groups whose members it changed, read again as
    /// a full read reads them (same scopes, filters and mapping; members
    /// resolved later by [`Reader::resolve_members`] as for every group).
    ///
    /// A delta returns only the entries that changed; a group that lists a
    /// changed person (or a changed group) by DN is not among them, yet the
    /// addresses it resolves to did change. So for the DNs of the entries
    /// the delta added or modified (`out.dns`, kept by
    /// [`Collected::tracking`]), the entries of the configured bases
    /// holding any of them as a member value are searched for (DNs only;
    /// whatever their class and filters, so that a group without an
    /// address nested in a list is gone through too), and those of them
    /// that are recipients are read again with the scopes' filters. Then
    /// the same for the holders found, up to [`PARENT_GROUP_DEPTH`]
    /// levels, each DN searched once. [`MEMBER_DNS_PER_SEARCH`] DNs go in
    /// one filter: per level, one search per that many DNs, plus one read
    /// when it found holders. An empty delta costs no search. Groups the
    /// delta has already (same anchor) are not added twice. Holders behind
    /// a search reference are not looked for.
    ///
    /// Entries the delta *deleted* are not followed: content sync names
    /// them by entryUUID only, and DirSync and uSNChanged by objectGUID, so
    /// their DNs (what member values hold) are not known, and a group
    /// whose member was deleted keeps the stale address until that group
    /// itself changes or a full read (`sync --full-read`) reads it again.
    /// Likewise on OpenLDAP a changed entry the scopes' filters do not
    /// select (a group without an address gaining a member) is not in the
    /// delta at all, so the lists holding it wait for a full read too; the
    /// AD deltas pass the DNs of every changed object (see `sync.rs`).
    ///
    /// A failed search does not fail the pull: it is marked incomplete,
    /// with a problem saying why, so nothing is deleted on this run and the
    /// engine keeps the old cursor: the next pull tries again.
    pub async fn add_parent_groups(&self, ldap: &mut Ldap, out: &mut Collected) {
        let Some(changed) = out.dns.take() else {
            return;
        };
        if changed.is_empty() || self.mapper.attrs.members.is_empty() {
            return;
        }
        let mut anchors: HashSet<String> = out
            .recipients
            .iter()
            .map(|(r, _)| r.anchor.clone())
            .collect();
        let mut visited: HashSet<String> = HashSet::new();
        let mut level: Vec<String> = changed
            .into_iter()
            .filter(|dn| visited.insert(normalize_dn(dn)))
            .collect();
        let mut searches = 0usize;
        let mut added = 0usize;
        for _depth in 0..PARENT_GROUP_DEPTH {
            if level.is_empty() {
                break;
            }
            let mut next = Vec::new();
            for chunk in level.chunks(MEMBER_DNS_PER_SEARCH) {
                let filter = self.member_filter(chunk);
                searches += 1;
                let holders = match self.holders(ldap, &filter).await {
                    Ok(h) => h,
                    Err(e) => {
                        self.parents_unread(out, chunk, &e.to_string());
                        return;
                    }
                };
                if holders.is_empty() {
                    continue;
                }
                for dn in holders {
                    if visited.insert(normalize_dn(&dn)) {
                        next.push(dn);
                    }
                }
                let mut found = Collected::new();
                searches += 1;
                let read = self
                    .read_all(
                        ldap,
                        &mut found,
                        &coexist_connector::NoProgress,
                        Some(&filter),
                    )
                    .await;
                let complete = found.complete;
                let before = out.recipients.len();
                out.absorb(found, &mut anchors);
                added += out.recipients.len() - before;
                match read {
                    Err(e) => {
                        self.parents_unread(out, chunk, &e.to_string());
                        return;
                    }
                    Ok(()) if !complete => {
                        self.parents_unread(
                            out,
                            chunk,
                            "the read of them stopped part-way or met a search reference it could not follow (the other problems of this pull say which)",
                        );
                        return;
                    }
                    Ok(()) => {}
                }
            }
            level = next;
        }
        if !level.is_empty() {
            tracing::warn!(system = %self.system, depth = PARENT_GROUP_DEPTH, groups = level.len(), "groups nested deeper than this above a changed entry are not read again by this delta");
        }
        tracing::debug!(system = %self.system, searches, added, "groups of the changed entries read again");
    }

    /// The DNs of the entries within the configured bases that match
    /// `filter` (a [`Reader::member_filter`]), whatever their class.
    async fn holders(&self, ldap: &mut Ldap, filter: &str) -> Result<Vec<String>, ConnectorError> {
        let mut dns = Vec::new();
        let none = ["1.1".to_string()];
        for base in &self.config.base_dns {
            let mut refs = Vec::new();
            let res = self
                .search(
                    ldap,
                    Query {
                        base,
                        filter,
                        attrs: &none,
                        controls: Vec::new(),
                        paged: true,
                    },
                    |e| {
                        dns.push(SearchEntry::construct(e).dn);
                        Ok(())
                    },
                    &mut refs,
                )
                .await
                .map_err(|f| f.error)?;
            if res.rc != rc::SUCCESS && res.rc != rc::REFERRAL {
                return Err(conn::from_result(
                    &self.system,
                    &format!("search {base} for the groups of changed entries"),
                    &res,
                ));
            }
        }
        Ok(dns)
    }

    /// Records that the groups holding `dns` could not be read again.
    fn parents_unread(&self, out: &mut Collected, dns: &[String], why: &str) {
        tracing::error!(system = %self.system, why, "the groups of the changed entries could not be read: the pull is incomplete");
        out.complete = false;
        let first = dns.first().map(String::as_str).unwrap_or_default();
        let more = dns.len().saturating_sub(1);
        let object = if more > 0 {
            format!("{first} (and {more} more)")
        } else {
            first.to_string()
        };
        out.problems.push(Problem {
            object,
            message: format!(
                "the groups holding these changed entries could not be read again, so their members may be out of date; the pull is incomplete and the next one tries again: {why}"
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use coexist_connector::SecretRef;

    use super::*;
    use crate::config::Flavor;

    fn reader(flavor: Flavor) -> Reader {
        let config = LdapConfig::new(
            flavor,
            "ldap://localhost",
            "cn=admin,dc=x",
            SecretRef::Env { env: "PW".into() },
            vec!["dc=x".into()],
            "ou=coexist,dc=x",
        );
        Reader::new("mail", &config)
    }

    #[test]
    fn the_member_filter_names_every_dn_in_every_member_attribute_escaped() {
        let dns = vec![
            "uid=a,dc=x".to_string(),
            "cn=Smith\\, J (*),dc=x".to_string(),
        ];
        assert_eq!(
            reader(Flavor::Openldap).member_filter(&dns),
            "(|(member=uid=a,dc=x)(uniqueMember=uid=a,dc=x)\
             (member=cn=Smith\\5c, J \\28\\2a\\29,dc=x)(uniqueMember=cn=Smith\\5c, J \\28\\2a\\29,dc=x))"
        );
        assert_eq!(
            reader(Flavor::ActiveDirectory).member_filter(&dns[..1]),
            "(|(member=uid=a,dc=x))"
        );
    }

    #[test]
    fn only_a_tracking_collection_keeps_the_dns_of_its_entries() {
        let r = reader(Flavor::Openldap);
        let entry = || Entry::new("uid=a,dc=x");
        let mut plain = Collected::new();
        plain.add(&r.mapper, entry());
        assert!(plain.dns.is_none());
        let mut tracking = Collected::tracking();
        tracking.add(&r.mapper, entry());
        assert_eq!(tracking.dns, Some(vec!["uid=a,dc=x".to_string()]));
    }
}
