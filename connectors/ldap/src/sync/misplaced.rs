//! Stubs left behind in an earlier stub base: after `stub_base` changes,
//! the stubs coexist wrote in the old OU are found there by their marker
//! and returned marked `misplaced`, so the plan moves them into the stub
//! base (an update) or deletes them, instead of writing a second stub
//! beside each. Only the stub bases coexist itself used are searched
//! (the cursor remembers them), never the whole directory: another
//! installation's stubs elsewhere are none of this one's business.

use coexist_connector::FoundStub;
use ldap3::Ldap;
use ldap3::SearchEntry;

use crate::entry::{Classified, Entry};
use crate::error::{self, rc};
use crate::escape::is_within;
use crate::read::{Query, Reader};

/// What the earlier stub bases held.
pub(super) struct LeftBehind {
    /// coexist's stubs found there, marked misplaced.
    pub stubs: Vec<FoundStub>,
    /// The bases still holding any (or that could not be searched): the
    /// next full read looks there again.
    pub still_holding: Vec<String>,
}

/// Searches each of `earlier` (stub bases coexist used before) for its
/// marked stubs, leaving out what the scopes read already (entries inside
/// the current stub base or a base DN). A base that no longer exists holds
/// nothing; one that cannot be searched is kept for the next full read,
/// with a warning.
pub(super) async fn stubs(reader: &Reader, ldap: &mut Ldap, earlier: &[String]) -> LeftBehind {
    let config = &reader.config;
    let attrs = reader.mapper.read_attributes();
    let filter = reader.stub_filter();
    let mut left = LeftBehind {
        stubs: Vec::new(),
        still_holding: Vec::new(),
    };
    for base in earlier {
        let mut refs = Vec::new();
        let mapper = &reader.mapper;
        let mut here = Vec::new();
        let searched = reader
            .search(
                ldap,
                Query {
                    base,
                    filter: &filter,
                    attrs: &attrs,
                    controls: Vec::new(),
                    paged: true,
                },
                |e| {
                    let entry = Entry::from(SearchEntry::construct(e));
                    let read_by_the_scopes = is_within(&entry.dn, &config.stub_base)
                        || config.base_dns.iter().any(|b| is_within(&entry.dn, b));
                    if !read_by_the_scopes {
                        if let Classified::Stub(mut stub) = mapper.classify(&entry) {
                            stub.misplaced = true;
                            here.push(stub);
                        }
                    }
                    Ok(())
                },
                &mut refs,
            )
            .await;
        match searched {
            Ok(res) if res.rc == rc::NO_SUCH_OBJECT => {}
            Ok(res) => match error::search_done(&reader.system, &format!("search {base}"), &res) {
                Ok(()) => {
                    if !here.is_empty() {
                        tracing::info!(stubs = here.len(), earlier = %base, stub_base = %config.stub_base, "coexist's stubs are still in an earlier stub base: the plan moves them to the stub base");
                        left.still_holding.push(base.clone());
                    }
                    left.stubs.append(&mut here);
                }
                Err(error) => {
                    tracing::warn!(%error, earlier = %base, "could not look for coexist's stubs in an earlier stub base; the next full read tries again");
                    left.still_holding.push(base.clone());
                }
            },
            Err(failure) => {
                tracing::warn!(error = %failure.error, earlier = %base, "could not look for coexist's stubs in an earlier stub base; the next full read tries again");
                left.still_holding.push(base.clone());
            }
        }
    }
    left
}
