//! Managed-identity and AAD fakes through real HTTP, plus the `Emulators` lifecycle.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{DBX, KV, client, form, mi_token};
use pat_rotator_emulators::{EmulatorOptions, Emulators, Fault};
use serde_json::Value;

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

async fn identity_get(
    emu: &Emulators,
    http: &reqwest::Client,
    query: &[(&str, &str)],
    header: Option<&str>,
) -> (u16, Value) {
    let mut r = http.get(format!("{}?{}", emu.identity().endpoint(), form(query)));
    if let Some(h) = header {
        r = r.header("X-IDENTITY-HEADER", h);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    // An empty body (an injected `Fault::empty`) reads as null; anything else must be JSON.
    let text = r.text().await.unwrap();
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
}

#[tokio::test]
async fn identity_endpoint_follows_the_2019_08_01_protocol() {
    let emu = Emulators::start(EmulatorOptions::default());
    let http = client(&emu);
    let h = emu.identity().header_value().to_string();
    let q = [("api-version", "2019-08-01"), ("resource", DBX)];

    let (status, b) = identity_get(&emu, &http, &q, Some(&h)).await;
    assert_eq!(status, 200);
    let expires_on: i64 = b["expires_on"].as_str().expect("expires_on is a JSON string").parse().unwrap();
    assert!((expires_on - now_secs() - 86_400).abs() <= 5);
    assert!(b["not_before"].is_string());
    assert_eq!(b["resource"], DBX);
    assert_eq!(b["token_type"], "Bearer");
    assert_eq!(b["client_id"], emu.identity().system_principal().client_id);
    let token = b["access_token"].as_str().unwrap();
    let rec = emu.directory().lookup(token).unwrap();
    assert_eq!((rec.audience.as_str(), rec.principal.as_str()), (DBX, emu.identity().principal()));
    assert_eq!(emu.identity().issued_tokens(), vec![token.to_string()]);

    assert_eq!(identity_get(&emu, &http, &q, None).await.0, 401);
    assert_eq!(identity_get(&emu, &http, &q, Some("wrong")).await.0, 401);
    assert_eq!(identity_get(&emu, &http, &[("api-version", "2019-08-01")], Some(&h)).await.0, 400);
    assert_eq!(identity_get(&emu, &http, &[("resource", KV)], Some(&h)).await.0, 400);
    let (status, b) =
        identity_get(&emu, &http, &[q[0], q[1], ("client_id", "00000000-0000-0000-0000-0000000000aa")], Some(&h)).await;
    assert_eq!(status, 400, "unassigned user-assigned identity");
    assert_eq!(b["statusCode"], 400);

    let ua = emu
        .identity()
        .add_user_assigned("11111111-2222-3333-4444-555555555555", "99999999-8888-7777-6666-555555555555");
    let (status, b) = identity_get(&emu, &http, &[q[0], q[1], ("client_id", &ua.client_id)], Some(&h)).await;
    assert_eq!(status, 200);
    assert_eq!(emu.directory().lookup(b["access_token"].as_str().unwrap()).unwrap().principal, ua.object_id);
    let (status, b) = identity_get(&emu, &http, &[q[0], q[1], ("principal_id", &ua.object_id)], Some(&h)).await;
    assert_eq!(status, 200);
    assert_eq!(b["client_id"], ua.client_id);

    emu.identity().set_token_lifetime(Duration::from_secs(10));
    let (_, b) = identity_get(&emu, &http, &q, Some(&h)).await;
    let expires_on: i64 = b["expires_on"].as_str().unwrap().parse().unwrap();
    assert!((expires_on - now_secs() - 10).abs() <= 2);

    let calls = emu.identity().faults().calls();
    assert!(calls.iter().all(|c| c.op == "token"));
    assert_eq!(calls.iter().filter(|c| c.status == 200).count(), 4);
}

async fn aad_post(emu: &Emulators, http: &reqwest::Client, path: &str, pairs: &[(&str, &str)]) -> (u16, Value) {
    let r = http
        .post(format!("{}{path}", emu.aad().url()))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form(pairs))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    // An injected fault may answer with an empty body.
    let text = r.text().await.unwrap();
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
}

#[tokio::test]
async fn aad_client_credentials() {
    let emu = Emulators::start(EmulatorOptions::default());
    let http = client(&emu);
    let oid = emu.aad().add_service_principal("app-1", "s3cret");
    let v2 = format!("/{}/oauth2/v2.0/token", emu.tenant_id());
    let scope = format!("{KV}/.default");
    let base = [("client_id", "app-1"), ("scope", scope.as_str()), ("grant_type", "client_credentials")];

    let (status, b) = aad_post(&emu, &http, &v2, &[base[0], base[1], base[2], ("client_secret", "s3cret")]).await;
    assert_eq!(status, 200);
    assert_eq!(b["token_type"], "Bearer");
    assert_eq!(b["expires_in"], 3599);
    assert_eq!(b["ext_expires_in"], 3599);
    assert!(b.get("expires_on").is_none());
    let rec = emu.directory().lookup(b["access_token"].as_str().unwrap()).unwrap();
    assert_eq!((rec.audience.as_str(), rec.principal.as_str()), (KV, oid.as_str()));

    let (status, b) = aad_post(&emu, &http, &v2, &[base[0], base[1], base[2], ("client_secret", "nope")]).await;
    assert_eq!(status, 401);
    assert_eq!(b["error"], "invalid_client");
    assert_eq!(b["error_codes"], serde_json::json!([7_000_215]));
    assert!(b["error_description"].as_str().unwrap().starts_with("AADSTS7000215: Invalid client secret provided."));
    assert!(b["correlation_id"].is_string() && b["trace_id"].is_string());

    let (status, b) =
        aad_post(&emu, &http, &v2, &[("client_id", "ghost"), base[1], base[2], ("client_secret", "x")]).await;
    assert_eq!((status, b["error"].as_str()), (400, Some("unauthorized_client")));
    let (status, b) = aad_post(&emu, &http, &v2, &[base[0], ("scope", KV), base[2], ("client_secret", "s3cret")]).await;
    assert_eq!((status, b["error"].as_str()), (400, Some("invalid_scope")));
    let (status, b) = aad_post(&emu, &http, &v2, &[base[0], base[1], base[2]]).await;
    assert_eq!((status, b["error"].as_str()), (401, Some("invalid_client")));
    let other_tenant = "/00000000-0000-0000-0000-000000000001/oauth2/v2.0/token";
    assert_eq!(
        aad_post(&emu, &http, other_tenant, &[base[0], base[1], base[2], ("client_secret", "s3cret")]).await.0,
        400
    );

    // Federated (assertion) credentials: the registered string is the expected assertion.
    let jwt = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
    let ok = aad_post(
        &emu,
        &http,
        &v2,
        &[base[0], base[1], base[2], ("client_assertion_type", jwt), ("client_assertion", "s3cret")],
    )
    .await;
    assert_eq!(ok.0, 200);
    let bad = aad_post(
        &emu,
        &http,
        &v2,
        &[base[0], base[1], base[2], ("client_assertion_type", jwt), ("client_assertion", "x")],
    )
    .await;
    assert_eq!(bad.0, 401);

    // v1 endpoint: resource= and string numbers.
    let v1 = format!("/{}/oauth2/token", emu.tenant_id());
    let (status, b) = aad_post(
        &emu,
        &http,
        &v1,
        &[("client_id", "app-1"), ("resource", DBX), ("grant_type", "client_credentials"), ("client_secret", "s3cret")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(b["expires_in"], "3599");
    assert!(b["expires_on"].is_string());
    assert_eq!(emu.directory().lookup(b["access_token"].as_str().unwrap()).unwrap().audience, DBX);
    assert_eq!(emu.aad().issued_tokens().len(), 3);
}

#[tokio::test]
async fn aad_metadata_for_msal() {
    let emu = Emulators::start(EmulatorOptions::default());
    let http = client(&emu);
    let t = emu.tenant_id();
    let b: Value = http
        .get(format!("{}/{t}/v2.0/.well-known/openid-configuration", emu.aad().url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(b["token_endpoint"], emu.aad().token_endpoint());
    assert!(b["authorization_endpoint"].as_str().unwrap().starts_with(emu.aad().url()));
    let auth = format!("{}/{t}/oauth2/v2.0/authorize", emu.aad().url());
    let b: Value = http
        .get(format!(
            "{}/common/discovery/instance?api-version=1.1&{}",
            emu.aad().url(),
            form(&[("authorization_endpoint", &auth)])
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        b["tenant_discovery_endpoint"],
        format!("{}/{t}/v2.0/.well-known/openid-configuration", emu.aad().url())
    );
    assert_eq!(emu.aad().faults().count("discovery"), 2);
}

#[tokio::test]
async fn identity_faults_apply_before_the_protocol() {
    let emu = Emulators::start(EmulatorOptions::default());
    let http = client(&emu);
    let h = emu.identity().header_value().to_string();
    let q = [("api-version", "2019-08-01"), ("resource", KV)];
    emu.identity().faults().inject("token", Fault::empty(503), 2);
    assert_eq!(identity_get(&emu, &http, &q, Some(&h)).await.0, 503);
    assert_eq!(identity_get(&emu, &http, &q, Some(&h)).await.0, 503);
    assert_eq!(identity_get(&emu, &http, &q, Some(&h)).await.0, 200);
    assert!(emu.identity().issued_tokens().len() == 1, "the 503s issued nothing");
}

#[tokio::test]
async fn env_and_state_endpoint() {
    let emu = Emulators::start(EmulatorOptions { workspaces: 2, vaults: 2, ..Default::default() });
    let env: std::collections::HashMap<String, String> = emu.env().into_iter().collect();
    assert_eq!(env["IDENTITY_ENDPOINT"], emu.identity().endpoint());
    assert_eq!(env["IDENTITY_HEADER"], emu.identity().header_value());
    assert_eq!(env["SSL_CERT_FILE"], emu.ca_pem_path().display().to_string());
    assert_eq!(env["AZURE_AUTHORITY_HOST"], emu.aad().url());
    assert_eq!(env["AZURE_TENANT_ID"], emu.tenant_id());
    assert_eq!(std::fs::read_to_string(emu.ca_pem_path()).unwrap(), emu.ca_pem());
    let file_env: std::collections::HashMap<String, String> = emu.env_file_vars().into_iter().collect();
    assert_eq!(file_env["DATABRICKS_HOST_1"], emu.workspace(1).url());
    assert_eq!(file_env["KEY_VAULT_URL_1"], emu.vault(1).url());
    assert_eq!(file_env["DATABRICKS_WORKSPACE_RESOURCE_ID_0"], emu.workspace(0).resource_id());
    assert_ne!(emu.workspace(0).url(), emu.workspace(1).url());

    let ws = emu.workspace(1);
    let (_, pat) =
        ws.seed_token(ws.principal(), "pat-rotator/demo/1", SystemTime::now(), Some(Duration::from_secs(3600)));
    emu.vault(0).seed_secret(
        "databricks-pat",
        &pat,
        Some("databricks-pat"),
        &[("managed-by", "pat-rotator")],
        Some(now_secs() + 3600),
    );
    let http = client(&emu);
    let text = http.get(&file_env["EMULATOR_STATE_URL"]).send().await.unwrap().text().await.unwrap();
    assert!(!text.contains(&pat), "the overview never shows values");
    assert!(!text.contains(emu.identity().header_value()));
    let b: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(b["workspaces"][1]["live_tokens"][0]["comment"], "pat-rotator/demo/1");
    assert_eq!(b["vaults"][0]["secrets"][0]["versions"][0]["tags"]["managed-by"], "pat-rotator");
}

#[test]
fn drop_stops_servers_and_removes_the_temp_dir() {
    let emu = Emulators::start(EmulatorOptions::default());
    let dir = emu.dir().to_path_buf();
    let addr = emu.workspace(0).url().trim_start_matches("http://").to_string();
    assert!(dir.join("ca.pem").exists());
    // A request that hangs forever must not keep the servers alive.
    emu.workspace(0).faults().inject("*", Fault::hang(), usize::MAX);
    let mut hung = std::net::TcpStream::connect(&addr).unwrap();
    std::io::Write::write_all(&mut hung, b"GET /api/2.0/token/list HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let t = std::time::Instant::now();
    drop(emu);
    assert!(t.elapsed() < Duration::from_secs(5), "drop took {:?}", t.elapsed());
    assert!(!dir.exists());
    assert!(std::net::TcpStream::connect(&addr).is_err(), "listener closed");
}

/// The managed identity federates into an app registration: the exchange succeeds only for an
/// identity token for `api://AzureADTokenExchange` whose issuer, subject and audience a
/// federated credential of the app names; the rest is refused with Entra's AADSTS answers.
#[tokio::test]
async fn aad_federated_exchange_of_a_managed_identity_token() {
    use pat_rotator_emulators::FederatedCredential;
    use pat_rotator_emulators::aad::TOKEN_EXCHANGE_AUDIENCE;
    let emu = Emulators::start(EmulatorOptions::default());
    let http = client(&emu);
    let mi = emu.identity().principal().to_string();
    let trusted = "11111111-1111-4111-8111-111111111111";
    let untrusted = "22222222-2222-4222-8222-222222222222";
    let elsewhere = "33333333-3333-4333-8333-333333333333";
    let app_oid = emu.aad().trust_managed_identity(trusted, &mi);
    emu.aad().add_app(untrusted);
    emu.aad().add_app(elsewhere);
    emu.aad().add_federated_credential(
        elsewhere,
        FederatedCredential {
            issuer: emu.aad().managed_identity_issuer(),
            subject: "44444444-4444-4444-8444-444444444444".into(),
            audience: TOKEN_EXCHANGE_AUDIENCE.into(),
        },
    );
    let assertion = mi_token(&emu, &http, TOKEN_EXCHANGE_AUDIENCE).await;
    let v2 = format!("/{}/oauth2/v2.0/token", emu.tenant_id());
    let scope = format!("{DBX}/.default");
    let jwt = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
    let exchange = |client_id: &'static str, assertion: String| {
        let (emu, http, v2, scope) = (&emu, &http, v2.clone(), scope.clone());
        async move {
            aad_post(
                emu,
                http,
                &v2,
                &[
                    ("client_id", client_id),
                    ("scope", &scope),
                    ("grant_type", "client_credentials"),
                    ("client_assertion_type", jwt),
                    ("client_assertion", &assertion),
                ],
            )
            .await
        }
    };

    let (status, b) = exchange(trusted, assertion.clone()).await;
    assert_eq!(status, 200, "{b}");
    let rec = emu.directory().lookup(b["access_token"].as_str().unwrap()).unwrap();
    assert_eq!((rec.audience.as_str(), rec.principal.as_str()), (DBX, app_oid.as_str()), "the app's own token");
    assert_eq!(emu.aad().exchanges(), vec![(trusted.to_string(), DBX.to_string())]);

    let (status, b) = exchange(untrusted, assertion.clone()).await;
    assert_eq!((status, b["error"].as_str()), (400, Some("invalid_request")));
    assert_eq!(b["error_codes"], serde_json::json!([70_021]));
    let d = b["error_description"].as_str().unwrap();
    assert!(d.starts_with("AADSTS70021: No matching federated identity record found for presented assertion."), "{d}");
    assert!(
        d.contains(&format!("Assertion Subject: '{mi}'"))
            && d.contains("Assertion Audience: 'api://AzureADTokenExchange'")
    );

    let (status, b) = exchange(elsewhere, assertion.clone()).await;
    assert_eq!((status, b["error"].as_str()), (401, Some("invalid_client")));
    assert_eq!(b["error_codes"], serde_json::json!([700_213]));

    // The identity's token for another audience is no assertion for this app.
    let kv_token = mi_token(&emu, &http, KV).await;
    let (status, b) = exchange(trusted, kv_token).await;
    assert_eq!((status, b["error_codes"].clone()), (401, serde_json::json!([700_212])));
    // Something that is not a token at all; an unknown app; an expired assertion.
    assert_eq!(exchange(trusted, "not-a-token".into()).await.1["error_codes"], serde_json::json!([50_027]));
    let (status, b) = exchange("55555555-5555-4555-8555-555555555555", assertion.clone()).await;
    assert_eq!((status, b["error_codes"].clone()), (400, serde_json::json!([700_016])));
    emu.directory().expire_all();
    assert_eq!(exchange(trusted, assertion).await.1["error_codes"], serde_json::json!([700_024]));
    assert_eq!(emu.aad().exchanges().len(), 1, "refusals issue nothing");

    // A user-assigned identity can be the subject too.
    let ua = emu
        .identity()
        .add_user_assigned("66666666-6666-4666-8666-666666666666", "77777777-7777-4777-8777-777777777777");
    emu.aad().trust_managed_identity(untrusted, &ua.object_id);
    let r = http
        .get(format!(
            "{}?{}",
            emu.identity().endpoint(),
            form(&[("api-version", "2019-08-01"), ("resource", TOKEN_EXCHANGE_AUDIENCE), ("client_id", &ua.client_id)])
        ))
        .header("X-IDENTITY-HEADER", emu.identity().header_value())
        .send()
        .await
        .unwrap();
    let ua_assertion = r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_string();
    assert_eq!(exchange(untrusted, ua_assertion).await.0, 200);

    // Fault injection on the exchange, as on every other fake.
    emu.aad().faults().inject("token", Fault::status(503), 1);
    let fresh = mi_token(&emu, &http, TOKEN_EXCHANGE_AUDIENCE).await;
    assert_eq!(exchange(trusted, fresh.clone()).await.0, 503);
    assert_eq!(exchange(trusted, fresh).await.0, 200);
}
