//! Entra ID tokens: which credential (`PAT_CREDENTIAL`), and one cached token per scope.
//!
//! [`TokenSource`] sits between the SDK credential and everything that needs a token (the
//! Databricks client directly, the Key Vault SDK client through [`TokenSource::as_credential`]):
//! - one token per scope, reused until 5 minutes before expiry;
//! - one fetch at a time per scope, so a burst of targets causes one identity call, and a
//!   prefetch started early is shared by whoever asks next;
//! - a token that expires within [`MIN_USABLE`] is not accepted (Databricks refuses Entra tokens
//!   within 30 s of expiry), it is fetched again;
//! - transient failures are retried by the one retry policy; what is left becomes
//!   `identity_unavailable` with the SDK's message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use azure_core::time::OffsetDateTime;
use azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, ClientAssertionCredentialOptions, ClientSecretCredential,
    ClientSecretCredentialOptions, ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};

use crate::config::Cloud;
use crate::config::{CredentialKind, Settings};
use crate::error::{Code, Error, Result};
use crate::secret::Redacted;
use crate::transport::client::Http;
use crate::transport::retry::RetryPolicy;

/// Azure Databricks' first-party application, the same in every cloud.
pub const DATABRICKS_SCOPE: &str = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d/.default";

/// Reuse a cached token until this long before it expires.
const REFRESH_BEFORE: Duration = Duration::from_secs(300);
/// A refused federated exchange is reported again without asking Entra for this long, so a
/// run (or a burst of ProvisionPat calls) asks once; a later run asks again, so a fixed
/// federated credential is picked up without a restart.
const REFUSAL_MEMO: Duration = Duration::from_secs(60);
/// A freshly issued token must live at least this long to be used at all.
pub const MIN_USABLE: Duration = Duration::from_secs(60);

/// The management audience used in the `X-Databricks-Azure-SP-Management-Token` header, chosen
/// by the workspace's cloud (what the Databricks SDKs do).
pub fn management_scope(workspace_url: &str) -> &'static str {
    Cloud::of_workspace(workspace_url).management_scope()
}

/// The scope Key Vault's challenge will ask for, when it can be known in advance (used only to
/// fetch the token early; the challenge remains authoritative).
pub fn vault_scope(vault_url: &str) -> Option<&'static str> {
    if crate::config::url_is_loopback(vault_url) {
        return Some(Cloud::Public.vault_scope());
    }
    let host = url::Url::parse(vault_url).ok()?.host_str()?.to_ascii_lowercase();
    Cloud::of_vault_host(&host).map(Cloud::vault_scope)
}

/// SDK client options: our HTTP client as transport, no SDK-level retries (ours apply).
pub fn sdk_client_options(http: &Http) -> ClientOptions {
    ClientOptions { transport: Some(Transport::new(http.clone())), retry: RetryOptions::none(), ..Default::default() }
}

/// Builds the SDK credential that `PAT_CREDENTIAL` selects. Construction does no I/O.
pub fn build_credential(settings: &Settings, http: &Http) -> Result<Arc<dyn TokenCredential>> {
    let fail = |e: azure_core::Error| {
        Error::new(
            Code::IdentityUnavailable,
            format!("{} credential: {}", settings.credential.as_str(), super::chain(&e)),
        )
    };
    let cred: Arc<dyn TokenCredential> = match settings.credential {
        CredentialKind::ManagedIdentity => {
            // Without IDENTITY_HEADER the SDK silently falls back to IMDS at 169.254.169.254.
            if std::env::var_os("IDENTITY_ENDPOINT").is_some() && std::env::var_os("IDENTITY_HEADER").is_none() {
                return Err(Error::new(
                    Code::ConfigInvalid,
                    "IDENTITY_HEADER: is required when IDENTITY_ENDPOINT is set",
                ));
            }
            ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                user_assigned_id: settings.client_id.clone().map(UserAssignedId::ClientId),
                client_options: sdk_client_options(http),
            }))
            .map_err(fail)?
        }
        CredentialKind::AzureCli => AzureCliCredential::new(Some(AzureCliCredentialOptions {
            tenant_id: settings.tenant_id.clone(),
            ..Default::default()
        }))
        .map_err(fail)?,
        CredentialKind::ClientSecret => {
            let secret = std::env::var("AZURE_CLIENT_SECRET").unwrap_or_default();
            ClientSecretCredential::new(
                settings.tenant_id.as_deref().unwrap_or_default(),
                settings.client_id.clone().unwrap_or_default(),
                azure_core::credentials::Secret::new(secret),
                Some(ClientSecretCredentialOptions { client_options: sdk_client_options(http) }),
            )
            .map_err(fail)?
        }
        CredentialKind::WorkloadIdentity => WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
            credential_options: ClientAssertionCredentialOptions { client_options: sdk_client_options(http) },
            ..Default::default()
        }))
        .map_err(fail)?,
    };
    Ok(cred)
}

/// Makes a new SDK credential of the configured kind (no I/O).
pub type CredentialFactory = Arc<dyn Fn() -> Result<Arc<dyn TokenCredential>> + Send + Sync>;

/// A factory for the credential `PAT_CREDENTIAL` selects; builds one at once so that a bad
/// setting is reported before any request.
pub fn credential_factory(settings: &Settings, http: &Http) -> Result<CredentialFactory> {
    build_credential(settings, http)?;
    let (settings, http) = (settings.clone(), http.clone());
    Ok(Arc::new(move || build_credential(&settings, &http)))
}

/// Cached, de-duplicated, retried access to Entra ID tokens. See the module docs.
///
/// It keeps one SDK credential per scope: `azure_identity`'s own cache holds a single write
/// lock across a token fetch for *any* scope, so one shared credential would fetch the
/// Databricks, management and vault tokens one after the other instead of at once.
pub struct TokenSource {
    factory: CredentialFactory,
    credentials: Mutex<HashMap<String, Arc<dyn TokenCredential>>>,
    kind: String,
    /// Set for an app registration's tokens obtained by federation (contract §8).
    federation: Option<super::federation::Federation>,
    retry: RetryPolicy,
    cache: Mutex<HashMap<String, AccessToken>>,
    /// One fetch at a time per scope.
    fetching: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The last failed fetch per scope, and when it ended.
    failed: Mutex<HashMap<String, (Instant, Error)>>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource").field("kind", &self.kind).finish_non_exhaustive()
    }
}

impl TokenSource {
    pub fn new(factory: CredentialFactory, kind: CredentialKind, retry: RetryPolicy) -> Arc<TokenSource> {
        TokenSource::build(factory, kind.as_str().to_string(), None, retry)
    }

    /// The tokens of an app registration, obtained by the federated exchange `factory`
    /// performs (see [`super::federation`]).
    pub fn federated(
        factory: CredentialFactory,
        federation: super::federation::Federation,
        retry: RetryPolicy,
    ) -> Arc<TokenSource> {
        TokenSource::build(factory, federation.label(), Some(federation), retry)
    }

    fn build(
        factory: CredentialFactory,
        kind: String,
        federation: Option<super::federation::Federation>,
        retry: RetryPolicy,
    ) -> Arc<TokenSource> {
        Arc::new(TokenSource {
            factory,
            credentials: Mutex::new(HashMap::new()),
            kind,
            federation,
            retry,
            cache: Mutex::new(HashMap::new()),
            fetching: Mutex::new(HashMap::new()),
            failed: Mutex::new(HashMap::new()),
        })
    }

    /// A bearer token for `scope`.
    pub async fn get(&self, scope: &str) -> Result<Redacted> {
        self.access_token(scope).await.map(|t| Redacted::new(t.token.secret()))
    }

    /// The lower-case object id (`oid` claim) of this identity's token for `scope`, unverified:
    /// who writes a version (contract §10). `None` when no token could be had or it carries no
    /// GUID there. Reuses the cached token, so it costs no round trip after the first request.
    pub async fn object_id(&self, scope: &str) -> Option<String> {
        let token = self.get(scope).await.ok()?;
        let claims = super::federation::jwt_claims(token.expose())?;
        let oid = claims.get("oid")?.as_str()?.trim().to_ascii_lowercase();
        crate::config::is_guid(&oid).then_some(oid)
    }

    /// Fetches the token for `scope` now, so that it is cached when it is needed; errors are
    /// left for the real request to report.
    pub async fn prefetch(&self, scope: &str) {
        let _ = self.access_token(scope).await;
    }

    async fn access_token(&self, scope: &str) -> Result<AccessToken> {
        if let Some(t) = self.cached(scope) {
            return Ok(t);
        }
        let asked = Instant::now();
        let gate = self.fetching.lock().expect("token source lock").entry(scope.to_string()).or_default().clone();
        let _guard = gate.lock().await;
        // Someone else may have fetched it while we waited.
        if let Some(t) = self.cached(scope) {
            return Ok(t);
        }
        // ... or failed to: whoever waited for that fetch shares its outcome (a prefetch and the
        // request behind it make one series of attempts, not two); and a refused federated
        // exchange is not asked again for a while, whatever the scope.
        if let Some(e) = self.failure(scope, asked) {
            return Err(e);
        }
        let fetched =
            self.retry.run(&format!("getting an Entra ID token for {}", audience(scope)), || self.fetch(scope)).await;
        match fetched {
            Ok(token) => {
                self.cache.lock().expect("token cache lock").insert(scope.to_string(), token.clone());
                Ok(token)
            }
            Err(mut e) => {
                // Retried here already: callers must not retry around it again.
                e.transient = false;
                self.failed.lock().expect("token source lock").insert(scope.to_string(), (Instant::now(), e.clone()));
                Err(e)
            }
        }
    }

    /// A failure to report instead of fetching: the outcome of the fetch the caller waited for,
    /// or a federation refusal younger than [`REFUSAL_MEMO`].
    fn failure(&self, scope: &str, asked: Instant) -> Option<Error> {
        let failed = self.failed.lock().expect("token source lock");
        if let Some((at, e)) = failed.get(scope)
            && *at >= asked
        {
            return Some(e.clone());
        }
        failed
            .values()
            .find(|(at, e)| e.code == Code::IdentityFederationRefused && at.elapsed() < REFUSAL_MEMO)
            .map(|(_, e)| e.clone())
    }

    fn cached(&self, scope: &str) -> Option<AccessToken> {
        let cache = self.cache.lock().expect("token cache lock");
        let t = cache.get(scope)?;
        let left = t.expires_on - OffsetDateTime::now_utc();
        (left > REFRESH_BEFORE).then(|| t.clone())
    }

    fn credential(&self, scope: &str) -> Result<Arc<dyn TokenCredential>> {
        let mut creds = self.credentials.lock().expect("token source lock");
        if let Some(c) = creds.get(scope) {
            return Ok(c.clone());
        }
        let c = (self.factory)()?;
        creds.insert(scope.to_string(), c.clone());
        Ok(c)
    }

    async fn fetch(&self, scope: &str) -> Result<AccessToken> {
        let credential = self.credential(scope)?;
        let t = credential.get_token(&[scope], None).await.map_err(|e| self.classify(scope, &e))?;
        let left = t.expires_on - OffsetDateTime::now_utc();
        if left < MIN_USABLE {
            return Err(Error::new(
                Code::IdentityUnavailable,
                format!(
                    "the {} credential returned a token for {} that expires in {} s; Databricks refuses tokens that close to expiry",
                    self.kind,
                    audience(scope),
                    left.whole_seconds()
                ),
            )
            .transient());
        }
        Ok(t)
    }

    fn classify(&self, scope: &str, e: &azure_core::Error) -> Error {
        if let Some(refused) = self.federation.as_ref().and_then(|f| f.refusal(scope, e)) {
            return refused;
        }
        let transient = is_transient(e);
        let err = Error::new(
            Code::IdentityUnavailable,
            format!("the {} credential could not get a token for {}: {}", self.kind, audience(scope), super::chain(e)),
        );
        if transient { err.transient() } else { err }
    }

    /// This source as an SDK credential, for the Key Vault client.
    pub fn as_credential(self: &Arc<Self>) -> Arc<dyn TokenCredential> {
        Arc::new(SourceCredential(self.clone()))
    }
}

fn audience(scope: &str) -> &str {
    scope.strip_suffix("/.default").unwrap_or(scope)
}

/// Transient: throttling, server errors, connection trouble, a garbled answer.
fn is_transient(e: &azure_core::Error) -> bool {
    use azure_core::error::ErrorKind;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(ae) = err.downcast_ref::<azure_core::Error>() {
            match ae.kind() {
                ErrorKind::HttpResponse { status, .. } => {
                    let s = u16::from(*status);
                    return s == 429 || s == 408 || s >= 500 || s == 404 || s == 410;
                }
                ErrorKind::Connection | ErrorKind::Io | ErrorKind::DataConversion => return true,
                _ => {}
            }
        }
        cur = err.source();
    }
    false
}

#[derive(Debug)]
struct SourceCredential(Arc<TokenSource>);

#[async_trait]
impl TokenCredential for SourceCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let scope = scopes.first().copied().unwrap_or_default();
        self.0.access_token(scope).await.map_err(|e| {
            azure_core::Error::with_message(azure_core::error::ErrorKind::Credential, e.message.to_string())
        })
    }
}
