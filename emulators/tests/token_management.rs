//! The workspace's Token Management API (databricks-token-api.md §4; contract §10 "Usage"):
//! workspace admins read any principal's PATs with the day each was last used.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{DBX, client, mi_token, sp_token};
use pat_rotator_emulators::{EmulatorOptions, Emulators, Fault, IdentityOptions};
use serde_json::{Value, json};

struct Ws {
    emu: Emulators,
    http: reqwest::Client,
    /// The managed identity's token (a workspace admin by default).
    admin: String,
}

async fn ws() -> Ws {
    // Entra ID tokens that outlive the workspace clock's jump of two days below.
    let identity = IdentityOptions { token_lifetime: Duration::from_secs(7 * 86_400) };
    let emu = Emulators::start(EmulatorOptions { identity, ..Default::default() });
    let http = client(&emu);
    let admin = mi_token(&emu, &http, DBX).await;
    Ws { emu, http, admin }
}

impl Ws {
    async fn get(&self, bearer: &str, path: &str) -> reqwest::Response {
        self.http.get(format!("{}{path}", self.emu.workspace(0).url())).bearer_auth(bearer).send().await.unwrap()
    }

    async fn create(&self, bearer: &str, comment: &str) -> (String, String) {
        let r = self
            .http
            .post(format!("{}/api/2.0/token/create", self.emu.workspace(0).url()))
            .bearer_auth(bearer)
            .json(&json!({"comment": comment, "lifetime_seconds": 30 * 86_400}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let b: Value = r.json().await.unwrap();
        (b["token_info"]["token_id"].as_str().unwrap().to_string(), b["token_value"].as_str().unwrap().to_string())
    }

    async fn info(&self, bearer: &str, id: &str) -> Value {
        let r = self.get(bearer, &format!("/api/2.0/token-management/tokens/{id}")).await;
        assert_eq!(r.status(), 200);
        let b: Value = r.json().await.unwrap();
        b["token_info"].clone()
    }
}

const DAY_MS: i64 = 86_400_000;

fn day_of(t: SystemTime) -> i64 {
    let ms = t.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    ms - ms.rem_euclid(DAY_MS)
}

#[tokio::test]
async fn an_admin_reads_a_token_with_the_day_it_was_last_used() {
    let w = ws().await;
    let workspace = w.emu.workspace(0);
    let (id, pat) = w.create(&w.admin, "pat-rotator/t/abc/1").await;

    let info = w.info(&w.admin, &id).await;
    assert_eq!(info["token_id"], id.as_str());
    assert_eq!(info["comment"], "pat-rotator/t/abc/1");
    assert!(info["creation_time"].is_i64() && info["expiry_time"].is_i64());
    let owner = info["created_by_id"].as_i64().expect("an int64 user id");
    assert_eq!(info["owner_id"], owner);
    assert_eq!(info["created_by_username"], w.emu.identity().system_principal().client_id.as_str());
    assert_eq!(info["workspace_id"], workspace.workspace_id().parse::<i64>().unwrap());
    assert!(info.get("last_used_day").is_none(), "never used: no last_used_day");

    // A consumer uses the PAT: its day of last use is today, by the workspace's clock.
    assert_eq!(w.get(&pat, "/api/2.0/preview/scim/v2/Me").await.status(), 200);
    let r = w.get(&w.admin, &format!("/api/2.0/token-management/tokens/{id}")).await;
    let date = httpdate::parse_http_date(r.headers()["date"].to_str().unwrap()).unwrap();
    assert_eq!(day_of(date), day_of(workspace.now()), "answers are dated today");
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["token_info"]["last_used_day"], day_of(workspace.now()));

    // A test can say it was used yesterday (a consumer of a superseded token) ...
    let yesterday = workspace.now() - Duration::from_secs(86_400);
    assert!(workspace.set_token_last_used(&id, Some(yesterday)));
    assert_eq!(w.info(&w.admin, &id).await["last_used_day"], day_of(yesterday));
    assert!(!workspace.set_token_last_used("no-such-token", None));

    // ... and the workspace's clock decides what "today" is.
    workspace.advance_clock(Duration::from_secs(2 * 86_400));
    assert_eq!(w.get(&pat, "/api/2.0/token/list").await.status(), 200);
    assert_eq!(w.info(&w.admin, &id).await["last_used_day"], day_of(workspace.now()));
    assert!(day_of(workspace.now()) >= day_of(SystemTime::now()) + 2 * DAY_MS);

    // Unknown and revoked tokens are not found.
    for missing in ["0".repeat(64), id.clone()] {
        if missing == id {
            assert!(workspace.revoke(&id));
        }
        let r = w.get(&w.admin, &format!("/api/2.0/token-management/tokens/{missing}")).await;
        assert_eq!(r.status(), 404);
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["error_code"], "RESOURCE_DOES_NOT_EXIST");
    }
    let ops: Vec<String> = workspace.faults().calls().iter().map(|c| c.op.clone()).collect();
    assert!(ops.iter().filter(|o| *o == "tm_get").count() >= 5, "{ops:?}");
}

#[tokio::test]
async fn the_list_holds_every_principals_live_tokens_and_filters_by_creator() {
    let w = ws().await;
    let workspace = w.emu.workspace(0);
    let sp = w.emu.aad().add_service_principal("consumer-app", "consumer-secret");
    workspace.add_member(&sp);
    let sp_dbx = sp_token(&w.emu, &w.http, "consumer-app", "consumer-secret", DBX).await;
    let (mine, _) = w.create(&w.admin, "service").await;
    let (theirs, _) = w.create(&sp_dbx, "consumer").await;

    let b: Value = w.get(&w.admin, "/api/2.0/token-management/tokens").await.json().await.unwrap();
    let ids: Vec<&str> = b["token_infos"].as_array().unwrap().iter().map(|t| t["token_id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![mine.as_str(), theirs.as_str()]);
    let consumer = &b["token_infos"][1];
    assert_eq!(consumer["created_by_username"], "consumer-app");
    assert_ne!(consumer["created_by_id"], b["token_infos"][0]["created_by_id"]);

    let by_name: Value = w
        .get(&w.admin, "/api/2.0/token-management/tokens?created_by_username=consumer-app")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_name["token_infos"].as_array().unwrap().len(), 1);
    assert_eq!(by_name["token_infos"][0]["token_id"], theirs.as_str());
    let path = format!("/api/2.0/token-management/tokens?created_by_id={}", consumer["created_by_id"]);
    let by_id: Value = w.get(&w.admin, &path).await.json().await.unwrap();
    assert_eq!(by_id["token_infos"][0]["token_id"], theirs.as_str());
    assert_eq!(w.get(&w.admin, "/api/2.0/token-management/tokens?created_by_id=x").await.status(), 400);

    workspace.revoke(&mine);
    workspace.revoke(&theirs);
    let empty: Value = w.get(&w.admin, "/api/2.0/token-management/tokens").await.json().await.unwrap();
    assert_eq!(empty, json!({}), "Databricks omits empty arrays");
}

#[tokio::test]
async fn only_workspace_admins_may_call_it() {
    let w = ws().await;
    let workspace = w.emu.workspace(0);
    let sp = w.emu.aad().add_service_principal("member-app", "member-secret");
    workspace.add_member(&sp);
    let member = sp_token(&w.emu, &w.http, "member-app", "member-secret", DBX).await;
    let (id, member_pat) = w.create(&member, "member's").await;

    for bearer in [&member, &member_pat] {
        for path in ["/api/2.0/token-management/tokens".to_string(), format!("/api/2.0/token-management/tokens/{id}")] {
            let r = w.get(bearer, &path).await;
            assert_eq!(r.status(), 403, "{path}");
            let b: Value = r.json().await.unwrap();
            assert_eq!(b["error_code"], "PERMISSION_DENIED");
            assert_eq!(b["message"], "Only Admins can access token management APIs.");
        }
    }
    // The PAT authenticated (and was refused afterwards): that counts as a use.
    assert_eq!(w.info(&w.admin, &id).await["last_used_day"], day_of(workspace.now()));

    // Made an admin, the same principal may.
    workspace.add_admin(&sp);
    assert_eq!(w.get(&member, "/api/2.0/token-management/tokens").await.status(), 200);
    let principals: Vec<Option<String>> =
        workspace.faults().calls().iter().filter(|c| c.op == "tm_list").map(|c| c.principal.clone()).collect();
    assert_eq!(principals.last().cloned().flatten().as_deref(), Some(sp.as_str()));
}

#[tokio::test]
async fn answers_go_out_without_date_when_asked_and_faults_apply() {
    let w = ws().await;
    let workspace = w.emu.workspace(0);
    let (id, _) = w.create(&w.admin, "c").await;
    let path = format!("/api/2.0/token-management/tokens/{id}");
    workspace.omit_date("tm_get", 1);
    let r = w.get(&w.admin, &path).await;
    assert_eq!(r.status(), 200);
    assert!(!r.headers().contains_key("date"));
    assert!(w.get(&w.admin, &path).await.headers().contains_key("date"));

    workspace.faults().inject("tm_get", Fault::status(503).header("Retry-After", "1"), 1);
    assert_eq!(w.get(&w.admin, &path).await.status(), 503);
    assert_eq!(w.get(&w.admin, &path).await.status(), 200);
}
