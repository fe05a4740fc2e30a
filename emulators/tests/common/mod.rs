//! Helpers shared by the integration tests: an HTTP client that trusts the emulators' CA, and
//! token acquisition through the real protocols (no shortcuts through the Directory).
#![allow(dead_code)]

use std::time::Duration;

use pat_rotator_emulators::Emulators;
use serde_json::Value;

pub const KV: &str = "https://vault.azure.net";
pub const DBX: &str = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d";
pub const MGMT: &str = "https://management.core.windows.net/";

/// reqwest trusting only the emulators' CA.
pub fn client(emu: &Emulators) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(emu.ca_pem().as_bytes()).expect("CA PEM parses");
    reqwest::Client::builder().tls_certs_only([ca]).timeout(Duration::from_secs(20)).build().expect("client builds")
}

/// A token from the managed-identity fake, the way App Service clients ask for it.
pub async fn mi_token(emu: &Emulators, http: &reqwest::Client, resource: &str) -> String {
    let r = http
        .get(format!(
            "{}?{}",
            emu.identity().endpoint(),
            form(&[("api-version", "2019-08-01"), ("resource", resource)])
        ))
        .header("X-IDENTITY-HEADER", emu.identity().header_value())
        .send()
        .await
        .expect("identity endpoint answers");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

/// A token from the AAD fake for a service principal (v2 client credentials).
pub async fn sp_token(
    emu: &Emulators,
    http: &reqwest::Client,
    client_id: &str,
    secret: &str,
    resource: &str,
) -> String {
    let scope = format!("{resource}/.default");
    let r = http
        .post(emu.aad().token_endpoint())
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("client_id", client_id),
            ("client_secret", secret),
            ("scope", &scope),
            ("grant_type", "client_credentials"),
        ]))
        .send()
        .await
        .expect("AAD answers");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

/// `application/x-www-form-urlencoded` body.
pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
