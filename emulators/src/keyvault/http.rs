//! Key Vault's wire protocol: routes, the bearer challenge, RBAC, limits and error bodies.
//!
//! Order of checks for every request, chosen to match what clients can observe:
//! 1. route and `api-version` (400 `BadParameter` when missing);
//! 2. bearer token — answered *before the body is read*, because the SDKs send their first
//!    request bodiless to elicit the challenge;
//! 3. throttling, the vault's own budget then the subscription's (only authenticated requests
//!    count: the challenge round-trip is free);
//! 4. name syntax, RBAC, then the body and the operation.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::store::{Deleted, NewVersion, Patch, RECOVERABLE_DAYS, StoreError, StoredVersion};
use super::{FakeKeyVault, Role, VersionsOrder};
use crate::directory::{KEY_VAULT_RESOURCE, unix_secs};
use crate::encoding::{b64url_decode, b64url_encode, mix64, splitmix64};
use crate::faults::Outcome;
use crate::ratelimit::retry_after_secs;

/// Largest secret value Key Vault stores (25 KB).
const MAX_VALUE_BYTES: usize = 25 * 1024;
const MAX_TAGS: usize = 15;
const MAX_TAG_LEN: usize = 256;
const MAX_CONTENT_TYPE: usize = 255;
/// Bodies beyond this are refused before parsing (a set body is at most ~26 KB of JSON).
const MAX_BODY: usize = 256 * 1024;
const DEFAULT_PAGE: usize = 25;

/// A request mapped onto a Key Vault operation.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Set(String),
    Get(String, Option<String>),
    Versions(String),
    List,
    Update(String, Option<String>),
    Delete(String),
    DeletedList,
    DeletedGet(String),
    Recover(String),
    Purge(String),
    Unknown,
}

impl Route {
    fn parse(method: &Method, path: &str) -> Route {
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let s = |i: usize| segs[i].to_string();
        let opt = |i: usize| segs.get(i).filter(|v| !v.is_empty()).map(|v| v.to_string());
        match (method.as_str(), segs.as_slice()) {
            ("GET", ["secrets"] | ["secrets", ""]) => Route::List,
            ("GET", ["secrets", _, "versions"]) => Route::Versions(s(1)),
            ("GET", ["secrets", n, ..]) if !n.is_empty() && segs.len() <= 3 => Route::Get(s(1), opt(2)),
            ("PUT", ["secrets", n]) if !n.is_empty() => Route::Set(s(1)),
            ("PATCH", ["secrets", n, ..]) if !n.is_empty() && segs.len() <= 3 => Route::Update(s(1), opt(2)),
            ("DELETE", ["secrets", n]) if !n.is_empty() => Route::Delete(s(1)),
            ("GET", ["deletedsecrets"] | ["deletedsecrets", ""]) => Route::DeletedList,
            ("GET", ["deletedsecrets", n]) if !n.is_empty() => Route::DeletedGet(s(1)),
            ("POST", ["deletedsecrets", n, "recover"]) if !n.is_empty() => Route::Recover(s(1)),
            ("DELETE", ["deletedsecrets", n]) if !n.is_empty() => Route::Purge(s(1)),
            _ => Route::Unknown,
        }
    }

    fn op(&self) -> &'static str {
        match self {
            Route::Set(_) => "set",
            Route::Get(..) => "get",
            Route::Versions(_) | Route::List => "list",
            Route::Update(..) => "update",
            Route::Delete(_) => "delete",
            Route::DeletedList => "deleted_list",
            Route::DeletedGet(_) => "deleted_get",
            Route::Recover(_) => "recover",
            Route::Purge(_) => "purge",
            Route::Unknown => "other",
        }
    }

    fn name(&self) -> Option<&str> {
        match self {
            Route::Set(n) | Route::Get(n, _) | Route::Versions(n) | Route::Update(n, _) | Route::Delete(n) => Some(n),
            Route::DeletedGet(n) | Route::Recover(n) | Route::Purge(n) => Some(n),
            Route::List | Route::DeletedList | Route::Unknown => None,
        }
    }

    /// The Azure RBAC data action the operation needs.
    fn action(&self) -> &'static str {
        match self {
            Route::Get(..) => "Microsoft.KeyVault/vaults/secrets/getSecret/action",
            Route::Set(_) => "Microsoft.KeyVault/vaults/secrets/setSecret/action",
            Route::Update(..) => "Microsoft.KeyVault/vaults/secrets/update/action",
            Route::Delete(_) => "Microsoft.KeyVault/vaults/secrets/delete",
            Route::Recover(_) => "Microsoft.KeyVault/vaults/secrets/recover/action",
            Route::Purge(_) => "Microsoft.KeyVault/vaults/secrets/purge/action",
            Route::Versions(_) | Route::List | Route::DeletedList | Route::DeletedGet(_) | Route::Unknown => {
                "Microsoft.KeyVault/vaults/secrets/readMetadata/action"
            }
        }
    }

    fn allowed_for(&self, role: Role) -> bool {
        match role {
            Role::Officer => true,
            Role::User => matches!(
                self,
                Route::Get(..) | Route::Versions(_) | Route::List | Route::DeletedList | Route::DeletedGet(_)
            ),
            Role::None => false,
        }
    }
}

/// actix entry point for every request to a vault.
pub(crate) async fn handle(req: HttpRequest, payload: web::Payload, kv: FakeKeyVault) -> HttpResponse {
    let route = Route::parse(req.method(), req.path());
    let op = route.op();
    let work = {
        let (kv, req) = (kv.clone(), req.clone());
        async move { kv.serve(&route, &req, payload).await }
    };
    kv.faults().run(op, &req, work).await
}

fn response(status: StatusCode) -> HttpResponseBuilder {
    let mut b = HttpResponseBuilder::new(status);
    b.insert_header(("x-ms-request-id", uuid::Uuid::new_v4().to_string()))
        .insert_header(("x-ms-keyvault-service-version", "1.9.0.0"))
        .insert_header(("Cache-Control", "no-cache"));
    b
}

fn ok_json(body: Value) -> HttpResponse {
    response(StatusCode::OK).content_type("application/json; charset=utf-8").body(body.to_string())
}

/// Key Vault's error shape, with `x-ms-error-code` mirroring the code.
fn error(status: u16, code: &str, message: &str, inner: Option<&str>) -> HttpResponse {
    let mut e = json!({"code": code, "message": message});
    if let Some(i) = inner {
        e["innererror"] = json!({"code": i});
    }
    response(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .insert_header(("x-ms-error-code", code))
        .content_type("application/json; charset=utf-8")
        .body(json!({"error": e}).to_string())
}

fn bad_parameter(message: &str) -> HttpResponse {
    error(400, "BadParameter", message, None)
}

fn not_found(name: &str) -> HttpResponse {
    error(
        404,
        "SecretNotFound",
        &format!(
            "A secret with (name/id) {name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
        ),
        None,
    )
}

fn valid_name(name: &str) -> bool {
    (1..=127).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Percent-encodes a query value (everything but RFC 3986 unreserved characters).
fn encode_query(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AttributesBody {
    enabled: Option<bool>,
    nbf: Option<i64>,
    exp: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SetBody {
    value: Option<String>,
    content_type: Option<String>,
    tags: Option<BTreeMap<String, String>>,
    attributes: Option<AttributesBody>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateBody {
    content_type: Option<String>,
    tags: Option<BTreeMap<String, String>>,
    attributes: Option<AttributesBody>,
}

fn check_metadata(content_type: Option<&String>, tags: Option<&BTreeMap<String, String>>) -> Result<(), HttpResponse> {
    if content_type.is_some_and(|c| c.chars().count() > MAX_CONTENT_TYPE) {
        return Err(bad_parameter(&format!(
            "The contentType is too long. The maximum length is {MAX_CONTENT_TYPE} characters."
        )));
    }
    if let Some(tags) = tags {
        if tags.len() > MAX_TAGS {
            return Err(bad_parameter(&format!(
                "Too many tags: {} were provided and at most {MAX_TAGS} are allowed.",
                tags.len()
            )));
        }
        for (k, v) in tags {
            if k.chars().count() > MAX_TAG_LEN || v.chars().count() > MAX_TAG_LEN {
                return Err(bad_parameter(&format!(
                    "Tag names and values must be at most {MAX_TAG_LEN} characters long; tag '{}' is not.",
                    k.chars().take(40).collect::<String>()
                )));
            }
        }
    }
    Ok(())
}

// Locking: `self.state()` is a plain (non-reentrant) mutex and the rendering helpers below
// take it too, so every handler copies what it needs out of the store into a local first
// and renders afterwards — never inside a `match self.state()...` scrutinee.
impl FakeKeyVault {
    fn recovery_level(&self) -> &'static str {
        if self.state().purge_protection { "Recoverable" } else { "Recoverable+Purgeable" }
    }

    fn secret_id(&self, name: &str) -> String {
        format!("{}/secrets/{name}", self.url())
    }

    fn attributes(&self, v: &StoredVersion) -> Value {
        let mut a = json!({
            "enabled": v.enabled,
            "created": v.created,
            "updated": v.updated,
            "recoverableDays": RECOVERABLE_DAYS,
            "recoveryLevel": self.recovery_level(),
        });
        if let Some(nbf) = v.nbf {
            a["nbf"] = json!(nbf);
        }
        if let Some(exp) = v.exp {
            a["exp"] = json!(exp);
        }
        a
    }

    /// SecretBundle (or SecretItem when `id` has no version and `value` is `None`).
    fn bundle(&self, id: String, v: &StoredVersion, with_value: bool) -> Value {
        let mut b = json!({"id": id, "attributes": self.attributes(v)});
        if with_value {
            b["value"] = json!(v.value);
        }
        if let Some(ct) = &v.content_type {
            b["contentType"] = json!(ct);
        }
        if !v.tags.is_empty() {
            b["tags"] = json!(v.tags);
        }
        b
    }

    fn deleted_bundle(&self, d: &Deleted, item: bool) -> Value {
        let latest = d.secret.latest();
        let id = if item {
            self.secret_id(&d.secret.name)
        } else {
            format!("{}/{}", self.secret_id(&d.secret.name), latest.version)
        };
        let mut b = self.bundle(id, latest, false);
        b["recoveryId"] = json!(format!("{}/deletedsecrets/{}", self.url(), d.secret.name));
        b["deletedDate"] = json!(d.deleted_date);
        b["scheduledPurgeDate"] = json!(d.scheduled_purge_date);
        b
    }

    fn challenge(&self, message: &str) -> HttpResponse {
        let header = format!(
            "Bearer authorization=\"https://login.microsoftonline.com/{}\", resource=\"{KEY_VAULT_RESOURCE}\"",
            self.inner.directory.tenant_id()
        );
        let mut r = error(401, "Unauthorized", message, None);
        r.headers_mut().insert(
            actix_web::http::header::WWW_AUTHENTICATE,
            actix_web::http::header::HeaderValue::from_str(&header).expect("ascii header"),
        );
        r
    }

    fn forbidden(&self, route: &Route, principal: &str, client_id: &str) -> HttpResponse {
        let tenant = self.inner.directory.tenant_id();
        let resource = format!(
            "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg/providers/microsoft.keyvault/vaults/{}{}",
            self.name(),
            route.name().map(|n| format!("/secrets/{}", n.to_ascii_lowercase())).unwrap_or_default()
        );
        let message = format!(
            "Caller is not authorized to perform action on resource.\r\nIf role assignments were recently changed, please wait several minutes for role assignments to become effective.\r\nCaller: appid={client_id};oid={principal};iss=https://sts.windows.net/{tenant}/\r\nAction: '{}'\r\nResource: '{resource}'\r\nAssignment: (not found)\r\nDenyAssignmentId: null\r\nDecisionReason: null \r\nVault: {};location=local\r\n",
            route.action(),
            self.name()
        );
        error(403, "Forbidden", &message, Some("ForbiddenByRbac"))
    }

    /// Counts the request against the vault's budget and the subscription's, or answers 429
    /// (counted in neither). Lock order: the vault's state, then the subscription's.
    fn admit(&self, route: &Route) -> Result<(), HttpResponse> {
        let write = matches!(route, Route::Set(_));
        let now = Instant::now();
        let mut st = self.state();
        let refused = match st.budget.check(write, now) {
            Err(r) => r,
            Ok(()) => match self.inner.subscription.admit(write, now) {
                Ok(()) => {
                    st.budget.admit(write, now);
                    return Ok(());
                }
                Err(r) => r,
            },
        };
        st.throttled += 1;
        drop(st);
        let mut r = error(
            429,
            "Throttled",
            "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached",
            None,
        );
        if refused.retry_after {
            r.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                actix_web::http::header::HeaderValue::from(retry_after_secs(refused.wait)),
            );
        }
        Err(r)
    }

    /// The order of a new version listing: a key to sort by, drawn from the vault's generator,
    /// or `None` for oldest first.
    fn draw_listing_order(&self) -> Option<u64> {
        let mut st = self.state();
        match st.versions_order {
            VersionsOrder::OldestFirst => None,
            VersionsOrder::Shuffled { .. } => Some(splitmix64(&mut st.order_rng)),
        }
    }

    async fn serve(&self, route: &Route, req: &HttpRequest, payload: web::Payload) -> Outcome {
        let query: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
        let param = |k: &str| query.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone());
        let Some(api_version) = param("api-version").filter(|v| !v.is_empty()) else {
            return Outcome::anonymous(bad_parameter("The 'api-version' query parameter is missing."));
        };
        if *route == Route::Unknown {
            return Outcome::anonymous(error(
                404,
                "NotFound",
                "The requested operation is not supported by this emulator.",
                None,
            ));
        }

        // Authentication: before the body is touched.
        let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
        let token = match auth.split_once(' ') {
            Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty() => t.trim(),
            _ => return Outcome::anonymous(self.challenge("AKV10000: Request is missing a Bearer or PoP token.")),
        };
        let Some(issued) = self.inner.directory.lookup(token) else {
            return Outcome::anonymous(
                self.challenge("AKV10046: Unable to parse or validate the token: unknown token."),
            );
        };
        let audience = issued.audience.trim_end_matches('/');
        if audience != KEY_VAULT_RESOURCE {
            return Outcome::anonymous(self.challenge(&format!(
                "AKV10022: Invalid audience. Expected {KEY_VAULT_RESOURCE}, found: {}.",
                issued.audience
            )));
        }
        if issued.expires_within(SystemTime::now(), Duration::ZERO) {
            return Outcome::anonymous(self.challenge("AKV10032: Token has expired."));
        }
        let principal = issued.principal.clone();
        let done = |response: HttpResponse| Outcome { response, principal: Some(principal.clone()) };

        if let Err(r) = self.admit(route) {
            return done(r);
        }
        if let Some(name) = route.name()
            && !valid_name(name)
        {
            return done(bad_parameter(&format!("The request URI contains an invalid name: {name}")));
        }
        if !route.allowed_for(self.role(&principal)) {
            return done(self.forbidden(route, &principal, &issued.client_id));
        }

        let body = match route {
            Route::Set(_) | Route::Update(..) => match payload.to_bytes_limited(MAX_BODY).await {
                Ok(Ok(b)) => b,
                Ok(Err(_)) => return done(bad_parameter("The request body could not be read.")),
                Err(_) => return done(error(413, "RequestTooLarge", "The request body is too large.", None)),
            },
            _ => web::Bytes::new(),
        };
        let now = unix_secs(self.now());
        // A secret whose recovery is still in progress is invisible; writing it is refused.
        if let Some(name) = route.name()
            && self.state().recovering(name)
        {
            return done(match route {
                Route::Set(_) => error(
                    409,
                    "Conflict",
                    &format!("Secret {name} is currently being recovered and cannot be re-created; retry later."),
                    Some("ObjectIsBeingRecovered"),
                ),
                Route::Versions(_) => {
                    self.page(req.path(), &api_version, param("maxresults"), Listing::default(), Vec::new())
                }
                _ => not_found(name),
            });
        }
        done(match route {
            Route::Set(name) => self.set(name, &body, now),
            Route::Get(name, version) => self.get(name, version.as_deref()),
            Route::Versions(name) => {
                let listing = match Listing::parse(param("$skiptoken")) {
                    Ok(Some(l)) => l,
                    Ok(None) => Listing { offset: 0, order: self.draw_listing_order() },
                    Err(r) => return done(r),
                };
                // Shuffled by each version's position in writing order (not its random id), so a
                // seeded vault lists the same positions in the same order every run, and a version
                // written between two pages does not reorder the others.
                let mut versions: Vec<(u64, StoredVersion)> =
                    self.versions(name).into_iter().enumerate().map(|(i, v)| (i as u64, v)).collect();
                if let Some(order) = listing.order {
                    versions.sort_by_key(|(i, _)| mix64(order ^ mix64(*i)));
                }
                let items: Vec<Value> = versions
                    .iter()
                    .map(|(_, v)| self.bundle(format!("{}/{}", self.secret_id(name), v.version), v, false))
                    .collect();
                self.page(req.path(), &api_version, param("maxresults"), listing, items)
            }
            Route::List => {
                let secrets: Vec<_> = {
                    let mut st = self.state();
                    let all = st.store.list();
                    all.into_iter().filter(|(n, _)| !st.recovering(n)).collect()
                };
                let items: Vec<Value> = secrets.iter().map(|(n, v)| self.bundle(self.secret_id(n), v, false)).collect();
                match Listing::parse(param("$skiptoken")) {
                    Ok(l) => self.page(req.path(), &api_version, param("maxresults"), l.unwrap_or_default(), items),
                    Err(r) => r,
                }
            }
            Route::DeletedList => {
                let deleted = self.state().store.deleted_list();
                let items: Vec<Value> = deleted.iter().map(|d| self.deleted_bundle(d, true)).collect();
                match Listing::parse(param("$skiptoken")) {
                    Ok(l) => self.page(req.path(), &api_version, param("maxresults"), l.unwrap_or_default(), items),
                    Err(r) => r,
                }
            }
            Route::Update(name, version) => self.update(name, version.as_deref(), &body, now),
            Route::Delete(name) => {
                let deleted = self.state().store.delete(name, now);
                match deleted {
                    Ok(d) => ok_json(self.deleted_bundle(&d, false)),
                    Err(_) => not_found(name),
                }
            }
            Route::DeletedGet(name) => {
                let deleted = self.state().store.deleted(name);
                match deleted {
                    Some(d) => ok_json(self.deleted_bundle(&d, false)),
                    None => not_found(name),
                }
            }
            Route::Recover(name) => {
                let recovered = {
                    let mut st = self.state();
                    let r = st.store.recover(name);
                    if r.is_ok() && !st.recovery_delay.is_zero() {
                        let until = Instant::now() + st.recovery_delay;
                        st.recovering.insert(name.to_ascii_lowercase(), until);
                    }
                    r
                };
                match recovered {
                    Ok(s) => ok_json(self.bundle(
                        format!("{}/{}", self.secret_id(&s.name), s.latest().version),
                        s.latest(),
                        false,
                    )),
                    Err(StoreError::AlreadyExists) => error(
                        409,
                        "Conflict",
                        &format!("Secret {name} already exists, so the deleted secret cannot be recovered."),
                        None,
                    ),
                    Err(_) => not_found(name),
                }
            }
            Route::Purge(name) => {
                let protected = self.state().purge_protection;
                if protected {
                    error(
                        403,
                        "Forbidden",
                        "Operation 'purge' is not allowed because purge protection is enabled for this vault. Key Vault service will automatically purge it after the retention period has passed.",
                        Some("PurgeProtectionEnabled"),
                    )
                } else {
                    let purged = self.state().store.purge(name);
                    match purged {
                        Ok(()) => response(StatusCode::NO_CONTENT).finish(),
                        Err(_) => not_found(name),
                    }
                }
            }
            Route::Unknown => unreachable!("answered above"),
        })
    }

    fn set(&self, name: &str, body: &[u8], now: i64) -> HttpResponse {
        let b: SetBody = match serde_json::from_slice(body) {
            Ok(b) => b,
            Err(e) => {
                return bad_parameter(&format!("The request body is not a valid SecretSetParameters document: {e}"));
            }
        };
        let Some(value) = b.value else {
            return bad_parameter("Property 'value' is required.");
        };
        if value.len() > MAX_VALUE_BYTES {
            return bad_parameter(&format!(
                "The secret value is {} bytes long; the maximum size of a secret value is 25 KB ({MAX_VALUE_BYTES} bytes).",
                value.len()
            ));
        }
        if let Err(r) = check_metadata(b.content_type.as_ref(), b.tags.as_ref()) {
            return r;
        }
        if self.take_value_refusal() {
            return bad_parameter(&format!(
                "Property 'value' ('{value}') does not match the format required for the secret's content type."
            ));
        }
        let attrs = b.attributes.unwrap_or(AttributesBody { enabled: None, nbf: None, exp: None });
        let new = NewVersion {
            value,
            content_type: b.content_type,
            tags: b.tags.unwrap_or_default(),
            enabled: attrs.enabled.unwrap_or(true),
            nbf: attrs.nbf,
            exp: attrs.exp,
        };
        let stored = self.state().store.set(name, new, now);
        match stored {
            Ok((stored_name, v)) => {
                ok_json(self.bundle(format!("{}/{}", self.secret_id(&stored_name), v.version), &v, true))
            }
            Err(_) => error(
                409,
                "Conflict",
                &format!(
                    "Secret {name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged."
                ),
                Some("ObjectIsDeletedButRecoverable"),
            ),
        }
    }

    fn get(&self, name: &str, version: Option<&str>) -> HttpResponse {
        let found = self.state().store.get(name, version);
        match found {
            Ok((stored_name, v)) if v.enabled => {
                ok_json(self.bundle(format!("{}/{}", self.secret_id(&stored_name), v.version), &v, true))
            }
            Ok(_) => {
                error(403, "Forbidden", "Operation get is not allowed on a disabled secret.", Some("SecretDisabled"))
            }
            Err(_) => not_found(name),
        }
    }

    fn update(&self, name: &str, version: Option<&str>, body: &[u8], now: i64) -> HttpResponse {
        let b: UpdateBody = match serde_json::from_slice(body) {
            Ok(b) => b,
            Err(e) => {
                return bad_parameter(&format!("The request body is not a valid SecretUpdateParameters document: {e}"));
            }
        };
        if let Err(r) = check_metadata(b.content_type.as_ref(), b.tags.as_ref()) {
            return r;
        }
        let attrs = b.attributes.unwrap_or(AttributesBody { enabled: None, nbf: None, exp: None });
        let patch = Patch {
            content_type: b.content_type,
            tags: b.tags,
            enabled: attrs.enabled,
            nbf: attrs.nbf,
            exp: attrs.exp,
        };
        let updated = self.state().store.update(name, version, patch, now);
        match updated {
            Ok((stored_name, v)) => {
                ok_json(self.bundle(format!("{}/{}", self.secret_id(&stored_name), v.version), &v, false))
            }
            Err(_) => not_found(name),
        }
    }

    /// Whether this write is to be refused quoting its value (consumes one use).
    fn take_value_refusal(&self) -> bool {
        let mut st = self.state();
        match st.refuse_quoting_value {
            0 => false,
            usize::MAX => true,
            n => {
                st.refuse_quoting_value = n - 1;
                true
            }
        }
    }

    /// One page of a listing, with an absolute `nextLink` carrying `$skiptoken` (where the next
    /// page starts and the listing's order) when more remain.
    fn page(
        &self,
        path: &str,
        api_version: &str,
        maxresults: Option<String>,
        listing: Listing,
        items: Vec<Value>,
    ) -> HttpResponse {
        let max = match maxresults.map(|m| m.parse::<usize>()) {
            None => DEFAULT_PAGE,
            Some(Ok(m)) if (1..=25).contains(&m) => m,
            Some(_) => return bad_parameter("The value of maxresults must be an integer between 1 and 25."),
        };
        let offset = listing.offset;
        let end = (offset + max).min(items.len());
        let page: Vec<Value> = items.get(offset..end).map(<[Value]>::to_vec).unwrap_or_default();
        let next = if end < items.len() {
            let token = Listing { offset: end, order: listing.order }.token();
            json!(format!(
                "{}{path}?api-version={}&$skiptoken={token}&maxresults={max}",
                self.url(),
                encode_query(api_version)
            ))
        } else {
            Value::Null
        };
        ok_json(json!({"value": page, "nextLink": next}))
    }
}

/// Where a listing stands: the offset of the next page and, for version listings, the key
/// their order was drawn with. Carried opaquely in `$skiptoken`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Listing {
    offset: usize,
    order: Option<u64>,
}

impl Listing {
    fn token(self) -> String {
        let text = match self.order {
            Some(o) => format!("emulator-offset:{}:order:{o:016x}", self.offset),
            None => format!("emulator-offset:{}", self.offset),
        };
        b64url_encode(text.as_bytes())
    }

    /// `None` without a token (a listing's first page); 400 `BadParameter` for a bad one.
    fn parse(token: Option<String>) -> Result<Option<Listing>, HttpResponse> {
        let Some(t) = token else { return Ok(None) };
        let text = b64url_decode(&t).and_then(|b| String::from_utf8(b).ok()).unwrap_or_default();
        let parsed = text.strip_prefix("emulator-offset:").and_then(|rest| match rest.split_once(":order:") {
            Some((o, k)) => Some(Listing { offset: o.parse().ok()?, order: Some(u64::from_str_radix(k, 16).ok()?) }),
            None => Some(Listing { offset: rest.parse().ok()?, order: None }),
        });
        parsed.map(Some).ok_or_else(|| bad_parameter("The $skiptoken is not valid."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_tokens_round_trip() {
        for l in [Listing { offset: 25, order: None }, Listing { offset: 3, order: Some(u64::MAX) }] {
            assert_eq!(Listing::parse(Some(l.token())).ok().flatten(), Some(l));
        }
        assert!(Listing::parse(Some("bm9wZQ".into())).is_err());
        assert!(Listing::parse(None).ok().flatten().is_none());
    }

    #[test]
    fn routes_map_to_ops() {
        let get = Method::GET;
        assert_eq!(Route::parse(&get, "/secrets/a/"), Route::Get("a".into(), None));
        assert_eq!(Route::parse(&get, "/secrets/a"), Route::Get("a".into(), None));
        assert_eq!(Route::parse(&get, "/secrets/a/abc"), Route::Get("a".into(), Some("abc".into())));
        assert_eq!(Route::parse(&get, "/secrets/a/versions"), Route::Versions("a".into()));
        assert_eq!(Route::parse(&get, "/secrets"), Route::List);
        assert_eq!(Route::parse(&Method::PUT, "/secrets/a"), Route::Set("a".into()));
        assert_eq!(Route::parse(&Method::PATCH, "/secrets/a/"), Route::Update("a".into(), None));
        assert_eq!(Route::parse(&Method::POST, "/deletedsecrets/a/recover"), Route::Recover("a".into()));
        assert_eq!(Route::parse(&Method::DELETE, "/deletedsecrets/a"), Route::Purge("a".into()));
        assert_eq!(Route::parse(&get, "/keys/a"), Route::Unknown);
        assert_eq!(Route::parse(&get, "/secrets/a/b/c"), Route::Unknown);
    }

    #[test]
    fn names_follow_key_vault_rules() {
        assert!(valid_name("databricks-pat"));
        assert!(valid_name(&"a".repeat(127)));
        assert!(!valid_name(&"a".repeat(128)));
        assert!(!valid_name("my_secret"));
        assert!(!valid_name(""));
    }
}
