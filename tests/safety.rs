//! Issue 9 through the real binary: revocation only by proof (contract §7 step 4), scoped
//! verification, `autoscope`, Databricks-only hosts, unordered targets, platform budgets, odd
//! vault data, and the RotatePat failure summary in the logs. Each test names the failure it
//! guards against; each fails on the code before issue 9.

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::*;
use pat_rotator_emulators::Fault;
use serde_json::{Value, json};

fn code_of(r: &[Value]) -> &str {
    r[0]["error"]["code"].as_str().unwrap_or("")
}

/// 1. At the token quota a failed re-read of the secret used to leave the sweep with no holders:
///    it revoked the current token and its predecessor.
#[test]
fn quota_with_a_failed_re_read_revokes_nothing() {
    let w = World::one_target(&[]);
    let prev = w.seed_token(0, &w.comment("t", 0, "older"), 40 * DAY, 90 * DAY).0;
    let cur = w.seed_managed(0, 0, "t", 5 * DAY, 90 * DAY, Some(&prev));
    w.seed_token(0, "someone else's", 300 * DAY, 400 * DAY);
    let ws = w.emu.workspace(0);
    ws.set_token_quota(3);
    // The first read (with its 401 challenge) passes; every later read fails.
    let kv = w.emu.vault(0);
    kv.faults().inject("get", Fault::delay(Duration::ZERO), 2);
    kv.faults().inject("get", Fault::status(500), usize::MAX);
    let (code, r) = w.rotate(&["--force"], &[("PAT_RETRY_ATTEMPTS", "2")]);
    assert_eq!((code, code_of(&r)), (1, "databricks_quota_exceeded"), "{r:?}");
    assert!(r[0]["error"]["message"].as_str().unwrap().contains("nothing was revoked"), "{r:?}");
    assert!(ws.is_live(&cur) && ws.is_live(&prev), "current and previous tokens must live");
    assert_eq!(r[0]["revoked_token_ids"], json!([]));
}

/// 2. Rotate T1→T2, then T2→T3 a moment later: T1, old and superseded a moment ago, used to be
///    swept as an orphan inside its 24 h grace.
#[test]
fn two_quick_rotations_keep_the_first_token_through_its_grace() {
    let w = World::one_target(&[]);
    let t1 = w.seed_managed(0, 0, "t", 3 * DAY, 90 * DAY, None);
    let (code, r) = w.rotate(&["--force", "--target", "t", "--target", "t"], &[]);
    assert_eq!(code, 0, "{r:?}");
    assert_eq!((r[0]["action"].as_str(), r[1]["action"].as_str()), (Some("rotated"), Some("rotated")));
    assert!(w.emu.workspace(0).is_live(&t1), "T1 revoked inside its grace");
    // And again with two separate ProvisionPat calls (no force cooldown: this is about the grace).
    let h = w.serve(&[("PAT_FORCE_COOLDOWN_MINUTES", "0")]);
    for _ in 0..2 {
        assert_eq!(h.provision(json!({"target": "t", "force": true})).status, 200);
    }
    assert!(w.emu.workspace(0).is_live(&t1));
    assert!(w.revocations_inside_grace(0, 0, "t-pat", DAY).is_empty());
    assert_eq!(w.live_tokens(0).len(), 5);
    // Once the grace has passed since the latest version, one ordinary run keeps only it.
    w.emu.vault(0).age_secret("t-pat", DAY + HOUR);
    w.emu.workspace(0).age_tokens(DAY + HOUR);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!((code, r[0]["action"].as_str()), (0, Some("unchanged")));
    assert_eq!(w.live_tokens(0), vec![w.assert_secret_works(0, 0, "t-pat")]);
}

/// 3. `list ‖ read`: the list is taken, another run writes a new version naming a token the
///    list does not have, then the (slow) read returns that version. It used to be judged
///    `revoked_in_workspace`: a new version without `previous-token-id`, the other run's
///    predecessor revoked at once, its token orphaned.
#[test]
fn a_concurrent_writer_is_not_mistaken_for_an_out_of_band_revocation() {
    let w = World::one_target(&[]);
    let before = w.seed_managed(0, 0, "t", 3 * DAY, 90 * DAY, None);
    let kv = w.emu.vault(0);
    kv.faults().inject("get", Fault::delay(Duration::from_millis(1500)), 1);
    let ws = w.emu.workspace(0);
    std::thread::scope(|s| {
        let run = s.spawn(|| w.rotate(&[], &[]));
        // The other run: as soon as our list is answered, it creates a token and writes it.
        assert!(eventually(Duration::from_secs(5), || ws.faults().count("list") >= 1));
        let theirs = w.seed_managed(0, 0, "t", Duration::ZERO, 90 * DAY, Some(&before));
        let (code, r) = run.join().unwrap();
        assert_eq!(
            (code, r[0]["action"].as_str(), r[0]["reason"].as_str()),
            (0, Some("unchanged"), Some("fresh")),
            "{r:?}"
        );
        assert_eq!(r[0]["token_id"].as_str(), Some(theirs.as_str()));
        assert!(ws.is_live(&before), "the other run's predecessor is inside its grace");
        assert_eq!(kv.versions("t-pat").len(), 2, "nothing written over the other run's version");
    });
}

/// 3b. A write whose answer was lost used to be retried blindly: a second version, and the
///     first one's token orphaned. Now the vault is read back first.
#[test]
fn a_lost_write_answer_is_read_back_not_written_twice() {
    let w = World::one_target(&[]);
    w.seed_managed(0, 0, "t", 70 * DAY, 90 * DAY, None);
    w.emu.vault(0).faults().inject("set", Fault::after_effect(503), 1);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!((code, r[0]["action"].as_str()), (0, Some("rotated")), "{r:?}");
    let versions = w.emu.vault(0).versions("t-pat");
    assert_eq!(versions.len(), 2, "one new version, not two");
    assert_eq!(w.assert_secret_works(0, 0, "t-pat"), r[0]["token_id"].as_str().unwrap());
    assert_eq!(w.live_tokens(0).len(), 2, "old + new, no orphan");
}

/// A write that timed out while another run wrote a newer version: the retry used to write
/// over it (and orphan the other run's token). Now the read-back sees it and the run stops —
/// and keeps its own token, because a write whose outcome is unknown may still land (§7.4); a
/// later run finds it recorded or proves it an orphan.
#[test]
fn a_write_retry_stops_when_another_run_wrote_meanwhile() {
    let w = World::one_target(&[]);
    let before = w.seed_managed(0, 0, "t", 70 * DAY, 90 * DAY, None);
    let kv = w.emu.vault(0);
    kv.faults().inject("set", Fault::hang(), 1);
    std::thread::scope(|s| {
        let run = s.spawn(|| w.rotate(&[], &[("PAT_CALL_TIMEOUT_SECONDS", "2")]));
        assert!(eventually(Duration::from_secs(10), || kv.faults().calls().iter().any(|c| c.op == "set")));
        let theirs = w.seed_managed(0, 0, "t", Duration::ZERO, 90 * DAY, Some(&before));
        let (code, r) = run.join().unwrap();
        assert_eq!((code, r[0]["action"].as_str()), (0, Some("unchanged")), "{r:?}");
        assert_eq!(r[0]["token_id"].as_str(), Some(theirs.as_str()));
        assert_eq!(kv.versions("t-pat").len(), 2, "nothing written over the other run's version");
        let live = w.live_tokens(0);
        assert_eq!(live.len(), 3, "the old token, theirs, and this run's (kept: its write may land): {live:?}");
        assert!(live.contains(&before) && live.contains(&theirs));
        let warnings = r[0]["warnings"].as_array().cloned().unwrap_or_default();
        assert!(warnings.iter().any(|w| w.as_str().unwrap_or("").contains("kept")), "{r:?}");
    });
}

/// A write that did not land is tried again, after the read-back shows nothing newer.
#[test]
fn a_write_that_did_not_land_is_retried_after_a_read_back() {
    let w = World::one_target(&[]);
    w.seed_managed(0, 0, "t", 70 * DAY, 90 * DAY, None);
    let kv = w.emu.vault(0);
    kv.faults().inject("set", Fault::status(503), 2);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!((code, r[0]["action"].as_str()), (0, Some("rotated")), "{r:?}");
    assert_eq!(kv.versions("t-pat").len(), 2);
    assert_eq!(kv.faults().count("set"), 3);
    w.assert_secret_works(0, 0, "t-pat");
}

/// 4. A run that created and verified a token and then stalled could write a token another run
///    had already swept as an orphan. Now a token more than 30 minutes old by the workspace's
///    clock is deleted, not written, and another is created.
#[test]
fn a_token_grown_too_old_before_its_write_is_replaced() {
    let w = World::one_target(&[]);
    w.seed_managed(0, 0, "t", 70 * DAY, 90 * DAY, None);
    let ws = w.emu.workspace(0);
    // Right after the create, the workspace's clock is 31 minutes on: the run stalled.
    ws.advance_clock_after("create", Duration::from_secs(31 * 60));
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!((code, r[0]["action"].as_str()), (0, Some("rotated")), "{r:?}");
    assert_eq!(ws.faults().count("create"), 2);
    let written = w.assert_secret_works(0, 0, "t-pat");
    let first = ws
        .all_tokens()
        .into_iter()
        .find(|t| t.comment.starts_with("pat-rotator/t/") && t.revoked)
        .expect("first token");
    assert_ne!(first.token_id, written);
    assert_eq!(w.live_tokens(0).len(), 2, "old + the second new one");
}

/// A scoped PAT cannot call the token API; verification used to call it and so a `scopes`
/// target could never rotate.
#[test]
fn a_scoped_token_verifies_and_is_written() {
    let w = World::one_target(&[("scopes", json!(["sql"]))]);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!((code, r[0]["action"].as_str()), (0, Some("created")), "{r:?}");
    let id = w.assert_secret_works(0, 0, "t-pat");
    assert_eq!(w.emu.workspace(0).token(&id).unwrap().scopes, vec!["sql"]);
    // The emulator enforces scopes: the secret's token is refused by the token API.
    let value = w.emu.vault(0).latest("t-pat").unwrap().value;
    let list = reqwest::blocking_get(&format!("{}/api/2.0/token/list", w.emu.workspace(0).url()), &value);
    assert_eq!(list.0, 403);
    assert!(list.1.contains("missing the required scopes"), "{}", list.1);
}

/// A refusal for missing scopes proves the token authenticated; `Invalid access token.` does not.
#[test]
fn verification_accepts_a_scope_refusal_and_rejects_an_invalid_token() {
    let w = World::one_target(&[]);
    let ws = w.emu.workspace(0);
    ws.faults().inject(
        "me",
        Fault::status(403)
            .json(json!({"error_code": "PERMISSION_DENIED", "message": "Your token is missing the required scopes for this endpoint."})),
        1,
    );
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!((code, r[0]["action"].as_str()), (0, Some("created")), "{r:?}");

    let w = World::one_target(&[]);
    let ws = w.emu.workspace(0);
    ws.faults().inject(
        "me",
        Fault::status(403).json(json!({"error_code": "403", "message": "Invalid access token."})),
        usize::MAX,
    );
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 1, "{r:?}");
    assert!(w.emu.vault(0).latest("t-pat").is_none(), "an unproven token is never written");
    assert!(w.live_tokens(0).is_empty(), "and it is deleted");
}

#[test]
fn autoscope_is_sent_only_when_set() {
    for (setting, want) in [(Some("true"), Some(true)), (Some("false"), Some(false)), (None, None)] {
        let mut w = World::new();
        let (host, vault) = (w.emu.workspace(0).url().to_string(), w.emu.vault(0).url().to_string());
        w.set("DATABRICKS_HOST", &host).set("KEY_VAULT_URL", &vault);
        if let Some(v) = setting {
            w.set("PAT_AUTOSCOPE", v);
        }
        let (code, r) = w.rotate(&[], &[]);
        assert_eq!(code, 0, "{r:?}");
        let id = w.assert_secret_works(0, 0, "databricks-pat");
        assert_eq!(w.emu.workspace(0).token(&id).unwrap().autoscope, want, "{setting:?}");
    }
    let w = World::one_target(&[("autoscope", json!(true))]);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0);
    let id = r[0]["token_id"].as_str().unwrap();
    assert_eq!(w.emu.workspace(0).token(id).unwrap().autoscope, Some(true));
}

/// Entra ID tokens go only to Azure Databricks hosts (or loopback emulators).
#[test]
fn a_workspace_url_that_is_not_databricks_is_a_configuration_error() {
    let w = World::one_target(&[("workspace_url", json!("https://login.example.com"))]);
    let o = w.cli(&["check-config"], &[]);
    assert_eq!(o.code, 2);
    assert!(
        o.stderr.contains("targets[0].workspace_url") && o.stderr.contains("not an Azure Databricks workspace host"),
        "{}",
        o.stderr
    );
    let (code, _) = (w.cli(&["rotate"], &[]).code, ());
    assert_eq!(code, 2);
    assert_eq!(w.upstream_calls(), 0);
}

#[test]
fn budgets_that_contradict_the_platform_are_configuration_errors() {
    let w = World::one_target(&[]);
    for (k, v, needle) in [
        ("PAT_HTTP_BUDGET_SECONDS", "300", "PAT_HTTP_BUDGET_SECONDS"),
        ("AzureFunctionsJobHost__functionTimeout", "00:05:00", "functionTimeout"),
        ("PAT_RETRY_ATTEMPTS", "20", "orphan window"),
    ] {
        let extra: Vec<(&str, &str)> =
            if k == "PAT_RETRY_ATTEMPTS" { vec![(k, v), ("PAT_CALL_TIMEOUT_SECONDS", "300")] } else { vec![(k, v)] };
        let o = w.cli(&["check-config"], &extra);
        assert_eq!(o.code, 2, "{k}={v}: {}", o.stderr);
        assert!(o.stderr.contains(needle), "{k}={v}: {}", o.stderr);
    }
    // serve reads host.json's functionTimeout from its working directory.
    let dir = tempdir();
    std::fs::write(dir.join("host.json"), r#"{"version":"2.0","functionTimeout":"00:02:00"}"#).unwrap();
    let h = w.serve_in(&dir, &[]);
    let reply = h.invoke_timer(false);
    assert_eq!(reply.status, 500);
    // The body carries the code's fixed sentence (contract §3); the problem is in the log.
    assert!(reply.text.contains("config_invalid"), "{}", reply.text);
    assert!(eventually(Duration::from_secs(5), || h.log().contains("functionTimeout")), "{}", h.log());
    assert_eq!(w.upstream_calls(), 0);
}

/// `buffered` kept a finished target's slot until the head of the queue finished: healthy
/// targets waited behind a workspace answering 503 slowly.
#[test]
fn a_slow_workspace_does_not_hold_up_the_others() {
    let mut w = World::with(pat_rotator_emulators::EmulatorOptions { workspaces: 2, ..Default::default() });
    let targets = vec![w.target("slow", 0, 0), w.target("a", 1, 0), w.target("b", 1, 0), w.target("c", 1, 0)];
    w.targets(&targets);
    w.emu.workspace(0).faults().inject("list", Fault::hang(), usize::MAX);
    let started = Instant::now();
    let (code, r) =
        w.rotate(&[], &[("PAT_MAX_CONCURRENCY", "2"), ("PAT_RETRY_ATTEMPTS", "4"), ("PAT_CALL_TIMEOUT_SECONDS", "2")]);
    let total = started.elapsed();
    assert_eq!(code, 1);
    let names: Vec<&str> = r.iter().map(|o| o["target"].as_str().unwrap()).collect();
    assert_eq!(names, ["slow", "a", "b", "c"], "reported in configuration order");
    assert_eq!(r[0]["action"], "failed");
    assert!(r[1..].iter().all(|o| o["action"] == "created"), "{r:?}");
    // Every healthy target was done long before the slow one gave up.
    let last_healthy = w.emu.workspace(1).faults().calls().iter().map(|c| c.at).max().unwrap();
    let slow_first = w.emu.workspace(0).faults().calls().iter().map(|c| c.at).min().unwrap();
    assert!(
        last_healthy.duration_since(slow_first) < total / 2,
        "healthy targets finished {:?} after the slow one started (run took {total:?})",
        last_healthy.duration_since(slow_first)
    );
}

/// A tag value with multi-byte characters used to panic `status` (byte slicing in `short_id`).
#[test]
fn odd_vault_data_does_not_panic_status() {
    let w = World::one_target(&[]);
    // Byte 12 falls inside a two-byte character.
    let id = "xéééééééééééééé-not-a-token";
    w.emu.vault(0).seed_secret(
        "t-pat",
        "x",
        Some("databricks-pat"),
        &[("managed-by", "pat-rotator"), ("databricks-token-id", id), ("token-expires-at", "soon")],
        None,
    );
    // Exit 1: the token the vault names is not in the workspace (attention `token_missing`).
    let o = w.cli(&["status"], &[]);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(!o.stderr.contains("panicked"), "{}", o.stderr);
    assert!(o.stdout.contains("xééééééééééé…"), "{}", o.stdout);
    let o = w.cli(&["status", "--json"], &[]);
    assert_eq!(o.json()[0]["token_id"], id);
    assert_eq!(o.json()[0]["token_exists"], false);
    assert_eq!(o.json()[0]["attention"], serde_json::json!(["token_missing"]));
}

/// The host discards the body of a failed invocation: the summary must be in the logs, on one
/// line at error level, and every line of the invocation carries its id.
#[test]
fn rotate_pat_logs_the_failure_summary_with_the_invocation_id() {
    let mut w = World::new();
    let targets = vec![w.target("good", 0, 0), w.target("bad", 0, 0)];
    w.targets(&targets);
    w.emu.vault(0).set_role(w.emu.identity().principal(), pat_rotator_emulators::Role::None);
    let h = w.serve(&[]);
    let reply = h.invoke_timer(false);
    assert_eq!(reply.status, 500, "{}", reply.text);
    assert!(eventually(Duration::from_secs(5), || h.log().contains("RotatePat failed")));
    let log = h.log();
    let summary: Vec<&str> = log.lines().filter(|l| l.contains("RotatePat failed")).collect();
    assert_eq!(summary.len(), 1, "{log}");
    let line = summary[0];
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("good (keyvault_forbidden)") && line.contains("bad (keyvault_forbidden)"), "{line}");
    assert!(line.contains("7b2f6c0e-1d9a-4c55-8f3e-0a6b9d4c2e11"), "{line}");
    let per_target: Vec<&str> =
        log.lines().filter(|l| l.contains("good: failed") || l.contains("bad: failed")).collect();
    assert_eq!(per_target.len(), 2, "{log}");
    assert!(per_target.iter().all(|l| l.contains("invocation_id=7b2f6c0e-1d9a-4c55-8f3e-0a6b9d4c2e11")), "{log}");
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "pat-rotator-test-{}-{}",
        std::process::id(),
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

mod reqwest {
    /// A GET with a bearer token, blocking, on a throwaway runtime: (status, body).
    pub fn blocking_get(url: &str, bearer: &str) -> (u16, String) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let r = ::reqwest::Client::new().get(url).bearer_auth(bearer).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    }
}

/// A clock that jumps: this machine's clock two days ahead (libfaketime) must not make a token
/// look past its grace. Grace and ages are judged on the services' clocks; the old rule
/// compared the `rotated-at` tag with the local clock and revoked the superseded token.
///
/// Without libfaketime (at build time) the test is reported as ignored, never as passed; in CI
/// `libfaketime_is_installed_in_ci` fails instead.
#[test]
#[cfg_attr(not(has_faketime), ignore = "skipped: libfaketime is not installed (apt-get install faketime)")]
fn a_local_clock_jump_does_not_revoke_inside_the_grace() {
    let lib = libfaketime().expect("libfaketime (found at build time) is gone");
    let w = World::one_target(&[]);
    w.emu.identity().set_token_lifetime(10 * DAY);
    let old = w.seed_managed(0, 0, "t", 3 * DAY, 90 * DAY, None);
    let (code, r) = w.rotate(&["--force"], &[]);
    assert_eq!((code, r[0]["action"].as_str()), (0, Some("rotated")), "{r:?}");
    let faked = [("LD_PRELOAD", lib.as_str()), ("FAKETIME", "+2d"), ("FAKETIME_DONT_FAKE_MONOTONIC", "1")];
    let o = w.cli(&["rotate", "--json"], &faked);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let r = o.json();
    assert_eq!(r[0]["action"], "unchanged", "{r:?}");
    assert!(w.emu.workspace(0).is_live(&old), "superseded a moment ago by the services' clocks: {r:?}");
    assert_eq!(r[0]["revoked_token_ids"], json!([]));
}

/// CI installs faketime (`scripts/test.sh`): there the clock-jump test must run, not be ignored.
#[test]
fn libfaketime_is_installed_in_ci() {
    if std::env::var_os("CI").is_some() {
        let built_with_it = cfg!(has_faketime);
        assert!(
            built_with_it,
            "libfaketime is required in CI (scripts/test.sh installs faketime); rebuild after installing it"
        );
        assert!(libfaketime().is_some(), "libfaketime is required in CI");
    }
}

fn libfaketime() -> Option<String> {
    ["/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1", "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(str::to_string)
}

/// After the Function App's own identity changed (system- to user-assigned), the secret's token
/// belongs to the old identity: the run says so as the likely cause, instead of only calling it
/// an out-of-band revocation. With other tokens of the target visible, it says nothing extra.
#[test]
fn a_switch_of_the_service_identity_is_reported_as_the_likely_cause() {
    let w = World::one_target(&[]);
    let ws = w.emu.workspace(0);
    // The old identity's token, named by the latest version.
    let (old, value) =
        ws.seed_token("old-system-assigned-oid", "pat-rotator/t/old", SystemTime::now() - 3 * DAY, Some(90 * DAY));
    let tags = [("managed-by", "pat-rotator"), ("target", "t"), ("databricks-token-id", old.as_str())];
    w.emu.vault(0).seed_secret("t-pat", &value, Some("databricks-pat"), &tags, None);
    let o = w.cli(&["rotate", "--json"], &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.json()[0]["action"], "reprovisioned");
    assert!(o.stderr.contains("holds no token of this target at all"), "{}", o.stderr);
    assert!(o.stderr.contains("system- to user-assigned"), "{}", o.stderr);
    assert!(ws.is_live(&old), "the old identity's token is not this identity's to revoke");

    // An out-of-band revocation while the identity holds the target's previous token.
    let w = World::one_target(&[]);
    let prev = w.seed_token(0, &w.comment("t", 0, "prev"), 40 * DAY, 90 * DAY).0;
    let cur = w.seed_managed(0, 0, "t", 5 * DAY, 90 * DAY, Some(&prev));
    w.emu.workspace(0).revoke(&cur);
    let o = w.cli(&["rotate", "--json"], &[]);
    assert_eq!(o.json()[0]["reason"], "revoked_in_workspace");
    assert!(!o.stderr.contains("holds no token of this target"), "{}", o.stderr);
}
