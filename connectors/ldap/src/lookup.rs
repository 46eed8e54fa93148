//! One search for a single entry, as every write path needs it: read an
//! entry by its DN before changing it, or find coexist's entry by its
//! marker under a base. The server's answer becomes a [`Lookup`]; what a
//! missing base means (nothing there, or a configuration to fix) stays with
//! the caller.

use std::time::Duration;

use coexist_connector::ConnectorError;
use ldap3::{Ldap, Scope, SearchEntry};

use crate::entry::Entry;
use crate::error::{self, rc};

/// What one search for a single entry found.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// The first entry the search returned (references are skipped).
    Found(Entry),
    /// The search ran and matched nothing.
    Nothing,
    /// The base of the search does not exist (`noSuchObject`).
    NoSuchBase,
}

impl Lookup {
    /// The entry, `None` when there is none or no base to hold it.
    pub(crate) fn entry(self) -> Option<Entry> {
        match self {
            Lookup::Found(entry) => Some(entry),
            Lookup::Nothing | Lookup::NoSuchBase => None,
        }
    }
}

/// One search of `system` for at most one entry, bounded by `timeout`;
/// `what` names it in errors (`read {dn}`, `look up a stub by its marker`).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn search_one(
    ldap: &mut Ldap,
    timeout: Duration,
    system: &str,
    what: &str,
    base: &str,
    scope: Scope,
    filter: &str,
    attributes: Vec<String>,
) -> Result<Lookup, ConnectorError> {
    error::request_sent();
    let ldap3::SearchResult(entries, result) = ldap
        .with_timeout(timeout)
        .search(base, scope, filter, attributes)
        .await
        .map_err(|e| error::from_ldap(system, what, e))?;
    match result.rc {
        rc::NO_SUCH_OBJECT => Ok(Lookup::NoSuchBase),
        rc::SUCCESS => Ok(entries
            .into_iter()
            .find(|e| !e.is_ref())
            .map(|e| Lookup::Found(Entry::from(SearchEntry::construct(e))))
            .unwrap_or(Lookup::Nothing)),
        _ => Err(error::from_result(system, what, &result)),
    }
}

/// A paged subtree search of `system` below `base` (pages of `page_size`,
/// each bounded by `timeout`), every entry it finds given to `each` in
/// turn (search references and intermediate messages are skipped);
/// `what` names it in errors (`list the stubs`). `Ok(false)` when `base`
/// does not exist (`noSuchObject`), which the caller explains.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn search_paged(
    ldap: &mut Ldap,
    timeout: Duration,
    system: &str,
    what: &str,
    page_size: i32,
    base: &str,
    filter: &str,
    attributes: Vec<String>,
    mut each: impl FnMut(Entry),
) -> Result<bool, ConnectorError> {
    error::request_sent();
    let mut stream = ldap
        .with_timeout(timeout)
        .streaming_search_with(
            ldap3::adapters::PagedResults::new(page_size),
            base,
            Scope::Subtree,
            filter,
            attributes,
        )
        .await
        .map_err(|e| error::from_ldap(system, what, e))?;
    loop {
        match stream.next().await {
            Ok(Some(e)) if e.is_ref() || e.is_intermediate() => continue,
            Ok(Some(e)) => each(Entry::from(SearchEntry::construct(e))),
            Ok(None) => break,
            Err(e) => return Err(error::from_ldap(system, what, e)),
        }
    }
    let res = stream.finish().await;
    match res.rc {
        rc::SUCCESS => Ok(true),
        rc::NO_SUCH_OBJECT => Ok(false),
        _ => Err(error::from_result(system, what, &res)),
    }
}

/// The entry at `dn` with `attributes`, `None` when there is none.
pub(crate) async fn read_entry(
    ldap: &mut Ldap,
    timeout: Duration,
    system: &str,
    dn: &str,
    attributes: Vec<String>,
) -> Result<Option<Entry>, ConnectorError> {
    let what = format!("read {dn}");
    search_one(
        ldap,
        timeout,
        system,
        &what,
        dn,
        Scope::Base,
        "(objectClass=*)",
        attributes,
    )
    .await
    .map(Lookup::entry)
}
