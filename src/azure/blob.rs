//! `PAT_TARGETS_BLOB` (contract §2): one blob of Azure Storage read with the service's identity,
//! revalidated with its ETag.
//!
//! `GET {url}` with a Storage token (`https://storage.azure.com/.default`, the audience every
//! cloud's Storage accepts), `x-ms-version` and `x-ms-date`, and `If-None-Match` with the ETag
//! of the copy the process already holds: `304` keeps that copy. Through the one transport seam
//! ([`Http`]) and the one retry policy: a `429`, `5xx`, timeout or lost connection is retried
//! like any idempotent call. At most [`MAX_TARGETS_DOCUMENT`] bytes are read. Every failure is
//! `config_invalid`, naming the setting and the upstream status, so that the invocation rotates
//! nothing.

use std::sync::Arc;

use futures::StreamExt;

use super::credential::TokenSource;
use crate::config::{MAX_TARGETS_DOCUMENT, shown_url};
use crate::error::{Code, Error, Result, excerpt};
use crate::transport::client::Http;
use crate::transport::retry::{RetryPolicy, parse_retry_after};

/// The scope of Storage tokens (the data plane of every account, in every cloud).
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";
/// The Blob service version sent (OAuth needs 2017-11-09 or later).
const STORAGE_VERSION: &str = "2021-08-06";

/// What a read of the blob found.
#[derive(Debug)]
pub enum Fetched {
    /// `304`: the copy with this ETag is current.
    Unchanged,
    /// The blob, and its ETag when the answer had one.
    Body { etag: Option<String>, text: String },
}

/// Reads the blob at `url` (validated configuration), conditionally on `etag`.
pub async fn fetch(
    http: &Http,
    tokens: &Arc<TokenSource>,
    retry: &RetryPolicy,
    url: &str,
    etag: Option<&str>,
) -> Result<Fetched> {
    let shown = shown_url(url);
    let fail = |detail: String| Error::new(Code::ConfigInvalid, format!("PAT_TARGETS_BLOB: reading {shown}: {detail}"));
    let parsed = url::Url::parse(url).map_err(|e| fail(format!("not a URL ({e})")))?;
    let got = retry
        .run("reading the targets blob", || async {
            let token = tokens.get(STORAGE_SCOPE).await.map_err(|e| {
                let mut e = fail(format!("no Storage token for the identity ({})", e.message));
                e.transient = false;
                e
            })?;
            let mut req = azure_core::http::Request::new(parsed.clone(), azure_core::http::Method::Get);
            req.insert_header("user-agent", concat!("pat-rotator/", env!("CARGO_PKG_VERSION")));
            req.insert_header("authorization", format!("Bearer {}", token.expose()));
            req.insert_header("x-ms-version", STORAGE_VERSION);
            req.insert_header("x-ms-date", httpdate::fmt_http_date(std::time::SystemTime::now()));
            if let Some(e) = etag {
                req.insert_header("if-none-match", e.to_string());
            }
            let limit = retry.attempt_timeout();
            let exchange = async {
                let resp = http.execute_request(&req).await?;
                let (status, headers, mut body) = resp.deconstruct();
                let status = u16::from(status);
                let header = |n: &'static str| {
                    headers.get_optional_str(&azure_core::http::headers::HeaderName::from_static(n)).map(str::to_string)
                };
                let mut bytes = Vec::new();
                let mut too_large = header("content-length")
                    .and_then(|l| l.parse::<u64>().ok())
                    .is_some_and(|l| status == 200 && l > MAX_TARGETS_DOCUMENT);
                while !too_large && let Some(chunk) = body.next().await {
                    let chunk = chunk?;
                    bytes.extend_from_slice(&chunk);
                    too_large = bytes.len() as u64 > MAX_TARGETS_DOCUMENT;
                }
                Ok::<_, azure_core::Error>((status, header("etag"), header("retry-after"), header("x-ms-error-code"), bytes, too_large))
            };
            let (status, new_etag, retry_after, error_code, bytes, too_large) =
                match tokio::time::timeout(limit, exchange).await {
                    Ok(Ok(answer)) => answer,
                    Ok(Err(e)) => {
                        return Err(fail(format!("no answer ({})", super::chain(&e))).transient());
                    }
                    Err(_) => {
                        return Err(Error::new(
                            Code::ConfigInvalid,
                            format!("PAT_TARGETS_BLOB: reading {shown}: no answer within {} s", limit.as_secs_f32()),
                        )
                        .transient());
                    }
                };
            if too_large {
                return Err(fail(format!(
                    "the blob is larger than {} MiB, the limit for a targets document",
                    MAX_TARGETS_DOCUMENT / (1024 * 1024)
                )));
            }
            match status {
                304 if etag.is_some() => Ok(Fetched::Unchanged),
                200 => match String::from_utf8(bytes) {
                    Ok(text) => Ok(Fetched::Body { etag: new_etag, text }),
                    Err(_) => Err(fail("answered 200 with a body that is not UTF-8 text".into())),
                },
                _ => {
                    let code = error_code.unwrap_or_default();
                    let message = storage_message(&bytes);
                    let hint = match (status, code.as_str()) {
                        (404, _) => " (check the account, container and blob names)",
                        (403, "AuthorizationPermissionMismatch") | (403, "AuthorizationFailure") => {
                            " (grant the identity Storage Blob Data Reader on the container; new role assignments take minutes to apply)"
                        }
                        (401, _) | (403, _) => " (the account did not accept the identity's token)",
                        _ => "",
                    };
                    let e = fail(format!("answered {status} {code}{message}{hint}")).with_status(status);
                    Err(if status == 429 || status == 408 || status >= 500 {
                        e.transient().with_retry_after(parse_retry_after(retry_after.as_deref()))
                    } else {
                        e
                    })
                }
            }
        })
        .await?;
    Ok(got)
}

/// The `<Message>` of a Storage error body (XML), shortened; empty when there is none.
fn storage_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let Some(start) = text.find("<Message>") else { return String::new() };
    let rest = &text[start + "<Message>".len()..];
    let msg = rest.split("</Message>").next().unwrap_or_default();
    // Storage appends request ids and a time on new lines.
    let first = msg.lines().next().unwrap_or_default().trim();
    if first.is_empty() { String::new() } else { format!(": {}", excerpt(first)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_error_messages() {
        let body = br#"<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthorizationPermissionMismatch</Code><Message>This request is not authorized to perform this operation using this permission.
RequestId:5b1c
Time:2026-12-07T10:00:00.000Z</Message></Error>"#;
        assert_eq!(
            storage_message(body),
            ": This request is not authorized to perform this operation using this permission."
        );
        assert_eq!(storage_message(b""), "");
        assert_eq!(storage_message(b"<Error><Message></Message></Error>"), "");
    }
}
