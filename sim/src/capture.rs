//! The core's warnings, caught per rotation run.
//!
//! The core announces the one revocation the contract lets break a consumer's grace — the cap
//! (contract §7.4) — with a warning naming the credentials, before it revokes them. The checker
//! needs to know which revocations the core claims as the cap (and then verifies the claim), so
//! a small thread-local subscriber catches warnings and files each under the run whose future
//! was being polled when it was emitted ([`InRun`]). Only warnings and errors are looked at;
//! nothing is printed.

use std::cell::{Cell, RefCell};
use std::fmt::{self, Write};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};

thread_local! {
    /// The run being polled on this thread (0: none).
    static CURRENT: Cell<u32> = const { Cell::new(0) };
    static CAUGHT: RefCell<Vec<(u32, String)>> = const { RefCell::new(Vec::new()) };
}

/// Installs the subscriber for the calling thread until the guard is dropped.
pub fn install() -> tracing::dispatcher::DefaultGuard {
    CAUGHT.with(|c| c.borrow_mut().clear());
    tracing::dispatcher::set_default(&tracing::Dispatch::new(Catcher))
}

/// Every warning caught since the last call, with the run that emitted it.
pub fn drain() -> Vec<(u32, String)> {
    CAUGHT.with(|c| std::mem::take(&mut *c.borrow_mut()))
}

/// A run's future: marks the run as current while it is polled.
pub struct InRun<F> {
    run: u32,
    fut: Pin<Box<F>>,
}

impl<F: Future> InRun<F> {
    pub fn new(run: u32, fut: F) -> InRun<F> {
        InRun { run, fut: Box::pin(fut) }
    }
}

impl<F: Future> Future for InRun<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let before = CURRENT.with(|c| c.replace(self.run));
        let out = self.fut.as_mut().poll(cx);
        CURRENT.with(|c| c.set(before));
        out
    }
}

struct Catcher;

fn wanted(m: &Metadata<'_>) -> bool {
    *m.level() <= Level::WARN
}

impl Subscriber for Catcher {
    fn register_callsite(&self, m: &'static Metadata<'static>) -> Interest {
        if wanted(m) { Interest::always() } else { Interest::never() }
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::WARN)
    }
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        wanted(m)
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, e: &Event<'_>) {
        let mut line = Line::default();
        e.record(&mut line);
        let text = if line.fields.is_empty() { line.message } else { format!("{}{}", line.message, line.fields) };
        let run = CURRENT.with(|c| c.get());
        CAUGHT.with(|c| c.borrow_mut().push((run, text)));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[derive(Default)]
struct Line {
    message: String,
    fields: String,
}

impl Visit for Line {
    fn record_debug(&mut self, f: &Field, v: &dyn fmt::Debug) {
        if f.name() == "message" {
            let _ = write!(self.message, "{v:?}");
        } else {
            let _ = write!(self.fields, " {}={v:?}", f.name());
        }
    }
    fn record_str(&mut self, f: &Field, v: &str) {
        if f.name() == "message" {
            self.message.push_str(v);
        } else {
            let _ = write!(self.fields, " {}={v}", f.name());
        }
    }
}

/// The ids a cap warning of the core names ("… revoking the oldest (a, b), which …"), if
/// `text` is one.
pub fn cap_ids(text: &str) -> Option<Vec<String>> {
    let rest = text.split_once("revoking the oldest (")?.1;
    let list = rest.split_once(')')?.0;
    Some(list.split(", ").map(str::to_string).filter(|s| !s.is_empty()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_filed_under_the_polled_run() {
        let _g = install();
        futures::executor::block_on(InRun::new(7, async {
            tracing::warn!(
                target_name = "t",
                "the target holds more than 6 live tokens; revoking the oldest (x1, x2), which may"
            );
            tracing::info!("not caught");
        }));
        tracing::warn!("outside");
        let got = drain();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].0, 7);
        assert_eq!(cap_ids(&got[0].1), Some(vec!["x1".to_string(), "x2".to_string()]));
        assert_eq!(got[1], (0, "outside".to_string()));
        assert_eq!(cap_ids("revoked"), None);
    }
}
