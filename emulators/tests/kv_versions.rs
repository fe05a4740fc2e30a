//! Key Vault versions as the real service gives them: `created` in whole seconds of the
//! vault's clock (which a test can freeze, so that versions share a second), listings in no
//! particular order (shuffled per listing, reproducible with a seed, consistent across pages),
//! and writers told apart by the `oid` of their tokens.

mod common;

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{KV, client, form, mi_token, sp_token};
use pat_rotator_emulators::{EmulatorOptions, Emulators, KeyVaultOptions, VersionsOrder};
use serde_json::{Value, json};

const API: &str = "api-version=7.5";

struct Vault {
    emu: Emulators,
    http: reqwest::Client,
    token: String,
}

async fn vault(order: VersionsOrder) -> Vault {
    let emu = Emulators::start(EmulatorOptions {
        keyvault: KeyVaultOptions { versions_order: order, ..Default::default() },
        ..Default::default()
    });
    let http = client(&emu);
    let token = mi_token(&emu, &http, KV).await;
    Vault { emu, http, token }
}

impl Vault {
    fn url(&self, path: &str) -> String {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{}{path}{sep}{API}", self.emu.vault(0).url())
    }

    async fn put_as(&self, token: &str, name: &str, value: &str) -> Value {
        let r = self
            .http
            .put(self.url(&format!("/secrets/{name}")))
            .bearer_auth(token)
            .json(&json!({"value": value}))
            .send();
        let r = r.await.unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    /// Every item of one listing of the versions, following `nextLink` (pages of `page`).
    async fn list(&self, name: &str, page: usize) -> Vec<Value> {
        let mut url = self.url(&format!("/secrets/{name}/versions?maxresults={page}"));
        let mut items = Vec::new();
        loop {
            let b: Value = self.http.get(&url).bearer_auth(&self.token).send().await.unwrap().json().await.unwrap();
            items.extend(b["value"].as_array().unwrap().iter().cloned());
            match b["nextLink"].as_str() {
                Some(next) => url = next.to_string(),
                None => return items,
            }
        }
    }

    /// One listing as positions in writing order (0 = oldest).
    async fn positions(&self, name: &str, page: usize) -> Vec<usize> {
        let written: Vec<String> = self.emu.vault(0).versions(name).into_iter().map(|v| v.version).collect();
        let listed = self.list(name, page).await;
        listed
            .iter()
            .map(|i| {
                let id = i["id"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
                written.iter().position(|w| *w == id).expect("a listed id was written")
            })
            .collect()
    }
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test]
async fn created_is_whole_seconds_of_the_vaults_clock() {
    let v = vault(VersionsOrder::default()).await;
    let before = unix_now();
    let b = v.put_as(&v.token, "s", "one").await;
    let created = &b["attributes"]["created"];
    assert!(created.is_i64(), "an integer number of seconds: {created}");
    assert!((before..=unix_now()).contains(&created.as_i64().unwrap()));
    assert_eq!(b["attributes"]["updated"], *created);

    v.emu.vault(0).freeze_clock(Some(at(1_900_000_000)));
    let b = v.put_as(&v.token, "s", "two").await;
    assert_eq!(b["attributes"]["created"], 1_900_000_000);
    let items = v.list("s", 25).await;
    let mut created: Vec<i64> = items.iter().map(|i| i["attributes"]["created"].as_i64().unwrap()).collect();
    created.sort();
    assert_eq!(created[1], 1_900_000_000);
    v.emu.vault(0).freeze_clock(None);
    let b = v.put_as(&v.token, "s", "three").await;
    assert!((before..=unix_now()).contains(&b["attributes"]["created"].as_i64().unwrap()), "the clock runs again");
}

/// The case contract §7.4 has to cope with: the latest version disabled, and another version
/// written in the same second.
#[tokio::test]
async fn versions_can_share_a_created_second() {
    let v = vault(VersionsOrder::default()).await;
    let kv = v.emu.vault(0);
    kv.freeze_clock(Some(at(1_900_000_123)));
    let first = v.put_as(&v.token, "pat", "a").await;
    let second = v.put_as(&v.token, "pat", "b").await;
    assert_eq!(first["attributes"]["created"], second["attributes"]["created"]);
    let id = second["id"].as_str().unwrap();
    let r = v.http.patch(format!("{id}?{API}")).bearer_auth(&v.token).json(&json!({"attributes": {"enabled": false}}));
    assert_eq!(r.send().await.unwrap().status(), 200);

    let r = v.http.get(v.url("/secrets/pat/")).bearer_auth(&v.token).send().await.unwrap();
    assert_eq!(r.status(), 403, "the latest is disabled");
    let items = v.list("pat", 25).await;
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|i| i["attributes"]["created"] == 1_900_000_123), "{items:?}");
    let enabled: HashSet<bool> = items.iter().map(|i| i["attributes"]["enabled"].as_bool().unwrap()).collect();
    assert_eq!(enabled, HashSet::from([true, false]));
}

#[tokio::test]
async fn versions_come_in_no_particular_order_but_each_listing_is_whole() {
    let v = vault(VersionsOrder::default()).await;
    for i in 0..8 {
        v.emu.vault(0).seed_secret("pat", &format!("v{i}"), None, &[], None);
    }
    let mut orders = HashSet::new();
    for _ in 0..6 {
        // Pages of three: the order is kept across the pages of one listing.
        let p = v.positions("pat", 3).await;
        let mut sorted = p.clone();
        sorted.sort();
        assert_eq!(sorted, (0..8).collect::<Vec<_>>(), "every version exactly once: {p:?}");
        orders.insert(p);
    }
    assert!(orders.len() > 1, "six listings of eight versions, all in one order: {orders:?}");
    assert!(orders.iter().any(|o| *o != (0..8).collect::<Vec<_>>()), "not oldest first");

    // Oldest first on request.
    v.emu.vault(0).set_versions_order(VersionsOrder::OldestFirst);
    assert_eq!(v.positions("pat", 3).await, (0..8).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_seeded_vault_lists_in_the_same_orders_every_run() {
    async fn run(seed: u64) -> Vec<Vec<usize>> {
        let v = vault(VersionsOrder::Shuffled { seed: Some(seed) }).await;
        for i in 0..8 {
            v.emu.vault(0).seed_secret("pat", &format!("v{i}"), None, &[], None);
        }
        let mut out = Vec::new();
        for page in [25, 2, 5] {
            out.push(v.positions("pat", page).await);
        }
        out
    }
    let a = run(7).await;
    assert_eq!(a, run(7).await, "same seed, same orders (version ids differ between runs)");
    assert_ne!(a, run(8).await);
    assert!(a.windows(2).any(|w| w[0] != w[1]), "each listing draws a new order: {a:?}");
}

/// Contract §10 ("who wrote a version"): the vault sees each writer's `oid` — the service's
/// managed identity, an operator signing in as a service principal, a user-assigned identity —
/// all allowed to write the same secret.
#[tokio::test]
async fn writers_are_told_apart_by_the_oid_of_their_tokens() {
    let v = vault(VersionsOrder::default()).await;
    let service = v.emu.identity().principal().to_string();
    let operator = v.emu.aad().add_service_principal("operator-app", "operator-secret");
    let uami = v
        .emu
        .identity()
        .add_user_assigned("5a1b2c3d-0000-4000-8000-00000000c11d", "9e8d7c6b-0000-4000-8000-0000000000a1");
    let operator_token = sp_token(&v.emu, &v.http, "operator-app", "operator-secret", KV).await;
    let uami_token = {
        let url = format!(
            "{}?{}",
            v.emu.identity().endpoint(),
            form(&[("api-version", "2019-08-01"), ("resource", KV), ("client_id", &uami.client_id)])
        );
        let r = v.http.get(url).header("X-IDENTITY-HEADER", v.emu.identity().header_value()).send().await.unwrap();
        let b: Value = r.json().await.unwrap();
        b["access_token"].as_str().unwrap().to_string()
    };

    let writers = [(&v.token, service.as_str()), (&operator_token, operator.as_str()), (&uami_token, &uami.object_id)];
    for (token, oid) in writers {
        assert_eq!(oid_claim(token), oid, "the token's oid claim names its principal");
        v.put_as(token, "pat", &format!("written by {oid}")).await;
    }
    assert_ne!(service, operator);
    let by: Vec<Option<String>> =
        v.emu.vault(0).faults().calls().iter().filter(|c| c.op == "set").map(|c| c.principal.clone()).collect();
    assert_eq!(by, writers.iter().map(|(_, oid)| Some(oid.to_string())).collect::<Vec<_>>());
    assert_eq!(v.emu.vault(0).versions("pat").len(), 3);
}

/// The `oid` claim of a JWT-shaped token, read the way a client reads it (no signature check).
fn oid_claim(token: &str) -> String {
    let payload = token.split('.').nth(1).expect("three segments");
    let bytes = b64url(payload);
    let claims: Value = serde_json::from_slice(&bytes).expect("JSON claims");
    claims["oid"].as_str().expect("an oid claim").to_string()
}

fn b64url(s: &str) -> Vec<u8> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0);
    for c in s.bytes() {
        acc = (acc << 6) | A.iter().position(|&x| x == c).expect("base64url") as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}
