//! `ProvisionPat`: one target, on demand (Data Factory, the Terraform post-deploy step).
//!
//! Every check that can fail without asking anyone happens first, so that a bad request is
//! answered 4xx with zero upstream calls: content type, size, JSON shape (unknown fields are
//! rejected), then the target name against the configuration. A caller can only ever name a
//! configured target; it never supplies a vault or workspace.

use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{BodyError, State};
use crate::engine::{Caller, RunOptions};
use crate::error::Code;

/// Larger bodies get 413.
pub const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvisionRequest {
    pub target: String,
    #[serde(default)]
    pub force: bool,
    #[serde(default)]
    pub dry_run: bool,
}

/// An answer independent of how it is delivered (forwarded HTTP or the host's `Outputs.res`).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub retry_after: Option<u64>,
    pub log: String,
}

impl Answer {
    fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Answer {
        let message = message.into();
        Answer {
            status,
            log: format!("ProvisionPat: {} {code}: {message}", status.as_u16()),
            body: json!({ "error": { "code": code, "message": message } }),
            retry_after: None,
        }
    }

    pub fn into_http(self) -> HttpResponse {
        let mut r = HttpResponse::build(self.status);
        r.content_type("application/json");
        if let Some(s) = self.retry_after {
            r.insert_header(("Retry-After", s.to_string()));
        }
        r.json(self.body)
    }
}

/// Validates the request. `Err` is the 4xx answer.
pub fn parse(content_type: Option<&str>, body: Result<Vec<u8>, BodyError>) -> Result<ProvisionRequest, Answer> {
    if let Some(ct) = content_type {
        let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if mime != "application/json" && !mime.ends_with("+json") {
            return Err(Answer::error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Code::InvalidRequest.as_str(),
                format!("Content-Type must be application/json, not \"{}\"", truncate(ct, 80)),
            ));
        }
    }
    let body = match body {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            return Err(Answer::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                Code::InvalidRequest.as_str(),
                format!("the request body is larger than {} KiB", MAX_BODY / 1024),
            ));
        }
        Err(BodyError::Read(e)) => {
            return Err(Answer::error(
                StatusCode::BAD_REQUEST,
                Code::InvalidRequest.as_str(),
                format!("could not read the body: {e}"),
            ));
        }
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Answer::error(
            StatusCode::BAD_REQUEST,
            Code::InvalidRequest.as_str(),
            "the body is empty; send {\"target\": \"<name>\"}",
        ));
    }
    let bad = |m: String| Answer::error(StatusCode::BAD_REQUEST, Code::InvalidRequest.as_str(), m);
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| bad(format!("the body is not valid JSON: {}", truncate(&e.to_string(), 200))))?;
    if !value.is_object() {
        return Err(bad(
            "the body must be a JSON object: {\"target\": \"<name>\", \"force\": false, \"dry_run\": false}".into(),
        ));
    }
    // Parsed again, strictly, from the bytes: this also rejects duplicate keys, which a
    // `Value` would silently collapse.
    serde_json::from_slice(&body).map_err(|e| bad(format!("invalid request body: {}", truncate(&e.to_string(), 300))))
}

/// Handles a ProvisionPat request end to end.
pub async fn handle(content_type: Option<&str>, body: Result<Vec<u8>, BodyError>, state: &State) -> Answer {
    let engine = match state.engine() {
        Ok(e) => e,
        Err(ce) => {
            return Answer::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                Code::ConfigInvalid.as_str(),
                format!("configuration invalid: {ce}"),
            );
        }
    };
    let req = match parse(content_type, body) {
        Ok(r) => r,
        Err(a) => {
            tracing::warn!("{}", a.log);
            return a;
        }
    };
    let Some(target) = engine.config().target(&req.target) else {
        let a = Answer::error(
            StatusCode::NOT_FOUND,
            Code::UnknownTarget.as_str(),
            format!("\"{}\" is not a configured target", truncate(&req.target, 100)),
        );
        tracing::warn!("{}", a.log);
        return a;
    };
    let budget = engine.config().settings.http_budget;
    let outcomes = engine
        .run(
            &[target],
            RunOptions {
                force: req.force,
                dry_run: req.dry_run,
                revoke_superseded: false,
                caller: Caller::Provision,
                budget,
            },
        )
        .await;
    let outcome = outcomes.into_iter().next().expect("one target in, one outcome out");
    let log = format!("ProvisionPat {}", outcome.log_line());
    match &outcome.failure {
        None => Answer {
            status: StatusCode::OK,
            body: serde_json::to_value(&outcome).expect("outcome serialises"),
            retry_after: None,
            log,
        },
        Some(e) => {
            let status = match e.code {
                Code::Throttled => StatusCode::SERVICE_UNAVAILABLE,
                Code::Timeout => StatusCode::GATEWAY_TIMEOUT,
                Code::ConfigInvalid => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_GATEWAY,
            };
            let retry_after = (e.code == Code::Throttled)
                .then(|| e.retry_after.unwrap_or(Duration::from_secs(30)).as_secs_f64().ceil().max(1.0) as u64);
            Answer { status, body: json!({ "error": { "code": e.code, "message": e.message } }), retry_after, log }
        }
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() > n { format!("{}…", s.chars().take(n).collect::<String>()) } else { s.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(ct: Option<&str>, body: &str) -> Result<ProvisionRequest, Answer> {
        parse(ct, Ok(body.as_bytes().to_vec()))
    }

    #[test]
    fn accepts_minimal_and_full() {
        let r = p(Some("application/json; charset=utf-8"), r#"{"target":"a"}"#).unwrap();
        assert_eq!((r.target.as_str(), r.force, r.dry_run), ("a", false, false));
        let r = p(None, r#"{"target":"a","force":true,"dry_run":true}"#).unwrap();
        assert!(r.force && r.dry_run);
    }

    #[test]
    fn rejects_bad_input() {
        let status = |r: Result<ProvisionRequest, Answer>| r.err().map(|a| a.status.as_u16());
        assert_eq!(status(p(Some("text/plain"), r#"{"target":"a"}"#)), Some(415));
        assert_eq!(status(p(None, "")), Some(400));
        assert_eq!(status(p(None, "{")), Some(400));
        assert_eq!(status(p(None, r#"{"target":1}"#)), Some(400));
        assert_eq!(status(p(None, r#"{"target":"a","force":"yes"}"#)), Some(400));
        assert_eq!(status(p(None, r#"{"target":"a","vault":"x"}"#)), Some(400));
        assert_eq!(status(p(None, r#"{"force":true}"#)), Some(400));
        assert_eq!(status(p(None, r#"["a"]"#)), Some(400));
        assert_eq!(status(parse(None, Err(BodyError::TooLarge))), Some(413));
    }
}
