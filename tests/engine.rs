//! Issue 2's scenarios, end to end through the real binary against the emulators.

mod common;

use std::time::Duration;

use common::*;
use pat_rotator_emulators::{EmulatorOptions, workspace::WorkspaceOptions};
use serde_json::json;

#[test]
fn first_provisioning_then_an_idempotent_second_run() {
    let mut w = World::new();
    let t = w.target("analytics", 0, 0);
    w.targets(&[t]);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0, "{r:?}");
    assert_eq!(r[0]["action"], "created");
    assert_eq!(r[0]["reason"], "no_secret");
    assert_eq!(r[0]["error"], serde_json::Value::Null);

    // What was written: contract §6.
    let kv = w.emu.vault(0);
    let versions = kv.versions("analytics-pat");
    assert_eq!(versions.len(), 1);
    let v = &versions[0];
    assert_eq!(v.content_type.as_deref(), Some("databricks-pat"));
    let id = w.assert_secret_works(0, 0, "analytics-pat");
    assert_eq!(r[0]["token_id"], id.as_str());
    assert_eq!(r[0]["secret_id"], format!("{}/secrets/analytics-pat/{}", kv.url(), v.version).as_str());
    for tag in ["managed-by", "target", "databricks-host", "databricks-token-id", "token-expires-at", "rotated-at"] {
        assert!(v.tags.contains_key(tag), "missing tag {tag}: {:?}", v.tags);
    }
    assert_eq!(v.tags["managed-by"], "pat-rotator");
    assert_eq!(v.tags["target"], "analytics");
    assert!(!v.tags.contains_key("previous-token-id"));
    let token = w.emu.workspace(0).token(&id).unwrap();
    let exp_secs = token.expiry.unwrap().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert_eq!(v.exp, Some(exp_secs), "attributes.exp is the token's expiry in seconds");
    let lifetime = token.expiry.unwrap().duration_since(token.created).unwrap();
    assert_eq!(lifetime.as_secs(), 90 * 86_400, "lifetime_seconds = lifetime_days * 86400");
    assert!(token.comment.starts_with("pat-rotator/analytics/"), "{}", token.comment);

    // Second run: unchanged, and not a single write call anywhere.
    w.reset_calls();
    let (code, r2) = w.rotate(&[], &[]);
    assert_eq!(code, 0);
    assert_eq!(r2[0]["action"], "unchanged");
    assert_eq!(r2[0]["reason"], "fresh");
    assert_eq!(r2[0]["token_id"], id.as_str());
    assert_eq!(kv.faults().count("set"), 0);
    assert_eq!(ws_count(&w, 0, "create") + ws_count(&w, 0, "delete"), 0);
    assert_eq!(kv.versions("analytics-pat").len(), 1);
}

#[test]
fn rotation_when_expiring_keeps_the_previous_token_within_grace() {
    let mut w = World::new();
    let t = w.target("etl", 0, 0);
    w.targets(&[t]);
    let old = w.seed_managed(0, 0, "etl", 70 * DAY, 90 * DAY, None);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0, "{r:?}");
    assert_eq!((r[0]["action"].as_str(), r[0]["reason"].as_str()), (Some("rotated"), Some("expiring")));
    assert_eq!(r[0]["revoked_token_ids"], json!([]));
    let new = w.assert_secret_works(0, 0, "etl-pat");
    assert_ne!(new, old);
    assert_eq!(w.emu.vault(0).latest("etl-pat").unwrap().tags["previous-token-id"], old);
    assert!(w.emu.workspace(0).is_live(&old), "previous token kept for the 24 h grace");
}

#[test]
fn reprovisions_after_out_of_band_revocation() {
    let mut w = World::new();
    let t = w.target("bi", 0, 0);
    w.targets(&[t]);
    w.rotate(&[], &[]);
    let first = w.assert_secret_works(0, 0, "bi-pat");
    let old_value = w.emu.vault(0).latest("bi-pat").unwrap().value;
    assert!(w.emu.workspace(0).revoke(&first));
    assert!(!w.emu.workspace(0).authenticate_pat(&old_value), "a revoked token is refused");
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0);
    assert_eq!(
        (r[0]["action"].as_str(), r[0]["reason"].as_str()),
        (Some("reprovisioned"), Some("revoked_in_workspace"))
    );
    let second = w.assert_secret_works(0, 0, "bi-pat");
    assert_ne!(first, second);
    assert!(!w.emu.vault(0).latest("bi-pat").unwrap().tags.contains_key("previous-token-id"));
}

#[test]
fn ninety_day_inactivity_revocation_is_repaired() {
    let mut w = World::new();
    let t = w.target("idle", 0, 0);
    w.targets(&[t]);
    w.rotate(&[], &[]);
    // Databricks revokes tokens unused for 90 days; simulate it for everything unused since now.
    let revoked = w.emu.workspace(0).revoke_unused_since(std::time::SystemTime::now() + Duration::from_secs(1));
    assert_eq!(revoked.len(), 1);
    let (_, r) = w.rotate(&[], &[]);
    assert_eq!(r[0]["action"], "reprovisioned");
    w.assert_secret_works(0, 0, "idle-pat");
}

#[test]
fn grace_zero_revokes_at_once_and_grace_positive_later() {
    let mut w = World::with(EmulatorOptions { workspaces: 1, vaults: 1, ..Default::default() });
    let mut zero = w.target("g0", 0, 0);
    zero["revoke_grace_hours"] = json!(0);
    let mut day = w.target("g24", 0, 0);
    day["revoke_grace_hours"] = json!(24);
    w.targets(&[zero, day]);
    w.rotate(&[], &[]);
    let g0_first = w.assert_secret_works(0, 0, "g0-pat");
    let g24_first = w.assert_secret_works(0, 0, "g24-pat");

    let (code, r) = w.rotate(&["--force"], &[]);
    assert_eq!(code, 0);
    assert_eq!(r[0]["action"], "rotated");
    assert_eq!(r[0]["revoked_token_ids"], json!([g0_first]));
    assert!(!w.emu.workspace(0).is_live(&g0_first));
    assert_eq!(r[1]["revoked_token_ids"], json!([]));
    assert!(w.emu.workspace(0).is_live(&g24_first), "kept within the grace period");

    // A secret rotated 25 h ago: its previous token is past the grace and goes in an unchanged run.
    let mut w2 = World::new();
    let t = w2.target("late", 0, 0);
    w2.targets(&[t]);
    let (prev, _) = w2.seed_token(0, &w2.comment("late", 0, "prev"), 70 * DAY, 90 * DAY);
    w2.seed_managed(0, 0, "late", 25 * HOUR, 90 * DAY, Some(&prev));
    let (_, r) = w2.rotate(&[], &[]);
    assert_eq!(r[0]["action"], "unchanged");
    assert_eq!(r[0]["revoked_token_ids"], json!([prev]));
}

#[test]
fn failed_vault_write_deletes_the_new_token_and_leaves_the_old_secret_and_token() {
    let mut w = World::new();
    let mut t = w.target("comp", 0, 0);
    t["revoke_grace_hours"] = json!(0);
    w.targets(&[t]);
    let old = w.seed_managed(0, 0, "comp", 70 * DAY, 90 * DAY, None);
    let before = w.emu.vault(0).versions("comp-pat");
    // A definitive refusal (a 4xx other than 408): the write was not applied.
    w.emu.vault(0).faults().inject(
        "set",
        Fault::status(403).json(json!({"error":{"code":"Forbidden","message":"Operation set is not allowed by vault policy.","innererror":{"code":"ForbiddenByPolicy"}}})),
        usize::MAX,
    );
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 1);
    assert_eq!(r[0]["action"], "failed");
    assert_eq!(r[0]["reason"], "expiring");
    assert_eq!(r[0]["error"]["code"], "keyvault_forbidden");
    assert!(r[0]["error"]["message"].as_str().unwrap().contains("was deleted"), "{}", r[0]["error"]);
    assert_eq!(
        w.live_tokens(0),
        vec![old.clone()],
        "the new token was deleted; the old one is intact even with grace 0"
    );
    assert_eq!(w.emu.vault(0).versions("comp-pat"), before, "secret untouched");
    assert_eq!(w.assert_secret_works(0, 0, "comp-pat"), old);
}

#[test]
fn orphan_sweep_old_revoked_young_kept_foreign_untouched() {
    let mut w = World::new();
    let t = w.target("sweep", 0, 0);
    w.targets(&[t]);
    let cur = w.seed_managed(0, 0, "sweep", DAY, 90 * DAY, None);
    let (old_orphan, _) = w.seed_token(0, &w.comment("sweep", 0, "crashed-run"), 2 * HOUR, 90 * DAY);
    let (young_orphan, _) =
        w.seed_token(0, &w.comment("sweep", 0, "in-flight"), 10 * 60 * Duration::from_secs(1), 90 * DAY);
    let (foreign, _) = w.seed_token(0, "created by hand for a notebook", 400 * DAY, 500 * DAY);
    let (other_target, _) = w.seed_token(0, "pat-rotator/sweep-2/x", 400 * DAY, 500 * DAY);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0);
    assert_eq!(r[0]["action"], "unchanged");
    assert_eq!(r[0]["revoked_token_ids"], json!([old_orphan]));
    let mut want = vec![cur, young_orphan, foreign, other_target];
    want.sort();
    assert_eq!(w.live_tokens(0), want);
}

#[test]
fn management_header_mode_for_an_identity_that_is_not_a_member() {
    let opts = EmulatorOptions {
        workspace: WorkspaceOptions {
            identity_is_member: false,
            identity_is_admin: false,
            auto_provision: false,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut w = World::with(opts);
    let principal = w.emu.workspace(0).principal().to_string();
    w.emu.workspace(0).grant_contributor(&principal);

    // Without the resource id the identity is a stranger to the workspace.
    let t = w.target("mgmt", 0, 0);
    w.targets(std::slice::from_ref(&t));
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 1);
    assert_eq!(r[0]["error"]["code"], "databricks_unauthorized");
    assert!(w.emu.vault(0).latest("mgmt-pat").is_none());

    let mut t = t;
    t["workspace_resource_id"] = json!(w.emu.workspace(0).resource_id());
    w.targets(&[t]);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0, "{r:?}");
    assert_eq!(r[0]["action"], "created");
    w.assert_secret_works(0, 0, "mgmt-pat");
    assert!(!w.emu.workspace(0).is_member(&principal), "it worked through the headers, not membership");
    let (_, r) = w.rotate(&[], &[]);
    assert_eq!(r[0]["action"], "unchanged");
}

#[test]
fn many_targets_across_two_workspaces_and_two_vaults() {
    let mut w = World::with(EmulatorOptions { workspaces: 2, vaults: 2, ..Default::default() });
    let targets = vec![w.target("a", 0, 0), w.target("b", 1, 0), w.target("c", 0, 1), w.target("d", 1, 1)];
    w.targets(&targets);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0, "{r:?}");
    assert!(r.iter().all(|o| o["action"] == "created"));
    let names: Vec<&str> = r.iter().map(|o| o["target"].as_str().unwrap()).collect();
    assert_eq!(names, ["a", "b", "c", "d"], "results in configuration order");
    for (name, ws, kv) in [("a", 0, 0), ("b", 1, 0), ("c", 0, 1), ("d", 1, 1)] {
        w.assert_secret_works(kv, ws, &format!("{name}-pat"));
        assert!(w.emu.vault(1 - kv).latest(&format!("{name}-pat")).is_none());
    }
    assert_eq!(w.live_tokens(0).len(), 2);
    assert_eq!(w.live_tokens(1).len(), 2);

    // --target selects; an unknown one is a usage error that changes nothing.
    w.reset_calls();
    let (code, r) = w.rotate(&["--target", "c", "--force"], &[]);
    assert_eq!(code, 0);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["action"], "rotated");
    w.reset_calls();
    let o = w.cli(&["rotate", "--target", "nope"], &[]);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("\"nope\" is not a configured target"), "{}", o.stderr);
    assert_eq!(w.upstream_calls(), 0);
}

#[test]
fn provision_pat_bad_requests_get_4xx_and_cause_no_upstream_call() {
    let mut w = World::new();
    let t = w.target("adf", 0, 0);
    w.targets(&[t]);
    let h = w.serve(&[]);
    let big = format!("{{\"target\":\"adf\",\"pad\":\"{}\"}}", "x".repeat(70 * 1024));
    let cases: Vec<(Option<&str>, Vec<u8>, u16, &str)> = vec![
        (Some("application/json"), b"{not json".to_vec(), 400, "invalid_request"),
        (Some("application/json"), br#"{"target": 5}"#.to_vec(), 400, "invalid_request"),
        (Some("application/json"), br#"{"target":"adf","force":"yes"}"#.to_vec(), 400, "invalid_request"),
        (
            Some("application/json"),
            br#"{"target":"adf","key_vault_url":"https://evil"}"#.to_vec(),
            400,
            "invalid_request",
        ),
        (Some("application/json"), br#"{"force":true}"#.to_vec(), 400, "invalid_request"),
        (Some("application/json"), b"".to_vec(), 400, "invalid_request"),
        (Some("application/json"), b"[\"adf\"]".to_vec(), 400, "invalid_request"),
        (Some("text/plain"), br#"{"target":"adf"}"#.to_vec(), 415, "invalid_request"),
        (Some("application/json"), big.into_bytes(), 413, "invalid_request"),
        (Some("application/json"), br#"{"target":"nope"}"#.to_vec(), 404, "unknown_target"),
        (Some("application/json"), br#"{"target":"../adf"}"#.to_vec(), 404, "unknown_target"),
        (Some("application/json"), br#"{"target":"adf/../../secrets"}"#.to_vec(), 404, "unknown_target"),
        (Some("application/json"), br#"{"target":"https://127.0.0.1/adf"}"#.to_vec(), 404, "unknown_target"),
        (Some("application/json"), br#"{"target":"ADF"}"#.to_vec(), 404, "unknown_target"),
    ];
    for (ct, body, status, code) in cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).to_string();
        let r = h.provision_raw(ct, body);
        assert_eq!(r.status, status, "{shown}: {}", r.text);
        assert_eq!(r.json()["error"]["code"], code, "{shown}");
        assert!(r.headers["content-type"].to_str().unwrap().starts_with("application/json"));
    }
    assert_eq!(h.get("/api/ProvisionPat").status, 405);
    assert_eq!(w.upstream_calls(), 0, "no request reached identity, workspace or vault");
    // And a good one does.
    let r = h.provision(json!({"target": "adf"}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["action"], "created");
}

#[test]
fn provision_pat_force_dry_run_and_the_host_envelope() {
    let mut w = World::new();
    let t = w.target("adf", 0, 0);
    w.targets(&[t]);
    // No force cooldown here: a forced request right after the first one rotates.
    let h = w.serve(&[("PAT_FORCE_COOLDOWN_MINUTES", "0")]);
    let r = h.provision(json!({"target": "adf", "dry_run": true}));
    assert_eq!((r.status, r.json()["action"].as_str()), (200, Some("planned")));
    assert!(w.emu.vault(0).latest("adf-pat").is_none(), "a dry run changes nothing");
    let r = h.provision(json!({"target": "adf"}));
    let created = r.json();
    assert_eq!(created["action"], "created");
    let keys: Vec<&String> = created.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["target", "action", "reason", "secret_id", "token_id", "expires_at", "revoked_token_ids", "error"]
    );
    let r = h.provision(json!({"target": "adf", "force": false}));
    assert_eq!(r.json()["action"], "unchanged");
    let r = h.provision(json!({"target": "adf", "force": true}));
    assert_eq!((r.json()["action"].as_str(), r.json()["reason"].as_str()), (Some("rotated"), Some("forced")));
    w.assert_secret_works(0, 0, "adf-pat");

    // Non-forwarded mode: the host's JSON envelope in, Outputs.res out.
    let env = json!({ "Data": { "req": { "Url": "https://app/api/ProvisionPat", "Method": "POST", "Query": {},
        "Headers": { "Content-Type": ["application/json"] }, "Body": "{\"target\":\"adf\"}" } },
        "Metadata": { "sys": { "MethodName": "ProvisionPat", "UtcNow": "2026-11-26T03:00:00Z" } } });
    let r = h.post_raw("/ProvisionPat", "application/json", env.to_string());
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["Outputs"]["res"]["statusCode"], 200);
    assert_eq!(v["Outputs"]["res"]["headers"]["Content-Type"], "application/json");
    assert_eq!(v["Outputs"]["res"]["body"]["action"], "unchanged");
}

#[test]
fn rotate_pat_timer_through_the_host_protocol() {
    let mut w = World::with(EmulatorOptions { workspaces: 1, vaults: 2, ..Default::default() });
    let good = w.target("good", 0, 0);
    let bad = w.target("bad", 0, 1);
    w.targets(&[good, bad]);
    let principal = w.emu.workspace(0).principal().to_string();
    w.emu.vault(1).set_role(&principal, Role::User);
    let h = w.serve(&[]);
    assert!(h.ready_after < Duration::from_secs(5));

    let r = h.invoke_timer(true);
    assert_eq!(r.status, 500, "one target failed: {}", r.text);
    let v = r.json();
    assert_eq!(v["failed_targets"], json!(["bad"]));
    assert_eq!(v["error"]["code"], "keyvault_forbidden");
    assert!(v["Logs"].as_array().unwrap().len() == 2);
    w.assert_secret_works(0, 0, "good-pat");
    assert_eq!(w.live_tokens(0).len(), 1, "the failed target's new token was deleted");

    w.emu.vault(1).set_role(&principal, Role::Officer);
    let r = h.invoke_timer(false);
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.headers["content-type"].to_str().unwrap().starts_with("application/json"));
    let v = r.json();
    assert_eq!(v["Outputs"], json!({}));
    assert_eq!(v["ReturnValue"], serde_json::Value::Null);
    let logs: Vec<&str> = v["Logs"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    assert!(logs[0].starts_with("good: unchanged"), "{logs:?}");
    assert!(logs[1].starts_with("bad: created"), "{logs:?}");
    assert_eq!(h.stop(), 0, "SIGTERM is a clean exit");
}

#[test]
fn configuration_errors() {
    let mut w = World::new();
    let mut t = w.target("x", 0, 0);
    t["secret_name"] = json!("my_secret");
    let t2 = w.target("y", 0, 0);
    w.targets(&[t2, t]);
    let o = w.cli(&["check-config"], &[]);
    assert_eq!(o.code, 2);
    assert!(
        o.stderr.contains("targets[1].secret_name: \"my_secret\" is not a valid Key Vault secret name"),
        "{}",
        o.stderr
    );
    let o = w.cli(&["rotate"], &[]);
    assert_eq!(o.code, 2);
    let o = w.cli(&["rotate", "--json"], &[]);
    assert_eq!(o.code, 2);
    assert_eq!(o.json()["error"]["code"], "config_invalid");
    assert_eq!(w.upstream_calls(), 0);

    // serve starts anyway and answers every invocation with the error.
    let h = w.serve(&[]);
    assert_eq!(h.get("/").status, 200);
    let r = h.invoke_timer(true);
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["error"]["code"], "config_invalid");
    let r = h.provision(json!({"target": "y"}));
    assert_eq!(r.status, 500);
    // The body says only the code's fixed sentence (contract §3); the problem is in the log.
    assert_eq!(
        r.json()["error"]["message"],
        pat_rotator::handler::public::sentence(pat_rotator::error::Code::ConfigInvalid)
    );
    assert!(eventually(Duration::from_secs(5), || h.log().contains("targets[1].secret_name")), "{}", h.log());
    assert_eq!(w.upstream_calls(), 0);

    // Usage errors are exit 2 too.
    assert_eq!(w.cli(&["rotate", "--bogus"], &[]).code, 2);
    let o = w.cli(
        &["check-config"],
        &[("PAT_TARGETS", ""), ("DATABRICKS_HOST", "adb-1.1.azuredatabricks.net"), ("KEY_VAULT_NAME", "v")],
    );
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("KEY_VAULT_NAME"), "{}", o.stderr);
}

#[test]
fn flat_single_target_settings_and_status() {
    let mut w = World::new();
    let ws = w.emu.workspace(0).url().to_string();
    let kv = w.emu.vault(0).url().to_string();
    w.set("DATABRICKS_HOST", &ws)
        .set("KEY_VAULT_URL", &kv)
        .set("PAT_LIFETIME_DAYS", "30")
        .set("PAT_RENEW_BEFORE_DAYS", "10");
    let o = w.cli(&["check-config"], &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("default"));
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0);
    assert_eq!(r[0]["target"], "default");
    let id = w.assert_secret_works(0, 0, "databricks-pat");
    let o = w.cli(&["status", "--json"], &[]);
    assert_eq!(o.code, 0);
    let s = o.json();
    assert_eq!(s[0]["token_id"], id.as_str());
    assert_eq!(s[0]["token_exists"], true);
    assert_eq!(s[0]["days_left"], 29);
    w.emu.workspace(0).revoke(&id);
    let o = w.cli(&["status"], &[]);
    assert!(o.stdout.contains("NO"), "{}", o.stdout);
    assert_eq!(kv_writes(&w, 0), 1, "status never writes");
}

#[test]
fn foreign_secret_is_superseded_not_overwritten() {
    let mut w = World::new();
    let t = w.target("legacy", 0, 0);
    w.targets(&[t]);
    let (_, hand_value) = w.seed_token(0, "made by the old bash script", 30 * DAY, 365 * DAY);
    w.emu.vault(0).seed_secret("legacy-pat", &hand_value, None, &[], None);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0);
    assert_eq!((r[0]["action"].as_str(), r[0]["reason"].as_str()), (Some("rotated"), Some("foreign_secret")));
    let versions = w.emu.vault(0).versions("legacy-pat");
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0].value, hand_value, "old version left alone");
    assert!(w.emu.workspace(0).authenticate_pat(&hand_value), "the foreign token is not ours to revoke");
}

#[test]
fn check_config_warns_about_the_token_quota_and_the_inactivity_rule() {
    let w = World::new();
    let many: Vec<serde_json::Value> = (0..260).map(|i| w.target(&format!("t{i}"), 0, 0)).collect();
    let o = w.cli(&["check-config"], &[("PAT_TARGETS", &serde_json::to_string(&many).unwrap())]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("warning: 260 pat targets share workspace"), "{}", o.stderr);
    let mut long = w.target("long", 0, 0);
    long["lifetime_days"] = json!(365);
    long["renew_before_days"] = json!(30);
    let o = w.cli(&["check-config"], &[("PAT_TARGETS", &json!([long]).to_string())]);
    assert!(o.stderr.contains("warning: long: tokens are replaced every 335 days"), "{}", o.stderr);
    assert!(!o.stderr.contains("share workspace"), "{}", o.stderr);
}
