//! The Azure Functions custom handler: an HTTP server that the Functions host talks to.
//!
//! Routes (paths are matched case-insensitively, as the Functions host routes):
//! - `GET /` — readiness and health ping; answered at once, no I/O.
//! - `POST /RotatePat` — the timer function, host JSON protocol ([`host`]).
//! - `POST /SecretEvent` — Key Vault's Event Grid events, host JSON protocol ([`event`]).
//! - `POST /api/ProvisionPat` — the HTTP function, forwarded as the caller sent it
//!   (`enableForwardingHttpRequest`), see [`provision`].
//! - `POST /ProvisionPat` — the same function in the host's JSON envelope, for hosts that
//!   do not forward (the body is taken from `Data.req.Body`, the answer goes to `Outputs.res`).
//! - `GET /api/Status` — the health check, forwarded ([`status`]); `POST /Status` is the same
//!   in the host's envelope.
//!
//! This layer only translates: host JSON or an HTTP request in, a call of the [`Engine`] out,
//! and the result back in the host's shape. It never logs a request's query string (the
//! function key travels there) or its headers. Error bodies say only the code, a fixed
//! sentence and the invocation id ([`public`]); the detail goes to the log.
//!
//! Each invocation runs inside a span named after its function with the field
//! `invocation_id`, so every line logged on its behalf carries the id (text:
//! `RotatePat{invocation_id=…}: …`; JSON: the `invocation_id` key). The host sends its id in
//! `X-Azure-Functions-InvocationId` on the timer request, the envelope and the forwarded HTTP
//! request alike (`DefaultHttpWorkerService.AddHeaders`, called for both); when it is missing
//! (a direct call), a fresh UUID stands in.

pub mod event;
pub mod host;
pub mod provision;
pub mod public;
pub mod status;

use std::sync::{Arc, OnceLock};

use actix_web::http::{Method, StatusCode};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use futures::StreamExt;
use serde_json::json;
use tracing::Instrument;

use crate::config::{Config, ConfigError};
use crate::engine::Engine;
use crate::error::{Code, Error};

/// How long `serve` lets invocations in flight finish after SIGTERM (their targets' writes or
/// compensation; nothing new starts). Below the 10 minutes a platform update grants and the
/// 60 minutes of a Flex Consumption scale-in (docs/SCALE.md).
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(300);

/// Shared by all workers.
pub struct State {
    config: Result<Config, ConfigError>,
    engine: OnceLock<Arc<Engine>>,
    /// The `Status` function's last answer ([`status`]).
    status_cache: tokio::sync::Mutex<status::Cached>,
}

impl State {
    pub fn new(config: Result<Config, ConfigError>) -> Arc<State> {
        Arc::new(State { config, engine: OnceLock::new(), status_cache: tokio::sync::Mutex::new(None) })
    }

    /// A state around an engine built elsewhere: the simulator's (sim/), whose engine talks to
    /// an in-process world through its transport. Everything above the engine is this handler.
    pub fn with_engine(engine: Arc<Engine>) -> Arc<State> {
        let cell = OnceLock::new();
        let config = Ok(engine.config().clone());
        let _ = cell.set(engine);
        Arc::new(State { config, engine: cell, status_cache: tokio::sync::Mutex::new(None) })
    }

    /// The process's engine, built on first use (its HTTP client loads the system's CA store,
    /// which would otherwise delay the first `GET /`), or the configuration error.
    pub fn base_engine(&self) -> Result<Arc<Engine>, &ConfigError> {
        match &self.config {
            Err(e) => Err(e),
            Ok(c) => Ok(self.engine.get_or_init(|| Arc::new(Engine::new(c.clone()))).clone()),
        }
    }

    /// The engine of one invocation: the process's, over the targets this invocation reads
    /// (`PAT_TARGETS_BLOB` is read now; contract §2). `config_invalid` when the configuration
    /// is invalid or the blob cannot be read; the message is for the log only.
    pub async fn engine(&self) -> Result<Arc<Engine>, Error> {
        let base =
            self.base_engine().map_err(|ce| Error::new(Code::ConfigInvalid, format!("configuration invalid: {ce}")))?;
        if base.config().blob().is_none() {
            return Ok(base);
        }
        base.for_invocation().await.map(Arc::new)
    }
}

/// Runs the server on `127.0.0.1:port` until SIGTERM/SIGINT.
pub async fn serve(port: u16, state: Arc<State>) -> std::io::Result<()> {
    let data = web::Data::from(state.clone());
    let server = HttpServer::new(move || App::new().app_data(data.clone()).default_service(web::to(dispatch)))
        .workers(2)
        .disable_signals()
        .shutdown_timeout(SHUTDOWN_GRACE.as_secs())
        .tcp_nodelay(true)
        .bind(("127.0.0.1", port))?
        .run();
    tracing::info!(port, "pat-rotator custom handler listening on 127.0.0.1");
    // Warm the engine (HTTP client, CA store) off the request path, once the socket is open.
    if state.config.is_ok() {
        let s = state.clone();
        actix_web::rt::task::spawn_blocking(move || {
            let _ = s.base_engine();
        });
    }
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        shutdown_signal().await;
        // Passes in flight start no new target and no new create (contract §11); their
        // invocations answer with what finished, then the server stops.
        if let Ok(engine) = state.base_engine() {
            engine.start_draining();
        }
        tracing::info!("shutting down: no new target or credential is started; waiting for the work in flight");
        handle.stop(true).await;
    });
    server.await
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn dispatch(req: HttpRequest, body: web::Payload, state: web::Data<State>) -> HttpResponse {
    let path = req.path().trim_end_matches('/').to_ascii_lowercase();
    let method = req.method().clone();
    match (path.as_str(), &method) {
        ("", &Method::GET) | ("", &Method::HEAD) => {
            HttpResponse::Ok().content_type("text/plain").body("pat-rotator ok")
        }
        ("/rotatepat", &Method::POST) => {
            let id = invocation_id(&req);
            let work = async { host::rotate_pat(read_body(body, host::MAX_HOST_BODY).await, &state, &id).await };
            work.instrument(tracing::info_span!("RotatePat", invocation_id = %id)).await
        }
        ("/secretevent", &Method::POST) => {
            let id = invocation_id(&req);
            let work = async { event::secret_event(read_body(body, host::MAX_HOST_BODY).await, &state, &id).await };
            work.instrument(tracing::info_span!("SecretEvent", invocation_id = %id)).await
        }
        ("/api/provisionpat", &Method::POST) => {
            let id = invocation_id(&req);
            let content_type = req.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string);
            let declared =
                req.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
            let work = async {
                let body = if declared.is_some_and(|n| n > provision::MAX_BODY) {
                    Err(BodyError::TooLarge)
                } else {
                    read_body(body, provision::MAX_BODY).await
                };
                provision::handle(content_type.as_deref(), body, &state, &id).await
            };
            work.instrument(tracing::info_span!("ProvisionPat", invocation_id = %id)).await.into_http()
        }
        ("/provisionpat", &Method::POST) => {
            let id = invocation_id(&req);
            let work = async { host::provision_pat(read_body(body, host::MAX_HOST_BODY).await, &state, &id).await };
            work.instrument(tracing::info_span!("ProvisionPat", invocation_id = %id)).await
        }
        ("/api/status", &Method::GET) => {
            let id = invocation_id(&req);
            status::handle(&state).instrument(tracing::info_span!("Status", invocation_id = %id)).await
        }
        ("/status", &Method::POST) => {
            let id = invocation_id(&req);
            host::status(&state).instrument(tracing::info_span!("Status", invocation_id = %id)).await
        }
        ("" | "/rotatepat" | "/secretevent" | "/api/provisionpat" | "/provisionpat" | "/api/status" | "/status", _) => {
            error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request",
                &format!("method {method} is not allowed here"),
            )
        }
        _ => error_response(StatusCode::NOT_FOUND, "not_found", "no such function"),
    }
}

/// The host's invocation id, or a new UUID when the request carries none.
///
/// In forwarding mode the host copies the caller's headers first and then adds its own
/// `X-Azure-Functions-InvocationId` (`HttpRequestExtensions.ToHttpRequestMessage`, then
/// `DefaultHttpWorkerService.AddHeaders`), so a caller who sends the header too arrives as
/// several values: the host's is the last. Only a short id of letters, digits and `-` is
/// taken, so nothing a caller sends can shape a log line.
pub fn invocation_id(req: &HttpRequest) -> String {
    req.headers()
        .get_all("x-azure-functions-invocationid")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .last()
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

#[derive(Debug)]
pub enum BodyError {
    TooLarge,
    Read(String),
}

/// Reads at most `limit` bytes of the body.
async fn read_body(mut payload: web::Payload, limit: usize) -> Result<Vec<u8>, BodyError> {
    let mut buf = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| BodyError::Read(e.to_string()))?;
        if buf.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

pub fn error_response(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json")
        .json(json!({ "error": { "code": code, "message": message } }))
}
