//! The workspace's wire protocol: routing, authentication, authorization and the token API.
//! The service principal routes (SCIM list, OAuth secrets, OIDC) are in `sp_http.rs`.
//!
//! Order of checks: the unauthenticated OIDC routes (discovery documents, token endpoint) are
//! answered first; then rate limit (refused requests take no token from the bucket), then
//! authentication (PAT, OAuth access token or Entra ID token, membership or management-header
//! mode), then the route's own permission (scopes, token use, admin), then the operation.

use std::time::{Duration, Instant};

use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use serde_json::{Value, json};

use super::FakeWorkspace;
use super::tokens::TokenInfo;
use crate::directory::{DATABRICKS_RESOURCE, MANAGEMENT_RESOURCE, unix_millis};
use crate::faults::Outcome;
use crate::ratelimit::retry_after_secs;

/// One day in milliseconds (`last_used_day` is the start of a UTC day).
const DAY_MS: i64 = 86_400_000;
/// Lifetime of a token created without `lifetime_seconds` (current API docs: two years).
const DEFAULT_LIFETIME_SECS: i64 = 2 * 365 * 86_400;
/// Databricks refuses Entra ID tokens that expire within this margin.
const AAD_EXPIRY_MARGIN: Duration = Duration::from_secs(30);
pub(super) const MAX_BODY: usize = 64 * 1024;
const MGMT_TOKEN_HEADER: &str = "x-databricks-azure-sp-management-token";
const RESOURCE_ID_HEADER: &str = "x-databricks-azure-workspace-resource-id";

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Route {
    /// `/.well-known/databricks-config` (host metadata; unauthenticated).
    HostMetadata,
    /// `/oidc/.well-known/oauth-authorization-server` (unauthenticated).
    OidcMetadata,
    /// `/oidc/v1/token` (client credentials; unauthenticated).
    OidcToken,
    Create,
    List,
    Delete,
    /// `GET /api/2.0/token-management/tokens` (workspace admins).
    TmList,
    /// `GET /api/2.0/token-management/tokens/{token_id}` (workspace admins).
    TmGet(String),
    ConfGet,
    ConfPatch,
    Me,
    /// `GET /api/2.0/preview/scim/v2/ServicePrincipals`.
    ScimSpList,
    /// `GET /api/2.0/accounts/servicePrincipals/{id}/credentials/secrets`.
    SpSecretList(String),
    /// `POST` on the same path.
    SpSecretCreate(String),
    /// `DELETE .../credentials/secrets/{secret_id}`.
    SpSecretDelete(String, String),
    Unknown,
}

impl Route {
    fn parse(method: &Method, path: &str) -> Route {
        match (method.as_str(), path) {
            (_, "/.well-known/databricks-config") => return Route::HostMetadata,
            (_, "/oidc/.well-known/oauth-authorization-server") => return Route::OidcMetadata,
            (_, "/oidc/v1/token") => return Route::OidcToken,
            ("POST", "/api/2.0/token/create") => return Route::Create,
            ("GET", "/api/2.0/token/list") => return Route::List,
            ("POST", "/api/2.0/token/delete") => return Route::Delete,
            ("GET", "/api/2.0/token-management/tokens" | "/api/2.0/token-management/tokens/") => return Route::TmList,
            ("GET", "/api/2.0/workspace-conf") => return Route::ConfGet,
            ("PATCH", "/api/2.0/workspace-conf") => return Route::ConfPatch,
            ("GET", "/api/2.0/preview/scim/v2/Me") => return Route::Me,
            ("GET", "/api/2.0/preview/scim/v2/ServicePrincipals") => return Route::ScimSpList,
            _ => {}
        }
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (method.as_str(), segs.as_slice()) {
            ("GET", ["api", "2.0", "token-management", "tokens", id]) if !id.is_empty() => Route::TmGet(id.to_string()),
            ("GET", ["api", "2.0", "accounts", "servicePrincipals", id, "credentials", "secrets"])
                if !id.is_empty() =>
            {
                Route::SpSecretList(id.to_string())
            }
            ("POST", ["api", "2.0", "accounts", "servicePrincipals", id, "credentials", "secrets"])
                if !id.is_empty() =>
            {
                Route::SpSecretCreate(id.to_string())
            }
            ("DELETE", ["api", "2.0", "accounts", "servicePrincipals", id, "credentials", "secrets", secret])
                if !id.is_empty() && !secret.is_empty() =>
            {
                Route::SpSecretDelete(id.to_string(), secret.to_string())
            }
            _ => Route::Unknown,
        }
    }

    pub(super) fn op(&self) -> &'static str {
        match self {
            Route::Create => "create",
            Route::List => "list",
            Route::Delete => "delete",
            Route::TmList => "tm_list",
            Route::TmGet(_) => "tm_get",
            Route::ConfGet | Route::ConfPatch => "conf",
            Route::Me => "me",
            Route::ScimSpList => "scim_sp",
            Route::SpSecretList(_) => "sp_secret_list",
            Route::SpSecretCreate(_) => "sp_secret_create",
            Route::SpSecretDelete(..) => "sp_secret_delete",
            Route::OidcToken => "oidc_token",
            Route::HostMetadata | Route::OidcMetadata => "discovery",
            Route::Unknown => "other",
        }
    }

    /// The token scope an endpoint belongs to (Databricks' "API scopes" reference): the token
    /// API and the service principal secrets API are in `authentication`, workspace settings in
    /// `settings`, SCIM service principals in `iam` and the Token Management API in
    /// `authentication` (both assumed); `None` for endpoints every scope includes
    /// (`/scim/v2/Me` is listed under every scope).
    fn scope(&self) -> Option<&'static str> {
        match self {
            Route::Create | Route::List | Route::Delete => Some("authentication"),
            Route::TmList | Route::TmGet(_) => Some("authentication"),
            Route::SpSecretList(_) | Route::SpSecretCreate(_) | Route::SpSecretDelete(..) => Some("authentication"),
            Route::ConfGet | Route::ConfPatch => Some("settings"),
            Route::ScimSpList => Some("iam"),
            Route::Me | Route::HostMetadata | Route::OidcMetadata | Route::OidcToken | Route::Unknown => None,
        }
    }
}

/// Whether a token with `scopes` (empty = unscoped) may call an endpoint of scope `need` with
/// `method`. `all-apis` covers every scope; a `:read` modifier allows only GET and HEAD.
fn scopes_allow(scopes: &[String], need: Option<&str>, method: &Method) -> bool {
    let Some(need) = need else { return true };
    if scopes.is_empty() {
        return true;
    }
    scopes.iter().any(|s| {
        let mut parts = s.split(':');
        let base = parts.next().unwrap_or_default();
        let read_only = parts.any(|m| m == "read");
        (base == need || base == "all-apis") && (!read_only || matches!(method.as_str(), "GET" | "HEAD"))
    })
}

/// Who is calling, once authenticated.
pub(super) struct Caller {
    pub principal: String,
    /// The scopes of the PAT or OAuth access token it presented (empty: unscoped, or an Entra
    /// ID token).
    pub scopes: Vec<String>,
}

/// actix entry point for every request to a workspace.
pub(crate) async fn handle(req: HttpRequest, payload: web::Payload, ws: FakeWorkspace) -> HttpResponse {
    let route = Route::parse(req.method(), req.path());
    let op = route.op();
    let work = {
        let (ws, req) = (ws.clone(), req.clone());
        async move { ws.serve(&route, &req, payload).await }
    };
    let mut resp = ws.faults().run(op, &req, work).await;
    if ws.take_omit_date(op) {
        // actix would add its own `Date`; the relay in front deletes it and this marker.
        resp.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static(crate::relay::OMIT_DATE_MARKER),
            actix_web::http::header::HeaderValue::from_static("1"),
        );
    } else if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&httpdate::fmt_http_date(ws.now())) {
        // Databricks' front end dates every answer; clients may read its clock from it.
        resp.headers_mut().insert(actix_web::http::header::DATE, v);
    }
    ws.after_request(op);
    resp
}

pub(super) fn json_response(status: u16, body: Value) -> HttpResponse {
    HttpResponseBuilder::new(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .content_type("application/json")
        .body(body.to_string())
}

/// Databricks' error shape.
pub(super) fn error(status: u16, code: &str, message: &str) -> HttpResponse {
    json_response(status, json!({"error_code": code, "message": message}))
}

fn unauthenticated(message: &str) -> HttpResponse {
    error(401, "401", message)
}

pub(super) fn invalid_token() -> HttpResponse {
    error(403, "403", "Invalid access token.")
}

pub(super) fn invalid_param(message: &str) -> HttpResponse {
    error(400, "INVALID_PARAMETER_VALUE", message)
}

fn token_info_json(t: &TokenInfo) -> Value {
    let mut v = json!({
        "token_id": t.token_id,
        "creation_time": unix_millis(t.created),
        "expiry_time": t.expiry.map(unix_millis).unwrap_or(-1),
    });
    // Databricks omits empty strings and arrays from its JSON.
    if !t.comment.is_empty() {
        v["comment"] = json!(t.comment);
    }
    if !t.scopes.is_empty() {
        v["scopes"] = json!(t.scopes);
    }
    v
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// Parses a JSON object body (an empty body counts as `{}`).
pub(super) fn object_body(body: &[u8]) -> Result<serde_json::Map<String, Value>, HttpResponse> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(error(400, "MALFORMED_REQUEST", "Invalid JSON given in the body of the request - expected a map")),
        Err(e) => Err(error(
            400,
            "MALFORMED_REQUEST",
            &format!("Invalid JSON given in the body of the request - failed to parse: {e}"),
        )),
    }
}

/// An int64 field as Databricks accepts it: a JSON integer or a decimal string.
fn int_field(m: &serde_json::Map<String, Value>, key: &str) -> Result<Option<i64>, HttpResponse> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.is_i64() => Ok(n.as_i64()),
        Some(Value::String(s)) if s.trim().parse::<i64>().is_ok() => Ok(s.trim().parse().ok()),
        Some(other) => Err(invalid_param(&format!("Invalid value for field {key}: {other}"))),
    }
}

fn string_field(m: &serde_json::Map<String, Value>, key: &str) -> Result<Option<String>, HttpResponse> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(invalid_param(&format!("Invalid value for field {key}: expected a string, got {other}"))),
    }
}

impl FakeWorkspace {
    async fn serve(&self, route: &Route, req: &HttpRequest, payload: web::Payload) -> Outcome {
        match route {
            Route::HostMetadata => return Outcome::anonymous(self.host_metadata(req)),
            Route::OidcMetadata => return Outcome::anonymous(self.oidc_metadata(req)),
            Route::OidcToken => return self.oidc_token(req, payload).await,
            _ => {}
        }
        if let Err(r) = self.rate_limit() {
            return Outcome::anonymous(r);
        }
        let caller = match self.authenticate(req) {
            Ok(c) => c,
            Err(r) => return Outcome::anonymous(r),
        };
        let principal = caller.principal.clone();
        let done = |response: HttpResponse| Outcome { response, principal: Some(principal.clone()) };
        if !scopes_allow(&caller.scopes, route.scope(), req.method()) {
            return done(error(
                403,
                "PERMISSION_DENIED",
                "Your token is missing the required scopes for this endpoint.",
            ));
        }

        if matches!(route, Route::Create | Route::List | Route::Delete)
            && !self.state().may_use_tokens(&caller.principal)
        {
            return done(error(403, "PERMISSION_DENIED", "User does not have permission to use tokens."));
        }
        if matches!(route, Route::TmList | Route::TmGet(_)) && !self.state().admins.contains(&caller.principal) {
            return done(error(403, "PERMISSION_DENIED", "Only Admins can access token management APIs."));
        }
        let body = match route {
            Route::Create | Route::Delete | Route::ConfPatch | Route::SpSecretCreate(_) => {
                match payload.to_bytes_limited(MAX_BODY).await {
                    Ok(Ok(b)) => b,
                    _ => {
                        return done(error(
                            400,
                            "MALFORMED_REQUEST",
                            "The request body is too large or could not be read.",
                        ));
                    }
                }
            }
            _ => web::Bytes::new(),
        };
        done(match route {
            Route::Create => self.create(&caller, &body),
            Route::List => {
                let live = self.tokens(&caller.principal);
                if live.is_empty() {
                    // Real Databricks omits empty arrays: no tokens is `{}`, not `{"token_infos":[]}`.
                    json_response(200, json!({}))
                } else {
                    json_response(200, json!({"token_infos": live.iter().map(token_info_json).collect::<Vec<_>>()}))
                }
            }
            Route::Delete => self.delete(&caller, &body),
            Route::TmList => self.tm_list(req),
            Route::TmGet(id) => self.tm_get(id),
            Route::ConfGet => self.conf_get(&caller, req),
            Route::ConfPatch => self.conf_patch(&caller, &body),
            Route::Me => self.me(&caller),
            Route::ScimSpList => self.scim_sp_list(&caller, req),
            Route::SpSecretList(id) => self.sp_secret_list(&caller, id, req),
            Route::SpSecretCreate(id) => self.sp_secret_create(&caller, id, &body),
            Route::SpSecretDelete(id, secret) => self.sp_secret_delete(&caller, id, secret),
            Route::Unknown => {
                error(404, "ENDPOINT_NOT_FOUND", &format!("No API found for '{} {}'", req.method(), req.path()))
            }
            Route::HostMetadata | Route::OidcMetadata | Route::OidcToken => unreachable!("answered above"),
        })
    }

    fn rate_limit(&self) -> Result<(), HttpResponse> {
        let mut st = self.state();
        let Some(bucket) = st.bucket.as_mut() else { return Ok(()) };
        let Err(wait) = bucket.try_take(Instant::now()) else { return Ok(()) };
        st.throttled += 1;
        let mut r = error(
            429,
            "REQUEST_LIMIT_EXCEEDED",
            "Too many requests. Please wait a moment and try again. If the issue persists, consider adjusting your request frequency or reaching out to support for assistance.",
        );
        r.headers_mut().insert(
            actix_web::http::header::RETRY_AFTER,
            actix_web::http::header::HeaderValue::from(retry_after_secs(wait)),
        );
        Err(r)
    }

    /// Decides who is calling, with Databricks' answers for every way that can fail.
    fn authenticate(&self, req: &HttpRequest) -> Result<Caller, HttpResponse> {
        let token = match header(req, "authorization").and_then(|a| a.split_once(' ')) {
            Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty() => t.trim(),
            _ => return Err(unauthenticated("Credential was not sent or was of an unsupported type for this API.")),
        };
        let now = self.now();

        // A personal access token of this workspace?
        {
            let mut st = self.state();
            if let Some(t) = st.tokens.by_value(token) {
                if !t.is_live(now) || !st.is_user(&t.principal) {
                    return Err(invalid_token());
                }
                if !st.may_use_tokens(&t.principal) {
                    return Err(error(403, "PERMISSION_DENIED", "User does not have permission to use tokens."));
                }
                st.tokens.touch(&t.token_id, now);
                return Ok(Caller { principal: t.principal, scopes: t.scopes });
            }
            // An OAuth access token minted at /oidc/v1/token? It acts as its service principal
            // until it expires, even if the secret it was minted with was deleted since.
            if let Some(t) = st.sps.token(token) {
                let sp = self.workspace_sps(&st).into_iter().find(|s| s.application_id == t.application_id);
                return match sp {
                    Some(sp) if t.expires > now => Ok(Caller { principal: sp.principal, scopes: t.scopes }),
                    _ => Err(invalid_token()),
                };
            }
        }

        // Otherwise it must be an Entra ID token for Azure Databricks.
        let Some(issued) = self.inner.directory.lookup(token) else {
            return Err(invalid_token());
        };
        let audience = issued.audience.strip_suffix("/.default").unwrap_or(&issued.audience);
        if audience != DATABRICKS_RESOURCE {
            return Err(unauthenticated(&format!(
                "Invalid access token: the Azure AD token's audience '{}' is not Azure Databricks ({DATABRICKS_RESOURCE}).",
                issued.audience
            )));
        }
        if issued.expires_within(now, AAD_EXPIRY_MARGIN) {
            return Err(unauthenticated(
                "Invalid access token: the Azure AD token is expired or expires within 30 seconds.",
            ));
        }
        let principal = issued.principal;
        if self.state().members.contains(&principal) {
            return Ok(Caller { principal, scopes: Vec::new() });
        }

        // Not a member: only the Azure management-token headers can let it in.
        let (Some(mgmt), Some(resource_id)) = (header(req, MGMT_TOKEN_HEADER), header(req, RESOURCE_ID_HEADER)) else {
            return Err(unauthenticated(&format!(
                "The principal {principal} is not a user of this workspace. A principal with Contributor or Owner on the workspace resource must send {} and {}.",
                "X-Databricks-Azure-SP-Management-Token", "X-Databricks-Azure-Workspace-Resource-Id"
            )));
        };
        let mgmt_ok = self.inner.directory.lookup(mgmt).is_some_and(|m| {
            m.audience.trim_end_matches('/') == MANAGEMENT_RESOURCE.trim_end_matches('/')
                && m.principal == principal
                && !m.expires_within(now, Duration::ZERO)
        });
        if !mgmt_ok {
            return Err(unauthenticated(
                "Invalid X-Databricks-Azure-SP-Management-Token: it must be a valid token of the same principal for https://management.core.windows.net/.",
            ));
        }
        if !resource_id.eq_ignore_ascii_case(self.resource_id()) {
            return Err(unauthenticated(&format!("Invalid resource ID: {resource_id} is not this workspace.")));
        }
        let mut st = self.state();
        if !st.contributors.contains(&principal) {
            return Err(unauthenticated(&format!(
                "The principal {principal} does not have Contributor or Owner on {}.",
                self.inner.resource_id
            )));
        }
        if st.auto_provision {
            st.members.insert(principal.clone());
            st.admins.insert(principal.clone());
        }
        Ok(Caller { principal, scopes: Vec::new() })
    }

    fn create(&self, caller: &Caller, body: &[u8]) -> HttpResponse {
        let m = match object_body(body) {
            Ok(m) => m,
            Err(r) => return r,
        };
        let (comment, lifetime) = match (string_field(&m, "comment"), int_field(&m, "lifetime_seconds")) {
            (Ok(c), Ok(l)) => (c.unwrap_or_default(), l),
            (Err(r), _) | (_, Err(r)) => return r,
        };
        let scopes: Vec<String> = match m.get("scopes") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
                a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()
            }
            Some(_) => return invalid_param("Invalid value for field scopes: expected an array of strings"),
        };
        let autoscope = match m.get("autoscope_enabled") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => return invalid_param("Invalid value for field autoscope_enabled: expected a boolean"),
        };
        let now = self.now();
        let mut st = self.state();
        let max_secs = i64::from(st.max_lifetime_days) * 86_400;
        let lifetime = match lifetime {
            None if max_secs > 0 => DEFAULT_LIFETIME_SECS.min(max_secs),
            None => DEFAULT_LIFETIME_SECS,
            Some(l) if l <= 0 => return invalid_param(&format!("requirement failed: Invalid timeout: {l}")),
            Some(l) if max_secs > 0 && l > max_secs => {
                return invalid_param(&format!(
                    "Requested token lifetime of {l} seconds exceeds the maximum lifetime of {} days set by the workspace admin (maxTokenLifetimeDays).",
                    st.max_lifetime_days
                ));
            }
            Some(l) => l,
        };
        if st.tokens.live_for(&caller.principal, now).len() >= st.quota {
            return error(400, "QUOTA_EXCEEDED", &format!("Cannot create more than {} tokens.", st.quota));
        }
        let (id, value, mut info) =
            st.tokens.create(&caller.principal, &comment, scopes, now, Some(Duration::from_secs(lifetime as u64)));
        st.tokens.set_autoscope(&id, autoscope);
        info.autoscope = autoscope;
        json_response(200, json!({"token_value": value, "token_info": token_info_json(&info)}))
    }

    fn delete(&self, caller: &Caller, body: &[u8]) -> HttpResponse {
        let m = match object_body(body) {
            Ok(m) => m,
            Err(r) => return r,
        };
        let id = match string_field(&m, "token_id") {
            Ok(Some(id)) if !id.is_empty() => id,
            Ok(_) => return invalid_param("Missing required field: token_id"),
            Err(r) => return r,
        };
        let mut st = self.state();
        let owned_live = st.tokens.get(&id).is_some_and(|t| t.principal == caller.principal && t.is_live(self.now()));
        if !owned_live {
            return error(404, "RESOURCE_DOES_NOT_EXIST", &format!("Token with id {id} does not exist."));
        }
        st.tokens.revoke(&id);
        json_response(200, json!({}))
    }

    /// `TokenInfo` as the Token Management API shows it: the owner's numeric id and user name,
    /// the workspace id, and `last_used_day` (midnight UTC of the day of the last successful
    /// use, by the workspace's clock; absent when never used).
    fn tm_token_info(&self, st: &super::State, t: &TokenInfo) -> Value {
        let owner = self.scim_identity(st, &t.principal);
        let owner_id: i64 = owner.scim_id.parse().unwrap_or_default();
        let mut v = token_info_json(t);
        v["created_by_id"] = json!(owner_id);
        v["created_by_username"] = json!(owner.application_id);
        v["owner_id"] = json!(owner_id);
        v["workspace_id"] = json!(self.workspace_id().parse::<i64>().unwrap_or_default());
        if let Some(used) = t.last_used {
            v["last_used_day"] = json!(unix_millis(used).div_euclid(DAY_MS) * DAY_MS);
        }
        v
    }

    fn tm_get(&self, id: &str) -> HttpResponse {
        let now = self.now();
        let st = self.state();
        match st.tokens.get(id).filter(|t| t.is_live(now)) {
            Some(t) => json_response(200, json!({"token_info": self.tm_token_info(&st, &t)})),
            None => error(404, "RESOURCE_DOES_NOT_EXIST", &format!("Token with id {id} does not exist.")),
        }
    }

    fn tm_list(&self, req: &HttpRequest) -> HttpResponse {
        let query: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
        let param = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let by_id = match param("created_by_id").map(|v| v.trim().parse::<i64>()) {
            None => None,
            Some(Ok(id)) => Some(id),
            Some(Err(_)) => return invalid_param("Invalid value for parameter created_by_id: expected an integer"),
        };
        let by_name = param("created_by_username");
        let now = self.now();
        let st = self.state();
        let infos: Vec<Value> = st
            .tokens
            .all()
            .into_iter()
            .filter(|t| t.is_live(now))
            .map(|t| self.tm_token_info(&st, &t))
            .filter(|v| by_id.is_none_or(|id| v["created_by_id"] == json!(id)))
            .filter(|v| by_name.as_deref().is_none_or(|n| v["created_by_username"].as_str() == Some(n)))
            .collect();
        if infos.is_empty() { json_response(200, json!({})) } else { json_response(200, json!({"token_infos": infos})) }
    }

    fn conf_get(&self, caller: &Caller, req: &HttpRequest) -> HttpResponse {
        let st = self.state();
        if !st.admins.contains(&caller.principal) {
            return error(403, "PERMISSION_DENIED", "Only workspace admins can access workspace configuration.");
        }
        let query: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
        let Some((_, keys)) = query.iter().find(|(k, _)| k == "keys") else {
            return invalid_param("Missing required parameter: keys");
        };
        let mut out = serde_json::Map::new();
        for key in keys.split(',').map(str::trim).filter(|k| !k.is_empty()) {
            let value = match key {
                "maxTokenLifetimeDays" => st.max_lifetime_days.to_string(),
                "enableTokensConfig" => "true".to_string(),
                other => return invalid_param(&format!("Invalid keys: [{other}]")),
            };
            out.insert(key.to_string(), Value::String(value));
        }
        json_response(200, Value::Object(out))
    }

    fn conf_patch(&self, caller: &Caller, body: &[u8]) -> HttpResponse {
        let m = match object_body(body) {
            Ok(m) => m,
            Err(r) => return r,
        };
        let mut st = self.state();
        if !st.admins.contains(&caller.principal) {
            return error(403, "PERMISSION_DENIED", "Only workspace admins can access workspace configuration.");
        }
        let mut max = None;
        for (key, value) in &m {
            match (key.as_str(), value.as_str().map(|v| v.trim().parse::<u32>())) {
                ("maxTokenLifetimeDays", Some(Ok(days))) => max = Some(days),
                ("maxTokenLifetimeDays", _) => {
                    return invalid_param("maxTokenLifetimeDays must be a string holding a non-negative integer");
                }
                (other, _) => return invalid_param(&format!("Invalid keys: [{other}]")),
            }
        }
        if let Some(days) = max {
            st.max_lifetime_days = days;
        }
        HttpResponse::NoContent().finish()
    }
}
