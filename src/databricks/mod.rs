//! An Azure Databricks workspace on the process's HTTP client, and the two credential issuers
//! that live on it.
//!
//! - [`DatabricksWorkspace`]: one workspace as the calling identity sees it — authentication
//!   (an Entra ID token, plus the management-token headers in management-header mode), one
//!   exchange, idempotent calls retried. It knows nothing of credentials.
//! - [`pat`]: the PAT issuer (Token API `/api/2.0/token/*`): comment ownership, the token quota,
//!   the lifetime cap, verification with SCIM `Me`.
//! - [`oauth_secret`]: the OAuth-secret issuer of a service principal (contract §9): SCIM
//!   lookup, the secrets proxy API, ownership by record, the limit of five, verification at
//!   the workspace's OIDC token endpoint.
//! - [`wire`]: the JSON shapes, lenient where Databricks is.
//! - [`errors`]: what a Databricks answer means, as a stable error code.
//!
//! Where to add a Databricks quirk: the issuer it concerns, or `errors.rs` if every call has it.

pub mod errors;
pub mod oauth_secret;

/// The Databricks tag names of contract §6 and §9: which workspace, which credential, whose.
pub mod tags {
    pub const HOST: &str = "databricks-host";
    pub const TOKEN_ID: &str = "databricks-token-id";
    pub const EXPIRES_AT: &str = "token-expires-at";
    pub const PREVIOUS_TOKEN_ID: &str = "previous-token-id";
    /// A PAT target's `client_id` (§8), or an OAuth-secret target's application id (§9).
    pub const CLIENT_ID: &str = "databricks-client-id";
    pub const SECRET_ID: &str = "databricks-secret-id";
    pub const PREVIOUS_SECRET_ID: &str = "previous-secret-id";
    /// The tags by which a version names a credential, of either kind (contract §7.4(a)).
    pub const NAMING: &[&str] = &[TOKEN_ID, SECRET_ID];
}
pub mod pat;
pub mod wire;

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use time::OffsetDateTime;
use tracing::debug;

use crate::azure::credential::{DATABRICKS_SCOPE, TokenSource, management_scope};
use crate::error::{Code, Error, Result};
use crate::secret::Redacted;
use crate::transport::client::Http;
use crate::transport::pacing::RateLimiter;
use crate::transport::retry::RetryPolicy;

/// The SDK's method for ours.
fn sdk_method(m: &Method) -> azure_core::http::Method {
    use azure_core::http::Method as M;
    match *m {
        Method::GET => M::Get,
        Method::POST => M::Post,
        Method::PUT => M::Put,
        Method::PATCH => M::Patch,
        Method::DELETE => M::Delete,
        Method::HEAD => M::Head,
        _ => M::Get,
    }
}

const SP_MANAGEMENT_HEADER: &str = "X-Databricks-Azure-SP-Management-Token";
const RESOURCE_ID_HEADER: &str = "X-Databricks-Azure-Workspace-Resource-Id";

/// One workspace, as seen by the calling identity.
pub struct DatabricksWorkspace {
    http: Http,
    base: String,
    resource_id: Option<String>,
    tokens: Arc<TokenSource>,
    retry: RetryPolicy,
    pacer: Option<Arc<RateLimiter>>,
}

/// Who a request authenticates as.
pub(crate) enum Auth<'a> {
    /// The identity (Entra ID token, plus the management headers when configured).
    Identity,
    /// A bearer credential under test (a new PAT).
    Bearer(&'a Redacted),
    /// HTTP Basic with a client id and a secret under test (an OAuth secret at the token
    /// endpoint).
    Basic(&'a str, &'a Redacted),
}

/// A request body.
pub(crate) enum Body<'a> {
    None,
    Json(serde_json::Value),
    Form(&'a [(&'a str, &'a str)]),
}

/// A raw answer: status, `Retry-After`, the workspace's clock (`Date`), body.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub retry_after: Option<String>,
    pub date: Option<OffsetDateTime>,
    pub body: bytes::Bytes,
}

impl DatabricksWorkspace {
    pub fn new(
        http: Http,
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

    /// The workspace URL (`https://host`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The scopes a request of this workspace needs, for prefetching.
    pub fn scopes(&self) -> Vec<&'static str> {
        let mut v = vec![DATABRICKS_SCOPE];
        if self.resource_id.is_some() {
            v.push(management_scope(&self.base));
        }
        v
    }

    pub(crate) fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    /// One HTTP exchange, no retry, bounded by the attempt timeout. `Err` only for transport
    /// trouble; any HTTP status is an [`Answer`].
    pub(crate) async fn exchange(&self, method: Method, path: &str, body: Body<'_>, auth: Auth<'_>) -> Result<Answer> {
        use azure_core::http::Request;
        let url = format!("{}{}", self.base, path);
        let parsed = url::Url::parse(&url)
            .map_err(|e| Error::new(Code::DatabricksError, format!("calling {}{path}: not a URL ({e})", self.base)))?;
        let mut req = Request::new(parsed, sdk_method(&method));
        req.insert_header("user-agent", concat!("pat-rotator/", env!("CARGO_PKG_VERSION")));
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
                req.insert_header("authorization", format!("Bearer {}", bearer.expose()));
                if let (Some(m), Some(rid)) = (mgmt, &self.resource_id) {
                    req.insert_header(SP_MANAGEMENT_HEADER.to_ascii_lowercase(), m.expose().to_string());
                    req.insert_header(RESOURCE_ID_HEADER.to_ascii_lowercase(), rid.clone());
                }
            }
            Auth::Bearer(secret) => req.insert_header("authorization", format!("Bearer {}", secret.expose())),
            Auth::Basic(user, secret) => {
                let pair = Redacted::new(format!("{user}:{}", secret.expose()));
                let encoded = Redacted::new(azure_core::base64::encode(pair.expose()));
                req.insert_header("authorization", format!("Basic {}", encoded.expose()));
            }
        }
        match body {
            Body::None => {}
            Body::Json(b) => {
                req.insert_header("content-type", "application/json");
                req.set_body(serde_json::to_vec(&b).unwrap_or_default());
            }
            Body::Form(f) => {
                let encoded = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(f.iter()).finish();
                req.insert_header("content-type", "application/x-www-form-urlencoded");
                req.set_body(encoded.into_bytes());
            }
        }
        if let Some(p) = &self.pacer {
            p.acquire().await;
        }
        let limit = self.retry.attempt_timeout();
        let sent = async {
            let resp = self.http.execute_request(&req).await?;
            let (status, headers, body) = resp.deconstruct();
            let body = body.collect().await?;
            Ok::<_, azure_core::Error>((status, headers, body))
        };
        let (status, headers, body) = match tokio::time::timeout(limit, sent).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => return Err(errors::transport(&self.base, path, &e)),
            Err(_) => {
                return Err(Error::new(
                    Code::Timeout,
                    format!("calling {}{path}: no answer within {} s", self.base, limit.as_secs_f32()),
                )
                .transient());
            }
        };
        let status = StatusCode::from_u16(u16::from(status)).unwrap_or(StatusCode::BAD_GATEWAY);
        let header = |name: &'static str| {
            headers.get_optional_str(&azure_core::http::headers::HeaderName::from_static(name)).map(str::to_string)
        };
        let retry_after = header("retry-after");
        let date = header("date").as_deref().and_then(crate::transport::http_date);
        debug!(workspace = %self.base, path, status = status.as_u16(), "databricks call");
        Ok(Answer { status, retry_after, date, body })
    }

    /// What an unsuccessful answer of the identity's call means; `forbidden` says what a `403`
    /// asks of the identity for this API.
    pub(crate) fn refusal(&self, op: &str, a: &Answer, forbidden: &str) -> Error {
        errors::from_answer(
            op,
            &self.base,
            a.status,
            a.retry_after.as_deref(),
            &a.body,
            self.resource_id.is_some(),
            forbidden,
        )
    }

    /// An idempotent call as the identity, retried; returns the 2xx answer.
    pub(crate) async fn call(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        forbidden: &str,
    ) -> Result<Answer> {
        self.call_accepting(op, method, path, body, forbidden, |a| a.status.is_success()).await
    }

    /// A delete as the identity, retried; a credential that is already gone counts as deleted.
    pub(crate) async fn delete(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        forbidden: &str,
    ) -> Result<()> {
        self.call_accepting(op, method, path, body, forbidden, |a| {
            a.status.is_success() || errors::is_already_gone(a.status, &a.body)
        })
        .await
        .map(|_| ())
    }

    /// An idempotent call as the identity, retried until `accept` takes its answer.
    async fn call_accepting(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        forbidden: &str,
        accept: impl Fn(&Answer) -> bool,
    ) -> Result<Answer> {
        self.retry
            .run(op, || async {
                let b = match &body {
                    Some(v) => Body::Json(v.clone()),
                    None => Body::None,
                };
                let a = self.exchange(method.clone(), path, b, Auth::Identity).await?;
                if accept(&a) { Ok(a) } else { Err(self.refusal(op, &a, forbidden)) }
            })
            .await
    }
}

/// How a create failed, before the issuer reads the refusal.
pub(crate) enum CreateFailure {
    /// The workspace answered 4xx, or no request was sent (the identity's token was not to be
    /// had): nothing was created.
    Refused(Error),
    /// It may have acted (5xx, timeout, a connection lost after sending).
    Ambiguous(Error),
}

impl DatabricksWorkspace {
    /// A create as the identity: one attempt, tried again only where the workspace cannot have
    /// acted (a refused connection, 429) — not through [`RetryPolicy::run`], which would also
    /// retry a timeout, after which a credential may exist. Returns the 2xx answer.
    pub(crate) async fn create_call(
        &self,
        op: &'static str,
        path: &str,
        body: serde_json::Value,
        forbidden: &str,
    ) -> std::result::Result<Answer, CreateFailure> {
        let mut attempt = 1;
        loop {
            let answer =
                self.retry.once(op, self.exchange(Method::POST, path, Body::Json(body.clone()), Auth::Identity)).await;
            let err = match answer {
                Ok(a) if a.status.is_success() => return Ok(a),
                Ok(a) if a.status == StatusCode::TOO_MANY_REQUESTS => self.refusal(op, &a, forbidden),
                Ok(a) if a.status.is_server_error() => {
                    return Err(CreateFailure::Ambiguous(self.refusal(op, &a, forbidden)));
                }
                Ok(a) => return Err(CreateFailure::Refused(self.refusal(op, &a, forbidden))),
                Err(e) if errors::never_sent(&e) => e,
                // No request was sent: the identity's token was not to be had.
                Err(e) if matches!(e.code, Code::IdentityUnavailable | Code::IdentityFederationRefused) => {
                    return Err(CreateFailure::Refused(e));
                }
                Err(e) => return Err(CreateFailure::Ambiguous(e)),
            };
            match self.retry.next_wait(attempt, &err) {
                Ok(wait) => tokio::time::sleep(wait).await,
                Err(_) => return Err(CreateFailure::Refused(err)),
            }
            attempt += 1;
        }
    }
}
