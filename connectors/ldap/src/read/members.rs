//! Group members resolved to addresses: every group's member DNs expanded
//! through nested groups (cycles tolerated), each member DN the read has
//! not seen read on demand.

use std::collections::HashSet;

use coexist_connector::ConnectorError;
use ldap3::adapters::EntriesOnly;
use ldap3::{Ldap, Scope, SearchEntry};
use rustc_hash::FxHashMap;

use super::{Collected, Node, Reader};
use crate::entry::{normalize, parse_proxy_addresses, Entry};
use crate::error;
use crate::escape::normalize_dn;

impl Reader {
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
            .map_err(|e| error::from_ldap(&self.system, &format!("read member {dn}"), e))?;
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
}
