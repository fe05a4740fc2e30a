//! The two throttling algorithms the real services document.
//!
//! Key Vault counts transactions per vault in a sliding 10-second window (separate budgets for
//! secret writes and everything else), and requests it refuses do not count. Databricks only
//! says it answers 429 with `Retry-After`; a token bucket (burst, refill rate) is the usual
//! model and the one the fake uses.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Sliding-window counter: at most `limit` admitted requests in any `window`.
#[derive(Debug)]
pub(crate) struct SlidingWindow {
    window: Duration,
    limit: usize,
    admitted: VecDeque<Instant>,
}

impl SlidingWindow {
    pub fn new(window: Duration, limit: usize) -> Self {
        SlidingWindow { window, limit, admitted: VecDeque::new() }
    }

    /// Admits and counts the request, or returns how long until one more would be admitted.
    /// A refused request is not counted.
    pub fn try_admit(&mut self, now: Instant) -> Result<(), Duration> {
        while let Some(&first) = self.admitted.front() {
            if now.duration_since(first) >= self.window {
                self.admitted.pop_front();
            } else {
                break;
            }
        }
        if self.admitted.len() < self.limit {
            self.admitted.push_back(now);
            return Ok(());
        }
        let oldest = self.admitted.front().copied().unwrap_or(now);
        Err(self.window.saturating_sub(now.duration_since(oldest)))
    }
}

/// Token bucket: `burst` requests at once, refilled at `per_second`.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    burst: f64,
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(burst: u32, per_second: f64) -> Self {
        TokenBucket { burst: f64::from(burst), per_second, tokens: f64::from(burst), last: Instant::now() }
    }

    /// Takes a token, or returns how long until one is available.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        if self.per_second <= 0.0 {
            return Err(Duration::from_secs(60));
        }
        Err(Duration::from_secs_f64((1.0 - self.tokens) / self.per_second))
    }
}

/// `Retry-After` value: whole seconds, rounded up, at least 1.
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    let s = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    s.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_refuses_without_counting_and_slides() {
        let t0 = Instant::now();
        let mut w = SlidingWindow::new(Duration::from_secs(10), 2);
        assert!(w.try_admit(t0).is_ok());
        assert!(w.try_admit(t0 + Duration::from_secs(4)).is_ok());
        let wait = w.try_admit(t0 + Duration::from_secs(5)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(5));
        // refused requests are not counted: at t0+10 exactly one slot frees up
        assert!(w.try_admit(t0 + Duration::from_secs(10)).is_ok());
        assert!(w.try_admit(t0 + Duration::from_secs(10)).is_err());
        assert!(w.try_admit(t0 + Duration::from_secs(14)).is_ok());
    }

    #[test]
    fn bucket_refills() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(2, 1.0);
        b.last = t0;
        assert!(b.try_take(t0).is_ok());
        assert!(b.try_take(t0).is_ok());
        let wait = b.try_take(t0).unwrap_err();
        assert_eq!(retry_after_secs(wait), 1);
        assert!(b.try_take(t0 + Duration::from_millis(1000)).is_ok());
        assert_eq!(retry_after_secs(Duration::from_millis(2100)), 3);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
