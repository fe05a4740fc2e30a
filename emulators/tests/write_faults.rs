//! Write faults a gateway really produces (contract §7.3): a `PUT` of a secret answered with a
//! 5xx or 408 whose write is applied now, later or never; Key Vault's 400 that quotes the
//! submitted value; and the same "answered now, performed later" fault on a workspace.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{DBX, KV, client, mi_token};
use pat_rotator_emulators::{BAD_GATEWAY_HTML, EmulatorOptions, Emulators, Fault};
use serde_json::{Value, json};

const API: &str = "api-version=7.5";

struct Vault {
    emu: Emulators,
    http: reqwest::Client,
    token: String,
}

async fn vault() -> Vault {
    let emu = Emulators::start(EmulatorOptions::default());
    let http = client(&emu);
    let token = mi_token(&emu, &http, KV).await;
    Vault { emu, http, token }
}

impl Vault {
    async fn put(&self, name: &str, value: &str) -> reqwest::Response {
        let url = format!("{}/secrets/{name}?{API}", self.emu.vault(0).url());
        self.http.put(url).bearer_auth(&self.token).json(&json!({"value": value})).send().await.unwrap()
    }

    fn set_statuses(&self) -> Vec<u16> {
        self.emu.vault(0).faults().calls().iter().filter(|c| c.op == "set").map(|c| c.status).collect()
    }
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// The case the contract's 30-minute assumption is about: the gateway answered 502 (its HTML
/// page), the write lands afterwards, with `created` = when it landed by the vault's clock.
#[tokio::test]
async fn a_502_whose_write_lands_later_carries_the_landing_time() {
    let v = vault().await;
    let kv = v.emu.vault(0);
    kv.freeze_clock(Some(at(1_800_000_000)));
    kv.seed_secret("pat", "old", None, &[], None);
    kv.faults().inject("set", Fault::bad_gateway().performed_after(Duration::from_millis(800)), 1);

    let sent = Instant::now();
    let r = v.put("pat", "new").await;
    assert!(sent.elapsed() < Duration::from_millis(800), "answered at once, not after the write");
    assert_eq!(r.status(), 502);
    assert_eq!(r.headers()["content-type"], "text/html");
    assert_eq!(r.headers()["server"], "Microsoft-Azure-Application-Gateway/v2");
    assert_eq!(r.text().await.unwrap(), BAD_GATEWAY_HTML);
    assert_eq!(kv.versions("pat").len(), 1, "not applied when the 502 went out");

    // The vault's clock has moved on by the time the write lands.
    kv.freeze_clock(Some(at(1_800_003_600)));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let versions = kv.versions("pat");
    assert_eq!(versions.len(), 2, "the write landed after the 502");
    assert_eq!(versions[1].value, "new");
    assert_eq!(versions[1].created, 1_800_003_600, "created = landing time");
    assert_eq!(versions[0].created, 1_800_000_000);
    assert_eq!(v.set_statuses(), vec![502], "one request, answered 502; the landing is not a call");
}

#[tokio::test]
async fn a_502_whose_write_is_applied_now_or_never() {
    let v = vault().await;
    let kv = v.emu.vault(0);
    // Applied now: an empty-bodied 502 after the write happened.
    kv.faults().inject("set", Fault::empty(502).performed(), 1);
    let r = v.put("now", "v1").await;
    assert_eq!(r.status(), 502);
    assert_eq!(r.text().await.unwrap(), "");
    assert_eq!(kv.latest("now").map(|s| s.value), Some("v1".to_string()), "applied before the answer");

    // Never: the gateway's page, nothing behind it.
    kv.faults().inject("set", Fault::bad_gateway(), 1);
    let r = v.put("never", "v1").await;
    assert_eq!(r.status(), 502);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(kv.versions("never").is_empty(), "never applied");
    assert_eq!(v.set_statuses(), vec![502, 502]);
}

/// A 408 is not definitive either (contract §7.3): one that was never applied, one applied later.
#[tokio::test]
async fn a_408_never_applied_or_applied_later() {
    let v = vault().await;
    let kv = v.emu.vault(0);
    kv.faults().inject("set", Fault::status(408), 1);
    kv.faults().inject("set", Fault::status(408).performed_after(Duration::from_millis(400)), 1);
    assert_eq!(v.put("a", "first").await.status(), 408);
    assert_eq!(v.put("a", "second").await.status(), 408);
    assert!(kv.versions("a").is_empty());
    tokio::time::sleep(Duration::from_millis(800)).await;
    let values: Vec<String> = kv.versions("a").into_iter().map(|s| s.value).collect();
    assert_eq!(values, vec!["second".to_string()], "only the second 408's write landed");
}

/// Key Vault's validation messages quote the property's value: a refused write's message can
/// carry the secret itself (why contract §10 drops the message of a 4xx answer to a write).
#[tokio::test]
async fn a_400_quotes_the_submitted_value() {
    let v = vault().await;
    let kv = v.emu.vault(0);
    let value = r#"dapi0123456789abcdef"q\uote"#;
    kv.refuse_writes_quoting_value(1);
    let r = v.put("pat", value).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["x-ms-error-code"], "BadParameter");
    let raw = r.text().await.unwrap();
    let escaped = serde_json::to_string(value).unwrap();
    assert!(raw.contains(escaped.trim_matches('"')), "the body holds the value JSON-escaped: {raw}");
    let body: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(body["error"]["code"], "BadParameter");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with(&format!("Property 'value' ('{value}') does not match")), "{message}");
    assert!(kv.versions("pat").is_empty(), "a refused write stores nothing");

    assert_eq!(v.put("pat", "next").await.status(), 200, "only the next write was refused");
    kv.refuse_writes_quoting_value(usize::MAX);
    for _ in 0..3 {
        assert_eq!(v.put("pat", "again").await.status(), 400);
    }
    kv.refuse_writes_quoting_value(0);
    assert_eq!(v.put("pat", "again").await.status(), 200);
    assert_eq!(kv.versions("pat").len(), 2);
}

/// The same fault on another fake: a token create answered 502 at once, the token created a
/// moment later (the ambiguous create of contract §7.5).
#[tokio::test]
async fn a_workspace_create_answered_502_lands_later() {
    let emu = Emulators::start(EmulatorOptions::default());
    let http = client(&emu);
    let token = mi_token(&emu, &http, DBX).await;
    let ws = emu.workspace(0);
    ws.faults().inject("create", Fault::empty(502).performed_after(Duration::from_millis(500)), 1);
    let r = http
        .post(format!("{}/api/2.0/token/create", ws.url()))
        .bearer_auth(&token)
        .json(&json!({"comment": "late", "lifetime_seconds": 3600}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert!(r.headers().contains_key("date"), "the workspace still dates the fault answer");
    assert!(ws.tokens(emu.identity().principal()).is_empty());
    tokio::time::sleep(Duration::from_millis(900)).await;
    let live = ws.tokens(emu.identity().principal());
    assert_eq!(live.iter().map(|t| t.comment.as_str()).collect::<Vec<_>>(), vec!["late"]);
}
