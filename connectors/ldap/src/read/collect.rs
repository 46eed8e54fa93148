//! A read of the configured scopes into a [`Collected`], over ldap3 or the
//! lean reader of [`crate::wire`]: each search's entries classified as they
//! arrive, a search that stops part-way recorded as a problem (the read is
//! then incomplete), and the references met handed to [`super::follow`].
//! Also the read of given anchors through the same scopes (deltas that
//! learn only ids).

use std::collections::VecDeque;

use coexist_connector::{ConnectorError, Problem, Progress};
use ldap3::{Ldap, LdapResult, Scope, SearchEntry};

use super::follow::{Follow, Pending};
use super::{Collected, Query, Reader, SearchFailure, Via};
use crate::entry::{guid_to_bytes, Entry};
use crate::error::{self, rc};
use crate::escape::{filter_bytes, filter_value};
use crate::wire::{PagedSearch, SearchStop, Stopped};

/// One search of a read: the configured scopes, or the continuation of one
/// at a referred place.
pub(super) struct Search<'s> {
    pub(super) base: &'s str,
    pub(super) scope: Scope,
    pub(super) filter: &'s str,
    pub(super) attrs: &'s [String],
}

impl Reader {
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
        let mut follow = Follow::new(
            self.endpoint.server().cloned(),
            scopes.iter().map(|s| s.base.as_str()),
        );
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
                        error::from_result(&self.system, &format!("search {}", scope.base), &res);
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
    pub(super) async fn run_search(
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
