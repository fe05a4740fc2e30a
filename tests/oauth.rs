//! OAuth secrets of Databricks service principals (contract §9) through the real binary: the
//! same promises as a PAT target, with ownership by record and the principal's limit of five.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use common::*;
use serde_json::{Value, json};

const APP: &str = "0c0c0c0c-2222-4222-8222-cccccccccccc";
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// One §9 target `sp` (secret `sp-pat`) for principal `APP`, on workspace 0 and vault 0.
fn world() -> World {
    let mut w = World::new();
    w.emu.add_oauth_service_principal(APP, "etl principal");
    let mut t = w.target("sp", 0, 0);
    t["kind"] = json!("sp_oauth_secret");
    t["service_principal"] = json!(APP);
    w.targets(&[t]);
    w
}

/// The secret the vault names, checked against the workspace: it signs in. Returns its id.
fn assert_vault_secret_works(w: &World) -> String {
    let v = w.emu.vault(0).latest("sp-pat").expect("a version");
    assert_eq!(v.content_type.as_deref(), Some("databricks-oauth-secret"));
    assert_eq!(v.tags["databricks-client-id"], APP);
    assert_eq!(v.tags["managed-by"], "pat-rotator");
    assert!(!v.tags.contains_key("databricks-token-id"), "{:?}", v.tags);
    let id = v.tags["databricks-secret-id"].clone();
    assert!(w.emu.workspace(0).sp_secret_works(APP, &v.value), "the vault's OAuth secret does not sign in");
    id
}

fn live_secrets(w: &World) -> Vec<String> {
    let mut v: Vec<String> = w.emu.workspace(0).sp_secrets(APP).into_iter().map(|s| s.id).collect();
    v.sort();
    v
}

#[test]
fn created_unchanged_forced_kept_through_the_grace_then_deleted() {
    let w = world();
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(
        (code, r[0]["action"].as_str(), r[0]["reason"].as_str()),
        (0, Some("created"), Some("no_secret")),
        "{r:?}"
    );
    let first = assert_vault_secret_works(&w);
    assert_eq!(r[0]["token_id"], first.as_str());
    let v = w.emu.vault(0).latest("sp-pat").unwrap();
    assert!(v.exp.is_some(), "exp is the secret's expiry");

    // Again: nothing to do, nothing written.
    let writes = kv_writes(&w, 0);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!((code, r[0]["action"].as_str()), (0, Some("unchanged")), "{r:?}");
    assert_eq!(kv_writes(&w, 0), writes);

    // Forced: a new secret; the old one lives through the grace (24 h).
    let (code, r) = w.rotate(&["--force"], &[]);
    assert_eq!((code, r[0]["reason"].as_str()), (0, Some("forced")), "{r:?}");
    let second = assert_vault_secret_works(&w);
    assert_ne!(first, second);
    assert_eq!(w.emu.vault(0).latest("sp-pat").unwrap().tags["previous-secret-id"], first);
    assert_eq!(live_secrets(&w), {
        let mut v = vec![first.clone(), second.clone()];
        v.sort();
        v
    });
    // After the grace, the next run deletes it.
    w.emu.vault(0).age_secret("sp-pat", DAY + HOUR);
    w.emu.workspace(0).age_sp_secrets(DAY + HOUR);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!((code, r[0]["revoked_token_ids"].clone()), (0, json!([first])), "{r:?}");
    assert_eq!(live_secrets(&w), vec![second]);
}

#[test]
fn reprovisioned_after_an_out_of_band_deletion() {
    let w = world();
    assert_eq!(w.rotate(&[], &[]).0, 0);
    let first = assert_vault_secret_works(&w);
    assert!(w.emu.workspace(0).delete_sp_secret(&first));
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(
        (code, r[0]["action"].as_str(), r[0]["reason"].as_str()),
        (0, Some("reprovisioned"), Some("revoked_in_workspace")),
        "{r:?}"
    );
    assert_ne!(assert_vault_secret_works(&w), first);
}

/// A secret the token endpoint refuses is deleted and never written.
#[test]
fn a_secret_that_fails_verification_is_deleted_not_written() {
    let w = world();
    // The token endpoint refuses every secret (as it does for a principal whose secrets do not
    // work there). The refusal is retried as propagation until the run's budget ends.
    w.emu.workspace(0).faults().inject(
        "oidc_token",
        Fault::status(401)
            .json(json!({"error": "invalid_client", "error_description": "Client authentication failed"})),
        usize::MAX,
    );
    let (code, r) = w.rotate(&[], &[("PAT_TIMER_BUDGET_SECONDS", "6")]);
    assert_eq!((code, r[0]["error"]["code"].as_str()), (1, Some("databricks_unauthorized")), "{r:?}");
    assert!(w.emu.vault(0).latest("sp-pat").is_none(), "an unverified secret was written");
    assert!(live_secrets(&w).is_empty(), "the unverified secret was not deleted: {:?}", live_secrets(&w));
}

/// At the principal's limit, with nothing of its own provably revocable, the run fails naming
/// the secrets it may not touch, and deletes none of them.
#[test]
fn at_the_limit_nothing_unrecorded_is_deleted() {
    let w = world();
    assert_eq!(w.rotate(&[], &[]).0, 0);
    let ours = assert_vault_secret_works(&w);
    let theirs: Vec<String> =
        (0..4).map(|_| w.emu.workspace(0).seed_sp_secret(APP, SystemTime::now() - 10 * DAY, 400 * DAY).0.id).collect();
    let (code, r) = w.rotate(&["--force"], &[]);
    assert_eq!((code, r[0]["error"]["code"].as_str()), (1, Some("databricks_quota_exceeded")), "{r:?}");
    let message = r[0]["error"]["message"].as_str().unwrap();
    for id in &theirs {
        assert!(message.contains(id.as_str()), "{id} not named: {message}");
    }
    assert_eq!(live_secrets(&w).len(), 5);
    assert!(live_secrets(&w).contains(&ours));
    // Every run says so in its warnings too.
    let warnings = r[0]["warnings"].to_string();
    assert!(warnings.contains(&theirs[0]) && warnings.contains("tokens --target sp --revoke"), "{warnings}");
}

/// A run killed between create and write leaves a secret nothing can attribute: it is never
/// deleted on a guess, `status` and `tokens` show it, and `tokens --revoke` removes it.
#[test]
fn a_crash_between_create_and_write_is_reported_and_cleaned_by_hand() {
    let w = world();
    assert_eq!(w.rotate(&[], &[]).0, 0);
    let current = assert_vault_secret_works(&w);
    let sets = |w: &World| w.emu.vault(0).faults().calls().iter().filter(|c| c.op == "set").count();
    let before = sets(&w);
    w.emu.vault(0).faults().inject("set", Fault::hang(), 1);
    let mut child = Command::new(bin())
        .args(["rotate", "--force", "--json"])
        .env_clear()
        .envs(w.env(&[]))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    // The process hangs in its write, after create and verification: kill it there.
    assert!(eventually(Duration::from_secs(20), || sets(&w) > before), "no write");
    child.kill().unwrap();
    child.wait().unwrap();
    let leaked: Vec<String> = live_secrets(&w).into_iter().filter(|id| *id != current).collect();
    assert_eq!(leaked.len(), 1, "the crash left exactly one unrecorded secret");
    let leaked = &leaked[0];

    // Later runs never delete it, however old; they warn about it.
    w.emu.workspace(0).age_sp_secret(leaked, 3 * DAY);
    w.emu.vault(0).age_secret("sp-pat", 3 * DAY);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0, "{r:?}");
    assert!(live_secrets(&w).contains(leaked));
    assert!(r[0]["warnings"].to_string().contains(leaked.as_str()), "{r:?}");

    // status needs attention: the ids are in details (contract §10).
    let out = w.cli(&["status", "--json"], &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(out.json()[0]["attention"], json!(["unrecorded"]), "{}", out.stdout);
    assert_eq!(out.json()[0]["details"]["unrecorded"], json!([leaked]), "{}", out.stdout);
    let out = w.cli(&["tokens", "--json"], &[]);
    let tokens = out.json()[0]["tokens"].clone();
    let row: &Value = tokens.as_array().unwrap().iter().find(|t| t["token_id"] == leaked.as_str()).expect("listed");
    assert_eq!((row["managed"].as_bool(), row["in_vault"].as_bool()), (Some(false), Some(false)), "{row}");
    let cur: &Value = tokens.as_array().unwrap().iter().find(|t| t["token_id"] == current.as_str()).expect("listed");
    assert_eq!((cur["managed"].as_bool(), cur["in_vault"].as_bool()), (Some(true), Some(true)), "{cur}");

    // The vault's secret cannot be revoked this way; the leaked one can.
    assert_eq!(w.cli(&["tokens", "--revoke", &current], &[]).code, 1);
    assert!(live_secrets(&w).contains(&current));
    let out = w.cli(&["tokens", "--target", "sp", "--revoke", leaked], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!live_secrets(&w).contains(leaked));
    assert_vault_secret_works(&w);
}

#[test]
fn the_cooldown_and_revoke_superseded_hold_for_oauth_secrets() {
    let w = world();
    assert_eq!(w.rotate(&[], &[]).0, 0);
    let h = w.serve(&[]);
    let r = h.provision(json!({"target": "sp", "force": true}));
    assert_eq!((r.status, r.json()["reason"].as_str()), (200, Some("recently_rotated")), "{}", r.text);
    assert_eq!(live_secrets(&w).len(), 1);
    drop(h);
    let first = assert_vault_secret_works(&w);
    let (code, r) = w.rotate(&["--force", "--target", "sp"], &[]);
    assert_eq!(code, 0, "{r:?}");
    let second = assert_vault_secret_works(&w);
    let (code, r) = w.rotate(&["--force", "--target", "sp", "--revoke-superseded"], &[]);
    assert_eq!(code, 0, "{r:?}");
    let mut revoked: Vec<String> =
        r[0]["revoked_token_ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    revoked.sort();
    let mut want = vec![first, second];
    want.sort();
    assert_eq!(revoked, want, "{r:?}");
    assert_eq!(live_secrets(&w), vec![assert_vault_secret_works(&w)]);
}

#[test]
fn a_principal_that_is_missing_or_entra_managed_is_a_clear_error() {
    let mut w = world();
    let mut t = w.target("sp", 0, 0);
    t["kind"] = json!("sp_oauth_secret");
    t["service_principal"] = json!("0d0d0d0d-3333-4333-8333-dddddddddddd");
    w.targets(&[t]);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!((code, r[0]["error"]["code"].as_str()), (1, Some("databricks_principal_not_found")), "{r:?}");
    assert_eq!(kv_writes(&w, 0), 0);

    let entra = "0e0e0e0e-4444-4444-8444-eeeeeeeeeeee";
    w.emu.workspace(0).add_service_principal(
        entra,
        "an Entra app",
        pat_rotator_emulators::workspace::SpKind::EntraManaged,
    );
    let mut t = w.target("sp", 0, 0);
    t["kind"] = json!("sp_oauth_secret");
    t["service_principal"] = json!(entra);
    w.targets(&[t]);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 1, "{r:?}");
    let message = r[0]["error"]["message"].as_str().unwrap();
    assert!(message.contains("Microsoft Entra ID") && message.contains("client_id"), "{message}");
    assert_eq!(kv_writes(&w, 0), 0);
}

#[test]
fn section_9_configuration_rules_name_the_field() {
    let w = world();
    for (field, value, expect) in [
        ("scopes", json!(["sql"]), "targets[0].scopes"),
        ("client_id", json!("0a1b2c3d-0000-4000-8000-00000000abcd"), "targets[0].client_id"),
        ("lifetime_days", json!(731), "targets[0].lifetime_days"),
        ("service_principal", json!("not-a-guid"), "targets[0].service_principal"),
    ] {
        let mut t = w.target("sp", 0, 0);
        t["kind"] = json!("sp_oauth_secret");
        t["service_principal"] = json!(APP);
        t[field] = value;
        let out = w.cli(&["check-config"], &[("PAT_TARGETS", &json!([t]).to_string())]);
        assert_eq!(out.code, 2, "{field}");
        assert!(out.stderr.contains(expect), "{field}: {}", out.stderr);
    }
    let mut t = w.target("p", 0, 0);
    t["service_principal"] = json!(APP);
    let out = w.cli(&["check-config"], &[("PAT_TARGETS", &json!([t]).to_string())]);
    assert!(out.code == 2 && out.stderr.contains("targets[0].service_principal"), "{}", out.stderr);
    assert_eq!(w.upstream_calls(), 0);
}
