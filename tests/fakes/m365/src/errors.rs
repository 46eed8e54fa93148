//! The answers the fake sends, and the error bodies of each service.
//!
//! - Microsoft Graph: `{"error":{"code":…,"message":…,"innerError":{"date":…,"request-id":…,"client-request-id":…}}}`
//!   (<https://learn.microsoft.com/graph/errors>), with the `request-id` and
//!   `client-request-id` headers; throttling adds `Retry-After` in seconds
//!   (<https://learn.microsoft.com/graph/throttling>).
//! - Microsoft identity platform (token endpoint):
//!   `{"error":"invalid_client","error_description":"AADSTS7000215: …","error_codes":[7000215],…}`
//!   (<https://learn.microsoft.com/entra/identity-platform/reference-error-codes>).
//! - Exchange Online's admin API: `{"error":{"code":"NotFound","message":"Error executing cmdlet","details":[{"code":"Client","target":"","message":"Ex6F9304|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|…"}],"innererror":{…}}}`,
//!   the shape the ExchangeOnlineManagement module unwraps.

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::state::{new_guid, rfc3339_now};
use crate::Fault;

/// Marks a response as a refusal of a malformed or unauthorised request.
#[derive(Clone, Copy)]
pub(crate) struct Rejected;

/// Marks a response as an injected fault.
#[derive(Clone, Copy)]
pub(crate) struct InjectedFault;

/// An answer, before it becomes an HTTP response or an inner `$batch` response.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
    pub rejected: bool,
    pub fault: bool,
}

impl Reply {
    /// 200 with a JSON body.
    pub fn ok(body: Value) -> Reply {
        Reply::json(StatusCode::OK, body)
    }

    pub fn json(status: StatusCode, body: Value) -> Reply {
        Reply {
            status,
            headers: vec![(
                "Content-Type".to_owned(),
                "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8".to_owned(),
            )],
            body: Some(body),
            rejected: false,
            fault: false,
        }
    }

    /// A status without a body (204, or Exchange's 401).
    pub fn empty(status: StatusCode) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: None,
            rejected: false,
            fault: false,
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    pub fn rejected(mut self) -> Reply {
        self.rejected = true;
        self
    }

    /// The HTTP response, with Graph's request ids.
    pub fn into_response(self, client_request_id: Option<&str>) -> Response {
        let body = match &self.body {
            Some(v) => serde_json::to_string(v).unwrap_or_else(|_| "{}".to_owned()),
            None => String::new(),
        };
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        for (name, value) in &self.headers {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.insert(n, v);
            }
        }
        if let Ok(v) = HeaderValue::from_str(&new_guid()) {
            headers.insert(HeaderName::from_static("request-id"), v);
        }
        if let Some(id) = client_request_id {
            if let Ok(v) = HeaderValue::from_str(id) {
                headers.insert(HeaderName::from_static("client-request-id"), v);
            }
        }
        if self.rejected {
            response.extensions_mut().insert(Rejected);
        }
        if self.fault {
            response.extensions_mut().insert(InjectedFault);
        }
        response
    }
}

/// A Graph error.
pub(crate) fn graph(status: StatusCode, code: &str, message: &str) -> Reply {
    let request_id = new_guid();
    Reply::json(
        status,
        json!({"error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": rfc3339_now(false),
                "request-id": request_id,
                "client-request-id": request_id,
            },
        }}),
    )
}

/// A Graph refusal of a malformed request (400 and the like).
pub(crate) fn graph_rejected(status: StatusCode, code: &str, message: &str) -> Reply {
    graph(status, code, message).rejected()
}

/// 400 `BadRequest`.
pub(crate) fn bad_request(message: &str) -> Reply {
    graph_rejected(StatusCode::BAD_REQUEST, "BadRequest", message)
}

/// 400 for a name the type does not have, in OData's words.
pub(crate) fn unknown_property(name: &str, type_name: &str) -> String {
    format!("Could not find a property named '{name}' on type 'microsoft.graph.{type_name}'.")
}

/// 404 for a directory object that does not exist.
pub(crate) fn resource_not_found(id: &str) -> Reply {
    graph_rejected(
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        &format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."),
    )
}

/// 401 from Graph: missing, unknown, expired or wrong-audience token.
pub(crate) fn graph_unauthenticated(message: &str) -> Reply {
    graph_rejected(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", message).header(
        "WWW-Authenticate",
        "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
    )
}

/// 403 when the token lacks the application permission a call needs.
pub(crate) fn graph_forbidden(directory: bool) -> Reply {
    if directory {
        graph_rejected(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        )
    } else {
        graph_rejected(
            StatusCode::FORBIDDEN,
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.",
        )
    }
}

/// An injected fault as Graph answers it.
pub(crate) fn graph_fault(fault: Fault, retry_after: u64) -> Reply {
    let mut reply = match fault {
        Fault::TooMany429 => graph(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Too many requests. Please retry after the time the Retry-After header gives.",
        )
        .header("Retry-After", retry_after.to_string()),
        Fault::ServerError500 => graph(
            StatusCode::INTERNAL_SERVER_ERROR,
            "generalException",
            "An unspecified error has occurred.",
        ),
        Fault::Unavailable503 => graph(
            StatusCode::SERVICE_UNAVAILABLE,
            "serviceNotAvailable",
            "The service is temporarily unavailable for maintenance or is overloaded. You may repeat the request after a delay, which may be specified in a Retry-After header.",
        )
        .header("Retry-After", retry_after.to_string()),
        Fault::GatewayTimeout504 => graph(
            StatusCode::GATEWAY_TIMEOUT,
            "UnknownError",
            "The gateway did not receive a timely response from the service.",
        ),
    };
    reply.fault = true;
    reply
}

/// The Microsoft identity platform's error body.
pub(crate) fn aad(status: StatusCode, error: &str, code: u32, text: &str) -> Response {
    let trace = new_guid();
    let correlation = new_guid();
    let now = rfc3339_now(true);
    let description = format!(
        "AADSTS{code}: {text} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {now}"
    );
    let body = json!({
        "error": error,
        "error_description": description,
        "error_codes": [code],
        "timestamp": now,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    let mut response = (
        status,
        [
            (header::CONTENT_TYPE, "application/json; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store, no-cache"),
        ],
        body.to_string(),
    )
        .into_response();
    response.extensions_mut().insert(Rejected);
    response
}

/// One cmdlet error of Exchange's admin API: HTTP status, error code,
/// exception type and message, as the service sends them.
pub(crate) fn exchange(
    status: StatusCode,
    code: &str,
    error_id: &str,
    exception: &str,
    message: &str,
) -> Reply {
    Reply::json(
        status,
        json!({"error": {
            "code": code,
            "message": "Error executing cmdlet",
            "details": [{
                "code": "Client",
                "target": "",
                "message": format!("{error_id}|{exception}|{message}"),
            }],
            "innererror": {
                "message": "Error executing cmdlet",
                "type": "Microsoft.Exchange.Admin.OData.Core.ODataServiceException",
                "stacktrace": "",
            },
        }}),
    )
    .rejected()
}

/// ManagementObjectNotFoundException (404 `NotFound`).
pub(crate) fn exchange_not_found(identity: &str) -> Reply {
    exchange(
        StatusCode::NOT_FOUND,
        "NotFound",
        "Ex6F9304",
        "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException",
        &format!("The operation couldn't be performed because object '{identity}' couldn't be found on 'FAKPR01A001DC01.FAKPR01A001.PROD.OUTLOOK.COM'."),
    )
}

/// A parameter the cmdlet does not have (PowerShell's binding error, 400).
pub(crate) fn exchange_unknown_parameter(name: &str) -> Reply {
    exchange(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        "",
        "System.Management.Automation.ParameterBindingException",
        &format!("A parameter cannot be found that matches parameter name '{name}'."),
    )
}

/// A value PowerShell or Exchange's validation refuses (400).
pub(crate) fn exchange_invalid(exception: &str, message: &str) -> Reply {
    exchange(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        "ExB10F5B",
        exception,
        message,
    )
}

/// An injected fault as Exchange's admin API answers it.
pub(crate) fn exchange_fault(fault: Fault, retry_after: u64) -> Reply {
    let (status, code) = match fault {
        Fault::TooMany429 => (StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"),
        Fault::ServerError500 => (StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError"),
        Fault::Unavailable503 => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
        Fault::GatewayTimeout504 => (StatusCode::GATEWAY_TIMEOUT, "GatewayTimeout"),
    };
    let message = match fault {
        Fault::TooMany429 => "The request was throttled: too many requests. Retry after the time the Retry-After header gives.",
        _ => "The server encountered an error while processing the request.",
    };
    let mut reply = Reply::json(status, json!({"error": {"code": code, "message": message}}));
    if matches!(fault, Fault::TooMany429 | Fault::Unavailable503) {
        reply = reply.header("Retry-After", retry_after.to_string());
    }
    reply.fault = true;
    reply
}

/// 404 for a path the fake does not serve.
pub(crate) async fn not_found_page() -> Response {
    graph_rejected(
        StatusCode::NOT_FOUND,
        "BadRequest",
        "Resource not found for the segment in the request URL.",
    )
    .into_response(None)
}

/// 405 for a known path with another method.
pub(crate) async fn method_not_allowed() -> Response {
    graph_rejected(
        StatusCode::METHOD_NOT_ALLOWED,
        "Request_BadRequest",
        "The HTTP method is not allowed for this resource.",
    )
    .into_response(None)
}
