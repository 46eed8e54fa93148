//! Microsoft Graph v1.0: the directory reads coexist makes, one dispatcher
//! shared by plain requests and the inner requests of `$batch`.
//!
//! - List users: <https://learn.microsoft.com/graph/api/user-list> (default
//!   page 100, `$top` 1..999, `@odata.nextLink` with `$skiptoken`; without
//!   `$select` the default property set).
//! - List groups: <https://learn.microsoft.com/graph/api/group-list>.
//! - Group members and transitive members:
//!   <https://learn.microsoft.com/graph/api/group-list-members>,
//!   <https://learn.microsoft.com/graph/api/group-list-transitivemembers>
//!   (each item with its `@odata.type`).
//! - Delta: <https://learn.microsoft.com/graph/api/user-delta>,
//!   <https://learn.microsoft.com/graph/api/group-delta>,
//!   <https://learn.microsoft.com/graph/delta-query-users>,
//!   <https://learn.microsoft.com/graph/delta-query-groups>: pages with
//!   `@odata.nextLink` then one `@odata.deltaLink`; `$select` is remembered
//!   in the links; `id` is always returned; removed objects come as
//!   `{"id":…,"@removed":{"reason":"changed"|"deleted"}}`; groups carry
//!   `members@delta` when `members` is selected; a member deleted from the
//!   tenant leaves its groups, which a later round lists with that member
//!   `@removed` ("removed from the group - either by removing the membership
//!   or by deleting the user object itself", delta-query-groups), as does a
//!   group deleted from the groups containing it. `$deltatoken=latest` gives a
//!   delta link and no data. A delta link from before
//!   [`crate::FakeM365::expire_delta_links`] answers 410 Gone,
//!   `syncStateNotFound`, with a `Location` to start again
//!   (<https://learn.microsoft.com/graph/delta-query-overview>, "Synchronization reset").
//! - Domains: <https://learn.microsoft.com/graph/api/domain-list>.
//!
//! `$select` and `$filter` names are checked against the CSDL; errors are
//! Graph's (`Request_UnsupportedQuery` "Invalid page size specified: '1000'.
//! Must be between 1 and 999 inclusive." for `$top`, OData's "Could not find a
//! property named …" for names).

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use serde_json::{json, Map, Value};

use crate::errors::{self, Reply};
use crate::filter::{self, Expr, FilterError};
use crate::state::{
    Collection, Cursor, DeltaLink, DeltaRound, FakeGroup, FakeUser, ObjKind, Shared, State,
};

/// The largest page a directory listing serves.
pub(crate) const MAX_PAGE: usize = 999;
/// The page a directory listing serves without `$top`.
pub(crate) const DEFAULT_PAGE: usize = 100;

/// The properties Graph returns for a user without `$select`.
const USER_DEFAULT: &[&str] = &[
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
];

/// Roles that allow reading users, groups, members.
const USER_ROLES: &[&str] = &[
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
const GROUP_ROLES: &[&str] = &[
    "Group.Read.All",
    "Group.ReadWrite.All",
    "GroupMember.Read.All",
    "GroupMember.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
const DOMAIN_ROLES: &[&str] = &[
    "Domain.Read.All",
    "Domain.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];

/// One Graph request, from the wire or from a `$batch`.
pub(crate) struct Call<'a> {
    pub shared: &'a Shared,
    pub method: Method,
    /// The path after `/v1.0`, e.g. `/users/delta`.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub prefer: Option<String>,
    pub body: Vec<u8>,
    pub roles: &'a [String],
}

impl Call<'_> {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn has_role(&self, allowed: &[&str]) -> bool {
        self.roles.iter().any(|r| allowed.contains(&r.as_str()))
    }

    /// The page size: `$top`, else `Prefer: odata.maxpagesize=N`, else the default.
    fn page_size(&self, default: usize, max: usize) -> Result<usize, Reply> {
        if let Some(top) = self.param("$top") {
            let n: i64 = top.trim().parse().map_err(|_| {
                errors::bad_request(&format!(
                    "Invalid value '{top}' for $top query option found. The $top query option requires a non-negative integer value."
                ))
            })?;
            return usize::try_from(n)
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    errors::graph_rejected(
                        StatusCode::BAD_REQUEST,
                        "Request_UnsupportedQuery",
                        &format!("Invalid page size specified: '{top}'. Must be between 1 and {max} inclusive."),
                    )
                });
        }
        let preferred = self.prefer.as_deref().and_then(|p| {
            p.split([',', ';'])
                .filter_map(|part| part.trim().strip_prefix("odata.maxpagesize="))
                .find_map(|n| n.trim().parse::<usize>().ok())
        });
        Ok(preferred.map_or(default, |n| n.clamp(1, max)))
    }
}

/// Checks the system query options: the ones the fake serves pass, known
/// OData ones it does not serve and unknown `$…` ones are refused.
fn check_options(call: &Call<'_>, allowed: &[&str]) -> Result<(), Reply> {
    for (k, _) in &call.query {
        if !k.starts_with('$') {
            continue;
        }
        let lower = k.to_ascii_lowercase();
        if allowed.iter().any(|a| a.eq_ignore_ascii_case(&lower)) {
            continue;
        }
        let known = [
            "$select",
            "$filter",
            "$top",
            "$skip",
            "$skiptoken",
            "$deltatoken",
            "$orderby",
            "$expand",
            "$count",
            "$search",
            "$format",
        ];
        return Err(if known.contains(&lower.as_str()) {
            errors::graph_rejected(
                StatusCode::BAD_REQUEST,
                "Request_UnsupportedQuery",
                &format!("The query option '{k}' is not supported on this request (this fake serves {}).", allowed.join(", ")),
            )
        } else {
            errors::bad_request(&format!("The query parameter '{k}' is not supported."))
        });
    }
    Ok(())
}

/// `$select` names, checked against a type (and, for directory objects in a
/// member list, the types a member can be). Canonical CSDL spelling.
pub(crate) fn parse_select(
    text: &str,
    types: &[&str],
    reported_type: &str,
    parse_error_prefix: bool,
) -> Result<Vec<String>, Reply> {
    let schema = crate::csdl::schema()
        .map_err(|e| errors::graph(StatusCode::INTERNAL_SERVER_ERROR, "generalException", &e))?;
    let mut out = Vec::new();
    for raw in text.split(',') {
        let name = raw.trim();
        if name.is_empty() {
            continue;
        }
        let found = types
            .iter()
            .find_map(|t| schema.member(t, name))
            .map(|m| m.name.clone());
        match found {
            Some(n) => {
                if !out.contains(&n) {
                    out.push(n);
                }
            }
            None => {
                let message = errors::unknown_property(name, reported_type);
                return Err(errors::bad_request(&if parse_error_prefix {
                    format!("Parsing OData Select and Expand failed: {message}")
                } else {
                    message
                }));
            }
        }
    }
    Ok(out)
}

/// `$filter`, checked against a type.
fn parse_filter(text: &str, type_name: &str) -> Result<Expr, Reply> {
    let schema = crate::csdl::schema()
        .map_err(|e| errors::graph(StatusCode::INTERNAL_SERVER_ERROR, "generalException", &e))?;
    let known = |p: &str| schema.member(type_name, p).map(|m| m.name.clone());
    filter::parse(text, &known).map_err(|e| match e {
        FilterError::UnknownProperty(p) => {
            errors::bad_request(&errors::unknown_property(&p, type_name))
        }
        FilterError::Unsupported(why) => errors::graph_rejected(
            StatusCode::BAD_REQUEST,
            "Request_UnsupportedQuery",
            &format!("Unsupported Query: {why}."),
        ),
    })
}

fn string_or_null(s: &str) -> Value {
    if s.is_empty() {
        Value::Null
    } else {
        Value::String(s.to_owned())
    }
}

/// Every modelled property of a user.
pub(crate) fn user_json(u: &FakeUser) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("id".into(), json!(u.id));
    m.insert("userPrincipalName".into(), json!(u.user_principal_name));
    m.insert("mail".into(), string_or_null(&u.mail));
    m.insert("mailNickname".into(), string_or_null(&u.mail_nickname));
    m.insert("proxyAddresses".into(), json!(u.proxy_addresses));
    m.insert("displayName".into(), string_or_null(&u.display_name));
    m.insert("givenName".into(), string_or_null(&u.given_name));
    m.insert("surname".into(), string_or_null(&u.surname));
    m.insert("jobTitle".into(), string_or_null(&u.job_title));
    m.insert("department".into(), string_or_null(&u.department));
    m.insert("companyName".into(), string_or_null(&u.company_name));
    m.insert("businessPhones".into(), json!(u.business_phones));
    m.insert("mobilePhone".into(), string_or_null(&u.mobile_phone));
    m.insert("officeLocation".into(), string_or_null(&u.office_location));
    m.insert("accountEnabled".into(), json!(u.account_enabled));
    m.insert("preferredLanguage".into(), Value::Null);
    m
}

/// Every modelled property of a group.
pub(crate) fn group_json(g: &FakeGroup) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("id".into(), json!(g.id));
    m.insert("displayName".into(), string_or_null(&g.display_name));
    m.insert("description".into(), string_or_null(&g.description));
    m.insert("mail".into(), string_or_null(&g.mail));
    m.insert("mailNickname".into(), string_or_null(&g.mail_nickname));
    m.insert("mailEnabled".into(), json!(g.mail_enabled));
    m.insert("securityEnabled".into(), json!(g.security_enabled));
    m.insert("groupTypes".into(), json!(g.group_types));
    m.insert("proxyAddresses".into(), json!(g.proxy_addresses));
    m
}

/// Keeps the selected properties (navigation properties carry no value here);
/// a selected property the fake does not model is null, as Graph shows an
/// unset one.
fn project(
    full: &Map<String, Value>,
    select: Option<&[String]>,
    default: Option<&[&str]>,
) -> Map<String, Value> {
    match (select, default) {
        (Some(names), _) => {
            let mut out = Map::new();
            for n in names {
                if n == "members" {
                    continue;
                }
                out.insert(n.clone(), full.get(n).cloned().unwrap_or(Value::Null));
            }
            out
        }
        (None, Some(names)) => names
            .iter()
            .map(|n| {
                (
                    (*n).to_owned(),
                    full.get(*n).cloned().unwrap_or(Value::Null),
                )
            })
            .collect(),
        (None, None) => full.clone(),
    }
}

fn type_name(c: &Collection) -> &'static str {
    match c {
        Collection::Users => "user",
        Collection::Groups => "group",
        Collection::Members(_) | Collection::TransitiveMembers(_) => "directoryObject",
    }
}

fn path_of(c: &Collection, delta: bool) -> String {
    let base = match c {
        Collection::Users => "users".to_owned(),
        Collection::Groups => "groups".to_owned(),
        Collection::Members(g) => format!("groups/{g}/members"),
        Collection::TransitiveMembers(g) => format!("groups/{g}/transitiveMembers"),
    };
    if delta {
        format!("{base}/delta")
    } else {
        base
    }
}

fn context(shared: &Shared, c: &Collection, select: Option<&[String]>) -> String {
    let set = match c {
        Collection::Users => "users",
        Collection::Groups => "groups",
        _ => "directoryObjects",
    };
    match select {
        Some(s) if !s.is_empty() => {
            format!("{}/$metadata#{set}({})", shared.graph_url(), s.join(","))
        }
        _ => format!("{}/$metadata#{set}", shared.graph_url()),
    }
}

/// Entry point: routes a call to its handler.
pub(crate) fn dispatch(call: &Call<'_>) -> Reply {
    let segments: Vec<&str> = call.path.split('/').filter(|s| !s.is_empty()).collect();
    let is_delta = |s: &str| {
        matches!(
            s,
            "delta" | "delta()" | "microsoft.graph.delta" | "microsoft.graph.delta()"
        )
    };
    let get = call.method == Method::GET;
    let answer = match segments.as_slice() {
        ["users"] if get => list(call, Collection::Users, false),
        ["users", d] if get && is_delta(d) => list(call, Collection::Users, true),
        ["users", id] if get => get_object(call, id, ObjKind::User),
        ["groups"] if get => list(call, Collection::Groups, false),
        ["groups", d] if get && is_delta(d) => list(call, Collection::Groups, true),
        ["groups", id] if get => get_object(call, id, ObjKind::Group),
        ["groups", id, "members"] if get => {
            list(call, Collection::Members((*id).to_owned()), false)
        }
        ["groups", id, "transitiveMembers"] if get => {
            list(call, Collection::TransitiveMembers((*id).to_owned()), false)
        }
        ["domains"] if get => domains(call),
        ["users"] if call.method == Method::POST => crate::users::create(call),
        ["users", id] if call.method == Method::PATCH => crate::users::update(call, id),
        ["users", id, "assignLicense" | "microsoft.graph.assignLicense"]
            if call.method == Method::POST =>
        {
            crate::users::assign_license(call, id)
        }
        ["users", user, "contactFolders", rest @ ..] => crate::contacts::dispatch(call, user, rest),
        ["users"]
        | ["groups"]
        | ["users", _]
        | ["groups", _]
        | ["groups", _, "members"]
        | ["groups", _, "transitiveMembers"]
        | ["domains"] => Err(errors::graph_rejected(
            StatusCode::METHOD_NOT_ALLOWED,
            "Request_BadRequest",
            "Specified HTTP method is not allowed for the request target.",
        )),
        _ => {
            let last = segments.last().copied().unwrap_or("");
            Err(errors::bad_request(&format!(
                "Resource not found for the segment '{last}'."
            )))
        }
    };
    match answer {
        Ok(r) | Err(r) => r,
    }
}

/// <https://learn.microsoft.com/graph/api/user-get> and
/// <https://learn.microsoft.com/graph/api/group-get>.
fn get_object(call: &Call<'_>, id: &str, kind: ObjKind) -> Result<Reply, Reply> {
    let (roles, type_name) = match kind {
        ObjKind::User => (USER_ROLES, "user"),
        ObjKind::Group => (GROUP_ROLES, "group"),
    };
    if !call.has_role(roles) {
        return Err(errors::graph_forbidden(true));
    }
    check_options(call, &["$select"])?;
    let select = call
        .param("$select")
        .map(|s| parse_select(s, &[type_name], type_name, true))
        .transpose()?;
    let st = call.shared.state.lock();
    let full = match kind {
        ObjKind::User => st
            .user_id(id)
            .and_then(|id| st.users.get(&id))
            .map(|s| user_json(&s.user)),
        ObjKind::Group => st.groups.get(id).map(|s| group_json(&s.group)),
    };
    let Some(full) = full else {
        return Err(errors::resource_not_found(id));
    };
    let default = (kind == ObjKind::User).then_some(USER_DEFAULT);
    let mut body = project(&full, select.as_deref(), default);
    body.insert(
        "@odata.context".into(),
        json!(format!(
            "{}/$metadata#{}s/$entity",
            call.shared.graph_url(),
            type_name
        )),
    );
    Ok(Reply::ok(Value::Object(body)))
}

/// <https://learn.microsoft.com/graph/api/domain-list>.
fn domains(call: &Call<'_>) -> Result<Reply, Reply> {
    if !call.has_role(DOMAIN_ROLES) {
        return Err(errors::graph_forbidden(true));
    }
    check_options(call, &["$select"])?;
    let st = call.shared.state.lock();
    let value: Vec<Value> = st
        .domains
        .iter()
        .map(|d| {
            json!({
                "id": d.name,
                "authenticationType": "Managed",
                "isAdminManaged": true,
                "isDefault": d.is_default,
                "isInitial": d.is_initial,
                "isRoot": true,
                "isVerified": d.verified,
                "supportedServices": if d.verified { json!(["Email"]) } else { json!([]) },
            })
        })
        .collect();
    Ok(Reply::ok(json!({
        "@odata.context": format!("{}/$metadata#domains", call.shared.graph_url()),
        "value": value,
    })))
}

/// Lists a collection (first page or a `$skiptoken` page), plain or delta:
/// <https://learn.microsoft.com/graph/api/user-list>, <https://learn.microsoft.com/graph/api/group-list>,
/// <https://learn.microsoft.com/graph/api/group-list-members>,
/// <https://learn.microsoft.com/graph/api/group-list-transitivemembers>,
/// <https://learn.microsoft.com/graph/api/user-delta>, <https://learn.microsoft.com/graph/api/group-delta>,
/// paged as <https://learn.microsoft.com/graph/paging> describes.
fn list(call: &Call<'_>, collection: Collection, delta: bool) -> Result<Reply, Reply> {
    let roles = match collection {
        Collection::Users => USER_ROLES,
        _ => GROUP_ROLES,
    };
    if !call.has_role(roles) {
        return Err(errors::graph_forbidden(true));
    }
    if let Collection::Members(g) | Collection::TransitiveMembers(g) = &collection {
        if !call.shared.state.lock().groups.contains_key(g) {
            return Err(errors::resource_not_found(g));
        }
    }
    if delta {
        check_options(call, &["$select", "$top", "$skiptoken", "$deltatoken"])?;
    } else {
        check_options(call, &["$select", "$filter", "$top", "$skiptoken"])?;
    }
    let shared = call.shared;
    if let Some(token) = call.param("$skiptoken") {
        let st = shared.state.lock();
        let Some(cursor) = st.cursors.get(token).cloned() else {
            drop(st);
            return Err(if delta {
                sync_reset(shared, &collection)
            } else {
                errors::bad_request("The $skiptoken is not valid: this service did not issue it.")
            });
        };
        if let Some(round) = &cursor.delta {
            if round.generation != st.delta_generation {
                drop(st);
                return Err(sync_reset(shared, &collection));
            }
        }
        drop(st);
        if cursor.collection != collection {
            return Err(errors::bad_request(
                "The $skiptoken belongs to another request.",
            ));
        }
        return Ok(page(shared, cursor));
    }
    let page_size = call.page_size(DEFAULT_PAGE, MAX_PAGE)?;
    let tname = type_name(&collection);
    let select = match call.param("$select") {
        Some(s) => {
            let types: &[&str] = match collection {
                Collection::Members(_) | Collection::TransitiveMembers(_) => {
                    &["directoryObject", "user", "group", "orgContact"]
                }
                _ => &[tname],
            };
            Some(parse_select(s, types, tname, true)?)
        }
        None => None,
    };
    let query = call
        .query
        .iter()
        .filter(|(k, _)| k.starts_with('$') && !k.eq_ignore_ascii_case("$skiptoken"))
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&");

    if delta {
        let mut st = shared.state.lock();
        let (since, initial) = match call.param("$deltatoken") {
            None => (0, true),
            Some("latest") => {
                let link = DeltaLink {
                    collection: collection.clone(),
                    select: select.clone(),
                    page_size,
                    since: st.seq,
                    generation: st.delta_generation,
                };
                let token = State::opaque_token();
                st.delta_links.insert(token.clone(), link);
                let body = json!({
                    "@odata.context": context(shared, &collection, select.as_deref()),
                    "@odata.deltaLink": format!("{}/{}?$deltatoken={token}", shared.graph_url(), path_of(&collection, true)),
                    "value": [],
                });
                return Ok(Reply::ok(body));
            }
            Some(token) => {
                let Some(link) = st.delta_links.get(token).cloned() else {
                    drop(st);
                    return Err(sync_reset(shared, &collection));
                };
                if link.generation != st.delta_generation || link.collection != collection {
                    drop(st);
                    return Err(sync_reset(shared, &collection));
                }
                drop(st);
                return Ok(start_round(
                    shared,
                    collection,
                    link.select,
                    link.page_size,
                    link.since,
                    false,
                    String::new(),
                ));
            }
        };
        drop(st);
        return Ok(start_round(
            shared, collection, select, page_size, since, initial, query,
        ));
    }

    let filter = match call.param("$filter") {
        Some(f) => Some(parse_filter(f, tname)?),
        None => None,
    };
    let st = shared.state.lock();
    let ids: Vec<String> = match &collection {
        Collection::Users => st
            .users
            .values()
            .filter(|s| {
                filter
                    .as_ref()
                    .is_none_or(|f| filter::matches(f, &user_json(&s.user)))
            })
            .map(|s| s.user.id.clone())
            .collect(),
        Collection::Groups => st
            .groups
            .values()
            .filter(|s| {
                filter
                    .as_ref()
                    .is_none_or(|f| filter::matches(f, &group_json(&s.group)))
            })
            .map(|s| s.group.id.clone())
            .collect(),
        Collection::Members(g) => st
            .groups
            .get(g)
            .map(|s| s.members.clone())
            .unwrap_or_default(),
        Collection::TransitiveMembers(g) => st.transitive_members(g),
    };
    drop(st);
    let cursor = Cursor {
        collection,
        select,
        page_size,
        ids: Arc::new(ids),
        offset: 0,
        delta: None,
        query,
    };
    Ok(page(shared, cursor))
}

fn encode(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// 410 Gone: the delta state is gone, start again (with the initial request).
fn sync_reset(shared: &Shared, collection: &Collection) -> Reply {
    errors::graph_rejected(
        StatusCode::GONE,
        "syncStateNotFound",
        "The sync state generation is not found. The delta token is expired and data must be synchronized again.",
    )
    .header(
        "Location",
        format!("{}/{}", shared.graph_url(), path_of(collection, true)),
    )
}

/// Starts a delta round: what changed in `(since, now]`, or everything.
fn start_round(
    shared: &Shared,
    collection: Collection,
    select: Option<Vec<String>>,
    page_size: usize,
    since: u64,
    initial: bool,
    query: String,
) -> Reply {
    let st = shared.state.lock();
    let until = st.seq;
    let member_changes = if initial || collection != Collection::Groups {
        HashMap::new()
    } else {
        st.member_changes(since, until)
    };
    let mut keyed: Vec<(u64, String)> = Vec::new();
    match &collection {
        Collection::Users => {
            for s in st.users.values() {
                if initial || s.seq > since {
                    keyed.push((if initial { 0 } else { s.seq }, s.user.id.clone()));
                }
            }
        }
        Collection::Groups => {
            for s in st.groups.values() {
                let member_seq = if member_changes.contains_key(&s.group.id) {
                    since + 1
                } else {
                    0
                };
                if initial || s.seq > since || member_seq > 0 {
                    let key = if initial { 0 } else { s.seq.max(member_seq) };
                    keyed.push((key, s.group.id.clone()));
                }
            }
        }
        _ => {}
    }
    if !initial {
        let kind = match collection {
            Collection::Users => ObjKind::User,
            _ => ObjKind::Group,
        };
        for (id, t) in &st.tombstones {
            if t.kind == kind && t.seq > since && t.seq <= until {
                keyed.push((t.seq, id.clone()));
            }
        }
    }
    keyed.sort();
    let round = DeltaRound {
        until,
        initial,
        member_changes: Arc::new(member_changes),
        generation: st.delta_generation,
    };
    drop(st);
    let cursor = Cursor {
        collection,
        select,
        page_size,
        ids: Arc::new(keyed.into_iter().map(|(_, id)| id).collect()),
        offset: 0,
        delta: Some(round),
        query,
    };
    page(shared, cursor)
}

/// Renders one page of a cursor, with its next link or delta link.
fn page(shared: &Shared, cursor: Cursor) -> Reply {
    let mut st = shared.state.lock();
    let end = (cursor.offset + cursor.page_size).min(cursor.ids.len());
    let ids = cursor.ids.get(cursor.offset..end).unwrap_or(&[]);
    let select = cursor.select.as_deref();
    let mut value = Vec::with_capacity(ids.len());
    for id in ids {
        let item = match (&cursor.collection, &cursor.delta) {
            (Collection::Users, None) => st
                .users
                .get(id)
                .map(|s| project(&user_json(&s.user), select, Some(USER_DEFAULT))),
            (Collection::Groups, None) => st
                .groups
                .get(id)
                .map(|s| project(&group_json(&s.group), select, None)),
            (Collection::Members(_) | Collection::TransitiveMembers(_), _) => {
                member_item(&st, id, select)
            }
            (collection, Some(round)) => Some(delta_item(&st, collection, round, id, select)),
        };
        if let Some(item) = item {
            value.push(Value::Object(item));
        }
    }
    let kind = match (&cursor.collection, cursor.delta.is_some()) {
        (Collection::Users, false) => "users",
        (Collection::Users, true) => "users/delta",
        (Collection::Groups, false) => "groups",
        (Collection::Groups, true) => "groups/delta",
        (Collection::Members(_), _) => "members",
        (Collection::TransitiveMembers(_), _) => "transitiveMembers",
    };
    st.counters.graph_pages += 1;
    *st.counters
        .pages_by_kind
        .entry(kind.to_owned())
        .or_default() += 1;
    let path = path_of(&cursor.collection, cursor.delta.is_some());
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(context(shared, &cursor.collection, select)),
    );
    if end < cursor.ids.len() {
        let token = State::opaque_token();
        let next = Cursor {
            offset: end,
            ..cursor.clone()
        };
        st.cursors.insert(token.clone(), next);
        let link = if cursor.delta.is_some() || cursor.query.is_empty() {
            format!("{}/{path}?$skiptoken={token}", shared.graph_url())
        } else {
            format!(
                "{}/{path}?{}&$skiptoken={token}",
                shared.graph_url(),
                cursor.query
            )
        };
        body.insert("@odata.nextLink".into(), json!(link));
    } else if let Some(round) = &cursor.delta {
        let token = State::opaque_token();
        st.delta_links.insert(
            token.clone(),
            DeltaLink {
                collection: cursor.collection.clone(),
                select: cursor.select.clone(),
                page_size: cursor.page_size,
                since: round.until,
                generation: round.generation,
            },
        );
        body.insert(
            "@odata.deltaLink".into(),
            json!(format!("{}/{path}?$deltatoken={token}", shared.graph_url())),
        );
    }
    body.insert("value".into(), Value::Array(value));
    Reply::ok(Value::Object(body))
}

fn member_item(st: &State, id: &str, select: Option<&[String]>) -> Option<Map<String, Value>> {
    let (mut item, kind) = if let Some(s) = st.users.get(id) {
        (
            project(&user_json(&s.user), select, Some(USER_DEFAULT)),
            ObjKind::User,
        )
    } else if let Some(s) = st.groups.get(id) {
        (project(&group_json(&s.group), select, None), ObjKind::Group)
    } else {
        return None;
    };
    item.insert("id".into(), json!(id));
    let mut out = Map::new();
    out.insert("@odata.type".into(), json!(kind.odata_type()));
    out.extend(item);
    Some(out)
}

fn delta_item(
    st: &State,
    collection: &Collection,
    round: &DeltaRound,
    id: &str,
    select: Option<&[String]>,
) -> Map<String, Value> {
    let alive = match collection {
        Collection::Users => st
            .users
            .get(id)
            .map(|s| project(&user_json(&s.user), select, None)),
        _ => st
            .groups
            .get(id)
            .map(|s| project(&group_json(&s.group), select, None)),
    };
    let Some(mut item) = alive else {
        let reason = st.tombstones.get(id).map_or("deleted", |t| t.reason);
        let mut out = Map::new();
        out.insert("id".into(), json!(id));
        out.insert("@removed".into(), json!({"reason": reason}));
        return out;
    };
    item.insert("id".into(), json!(id));
    let wants_members = select.is_some_and(|s| s.iter().any(|n| n == "members"));
    if *collection == Collection::Groups && wants_members {
        let member = |m: &str, added: bool| {
            let kind = st.kind_of(m).unwrap_or(ObjKind::User);
            let mut v = json!({"@odata.type": kind.odata_type(), "id": m});
            if !added {
                v["@removed"] = json!({"reason": "deleted"});
            }
            v
        };
        let members: Vec<Value> = if round.initial {
            st.groups
                .get(id)
                .map(|g| g.members.iter().map(|m| member(m, true)).collect())
                .unwrap_or_default()
        } else {
            round
                .member_changes
                .get(id)
                .map(|list| list.iter().map(|(m, added)| member(m, *added)).collect())
                .unwrap_or_default()
        };
        item.insert("members@delta".into(), Value::Array(members));
    }
    item
}
