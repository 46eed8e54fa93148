//! Reading: the [`Reader`] of a system, the searches it runs (its scopes:
//! the configured base DNs with the recipient filters, and the stub base),
//! and one paged ldap3 search. The jobs built on it are in the submodules:
//!
//! * `collected`: what a read gathers (recipients, stubs, problems, the
//!   entries kept for member resolution);
//! * `collect`: a read of the scopes over ldap3 or the lean reader, and
//!   of given anchors;
//! * `follow`: the search references a read meets, followed on request
//!   (see [`crate::referral`]);
//! * `members`: group members resolved to addresses (nested groups
//!   expanded, cycles tolerated);
//! * `parents`: the groups of the entries a delta changed, read again.

mod collect;
mod collected;
mod follow;
mod members;
mod parents;

use std::time::Duration;

use coexist_connector::ConnectorError;
use ldap3::adapters::{Adapter, PagedResults};
use ldap3::controls::RawControl;
use ldap3::{Ldap, LdapResult, ResultEntry, Scope};

use crate::config::LdapConfig;
use crate::endpoint::Endpoint;
use crate::entry::Mapper;
use crate::error;
use crate::escape::is_within;
use crate::wire::WireConn;

pub use collected::{Collected, Node};
pub use parents::{MEMBER_DNS_PER_SEARCH, PARENT_GROUP_DEPTH};

/// One subtree search the connector runs: a base and its filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope_ {
    pub base: String,
    pub filter: String,
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
    pub(crate) fn reborrow(&mut self) -> Via<'_> {
        match self {
            Via::Ldap3(l) => Via::Ldap3(l),
            Via::Wire(w) => Via::Wire(w),
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
    /// How the system's server (and the servers its references name) are
    /// reached: the lean reader of a full read connects through it.
    pub endpoint: Endpoint,
}

impl Reader {
    /// A reader of the system `system` configured by `config`, reaching it
    /// as `config` says.
    pub fn new(system: &str, config: &LdapConfig) -> Self {
        Reader::with_endpoint(system, config, Endpoint::new(system, config))
    }

    /// A reader reaching the system through `endpoint` (the connector's, so
    /// that its connections share one TLS configuration).
    pub fn with_endpoint(system: &str, config: &LdapConfig, endpoint: Endpoint) -> Self {
        Reader {
            system: system.to_string(),
            config: config.clone(),
            mapper: Mapper::new(config),
            timeout: Duration::from_secs(config.timeout_seconds),
            endpoint,
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
        error::request_sent();
        let mut stream = handle
            .streaming_search_with(adapters, base, scope, filter, attrs.to_vec())
            .await
            .map_err(|e| fail(error::from_ldap(&self.system, &what, e), 0))?;
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
                    return Err(fail(error::from_ldap(&self.system, &what, e), n));
                }
            }
        }
        let res = stream.finish().await;
        Ok(res)
    }
}

/// What the tests of the read modules share.
#[cfg(test)]
pub(crate) mod tests {
    use coexist_connector::SecretRef;

    use super::*;
    use crate::config::Flavor;

    /// A reader of `dc=x` on `ldap://localhost` (nothing is connected).
    pub(crate) fn reader(flavor: Flavor) -> Reader {
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
}
