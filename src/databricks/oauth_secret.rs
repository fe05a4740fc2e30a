//! The OAuth-secret issuer: one service principal's OAuth secrets, managed by the service's
//! identity (a workspace admin) through the workspace-level secrets proxy API (contract §9).
//!
//! - **Lookup**: the principal's SCIM id from its application id, once per engine.
//! - **Ownership**: a secret carries no comment, so every secret of the principal is the
//!   target's only while a version of the target's secret records it
//!   ([`Ownership::IfRecorded`]); the rotation settles that from the vault, and never deletes
//!   one it cannot attribute.
//! - **Refusals**: the principal's limit of five secrets is a full issuer; a lifetime above 730
//!   days is above the cap.
//! - **Verification**: a token from the workspace's OIDC endpoint with the new secret (HTTP
//!   Basic, `client_credentials`, `scope=all-apis`). A new secret may take a moment to be
//!   accepted everywhere: a `401` is retried for at most [`PROPAGATION`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde_json::json;
use time::OffsetDateTime;
use tokio::time::Instant;

use super::tags;
use super::{Auth, Body, CreateFailure, DatabricksWorkspace, errors, wire};
use crate::error::{Code, Error, Result};
use crate::rotation::model::{CreateRequest, Credential, NewCredential, Ownership, Profile};
use crate::rotation::ports::{CreateError, Issuer, Listing, Refusal, Usage};
use crate::secret::Redacted;

/// What an OAuth secret looks like in the vault (contract §9).
pub static PROFILE: Profile = Profile {
    noun: "OAuth secret",
    content_type: "databricks-oauth-secret",
    id_tag: tags::SECRET_ID,
    previous_tag: tags::PREVIOUS_SECRET_ID,
    expires_tag: None,
    cap: 5,
    revokes_over_cap: false,
    labels_attempts: false,
    reports_unrecorded: true,
    naming_tags: tags::NAMING,
};

/// How long a `401` of a brand-new secret at the token endpoint is taken for propagation.
pub const PROPAGATION: Duration = Duration::from_secs(30);
/// What a `403` on the secrets API asks of the identity.
const FORBIDDEN: &str = "managing a service principal's OAuth secrets needs a workspace admin: make the identity an admin of the workspace (or use management-header mode with Contributor), see contract §9";
const TOKEN_PATH: &str = "/oidc/v1/token";

/// One service principal's OAuth secrets in one workspace.
pub struct OAuthSecretIssuer {
    ws: Arc<DatabricksWorkspace>,
    application_id: String,
    /// The principal's SCIM id, once found.
    scim_id: Mutex<Option<String>>,
}

impl OAuthSecretIssuer {
    pub fn new(ws: Arc<DatabricksWorkspace>, application_id: &str) -> OAuthSecretIssuer {
        OAuthSecretIssuer { ws, application_id: application_id.to_ascii_lowercase(), scim_id: Mutex::new(None) }
    }

    pub fn application_id(&self) -> &str {
        &self.application_id
    }

    /// The principal's SCIM id in the workspace (cached).
    async fn scim_id(&self) -> Result<String> {
        if let Some(id) = self.scim_id.lock().expect("scim id lock").clone() {
            return Ok(id);
        }
        let filter = format!("applicationId eq \"{}\"", self.application_id);
        let path = format!(
            "/api/2.0/preview/scim/v2/ServicePrincipals?filter={}",
            url::form_urlencoded::byte_serialize(filter.as_bytes()).collect::<String>()
        );
        let a = self.ws.call("finding the service principal", Method::GET, &path, None, FORBIDDEN).await?;
        let id = wire::parse_scim_principal(&a.body, &self.application_id)
            .map_err(|e| Error::new(Code::DatabricksError, format!("finding the service principal in {}: {e}", self.ws.base())))?
            .ok_or_else(|| {
                Error::new(
                    Code::DatabricksPrincipalNotFound,
                    format!(
                        "no service principal with application id {} in {} (add it to the workspace, or correct service_principal)",
                        self.application_id,
                        self.ws.base()
                    ),
                )
            })?;
        *self.scim_id.lock().expect("scim id lock") = Some(id.clone());
        Ok(id)
    }

    fn secrets_path(&self, scim_id: &str) -> String {
        format!("/api/2.0/accounts/servicePrincipals/{scim_id}/credentials/secrets")
    }

    fn credential(s: wire::SpSecret) -> Credential {
        Credential {
            id: s.id,
            comment: None,
            created_at: s.created_at,
            expires_at: s.expires_at,
            ownership: Ownership::IfRecorded,
            attempt: None,
        }
    }

    /// The principal's secrets as the API lists them, every page (for `tokens`), and the
    /// workspace's clock at the first page.
    pub async fn list_raw(&self) -> Result<(Vec<wire::SpSecret>, Option<OffsetDateTime>)> {
        let scim_id = self.scim_id().await?;
        let base = self.secrets_path(&scim_id);
        let mut all = Vec::new();
        let mut at = None;
        let mut page: Option<String> = None;
        // Bounded: a principal has at most five secrets, a page at least one.
        for _ in 0..50 {
            let path = match &page {
                None => base.clone(),
                Some(p) => format!(
                    "{base}?page_token={}",
                    url::form_urlencoded::byte_serialize(p.as_bytes()).collect::<String>()
                ),
            };
            let a =
                self.ws.call("listing OAuth secrets", Method::GET, &path, None, FORBIDDEN).await.inspect_err(|e| {
                    if e.status == Some(404) {
                        // The principal is gone (or was recreated with another SCIM id).
                        *self.scim_id.lock().expect("scim id lock") = None;
                    }
                })?;
            at = at.or(a.date);
            let (secrets, next) = wire::parse_sp_secrets(&a.body).map_err(|e| {
                Error::new(Code::DatabricksError, format!("listing OAuth secrets in {}: {e}", self.ws.base()))
            })?;
            all.extend(secrets);
            match next {
                Some(n) if Some(&n) != page.as_ref() => page = Some(n),
                _ => return Ok((all, at)),
            }
        }
        Err(Error::new(Code::DatabricksError, format!("listing OAuth secrets in {}: too many pages", self.ws.base())))
    }

    /// A refusal of a create, read.
    fn refusal(&self, e: Error) -> CreateError {
        let upstream = e.upstream_code.as_deref().unwrap_or("");
        let m = e.message.to_ascii_lowercase();
        let full = matches!(upstream, "QUOTA_EXCEEDED" | "RESOURCE_LIMIT_EXCEEDED" | "RESOURCE_EXHAUSTED")
            || (m.contains("secret") && (m.contains("maximum number") || m.contains("limit")));
        if full {
            let e = Error { code: Code::DatabricksQuotaExceeded, ..e }
                .context("the service principal holds its limit of five OAuth secrets");
            return CreateError::Refused(Refusal::Full, e);
        }
        if m.contains("microsoft entra id") || m.contains("entra id managed") {
            // Azure Databricks holds OAuth secrets only for the service principals it manages;
            // an Entra ID app registration authenticates with Entra ID instead.
            let e = e.context(&format!(
                "service principal {} is managed by Microsoft Entra ID, and Azure Databricks creates OAuth secrets only for Databricks-managed service principals: use a Databricks-managed principal for this target, or keep a PAT of the Entra app with a `kind: pat` target and `client_id` (contract §8)",
                self.application_id
            ));
            return CreateError::Refused(Refusal::Other, e);
        }
        if e.status == Some(400) && (m.contains("lifetime") || m.contains("730 days")) {
            let e = Error { code: Code::DatabricksLifetimeTooLong, ..e }
                .context("an OAuth secret lives at most 730 days: set lifetime_days to 730 or less");
            return CreateError::Refused(Refusal::LifetimeAboveCap, e);
        }
        CreateError::Refused(Refusal::Other, e)
    }
}

#[async_trait]
impl Issuer for OAuthSecretIssuer {
    fn profile(&self) -> &'static Profile {
        &PROFILE
    }

    async fn list(&self) -> Result<Listing> {
        let (secrets, at) = self.list_raw().await?;
        Ok(Listing { credentials: secrets.into_iter().map(Self::credential).collect(), at })
    }

    async fn create(&self, req: &CreateRequest) -> std::result::Result<NewCredential, CreateError> {
        let scim_id = self.scim_id().await.map_err(|e| CreateError::Refused(Refusal::Other, e))?;
        let path = self.secrets_path(&scim_id);
        let body = json!({ "lifetime": format!("{}s", req.lifetime_seconds) });
        // Never retried once it may have reached the workspace: a lost secret cannot be found
        // again (contract §9).
        match self.ws.create_call("creating an OAuth secret", &path, body, FORBIDDEN).await {
            Ok(a) => wire::parse_sp_secret_create(&a.body)
                .map(|(value, s)| NewCredential { value, info: Self::credential(s) })
                .map_err(|e| {
                    CreateError::Ambiguous(Error::new(
                        Code::UpstreamUnavailable,
                        format!("creating an OAuth secret in {}: unreadable answer ({e})", self.ws.base()),
                    ))
                }),
            Err(CreateFailure::Ambiguous(e)) => Err(CreateError::Ambiguous(e)),
            Err(CreateFailure::Refused(e)) if e.status.is_none() => Err(CreateError::Refused(Refusal::Other, e)),
            Err(CreateFailure::Refused(e)) => Err(self.refusal(e)),
        }
    }

    async fn verify(&self, secret: &Redacted) -> Result<Option<OffsetDateTime>> {
        let form = [("grant_type", "client_credentials"), ("scope", "all-apis")];
        let started = Instant::now();
        let base = self.ws.base();
        let mut pause = Duration::from_millis(500);
        loop {
            let answer = self
                .ws
                .retry()
                .run("verifying the new OAuth secret", || async {
                    let a = self
                        .ws
                        .exchange(
                            Method::POST,
                            TOKEN_PATH,
                            Body::Form(&form),
                            Auth::Basic(&self.application_id, secret),
                        )
                        .await?;
                    if a.status.is_success()
                        || a.status == StatusCode::UNAUTHORIZED
                        || a.status == StatusCode::BAD_REQUEST
                    {
                        Ok(a)
                    } else {
                        // Scrubbed of the secret (and of the base64 of `client_id:secret`)
                        // before anything is shortened (contract §10).
                        Err(errors::from_answer_holding(
                            "verifying the new OAuth secret",
                            base,
                            a.status,
                            a.retry_after.as_deref(),
                            &a.body,
                            false,
                            "",
                            &[secret],
                        ))
                    }
                })
                .await?;
            if answer.status.is_success() {
                return Ok(answer.date);
            }
            let (code, message) = errors::parse_body_holding(&answer.body, &[secret]);
            let waited = started.elapsed();
            if waited + pause > PROPAGATION
                || crate::transport::retry::deadline().is_some_and(|d| Instant::now() + pause >= d)
            {
                return Err(Error::new(
                    Code::DatabricksUnauthorized,
                    format!(
                        "the workspace's token endpoint refused the new OAuth secret for {} s ({} {}: {message})",
                        waited.as_secs(),
                        answer.status.as_u16(),
                        code.unwrap_or_default()
                    ),
                )
                .with_status(answer.status.as_u16()));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(8));
        }
    }

    async fn revoke(&self, id: &str) -> Result<()> {
        let scim_id = self.scim_id().await?;
        let path = format!("{}/{id}", self.secrets_path(&scim_id));
        self.ws.delete("deleting an OAuth secret", Method::DELETE, &path, None, FORBIDDEN).await
    }

    /// A service principal's OAuth secret has no record of use (`SecretInfo`: id, times, status,
    /// hash), so `keep_while_used` is refused for this kind.
    async fn usage(&self, _id: &str) -> Usage {
        Usage::Untracked
    }
}
