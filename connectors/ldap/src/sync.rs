//! Pulls: full reads and the incremental methods of each flavor.
//!
//! * OpenLDAP: RFC 4533 refreshOnly with a cookie per search base. A full
//!   read takes a cookie first (a sync search that matches nothing), then
//!   reads with paged results. A refresh the server answers with a present
//!   phase (its session log no longer covers the cookie) or
//!   `e-syncRefreshRequired` leads to a full read.
//! * OpenLDAP without syncprov: `modifyTimestamp >=` the last read (with a
//!   minute of overlap) plus a presence read of the anchors for deletions.
//! * AD: DirSync from the naming context root; the changed objects are then
//!   read again through the configured bases and filters (DirSync returns
//!   only changed attributes). Tombstones and objects that stopped matching
//!   are removed.
//! * AD without the DirSync right: `uSNChanged` above the last
//!   `highestCommittedUSN` of the same DC (`invocationId`), and tombstones
//!   through the Show Deleted control.
//!
//! Every delta then reads again the groups holding a changed entry as a
//! member (and the groups holding those), so a group's resolved members
//! follow a member's change without the group entry changing: see
//! [`Reader::add_parent_groups`].
//!
//! [`pull`] chooses: a delta of the cursor's method ([`content_sync`],
//! [`timestamp`], [`dirsync`], [`usn`]; [`ad`] holds what the two AD
//! methods share), or a [`full`] read when there is no cursor or the server
//! cannot continue from it.

mod ad;
mod content_sync;
mod dirsync;
mod full;
mod misplaced;
mod timestamp;
mod usn;

use std::collections::HashSet;
use std::time::SystemTime;

use coexist_connector::{ConnectorError, Progress, Pull, PullMode};
use ldap3::{Ldap, SearchEntry};

use crate::config::{Flavor, Incremental};
use crate::cursor::{b64, Cursor, Method};
use crate::entry::Entry;
use crate::error;
use crate::read::{Collected, Query, Reader};

/// Reads the system: a delta from `cursor` where possible, else a full read.
pub async fn pull(
    reader: &Reader,
    ldap: &mut Ldap,
    cursor: Option<&str>,
    progress: &dyn Progress,
) -> Result<Pull, ConnectorError> {
    let parsed = cursor.and_then(|c| Cursor::decode(c, &reader.config));
    let earlier = cursor
        .map(|c| Cursor::earlier_stub_bases(c, &reader.config))
        .unwrap_or_default();
    if cursor.is_some() && parsed.is_none() {
        tracing::info!("the cursor is not one of this configuration: full read");
    }
    if let Some(c) = parsed {
        let delta = match &c.method {
            Method::Syncrepl { cookies } => content_sync::delta(reader, ldap, cookies).await?,
            Method::ModifyTimestamp { since, ids } => {
                timestamp::delta(reader, ldap, since, ids).await?
            }
            Method::Dirsync { cookie } => dirsync::delta(reader, ldap, cookie).await?,
            Method::Usn {
                invocation_id,
                usn,
                ids: Some(ids),
            } => usn::delta(reader, ldap, invocation_id, *usn, ids).await?,
            Method::Usn { ids: None, .. } => {
                tracing::info!("the uSNChanged cursor holds no anchors to find deletions with (written by an earlier version): full read");
                None
            }
        };
        if let Some(mut pull) = delta {
            // Why the method was chosen, and the earlier stub bases still
            // holding stubs, ride along to the next full read.
            pull.cursor = pull.cursor.and_then(|text| {
                let mut next: Cursor = serde_json::from_str(&text).ok()?;
                next.earlier_stub_bases = earlier;
                next.how.clone_from(&c.how);
                next.encode()
            });
            if !c.how.is_empty() {
                pull.incremental = Some(c.how);
            }
            return Ok(pull);
        }
        tracing::info!("the server cannot continue from the cursor: full read");
    }
    full::read(reader, ldap, progress, &earlier).await
}

/// The pull of a delta. An object it returns is not also removed by it
/// (a group read again because its members changed is there, whatever a
/// scope's session log said of it).
fn delta_pull(reader: &Reader, out: Collected, mut removed: Vec<String>, method: Method) -> Pull {
    let returned: HashSet<&str> = out
        .recipients
        .iter()
        .map(|(r, _)| r.anchor.as_str())
        .collect();
    removed.retain(|id| !returned.contains(id.as_str()));
    removed.sort();
    removed.dedup();
    let method_name = method.clone();
    Pull {
        mode: PullMode::Delta,
        recipients: out.recipients.into_iter().map(|(r, _)| r).collect(),
        stubs: out.stubs,
        removed,
        cursor: Cursor::new(&reader.config, method).encode(),
        complete: out.complete,
        problems: out.problems,
        incremental: Some(method_in_words(&method_name)),
    }
}

/// The presence read of the deltas that cannot see every deletion
/// (`modifyTimestamp`, and uSNChanged for a bind account that cannot read
/// tombstones): the anchor of every entry the scopes hold, and nothing
/// else, in pages. An anchor staged before and missing here was deleted.
async fn present_anchors(
    reader: &Reader,
    ldap: &mut Ldap,
) -> Result<HashSet<String>, ConnectorError> {
    let anchor = reader.mapper.attrs.anchor.clone();
    let mut present: HashSet<String> = HashSet::new();
    for scope in reader.scopes() {
        let mut refs = Vec::new();
        let mapper = &reader.mapper;
        let res = reader
            .search(
                ldap,
                Query {
                    base: &scope.base,
                    filter: &scope.filter,
                    attrs: std::slice::from_ref(&anchor),
                    controls: Vec::new(),
                    paged: true,
                },
                |e| {
                    let entry = Entry::from(SearchEntry::construct(e));
                    if let Some(a) = mapper.anchor(&entry) {
                        present.insert(a);
                    }
                    Ok(())
                },
                &mut refs,
            )
            .await
            .map_err(|f| f.error)?;
        // A base that is a referral holds nothing here (the full read
        // reports it, or follows it and then leaves no cursor).
        error::search_done(
            &reader.system,
            &format!("presence read of {}", scope.base),
            &res,
        )?;
    }
    Ok(present)
}

/// The anchors of a presence read, in the order a cursor keeps them.
fn sorted(present: HashSet<String>) -> Vec<String> {
    let mut ids: Vec<String> = present.into_iter().collect();
    ids.sort();
    ids
}

/// The incremental method a full read sets up, and how it works, in
/// words an admin understands (the sync report and `coexist doctor` show
/// it: the rights the bind account has decide it on AD).
pub(crate) struct Chosen {
    /// The method, with its position taken now; `None` when the server
    /// offers none (every pull then reads in full).
    pub method: Option<Method>,
    /// Which method, why, and how it finds deletions.
    pub how: String,
}

/// A delta's method, in words for the run's report.
fn method_in_words(method: &Method) -> String {
    match method {
        Method::Syncrepl { .. } => {
            "content sync (RFC 4533): the server reports changes and deletions".into()
        }
        Method::ModifyTimestamp { .. } => format!("modifyTimestamp; {BY_LISTING}"),
        Method::Dirsync { .. } => "DirSync; deletions come as tombstones".into(),
        Method::Usn { .. } => format!("uSNChanged; {BY_LISTING}"),
    }
}

/// What a method that lists the anchors says of deletions.
const BY_LISTING: &str = "deletions are found by listing the anchors of every entry on each pull";

/// Chooses the incremental method for the next pulls (as configured, else
/// the best the server and the bind account's rights allow) and takes its
/// position now, so changes made during the read that follows are seen by
/// the next delta.
pub(crate) async fn choose(reader: &Reader, ldap: &mut Ldap) -> Result<Chosen, ConnectorError> {
    let since_now = || Method::ModifyTimestamp {
        since: timestamp::generalized_time(SystemTime::now() - timestamp::OVERLAP),
        ids: Vec::new(),
    };
    let usn = |position: Option<(String, u64)>, how: String| {
        match position {
        Some((invocation_id, usn)) => Chosen {
            method: Some(Method::Usn {
                invocation_id,
                usn,
                ids: Some(Vec::new()),
            }),
            how,
        },
        None => Chosen {
            method: None,
            how: "none: the domain controller's root DSE shows no highestCommittedUSN or dsServiceName, so every pull reads in full".into(),
        },
    }
    };
    Ok(match (reader.config.flavor, reader.config.incremental) {
        (Flavor::Openldap, Incremental::ModifyTimestamp) => Chosen {
            method: Some(since_now()),
            how: format!("modifyTimestamp, as the configuration says (incremental = \"modify_timestamp\"); {BY_LISTING}"),
        },
        (Flavor::Openldap, configured) => match content_sync::cookies(reader, ldap).await? {
            Some(cookies) => Chosen {
                method: Some(Method::Syncrepl { cookies }),
                how: "content sync (RFC 4533, the server's syncprov): the server reports changes and deletions".into(),
            },
            None => {
                if configured == Incremental::ContentSync {
                    tracing::warn!("incremental = content_sync, but the server has no syncprov here: using modifyTimestamp");
                }
                Chosen {
                    method: Some(since_now()),
                    how: format!("modifyTimestamp: the server offers no content sync (syncprov) on every base; {BY_LISTING}"),
                }
            }
        },
        (Flavor::ActiveDirectory, Incremental::UsnChanged) => usn(
            usn::position(reader, ldap).await?,
            format!("uSNChanged, as the configuration says (incremental = \"usn_changed\"); {BY_LISTING}"),
        ),
        (Flavor::ActiveDirectory, _) => match dirsync::cookie(reader, ldap).await? {
            Ok(cookie) => Chosen {
                method: Some(Method::Dirsync {
                    cookie: b64(&cookie),
                }),
                how: "DirSync: the bind account has \"Replicating Directory Changes\"; deletions come as tombstones".into(),
            },
            Err(refusal) => usn(
                usn::position(reader, ldap).await?,
                format!("uSNChanged: DirSync needs \"Replicating Directory Changes\", which the bind account lacks (the server said: {refusal}); {BY_LISTING}, since tombstones need read access to CN=Deleted Objects"),
            ),
        },
    })
}
