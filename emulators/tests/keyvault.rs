//! Key Vault fake through real HTTPS: challenge, RBAC, versions, paging, limits, soft delete,
//! throttling.

mod common;

use std::time::Duration;

use common::{KV, client, mi_token, sp_token};
use pat_rotator_emulators::{EmulatorOptions, Emulators, KeyVaultOptions, KvThrottle, Role, VersionsOrder, WindowMode};
use serde_json::{Value, json};

const API: &str = "api-version=7.5";

struct Vault {
    emu: Emulators,
    http: reqwest::Client,
    token: String,
}

async fn vault(opts: EmulatorOptions) -> Vault {
    let emu = Emulators::start(opts);
    let http = client(&emu);
    let token = mi_token(&emu, &http, KV).await;
    Vault { emu, http, token }
}

impl Vault {
    fn url(&self, path: &str) -> String {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{}{path}{sep}{API}", self.emu.vault(0).url())
    }

    async fn put(&self, name: &str, body: Value) -> reqwest::Response {
        self.http.put(self.url(&format!("/secrets/{name}"))).bearer_auth(&self.token).json(&body).send().await.unwrap()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).bearer_auth(&self.token).send().await.unwrap()
    }
}

async fn error_code(r: reqwest::Response) -> (u16, String, Value) {
    let status = r.status().as_u16();
    let header = r.headers().get("x-ms-error-code").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], header, "x-ms-error-code mirrors the body code");
    (status, header, body)
}

#[tokio::test]
async fn challenge_without_reading_body_then_success() {
    let v = vault(EmulatorOptions::default()).await;
    // Bodiless, unauthenticated: what the SDK sends first.
    let r = v.http.put(v.url("/secrets/databricks-pat")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_string();
    assert_eq!(
        challenge,
        format!(
            "Bearer authorization=\"https://login.microsoftonline.com/{}\", resource=\"https://vault.azure.net\"",
            v.emu.tenant_id()
        )
    );
    assert!(r.headers().contains_key("x-ms-request-id"));
    let (_, code, body) = error_code(r).await;
    assert_eq!(code, "Unauthorized");
    assert_eq!(body["error"]["message"], "AKV10000: Request is missing a Bearer or PoP token.");

    let r = v
        .put("databricks-pat", json!({"value": "dapi0123", "contentType": "databricks-pat", "tags": {"managed-by": "pat-rotator"}, "attributes": {"exp": 1_900_000_000}}))
        .await;
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.unwrap();
    let id = b["id"].as_str().unwrap();
    let version = id.rsplit('/').next().unwrap();
    assert_eq!(id, format!("{}/secrets/databricks-pat/{version}", v.emu.vault(0).url()));
    assert_eq!(version.len(), 32);
    assert!(version.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert_eq!(b["value"], "dapi0123");
    assert_eq!(b["contentType"], "databricks-pat");
    assert_eq!(b["tags"]["managed-by"], "pat-rotator");
    assert_eq!(b["attributes"]["exp"], 1_900_000_000);
    assert_eq!(b["attributes"]["enabled"], true);
    assert_eq!(b["attributes"]["recoverableDays"], 90);
    assert_eq!(b["attributes"]["recoveryLevel"], "Recoverable+Purgeable");
    assert!(b["attributes"]["created"].is_i64());

    // Latest through the trailing-slash form the Rust SDK uses, and case-insensitively.
    let b: Value = v.get("/secrets/DATABRICKS-PAT/").await.json().await.unwrap();
    assert_eq!(b["value"], "dapi0123");
    assert_eq!(b["id"], id);

    let calls = v.emu.vault(0).faults().calls();
    assert_eq!(calls[0].op, "set");
    assert_eq!(calls[0].status, 401);
    assert_eq!(calls[0].principal, None);
    assert_eq!(calls[1].status, 200);
    assert_eq!(calls[1].principal.as_deref(), Some(v.emu.identity().principal()));
}

#[tokio::test]
async fn api_version_is_required_and_any_value_accepted() {
    let v = vault(EmulatorOptions::default()).await;
    let url = format!("{}/secrets/x/", v.emu.vault(0).url());
    let r = v.http.get(&url).bearer_auth(&v.token).send().await.unwrap();
    let (status, code, _) = error_code(r).await;
    assert_eq!((status, code.as_str()), (400, "BadParameter"));
    let r = v.http.get(format!("{url}?api-version=2026-04-01")).bearer_auth(&v.token).send().await.unwrap();
    assert_eq!(r.status(), 404, "accepted api-version reaches the operation");
}

#[tokio::test]
async fn bad_tokens_get_the_challenge() {
    let v = vault(EmulatorOptions::default()).await;
    let dbx = mi_token(&v.emu, &v.http, common::DBX).await;
    for bad in ["not-a-token".to_string(), dbx] {
        let r = v.http.get(v.url("/secrets/x/")).bearer_auth(&bad).send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert!(r.headers().contains_key("www-authenticate"));
        let (_, code, _) = error_code(r).await;
        assert_eq!(code, "Unauthorized");
    }
    v.emu.directory().expire_all();
    let r = v.get("/secrets/x/").await;
    assert_eq!(r.status(), 401, "expired token");
}

#[tokio::test]
async fn not_found_disabled_and_versions() {
    let v = vault(EmulatorOptions::default()).await;
    let (status, code, body) = error_code(v.get("/secrets/missing/").await).await;
    assert_eq!((status, code.as_str()), (404, "SecretNotFound"));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("A secret with (name/id) missing was not found in this key vault.")
    );

    let kv = v.emu.vault(0);
    let v1 = kv.seed_secret("s", "one", None, &[("k", "1")], None);
    let r = v.put("s", json!({"value": "two"})).await;
    assert_eq!(r.status(), 200);
    let versions = kv.versions("s");
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0].version, v1);
    assert_eq!(kv.latest("s").unwrap().value, "two");

    // Older version by id; then disable it via PATCH and reading it is refused.
    let b: Value = v.get(&format!("/secrets/s/{v1}")).await.json().await.unwrap();
    assert_eq!(b["value"], "one");
    let r = v
        .http
        .patch(v.url(&format!("/secrets/s/{v1}")))
        .bearer_auth(&v.token)
        .json(&json!({"attributes": {"enabled": false}, "tags": {"state": "superseded"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["attributes"]["enabled"], false);
    assert_eq!(b["tags"], json!({"state": "superseded"}), "tags are replaced, not merged");
    assert!(b.get("value").is_none(), "update answers carry no value");
    let (status, code, body) = error_code(v.get(&format!("/secrets/s/{v1}")).await).await;
    assert_eq!((status, code.as_str()), (403, "Forbidden"));
    assert_eq!(body["error"]["innererror"]["code"], "SecretDisabled");
    assert_eq!(v.get("/secrets/s").await.status(), 200, "latest is still enabled");
}

#[tokio::test]
async fn paging_follows_absolute_next_links() {
    // Oldest first, so that the pages can be compared with the store (the default order is
    // shuffled: tests/kv_versions.rs).
    let opts = EmulatorOptions {
        keyvault: KeyVaultOptions { versions_order: VersionsOrder::OldestFirst, ..Default::default() },
        ..Default::default()
    };
    let v = vault(opts).await;
    let kv = v.emu.vault(0);
    for i in 0..5 {
        kv.seed_secret("paged", &format!("v{i}"), None, &[], None);
    }
    kv.seed_secret("other", "x", None, &[], None);
    let mut url = v.url("/secrets/paged/versions?maxresults=2");
    let mut ids = Vec::new();
    let mut pages = 0;
    loop {
        let b: Value = v.http.get(&url).bearer_auth(&v.token).send().await.unwrap().json().await.unwrap();
        pages += 1;
        for item in b["value"].as_array().unwrap() {
            assert!(item.get("value").is_none(), "list items carry no values");
            ids.push(item["id"].as_str().unwrap().to_string());
        }
        match b["nextLink"].as_str() {
            Some(next) => {
                assert!(next.starts_with(kv.url()) && next.contains("$skiptoken="), "{next}");
                url = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> =
        kv.versions("paged").iter().map(|s| format!("{}/secrets/paged/{}", kv.url(), s.version)).collect();
    assert_eq!(ids, expected);

    let b: Value = v.get("/secrets").await.json().await.unwrap();
    let names: Vec<&str> = b["value"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(names, vec![format!("{}/secrets/other", kv.url()), format!("{}/secrets/paged", kv.url())]);
    assert_eq!(v.get("/secrets?maxresults=26").await.status(), 400);
}

#[tokio::test]
async fn input_limits_are_enforced() {
    let v = vault(EmulatorOptions::default()).await;
    let too_many_tags: serde_json::Map<String, Value> = (0..16).map(|i| (format!("t{i}"), json!("v"))).collect();
    let cases = [
        ("bad_name", json!({"value": "x"})),
        ("ok", json!({"value": "x".repeat(25 * 1024 + 1)})),
        ("ok", json!({"value": "x", "tags": too_many_tags})),
        ("ok", json!({"value": "x", "tags": {"k": "v".repeat(257)}})),
        ("ok", json!({"value": "x", "contentType": "c".repeat(256)})),
        ("ok", json!({"contentType": "no value"})),
        (&*"n".repeat(128), json!({"value": "x"})),
    ];
    for (name, body) in cases {
        let (status, code, _) = error_code(v.put(name, body).await).await;
        assert_eq!((status, code.as_str()), (400, "BadParameter"), "{name}");
    }
    assert_eq!(v.put("ok", json!({"value": "x".repeat(25 * 1024)})).await.status(), 200);
    assert!(v.emu.vault(0).versions("ok").len() == 1);
}

#[tokio::test]
async fn soft_delete_blocks_reuse_until_recovered_or_purged() {
    let v = vault(EmulatorOptions::default()).await;
    assert_eq!(v.put("pat", json!({"value": "a"})).await.status(), 200);
    let r = v.http.delete(v.url("/secrets/pat")).bearer_auth(&v.token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["recoveryId"], format!("{}/deletedsecrets/pat", v.emu.vault(0).url()));
    assert!(b["scheduledPurgeDate"].as_i64().unwrap() > b["deletedDate"].as_i64().unwrap());

    let (status, code, body) = error_code(v.put("pat", json!({"value": "b"})).await).await;
    assert_eq!((status, code.as_str()), (409, "Conflict"));
    assert_eq!(body["error"]["innererror"]["code"], "ObjectIsDeletedButRecoverable");
    assert_eq!(
        body["error"]["message"],
        "Secret pat is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged."
    );
    assert_eq!(v.get("/secrets/pat/").await.status(), 404);
    assert_eq!(v.get("/deletedsecrets/pat").await.status(), 200);

    let r = v.http.post(v.url("/deletedsecrets/pat/recover")).bearer_auth(&v.token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let b: Value = v.get("/secrets/pat/").await.json().await.unwrap();
    assert_eq!(b["value"], "a");

    assert!(v.emu.vault(0).soft_delete("pat"));
    let r = v.http.delete(v.url("/deletedsecrets/pat")).bearer_auth(&v.token).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(v.put("pat", json!({"value": "c"})).await.status(), 200);
    assert_eq!(v.emu.vault(0).versions("pat").len(), 1, "purged versions are gone");
}

#[tokio::test]
async fn purge_protection_refuses_purge() {
    let opts = EmulatorOptions {
        keyvault: KeyVaultOptions { purge_protection: true, ..Default::default() },
        ..Default::default()
    };
    let v = vault(opts).await;
    let b: Value = v.put("p", json!({"value": "a"})).await.json().await.unwrap();
    assert_eq!(b["attributes"]["recoveryLevel"], "Recoverable");
    v.emu.vault(0).soft_delete("p");
    let r = v.http.delete(v.url("/deletedsecrets/p")).bearer_auth(&v.token).send().await.unwrap();
    let (status, code, _) = error_code(r).await;
    assert_eq!((status, code.as_str()), (403, "Forbidden"));
    assert!(v.emu.vault(0).is_deleted("p"));
}

#[tokio::test]
async fn rbac_roles_limit_operations() {
    let v = vault(EmulatorOptions::default()).await;
    let sp = v.emu.aad().add_service_principal("reader-app", "reader-secret");
    let kv = v.emu.vault(0);
    kv.set_role(&sp, Role::User);
    kv.seed_secret("s", "value", None, &[], None);
    let reader = sp_token(&v.emu, &v.http, "reader-app", "reader-secret", KV).await;

    let r = v.http.get(v.url("/secrets/s/")).bearer_auth(&reader).send().await.unwrap();
    assert_eq!(r.status(), 200, "Secrets User may read");
    let r = v.http.put(v.url("/secrets/s")).bearer_auth(&reader).json(&json!({"value": "new"})).send().await.unwrap();
    let (status, code, body) = error_code(r).await;
    assert_eq!((status, code.as_str()), (403, "Forbidden"));
    assert_eq!(body["error"]["innererror"]["code"], "ForbiddenByRbac");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("Action: 'Microsoft.KeyVault/vaults/secrets/setSecret/action'"), "{msg}");
    assert!(msg.contains(&format!("oid={sp}")), "{msg}");
    assert!(msg.contains("Assignment: (not found)"), "{msg}");
    assert_eq!(kv.versions("s").len(), 1, "refused write stored nothing");

    kv.set_role(&sp, Role::None);
    let r = v.http.get(v.url("/secrets/s/")).bearer_auth(&reader).send().await.unwrap();
    let (status, _, body) = error_code(r).await;
    assert_eq!(status, 403);
    assert!(body["error"]["message"].as_str().unwrap().contains("getSecret/action"));
}

/// The sliding-window mode (fixed windows, the default, and the subscription's budget are in
/// tests/kv_throttling.rs).
#[tokio::test]
async fn throttling_window_refuses_excess_and_does_not_count_refusals() {
    let throttle = KvThrottle { window: Duration::from_secs(2), write_limit: 2, other_limit: 3, retry_after: true };
    let opts = EmulatorOptions {
        keyvault: KeyVaultOptions {
            throttle: Some(throttle),
            window_mode: WindowMode::Sliding,
            subscription_factor: None,
            ..Default::default()
        },
        ..Default::default()
    };
    let v = vault(opts).await;
    assert_eq!(v.put("t", json!({"value": "1"})).await.status(), 200);
    assert_eq!(v.put("t", json!({"value": "2"})).await.status(), 200);
    // Both admitted writes happened before this instant.
    let writes_done = std::time::Instant::now();
    // Writes are exhausted; reads have their own budget.
    assert_eq!(v.get("/secrets/t/").await.status(), 200);

    tokio::time::sleep(Duration::from_millis(500).saturating_sub(writes_done.elapsed())).await;
    for _ in 0..3 {
        let r = v.put("t", json!({"value": "x"})).await;
        assert_eq!(r.status(), 429);
        let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=2).contains(&retry), "retry-after {retry}");
        let (_, code, body) = error_code(r).await;
        assert_eq!(code, "Throttled");
        assert!(body["error"]["message"].as_str().unwrap().ends_with("Reason: VaultRequestTypeLimitReached"));
    }
    assert_eq!(v.emu.vault(0).throttled_count(), 3);
    assert_eq!(v.emu.vault(0).versions("t").len(), 2);

    // Once the two admitted writes leave the window, writes pass again: the refusals (made
    // 0.5 s after them) did not count — if they had, they would still fill the window.
    tokio::time::sleep(Duration::from_millis(2050).saturating_sub(writes_done.elapsed())).await;
    assert_eq!(v.put("t", json!({"value": "3"})).await.status(), 200);

    // Other operations: 3 per window (the read at ~0 s has left the window by now).
    for _ in 0..3 {
        assert_eq!(v.get("/secrets/t/").await.status(), 200);
    }
    let r = v.get("/secrets/t/").await;
    assert_eq!(r.status(), 429);

    // Retry-After can be switched off, and throttling disabled altogether.
    v.emu.vault(0).set_throttle(Some(KvThrottle { retry_after: false, ..throttle }));
    for _ in 0..3 {
        v.get("/secrets/t/").await;
    }
    let r = v.get("/secrets/t/").await;
    assert_eq!(r.status(), 429);
    assert!(!r.headers().contains_key("retry-after"));
    v.emu.vault(0).set_throttle(None);
    for _ in 0..10 {
        assert_eq!(v.get("/secrets/t/").await.status(), 200);
    }
}

#[test]
fn default_throttle_is_the_documented_limit() {
    let o = KeyVaultOptions::default();
    let t = o.throttle.expect("on by default");
    // No Retry-After: the one full recording of a Key Vault 429 found carries none.
    assert_eq!((t.window, t.write_limit, t.other_limit, t.retry_after), (Duration::from_secs(10), 300, 4000, false));
    assert_eq!((o.subscription_factor, o.window_mode), (Some(5), WindowMode::Fixed));
    assert_eq!(o.versions_order, VersionsOrder::Shuffled { seed: None });
    let emu = Emulators::start(EmulatorOptions { vaults: 0, workspaces: 0, ..Default::default() });
    let s = emu.kv_subscription().throttle().expect("a subscription limit by default");
    assert_eq!((s.window, s.write_limit, s.other_limit), (Duration::from_secs(10), 1500, 20_000));
}

#[tokio::test]
async fn recovery_is_asynchronous_with_a_recovery_delay() {
    let v = vault(EmulatorOptions::default()).await;
    let kv = v.emu.vault(0);
    kv.seed_secret("secret-sauce", "v1", None, &[], None);
    kv.seed_secret("other", "x", None, &[], None);
    assert!(kv.soft_delete("secret-sauce"));
    kv.set_recovery_delay(Duration::from_millis(1500));

    let r = v.http.post(v.url("/deletedsecrets/secret-sauce/recover")).bearer_auth(&v.token).send().await.unwrap();
    assert_eq!(r.status(), 200, "the recover call itself succeeds at once");
    assert!(kv.is_recovering("SECRET-SAUCE"));

    // While it recovers: invisible to GET, to the versions list and to the secret list...
    let (status, code, _) = error_code(v.get("/secrets/secret-sauce/").await).await;
    assert_eq!((status, code.as_str()), (404, "SecretNotFound"));
    let b: Value = v.get("/secrets/secret-sauce/versions").await.json().await.unwrap();
    assert_eq!(b["value"], json!([]));
    let b: Value = v.get("/secrets").await.json().await.unwrap();
    let names: Vec<&str> = b["value"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert!(names.iter().all(|id| !id.ends_with("/secret-sauce")) && names.len() == 1, "{names:?}");
    // ...and a write is refused with Key Vault's 409 (body exactly as recorded from Azure,
    // Content-Length 176 for this name).
    let r = v.put("secret-sauce", json!({"value": "v2"})).await;
    let len = r.headers()["content-length"].to_str().unwrap().to_string();
    let (status, code, body) = error_code(r).await;
    assert_eq!((status, code.as_str(), len.as_str()), (409, "Conflict", "176"));
    assert_eq!(body["error"]["innererror"]["code"], "ObjectIsBeingRecovered");
    assert_eq!(
        body["error"]["message"],
        "Secret secret-sauce is currently being recovered and cannot be re-created; retry later."
    );
    assert_eq!(kv.versions("secret-sauce").len(), 1, "the refused write changed nothing");

    // Once the delay has passed, the secret is back and writable.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert!(!kv.is_recovering("secret-sauce"));
    let b: Value = v.get("/secrets/secret-sauce").await.json().await.unwrap();
    assert_eq!(b["value"], "v1");
    assert_eq!(v.put("secret-sauce", json!({"value": "v2"})).await.status(), 200);
    assert_eq!(kv.latest("secret-sauce").unwrap().value, "v2");
}

#[tokio::test]
async fn recovery_without_delay_is_immediate() {
    let v = vault(EmulatorOptions::default()).await;
    let kv = v.emu.vault(0);
    kv.seed_secret("s", "v1", None, &[], None);
    kv.soft_delete("s");
    let r = v.http.post(v.url("/deletedsecrets/s/recover")).bearer_auth(&v.token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(!kv.is_recovering("s"));
    assert_eq!(v.get("/secrets/s").await.status(), 200);
}

/// `Fault::delay(d)` on `set` with a client timeout below `d`: the client gives up, and the
/// write still lands when the delay is over — "a write that times out and lands later".
#[tokio::test]
async fn delayed_write_lands_after_the_client_timed_out() {
    let v = vault(EmulatorOptions::default()).await;
    let kv = v.emu.vault(0);
    kv.seed_secret("late", "old", None, &[], None);
    kv.faults().inject("set", pat_rotator_emulators::Fault::delay(Duration::from_millis(1200)), 1);
    let started = std::time::Instant::now();
    let r = v
        .http
        .put(v.url("/secrets/late"))
        .bearer_auth(&v.token)
        .timeout(Duration::from_millis(300))
        .json(&json!({"value": "new"}))
        .send()
        .await;
    assert!(r.is_err_and(|e| e.is_timeout()), "the client timed out");
    assert!(started.elapsed() < Duration::from_millis(1000));
    assert_eq!(kv.latest("late").unwrap().value, "old", "not yet applied when the client gave up");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(kv.latest("late").unwrap().value, "new", "the write landed after the client gave up");
    assert_eq!(kv.faults().calls().iter().filter(|c| c.op == "set").map(|c| c.status).collect::<Vec<_>>(), vec![200]);
}
