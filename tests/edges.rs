//! Issue 21, part 1: six ways the promise broke at its edges, and three lows, each through the
//! real binary against the emulators. Every test here failed on commit 0eb07ab (the closing note
//! of the issue quotes the assertion each one broke; `PAT_ROTATOR_BIN` runs them against that
//! build).

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use serde_json::{Value, json};

const APP: &str = "0c0c0c0c-2222-4222-8222-cccccccccccc";

fn ids(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

/// Copies the latest version of `from` into secret `to` of vault `kv`, value and tags, as a
/// backup restore or a sync tool would.
fn copy_latest(w: &World, kv: usize, from: &str, to: &str) {
    let v = w.emu.vault(kv).latest(from).unwrap_or_else(|| panic!("no {from}"));
    let tags: Vec<(&str, &str)> = v.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    w.emu.vault(kv).seed_secret(to, &v.value, v.content_type.as_deref(), &tags, v.exp);
}

/// Every piece of `SCRUB` characters of every credential value the emulators issued, in the
/// forms contract §10 names, found in `text`.
fn pieces_in(w: &World, text: &str) -> Vec<String> {
    const SCRUB: usize = 8;
    let mut found = Vec::new();
    for s in w.secrets() {
        let chars: Vec<char> = s.chars().collect();
        for piece in chars.windows(SCRUB).map(|p| p.iter().collect::<String>()) {
            let json = serde_json::to_string(&piece).unwrap();
            for form in [piece.clone(), json.trim_matches('"').to_string()] {
                if text.contains(&form) {
                    found.push(form);
                }
            }
        }
        let b64 = base64(s.as_bytes());
        if text.contains(&b64[..b64.len().min(16)]) {
            found.push(b64);
        }
    }
    found.sort();
    found.dedup();
    found
}

fn base64(input: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() { A[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
        }
    }
    out
}

/// Finding 1: two targets on one identity and workspace; an operator copied `ta`'s latest
/// version into `tb`'s secret. `ta`'s forced rotations pushed the cap into the token `tb`'s
/// consumers read; after the grace, `ta`'s sweep revoked it; `--revoke-superseded` too.
#[test]
fn a_copied_version_protects_its_token_in_every_sweep() {
    let mut w = World::new();
    let (ta, tb) = (w.target("ta", 0, 0), w.target("tb", 0, 0));
    w.targets(&[ta, tb]);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0, "{r:?}");
    let shared = r[0]["token_id"].as_str().unwrap().to_string();
    copy_latest(&w, 0, "ta-pat", "tb-pat");
    assert_eq!(w.assert_secret_works(0, 0, "tb-pat"), shared, "tb's consumers read ta's token");
    // Older than the tokens to come, so the cap's "oldest first" picks it.
    w.emu.workspace(0).age_tokens(HOUR);

    // The cap: six forced rotations of ta leave seven live tokens of ta; one must go.
    for i in 0..6 {
        let (code, r) = w.rotate(&["--force", "--target", "ta"], &[]);
        assert_eq!(code, 0, "{i}: {r:?}");
        assert!(!ids(&r[0]["revoked_token_ids"]).contains(&shared), "{i}: the cap revoked tb's token: {r:?}");
    }
    assert!(w.emu.workspace(0).is_live(&shared), "the cap revoked the token tb's latest version names");

    // The grace: two days on, ta's sweep would take every superseded token of ta.
    w.emu.workspace(0).age_tokens(2 * DAY);
    w.emu.vault(0).age_secret("ta-pat", 2 * DAY);
    let (code, r) = w.rotate(&["--target", "ta"], &[]);
    assert_eq!((code, r[0]["action"].as_str()), (0, Some("unchanged")), "{r:?}");
    assert!(!ids(&r[0]["revoked_token_ids"]).contains(&shared), "{r:?}");
    assert!(!ids(&r[0]["revoked_token_ids"]).is_empty(), "ta's own superseded tokens go: {r:?}");
    assert!(r[0]["warnings"].to_string().contains("tb-pat"), "the warning names the secret: {r:?}");

    // Incident response revokes every other token of ta — but not that one.
    let (code, r) = w.rotate(&["--force", "--target", "ta", "--revoke-superseded"], &[]);
    assert_eq!(code, 0, "{r:?}");
    assert!(!ids(&r[0]["revoked_token_ids"]).contains(&shared), "{r:?}");

    // tokens --revoke agrees.
    let out = w.cli(&["tokens", "--revoke", &shared], &[]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert_eq!(w.assert_secret_works(0, 0, "tb-pat"), shared, "tb's consumers still work");
}

/// Finding 1, OAuth secrets: two targets on one principal, `spa`'s latest version copied into
/// `spb`'s secret. With grace 0, `spa`'s forced rotation deleted the secret `spb`'s consumers
/// sign in with, right after its write.
#[test]
fn a_copied_oauth_version_protects_its_secret() {
    let mut w = World::new();
    w.emu.add_oauth_service_principal(APP, "etl principal");
    let target = |name: &str| {
        let mut t = w.target(name, 0, 0);
        t["kind"] = json!("sp_oauth_secret");
        t["service_principal"] = json!(APP);
        t["revoke_grace_hours"] = json!(0);
        t
    };
    let (spa, spb) = (target("spa"), target("spb"));
    w.targets(&[spa, spb]);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0, "{r:?}");
    let shared = r[0]["token_id"].as_str().unwrap().to_string();
    copy_latest(&w, 0, "spa-pat", "spb-pat");
    let (code, r) = w.rotate(&["--force", "--target", "spa"], &[]);
    assert_eq!((code, r[0]["action"].as_str()), (0, Some("rotated")), "{r:?}");
    assert!(!ids(&r[0]["revoked_token_ids"]).contains(&shared), "{r:?}");
    let v = w.emu.vault(0).latest("spb-pat").unwrap();
    assert!(w.emu.workspace(0).sp_secret_works(APP, &v.value), "spb's consumers can no longer sign in");
}

/// Contract §7.4(a): a failed or absent read of another secret that may name this target's
/// tokens blocks every revocation, with a warning naming that secret.
#[test]
fn an_unreadable_sibling_secret_blocks_every_revocation() {
    let mut w = World::new();
    let mut ta = w.target("ta", 0, 0);
    ta["revoke_grace_hours"] = json!(0);
    let tb = w.target("tb", 0, 0);
    w.targets(&[ta, tb]);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0, "{r:?}");
    let first = r[0]["token_id"].as_str().unwrap().to_string();
    // tb's secret is soft-deleted: after a recovery, its versions may name any of ta's tokens.
    w.emu.vault(0).soft_delete("tb-pat");
    let (code, r) = w.rotate(&["--force", "--target", "ta"], &[]);
    assert_eq!((code, r[0]["action"].as_str()), (0, Some("rotated")), "{r:?}");
    assert_eq!(r[0]["revoked_token_ids"], json!([]), "{r:?}");
    assert!(w.emu.workspace(0).is_live(&first), "revoked while tb's secret could not be read");
    let warnings = r[0]["warnings"].to_string();
    assert!(warnings.contains("tb-pat") && warnings.contains("absent"), "{warnings}");
}

/// Finding 2: a disabled latest version written in the same second as the one before it. The
/// versions list (in no particular order) gave both; the tie was broken by the random version
/// id, and when that picked the older, enabled one, the disabled version was never replaced
/// and, after the grace, the token it names was revoked.
#[test]
fn a_disabled_version_tied_in_its_second_is_replaced_and_both_tokens_kept() {
    let mut w = World::new();
    let kv = w.emu.vault(0);
    let url = kv.url().to_string();
    let then = SystemTime::now() - 2 * DAY;
    // Find a secret name whose two versions of one second sort the older one first by id,
    // the case the old tie-break got wrong (half of all cases).
    let mut attempt = 0;
    let (name, a, b) = loop {
        attempt += 1;
        assert!(attempt < 50, "the version ids never came out in the order wanted");
        let name = format!("t-pat-{attempt}");
        let key = pat_rotator::databricks::pat::secret_key(&url, &name);
        let comment = |att: &str| pat_rotator::databricks::pat::comment("t", &key, att);
        let (a, a_value) = w.seed_token(0, &comment("a"), 2 * DAY, 90 * DAY);
        let (b, b_value) = w.seed_token(0, &comment("b"), 2 * DAY, 90 * DAY);
        let tags = |id: &str| vec![("managed-by", "pat-rotator".to_string()), ("databricks-token-id", id.to_string())];
        kv.freeze_clock(Some(then));
        let ta = tags(&a);
        let tb = tags(&b);
        let older = kv.seed_secret(
            &name,
            &a_value,
            Some("databricks-pat"),
            &ta.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>(),
            None,
        );
        let newer = kv.seed_secret(
            &name,
            &b_value,
            Some("databricks-pat"),
            &tb.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>(),
            None,
        );
        kv.freeze_clock(None);
        if older > newer {
            kv.set_enabled(&name, &newer, false);
            break (name, a, b);
        }
    };
    let mut t = w.target("t", 0, 0);
    t["secret_name"] = json!(name);
    w.targets(&[t]);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0, "{r:?}");
    assert_eq!(
        (r[0]["action"].as_str(), r[0]["reason"].as_str()),
        (Some("rotated"), Some("disabled_secret")),
        "the disabled latest version was not replaced: {r:?}"
    );
    let latest = w.emu.vault(0).latest(&name).unwrap();
    assert!(latest.enabled);
    assert_eq!(latest.tags["previous-token-id"], a, "the tied version with the greatest id");
    assert!(w.emu.workspace(0).is_live(&a) && w.emu.workspace(0).is_live(&b), "both were 'the latest' when read");
    // The next run: nothing to do, and both are still inside their grace.
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!((code, r[0]["action"].as_str()), (0, Some("unchanged")), "{r:?}");
    assert!(w.emu.workspace(0).is_live(&a) && w.emu.workspace(0).is_live(&b), "{r:?}");
}

/// Finding 3: a Key Vault PUT answered 502 by a gateway and applied seconds later. The run took
/// the 502 for a refusal, deleted the new token and said the secret was unchanged; then the
/// write landed, naming the deleted token.
#[test]
fn a_502_whose_write_lands_later_keeps_the_token() {
    let w = World::one_target(&[]);
    let old = w.seed_managed(0, 0, "t", 70 * DAY, 90 * DAY, None);
    let kv = w.emu.vault(0);
    kv.faults().inject("set", Fault::bad_gateway().performed_after(Duration::from_secs(3)), 1);
    // Every retry meets the gateway too, and none of those lands.
    kv.faults().inject("set", Fault::bad_gateway(), usize::MAX);
    let (code, r) = w.rotate(&[], &[("PAT_RETRY_ATTEMPTS", "3")]);
    assert_eq!((code, r[0]["action"].as_str()), (1, Some("failed")), "{r:?}");
    let message = r[0]["error"]["message"].as_str().unwrap().to_string();
    kv.faults().clear();
    assert!(eventually(Duration::from_secs(15), || kv.versions("t-pat").len() == 2), "the 502'd write landed");
    let now_named = w.assert_secret_works(0, 0, "t-pat");
    assert_ne!(now_named, old);
    assert!(!message.contains("unchanged"), "an unknown outcome is no 'unchanged': {message}");
    assert!(message.contains("kept"), "{message}");
    // The next run finds it recorded.
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!((code, r[0]["action"].as_str()), (0, Some("unchanged")), "{r:?}");
    assert_eq!(r[0]["token_id"].as_str(), Some(now_named.as_str()));
}

/// Found by the simulator's invariant 13 (seeds 12 and 20): a forced run's first read met a
/// spurious 404 (Key Vault answers 404 briefly for a secret that exists, during recovery); its
/// write then failed, and reading back found the version that had been there all along. The run
/// called it a concurrent rotation's and ended `unchanged`/`fresh` with exit 0: a refused write
/// went unreported, and a write of unknown outcome was given up instead of retried.
#[test]
fn a_version_there_before_a_spurious_404_is_no_concurrent_rotation() {
    let not_found = || {
        Fault::status(404).json(json!({"error": {"code": "SecretNotFound", "message": "A secret with (name/id) t-pat was not found in this key vault."}}))
    };
    // A refused write: the run fails and says so; the token its secret names stays.
    let w = World::one_target(&[]);
    let old = w.seed_managed(0, 0, "t", 70 * DAY, 90 * DAY, None);
    let kv = w.emu.vault(0);
    kv.faults().inject("get", not_found(), 1);
    kv.faults().inject(
        "set",
        Fault::status(403).json(json!({"error": {"code": "Forbidden", "message": "Operation set is not allowed."}})),
        1,
    );
    let (code, r) = w.rotate(&["--force"], &[]);
    assert_eq!((code, r[0]["action"].as_str()), (1, Some("failed")), "{r:?}");
    assert_eq!(w.assert_secret_works(0, 0, "t-pat"), old);
    // A write whose outcome is unknown (a gateway's 504, never applied): retried, and written.
    let w = World::one_target(&[]);
    let old = w.seed_managed(0, 0, "t", 70 * DAY, 90 * DAY, None);
    let kv = w.emu.vault(0);
    kv.faults().inject("get", not_found(), 1);
    kv.faults().inject("set", Fault::status(504), 1);
    let (code, r) = w.rotate(&["--force"], &[]);
    assert_eq!(code, 0, "{r:?}");
    assert_ne!(r[0]["action"].as_str(), Some("unchanged"), "{r:?}");
    let named = w.assert_secret_works(0, 0, "t-pat");
    assert_ne!(named, old, "{r:?}");
    assert_eq!(r[0]["token_id"].as_str(), Some(named.as_str()), "{r:?}");
}

/// Finding 4 (tokens side): the secret was soft-deleted (Key Vault answers 404).
/// `tokens --revoke` revoked the live OAuth secret its consumers read — after a recovery they
/// held a dead credential. The same for a PAT.
#[test]
fn tokens_revoke_refuses_what_an_absent_secret_may_name() {
    let mut w = World::new();
    w.emu.add_oauth_service_principal(APP, "etl principal");
    let mut sp = w.target("sp", 0, 0);
    sp["kind"] = json!("sp_oauth_secret");
    sp["service_principal"] = json!(APP);
    let t = w.target("t", 0, 0);
    w.targets(&[sp, t]);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0, "{r:?}");
    let (secret, token) =
        (r[0]["token_id"].as_str().unwrap().to_string(), r[1]["token_id"].as_str().unwrap().to_string());
    w.emu.vault(0).soft_delete("sp-pat");
    w.emu.vault(0).soft_delete("t-pat");
    for (target, id) in [("sp", &secret), ("t", &token)] {
        let out = w.cli(&["tokens", "--target", target, "--revoke", id, "--json"], &[]);
        assert_eq!(out.code, 1, "{target}: {}{}", out.stdout, out.stderr);
        assert_eq!(out.json()["revoked"], json!([]), "{target}: {}", out.stdout);
        assert_eq!(out.json()["consulted_secrets"], json!(2), "{}", out.stdout);
        assert!(out.stderr.contains("absent"), "{}", out.stderr);
    }
    assert!(w.emu.workspace(0).sp_secrets(APP).iter().any(|s| s.id == secret), "the OAuth secret was revoked");
    assert!(w.emu.workspace(0).is_live(&token), "the token was revoked");
}

/// Finding 5: Key Vault's 400 quoting the submitted value went, unscrubbed, into `--json` and
/// the logs.
#[test]
fn a_400_quoting_the_value_shows_no_piece_of_it() {
    let w = World::one_target(&[]);
    w.seed_managed(0, 0, "t", 70 * DAY, 90 * DAY, None);
    w.emu.vault(0).refuse_writes_quoting_value(usize::MAX);
    for format in ["text", "json"] {
        let out = w.cli(&["rotate", "--json"], &[("PAT_LOG_FORMAT", format), ("RUST_LOG", "debug")]);
        assert_eq!(out.code, 1, "{}", out.stderr);
        let all = format!("{}\n{}", out.stdout, out.stderr);
        let leaked = pieces_in(&w, &all);
        assert!(leaked.is_empty(), "pieces of a credential value in the output ({format}): {leaked:?}");
        let e = &out.json()[0]["error"];
        assert_eq!(e["code"], "keyvault_error", "{e}");
        let message = e["message"].as_str().unwrap();
        assert!(message.contains("400") && message.contains("BadParameter"), "status and code kept: {message}");
        assert!(!message.contains("Property 'value'"), "the message of a refused write is dropped: {message}");
        assert!(message.contains("was deleted"), "a definitive refusal: {message}");
    }
    w.assert_no_secrets();
}

/// Finding 5, OAuth secrets: the refused write's message printed the new OAuth secret, its
/// delete failed, so the printed secret still signed in; and the message promised "an orphan a
/// later run will revoke", which never happens to an OAuth secret.
#[test]
fn an_undeletable_oauth_secret_is_reported_truthfully_and_never_shown() {
    let mut w = World::new();
    w.emu.add_oauth_service_principal(APP, "etl principal");
    let mut sp = w.target("sp", 0, 0);
    sp["kind"] = json!("sp_oauth_secret");
    sp["service_principal"] = json!(APP);
    w.targets(&[sp]);
    w.emu.vault(0).refuse_writes_quoting_value(usize::MAX);
    w.emu.workspace(0).faults().inject(
        "sp_secret_delete",
        Fault::status(500).json(json!({"error_code": "INTERNAL_ERROR", "message": "try again"})),
        usize::MAX,
    );
    let out = w.cli(&["rotate", "--json"], &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let all = format!("{}\n{}", out.stdout, out.stderr);
    let leaked = pieces_in(&w, &all);
    assert!(leaked.is_empty(), "pieces of a credential value in the output: {leaked:?}");
    let message = out.json()[0]["error"]["message"].as_str().unwrap().to_string();
    assert!(!message.contains("orphan a later run will revoke"), "{message}");
    assert!(message.contains("unrecorded") && message.contains("tokens --target sp --revoke"), "{message}");
    assert_eq!(w.emu.workspace(0).sp_secrets(APP).len(), 1, "it is still live, as the message says");
}

/// Finding 6: when the versions list failed, a ProvisionPat `200` body's `warnings` carried Key
/// Vault's RBAC text (the caller's appid and oid, the token issuer).
#[test]
fn provision_warnings_carry_no_upstream_detail() {
    let w = World::one_target(&[]);
    w.seed_managed(0, 0, "t", 2 * DAY, 90 * DAY, None);
    // A token of the release before secret keys: the target's only if a version records it, so
    // the run reads the versions list — which RBAC refuses.
    w.seed_token(0, "pat-rotator/t/legacy-attempt", 3 * DAY, 90 * DAY);
    let oid = w.emu.identity().principal().to_string();
    let rbac = format!(
        "Caller is not authorized to perform action on resource.\r\nCaller: appid=11111111-2222-3333-4444-555555555555;oid={oid};iss=https://sts.windows.net/{}/\r\nAction: 'Microsoft.KeyVault/vaults/secrets/readMetadata/action'",
        w.emu.tenant_id()
    );
    w.emu.vault(0).faults().inject(
        "list",
        Fault::status(403)
            .json(json!({"error": {"code": "Forbidden", "message": rbac, "innererror": {"code": "ForbiddenByRbac"}}})),
        usize::MAX,
    );
    let h = w.serve(&[]);
    let r = h.provision(json!({"target": "t"}));
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    assert_eq!(body["action"], "unchanged", "{body}");
    let warnings = body["warnings"].to_string();
    assert_ne!(warnings, "null", "the run warned: {body}");
    for detail in ["appid", &oid, "sts.windows.net", "ForbiddenByRbac", "127.0.0.1", "Caller"] {
        assert!(!warnings.contains(detail), "{detail} in a ProvisionPat body: {warnings}");
    }
    assert!(eventually(Duration::from_secs(5), || h.log().contains(&oid)), "the detail goes to the log: {}", h.log());
    // The CLI keeps the detail.
    let (_, r) = w.rotate(&[], &[]);
    assert!(r[0]["warnings"].to_string().contains("ForbiddenByRbac"), "{r:?}");
}

/// Low (a): a ProvisionPat field name holding a newline forged a text log line; a long one was
/// logged at length.
#[test]
fn a_field_name_cannot_forge_a_log_line() {
    let w = World::one_target(&[]);
    let h = w.serve(&[]);
    let r = h.provision_raw(Some("application/json"), br#"{"target":"t","x\nERROR forged line":1}"#.to_vec());
    assert_eq!(r.status, 400, "{}", r.text);
    let long = format!(r#"{{"target":"t","{}":1}}"#, "A".repeat(5000));
    let r = h.provision_raw(Some("application/json"), long.into_bytes());
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(eventually(Duration::from_secs(5), || h.log().matches("ProvisionPat answered 400").count() >= 2));
    let log = h.log();
    for line in log.lines() {
        assert!(!line.starts_with("ERROR forged"), "a forged log line: {line:?}");
    }
    assert!(log.contains("x\\nERROR forged line"), "{log}");
    assert!(!log.contains(&"A".repeat(257)), "more than 256 characters of a caller's string in the log");
}

/// Low (b): two OAuth targets on one principal each called the other's secrets "unrecorded" and
/// advised `tokens --revoke` for them.
#[test]
fn two_oauth_targets_on_one_principal_leave_each_others_secrets_alone() {
    let mut w = World::new();
    w.emu.add_oauth_service_principal(APP, "etl principal");
    let target = |name: &str, kv: usize| {
        let mut t = w.target(name, 0, kv);
        t["kind"] = json!("sp_oauth_secret");
        t["service_principal"] = json!(APP);
        t
    };
    let (spa, spb) = (target("spa", 0), target("spb", 0));
    w.targets(&[spa, spb]);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0, "{r:?}");
    for _ in 0..2 {
        let (code, r) = w.rotate(&[], &[]);
        assert_eq!(code, 0, "{r:?}");
        for o in &r {
            assert_eq!(o["action"], "unchanged", "{o}");
            assert!(o.get("warnings").is_none(), "{}: {}", o["target"], o["warnings"]);
        }
    }
    assert_eq!(w.emu.workspace(0).sp_secrets(APP).len(), 2);
}

/// Low (c): the `tokens --revoke` guard read only the configured kind's tag. After a target
/// switched from `pat` to `sp_oauth_secret`, the PAT its latest version still names (consumers
/// read it until the next rotation) could be revoked.
#[test]
fn tokens_revoke_guards_either_tag_after_a_kind_switch() {
    let mut w = World::new();
    w.emu.add_oauth_service_principal(APP, "etl principal");
    let a = w.target("a", 0, 0);
    let mut b = w.target("b", 0, 0);
    // b's secret: a PAT version, written while b was a `pat` target.
    let pat = w.seed_managed(0, 0, "b", DAY, 90 * DAY, None);
    b["kind"] = json!("sp_oauth_secret");
    b["service_principal"] = json!(APP);
    w.targets(&[a.clone(), b]);
    let (code, r) = w.rotate(&["--target", "a"], &[]);
    assert_eq!(code, 0, "{r:?}");
    let out = w.cli(&["tokens", "--revoke", &pat], &[]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("target b"), "{}", out.stderr);
    assert!(w.emu.workspace(0).is_live(&pat), "the PAT b's latest version names was revoked");
}

/// Found by the simulator's invariant 13 (a report says only what happened): a `tokens
/// --revoke` whose listing of the workspace failed said the id "was found in no selected
/// target's workspace", though it may well be there.
#[test]
fn tokens_revoke_after_a_failed_listing_does_not_call_the_id_found_nowhere() {
    let w = World::one_target(&[]);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0, "{r:?}");
    let id = r[0]["token_id"].as_str().unwrap().to_string();
    // Another token of the identity, which no version names: revocable, if it can be found.
    let (other, _) = w.seed_token(0, "someone's notebook", 2 * DAY, 90 * DAY);
    w.emu.workspace(0).faults().inject("list", Fault::empty(503).header("Retry-After", "0"), usize::MAX);
    let out = w.cli(&["tokens", "--revoke", &other, "--json"], &[]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert_eq!(out.json()["revoked"], json!([]), "{}", out.stdout);
    let all = format!("{}\n{}", out.stdout, out.stderr);
    assert!(!all.contains("found in no selected target's workspace"), "claims the id is nowhere: {all}");
    assert!(all.contains("could not be listed"), "{all}");
    assert!(w.emu.workspace(0).is_live(&other) && w.emu.workspace(0).is_live(&id));
}

/// Found by the simulator's invariant 13 (JSON log lines in the contract's words): the line of a
/// failed result carried `"reason": ""`, a value §4 does not have; a result without a reason
/// logs no `reason` key.
#[test]
fn a_failed_result_logs_no_empty_reason() {
    let w = World::one_target(&[]);
    w.emu.workspace(0).faults().inject("list", Fault::empty(503).header("Retry-After", "0"), usize::MAX);
    let out = w.cli(&["rotate", "--json"], &[("PAT_LOG_FORMAT", "json")]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let lines: Vec<Value> = out.stderr.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let failed: Vec<&Value> = lines.iter().filter(|l| l["action"] == "failed").collect();
    assert_eq!(failed.len(), 1, "one line for the failed target: {}", out.stderr);
    assert!(failed[0].get("reason").is_none(), "an empty reason key: {}", failed[0]);
    assert_eq!(failed[0]["code"], "throttled", "{}", failed[0]);
}
