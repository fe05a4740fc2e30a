//! Client-side pacing: stay under a service's documented limit instead of provoking 429s.
//!
//! A [`RateLimiter`] admits at most `max` requests in any sliding `window`. Key Vault documents
//! its limits per vault per 10 s (300 secret writes, 4,000 other operations) and, for all vaults
//! of a subscription and region together, five times that; a workspace gets a
//! requests-per-second budget. The window is widened by a small margin because the service
//! counts arrivals, and a request admitted at the very end of our window can land at the start
//! of the server's next one.
//!
//! Limiters are stacked with [`Pace`]: a Key Vault request passes its vault's limiter and the
//! limiter all vaults of the process share (contract §11), writes and other operations each in
//! their own pair.
//!
//! **Reservations.** A place in a window can be *reserved* ahead of the request and *stamped*
//! when the request is sent: a reservation holds room in the window without a time, and the
//! stamp records the moment the request actually left. The rotation reserves its secret write
//! before it creates a credential, so a credential never waits for pacing between its creation
//! and its write (contract §11: at most 5 minutes). A reservation dropped unstamped (the create
//! failed) gives its room back. Since room is counted as stamps in the window plus reservations
//! held, no window ever holds more than `max` stamps, however late a reservation is stamped.
//!
//! **Priority.** Waiters queue by [`Priority`], then by arrival: an interactive request
//! (ProvisionPat, SecretEvent, Status) is served before every operation a pass has queued. The
//! priority is task-local, like the deadline in [`super::retry`]: the engine sets it around a
//! pass with [`with_priority`], and every request made on its behalf, at any depth, sees it.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Who is waiting. Lower goes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// A caller is waiting for the answer: ProvisionPat, SecretEvent, Status, a CLI read.
    Interactive,
    /// A rotation pass (RotatePat, `rotate`): its queued operations wait for any interactive one.
    Pass,
}

tokio::task_local! {
    static PRIORITY: Priority;
}

/// Runs `fut` with every paced request it makes queued as `priority`.
pub async fn with_priority<F: Future>(priority: Priority, fut: F) -> F::Output {
    PRIORITY.scope(priority, fut).await
}

/// The priority of the current task; [`Priority::Interactive`] when none was set (a request
/// made outside a pass is made for someone who waits for it).
pub fn priority() -> Priority {
    PRIORITY.try_with(|p| *p).unwrap_or(Priority::Interactive)
}

/// Added to every window; see the module docs.
pub const MARGIN: Duration = Duration::from_millis(150);

#[derive(Debug)]
pub struct RateLimiter {
    max: usize,
    window: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// When each admitted request was sent, oldest first.
    stamped: VecDeque<Instant>,
    /// Reservations granted and not yet stamped or released.
    held: usize,
    /// Waiters in the order they are served: by priority, then by arrival.
    queue: BTreeMap<(Priority, u64), Arc<Notify>>,
    arrivals: u64,
    /// The most waiters of each priority queued at once (for tests and diagnostics).
    peak: [usize; 2],
}

impl State {
    fn prune(&mut self, now: Instant, window: Duration) {
        while self.stamped.front().is_some_and(|t| now.duration_since(*t) >= window) {
            self.stamped.pop_front();
        }
    }

    fn room(&self, max: usize) -> bool {
        self.stamped.len() + self.held < max
    }

    /// Wakes whoever is now first in line.
    fn wake_head(&self) {
        if let Some(n) = self.queue.values().next() {
            n.notify_one();
        }
    }
}

impl RateLimiter {
    pub fn new(max: u32, window: Duration) -> RateLimiter {
        RateLimiter { max: max.max(1) as usize, window: window + MARGIN, state: Mutex::new(State::default()) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most waiters of `priority` that were queued at once.
    pub fn peak_queued(&self, priority: Priority) -> usize {
        self.lock().peak[priority as usize]
    }

    /// Waits until one more request fits in the window, then counts it as sent now.
    pub async fn acquire(self: &Arc<Self>) {
        self.reserve().await.stamp();
    }

    /// Waits for room in the window (behind every waiter of higher priority and every earlier
    /// one of the same) and holds it until the reservation is stamped or dropped.
    pub async fn reserve(self: &Arc<Self>) -> Reservation {
        let priority = priority();
        let (key, notify) = {
            let mut st = self.lock();
            st.prune(Instant::now(), self.window);
            if st.queue.is_empty() && st.room(self.max) {
                st.held += 1;
                return Reservation { limiter: Some(self.clone()) };
            }
            st.arrivals += 1;
            let key = (priority, st.arrivals);
            let notify = Arc::new(Notify::new());
            st.queue.insert(key, notify.clone());
            let queued = st.queue.keys().filter(|(p, _)| *p == priority).count();
            let peak = &mut st.peak[priority as usize];
            *peak = (*peak).max(queued);
            (key, notify)
        };
        // Leaves the queue if this future is dropped while waiting (a deadline, a shutdown).
        let mut place = Place { limiter: self, key: Some(key) };
        loop {
            let wait = {
                let mut st = self.lock();
                let now = Instant::now();
                st.prune(now, self.window);
                if st.queue.keys().next() == Some(&key) {
                    if st.room(self.max) {
                        st.queue.remove(&key);
                        place.key = None;
                        st.held += 1;
                        // The next in line may fit too (several reservations released at once).
                        st.wake_head();
                        return Reservation { limiter: Some(self.clone()) };
                    }
                    // Full: room comes when the oldest stamp leaves the window, or when a
                    // reservation is released (which notifies).
                    st.stamped.front().map(|t| self.window.saturating_sub(now.duration_since(*t)))
                } else {
                    None
                }
            };
            match wait {
                Some(d) => {
                    tokio::select! {
                        _ = tokio::time::sleep(d) => {}
                        _ = notify.notified() => {}
                    }
                }
                None => notify.notified().await,
            }
        }
    }
}

/// A waiter's place in the queue, given up when its future is dropped.
struct Place<'a> {
    limiter: &'a RateLimiter,
    key: Option<(Priority, u64)>,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let mut st = self.limiter.lock();
            st.queue.remove(&key);
            st.wake_head();
        }
    }
}

/// Room held in one limiter's window: [`Reservation::stamp`] when the request is sent; dropping
/// it unstamped gives the room back.
#[derive(Debug)]
#[must_use = "a reservation holds room until it is stamped or dropped"]
pub struct Reservation {
    limiter: Option<Arc<RateLimiter>>,
}

impl Reservation {
    /// Counts the request as sent now.
    pub fn stamp(mut self) {
        if let Some(l) = self.limiter.take() {
            let mut st = l.lock();
            st.held -= 1;
            st.stamped.push_back(Instant::now());
            // The head may be waiting for a release with no stamp to time its sleep by: it
            // has one now.
            st.wake_head();
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(l) = self.limiter.take() {
            let mut st = l.lock();
            st.held -= 1;
            st.wake_head();
        }
    }
}

/// Limiters a request passes together, narrowest first (a vault's own, then the one all
/// vaults share): the room of each is reserved in that order, so a request never holds the
/// shared room while it waits for its own vault's.
#[derive(Debug, Clone)]
pub struct Pace(Vec<Arc<RateLimiter>>);

impl Pace {
    pub fn new(layers: Vec<Arc<RateLimiter>>) -> Pace {
        Pace(layers)
    }

    /// Room in every layer, held until stamped or dropped.
    pub async fn reserve(&self) -> Reservations {
        let mut held = Vec::with_capacity(self.0.len());
        for l in &self.0 {
            held.push(l.reserve().await);
        }
        Reservations(held)
    }

    /// Waits for room in every layer and counts the request as sent now.
    pub async fn acquire(&self) {
        self.reserve().await.stamp();
    }
}

/// A [`Reservation`] in each layer of a [`Pace`].
#[derive(Debug)]
#[must_use = "reservations hold room until they are stamped or dropped"]
pub struct Reservations(Vec<Reservation>);

impl Reservations {
    /// Counts the request as sent now, in every layer.
    pub fn stamp(self) {
        for r in self.0 {
            r.stamp();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(10);

    fn limiter(max: u32) -> Arc<RateLimiter> {
        Arc::new(RateLimiter::new(max, W))
    }

    #[tokio::test(start_paused = true)]
    async fn admits_max_per_window() {
        let l = limiter(3);
        let start = Instant::now();
        for _ in 0..3 {
            l.acquire().await;
        }
        assert_eq!(Instant::now(), start, "the first `max` are immediate");
        l.acquire().await;
        assert_eq!(Instant::now() - start, W + MARGIN);
        for _ in 0..2 {
            l.acquire().await;
        }
        assert_eq!(Instant::now() - start, W + MARGIN);
        l.acquire().await;
        assert_eq!(Instant::now() - start, 2 * (W + MARGIN));
    }

    /// A reservation holds room without a time; its stamp starts its window when it is sent.
    #[tokio::test(start_paused = true)]
    async fn a_reservation_counts_from_its_stamp_and_a_dropped_one_gives_room_back() {
        let l = limiter(2);
        let start = Instant::now();
        let r1 = l.reserve().await;
        let r2 = l.reserve().await;
        // Full with two reservations: a third waits until one is released.
        let l2 = l.clone();
        let third = tokio::spawn(async move {
            l2.acquire().await;
            Instant::now()
        });
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(!third.is_finished(), "no room while two reservations are held");
        drop(r1);
        let at = third.await.unwrap();
        assert_eq!(at - start, Duration::from_secs(3), "a dropped reservation frees its room at once");
        // r2 is stamped 5 s later: its window runs from then, not from when it was reserved.
        tokio::time::sleep(Duration::from_secs(2)).await;
        r2.stamp();
        l.acquire().await;
        assert_eq!(Instant::now() - start, Duration::from_secs(3) + W + MARGIN, "after the first stamp leaves");
        l.acquire().await;
        assert_eq!(Instant::now() - start, Duration::from_secs(5) + W + MARGIN, "after the late stamp leaves");
    }

    /// An interactive waiter goes before every waiting pass operation, and the rest keep their
    /// order of arrival.
    #[tokio::test(start_paused = true)]
    async fn interactive_waiters_go_first() {
        let l = limiter(1);
        l.acquire().await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..4 {
            let (l, order) = (l.clone(), order.clone());
            tasks.push(tokio::spawn(with_priority(Priority::Pass, async move {
                l.acquire().await;
                order.lock().unwrap().push(format!("pass{i}"));
            })));
            tokio::task::yield_now().await;
        }
        let (l2, o2) = (l.clone(), order.clone());
        let interactive = tokio::spawn(with_priority(Priority::Interactive, async move {
            l2.acquire().await;
            o2.lock().unwrap().push("interactive".to_string());
        }));
        tokio::task::yield_now().await;
        assert_eq!(l.peak_queued(Priority::Pass), 4);
        assert_eq!(l.peak_queued(Priority::Interactive), 1);
        interactive.await.unwrap();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["interactive", "pass0", "pass1", "pass2", "pass3"]);
    }

    /// A waiter that gives up (its future dropped) leaves the queue and does not block the next.
    #[tokio::test(start_paused = true)]
    async fn a_cancelled_waiter_leaves_the_queue() {
        let l = limiter(1);
        l.acquire().await;
        let start = Instant::now();
        let gives_up = tokio::time::timeout(Duration::from_secs(1), l.reserve()).await;
        assert!(gives_up.is_err());
        l.acquire().await;
        assert_eq!(Instant::now() - start, W + MARGIN);
        assert!(l.lock().queue.is_empty());
    }

    /// Layers: the narrower limiter is reserved first and the request counts in both.
    #[tokio::test(start_paused = true)]
    async fn layers_count_in_every_limiter() {
        let (a, b, shared) = (limiter(2), limiter(2), limiter(3));
        let (pa, pb) = (Pace::new(vec![a.clone(), shared.clone()]), Pace::new(vec![b.clone(), shared.clone()]));
        let start = Instant::now();
        pa.acquire().await;
        pa.acquire().await;
        pb.acquire().await;
        assert_eq!(Instant::now(), start);
        // The shared limiter is full, although vault b has room.
        pb.acquire().await;
        assert_eq!(Instant::now() - start, W + MARGIN);
        assert_eq!(b.lock().stamped.len(), 2);
        assert_eq!(shared.lock().stamped.len(), 1, "three stamps left the window, one is new");
    }
}
