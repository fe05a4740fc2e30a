//! Issue 3's fault matrix: every fault injected through the emulators, and for each the end
//! state checked on both sides — what the vault holds (and whether it works) and which tokens
//! are live in the workspace — not just the exit code.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use pat_rotator_emulators::{EmulatorOptions, workspace::WorkspaceOptions};
use serde_json::{Value, json};

fn world(extra: &[(&str, Value)]) -> World {
    World::one_target(extra)
}

/// The state both sides are in, to compare before and after a failed run.
#[derive(Debug, PartialEq)]
struct Snapshot {
    versions: Vec<String>,
    live: Vec<String>,
}

fn snapshot(w: &World) -> Snapshot {
    Snapshot {
        versions: w.emu.vault(0).versions("t-pat").into_iter().map(|v| v.version).collect(),
        live: w.live_tokens(0),
    }
}

/// A fresh world with a working, managed secret (seeded 70 days ago, so it is due).
fn due_world(extra: &[(&str, Value)]) -> (World, String) {
    let w = world(extra);
    let old = w.seed_managed(0, 0, "t", 70 * DAY, 90 * DAY, None);
    (w, old)
}

fn code_of(r: &[Value]) -> &str {
    r[0]["error"]["code"].as_str().unwrap_or("")
}

fn gap_after_first(calls: &[pat_rotator_emulators::faults::Call], status: u16) -> Duration {
    let i = calls.iter().position(|c| c.status == status).expect("the injected answer was sent");
    calls[i + 1].at.duration_since(calls[i].at)
}

// ---------------------------------------------------------------- managed identity

#[test]
fn identity_500_is_retried() {
    let w = world(&[]);
    w.emu.identity().faults().inject("token", Fault::status(500).json(json!({"statusCode":500,"message":"boom"})), 2);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0, "{r:?}");
    w.assert_secret_works(0, 0, "t-pat");
    assert_eq!(w.live_tokens(0).len(), 1);
}

#[test]
fn identity_down_changes_nothing() {
    let (w, old) = due_world(&[]);
    let before = snapshot(&w);
    w.emu.identity().faults().inject(
        "token",
        Fault::status(500).json(json!({"statusCode":500,"message":"boom"})),
        usize::MAX,
    );
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 1);
    assert_eq!(code_of(&r), "identity_unavailable");
    assert_eq!(snapshot(&w), before);
    assert_eq!(w.assert_secret_works(0, 0, "t-pat"), old);
    assert_eq!(ws_count(&w, 0, "create"), 0);
}

#[test]
fn identity_timeout_is_retried_within_the_call_timeout() {
    let w = world(&[]);
    w.emu.identity().faults().inject("token", Fault::hang(), 1);
    let start = Instant::now();
    let (code, r) = w.rotate(&[], &[("PAT_CALL_TIMEOUT_SECONDS", "1")]);
    assert_eq!(code, 0, "{r:?}");
    assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
    w.assert_secret_works(0, 0, "t-pat");
}

#[test]
fn identity_malformed_json_is_retried() {
    let w = world(&[]);
    w.emu.identity().faults().inject(
        "token",
        Fault::status(200).header("Content-Type", "application/json").body("{\"access_token\": tru"),
        1,
    );
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0, "{r:?}");
    w.assert_secret_works(0, 0, "t-pat");
}

#[test]
fn identity_token_expiring_in_10_seconds_is_never_used() {
    let w = world(&[]);
    let soon = (SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 10).to_string();
    // Not a token any emulator knows: if it were sent anywhere, that call would get 401.
    w.emu.identity().faults().inject(
        "token",
        Fault::status(200).json(json!({"access_token": "short-lived-token-value", "expires_on": soon, "not_before": soon,
            "resource": "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d", "token_type": "Bearer", "client_id": identity::SYSTEM_CLIENT_ID})),
        1,
    );
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0, "{r:?}");
    w.assert_secret_works(0, 0, "t-pat");
    assert!(
        w.emu.workspace(0).faults().calls().iter().all(|c| c.status != 401),
        "the short-lived token reached the workspace"
    );
    let kv401 = w.emu.vault(0).faults().calls().iter().filter(|c| c.status == 401).count();
    assert_eq!(kv401, 1, "only the SDK's first, bodiless challenge request gets 401");

    // A credential that only ever hands out such tokens is an identity failure, not a rotation.
    let (w2, old) = due_world(&[]);
    w2.emu.identity().set_token_lifetime(Duration::from_secs(10));
    let (code, r) = w2.rotate(&[], &[]);
    assert_eq!(code, 1);
    assert_eq!(code_of(&r), "identity_unavailable");
    assert!(r[0]["error"]["message"].as_str().unwrap().contains("expires in"), "{}", r[0]["error"]);
    assert_eq!(w2.assert_secret_works(0, 0, "t-pat"), old);
}

// ---------------------------------------------------------------- Databricks

#[test]
fn databricks_429_retry_after_is_honoured() {
    let w = world(&[]);
    w.emu.workspace(0).faults().inject(
        "list",
        Fault::status(429)
            .header("Retry-After", "1")
            .json(json!({"error_code":"REQUEST_LIMIT_EXCEEDED","message":"Too many requests"})),
        1,
    );
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0, "{r:?}");
    let calls: Vec<_> = w.emu.workspace(0).faults().calls().into_iter().filter(|c| c.op == "list").collect();
    let gap = gap_after_first(&calls, 429);
    assert!(gap >= Duration::from_millis(950), "waited only {gap:?} after Retry-After: 1");
    w.assert_secret_works(0, 0, "t-pat");
}

#[test]
fn databricks_503_bursts_on_every_call_are_ridden_out() {
    let w = world(&[]);
    let ws = w.emu.workspace(0).faults();
    ws.inject("list", Fault::empty(503), 3);
    ws.inject(
        "create",
        Fault::status(503).json(json!({"error_code":"TEMPORARILY_UNAVAILABLE","message":"try later"})),
        2,
    );
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0, "{r:?}");
    let id = w.assert_secret_works(0, 0, "t-pat");
    assert_eq!(w.live_tokens(0), vec![id], "no token left behind by the failed creates");
}

#[test]
fn databricks_503_that_never_ends_is_throttled_and_changes_nothing() {
    let (w, old) = due_world(&[]);
    let before = snapshot(&w);
    w.emu.workspace(0).faults().inject("list", Fault::empty(503).header("Retry-After", "0"), usize::MAX);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 1);
    assert_eq!(code_of(&r), "throttled");
    assert_eq!(snapshot(&w), before);
    assert_eq!(w.assert_secret_works(0, 0, "t-pat"), old);
}

#[test]
fn quota_exceeded_sweeps_this_targets_stale_tokens_first() {
    let (w, old) = due_world(&[]);
    let ws = w.emu.workspace(0);
    let principal = ws.principal().to_string();
    let mut foreign = Vec::new();
    for i in 0..3 {
        foreign.push(ws.seed_token(&principal, &format!("notebook {i}"), SystemTime::now() - DAY, Some(30 * DAY)).0);
    }
    let (stale, _) = w.seed_token(0, &w.comment("t", 0, "crashed"), 3 * HOUR, 90 * DAY);
    ws.set_token_quota(5); // old + 3 foreign + stale = 5: full
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0, "{r:?}");
    assert_eq!(r[0]["revoked_token_ids"], json!([stale]));
    let new = w.assert_secret_works(0, 0, "t-pat");
    let mut want = foreign.clone();
    want.extend([old, new]);
    want.sort();
    assert_eq!(w.live_tokens(0), want, "foreign tokens untouched, previous kept");
}

#[test]
fn quota_exceeded_with_nothing_to_sweep_reports_the_quota() {
    let (w, old) = due_world(&[]);
    let ws = w.emu.workspace(0);
    let principal = ws.principal().to_string();
    for i in 0..4 {
        ws.seed_token(&principal, &format!("notebook {i}"), SystemTime::now() - DAY, Some(30 * DAY));
    }
    ws.set_token_quota(5);
    let before = snapshot(&w);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 1);
    assert_eq!(code_of(&r), "databricks_quota_exceeded");
    assert!(r[0]["error"]["message"].as_str().unwrap().contains("5 tokens"), "{}", r[0]["error"]);
    assert_eq!(snapshot(&w), before);
    assert_eq!(w.assert_secret_works(0, 0, "t-pat"), old);
}

#[test]
fn lifetime_above_the_workspace_cap_names_the_cap() {
    let (w, old) = due_world(&[]);
    w.emu.workspace(0).set_max_lifetime_days(30);
    let before = snapshot(&w);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 1);
    assert_eq!(code_of(&r), "databricks_lifetime_too_long");
    assert!(r[0]["error"]["message"].as_str().unwrap().contains("30 days"), "{}", r[0]["error"]);
    assert_eq!(snapshot(&w), before);
    assert_eq!(w.assert_secret_works(0, 0, "t-pat"), old);
    // Within the cap it works.
    let mut t = w.target("t", 0, 0);
    t["lifetime_days"] = json!(30);
    t["renew_before_days"] = json!(10);
    let (code, r) = w.rotate(&[], &[("PAT_TARGETS", &json!([t]).to_string())]);
    assert_eq!(code, 0, "{r:?}");
}

#[test]
fn create_whose_response_is_lost_leaks_nothing() {
    for fault in [
        Fault::after_effect(502).json(json!({"error_code":"INTERNAL_ERROR","message":"upstream reset"})),
        Fault::after_effect_hang(),
    ] {
        let (w, old) = due_world(&[]);
        w.emu.workspace(0).faults().inject("create", fault, 1);
        let (code, r) = w.rotate(&[], &[("PAT_CALL_TIMEOUT_SECONDS", "1")]);
        assert_eq!(code, 0, "{r:?}");
        let new = w.assert_secret_works(0, 0, "t-pat");
        let mut want = vec![old, new];
        want.sort();
        assert_eq!(w.live_tokens(0), want, "the token whose value was lost was deleted");
        assert_eq!(ws_count(&w, 0, "create"), 2);
        let all = w.emu.workspace(0).all_tokens();
        assert_eq!(all.iter().filter(|t| t.revoked).count(), 1);
    }
}

#[test]
fn unauthorized_and_forbidden_have_clear_codes() {
    // Not a member and no management headers: 401.
    let opts = EmulatorOptions {
        workspace: WorkspaceOptions { identity_is_member: false, auto_provision: false, ..Default::default() },
        ..Default::default()
    };
    let mut w = World::with(opts);
    let t = w.target("t", 0, 0);
    w.targets(&[t]);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!((code, code_of(&r)), (1, "databricks_unauthorized"));
    assert!(r[0]["error"]["message"].as_str().unwrap().contains("workspace_resource_id"), "{}", r[0]["error"]);
    assert!(w.emu.vault(0).latest("t-pat").is_none());

    // A member (not an admin: admins always may) without the token permission: 403.
    let opts = EmulatorOptions {
        workspace: WorkspaceOptions { identity_is_admin: false, ..Default::default() },
        ..Default::default()
    };
    let mut w = World::with(opts);
    let t = w.target("t", 0, 0);
    w.targets(&[t]);
    let old = w.seed_managed(0, 0, "t", 70 * DAY, 90 * DAY, None);
    let p = w.emu.workspace(0).principal().to_string();
    w.emu.workspace(0).set_token_permission(&p, false);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!((code, code_of(&r)), (1, "databricks_forbidden"));
    assert!(r[0]["error"]["message"].as_str().unwrap().contains("CAN_USE"));
    assert_eq!(w.emu.vault(0).latest("t-pat").unwrap().tags["databricks-token-id"], old);
}

#[test]
fn deleting_an_already_gone_token_counts_as_done() {
    let w = world(&[]);
    let (prev, _) = w.seed_token(0, &w.comment("t", 0, "prev"), 70 * DAY, 90 * DAY);
    w.seed_managed(0, 0, "t", 2 * DAY, 90 * DAY, Some(&prev));
    w.emu.workspace(0).faults().inject(
        "delete",
        Fault::status(404).json(
            json!({"error_code":"RESOURCE_DOES_NOT_EXIST","message":format!("Token with id {prev} does not exist.")}),
        ),
        1,
    );
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0, "{r:?}");
    assert_eq!(r[0]["revoked_token_ids"], json!([prev]));
    assert_eq!(r[0]["error"], Value::Null);
}

#[test]
fn html_and_empty_error_bodies() {
    let w = world(&[]);
    w.emu.workspace(0).faults().inject(
        "list",
        Fault::html(502, "<html><body><h1>502</h1><pre>Bad Gateway: upstream connect error</pre></body></html>"),
        2,
    );
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0, "{r:?}");
    w.assert_secret_works(0, 0, "t-pat");

    let (w, old) = due_world(&[]);
    w.emu.workspace(0).faults().inject(
        "list",
        Fault::html(502, "<html><body><pre>Bad Gateway: upstream connect error</pre></body></html>"),
        usize::MAX,
    );
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!((code, code_of(&r)), (1, "upstream_unavailable"));
    let msg = r[0]["error"]["message"].as_str().unwrap();
    assert!(msg.contains("502: Bad Gateway: upstream connect error") && !msg.contains("<pre>"), "{msg}");
    assert_eq!(w.assert_secret_works(0, 0, "t-pat"), old);

    let (w, old) = due_world(&[]);
    w.emu.workspace(0).faults().inject("create", Fault::empty(400), 1);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!((code, code_of(&r)), (1, "databricks_error"));
    assert!(r[0]["error"]["message"].as_str().unwrap().contains("400 Bad Request"), "{}", r[0]["error"]);
    assert_eq!(w.live_tokens(0), vec![old]);
}

// ---------------------------------------------------------------- Key Vault

#[test]
fn keyvault_challenge_is_answered() {
    let w = world(&[]);
    let (code, _) = w.rotate(&[], &[]);
    assert_eq!(code, 0);
    let calls = w.emu.vault(0).faults().calls();
    assert_eq!(calls[0].status, 401, "the first request elicits the challenge");
    let rest: Vec<(&str, u16)> = calls[1..].iter().map(|c| (c.op.as_str(), c.status)).collect();
    assert_eq!(rest, [("get", 404), ("set", 200)], "then the read (no secret yet) and the write, authorized");
}

#[test]
fn keyvault_forbidden_by_rbac() {
    // Read allowed, write refused: the new token is deleted, the old secret and token stay.
    let (w, old) = due_world(&[]);
    let p = w.emu.workspace(0).principal().to_string();
    w.emu.vault(0).set_role(&p, Role::User);
    let before = snapshot(&w);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!((code, code_of(&r)), (1, "keyvault_forbidden"));
    assert!(r[0]["error"]["message"].as_str().unwrap().contains("Key Vault Secrets Officer"), "{}", r[0]["error"]);
    assert_eq!(snapshot(&w), before);
    assert_eq!(w.assert_secret_works(0, 0, "t-pat"), old);

    // No role at all: refused at the read, before anything is created.
    let (w, _) = due_world(&[]);
    let p = w.emu.workspace(0).principal().to_string();
    w.emu.vault(0).set_role(&p, Role::None);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!((code, code_of(&r)), (1, "keyvault_forbidden"));
    assert_eq!(ws_count(&w, 0, "create"), 0);
}

#[test]
fn keyvault_soft_deleted_name() {
    let (w, _old) = due_world(&[]);
    assert!(w.emu.vault(0).soft_delete("t-pat"));
    let live_before = w.live_tokens(0);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!((code, code_of(&r)), (1, "keyvault_secret_deleted"));
    assert!(r[0]["error"]["message"].as_str().unwrap().contains("recover"), "{}", r[0]["error"]);
    assert_eq!(w.live_tokens(0), live_before, "the new token was deleted");
    assert!(w.emu.vault(0).is_deleted("t-pat"));
}

#[test]
fn keyvault_429_then_success() {
    let w = world(&[]);
    w.emu.vault(0).faults().inject(
        "set",
        Fault::status(429).header("Retry-After", "1").json(json!({"error":{"code":"Throttled","message":"Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached"}})),
        1,
    );
    // The process's first request to the vault is the read (it takes the challenge), so this
    // 429 hits the real write.
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0, "{r:?}");
    let sets: Vec<_> = w.emu.vault(0).faults().calls().into_iter().filter(|c| c.op == "set").collect();
    assert!(gap_after_first(&sets, 429) >= Duration::from_millis(950));
    let id = w.assert_secret_works(0, 0, "t-pat");
    assert_eq!(w.live_tokens(0), vec![id]);
}

#[test]
fn keyvault_500_on_every_write_keeps_the_token_for_a_later_run() {
    // A 5xx answer to a write does not say the write was not applied (contract §7.3): the new
    // token is kept, and a later run finds it recorded or revokes it as an orphan.
    let (w, old) = due_world(&[]);
    let versions = w.emu.vault(0).versions("t-pat");
    w.emu.vault(0).faults().inject(
        "set",
        Fault::status(500).json(json!({"error":{"code":"InternalServerError","message":"oops"}})),
        usize::MAX,
    );
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!((code, code_of(&r)), (1, "upstream_unavailable"));
    let message = r[0]["error"]["message"].as_str().unwrap();
    assert!(message.contains("kept") && !message.contains("unchanged"), "{message}");
    assert_eq!(w.emu.vault(0).versions("t-pat"), versions, "nothing landed");
    assert_eq!(w.assert_secret_works(0, 0, "t-pat"), old);
    let live = w.live_tokens(0);
    assert_eq!(live.len(), 2, "the old token and the kept one: {live:?}");
    let kept = live.into_iter().find(|t| *t != old).unwrap();
    let sets = w.emu.vault(0).faults().calls().into_iter().filter(|c| c.op == "set").count();
    assert_eq!(sets, 5, "PAT_RETRY_ATTEMPTS (5) attempts, no SDK-internal retries on top");
    // Two hours on, the write never landed: the next run revokes it as an orphan.
    w.emu.vault(0).faults().clear();
    w.emu.workspace(0).age_tokens(2 * HOUR);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0, "{r:?}");
    assert!(r[0]["revoked_token_ids"].as_array().unwrap().contains(&json!(kept)), "{r:?}");
}

#[test]
fn keyvault_slow_beyond_the_call_timeout() {
    let w = world(&[]);
    w.emu.vault(0).faults().inject("get", Fault::delay(Duration::from_secs(4)), 1);
    let start = Instant::now();
    let (code, r) = w.rotate(&[], &[("PAT_CALL_TIMEOUT_SECONDS", "1")]);
    assert_eq!(code, 0, "{r:?}");
    assert!(start.elapsed() < Duration::from_secs(4), "the slow answer was not waited for: {:?}", start.elapsed());
    w.assert_secret_works(0, 0, "t-pat");

    let (w, old) = due_world(&[]);
    let before = snapshot(&w);
    w.emu.vault(0).faults().inject("get", Fault::delay(Duration::from_secs(4)), usize::MAX);
    let (code, r) = w.rotate(&[], &[("PAT_CALL_TIMEOUT_SECONDS", "1"), ("PAT_RETRY_ATTEMPTS", "2")]);
    assert_eq!((code, code_of(&r)), (1, "timeout"));
    assert_eq!(snapshot(&w), before);
    assert_eq!(w.assert_secret_works(0, 0, "t-pat"), old);
}

// ---------------------------------------------------------------- crash and time budget

#[test]
fn sigkill_between_create_and_write_keeps_the_old_token_and_sweeps_the_orphan_later() {
    let w = world(&[]);
    let old = w.seed_managed(0, 0, "t", DAY, 90 * DAY, None);
    w.emu.vault(0).faults().inject("set", Fault::hang(), usize::MAX);
    let h = w.serve(&[("PAT_CALL_TIMEOUT_SECONDS", "60")]);
    let base = h.base.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let _ = rt.block_on(async {
            reqwest::Client::new()
                .post(format!("{base}/api/ProvisionPat"))
                .header("Content-Type", "application/json")
                .body(r#"{"target":"t","force":true}"#)
                .timeout(Duration::from_secs(30))
                .send()
                .await
        });
    });
    // Wait until the new token exists (created and verified: the write comes next and hangs),
    // then kill -9.
    assert!(eventually(Duration::from_secs(10), || w.live_tokens(0).len() == 2));
    std::thread::sleep(Duration::from_millis(300));
    h.kill();
    w.emu.vault(0).faults().clear();

    let orphan: Vec<String> = w.live_tokens(0).into_iter().filter(|t| *t != old).collect();
    assert_eq!(orphan.len(), 1, "the killed run left its token behind");
    assert_eq!(w.emu.vault(0).latest("t-pat").unwrap().tags["databricks-token-id"], old);

    // Next run: the old token is still the working one; the orphan is young, so it stays.
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0, "{r:?}");
    assert_eq!(r[0]["action"], "unchanged");
    assert_eq!(r[0]["revoked_token_ids"], json!([]));
    assert_eq!(w.assert_secret_works(0, 0, "t-pat"), old);
    // Once it is older than the one-hour window, it is swept.
    w.emu.workspace(0).age_token(&orphan[0], 2 * HOUR);
    let (_, r) = w.rotate(&[], &[]);
    assert_eq!(r[0]["revoked_token_ids"], json!([orphan[0]]));
    assert_eq!(w.live_tokens(0), vec![old]);
}

#[test]
fn a_hanging_upstream_cannot_outlast_the_invocation_budget() {
    let (w, old) = due_world(&[]);
    w.emu.workspace(0).faults().inject("*", Fault::hang(), usize::MAX);
    let env = [
        ("PAT_CALL_TIMEOUT_SECONDS", "1"),
        ("PAT_HTTP_BUDGET_SECONDS", "5"),
        ("PAT_TIMER_BUDGET_SECONDS", "5"),
        ("PAT_RETRY_ATTEMPTS", "20"),
    ];
    let h = w.serve(&env);
    let start = Instant::now();
    let r = h.provision(json!({"target": "t", "force": true}));
    let took = start.elapsed();
    assert_eq!(r.status, 504, "{}", r.text);
    assert_eq!(r.json()["error"]["code"], "timeout");
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(8),
        "ProvisionPat took {took:?} with a 5 s budget"
    );

    let start = Instant::now();
    let r = h.invoke_timer(true);
    let took = start.elapsed();
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["failed_targets"], json!(["t"]));
    assert!(took < Duration::from_secs(8), "RotatePat took {took:?} with a 5 s budget");
    drop(h);
    assert_eq!(w.assert_secret_works(0, 0, "t-pat"), old);
    assert_eq!(w.live_tokens(0), vec![old]);
}
