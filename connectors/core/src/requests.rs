//! Counting the requests connectors send to their systems (the daemon's
//! `coexist_api_requests_total` and `coexist_api_throttled_requests_total`).
//!
//! The engine runs each call to a connector inside [`counting`] with that
//! system's [`RequestCounter`]; whatever sends a request on its behalf
//! calls [`request_sent`] (coexist-http's transport does, for every HTTP
//! request of the cloud connectors, token requests included). The counter
//! is task-local: a request sent from a task the connector spawned itself
//! is not counted unless that task runs inside [`counting`] too (with
//! [`current`]'s counter).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The requests sent to one system, and how many of them the system
/// throttled.
#[derive(Debug, Default)]
pub struct RequestCounter {
    requests: AtomicU64,
    throttled: AtomicU64,
}

/// What a [`RequestCounter`] counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// Requests sent (whatever their answer, or none).
    pub requests: u64,
    /// Requests the system answered by throttling (HTTP 429 or 503).
    pub throttled: u64,
}

impl RequestCounter {
    /// What was counted since the last `take`, counting again from zero.
    pub fn take(&self) -> RequestCounts {
        RequestCounts {
            requests: self.requests.swap(0, Ordering::Relaxed),
            throttled: self.throttled.swap(0, Ordering::Relaxed),
        }
    }
}

tokio::task_local! {
    static COUNTER: Arc<RequestCounter>;
}

/// Runs `future` with the requests it sends counted by `counter`.
pub async fn counting<F: Future>(counter: Arc<RequestCounter>, future: F) -> F::Output {
    COUNTER.scope(counter, future).await
}

/// The counter of the call running now, if any (for a task a connector
/// spawns: run it inside [`counting`] with this counter).
pub fn current() -> Option<Arc<RequestCounter>> {
    COUNTER.try_with(Arc::clone).ok()
}

/// One request was sent to the system of the call running now;
/// `throttled`: the system throttled it. Outside [`counting`], nothing is
/// counted.
pub fn request_sent(throttled: bool) {
    let _ = COUNTER.try_with(|counter| {
        counter.requests.fetch_add(1, Ordering::Relaxed);
        if throttled {
            counter.throttled.fetch_add(1, Ordering::Relaxed);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_are_counted_inside_counting_only() {
        request_sent(true);
        let counter = Arc::new(RequestCounter::default());
        counting(counter.clone(), async {
            request_sent(false);
            request_sent(true);
            assert!(current().is_some());
        })
        .await;
        request_sent(false);
        assert_eq!(
            counter.take(),
            RequestCounts {
                requests: 2,
                throttled: 1
            }
        );
        assert_eq!(counter.take(), RequestCounts::default(), "taken");
        assert!(current().is_none());
    }
}
