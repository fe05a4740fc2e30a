//! The Azure Databricks Token API (`/api/2.0/token/*`) on the process's HTTP client.
//!
//! - [`wire`]: the JSON shapes, lenient where Databricks is (`{}` for an empty list, ids and
//!   times as strings or numbers, unknown fields ignored).
//! - [`errors`]: what a Databricks answer means, as a stable error code.
//! - [`DatabricksWorkspace`]: the [`Workspace`](crate::rotation::ports::Workspace) port.
//!
//! Authentication: an Entra ID token for the Databricks application; when the target names a
//! workspace resource id, also the management token and the resource id headers, which let an
//! identity that is not (yet) a workspace member act through its Azure role on the workspace.

pub mod errors;
pub mod wire;

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde_json::json;
use time::OffsetDateTime;
use tracing::debug;

use crate::azure::credential::{DATABRICKS_SCOPE, TokenSource, management_scope};
use crate::error::{Code, Error, Result};
use crate::rotation::model::{CreateToken, NewToken};
use crate::rotation::ports::{CreateError, Listing, Workspace};
use crate::secret::Redacted;
use crate::transport::pacing::RateLimiter;
use crate::transport::retry::RetryPolicy;

const SP_MANAGEMENT_HEADER: &str = "X-Databricks-Azure-SP-Management-Token";
const RESOURCE_ID_HEADER: &str = "X-Databricks-Azure-Workspace-Resource-Id";

/// One workspace, as seen by the calling identity.
pub struct DatabricksWorkspace {
    http: reqwest::Client,
    base: String,
    resource_id: Option<String>,
    tokens: Arc<TokenSource>,
    retry: RetryPolicy,
    pacer: Option<Arc<RateLimiter>>,
}

/// Who a request authenticates as.
enum Auth<'a> {
    /// The identity (Entra ID token, plus the management headers when configured).
    Identity,
    /// A PAT (to verify it).
    Pat(&'a Redacted),
}

/// A raw answer: status, `Retry-After`, the workspace's clock (`Date`), body.
struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    date: Option<OffsetDateTime>,
    body: bytes::Bytes,
}

/// The verification call: `GET /api/2.0/preview/scim/v2/Me`. Databricks lists it under every
/// token scope, so a token of any scope may call it, and an auto-scoped token learns nothing
/// from it. The token API itself (`/api/2.0/token/*`) would not do: it is in the
/// `authentication` scope, which a scoped token may lack and from which an auto-scoped token
/// would keep the power to mint tokens of any scope.
const VERIFY_PATH: &str = "/api/2.0/preview/scim/v2/Me";

impl DatabricksWorkspace {
    pub fn new(
        http: reqwest::Client,
        workspace_url: &str,
        resource_id: Option<String>,
        tokens: Arc<TokenSource>,
        retry: RetryPolicy,
        pacer: Option<Arc<RateLimiter>>,
    ) -> DatabricksWorkspace {
        DatabricksWorkspace {
            http,
            base: workspace_url.trim_end_matches('/').to_string(),
            resource_id,
            tokens,
            retry,
            pacer,
        }
    }

    /// The scopes a request of this workspace needs, for prefetching.
    pub fn scopes(&self) -> Vec<&'static str> {
        let mut v = vec![DATABRICKS_SCOPE];
        if self.resource_id.is_some() {
            v.push(management_scope(&self.base));
        }
        v
    }

    /// One HTTP exchange, no retry. `Err` only for transport trouble; any HTTP status is an
    /// `Answer`.
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        auth: Auth<'_>,
    ) -> Result<Answer> {
        let url = format!("{}{}", self.base, path);
        let mut req = self.http.request(method, &url).timeout(self.retry.attempt_timeout());
        match auth {
            Auth::Identity => {
                let (bearer, mgmt) = match &self.resource_id {
                    None => (self.tokens.get(DATABRICKS_SCOPE).await?, None),
                    Some(_) => {
                        let (b, m) = futures::join!(
                            self.tokens.get(DATABRICKS_SCOPE),
                            self.tokens.get(management_scope(&self.base))
                        );
                        (b?, Some(m?))
                    }
                };
                req = req.bearer_auth(bearer.expose());
                if let (Some(m), Some(rid)) = (mgmt, &self.resource_id) {
                    req = req.header(SP_MANAGEMENT_HEADER, m.expose()).header(RESOURCE_ID_HEADER, rid);
                }
            }
            Auth::Pat(pat) => req = req.bearer_auth(pat.expose()),
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        if let Some(p) = &self.pacer {
            p.acquire().await;
        }
        let resp = req.send().await.map_err(|e| errors::transport(&self.base, path, &e))?;
        let status = resp.status();
        let retry_after =
            resp.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).map(str::to_string);
        let date = resp.headers().get(reqwest::header::DATE).and_then(|v| v.to_str().ok()).and_then(http_date);
        let body = resp.bytes().await.map_err(|e| errors::transport(&self.base, path, &e))?;
        debug!(workspace = %self.base, path, status = status.as_u16(), "databricks call");
        Ok(Answer { status, retry_after, date, body })
    }

    /// What an unsuccessful answer of the identity's call means.
    fn refusal(&self, op: &str, a: &Answer) -> Error {
        errors::from_answer(op, &self.base, a.status, a.retry_after.as_deref(), &a.body, self.resource_id.is_some())
    }

    /// An idempotent call, retried; returns the 2xx answer.
    async fn call(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Answer> {
        self.retry
            .run(op, || async {
                let a = self.exchange(method.clone(), path, body.clone(), Auth::Identity).await?;
                if a.status.is_success() { Ok(a) } else { Err(self.refusal(op, &a)) }
            })
            .await
    }
}

/// An HTTP `Date` header (RFC 7231), as both services send it.
pub fn http_date(v: &str) -> Option<OffsetDateTime> {
    httpdate::parse_http_date(v).ok().map(OffsetDateTime::from)
}

#[async_trait]
impl Workspace for DatabricksWorkspace {
    async fn list_tokens(&self) -> Result<Listing> {
        let a = self.call("listing tokens", Method::GET, "/api/2.0/token/list", None).await?;
        let tokens = wire::parse_list(&a.body)
            .map_err(|e| Error::new(Code::DatabricksError, format!("listing tokens in {}: {e}", self.base)))?;
        Ok(Listing { tokens, at: a.date })
    }

    async fn create_token(&self, req: &CreateToken) -> std::result::Result<NewToken, CreateError> {
        let mut body = json!({ "comment": req.comment, "lifetime_seconds": req.lifetime_seconds });
        if let Some(scopes) = &req.scopes {
            body["scopes"] = json!(scopes);
        }
        if let Some(autoscope) = req.autoscope {
            body["autoscope_enabled"] = json!(autoscope);
        }
        // Retried only where the workspace cannot have acted: a refused connection, or 429.
        // (Not through `RetryPolicy::run`: it would also retry a timeout, which here may mean a
        // token was created.)
        let mut attempt = 1;
        loop {
            let answer = self
                .retry
                .once(
                    "creating a token",
                    self.exchange(Method::POST, "/api/2.0/token/create", Some(body.clone()), Auth::Identity),
                )
                .await;
            let err = match answer {
                Ok(a) if a.status.is_success() => {
                    return wire::parse_create(&a.body).map_err(|e| {
                        CreateError::Ambiguous(Error::new(
                            Code::DatabricksError,
                            format!("creating a token in {}: unreadable answer ({e})", self.base),
                        ))
                    });
                }
                Ok(a) => {
                    let e = self.refusal("creating a token", &a);
                    if a.status == StatusCode::TOO_MANY_REQUESTS {
                        e // not processed: safe to retry
                    } else if a.status.is_server_error() {
                        return Err(CreateError::Ambiguous(e));
                    } else {
                        return Err(CreateError::Refused(e));
                    }
                }
                Err(e) if errors::never_sent(&e) => e,
                // No token was asked for: the identity's token was not to be had.
                Err(e) if matches!(e.code, Code::IdentityUnavailable | Code::IdentityFederationRefused) => {
                    return Err(CreateError::Refused(e));
                }
                Err(e) => return Err(CreateError::Ambiguous(e)),
            };
            match self.retry.next_wait(attempt, &err) {
                Ok(wait) => tokio::time::sleep(wait).await,
                Err(_) => return Err(CreateError::Refused(err)),
            }
            attempt += 1;
        }
    }

    async fn delete_token(&self, token_id: &str) -> Result<()> {
        self.retry
            .run("revoking a token", || async {
                let a = self
                    .exchange(
                        Method::POST,
                        "/api/2.0/token/delete",
                        Some(json!({ "token_id": token_id })),
                        Auth::Identity,
                    )
                    .await?;
                if a.status.is_success() || errors::is_already_gone(a.status, &a.body) {
                    Ok(())
                } else {
                    Err(self.refusal("revoking a token", &a))
                }
            })
            .await
    }

    async fn verify_token(&self, token: &Redacted) -> Result<Option<OffsetDateTime>> {
        self.retry
            .run("verifying the new token", || async {
                let a = self.exchange(Method::GET, VERIFY_PATH, None, Auth::Pat(token)).await?;
                if a.status.is_success() || errors::is_missing_scopes(a.status, &a.body) {
                    // A refusal for missing scopes comes only after the token authenticated.
                    Ok(a.date)
                } else {
                    let mut e = errors::from_answer(
                        "verifying the new token",
                        &self.base,
                        a.status,
                        a.retry_after.as_deref(),
                        &a.body,
                        false,
                    );
                    e.message = crate::secret::scrub(&e.message, &[token]);
                    Err(e)
                }
            })
            .await
    }

    async fn max_lifetime_days(&self) -> Option<u32> {
        let answer = self
            .call("reading workspace-conf", Method::GET, "/api/2.0/workspace-conf?keys=maxTokenLifetimeDays", None)
            .await
            .ok()?;
        wire::parse_max_lifetime(&answer.body)
    }
}
