//! The retry and rate-limit policy every cloud connector shares.
//!
//! Exponential backoff with full jitter (the scheme Google and Microsoft both
//! document for their throttling errors), honouring a server's `Retry-After`
//! when it gives one, bounded in attempts. A [`RateLimiter`] spaces requests
//! so a connector stays under a configured requests-per-minute budget.

use std::future::Future;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::Mutex;

use crate::error::ConnectorError;

/// How often and how long to retry transient failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The backoff ceiling of the first retry.
    pub base_delay: Duration,
    /// The largest wait between two attempts.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(32),
        }
    }
}

impl RetryPolicy {
    /// How long to wait before attempt `attempt + 1` after `error`
    /// (`attempt` counts from 1), or `None` when the error is not transient
    /// or the attempts are spent.
    pub fn delay_after(&self, attempt: u32, error: &ConnectorError) -> Option<Duration> {
        if !error.is_transient() || attempt >= self.max_attempts {
            return None;
        }
        if let ConnectorError::Throttled {
            retry_after: Some(wait),
            ..
        } = error
        {
            return Some((*wait).min(self.max_delay));
        }
        let exp = attempt.saturating_sub(1).min(16);
        let ceiling = self
            .base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        let jittered = rand::thread_rng().gen_range(millis / 2..=millis.max(1));
        Some(Duration::from_millis(jittered))
    }

    /// Runs `call` until it succeeds, fails for good, or the attempts are
    /// spent; the last error is returned.
    pub async fn run<T, F, Fut>(&self, what: &str, mut call: F) -> Result<T, ConnectorError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ConnectorError>>,
    {
        let mut attempt = 1;
        loop {
            match call().await {
                Ok(value) => return Ok(value),
                Err(error) => match self.delay_after(attempt, &error) {
                    Some(wait) => {
                        tracing::warn!(%error, attempt, wait_ms = wait.as_millis() as u64, "{what}: retrying");
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                    }
                    None => return Err(error),
                },
            }
        }
    }
}

/// Spaces requests evenly so that no more than `per_minute` start in any
/// minute. Shared by all tasks of one connector.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    next: Mutex<Instant>,
}

impl RateLimiter {
    /// A limiter for `per_minute` requests a minute (0 means unlimited).
    pub fn per_minute(per_minute: u32) -> Self {
        let interval = if per_minute == 0 {
            Duration::ZERO
        } else {
            Duration::from_secs(60) / per_minute
        };
        RateLimiter {
            interval,
            next: Mutex::new(Instant::now()),
        }
    }

    /// The spacing between two requests.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Waits until the next request may start.
    pub async fn acquire(&self) {
        if self.interval.is_zero() {
            return;
        }
        let start = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let start = (*next).max(now);
            *next = start + self.interval;
            start
        };
        tokio::time::sleep_until(start.into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn quick() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
        }
    }

    #[tokio::test]
    async fn transient_failures_are_retried_until_success() {
        let calls = AtomicU32::new(0);
        let result = quick()
            .run("list users", || async {
                if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(ConnectorError::retryable("500"))
                } else {
                    Ok(7)
                }
            })
            .await;
        assert_eq!(result.ok(), Some(7));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn permanent_failures_are_not_retried() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = quick()
            .run("create contact", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(ConnectorError::permanent("invalid"))
            })
            .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn attempts_are_bounded() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = quick()
            .run("list groups", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(ConnectorError::throttled(None, "429"))
            })
            .await;
        assert!(matches!(result, Err(ConnectorError::Throttled { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_ceiling() {
        let policy = RetryPolicy {
            max_delay: Duration::from_secs(10),
            ..RetryPolicy::default()
        };
        let asked = ConnectorError::throttled(Some(Duration::from_secs(3)), "slow down");
        assert_eq!(policy.delay_after(1, &asked), Some(Duration::from_secs(3)));
        let greedy = ConnectorError::throttled(Some(Duration::from_secs(300)), "slow down");
        assert_eq!(
            policy.delay_after(1, &greedy),
            Some(Duration::from_secs(10))
        );
    }

    #[test]
    fn backoff_grows_and_stays_within_its_ceiling() {
        let policy = RetryPolicy::default();
        let error = ConnectorError::retryable("503");
        for attempt in 1..6 {
            let wait = policy.delay_after(attempt, &error).unwrap_or_default();
            let ceiling = policy.base_delay * (1 << (attempt - 1));
            assert!(
                wait <= ceiling.min(policy.max_delay),
                "attempt {attempt}: {wait:?}"
            );
            assert!(
                wait >= ceiling.min(policy.max_delay) / 2,
                "attempt {attempt}: {wait:?}"
            );
        }
    }

    #[tokio::test]
    async fn the_rate_limiter_spaces_requests() {
        let limiter = RateLimiter::per_minute(60_000); // one per millisecond
        let start = Instant::now();
        for _ in 0..20 {
            limiter.acquire().await;
        }
        assert!(start.elapsed() >= Duration::from_millis(19));
    }
}
