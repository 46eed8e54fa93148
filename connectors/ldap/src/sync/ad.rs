//! What the two Active Directory deltas (DirSync and uSNChanged) share:
//! the root DSE and the naming context, the filter of the objects they
//! watch, and the re-read of the objects they report changed through the
//! configured scopes.

use std::collections::HashSet;

use coexist_connector::{ConnectorError, Problem};
use ldap3::{Ldap, Scope, SearchEntry};

use crate::entry::Entry;
use crate::error;
use crate::escape::is_within;
use crate::read::{Collected, Reader};

/// Reads attributes of the root DSE.
pub(super) async fn root_dse(
    reader: &Reader,
    ldap: &mut Ldap,
    attrs: &[&str],
) -> Result<Entry, ConnectorError> {
    let result = ldap
        .with_timeout(reader.timeout)
        .search("", Scope::Base, "(objectClass=*)", attrs.to_vec())
        .await
        .map_err(|e| error::from_ldap(&reader.system, "read the root DSE", e))?;
    result
        .0
        .into_iter()
        .next()
        .map(|e| Entry::from(SearchEntry::construct(e)))
        .ok_or_else(|| {
            ConnectorError::permanent(format!(
                "LDAP system `{}`: the server shows no root DSE",
                reader.system
            ))
        })
}

pub(super) async fn naming_context(
    reader: &Reader,
    ldap: &mut Ldap,
) -> Result<String, ConnectorError> {
    let dse = root_dse(reader, ldap, &["defaultNamingContext"]).await?;
    dse.first("defaultNamingContext")
        .map(str::to_string)
        .ok_or_else(|| {
            ConnectorError::permanent(format!(
                "LDAP system `{}`: the root DSE has no defaultNamingContext; is this Active Directory? (check flavor)",
                reader.system
            ))
        })
}

/// The filter DirSync and uSNChanged deltas watch: every kind of object
/// that can be a recipient or a stub (tombstones keep their objectClass).
pub(super) const WATCH_FILTER: &str =
    "(|(&(objectClass=user)(!(objectClass=computer)))(objectClass=contact)(objectClass=group))";

/// Reads the changed objects again through the configured scopes; when
/// that read is complete, those it did not find (they no longer match the
/// scopes and filters) are removed. `changed` pairs each changed object's
/// objectGUID with its DN as DirSync or the uSNChanged search named it: the
/// groups holding any of them are read again too (see
/// [`Reader::add_parent_groups`]), even when the object itself is no
/// recipient (a security group without an address, nested in a list).
///
/// A re-read that stops part-way (a search failed after others had read
/// entries) leaves the pull incomplete and removes nothing beyond what the
/// server reported deleted (`removed`, the tombstones): an object it
/// missed may be there still. Its problems say which changed objects were
/// not read; the engine keeps the old cursor, so the next pull reads them.
pub(super) async fn reread(
    reader: &Reader,
    ldap: &mut Ldap,
    changed: Vec<(String, String)>,
    removed: &mut Vec<String>,
) -> Result<Collected, ConnectorError> {
    let mut unique: Vec<String> = changed.iter().map(|(id, _)| id.clone()).collect();
    unique.sort();
    unique.dedup();
    let mut out = Collected::tracking();
    reader.read_by_anchors(ldap, &unique, &mut out).await?;
    let found: HashSet<&str> = out
        .recipients
        .iter()
        .map(|(r, _)| r.anchor.as_str())
        .chain(out.stubs.iter().map(|s| s.id.as_str()))
        .collect();
    let mut missed: Vec<String> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for (id, dn) in &changed {
        if found.contains(id.as_str()) || !seen.insert(id.as_str()) {
            continue;
        }
        if out.complete {
            removed.push(id.clone());
        } else if reader
            .config
            .base_dns
            .iter()
            .chain(std::iter::once(&reader.config.stub_base))
            .any(|base| is_within(dn, base))
        {
            // (Changes DirSync saw outside the configured bases are no
            // concern of this system's.)
            missed.push(dn.clone());
        }
    }
    if !missed.is_empty() {
        tracing::error!(system = %reader.system, objects = missed.len(), "the re-read of the changed objects stopped part-way: those it did not read are kept, the pull is incomplete");
        let first = missed.first().cloned().unwrap_or_default();
        let (object, message) = match missed.len() {
            1 => (
                first,
                "this changed entry was not read again because the re-read stopped part-way; it is kept as it was (not taken for deleted), the pull is incomplete and the next one reads it again".to_string(),
            ),
            n => (
                format!("{first} (and {} more)", n - 1),
                format!("these {n} changed entries were not read again because the re-read stopped part-way; they are kept as they were (not taken for deleted), the pull is incomplete and the next one reads them again"),
            ),
        };
        out.problems.push(Problem { object, message });
    }
    let changed_dns = changed.into_iter().map(|(_, dn)| dn);
    if let Some(dns) = &mut out.dns {
        dns.extend(changed_dns);
    }
    reader.add_parent_groups(ldap, &mut out).await;
    reader.resolve_members(ldap, &mut out).await?;
    Ok(out)
}
