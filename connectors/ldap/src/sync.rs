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

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use coexist_connector::{ConnectorError, Finding, Problem, Progress, Pull, PullMode};
use ldap3::adapters::EntriesOnly;
use ldap3::controls::MakeCritical;
use ldap3::controls::{
    parse_syncinfo, Control, ControlType, EntryState, RefreshMode, SyncDone, SyncInfo, SyncRequest,
    SyncState,
};
use ldap3::{Ldap, Scope, SearchEntry};

use crate::config::{Flavor, Incremental};
use crate::conn::{self, rc};
use crate::cursor::{b64, unb64, Cursor, Method};
use crate::dirsync;
use crate::entry::{guid_to_string, uuid_to_string, Entry};
use crate::escape::is_within;
use crate::read::{Collected, Query, Reader, Via};
use crate::wire::WireConn;
use crate::write::Writer;

/// How far back a `modifyTimestamp` delta looks before the previous read
/// started, against changes committed while it ran.
const TIMESTAMP_OVERLAP: Duration = Duration::from_secs(60);

/// Reads the system: a delta from `cursor` where possible, else a full read.
pub async fn pull(
    reader: &Reader,
    ldap: &mut Ldap,
    cursor: Option<&str>,
    progress: &dyn Progress,
) -> Result<Pull, ConnectorError> {
    let parsed = cursor.and_then(|c| Cursor::decode(c, &reader.config));
    if cursor.is_some() && parsed.is_none() {
        tracing::info!("the cursor is not one of this configuration: full read");
    }
    if let Some(c) = parsed {
        let delta = match &c.method {
            Method::Syncrepl { cookies } => syncrepl_delta(reader, ldap, cookies).await?,
            Method::ModifyTimestamp { since, ids } => {
                timestamp_delta(reader, ldap, since, ids).await?
            }
            Method::Dirsync { cookie } => dirsync_delta(reader, ldap, cookie).await?,
            Method::Usn { invocation_id, usn } => {
                usn_delta(reader, ldap, invocation_id, *usn).await?
            }
        };
        if let Some(pull) = delta {
            return Ok(pull);
        }
        tracing::info!("the server cannot continue from the cursor: full read");
    }
    full(reader, ldap, progress).await
}

/// A full read, with the cursor of the best incremental method available.
async fn full(
    reader: &Reader,
    ldap: &mut Ldap,
    progress: &dyn Progress,
) -> Result<Pull, ConnectorError> {
    // The cursor is taken before the read, so changes made during the read
    // are seen again by the next delta rather than lost.
    let timestamp = || Method::ModifyTimestamp {
        since: generalized_time(SystemTime::now() - TIMESTAMP_OVERLAP),
        ids: Vec::new(),
    };
    let method = match (reader.config.flavor, reader.config.incremental) {
        (Flavor::Openldap, Incremental::ModifyTimestamp) => Some(timestamp()),
        (Flavor::Openldap, _) => match sync_cookies(reader, ldap).await? {
            Some(cookies) => Some(Method::Syncrepl { cookies }),
            None => {
                if reader.config.incremental == Incremental::ContentSync {
                    tracing::warn!("incremental = content_sync, but the server has no syncprov here: using modifyTimestamp");
                }
                Some(timestamp())
            }
        },
        (Flavor::ActiveDirectory, Incremental::UsnChanged) => usn_position(reader, ldap)
            .await?
            .map(|(invocation_id, usn)| Method::Usn { invocation_id, usn }),
        (Flavor::ActiveDirectory, _) => match dirsync_cookie(reader, ldap).await? {
            Some(cookie) => Some(Method::Dirsync {
                cookie: b64(&cookie),
            }),
            None => usn_position(reader, ldap)
                .await?
                .map(|(invocation_id, usn)| Method::Usn { invocation_id, usn }),
        },
    };
    let mut out = Collected::new();
    // The bulk of the read goes through the lean client, on a connection
    // of its own.
    let mut wire = WireConn::connect(&reader.system, &reader.config).await?;
    let read = reader
        .read_all_via(Via::Wire(&mut wire), &mut out, progress, None)
        .await;
    wire.close().await;
    read?;
    reader.resolve_members(ldap, &mut out).await?;
    let method = method.map(|m| match m {
        Method::ModifyTimestamp { since, .. } => {
            let mut ids: Vec<String> = out
                .recipients
                .iter()
                .map(|(r, _)| r.anchor.clone())
                .chain(out.stubs.iter().map(|s| s.id.clone()))
                .collect();
            ids.sort();
            Method::ModifyTimestamp { since, ids }
        }
        other => other,
    });
    // Deltas do not see behind references (content sync, DirSync and
    // uSNChanged work on one server; the presence read of modifyTimestamp
    // does not follow them): after a read that followed references, the
    // next pull reads everything again (no cursor), so referred entries are
    // neither stale nor taken for removed.
    let cursor = if out.complete && out.followed.is_empty() {
        method.and_then(|m| Cursor::new(&reader.config, m).encode())
    } else {
        None
    };
    Ok(Pull {
        mode: PullMode::Full,
        recipients: out.recipients.into_iter().map(|(r, _)| r).collect(),
        stubs: out.stubs,
        removed: Vec::new(),
        cursor,
        complete: out.complete,
        problems: out.problems,
    })
}

/// A sync cookie per scope, from a content-sync search that matches
/// nothing; `None` when the server has no syncprov for a scope.
async fn sync_cookies(
    reader: &Reader,
    ldap: &mut Ldap,
) -> Result<Option<BTreeMap<String, String>>, ConnectorError> {
    let mut cookies = BTreeMap::new();
    for scope in reader.scopes() {
        let control = SyncRequest {
            mode: RefreshMode::RefreshOnly,
            cookie: None,
            reload_hint: false,
        }
        .critical();
        let result = ldap
            .with_timeout(reader.timeout)
            .with_controls(control)
            .search(
                &scope.base,
                Scope::Base,
                "(&(objectClass=*)(!(objectClass=*)))",
                vec!["1.1"],
            )
            .await
            .map_err(|e| conn::from_ldap(&reader.system, "start content sync", e))?;
        let res = result.1;
        if res.rc == rc::UNAVAILABLE_CRITICAL_EXTENSION {
            tracing::info!(base = %scope.base, "no content sync (syncprov) here: deltas use modifyTimestamp");
            return Ok(None);
        }
        if res.rc == rc::REFERRAL {
            tracing::info!(base = %scope.base, "the base is a referral: no content sync for it, deltas use modifyTimestamp");
            return Ok(None);
        }
        if res.rc != rc::SUCCESS {
            return Err(conn::from_result(
                &reader.system,
                &format!("search {}", scope.base),
                &res,
            ));
        }
        let cookie = res.ctrls.iter().find_map(|Control(t, raw)| match t {
            Some(ControlType::SyncDone) if raw.val.is_some() => raw.parse::<SyncDone>().cookie,
            _ => None,
        });
        match cookie {
            Some(c) => {
                cookies.insert(scope.base.clone(), b64(&c));
            }
            None => return Ok(None),
        }
    }
    Ok(Some(cookies))
}

/// An RFC 4533 refreshOnly delta; `None` when a full read is needed.
async fn syncrepl_delta(
    reader: &Reader,
    ldap: &mut Ldap,
    cookies: &BTreeMap<String, String>,
) -> Result<Option<Pull>, ConnectorError> {
    let attrs = reader.mapper.read_attributes();
    let mut out = Collected::tracking();
    let mut removed: Vec<String> = Vec::new();
    // Entries some scope returned as added or modified. A scope's session
    // log also names entries changed *outside* it as "no longer matching"
    // (a person modified under a base is reported gone by the stub base's
    // search): such an entry is not removed while another scope holds it.
    let mut returned: HashSet<String> = HashSet::new();
    let mut new_cookies = BTreeMap::new();
    for scope in reader.scopes() {
        let Some(cookie) = cookies.get(&scope.base).and_then(|c| unb64(c)) else {
            return Ok(None);
        };
        let control = SyncRequest {
            mode: RefreshMode::RefreshOnly,
            cookie: Some(cookie),
            reload_hint: false,
        }
        .critical();
        let mut present_phase = false;
        let mut latest_cookie: Option<Vec<u8>> = None;
        let mut refs = Vec::new();
        let mapper = &reader.mapper;
        let result = {
            let out_ref = &mut out;
            let removed_ref = &mut removed;
            let returned_ref = &mut returned;
            let present_ref = &mut present_phase;
            let cookie_ref = &mut latest_cookie;
            reader
                .search(
                    ldap,
                    Query {
                        base: &scope.base,
                        filter: &scope.filter,
                        attrs: &attrs,
                        controls: vec![control.into()],
                        paged: false,
                    },
                    |e| {
                        if e.is_intermediate() {
                            match parse_syncinfo(e) {
                                SyncInfo::SyncIdSet {
                                    refresh_deletes,
                                    sync_uuids,
                                    cookie,
                                } => {
                                    if refresh_deletes {
                                        removed_ref.extend(
                                            sync_uuids.iter().filter_map(|u| uuid_to_string(u)),
                                        );
                                    } else {
                                        *present_ref = true;
                                    }
                                    if cookie.is_some() {
                                        *cookie_ref = cookie;
                                    }
                                }
                                SyncInfo::RefreshPresent { cookie, .. } => {
                                    *present_ref = true;
                                    if cookie.is_some() {
                                        *cookie_ref = cookie;
                                    }
                                }
                                SyncInfo::RefreshDelete { cookie, .. } => {
                                    if cookie.is_some() {
                                        *cookie_ref = cookie;
                                    }
                                }
                                SyncInfo::NewCookie(c) => *cookie_ref = Some(c),
                            }
                            return Ok(());
                        }
                        let state = e.1.iter().find_map(|Control(t, raw)| match t {
                            Some(ControlType::SyncState) if raw.val.is_some() => {
                                Some(raw.parse::<SyncState>())
                            }
                            _ => None,
                        });
                        match state {
                            Some(SyncState {
                                state: EntryState::Delete,
                                entry_uuid,
                                ..
                            }) => {
                                removed_ref.extend(uuid_to_string(&entry_uuid));
                            }
                            Some(SyncState {
                                state: EntryState::Present,
                                ..
                            }) => *present_ref = true,
                            other => {
                                if let Some(SyncState { entry_uuid, .. }) = other {
                                    returned_ref.extend(uuid_to_string(&entry_uuid));
                                }
                                let entry = Entry::from(SearchEntry::construct(e));
                                out_ref.add(mapper, entry);
                            }
                        }
                        Ok(())
                    },
                    &mut refs,
                )
                .await
        };
        let res = match result {
            Ok(res) => res,
            Err(failure) => return Err(failure.error),
        };
        match res.rc {
            rc::SUCCESS => {}
            rc::SYNC_REFRESH_REQUIRED | rc::UNAVAILABLE_CRITICAL_EXTENSION | rc::PROTOCOL_ERROR => {
                tracing::info!(base = %scope.base, "the server refused the sync cookie ({})", conn::describe(&res));
                return Ok(None);
            }
            _ => {
                return Err(conn::from_result(
                    &reader.system,
                    &format!("content sync of {}", scope.base),
                    &res,
                ))
            }
        }
        for Control(t, raw) in &res.ctrls {
            if let (Some(ControlType::SyncDone), Some(_)) = (t, &raw.val) {
                let done: SyncDone = raw.parse();
                if !done.refresh_deletes {
                    present_phase = true;
                }
                if done.cookie.is_some() {
                    latest_cookie = done.cookie;
                }
            }
        }
        if present_phase {
            tracing::info!(base = %scope.base, "the server answered with a present phase (its session log does not reach back to the cookie)");
            return Ok(None);
        }
        let cookie = latest_cookie
            .map(|c| b64(&c))
            .or_else(|| cookies.get(&scope.base).cloned())
            .unwrap_or_default();
        new_cookies.insert(scope.base.clone(), cookie);
    }
    removed.retain(|id| !returned.contains(id));
    reader.add_parent_groups(ldap, &mut out).await;
    reader.resolve_members(ldap, &mut out).await?;
    Ok(Some(delta_pull(
        reader,
        out,
        removed,
        Method::Syncrepl {
            cookies: new_cookies,
        },
    )))
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
    Pull {
        mode: PullMode::Delta,
        recipients: out.recipients.into_iter().map(|(r, _)| r).collect(),
        stubs: out.stubs,
        removed,
        cursor: Cursor::new(&reader.config, method).encode(),
        complete: out.complete,
        problems: out.problems,
    }
}

/// A `modifyTimestamp` delta with a presence read for deletions.
async fn timestamp_delta(
    reader: &Reader,
    ldap: &mut Ldap,
    since: &str,
    previous_ids: &[String],
) -> Result<Option<Pull>, ConnectorError> {
    if since.len() < 15 || !since.ends_with('Z') {
        return Ok(None);
    }
    let next_since = generalized_time(SystemTime::now() - TIMESTAMP_OVERLAP);
    let mut out = Collected::tracking();
    let extra = format!("(modifyTimestamp>={})", crate::escape::filter_value(since));
    reader
        .read_all(ldap, &mut out, &coexist_connector::NoProgress, Some(&extra))
        .await?;
    if !out.complete {
        return Err(ConnectorError::retryable(format!(
            "LDAP system `{}`: the incremental read stopped part-way; the next pull retries",
            reader.system
        )));
    }
    // The presence read: every anchor still there.
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
        if res.rc != rc::SUCCESS && res.rc != rc::REFERRAL {
            return Err(conn::from_result(
                &reader.system,
                &format!("presence read of {}", scope.base),
                &res,
            ));
        }
    }
    let removed: Vec<String> = previous_ids
        .iter()
        .filter(|id| !present.contains(*id))
        .cloned()
        .collect();
    reader.add_parent_groups(ldap, &mut out).await;
    reader.resolve_members(ldap, &mut out).await?;
    let mut ids: Vec<String> = present.into_iter().collect();
    ids.sort();
    Ok(Some(delta_pull(
        reader,
        out,
        removed,
        Method::ModifyTimestamp {
            since: next_since,
            ids,
        },
    )))
}

/// Reads attributes of the root DSE.
async fn root_dse(
    reader: &Reader,
    ldap: &mut Ldap,
    attrs: &[&str],
) -> Result<Entry, ConnectorError> {
    let result = ldap
        .with_timeout(reader.timeout)
        .search("", Scope::Base, "(objectClass=*)", attrs.to_vec())
        .await
        .map_err(|e| conn::from_ldap(&reader.system, "read the root DSE", e))?;
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

async fn naming_context(reader: &Reader, ldap: &mut Ldap) -> Result<String, ConnectorError> {
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
const AD_WATCH_FILTER: &str =
    "(|(&(objectClass=user)(!(objectClass=computer)))(objectClass=contact)(objectClass=group))";

/// Runs a DirSync from `cookie` until the server has no more, returning the
/// entries and the last cookie; `Ok(Err(rc))` when the server refused.
async fn dirsync_run(
    reader: &Reader,
    ldap: &mut Ldap,
    base: &str,
    filter: &str,
    attrs: &[String],
    mut cookie: Vec<u8>,
    mut each: impl FnMut(Entry),
) -> Result<Result<Vec<u8>, ldap3::LdapResult>, ConnectorError> {
    for _round in 0..100_000 {
        let control = dirsync::request(0, 10 * 1024 * 1024, &cookie);
        let mut stream = ldap
            .with_timeout(reader.timeout)
            .with_controls(control)
            .streaming_search_with(
                EntriesOnly::new(),
                base,
                Scope::Subtree,
                filter,
                attrs.to_vec(),
            )
            .await
            .map_err(|e| conn::from_ldap(&reader.system, "DirSync", e))?;
        loop {
            match stream.next().await {
                Ok(Some(e)) => each(Entry::from(SearchEntry::construct(e))),
                Ok(None) => break,
                Err(e) => {
                    let _ = stream.finish().await;
                    return Err(conn::from_ldap(&reader.system, "DirSync", e));
                }
            }
        }
        let res = stream.finish().await;
        if res.rc != rc::SUCCESS {
            return Ok(Err(res));
        }
        let response = res
            .ctrls
            .iter()
            .find(|Control(_, raw)| raw.ctype == dirsync::OID)
            .and_then(|Control(_, raw)| raw.val.as_deref())
            .and_then(dirsync::parse_response);
        let Some(response) = response else {
            return Ok(Err(res));
        };
        cookie = response.cookie;
        if !response.more_results {
            return Ok(Ok(cookie));
        }
    }
    Err(ConnectorError::permanent(format!(
        "LDAP system `{}`: DirSync did not finish",
        reader.system
    )))
}

/// A DirSync cookie for "now"; `None` when DirSync is not available.
async fn dirsync_cookie(
    reader: &Reader,
    ldap: &mut Ldap,
) -> Result<Option<Vec<u8>>, ConnectorError> {
    let nc = naming_context(reader, ldap).await?;
    // A filter that matches no object still advances the cookie.
    let filter = "(&(objectClass=contact)(!(objectClass=contact)))";
    match dirsync_run(
        reader,
        ldap,
        &nc,
        filter,
        &["objectGUID".to_string()],
        Vec::new(),
        |_| {},
    )
    .await?
    {
        Ok(cookie) => Ok(Some(cookie)),
        Err(res) => {
            tracing::info!(result = %conn::describe(&res), "DirSync is not available to the bind DN (it needs \"Replicating Directory Changes\"): deltas use uSNChanged");
            Ok(None)
        }
    }
}

/// A DirSync delta; `None` when the server refused the cookie.
async fn dirsync_delta(
    reader: &Reader,
    ldap: &mut Ldap,
    cookie: &str,
) -> Result<Option<Pull>, ConnectorError> {
    let Some(cookie) = unb64(cookie) else {
        return Ok(None);
    };
    let nc = naming_context(reader, ldap).await?;
    let mut attrs = reader.mapper.read_attributes();
    attrs.push("isDeleted".into());
    let mut changed: Vec<(String, String)> = Vec::new();
    let mut removed: Vec<String> = Vec::new();
    let outcome = dirsync_run(reader, ldap, &nc, AD_WATCH_FILTER, &attrs, cookie, |e| {
        if let Some(guid) = e.first_bytes("objectGUID").and_then(guid_to_string) {
            let deleted = e
                .first("isDeleted")
                .is_some_and(|v| v.eq_ignore_ascii_case("TRUE"));
            if deleted {
                removed.push(guid);
            } else {
                changed.push((guid, e.dn.clone()));
            }
        }
    })
    .await?;
    let next = match outcome {
        Ok(c) => c,
        Err(res) => {
            tracing::info!(result = %conn::describe(&res), "the server refused the DirSync cookie");
            return Ok(None);
        }
    };
    let out = reread(reader, ldap, changed, &mut removed).await?;
    Ok(Some(delta_pull(
        reader,
        out,
        removed,
        Method::Dirsync { cookie: b64(&next) },
    )))
}

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
async fn reread(
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

/// The DC's invocationId and highestCommittedUSN.
async fn usn_position(
    reader: &Reader,
    ldap: &mut Ldap,
) -> Result<Option<(String, u64)>, ConnectorError> {
    let dse = root_dse(reader, ldap, &["highestCommittedUSN", "dsServiceName"]).await?;
    let (Some(usn), Some(service)) = (
        dse.first("highestCommittedUSN")
            .and_then(|u| u.parse::<u64>().ok()),
        dse.first("dsServiceName").map(str::to_string),
    ) else {
        return Ok(None);
    };
    let result = ldap
        .with_timeout(reader.timeout)
        .search(
            &service,
            Scope::Base,
            "(objectClass=*)",
            vec!["invocationId"],
        )
        .await
        .map_err(|e| conn::from_ldap(&reader.system, "read the DC's invocationId", e))?;
    let invocation = result
        .0
        .into_iter()
        .next()
        .map(|e| Entry::from(SearchEntry::construct(e)))
        .and_then(|e| e.first_bytes("invocationId").and_then(guid_to_string));
    Ok(invocation.map(|i| (i, usn)))
}

/// A uSNChanged delta; `None` when the DC changed (invocationId).
async fn usn_delta(
    reader: &Reader,
    ldap: &mut Ldap,
    invocation_id: &str,
    usn: u64,
) -> Result<Option<Pull>, ConnectorError> {
    let Some((current_invocation, highest)) = usn_position(reader, ldap).await? else {
        return Ok(None);
    };
    if current_invocation != invocation_id {
        tracing::info!(
            "the domain controller's invocationId changed (another DC, or a restore): full read"
        );
        return Ok(None);
    }
    let since = usn + 1;
    let mut changed: Vec<(String, String)> = Vec::new();
    let mut refs = Vec::new();
    for scope in reader.scopes() {
        let filter = format!("(&{AD_WATCH_FILTER}(uSNChanged>={since}))");
        let res = reader
            .search(
                ldap,
                Query {
                    base: &scope.base,
                    filter: &filter,
                    attrs: &["objectGUID".to_string()],
                    controls: Vec::new(),
                    paged: true,
                },
                |e| {
                    let entry = Entry::from(SearchEntry::construct(e));
                    if let Some(guid) = entry.first_bytes("objectGUID").and_then(guid_to_string) {
                        changed.push((guid, entry.dn));
                    }
                    Ok(())
                },
                &mut refs,
            )
            .await
            .map_err(|f| f.error)?;
        if res.rc != rc::SUCCESS && res.rc != rc::REFERRAL {
            return Err(conn::from_result(&reader.system, "uSNChanged search", &res));
        }
    }
    // Tombstones, through the Show Deleted control.
    let nc = naming_context(reader, ldap).await?;
    let mut removed = Vec::new();
    let filter = format!("(&(isDeleted=TRUE)(uSNChanged>={since}))");
    let res = reader
        .search(
            ldap,
            Query {
                base: &nc,
                filter: &filter,
                attrs: &["objectGUID".to_string()],
                controls: vec![dirsync::show_deleted()],
                paged: true,
            },
            |e| {
                let entry = Entry::from(SearchEntry::construct(e));
                removed.extend(entry.first_bytes("objectGUID").and_then(guid_to_string));
                Ok(())
            },
            &mut refs,
        )
        .await
        .map_err(|f| f.error)?;
    if res.rc != rc::SUCCESS && res.rc != rc::REFERRAL {
        return Err(conn::from_result(&reader.system, "tombstone search", &res));
    }
    let out = reread(reader, ldap, changed, &mut removed).await?;
    Ok(Some(delta_pull(
        reader,
        out,
        removed,
        Method::Usn {
            invocation_id: current_invocation,
            usn: highest,
        },
    )))
}

/// `time` as an LDAP GeneralizedTime in UTC (`YYYYMMDDHHMMSSZ`).
pub fn generalized_time(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let mut y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    if m <= 2 {
        y += 1;
    }
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// The checks of `coexist doctor`.
pub async fn doctor(
    reader: &Reader,
    writer: &Writer,
    ldap: Result<Ldap, ConnectorError>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut ldap = match ldap {
        Ok(l) => {
            findings.push(Finding {
                check: "connect and bind".into(),
                ok: true,
                manual: false,
                detail: format!(
                    "bound to {} as {}",
                    reader.config.url, reader.config.bind_dn
                ),
            });
            l
        }
        Err(e) => {
            findings.push(Finding {
                check: "connect and bind".into(),
                ok: false,
                manual: false,
                detail: e.to_string(),
            });
            return findings;
        }
    };
    for base in &reader.config.base_dns {
        let r = ldap
            .with_timeout(reader.timeout)
            .search(base, Scope::Base, "(objectClass=*)", vec!["1.1"])
            .await;
        let (ok, detail) = match r {
            Ok(r) if r.1.rc == rc::SUCCESS => (true, format!("{base} is readable")),
            Ok(r) => (
                false,
                conn::from_result(&reader.system, &format!("read {base}"), &r.1).to_string(),
            ),
            Err(e) => (
                false,
                conn::from_ldap(&reader.system, &format!("read {base}"), e).to_string(),
            ),
        };
        findings.push(Finding {
            check: format!("base DN {base}"),
            ok,
            manual: false,
            detail,
        });
    }
    let stub_ok = writer.stub_index(&mut ldap).await;
    findings.push(Finding {
        check: "stub OU".into(),
        ok: stub_ok.is_ok(),
        manual: false,
        detail: match stub_ok {
            Ok(i) => format!("{} exists and holds {} stubs", writer.stub_base, i.len()),
            Err(e) => e.to_string(),
        },
    });
    // Before any write can fail on it: does the server's schema hold what
    // the stub style writes?
    findings.push(crate::schema::doctor_finding(writer, &mut ldap).await);
    findings
}

/// Problems collected are reported as they are; this keeps the type used.
#[allow(dead_code)]
fn problem(object: &str, message: &str) -> Problem {
    Problem {
        object: object.into(),
        message: message.into(),
    }
}
