//! The Domain Shared Contacts API (Atom / GData 3.0).
//!
//! - Feed, query parameters, paging: <https://developers.google.com/workspace/admin/domain-shared-contacts/get-shared-contacts>
//!   and <https://developers.google.com/workspace/admin/domain-shared-contacts/contacts-feed>.
//! - Create: <https://developers.google.com/workspace/admin/domain-shared-contacts/create-shared-contacts>.
//! - Update / delete with optimistic concurrency (`If-Match`, the entry's
//!   `gd:etag`, the versioned edit link): <https://developers.google.com/workspace/admin/domain-shared-contacts/update-shared-contacts>
//!   and <https://developers.google.com/workspace/admin/domain-shared-contacts/delete-shared-contacts>.
//! - Batch (at most 100 operations): <https://developers.google.com/workspace/admin/domain-shared-contacts/perform-batch-operations>.
//! - Limits (200,000 contacts a domain, 2 KB a contact): <https://developers.google.com/workspace/admin/domain-shared-contacts#limits>.
//! - `GData-Version: 3.0` on every request (or `v=3.0` in the query).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::atom::{self, BatchStatus, EntryInput, FeedHead, Urls, NS_ATOM, NS_BATCH};
use crate::auth::{self, Flavor};
use crate::directory::{query_pairs, take_fault};
use crate::errors;
use crate::state::{Shared, State as Data};
use crate::CONTACTS_SCOPE;

/// Largest contact accepted, in bytes of its data elements.
const MAX_CONTACT_BYTES: usize = 2048;
/// Most operations in one batch request.
const MAX_BATCH: usize = 100;
/// `max-results` when the request names none.
const DEFAULT_MAX_RESULTS: usize = 25;

const FEED_PARAMS: &[&str] = &[
    "alt",
    "q",
    "max-results",
    "start-index",
    "updated-min",
    "orderby",
    "showdeleted",
    "requirealldeleted",
    "sortorder",
    "v",
    "access_token",
    "oauth_token",
    "xoauth_requestor_id",
];
const ENTRY_PARAMS: &[&str] = &[
    "alt",
    "v",
    "access_token",
    "oauth_token",
    "xoauth_requestor_id",
];

type Answer = Result<Response, Response>;

fn unify(answer: Answer) -> Response {
    match answer {
        Ok(r) | Err(r) => r,
    }
}

fn bad(reason: &str) -> Response {
    errors::gdata_rejected(StatusCode::BAD_REQUEST, "invalid", reason)
}

/// Authorisation, version, fault injection, domain, projection, parameters.
fn prepare(
    shared: &Shared,
    headers: &HeaderMap,
    raw_query: Option<&str>,
    domain: &str,
    projection: &str,
    allowed: &[&str],
) -> Result<(Urls, Vec<(String, String)>), Response> {
    let pairs = query_pairs(raw_query);
    auth::authorize(
        shared,
        headers,
        &pairs,
        &[CONTACTS_SCOPE.to_owned()],
        Flavor::GData,
    )?;
    let version = headers
        .get("GData-Version")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| pairs.iter().find(|(k, _)| k == "v").map(|(_, v)| v.clone()));
    match version.as_deref() {
        Some("3.0") | Some("3") => {}
        Some(other) => {
            return Err(bad(&format!(
                "Invalid GData-Version '{other}': the Domain Shared Contacts API is served at version 3.0"
            )))
        }
        None => {
            return Err(bad(
                "Missing GData-Version: send the header GData-Version: 3.0 (or v=3.0)",
            ))
        }
    }
    take_fault(shared, Flavor::GData)?;
    if !domain.eq_ignore_ascii_case(&shared.domain) {
        return Err(errors::gdata_rejected(
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!("Domain {domain} is not managed by the authorized admin"),
        ));
    }
    if projection != "full" && projection != "thin" {
        return Err(bad(&format!("Invalid projection: {projection}")));
    }
    for (k, v) in &pairs {
        if !allowed.contains(&k.as_str()) {
            return Err(bad(&format!(
                "Invalid request URI: unknown parameter '{k}'"
            )));
        }
        if k == "alt" && v != "atom" {
            return Err(bad(&format!(
                "Invalid alt '{v}': this fake serves alt=atom only"
            )));
        }
    }
    Ok((
        Urls {
            base: shared.base_url.clone(),
            domain: shared.domain.clone(),
            projection: projection.to_owned(),
        },
        pairs,
    ))
}

fn atom_response(status: StatusCode, kind: &str, body: String, etag: Option<&str>) -> Response {
    let mut response = (
        status,
        [(
            header::CONTENT_TYPE,
            format!("application/atom+xml; charset=UTF-8; type={kind}"),
        )],
        body,
    )
        .into_response();
    if let Some(etag) = etag.and_then(|e| HeaderValue::from_str(e).ok()) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

/// Parses a request body as XML of the Atom content type.
fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<atom::Element, Response> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.contains("xml") {
        return Err(errors::gdata_rejected(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupportedMediaType",
            &format!(
                "Content-Type {content_type} is not a valid input type; use application/atom+xml"
            ),
        ));
    }
    let text = std::str::from_utf8(body).map_err(|_| bad("Parse error: the body is not UTF-8"))?;
    atom::parse_document(text).map_err(|e| bad(&e))
}

/// A failed operation: HTTP status, GData code, reason.
type OpError = (StatusCode, &'static str, String);

fn not_found() -> OpError {
    (
        StatusCode::NOT_FOUND,
        "notFound",
        "Contact not found".to_owned(),
    )
}

fn check_size(input: &EntryInput) -> Result<(), OpError> {
    let size = atom::contact_size(&input.contact, &input.email_rels);
    if size > MAX_CONTACT_BYTES {
        return Err((
            StatusCode::BAD_REQUEST,
            "invalid",
            format!("Contact too large: {size} bytes; a shared contact may hold at most 2 KB"),
        ));
    }
    Ok(())
}

fn create(st: &mut Data, input: EntryInput) -> Result<String, OpError> {
    check_size(&input)?;
    if st.live_contact_count() >= st.max_contacts {
        return Err((
            StatusCode::FORBIDDEN,
            "limitExceeded",
            format!(
                "The domain already has the maximum of {} shared contacts",
                st.max_contacts
            ),
        ));
    }
    let mut contact = input.contact;
    contact.id = String::new();
    Ok(st.put_contact(contact, input.email_rels))
}

/// Optimistic concurrency: an etag (`*` matches anything) or, failing that,
/// the version of an edit link.
fn check_precondition(
    st: &Data,
    id: &str,
    etag: Option<&str>,
    version: Option<u64>,
) -> Result<(), OpError> {
    let Some(sc) = st.contacts.get(id).filter(|c| !c.deleted) else {
        return Err(not_found());
    };
    match (etag, version) {
        (Some("*"), _) => Ok(()),
        (Some(e), _) if e == sc.contact.etag => Ok(()),
        (Some(e), _) => Err((
            StatusCode::PRECONDITION_FAILED,
            "etagsMismatch",
            format!(
                "Etags mismatch: the entry's etag is {}, the request's {e}",
                sc.contact.etag
            ),
        )),
        (None, Some(v)) if v == sc.version => Ok(()),
        (None, Some(v)) => Err((
            StatusCode::CONFLICT,
            "versionConflict",
            format!(
                "Version conflict: the entry is at version {}, the request names {v}",
                sc.version
            ),
        )),
        (None, None) => Err((
            StatusCode::FORBIDDEN,
            "forbidden",
            "If-Match or If-None-Match header or entry etag attribute required".to_owned(),
        )),
    }
}

fn update(
    st: &mut Data,
    id: &str,
    etag: Option<&str>,
    version: Option<u64>,
    input: EntryInput,
) -> Result<(), OpError> {
    check_precondition(st, id, etag, version)?;
    check_size(&input)?;
    let mut contact = input.contact;
    contact.id = id.to_owned();
    st.put_contact(contact, input.email_rels);
    Ok(())
}

fn delete(
    st: &mut Data,
    id: &str,
    etag: Option<&str>,
    version: Option<u64>,
) -> Result<(), OpError> {
    check_precondition(st, id, etag, version)?;
    st.delete_contact(id);
    Ok(())
}

fn op_error_response((status, code, reason): OpError) -> Response {
    // Not-found and concurrency answers are ordinary outcomes, not refusals.
    let response = errors::gdata_error(status, "GData", code, &reason);
    if status == StatusCode::BAD_REQUEST || status == StatusCode::FORBIDDEN {
        errors::rejected(response)
    } else {
        response
    }
}

fn if_match(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().trim_start_matches("W/").to_owned())
}

// ----- feed -----

fn parse_time_ms(text: &str) -> Option<u64> {
    use time::format_description::well_known::Rfc3339;
    use time::{OffsetDateTime, PrimitiveDateTime};
    let t = OffsetDateTime::parse(text, &Rfc3339).ok().or_else(|| {
        let fmt = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
        );
        PrimitiveDateTime::parse(text, &fmt)
            .ok()
            .map(PrimitiveDateTime::assume_utc)
    })?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

fn positive(pairs: &[(String, String)], name: &str) -> Result<Option<usize>, Response> {
    match pairs.iter().find(|(k, _)| k == name) {
        None => Ok(None),
        Some((_, v)) => match v.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(Some(n)),
            _ => Err(bad(&format!("Invalid value for {name} parameter: {v}"))),
        },
    }
}

/// GET {domain}/full — the feed, paged by `start-index` (1-based) and
/// `max-results`, filtered by `updated-min`, `showdeleted`, `q`.
pub(crate) async fn feed_get(
    State(shared): State<Arc<Shared>>,
    Path((domain, projection)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    shared.count(|c| c.contacts_feed += 1);
    unify((|| {
        let (urls, pairs) = prepare(
            &shared,
            &headers,
            query.as_deref(),
            &domain,
            &projection,
            FEED_PARAMS,
        )?;
        let param = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let max = positive(&pairs, "max-results")?.unwrap_or(DEFAULT_MAX_RESULTS);
        let start = positive(&pairs, "start-index")?.unwrap_or(1);
        let updated_min = match param("updated-min") {
            Some(t) => {
                Some(parse_time_ms(t).ok_or_else(|| bad(&format!("Invalid updated-min: {t}")))?)
            }
            None => None,
        };
        let bool_param = |name: &str| -> Result<bool, Response> {
            match param(name) {
                None | Some("false") => Ok(false),
                Some("true") => Ok(true),
                Some(v) => Err(bad(&format!("Invalid value for {name} parameter: {v}"))),
            }
        };
        let show_deleted = bool_param("showdeleted")?;
        bool_param("requirealldeleted")?;
        match param("orderby") {
            None | Some("lastmodified") => {}
            Some(v) => return Err(bad(&format!("Invalid value for orderby parameter: {v}"))),
        }
        let descending = match param("sortorder") {
            None | Some("ascending") => false,
            Some("descending") => true,
            Some(v) => return Err(bad(&format!("Invalid value for sortorder parameter: {v}"))),
        };
        let q = param("q").map(str::to_lowercase);

        let st = shared.state.lock();
        let mut list: Vec<&crate::state::StoredContact> = st
            .contacts
            .values()
            .filter(|c| show_deleted || !c.deleted)
            .filter(|c| updated_min.is_none_or(|m| c.updated_ms >= m))
            .filter(|c| {
                q.as_deref().is_none_or(|q| {
                    let k = &c.contact;
                    [&k.full_name, &k.given_name, &k.family_name, &k.org_name]
                        .iter()
                        .any(|f| f.to_lowercase().contains(q))
                        || k.emails.iter().any(|(a, _)| a.to_lowercase().contains(q))
                })
            })
            .collect();
        if param("orderby").is_some() {
            list.sort_by_key(|c| c.updated_ms);
        }
        if descending {
            list.reverse();
        }
        let total = list.len();
        let entries: Vec<String> = list
            .iter()
            .skip(start - 1)
            .take(max)
            .map(|c| atom::entry_fragment(&urls, c, None))
            .collect();
        drop(st);

        let kept: Vec<(String, String)> = pairs
            .iter()
            .filter(|(k, _)| {
                !["access_token", "oauth_token", "start-index", "max-results"].contains(&k.as_str())
            })
            .cloned()
            .collect();
        let href = |start: usize| {
            let mut ser = form_urlencoded::Serializer::new(String::new());
            for (k, v) in &kept {
                ser.append_pair(k, v);
            }
            ser.append_pair("start-index", &start.to_string());
            ser.append_pair("max-results", &max.to_string());
            format!("{}?{}", urls.feed(), ser.finish())
        };
        let head = FeedHead {
            title: format!("{}'s Contacts", urls.domain),
            id: format!(
                "http://www.google.com/m8/feeds/contacts/{}/base",
                urls.domain
            ),
            self_href: href(start),
            next_href: (start - 1 + max < total).then(|| href(start + max)),
            total: Some(total),
            start_index: Some(start),
            items_per_page: Some(max),
        };
        Ok(atom_response(
            StatusCode::OK,
            "feed",
            atom::feed_document(&urls, &head, &entries),
            None,
        ))
    })())
}

/// POST {domain}/full — creates a contact.
pub(crate) async fn feed_post(
    State(shared): State<Arc<Shared>>,
    Path((domain, projection)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    shared.count(|c| c.contacts_feed += 1);
    unify((|| {
        let (urls, _) = prepare(
            &shared,
            &headers,
            query.as_deref(),
            &domain,
            &projection,
            ENTRY_PARAMS,
        )?;
        let root = parse_body(&headers, &body)?;
        let input = atom::read_entry(&root).map_err(|e| bad(&e))?;
        let mut st = shared.state.lock();
        let id = create(&mut st, input).map_err(op_error_response)?;
        let sc = st
            .contacts
            .get(&id)
            .ok_or_else(|| op_error_response(not_found()))?;
        let doc = atom::entry_document(&urls, sc);
        let etag = sc.contact.etag.clone();
        drop(st);
        Ok(atom_response(
            StatusCode::CREATED,
            "entry",
            doc,
            Some(&etag),
        ))
    })())
}

// ----- one entry -----

fn get_entry(
    shared: &Shared,
    headers: &HeaderMap,
    query: Option<&str>,
    domain: &str,
    projection: &str,
    id: &str,
) -> Answer {
    let (urls, _) = prepare(shared, headers, query, domain, projection, ENTRY_PARAMS)?;
    let st = shared.state.lock();
    let sc = st
        .contacts
        .get(id)
        .filter(|c| !c.deleted)
        .ok_or_else(|| op_error_response(not_found()))?;
    let etag = sc.contact.etag.clone();
    let none_match = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    if none_match == Some(etag.as_str()) {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let doc = atom::entry_document(&urls, sc);
    Ok(atom_response(StatusCode::OK, "entry", doc, Some(&etag)))
}

#[allow(clippy::too_many_arguments)]
fn put_entry(
    shared: &Shared,
    headers: &HeaderMap,
    query: Option<&str>,
    domain: &str,
    projection: &str,
    id: &str,
    version: Option<u64>,
    body: &[u8],
) -> Answer {
    let (urls, _) = prepare(shared, headers, query, domain, projection, ENTRY_PARAMS)?;
    let root = parse_body(headers, body)?;
    let input = atom::read_entry(&root).map_err(|e| bad(&e))?;
    let etag = if_match(headers).or_else(|| input.etag.clone());
    let mut st = shared.state.lock();
    update(&mut st, id, etag.as_deref(), version, input).map_err(op_error_response)?;
    let sc = st
        .contacts
        .get(id)
        .ok_or_else(|| op_error_response(not_found()))?;
    let doc = atom::entry_document(&urls, sc);
    let etag = sc.contact.etag.clone();
    drop(st);
    Ok(atom_response(StatusCode::OK, "entry", doc, Some(&etag)))
}

fn delete_entry(
    shared: &Shared,
    headers: &HeaderMap,
    query: Option<&str>,
    domain: &str,
    projection: &str,
    id: &str,
    version: Option<u64>,
) -> Answer {
    prepare(shared, headers, query, domain, projection, ENTRY_PARAMS)?;
    let etag = if_match(headers);
    let mut st = shared.state.lock();
    delete(&mut st, id, etag.as_deref(), version).map_err(op_error_response)?;
    Ok(StatusCode::OK.into_response())
}

fn parse_version(v: &str) -> Result<u64, Response> {
    v.parse()
        .map_err(|_| bad(&format!("Invalid entry version: {v}")))
}

/// GET {domain}/full/{id}.
pub(crate) async fn entry_get(
    State(shared): State<Arc<Shared>>,
    Path((domain, projection, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    shared.count(|c| c.contacts_entry += 1);
    unify(get_entry(
        &shared,
        &headers,
        query.as_deref(),
        &domain,
        &projection,
        &id,
    ))
}

/// GET {domain}/full/{id}/{version} (the version is not checked on reads).
pub(crate) async fn entry_get_versioned(
    State(shared): State<Arc<Shared>>,
    Path((domain, projection, id, _version)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    shared.count(|c| c.contacts_entry += 1);
    unify(get_entry(
        &shared,
        &headers,
        query.as_deref(),
        &domain,
        &projection,
        &id,
    ))
}

/// PUT {domain}/full/{id}: replaces a contact (If-Match or the entry's gd:etag).
pub(crate) async fn entry_put(
    State(shared): State<Arc<Shared>>,
    Path((domain, projection, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    shared.count(|c| c.contacts_entry += 1);
    unify(put_entry(
        &shared,
        &headers,
        query.as_deref(),
        &domain,
        &projection,
        &id,
        None,
        &body,
    ))
}

/// PUT {domain}/full/{id}/{version}: the edit link; a stale version is 409
/// when no etag is given.
pub(crate) async fn entry_put_versioned(
    State(shared): State<Arc<Shared>>,
    Path((domain, projection, id, version)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    shared.count(|c| c.contacts_entry += 1);
    unify(parse_version(&version).and_then(|v| {
        put_entry(
            &shared,
            &headers,
            query.as_deref(),
            &domain,
            &projection,
            &id,
            Some(v),
            &body,
        )
    }))
}

/// DELETE {domain}/full/{id} (If-Match required).
pub(crate) async fn entry_delete(
    State(shared): State<Arc<Shared>>,
    Path((domain, projection, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    shared.count(|c| c.contacts_entry += 1);
    unify(delete_entry(
        &shared,
        &headers,
        query.as_deref(),
        &domain,
        &projection,
        &id,
        None,
    ))
}

/// DELETE {domain}/full/{id}/{version}.
pub(crate) async fn entry_delete_versioned(
    State(shared): State<Arc<Shared>>,
    Path((domain, projection, id, version)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    shared.count(|c| c.contacts_entry += 1);
    unify(parse_version(&version).and_then(|v| {
        delete_entry(
            &shared,
            &headers,
            query.as_deref(),
            &domain,
            &projection,
            &id,
            Some(v),
        )
    }))
}

// ----- batch -----

fn status(meta_id: Option<String>, op: &str, code: StatusCode, reason: &str) -> BatchStatus {
    BatchStatus {
        id: meta_id,
        op: op.to_owned(),
        code: code.as_u16(),
        reason: reason.to_owned(),
    }
}

fn failed(urls: &Urls, id: Option<&str>, batch_id: Option<String>, op: &str, e: OpError) -> String {
    let (code, _, reason) = e;
    let reason = match code {
        StatusCode::BAD_REQUEST => format!("Bad Request: {reason}"),
        _ => format!("{}: {reason}", code.canonical_reason().unwrap_or("Error")),
    };
    atom::batch_status_fragment(urls, id, "Error", &status(batch_id, op, code, &reason))
}

/// Runs one batch operation; returns its entry in the answer.
fn run_operation(st: &mut Data, urls: &Urls, entry: &atom::Element, default_op: &str) -> String {
    let meta = atom::read_meta(entry);
    let op = meta
        .batch_op
        .clone()
        .unwrap_or_else(|| default_op.to_owned());
    let batch_id = meta.batch_id.clone();
    let id = meta.id.clone();
    let fail = |e: OpError| failed(urls, id.as_deref(), batch_id.clone(), &op, e);
    let bad_entry = |reason: String| (StatusCode::BAD_REQUEST, "invalid", reason);
    let need_id = || {
        id.clone().ok_or_else(|| {
            bad_entry("the entry names no contact (atom:id or edit link)".to_owned())
        })
    };
    let done = |st: &Data, id: &str, code: StatusCode, reason: &str| match st.contacts.get(id) {
        Some(sc) => {
            atom::entry_fragment(urls, sc, Some(&status(batch_id.clone(), &op, code, reason)))
        }
        None => fail(not_found()),
    };
    match op.as_str() {
        "insert" => match atom::read_entry(entry)
            .map_err(bad_entry)
            .and_then(|i| create(st, i))
        {
            Ok(new_id) => done(st, &new_id, StatusCode::CREATED, "Created"),
            Err(e) => fail(e),
        },
        "query" => match need_id() {
            Ok(id) if st.contacts.get(&id).is_some_and(|c| !c.deleted) => {
                done(st, &id, StatusCode::OK, "Success")
            }
            Ok(_) => fail(not_found()),
            Err(e) => fail(e),
        },
        "update" => {
            let result = need_id().and_then(|cid| {
                let input = atom::read_entry(entry).map_err(bad_entry)?;
                let etag = input.etag.clone();
                update(st, &cid, etag.as_deref(), meta.edit_version, input)?;
                Ok(cid)
            });
            match result {
                Ok(cid) => done(st, &cid, StatusCode::OK, "Success"),
                Err(e) => fail(e),
            }
        }
        "delete" => {
            let etag = entry.attr_ns(atom::NS_GD, "etag");
            match need_id().and_then(|cid| delete(st, &cid, etag, meta.edit_version).map(|()| cid))
            {
                Ok(cid) => atom::batch_status_fragment(
                    urls,
                    Some(&cid),
                    "Deleted",
                    &status(batch_id.clone(), &op, StatusCode::OK, "Success"),
                ),
                Err(e) => fail(e),
            }
        }
        other => fail(bad_entry(format!("Unknown batch operation type: {other}"))),
    }
}

/// POST {domain}/full/batch — up to 100 operations, each answered with its
/// own `batch:status`; one failure does not stop the others.
pub(crate) async fn batch(
    State(shared): State<Arc<Shared>>,
    Path((domain, projection)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    shared.count(|c| c.contacts_batch += 1);
    unify((|| {
        let (urls, _) = prepare(
            &shared,
            &headers,
            query.as_deref(),
            &domain,
            &projection,
            ENTRY_PARAMS,
        )?;
        let root = parse_body(&headers, &body)?;
        if !root.is(NS_ATOM, "feed") {
            return Err(bad("A batch request must be an Atom feed"));
        }
        let entries: Vec<&atom::Element> = root.children_named(NS_ATOM, "entry").collect();
        if entries.len() > MAX_BATCH {
            return Err(errors::gdata_rejected(
                StatusCode::BAD_REQUEST,
                "tooManyOperations",
                &format!(
                    "A batch request may hold at most {MAX_BATCH} operations; this one holds {}",
                    entries.len()
                ),
            ));
        }
        let default_op = root
            .child(NS_BATCH, "operation")
            .and_then(|o| o.attr("type"))
            .unwrap_or("insert")
            .to_owned();
        let mut st = shared.state.lock();
        let answers: Vec<String> = entries
            .iter()
            .map(|e| run_operation(&mut st, &urls, e, &default_op))
            .collect();
        drop(st);
        let head = FeedHead {
            title: "Batch Feed".to_owned(),
            id: format!("{}/batch/{}", urls.feed(), crate::state::now_ms()),
            self_href: format!("{}/batch", urls.feed()),
            next_href: None,
            total: None,
            start_index: None,
            items_per_page: None,
        };
        Ok(atom_response(
            StatusCode::OK,
            "feed",
            atom::feed_document(&urls, &head, &answers),
            None,
        ))
    })())
}
