//! Reading: paged subtree searches over the configured scopes, entries
//! classified into recipients, stubs and problems, and group members
//! resolved to addresses (nested groups expanded, cycles tolerated).

use std::collections::HashSet;

use rustc_hash::FxHashMap;
use std::time::Duration;

use coexist_connector::{ConnectorError, FoundStub, Problem, Progress, Recipient};
use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::controls::RawControl;
use ldap3::{Ldap, ResultEntry, Scope, SearchEntry};

use crate::config::LdapConfig;
use crate::conn::{self, rc};
use crate::entry::{guid_to_bytes, normalize, parse_proxy_addresses, Classified, Entry, Mapper};
use crate::escape::{filter_bytes, filter_value, is_within, normalize_dn};
use crate::wire::{PagedSearch, SearchStop, Stopped, WireConn};

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
    /// Search references met (not followed unless configured).
    pub references: Vec<String>,
    /// How many recipients have each normalised primary address, counted
    /// as they arrive so that [`Collected::drop_duplicates`] has nothing to
    /// do in the usual case.
    primaries: FxHashMap<String, u32>,
    /// Whether some primary address was seen twice.
    duplicates: bool,
}

impl Collected {
    pub fn new() -> Self {
        Collected {
            complete: true,
            ..Collected::default()
        }
    }

    /// Adds one entry.
    pub fn add(&mut self, mapper: &Mapper, entry: Entry) {
        let classified = mapper.classify(&entry);
        self.add_classified(mapper, entry, classified);
    }

    /// Adds one entry classified already.
    pub fn add_classified(&mut self, mapper: &Mapper, entry: Entry, classified: Classified) {
        match classified {
            Classified::Recipient {
                recipient,
                member_dns,
                warnings,
            } => {
                let key = normalize(&recipient.primary_address).unwrap_or_default();
                match self.primaries.entry(key) {
                    std::collections::hash_map::Entry::Occupied(mut o) => {
                        *o.get_mut() += 1;
                        self.duplicates = true;
                    }
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(1);
                    }
                }
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

    /// Skips every recipient whose primary address another recipient also
    /// has, reporting each (no arbitrary winner).
    pub fn drop_duplicates(&mut self) {
        if !self.duplicates {
            return;
        }
        self.duplicates = false;
        let primaries = std::mem::take(&mut self.primaries);
        let dup: Vec<bool> = self
            .recipients
            .iter()
            .map(|(r, _)| {
                let key = normalize(&r.primary_address).unwrap_or_default();
                primaries.get(&key).copied().unwrap_or(0) > 1
            })
            .collect();
        let mut kept = Vec::with_capacity(self.recipients.len());
        for ((r, m), dup) in self.recipients.drain(..).zip(dup) {
            if dup {
                self.problems.push(Problem {
                    object: r.anchor.clone(),
                    message: format!(
                        "the address {} belongs to several entries of this system; each of them is skipped until it is unique",
                        r.primary_address
                    ),
                });
            } else {
                kept.push((r, m));
            }
        }
        self.recipients = kept;
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
    /// References are recorded (and followed only when configured).
    pub async fn search(
        &self,
        ldap: &mut Ldap,
        query: Query<'_>,
        mut each: impl FnMut(ResultEntry) -> Result<(), ConnectorError>,
        references: &mut Vec<String>,
    ) -> Result<ldap3::LdapResult, SearchFailure> {
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
            .streaming_search_with(adapters, base, Scope::Subtree, filter, attrs.to_vec())
            .await
            .map_err(|e| fail(conn::from_ldap(&self.system, &what, e), 0))?;
        let mut n = 0usize;
        loop {
            match stream.next().await {
                Ok(Some(e)) if e.is_ref() => {
                    references.extend(ldap3::parse_refs(e.0));
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

    /// [`Reader::read_all`] over the given connection.
    pub async fn read_all_via(
        &self,
        mut via: Via<'_>,
        out: &mut Collected,
        progress: &dyn Progress,
        extra_filter: Option<&str>,
    ) -> Result<(), ConnectorError> {
        let attrs = self.mapper.read_attributes();
        for scope in self.scopes() {
            let filter = match extra_filter {
                Some(x) => format!("(&{}{x})", scope.filter),
                None => scope.filter.clone(),
            };
            let mut refs = Vec::new();
            let mapper = &self.mapper;
            let mut batch = 0u64;
            let result = {
                let out_ref = &mut *out;
                let mut add = |entry: Entry| {
                    out_ref.add(mapper, entry);
                    batch += 1;
                    if batch == 1000 {
                        progress.advance(batch);
                        batch = 0;
                    }
                    Ok(())
                };
                match &mut via {
                    Via::Ldap3(ldap) => {
                        self.search(
                            ldap,
                            Query {
                                base: &scope.base,
                                filter: &filter,
                                attrs: &attrs,
                                controls: Vec::new(),
                                paged: true,
                            },
                            |e| add(Entry::from(SearchEntry::construct(e))),
                            &mut refs,
                        )
                        .await
                    }
                    Via::Wire(wire) => wire
                        .search(
                            PagedSearch {
                                base: &scope.base,
                                filter: &filter,
                                attrs: &attrs,
                                page_size: self.config.page_size,
                            },
                            &mut add,
                            &mut refs,
                        )
                        .await
                        .map_err(|stop| match stop {
                            SearchStop::Wire(Stopped {
                                error,
                                entries_before,
                            }) => SearchFailure {
                                error: error.into_connector_error(
                                    &self.system,
                                    &format!("search {}", scope.base),
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
            self.note_references(out, &scope.base, refs);
            match result {
                Ok(res) if res.rc == rc::SUCCESS => {}
                Ok(res) if res.rc == rc::NO_SUCH_OBJECT && scope.base == self.config.stub_base => {
                    return Err(ConnectorError::permanent(format!(
                        "LDAP system `{}`: the stub OU `{}` does not exist; create it (an organizationalUnit) or correct stub_base",
                        self.system, scope.base
                    )));
                }
                Ok(res) if res.rc == rc::REFERRAL => {
                    self.note_references(out, &scope.base, res.refs.clone());
                }
                Ok(res) => {
                    let error =
                        conn::from_result(&self.system, &format!("search {}", scope.base), &res);
                    self.partial(out, &scope.base, error)?;
                }
                Err(failure) => {
                    if failure.entries_before == 0
                        && out.recipients.is_empty()
                        && out.stubs.is_empty()
                    {
                        return Err(failure.error);
                    }
                    self.partial(out, &scope.base, failure.error)?;
                }
            }
        }
        Ok(())
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

    fn note_references(&self, out: &mut Collected, base: &str, refs: Vec<String>) {
        if refs.is_empty() {
            return;
        }
        if self.config.follow_referrals {
            tracing::warn!(system = %self.system, base, count = refs.len(), "search references are not followed by this version; read them by adding their DNs to base_dns");
        } else {
            tracing::debug!(system = %self.system, base, references = ?refs, "search references skipped (follow_referrals is off)");
        }
        out.references.extend(refs);
    }

    /// Reads one entry for member resolution.
    async fn fetch_node(&self, ldap: &mut Ldap, dn: &str) -> Result<Option<Node>, ConnectorError> {
        let mut attrs: Vec<String> = vec![
            "objectClass".into(),
            self.mapper.attrs.mail.clone(),
            "proxyAddresses".into(),
        ];
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
            let address = parse_proxy_addresses(entry.values("proxyAddresses"))
                .0
                .or_else(|| entry.first(&self.mapper.attrs.mail).map(str::to_string));
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
}
