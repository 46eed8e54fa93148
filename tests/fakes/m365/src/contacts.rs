//! Personal contacts in a mailbox's contact folders (Outlook in Microsoft Graph).
//!
//! - <https://learn.microsoft.com/graph/api/user-list-contactfolders> and
//!   <https://learn.microsoft.com/graph/api/user-post-contactfolders>
//!   (`displayName`; a second folder of the same name is 409 `ErrorFolderExists`),
//! - <https://learn.microsoft.com/graph/api/contactfolder-list-contacts>,
//!   <https://learn.microsoft.com/graph/api/contactfolder-post-contacts>,
//!   <https://learn.microsoft.com/graph/api/contact-get>,
//!   <https://learn.microsoft.com/graph/api/contact-update> (PATCH merges),
//!   <https://learn.microsoft.com/graph/api/contact-delete> (204).
//!
//! Bodies are checked against the CSDL's `contact` and `contactFolder` types,
//! nested complex values (`emailAddresses[{name,address}]`) against theirs;
//! an unknown property is Outlook's 400 `RequestBodyRead`. Lists page as
//! Outlook does: 10 by default, `$top` at most 1000, `$skip` in the next link.
//! A user without a mailbox (a mail user, or no recipient) answers 404
//! `MailboxNotEnabledForRESTAPI`.

use axum::http::{Method, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::Rng;
use serde_json::{json, Map, Value};

use crate::csdl::Schema;
use crate::errors::{self, Reply};
use crate::graph::Call;
use crate::state::{rfc3339_now, Folder, State};

const READ_ROLES: &[&str] = &["Contacts.Read", "Contacts.ReadWrite"];
const WRITE_ROLES: &[&str] = &["Contacts.ReadWrite"];
const DEFAULT_PAGE: usize = 10;
const MAX_PAGE: usize = 1000;
/// Properties the service sets; a body may carry them, they are not written.
const READ_ONLY: &[&str] = &[
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "parentFolderId",
];

fn outlook_id(prefix: &str) -> String {
    let mut bytes = [0u8; 42];
    rand::thread_rng().fill(&mut bytes[..]);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

fn not_found() -> Reply {
    errors::graph_rejected(
        StatusCode::NOT_FOUND,
        "ErrorItemNotFound",
        "The specified object was not found in the store.",
    )
}

fn body_error(message: &str) -> Reply {
    errors::graph_rejected(StatusCode::BAD_REQUEST, "RequestBodyRead", message)
}

fn outlook_type(type_name: &str) -> String {
    let mut chars = type_name.chars();
    let first = chars.next().map(|c| c.to_ascii_uppercase()).unwrap_or('X');
    format!("Microsoft.OutlookServices.{first}{}", chars.as_str())
}

/// Checks a JSON value against a CSDL type name.
fn check_value(schema: &Schema, name: &str, type_name: &str, value: &Value) -> Result<(), Reply> {
    if value.is_null() {
        return Ok(());
    }
    if let Some(inner) = type_name
        .strip_prefix("Collection(")
        .and_then(|t| t.strip_suffix(')'))
    {
        let Some(items) = value.as_array() else {
            return Err(body_error(&format!(
                "Cannot read the value of property '{name}': a collection ('{type_name}') was expected."
            )));
        };
        for item in items {
            check_value(schema, name, inner, item)?;
        }
        return Ok(());
    }
    let ok = match type_name {
        "Edm.String" | "Edm.DateTimeOffset" | "Edm.Date" | "Edm.Guid" | "Edm.Duration" => {
            value.is_string()
        }
        "Edm.Boolean" => value.is_boolean(),
        "Edm.Int32" | "Edm.Int64" | "Edm.Double" | "Edm.Single" | "Edm.Decimal" => {
            value.is_number()
        }
        other => {
            let local = other
                .strip_prefix("graph.")
                .or_else(|| other.strip_prefix("microsoft.graph."));
            match local {
                Some(t) if schema.has_type(t) && !schema.members(t).is_empty() => {
                    let Some(obj) = value.as_object() else {
                        return Err(body_error(&format!(
                            "Cannot read the value of property '{name}': an object of type '{}' was expected.",
                            outlook_type(t)
                        )));
                    };
                    check_object(schema, t, obj, &[])?;
                    true
                }
                // Enumerations are strings.
                Some(_) => value.is_string(),
                None => true,
            }
        }
    };
    if ok {
        Ok(())
    } else {
        Err(body_error(&format!(
            "Cannot convert the literal '{value}' to the expected type '{type_name}' of property '{name}'."
        )))
    }
}

/// Checks an object's properties against a type; returns them with their
/// canonical names, read-only ones dropped.
pub(crate) fn check_object(
    schema: &Schema,
    type_name: &str,
    obj: &Map<String, Value>,
    read_only: &[&str],
) -> Result<Map<String, Value>, Reply> {
    let mut out = Map::new();
    for (k, v) in obj {
        if k.starts_with('@') {
            continue;
        }
        let Some(member) = schema.member(type_name, k) else {
            return Err(body_error(&format!(
                "The property '{k}' does not exist on type '{}'. Make sure to only use property names that are defined by the type or mark the type as open type.",
                outlook_type(type_name)
            )));
        };
        if member.navigation {
            return Err(body_error(&format!(
                "The property '{k}' is a navigation property of '{}' and cannot be written with it.",
                outlook_type(type_name)
            )));
        }
        check_value(schema, &member.name, &member.type_name, v)?;
        if !read_only.contains(&member.name.as_str()) {
            out.insert(member.name.clone(), v.clone());
        }
    }
    Ok(out)
}

pub(crate) fn parse_body(call: &Call<'_>) -> Result<Map<String, Value>, Reply> {
    match serde_json::from_slice::<Value>(&call.body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(body_error("The request body must be a JSON object.")),
        Err(e) => Err(body_error(&format!("Invalid JSON. {e}"))),
    }
}

pub(crate) fn schema() -> Result<&'static Schema, Reply> {
    crate::csdl::schema()
        .map_err(|e| errors::graph(StatusCode::INTERNAL_SERVER_ERROR, "generalException", &e))
}

/// The contact as Graph shows it: every structural property (unset ones
/// null or empty), the stored values, and the service's own.
fn render(
    schema: &Schema,
    stored: &Map<String, Value>,
    select: Option<&[String]>,
) -> Map<String, Value> {
    let value_of = |m: &crate::csdl::Member| {
        stored.get(&m.name).cloned().unwrap_or_else(|| {
            if m.type_name.starts_with("Collection(") {
                json!([])
            } else {
                Value::Null
            }
        })
    };
    let structural = || schema.members("contact").iter().filter(|m| !m.navigation);
    let mut out = Map::new();
    out.insert(
        "@odata.etag".into(),
        json!(format!(
            "W/\"{}\"",
            stored
                .get("changeKey")
                .and_then(Value::as_str)
                .unwrap_or("")
        )),
    );
    match select {
        Some(names) => {
            let pick = |name: &str| {
                structural()
                    .find(|m| m.name == name)
                    .map(value_of)
                    .unwrap_or(Value::Null)
            };
            out.insert("id".into(), pick("id"));
            for n in names {
                out.insert(n.clone(), pick(n));
            }
        }
        None => {
            // Every structural property unset, built once, then the stored
            // values over it: cheaper than one lookup and insert per
            // property for every contact a batch answers with.
            static UNSET: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
            let unset = UNSET.get_or_init(|| {
                structural()
                    .map(|m| {
                        let empty = if m.type_name.starts_with("Collection(") {
                            json!([])
                        } else {
                            Value::Null
                        };
                        (m.name.clone(), empty)
                    })
                    .collect()
            });
            let mut full = unset.clone();
            for (name, value) in stored {
                if let Some(slot) = full.get_mut(name) {
                    *slot = value.clone();
                }
            }
            full.insert(
                "@odata.etag".into(),
                out.remove("@odata.etag").unwrap_or(Value::Null),
            );
            out = full;
        }
    }
    out
}

fn folder_json(f: &Folder) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("id".into(), json!(f.id));
    m.insert("displayName".into(), json!(f.display_name));
    m.insert("parentFolderId".into(), json!(f.parent_folder_id));
    m
}

/// `/users/{user}/contactFolders/…`: the contact folder and contact operations
/// of <https://learn.microsoft.com/graph/api/resources/contactfolder> and
/// <https://learn.microsoft.com/graph/api/resources/contact>.
pub(crate) fn dispatch(call: &Call<'_>, user: &str, rest: &[&str]) -> Result<Reply, Reply> {
    let write = call.method != Method::GET;
    let allowed = if write { WRITE_ROLES } else { READ_ROLES };
    if !call.roles.iter().any(|r| allowed.contains(&r.as_str())) {
        return Err(errors::graph_forbidden(false));
    }
    let user_id = {
        let st = call.shared.state.lock();
        let Some(id) = st.user_id(user) else {
            return Err(errors::graph_rejected(
                StatusCode::NOT_FOUND,
                "ErrorInvalidUser",
                &format!("The requested user '{user}' is invalid."),
            ));
        };
        let has_mailbox = st
            .users
            .get(&id)
            .is_some_and(|s| s.user.recipient_type.has_mailbox());
        if !has_mailbox {
            return Err(errors::graph_rejected(
                StatusCode::NOT_FOUND,
                "MailboxNotEnabledForRESTAPI",
                "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
            ));
        }
        id
    };
    let base = format!("{}/users/{user}/contactFolders", call.shared.graph_url());
    match (call.method.clone(), rest) {
        (Method::GET, []) => list_folders(call, &user_id, &base),
        (Method::POST, []) => create_folder(call, &user_id),
        (Method::GET, [fid]) => {
            let st = call.shared.state.lock();
            let folder = folder_of(&st, &user_id, fid)?;
            Ok(Reply::ok(Value::Object(folder_json(folder))))
        }
        (Method::DELETE, [fid]) => {
            let mut st = call.shared.state.lock();
            let folders = st.folders.entry(user_id).or_default();
            let before = folders.len();
            folders.retain(|f| f.id != *fid);
            if folders.len() == before {
                return Err(not_found());
            }
            st.counters.graph_writes += 1;
            Ok(Reply::empty(StatusCode::NO_CONTENT))
        }
        (Method::GET, [fid, "contacts"]) => {
            list_contacts(call, &user_id, fid, &format!("{base}/{fid}/contacts"))
        }
        (Method::POST, [fid, "contacts"]) => create_contact(call, &user_id, fid),
        (Method::GET, [fid, "contacts", cid]) => {
            let select = select_of(call)?;
            let schema = schema()?;
            let st = call.shared.state.lock();
            let folder = folder_of(&st, &user_id, fid)?;
            let stored = folder.contacts.get(*cid).ok_or_else(not_found)?;
            Ok(Reply::ok(Value::Object(render(
                schema,
                stored,
                select.as_deref(),
            ))))
        }
        (Method::PATCH, [fid, "contacts", cid]) => update_contact(call, &user_id, fid, cid),
        (Method::DELETE, [fid, "contacts", cid]) => {
            let mut st = call.shared.state.lock();
            let folder = folder_of_mut(&mut st, &user_id, fid)?;
            if folder.contacts.remove(*cid).is_none() {
                return Err(not_found());
            }
            st.counters.graph_writes += 1;
            Ok(Reply::empty(StatusCode::NO_CONTENT))
        }
        (_, [] | [_] | [_, "contacts"] | [_, "contacts", _]) => Err(errors::graph_rejected(
            StatusCode::METHOD_NOT_ALLOWED,
            "ErrorInvalidRequest",
            "The OData request is not supported.",
        )),
        _ => Err(errors::bad_request(&format!(
            "Resource not found for the segment '{}'.",
            rest.last().copied().unwrap_or("")
        ))),
    }
}

fn folder_of<'a>(st: &'a State, user: &str, fid: &str) -> Result<&'a Folder, Reply> {
    st.folders
        .get(user)
        .and_then(|fs| fs.iter().find(|f| f.id == fid))
        .ok_or_else(not_found)
}

fn folder_of_mut<'a>(st: &'a mut State, user: &str, fid: &str) -> Result<&'a mut Folder, Reply> {
    st.folders
        .get_mut(user)
        .and_then(|fs| fs.iter_mut().find(|f| f.id == fid))
        .ok_or_else(not_found)
}

fn select_of(call: &Call<'_>) -> Result<Option<Vec<String>>, Reply> {
    let Some(text) = call
        .query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("$select"))
        .map(|(_, v)| v.clone())
    else {
        return Ok(None);
    };
    let schema = schema()?;
    let mut out = Vec::new();
    for raw in text.split(',') {
        let name = raw.trim();
        if name.is_empty() {
            continue;
        }
        match schema.member("contact", name) {
            Some(m) if !m.navigation => out.push(m.name.clone()),
            _ => {
                return Err(errors::graph_rejected(
                    StatusCode::BAD_REQUEST,
                    "RequestBroker--ParseUri",
                    &format!("Could not find a property named '{name}' on type 'Microsoft.OutlookServices.Contact'."),
                ))
            }
        }
    }
    Ok(Some(out))
}

/// `$top` and `$skip` of an Outlook list.
fn paging(call: &Call<'_>) -> Result<(usize, usize), Reply> {
    let get = |n: &str| {
        call.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let top = match get("$top") {
        Some(t) => t
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                errors::graph_rejected(
                    StatusCode::BAD_REQUEST,
                    "ErrorInvalidParameter",
                    &format!("The value '{t}' of parameter '$top' is invalid: it must be between 1 and {MAX_PAGE}."),
                )
            })?,
        None => DEFAULT_PAGE,
    };
    let skip = match get("$skip") {
        Some(s) => s.trim().parse::<usize>().map_err(|_| {
            errors::bad_request(&format!(
                "Invalid value '{s}' for $skip query option found."
            ))
        })?,
        None => 0,
    };
    for (k, _) in &call.query {
        let lower = k.to_ascii_lowercase();
        if k.starts_with('$') && !["$top", "$skip", "$select", "$filter"].contains(&lower.as_str())
        {
            return Err(errors::graph_rejected(
                StatusCode::BAD_REQUEST,
                "Request_UnsupportedQuery",
                &format!("The query option '{k}' is not supported on this request (this fake serves $top, $skip, $select, $filter)."),
            ));
        }
    }
    Ok((top, skip))
}

fn next_link(base: &str, call: &Call<'_>, top: usize, skip: usize) -> String {
    let mut parts: Vec<String> = call
        .query
        .iter()
        .filter(|(k, _)| {
            let l = k.to_ascii_lowercase();
            l == "$select" || l == "$filter"
        })
        .map(|(k, v)| {
            format!(
                "{k}={}",
                form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
            )
        })
        .collect();
    parts.push(format!("$top={top}"));
    parts.push(format!("$skip={skip}"));
    format!("{base}?{}", parts.join("&"))
}

fn folder_filter(call: &Call<'_>, type_name: &str) -> Result<Option<crate::filter::Expr>, Reply> {
    let Some(text) = call
        .query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("$filter"))
        .map(|(_, v)| v.clone())
    else {
        return Ok(None);
    };
    let schema = schema()?;
    let known = |p: &str| schema.member(type_name, p).map(|m| m.name.clone());
    crate::filter::parse(&text, &known)
        .map(Some)
        .map_err(|e| match e {
            crate::filter::FilterError::UnknownProperty(p) => errors::graph_rejected(
                StatusCode::BAD_REQUEST,
                "RequestBroker--ParseUri",
                &format!(
                    "Could not find a property named '{p}' on type '{}'.",
                    outlook_type(type_name)
                ),
            ),
            crate::filter::FilterError::Unsupported(why) => errors::graph_rejected(
                StatusCode::BAD_REQUEST,
                "ErrorInvalidUrlQueryFilter",
                &format!("The filter expression is not supported: {why}."),
            ),
        })
}

/// <https://learn.microsoft.com/graph/api/user-list-contactfolders>.
fn list_folders(call: &Call<'_>, user: &str, base: &str) -> Result<Reply, Reply> {
    let (top, skip) = paging(call)?;
    let filter = folder_filter(call, "contactFolder")?;
    let mut st = call.shared.state.lock();
    let all: Vec<Map<String, Value>> = st
        .folders
        .get(user)
        .map(|fs| fs.iter().map(folder_json).collect())
        .unwrap_or_default();
    let all: Vec<Map<String, Value>> = all
        .into_iter()
        .filter(|f| filter.as_ref().is_none_or(|e| crate::filter::matches(e, f)))
        .collect();
    st.counters.graph_pages += 1;
    *st.counters
        .pages_by_kind
        .entry("contactFolders".into())
        .or_default() += 1;
    Ok(Reply::ok(page_body(
        call,
        base,
        all,
        top,
        skip,
        "contactFolders",
    )))
}

fn page_body(
    call: &Call<'_>,
    base: &str,
    all: Vec<Map<String, Value>>,
    top: usize,
    skip: usize,
    set: &str,
) -> Value {
    let total = all.len();
    let value: Vec<Value> = all
        .into_iter()
        .skip(skip)
        .take(top)
        .map(Value::Object)
        .collect();
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(format!("{}/$metadata#{set}", call.shared.graph_url())),
    );
    body.insert("value".into(), Value::Array(value));
    if skip + top < total {
        body.insert(
            "@odata.nextLink".into(),
            json!(next_link(base, call, top, skip + top)),
        );
    }
    Value::Object(body)
}

/// <https://learn.microsoft.com/graph/api/user-post-contactfolders>.
fn create_folder(call: &Call<'_>, user: &str) -> Result<Reply, Reply> {
    let schema = schema()?;
    let body = parse_body(call)?;
    let props = check_object(schema, "contactFolder", &body, READ_ONLY)?;
    let Some(name) = props
        .get("displayName")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return Err(errors::graph_rejected(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidRequest",
            "The folder's displayName is missing.",
        ));
    };
    let mut st = call.shared.state.lock();
    let folders = st.folders.entry(user.to_owned()).or_default();
    if folders
        .iter()
        .any(|f| f.display_name.eq_ignore_ascii_case(&name))
    {
        return Err(errors::graph_rejected(
            StatusCode::CONFLICT,
            "ErrorFolderExists",
            &format!("A folder with the specified name already exists., Could not create folder '{name}'."),
        ));
    }
    let folder = Folder {
        id: outlook_id("AAMkAGZvbGRlcg"),
        display_name: name,
        parent_folder_id: format!("AAMkAGNvbnRhY3Rz{}", user.replace('-', "")),
        contacts: Default::default(),
    };
    let json = folder_json(&folder);
    folders.push(folder);
    st.counters.graph_writes += 1;
    Ok(Reply::json(StatusCode::CREATED, Value::Object(json)))
}

/// <https://learn.microsoft.com/graph/api/contactfolder-list-contacts>.
fn list_contacts(call: &Call<'_>, user: &str, fid: &str, base: &str) -> Result<Reply, Reply> {
    let (top, skip) = paging(call)?;
    let select = select_of(call)?;
    let filter = folder_filter(call, "contact")?;
    let schema = schema()?;
    let mut st = call.shared.state.lock();
    let folder = folder_of(&st, user, fid)?;
    let all: Vec<Map<String, Value>> = folder
        .contacts
        .values()
        .filter(|c| {
            filter
                .as_ref()
                .is_none_or(|e| crate::filter::matches(e, &render(schema, c, None)))
        })
        .map(|c| render(schema, c, select.as_deref()))
        .collect();
    st.counters.graph_pages += 1;
    *st.counters
        .pages_by_kind
        .entry("contacts".into())
        .or_default() += 1;
    Ok(Reply::ok(page_body(call, base, all, top, skip, "contacts")))
}

fn stamp(stored: &mut Map<String, Value>) {
    let now = rfc3339_now(true);
    if !stored.contains_key("createdDateTime") {
        stored.insert("createdDateTime".into(), json!(now));
    }
    stored.insert("lastModifiedDateTime".into(), json!(now));
    stored.insert("changeKey".into(), json!(outlook_id("EQAAABYAAA")));
}

/// <https://learn.microsoft.com/graph/api/contactfolder-post-contacts>.
fn create_contact(call: &Call<'_>, user: &str, fid: &str) -> Result<Reply, Reply> {
    let schema = schema()?;
    let body = parse_body(call)?;
    let mut stored = check_object(schema, "contact", &body, READ_ONLY)?;
    let id = outlook_id("AAMkAGNvbnRhY3Q");
    stored.insert("id".into(), json!(id));
    stored.insert("parentFolderId".into(), json!(fid));
    stamp(&mut stored);
    // Rendered before the state is locked: other requests wait only for
    // the insert.
    let rendered = render(schema, &stored, None);
    let mut st = call.shared.state.lock();
    let folder = folder_of_mut(&mut st, user, fid)?;
    folder.contacts.insert(id, stored);
    st.counters.graph_writes += 1;
    Ok(Reply::json(StatusCode::CREATED, Value::Object(rendered)))
}

/// <https://learn.microsoft.com/graph/api/contact-update>: PATCH merges the properties given.
fn update_contact(call: &Call<'_>, user: &str, fid: &str, cid: &str) -> Result<Reply, Reply> {
    let schema = schema()?;
    let body = parse_body(call)?;
    let changes = check_object(schema, "contact", &body, READ_ONLY)?;
    let mut st = call.shared.state.lock();
    let folder = folder_of_mut(&mut st, user, fid)?;
    let stored = folder.contacts.get_mut(cid).ok_or_else(not_found)?;
    stored.extend(changes);
    stamp(stored);
    let rendered = render(schema, stored, None);
    st.counters.graph_writes += 1;
    Ok(Reply::ok(Value::Object(rendered)))
}
