//! The throttling algorithms of the fakes.
//!
//! Key Vault counts transactions per 10 seconds (separate budgets for secret writes and
//! everything else), per vault and per subscription, and requests it refuses do not count. Its
//! docs do not say whether the 10 s are fixed windows or a sliding one: [`Window`] offers both,
//! and the fake defaults to fixed windows on its own clock, a model independent of a client's
//! sliding-window pacer. Databricks only says it answers 429 with `Retry-After`; a token
//! bucket (burst, refill rate) is the usual model and the one the fake uses.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How a [`Window`] counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WindowMode {
    /// Consecutive fixed windows `[origin + k·w, origin + (k+1)·w)`; the count restarts at
    /// each boundary. All windows of one `Emulators` share the origin, so every vault and the
    /// subscription cross a boundary together.
    #[default]
    Fixed,
    /// At most `limit` admitted requests in any interval of length `w`.
    Sliding,
}

/// A request budget per window, counted either way. Checking and admitting are separate so
/// that a request facing two budgets (a vault's and its subscription's) is counted by
/// neither when either refuses it.
#[derive(Debug)]
pub(crate) enum Window {
    Fixed(FixedWindow),
    Sliding(SlidingWindow),
}

impl Window {
    pub fn new(mode: WindowMode, origin: Instant, window: Duration, limit: usize) -> Self {
        match mode {
            WindowMode::Fixed => Window::Fixed(FixedWindow::new(origin, window, limit)),
            WindowMode::Sliding => Window::Sliding(SlidingWindow::new(window, limit)),
        }
    }

    /// `Ok` when one more request would be admitted at `now`; otherwise how long until it
    /// would be. Counts nothing.
    pub fn check(&mut self, now: Instant) -> Result<(), Duration> {
        match self {
            Window::Fixed(w) => w.check(now),
            Window::Sliding(w) => w.check(now),
        }
    }

    /// Counts one admitted request at `now` (after a successful [`Window::check`]).
    pub fn admit(&mut self, now: Instant) {
        match self {
            Window::Fixed(w) => w.admit(now),
            Window::Sliding(w) => w.admit(now),
        }
    }
}

/// Fixed-window counter: at most `limit` admitted requests per window, windows aligned on
/// `origin`.
#[derive(Debug)]
pub(crate) struct FixedWindow {
    origin: Instant,
    window: Duration,
    limit: usize,
    /// Index of the window `count` belongs to.
    index: u128,
    count: usize,
}

impl FixedWindow {
    pub fn new(origin: Instant, window: Duration, limit: usize) -> Self {
        FixedWindow { origin, window, limit, index: 0, count: 0 }
    }

    fn index_at(&self, now: Instant) -> u128 {
        let nanos = self.window.as_nanos().max(1);
        now.saturating_duration_since(self.origin).as_nanos() / nanos
    }

    fn roll(&mut self, now: Instant) {
        let i = self.index_at(now);
        if i != self.index {
            self.index = i;
            self.count = 0;
        }
    }

    pub fn check(&mut self, now: Instant) -> Result<(), Duration> {
        self.roll(now);
        if self.count < self.limit {
            return Ok(());
        }
        let end_nanos = self.window.as_nanos().max(1).saturating_mul(self.index + 1);
        let ends = u64::try_from(end_nanos).ok().and_then(|n| self.origin.checked_add(Duration::from_nanos(n)));
        Err(ends.map_or(self.window, |e| e.saturating_duration_since(now)))
    }

    pub fn admit(&mut self, now: Instant) {
        self.roll(now);
        self.count += 1;
    }
}

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
    #[cfg(test)]
    pub fn try_admit(&mut self, now: Instant) -> Result<(), Duration> {
        self.check(now)?;
        self.admit(now);
        Ok(())
    }

    fn prune(&mut self, now: Instant) {
        while let Some(&first) = self.admitted.front() {
            if now.saturating_duration_since(first) >= self.window {
                self.admitted.pop_front();
            } else {
                break;
            }
        }
    }

    pub fn check(&mut self, now: Instant) -> Result<(), Duration> {
        self.prune(now);
        if self.admitted.len() < self.limit {
            return Ok(());
        }
        let oldest = self.admitted.front().copied().unwrap_or(now);
        Err(self.window.saturating_sub(now.saturating_duration_since(oldest)))
    }

    pub fn admit(&mut self, now: Instant) {
        self.prune(now);
        self.admitted.push_back(now);
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
    fn fixed_windows_restart_at_each_boundary() {
        let origin = Instant::now();
        let at = |ms: u64| origin + Duration::from_millis(ms);
        let mut w = Window::new(WindowMode::Fixed, origin, Duration::from_secs(10), 2);
        // Two admitted late in window 0 ...
        for t in [9_000, 9_900] {
            w.check(at(t)).unwrap();
            w.admit(at(t));
        }
        // ... the third is refused until the boundary, and the refusal is not counted ...
        assert_eq!(w.check(at(9_950)), Err(Duration::from_millis(50)));
        // ... and right after the boundary two more pass at once: four within 1.1 s, which a
        // sliding window of the same limit would never admit.
        for t in [10_000, 10_100] {
            w.check(at(t)).unwrap();
            w.admit(at(t));
        }
        assert_eq!(w.check(at(10_200)), Err(Duration::from_millis(9_800)));
        assert!(w.check(at(20_000)).is_ok());

        let mut s = Window::new(WindowMode::Sliding, origin, Duration::from_secs(10), 2);
        for t in [9_000, 9_900] {
            s.check(at(t)).unwrap();
            s.admit(at(t));
        }
        assert_eq!(s.check(at(10_000)), Err(Duration::from_millis(9_000)), "sliding: the pair still counts");
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
