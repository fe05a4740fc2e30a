//! Client-side pacing: stay under a service's documented limit instead of provoking 429s.
//!
//! A [`RateLimiter`] admits at most `max` requests in any sliding `window`. Key Vault documents
//! its limits per vault per 10 s (300 secret writes, 4,000 other operations); a workspace gets a
//! requests-per-second budget. The window is widened by a small margin because the service
//! counts arrivals, and a request admitted at the very end of our window can land at the start
//! of the server's next one.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub struct RateLimiter {
    max: usize,
    window: Duration,
    admitted: Mutex<VecDeque<Instant>>,
}

/// Added to every window; see the module docs.
pub const MARGIN: Duration = Duration::from_millis(150);

impl RateLimiter {
    pub fn new(max: u32, window: Duration) -> RateLimiter {
        RateLimiter { max: max.max(1) as usize, window: window + MARGIN, admitted: Mutex::new(VecDeque::new()) }
    }

    /// Waits until one more request fits in the window, then counts it.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut q = self.admitted.lock().expect("rate limiter lock");
                let now = Instant::now();
                while q.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
                    q.pop_front();
                }
                if q.len() < self.max {
                    q.push_back(now);
                    return;
                }
                self.window - now.duration_since(*q.front().expect("full queue has a front"))
            };
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn admits_max_per_window() {
        let l = RateLimiter::new(3, Duration::from_secs(10));
        let start = Instant::now();
        for _ in 0..3 {
            l.acquire().await;
        }
        assert_eq!(Instant::now(), start, "the first `max` are immediate");
        l.acquire().await;
        assert_eq!(Instant::now() - start, Duration::from_secs(10) + MARGIN);
        for _ in 0..2 {
            l.acquire().await;
        }
        assert_eq!(Instant::now() - start, Duration::from_secs(10) + MARGIN);
        l.acquire().await;
        assert_eq!(Instant::now() - start, 2 * (Duration::from_secs(10) + MARGIN));
    }
}
