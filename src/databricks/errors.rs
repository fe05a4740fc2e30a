//! What a Databricks answer means.
//!
//! Databricks errors come as `{"error_code": "...", "message": "..."}` (sometimes `error_code`
//! is a number, legacy APIs use `"error"`), and gateways in front of a workspace answer with
//! HTML (`<pre>…</pre>`), plain text or nothing at all. The HTTP status is the fallback.

use reqwest::StatusCode;
use serde_json::Value;

use crate::error::{Code, Error, excerpt};
use crate::secret::{Redacted, scrub};
use crate::transport::retry::parse_retry_after;

/// Error code and message of a Databricks error body, whatever its shape.
pub fn parse_body(body: &[u8]) -> (Option<String>, String) {
    parse_body_holding(body, &[])
}

/// [`parse_body`] of the answer to a request that carried `held` (a new credential being
/// verified): every piece of them is scrubbed from the body before anything is shortened
/// (contract §10), so a cut cannot leave a piece that no longer matches.
pub fn parse_body_holding(body: &[u8], held: &[&Redacted]) -> (Option<String>, String) {
    let raw = String::from_utf8_lossy(body);
    let text = scrub(&raw, held);
    let excerpt = |m: &str| excerpt(&scrub(m, held));
    if let Ok(Value::Object(o)) = serde_json::from_str::<Value>(&text) {
        let code = match o.get("error_code").or_else(|| o.get("error")) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let message =
            o.get("message").or_else(|| o.get("detail")).and_then(Value::as_str).map(excerpt).unwrap_or_default();
        return (code, message);
    }
    let t = text.trim();
    if t.is_empty() {
        return (None, String::new());
    }
    if let (Some(a), Some(b)) = (t.find("<pre>"), t.find("</pre>"))
        && a + 5 <= b
    {
        return (None, excerpt(&t[a + 5..b]));
    }
    if t.starts_with('<') {
        // Some other HTML page: strip the tags for a readable hint.
        let mut out = String::new();
        let mut in_tag = false;
        for c in t.chars() {
            match c {
                '<' => in_tag = true,
                '>' => {
                    in_tag = false;
                    out.push(' ');
                }
                _ if !in_tag => out.push(c),
                _ => {}
            }
        }
        return (None, excerpt(&out));
    }
    (None, excerpt(t))
}

/// Maps an unsuccessful answer to a stable error.
pub fn from_answer(
    op: &str,
    base: &str,
    status: StatusCode,
    retry_after: Option<&str>,
    body: &[u8],
    management_mode: bool,
    forbidden: &str,
) -> Error {
    from_answer_holding(op, base, status, retry_after, body, management_mode, forbidden, &[])
}

/// [`from_answer`] for a request that carried `held` (see [`parse_body_holding`]).
#[allow(clippy::too_many_arguments)]
pub fn from_answer_holding(
    op: &str,
    base: &str,
    status: StatusCode,
    retry_after: Option<&str>,
    body: &[u8],
    management_mode: bool,
    forbidden: &str,
    held: &[&Redacted],
) -> Error {
    let (code, message) = parse_body_holding(body, held);
    let s = status.as_u16();
    let shown = match (&code, message.is_empty()) {
        (Some(c), false) => format!("{s} {c}: {message}"),
        (Some(c), true) => format!("{s} {c}"),
        (None, false) => format!("{s}: {message}"),
        (None, true) => format!("{s} {}", status.canonical_reason().unwrap_or("")),
    };
    let detail = format!("{op} in {base}: {shown}");
    let c = code.as_deref().unwrap_or("");
    let err = match s {
        _ if c == "QUOTA_EXCEEDED" => Error::new(Code::DatabricksQuotaExceeded, detail),
        400 if c == "INVALID_PARAMETER_VALUE" && mentions_lifetime(&message) => {
            Error::new(Code::DatabricksLifetimeTooLong, detail)
        }
        401 => {
            let hint = if management_mode {
                "the identity needs Contributor on the workspace resource, or membership of the workspace"
            } else {
                "add the identity to the workspace, or set workspace_resource_id and give it Contributor on the workspace resource"
            };
            Error::new(Code::DatabricksUnauthorized, format!("{detail} ({hint})"))
        }
        403 if forbidden.is_empty() => Error::new(Code::DatabricksForbidden, detail),
        403 => Error::new(Code::DatabricksForbidden, format!("{detail} ({forbidden})")),
        429 => Error::new(Code::Throttled, detail)
            .transient()
            .with_retry_after(Some(parse_retry_after(retry_after).unwrap_or(std::time::Duration::from_secs(1)))),
        503 => Error::new(Code::Throttled, detail).transient().with_retry_after(parse_retry_after(retry_after)),
        408 | 500..=599 => Error::new(Code::UpstreamUnavailable, detail).transient(),
        _ => Error::new(Code::DatabricksError, detail),
    };
    err.with_status(s).with_upstream_code(code)
}

fn mentions_lifetime(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("lifetime") || m.contains("lifetime_seconds") || m.contains("maxtokenlifetime")
}

/// `RESOURCE_DOES_NOT_EXIST` on delete: the token is already gone, which is what we wanted.
pub fn is_already_gone(status: StatusCode, body: &[u8]) -> bool {
    let (code, _) = parse_body(body);
    status == StatusCode::NOT_FOUND || code.as_deref() == Some("RESOURCE_DOES_NOT_EXIST")
}

/// A `403` saying the token lacks the scopes the endpoint needs ("Your token is missing the
/// required scopes for this endpoint"): Databricks checks scopes only after the token
/// authenticated, so this proves the token works. `Invalid access token.` is not this.
pub fn is_missing_scopes(status: StatusCode, body: &[u8]) -> bool {
    let m = parse_body(body).1.to_ascii_lowercase();
    status == StatusCode::FORBIDDEN && m.contains("missing") && m.contains("required scope")
}

/// A transport failure (no HTTP answer).
pub fn transport(base: &str, path: &str, e: &azure_core::Error) -> Error {
    let what = format!("calling {base}{path}");
    if crate::transport::client::never_sent(e) {
        let mut err = Error::new(Code::UpstreamUnavailable, format!("{what}: could not connect ({})", source_text(e)))
            .transient();
        err.upstream_code = Some(NEVER_SENT.to_string());
        err
    } else {
        Error::new(Code::UpstreamUnavailable, format!("{what}: {}", source_text(e))).transient()
    }
}

/// Marks a transport error where the request never left (connection refused): even a
/// non-idempotent call may be retried.
const NEVER_SENT: &str = "connect";

pub fn never_sent(e: &Error) -> bool {
    e.upstream_code.as_deref() == Some(NEVER_SENT)
}

/// The error and its causes, without any URL a cause quotes (reqwest names the URL; ours are
/// configuration, shown elsewhere, but a query string must never reach a message).
fn source_text(e: &azure_core::Error) -> String {
    use std::error::Error as _;
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = match s.downcast_ref::<reqwest::Error>() {
            Some(r) => without_url(r),
            None => s.to_string(),
        };
        parts.push(text);
        cur = s.source();
    }
    parts.dedup();
    parts.join(": ")
}

fn without_url(e: &reqwest::Error) -> String {
    let s = e.to_string();
    match e.url() {
        Some(u) => s.replace(&format!(" for url ({u})"), "").replace(&format!(" ({u})"), ""),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_shapes() {
        assert_eq!(
            parse_body(br#"{"error_code":"QUOTA_EXCEEDED","message":"Cannot create more than 600 tokens."}"#),
            (Some("QUOTA_EXCEEDED".into()), "Cannot create more than 600 tokens.".into())
        );
        assert_eq!(parse_body(br#"{"error_code":403,"message":"Invalid access token."}"#).0.as_deref(), Some("403"));
        assert_eq!(parse_body(b"<html><body><pre>Bad Gateway</pre></body></html>"), (None, "Bad Gateway".into()));
        assert_eq!(parse_body(b"<html><h1>Oops</h1></html>").1, "Oops");
        assert_eq!(parse_body(b""), (None, String::new()));
        assert_eq!(parse_body(b"TEMPORARILY_UNAVAILABLE: try later").1, "TEMPORARILY_UNAVAILABLE: try later");
    }

    #[test]
    fn codes() {
        let e = from_answer(
            "op",
            "https://w",
            StatusCode::BAD_REQUEST,
            None,
            br#"{"error_code":"QUOTA_EXCEEDED","message":"x"}"#,
            false,
            "",
        );
        assert_eq!(e.code, Code::DatabricksQuotaExceeded);
        let e = from_answer("op", "https://w", StatusCode::TOO_MANY_REQUESTS, Some("7"), b"", false, "");
        assert_eq!(
            (e.code, e.transient, e.retry_after),
            (Code::Throttled, true, Some(std::time::Duration::from_secs(7)))
        );
        let e = from_answer("op", "https://w", StatusCode::BAD_GATEWAY, None, b"<html><pre>x</pre></html>", false, "");
        assert_eq!((e.code, e.transient), (Code::UpstreamUnavailable, true));
        let e = from_answer("op", "https://w", StatusCode::UNAUTHORIZED, None, b"", false, "");
        assert_eq!(e.code, Code::DatabricksUnauthorized);
        let e = from_answer(
            "op",
            "https://w",
            StatusCode::FORBIDDEN,
            None,
            br#"{"error_code":"PERMISSION_DENIED"}"#,
            false,
            "",
        );
        assert_eq!(e.code, Code::DatabricksForbidden);
        let e = from_answer(
            "op",
            "https://w",
            StatusCode::BAD_REQUEST,
            None,
            br#"{"error_code":"INVALID_PARAMETER_VALUE","message":"Token lifetime exceeds the maximum of 30 days"}"#,
            false,
            "",
        );
        assert_eq!(e.code, Code::DatabricksLifetimeTooLong);
        assert!(is_already_gone(StatusCode::NOT_FOUND, br#"{"error_code":"RESOURCE_DOES_NOT_EXIST"}"#));
    }
}
