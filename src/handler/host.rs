//! The Functions host's JSON invocation protocol (non-forwarded mode).
//!
//! The host POSTs `{"Data": {...}, "Metadata": {...}}` and expects a 2xx JSON answer
//! `{"Outputs": {...}, "Logs": [...], "ReturnValue": ...}`. Payloads are read as loose JSON:
//! `ScheduleStatus` may be null and timestamps come in several formats, and nothing here
//! depends on them — the timer payload only feeds a log line.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde_json::{Value, json};

use super::{BodyError, State, provision, public};
use crate::engine::{Caller, RunOptions};
use crate::error::Code;

/// The host's payloads are small; anything beyond this is not from the host.
pub const MAX_HOST_BODY: usize = 1024 * 1024;

/// What the timer payload tells us, leniently.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TimerInfo {
    pub is_past_due: Option<bool>,
    pub invocation_time: Option<String>,
}

/// Reads the parts of a timer invocation that are worth a log line; never fails.
pub fn parse_timer(body: &[u8]) -> TimerInfo {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return TimerInfo::default();
    };
    let timer =
        find_ci(&v, "Data").and_then(|d| find_ci(d, "timer").or_else(|| d.as_object().and_then(|o| o.values().next())));
    let timer = timer.map(|t| match t {
        // Some hosts send the binding value as a JSON string.
        Value::String(s) => serde_json::from_str(s).unwrap_or(Value::Null),
        other => other.clone(),
    });
    TimerInfo {
        is_past_due: timer.as_ref().and_then(|t| find_ci(t, "IsPastDue")).and_then(Value::as_bool),
        invocation_time: find_ci(&v, "Metadata")
            .and_then(|m| find_ci(m, "sys"))
            .and_then(|s| find_ci(s, "UtcNow"))
            .and_then(Value::as_str)
            .map(|s| s.chars().take(64).collect()),
    }
}

/// Property lookup ignoring case (the host serialises with Newtonsoft, which matches that way).
fn find_ci<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    let o = v.as_object()?;
    o.get(key).or_else(|| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v)).filter(|v| !v.is_null())
}

/// `RotatePat`. The caller runs it inside a span carrying the invocation id (the host's
/// `X-Azure-Functions-InvocationId`), so the per-target lines and the failure summary can be
/// found beside the failed invocation in Application Insights.
pub async fn rotate_pat(body: Result<Vec<u8>, BodyError>, state: &State, invocation_id: &str) -> HttpResponse {
    let info = match &body {
        Ok(b) => parse_timer(b),
        Err(_) => TimerInfo::default(),
    };
    let engine = match state.engine().await {
        Ok(e) => e,
        Err(ce) => {
            // The host discards this body (non-2xx), but it is no place for the detail either.
            tracing::error!(code = %Code::ConfigInvalid, "RotatePat answered 500 config_invalid: {}", ce.message);
            let error = public::error_body(Code::ConfigInvalid, invocation_id)["error"].take();
            let logs = [format!("RotatePat: {}", public::sentence(Code::ConfigInvalid))];
            return host_json(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({ "Outputs": {}, "Logs": logs, "ReturnValue": null, "error": error }),
            );
        }
    };
    tracing::info!(past_due = ?info.is_past_due, scheduled = ?info.invocation_time, "RotatePat invoked");
    let targets = engine.select(&[]).expect("all targets");
    let budget = engine.config().settings.timer_budget;
    let outcomes = engine
        .run(
            &targets,
            RunOptions {
                force: false,
                dry_run: false,
                revoke_superseded: false,
                take_ownership: false,
                caller: Caller::Timer,
                budget,
            },
        )
        .await;
    let logs: Vec<String> = outcomes.iter().map(|o| o.log_line()).collect();
    let failed: Vec<&str> = outcomes.iter().filter(|o| !o.ok()).map(|o| o.target.as_str()).collect();
    if failed.is_empty() {
        return host_json(StatusCode::OK, json!({ "Outputs": {}, "Logs": logs, "ReturnValue": null }));
    }
    let first = outcomes.iter().find_map(|o| o.error.as_ref()).expect("a failed outcome has an error");
    let summary = format!(
        "{} of {} targets failed: {}",
        failed.len(),
        outcomes.len(),
        outcomes
            .iter()
            .filter_map(|o| o.error.as_ref().map(|e| format!("{} ({})", o.target, e.code)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // The host discards the body of a non-2xx answer: this line is what reaches the logs.
    tracing::error!("RotatePat failed: {summary}");
    host_json(
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({ "Outputs": {}, "Logs": logs, "ReturnValue": null, "failed_targets": failed,
                "error": { "code": first.code, "message": summary, "invocation_id": invocation_id } }),
    )
}

/// `ProvisionPat` in the host's envelope: `Data.req` is the HTTP request, the answer goes to
/// the `res` output binding. Runs inside the request's span, like [`rotate_pat`].
pub async fn provision_pat(body: Result<Vec<u8>, BodyError>, state: &State, invocation_id: &str) -> HttpResponse {
    let answer = match body {
        Err(e) => provision::handle(None, Err(e), state, invocation_id).await,
        Ok(b) => {
            let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
            let req = find_ci(&v, "Data").and_then(|d| find_ci(d, "req"));
            let content_type = req
                .and_then(|r| find_ci(r, "Headers"))
                .and_then(|h| find_ci(h, "Content-Type"))
                .and_then(|c| match c {
                    Value::Array(a) => a.first().and_then(Value::as_str).map(str::to_string),
                    Value::String(s) => Some(s.clone()),
                    _ => None,
                });
            let inner = req.and_then(|r| find_ci(r, "Body")).map(|b| match b {
                Value::String(s) => s.as_bytes().to_vec(),
                other => other.to_string().into_bytes(),
            });
            let inner = match inner {
                Some(b) if b.len() > provision::MAX_BODY => Err(BodyError::TooLarge),
                Some(b) => Ok(b),
                None => Ok(Vec::new()),
            };
            provision::handle(content_type.as_deref(), inner, state, invocation_id).await
        }
    };
    let mut headers = json!({ "Content-Type": "application/json" });
    if let Some(s) = answer.retry_after {
        headers["Retry-After"] = json!(s.to_string());
    }
    host_json(
        StatusCode::OK,
        json!({ "Outputs": { "res": { "statusCode": answer.status.as_u16(), "headers": headers, "body": answer.body } },
                "Logs": [answer.log], "ReturnValue": null }),
    )
}

/// `Status` in the host's envelope (a host that does not forward): the answer goes to the `res`
/// output binding.
pub async fn status(state: &State) -> HttpResponse {
    let (status, body) = super::status::answer(state).await;
    host_json(
        StatusCode::OK,
        json!({ "Outputs": { "res": { "statusCode": status.as_u16(), "headers": { "Content-Type": "application/json" }, "body": body } },
                "Logs": [format!("Status answered {}", status.as_u16())], "ReturnValue": null }),
    )
}

fn host_json(status: StatusCode, body: Value) -> HttpResponse {
    HttpResponse::build(status).content_type("application/json").json(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_payload_variants() {
        let real = br#"{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":true}},
                       "Metadata":{"sys":{"MethodName":"RotatePat","UtcNow":"2023-10-12T20:13:49.640002Z","RandGuid":"x"}}}"#;
        assert_eq!(
            parse_timer(real),
            TimerInfo { is_past_due: Some(true), invocation_time: Some("2023-10-12T20:13:49.640002Z".into()) }
        );
        let odd =
            br#"{"data":{"timer":"{\"isPastDue\":false,\"ScheduleStatus\":{\"Last\":\"garbage\"}}"},"metadata":{}}"#;
        assert_eq!(parse_timer(odd).is_past_due, Some(false));
        assert_eq!(parse_timer(b"not json"), TimerInfo::default());
        assert_eq!(parse_timer(b"{}"), TimerInfo::default());
        assert_eq!(parse_timer(br#"{"Data":null,"Metadata":[1,2]}"#), TimerInfo::default());
    }
}
