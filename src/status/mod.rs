//! The daemon's HTTP side: `/healthz`, `/readyz`, `/metrics`
//! (Prometheus), the status page `/` (with a GAL search, `/?q=…`) and its
//! JSON twin under `/api/` (`/api/status`, `/api/runs`, `/api/search?q=…`),
//! and `POST /api/sync`, which asks the daemon for a run now.
//!
//! The daemon builds a [`StatusState`] of its organisations and serves
//! [`router`]; it records its runs in [`StatusState::metrics`] and receives
//! the [`SyncRequest`]s. Access:
//!
//! * `POST /api/*` needs `Authorization: Bearer <token>`, and is refused
//!   (403) when no token is configured;
//! * with [`StatusState::with_token_for_reads`] (the daemon sets it when it
//!   listens beyond loopback) every path but `/healthz` needs the token
//!   too, and without a token every such path is refused;
//! * otherwise reads are open (loopback, the default).

mod api;
pub mod metrics;
mod page;
pub mod view;

use std::sync::{Arc, RwLock};

use axum::routing::{get, post};
use thiserror::Error;
use tokio::sync::mpsc;

pub use metrics::Metrics;

/// One organisation the daemon serves.
pub struct Organisation {
    /// Its id (`[organisation] id`, or the daemon's name for it).
    pub id: String,
    pub config: Arc<crate::config::Config>,
    pub store: crate::store::Store,
}

/// A request for a run now (`POST /api/sync`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    pub organisation: String,
}

/// Why a status request failed.
#[derive(Debug, Error)]
pub enum StatusError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("the stored plan {id} cannot be read: {source}")]
    Plan {
        id: String,
        source: serde_json::Error,
    },
    #[error("the metrics cannot be encoded: {0}")]
    Metrics(#[from] std::fmt::Error),
    #[error("the searches' mail directory cannot be built: {0}")]
    Load(String),
}

/// What the endpoints serve: the organisations, the token, the metrics,
/// where sync requests go, and what is kept between requests.
pub struct StatusState {
    organisations: RwLock<Vec<Arc<Organisation>>>,
    token: Option<String>,
    token_for_reads: bool,
    sync_now: mpsc::Sender<SyncRequest>,
    metrics: Metrics,
    kept: view::Kept,
}

impl StatusState {
    /// The state of a daemon serving `organisations`; `token` guards the
    /// endpoints (see the module's documentation); `sync_now` receives
    /// the runs asked for by `POST /api/sync`.
    pub fn new(
        organisations: Vec<Organisation>,
        token: Option<String>,
        sync_now: mpsc::Sender<SyncRequest>,
    ) -> Self {
        StatusState {
            organisations: RwLock::new(organisations.into_iter().map(Arc::new).collect()),
            token: token.filter(|t| !t.is_empty()),
            token_for_reads: false,
            sync_now,
            metrics: Metrics::new(),
            kept: view::Kept::default(),
        }
    }

    /// Every path but `/healthz` needs the token (the daemon sets this
    /// when it listens beyond loopback; without a token they are then all
    /// refused).
    pub fn with_token_for_reads(mut self, yes: bool) -> Self {
        self.token_for_reads = yes;
        self
    }

    /// The metrics the daemon records its runs in.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Replaces the organisations served (after the daemon re-read its
    /// configuration).
    pub fn set_organisations(&self, organisations: Vec<Organisation>) {
        let mut current = self
            .organisations
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *current = organisations.into_iter().map(Arc::new).collect();
    }

    /// A run of organisation `id` ended: what the page keeps for its
    /// searches, when kept, is loaded again in the background.
    pub fn run_ended(&self, id: &str) {
        if let Some(organisation) = self.organisations().into_iter().find(|o| o.id == id) {
            self.kept.run_ended(&organisation);
        }
    }

    /// The organisations served, in order.
    fn organisations(&self) -> Vec<Arc<Organisation>> {
        self.organisations
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Whether `header` (an `Authorization` value) carries the token.
    fn authorised(&self, header: Option<&str>) -> bool {
        let (Some(token), Some(given)) = (
            self.token.as_deref(),
            header.and_then(|h| h.strip_prefix("Bearer ")),
        ) else {
            return false;
        };
        same_secret(token.as_bytes(), given.trim().as_bytes())
    }
}

/// Compares two secrets in time independent of where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    use sha2::Digest;
    let (a, b) = (sha2::Sha256::digest(a), sha2::Sha256::digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// The endpoints, over `state`.
pub fn router(state: Arc<StatusState>) -> axum::Router {
    axum::Router::new()
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/metrics", get(api::metrics))
        .route("/", get(page::status_page))
        .route("/search", get(page::status_page))
        .route("/api/status", get(api::status))
        .route("/api/runs", get(api::runs))
        .route("/api/search", get(api::search))
        .route("/api/sync", post(api::sync))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            api::guard,
        ))
        .with_state(state)
}
