//! Google's error bodies.
//!
//! - JSON APIs (Directory): <https://cloud.google.com/apis/design/errors> and
//!   the table of <https://developers.google.com/admin-sdk/directory/v1/limits>:
//!   `{"error":{"code":403,"message":"…","errors":[{"domain":"usageLimits","reason":"userRateLimitExceeded","message":"…"}],"status":"PERMISSION_DENIED"}}`.
//! - GData APIs (Shared Contacts): an `<errors>` document in the
//!   `http://schemas.google.com/g/2005` namespace with the content type
//!   `application/vnd.google.gdata.error+xml`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::Fault;

/// Marks a response as a refusal of a malformed or unauthorised request.
#[derive(Clone, Copy)]
pub(crate) struct Rejected;

/// Marks a response as an injected fault.
#[derive(Clone, Copy)]
pub(crate) struct InjectedFault;

pub(crate) const REALM: &str = "Bearer realm=\"https://accounts.google.com/\"";

/// The canonical status name Google sends with an HTTP code.
fn status_name(code: StatusCode) -> &'static str {
    match code.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        412 => "FAILED_PRECONDITION",
        429 => "RESOURCE_EXHAUSTED",
        500 => "INTERNAL",
        503 => "UNAVAILABLE",
        _ => "UNKNOWN",
    }
}

/// A JSON error body with one entry in `errors`.
pub(crate) fn json_error(
    code: StatusCode,
    message: &str,
    domain: &str,
    reason: &str,
    location: Option<(&str, &str)>,
) -> Response {
    let mut item = json!({"message": message, "domain": domain, "reason": reason});
    if let (Some((loc, loc_type)), Some(obj)) = (location, item.as_object_mut()) {
        obj.insert("location".into(), Value::from(loc));
        obj.insert("locationType".into(), Value::from(loc_type));
    }
    let body = json!({"error": {
        "code": code.as_u16(),
        "message": message,
        "errors": [item],
        "status": status_name(code),
    }});
    json_response(code, &body)
}

pub(crate) fn json_response(code: StatusCode, body: &Value) -> Response {
    let text = serde_json::to_string_pretty(body).unwrap_or_else(|_| "{}".to_owned());
    (
        code,
        [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
        text,
    )
        .into_response()
}

pub(crate) fn rejected(mut response: Response) -> Response {
    response.extensions_mut().insert(Rejected);
    response
}

/// 400 for a query parameter (bad value, out of range, unknown).
pub(crate) fn bad_parameter(message: &str, parameter: &str) -> Response {
    rejected(json_error(
        StatusCode::BAD_REQUEST,
        message,
        "global",
        "invalid",
        Some((parameter, "parameter")),
    ))
}

/// 400 for an unknown query parameter, in the words of Google's front end.
pub(crate) fn unknown_parameter(name: &str) -> Response {
    let message = format!(
        "Invalid JSON payload received. Unknown name \"{name}\": Cannot bind query parameter. Field '{name}' could not be found in request message."
    );
    rejected(json_error(
        StatusCode::BAD_REQUEST,
        &message,
        "global",
        "invalid",
        None,
    ))
}

/// 400 for a `fields` selection that names something the resource lacks.
pub(crate) fn invalid_field_selection(what: &str) -> Response {
    rejected(json_error(
        StatusCode::BAD_REQUEST,
        &format!("Invalid field selection {what}"),
        "global",
        "invalidParameter",
        Some(("fields", "parameter")),
    ))
}

/// 400 `badRequest`.
pub(crate) fn bad_request(message: &str) -> Response {
    rejected(json_error(
        StatusCode::BAD_REQUEST,
        message,
        "global",
        "badRequest",
        None,
    ))
}

/// 403 `forbidden`: the admin may not see this customer or domain.
pub(crate) fn not_authorized() -> Response {
    rejected(json_error(
        StatusCode::FORBIDDEN,
        "Not Authorized to access this resource/api",
        "global",
        "forbidden",
        None,
    ))
}

/// 404 `notFound` for a resource key.
pub(crate) fn resource_not_found(what: &str) -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        &format!("Resource Not Found: {what}"),
        "global",
        "notFound",
        None,
    )
}

/// 401: no credentials (`missing`) or an invalid / expired token.
pub(crate) fn unauthenticated(missing: bool) -> Response {
    let (message, reason, item_message, www) = if missing {
        (
            "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
            "required",
            "Login Required.",
            REALM.to_owned(),
        )
    } else {
        (
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
            "authError",
            "Invalid Credentials",
            format!("{REALM}, error=\"invalid_token\""),
        )
    };
    let body = json!({"error": {
        "code": 401,
        "message": message,
        "errors": [{"message": item_message, "domain": "global", "reason": reason,
                    "location": "Authorization", "locationType": "header"}],
        "status": "UNAUTHENTICATED",
    }});
    let mut response = json_response(StatusCode::UNAUTHORIZED, &body);
    if let Ok(v) = HeaderValue::from_str(&www) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    rejected(response)
}

/// 403 when the token lacks every scope the method accepts.
pub(crate) fn insufficient_scopes(scopes: &[String]) -> Response {
    let mut response = json_error(
        StatusCode::FORBIDDEN,
        "Request had insufficient authentication scopes.",
        "global",
        "insufficientPermissions",
        None,
    );
    let www = format!(
        "{REALM}, error=\"insufficient_scope\", scope=\"{}\"",
        scopes.join(" ")
    );
    if let Ok(v) = HeaderValue::from_str(&www) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    rejected(response)
}

/// What each fault looks like: HTTP code, domain, reason, message.
pub(crate) fn fault_parts(fault: Fault) -> (StatusCode, &'static str, &'static str, &'static str) {
    match fault {
        Fault::RateLimit403 => (
            StatusCode::FORBIDDEN,
            "usageLimits",
            "userRateLimitExceeded",
            "User Rate Limit Exceeded",
        ),
        Fault::Quota403 => (
            StatusCode::FORBIDDEN,
            "usageLimits",
            "quotaExceeded",
            "Quota exceeded: the limit of concurrent requests has been reached.",
        ),
        Fault::TooMany429 => (
            StatusCode::TOO_MANY_REQUESTS,
            "usageLimits",
            "rateLimitExceeded",
            "Rate Limit Exceeded",
        ),
        Fault::ServerError500 => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "global",
            "backendError",
            "Internal error encountered.",
        ),
        Fault::Unavailable503 => (
            StatusCode::SERVICE_UNAVAILABLE,
            "global",
            "backendError",
            "The service is currently unavailable.",
        ),
        Fault::Forbidden403 => (
            StatusCode::FORBIDDEN,
            "global",
            "forbidden",
            "Not Authorized to access this resource/api",
        ),
    }
}

fn mark_fault(mut response: Response, fault: Fault, retry_after: u64) -> Response {
    if fault == Fault::TooMany429 {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    }
    response.extensions_mut().insert(InjectedFault);
    response
}

/// An injected fault as a JSON API answers it.
pub(crate) fn fault_json(fault: Fault, retry_after: u64) -> Response {
    let (code, domain, reason, message) = fault_parts(fault);
    mark_fault(
        json_error(code, message, domain, reason, None),
        fault,
        retry_after,
    )
}

/// An injected fault as the GData (contacts) API answers it.
pub(crate) fn fault_gdata(fault: Fault, retry_after: u64) -> Response {
    let (code, domain, reason, message) = fault_parts(fault);
    mark_fault(
        gdata_error(code, domain, reason, message),
        fault,
        retry_after,
    )
}

/// A GData error document.
pub(crate) fn gdata_error(code: StatusCode, domain: &str, gcode: &str, reason: &str) -> Response {
    let body = crate::atom::errors_document(domain, gcode, reason);
    (
        code,
        [(
            header::CONTENT_TYPE,
            "application/vnd.google.gdata.error+xml",
        )],
        body,
    )
        .into_response()
}

/// A GData refusal (counted as rejected).
pub(crate) fn gdata_rejected(code: StatusCode, gcode: &str, reason: &str) -> Response {
    rejected(gdata_error(code, "GData", gcode, reason))
}

/// 401 on the contacts API.
pub(crate) fn gdata_unauthenticated(missing: bool) -> Response {
    let reason = if missing {
        "Login Required: the request has no Authorization header"
    } else {
        "Token invalid - Invalid token: Stateless token expired"
    };
    let mut response = gdata_error(StatusCode::UNAUTHORIZED, "GData", "authError", reason);
    let www = if missing {
        REALM.to_owned()
    } else {
        format!("{REALM}, error=\"invalid_token\"")
    };
    if let Ok(v) = HeaderValue::from_str(&www) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    rejected(response)
}

/// The page Google's front end serves for an unknown path.
pub(crate) async fn not_found_page() -> Response {
    rejected(
        (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/html; charset=UTF-8")],
            "<!DOCTYPE html>\n<html lang=en><title>Error 404 (Not Found)!!1</title><p><b>404.</b> <ins>That’s an error.</ins><p>The requested URL was not found on this server. <ins>That’s all we know.</ins></html>\n",
        )
            .into_response(),
    )
}

/// 405 for a known path with another method.
pub(crate) async fn method_not_allowed() -> Response {
    rejected(
        (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::CONTENT_TYPE, "text/html; charset=UTF-8")],
            "<!DOCTYPE html>\n<html lang=en><title>Error 405 (Method Not Allowed)!!1</title><p><b>405.</b> <ins>That’s an error.</ins></html>\n",
        )
            .into_response(),
    )
}
