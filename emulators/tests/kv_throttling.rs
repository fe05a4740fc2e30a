//! Key Vault throttling as contract §11 describes it: fixed 10-second windows on the emulators'
//! own clock, a budget per vault and one all vaults of an `Emulators` share (the subscription
//! and region), 429s counted per vault and in total.

mod common;

use std::time::{Duration, Instant};

use common::{KV, client, mi_token};
use pat_rotator_emulators::{EmulatorOptions, Emulators, KeyVaultOptions, KvThrottle, WindowMode};
use serde_json::json;

const API: &str = "api-version=7.5";
/// The 429 body recorded from Key Vault (AzureSignTool#219: `Content-Length: 146`).
const THROTTLED: &str = r#"{"error":{"code":"Throttled","message":"Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached"}}"#;

struct Fleet {
    emu: Emulators,
    http: reqwest::Client,
    token: String,
}

async fn fleet(vaults: usize, keyvault: KeyVaultOptions) -> Fleet {
    let emu = Emulators::start(EmulatorOptions { vaults, workspaces: 0, keyvault, ..Default::default() });
    let http = client(&emu);
    let token = mi_token(&emu, &http, KV).await;
    Fleet { emu, http, token }
}

impl Fleet {
    async fn put(&self, vault: usize, name: &str, value: &str) -> reqwest::Response {
        let url = format!("{}/secrets/{name}?{API}", self.emu.vault(vault).url());
        self.http.put(url).bearer_auth(&self.token).json(&json!({"value": value})).send().await.unwrap()
    }

    async fn get(&self, vault: usize, name: &str) -> reqwest::Response {
        let url = format!("{}/secrets/{name}/?{API}", self.emu.vault(vault).url());
        self.http.get(url).bearer_auth(&self.token).send().await.unwrap()
    }

    async fn put_status(&self, vault: usize, name: &str) -> u16 {
        self.put(vault, name, "v").await.status().as_u16()
    }

    /// Sleeps until `into` after the start of the next fixed window.
    async fn next_window(&self, window: Duration, into: Duration) -> Instant {
        let origin = self.emu.kv_window_origin();
        let elapsed = origin.elapsed().as_nanos();
        let k = elapsed / window.as_nanos() + 1;
        let start = origin + Duration::from_nanos(u64::try_from(k * window.as_nanos()).unwrap());
        tokio::time::sleep_until((start + into).into()).await;
        start
    }
}

fn throttle(window_secs: u64, write_limit: usize) -> KvThrottle {
    KvThrottle { window: Duration::from_secs(window_secs), write_limit, other_limit: 1000, retry_after: true }
}

/// Fixed windows: a full budget just before a boundary and another just after it, more writes
/// within one window length than a sliding window would ever admit.
#[tokio::test]
async fn fixed_windows_restart_at_each_boundary_on_the_emulators_clock() {
    let window = Duration::from_secs(2);
    let f =
        fleet(1, KeyVaultOptions { throttle: Some(throttle(2, 3)), subscription_factor: None, ..Default::default() })
            .await;
    assert_eq!(f.get(0, "warm-up").await.status(), 404, "connection set up, other budget");

    let start = f.next_window(window, Duration::from_millis(1200)).await;
    let first = Instant::now();
    for i in 0..3 {
        assert_eq!(f.put_status(0, &format!("a{i}")).await, 200);
    }
    let r = f.put(0, "a3", "v").await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert_eq!(retry, 1, "whole seconds until the window ends (under 0.8 s), rounded up");
    assert_eq!(r.text().await.unwrap(), THROTTLED);
    assert!(start.elapsed() < window, "the burst stayed in one window");

    // Right after the boundary the budget is whole again.
    f.next_window(window, Duration::from_millis(20)).await;
    for i in 0..3 {
        assert_eq!(f.put_status(0, &format!("b{i}")).await, 200, "write {i} after the boundary");
    }
    assert!(first.elapsed() < window, "six writes admitted within {:?}: no sliding window did that", first.elapsed());
    assert_eq!(f.emu.vault(0).throttled_count(), 1);
    assert_eq!(f.emu.vault(0).versions("a3").len(), 0, "the refused write stored nothing");
}

/// The subscription's budget spans every vault; a request refused by either budget counts in
/// neither; each 429 is counted for the vault that answered it, and in total.
#[tokio::test]
async fn one_subscription_budget_spans_all_vaults_and_refusals_count_nowhere() {
    let window = Duration::from_secs(3);
    let mut t = throttle(3, 2);
    t.retry_after = false;
    let f = fleet(3, KeyVaultOptions { throttle: Some(t), subscription_factor: Some(2), ..Default::default() }).await;
    let sub = f.emu.kv_subscription().throttle().unwrap();
    assert_eq!((sub.write_limit, sub.other_limit), (4, 2000), "twice the vault's budget");
    for k in 0..3 {
        assert_eq!(f.get(k, "warm-up").await.status(), 404);
    }

    f.next_window(window, Duration::from_millis(50)).await;
    assert_eq!(f.put_status(0, "s").await, 200);
    assert_eq!(f.put_status(0, "s").await, 200);
    // Vault 0's own budget is spent; this refusal must not use the subscription's.
    let r = f.put(0, "s", "v").await;
    assert_eq!(r.status(), 429);
    assert!(!r.headers().contains_key("retry-after"));
    assert_eq!(r.headers()["x-ms-error-code"], "Throttled");
    assert_eq!(r.text().await.unwrap(), THROTTLED);
    assert_eq!(f.put_status(1, "s").await, 200);
    assert_eq!(f.put_status(1, "s").await, 200, "the subscription still had room: vault 0's 429 did not count there");
    // Vault 2 has used nothing of its own, but the subscription's four writes are gone.
    let r = f.put(2, "s", "v").await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.text().await.unwrap(), THROTTLED, "the same answer whichever budget refused");
    assert_eq!(f.get(2, "s").await.status(), 404, "reads have their own budgets");

    let counts: Vec<u64> = f.emu.vaults().iter().map(|v| v.throttled_count()).collect();
    assert_eq!(counts, vec![1, 0, 1]);
    assert_eq!(f.emu.kv_subscription().throttled_count(), 1);
    assert_eq!(f.emu.kv_throttled_total(), 2);
    assert!(f.emu.vault(2).versions("s").is_empty());

    // Lifting the subscription's limit at run time: vault 2's own budget is intact (the
    // subscription's refusal did not count there either).
    f.emu.kv_subscription().set_throttle(None);
    assert_eq!(f.put_status(2, "s").await, 200);
    assert_eq!(f.put_status(2, "s").await, 200);
    assert_eq!(f.put_status(2, "s").await, 429, "its own limit still holds");
    assert_eq!(f.emu.kv_throttled_total(), 3);
}

#[tokio::test]
async fn the_subscription_limit_can_be_left_out() {
    let f =
        fleet(2, KeyVaultOptions { throttle: Some(throttle(10, 1)), subscription_factor: None, ..Default::default() })
            .await;
    assert_eq!(f.emu.kv_subscription().throttle(), None);
    assert_eq!(f.put_status(0, "s").await, 200);
    assert_eq!(f.put_status(1, "s").await, 200);
    assert_eq!(f.put_status(1, "s").await, 429);
    assert_eq!(f.emu.kv_subscription().throttled_count(), 0);

    let f = fleet(1, KeyVaultOptions { throttle: None, ..Default::default() }).await;
    assert_eq!(f.emu.kv_subscription().throttle(), None, "no vault limit, no subscription limit");
    for _ in 0..5 {
        assert_eq!(f.put_status(0, "s").await, 200);
    }
}

/// The sliding mode stays available; with it the burst across a boundary is refused.
#[tokio::test]
async fn sliding_mode_refuses_the_burst_across_a_boundary() {
    let window = Duration::from_secs(2);
    let f = fleet(
        1,
        KeyVaultOptions {
            throttle: Some(throttle(2, 3)),
            subscription_factor: None,
            window_mode: WindowMode::Sliding,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(f.get(0, "warm-up").await.status(), 404);
    f.next_window(window, Duration::from_millis(1200)).await;
    for i in 0..3 {
        assert_eq!(f.put_status(0, &format!("a{i}")).await, 200);
    }
    f.next_window(window, Duration::from_millis(20)).await;
    assert_eq!(f.put_status(0, "b").await, 429);
}
