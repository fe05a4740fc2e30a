//! The review findings of the safety issue, each through the real binary against the emulators:
//! every test here failed on the code before the fix (see the closing note of that issue for the
//! assertion each one broke), and `--revoke-superseded`, the incident-response flag.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

fn code_of(r: &[Value]) -> &str {
    r[0]["error"]["code"].as_str().unwrap_or("")
}

fn not_found() -> Fault {
    Fault::status(404).json(json!({"error": {"code": "SecretNotFound", "message": "A secret with (name/id) t-pat was not found in this key vault."}}))
}

/// Finding 1: Key Vault answers 404 briefly while a secret is being recovered. The run that read
/// "absent" used to take it as proof that no version names any token, and revoked the one
/// consumers hold right after writing.
#[test]
fn a_404_read_is_no_proof() {
    let w = World::one_target(&[("revoke_grace_hours", json!(0))]);
    let cur = w.seed_managed(0, 0, "t", 5 * DAY, 90 * DAY, None);
    // The read (and the SDK's challenge before it) answers 404; the secret is there for the write.
    w.emu.vault(0).faults().inject("get", not_found(), 1);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!((code, r[0]["action"].as_str()), (0, Some("created")), "{r:?}");
    assert_eq!(r[0]["revoked_token_ids"], json!([]), "{r:?}");
    assert!(w.emu.workspace(0).is_live(&cur), "the token consumers held was revoked on a 404");
}

/// Finding 1, at the token quota with a soft-deleted secret: the quota path revoked the token
/// consumers hold (the read said "absent") and then failed on the deleted name.
#[test]
fn a_soft_deleted_secret_at_the_quota_revokes_nothing() {
    let w = World::one_target(&[]);
    let cur = w.seed_managed(0, 0, "t", 5 * DAY, 90 * DAY, None);
    w.seed_token(0, &w.comment("t", 0, "older"), 3 * DAY, 90 * DAY);
    w.emu.workspace(0).set_token_quota(2);
    w.emu.vault(0).soft_delete("t-pat");
    let (code, r) = w.rotate(&["--force"], &[]);
    assert_eq!((code, code_of(&r)), (1, "databricks_quota_exceeded"), "{r:?}");
    assert_eq!(r[0]["revoked_token_ids"], json!([]), "{r:?}");
    assert!(w.emu.workspace(0).is_live(&cur), "the consumers' token was revoked at the quota");
    assert!(r[0]["error"]["message"].as_str().unwrap().contains("absent"), "{r:?}");
}

/// Finding 2: pointing a target at a new secret used to make the old secret's token, which its
/// consumers still read, an orphan an hour later.
#[test]
fn a_renamed_secret_keeps_the_old_secrets_token() {
    let mut w = World::new();
    let mut t = w.target("t", 0, 0);
    w.targets(&[t.clone()]);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0, "{r:?}");
    let old = r[0]["token_id"].as_str().unwrap().to_string();
    t["secret_name"] = json!("t-pat-v2");
    w.targets(&[t]);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!((code, r[0]["action"].as_str()), (0, Some("created")), "{r:?}");
    // A day and more later, the old token is an hour-old unrecorded token of target "t".
    w.emu.workspace(0).age_tokens(2 * DAY);
    w.emu.vault(0).age_secret("t-pat-v2", 2 * DAY);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0, "{r:?}");
    assert!(!r[0]["revoked_token_ids"].as_array().unwrap().contains(&json!(old)), "{r:?}");
    assert!(w.emu.workspace(0).is_live(&old), "the old secret's token was revoked as an orphan");
    assert_eq!(w.assert_secret_works(0, 0, "t-pat"), old, "consumers of the old secret still work");
}

/// Finding 2: two deployments with flat settings (both targets `default`) on one identity and
/// workspace revoked each other's tokens every day.
#[test]
fn two_flat_deployments_on_one_identity_leave_each_other_alone() {
    let w = World::with(pat_rotator_emulators::EmulatorOptions { vaults: 2, ..Default::default() });
    let flat = |kv: usize| {
        vec![
            ("DATABRICKS_HOST".to_string(), w.emu.workspace(0).url().to_string()),
            ("KEY_VAULT_URL".to_string(), w.emu.vault(kv).url().to_string()),
        ]
    };
    let run = |kv: usize| {
        let env = flat(kv);
        let extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        w.rotate(&[], &extra)
    };
    let (c0, a) = run(0);
    let (c1, b) = run(1);
    assert_eq!((c0, c1), (0, 0), "{a:?} {b:?}");
    let (ta, tb) = (a[0]["token_id"].as_str().unwrap().to_string(), b[0]["token_id"].as_str().unwrap().to_string());
    for _day in 0..3 {
        w.emu.workspace(0).age_tokens(DAY + HOUR);
        w.emu.vault(0).age_secret("databricks-pat", DAY + HOUR);
        w.emu.vault(1).age_secret("databricks-pat", DAY + HOUR);
        let (c0, a) = run(0);
        let (c1, b) = run(1);
        assert_eq!((c0, c1), (0, 0), "{a:?} {b:?}");
        assert_eq!((a[0]["revoked_token_ids"].clone(), b[0]["revoked_token_ids"].clone()), (json!([]), json!([])));
    }
    assert!(w.emu.workspace(0).is_live(&ta) && w.emu.workspace(0).is_live(&tb));
    assert_eq!(w.assert_secret_works(0, 0, "databricks-pat"), ta);
    assert_eq!(w.assert_secret_works(1, 0, "databricks-pat"), tb);
}

/// Finding 3: `az keyvault secret set-attributes --tags` replaces every tag. A latest version
/// that still names its token but lost `managed-by` protected nothing: its token was revoked
/// in the very run that superseded it.
#[test]
fn a_retagged_latest_version_still_protects_its_token() {
    let w = World::one_target(&[]);
    let cur = w.seed_managed(0, 0, "t", 5 * DAY, 90 * DAY, None);
    let kv = w.emu.vault(0);
    let value = "dapi-not-used";
    kv.seed_secret("t-pat", value, Some("databricks-pat"), &[("databricks-token-id", cur.as_str())], None);
    kv.age_latest_version("t-pat", 2 * DAY);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!((code, r[0]["reason"].as_str()), (0, Some("foreign_secret")), "{r:?}");
    assert_eq!(r[0]["revoked_token_ids"], json!([]), "{r:?}");
    assert!(w.emu.workspace(0).is_live(&cur), "the retagged version's token was revoked at once");
    assert!(w.revocations_inside_grace(0, 0, "t-pat", DAY).is_empty());
}

/// Finding 4: a write that timed out was taken as one that did not land: the new token was
/// deleted after a read-back showed the old version, then the PUT landed and the vault named a
/// dead token.
#[test]
fn a_timed_out_write_that_lands_later_names_a_live_token() {
    let w = World::one_target(&[]);
    w.seed_managed(0, 0, "t", 70 * DAY, 90 * DAY, None);
    // The PUT is answered after 3 s (and applied then); the client gives up after 1 s.
    w.emu.vault(0).faults().inject("set", Fault::delay(Duration::from_secs(3)), 1);
    let (code, r) = w.rotate(&[], &[("PAT_CALL_TIMEOUT_SECONDS", "1"), ("PAT_RETRY_ATTEMPTS", "1")]);
    assert_eq!(code, 1, "{r:?}");
    let new = r[0]["error"]["message"].as_str().unwrap().to_string();
    assert!(new.contains("kept"), "{r:?}");
    assert!(eventually(Duration::from_secs(10), || w.emu.vault(0).versions("t-pat").len() == 2), "the PUT landed");
    // The vault names the new token, and it works.
    w.assert_secret_works(0, 0, "t-pat");
}

/// Finding 6: seven forced ProvisionPat calls in a second used to push the 6-token cap into
/// revoking the token a consumer had just read.
#[test]
fn forced_provisions_cannot_push_the_cap() {
    let w = World::one_target(&[]);
    let cur = w.seed_managed(0, 0, "t", 2 * DAY, 90 * DAY, None);
    let h = w.serve(&[]);
    let mut reasons = Vec::new();
    for _ in 0..7 {
        let r = h.provision(json!({"target": "t", "force": true}));
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["revoked_token_ids"], json!([]), "{}", r.text);
        reasons.push(r.json()["reason"].as_str().unwrap().to_string());
    }
    assert_eq!(reasons[0], "forced");
    assert!(reasons[1..].iter().all(|r| r == "recently_rotated"), "{reasons:?}");
    assert!(w.emu.workspace(0).is_live(&cur), "the token consumers held was revoked");
    assert_eq!(w.live_tokens(0).len(), 2);
    // The CLI is not held back by the cooldown.
    let (code, r) = w.rotate(&["--force"], &[]);
    assert_eq!((code, r[0]["reason"].as_str()), (0, Some("forced")), "{r:?}");
}

/// Finding 7: a URL with credentials in it was echoed whole in the configuration error, in
/// every HTTP 500 body and in the log.
#[test]
fn url_credentials_are_never_echoed() {
    let mut w = World::new();
    let mut t = w.target("t", 0, 0);
    t["workspace_url"] = json!("https://admin:hunter2-PASSWORD@adb-1.2.azuredatabricks.net/?token=q-SECRET#frag");
    t["key_vault_url"] = json!("https://user:kv-PASSWORD@myvault.vault.azure.net");
    w.targets(&[t]);
    let out = w.cli(&["check-config"], &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let all = format!("{}{}", out.stdout, out.stderr);
    for secret in ["hunter2-PASSWORD", "q-SECRET", "kv-PASSWORD", "admin:", "user:"] {
        assert!(!all.contains(secret), "{secret} echoed: {all}");
    }
    assert!(all.contains("workspace_url") && all.contains("https://adb-1.2.azuredatabricks.net"), "{all}");
    let h = w.serve(&[]);
    let r = h.provision(json!({"target": "t"}));
    assert_eq!(r.status, 500);
    let log = h.log();
    for secret in ["hunter2-PASSWORD", "q-SECRET", "kv-PASSWORD"] {
        assert!(!r.text.contains(secret) && !log.contains(secret), "{secret} echoed: {} {log}", r.text);
    }
}

/// Finding 8: a disabled latest version blocked rotation forever (even `--force`) as
/// `keyvault_forbidden`. Consumers cannot read it: a working version is written, and its token
/// is kept through the grace.
#[test]
fn a_disabled_latest_version_is_replaced() {
    let w = World::one_target(&[]);
    let cur = w.seed_managed(0, 0, "t", 5 * DAY, 90 * DAY, None);
    let kv = w.emu.vault(0);
    let version = kv.latest("t-pat").unwrap().version;
    kv.set_enabled("t-pat", &version, false);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0, "{r:?}");
    assert_eq!((r[0]["action"].as_str(), r[0]["reason"].as_str()), (Some("rotated"), Some("disabled_secret")));
    assert_eq!(r[0]["revoked_token_ids"], json!([]));
    assert!(w.emu.workspace(0).is_live(&cur));
    w.assert_secret_works(0, 0, "t-pat");
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!((code, r[0]["action"].as_str()), (0, Some("unchanged")), "{r:?}");
}

/// Incident response: `--revoke-superseded` revokes every other token of the target once the
/// new version is written, grace or not, with a warning naming each; CLI only.
#[test]
fn revoke_superseded_is_incident_response() {
    let w = World::one_target(&[]);
    let prev = w.seed_token(0, &w.comment("t", 0, "prev"), 3 * DAY, 90 * DAY).0;
    let cur = w.seed_managed(0, 0, "t", HOUR, 90 * DAY, Some(&prev));
    let (foreign, _) = w.seed_token(0, "a notebook's token", DAY, 90 * DAY);
    // Usage: only with --force and a --target.
    assert_eq!(w.cli(&["rotate", "--revoke-superseded", "--target", "t"], &[]).code, 2);
    assert_eq!(w.cli(&["rotate", "--revoke-superseded", "--force"], &[]).code, 2);
    let out = w.cli(&["rotate", "--revoke-superseded", "--force", "--json"], &[]);
    assert_eq!((out.code, out.json()["error"]["code"].as_str()), (2, Some("invalid_request")), "{}", out.stdout);
    let (code, r) = w.rotate(&["--force", "--target", "t", "--revoke-superseded"], &[]);
    assert_eq!((code, r[0]["action"].as_str()), (0, Some("rotated")), "{r:?}");
    let mut revoked: Vec<String> =
        r[0]["revoked_token_ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    revoked.sort();
    let mut want = vec![cur.clone(), prev.clone()];
    want.sort();
    assert_eq!(revoked, want);
    let warnings = r[0]["warnings"].to_string();
    assert!(warnings.contains(&cur) && warnings.contains(&prev), "{warnings}");
    let new = w.assert_secret_works(0, 0, "t-pat");
    let mut live = w.live_tokens(0);
    live.sort();
    let mut want = vec![new, foreign];
    want.sort();
    assert_eq!(live, want);
    // ProvisionPat never offers it.
    let h = w.serve(&[]);
    let r = h.provision(json!({"target": "t", "force": true, "revoke_superseded": true}));
    assert_eq!(r.status, 400, "{}", r.text);
}

/// Finding 5: a workspace answer without `Date` fell back to the host clock. With the host
/// clock two hours fast, another instance's rotation in flight (a token of ours ten minutes
/// old, not yet written) was revoked as an orphan.
#[test]
#[cfg_attr(not(has_faketime), ignore = "skipped: libfaketime is not installed (apt-get install faketime)")]
fn an_answer_without_date_proves_no_age() {
    let lib =
        ["/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1", "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("libfaketime");
    let w = World::one_target(&[]);
    w.seed_managed(0, 0, "t", 2 * DAY, 90 * DAY, None);
    let in_flight = w.seed_token(0, &w.comment("t", 0, "other-instance"), Duration::from_secs(600), 90 * DAY).0;
    w.emu.workspace(0).omit_date("list", usize::MAX);
    let faked = [("LD_PRELOAD", lib), ("FAKETIME", "+2h"), ("FAKETIME_DONT_FAKE_MONOTONIC", "1")];
    let o = w.cli(&["rotate", "--json"], &faked);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let r = o.json();
    assert_eq!(r[0]["action"], "unchanged", "{r}");
    assert_eq!(r[0]["revoked_token_ids"], json!([]), "{r}");
    assert!(w.emu.workspace(0).is_live(&in_flight), "a rotation in flight was revoked on the local clock");
}
