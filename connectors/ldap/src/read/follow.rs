//! Following the search references a read meets (`follow_referrals`):
//! each reference searched on the first of its URLs that can be reached,
//! with the original filter and attributes, on the system's connection or
//! on one of its own to another server (reached as
//! [`crate::endpoint::Endpoint::referred`] decides); at most
//! [`MAX_HOPS`] deep, never twice over the same subtree. One that cannot
//! be followed makes the read incomplete, with a problem naming its URL.

use std::collections::{HashMap, VecDeque};

use coexist_connector::{Problem, Progress};
use ldap3::Scope;

use super::collect::Search;
use super::{Collected, Reader, Via};
use crate::error::{self, rc};
use crate::escape::normalize_dn;
use crate::referral::{LdapUrl, Server, MAX_HOPS};
use crate::wire::WireConn;

/// A reference still to follow: its URLs (any of which may be used,
/// RFC 4511 4.5.3) and the search that met it.
pub(super) struct Pending {
    pub(super) urls: Vec<String>,
    /// The base of the search that met it (the base of a continuation
    /// whose URL names no DN).
    pub(super) base: String,
    /// The scope of that search (a continuation's scope when its URL names
    /// none).
    pub(super) scope: Scope,
    pub(super) filter: String,
    /// How many references away from a configured scope it leads (1 for a
    /// reference a configured scope met).
    pub(super) hops: usize,
}

/// The state of following references during one read: where the read has
/// been, and the connections to other servers it opened.
pub(super) struct Follow {
    /// The system's own server (`None` when its URL names no host).
    own: Option<Server>,
    /// The searches done or started: server, normalised base, scope.
    visited: Vec<(Option<Server>, String, Scope)>,
    /// Connections to other servers, or why there is none.
    others: HashMap<Server, Result<WireConn, String>>,
}

impl Follow {
    /// The state of a read of the subtrees `bases` on the system's own
    /// server `own`.
    pub(super) fn new<'b>(own: Option<Server>, bases: impl IntoIterator<Item = &'b str>) -> Self {
        let visited = bases
            .into_iter()
            .map(|base| (own.clone(), normalize_dn(base), Scope::Subtree))
            .collect();
        Follow {
            own,
            visited,
            others: HashMap::new(),
        }
    }

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
    pub(super) async fn close(self) {
        for (_, c) in self.others {
            if let Ok(c) = c {
                c.close().await;
            }
        }
    }
}

impl Reader {
    /// Records the references a search met (`refs`, each a list of
    /// alternative URLs) and, when they are to be followed, queues them as
    /// continuations of `from` (whose `urls` are ignored).
    pub(super) fn references_met(
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
    pub(super) async fn follow_reference(
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
                            let connected = match self.endpoint.referred(&server) {
                                Ok(endpoint) => endpoint.lean().await.map_err(|e| e.to_string()),
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
                        error::describe(&res)
                    ),
                    n,
                ),
                Ok((res, n)) => (
                    format!(
                        "{text}: {}",
                        error::from_result(&self.system, &format!("search {base}"), &res)
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
}
