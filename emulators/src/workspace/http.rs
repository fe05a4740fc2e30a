//! The workspace's wire protocol: authentication, authorization and the token endpoints.
//!
//! Order of checks: rate limit (refused requests take no token from the bucket), then
//! authentication (PAT or Entra ID token, membership or management-header mode), then the
//! route's own permission (token use, admin), then the operation.

use std::time::{Duration, Instant};

use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use serde_json::{Value, json};

use super::FakeWorkspace;
use super::tokens::TokenInfo;
use crate::directory::{DATABRICKS_RESOURCE, MANAGEMENT_RESOURCE, unix_millis};
use crate::faults::Outcome;
use crate::ratelimit::retry_after_secs;

/// Lifetime of a token created without `lifetime_seconds` (current API docs: two years).
const DEFAULT_LIFETIME_SECS: i64 = 2 * 365 * 86_400;
/// Databricks refuses Entra ID tokens that expire within this margin.
const AAD_EXPIRY_MARGIN: Duration = Duration::from_secs(30);
const MAX_BODY: usize = 64 * 1024;
const MGMT_TOKEN_HEADER: &str = "x-databricks-azure-sp-management-token";
const RESOURCE_ID_HEADER: &str = "x-databricks-azure-workspace-resource-id";

#[derive(Debug, PartialEq, Eq)]
enum Route {
    WellKnown,
    Create,
    List,
    Delete,
    ConfGet,
    ConfPatch,
    Me,
    Unknown,
}

impl Route {
    fn parse(method: &Method, path: &str) -> Route {
        match (method.as_str(), path) {
            (_, "/.well-known/databricks-config") => Route::WellKnown,
            ("POST", "/api/2.0/token/create") => Route::Create,
            ("GET", "/api/2.0/token/list") => Route::List,
            ("POST", "/api/2.0/token/delete") => Route::Delete,
            ("GET", "/api/2.0/workspace-conf") => Route::ConfGet,
            ("PATCH", "/api/2.0/workspace-conf") => Route::ConfPatch,
            ("GET", "/api/2.0/preview/scim/v2/Me") => Route::Me,
            _ => Route::Unknown,
        }
    }

    fn op(&self) -> &'static str {
        match self {
            Route::Create => "create",
            Route::List => "list",
            Route::Delete => "delete",
            Route::ConfGet | Route::ConfPatch => "conf",
            Route::Me => "me",
            Route::WellKnown | Route::Unknown => "other",
        }
    }

    /// The token scope an endpoint belongs to (Databricks' "API scopes" reference): the token
    /// API is in `authentication`, workspace settings in `settings`; `None` for endpoints every
    /// scope includes (`/scim/v2/Me` is listed under every scope).
    fn scope(&self) -> Option<&'static str> {
        match self {
            Route::Create | Route::List | Route::Delete => Some("authentication"),
            Route::ConfGet | Route::ConfPatch => Some("settings"),
            Route::Me | Route::WellKnown | Route::Unknown => None,
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
struct Caller {
    principal: String,
    /// The scopes of the PAT it presented (empty: unscoped, or an Entra ID token).
    scopes: Vec<String>,
}

/// actix entry point for every request to a workspace.
pub(crate) async fn handle(req: HttpRequest, payload: web::Payload, ws: web::Data<FakeWorkspace>) -> HttpResponse {
    let route = Route::parse(req.method(), req.path());
    let mut resp = ws.faults().run(route.op(), &req, ws.serve(&route, &req, payload)).await;
    // Databricks' front end dates every answer; clients may read its clock from it.
    if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&httpdate::fmt_http_date(ws.now())) {
        resp.headers_mut().insert(actix_web::http::header::DATE, v);
    }
    ws.after_request(route.op());
    resp
}

fn json_response(status: u16, body: Value) -> HttpResponse {
    HttpResponseBuilder::new(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .content_type("application/json")
        .body(body.to_string())
}

/// Databricks' error shape.
fn error(status: u16, code: &str, message: &str) -> HttpResponse {
    json_response(status, json!({"error_code": code, "message": message}))
}

fn unauthenticated(message: &str) -> HttpResponse {
    error(401, "401", message)
}

fn invalid_token() -> HttpResponse {
    error(403, "403", "Invalid access token.")
}

fn invalid_param(message: &str) -> HttpResponse {
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
fn object_body(body: &[u8]) -> Result<serde_json::Map<String, Value>, HttpResponse> {
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
        if *route == Route::WellKnown {
            // The Python SDK probes this to detect unified hosts; an Azure workspace has none.
            return Outcome::anonymous(error(
                404,
                "ENDPOINT_NOT_FOUND",
                "No API found for 'GET /.well-known/databricks-config'",
            ));
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
        let body = match route {
            Route::Create | Route::Delete | Route::ConfPatch => match payload.to_bytes_limited(MAX_BODY).await {
                Ok(Ok(b)) => b,
                _ => {
                    return done(error(
                        400,
                        "MALFORMED_REQUEST",
                        "The request body is too large or could not be read.",
                    ));
                }
            },
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
            Route::ConfGet => self.conf_get(&caller, req),
            Route::ConfPatch => self.conf_patch(&caller, &body),
            Route::Me => {
                let client_id =
                    self.inner.directory.principal(&caller.principal).map(|p| p.client_id).unwrap_or_default();
                let numeric = caller
                    .principal
                    .bytes()
                    .fold(1_000_000_007u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
                    % 9_000_000_000_000_000;
                json_response(
                    200,
                    json!({
                        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal"],
                        "id": (numeric + 1_000_000_000_000_000).to_string(),
                        "userName": client_id,
                        "applicationId": client_id,
                        "displayName": format!("principal {}", caller.principal),
                        "active": true,
                    }),
                )
            }
            Route::Unknown => {
                error(404, "ENDPOINT_NOT_FOUND", &format!("No API found for '{} {}'", req.method(), req.path()))
            }
            Route::WellKnown => unreachable!("answered above"),
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
