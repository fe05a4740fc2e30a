//! `FakeAad`: the Microsoft Entra ID token endpoint for service principals (client credentials).
//!
//! Served over HTTPS with the emulators' CA, so it can be the `AZURE_AUTHORITY_HOST` of the
//! Rust SDK (which insists on `https`) and of Python's azure-identity/MSAL.
//!
//! - `POST /{tenant}/oauth2/v2.0/token` — what `ClientSecretCredential` (Rust and Python) and
//!   `ClientAssertionCredential`/`WorkloadIdentityCredential` post: `client_id`, `scope`
//!   (`<resource>/.default`), `grant_type=client_credentials`, and `client_secret` or
//!   `client_assertion_type` + `client_assertion`. Integers in the answer, no `expires_on`.
//! - `POST /{tenant}/oauth2/token` — the v1 form (`resource=` instead of `scope=`) the
//!   Databricks SDKs use; its numbers are strings.
//! - `GET /{tenant}/v2.0/.well-known/openid-configuration`, `GET /{tenant}/.well-known/openid-configuration`
//!   and `GET /common/discovery/instance` — the metadata MSAL (Python) fetches before its
//!   first token request. The Rust SDK fetches none of them.
//!
//! A service principal registered with [`FakeAad::add_service_principal`] has one credential
//! string: sent as `client_secret`, or as the `client_assertion` (the content of a federated
//! token file). An app registered with [`FakeAad::add_app`] has federated identity credentials
//! instead ([`FakeAad::add_federated_credential`], [`FakeAad::trust_managed_identity`]): it
//! accepts as `client_assertion` a token the managed-identity fake issued for
//! `api://AzureADTokenExchange`, unexpired, whose issuer (`{authority}/{tenant}/v2.0`),
//! subject (the identity's object id) and audience a credential names, and refuses the rest
//! as Entra does: AADSTS70021 (no federated credential at all), 700211 (issuer), 700213
//! (subject), 700212 (audience), 700024 (expired), 50027 (not a token), 700016 (no such app).
//! The fake does not verify JWT signatures: it looks the assertion up in the directory.
//!
//! Op names: `token`, `discovery`, `other`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use serde_json::{Value, json};

use crate::directory::{Directory, Principal, PrincipalKind, unix_secs};
use crate::encoding::utc_timestamp;
use crate::faults::{Faults, Outcome};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const MAX_BODY: usize = 64 * 1024;

/// Options of the AAD fake.
#[derive(Clone, Debug)]
pub struct AadOptions {
    /// Lifetime of issued tokens (`expires_in`); Entra ID's usual is 3599 s.
    pub token_lifetime: Duration,
}

impl Default for AadOptions {
    fn default() -> Self {
        AadOptions { token_lifetime: Duration::from_secs(3599) }
    }
}

/// Handle to the AAD fake. Cheap to clone.
#[derive(Clone)]
pub struct FakeAad {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    directory: Arc<Directory>,
    faults: Faults,
    state: Mutex<State>,
}

struct State {
    lifetime: Duration,
    /// Client id (lowercase) → the app registration.
    clients: HashMap<String, App>,
    issued: Vec<String>,
    exchanges: Vec<(String, String)>,
}

/// An app registration and its service principal.
#[derive(Clone)]
struct App {
    /// A client secret, also accepted as a literal client assertion (a federated token file's
    /// content); `None` for an app that trusts federated identities only.
    secret: Option<String>,
    federated: Vec<FederatedCredential>,
    principal: Principal,
}

/// A federated identity credential of an app registration (Microsoft Graph
/// `federatedIdentityCredential`): whose tokens the app accepts as its client assertion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FederatedCredential {
    /// For a managed identity: `{authority}/{tenant}/v2.0` ([`FakeAad::managed_identity_issuer`]).
    pub issuer: String,
    /// For a managed identity: its principal (object) id. Compared case-sensitively, as Entra does.
    pub subject: String,
    /// `api://AzureADTokenExchange` (or the USGov/China variants).
    pub audience: String,
}

/// The audience of managed-identity tokens presented as federated assertions (public cloud).
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    V1,
    V2,
}

impl FakeAad {
    pub(crate) fn new(url: String, directory: Arc<Directory>, opts: &AadOptions, latency: Duration) -> Self {
        FakeAad {
            inner: Arc::new(Inner {
                url,
                directory,
                faults: Faults::with_latency(latency),
                state: Mutex::new(State {
                    lifetime: opts.token_lifetime,
                    clients: HashMap::new(),
                    issued: Vec::new(),
                    exchanges: Vec::new(),
                }),
            }),
        }
    }

    /// Authority host, `https://127.0.0.1:PORT` (the value of `AZURE_AUTHORITY_HOST`).
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The tenant the fake serves.
    pub fn tenant_id(&self) -> &str {
        self.inner.directory.tenant_id()
    }

    /// `https://127.0.0.1:PORT/{tenant}/oauth2/v2.0/token`.
    pub fn token_endpoint(&self) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.url(), self.tenant_id())
    }

    /// Fault injection and call log.
    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    /// Registers a service principal with its credential (client secret, or the expected
    /// client assertion). Returns its new object id. Re-registering replaces the credential.
    pub fn add_service_principal(&self, client_id: &str, secret: &str) -> String {
        self.register(client_id, Some(secret.to_string()))
    }

    /// Registers an app with no secret (it can only be reached through a federated identity
    /// credential, see [`FakeAad::add_federated_credential`]). Returns its service principal's
    /// object id; registering again keeps the app and its credentials.
    pub fn add_app(&self, client_id: &str) -> String {
        if let Some(a) = self.state().clients.get(&client_id.to_ascii_lowercase()) {
            return a.principal.object_id.clone();
        }
        self.register(client_id, None)
    }

    fn register(&self, client_id: &str, secret: Option<String>) -> String {
        let existing = self.state().clients.get(&client_id.to_ascii_lowercase()).cloned();
        let object_id = existing
            .as_ref()
            .map(|a| a.principal.object_id.clone())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let p = Principal {
            object_id: object_id.clone(),
            client_id: client_id.to_string(),
            kind: PrincipalKind::ServicePrincipal,
        };
        self.inner.directory.add_principal(p.clone());
        let federated = existing.map(|a| a.federated).unwrap_or_default();
        self.state().clients.insert(client_id.to_ascii_lowercase(), App { secret, federated, principal: p });
        object_id
    }

    /// Adds a federated identity credential to a registered app. Panics for an unknown app.
    pub fn add_federated_credential(&self, client_id: &str, fic: FederatedCredential) {
        let mut st = self.state();
        let app = st.clients.get_mut(&client_id.to_ascii_lowercase()).expect("add_federated_credential: unknown app");
        app.federated.push(fic);
    }

    /// Registers `client_id` (if needed) trusting the managed identity with object id
    /// `mi_object_id` for the public-cloud exchange audience — what the Terraform sets up.
    /// Returns the app's service principal object id.
    pub fn trust_managed_identity(&self, client_id: &str, mi_object_id: &str) -> String {
        let oid = self.add_app(client_id);
        self.add_federated_credential(
            client_id,
            FederatedCredential {
                issuer: self.managed_identity_issuer(),
                subject: mi_object_id.to_string(),
                audience: TOKEN_EXCHANGE_AUDIENCE.to_string(),
            },
        );
        oid
    }

    /// The issuer a federated credential names for this tenant's managed identities:
    /// `{authority}/{tenant}/v2.0`.
    pub fn managed_identity_issuer(&self) -> String {
        format!("{}/{}/v2.0", self.url(), self.tenant_id())
    }

    /// Tokens this fake issued in exchange for a federated assertion: (client id, audience), oldest first.
    pub fn exchanges(&self) -> Vec<(String, String)> {
        self.state().exchanges.clone()
    }

    /// Lifetime of tokens issued from now on.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.state().lifetime = lifetime;
    }

    /// Every token value this fake issued, oldest first.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.state().issued.clone()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn openid_configuration(&self, tenant: &str, flavor: Flavor) -> Value {
        let base = format!("{}/{tenant}", self.url());
        let (token, authorize, issuer) = match flavor {
            Flavor::V2 => {
                (format!("{base}/oauth2/v2.0/token"), format!("{base}/oauth2/v2.0/authorize"), format!("{base}/v2.0"))
            }
            Flavor::V1 => (
                format!("{base}/oauth2/token"),
                format!("{base}/oauth2/authorize"),
                format!("https://sts.windows.net/{tenant}/"),
            ),
        };
        json!({
            "token_endpoint": token,
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": format!("{base}/discovery/v2.0/keys"),
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": issuer,
            "request_uri_parameter_supported": false,
            "authorization_endpoint": authorize,
            "device_authorization_endpoint": format!("{base}/oauth2/v2.0/devicecode"),
            "end_session_endpoint": format!("{base}/oauth2/v2.0/logout"),
            "tenant_region_scope": "WW",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
        })
    }

    fn instance_discovery(&self, req: &HttpRequest) -> Value {
        let query: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
        let tenant = query
            .iter()
            .find(|(k, _)| k == "authorization_endpoint")
            .and_then(|(_, v)| v.split('/').nth(3).map(str::to_string))
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| self.tenant_id().to_string());
        let host = self.url().trim_start_matches("https://").to_string();
        json!({
            "tenant_discovery_endpoint": format!("{}/{tenant}/v2.0/.well-known/openid-configuration", self.url()),
            "api-version": "1.1",
            "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
        })
    }

    async fn serve(&self, req: &HttpRequest, payload: web::Payload) -> Outcome {
        let path = req.path();
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let method = req.method().as_str();
        match (method, segs.as_slice()) {
            ("GET", ["common", "discovery", "instance"]) => Outcome::anonymous(ok(self.instance_discovery(req))),
            ("GET", [tenant, "v2.0", ".well-known", "openid-configuration"]) => {
                Outcome::anonymous(ok(self.openid_configuration(tenant, Flavor::V2)))
            }
            ("GET", [tenant, ".well-known", "openid-configuration"]) => {
                Outcome::anonymous(ok(self.openid_configuration(tenant, Flavor::V1)))
            }
            ("POST", [tenant, "oauth2", "v2.0", "token"]) => self.token(tenant, payload, Flavor::V2).await,
            ("POST", [tenant, "oauth2", "token"]) => self.token(tenant, payload, Flavor::V1).await,
            _ => Outcome::anonymous(aad_error(
                404,
                "invalid_request",
                90_027,
                &format!("The endpoint {path} is not served by this emulator."),
            )),
        }
    }

    /// Entra's decision on a client assertion for `app` that is not its literal credential: a
    /// token the managed-identity fake issued for the exchange audience, unexpired, whose
    /// issuer, subject and audience one of the app's federated identity credentials names.
    /// The refusals carry the real AADSTS codes and texts.
    fn check_federated(&self, app: &App, assertion: &str) -> Result<(), HttpResponse> {
        let wif = "https://learn.microsoft.com/entra/workload-id/workload-identity-federation";
        let record = self.inner.directory.lookup(assertion).filter(|r| {
            self.inner
                .directory
                .principal(&r.principal)
                .is_some_and(|p| matches!(p.kind, PrincipalKind::SystemAssigned | PrincipalKind::UserAssigned))
        });
        let Some(record) = record else {
            if app.secret.is_some() && app.federated.is_empty() {
                // An app with a secret-like expected assertion (a token file's content).
                return Err(aad_error(
                    401,
                    "invalid_client",
                    700_213,
                    "AADSTS700213: No matching federated identity record found for presented assertion subject.",
                ));
            }
            return Err(aad_error(400, "invalid_request", 50_027, "AADSTS50027: JWT token is invalid or malformed."));
        };
        if record.expires_within(SystemTime::now(), Duration::ZERO) {
            return Err(aad_error(
                400,
                "invalid_client",
                700_024,
                "AADSTS700024: Client assertion is not within its valid time range.",
            ));
        }
        let (issuer, subject, audience) = (self.managed_identity_issuer(), record.principal.clone(), record.audience);
        if app.federated.is_empty() {
            return Err(aad_error(
                400,
                "invalid_request",
                70_021,
                &format!(
                    "AADSTS70021: No matching federated identity record found for presented assertion. Assertion Issuer: '{issuer}'. Assertion Subject: '{subject}'. Assertion Audience: '{audience}'. {wif}"
                ),
            ));
        }
        let by_issuer: Vec<&FederatedCredential> = app.federated.iter().filter(|f| f.issuer == issuer).collect();
        if by_issuer.is_empty() {
            return Err(aad_error(
                401,
                "invalid_client",
                700_211,
                &format!(
                    "AADSTS700211: No matching federated identity record found for presented assertion issuer '{issuer}'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. {wif}"
                ),
            ));
        }
        let by_subject: Vec<&&FederatedCredential> = by_issuer.iter().filter(|f| f.subject == subject).collect();
        if by_subject.is_empty() {
            return Err(aad_error(
                401,
                "invalid_client",
                700_213,
                &format!(
                    "AADSTS700213: No matching federated identity record found for presented assertion subject '{subject}'. Check your federated identity credential Subject, Audience and Issuer against the presented assertion. {wif}"
                ),
            ));
        }
        if !by_subject.iter().any(|f| f.audience == audience) {
            return Err(aad_error(
                401,
                "invalid_client",
                700_212,
                &format!(
                    "AADSTS700212: No matching federated identity record found for presented assertion audience '{audience}'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. {wif}"
                ),
            ));
        }
        Ok(())
    }

    async fn token(&self, tenant: &str, payload: web::Payload, flavor: Flavor) -> Outcome {
        let fail = |status, error, code, message: &str| Outcome::anonymous(aad_error(status, error, code, message));
        if !tenant.eq_ignore_ascii_case(self.tenant_id()) {
            return fail(
                400,
                "invalid_request",
                90_002,
                &format!(
                    "AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
                ),
            );
        }
        let body = match payload.to_bytes_limited(MAX_BODY).await {
            Ok(Ok(b)) => b,
            _ => return fail(400, "invalid_request", 900_144, "AADSTS900144: The request body could not be read."),
        };
        let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
        let missing = |p: &str| format!("AADSTS900144: The request body must contain the following parameter: '{p}'.");

        let Some(grant) = get("grant_type") else {
            return fail(400, "invalid_request", 900_144, &missing("grant_type"));
        };
        if grant != "client_credentials" {
            return fail(
                400,
                "unsupported_grant_type",
                70_003,
                &format!(
                    "AADSTS70003: The app requested an unsupported grant type '{grant}'. This emulator serves client_credentials only."
                ),
            );
        }
        let Some(client_id) = get("client_id") else {
            return fail(400, "invalid_request", 900_144, &missing("client_id"));
        };
        let audience = match flavor {
            Flavor::V2 => {
                let Some(scope) = get("scope") else { return fail(400, "invalid_request", 900_144, &missing("scope")) };
                let scopes: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
                match scopes.as_slice() {
                    [one] if one.ends_with("/.default") => one.trim_end_matches("/.default").to_string(),
                    _ => {
                        return fail(
                            400,
                            "invalid_scope",
                            1_002_012,
                            &format!(
                                "AADSTS1002012: The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                            ),
                        );
                    }
                }
            }
            Flavor::V1 => match get("resource") {
                Some(r) => r.to_string(),
                None => return fail(400, "invalid_request", 900_144, &missing("resource")),
            },
        };
        let registered = self.state().clients.get(&client_id.to_ascii_lowercase()).cloned();
        let Some(app) = registered else {
            return fail(
                400,
                "unauthorized_client",
                700_016,
                &format!(
                    "AADSTS700016: Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
                    self.tenant_id()
                ),
            );
        };
        let principal = app.principal.clone();
        let mut federated = false;
        match (get("client_secret"), get("client_assertion_type"), get("client_assertion")) {
            (Some(secret), _, _) if app.secret.as_deref() == Some(secret) => {}
            (Some(_), _, _) => {
                return fail(
                    401,
                    "invalid_client",
                    7_000_215,
                    &format!(
                        "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
                    ),
                );
            }
            (None, Some(JWT_BEARER), Some(assertion)) if app.secret.as_deref() == Some(assertion) => {}
            (None, Some(JWT_BEARER), Some(assertion)) => {
                if let Err(refusal) = self.check_federated(&app, assertion) {
                    return Outcome::anonymous(refusal);
                }
                federated = true;
            }
            _ => {
                return fail(
                    401,
                    "invalid_client",
                    7_000_218,
                    "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
                );
            }
        }
        if federated {
            self.state().exchanges.push((principal.client_id.clone(), audience.clone()));
        }

        let lifetime = self.state().lifetime;
        let (value, record) = self.inner.directory.issue(&audience, &principal, lifetime);
        self.state().issued.push(value.clone());
        let secs = lifetime.as_secs();
        let body = match flavor {
            Flavor::V2 => {
                json!({"token_type": "Bearer", "expires_in": secs, "ext_expires_in": secs, "access_token": value})
            }
            Flavor::V1 => json!({
                "token_type": "Bearer",
                "expires_in": secs.to_string(),
                "ext_expires_in": secs.to_string(),
                "expires_on": unix_secs(record.expires_at).to_string(),
                "not_before": unix_secs(record.issued_at).to_string(),
                "resource": audience,
                "access_token": value,
            }),
        };
        Outcome { response: ok(body), principal: Some(principal.object_id) }
    }
}

fn ok(body: Value) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json; charset=utf-8")
        .insert_header(("Cache-Control", "no-store, no-cache"))
        .body(body.to_string())
}

/// Entra ID's error shape: `error`, `error_description` (with trace/correlation ids and a
/// timestamp appended, as the real service does), `error_codes`, and friends.
fn aad_error(status: u16, error: &str, code: u32, description: &str) -> HttpResponse {
    let trace = uuid::Uuid::new_v4().to_string();
    let correlation = uuid::Uuid::new_v4().to_string();
    let ts = utc_timestamp(unix_secs(SystemTime::now()));
    let body = json!({
        "error": error,
        "error_description": format!("{description} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {ts}"),
        "error_codes": [code],
        "timestamp": ts,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    HttpResponseBuilder::new(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
        .content_type("application/json; charset=utf-8")
        .body(body.to_string())
}

/// actix entry point for every request to the AAD fake.
pub(crate) async fn handle(req: HttpRequest, payload: web::Payload, aad: FakeAad) -> HttpResponse {
    let segs: Vec<&str> = req.path().trim_start_matches('/').split('/').collect();
    let op = match segs.as_slice() {
        [_, "oauth2", "v2.0", "token"] | [_, "oauth2", "token"] => "token",
        ["common", "discovery", "instance"] | [_, "v2.0", ".well-known", _] | [_, ".well-known", _] => "discovery",
        _ => "other",
    };
    let work = {
        let (aad, req) = (aad.clone(), req.clone());
        async move { aad.serve(&req, payload).await }
    };
    aad.faults().run(op, &req, work).await
}
