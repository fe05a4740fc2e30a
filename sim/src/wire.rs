//! The one seam between pat-rotator and the world: an `azure_core::http::HttpClient` (the
//! engine's `Runtime::http`) that answers every request in process, and the process's clock
//! (`Runtime::clock`). Everything above it — the Key Vault SDK and its challenge, the Entra ID
//! credential and the token cache, the Databricks client, retries, timeouts, pacing, the
//! rotation, the engine, the handler — is production code.
//!
//! Every request awaits a seeded delay, makes its one effect in the world ([`World::serve`],
//! where its fault is drawn, the log written and the invariants checked), awaits another delay
//! and answers. The delays interleave concurrent invocations; a request whose answer takes
//! longer than the client waits is dropped by the client's own timeout after its effect; a
//! write the world lands later is a task of its own.

use std::sync::Arc;

use async_trait::async_trait;
use azure_core::http::headers::{HeaderName, Headers};
use azure_core::http::request::Body;
use azure_core::http::{AsyncRawResponse, HttpClient, Method, Request, StatusCode};
use pat_rotator::rotation::ports::Clock;
use serde_json::Value;
use time::OffsetDateTime;

use crate::world::{Shared, lock};

/// A request as the world reads it.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: Method,
    pub host: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub url: String,
    /// `Authorization: Bearer …`.
    pub bearer: Option<String>,
    /// `Authorization: Basic …`, decoded: (user, password).
    pub basic: Option<(String, String)>,
    pub identity_header: Option<String>,
    pub body: bytes::Bytes,
}

impl Call {
    pub fn from_request(req: &Request) -> Call {
        let url = req.url();
        let header = |n: &'static str| req.headers().get_optional_str(&HeaderName::from_static(n)).map(str::to_string);
        let auth = header("authorization");
        let bearer = auth.as_deref().and_then(|a| a.strip_prefix("Bearer ")).map(|t| t.trim().to_string());
        let basic = auth.as_deref().and_then(|a| a.strip_prefix("Basic ")).and_then(|b| {
            let raw = azure_core::base64::decode(b.trim()).ok()?;
            let text = String::from_utf8(raw).ok()?;
            let (u, p) = text.split_once(':')?;
            Some((u.to_string(), p.to_string()))
        });
        let body = match req.body() {
            Body::Bytes(b) => b.clone(),
            _ => bytes::Bytes::new(),
        };
        Call {
            method: req.method(),
            host: url.host_str().unwrap_or_default().to_ascii_lowercase(),
            path: url.path().to_string(),
            query: url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect(),
            url: url.to_string(),
            bearer,
            basic,
            identity_header: header("x-identity-header"),
            body,
        }
    }

    pub fn param(&self, k: &str) -> Option<&str> {
        self.query.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
    }
}

/// How an answer reaches the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// After the given latency.
    Answer(std::time::Duration),
    /// Never, as far as the client is concerned: longer than any timeout it sets.
    Hang,
    /// The connection was refused: nothing was sent, nothing happened.
    Refused,
}

/// What the world answers to one request.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    pub after: After,
    /// A write that takes effect later (whatever the client makes of its answer): its id in
    /// [`crate::world::World::pending`] and how long until it lands.
    pub landing: Option<(u32, std::time::Duration)>,
    /// What the client learns, recorded only if the answer reaches it (a client that timed
    /// out never saw it).
    pub delivered: Vec<Delivered>,
}

/// What an answer tells its invocation, for the checker (only once it arrives).
#[derive(Debug, Clone)]
pub enum Delivered {
    /// The latest version of a secret, read by these targets of the invocation (`None`: 404,
    /// or a disabled version's 403).
    Read { targets: Vec<String>, read: Option<crate::world::SeenRead> },
    /// A listing of an issuer's credentials (`from`: the page's offset; 0 starts afresh;
    /// `req`: the world's request number when it was taken; `dated`: the page carries `Date`).
    Listing { holder: crate::world::Holder, ids: Vec<String>, from: usize, req: u32, dated: bool },
    /// A read's answer arrived (one that never does leaves the invocation blind).
    ReadAnswered,
    /// What a usage lookup of token `id` told it (contract §10 "Usage").
    Usage { id: String, seen: crate::world::UsageSeen },
    /// A write of these targets' secret was refused (a 4xx other than 408): not stored.
    WriteRefused { targets: Vec<String> },
    /// Credential `id` is gone, as its revocation's answer said.
    Deleted { id: String },
}

impl Answer {
    pub fn json(status: u16, body: Value) -> Answer {
        Answer {
            status,
            headers: vec![("content-type", "application/json; charset=utf-8".into())],
            body: body.to_string().into_bytes(),
            after: After::Answer(std::time::Duration::ZERO),
            landing: None,
            delivered: Vec::new(),
        }
    }
    pub fn refused() -> Answer {
        Answer {
            status: 0,
            headers: Vec::new(),
            body: Vec::new(),
            after: After::Refused,
            landing: None,
            delivered: Vec::new(),
        }
    }
    pub fn deliver(mut self, d: Delivered) -> Answer {
        self.delivered.push(d);
        self
    }
    pub fn header(mut self, k: &'static str, v: impl Into<String>) -> Answer {
        self.headers.push((k, v.into()));
        self
    }
    pub fn status_of(&self) -> u16 {
        self.status
    }
}

/// An HTTP `Date` header for a service's clock.
pub fn http_date(t: OffsetDateTime) -> String {
    httpdate::fmt_http_date(std::time::SystemTime::from(t))
}

/// One pat-rotator process's transport.
#[derive(Clone)]
pub struct SimHttp {
    pub w: Shared,
    pub process: u32,
}

impl std::fmt::Debug for SimHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SimHttp(process {})", self.process)
    }
}

#[async_trait]
impl HttpClient for SimHttp {
    async fn execute_request(&self, req: &Request) -> azure_core::Result<AsyncRawResponse> {
        let call = Call::from_request(req);
        let inv = crate::capture::current();
        let (before, sent) = {
            let mut w = lock(&self.w);
            (w.delay_before(), w.now())
        };
        tokio::time::sleep(before).await;
        let mut answer = lock(&self.w).serve(self.process, inv, sent, &call);
        if let Some((id, after)) = answer.landing.take() {
            // The write's effect, on its own: it lands whether or not anyone still waits.
            let w = self.w.clone();
            tokio::task::spawn_local(async move {
                tokio::time::sleep(after).await;
                lock(&w).land_due(id);
            });
        }
        match answer.after {
            After::Refused => {
                return Err(azure_core::Error::new(
                    azure_core::error::ErrorKind::Connection,
                    std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused"),
                ));
            }
            After::Hang => tokio::time::sleep(std::time::Duration::from_secs(4 * 3600)).await,
            After::Answer(d) => tokio::time::sleep(d).await,
        }
        {
            let mut w = lock(&self.w);
            for d in std::mem::take(&mut answer.delivered) {
                w.deliver(inv, d);
            }
            w.maybe_suspend(inv);
        }
        let mut headers = Headers::new();
        for (k, v) in answer.headers {
            headers.insert(HeaderName::from_static(k), v);
        }
        Ok(AsyncRawResponse::from_bytes(StatusCode::from(answer.status), headers, answer.body))
    }
}

/// The engine's `Runtime::http` for process `process`.
pub fn http(w: &Shared, process: u32) -> pat_rotator::transport::client::Http {
    Arc::new(SimHttp { w: w.clone(), process })
}

/// A process's wall clock (skewed, maybe jumping) and its attempt ids (a counter).
pub struct SimClock {
    pub w: Shared,
    pub process: u32,
}

impl Clock for SimClock {
    fn now(&self) -> OffsetDateTime {
        lock(&self.w).local_now(self.process)
    }
    fn unique_id(&self) -> String {
        lock(&self.w).unique_id()
    }
}
