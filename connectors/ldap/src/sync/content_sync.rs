//! RFC 4533 content sync (refreshOnly), OpenLDAP's delta with syncprov:
//! a cookie per search base, taken by a sync search that matches nothing;
//! a refresh from it returns the entries changed and the entryUUIDs of
//! those deleted. A present phase (the server's session log no longer
//! reaches back to the cookie) or `e-syncRefreshRequired` leads to a full
//! read.

use std::collections::{BTreeMap, HashSet};

use coexist_connector::{ConnectorError, Pull};
use ldap3::controls::MakeCritical;
use ldap3::controls::{
    parse_syncinfo, Control, ControlType, EntryState, RefreshMode, SyncDone, SyncInfo, SyncRequest,
    SyncState,
};
use ldap3::{Ldap, Scope, SearchEntry};

use super::delta_pull;
use crate::cursor::{b64, unb64, Method};
use crate::entry::{uuid_to_string, Entry};
use crate::error::{self, rc};
use crate::read::{Collected, Query, Reader};

/// A sync cookie per scope, from a content-sync search that matches
/// nothing; `None` when the server has no syncprov for a scope.
pub(super) async fn cookies(
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
            .map_err(|e| error::from_ldap(&reader.system, "start content sync", e))?;
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
            return Err(error::from_result(
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
pub(super) async fn delta(
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
                tracing::info!(base = %scope.base, "the server refused the sync cookie ({})", error::describe(&res));
                return Ok(None);
            }
            _ => {
                return Err(error::from_result(
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
