//! What pat-rotator logs, caught per invocation.
//!
//! A schedule installs, for its thread, the subscriber production would have at the default
//! `RUST_LOG` (`logging::directives(None)`: info for pat-rotator, warn for the SDK and HTTP
//! crates) with both of production's formats — the text lines of `tracing_subscriber::fmt` and
//! the JSON lines of `logging::JsonLayer` — writing into a buffer instead of stdout, plus a
//! small layer that keeps each warning's message and `target_name` (the core announces a cap
//! revocation with a warning naming the credentials; the checker verifies the claim).
//!
//! Each line is filed under the invocation whose future was being polled when it was emitted
//! ([`InRun`] sets a thread-local); the world drains the buffer at every request and checks
//! every line for credential values (invariant 0).

use std::cell::{Cell, RefCell};
use std::fmt::{self, Write as _};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pat_rotator::logging::{JsonLayer, LineSink};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context as LayerContext, Layer, SubscriberExt};

thread_local! {
    /// The invocation being polled on this thread (0: none).
    static CURRENT: Cell<u32> = const { Cell::new(0) };
    static CAUGHT: RefCell<Vec<(u32, Line)>> = const { RefCell::new(Vec::new()) };
}

/// One thing pat-rotator said.
#[derive(Debug, Clone)]
pub struct Line {
    pub text: String,
    /// For a warning caught by the structured layer: its `target_name` field.
    pub target: Option<String>,
    /// A warning (or error) of the structured layer, rather than a formatted log line.
    pub warn: bool,
}

/// The invocation being polled on this thread.
pub fn current() -> u32 {
    CURRENT.with(|c| c.get())
}

/// Everything caught since the last call, with the invocation that emitted it.
pub fn drain() -> Vec<(u32, Line)> {
    CAUGHT.with(|c| std::mem::take(&mut *c.borrow_mut()))
}

fn push(line: Line) {
    let inv = current();
    CAUGHT.with(|c| c.borrow_mut().push((inv, line)));
}

/// Installs the subscriber for the calling thread until the guard is dropped.
pub fn install() -> tracing::dispatcher::DefaultGuard {
    CAUGHT.with(|c| c.borrow_mut().clear());
    let filter = EnvFilter::new(pat_rotator::logging::directives(None));
    let subscriber = tracing_subscriber::registry().with(filter).with(Warnings).with(JsonLayer::new(JsonLines)).with(
        tracing_subscriber::fmt::layer().with_ansi(false).with_target(false).without_time().with_writer(TextLines),
    );
    tracing::dispatcher::set_default(&tracing::Dispatch::new(subscriber))
}

/// A future that marks its invocation as current while it is polled.
pub struct InRun<F> {
    inv: u32,
    fut: Pin<Box<F>>,
}

impl<F: Future> InRun<F> {
    pub fn new(inv: u32, fut: F) -> InRun<F> {
        InRun { inv, fut: Box::pin(fut) }
    }
}

impl<F: Future> Future for InRun<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let before = CURRENT.with(|c| c.replace(self.inv));
        let out = self.fut.as_mut().poll(cx);
        CURRENT.with(|c| c.set(before));
        out
    }
}

/// JSON lines, as `PAT_LOG_FORMAT=json` writes them.
struct JsonLines;

impl LineSink for JsonLines {
    fn write_line(&self, _level: &Level, line: &str) {
        push(Line { text: line.to_string(), target: None, warn: false });
    }
}

/// Text lines, as the default format writes them.
struct TextLines;

/// One formatted text line being written.
pub struct TextLine(Vec<u8>);

impl std::io::Write for TextLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for TextLine {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            push(Line { text: String::from_utf8_lossy(&self.0).into_owned(), target: None, warn: false });
        }
    }
}

impl<'a> MakeWriter<'a> for TextLines {
    type Writer = TextLine;
    fn make_writer(&'a self) -> TextLine {
        TextLine(Vec::new())
    }
}

/// Warnings and errors with their `target_name`.
struct Warnings;

impl<S: Subscriber> Layer<S> for Warnings {
    fn on_event(&self, e: &Event<'_>, _ctx: LayerContext<'_, S>) {
        if *e.metadata().level() > Level::WARN {
            return;
        }
        let mut f = Fields::default();
        e.record(&mut f);
        push(Line { text: f.message, target: f.target_name, warn: true });
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    target_name: Option<String>,
}

impl Visit for Fields {
    fn record_debug(&mut self, f: &Field, v: &dyn fmt::Debug) {
        match f.name() {
            "message" => {
                let _ = write!(self.message, "{v:?}");
            }
            "target_name" => self.target_name = Some(format!("{v:?}")),
            _ => {}
        }
    }
    fn record_str(&mut self, f: &Field, v: &str) {
        match f.name() {
            "message" => self.message.push_str(v),
            "target_name" => self.target_name = Some(v.to_string()),
            _ => {}
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
    fn lines_are_filed_under_the_polled_invocation() {
        let _g = install();
        futures::executor::block_on(InRun::new(7, async {
            tracing::warn!(
                target_name = "t",
                "the target holds more than 6 live tokens; revoking the oldest (x1, x2), which may"
            );
            tracing::debug!("not caught: below the default level");
        }));
        tracing::info!("outside");
        let got = drain();
        let warn: Vec<&(u32, Line)> = got.iter().filter(|(_, l)| l.warn).collect();
        assert_eq!(warn.len(), 1, "{got:?}");
        assert_eq!((warn[0].0, warn[0].1.target.as_deref()), (7, Some("t")));
        assert_eq!(cap_ids(&warn[0].1.text), Some(vec!["x1".to_string(), "x2".to_string()]));
        // The warning as a JSON line and as a text line; "outside" in both formats, unfiled.
        let json: Vec<&(u32, Line)> = got.iter().filter(|(_, l)| l.text.starts_with('{')).collect();
        assert_eq!(json.len(), 2, "{got:?}");
        assert!(json[0].1.text.contains("\"target\":\"t\""), "{got:?}");
        assert!(
            got.iter().any(|(i, l)| *i == 0 && !l.warn && l.text.contains("INFO") && l.text.contains("outside")),
            "{got:?}"
        );
        assert_eq!(cap_ids("revoked"), None);
    }
}
