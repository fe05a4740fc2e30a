//! Workspace fake through real HTTP: Entra ID and PAT auth, membership and management-header
//! mode, the token API's quirks and limits, rate limiting, and faults.

mod common;

use std::time::{Duration, SystemTime};

use common::{DBX, KV, MGMT, client, mi_token, sp_token};
use pat_rotator_emulators::{EmulatorOptions, Emulators, Fault, WorkspaceOptions, WsRateLimit};
use serde_json::{Value, json};

struct Ws {
    emu: Emulators,
    http: reqwest::Client,
    aad: String,
}

async fn ws(opts: EmulatorOptions) -> Ws {
    let emu = Emulators::start(opts);
    let http = client(&emu);
    let aad = mi_token(&emu, &http, DBX).await;
    Ws { emu, http, aad }
}

impl Ws {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.emu.workspace(0).url())
    }

    async fn create(&self, token: &str, body: Value) -> reqwest::Response {
        self.http.post(self.url("/api/2.0/token/create")).bearer_auth(token).json(&body).send().await.unwrap()
    }

    async fn list(&self, token: &str) -> reqwest::Response {
        self.http.get(self.url("/api/2.0/token/list")).bearer_auth(token).send().await.unwrap()
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

#[tokio::test]
async fn create_list_delete_with_the_documented_shapes() {
    let w = ws(EmulatorOptions::default()).await;
    // No tokens yet: Databricks omits the empty array.
    let r = w.list(&w.aad).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "{}");

    let before = SystemTime::now();
    let r = w.create(&w.aad, json!({"comment": "pat-rotator/t/1", "lifetime_seconds": 7_776_000})).await;
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.unwrap();
    let value = b["token_value"].as_str().unwrap();
    assert!(value.starts_with("dapi") && value.len() == 36);
    let info = &b["token_info"];
    let id = info["token_id"].as_str().unwrap();
    assert_eq!(id.len(), 64);
    let created = info["creation_time"].as_i64().unwrap();
    let before_ms = before.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as i64;
    assert!((before_ms - 1000..before_ms + 5000).contains(&created), "creation_time is epoch ms");
    assert_eq!(info["expiry_time"].as_i64().unwrap() - created, 7_776_000_000);
    assert_eq!(info["comment"], "pat-rotator/t/1");

    let b: Value = w.list(&w.aad).await.json().await.unwrap();
    let infos = b["token_infos"].as_array().unwrap();
    assert_eq!(infos.len(), 1);
    assert_eq!(infos[0]["token_id"], id);
    assert!(infos[0].get("token_value").is_none());

    // Omitted lifetime: two years.
    let b: Value = w.create(&w.aad, json!({})).await.json().await.unwrap();
    let i = &b["token_info"];
    assert_eq!(i["expiry_time"].as_i64().unwrap() - i["creation_time"].as_i64().unwrap(), 2 * 365 * 86_400_000);
    assert!(i.get("comment").is_none(), "empty comment is omitted");

    let delete =
        || w.http.post(w.url("/api/2.0/token/delete")).bearer_auth(&w.aad).json(&json!({"token_id": id})).send();
    let r = delete().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "{}");
    assert!(!w.emu.workspace(0).is_live(id));
    let r = delete().await.unwrap();
    let (status, code, _) = dbx_error(r).await;
    assert_eq!((status, code.as_str()), (404, "RESOURCE_DOES_NOT_EXIST"));

    let ops: Vec<String> = w.emu.workspace(0).faults().calls().into_iter().map(|c| c.op).collect();
    assert_eq!(ops, ["list", "create", "list", "create", "delete", "delete"]);
}

#[tokio::test]
async fn pat_auth_and_revocation() {
    let w = ws(EmulatorOptions::default()).await;
    let ws0 = w.emu.workspace(0);
    let b: Value = w.create(&w.aad, json!({"comment": "c", "lifetime_seconds": 3600})).await.json().await.unwrap();
    let pat = b["token_value"].as_str().unwrap().to_string();
    let id = b["token_info"]["token_id"].as_str().unwrap().to_string();
    assert!(ws0.authenticate_pat(&pat));
    assert_eq!(ws0.token(&id).unwrap().last_used, None);

    // The PAT authenticates as its owner and counts as use.
    let b: Value = w.list(&pat).await.json().await.unwrap();
    assert_eq!(b["token_infos"][0]["token_id"], id);
    assert!(ws0.token(&id).unwrap().last_used.is_some());
    // A token created with PAT auth belongs to the PAT's principal.
    let b: Value = w.create(&pat, json!({"comment": "child", "lifetime_seconds": 60})).await.json().await.unwrap();
    let child = b["token_info"]["token_id"].as_str().unwrap().to_string();
    assert_eq!(ws0.token(&child).unwrap().principal, ws0.principal());

    assert!(ws0.revoke(&id));
    let (status, code, message) = dbx_error(w.list(&pat).await).await;
    assert_eq!((status, code.as_str(), message.as_str()), (403, "403", "Invalid access token."));
    assert!(!ws0.authenticate_pat(&pat));

    // Expired PATs and unknown strings get the same answer.
    let (_, expired) = ws0.seed_token(
        ws0.principal(),
        "old",
        SystemTime::now() - Duration::from_secs(7200),
        Some(Duration::from_secs(3600)),
    );
    assert_eq!(dbx_error(w.list(&expired).await).await.0, 403);
    assert_eq!(dbx_error(w.list("dapi00000000000000000000000000000000").await).await.0, 403);

    // No credential at all.
    let r = w.http.get(w.url("/api/2.0/token/list")).send().await.unwrap();
    let (status, code, message) = dbx_error(r).await;
    assert_eq!((status, code.as_str()), (401, "401"));
    assert_eq!(message, "Credential was not sent or was of an unsupported type for this API.");
    assert!(ws0.issued_values().contains(&pat));
}

#[tokio::test]
async fn entra_tokens_need_the_right_audience_and_30_seconds_left() {
    let w = ws(EmulatorOptions::default()).await;
    let kv_token = mi_token(&w.emu, &w.http, KV).await;
    assert_eq!(dbx_error(w.list(&kv_token).await).await.0, 401, "wrong audience");

    w.emu.identity().set_token_lifetime(Duration::from_secs(20));
    let short = mi_token(&w.emu, &w.http, DBX).await;
    assert_eq!(dbx_error(w.list(&short).await).await.0, 401, "expires within 30 s");
    w.emu.identity().set_token_lifetime(Duration::from_secs(45));
    let ok = mi_token(&w.emu, &w.http, DBX).await;
    assert_eq!(w.list(&ok).await.status(), 200);

    // A v2 scope-derived audience works the same (AAD fake strips /.default).
    w.emu.aad().add_service_principal("sp-a", "pw");
    let sp_oid = w.emu.directory().principal_by_client_id("sp-a").unwrap().object_id;
    w.emu.workspace(0).add_member(&sp_oid);
    let sp = sp_token(&w.emu, &w.http, "sp-a", "pw", DBX).await;
    assert_eq!(w.list(&sp).await.status(), 200);
}

#[tokio::test]
async fn quota_and_lifetime_limits() {
    let w = ws(EmulatorOptions::default()).await;
    let ws0 = w.emu.workspace(0);
    ws0.set_token_quota(2);
    assert_eq!(w.create(&w.aad, json!({"lifetime_seconds": 60})).await.status(), 200);
    let b: Value = w.create(&w.aad, json!({"lifetime_seconds": 60})).await.json().await.unwrap();
    let (status, code, message) = dbx_error(w.create(&w.aad, json!({"lifetime_seconds": 60})).await).await;
    assert_eq!((status, code.as_str(), message.as_str()), (400, "QUOTA_EXCEEDED", "Cannot create more than 2 tokens."));
    // Revoked tokens free the quota.
    ws0.revoke(b["token_info"]["token_id"].as_str().unwrap());
    assert_eq!(w.create(&w.aad, json!({"lifetime_seconds": 60})).await.status(), 200);
    ws0.set_token_quota(600);

    let (status, code, message) = dbx_error(w.create(&w.aad, json!({"lifetime_seconds": 0})).await).await;
    assert_eq!((status, code.as_str()), (400, "INVALID_PARAMETER_VALUE"));
    assert_eq!(message, "requirement failed: Invalid timeout: 0");

    ws0.set_max_lifetime_days(90);
    let (status, code, message) = dbx_error(w.create(&w.aad, json!({"lifetime_seconds": 91 * 86_400})).await).await;
    assert_eq!((status, code.as_str()), (400, "INVALID_PARAMETER_VALUE"));
    assert!(message.contains("90 days"), "{message}");
    let b: Value = w.create(&w.aad, json!({"lifetime_seconds": 90 * 86_400})).await.json().await.unwrap();
    let i = &b["token_info"];
    assert_eq!(i["expiry_time"].as_i64().unwrap() - i["creation_time"].as_i64().unwrap(), 90 * 86_400_000);
    // lifetime_seconds as a string (proto3 JSON int64) is accepted too.
    assert_eq!(w.create(&w.aad, json!({"lifetime_seconds": "3600"})).await.status(), 200);
}

#[tokio::test]
async fn workspace_conf_is_admin_only() {
    let opts = EmulatorOptions {
        workspace: WorkspaceOptions { max_token_lifetime_days: 30, ..Default::default() },
        ..Default::default()
    };
    let w = ws(opts).await;
    let r = w
        .http
        .get(w.url("/api/2.0/workspace-conf?keys=maxTokenLifetimeDays"))
        .bearer_auth(&w.aad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"maxTokenLifetimeDays": "30"}));

    w.emu.aad().add_service_principal("member-sp", "pw");
    let oid = w.emu.directory().principal_by_client_id("member-sp").unwrap().object_id;
    w.emu.workspace(0).add_member(&oid);
    let t = sp_token(&w.emu, &w.http, "member-sp", "pw", DBX).await;
    let r =
        w.http.get(w.url("/api/2.0/workspace-conf?keys=maxTokenLifetimeDays")).bearer_auth(&t).send().await.unwrap();
    let (status, code, _) = dbx_error(r).await;
    assert_eq!((status, code.as_str()), (403, "PERMISSION_DENIED"));

    // Admin PATCH changes the limit for new tokens.
    let r = w
        .http
        .patch(w.url("/api/2.0/workspace-conf"))
        .bearer_auth(&w.aad)
        .json(&json!({"maxTokenLifetimeDays": "0"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(w.emu.workspace(0).max_lifetime_days(), 0);
}

#[tokio::test]
async fn token_permission_and_membership() {
    let w = ws(EmulatorOptions::default()).await;
    let ws0 = w.emu.workspace(0);
    w.emu.aad().add_service_principal("plain-sp", "pw");
    let oid = w.emu.directory().principal_by_client_id("plain-sp").unwrap().object_id;
    ws0.add_member(&oid);
    ws0.set_token_permission(&oid, false);
    let t = sp_token(&w.emu, &w.http, "plain-sp", "pw", DBX).await;
    let (status, code, _) = dbx_error(w.create(&t, json!({"lifetime_seconds": 60})).await).await;
    assert_eq!((status, code.as_str()), (403, "PERMISSION_DENIED"));
    ws0.set_token_permission(&oid, true);
    let b: Value = w.create(&t, json!({"lifetime_seconds": 60})).await.json().await.unwrap();
    let pat = b["token_value"].as_str().unwrap().to_string();
    assert_eq!(w.list(&pat).await.status(), 200);

    // Removing the principal from the workspace makes its PATs useless.
    ws0.remove_member(&oid);
    assert_eq!(dbx_error(w.list(&pat).await).await.0, 403);
    assert_eq!(dbx_error(w.list(&t).await).await.0, 401, "non-member Entra ID token without headers");
}

async fn mgmt_call(w: &Ws, aad: &str, mgmt: Option<&str>, resource_id: Option<&str>) -> reqwest::Response {
    let mut r = w.http.get(w.url("/api/2.0/token/list")).bearer_auth(aad);
    if let Some(m) = mgmt {
        r = r.header("X-Databricks-Azure-SP-Management-Token", m);
    }
    if let Some(id) = resource_id {
        r = r.header("X-Databricks-Azure-Workspace-Resource-Id", id);
    }
    r.send().await.unwrap()
}

#[tokio::test]
async fn management_header_mode_admits_contributors() {
    let opts = EmulatorOptions {
        workspace: WorkspaceOptions { auto_provision: false, ..Default::default() },
        ..Default::default()
    };
    let w = ws(opts).await;
    let ws0 = w.emu.workspace(0);
    w.emu.aad().add_service_principal("deployer", "pw");
    let oid = w.emu.directory().principal_by_client_id("deployer").unwrap().object_id;
    let aad = sp_token(&w.emu, &w.http, "deployer", "pw", DBX).await;
    let mgmt = sp_token(&w.emu, &w.http, "deployer", "pw", MGMT.trim_end_matches('/')).await;
    let rid = ws0.resource_id().to_string();
    assert_eq!(
        rid,
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Databricks/workspaces/ws0"
    );

    assert_eq!(dbx_error(mgmt_call(&w, &aad, None, None).await).await.0, 401, "not a member");
    assert_eq!(dbx_error(mgmt_call(&w, &aad, Some(&mgmt), Some(&rid)).await).await.0, 401, "no Contributor yet");
    ws0.grant_contributor(&oid);
    assert_eq!(mgmt_call(&w, &aad, Some(&mgmt), Some(&rid)).await.status(), 200);
    assert_eq!(
        mgmt_call(&w, &aad, Some(&mgmt), Some(&rid.to_lowercase())).await.status(),
        200,
        "ARM ids are case-insensitive"
    );

    let other_rid = rid.replace("ws0", "ws9");
    assert_eq!(dbx_error(mgmt_call(&w, &aad, Some(&mgmt), Some(&other_rid)).await).await.0, 401, "wrong resource id");
    assert_eq!(
        dbx_error(mgmt_call(&w, &aad, Some(&aad), Some(&rid)).await).await.0,
        401,
        "management token with the wrong audience"
    );
    let mi_mgmt = mi_token(&w.emu, &w.http, MGMT).await;
    assert_eq!(
        dbx_error(mgmt_call(&w, &aad, Some(&mi_mgmt), Some(&rid)).await).await.0,
        401,
        "another principal's management token"
    );
    assert_eq!(
        dbx_error(mgmt_call(&w, &aad, None, None).await).await.0,
        401,
        "without auto-provisioning, every call needs the headers"
    );

    // Creating through management mode, and the call log records the principal.
    let r = w
        .http
        .post(w.url("/api/2.0/token/create"))
        .bearer_auth(&aad)
        .header("X-Databricks-Azure-SP-Management-Token", &mgmt)
        .header("X-Databricks-Azure-Workspace-Resource-Id", &rid)
        .json(&json!({"lifetime_seconds": 60}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(ws0.tokens(&oid).len(), 1);
    let last = ws0.faults().calls().pop().unwrap();
    assert_eq!((last.op.as_str(), last.status, last.principal.as_deref()), ("create", 200, Some(oid.as_str())));
}

#[tokio::test]
async fn management_header_mode_auto_provisions_by_default() {
    let w = ws(EmulatorOptions::default()).await;
    let ws0 = w.emu.workspace(0);
    w.emu.aad().add_service_principal("deployer", "pw");
    let oid = w.emu.directory().principal_by_client_id("deployer").unwrap().object_id;
    ws0.grant_contributor(&oid);
    let aad = sp_token(&w.emu, &w.http, "deployer", "pw", DBX).await;
    let mgmt = sp_token(&w.emu, &w.http, "deployer", "pw", "https://management.core.windows.net/").await;
    assert_eq!(dbx_error(mgmt_call(&w, &aad, None, None).await).await.0, 401);
    assert_eq!(mgmt_call(&w, &aad, Some(&mgmt), Some(ws0.resource_id())).await.status(), 200);
    assert!(ws0.is_member(&oid));
    assert_eq!(mgmt_call(&w, &aad, None, None).await.status(), 200);
}

#[tokio::test]
async fn probes_and_unknown_routes() {
    let w = ws(EmulatorOptions::default()).await;
    let r = w.http.get(w.url("/.well-known/databricks-config")).send().await.unwrap();
    assert_eq!(r.status(), 200, "answered without credentials (host metadata, see oauth_sp.rs)");
    let r = w.http.get(w.url("/api/2.0/clusters/list")).bearer_auth(&w.aad).send().await.unwrap();
    let (status, code, message) = dbx_error(r).await;
    assert_eq!((status, code.as_str()), (404, "ENDPOINT_NOT_FOUND"));
    assert_eq!(message, "No API found for 'GET /api/2.0/clusters/list'");
    let r = w.http.get(w.url("/api/2.0/preview/scim/v2/Me")).bearer_auth(&w.aad).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let me: Value = r.json().await.unwrap();
    assert_eq!(me["userName"], w.emu.identity().system_principal().client_id);
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let opts = EmulatorOptions {
        workspace: WorkspaceOptions {
            rate_limit: Some(WsRateLimit { burst: 2, per_second: 1.0 }),
            ..Default::default()
        },
        ..Default::default()
    };
    let w = ws(opts).await;
    assert_eq!(w.list(&w.aad).await.status(), 200);
    assert_eq!(w.list(&w.aad).await.status(), 200);
    let r = w.list(&w.aad).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    let (_, code, _) = dbx_error(r).await;
    assert_eq!(code, "REQUEST_LIMIT_EXCEEDED");
    assert_eq!(w.emu.workspace(0).throttled_count(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(w.list(&w.aad).await.status(), 200);
    w.emu.workspace(0).set_rate_limit(None);
    for _ in 0..5 {
        assert_eq!(w.list(&w.aad).await.status(), 200);
    }
}

#[tokio::test]
async fn lost_create_response_still_creates_the_token() {
    let w = ws(EmulatorOptions::default()).await;
    let ws0 = w.emu.workspace(0);
    ws0.faults().inject(
        "create",
        Fault::html(502, "<html><body><h1>502 Bad Gateway</h1></body></html>").performed(),
        1,
    );
    let r = w.create(&w.aad, json!({"comment": "pat-rotator/t/attempt-1", "lifetime_seconds": 60})).await;
    assert_eq!(r.status(), 502);
    assert!(r.text().await.unwrap().contains("Bad Gateway"));
    // The token exists and the listing shows it, so a client can adopt it by comment.
    let b: Value = w.list(&w.aad).await.json().await.unwrap();
    assert_eq!(b["token_infos"][0]["comment"], "pat-rotator/t/attempt-1");
    assert_eq!(ws0.tokens(ws0.principal()).len(), 1);

    // A plain status fault does nothing server-side.
    ws0.faults().inject(
        "create",
        Fault::status(503).json(json!({"error_code": "TEMPORARILY_UNAVAILABLE", "message": "x"})),
        1,
    );
    assert_eq!(w.create(&w.aad, json!({"lifetime_seconds": 60})).await.status(), 503);
    assert_eq!(ws0.tokens(ws0.principal()).len(), 1);
    assert_eq!(w.create(&w.aad, json!({"lifetime_seconds": 60})).await.status(), 200, "the rule fired once");
    let statuses: Vec<u16> = ws0.faults().calls().iter().filter(|c| c.op == "create").map(|c| c.status).collect();
    assert_eq!(statuses, [502, 503, 200]);
}

#[tokio::test]
async fn hangs_and_delays() {
    let w = ws(EmulatorOptions::default()).await;
    let ws0 = w.emu.workspace(0);
    let quick = reqwest::Client::builder().timeout(Duration::from_millis(500)).build().unwrap();
    ws0.faults().inject("create", Fault::after_effect_hang(), 1);
    let r = quick
        .post(w.url("/api/2.0/token/create"))
        .bearer_auth(&w.aad)
        .json(&json!({"lifetime_seconds": 60}))
        .send()
        .await;
    assert!(r.unwrap_err().is_timeout());
    assert_eq!(ws0.tokens(ws0.principal()).len(), 1, "performed before hanging");

    ws0.faults().inject("*", Fault::hang(), 1);
    let r = quick.get(w.url("/api/2.0/token/list")).bearer_auth(&w.aad).send().await;
    assert!(r.unwrap_err().is_timeout());

    ws0.faults().inject("list", Fault::delay(Duration::from_millis(300)), 1);
    let t = std::time::Instant::now();
    assert_eq!(w.list(&w.aad).await.status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(300));

    let statuses: Vec<(String, u16)> = ws0.faults().calls().into_iter().map(|c| (c.op, c.status)).collect();
    assert_eq!(statuses, [("create".to_string(), 0), ("list".to_string(), 0), ("list".to_string(), 200)]);
    assert_eq!(ws0.faults().count("list"), 2);
    ws0.faults().reset_calls();
    assert_eq!(ws0.faults().count("*"), 0);
}

#[tokio::test]
async fn latency_applies_to_every_request() {
    let w = ws(EmulatorOptions { latency: Duration::from_millis(150), ..Default::default() }).await;
    let t = std::time::Instant::now();
    assert_eq!(w.list(&w.aad).await.status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(150));
    w.emu.set_latency(Duration::ZERO);
    assert_eq!(w.emu.workspace(0).faults().latency(), Duration::ZERO);
}

#[test]
fn aging_and_inactivity_revocation() {
    let emu = Emulators::start(EmulatorOptions::default());
    let ws0 = emu.workspace(0);
    let now = SystemTime::now();
    let (fresh, _) = ws0.seed_token(ws0.principal(), "pat-rotator/t/x", now, Some(Duration::from_secs(90 * 86_400)));
    let (old, _) = ws0.seed_token(ws0.principal(), "pat-rotator/t/y", now - Duration::from_secs(100 * 86_400), None);
    ws0.age_token(&fresh, Duration::from_secs(2 * 3600));
    let t = ws0.token(&fresh).unwrap();
    assert!(now.duration_since(t.created).unwrap() >= Duration::from_secs(2 * 3600));
    assert!(t.is_live(SystemTime::now()));
    let revoked = ws0.revoke_unused_since(SystemTime::now() - Duration::from_secs(90 * 86_400));
    assert_eq!(revoked, vec![old.clone()]);
    assert!(!ws0.is_live(&old));
    assert!(ws0.token(&old).unwrap().revoked);
    assert_eq!(ws0.tokens(ws0.principal()).len(), 1);
    assert_eq!(ws0.all_tokens().len(), 2);
    ws0.age_tokens(Duration::from_secs(90 * 86_400));
    assert!(!ws0.is_live(&fresh), "aging moves expiry too");
}

#[tokio::test]
async fn workspace_can_start_without_members() {
    let opts = EmulatorOptions {
        workspace: WorkspaceOptions { identity_is_member: false, ..Default::default() },
        ..Default::default()
    };
    let w = ws(opts).await;
    let ws0 = w.emu.workspace(0);
    assert!(!ws0.is_member(ws0.principal()));
    assert_eq!(dbx_error(w.list(&w.aad).await).await.0, 401);
    ws0.add_member(ws0.principal());
    assert_eq!(w.list(&w.aad).await.status(), 200);
    let r = w
        .http
        .get(w.url("/api/2.0/workspace-conf?keys=maxTokenLifetimeDays"))
        .bearer_auth(&w.aad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a plain member is not an admin");
}
