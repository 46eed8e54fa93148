//! The Admin SDK Directory API v1 endpoints coexist reads.
//!
//! Every request is checked against the discovery document subset
//! (`testdata/directory_v1_subset.json`): its bearer token and scopes, its
//! query parameters (names, types, enums, minima and maxima) and its `fields`
//! selection (names of the response schema).

use std::collections::{HashSet, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::auth::{self, Flavor};
use crate::errors;
use crate::spec::{apply_selection, FieldSel, Params};
use crate::state::{
    directory_etag, MemberRec, MemberType, Shared, State as Data, StoredGroup, StoredUser,
};

type Answer = Result<Response, Response>;

fn unify(answer: Answer) -> Response {
    match answer {
        Ok(r) | Err(r) => r,
    }
}

pub(crate) fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// Serves the next pending fault, if any.
pub(crate) fn take_fault(shared: &Shared, flavor: Flavor) -> Result<(), Response> {
    let mut st = shared.state.lock();
    if let Some(fault) = st.faults.pop_front() {
        let retry = st.retry_after_secs;
        return Err(match flavor {
            Flavor::Json => errors::fault_json(fault, retry),
            Flavor::GData => errors::fault_gdata(fault, retry),
        });
    }
    Ok(())
}

struct Call {
    params: Params,
    fields: Option<Vec<FieldSel>>,
}

impl Call {
    fn get(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// The JSON answer, cut down to the `fields` selection.
    fn respond(&self, value: Value) -> Response {
        self.respond_with(&value)
    }

    /// Serialises an answer, cut down to the `fields` selection.
    fn respond_with<T: Serialize>(&self, value: &T) -> Response {
        let pretty = self.get("prettyPrint") != Some("false");
        let text = match &self.fields {
            Some(sel) => {
                let full = serde_json::to_value(value).unwrap_or(Value::Null);
                let cut = apply_selection(&full, sel);
                if pretty {
                    serde_json::to_string_pretty(&cut)
                } else {
                    serde_json::to_string(&cut)
                }
            }
            None if pretty => serde_json::to_string_pretty(value),
            None => serde_json::to_string(value),
        };
        match text {
            Ok(text) => (
                StatusCode::OK,
                [(
                    axum::http::header::CONTENT_TYPE,
                    "application/json; charset=UTF-8",
                )],
                text,
            )
                .into_response(),
            Err(_) => errors::fault_json(crate::Fault::ServerError500, 0),
        }
    }
}

/// Authorisation, fault injection, parameter and `fields` validation.
fn prepare(
    shared: &Shared,
    headers: &HeaderMap,
    raw_query: Option<&str>,
    resource: &str,
    method: &str,
) -> Result<Call, Response> {
    let pairs = query_pairs(raw_query);
    auth::authorize(
        shared,
        headers,
        &pairs,
        &shared.spec.scopes(resource, method),
        Flavor::Json,
    )?;
    take_fault(shared, Flavor::Json)?;
    let params = shared.spec.validate_query(resource, method, &pairs)?;
    if let Some(alt) = params.get("alt") {
        if alt != "json" {
            return Err(errors::bad_parameter(
                &format!("Invalid value '{alt}': this fake serves alt=json only"),
                "alt",
            ));
        }
    }
    let fields = match params.get("fields") {
        Some(sel) => {
            let schema = shared
                .spec
                .response_schema(resource, method)
                .unwrap_or_default();
            Some(shared.spec.parse_fields(&schema, sel)?)
        }
        None => None,
    };
    Ok(Call { params, fields })
}

// ----- page tokens -----

enum Position {
    /// Key-ordered listings: continue after this key.
    After(String),
    /// Sorted or positional listings: continue at this offset.
    Offset(usize),
}

struct PageToken {
    page: usize,
    position: Position,
}

fn encode_token(kind: char, page: usize, position: &Position) -> String {
    let raw = match position {
        Position::After(k) => format!("{kind}|{page}|a|{k}"),
        Position::Offset(n) => format!("{kind}|{page}|o|{n}"),
    };
    raw.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_token(token: &str, kind: char) -> Result<PageToken, Response> {
    let invalid = || errors::bad_parameter("Invalid pageToken", "pageToken");
    if !token.len().is_multiple_of(2) {
        return Err(invalid());
    }
    let bytes: Result<Vec<u8>, _> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2).unwrap_or("zz"), 16))
        .collect();
    let raw = String::from_utf8(bytes.map_err(|_| invalid())?).map_err(|_| invalid())?;
    let mut parts = raw.splitn(4, '|');
    let (Some(k), Some(page), Some(how), Some(rest)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    if !k.starts_with(kind) {
        return Err(invalid());
    }
    let page: usize = page.parse().map_err(|_| invalid())?;
    let position = match how {
        "a" => Position::After(rest.to_owned()),
        "o" => Position::Offset(rest.parse().map_err(|_| invalid())?),
        _ => return Err(invalid()),
    };
    Ok(PageToken { page, position })
}

/// Fails the configured page of a listing (see `fail_listing_after_pages`).
fn listing_fault(shared: &Shared, page: usize) -> Result<(), Response> {
    let mut st = shared.state.lock();
    if let Some(f) = st.listing_fault {
        if page == f.pages + 1 {
            if !f.persistent {
                st.listing_fault = None;
            }
            return Err(errors::fault_json(crate::Fault::ServerError500, 0));
        }
    }
    Ok(())
}

fn max_results(shared: &Shared, resource: &str, call: &Call) -> usize {
    let n = shared
        .spec
        .int_param(resource, "list", &call.params, "maxResults");
    usize::try_from(n.max(1)).unwrap_or(1)
}

/// One page of a key-ordered map, filtered. Returns the page and the key to
/// continue after, if more match.
fn key_page<'a, T>(
    map: &'a std::collections::BTreeMap<String, T>,
    after: Option<&str>,
    max: usize,
    keep: impl Fn(&T) -> bool,
) -> (Vec<&'a T>, Option<String>) {
    let range = match after {
        Some(a) => map.range::<str, _>((Bound::Excluded(a), Bound::Unbounded)),
        None => map.range::<str, _>((Bound::Unbounded, Bound::Unbounded)),
    };
    let mut page = Vec::with_capacity(max.min(1024));
    let mut last = None;
    let mut more = false;
    for (k, v) in range {
        if !keep(v) {
            continue;
        }
        if page.len() == max {
            more = true;
            break;
        }
        page.push(v);
        last = Some(k.clone());
    }
    (page, if more { last } else { None })
}

/// Slices a sorted list at a page token position.
fn offset_page<T>(all: Vec<T>, offset: usize, max: usize) -> (Vec<T>, Option<usize>) {
    let len = all.len();
    let end = offset.saturating_add(max).min(len);
    let page: Vec<T> = all
        .into_iter()
        .skip(offset)
        .take(end.saturating_sub(offset))
        .collect();
    (page, if end < len { Some(end) } else { None })
}

fn domain_of(email: &str) -> &str {
    email.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
}

fn local_of(email: &str) -> &str {
    email.rsplit_once('@').map_or(email, |(l, _)| l)
}

fn owns_domain(shared: &Shared, st: &Data, domain: &str) -> bool {
    domain == shared.domain
        || st.secondary_domains.iter().any(|(d, _)| d == domain)
        || st.domain_aliases.iter().any(|(a, _, _)| a == domain)
}

// ----- users -----

fn is_false(b: &bool) -> bool {
    !*b
}

/// A User resource as users.list and users.get send it (serialised
/// directly: 500 of them make a page).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserOut<'a> {
    kind: &'a str,
    id: &'a str,
    etag: &'a str,
    primary_email: &'a str,
    name: NameOut<'a>,
    emails: Vec<EmailOut<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    phones: Vec<PhoneOut<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    organizations: Vec<OrgOut<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    external_ids: Vec<Value>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    admin: Option<AdminOut<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NameOut<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    given_name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    family_name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    full_name: &'a str,
}

#[derive(Serialize)]
struct EmailOut<'a> {
    address: &'a str,
    #[serde(skip_serializing_if = "is_false")]
    primary: bool,
}

#[derive(Serialize)]
struct PhoneOut<'a> {
    value: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OrgOut<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    title: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    department: &'a str,
    primary: bool,
    custom_type: &'a str,
}

/// The fields only the admin view shows.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AdminOut<'a> {
    is_admin: bool,
    is_delegated_admin: bool,
    last_login_time: &'a str,
    creation_time: &'a str,
    agreed_to_terms: bool,
    suspended: bool,
    archived: bool,
    change_password_at_next_login: bool,
    ip_whitelisted: bool,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    aliases: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    non_editable_aliases: &'a [String],
    customer_id: &'a str,
    org_unit_path: &'a str,
    is_mailbox_setup: bool,
    is_enrolled_in2_sv: bool,
    is_enforced_in2_sv: bool,
    include_in_global_address_list: bool,
}

fn user_out<'a>(shared: &'a Shared, stored: &'a StoredUser, public_view: bool) -> UserOut<'a> {
    let u = &stored.user;
    let mut emails = vec![EmailOut {
        address: &u.primary_email,
        primary: true,
    }];
    for a in u.aliases.iter().chain(&u.non_editable_aliases) {
        emails.push(EmailOut {
            address: a,
            primary: false,
        });
    }
    let organizations =
        if u.title.is_empty() && u.department.is_empty() && u.organization.is_empty() {
            Vec::new()
        } else {
            vec![OrgOut {
                name: &u.organization,
                title: &u.title,
                department: &u.department,
                primary: true,
                custom_type: "",
            }]
        };
    UserOut {
        kind: &shared.kinds.user,
        id: &u.id,
        etag: &stored.etag,
        primary_email: &u.primary_email,
        name: NameOut {
            given_name: &u.given_name,
            family_name: &u.family_name,
            full_name: &u.full_name,
        },
        emails,
        phones: u
            .phones
            .iter()
            .map(|(t, v)| PhoneOut { value: v, kind: t })
            .collect(),
        organizations,
        external_ids: u
            .external_ids
            .iter()
            .map(|(kind, value)| {
                let standard = [
                    "account",
                    "custom",
                    "customer",
                    "login_id",
                    "network",
                    "organization",
                ];
                if standard.contains(&kind.as_str()) {
                    json!({ "type": kind, "value": value })
                } else {
                    json!({ "type": "custom", "customType": kind, "value": value })
                }
            })
            .collect(),
        admin: (!public_view).then(|| AdminOut {
            is_admin: false,
            is_delegated_admin: false,
            last_login_time: "1970-01-01T00:00:00.000Z",
            creation_time: &stored.creation_time,
            agreed_to_terms: true,
            suspended: u.suspended,
            archived: u.archived,
            change_password_at_next_login: u.change_password_at_next_login,
            ip_whitelisted: false,
            aliases: &u.aliases,
            non_editable_aliases: &u.non_editable_aliases,
            customer_id: &shared.customer_id,
            org_unit_path: &u.org_unit_path,
            is_mailbox_setup: u.is_mailbox_setup,
            is_enrolled_in2_sv: false,
            is_enforced_in2_sv: false,
            include_in_global_address_list: true,
        }),
    }
}

/// A page of users.list.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UsersOut<'a> {
    kind: &'a str,
    etag: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    users: Vec<UserOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}

/// One term of a users.list `query`
/// (<https://developers.google.com/admin-sdk/directory/v1/guides/search-users>).
struct Term {
    field: String,
    exact: bool,
    value: String,
}

fn split_query(q: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for c in q.chars() {
        match (quote, c) {
            (Some(qc), c) if c == qc => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => quote = Some(c),
            (None, c) if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn parse_query(q: &str, known: &[&str]) -> Result<Vec<Term>, Response> {
    let invalid = || errors::bad_parameter(&format!("Invalid Input: {q}"), "query");
    let mut terms = Vec::new();
    for raw in split_query(q) {
        let pos = raw.find([':', '=']).ok_or_else(invalid)?;
        let field = &raw[..pos];
        if !known.iter().any(|k| k.eq_ignore_ascii_case(field)) {
            return Err(invalid());
        }
        terms.push(Term {
            field: field.to_ascii_lowercase(),
            exact: raw[pos..].starts_with('='),
            value: raw[pos + 1..].to_ascii_lowercase(),
        });
    }
    Ok(terms)
}

fn text_matches(term: &Term, text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    match term.value.strip_suffix('*') {
        Some(prefix) => text.starts_with(prefix),
        None if term.exact => text == term.value,
        None => text == term.value || text.split_whitespace().any(|w| w == term.value),
    }
}

fn user_matches(u: &crate::FakeUser, terms: &[Term]) -> bool {
    terms.iter().all(|t| match t.field.as_str() {
        "email" => {
            text_matches(t, &u.primary_email) || u.aliases.iter().any(|a| text_matches(t, a))
        }
        "givenname" => text_matches(t, &u.given_name),
        "familyname" => text_matches(t, &u.family_name),
        "name" => text_matches(t, &u.full_name),
        "issuspended" => t.value == u.suspended.to_string(),
        "isarchived" => t.value == u.archived.to_string(),
        "orgunitpath" => u.org_unit_path.eq_ignore_ascii_case(&t.value),
        _ => false,
    })
}

const USER_QUERY_FIELDS: &[&str] = &[
    "email",
    "givenName",
    "familyName",
    "name",
    "isSuspended",
    "isArchived",
    "orgUnitPath",
];

/// GET users — <https://developers.google.com/admin-sdk/directory/reference/rest/v1/users/list>.
pub(crate) async fn users_list(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    shared.count(|c| c.users += 1);
    unify(users_list_inner(&shared, &headers, query.as_deref()))
}

fn check_scope_params(shared: &Shared, call: &Call) -> Result<Option<String>, Response> {
    let domain = call.get("domain").map(str::to_ascii_lowercase);
    match (call.get("customer"), &domain) {
        (None, None) => return Err(errors::bad_request("Bad Request")),
        (Some(c), _) if !shared.is_my_customer(c) => return Err(errors::not_authorized()),
        _ => {}
    }
    if let Some(d) = &domain {
        if !owns_domain(shared, &shared.state.lock(), d) {
            return Err(errors::not_authorized());
        }
    }
    Ok(domain)
}

fn users_list_inner(shared: &Shared, headers: &HeaderMap, query: Option<&str>) -> Answer {
    let call = prepare(shared, headers, query, "users", "list")?;
    let domain = check_scope_params(shared, &call)?;
    if call.get("projection") == Some("custom") && call.get("customFieldMask").is_none() {
        return Err(errors::bad_parameter(
            "Invalid Input: customFieldMask is required when projection is custom",
            "customFieldMask",
        ));
    }
    let max = max_results(shared, "users", &call);
    let token = call
        .get("pageToken")
        .map(|t| decode_token(t, 'u'))
        .transpose()?;
    let page_no = token.as_ref().map(|t| t.page).unwrap_or(1);
    listing_fault(shared, page_no)?;
    let terms = match call.get("query") {
        Some(q) => parse_query(q, USER_QUERY_FIELDS)?,
        None => Vec::new(),
    };
    let public_view = call.get("viewType") == Some("domain_public");
    let st = shared.state.lock();
    let source = if call.get("showDeleted") == Some("true") {
        &st.deleted_users
    } else {
        &st.users
    };
    let keep = |s: &StoredUser| {
        domain
            .as_deref()
            .is_none_or(|d| domain_of(&s.user.primary_email).eq_ignore_ascii_case(d))
            && user_matches(&s.user, &terms)
    };
    let (page, next) = match call.get("orderBy") {
        Some(order) => {
            let offset = match token.as_ref().map(|t| &t.position) {
                None => 0,
                Some(Position::Offset(n)) => *n,
                Some(Position::After(_)) => {
                    return Err(errors::bad_parameter("Invalid pageToken", "pageToken"))
                }
            };
            let mut all: Vec<&StoredUser> = source.values().filter(|s| keep(s)).collect();
            let sort_key = |s: &StoredUser| -> String {
                match order {
                    "givenName" => s.user.given_name.to_ascii_lowercase(),
                    "familyName" => s.user.family_name.to_ascii_lowercase(),
                    _ => s.user.primary_email.to_ascii_lowercase(),
                }
            };
            all.sort_by(|a, b| {
                sort_key(a)
                    .cmp(&sort_key(b))
                    .then(a.user.id.cmp(&b.user.id))
            });
            if call.get("sortOrder") == Some("DESCENDING") {
                all.reverse();
            }
            let (page, next) = offset_page(all, offset, max);
            (page, next.map(Position::Offset))
        }
        None => {
            let after = match token.as_ref().map(|t| &t.position) {
                None => None,
                Some(Position::After(k)) => Some(k.as_str()),
                Some(Position::Offset(_)) => {
                    return Err(errors::bad_parameter("Invalid pageToken", "pageToken"))
                }
            };
            let (page, next) = key_page(source, after, max, keep);
            (page, next.map(Position::After))
        }
    };
    let users: Vec<UserOut<'_>> = page
        .iter()
        .map(|s| user_out(shared, s, public_view))
        .collect();
    let etags: Vec<&str> = page.iter().map(|s| s.etag.as_str()).collect();
    let out = UsersOut {
        kind: &shared.kinds.users,
        etag: directory_etag(&etags),
        users,
        next_page_token: next.map(|pos| encode_token('u', page_no + 1, &pos)),
    };
    // Serialised under the lock: the page borrows the stored users.
    Ok(call.respond_with(&out))
}

/// GET users/{userKey} — <https://developers.google.com/admin-sdk/directory/reference/rest/v1/users/get>.
pub(crate) async fn users_get(
    State(shared): State<Arc<Shared>>,
    Path(user_key): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    shared.count(|c| c.users += 1);
    unify((|| {
        let call = prepare(&shared, &headers, query.as_deref(), "users", "get")?;
        let public_view = call.get("viewType") == Some("domain_public");
        let st = shared.state.lock();
        let stored = st
            .find_user_id(&user_key)
            .and_then(|id| st.users.get(&id))
            .ok_or_else(|| errors::resource_not_found("userKey"))?;
        Ok(call.respond_with(&user_out(&shared, stored, public_view)))
    })())
}

/// A 409 `duplicate`: the address is taken (Google's answer when a user,
/// an alias or a group already has it).
fn duplicate() -> Response {
    errors::json_error(
        StatusCode::CONFLICT,
        "Entity already exists.",
        "global",
        "duplicate",
        None,
    )
}

/// Whether `email` is a user's address (primary or alias) or a group's.
fn address_taken(st: &Data, email: &str) -> bool {
    st.find_user_id(email).is_some() || st.find_group_id(email).is_some()
}

/// The request body as JSON, checked against the method's request schema.
fn json_body(
    shared: &Shared,
    resource: &str,
    method: &str,
    body: &[u8],
) -> Result<Value, Response> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| errors::bad_request(&format!("Invalid JSON payload received. {e}")))?;
    shared.spec.check_body(resource, method, &value)?;
    Ok(value)
}

/// POST users — <https://developers.google.com/admin-sdk/directory/reference/rest/v1/users/insert>.
/// Rejects what Google rejects: the fields the discovery document marks as
/// required for users.insert missing (primaryEmail, name.givenName,
/// name.familyName, password), an unknown field, a password that is not
/// 8 to 100 ASCII characters (when no `hashFunction` says it is hashed), a
/// name longer than 60 characters, a domain the customer does not own,
/// an address already in use (409), an org unit path not starting with
/// `/`. The password itself is not kept.
pub(crate) async fn users_insert(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: axum::body::Bytes,
) -> Response {
    shared.count(|c| c.user_writes += 1);
    unify((|| {
        let call = prepare(&shared, &headers, query.as_deref(), "users", "insert")?;
        let body = json_body(&shared, "users", "insert", &body)?;
        let text = |pointer: &str| {
            body.pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .trim()
                .to_owned()
        };
        let email = text("/primaryEmail");
        let (given, family) = (text("/name/givenName"), text("/name/familyName"));
        let password = text("/password");
        if !email.contains('@') || domain_of(&email).is_empty() {
            return Err(errors::bad_request("Invalid Input: primary_user_email"));
        }
        for (what, name) in [("Given", &given), ("Family", &family)] {
            if name.is_empty() || name.chars().count() > 60 {
                return Err(errors::bad_request(&format!("Invalid {what} Name")));
            }
        }
        let hashed = body.get("hashFunction").is_some();
        if !hashed && (!password.is_ascii() || !(8..=100).contains(&password.len())) {
            return Err(errors::bad_request("Invalid Password"));
        }
        let org_unit_path = match text("/orgUnitPath") {
            p if p.is_empty() => "/".to_owned(),
            p if p.starts_with('/') => p,
            _ => return Err(errors::bad_request("Invalid Input: INVALID_OU_ID")),
        };
        let mut st = shared.state.lock();
        if !owns_domain(&shared, &st, domain_of(&email)) {
            return Err(errors::json_error(
                StatusCode::BAD_REQUEST,
                "Domain not found.",
                "global",
                "notFound",
                None,
            ));
        }
        if address_taken(&st, &email) {
            return Err(duplicate());
        }
        st.add_user(crate::FakeUser {
            primary_email: email.clone(),
            given_name: given,
            family_name: family,
            change_password_at_next_login: body
                .get("changePasswordAtNextLogin")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            org_unit_path,
            title: text("/organizations/0/title"),
            department: text("/organizations/0/department"),
            ..crate::FakeUser::default()
        });
        let stored = st
            .find_user_id(&email)
            .and_then(|id| st.users.get(&id))
            .ok_or_else(|| errors::resource_not_found("userKey"))?;
        Ok(call.respond_with(&user_out(&shared, stored, false)))
    })())
}

/// PATCH users/{userKey} — <https://developers.google.com/admin-sdk/directory/reference/rest/v1/users/patch>.
/// See [`change_user`]; as the reference says, patch cannot clear a field
/// of repeated objects: an empty `externalIds` leaves them as they are.
pub(crate) async fn users_patch(
    State(shared): State<Arc<Shared>>,
    Path(user_key): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: axum::body::Bytes,
) -> Response {
    shared.count(|c| c.user_writes += 1);
    unify(change_user(
        &shared,
        &user_key,
        &headers,
        query.as_deref(),
        &body,
        "patch",
    ))
}

/// PUT users/{userKey} — <https://developers.google.com/admin-sdk/directory/reference/rest/v1/users/update>.
/// See [`change_user`]; update has patch semantics too (fields left out
/// are kept), and an empty `externalIds` clears them.
pub(crate) async fn users_update(
    State(shared): State<Arc<Shared>>,
    Path(user_key): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: axum::body::Bytes,
) -> Response {
    shared.count(|c| c.user_writes += 1);
    unify(change_user(
        &shared,
        &user_key,
        &headers,
        query.as_deref(),
        &body,
        "update",
    ))
}

/// users.patch and users.update. The body is checked against the User
/// schema (an unknown field or a wrong type is a 400, as at Google); of
/// the fields, this fake applies `primaryEmail`, `suspended`,
/// `changePasswordAtNextLogin` and `externalIds` (the whole list, each
/// `{type, customType, value}`) and answers 400 naming any other it does
/// not implement, rather than pretend to apply it.
///
/// A new `primaryEmail` renames the user as Google does (the Directory
/// API guide, "Update a user": the old primary address stays the user's
/// alias): it must be in the primary domain or a secondary domain of the
/// customer (a domain alias is no user's primary domain: 400 otherwise)
/// and free (409 `duplicate` when another user or a group holds it); the
/// addresses at the domain aliases follow the new name.
fn change_user(
    shared: &Shared,
    user_key: &str,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
    method: &str,
) -> Answer {
    let call = prepare(shared, headers, query, "users", method)?;
    let body = json_body(shared, "users", method, body)?;
    if let Some(name) = body.as_object().and_then(|o| {
        o.keys().find(|k| {
            ![
                "primaryEmail",
                "suspended",
                "changePasswordAtNextLogin",
                "externalIds",
            ]
            .contains(&k.as_str())
        })
    }) {
        return Err(errors::bad_request(&format!(
            "this fake does not implement changing {name}"
        )));
    }
    let external_ids = match body.get("externalIds") {
        None => None,
        Some(Value::Array(ids)) if ids.is_empty() && method == "patch" => None,
        Some(Value::Array(ids)) => {
            let mut out = Vec::new();
            for id in ids {
                let text = |k: &str| id.get(k).and_then(Value::as_str).unwrap_or_default();
                let kind = match text("type") {
                    "custom" if text("customType").is_empty() => {
                        return Err(errors::bad_request("Invalid Input: customType"))
                    }
                    "custom" => text("customType"),
                    "" => return Err(errors::bad_request("Invalid Input: externalIds type")),
                    other => other,
                };
                out.push((kind.to_owned(), text("value").to_owned()));
            }
            Some(out)
        }
        Some(_) => return Err(errors::bad_request("Invalid Input: externalIds")),
    };
    let mut st = shared.state.lock();
    let id = st
        .find_user_id(user_key)
        .ok_or_else(|| errors::resource_not_found("userKey"))?;
    let primary = st
        .users
        .get(&id)
        .map(|u| u.user.primary_email.clone())
        .unwrap_or_default();
    let renamed = match body.get("primaryEmail") {
        None => None,
        Some(Value::String(email)) if email.trim().eq_ignore_ascii_case(&primary) => None,
        Some(Value::String(email)) => {
            let email = email.trim().to_owned();
            let domain = domain_of(&email).to_ascii_lowercase();
            if !email.contains('@') || domain.is_empty() {
                return Err(errors::bad_request("Invalid Input: primary_user_email"));
            }
            let is_domain =
                domain == shared.domain || st.secondary_domains.iter().any(|(d, _)| *d == domain);
            if !is_domain {
                return Err(errors::json_error(
                    StatusCode::BAD_REQUEST,
                    "Domain not found.",
                    "global",
                    "notFound",
                    None,
                ));
            }
            if address_taken(&st, &email) {
                return Err(duplicate());
            }
            Some(email)
        }
        Some(_) => return Err(errors::bad_request("Invalid Input: primary_user_email")),
    };
    st.update_user(&primary, |u| {
        if let Some(email) = &renamed {
            let old_local = local_of(&u.primary_email).to_ascii_lowercase();
            let new_local = local_of(email).to_owned();
            for alias in &mut u.non_editable_aliases {
                if local_of(alias).eq_ignore_ascii_case(&old_local) {
                    *alias = format!("{new_local}@{}", domain_of(alias));
                }
            }
            let old = std::mem::replace(&mut u.primary_email, email.clone());
            u.aliases.push(old);
        }
        if let Some(ids) = external_ids.clone() {
            u.external_ids = ids;
        }
        if let Some(suspended) = body.get("suspended").and_then(Value::as_bool) {
            u.suspended = suspended;
        }
        if let Some(change) = body
            .get("changePasswordAtNextLogin")
            .and_then(Value::as_bool)
        {
            u.change_password_at_next_login = change;
        }
    });
    let stored = st
        .users
        .get(&id)
        .ok_or_else(|| errors::resource_not_found("userKey"))?;
    Ok(call.respond_with(&user_out(shared, stored, false)))
}

/// DELETE users/{userKey} — <https://developers.google.com/admin-sdk/directory/reference/rest/v1/users/delete>.
/// 204 and no body; the user leaves every listing and its addresses are
/// free at once (Google keeps it restorable for 20 days, users.undelete,
/// which this fake does not serve); 404 for an unknown user.
pub(crate) async fn users_delete(
    State(shared): State<Arc<Shared>>,
    Path(user_key): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    shared.count(|c| c.user_writes += 1);
    unify((|| {
        prepare(&shared, &headers, query.as_deref(), "users", "delete")?;
        let mut st = shared.state.lock();
        let id = st
            .find_user_id(&user_key)
            .ok_or_else(|| errors::resource_not_found("userKey"))?;
        st.remove_user(&id);
        Ok(StatusCode::NO_CONTENT.into_response())
    })())
}

/// DELETE users/{userKey}/aliases/{alias} — <https://developers.google.com/admin-sdk/directory/reference/rest/v1/users.aliases/delete>.
/// 204 and no body; 404 for an unknown user, and for an address that is
/// not one of the user's editable aliases (its primary address, an
/// address at a domain alias, another user's).
pub(crate) async fn aliases_delete(
    State(shared): State<Arc<Shared>>,
    Path((user_key, alias)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    shared.count(|c| c.user_writes += 1);
    unify((|| {
        prepare(
            &shared,
            &headers,
            query.as_deref(),
            "users.aliases",
            "delete",
        )?;
        let mut st = shared.state.lock();
        let id = st
            .find_user_id(&user_key)
            .ok_or_else(|| errors::resource_not_found("userKey"))?;
        let (primary, held) = st
            .users
            .get(&id)
            .map(|u| {
                (
                    u.user.primary_email.clone(),
                    u.user
                        .aliases
                        .iter()
                        .any(|a| a.eq_ignore_ascii_case(alias.trim())),
                )
            })
            .unwrap_or_default();
        if !held {
            return Err(errors::resource_not_found("alias"));
        }
        st.update_user(&primary, |u| {
            u.aliases.retain(|a| !a.eq_ignore_ascii_case(alias.trim()));
        });
        Ok(StatusCode::NO_CONTENT.into_response())
    })())
}

/// POST users/{userKey}/aliases — <https://developers.google.com/admin-sdk/directory/reference/rest/v1/users.aliases/insert>.
/// 404 for an unknown user, 400 for a domain the customer does not own,
/// 409 for an address in use.
pub(crate) async fn aliases_insert(
    State(shared): State<Arc<Shared>>,
    Path(user_key): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: axum::body::Bytes,
) -> Response {
    shared.count(|c| c.user_writes += 1);
    unify((|| {
        let call = prepare(
            &shared,
            &headers,
            query.as_deref(),
            "users.aliases",
            "insert",
        )?;
        let body = json_body(&shared, "users.aliases", "insert", &body)?;
        let alias = body
            .get("alias")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim()
            .to_owned();
        if !alias.contains('@') {
            return Err(errors::bad_request("Invalid Input: alias_email"));
        }
        let mut st = shared.state.lock();
        let id = st
            .find_user_id(&user_key)
            .ok_or_else(|| errors::resource_not_found("userKey"))?;
        if !owns_domain(&shared, &st, domain_of(&alias)) {
            return Err(errors::json_error(
                StatusCode::BAD_REQUEST,
                "Domain not found.",
                "global",
                "notFound",
                None,
            ));
        }
        if address_taken(&st, &alias) {
            return Err(duplicate());
        }
        let primary = st
            .users
            .get(&id)
            .map(|u| u.user.primary_email.clone())
            .unwrap_or_default();
        st.update_user(&primary, |u| u.aliases.push(alias.clone()));
        Ok(call.respond(json!({
            "kind": "admin#directory#alias",
            "id": id,
            "primaryEmail": primary,
            "alias": alias,
        })))
    })())
}

// ----- groups -----

fn group_json(shared: &Shared, st: &Data, stored: &StoredGroup) -> Value {
    let g = &stored.group;
    let count = st.members.get(&g.id).map(Vec::len).unwrap_or(0);
    let mut obj = Map::new();
    obj.insert("kind".into(), Value::from(shared.spec.kind("Group")));
    obj.insert("id".into(), Value::from(g.id.as_str()));
    obj.insert("etag".into(), Value::from(stored.etag.as_str()));
    obj.insert("email".into(), Value::from(g.email.as_str()));
    obj.insert("name".into(), Value::from(g.name.as_str()));
    obj.insert("directMembersCount".into(), Value::from(count.to_string()));
    obj.insert("description".into(), Value::from(""));
    obj.insert("adminCreated".into(), Value::Bool(true));
    if !g.aliases.is_empty() {
        obj.insert("aliases".into(), json!(g.aliases));
    }
    Value::Object(obj)
}

const GROUP_QUERY_FIELDS: &[&str] = &["email", "name", "memberKey"];

/// GET groups — <https://developers.google.com/admin-sdk/directory/reference/rest/v1/groups/list>.
pub(crate) async fn groups_list(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    shared.count(|c| c.groups += 1);
    unify(groups_list_inner(&shared, &headers, query.as_deref()))
}

fn is_member_of(st: &Data, group_id: &str, email: &str) -> bool {
    st.members.get(group_id).is_some_and(|list| {
        list.iter()
            .any(|m| m.kind != MemberType::Customer && m.email.eq_ignore_ascii_case(email))
    })
}

fn groups_list_inner(shared: &Shared, headers: &HeaderMap, query: Option<&str>) -> Answer {
    let call = prepare(shared, headers, query, "groups", "list")?;
    let user_key = call.get("userKey").map(str::to_owned);
    let domain =
        if user_key.is_some() && call.get("customer").is_none() && call.get("domain").is_none() {
            None
        } else {
            check_scope_params(shared, &call)?
        };
    let max = max_results(shared, "groups", &call);
    let token = call
        .get("pageToken")
        .map(|t| decode_token(t, 'g'))
        .transpose()?;
    let page_no = token.as_ref().map(|t| t.page).unwrap_or(1);
    listing_fault(shared, page_no)?;
    let terms = match call.get("query") {
        Some(q) => parse_query(q, GROUP_QUERY_FIELDS)?,
        None => Vec::new(),
    };
    let st = shared.state.lock();
    // The member's primary address, if the key names a user or group.
    let resolve = |k: &str| -> String {
        st.find_user_id(k)
            .and_then(|id| st.users.get(&id))
            .map(|u| u.user.primary_email.clone())
            .or_else(|| {
                st.find_group_id(k)
                    .and_then(|id| st.groups.get(&id))
                    .map(|g| g.group.email.clone())
            })
            .unwrap_or_else(|| k.to_owned())
    };
    let member_email = user_key.as_deref().map(resolve);
    let term_emails: Vec<(usize, String)> = terms
        .iter()
        .enumerate()
        .filter(|(_, t)| t.field == "memberkey")
        .map(|(i, t)| (i, resolve(&t.value)))
        .collect();
    let keep = |s: &StoredGroup| {
        let g = &s.group;
        domain
            .as_deref()
            .is_none_or(|d| domain_of(&g.email).eq_ignore_ascii_case(d))
            && member_email
                .as_deref()
                .is_none_or(|m| is_member_of(&st, &g.id, m))
            && terms
                .iter()
                .enumerate()
                .all(|(i, t)| match t.field.as_str() {
                    "email" => {
                        text_matches(t, &g.email) || g.aliases.iter().any(|a| text_matches(t, a))
                    }
                    "name" => text_matches(t, &g.name),
                    "memberkey" => term_emails
                        .iter()
                        .find(|(j, _)| *j == i)
                        .is_some_and(|(_, e)| is_member_of(&st, &g.id, e)),
                    _ => false,
                })
    };
    let (page, next) = if call.get("orderBy").is_some() {
        let offset = match token.as_ref().map(|t| &t.position) {
            None => 0,
            Some(Position::Offset(n)) => *n,
            Some(Position::After(_)) => {
                return Err(errors::bad_parameter("Invalid pageToken", "pageToken"))
            }
        };
        let mut all: Vec<&StoredGroup> = st.groups.values().filter(|g| keep(g)).collect();
        all.sort_by(|a, b| {
            a.group
                .email
                .to_ascii_lowercase()
                .cmp(&b.group.email.to_ascii_lowercase())
        });
        if call.get("sortOrder") == Some("DESCENDING") {
            all.reverse();
        }
        let (page, next) = offset_page(all, offset, max);
        (page, next.map(Position::Offset))
    } else {
        let after = match token.as_ref().map(|t| &t.position) {
            None => None,
            Some(Position::After(k)) => Some(k.as_str()),
            Some(Position::Offset(_)) => {
                return Err(errors::bad_parameter("Invalid pageToken", "pageToken"))
            }
        };
        let (page, next) = key_page(&st.groups, after, max, keep);
        (page, next.map(Position::After))
    };
    let groups: Vec<Value> = page.iter().map(|g| group_json(shared, &st, g)).collect();
    let etags: Vec<&str> = page.iter().map(|g| g.etag.as_str()).collect();
    let etag = directory_etag(&etags);
    drop(st);
    let mut obj = Map::new();
    obj.insert("kind".into(), Value::from(shared.spec.kind("Groups")));
    obj.insert("etag".into(), Value::from(etag));
    if !groups.is_empty() {
        obj.insert("groups".into(), Value::Array(groups));
    }
    if let Some(pos) = next {
        obj.insert(
            "nextPageToken".into(),
            Value::from(encode_token('g', page_no + 1, &pos)),
        );
    }
    Ok(call.respond(Value::Object(obj)))
}

/// GET groups/{groupKey} — <https://developers.google.com/admin-sdk/directory/reference/rest/v1/groups/get>.
pub(crate) async fn groups_get(
    State(shared): State<Arc<Shared>>,
    Path(group_key): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    shared.count(|c| c.groups += 1);
    unify((|| {
        let call = prepare(&shared, &headers, query.as_deref(), "groups", "get")?;
        let st = shared.state.lock();
        let stored = st
            .find_group_id(&group_key)
            .and_then(|id| st.groups.get(&id))
            .ok_or_else(|| errors::resource_not_found("groupKey"))?;
        let value = group_json(&shared, &st, stored);
        drop(st);
        Ok(call.respond(value))
    })())
}

// ----- members -----

fn member_json(shared: &Shared, st: &Data, m: &MemberRec) -> Value {
    let mut obj = Map::new();
    obj.insert("kind".into(), Value::from(shared.spec.kind("Member")));
    let id = match m.kind {
        MemberType::User => st.find_user_id(&m.email),
        MemberType::Group => st.find_group_id(&m.email),
        MemberType::Customer => None,
    }
    .unwrap_or_else(|| m.id.clone());
    obj.insert(
        "etag".into(),
        Value::from(directory_etag(&(&id, &m.email, &m.role))),
    );
    obj.insert("id".into(), Value::from(id));
    if m.kind != MemberType::Customer {
        let email = match m.kind {
            MemberType::User => st
                .find_user_id(&m.email)
                .and_then(|id| st.users.get(&id))
                .map(|u| u.user.primary_email.clone()),
            _ => None,
        }
        .unwrap_or_else(|| m.email.clone());
        obj.insert("email".into(), Value::from(email));
    }
    obj.insert("role".into(), Value::from(m.role.as_str()));
    obj.insert("type".into(), Value::from(m.kind.as_api()));
    if m.kind == MemberType::User {
        let suspended = st
            .find_user_id(&m.email)
            .and_then(|id| st.users.get(&id))
            .is_some_and(|u| u.user.suspended);
        let status = if suspended { "SUSPENDED" } else { "ACTIVE" };
        obj.insert("status".into(), Value::from(status));
    }
    Value::Object(obj)
}

/// Direct members, or direct and indirect ones (nested groups expanded,
/// each address once, cycles cut).
fn members_of(st: &Data, group_id: &str, derived: bool) -> Vec<MemberRec> {
    let direct = st.members.get(group_id).cloned().unwrap_or_default();
    if !derived {
        return direct;
    }
    let mut out = Vec::new();
    let mut seen: HashSet<(MemberType, String)> = HashSet::new();
    let mut visited: HashSet<String> = HashSet::from([group_id.to_owned()]);
    let mut queue: VecDeque<MemberRec> = direct.into();
    while let Some(m) = queue.pop_front() {
        if !seen.insert((m.kind, m.email.to_ascii_lowercase())) {
            continue;
        }
        if m.kind == MemberType::Group {
            if let Some(gid) = st.find_group_id(&m.email) {
                if visited.insert(gid.clone()) {
                    queue.extend(st.members.get(&gid).cloned().unwrap_or_default());
                }
            }
        }
        out.push(m);
    }
    out
}

/// GET groups/{groupKey}/members — <https://developers.google.com/admin-sdk/directory/reference/rest/v1/members/list>.
pub(crate) async fn members_list(
    State(shared): State<Arc<Shared>>,
    Path(group_key): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    shared.count(|c| c.members += 1);
    unify(members_list_inner(
        &shared,
        &group_key,
        &headers,
        query.as_deref(),
    ))
}

fn members_list_inner(
    shared: &Shared,
    group_key: &str,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Answer {
    let call = prepare(shared, headers, query, "members", "list")?;
    let roles: Option<Vec<String>> = match call.get("roles") {
        Some(r) => {
            let list: Vec<String> = r
                .split(',')
                .map(|s| s.trim().to_ascii_uppercase())
                .collect();
            if list
                .iter()
                .any(|r| !["OWNER", "MANAGER", "MEMBER"].contains(&r.as_str()))
            {
                return Err(errors::bad_parameter(
                    &format!("Invalid Input: roles={r}"),
                    "roles",
                ));
            }
            Some(list)
        }
        None => None,
    };
    let max = max_results(shared, "members", &call);
    let token = call
        .get("pageToken")
        .map(|t| decode_token(t, 'm'))
        .transpose()?;
    let page_no = token.as_ref().map(|t| t.page).unwrap_or(1);
    let offset = match token.as_ref().map(|t| &t.position) {
        None => 0,
        Some(Position::Offset(n)) => *n,
        Some(Position::After(_)) => {
            return Err(errors::bad_parameter("Invalid pageToken", "pageToken"))
        }
    };
    let st = shared.state.lock();
    let Some(gid) = st.find_group_id(group_key) else {
        return Err(errors::resource_not_found("groupKey"));
    };
    drop(st);
    listing_fault(shared, page_no)?;
    let st = shared.state.lock();
    let derived = call.get("includeDerivedMembership") == Some("true");
    let mut all = members_of(&st, &gid, derived);
    if let Some(roles) = &roles {
        all.retain(|m| roles.contains(&m.role));
    }
    let (page, next) = offset_page(all, offset, max);
    let members: Vec<Value> = page.iter().map(|m| member_json(shared, &st, m)).collect();
    drop(st);
    let mut obj = Map::new();
    obj.insert("kind".into(), Value::from(shared.spec.kind("Members")));
    obj.insert(
        "etag".into(),
        Value::from(directory_etag(
            &serde_json::to_string(&members).unwrap_or_default(),
        )),
    );
    if !members.is_empty() {
        obj.insert("members".into(), Value::Array(members));
    }
    if let Some(n) = next {
        obj.insert(
            "nextPageToken".into(),
            Value::from(encode_token('m', page_no + 1, &Position::Offset(n))),
        );
    }
    Ok(call.respond(Value::Object(obj)))
}

/// GET groups/{groupKey}/members/{memberKey} — <https://developers.google.com/admin-sdk/directory/reference/rest/v1/members/get>.
pub(crate) async fn members_get(
    State(shared): State<Arc<Shared>>,
    Path((group_key, member_key)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    shared.count(|c| c.members += 1);
    unify((|| {
        let call = prepare(&shared, &headers, query.as_deref(), "members", "get")?;
        let st = shared.state.lock();
        let gid = st
            .find_group_id(&group_key)
            .ok_or_else(|| errors::resource_not_found("groupKey"))?;
        let direct = st.members.get(&gid).cloned().unwrap_or_default();
        let found = direct.iter().find(|m| {
            m.email.eq_ignore_ascii_case(&member_key)
                || m.id == member_key
                || st.find_user_id(&member_key).is_some_and(|id| {
                    st.users
                        .get(&id)
                        .is_some_and(|u| u.user.primary_email.eq_ignore_ascii_case(&m.email))
                })
        });
        let m = found.ok_or_else(|| errors::resource_not_found("memberKey"))?;
        let value = member_json(&shared, &st, m);
        drop(st);
        Ok(call.respond(value))
    })())
}

// ----- domains -----

fn alias_json(shared: &Shared, alias: &str, parent: &str, created: u64) -> Value {
    json!({
        "kind": shared.spec.kind("DomainAlias"),
        "domainAliasName": alias,
        "parentDomainName": parent,
        "verified": true,
        "creationTime": created.to_string(),
        "etag": directory_etag(&(alias, parent)),
    })
}

fn domain_json(shared: &Shared, st: &Data, domain: &str, primary: bool, created: u64) -> Value {
    let aliases: Vec<Value> = st
        .domain_aliases
        .iter()
        .filter(|(_, p, _)| p == domain)
        .map(|(a, p, c)| alias_json(shared, a, p, *c))
        .collect();
    let mut obj = Map::new();
    obj.insert("kind".into(), Value::from(shared.spec.kind("Domains")));
    obj.insert("domainName".into(), Value::from(domain));
    obj.insert("isPrimary".into(), Value::Bool(primary));
    obj.insert("verified".into(), Value::Bool(true));
    obj.insert("creationTime".into(), Value::from(created.to_string()));
    obj.insert(
        "etag".into(),
        Value::from(directory_etag(&(domain, aliases.len()))),
    );
    if !aliases.is_empty() {
        obj.insert("domainAliases".into(), Value::Array(aliases));
    }
    Value::Object(obj)
}

fn all_domains(shared: &Shared, st: &Data) -> Vec<Value> {
    let mut out = vec![domain_json(shared, st, &shared.domain, true, st.created_ms)];
    for (d, c) in &st.secondary_domains {
        out.push(domain_json(shared, st, d, false, *c));
    }
    out
}

/// GET customer/{customer}/domains — <https://developers.google.com/admin-sdk/directory/reference/rest/v1/domains/list>.
pub(crate) async fn domains_list(
    State(shared): State<Arc<Shared>>,
    Path(customer): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    shared.count(|c| c.domains += 1);
    unify((|| {
        let call = prepare(&shared, &headers, query.as_deref(), "domains", "list")?;
        if !shared.is_my_customer(&customer) {
            return Err(errors::not_authorized());
        }
        let st = shared.state.lock();
        let domains = all_domains(&shared, &st);
        drop(st);
        let etag = directory_etag(&serde_json::to_string(&domains).unwrap_or_default());
        Ok(call.respond(json!({
            "kind": shared.spec.kind("Domains2"),
            "etag": etag,
            "domains": domains,
        })))
    })())
}

/// GET customer/{customer}/domains/{domainName} — <https://developers.google.com/admin-sdk/directory/reference/rest/v1/domains/get>.
pub(crate) async fn domains_get(
    State(shared): State<Arc<Shared>>,
    Path((customer, name)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    shared.count(|c| c.domains += 1);
    unify((|| {
        let call = prepare(&shared, &headers, query.as_deref(), "domains", "get")?;
        if !shared.is_my_customer(&customer) {
            return Err(errors::not_authorized());
        }
        let st = shared.state.lock();
        let found = all_domains(&shared, &st).into_iter().find(|d| {
            d.get("domainName")
                .and_then(Value::as_str)
                .is_some_and(|n| n.eq_ignore_ascii_case(&name))
        });
        drop(st);
        let value = found.ok_or_else(|| errors::resource_not_found("domainName"))?;
        Ok(call.respond(value))
    })())
}

/// GET customer/{customer}/domainaliases — <https://developers.google.com/admin-sdk/directory/reference/rest/v1/domainAliases/list>.
pub(crate) async fn domain_aliases_list(
    State(shared): State<Arc<Shared>>,
    Path(customer): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    shared.count(|c| c.domain_aliases += 1);
    unify((|| {
        let call = prepare(&shared, &headers, query.as_deref(), "domainAliases", "list")?;
        if !shared.is_my_customer(&customer) {
            return Err(errors::not_authorized());
        }
        let parent = call.get("parentDomainName").map(str::to_ascii_lowercase);
        let st = shared.state.lock();
        let aliases: Vec<Value> = st
            .domain_aliases
            .iter()
            .filter(|(_, p, _)| parent.as_deref().is_none_or(|want| want == p))
            .map(|(a, p, c)| alias_json(&shared, a, p, *c))
            .collect();
        drop(st);
        let mut obj = Map::new();
        obj.insert(
            "kind".into(),
            Value::from(shared.spec.kind("DomainAliases")),
        );
        obj.insert(
            "etag".into(),
            Value::from(directory_etag(
                &serde_json::to_string(&aliases).unwrap_or_default(),
            )),
        );
        if !aliases.is_empty() {
            obj.insert("domainAliases".into(), Value::Array(aliases));
        }
        Ok(call.respond(Value::Object(obj)))
    })())
}

/// GET customer/{customer}/domainaliases/{domainAliasName} — <https://developers.google.com/admin-sdk/directory/reference/rest/v1/domainAliases/get>.
pub(crate) async fn domain_aliases_get(
    State(shared): State<Arc<Shared>>,
    Path((customer, name)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    shared.count(|c| c.domain_aliases += 1);
    unify((|| {
        let call = prepare(&shared, &headers, query.as_deref(), "domainAliases", "get")?;
        if !shared.is_my_customer(&customer) {
            return Err(errors::not_authorized());
        }
        let st = shared.state.lock();
        let found = st
            .domain_aliases
            .iter()
            .find(|(a, _, _)| a.eq_ignore_ascii_case(&name))
            .map(|(a, p, c)| alias_json(&shared, a, p, *c));
        drop(st);
        let value = found.ok_or_else(|| errors::resource_not_found("domainAliasName"))?;
        Ok(call.respond(value))
    })())
}
