//! `FakeIdentity`: the App Service / Azure Functions managed-identity endpoint.
//!
//! Protocol `2019-08-01`: `GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=<resource>`
//! with `X-IDENTITY-HEADER: {IDENTITY_HEADER}`; optional `client_id` / `principal_id`
//! (alias `object_id`) / `mi_res_id` select a user-assigned identity. The answer's
//! `expires_on` is epoch seconds *as a JSON string* — the quirk the Rust SDK insists on.
//!
//! Served over plain HTTP (the real endpoint is `http://localhost:…` too). The same server
//! hosts the read-only `GET /_emulator/state` overview, which is not part of the protocol.
//!
//! Op names: `token` (the endpoint), `other` (anything else). `/_emulator/state` is not
//! recorded.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use serde_json::{Value, json};

use crate::directory::{Directory, Principal, PrincipalKind, unix_secs};
use crate::encoding::random_hex;
use crate::faults::{Faults, Outcome};

/// Object id of the fake Function App's system-assigned identity.
pub const SYSTEM_OBJECT_ID: &str = "3f6c1a52-8e4b-4d7a-9c21-5b0e7f9a1d44";
/// Client id of the fake Function App's system-assigned identity.
pub const SYSTEM_CLIENT_ID: &str = "c8a4e2f1-6b3d-4f59-8a7e-2d1c0b9e8f73";
/// Path of the endpoint on the identity server.
pub const TOKEN_PATH: &str = "/msi/token";
/// Path of the emulator overview on the identity server.
pub const STATE_PATH: &str = "/_emulator/state";

/// Options of the identity fake.
#[derive(Clone, Debug)]
pub struct IdentityOptions {
    /// Lifetime of issued tokens (App Service hands out tokens valid for about a day).
    pub token_lifetime: Duration,
}

impl Default for IdentityOptions {
    fn default() -> Self {
        IdentityOptions { token_lifetime: Duration::from_secs(24 * 3600) }
    }
}

type StateSource = Box<dyn Fn() -> Value + Send + Sync>;

/// Handle to the managed-identity fake. Cheap to clone.
#[derive(Clone)]
pub struct FakeIdentity {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    header_value: String,
    directory: Arc<Directory>,
    system: Principal,
    faults: Faults,
    state: Mutex<State>,
    state_source: OnceLock<StateSource>,
}

struct State {
    lifetime: Duration,
    user_assigned: Vec<Principal>,
    issued: Vec<String>,
}

impl FakeIdentity {
    pub(crate) fn new(url: String, directory: Arc<Directory>, opts: &IdentityOptions, latency: Duration) -> Self {
        let system = Principal {
            object_id: SYSTEM_OBJECT_ID.to_string(),
            client_id: SYSTEM_CLIENT_ID.to_string(),
            kind: PrincipalKind::SystemAssigned,
        };
        directory.add_principal(system.clone());
        FakeIdentity {
            inner: Arc::new(Inner {
                url,
                header_value: random_hex(64),
                directory,
                system,
                faults: Faults::with_latency(latency),
                state: Mutex::new(State {
                    lifetime: opts.token_lifetime,
                    user_assigned: Vec::new(),
                    issued: Vec::new(),
                }),
                state_source: OnceLock::new(),
            }),
        }
    }

    /// Base URL of the identity server, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// Value for `IDENTITY_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("{}{TOKEN_PATH}", self.inner.url)
    }

    /// URL of the read-only overview (`EMULATOR_STATE_URL`).
    pub fn state_url(&self) -> String {
        format!("{}{STATE_PATH}", self.inner.url)
    }

    /// Value for `IDENTITY_HEADER` (random per start; a secret).
    pub fn header_value(&self) -> &str {
        &self.inner.header_value
    }

    /// The system-assigned principal.
    pub fn system_principal(&self) -> &Principal {
        &self.inner.system
    }

    /// Object id of the system-assigned principal.
    pub fn principal(&self) -> &str {
        &self.inner.system.object_id
    }

    /// Fault injection and call log of the endpoint.
    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    /// Lifetime of tokens issued from now on.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.state().lifetime = lifetime;
    }

    /// Attaches a user-assigned identity (selectable with `client_id`, `principal_id`/`object_id`).
    pub fn add_user_assigned(&self, client_id: &str, object_id: &str) -> Principal {
        let p = Principal {
            object_id: object_id.to_string(),
            client_id: client_id.to_string(),
            kind: PrincipalKind::UserAssigned,
        };
        self.inner.directory.add_principal(p.clone());
        self.state().user_assigned.push(p.clone());
        p
    }

    /// Every token value this endpoint issued, oldest first.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.state().issued.clone()
    }

    pub(crate) fn set_state_source(&self, source: StateSource) {
        let _ = self.inner.state_source.set(source);
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The identity a request selects, or the 400 the platform gives for an unassigned one.
    fn select(&self, query: &[(String, String)]) -> Result<Principal, HttpResponse> {
        let get = |k: &str| query.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.as_str());
        let by_client = get("client_id");
        let by_object = get("principal_id").or_else(|| get("object_id"));
        let by_resource = get("mi_res_id");
        let given = [by_client, by_object, by_resource].iter().filter(|v| v.is_some()).count();
        if given > 1 {
            return Err(error(400, "Only one of client_id, principal_id/object_id and mi_res_id may be given."));
        }
        let st = self.state();
        let all = std::iter::once(&self.inner.system).chain(st.user_assigned.iter());
        let found = match (by_client, by_object, by_resource) {
            (None, None, None) => Some(self.inner.system.clone()),
            (Some(c), _, _) => all.clone().find(|p| p.client_id.eq_ignore_ascii_case(c)).cloned(),
            (_, Some(o), _) => all.clone().find(|p| p.object_id.eq_ignore_ascii_case(o)).cloned(),
            // The fake knows no ARM ids for its identities.
            (_, _, Some(_)) => None,
        };
        found.ok_or_else(|| error(400, "Unable to load the proper Managed Identity."))
    }

    async fn serve(&self, req: &HttpRequest) -> Outcome {
        if req.path() != TOKEN_PATH {
            return Outcome::anonymous(error(404, "Not found."));
        }
        let sent = req.headers().get("x-identity-header").and_then(|v| v.to_str().ok());
        if sent != Some(self.header_value()) {
            return Outcome::anonymous(error(401, "Unauthorized: the X-IDENTITY-HEADER header is missing or invalid."));
        }
        let query: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
        let get = |k: &str| {
            query.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
        };
        match get("api-version") {
            None => return Outcome::anonymous(error(400, "Required query parameter 'api-version' is missing.")),
            Some("2019-08-01") => {}
            Some(other) => {
                return Outcome::anonymous(error(400, &format!("Unsupported api-version '{other}'; use 2019-08-01.")));
            }
        }
        let Some(resource) = get("resource") else {
            return Outcome::anonymous(error(400, "Required query parameter 'resource' is missing."));
        };
        let principal = match self.select(&query) {
            Ok(p) => p,
            Err(r) => return Outcome::anonymous(r),
        };
        let lifetime = self.state().lifetime;
        let (value, record) = self.inner.directory.issue(resource, &principal, lifetime);
        self.state().issued.push(value.clone());
        let body = json!({
            "access_token": value,
            "expires_on": unix_secs(record.expires_at).to_string(),
            "not_before": unix_secs(record.issued_at).to_string(),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": principal.client_id,
        });
        Outcome {
            response: HttpResponse::Ok().content_type("application/json; charset=utf-8").body(body.to_string()),
            principal: Some(principal.object_id),
        }
    }
}

fn error(status: u16, message: &str) -> HttpResponse {
    HttpResponseBuilder::new(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
        .content_type("application/json; charset=utf-8")
        .body(
            json!({"statusCode": status, "message": message, "correlationId": uuid::Uuid::new_v4().to_string()})
                .to_string(),
        )
}

/// actix entry point for every request to the identity server.
pub(crate) async fn handle(req: HttpRequest, id: FakeIdentity) -> HttpResponse {
    if req.path() == STATE_PATH {
        let state = id.inner.state_source.get().map(|f| f()).unwrap_or_else(|| json!({}));
        return HttpResponse::Ok()
            .content_type("application/json")
            .body(serde_json::to_string_pretty(&state).unwrap_or_default());
    }
    let op = if req.path() == TOKEN_PATH { "token" } else { "other" };
    let work = {
        let (id, req) = (id.clone(), req.clone());
        async move { id.serve(&req).await }
    };
    id.faults().run(op, &req, work).await
}
