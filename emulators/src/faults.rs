//! Fault injection, latency and call recording, shared by every fake.
//!
//! Each fake owns one [`Faults`]. Every request goes through `Faults::run`: it waits the
//! configured latency, then consults the injected rules for the request's *op* (a short name
//! such as `create` or `set`, listed in each fake's docs) and either answers with the fault,
//! delays, hangs, or runs the real handler — possibly replacing its answer afterwards, which
//! is how a "lost response" (the server did the work, the client never learned) is simulated,
//! or answering at once and running the handler later in the background, which is how a
//! gateway's 502 for a request it had already forwarded is simulated (the work lands after the
//! client was told it failed). Finally the request is appended to the call log that tests
//! assert on.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};

/// How long a "hang" lasts: longer than any client timeout a test would use.
const HANG: Duration = Duration::from_secs(3600);

/// The page Azure Application Gateway (v2) answers a 502 with.
pub const BAD_GATEWAY_HTML: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>Microsoft-Azure-Application-Gateway/v2</center>\r\n</body>\r\n</html>\r\n";

/// What to do with a request whose op matches an injected rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this instead of handling the request (nothing happens server-side).
    Status { status: u16, headers: Vec<(String, String)>, body: String },
    /// Wait, then handle normally.
    Delay(Duration),
    /// Never answer (the handler sleeps about an hour; nothing happens server-side).
    Hang,
    /// Handle the request (its effects happen), then answer with this instead.
    AfterEffect { status: u16, headers: Vec<(String, String)>, body: String },
    /// Handle the request (its effects happen), then never answer.
    AfterEffectHang,
    /// Answer with this at once; handle the request `after` later, in the background (its
    /// effects happen then, with the fake's clock of that moment, e.g. a Key Vault version's
    /// `created`). What the late handling answers goes nowhere, and it is not in the call log.
    LaterEffect { after: Duration, status: u16, headers: Vec<(String, String)>, body: String },
}

impl Fault {
    /// A bodiless answer with this status; refine with [`Fault::header`], [`Fault::json`], [`Fault::body`].
    pub fn status(status: u16) -> Self {
        Fault::Status { status, headers: Vec::new(), body: String::new() }
    }

    /// A bodiless answer (e.g. a gateway's 503).
    pub fn empty(status: u16) -> Self {
        Self::status(status)
    }

    /// An HTML answer, as gateways and load balancers send.
    pub fn html(status: u16, html: &str) -> Self {
        Self::status(status).header("Content-Type", "text/html").body(html)
    }

    /// Wait `d`, then handle normally.
    pub fn delay(d: Duration) -> Self {
        Fault::Delay(d)
    }

    /// Never answer.
    pub fn hang() -> Self {
        Fault::Hang
    }

    /// Perform the operation, then answer with `status` (refine like [`Fault::status`]).
    pub fn after_effect(status: u16) -> Self {
        Fault::AfterEffect { status, headers: Vec::new(), body: String::new() }
    }

    /// Perform the operation, then never answer.
    pub fn after_effect_hang() -> Self {
        Fault::AfterEffectHang
    }

    /// Turns a `Status` fault into the same answer given *after* performing the operation.
    pub fn performed(self) -> Self {
        match self {
            Fault::Status { status, headers, body } => Fault::AfterEffect { status, headers, body },
            Fault::Hang => Fault::AfterEffectHang,
            other => other,
        }
    }

    /// Turns a `Status` fault into the same answer given at once, with the operation performed
    /// `after` later (see [`Fault::LaterEffect`]): a gateway that gave up on a request its
    /// back end still carries out. Without this the answered operation never happens; with
    /// [`Fault::performed`] it has happened by the time the answer goes out.
    pub fn performed_after(self, after: Duration) -> Self {
        match self {
            Fault::Status { status, headers, body } | Fault::AfterEffect { status, headers, body } => {
                Fault::LaterEffect { after, status, headers, body }
            }
            Fault::LaterEffect { status, headers, body, .. } => Fault::LaterEffect { after, status, headers, body },
            other => other,
        }
    }

    /// A gateway's `502 Bad Gateway`: the HTML page Azure Application Gateway serves, with its
    /// `Server` header. Nothing happens server-side unless turned into [`Fault::performed`] /
    /// [`Fault::performed_after`].
    pub fn bad_gateway() -> Self {
        Self::html(502, BAD_GATEWAY_HTML).header("Server", "Microsoft-Azure-Application-Gateway/v2")
    }

    /// Adds a response header (no effect on `Delay`/`Hang`).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let Fault::Status { headers, .. } | Fault::AfterEffect { headers, .. } | Fault::LaterEffect { headers, .. } =
            &mut self
        {
            headers.push((name.to_string(), value.to_string()));
        }
        self
    }

    /// Sets a JSON body and `Content-Type: application/json`.
    pub fn json(self, value: serde_json::Value) -> Self {
        self.header("Content-Type", "application/json; charset=utf-8").body(&value.to_string())
    }

    /// Sets the raw body.
    pub fn body(mut self, text: &str) -> Self {
        if let Fault::Status { body, .. } | Fault::AfterEffect { body, .. } | Fault::LaterEffect { body, .. } =
            &mut self
        {
            *body = text.to_string();
        }
        self
    }
}

/// One recorded request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The fake's op name for the route (e.g. `set`, `create`, `token`).
    pub op: String,
    /// HTTP method.
    pub method: String,
    /// Request path (no query).
    pub path: String,
    /// Status answered; `0` when the request was never answered (`Hang`, `AfterEffectHang`).
    pub status: u16,
    /// When the request arrived.
    pub at: Instant,
    /// Object id of the authenticated caller, when the fake got that far.
    pub principal: Option<String>,
}

/// What a fake's handler produced: the answer and who was calling.
pub(crate) struct Outcome {
    pub response: HttpResponse,
    pub principal: Option<String>,
}

impl Outcome {
    pub fn anonymous(response: HttpResponse) -> Self {
        Outcome { response, principal: None }
    }
}

#[derive(Debug)]
struct Rule {
    op: String,
    fault: Fault,
    remaining: usize,
}

#[derive(Debug, Default)]
struct State {
    rules: VecDeque<Rule>,
    latency: Duration,
    calls: Vec<Call>,
}

/// Fault rules, latency and call log of one fake.
#[derive(Debug, Default)]
pub struct Faults {
    state: Mutex<State>,
}

impl Faults {
    pub(crate) fn with_latency(latency: Duration) -> Self {
        let f = Faults::default();
        f.set_latency(latency);
        f
    }

    /// Applies `fault` to the next `times` requests of `op` (`"*"` = any op;
    /// `usize::MAX` = always). Rules for the same request fire in the order injected.
    pub fn inject(&self, op: &str, fault: Fault, times: usize) {
        if times == 0 {
            return;
        }
        self.lock().rules.push_back(Rule { op: op.to_string(), fault, remaining: times });
    }

    /// Removes every injected rule (latency is kept).
    pub fn clear(&self) {
        self.lock().rules.clear();
    }

    /// Latency added before every request of this fake.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Current added latency.
    pub fn latency(&self) -> Duration {
        self.lock().latency
    }

    /// Every request so far, in arrival order of completion.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Number of recorded requests with this op (`"*"` = all).
    pub fn count(&self, op: &str) -> usize {
        self.lock().calls.iter().filter(|c| op == "*" || c.op == op).count()
    }

    /// Forgets the call log.
    pub fn reset_calls(&self) {
        self.lock().calls.clear();
    }

    fn take(&self, op: &str) -> Option<Fault> {
        let mut st = self.lock();
        let idx = st.rules.iter().position(|r| r.op == op || r.op == "*")?;
        let rule = &mut st.rules[idx];
        let fault = rule.fault.clone();
        if rule.remaining != usize::MAX {
            rule.remaining -= 1;
            if rule.remaining == 0 {
                st.rules.remove(idx);
            }
        }
        Some(fault)
    }

    fn record(&self, op: &str, req: &HttpRequest, status: u16, at: Instant, principal: Option<String>) {
        self.lock().calls.push(Call {
            op: op.to_string(),
            method: req.method().to_string(),
            path: req.path().to_string(),
            status,
            at,
            principal,
        });
    }

    /// Runs one request of `op` through latency, faults and the call log.
    ///
    /// `handler` is only polled when the request is to be performed, so a `Status` or `Hang`
    /// fault really leaves the fake's state untouched. It is `'static` so that a
    /// [`Fault::LaterEffect`] can run it after the answer went out (on the same thread: actix's
    /// `spawn` is local, so it need not be `Send`).
    pub(crate) async fn run<F>(&self, op: &str, req: &HttpRequest, handler: F) -> HttpResponse
    where
        F: Future<Output = Outcome> + 'static,
    {
        let at = Instant::now();
        let latency = self.latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let outcome = match self.take(op) {
            None => handler.await,
            Some(Fault::Delay(d)) => {
                tokio::time::sleep(d).await;
                handler.await
            }
            Some(Fault::Status { status, headers, body }) => Outcome::anonymous(reply(status, &headers, body)),
            Some(Fault::Hang) => {
                self.record(op, req, 0, at, None);
                tokio::time::sleep(HANG).await;
                return HttpResponse::GatewayTimeout().finish();
            }
            Some(Fault::AfterEffect { status, headers, body }) => {
                let done = handler.await;
                Outcome { response: reply(status, &headers, body), principal: done.principal }
            }
            Some(Fault::LaterEffect { after, status, headers, body }) => {
                actix_web::rt::spawn(async move {
                    tokio::time::sleep(after).await;
                    handler.await;
                });
                Outcome::anonymous(reply(status, &headers, body))
            }
            Some(Fault::AfterEffectHang) => {
                let done = handler.await;
                self.record(op, req, 0, at, done.principal);
                tokio::time::sleep(HANG).await;
                return HttpResponse::GatewayTimeout().finish();
            }
        };
        self.record(op, req, outcome.response.status().as_u16(), at, outcome.principal);
        outcome.response
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn reply(status: u16, headers: &[(String, String)], body: String) -> HttpResponse {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut b = HttpResponseBuilder::new(code);
    for (k, v) in headers {
        b.insert_header((k.as_str(), v.as_str()));
    }
    b.body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_fire_in_order_and_expire() {
        let f = Faults::default();
        f.inject("create", Fault::empty(503), 2);
        f.inject("*", Fault::empty(500), 1);
        f.inject("create", Fault::empty(429), usize::MAX);
        assert_eq!(f.take("create"), Some(Fault::empty(503)));
        assert_eq!(f.take("list"), Some(Fault::empty(500)));
        assert_eq!(f.take("create"), Some(Fault::empty(503)));
        assert_eq!(f.take("create"), Some(Fault::empty(429)));
        assert_eq!(f.take("create"), Some(Fault::empty(429)));
        assert_eq!(f.take("list"), None);
        f.clear();
        assert_eq!(f.take("create"), None);
    }

    #[test]
    fn builders_compose() {
        let f = Fault::status(429).header("Retry-After", "1").json(serde_json::json!({"a": 1}));
        match &f {
            Fault::Status { status, headers, body } => {
                assert_eq!(*status, 429);
                assert!(headers.iter().any(|(k, v)| k == "Retry-After" && v == "1"));
                assert_eq!(body, "{\"a\":1}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(f.clone().performed(), Fault::AfterEffect { status: 429, .. }));
        match f.performed_after(Duration::from_secs(3)) {
            Fault::LaterEffect { after, status, headers, body } => {
                assert_eq!((after, status, body.as_str()), (Duration::from_secs(3), 429, "{\"a\":1}"));
                assert!(headers.iter().any(|(k, v)| k == "Retry-After" && v == "1"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(Fault::delay(Duration::ZERO).performed_after(Duration::from_secs(1)), Fault::delay(Duration::ZERO));
        match Fault::bad_gateway().header("x-a", "b") {
            Fault::Status { status: 502, headers, body } => {
                assert!(body.contains("502 Bad Gateway"));
                assert!(headers.iter().any(|(k, v)| k == "Content-Type" && v == "text/html"));
                assert!(headers.iter().any(|(k, _)| k == "x-a"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
