//! One retry policy for every idempotent call, bounded by the invocation's deadline.
//!
//! The deadline is task-local: the engine sets it around each target's work with [`within`],
//! and every call made on that target's behalf — ours or the Azure SDK's, at any depth — sees
//! it without threading a parameter through every signature.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Code, Error, Result};

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `fut` with `deadline` as the deadline of every call it makes.
pub async fn within<F: Future>(deadline: Instant, fut: F) -> F::Output {
    DEADLINE.scope(deadline, fut).await
}

/// The current deadline, if one is set.
pub fn deadline() -> Option<Instant> {
    DEADLINE.try_with(|d| *d).ok()
}

/// After the deadline, calls still get one short attempt, so that compensation (deleting a
/// token whose secret write failed) is not skipped because the budget ran out just before.
const AFTER_DEADLINE_ATTEMPT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Total attempts (1 = no retry).
    pub attempts: u32,
    /// First back-off; doubled per attempt, with ±20 % jitter.
    pub base_delay: Duration,
    /// Longest single wait (also caps a `Retry-After`).
    pub max_delay: Duration,
    /// Timeout of one attempt.
    pub call_timeout: Duration,
    /// Where the jitter comes from.
    pub jitter: Jitter,
}

/// The randomness of the back-off's jitter: the system's, or a seeded stream (a simulation,
/// which must replay byte for byte).
#[derive(Debug, Clone, Default)]
pub struct Jitter(Option<std::sync::Arc<std::sync::Mutex<u64>>>);

impl Jitter {
    /// A deterministic stream (SplitMix64) from `seed`.
    pub fn seeded(seed: u64) -> Jitter {
        Jitter(Some(std::sync::Arc::new(std::sync::Mutex::new(seed))))
    }

    /// A number in `0..n`.
    fn below(&self, n: u64) -> u64 {
        let Some(state) = &self.0 else {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos(),
            );
            return h.finish() % n;
        };
        let mut s = state.lock().expect("jitter lock");
        *s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }

    /// ±20 % around `d`, so that many targets backing off together do not retry in lockstep.
    fn apply(&self, d: Duration) -> Duration {
        let r = self.below(4001) as f64 / 10_000.0; // 0.0 ..= 0.4
        d.mul_f64(0.8 + r)
    }
}

impl RetryPolicy {
    /// Timeout for the next attempt: the call timeout, cut to what is left of the deadline.
    pub fn attempt_timeout(&self) -> Duration {
        match deadline() {
            None => self.call_timeout,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() { self.call_timeout.min(AFTER_DEADLINE_ATTEMPT) } else { self.call_timeout.min(left) }
            }
        }
    }

    /// Runs one attempt of `op` under the attempt timeout.
    pub async fn once<T, Fut>(&self, what: &str, fut: Fut) -> Result<T>
    where
        Fut: Future<Output = Result<T>>,
    {
        let limit = self.attempt_timeout();
        match tokio::time::timeout(limit, fut).await {
            Ok(r) => r,
            Err(_) => {
                Err(Error::new(Code::Timeout, format!("{what}: no answer within {} s", limit.as_secs_f32()))
                    .transient())
            }
        }
    }

    /// Runs `op` until it succeeds, fails for good, runs out of attempts, or the next wait would
    /// pass the deadline. The last error is returned as is (its code already says what
    /// happened: `throttled`, `upstream_unavailable`, `timeout`, …).
    pub async fn run<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempt = 1;
        loop {
            let err = match self.once(what, op()).await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if !err.transient {
                return Err(err);
            }
            let wait = match self.next_wait(attempt, &err) {
                Ok(w) => w,
                Err(stop) => return Err(self.exhausted(err, attempt, stop)),
            };
            tracing::debug!(what, attempt, wait_ms = wait.as_millis() as u64, error = %err, "retrying");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// How long to wait after failed attempt number `attempt` (1-based) before the next one:
    /// the service's `Retry-After` if it sent one, else exponential back-off with jitter, capped.
    /// `Err` when there is to be no next attempt.
    pub fn next_wait(&self, attempt: u32, err: &Error) -> std::result::Result<Duration, Stop> {
        if attempt >= self.attempts {
            return Err(Stop::Attempts);
        }
        let backoff = self.base_delay.saturating_mul(1 << (attempt - 1).min(16));
        let wait = err.retry_after.unwrap_or_else(|| self.jitter.apply(backoff)).min(self.max_delay);
        match deadline() {
            Some(d) if Instant::now() + wait >= d => Err(Stop::Deadline),
            _ => Ok(wait),
        }
    }

    fn exhausted(&self, mut e: Error, attempts: u32, stop: Stop) -> Error {
        if attempts > 1 {
            e.message.push_str(&format!(" (after {attempts} attempts)"));
        }
        if stop == Stop::Deadline {
            e.message.push_str(" (the invocation's time budget does not allow another attempt)");
        }
        e
    }
}

/// Why [`RetryPolicy::next_wait`] allows no further attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Attempts,
    Deadline,
}

/// Parses `Retry-After` in integer (or fractional) seconds; HTTP dates are not used by these
/// services. A missing or unparseable value means "back off as usual".
pub fn parse_retry_after(v: Option<&str>) -> Option<Duration> {
    let s = v?.trim();
    let secs: f64 = s.parse().ok()?;
    if secs.is_finite() && secs >= 0.0 { Some(Duration::from_secs_f64(secs.min(3600.0))) } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn policy() -> RetryPolicy {
        RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(50),
            call_timeout: Duration::from_secs(5),
            jitter: Jitter::default(),
        }
    }

    #[tokio::test]
    async fn retries_transient_then_succeeds() {
        let n = AtomicU32::new(0);
        let r = policy()
            .run("op", || async {
                if n.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(Error::new(Code::Throttled, "429").transient())
                } else {
                    Ok(7)
                }
            })
            .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(n.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn permanent_errors_are_not_retried() {
        let n = AtomicU32::new(0);
        let r: Result<()> = policy()
            .run("op", || async {
                n.fetch_add(1, Ordering::SeqCst);
                Err(Error::new(Code::KeyvaultForbidden, "403"))
            })
            .await;
        assert_eq!(r.unwrap_err().code, Code::KeyvaultForbidden);
        assert_eq!(n.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn gives_up_when_retry_after_passes_the_deadline() {
        let n = AtomicU32::new(0);
        let deadline = Instant::now() + Duration::from_millis(200);
        let mut p = policy();
        p.max_delay = Duration::from_secs(60);
        let r: Result<()> = within(
            deadline,
            p.run("op", || async {
                n.fetch_add(1, Ordering::SeqCst);
                Err(Error::new(Code::Throttled, "429").transient().with_retry_after(Some(Duration::from_secs(30))))
            }),
        )
        .await;
        let e = r.unwrap_err();
        assert_eq!(e.code, Code::Throttled);
        assert_eq!(e.retry_after, Some(Duration::from_secs(30)));
        assert_eq!(n.load(Ordering::SeqCst), 1);
        assert!(Instant::now() < deadline, "must not sleep past the deadline");
    }

    #[tokio::test]
    async fn attempt_timeout_becomes_a_timeout_error() {
        let mut p = policy();
        p.attempts = 1;
        p.call_timeout = Duration::from_millis(20);
        let r: Result<()> = p
            .run("slow", || async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(())
            })
            .await;
        assert_eq!(r.unwrap_err().code, Code::Timeout);
    }

    #[test]
    fn retry_after_parsing() {
        assert_eq!(parse_retry_after(Some("2")), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(Some(" 0.5 ")), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(parse_retry_after(None), None);
    }
}
