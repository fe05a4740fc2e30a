//! Key Vault's throttling: each vault's own budget and the budget all vaults of one
//! subscription and region share (contract §11; "Azure Key Vault service limits").
//!
//! Per vault and per 10 seconds: 300 secret writes (`PUT /secrets/{name}`) and 4,000 other
//! transactions; per subscription and region five times that. The fakes started by one
//! [`crate::Emulators`] form one subscription and region, so every vault fake also counts
//! against one [`KvSubscription`]. A request is admitted only when both budgets have room, and
//! a refused request counts against neither (the throttling guidance: "Failed requests that
//! return a 429 do not count towards the throttle limits").
//!
//! The answer to an excess request is the one recorded from Key Vault (`AzureSignTool#219`,
//! 2023): 429 with `{"error":{"code":"Throttled","message":"Request was not processed because
//! too many requests were received. Reason: VaultRequestTypeLimitReached"}}` (146 bytes) and,
//! in that recording, no `Retry-After`. The same body is used when the subscription's budget is
//! the one exhausted: no recording of that case was found, so the fake does not invent a
//! second text; [`KvSubscription::throttled_count`] tells the cases apart.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::ratelimit::{Window, WindowMode};

/// One budget of Key Vault's throttling (service limits page: 300 secret writes and 4,000
/// other transactions per 10 seconds per vault).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvThrottle {
    /// Window length.
    pub window: Duration,
    /// Admitted `PUT /secrets/{name}` per window.
    pub write_limit: usize,
    /// Admitted other requests per window.
    pub other_limit: usize,
    /// Whether 429 answers carry `Retry-After` (whole seconds until the budget has room). The
    /// only full recording of a Key Vault 429 found has none, so the default is `false`.
    pub retry_after: bool,
}

impl Default for KvThrottle {
    fn default() -> Self {
        KvThrottle { window: Duration::from_secs(10), write_limit: 300, other_limit: 4000, retry_after: false }
    }
}

impl KvThrottle {
    /// The same budget with both limits multiplied by `factor` (a subscription's, from a vault's).
    pub fn times(self, factor: usize) -> KvThrottle {
        KvThrottle {
            write_limit: self.write_limit.saturating_mul(factor),
            other_limit: self.other_limit.saturating_mul(factor),
            ..self
        }
    }
}

/// Where a refused request stood: how long until the budget has room, and whether to say so.
pub(crate) struct Refusal {
    pub wait: Duration,
    pub retry_after: bool,
}

/// The two windows of one budget (writes, everything else), or none when throttling is off.
#[derive(Debug)]
pub(crate) struct Budget {
    throttle: Option<KvThrottle>,
    mode: WindowMode,
    /// Where fixed windows start: shared by every budget of one `Emulators`.
    origin: Instant,
    writes: Window,
    others: Window,
}

impl Budget {
    pub fn new(throttle: Option<KvThrottle>, mode: WindowMode, origin: Instant) -> Self {
        let t = throttle.unwrap_or_default();
        Budget {
            throttle,
            mode,
            origin,
            writes: Window::new(mode, origin, t.window, t.write_limit),
            others: Window::new(mode, origin, t.window, t.other_limit),
        }
    }

    pub fn throttle(&self) -> Option<KvThrottle> {
        self.throttle
    }

    /// Replaces the limits; the windows start empty.
    pub fn set(&mut self, throttle: Option<KvThrottle>) {
        *self = Budget::new(throttle, self.mode, self.origin);
    }

    /// Whether one more request (a secret write or not) fits now. Counts nothing.
    pub fn check(&mut self, write: bool, now: Instant) -> Result<(), Refusal> {
        let Some(t) = self.throttle else { return Ok(()) };
        let w = if write { &mut self.writes } else { &mut self.others };
        w.check(now).map_err(|wait| Refusal { wait, retry_after: t.retry_after })
    }

    /// Counts an admitted request.
    pub fn admit(&mut self, write: bool, now: Instant) {
        if self.throttle.is_some() {
            if write { self.writes.admit(now) } else { self.others.admit(now) }
        }
    }
}

/// The budget all vault fakes of one [`crate::Emulators`] share: one subscription and region.
/// Cheap to clone; all clones share it. From [`crate::Emulators::kv_subscription`].
#[derive(Clone)]
pub struct KvSubscription {
    inner: Arc<Mutex<Shared>>,
}

struct Shared {
    budget: Budget,
    throttled: u64,
}

impl KvSubscription {
    pub(crate) fn new(throttle: Option<KvThrottle>, mode: WindowMode, origin: Instant) -> Self {
        KvSubscription {
            inner: Arc::new(Mutex::new(Shared { budget: Budget::new(throttle, mode, origin), throttled: 0 })),
        }
    }

    /// The subscription-wide limits (`None`: none).
    pub fn throttle(&self) -> Option<KvThrottle> {
        self.lock().budget.throttle()
    }

    /// Replaces the subscription-wide limits (`None` = none) and empties its windows.
    pub fn set_throttle(&self, throttle: Option<KvThrottle>) {
        self.lock().budget.set(throttle);
    }

    /// Requests some vault answered 429 because the subscription's budget was exhausted (its
    /// own still had room). Each is also in that vault's [`crate::FakeKeyVault::throttled_count`].
    pub fn throttled_count(&self) -> u64 {
        self.lock().throttled
    }

    /// Checks the subscription's budget for one request and, when it has room, counts it there
    /// (the caller already checked the vault's own budget). A refusal is counted as such.
    pub(crate) fn admit(&self, write: bool, now: Instant) -> Result<(), Refusal> {
        let mut s = self.lock();
        match s.budget.check(write, now) {
            Ok(()) => {
                s.budget.admit(write, now);
                Ok(())
            }
            Err(r) => {
                s.throttled += 1;
                Err(r)
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_counts_nowhere_and_off_means_off() {
        let origin = Instant::now();
        let t = KvThrottle { window: Duration::from_secs(10), write_limit: 1, other_limit: 2, retry_after: true };
        let mut b = Budget::new(Some(t), WindowMode::Fixed, origin);
        assert!(b.check(true, origin).is_ok());
        b.admit(true, origin);
        let r = b.check(true, origin).expect_err("write budget exhausted");
        assert!(r.retry_after && r.wait == Duration::from_secs(10));
        assert!(b.check(false, origin).is_ok(), "other operations have their own budget");

        let sub = KvSubscription::new(Some(t.times(2)), WindowMode::Fixed, origin);
        assert!(sub.admit(true, origin).is_ok());
        assert!(sub.admit(true, origin).is_ok());
        assert!(sub.admit(true, origin).is_err());
        assert_eq!(sub.throttled_count(), 1);
        sub.set_throttle(None);
        for _ in 0..10 {
            assert!(sub.admit(true, origin).is_ok());
        }
        b.set(None);
        assert!(b.check(true, origin).is_ok());
    }
}
