//! Contract §8: a target's PATs owned by an app registration, reached by federation.
//!
//! The service's own credential (managed identity, or the workload identity's token file)
//! provides a token for `api://AzureADTokenExchange`; it is presented as the client assertion
//! of a client-credentials request for the target's `client_id` at
//! `{AZURE_AUTHORITY_HOST}/{AZURE_TENANT_ID}/oauth2/v2.0/token` (`azure_identity`'s
//! `ClientAssertionCredential`). What comes back is the app's token for Databricks (or for the
//! management audience), which a [`TokenSource`] per (client id, exchange audience) caches per
//! scope exactly like the service's own tokens.
//!
//! - The assertion comes from the service's [`TokenSource`], so it is cached, de-duplicated and
//!   retried there; a cold start costs one identity round trip (shared with the vault token)
//!   plus the exchange.
//! - Entra's refusal of the exchange (400/401 with AADSTS codes: no matching federated
//!   credential, unknown application, …) becomes `identity_federation_refused`, is not retried,
//!   and says what to configure. 5xx and transport trouble are retried like every identity call.
//! - Key Vault never sees these tokens: it always uses the service's own identity.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::error::ErrorKind;
use azure_core::http::ClientMethodOptions;
use azure_identity::{ClientAssertion, ClientAssertionCredential, ClientAssertionCredentialOptions};

use super::credential::{CredentialFactory, TokenSource, sdk_client_options};
use crate::config::{CredentialKind, Settings};
use crate::error::{Code, Error, Result, excerpt};
use crate::transport::client::Http;
use crate::transport::retry::RetryPolicy;

/// The audience of the service's token presented as the assertion, chosen by the workspace's
/// cloud the way [`super::credential::management_scope`] is.
pub fn exchange_scope(workspace_url: &str) -> &'static str {
    crate::config::Cloud::of_workspace(workspace_url).token_exchange_scope()
}

/// What a refusal message needs to say what to configure.
#[derive(Debug, Clone)]
pub struct Federation {
    pub client_id: String,
    tenant_id: String,
    authority: String,
    /// `api://AzureADTokenExchange` (without `/.default`).
    audience: &'static str,
    kind: CredentialKind,
    /// Issuer and subject of the last assertion presented (read from its claims), so that the
    /// message names the exact values the federated credential must carry.
    seen: Arc<Mutex<Claims>>,
}

#[derive(Debug, Clone, Default)]
struct Claims {
    issuer: Option<String>,
    subject: Option<String>,
}

/// Where the assertion comes from.
#[derive(Debug, Clone)]
enum Assertion {
    /// The service's managed identity token for the exchange audience.
    Service { service: Arc<TokenSource>, scope: &'static str, seen: Arc<Mutex<Claims>> },
    /// The workload identity's federated token file, read at every use (it is rotated).
    File { path: String, seen: Arc<Mutex<Claims>> },
}

#[async_trait]
impl ClientAssertion for Assertion {
    async fn secret(&self, _options: Option<ClientMethodOptions<'_>>) -> azure_core::Result<String> {
        let (value, seen, mi) = match self {
            Assertion::Service { service, scope, seen } => {
                let t = service
                    .get(scope)
                    .await
                    .map_err(|e| azure_core::Error::with_message(ErrorKind::Credential, e.message))?;
                (t.expose().to_string(), seen, true)
            }
            Assertion::File { path, seen } => {
                let v = tokio::fs::read_to_string(path).await.map_err(|e| {
                    azure_core::Error::with_message(
                        ErrorKind::Credential,
                        format!("reading the federated token file {path}: {e}"),
                    )
                })?;
                (v.trim().to_string(), seen, false)
            }
        };
        let claims = jwt_claims(&value);
        let pick = |k: &str| claims.as_ref().and_then(|c| c.get(k)).and_then(|v| v.as_str()).map(str::to_string);
        let mut s = seen.lock().expect("claims lock");
        // A managed identity's subject in a federated credential is its principal (object) id.
        s.subject = if mi { pick("oid").or_else(|| pick("sub")) } else { pick("sub") };
        s.issuer = if mi { None } else { pick("iss") };
        Ok(value)
    }
}

/// The claims of a JWT, unverified (only to name issuer and subject in messages, and the writer
/// of a version, contract §10).
pub(crate) fn jwt_claims(token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let payload = token.split('.').nth(1)?;
    let bytes = azure_core::base64::decode_url_safe(payload).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        serde_json::Value::Object(m) => Some(m),
        _ => None,
    }
}

/// A token source for `client_id`'s app registration, whose assertion comes from `service`
/// (managed identity) or the workload identity's token file. No I/O.
pub fn app_token_source(
    settings: &Settings,
    http: &Http,
    client_id: &str,
    exchange_scope: &'static str,
    service: Arc<TokenSource>,
    retry: RetryPolicy,
) -> Result<Arc<TokenSource>> {
    let tenant_id = settings.tenant_id.clone().ok_or_else(|| {
        Error::new(Code::ConfigInvalid, format!("client_id \"{client_id}\": requires AZURE_TENANT_ID"))
    })?;
    let seen = Arc::new(Mutex::new(Claims::default()));
    let assertion = match settings.credential {
        CredentialKind::ManagedIdentity => Assertion::Service { service, scope: exchange_scope, seen: seen.clone() },
        CredentialKind::WorkloadIdentity => {
            let path = std::env::var("AZURE_FEDERATED_TOKEN_FILE").unwrap_or_default();
            Assertion::File { path, seen: seen.clone() }
        }
        other => {
            return Err(Error::new(
                Code::ConfigInvalid,
                format!(
                    "client_id \"{client_id}\": PAT_CREDENTIAL {} cannot present a federated assertion",
                    other.as_str()
                ),
            ));
        }
    };
    let authority = std::env::var("AZURE_AUTHORITY_HOST")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .unwrap_or_else(|| "https://login.microsoftonline.com".to_string())
        .trim_end_matches('/')
        .to_string();
    let federation = Federation {
        client_id: client_id.to_string(),
        tenant_id: tenant_id.clone(),
        authority,
        audience: exchange_scope.trim_end_matches("/.default"),
        kind: settings.credential,
        seen,
    };
    let (http, client_id) = (http.clone(), client_id.to_string());
    let factory: CredentialFactory = Arc::new(move || {
        let cred = ClientAssertionCredential::new(
            tenant_id.clone(),
            client_id.clone(),
            assertion.clone(),
            Some(ClientAssertionCredentialOptions { client_options: sdk_client_options(&http) }),
        )
        .map_err(|e| {
            Error::new(Code::IdentityUnavailable, format!("federated credential for {client_id}: {}", super::chain(&e)))
        })?;
        Ok(cred as Arc<dyn TokenCredential>)
    });
    // Construct one now, so a bad tenant id is reported before any request.
    factory()?;
    Ok(TokenSource::federated(factory, federation, retry))
}

impl Federation {
    /// The error for an SDK failure of the exchange, when Entra refused it (a 4xx answer other
    /// than 408/429); `None` for anything else (transient, or a failure of the assertion).
    pub fn refusal(&self, scope: &str, e: &azure_core::Error) -> Option<Error> {
        let (status, codes, text) = entra_answer(e)?;
        if !(400..500).contains(&status) || status == 408 || status == 429 {
            return None;
        }
        let aadsts = codes
            .as_deref()
            .map(|c| c.split(',').map(|c| format!("AADSTS{}", c.trim())).collect::<Vec<_>>().join(", "))
            .unwrap_or_else(|| format!("HTTP {status}"));
        let seen = self.seen.lock().expect("claims lock").clone();
        let issuer = match self.kind {
            CredentialKind::WorkloadIdentity => {
                seen.issuer.unwrap_or_else(|| "the issuer of AZURE_FEDERATED_TOKEN_FILE".into())
            }
            _ => format!("{}/{}/v2.0", self.authority, self.tenant_id),
        };
        let subject = seen.subject.unwrap_or_else(|| match self.kind {
            CredentialKind::WorkloadIdentity => "the subject of AZURE_FEDERATED_TOKEN_FILE".into(),
            _ => "the managed identity's principal (object) id".into(),
        });
        let hint = if codes.as_deref().is_some_and(|c| c.split(',').any(|c| c.trim() == "700016")) {
            format!(
                "no application {} exists in tenant {}: check the target's client_id and AZURE_TENANT_ID",
                self.client_id, self.tenant_id
            )
        } else {
            format!(
                "give app registration {} a federated identity credential with issuer {issuer}, subject {subject}, audience {}",
                self.client_id, self.audience
            )
        };
        // Entra's description starts with its code; say the code when it does not.
        let said = if text.contains("AADSTS") { excerpt(&text) } else { format!("{aadsts}: {}", excerpt(&text)) };
        Some(
            Error::new(
                Code::IdentityFederationRefused,
                format!(
                    "Entra ID refused the federated exchange for client_id {} (a token for {}): {said}; {hint}",
                    self.client_id,
                    scope.trim_end_matches("/.default"),
                ),
            )
            .with_status(status)
            .with_upstream_code(codes.map(|c| format!("AADSTS{c}"))),
        )
    }

    pub fn label(&self) -> String {
        format!("federated (client_id {})", self.client_id)
    }
}

/// Status, error codes and description of Entra's answer, when the chain has one.
fn entra_answer(e: &azure_core::Error) -> Option<(u16, Option<String>, String)> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(ae) = err.downcast_ref::<azure_core::Error>()
            && let ErrorKind::HttpResponse { status, error_code, .. } = ae.kind()
        {
            // The description alone: Entra's text, without the SDK's framing.
            let text = ae.to_string();
            return Some((u16::from(*status), error_code.clone(), text));
        }
        cur = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_audience_by_cloud() {
        assert_eq!(exchange_scope("https://adb-1.1.azuredatabricks.net"), "api://AzureADTokenExchange/.default");
        assert_eq!(exchange_scope("https://adb-1.1.databricks.azure.us"), "api://AzureADTokenExchangeUSGov/.default");
        assert_eq!(exchange_scope("https://adb-1.1.databricks.azure.cn"), "api://AzureADTokenExchangeChina/.default");
        assert_eq!(exchange_scope("http://127.0.0.1:8080"), "api://AzureADTokenExchange/.default");
    }

    fn federation(kind: CredentialKind) -> Federation {
        Federation {
            client_id: "0a0a0a0a-1111-4111-8111-aaaaaaaaaaaa".into(),
            tenant_id: "t-1".into(),
            authority: "https://login.microsoftonline.com".into(),
            audience: "api://AzureADTokenExchange",
            kind,
            seen: Arc::new(Mutex::new(Claims { issuer: None, subject: Some("oid-1".into()) })),
        }
    }

    /// What the SDK's `ClientAssertionCredential` returns for an Entra error answer, wrapped
    /// like its authentication error.
    fn sdk_error(status: u16, codes: Option<&str>, description: &str) -> azure_core::Error {
        let inner = azure_core::Error::with_message(
            ErrorKind::HttpResponse {
                status: azure_core::http::StatusCode::from(status),
                error_code: codes.map(str::to_string),
                raw_response: None,
            },
            description.to_string(),
        );
        azure_core::Error::with_error(ErrorKind::Credential, inner, "ClientAssertionCredential authentication failed.")
    }

    #[test]
    fn entra_refusals_say_what_to_configure() {
        let f = federation(CredentialKind::ManagedIdentity);
        let e = sdk_error(
            400,
            Some("70021"),
            "AADSTS70021: No matching federated identity record found for presented assertion.",
        );
        let r = f.refusal(crate::azure::credential::DATABRICKS_SCOPE, &e).expect("a refusal");
        assert_eq!(r.code, Code::IdentityFederationRefused);
        assert!(!r.transient);
        assert_eq!(r.upstream_code.as_deref(), Some("AADSTS70021"));
        assert!(r.message.contains("AADSTS70021: No matching federated identity record"), "{}", r.message);
        assert!(
            r.message.contains(
                "issuer https://login.microsoftonline.com/t-1/v2.0, subject oid-1, audience api://AzureADTokenExchange"
            ),
            "{}",
            r.message
        );
        let e = sdk_error(400, Some("700016"), "AADSTS700016: Application with identifier 'x' was not found");
        assert!(f.refusal("s", &e).unwrap().message.contains("check the target's client_id and AZURE_TENANT_ID"));
        // No description code: the message still names the code.
        let e = sdk_error(401, Some("7000215"), "Invalid client secret provided.");
        assert!(f.refusal("s", &e).unwrap().message.contains("AADSTS7000215: Invalid client secret"));
        // Workload identity: the issuer is the token file's.
        let w = federation(CredentialKind::WorkloadIdentity);
        w.seen.lock().unwrap().issuer = Some("https://oidc.example/issuer".into());
        let e = sdk_error(
            401,
            Some("700211"),
            "AADSTS700211: No matching federated identity record found for presented assertion issuer",
        );
        assert!(w.refusal("s", &e).unwrap().message.contains("issuer https://oidc.example/issuer, subject oid-1"));
    }

    #[test]
    fn throttling_server_errors_and_transport_trouble_are_not_refusals() {
        let f = federation(CredentialKind::ManagedIdentity);
        for status in [408, 429, 500, 503] {
            assert!(f.refusal("s", &sdk_error(status, None, "busy")).is_none(), "{status}");
        }
        let conn = azure_core::Error::with_message(ErrorKind::Connection, "connection refused");
        assert!(f.refusal("s", &conn).is_none());
        // The assertion could not be had (the managed identity failed): not Entra's refusal.
        let mi = azure_core::Error::with_message(ErrorKind::Credential, "identity_unavailable: …");
        assert!(f.refusal("s", &mi).is_none());
    }

    #[test]
    fn claims_of_a_jwt() {
        let payload = azure_core::base64::encode_url_safe(br#"{"oid":"o-1","iss":"i"}"#);
        let c = jwt_claims(&format!("h.{payload}.s")).unwrap();
        assert_eq!(c["oid"], "o-1");
        assert!(jwt_claims("not-a-jwt").is_none());
    }
}
