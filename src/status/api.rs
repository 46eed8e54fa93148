//! `/healthz`, `/readyz`, `/metrics`, the JSON twin of the status page
//! under `/api/`, `POST /api/sync`, and the guard that checks the token.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::view::{self, OrganisationStatus, SearchHit};
use super::{Organisation, StatusError, StatusState, SyncRequest};
use crate::store::RunRecord;

/// Refuses what the token rules refuse (see the module above).
pub(super) async fn guard(
    State(state): State<Arc<StatusState>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let writes = request.method() != Method::GET && request.method() != Method::HEAD;
    let needs_token = path != "/healthz" && (writes || state.token_for_reads);
    if !needs_token {
        return next.run(request).await;
    }
    if state.token.is_none() {
        return (
            StatusCode::FORBIDDEN,
            "no token is configured: this endpoint is refused (give the daemon a token)\n",
        )
            .into_response();
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if state.authorised(given) {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "this endpoint needs Authorization: Bearer <token>\n",
        )
            .into_response()
    }
}

/// An error as a 500 with its sentence.
impl IntoResponse for StatusError {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, format!("{self}\n")).into_response()
    }
}

/// 200 while the process lives.
pub(super) async fn healthz() -> &'static str {
    "ok\n"
}

/// 200 when every organisation's store answers and its last run needs
/// nobody; else 503 with the reasons, one a line.
pub(super) async fn readyz(State(state): State<Arc<StatusState>>) -> Response {
    let mut reasons = Vec::new();
    for organisation in state.organisations() {
        reasons.extend(view::readiness(&organisation).await.reasons);
    }
    if reasons.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready:\n{}\n", reasons.join("\n")),
        )
            .into_response()
    }
}

/// The metrics: OpenMetrics text when the client asks for it (as
/// Prometheus does), else Prometheus' classic text format.
pub(super) async fn metrics(
    State(state): State<Arc<StatusState>>,
    headers: axum::http::HeaderMap,
) -> Result<Response, StatusError> {
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/openmetrics-text"));
    Ok(if openmetrics {
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            state.metrics.encode()?,
        )
            .into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            state.metrics.encode_classic()?,
        )
            .into_response()
    })
}

/// Which organisation a request is about: `?organisation=ID`, or all.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Which {
    pub organisation: Option<String>,
    pub q: Option<String>,
    pub limit: Option<i64>,
}

/// The organisations `which` names (all when it names none).
pub(super) fn chosen(state: &StatusState, which: &Which) -> Vec<Arc<Organisation>> {
    state
        .organisations()
        .into_iter()
        .filter(|o| which.organisation.as_deref().is_none_or(|id| id == o.id))
        .collect()
}

/// Every (or one) organisation's status.
pub(super) async fn gather(
    state: &StatusState,
    which: &Which,
) -> Result<Vec<OrganisationStatus>, StatusError> {
    let mut all = Vec::new();
    for organisation in chosen(state, which) {
        let pulls = state.metrics.last_pulls(&organisation.id);
        all.push(view::organisation_status(&state.kept, &organisation, pulls).await?);
    }
    Ok(all)
}

/// `GET /api/status`: what the page shows, as JSON.
pub(super) async fn status(
    State(state): State<Arc<StatusState>>,
    Query(which): Query<Which>,
) -> Result<Json<Vec<OrganisationStatus>>, StatusError> {
    Ok(Json(gather(&state, &which).await?))
}

/// `GET /api/runs`: each organisation's last runs (`limit`, default 20).
pub(super) async fn runs(
    State(state): State<Arc<StatusState>>,
    Query(which): Query<Which>,
) -> Result<Json<BTreeMap<String, Vec<RunRecord>>>, StatusError> {
    let limit = which.limit.unwrap_or(20).clamp(1, 1000);
    let mut all = BTreeMap::new();
    for organisation in chosen(&state, &which) {
        all.insert(
            organisation.id.clone(),
            organisation.store.runs(limit).await?,
        );
    }
    Ok(Json(all))
}

/// One organisation's search hits.
#[derive(Debug, Serialize)]
pub(super) struct SearchResult {
    pub organisation: String,
    pub hits: Vec<SearchHit>,
}

/// The search hits of `which.q` in every (or one) organisation.
pub(super) async fn search_all(
    state: &StatusState,
    which: &Which,
) -> Result<Vec<SearchResult>, StatusError> {
    let query = which.q.clone().unwrap_or_default();
    let mut results = Vec::new();
    for organisation in chosen(state, which) {
        results.push(SearchResult {
            organisation: organisation.id.clone(),
            hits: view::search(&state.kept, &organisation, &query).await?,
        });
    }
    Ok(results)
}

/// `GET /api/search?q=…`: who is where, their stubs, how mail reaches them.
pub(super) async fn search(
    State(state): State<Arc<StatusState>>,
    Query(which): Query<Which>,
) -> Result<Json<Vec<SearchResult>>, StatusError> {
    Ok(Json(search_all(&state, &which).await?))
}

/// What `POST /api/sync` may carry (JSON); without it, the organisation
/// is `?organisation=ID`, or the only one.
#[derive(Debug, Default, Deserialize)]
pub(super) struct SyncBody {
    pub organisation: Option<String>,
}

/// `POST /api/sync`: asks the daemon for a run now; 202 when asked.
pub(super) async fn sync(
    State(state): State<Arc<StatusState>>,
    Query(which): Query<Which>,
    body: Option<Json<SyncBody>>,
) -> Response {
    let named = body
        .and_then(|Json(b)| b.organisation)
        .or(which.organisation);
    let organisations = state.organisations();
    let organisation = match named {
        Some(id) if organisations.iter().any(|o| o.id == id) => id,
        Some(id) => {
            return (
                StatusCode::NOT_FOUND,
                format!("no organisation `{id}` is served here\n"),
            )
                .into_response()
        }
        None if organisations.len() == 1 => match organisations.first() {
            Some(only) => only.id.clone(),
            None => String::new(),
        },
        None => {
            return (
                StatusCode::BAD_REQUEST,
                "name the organisation: {\"organisation\": \"ID\"} or ?organisation=ID\n",
            )
                .into_response()
        }
    };
    match state.sync_now.try_send(SyncRequest {
        organisation: organisation.clone(),
    }) {
        Ok(()) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "organisation": organisation, "accepted": true })),
        )
            .into_response(),
        Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "30")],
            "runs already asked for are waiting; try again later\n",
        )
            .into_response(),
        Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon is stopping; no run is started\n",
        )
            .into_response(),
    }
}
