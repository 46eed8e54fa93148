//! The Gmail settings methods `coexist move` uses on an old account
//! (<https://developers.google.com/gmail/api/reference/rest/v1/users.settings>):
//! users.settings.forwardingAddresses.create (POST
//! `gmail/v1/users/{userId}/settings/forwardingAddresses`, `{forwardingEmail}`;
//! created by a service account with domain-wide authority it is
//! `accepted` at once, without the verification mail; 409 when it exists)
//! and users.settings.updateAutoForwarding (PUT
//! `gmail/v1/users/{userId}/settings/autoForwarding`, `{enabled,
//! emailAddress, disposition}`; the address must be a forwarding address of
//! the user, the disposition one of `leaveInInbox`, `archive`, `trash`,
//! `markRead` when enabled), and users.settings.getAutoForwarding (GET
//! the same path, what `--finish` reads before turning coexist's forward
//! off). The token must carry the
//! `gmail.settings.sharing` scope and act as the user (`userId` the user's
//! address or `me`). No discovery document of the Gmail API is in the
//! specs; these checks are the reference pages'.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::auth::{self, Flavor};
use crate::directory::{query_pairs, take_fault};
use crate::errors;
use crate::state::Shared;

/// The user the call acts on: the token's subject, which `user_id` must
/// name (or be `me`).
fn acting_user(
    shared: &Shared,
    headers: &HeaderMap,
    query: Option<&str>,
    user_id: &str,
) -> Result<String, Response> {
    let pairs = query_pairs(query);
    auth::authorize(
        shared,
        headers,
        &pairs,
        &[crate::GMAIL_SETTINGS_SCOPE.to_owned()],
        Flavor::Json,
    )?;
    take_fault(shared, Flavor::Json)?;
    let subject = auth::subject(shared, headers).unwrap_or_default();
    if user_id != "me" && !user_id.eq_ignore_ascii_case(&subject) {
        return Err(errors::json_error(
            StatusCode::FORBIDDEN,
            "Delegation denied for the user",
            "global",
            "forbidden",
            None,
        ));
    }
    if shared.state.lock().find_user_id(&subject).is_none() {
        return Err(errors::resource_not_found("userId"));
    }
    Ok(subject)
}

fn body_of(body: &[u8]) -> Result<Value, Response> {
    serde_json::from_slice(body)
        .map_err(|e| errors::bad_request(&format!("Invalid JSON payload received. {e}")))
}

fn answer(result: Result<Value, Response>) -> Response {
    match result {
        Ok(value) => (
            StatusCode::OK,
            [("content-type", "application/json; charset=UTF-8")],
            value.to_string(),
        )
            .into_response(),
        Err(response) => response,
    }
}

/// POST users/{userId}/settings/forwardingAddresses.
pub(crate) async fn forwarding_addresses_create(
    State(shared): State<Arc<Shared>>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: axum::body::Bytes,
) -> Response {
    shared.count(|c| c.user_writes += 1);
    answer((|| {
        let user = acting_user(&shared, &headers, query.as_deref(), &user_id)?;
        let body = body_of(&body)?;
        if let Some(name) = body.as_object().and_then(|o| {
            o.keys()
                .find(|k| !["forwardingEmail", "verificationStatus"].contains(&k.as_str()))
        }) {
            return Err(errors::bad_request(&format!(
                "Invalid JSON payload received. Unknown name \"{name}\""
            )));
        }
        let address = body
            .get("forwardingEmail")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if !address.contains('@') {
            return Err(errors::bad_request("Invalid forwarding address"));
        }
        let mut st = shared.state.lock();
        let mut exists = false;
        st.update_user(&user, |u| {
            exists = u.forwarding_addresses.contains(&address);
            if !exists {
                u.forwarding_addresses.push(address.clone());
            }
        });
        if exists {
            return Err(errors::json_error(
                StatusCode::CONFLICT,
                "Forwarding address already exists.",
                "global",
                "duplicate",
                None,
            ));
        }
        Ok(json!({ "forwardingEmail": address, "verificationStatus": "accepted" }))
    })())
}

/// GET users/{userId}/settings/autoForwarding: `{enabled: false}` when
/// the user does not forward, else the address and the disposition.
pub(crate) async fn get_auto_forwarding(
    State(shared): State<Arc<Shared>>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    shared.count(|c| c.users += 1);
    answer((|| {
        let user = acting_user(&shared, &headers, query.as_deref(), &user_id)?;
        let st = shared.state.lock();
        let forwarding = st
            .find_user_id(&user)
            .and_then(|id| st.users.get(&id))
            .and_then(|u| u.user.auto_forwarding.clone());
        Ok(match forwarding {
            Some((address, disposition)) => {
                json!({ "enabled": true, "emailAddress": address, "disposition": disposition })
            }
            None => json!({ "enabled": false }),
        })
    })())
}

/// PUT users/{userId}/settings/autoForwarding.
pub(crate) async fn update_auto_forwarding(
    State(shared): State<Arc<Shared>>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: axum::body::Bytes,
) -> Response {
    shared.count(|c| c.user_writes += 1);
    answer((|| {
        let user = acting_user(&shared, &headers, query.as_deref(), &user_id)?;
        let body = body_of(&body)?;
        if let Some(name) = body.as_object().and_then(|o| {
            o.keys()
                .find(|k| !["enabled", "emailAddress", "disposition"].contains(&k.as_str()))
        }) {
            return Err(errors::bad_request(&format!(
                "Invalid JSON payload received. Unknown name \"{name}\""
            )));
        }
        let enabled = body
            .get("enabled")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let address = body
            .get("emailAddress")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let disposition = body
            .get("disposition")
            .and_then(Value::as_str)
            .unwrap_or("dispositionUnspecified")
            .to_owned();
        let mut st = shared.state.lock();
        let known = st
            .find_user_id(&user)
            .and_then(|id| st.users.get(&id))
            .is_some_and(|u| u.user.forwarding_addresses.contains(&address));
        if enabled {
            if !known {
                return Err(errors::bad_request("Unrecognized forwarding address"));
            }
            if !["leaveInInbox", "archive", "trash", "markRead"].contains(&disposition.as_str()) {
                return Err(errors::bad_request("Invalid disposition"));
            }
        }
        st.update_user(&user, |u| {
            u.auto_forwarding = enabled.then(|| (address.clone(), disposition.clone()));
        });
        Ok(json!({ "enabled": enabled, "emailAddress": address, "disposition": disposition }))
    })())
}
