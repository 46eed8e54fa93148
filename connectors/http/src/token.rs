//! OAuth access tokens: cached, replaced before they expire, obtained by
//! one caller at a time within one retry budget, and a refusal final for
//! the run.

use std::fmt;
use std::future::Future;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use coexist_connector::retry::RetryPolicy;
use coexist_connector::{ConnectorError, Secret};
use tokio::sync::Mutex;

/// An access token, with the instant from which it must be replaced.
#[derive(Clone)]
pub struct AccessToken {
    value: Secret,
    refresh_at: Instant,
}

impl AccessToken {
    /// A token a request started at `requested` obtained, living
    /// `lifetime`, replaced `margin` before it expires (at most half its
    /// lifetime before).
    pub fn new(value: String, requested: Instant, lifetime: Duration, margin: Duration) -> Self {
        AccessToken {
            value: Secret::new(value),
            refresh_at: requested + lifetime - margin.min(lifetime / 2),
        }
    }

    /// The `Authorization` header value.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.value.expose())
    }

    /// Whether it may still be used (not yet within its margin of expiry).
    pub fn is_fresh(&self) -> bool {
        Instant::now() < self.refresh_at
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

/// Why a connector's authentication failed for good, once it did: shared
/// by all its tokens, so that after one refusal nothing more is sent to
/// the system in the run, and every later call fails at once with the
/// same words.
#[derive(Debug, Default)]
pub struct FinalFailure {
    failed: OnceLock<ConnectorError>,
}

impl FinalFailure {
    /// Why authentication failed for good, when it did.
    pub fn get(&self) -> Option<ConnectorError> {
        self.failed.get().cloned()
    }

    /// Records that authentication failed for good; returns the error
    /// every later call returns (the first one recorded).
    pub fn record(&self, error: ConnectorError) -> ConnectorError {
        let _ = self.failed.set(error);
        self.failed.get().cloned().unwrap_or_else(|| {
            ConnectorError::authentication("authentication failed (no detail recorded)")
        })
    }

    /// A token request's last error as the authentication failure it
    /// means, after `attempts` attempts: a transient failure that outlived
    /// the retry budget says so.
    pub fn as_final(error: ConnectorError, attempts: u32) -> ConnectorError {
        let (message, cause) = match error {
            ConnectorError::Authentication { .. } => return error,
            ConnectorError::Retryable { message, cause }
            | ConnectorError::Throttled { message, cause, .. } => (
                format!(
                    "{message} (no access token after {attempts} attempt{}; nothing more is sent \
                     to this system in this run)",
                    if attempts == 1 { "" } else { "s" }
                ),
                cause,
            ),
            ConnectorError::Permanent { message, cause } => (message, cause),
        };
        ConnectorError::Authentication { message, cause }
    }
}

/// One cached token (one per resource or scope set).
#[derive(Default)]
pub struct TokenSlot {
    cached: Mutex<Option<AccessToken>>,
}

impl fmt::Debug for TokenSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSlot")
    }
}

impl TokenSlot {
    /// A valid token: the cached one, or a new one from `request` when it
    /// is close to its expiry, obtained within one budget of `retry`;
    /// concurrent callers wait for it. A token that could not be obtained
    /// is recorded in `failure` as final (an authentication error), and
    /// once `failure` holds an error every call returns it at once.
    pub async fn get<F, Fut>(
        &self,
        failure: &FinalFailure,
        retry: &RetryPolicy,
        what: &str,
        request: F,
    ) -> Result<AccessToken, ConnectorError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<AccessToken, ConnectorError>>,
    {
        if let Some(error) = failure.get() {
            return Err(error);
        }
        let mut cached = self.cached.lock().await;
        // Another caller may have given up while this one waited.
        if let Some(error) = failure.get() {
            return Err(error);
        }
        if let Some(token) = cached.as_ref().filter(|t| t.is_fresh()) {
            return Ok(token.clone());
        }
        match retry.run(what, request).await {
            Ok(token) => {
                *cached = Some(token.clone());
                Ok(token)
            }
            Err(error) => Err(failure.record(FinalFailure::as_final(error, retry.max_attempts))),
        }
    }

    /// Forgets `rejected` (a token an API answered 401 to), so the next
    /// [`Self::get`] requests a new one; a token another task already
    /// replaced is kept.
    pub async fn invalidate(&self, rejected: &AccessToken) {
        let mut cached = self.cached.lock().await;
        if cached
            .as_ref()
            .is_some_and(|token| token.value == rejected.value)
        {
            *cached = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn policy(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts: attempts,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
        }
    }

    #[tokio::test]
    async fn a_token_is_reused_until_its_margin_and_a_rejected_one_is_replaced() {
        let (slot, failure, retry) = (TokenSlot::default(), FinalFailure::default(), policy(3));
        let requests = AtomicU32::new(0);
        let request = || async {
            let n = requests.fetch_add(1, Ordering::SeqCst);
            Ok(AccessToken::new(
                format!("t{n}"),
                Instant::now(),
                Duration::from_secs(3600),
                Duration::from_secs(300),
            ))
        };
        let first = slot.get(&failure, &retry, "token", request).await.unwrap();
        let again = slot.get(&failure, &retry, "token", request).await.unwrap();
        assert_eq!(first.bearer(), "Bearer t0");
        assert_eq!(again.bearer(), "Bearer t0");
        slot.invalidate(&first).await;
        let fresh = slot.get(&failure, &retry, "token", request).await.unwrap();
        assert_eq!(fresh.bearer(), "Bearer t1");
        // A stale rejection (t0 again) does not throw away t1.
        slot.invalidate(&first).await;
        let kept = slot.get(&failure, &retry, "token", request).await.unwrap();
        assert_eq!(kept.bearer(), "Bearer t1");
    }

    #[tokio::test]
    async fn a_token_within_its_margin_is_replaced() {
        let (slot, failure, retry) = (TokenSlot::default(), FinalFailure::default(), policy(1));
        let requests = AtomicU32::new(0);
        // Living 10 s with a 300 s margin: replaced after 5 s (half its
        // life); requested 6 s ago, it is stale at once.
        let request = || async {
            let n = requests.fetch_add(1, Ordering::SeqCst);
            Ok(AccessToken::new(
                format!("t{n}"),
                Instant::now() - Duration::from_secs(6),
                Duration::from_secs(10),
                Duration::from_secs(300),
            ))
        };
        let first = slot.get(&failure, &retry, "token", request).await.unwrap();
        let second = slot.get(&failure, &retry, "token", request).await.unwrap();
        assert_eq!(
            (first.bearer(), second.bearer()),
            ("Bearer t0".into(), "Bearer t1".into())
        );
    }

    #[tokio::test]
    async fn a_token_that_cannot_be_obtained_fails_every_later_call_at_once() {
        let (slot, failure, retry) = (TokenSlot::default(), FinalFailure::default(), policy(2));
        let requests = AtomicU32::new(0);
        let request = || async {
            requests.fetch_add(1, Ordering::SeqCst);
            Err::<AccessToken, _>(ConnectorError::retryable("token endpoint: HTTP 503"))
        };
        let error = slot
            .get(&failure, &retry, "token", request)
            .await
            .unwrap_err();
        assert!(error.is_authentication());
        assert!(
            error.message().contains("no access token after 2 attempts"),
            "{error}"
        );
        assert_eq!(requests.load(Ordering::SeqCst), 2);
        let later = TokenSlot::default()
            .get(&failure, &retry, "token", request)
            .await
            .unwrap_err();
        assert_eq!(later.message(), error.message());
        assert_eq!(requests.load(Ordering::SeqCst), 2, "nothing more is sent");
    }
}
