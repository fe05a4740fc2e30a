//! The service principal side of the workspace's wire protocol: SCIM `Me` and
//! `ServicePrincipals`, the workspace-level OAuth secrets API ("service principal secrets
//! proxy"), the OIDC token endpoint and the two discovery documents the SDKs read.
//!
//! Shapes and rules follow the emulator README's research notes; every choice the public
//! material does not settle is listed there as assumed.

use std::time::Duration;

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::http::{Caller, MAX_BODY, error, invalid_param, json_response, object_body};
use super::sp::{SpKind, SpSecretInfo};
use super::{ACCOUNT_ID, FakeWorkspace, ServicePrincipal, State};
use crate::directory::unix_millis;
use crate::encoding::{b64_std_decode, b64url_decode, b64url_encode, rfc3339_millis};
use crate::faults::Outcome;

/// Lifetime of an access token minted at `/oidc/v1/token` (Databricks: one hour).
const ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// Default page size of the secrets list (API reference: 100).
const DEFAULT_PAGE_SIZE: usize = 100;
/// Default and largest SCIM `count` (the Python SDK asks for 10000).
const MAX_SCIM_COUNT: usize = 10_000;
const SCIM_LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const SCIM_SP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal";
const SCIM_ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// A SCIM id for a workspace principal that was not registered as a service principal (an Entra
/// ID principal that is a member): a stable 19-digit number derived from its object id, below
/// `i64::MAX` (the Token Management API shows it as an int64).
fn derived_scim_id(principal: &str) -> String {
    let numeric = principal.bytes().fold(1_000_000_007u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
        % 8_000_000_000_000_000_000;
    (numeric + 1_000_000_000_000_000_000).to_string()
}

/// SCIM's error shape (RFC 7644 §3.12), which Databricks' SCIM endpoints answer with.
fn scim_error(status: u16, scim_type: Option<&str>, detail: &str) -> HttpResponse {
    let mut v = json!({"schemas": [SCIM_ERROR_SCHEMA], "detail": detail, "status": status.to_string()});
    if let Some(t) = scim_type {
        v["scimType"] = json!(t);
    }
    json_response(status, v)
}

/// An OAuth error body (RFC 6749 §5.2), as the token endpoint answers.
fn oauth_error(status: u16, code: &str, description: &str) -> HttpResponse {
    json_response(status, json!({"error": code, "error_description": description}))
}

fn invalid_client() -> HttpResponse {
    oauth_error(401, "invalid_client", "Client authentication failed")
}

/// `Duration` in protobuf's JSON form: decimal seconds with an `s` suffix (`"7776000s"`,
/// `"1.5s"`, at most nine fractional digits). `None` when malformed.
fn parse_proto_duration(s: &str) -> Option<(bool, Duration)> {
    let body = s.strip_suffix('s')?;
    let (negative, body) = match body.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, body),
    };
    let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 9 {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) || (body.contains('.') && frac.is_empty()) {
        return None;
    }
    let secs: u64 = whole.parse().ok()?;
    let nanos: u32 = if frac.is_empty() { 0 } else { format!("{frac:0<9}").parse().ok()? };
    Some((negative, Duration::new(secs, nanos)))
}

fn secret_json(s: &SpSecretInfo) -> Value {
    let mut v = json!({
        "id": s.id,
        "secret_hash": s.secret_hash,
        "create_time": rfc3339_millis(unix_millis(s.created)),
        "update_time": rfc3339_millis(unix_millis(s.updated)),
        "expire_time": rfc3339_millis(unix_millis(s.expires)),
        "status": "ACTIVE",
    });
    if !s.scopes.is_empty() {
        v["scopes"] = json!(s.scopes);
    }
    v
}

/// One SCIM filter comparison: `attribute op value`.
struct Filter {
    attribute: String,
    op: String,
    value: String,
}

impl Filter {
    /// Parses `attr op "value"` (SCIM, RFC 7644 §3.4.2.2). Only single comparisons with `eq`,
    /// `ne`, `co`, `sw` on `id`, `applicationId`, `displayName` are supported.
    fn parse(f: &str) -> Result<Filter, String> {
        let bad = || format!("Invalid filter '{f}'.");
        let f = f.trim();
        let (attribute, rest) = f.split_once(char::is_whitespace).ok_or_else(bad)?;
        let (op, value) = rest.trim_start().split_once(char::is_whitespace).ok_or_else(bad)?;
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .filter(|v| !v.contains('"'))
            .ok_or_else(bad)?
            .to_string();
        let attribute = match attribute.to_ascii_lowercase().as_str() {
            "id" => "id",
            "applicationid" => "applicationId",
            "displayname" => "displayName",
            _ => return Err(format!("Unsupported filter attribute '{attribute}'.")),
        }
        .to_string();
        let op = op.to_ascii_lowercase();
        if !matches!(op.as_str(), "eq" | "ne" | "co" | "sw") {
            return Err(format!("Unsupported filter operator '{op}'."));
        }
        Ok(Filter { attribute, op, value })
    }

    /// Strings compare case-insensitively (SCIM `caseExact: false`).
    fn matches(&self, sp: &ServicePrincipal) -> bool {
        let field = match self.attribute.as_str() {
            "id" => &sp.scim_id,
            "applicationId" => &sp.application_id,
            _ => &sp.display_name,
        }
        .to_lowercase();
        let value = self.value.to_lowercase();
        match self.op.as_str() {
            "eq" => field == value,
            "ne" => field != value,
            "co" => field.contains(&value),
            _ => field.starts_with(&value),
        }
    }
}

impl FakeWorkspace {
    /// The workspace's OIDC root.
    fn oidc_root(&self) -> String {
        format!("{}/oidc", self.url())
    }

    /// Every service principal in the workspace: registered ones that are members, then every
    /// other member the directory knows (Entra ID principals such as the managed identity), as
    /// Entra-managed principals with a derived SCIM id.
    pub(super) fn workspace_sps(&self, st: &State) -> Vec<ServicePrincipal> {
        let mut out: Vec<ServicePrincipal> =
            st.sps.all().iter().filter(|s| st.members.contains(&s.principal)).cloned().collect();
        let mut others: Vec<ServicePrincipal> = st
            .members
            .iter()
            .filter(|m| st.sps.by_principal(m).is_none())
            .filter_map(|m| self.inner.directory.principal(m))
            .map(|p| ServicePrincipal {
                scim_id: derived_scim_id(&p.object_id),
                application_id: p.client_id.to_ascii_lowercase(),
                display_name: format!("principal {}", p.object_id),
                kind: SpKind::EntraManaged,
                principal: p.object_id,
            })
            .collect();
        others.sort_by(|a, b| a.scim_id.cmp(&b.scim_id));
        out.extend(others);
        out
    }

    /// Whether `/oidc/v1/token` accepts this client id and secret now: a service principal in
    /// the workspace that may hold OAuth secrets, and a live secret of its own.
    pub(super) fn check_client(&self, client_id: &str, secret: &str) -> Result<(ServicePrincipal, SpSecretInfo), ()> {
        let now = self.now();
        let st = self.state();
        let sp =
            self.workspace_sps(&st).into_iter().find(|s| s.application_id.eq_ignore_ascii_case(client_id)).ok_or(())?;
        if sp.kind == SpKind::EntraManaged && !st.entra_sp_secrets {
            return Err(());
        }
        let info = st.sps.check_secret(&sp.application_id, secret, now).ok_or(())?;
        Ok((sp, info))
    }

    /// `GET /.well-known/databricks-config`: host metadata. The Python SDK (0.16x) reads
    /// `oidc_endpoint` from it and cannot sign in with OAuth M2M without it.
    pub(super) fn host_metadata(&self, req: &HttpRequest) -> HttpResponse {
        if req.method() != Method::GET {
            return error(405, "BAD_REQUEST", "Method not allowed.");
        }
        json_response(
            200,
            json!({
                "oidc_endpoint": self.oidc_root(),
                "account_id": ACCOUNT_ID,
                "workspace_id": self.workspace_id(),
                "cloud": "azure",
            }),
        )
    }

    /// `GET /oidc/.well-known/oauth-authorization-server` (RFC 8414 metadata).
    pub(super) fn oidc_metadata(&self, req: &HttpRequest) -> HttpResponse {
        if req.method() != Method::GET {
            return error(405, "BAD_REQUEST", "Method not allowed.");
        }
        let root = self.oidc_root();
        json_response(
            200,
            json!({
                "issuer": root,
                "authorization_endpoint": format!("{root}/v1/authorize"),
                "token_endpoint": format!("{root}/v1/token"),
                "jwks_uri": format!("{root}/jwks.json"),
                "response_types_supported": ["code", "id_token"],
                "response_modes_supported": ["query", "fragment", "form_post"],
                "grant_types_supported": ["client_credentials", "authorization_code", "refresh_token"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["all-apis", "sql", "offline_access", "openid", "profile", "email"],
            }),
        )
    }

    /// `POST /oidc/v1/token`: the client credentials grant, with the client authenticated by
    /// HTTP Basic or by `client_id`/`client_secret` in the form (Basic wins when both are sent).
    pub(super) async fn oidc_token(&self, req: &HttpRequest, payload: web::Payload) -> Outcome {
        if req.method() != Method::POST {
            return Outcome::anonymous(oauth_error(405, "invalid_request", "The token endpoint accepts POST only."));
        }
        let Ok(Ok(body)) = payload.to_bytes_limited(MAX_BODY).await else {
            return Outcome::anonymous(oauth_error(400, "invalid_request", "The request body could not be read."));
        };
        let Ok(form) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) else {
            return Outcome::anonymous(oauth_error(400, "invalid_request", "The request body is not a form."));
        };
        let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
        match field("grant_type") {
            None => return Outcome::anonymous(oauth_error(400, "invalid_request", "Missing grant_type.")),
            Some("client_credentials") => {}
            Some(other) => {
                return Outcome::anonymous(oauth_error(
                    400,
                    "unsupported_grant_type",
                    &format!("Unsupported grant_type '{other}'."),
                ));
            }
        }
        let basic = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|a| a.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
            .and_then(|(_, b)| b64_std_decode(b.trim()))
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.split_once(':').map(|(i, p)| (i.to_string(), p.to_string())));
        let credentials =
            basic.or_else(|| Some((field("client_id")?.to_string(), field("client_secret")?.to_string())));
        let Some((client_id, secret)) = credentials else {
            return Outcome::anonymous(invalid_client());
        };
        let Ok((sp, info)) = self.check_client(&client_id, &secret) else {
            return Outcome::anonymous(invalid_client());
        };
        let scopes: Vec<String> = field("scope").unwrap_or("all-apis").split_whitespace().map(str::to_string).collect();
        let now = self.now();
        let token = self.state().sps.mint_token(&info, scopes.clone(), &self.oidc_root(), now, ACCESS_TOKEN_LIFETIME);
        Outcome {
            response: json_response(
                200,
                json!({
                    "access_token": token,
                    "token_type": "Bearer",
                    "expires_in": ACCESS_TOKEN_LIFETIME.as_secs(),
                    "scope": scopes.join(" "),
                }),
            ),
            principal: Some(sp.principal),
        }
    }

    /// `GET /api/2.0/preview/scim/v2/Me`.
    /// The workspace identity of a principal: its SCIM id and user name (for a service
    /// principal, its application id). A principal that is not (or no longer) a member — an
    /// Entra ID principal in management-header mode, the owner of a token after removal — gets
    /// its derived SCIM id.
    pub(super) fn scim_identity(&self, st: &State, principal: &str) -> ServicePrincipal {
        self.workspace_sps(st).into_iter().find(|s| s.principal == principal).unwrap_or_else(|| {
            let client_id = self.inner.directory.principal(principal).map(|p| p.client_id).unwrap_or_default();
            ServicePrincipal {
                scim_id: derived_scim_id(principal),
                application_id: client_id.to_ascii_lowercase(),
                display_name: format!("principal {principal}"),
                kind: SpKind::EntraManaged,
                principal: principal.to_string(),
            }
        })
    }

    pub(super) fn me(&self, caller: &Caller) -> HttpResponse {
        let sp = {
            let st = self.state();
            self.scim_identity(&st, &caller.principal)
        };
        json_response(
            200,
            json!({
                "schemas": [SCIM_SP_SCHEMA],
                "id": sp.scim_id,
                "userName": sp.application_id,
                "applicationId": sp.application_id,
                "displayName": sp.display_name,
                "active": true,
            }),
        )
    }

    /// `GET /api/2.0/preview/scim/v2/ServicePrincipals?filter=…&startIndex=…&count=…`. Admins
    /// see every attribute; other users only `id` and `displayName` (as Databricks documents for
    /// SCIM Users).
    pub(super) fn scim_sp_list(&self, caller: &Caller, req: &HttpRequest) -> HttpResponse {
        let query: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
        let param = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let filter = match param("filter").filter(|f| !f.trim().is_empty()).map(Filter::parse) {
            None => None,
            Some(Ok(f)) => Some(f),
            Some(Err(detail)) => return scim_error(400, Some("invalidFilter"), &detail),
        };
        // RFC 7644 §3.4.2.4: startIndex below 1 means 1, a negative count means 0.
        let start = match param("startIndex").map(str::parse::<i64>) {
            None => 1,
            Some(Ok(n)) => n.max(1) as usize,
            Some(Err(_)) => return scim_error(400, Some("invalidValue"), "startIndex must be an integer."),
        };
        let count = match param("count").map(str::parse::<i64>) {
            None => MAX_SCIM_COUNT,
            Some(Ok(n)) => (n.max(0) as usize).min(MAX_SCIM_COUNT),
            Some(Err(_)) => return scim_error(400, Some("invalidValue"), "count must be an integer."),
        };
        let (matched, admin) = {
            let st = self.state();
            let all = self.workspace_sps(&st);
            let matched: Vec<ServicePrincipal> =
                all.into_iter().filter(|sp| filter.as_ref().is_none_or(|f| f.matches(sp))).collect();
            (matched, st.admins.contains(&caller.principal))
        };
        let page: Vec<Value> = matched
            .iter()
            .skip(start - 1)
            .take(count)
            .map(|sp| {
                if admin {
                    json!({
                        "schemas": [SCIM_SP_SCHEMA], "id": sp.scim_id, "applicationId": sp.application_id,
                        "displayName": sp.display_name, "active": true,
                    })
                } else {
                    json!({"schemas": [SCIM_SP_SCHEMA], "id": sp.scim_id, "displayName": sp.display_name})
                }
            })
            .collect();
        let mut v = json!({
            "schemas": [SCIM_LIST_SCHEMA],
            "totalResults": matched.len(),
            "startIndex": start,
            "itemsPerPage": page.len(),
        });
        // Databricks omits empty arrays.
        if !page.is_empty() {
            v["Resources"] = json!(page);
        }
        json_response(200, v)
    }

    /// The service principal a secrets API call is about, after the admin check.
    fn secrets_target(&self, caller: &Caller, scim_id: &str) -> Result<ServicePrincipal, HttpResponse> {
        let st = self.state();
        if !st.admins.contains(&caller.principal) {
            return Err(error(
                403,
                "PERMISSION_DENIED",
                "Only workspace admins and account admins can manage service principal secrets.",
            ));
        }
        if scim_id.parse::<i64>().is_err() {
            return Err(invalid_param(&format!("Invalid service principal id '{scim_id}': expected an integer.")));
        }
        self.workspace_sps(&st).into_iter().find(|s| s.scim_id == scim_id).ok_or_else(|| {
            error(
                404,
                "RESOURCE_DOES_NOT_EXIST",
                &format!("Service principal with id {scim_id} does not exist in this workspace."),
            )
        })
    }

    /// `GET /api/2.0/accounts/servicePrincipals/{id}/credentials/secrets?page_size=&page_token=`.
    pub(super) fn sp_secret_list(&self, caller: &Caller, scim_id: &str, req: &HttpRequest) -> HttpResponse {
        let sp = match self.secrets_target(caller, scim_id) {
            Ok(sp) => sp,
            Err(r) => return r,
        };
        let query: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
        let param = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
        let page_size = match param("page_size").map(str::parse::<i64>) {
            None | Some(Ok(0)) => DEFAULT_PAGE_SIZE,
            Some(Ok(n)) if n > 0 => n as usize,
            _ => return invalid_param("page_size must be a non-negative integer."),
        };
        let offset = match param("page_token") {
            None => 0,
            Some(t) => match b64url_decode(t)
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.strip_prefix(&format!("emulator:{}:", sp.scim_id)).and_then(|n| n.parse().ok()))
            {
                Some(o) => o,
                None => return invalid_param("Invalid page_token."),
            },
        };
        let secrets = self.sp_secrets(&sp.application_id);
        let end = (offset + page_size).min(secrets.len());
        let page: Vec<Value> = secrets.get(offset..end).unwrap_or_default().iter().map(secret_json).collect();
        let mut v = json!({});
        if !page.is_empty() {
            v["secrets"] = json!(page);
        }
        if end < secrets.len() {
            v["next_page_token"] = json!(b64url_encode(format!("emulator:{}:{end}", sp.scim_id).as_bytes()));
        }
        json_response(200, v)
    }

    /// `POST /api/2.0/accounts/servicePrincipals/{id}/credentials/secrets` `{lifetime?, scopes?}`.
    pub(super) fn sp_secret_create(&self, caller: &Caller, scim_id: &str, body: &[u8]) -> HttpResponse {
        let sp = match self.secrets_target(caller, scim_id) {
            Ok(sp) => sp,
            Err(r) => return r,
        };
        let m = match object_body(body) {
            Ok(m) => m,
            Err(r) => return r,
        };
        let requested = match m.get("lifetime") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => match parse_proto_duration(s) {
                Some(d) => Some(d),
                None => {
                    return invalid_param(&format!(
                        "Invalid lifetime '{s}': expected a duration in seconds with an 's' suffix, e.g. \"7776000s\"."
                    ));
                }
            },
            Some(other) => {
                return invalid_param(&format!(
                    "Invalid lifetime {other}: expected a duration in seconds with an 's' suffix, e.g. \"7776000s\"."
                ));
            }
        };
        let scopes: Vec<String> = match m.get("scopes") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
                a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()
            }
            Some(_) => return invalid_param("Invalid value for field scopes: expected an array of strings"),
        };
        let now = self.now();
        let mut st = self.state();
        if sp.kind == SpKind::EntraManaged && !st.entra_sp_secrets {
            return invalid_param(&format!(
                "Service principal {scim_id} is managed by Microsoft Entra ID. Databricks OAuth secrets can only be created for Azure Databricks managed service principals; authenticate Microsoft Entra ID managed service principals with Microsoft Entra ID tokens."
            ));
        }
        let max = st.sp_secret_max_lifetime;
        let lifetime = match requested {
            None => max.min(Duration::from_secs(730 * 86_400)),
            Some((true, _)) | Some((false, Duration::ZERO)) => {
                return invalid_param("Invalid lifetime: the lifetime must be positive.");
            }
            Some((false, d)) if d > max => {
                return invalid_param(&format!(
                    "Invalid lifetime: the lifetime of a secret cannot exceed {} days ({}s).",
                    max.as_secs() / 86_400,
                    max.as_secs()
                ));
            }
            Some((false, d)) => d,
        };
        if st.sps.live_secrets(&sp.application_id, now).len() >= st.sp_secret_limit {
            return error(
                400,
                "QUOTA_EXCEEDED",
                &format!(
                    "Service principal {scim_id} already has the maximum number of secrets ({}). Delete a secret before creating a new one.",
                    st.sp_secret_limit
                ),
            );
        }
        let (info, value) = st.sps.create_secret(&sp.application_id, scopes, now, lifetime);
        let mut v = secret_json(&info);
        v["secret"] = json!(value);
        json_response(200, v)
    }

    /// `DELETE /api/2.0/accounts/servicePrincipals/{id}/credentials/secrets/{secret_id}`.
    pub(super) fn sp_secret_delete(&self, caller: &Caller, scim_id: &str, secret_id: &str) -> HttpResponse {
        let sp = match self.secrets_target(caller, scim_id) {
            Ok(sp) => sp,
            Err(r) => return r,
        };
        let now = self.now();
        let mut st = self.state();
        let live_own =
            st.sps.secret(secret_id).is_some_and(|s| s.application_id == sp.application_id && s.is_live(now));
        if !live_own {
            return error(404, "RESOURCE_DOES_NOT_EXIST", &format!("Secret with id {secret_id} does not exist."));
        }
        st.sps.delete_secret(secret_id, now);
        json_response(200, json!({}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proto_durations() {
        assert_eq!(parse_proto_duration("7776000s"), Some((false, Duration::from_secs(7_776_000))));
        assert_eq!(parse_proto_duration("1.5s"), Some((false, Duration::from_millis(1500))));
        assert_eq!(parse_proto_duration("-3s"), Some((true, Duration::from_secs(3))));
        assert_eq!(parse_proto_duration("0s"), Some((false, Duration::ZERO)));
        for bad in ["7776000", "s", "1.s", ".5s", "1.0000000001s", "1e3s", "12 s", "abc", "", "1,5s"] {
            assert_eq!(parse_proto_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn scim_filters() {
        let sp = ServicePrincipal {
            scim_id: "123".into(),
            application_id: "0a0a0a0a-1111-4111-8111-aaaaaaaaaaaa".into(),
            display_name: "ETL Runner".into(),
            kind: SpKind::DatabricksManaged,
            principal: "k".into(),
        };
        let f = |s: &str| Filter::parse(s).unwrap().matches(&sp);
        assert!(f(r#"applicationId eq "0A0A0A0A-1111-4111-8111-AAAAAAAAAAAA""#));
        assert!(!f(r#"applicationId eq "0b0b0b0b-1111-4111-8111-bbbbbbbbbbbb""#));
        assert!(f(r#"displayName co "runner""#) && f(r#"DISPLAYNAME SW "etl""#) && f(r#"id ne "124""#));
        assert!(Filter::parse(r#"userName eq "x""#).is_err());
        assert!(Filter::parse(r#"applicationId gt "x""#).is_err());
        assert!(Filter::parse("applicationId eq x").is_err());
        assert!(Filter::parse(r#"applicationId eq "a" and displayName eq "b""#).is_err());
    }
}
