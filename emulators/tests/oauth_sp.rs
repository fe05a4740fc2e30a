//! Service principals with Databricks OAuth secrets, through real HTTP: SCIM
//! `ServicePrincipals`, the workspace-level secrets API (shapes, paging, the five-secrets limit,
//! the 730-day cap, admin-only access, Entra-managed principals), the OIDC token endpoint and
//! discovery documents, OAuth access tokens acting as the principal, faults, and answers
//! without `Date`.

mod common;

use std::time::{Duration, SystemTime};

use common::{DBX, client, form, mi_token, sp_token};
use pat_rotator_emulators::{EmulatorOptions, Emulators, Fault, SpKind, WorkspaceOptions};
use serde_json::{Value, json};

const APP: &str = "0b0b0b0b-1111-4111-8111-bbbbbbbbbbbb";
const DAY: u64 = 86_400;

struct W {
    emu: Emulators,
    http: reqwest::Client,
    /// The managed identity's Entra ID token: a workspace admin.
    admin: String,
    /// SCIM id of the OAuth principal `APP` in workspace 0.
    sp: String,
}

async fn world(opts: EmulatorOptions) -> W {
    let emu = Emulators::start(opts);
    let http = client(&emu);
    let admin = mi_token(&emu, &http, DBX).await;
    let sp = emu.add_oauth_service_principal(APP, "etl runner")[0].scim_id.clone();
    W { emu, http, admin, sp }
}

impl W {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.emu.workspace(0).url())
    }

    fn secrets_path(&self, sp: &str) -> String {
        format!("/api/2.0/accounts/servicePrincipals/{sp}/credentials/secrets")
    }

    async fn create(&self, token: &str, sp: &str, body: Value) -> reqwest::Response {
        self.http.post(self.url(&self.secrets_path(sp))).bearer_auth(token).json(&body).send().await.unwrap()
    }

    async fn list(&self, token: &str, sp: &str, query: &str) -> reqwest::Response {
        self.http.get(self.url(&format!("{}{query}", self.secrets_path(sp)))).bearer_auth(token).send().await.unwrap()
    }

    async fn delete(&self, token: &str, sp: &str, id: &str) -> reqwest::Response {
        self.http.delete(self.url(&format!("{}/{id}", self.secrets_path(sp)))).bearer_auth(token).send().await.unwrap()
    }

    async fn scim(&self, token: &str, query: &[(&str, &str)]) -> reqwest::Response {
        let url = self.url(&format!("/api/2.0/preview/scim/v2/ServicePrincipals?{}", form(query)));
        self.http.get(url).bearer_auth(token).send().await.unwrap()
    }

    /// A new secret of `APP` through the API; returns `(id, value)`.
    async fn new_secret(&self) -> (String, String) {
        let r = self.create(&self.admin, &self.sp, json!({"lifetime": "7776000s"})).await;
        assert_eq!(r.status(), 200);
        let b: Value = r.json().await.unwrap();
        (b["id"].as_str().unwrap().to_string(), b["secret"].as_str().unwrap().to_string())
    }

    /// `POST /oidc/v1/token` with HTTP Basic (`basic`) or the form fields.
    async fn token(&self, client_id: &str, secret: &str, basic: bool) -> reqwest::Response {
        let req =
            self.http.post(self.url("/oidc/v1/token")).header("Content-Type", "application/x-www-form-urlencoded");
        if basic {
            req.basic_auth(client_id, Some(secret))
                .body(form(&[("grant_type", "client_credentials"), ("scope", "all-apis")]))
        } else {
            req.body(form(&[
                ("grant_type", "client_credentials"),
                ("scope", "all-apis"),
                ("client_id", client_id),
                ("client_secret", secret),
            ]))
        }
        .send()
        .await
        .unwrap()
    }

    async fn access_token(&self, secret: &str) -> String {
        let r = self.token(APP, secret, true).await;
        assert_eq!(r.status(), 200);
        let b: Value = r.json().await.unwrap();
        b["access_token"].as_str().unwrap().to_string()
    }

    async fn me(&self, token: &str) -> reqwest::Response {
        self.http.get(self.url("/api/2.0/preview/scim/v2/Me")).bearer_auth(token).send().await.unwrap()
    }

    /// A workspace member that is not an admin, with its Entra ID token.
    async fn non_admin(&self) -> String {
        let oid = self.emu.aad().add_service_principal("c1c1c1c1-2222-4222-8222-cccccccccccc", "s3cret-value");
        self.emu.workspace(0).add_member(&oid);
        sp_token(&self.emu, &self.http, "c1c1c1c1-2222-4222-8222-cccccccccccc", "s3cret-value", DBX).await
    }
}

async fn dbx_error(r: reqwest::Response) -> (u16, String, String) {
    let status = r.status().as_u16();
    let b: Value = r.json().await.unwrap();
    (
        status,
        b["error_code"].as_str().unwrap_or_default().to_string(),
        b["message"].as_str().unwrap_or_default().to_string(),
    )
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` → Unix seconds (days-from-civil).
fn rfc3339_secs(s: &str) -> i64 {
    assert!(s.len() == 24 && s.ends_with('Z') && &s[19..20] == ".", "RFC 3339 with milliseconds: {s}");
    let n = |r: std::ops::Range<usize>| s[r].parse::<i64>().unwrap();
    let (y, mo, d, h, mi, se) = (n(0..4), n(5..7), n(8..10), n(11..13), n(14..16), n(17..19));
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * ((mo + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) * 86_400 + h * 3600 + mi * 60 + se
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test]
async fn scim_finds_a_principal_by_application_id() {
    let w = world(EmulatorOptions::default()).await;
    let filter = format!("applicationId eq \"{}\"", APP.to_uppercase());
    let r = w.scim(&w.admin, &[("filter", &filter)]).await;
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["schemas"], json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"]));
    assert_eq!(
        (b["totalResults"].as_i64(), b["startIndex"].as_i64(), b["itemsPerPage"].as_i64()),
        (Some(1), Some(1), Some(1))
    );
    let sp = &b["Resources"][0];
    assert_eq!(sp["id"], w.sp.as_str());
    assert!(sp["id"].as_str().unwrap().parse::<i64>().is_ok(), "SCIM ids are int64 strings");
    assert_eq!(sp["applicationId"], APP);
    assert_eq!(sp["displayName"], "etl runner");
    assert_eq!(sp["active"], true);
    assert_eq!(sp["schemas"], json!(["urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal"]));

    // No match: no `Resources` at all (Databricks omits empty arrays).
    let b: Value = w
        .scim(&w.admin, &[("filter", "applicationId eq \"0c0c0c0c-1111-4111-8111-cccccccccccc\"")])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(b["totalResults"], 0);
    assert!(b.get("Resources").is_none(), "{b}");

    // The managed identity is in the workspace too, as an Entra-managed principal.
    let mi_app = w.emu.identity().system_principal().client_id.clone();
    let b: Value =
        w.scim(&w.admin, &[("filter", &format!("applicationId eq \"{mi_app}\""))]).await.json().await.unwrap();
    assert_eq!(b["totalResults"], 1);

    // Paging by startIndex and count.
    w.emu.add_oauth_service_principal("0d0d0d0d-1111-4111-8111-dddddddddddd", "second");
    let b: Value = w.scim(&w.admin, &[]).await.json().await.unwrap();
    assert_eq!(b["totalResults"], 3);
    let b: Value = w.scim(&w.admin, &[("startIndex", "2"), ("count", "1")]).await.json().await.unwrap();
    assert_eq!(
        (b["totalResults"].as_i64(), b["startIndex"].as_i64(), b["itemsPerPage"].as_i64()),
        (Some(3), Some(2), Some(1))
    );
    assert_eq!(b["Resources"][0]["displayName"], "second");

    // A filter the service does not support: SCIM's error shape.
    let r = w.scim(&w.admin, &[("filter", "applicationId gt \"x\"")]).await;
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["schemas"], json!(["urn:ietf:params:scim:api:messages:2.0:Error"]));
    assert_eq!((b["status"].as_str(), b["scimType"].as_str()), (Some("400"), Some("invalidFilter")));
}

#[tokio::test]
async fn scim_shows_non_admins_only_id_and_display_name() {
    let w = world(EmulatorOptions::default()).await;
    let user = w.non_admin().await;
    let r = w.scim(&user, &[("filter", &format!("applicationId eq \"{APP}\""))]).await;
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.unwrap();
    let sp = &b["Resources"][0];
    assert_eq!(sp["id"], w.sp.as_str());
    assert_eq!(sp["displayName"], "etl runner");
    assert!(sp.get("applicationId").is_none(), "{sp}");
}

#[tokio::test]
async fn create_list_delete_with_the_documented_shapes() {
    let w = world(EmulatorOptions::default()).await;
    let ws = w.emu.workspace(0);
    // No secrets: `{}`.
    let r = w.list(&w.admin, &w.sp, "").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "{}");

    let r = w.create(&w.admin, &w.sp, json!({"lifetime": "7776000s"})).await;
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.unwrap();
    let id = b["id"].as_str().unwrap();
    assert!(id.len() == 64 && id.bytes().all(|c| c.is_ascii_hexdigit()));
    let secret = b["secret"].as_str().unwrap();
    assert!(secret.starts_with("dose") && secret.len() == 36);
    assert!(!b["secret_hash"].as_str().unwrap().is_empty());
    assert_eq!(b["status"], "ACTIVE");
    let created = rfc3339_secs(b["create_time"].as_str().unwrap());
    assert!((created - now_secs()).abs() < 5, "create_time is now");
    assert_eq!(b["update_time"], b["create_time"]);
    assert_eq!(rfc3339_secs(b["expire_time"].as_str().unwrap()) - created, 90 * DAY as i64);
    assert!(b.get("scopes").is_none(), "empty scopes are omitted");
    assert_eq!(ws.sp_secrets(APP).len(), 1);
    assert!(ws.sp_secret_works(APP, secret));

    let b: Value = w.list(&w.admin, &w.sp, "").await.json().await.unwrap();
    let listed = b["secrets"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id);
    assert_eq!(listed[0]["status"], "ACTIVE");
    assert!(listed[0].get("secret").is_none(), "values are never listed");
    assert!(b.get("next_page_token").is_none());

    let r = w.delete(&w.admin, &w.sp, id).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "{}");
    assert_eq!(w.list(&w.admin, &w.sp, "").await.text().await.unwrap(), "{}");
    assert!(!ws.sp_secret_works(APP, secret));
    let (status, code, _) = dbx_error(w.delete(&w.admin, &w.sp, id).await).await;
    assert_eq!((status, code.as_str()), (404, "RESOURCE_DOES_NOT_EXIST"));
    let all = ws.all_sp_secrets();
    assert!(all.len() == 1 && all[0].deleted && all[0].deleted_at.is_some(), "kept for assertions");
}

#[tokio::test]
async fn lifetime_defaults_to_730_days_and_longer_or_malformed_is_refused() {
    let w = world(EmulatorOptions::default()).await;
    let b: Value = w.create(&w.admin, &w.sp, json!({})).await.json().await.unwrap();
    let span = rfc3339_secs(b["expire_time"].as_str().unwrap()) - rfc3339_secs(b["create_time"].as_str().unwrap());
    assert_eq!(span, 730 * DAY as i64);
    let b: Value = w.create(&w.admin, &w.sp, json!({"lifetime": "63072000s"})).await.json().await.unwrap();
    assert_eq!(b["status"], "ACTIVE", "exactly 730 days is allowed");

    for (lifetime, needle) in [
        (json!("63072001s"), "730 days"),
        (json!("7776000"), "'s' suffix"),
        (json!("90d"), "'s' suffix"),
        (json!(7_776_000), "'s' suffix"),
        (json!("0s"), "positive"),
        (json!("-60s"), "positive"),
    ] {
        let (status, code, message) = dbx_error(w.create(&w.admin, &w.sp, json!({"lifetime": lifetime})).await).await;
        assert_eq!((status, code.as_str()), (400, "INVALID_PARAMETER_VALUE"), "{lifetime}");
        assert!(message.contains(needle), "{lifetime}: {message}");
    }
    let (status, code, _) = dbx_error(
        w.http
            .post(w.url(&w.secrets_path(&w.sp)))
            .bearer_auth(&w.admin)
            .header("Content-Type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "MALFORMED_REQUEST"));
    assert_eq!(w.emu.workspace(0).sp_secrets(APP).len(), 2, "refusals created nothing");

    // The cap can be lowered per workspace.
    w.emu.workspace(0).set_sp_secret_max_lifetime_days(30);
    let (status, _, message) = dbx_error(w.create(&w.admin, &w.sp, json!({"lifetime": "2592001s"})).await).await;
    assert!(status == 400 && message.contains("30 days"), "{message}");
}

#[tokio::test]
async fn a_principal_holds_at_most_five_live_secrets() {
    let w = world(EmulatorOptions::default()).await;
    let ws = w.emu.workspace(0);
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(w.new_secret().await.0);
    }
    let (status, code, message) = dbx_error(w.create(&w.admin, &w.sp, json!({"lifetime": "86400s"})).await).await;
    assert_eq!((status, code.as_str()), (400, "QUOTA_EXCEEDED"));
    assert!(message.contains("maximum number of secrets (5)"), "{message}");
    assert_eq!(ws.sp_secrets(APP).len(), 5);

    // A deleted one makes room...
    assert!(ws.delete_sp_secret(&ids[0]));
    w.new_secret().await;
    // ...and so does an expired one (expired secrets are neither listed nor counted).
    assert!(ws.age_sp_secret(&ids[1], Duration::from_secs(91 * DAY)));
    let b: Value = w.list(&w.admin, &w.sp, "").await.json().await.unwrap();
    assert_eq!(b["secrets"].as_array().unwrap().len(), 4);
    w.new_secret().await;
    assert_eq!(dbx_error(w.create(&w.admin, &w.sp, json!({})).await).await.1, "QUOTA_EXCEEDED");

    // Another principal has its own five.
    let other = w.emu.add_oauth_service_principal("0d0d0d0d-1111-4111-8111-dddddddddddd", "other")[0].scim_id.clone();
    assert_eq!(w.create(&w.admin, &other, json!({})).await.status(), 200);
    // And the limit is a setting.
    ws.set_sp_secret_limit(6);
    assert_eq!(w.create(&w.admin, &w.sp, json!({})).await.status(), 200);
}

#[tokio::test]
async fn listing_pages_with_next_page_token() {
    let w = world(EmulatorOptions::default()).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(w.new_secret().await.0);
    }
    let mut seen = Vec::new();
    let mut query = "?page_size=2".to_string();
    let mut pages = 0;
    loop {
        let b: Value = w.list(&w.admin, &w.sp, &query).await.json().await.unwrap();
        pages += 1;
        for s in b["secrets"].as_array().unwrap() {
            seen.push(s["id"].as_str().unwrap().to_string());
        }
        match b.get("next_page_token").and_then(Value::as_str) {
            Some(t) => query = format!("?page_size=2&page_token={t}"),
            None => break,
        }
    }
    assert_eq!((pages, seen), (3, ids), "oldest first, every secret once");
    assert_eq!(dbx_error(w.list(&w.admin, &w.sp, "?page_token=bogus").await).await.0, 400);
    assert_eq!(dbx_error(w.list(&w.admin, &w.sp, "?page_size=-1").await).await.0, 400);
}

#[tokio::test]
async fn only_workspace_admins_manage_secrets() {
    let w = world(EmulatorOptions::default()).await;
    let (id, _) = w.new_secret().await;
    let user = w.non_admin().await;
    for r in
        [w.list(&user, &w.sp, "").await, w.create(&user, &w.sp, json!({})).await, w.delete(&user, &w.sp, &id).await]
    {
        let (status, code, message) = dbx_error(r).await;
        assert_eq!((status, code.as_str()), (403, "PERMISSION_DENIED"));
        assert!(message.contains("admins"), "{message}");
    }
    assert_eq!(w.emu.workspace(0).sp_secrets(APP).len(), 1, "nothing changed");
    // No credentials at all: 401 before anything else.
    let r = w.http.get(w.url(&w.secrets_path(&w.sp))).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // A PAT without the `authentication` scope is refused the API (its scope), with one it may call it.
    let ws = w.emu.workspace(0);
    let (_, sql_pat) = {
        let r = w
            .http
            .post(w.url("/api/2.0/token/create"))
            .bearer_auth(&w.admin)
            .json(&json!({"scopes": ["sql"]}))
            .send()
            .await
            .unwrap();
        let b: Value = r.json().await.unwrap();
        (b["token_info"]["token_id"].as_str().unwrap().to_string(), b["token_value"].as_str().unwrap().to_string())
    };
    let (status, code, message) = dbx_error(w.list(&sql_pat, &w.sp, "").await).await;
    assert_eq!((status, code.as_str()), (403, "PERMISSION_DENIED"));
    assert!(message.contains("scopes"), "{message}");
    let r = w
        .http
        .post(w.url("/api/2.0/token/create"))
        .bearer_auth(&w.admin)
        .json(&json!({"scopes": ["authentication"]}))
        .send()
        .await
        .unwrap();
    let auth_pat = r.json::<Value>().await.unwrap()["token_value"].as_str().unwrap().to_string();
    assert_eq!(w.list(&auth_pat, &w.sp, "").await.status(), 200);
    assert!(ws.issued_values().contains(&auth_pat));
}

#[tokio::test]
async fn principals_not_in_the_workspace_and_entra_managed_ones_are_refused() {
    let w = world(EmulatorOptions::default()).await;
    let ws = w.emu.workspace(0);
    let (status, code, _) = dbx_error(w.list(&w.admin, "1234567890123456", "").await).await;
    assert_eq!((status, code.as_str()), (404, "RESOURCE_DOES_NOT_EXIST"));
    let (status, code, _) = dbx_error(w.create(&w.admin, "not-a-number", json!({})).await).await;
    assert_eq!((status, code.as_str()), (400, "INVALID_PARAMETER_VALUE"));

    // Removed from the workspace: 404 for the API, and its secret stops signing in.
    let (_, secret) = w.new_secret().await;
    assert!(ws.remove_service_principal(APP));
    assert_eq!(dbx_error(w.list(&w.admin, &w.sp, "").await).await.0, 404);
    assert_eq!(w.token(APP, &secret, true).await.status(), 401);

    // An Entra-managed principal (an app registration added to the workspace) cannot get a
    // Databricks OAuth secret; it has none to list.
    let entra_app = "e1e1e1e1-3333-4333-8333-eeeeeeeeeeee";
    let oid = w.emu.aad().add_service_principal(entra_app, "entra-secret");
    let entra = ws.add_service_principal(entra_app, "entra app", SpKind::EntraManaged);
    assert_eq!(entra.principal, oid, "the same workspace principal as its Entra ID tokens");
    let (status, code, message) = dbx_error(w.create(&w.admin, &entra.scim_id, json!({})).await).await;
    assert_eq!((status, code.as_str()), (400, "INVALID_PARAMETER_VALUE"));
    assert!(message.contains("managed by Microsoft Entra ID"), "{message}");
    assert_eq!(w.list(&w.admin, &entra.scim_id, "").await.text().await.unwrap(), "{}");
    // The managed identity itself is such a principal.
    let mi_scim = {
        let me: Value = w.me(&w.admin).await.json().await.unwrap();
        me["id"].as_str().unwrap().to_string()
    };
    assert_eq!(dbx_error(w.create(&w.admin, &mi_scim, json!({})).await).await.0, 400);

    // Where a workspace lets them, they can.
    ws.set_entra_sp_oauth_secrets(true);
    let r = w.create(&w.admin, &entra.scim_id, json!({})).await;
    assert_eq!(r.status(), 200);
    let secret = r.json::<Value>().await.unwrap()["secret"].as_str().unwrap().to_string();
    let b: Value = w.token(entra_app, &secret, false).await.json().await.unwrap();
    let me: Value = w.me(b["access_token"].as_str().unwrap()).await.json().await.unwrap();
    assert_eq!(me["applicationId"], entra_app);
}

#[tokio::test]
async fn token_endpoint_issues_tokens_that_act_as_the_principal() {
    let w = world(EmulatorOptions::default()).await;
    let ws = w.emu.workspace(0);
    let (id, secret) = w.new_secret().await;
    for basic in [true, false] {
        let r = w.token(APP, &secret, basic).await;
        assert_eq!(r.status(), 200, "basic={basic}");
        let b: Value = r.json().await.unwrap();
        assert_eq!(
            (b["token_type"].as_str(), b["expires_in"].as_i64(), b["scope"].as_str()),
            (Some("Bearer"), Some(3600), Some("all-apis"))
        );
        let token = b["access_token"].as_str().unwrap();
        assert_eq!(token.split('.').count(), 3, "a JWT");
        let r = w.me(token).await;
        assert_eq!(r.status(), 200);
        let me: Value = r.json().await.unwrap();
        assert_eq!(
            (me["id"].as_str(), me["applicationId"].as_str(), me["userName"].as_str()),
            (Some(w.sp.as_str()), Some(APP), Some(APP))
        );
        assert_eq!(me["displayName"], "etl runner");
    }
    let calls = ws.faults().calls();
    let last_token = calls.iter().rev().find(|c| c.op == "oidc_token").unwrap();
    assert_eq!(last_token.principal.as_deref(), Some(APP), "the call log names the principal");

    // Refusals: RFC 6749 error bodies.
    let refused = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let b: Value = r.json().await.unwrap();
        (status, b["error"].as_str().unwrap().to_string(), b["error_description"].as_str().unwrap().to_string())
    };
    let wrong = format!("dose{}", "0".repeat(32));
    assert_eq!(
        refused(w.token(APP, &wrong, true).await).await,
        (401, "invalid_client".into(), "Client authentication failed".into())
    );
    assert_eq!(refused(w.token("0c0c0c0c-1111-4111-8111-cccccccccccc", &secret, true).await).await.0, 401);
    let no_auth = w
        .http
        .post(w.url("/oidc/v1/token"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form(&[("grant_type", "client_credentials")]))
        .send()
        .await
        .unwrap();
    assert_eq!(refused(no_auth).await.1, "invalid_client");
    let bad_grant = w
        .http
        .post(w.url("/oidc/v1/token"))
        .basic_auth(APP, Some(&secret))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form(&[("grant_type", "password")]))
        .send()
        .await
        .unwrap();
    assert_eq!(refused(bad_grant).await.0, 400);
    let no_grant = w.http.post(w.url("/oidc/v1/token")).basic_auth(APP, Some(&secret)).send().await.unwrap();
    assert_eq!(refused(no_grant).await.1, "invalid_request");

    // An expired secret no longer signs in.
    ws.age_sp_secret(&id, Duration::from_secs(91 * DAY));
    assert_eq!(refused(w.token(APP, &secret, true).await).await.1, "invalid_client");
    assert!(!ws.sp_secret_works(APP, &secret));
}

#[tokio::test]
async fn an_access_token_outlives_its_deleted_secret_until_it_expires() {
    let w = world(EmulatorOptions::default()).await;
    let ws = w.emu.workspace(0);
    let (id, secret) = w.new_secret().await;
    let token = w.access_token(&secret).await;
    let r = w.delete(&w.admin, &w.sp, &id).await;
    assert_eq!(r.status(), 200);
    assert_eq!(w.token(APP, &secret, true).await.status(), 401, "the deleted secret no longer signs in");
    assert_eq!(w.me(&token).await.status(), 200, "the token minted before keeps working");
    // ... for one hour of the workspace's clock.
    ws.advance_clock(Duration::from_secs(3601));
    let (status, _, message) = dbx_error(w.me(&token).await).await;
    assert_eq!((status, message.as_str()), (403, "Invalid access token."));

    // `expire_oauth_tokens` forces tokens out without moving the clock.
    let (_, secret) = w.new_secret().await;
    let token = w.access_token(&secret).await;
    assert_eq!(w.me(&token).await.status(), 200);
    ws.expire_oauth_tokens();
    assert_eq!(w.me(&token).await.status(), 403);
    // And a principal removed from the workspace loses its tokens at once.
    let token = w.access_token(&secret).await;
    ws.remove_service_principal(APP);
    assert_eq!(w.me(&token).await.status(), 403);
}

#[tokio::test]
async fn oauth_principal_may_use_the_token_api_as_itself() {
    let w = world(EmulatorOptions::default()).await;
    let (_, secret) = w.new_secret().await;
    let token = w.access_token(&secret).await;
    let r = w
        .http
        .post(w.url("/api/2.0/token/create"))
        .bearer_auth(&token)
        .json(&json!({"comment": "sp pat"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(w.emu.workspace(0).tokens(APP).len(), 1, "the PAT belongs to the service principal");
    // It is not an admin: the secrets API refuses it.
    assert_eq!(dbx_error(w.list(&token, &w.sp, "").await).await.0, 403);
}

#[tokio::test]
async fn discovery_documents_point_at_the_token_endpoint() {
    let w = world(EmulatorOptions::default()).await;
    let ws = w.emu.workspace(0);
    let r = w.http.get(w.url("/.well-known/databricks-config")).send().await.unwrap();
    assert_eq!(r.status(), 200, "answered without credentials");
    let meta: Value = r.json().await.unwrap();
    assert_eq!(meta["oidc_endpoint"], format!("{}/oidc", ws.url()));
    assert_eq!(meta["workspace_id"], ws.workspace_id());
    assert!(meta["account_id"].as_str().unwrap().len() == 36);
    let r = w
        .http
        .get(format!("{}/.well-known/oauth-authorization-server", meta["oidc_endpoint"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let oidc: Value = r.json().await.unwrap();
    assert_eq!(oidc["token_endpoint"], format!("{}/oidc/v1/token", ws.url()));
    assert_eq!(oidc["authorization_endpoint"], format!("{}/oidc/v1/authorize", ws.url()));
    assert_eq!(oidc["issuer"], format!("{}/oidc", ws.url()));
    assert!(oidc["grant_types_supported"].as_array().unwrap().contains(&json!("client_credentials")));
    assert_eq!(ws.faults().count("discovery"), 2);
    // Wrong methods.
    assert_eq!(w.http.post(w.url("/.well-known/databricks-config")).send().await.unwrap().status(), 405);
    let r = w.http.get(w.url("/oidc/v1/token")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
}

#[tokio::test]
async fn every_answer_carries_the_workspace_clock() {
    let w = world(EmulatorOptions::default()).await;
    let ws = w.emu.workspace(0);
    // Six hours: the managed identity's Entra ID token (24 h) is still valid by that clock.
    let ahead = Duration::from_secs(6 * 3600);
    ws.advance_clock(ahead);
    let (_, secret) = w.new_secret().await;
    for r in [
        w.http.get(w.url("/.well-known/databricks-config")).send().await.unwrap(),
        w.token(APP, &secret, true).await,
        w.token(APP, "wrong", true).await,
        w.list(&w.admin, &w.sp, "").await,
        w.scim(&w.admin, &[]).await,
    ] {
        let date = httpdate::parse_http_date(r.headers()["date"].to_str().unwrap()).unwrap();
        let by = date.duration_since(SystemTime::now()).unwrap_or_default();
        assert!(by > ahead - Duration::from_secs(5), "Date is the workspace's clock");
    }
    // Secret times follow the workspace's clock too.
    let s = &ws.sp_secrets(APP)[0];
    assert!(s.created.duration_since(SystemTime::now()).unwrap() > ahead - Duration::from_secs(5));
}

#[tokio::test]
async fn faults_and_the_call_log_cover_the_new_ops() {
    let w = world(EmulatorOptions::default()).await;
    let ws = w.emu.workspace(0);
    // A create whose answer is lost: the secret exists, the caller never saw it.
    ws.faults().inject("sp_secret_create", Fault::html(502, "<h1>Bad Gateway</h1>").performed(), 1);
    let r = w.create(&w.admin, &w.sp, json!({"lifetime": "86400s"})).await;
    assert_eq!(r.status(), 502);
    assert!(!r.text().await.unwrap().contains("dose"));
    assert_eq!(ws.sp_secrets(APP).len(), 1, "performed, answer lost");
    // A refused create: nothing happens.
    ws.faults().inject("sp_secret_create", Fault::status(503), 1);
    assert_eq!(w.create(&w.admin, &w.sp, json!({})).await.status(), 503);
    assert_eq!(ws.sp_secrets(APP).len(), 1);

    ws.faults().inject("oidc_token", Fault::status(503).header("Retry-After", "1"), 1);
    let secret = ws.seed_sp_secret(APP, ws.now(), Duration::from_secs(DAY)).1;
    assert_eq!(w.token(APP, &secret, true).await.status(), 503);
    assert_eq!(w.token(APP, &secret, true).await.status(), 200);
    ws.faults().inject("scim_sp", Fault::status(500), 1);
    assert_eq!(w.scim(&w.admin, &[]).await.status(), 500);
    ws.faults().inject("discovery", Fault::status(404), 1);
    assert_eq!(w.http.get(w.url("/.well-known/databricks-config")).send().await.unwrap().status(), 404);
    let id = ws.sp_secrets(APP)[0].id.clone();
    ws.faults().inject("sp_secret_delete", Fault::status(500).performed(), 1);
    assert_eq!(w.delete(&w.admin, &w.sp, &id).await.status(), 500);
    assert!(ws.sp_secret(&id).unwrap().deleted);
    ws.faults().inject("sp_secret_list", Fault::hang(), 1);
    let r = w
        .http
        .get(w.url(&w.secrets_path(&w.sp)))
        .bearer_auth(&w.admin)
        .timeout(Duration::from_millis(200))
        .send()
        .await;
    assert!(r.is_err_and(|e| e.is_timeout()));

    let ops: Vec<String> = ws.faults().calls().iter().map(|c| c.op.clone()).collect();
    for op in ["sp_secret_create", "oidc_token", "scim_sp", "discovery", "sp_secret_delete", "sp_secret_list"] {
        assert!(ops.iter().any(|o| o == op), "{op} in {ops:?}");
    }
}

#[tokio::test]
async fn chosen_answers_go_out_without_date() {
    let w = world(EmulatorOptions::default()).await;
    let ws = w.emu.workspace(0);
    let list = |w: &W| {
        let req = w.http.get(w.url("/api/2.0/token/list")).bearer_auth(&w.admin);
        async move { req.send().await.unwrap() }
    };
    ws.omit_date("list", 2);
    for _ in 0..2 {
        // Same pooled connection each time: the relay keeps framing keep-alive answers.
        let r = list(&w).await;
        assert_eq!(r.status(), 200);
        assert!(r.headers().get("date").is_none(), "{:?}", r.headers());
        assert!(r.headers().get("x-emulator-omit-date").is_none(), "the marker never reaches the client");
        assert_eq!(r.text().await.unwrap(), "{}", "the body is intact");
    }
    let r = list(&w).await;
    assert!(r.headers().get("date").is_some(), "only the chosen answers");

    // Fault answers too, and any op with "*".
    ws.faults().inject("list", Fault::status(503).body("busy"), 1);
    ws.omit_date("*", 1);
    let r = list(&w).await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("date").is_none());
    assert_eq!(r.text().await.unwrap(), "busy");
    let r = w.me(&w.admin).await;
    assert!(r.headers().get("date").is_some());

    // A larger, dated answer between undated ones on one connection, then a HEAD request.
    for _ in 0..3 {
        w.http
            .post(w.url("/api/2.0/token/create"))
            .bearer_auth(&w.admin)
            .json(&json!({"comment": "x".repeat(3000)}))
            .send()
            .await
            .unwrap();
    }
    ws.omit_date("list", 1);
    let r = list(&w).await;
    assert!(r.headers().get("date").is_none());
    assert_eq!(r.json::<Value>().await.unwrap()["token_infos"].as_array().unwrap().len(), 3);
    let r = w.http.head(w.url("/api/2.0/token/list")).bearer_auth(&w.admin).send().await.unwrap();
    assert!(r.headers().get("date").is_some());
    let r = list(&w).await;
    assert!(r.headers().get("date").is_some());
    assert_eq!(r.json::<Value>().await.unwrap()["token_infos"].as_array().unwrap().len(), 3);
}

#[test]
#[should_panic(expected = "date_relay")]
fn omitting_date_needs_the_relay() {
    let emu = Emulators::start(EmulatorOptions {
        workspace: WorkspaceOptions { date_relay: false, ..Default::default() },
        ..Default::default()
    });
    emu.workspace(0).omit_date("list", 1);
}

#[test]
fn issued_values_cover_oauth_secrets_and_access_tokens() {
    let emu = Emulators::start(EmulatorOptions::default());
    let ws = emu.workspace(0);
    emu.add_oauth_service_principal(APP, "x");
    let (_, secret) = ws.seed_sp_secret(APP, ws.now(), Duration::from_secs(DAY));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let token: String = rt.block_on(async {
        let r = reqwest::Client::new()
            .post(format!("{}/oidc/v1/token", ws.url()))
            .basic_auth(APP, Some(&secret))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials&scope=all-apis")
            .send()
            .await
            .unwrap();
        r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_string()
    });
    assert_eq!(ws.issued_sp_secrets(), vec![secret.clone()]);
    assert_eq!(ws.issued_oauth_tokens(), vec![token.clone()]);
    let all = ws.issued_values();
    assert!(all.contains(&secret) && all.contains(&token));

    // The state document lists principals and secrets, never values.
    let state = rt.block_on(async { reqwest::get(emu.identity().state_url()).await.unwrap().text().await.unwrap() });
    assert!(!state.contains(&secret) && !state.contains(&token));
    let v: Value = serde_json::from_str(&state).unwrap();
    let sp = &v["workspaces"][0]["service_principals"][0];
    assert_eq!(sp["application_id"], APP);
    assert_eq!(sp["kind"], "databricks_managed");
    assert_eq!(sp["secrets"][0]["status"], "ACTIVE");
    assert!(sp["secrets"][0]["expire_time"].as_str().unwrap().ends_with('Z'));
    assert!(emu.env_file_vars().contains(&("DATABRICKS_SP_APP_ID_0".to_string(), APP.to_string())));
}
