//! `Status` (contract §3): `GET /api/Status`, forwarded by the host, answers the array of
//! `status --json` objects — a health check for a monitor or a release pipeline, guarded by the
//! function key.
//!
//! Anyone holding a function key can read it, so each object says less than the CLI's: an
//! error's message is the fixed sentence for its code, `secret_id` and `owner` are left out, and
//! `rotated_by` says `self` or `other` (against `PAT_SERVICE_OBJECT_ID`, else the service's own
//! identity), never an object id. A target not read within 60 s (or the HTTP budget, if lower)
//! is `secret_unreadable` with `timeout`. Each instance keeps the answer for 60 s: a monitor
//! polling every few seconds costs one read of each secret and listing a minute.

use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{State, public};
use crate::engine::StatusRow;
use crate::error::Code;

/// How long each instance serves the same answer.
pub const CACHE_FOR: Duration = Duration::from_secs(60);
/// A target not read within this long is reported as a timeout.
pub const TARGET_BUDGET: Duration = Duration::from_secs(60);

/// The cached answer, when it was made.
pub type Cached = Option<(Instant, Value)>;

/// `GET /api/Status`, forwarded: the answer as the caller gets it.
pub async fn handle(state: &State) -> HttpResponse {
    let (status, body) = answer(state).await;
    let mut r = HttpResponse::build(status);
    r.content_type("application/json");
    if status == StatusCode::OK {
        r.insert_header(("Cache-Control", "no-store"));
    }
    r.json(body)
}

/// The status and body of the answer: `200` with the array, or `500` `config_invalid`.
pub async fn answer(state: &State) -> (StatusCode, Value) {
    let engine = match state.engine().await {
        Ok(e) => e,
        Err(ce) => {
            tracing::error!(code = %Code::ConfigInvalid, "Status answered 500 config_invalid: {}", ce.message);
            let body =
                json!({ "error": { "code": Code::ConfigInvalid, "message": public::sentence(Code::ConfigInvalid) } });
            return (StatusCode::INTERNAL_SERVER_ERROR, body);
        }
    };
    // Held while the answer is made: concurrent requests wait for it rather than read again.
    let mut cache = state.status_cache.lock().await;
    if let Some((at, body)) = cache.as_ref()
        && at.elapsed() < CACHE_FOR
    {
        tracing::info!("Status: answered from this instance's cache ({} s old)", at.elapsed().as_secs());
        return (StatusCode::OK, body.clone());
    }
    let targets = engine.select(&[]).expect("all targets");
    let budget = TARGET_BUDGET.min(engine.config().settings.http_budget);
    let rows = engine.status(&targets, budget).await;
    let unhealthy: Vec<String> = rows
        .iter()
        .filter(|r| !r.healthy)
        .map(|r| format!("{} ({})", r.target, r.attention.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(",")))
        .collect();
    if unhealthy.is_empty() {
        tracing::info!("Status: {} target(s), all healthy", rows.len());
    } else {
        tracing::warn!(
            "Status: {} of {} target(s) need attention: {}",
            unhealthy.len(),
            rows.len(),
            unhealthy.join(", ")
        );
    }
    let body = Value::Array(rows.iter().map(public_row).collect());
    *cache = Some((Instant::now(), body.clone()));
    (StatusCode::OK, body)
}

/// A `status --json` object as a function-key holder may see it (contract §3), in the CLI's
/// order of fields.
pub fn public_row(r: &StatusRow) -> Value {
    let Value::Object(cli) = serde_json::to_value(r).expect("status rows serialise") else {
        unreachable!("a status row is an object")
    };
    let mut out = serde_json::Map::new();
    for (k, v) in cli {
        let v = match k.as_str() {
            "secret_id" | "owner" => continue,
            "error" => match &r.error {
                Some(e) => json!({ "code": e.code, "message": public::sentence(e.code) }),
                None => Value::Null,
            },
            "rotated_by" => match (&r.rotated_by, r.rotated_by_reference) {
                (Some(_), Some(true)) => json!("self"),
                (Some(_), Some(false)) => json!("other"),
                _ => Value::Null,
            },
            _ => v,
        };
        out.insert(k, v);
    }
    Value::Object(out)
}
