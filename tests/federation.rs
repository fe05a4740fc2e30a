//! Contract §8: a target with `client_id` holds a PAT of that app registration's service
//! principal, reached by federating the service's managed identity into the app; Key Vault is
//! still read and written by the service's own identity.

mod common;

use common::*;
use pat_rotator_emulators::{EmulatorOptions, WorkspaceOptions};
use serde_json::{Value, json};

const APP_A: &str = "0a0a0a0a-1111-4111-8111-aaaaaaaaaaaa";
const APP_B: &str = "0b0b0b0b-2222-4222-8222-bbbbbbbbbbbb";
const DBX: &str = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d";
const MGMT: &str = "https://management.core.windows.net/";
const TRACE: (&str, &str) = ("RUST_LOG", "trace");

/// A world whose workspaces have no members: only the apps added by the test can act there.
fn world() -> World {
    World::with(EmulatorOptions {
        workspace: WorkspaceOptions { identity_is_member: false, ..Default::default() },
        ..Default::default()
    })
}

fn app_target(w: &World, name: &str, client_id: &str) -> Value {
    let mut t = w.target(name, 0, 0);
    t["client_id"] = json!(client_id);
    t["revoke_grace_hours"] = json!(0);
    t
}

fn aad_token_calls(w: &World) -> usize {
    w.emu.aad().faults().count("token")
}

#[test]
fn a_targets_pat_belongs_to_its_app_and_the_vault_is_written_by_the_service_identity() {
    let mut w = world();
    let app = w.federated_app(APP_A, 0);
    // Upper case in the configuration; compared and tagged in lower case.
    let t = app_target(&w, "a", &APP_A.to_ascii_uppercase());
    w.targets(&[t]);

    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0, "{r:?}");
    assert_eq!(r[0]["action"], "created");
    let id = r[0]["token_id"].as_str().unwrap().to_string();
    assert_eq!(w.live_tokens_of(0, &app), vec![id.clone()], "the PAT is the app's");
    assert!(w.live_tokens(0).is_empty(), "the service identity owns no token");
    assert_eq!(w.emu.workspace(0).token(&id).unwrap().principal, app);
    let v = w.emu.vault(0).latest("a-pat").unwrap();
    assert_eq!(v.tags["databricks-client-id"], APP_A);
    assert_eq!(v.tags["databricks-token-id"], id);
    assert!(w.emu.workspace(0).authenticate_pat(&v.value));
    let mi = w.emu.identity().principal().to_string();
    assert_eq!(w.vault_writers(0), vec![mi.clone()], "Key Vault is written by the service identity");
    assert_eq!(w.emu.aad().exchanges(), vec![(APP_A.to_string(), DBX.to_string())], "one exchange, for Databricks");

    // A forced rotation revokes the app's old token, as the app.
    let (code, r) = w.rotate(&["--force"], &[]);
    assert_eq!(code, 0, "{r:?}");
    assert_eq!(r[0]["revoked_token_ids"], json!([id]));
    assert_eq!(w.live_tokens_of(0, &app).len(), 1);
    assert_eq!(w.vault_writers(0), vec![mi.clone(), mi]);
    w.assert_secret_works(0, 0, "a-pat");

    // status reads as the app too, and says who owns the tokens.
    let o = w.cli(&["status", "--json"], &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let rows = o.json();
    assert_eq!(rows[0]["owner"], format!("app {APP_A}"));
    assert_eq!(rows[0]["token_exists"], true);
    let o = w.cli(&["status"], &[]);
    assert!(o.stdout.contains("OWNER") && o.stdout.contains(&format!("app {APP_A}")), "{}", o.stdout);
}

#[test]
fn two_apps_on_one_workspace_each_rotate_and_revoke_only_their_own_tokens() {
    let mut w = world();
    let a = w.federated_app(APP_A, 0);
    let b = w.federated_app(APP_B, 0);
    let (ta, tb) = (app_target(&w, "a", APP_A), app_target(&w, "b", APP_B));
    w.targets(&[ta, tb]);

    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0, "{r:?}");
    let (first_a, first_b) = (r[0]["token_id"].as_str().unwrap(), r[1]["token_id"].as_str().unwrap());
    assert_eq!(w.live_tokens_of(0, &a), vec![first_a.to_string()]);
    assert_eq!(w.live_tokens_of(0, &b), vec![first_b.to_string()]);
    assert_eq!(w.emu.vault(0).latest("b-pat").unwrap().tags["databricks-client-id"], APP_B);

    let (code, r) = w.rotate(&["--force"], &[]);
    assert_eq!(code, 0, "{r:?}");
    assert_eq!(r[0]["revoked_token_ids"], json!([first_a]));
    assert_eq!(r[1]["revoked_token_ids"], json!([first_b]));
    assert_eq!(w.live_tokens_of(0, &a), vec![r[0]["token_id"].as_str().unwrap().to_string()]);
    assert_eq!(w.live_tokens_of(0, &b), vec![r[1]["token_id"].as_str().unwrap().to_string()]);
    w.assert_secret_works(0, 0, "a-pat");
    w.assert_secret_works(0, 0, "b-pat");
    // One managed-identity token for the exchange serves both apps within a run.
    let mut owners: Vec<String> = w.emu.aad().exchanges().into_iter().map(|(c, _)| c).collect();
    owners.sort();
    assert_eq!(owners, vec![APP_A, APP_A, APP_B, APP_B]);
}

#[test]
fn an_untrusted_or_unknown_app_is_identity_federation_refused_with_nothing_changed() {
    let mut w = world();
    w.emu.aad().add_app(APP_A); // registered, but trusts no federated identity
    let (ta, tb) = (app_target(&w, "a", APP_A), app_target(&w, "b", APP_B)); // APP_B does not exist
    w.targets(&[ta, tb]);
    let mi = w.emu.identity().principal().to_string();

    let (code, r) = w.rotate(&[], &[TRACE]);
    assert_eq!(code, 1, "{r:?}");
    for o in &r {
        assert_eq!(o["action"], "failed");
        assert_eq!(o["error"]["code"], "identity_federation_refused", "{o}");
    }
    let msg = r[0]["error"]["message"].as_str().unwrap();
    assert!(msg.contains("AADSTS70021"), "{msg}");
    let issuer = format!("{}/{}/v2.0", w.emu.aad().url(), w.emu.tenant_id());
    assert!(msg.contains(&format!("issuer {issuer}")), "the issuer to configure: {msg}");
    assert!(msg.contains(&format!("subject {mi}")), "the managed identity's object id: {msg}");
    assert!(msg.contains("audience api://AzureADTokenExchange"), "{msg}");
    let msg = r[1]["error"]["message"].as_str().unwrap();
    assert!(msg.contains("AADSTS700016") && msg.contains(APP_B), "{msg}");

    assert_eq!(aad_token_calls(&w), 2, "each refusal is asked once, not retried");
    assert!(w.emu.workspace(0).faults().calls().is_empty(), "no workspace call without the app's token");
    assert!(w.emu.workspace(0).all_tokens().is_empty());
    assert_eq!(kv_writes(&w, 0), 0);

    // The handler answers ProvisionPat with 502 and the code.
    let h = w.serve(&[]);
    let reply = h.provision(json!({"target": "a"}));
    assert_eq!(reply.status, 502, "{}", reply.text);
    assert_eq!(reply.json()["error"]["code"], "identity_federation_refused");
    drop(h);
    assert!(w.emu.workspace(0).all_tokens().is_empty());
    assert_eq!(kv_writes(&w, 0), 0);
}

#[test]
fn entra_server_errors_are_retried_and_end_as_identity_unavailable() {
    let mut w = world();
    let app = w.federated_app(APP_A, 0);
    let t = app_target(&w, "a", APP_A);
    w.targets(&[t]);

    w.emu.aad().faults().inject("token", Fault::status(503), 2);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0, "{r:?}");
    assert_eq!(r[0]["action"], "created");
    assert_eq!(aad_token_calls(&w), 3, "two 503s, then the exchange");
    assert_eq!(w.live_tokens_of(0, &app).len(), 1);

    w.reset_calls();
    w.emu.aad().faults().inject("token", Fault::status(500), usize::MAX);
    let (code, r) = w.rotate(&["--force"], &[("PAT_RETRY_ATTEMPTS", "3")]);
    assert_eq!(code, 1, "{r:?}");
    assert_eq!(r[0]["error"]["code"], "identity_unavailable", "{:?}", r[0]);
    assert_eq!(aad_token_calls(&w), 3, "retried within the budget");
    assert_eq!(kv_writes(&w, 0), 0);
    assert_eq!(w.live_tokens_of(0, &app).len(), 1, "nothing created");
}

#[test]
fn a_hanging_exchange_is_cut_by_the_call_timeout_and_retried() {
    let mut w = world();
    let app = w.federated_app(APP_A, 0);
    let t = app_target(&w, "a", APP_A);
    w.targets(&[t]);
    w.emu.aad().faults().inject("token", Fault::hang(), 1);
    let start = std::time::Instant::now();
    let (code, r) = w.rotate(&[], &[("PAT_CALL_TIMEOUT_SECONDS", "1")]);
    assert_eq!(code, 0, "{r:?}");
    assert!(start.elapsed() < std::time::Duration::from_secs(5), "{:?}", start.elapsed());
    assert_eq!(aad_token_calls(&w), 2, "the hung exchange, then one that answered");
    assert_eq!(w.live_tokens_of(0, &app).len(), 1);
}

#[test]
fn bad_client_id_settings_are_config_errors_before_any_call() {
    let mut w = world();
    let t = app_target(&w, "a", APP_A);
    let mut bad = app_target(&w, "b", APP_B);
    bad["client_id"] = json!("my-etl-app");
    w.targets(&[t, bad]);
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![], "targets[1].client_id: \"my-etl-app\" is not a GUID"),
        (
            vec![("AZURE_TENANT_ID", "")],
            "targets[0].client_id: \"0a0a0a0a-1111-4111-8111-aaaaaaaaaaaa\" requires AZURE_TENANT_ID",
        ),
        (
            vec![("PAT_CREDENTIAL", "azure_cli")],
            "targets[0].client_id: \"0a0a0a0a-1111-4111-8111-aaaaaaaaaaaa\" requires PAT_CREDENTIAL managed_identity or workload_identity",
        ),
        (
            vec![
                ("PAT_CREDENTIAL", "client_secret"),
                ("AZURE_CLIENT_ID", "ci"),
                ("AZURE_CLIENT_SECRET", CLIENT_SECRET),
            ],
            "the credential is client_secret",
        ),
        // auto without IDENTITY_ENDPOINT resolves to the Azure CLI.
        (vec![("IDENTITY_ENDPOINT", ""), ("IDENTITY_HEADER", "")], "the credential is azure_cli"),
    ];
    for (env, expected) in cases {
        for cmd in [&["rotate", "--json"][..], &["check-config"][..]] {
            let o = w.cli(cmd, &env);
            assert_eq!(o.code, 2, "{cmd:?} {env:?}: {}", o.stderr);
            assert!(o.stderr.contains(expected), "{cmd:?} {env:?}: expected {expected:?} in {}", o.stderr);
        }
    }
    // The flat form names the flat setting.
    let mut flat = world();
    let (ws_url, kv_url) = (flat.emu.workspace(0).url().to_string(), flat.emu.vault(0).url().to_string());
    flat.set("DATABRICKS_HOST", &ws_url);
    flat.set("KEY_VAULT_URL", &kv_url);
    flat.set("PAT_CLIENT_ID", "nope");
    let o = flat.cli(&["rotate"], &[]);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("PAT_CLIENT_ID: \"nope\" is not a GUID"), "{}", o.stderr);
    // serve starts and reports config_invalid on every invocation.
    let h = w.serve(&[]);
    let reply = h.provision(json!({"target": "a"}));
    assert_eq!(reply.json()["error"]["code"], "config_invalid", "{}", reply.text);
    drop(h);
    assert_eq!(w.upstream_calls() + flat.upstream_calls(), 0, "nothing was called");
}

#[test]
fn check_config_shows_owners_counts_quota_per_owner_and_warns_about_admin_headers() {
    let mut w = world();
    let mut targets = Vec::new();
    // 100 targets of the service identity and 100 of app A on one workspace: neither owner
    // alone is above the warning threshold of contract §11 (100), together they would be.
    for i in 0..100 {
        targets.push(w.target(&format!("s{i}"), 0, 0));
        targets.push(app_target(&w, &format!("a{i}"), APP_A));
    }
    let mut admin = app_target(&w, "admin", APP_B);
    admin["workspace_resource_id"] = json!(w.emu.workspace(0).resource_id());
    targets.push(admin);
    w.targets(&targets);
    let o = w.cli(&["check-config"], &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("OWNER") && o.stdout.contains("service identity"), "{}", o.stdout);
    assert!(o.stdout.contains(&format!("app {APP_A}")), "{}", o.stdout);
    assert!(!o.stderr.contains("quota of 600"), "quota is counted per owner: {}", o.stderr);
    assert!(o.stderr.contains("warning: admin: has client_id") && o.stderr.contains("workspace admin"), "{}", o.stderr);
    let o = w.cli(&["check-config", "--json"], &[]);
    assert_eq!(o.json()["targets"][1]["client_id"], APP_A);

    // One more of app A: now app A's share is above the threshold.
    targets.push(app_target(&w, "a100", APP_A));
    w.targets(&targets);
    let o = w.cli(&["check-config"], &[]);
    assert!(
        o.stderr.contains(&format!(
            "warning: 101 pat targets share workspace {} as app {APP_A};",
            w.emu.workspace(0).url()
        )),
        "{}",
        o.stderr
    );
    assert!(!o.stderr.contains("as service identity"), "{}", o.stderr);
    assert_eq!(w.upstream_calls(), 0);
}

#[test]
fn management_header_mode_uses_the_apps_management_token() {
    let mut w = world();
    let app = w.emu.aad().trust_managed_identity(APP_A, w.emu.identity().principal());
    // Not a member: admitted through the management headers as a Contributor on the resource.
    w.emu.workspace(0).grant_contributor(&app);
    let mut t = app_target(&w, "a", APP_A);
    t["workspace_resource_id"] = json!(w.emu.workspace(0).resource_id());
    w.targets(&[t]);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0, "{r:?}");
    assert_eq!(w.live_tokens_of(0, &app).len(), 1);
    let mut exchanged: Vec<String> = w.emu.aad().exchanges().into_iter().map(|(_, aud)| aud).collect();
    exchanged.sort();
    assert_eq!(exchanged, vec![DBX.to_string(), MGMT.trim_end_matches('/').to_string() + "/"]);
}

#[test]
fn an_owner_change_is_reported_as_such_and_the_old_token_is_left_to_its_owner() {
    let mut w = World::new(); // the service identity is a member, as before the switch
    let app = w.federated_app(APP_A, 0);
    let old = w.seed_managed(0, 0, "t", HOUR, 90 * DAY, None);
    let mut t = app_target(&w, "t", APP_A);
    t["revoke_grace_hours"] = json!(24);
    w.targets(&[t]);

    let o = w.cli(&["rotate", "--json"], &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let r = o.json();
    assert_eq!(r[0]["action"], "reprovisioned");
    assert_eq!(r[0]["reason"], "revoked_in_workspace");
    assert!(o.stderr.contains("owner changed"), "{}", o.stderr);
    assert!(o.stderr.contains("the service identity") && o.stderr.contains(&format!("app {APP_A}")), "{}", o.stderr);
    assert!(w.emu.workspace(0).is_live(&old), "the old owner's token is not the new owner's to revoke");
    assert_eq!(w.live_tokens_of(0, &app).len(), 1);
    let v = w.emu.vault(0).latest("t-pat").unwrap();
    assert!(!v.tags.contains_key("previous-token-id"), "a token the new owner cannot see is nobody's previous token");

    // The next run is an ordinary one: no owner change to report.
    let o = w.cli(&["rotate", "--json"], &[]);
    assert_eq!(o.json()[0]["action"], "unchanged");
    assert!(!o.stderr.contains("owner changed"), "{}", o.stderr);

    // A token revoked out of band is still reported as that, without an owner change.
    let current = w.emu.vault(0).latest("t-pat").unwrap().tags["databricks-token-id"].clone();
    w.emu.workspace(0).revoke(&current);
    let o = w.cli(&["rotate", "--json"], &[]);
    assert_eq!(o.json()[0]["reason"], "revoked_in_workspace");
    assert!(!o.stderr.contains("owner changed"), "{}", o.stderr);

    // And back to the service identity: the app's token is left to the app.
    let apps_token = w.emu.vault(0).latest("t-pat").unwrap().tags["databricks-token-id"].clone();
    let mut t = w.target("t", 0, 0);
    t["revoke_grace_hours"] = json!(24);
    w.targets(&[t]);
    let o = w.cli(&["rotate", "--json"], &[]);
    assert_eq!(o.json()[0]["action"], "reprovisioned", "{}", o.stderr);
    assert!(
        o.stderr.contains("owner changed")
            && o.stderr.contains(&format!("belongs to app {APP_A}"))
            && o.stderr.contains("now belong to the service identity"),
        "{}",
        o.stderr
    );
    assert!(w.emu.workspace(0).is_live(&apps_token));
    let v = w.emu.vault(0).latest("t-pat").unwrap();
    assert!(!v.tags.contains_key("databricks-client-id"), "no tag for the service identity's token");
}

#[test]
fn workload_identity_presents_the_token_file_as_the_assertion() {
    let mut w = world();
    // The token file is accepted by the service's own app (for Key Vault) and by the target's app.
    let service = w.emu.aad().add_service_principal("wi-app", CLIENT_SECRET);
    let app = w.emu.aad().add_service_principal(APP_A, CLIENT_SECRET);
    w.emu.workspace(0).add_member(&app);
    let file = w.emu.dir().join("federated-token");
    std::fs::write(&file, CLIENT_SECRET).unwrap();
    let file = file.display().to_string();
    let t = app_target(&w, "a", APP_A);
    w.targets(&[t]);
    let env = [
        TRACE,
        ("PAT_CREDENTIAL", "workload_identity"),
        ("IDENTITY_ENDPOINT", ""),
        ("IDENTITY_HEADER", ""),
        ("AZURE_CLIENT_ID", "wi-app"),
        ("AZURE_FEDERATED_TOKEN_FILE", file.as_str()),
    ];
    let (code, r) = w.rotate(&[], &env);
    assert_eq!(code, 0, "{r:?}");
    assert_eq!(w.live_tokens_of(0, &app).len(), 1);
    assert!(w.live_tokens_of(0, &service).is_empty());
    assert_eq!(w.vault_writers(0), vec![service]);
    assert!(w.emu.identity().faults().calls().is_empty(), "no managed identity involved");
}

#[test]
fn no_secret_of_any_kind_reaches_the_output_at_trace_level() {
    let mut w = world();
    let app = w.federated_app(APP_A, 0);
    let t = app_target(&w, "a", APP_A);
    w.emu.aad().add_app(APP_B);
    let refused = app_target(&w, "b", APP_B);
    w.targets(&[t, refused]);
    let (code, _) = w.rotate(&[], &[TRACE]);
    assert_eq!(code, 1, "target b is refused");
    assert_eq!(w.rotate(&["--force", "--target", "a"], &[TRACE]).0, 0);
    assert_eq!(w.cli(&["status"], &[TRACE]).code, 1);
    let h = w.serve(&[TRACE]);
    assert_eq!(h.provision(json!({"target": "a", "force": true})).status, 200);
    assert_eq!(h.provision(json!({"target": "b"})).status, 502);
    assert!(h.log().contains("TRACE") || h.log().contains("DEBUG"), "trace logging was on");
    drop(h);
    // Every kind is in the checked list: the identity's assertions, the app's tokens, PATs.
    let secrets = w.secrets();
    let exchange_assertions = w.emu.identity().issued_tokens();
    assert!(!exchange_assertions.is_empty() && exchange_assertions.iter().all(|s| secrets.contains(s)));
    let app_tokens = w.emu.aad().issued_tokens();
    assert!(!app_tokens.is_empty() && app_tokens.iter().all(|s| secrets.contains(s)));
    // Target b's secret was never written (its exchange is refused): it reads as absent, and
    // as a `pat` target on the same workspace it might name one of a's tokens (contract
    // §7.4(a)), so a's forced rotation kept its superseded token.
    assert!(w.live_tokens_of(0, &app).len() == 2 && !w.emu.workspace(0).issued_values().is_empty());
    w.assert_no_secrets();
}
