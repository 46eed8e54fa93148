//! The groups of the entries a delta changed, read again: a group that
//! lists a changed entry by DN is not itself in the delta, yet the
//! addresses it resolves to changed (see [`Reader::add_parent_groups`]).

use std::collections::HashSet;

use coexist_connector::{ConnectorError, Problem};
use ldap3::{Ldap, SearchEntry};

use super::{Collected, Query, Reader};
use crate::error;
use crate::escape::{filter_value, normalize_dn};

/// How many changed DNs one search for the groups holding them names.
pub const MEMBER_DNS_PER_SEARCH: usize = 50;

/// How many levels of groups above a changed entry a delta reads again
/// (a group in a group in a group ... of the entry).
pub const PARENT_GROUP_DEPTH: usize = 8;

impl Reader {
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
    /// AD deltas pass the DNs of every changed object (see `sync/ad.rs`).
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
            error::search_done(
                &self.system,
                &format!("search {base} for the groups of changed entries"),
                &res,
            )?;
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
    use crate::config::Flavor;
    use crate::read::tests::reader;

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
}
