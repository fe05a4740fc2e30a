//! A fleet in one pass (contract §11), through the binary against the emulators: Key Vault
//! pacing across every vault (writes of all vaults together stay under a small shared budget,
//! with zero 429), interactive requests served before a pass's queue, the order of urgency,
//! progress lines, a pass stopped midway by SIGTERM or SIGKILL and run again, and the token
//! quota per workspace and owner.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::World;
use pat_rotator_emulators::{EmulatorOptions, KeyVaultOptions, KvThrottle};
use serde_json::{Value, json};

const DAY: Duration = Duration::from_secs(86_400);

/// A world of `vaults` vaults and `workspaces` workspaces whose Key Vault fakes allow `writes`
/// secret writes per vault per `window`, and `subscription` times that across all vaults.
fn world(vaults: usize, workspaces: usize, window: Duration, writes: usize, subscription: Option<usize>) -> World {
    World::with(EmulatorOptions {
        vaults,
        workspaces,
        keyvault: KeyVaultOptions {
            throttle: Some(KvThrottle { window, write_limit: writes, other_limit: 4_000, retry_after: false }),
            subscription_factor: subscription,
            ..Default::default()
        },
        ..Default::default()
    })
}

/// When each successful secret write arrived, over every vault, sorted.
fn write_times(w: &World) -> Vec<Instant> {
    let mut v: Vec<Instant> = w
        .emu
        .vaults()
        .iter()
        .flat_map(|k| k.faults().calls().into_iter().filter(|c| c.op == "set" && c.status == 200).map(|c| c.at))
        .collect();
    v.sort();
    v
}

/// The most of `sorted` in any span shorter than `window`.
fn max_in_window(sorted: &[Instant], window: Duration) -> usize {
    let (mut best, mut j) = (0, 0);
    for i in 0..sorted.len() {
        while j < sorted.len() && sorted[j].duration_since(sorted[i]) < window {
            j += 1;
        }
        best = best.max(j - i);
    }
    best
}

/// 24 targets in 12 vaults: no vault comes near its own budget (4 writes per 2 s), but all of
/// them together must stay under the subscription's 8 per 2 s. The fleet pacing
/// (`PAT_KEYVAULT_FLEET_FACTOR=2` × the per-vault 4) keeps them there: zero 429. Its twin with
/// the fleet pacing opened up (factor 1000) meets the subscription's 429s.
#[test]
fn all_vaults_together_stay_under_a_small_shared_budget() {
    let window = Duration::from_secs(2);
    let run = |factor: &str| {
        let mut w = world(12, 2, window, 4, Some(2));
        let targets: Vec<Value> = (0..24).map(|i| w.target(&format!("f{i:02}"), i % 2, i % 12)).collect();
        w.targets(&targets);
        let started = Instant::now();
        let (code, r) = w.rotate(
            &[],
            &[
                ("PAT_KV_WRITES_PER_10S", "4"),
                ("PAT_KV_WINDOW_MS", "2000"),
                ("PAT_KEYVAULT_FLEET_FACTOR", factor),
                ("PAT_MAX_CONCURRENCY", "16"),
                ("PAT_RETRY_ATTEMPTS", "8"),
            ],
        );
        (w, code, r, started.elapsed())
    };

    let (w, code, r, took) = run("2");
    assert_eq!(code, 0, "{r:?}");
    assert!(r.iter().all(|o| o["action"] == "created"), "{r:?}");
    assert_eq!(w.emu.kv_subscription().throttled_count(), 0, "the subscription's budget was exceeded");
    assert_eq!(w.emu.kv_throttled_total(), 0, "a vault answered 429");
    let writes = write_times(&w);
    assert_eq!(writes.len(), 24);
    assert!(max_in_window(&writes, window) <= 8, "{} writes in one window", max_in_window(&writes, window));
    // 24 writes at 8 per window need three windows: the last comes at least two after the first.
    let span = writes[23].duration_since(writes[0]);
    assert!(span >= 2 * window, "the writes spanned only {span:?}");
    eprintln!("paced: 24 targets in {took:?}, writes spanning {span:?}, 0 × 429");

    let (w, _, _, _) = run("1000");
    assert!(
        w.emu.kv_subscription().throttled_count() > 0,
        "without the fleet pacing the subscription's budget must be exceeded (else this test shows nothing)"
    );
}

/// Sends the timer invocation from another thread (its own client), so that the test can act
/// while the pass runs.
fn timer_in_background(base: &str) -> std::thread::JoinHandle<(u16, Value)> {
    let url = format!("{base}/RotatePat");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let r = reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap()
                .post(url)
                .header("Content-Type", "application/json")
                .header("X-Azure-Functions-InvocationId", "3a1d5e7c-0b2f-4c6d-8e9a-1b2c3d4e5f60")
                .body(r#"{"Data":{"timer":{"ScheduleStatus":null,"IsPastDue":false}},"Metadata":{}}"#)
                .timeout(Duration::from_secs(120))
                .send()
                .await
                .expect("RotatePat answered");
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(Value::Null))
        })
    })
}

fn wait_for_writes(w: &World, n: usize, limit: Duration) {
    let started = Instant::now();
    while write_times(w).len() < n {
        assert!(started.elapsed() < limit, "only {} writes after {limit:?}", write_times(w).len());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A ProvisionPat arriving while a pass has filled the write budget's queue is served in the
/// next window, not behind the pass's queued writes (contract §11).
#[test]
fn an_interactive_request_is_not_stuck_behind_a_pass() {
    let window = Duration::from_secs(1);
    let mut w = world(1, 1, window, 2, None);
    let mut targets: Vec<Value> = (0..16).map(|i| w.target(&format!("p{i:02}"), 0, 0)).collect();
    targets.push(w.target("vip", 0, 0));
    w.targets(&targets);
    let h = w.serve(&[
        ("PAT_KV_WRITES_PER_10S", "2"),
        ("PAT_KV_WINDOW_MS", "1000"),
        ("PAT_MAX_CONCURRENCY", "8"),
        ("PAT_RETRY_ATTEMPTS", "8"),
    ]);
    let pass = timer_in_background(&h.base);
    // The pass is in its steady state: every slot busy, waiting for the vault's budget.
    wait_for_writes(&w, 3, Duration::from_secs(20));
    let sent = Instant::now();
    let r = h.provision(json!({"target": "vip"}));
    let took = sent.elapsed();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["action"], "created");
    let done_writes = write_times(&w).len();
    assert!(!pass.is_finished(), "the pass must still be running for this to show anything");
    // Behind the pass's queue (up to 8 writes at 2 per window) it would wait about 4 windows.
    assert!(took < 2 * window, "ProvisionPat took {took:?} while the pass had written {done_writes} of 17");
    let (status, body) = pass.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(w.emu.kv_throttled_total(), 0);
    drop(h);
}

/// A run waits for the write's pacing before it creates the credential, not after (contract
/// §11): while the vault's budget (2 writes per 2 s) holds the pass back, every token is written
/// within moments of its creation.
#[test]
fn a_credential_is_created_only_once_its_write_may_go() {
    let mut w = world(1, 1, Duration::from_secs(2), 2, None);
    let targets: Vec<Value> = (0..10).map(|i| w.target(&format!("c{i:02}"), 0, 0)).collect();
    w.targets(&targets);
    let (code, r) =
        w.rotate(&[], &[("PAT_KV_WRITES_PER_10S", "2"), ("PAT_KV_WINDOW_MS", "2000"), ("PAT_MAX_CONCURRENCY", "8")]);
    assert_eq!(code, 0, "{r:?}");
    let ws = w.emu.workspace(0);
    let mut gaps = Vec::new();
    for i in 0..10 {
        let v = w.emu.vault(0).latest(&format!("c{i:02}-pat")).unwrap();
        let token = ws.token(&v.tags["databricks-token-id"]).unwrap();
        let created = token.created.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        // The version's `created` has whole seconds.
        gaps.push(v.created as f64 + 1.0 - created);
    }
    let worst = gaps.iter().cloned().fold(0.0, f64::max);
    // Created first and queued for the write, the last of ten would wait about four windows (8 s).
    assert!(worst < 2.0, "a token waited {worst:.1} s for its write: {gaps:?}");
    assert_eq!(w.emu.kv_throttled_total(), 0);
}

/// The world of the interrupted passes: 20 targets in one vault whose budget is 2 writes per
/// second, grace 0 (so that an orphan can be shown revoked once it is an hour old).
fn interrupted_world() -> (World, Vec<&'static str>) {
    let mut w = world(1, 1, Duration::from_secs(1), 2, None);
    let targets: Vec<Value> = (0..20)
        .map(|i| {
            let mut t = w.target(&format!("k{i:02}"), 0, 0);
            t["revoke_grace_hours"] = json!(0);
            t
        })
        .collect();
    w.targets(&targets);
    let settings = vec!["PAT_KV_WRITES_PER_10S", "2", "PAT_KV_WINDOW_MS", "1000", "PAT_MAX_CONCURRENCY", "4"];
    (w, settings)
}

fn pairs<'a>(flat: &'a [&'a str]) -> Vec<(&'a str, &'a str)> {
    flat.chunks(2).map(|c| (c[0], c[1])).collect()
}

/// Live tokens of the identity that no target's latest version names, with their comments.
fn unrecorded(w: &World) -> Vec<(String, String)> {
    let named: BTreeSet<String> = (0..20)
        .filter_map(|i| w.emu.vault(0).latest(&format!("k{i:02}-pat")))
        .filter_map(|v| v.tags.get("databricks-token-id").cloned())
        .collect();
    let ws = w.emu.workspace(0);
    ws.tokens(ws.principal())
        .into_iter()
        .filter(|t| !named.contains(&t.token_id))
        .map(|t| (t.token_id, t.comment))
        .collect()
}

/// Every target's secret works and names its only live token.
fn every_target_correct(w: &World) {
    let ws = w.emu.workspace(0);
    let live = ws.tokens(ws.principal());
    for i in 0..20 {
        let id = w.assert_secret_works(0, 0, &format!("k{i:02}-pat"));
        let prefix = format!("pat-rotator/k{i:02}/");
        let of_target: Vec<_> = live.iter().filter(|t| t.comment.starts_with(&prefix)).collect();
        assert_eq!(of_target.len(), 1, "k{i:02} holds {} live tokens", of_target.len());
        assert_eq!(of_target[0].token_id, id);
    }
}

/// SIGTERM in the middle of a pass: no target is started and no credential is created after
/// it; the targets in flight finish; the invocation answers with what finished (the rest
/// failed as not started) and `serve` exits. A new pass completes every target.
#[test]
fn a_pass_stopped_by_sigterm_finishes_what_it_started_and_the_next_pass_completes() {
    let (w, settings) = interrupted_world();
    let h = w.serve(&pairs(&settings));
    let pass = timer_in_background(&h.base);
    wait_for_writes(&w, 4, Duration::from_secs(30));
    let sigterm = Instant::now();
    let log = {
        let code = h.stop_keeping_log();
        assert_eq!(code.0, 0, "serve did not stop cleanly within 10 s of SIGTERM:\n{}", code.1);
        code.1
    };
    let (status, body) = pass.join().unwrap();
    assert_eq!(status, 500, "{body}");
    let failed: Vec<&str> = body["failed_targets"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let logs: Vec<&str> = body["Logs"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(logs.len(), 20, "{logs:?}");
    let finished = logs.iter().filter(|l| l.contains(": created")).count();
    assert!(finished >= 4 && !failed.is_empty(), "finished {finished}, failed {failed:?}");
    assert_eq!(finished + failed.len(), 20, "{logs:?}");
    assert!(log.contains("not started: the process is shutting down"), "{log}");
    // Nothing was created after SIGTERM (an in-flight request may arrive a moment later).
    let ws = w.emu.workspace(0);
    let late: Vec<_> = ws
        .faults()
        .calls()
        .into_iter()
        .filter(|c| c.op == "create" && c.at > sigterm + Duration::from_millis(100))
        .collect();
    assert!(late.is_empty(), "{} creates after SIGTERM", late.len());
    // What was created was written: no unrecorded token.
    assert_eq!(unrecorded(&w), [], "a token created before SIGTERM was left unrecorded");
    assert_eq!(write_times(&w).len(), finished, "every finished target wrote once, no other wrote");

    let (code, r) = w.rotate(&[], &pairs(&settings));
    assert_eq!(code, 0, "{r:?}");
    let actions: BTreeSet<&str> = r.iter().map(|o| o["action"].as_str().unwrap()).collect();
    assert_eq!(actions, BTreeSet::from(["created", "unchanged"]));
    every_target_correct(&w);
}

/// SIGKILL in the middle of a pass: tokens created and not written stay behind, each carrying
/// its target's comment; a new pass completes every target, and once those tokens are an hour
/// old a later pass revokes them.
#[test]
fn a_pass_killed_midway_loses_nothing() {
    let (w, settings) = interrupted_world();
    let h = w.serve(&pairs(&settings));
    let pass = timer_in_background(&h.base);
    wait_for_writes(&w, 4, Duration::from_secs(30));
    h.kill();
    let _ = pass.join();

    let orphans = unrecorded(&w);
    assert!(orphans.len() <= 4, "more orphans than targets in flight: {orphans:?}");
    for (id, comment) in &orphans {
        assert!(comment.starts_with("pat-rotator/k"), "{id}: {comment}");
    }
    let (code, r) = w.rotate(&[], &pairs(&settings));
    assert_eq!(code, 0, "{r:?}");
    for i in 0..20 {
        w.assert_secret_works(0, 0, &format!("k{i:02}-pat"));
    }
    // An orphan younger than an hour may be a rotation in flight: kept ...
    assert_eq!(unrecorded(&w), orphans);
    // ... and revoked once it is older.
    w.emu.workspace(0).age_tokens(2 * 3600 * Duration::from_secs(1));
    let (code, r) = w.rotate(&[], &pairs(&settings));
    assert_eq!(code, 0, "{r:?}");
    assert_eq!(unrecorded(&w), [], "orphans left behind");
    every_target_correct(&w);
}

fn progress_counts(stderr: &str) -> Vec<usize> {
    stderr
        .lines()
        .filter_map(|l| l.split("progress: ").nth(1))
        .map(|rest| rest.split(' ').next().unwrap().parse().unwrap())
        .collect()
}

/// `info` lines while a pass runs: targets done of total, at every tenth; none for one target.
#[test]
fn a_pass_reports_progress() {
    let mut w = World::new();
    let targets: Vec<Value> = (0..20).map(|i| w.target(&format!("g{i:02}"), 0, 0)).collect();
    w.targets(&targets);
    let o = w.cli(&["rotate", "--json"], &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(progress_counts(&o.stderr), [2, 4, 6, 8, 10, 12, 14, 16, 18, 20], "{}", o.stderr);
    assert!(o.stderr.contains("progress: 20 of 20 targets done (100 %)"), "{}", o.stderr);
    // Per-target lines as before.
    assert_eq!(o.stderr.lines().filter(|l| l.contains(": unchanged") || l.contains(": created")).count(), 20);
    let o = w.cli(&["rotate", "--json", "--target", "g03"], &[]);
    assert_eq!(o.code, 0);
    assert_eq!(progress_counts(&o.stderr), Vec::<usize>::new(), "{}", o.stderr);
}

/// A pass takes its targets by urgency — no secret, disabled, foreign, then the earliest
/// `next_rotation_at` — and reports them in configuration order.
#[test]
fn a_pass_takes_the_most_urgent_targets_first() {
    let mut w = World::new();
    let names = ["u0-fresh", "u1-none", "u2-foreign", "u3-disabled", "u4-expiring", "u5-later"];
    let targets: Vec<Value> = names.iter().map(|n| w.target(n, 0, 0)).collect();
    w.targets(&targets);
    w.seed_managed(0, 0, "u0-fresh", DAY, 90 * DAY, None);
    let (_, value) = w.seed_token(0, "made by hand", DAY, 365 * DAY);
    w.emu.vault(0).seed_secret("u2-foreign-pat", &value, None, &[], None);
    w.seed_managed(0, 0, "u3-disabled", 2 * DAY, 90 * DAY, None);
    let v = w.emu.vault(0).latest("u3-disabled-pat").unwrap();
    assert!(w.emu.vault(0).set_enabled("u3-disabled-pat", &v.version, false));
    w.seed_managed(0, 0, "u4-expiring", 80 * DAY, 90 * DAY, None);
    w.seed_managed(0, 0, "u5-later", 50 * DAY, 90 * DAY, None);

    let o = w.cli(&["rotate", "--json"], &[("PAT_MAX_CONCURRENCY", "1"), ("PAT_LOG_FORMAT", "json")]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    // With one target at a time, the per-target lines come in the order they were taken.
    let taken: Vec<String> = o
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["level"] == "INFO" && v["action"].is_string() && v["target"].is_string())
        .filter(|v| v["message"].as_str().unwrap_or("").starts_with(v["target"].as_str().unwrap()))
        .map(|v| v["target"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(taken, ["u1-none", "u3-disabled", "u2-foreign", "u4-expiring", "u5-later", "u0-fresh"], "{}", o.stderr);
    let reported: Vec<String> =
        o.json().as_array().unwrap().iter().map(|r| r["target"].as_str().unwrap().to_string()).collect();
    assert_eq!(reported, names);
    let actions: Vec<String> =
        o.json().as_array().unwrap().iter().map(|r| format!("{}/{}", r["action"], r["reason"])).collect();
    assert_eq!(
        actions,
        [
            "\"unchanged\"/\"fresh\"",
            "\"created\"/\"no_secret\"",
            "\"rotated\"/\"foreign_secret\"",
            "\"rotated\"/\"disabled_secret\"",
            "\"rotated\"/\"expiring\"",
            "\"unchanged\"/\"fresh\""
        ]
    );
}

/// A vault whose secrets cannot be listed before the pass puts its targets first (they may have
/// no secret); the pass still runs every target.
#[test]
fn a_vault_that_cannot_be_listed_puts_its_targets_first() {
    let mut w = World::with(EmulatorOptions { vaults: 2, ..Default::default() });
    let targets = vec![w.target("a-expiring", 0, 0), w.target("a-fresh", 0, 0), w.target("b-fresh", 0, 1)];
    w.targets(&targets);
    w.seed_managed(0, 0, "a-expiring", 80 * DAY, 90 * DAY, None);
    w.seed_managed(0, 0, "a-fresh", DAY, 90 * DAY, None);
    w.seed_managed(1, 0, "b-fresh", DAY, 90 * DAY, None);
    w.emu.vault(1).faults().inject("list", pat_rotator_emulators::Fault::status(403), 10);
    let o = w.cli(&["rotate", "--json"], &[("PAT_MAX_CONCURRENCY", "1"), ("PAT_LOG_FORMAT", "json")]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let taken: Vec<String> = o
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["action"].is_string() && v["target"].is_string())
        .filter(|v| v["message"].as_str().unwrap_or("").starts_with(v["target"].as_str().unwrap()))
        .map(|v| v["target"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(taken, ["b-fresh", "a-expiring", "a-fresh"], "{}", o.stderr);
}

/// Contract §11: more than 100 `pat` targets of one owner in one workspace is a warning, more
/// than 300 a configuration error; OAuth-secret targets and other workspaces do not count.
#[test]
fn check_config_guards_the_token_quota_per_workspace_and_owner() {
    let w = World::with(EmulatorOptions { workspaces: 2, ..Default::default() });
    let many = |n: usize, ws: usize| -> Vec<Value> { (0..n).map(|i| w.target(&format!("q{ws}-{i}"), ws, 0)).collect() };
    let check = |targets: Vec<Value>| w.cli(&["check-config"], &[("PAT_TARGETS", &Value::Array(targets).to_string())]);

    let o = check(many(100, 0));
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(!o.stderr.contains("share workspace"), "{}", o.stderr);
    let o = check(many(101, 0));
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("warning: 101 pat targets share workspace"), "{}", o.stderr);
    assert!(o.stderr.contains("as service identity"), "{}", o.stderr);
    let mut two: Vec<Value> = many(100, 0);
    two.extend(many(100, 1));
    let o = check(two);
    assert!(!o.stderr.contains("share workspace"), "two workspaces: {}", o.stderr);
    let o = check(many(300, 0));
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = check(many(301, 0));
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains("301 pat targets share workspace"), "{}", o.stderr);
    assert!(o.stderr.contains("at most 300 may"), "{}", o.stderr);
    // Every command refuses it, before any request.
    let o = w.cli(&["rotate", "--json"], &[("PAT_TARGETS", &Value::Array(many(301, 0)).to_string())]);
    assert_eq!(o.code, 2);
    assert_eq!(o.json()["error"]["code"], "config_invalid");
    assert_eq!(w.upstream_calls(), 0);
}

/// A create refused with `QUOTA_EXCEEDED` says whose tokens fill the quota: the live tokens per
/// target of that workspace and owner.
#[test]
fn a_full_quota_reports_the_live_tokens_per_target() {
    let w = World::one_target(&[]);
    w.emu.workspace(0).set_token_quota(5);
    for (comment, n) in [
        ("pat-rotator/big/0123456789ab/x", 3),
        ("pat-rotator/small/0123456789ab/y", 1),
        ("Terraform-generated token", 1),
    ] {
        for _ in 0..n {
            w.seed_token(0, comment, DAY, 90 * DAY);
        }
    }
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 1);
    assert_eq!(r[0]["error"]["code"], "databricks_quota_exceeded", "{r:?}");
    let msg = r[0]["error"]["message"].as_str().unwrap();
    assert!(msg.contains("live tokens of this identity here: 5 — big: 3, small: 1, not pat-rotator's: 1"), "{msg}");
}
