//! JSON batching, `POST /v1.0/$batch`
//! (<https://learn.microsoft.com/graph/json-batching>): at most 20 requests,
//! each `{id, method, url, headers?, body?, dependsOn?}` with a URL relative
//! to the version root; each runs through the same dispatcher as a plain
//! request and gets its own status, headers and body in `responses`. A
//! request with a body must name its `Content-Type`. A throttled inner
//! request answers 429 with its own `Retry-After` inside a 200 batch. A
//! request whose dependency failed answers 424.

use std::collections::HashMap;

use axum::http::{Method, StatusCode};
use serde_json::{json, Map, Value};

use crate::errors::{self, Reply};
use crate::graph::{self, Call};
use crate::state::Shared;

/// The most requests one batch may hold.
pub(crate) const MAX_REQUESTS: usize = 20;

fn invalid(message: &str) -> Reply {
    errors::bad_request(message)
}

/// Runs a batch for a caller with these roles, following
/// <https://learn.microsoft.com/graph/json-batching>.
pub(crate) fn run(shared: &Shared, roles: &[String], body: &[u8]) -> Reply {
    shared.count(|c| c.batch_requests += 1);
    let payload: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => return invalid("Invalid batch payload format."),
    };
    let Some(requests) = payload.get("requests").and_then(Value::as_array) else {
        return invalid("Invalid batch payload format.");
    };
    if requests.is_empty() {
        return invalid("Invalid batch payload format: the batch holds no request.");
    }
    if requests.len() > MAX_REQUESTS {
        return invalid("Number of requests inside batch exceeds the limit.");
    }
    let mut ids = Vec::new();
    for r in requests {
        let id = r.get("id").and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
        let (Some(id), Some(_), Some(_)) = (
            id,
            r.get("method").and_then(Value::as_str),
            r.get("url").and_then(Value::as_str),
        ) else {
            return invalid(
                "Invalid batch payload format: each request needs an id, a method and a url.",
            );
        };
        if ids.contains(&id) {
            return invalid(&format!("Batch request contains duplicate Ids: '{id}'."));
        }
        ids.push(id);
    }
    shared.count(|c| c.inner_batch_requests += requests.len() as u64);

    let mut statuses: HashMap<String, StatusCode> = HashMap::new();
    let mut responses = Vec::with_capacity(requests.len());
    for (r, id) in requests.iter().zip(ids) {
        let reply = inner(shared, roles, r, &statuses);
        statuses.insert(id.clone(), reply.status);
        let mut headers = Map::new();
        for (k, v) in &reply.headers {
            headers.insert(k.clone(), json!(v));
        }
        let mut item = json!({"id": id, "status": reply.status.as_u16(), "headers": headers});
        if let Some(body) = reply.body {
            item["body"] = body;
        }
        if reply.rejected {
            shared.count(|c| c.rejected += 1);
        }
        if reply.fault {
            shared.count(|c| c.faults += 1);
        }
        responses.push(item);
    }
    Reply::ok(json!({"responses": responses}))
}

fn inner(
    shared: &Shared,
    roles: &[String],
    request: &Value,
    done: &HashMap<String, StatusCode>,
) -> Reply {
    if let Some(deps) = request.get("dependsOn").and_then(Value::as_array) {
        for d in deps.iter().filter_map(Value::as_str) {
            match done.get(d) {
                Some(s) if s.is_success() => {}
                _ => {
                    return errors::graph(
                        StatusCode::FAILED_DEPENDENCY,
                        "FailedDependency",
                        &format!("The request depends on request '{d}', which did not succeed."),
                    )
                }
            }
        }
    }
    let fault = {
        let mut st = shared.state.lock();
        st.batch_faults
            .pop_front()
            .map(|f| (f, st.retry_after_secs))
    };
    if let Some((fault, retry_after)) = fault {
        return errors::graph_fault(fault, retry_after);
    }
    let method_text = request
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or("GET")
        .to_ascii_uppercase();
    let Ok(method) = Method::from_bytes(method_text.as_bytes()) else {
        return errors::bad_request(&format!("Invalid method '{method_text}'."));
    };
    let url = request.get("url").and_then(Value::as_str).unwrap_or("");
    let graph_url = shared.graph_url();
    let relative = url
        .strip_prefix(&graph_url)
        .or_else(|| url.strip_prefix("https://graph.microsoft.com/v1.0"))
        .unwrap_or(url);
    if relative.starts_with("http://") || relative.starts_with("https://") {
        return errors::bad_request(
            "Invalid request URL: batch request URLs are relative to the version root.",
        );
    }
    let relative = relative.strip_prefix("/v1.0").unwrap_or(relative);
    let (path, query) = relative.split_once('?').unwrap_or((relative, ""));
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    let headers: Vec<(String, String)> = request
        .get("headers")
        .and_then(Value::as_object)
        .map(|h| {
            h.iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let body = match request.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(b) => {
            if header("content-type").is_none() {
                return errors::bad_request(
                    "Content-Type header must be specified for requests with a body.",
                );
            }
            serde_json::to_vec(b).unwrap_or_default()
        }
    };
    if path == "/$batch" {
        return errors::bad_request("A batch cannot hold another batch.");
    }
    let call = Call {
        shared,
        method,
        path,
        query: form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect(),
        prefer: header("prefer"),
        body,
        roles,
    };
    graph::dispatch(&call)
}
