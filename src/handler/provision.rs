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
use serde_json::Value;

use super::{BodyError, State, public};
use crate::engine::{Caller, RunOptions};
use crate::error::Code;
use crate::logging::untrusted;

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
    /// A line for the host envelope's `Logs`: status and code, no upstream detail.
    pub log: String,
}

impl Answer {
    pub fn into_http(self) -> HttpResponse {
        let mut r = HttpResponse::build(self.status);
        r.content_type("application/json");
        if let Some(s) = self.retry_after {
            r.insert_header(("Retry-After", s.to_string()));
        }
        r.json(self.body)
    }
}

/// Why a request is answered with an error: the status and code the caller sees, and the
/// detail only the log gets.
#[derive(Debug)]
pub struct Rejection {
    pub status: StatusCode,
    pub code: Code,
    pub detail: String,
}

impl Rejection {
    fn new(status: StatusCode, code: Code, detail: impl Into<String>) -> Rejection {
        Rejection { status, code, detail: detail.into() }
    }
}

/// Logs the failure with its detail (one line, carrying the code and, through the request's
/// span, the invocation id) and answers with the code's fixed sentence only.
fn fail(r: Rejection, target: Option<&str>, retry_after: Option<u64>, invocation_id: &str) -> Answer {
    let (status, code) = (r.status.as_u16(), r.code);
    if r.status.is_server_error() {
        tracing::error!(code = %code, target_name = target, "ProvisionPat answered {status} {code}: {}", r.detail);
    } else {
        tracing::warn!(code = %code, target_name = target, "ProvisionPat answered {status} {code}: {}", r.detail);
    }
    Answer {
        status: r.status,
        body: public::error_body(code, invocation_id),
        retry_after,
        log: format!("ProvisionPat answered {status} {code} (invocation_id={invocation_id})"),
    }
}

/// Validates the request. `Err` says which 4xx to answer and why.
pub fn parse(content_type: Option<&str>, body: Result<Vec<u8>, BodyError>) -> Result<ProvisionRequest, Rejection> {
    if let Some(ct) = content_type {
        let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if mime != "application/json" && !mime.ends_with("+json") {
            return Err(Rejection::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Code::InvalidRequest,
                format!("Content-Type must be application/json, not \"{}\"", untrusted(ct)),
            ));
        }
    }
    let body = match body {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            return Err(Rejection::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                Code::InvalidRequest,
                format!("the request body is larger than {} KiB", MAX_BODY / 1024),
            ));
        }
        Err(BodyError::Read(e)) => {
            return Err(Rejection::new(
                StatusCode::BAD_REQUEST,
                Code::InvalidRequest,
                format!("could not read the body: {}", untrusted(&e.to_string())),
            ));
        }
    };
    let bad = |m: String| Rejection::new(StatusCode::BAD_REQUEST, Code::InvalidRequest, m);
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(bad("the body is empty; send {\"target\": \"<name>\"}".into()));
    }
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| bad(format!("the body is not valid JSON: {}", untrusted(&e.to_string()))))?;
    let Some(object) = value.as_object() else {
        return Err(bad(
            "the body must be a JSON object: {\"target\": \"<name>\", \"force\": false, \"dry_run\": false}".into(),
        ));
    };
    if object.contains_key("revoke_superseded") {
        return Err(bad("revoke_superseded is not offered by ProvisionPat; it exists on the CLI only \
             (pat-rotator rotate --target NAME --force --revoke-superseded)"
            .into()));
    }
    // Parsed again, strictly, from the bytes: this also rejects unknown fields and duplicate
    // keys, which a `Value` would silently collapse. serde's message quotes the caller's field
    // names and values (contract §10: escaped, at most 256 characters).
    serde_json::from_slice(&body).map_err(|e| bad(format!("invalid request body: {}", untrusted(&e.to_string()))))
}

/// Handles a ProvisionPat request end to end. Every error answer carries `invocation_id`; the
/// caller runs this inside a span with the same id, so every line logged for the request does.
pub async fn handle(
    content_type: Option<&str>,
    body: Result<Vec<u8>, BodyError>,
    state: &State,
    invocation_id: &str,
) -> Answer {
    let config_invalid =
        |message: String| Rejection::new(StatusCode::INTERNAL_SERVER_ERROR, Code::ConfigInvalid, message);
    if let Err(ce) = state.base_engine() {
        return fail(config_invalid(format!("configuration invalid: {ce}")), None, None, invocation_id);
    }
    // A bad request is refused before anything is read, the targets blob included.
    let req = match parse(content_type, body) {
        Ok(r) => r,
        Err(r) => return fail(r, None, None, invocation_id),
    };
    let engine = match state.engine().await {
        Ok(e) => e,
        Err(ce) => return fail(config_invalid(ce.message), None, None, invocation_id),
    };
    let Some(target) = engine.config().target(&req.target) else {
        let r = Rejection::new(
            StatusCode::NOT_FOUND,
            Code::UnknownTarget,
            format!("\"{}\" is not a configured target", untrusted(&req.target)),
        );
        return fail(r, None, None, invocation_id);
    };
    let budget = engine.config().settings.http_budget;
    let outcomes = engine
        .run(
            &[target],
            RunOptions {
                force: req.force,
                dry_run: req.dry_run,
                revoke_superseded: false,
                take_ownership: false,
                caller: Caller::Provision,
                budget,
            },
        )
        .await;
    let outcome = outcomes.into_iter().next().expect("one target in, one outcome out");
    match &outcome.failure {
        None => {
            let mut body = serde_json::to_value(&outcome).expect("outcome serialises");
            // A fixed sentence per kind of warning: the warnings' own text may quote upstream
            // detail (RBAC text, object ids, vault URLs), which only the log gets (contract §3);
            // the run logged each one as it happened.
            if !outcome.warnings.is_empty() {
                let mut sentences: Vec<&str> = Vec::new();
                for w in &outcome.warnings {
                    let s = public::warning_sentence(w.kind);
                    if !sentences.contains(&s) {
                        sentences.push(s);
                    }
                }
                body["warnings"] = serde_json::json!(sentences);
            }
            Answer {
                status: StatusCode::OK,
                body,
                retry_after: None,
                log: format!("ProvisionPat {}", outcome.log_line()),
            }
        }
        Some(e) => {
            let status = match e.code {
                Code::Throttled => StatusCode::SERVICE_UNAVAILABLE,
                Code::Timeout => StatusCode::GATEWAY_TIMEOUT,
                Code::ConfigInvalid => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_GATEWAY,
            };
            let retry_after = (e.code == Code::Throttled)
                .then(|| e.retry_after.unwrap_or(Duration::from_secs(30)).as_secs_f64().ceil().max(1.0) as u64);
            let r = Rejection::new(status, e.code, e.message.clone());
            fail(r, Some(&outcome.target), retry_after, invocation_id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(ct: Option<&str>, body: &str) -> Result<ProvisionRequest, Rejection> {
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
        let status = |r: Result<ProvisionRequest, Rejection>| r.err().map(|a| a.status.as_u16());
        assert_eq!(status(p(Some("text/plain"), r#"{"target":"a"}"#)), Some(415));
        assert_eq!(status(p(None, "")), Some(400));
        assert_eq!(status(p(None, "{")), Some(400));
        assert_eq!(status(p(None, r#"{"target":1}"#)), Some(400));
        assert_eq!(status(p(None, r#"{"target":"a","force":"yes"}"#)), Some(400));
        assert_eq!(status(p(None, r#"{"target":"a","vault":"x"}"#)), Some(400));
        assert_eq!(status(p(None, r#"{"force":true}"#)), Some(400));
        assert_eq!(status(p(None, r#"["a"]"#)), Some(400));
        assert_eq!(status(parse(None, Err(BodyError::TooLarge))), Some(413));
        for body in [r#"{"target":"a","revoke_superseded":true}"#, r#"{"target":"a","revoke_superseded":false}"#] {
            let r = p(None, body).unwrap_err();
            assert_eq!((r.status.as_u16(), r.code), (400, Code::InvalidRequest));
            assert!(r.detail.contains("CLI only"), "{}", r.detail);
        }
    }

    #[test]
    fn caller_text_in_a_detail_is_quoted_so_it_cannot_forge_a_log_line() {
        let r = p(Some("text/plain\nERROR forged"), r#"{"target":"a"}"#).unwrap_err();
        assert!(!r.detail.contains('\n'), "{}", r.detail);
        let r = p(None, "{\"target\":\"a\",\"x\\nERROR forged\":1}").unwrap_err();
        assert!(r.detail.contains("x\\nERROR forged") && !r.detail.contains('\n'), "{}", r.detail);
        let long = format!("{{\"target\":\"a\",\"{}\":1}}", "A".repeat(5000));
        let r = p(None, &long).unwrap_err();
        assert!(!r.detail.contains(&"A".repeat(257)), "at most 256 characters of it: {}", r.detail.len());
    }
}
