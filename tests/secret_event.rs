//! `SecretEvent` (contract §3, §10 "Key Vault events") through the real binary, driven like the
//! Functions host drives a custom handler for an Event Grid trigger.
//!
//! The invocation shape comes from the public sources read for it (see `src/handler/event.rs`
//! and `Handler::invoke_event`): Azure/azure-functions-host
//! `src/WebJobs.Script/Workers/MessageExtensions/ScriptInvocationContextExtensions.cs`
//! (`ToHttpScriptInvocationContext`: `Data[<binding>]` is the trigger value as a JSON object, or
//! its JSON serialisation as a string; `Metadata` the binding data plus `sys`), and the Event
//! Grid extension in Azure/azure-sdk-for-net,
//! `sdk/eventgrid/Microsoft.Azure.WebJobs.Extensions.EventGrid/src/`
//! (`TriggerBinding/HttpRequestProcessor.cs`: the extension answers the validation handshake
//! itself and splits a notification array; `Config/EventGridExtensionConfigProvider.cs`: single
//! dispatch invokes the function once per event and answers Event Grid 500 when a run failed;
//! `TriggerBinding/EventGridTriggerAttributeBindingProvider.cs`: the value is a `JObject`, or a
//! string parsed into one). The event itself follows Key Vault's Event Grid schema (MS Learn,
//! "Azure Key Vault as Event Grid source"): PascalCase data keys `Id`, `VaultName`,
//! `ObjectType`, `ObjectName`, `Version`, `NBF`, `EXP`.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// A Key Vault secret event of `kind` (`SecretNearExpiry`, …) for the latest version of
/// `secret` in vault `kv`, as Event Grid delivers it.
fn kv_event(w: &World, kind: &str, kv: usize, secret: &str) -> Value {
    let vault = w.emu.vault(kv);
    let version = vault.latest(secret).map(|v| v.version).unwrap_or_else(|| "0123456789abcdef0123456789abcdef".into());
    let exp = vault.latest(secret).and_then(|v| v.exp);
    json!({
        "id": "8d3c2b1a-4e5f-4a6b-9c7d-0e1f2a3b4c5d",
        "topic": format!("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/{}", vault.name()),
        "subject": secret,
        "eventType": format!("Microsoft.KeyVault.{kind}"),
        "eventTime": "2026-11-26T03:00:00.0000000Z",
        "data": {
            "Id": format!("{}/secrets/{secret}/{version}", vault.url()),
            "VaultName": vault.name(),
            "ObjectType": "Secret",
            "ObjectName": secret,
            "Version": version,
            "NBF": null,
            "EXP": exp,
        },
        "dataVersion": "1",
        "metadataVersion": "1"
    })
}

fn logs(r: &Reply) -> Vec<String> {
    r.json()["Logs"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|l| l.as_str().unwrap_or_default().to_string())
        .collect()
}

/// Target `t` (secret `t-pat`) with `renew_before_days` 10: a version written 70 days ago by a
/// 90-day rotation expires in 20 days, which the timer leaves alone.
fn expiring_world() -> (World, String) {
    let w = World::one_target(&[("renew_before_days", json!(10)), ("lifetime_days", json!(90))]);
    let old = w.seed_managed(0, 0, "t", 70 * DAY, 90 * DAY, None);
    (w, old)
}

#[test]
fn near_expiry_rotates_within_thirty_days_though_renew_before_days_says_not_yet() {
    let (w, old) = expiring_world();
    let h = w.serve(&[]);
    // The timer (renew_before_days 10, 20 days left) leaves the target alone ...
    let r = h.invoke_timer(false);
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(logs(&r)[0].contains("unchanged (fresh)"), "{:?}", logs(&r));
    // ... and so does a new-version event: only near-expiry and expired apply the 30-day rule.
    let r = h.invoke_event(kv_event(&w, "SecretNewVersionCreated", 0, "t-pat"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(logs(&r).iter().any(|l| l.contains("t: unchanged (fresh)")), "{:?}", logs(&r));
    assert_eq!(kv_writes(&w, 0), 0);

    let r = h.invoke_event(kv_event(&w, "SecretNearExpiry", 0, "t-pat"));
    assert_eq!(r.status, 200, "{}\n{}", r.text, h.log());
    assert_eq!(r.json()["ReturnValue"], Value::Null);
    assert!(logs(&r).iter().any(|l| l.starts_with("t: rotated (expiring)")), "{:?}", logs(&r));
    assert_eq!(kv_writes(&w, 0), 1);
    let new = w.assert_secret_works(0, 0, "t-pat");
    assert_ne!(new, old);
    let tags = w.emu.vault(0).latest("t-pat").unwrap().tags;
    assert_eq!(tags.get("previous-token-id"), Some(&old));
    assert_eq!(tags.get("rotated-via").map(String::as_str), Some("SecretEvent"));
    assert_eq!(tags.get("rotated-by").map(String::as_str), Some(w.emu.identity().principal()));
    assert!(w.emu.workspace(0).is_live(&old), "the superseded token keeps its grace");

    // SecretExpired applies the same rule: an expired latest version is rotated.
    let (w2, _) = expiring_world();
    w2.emu.vault(0).age_latest_version("t-pat", 25 * DAY);
    let h2 = w2.serve(&[]);
    let r = h2.invoke_event(kv_event(&w2, "SecretExpired", 0, "t-pat"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(logs(&r).iter().any(|l| l.starts_with("t: rotated (expiring)")), "{:?}", logs(&r));
}

#[test]
fn the_tools_own_new_version_is_evaluated_and_left_unchanged() {
    let (w, _) = expiring_world();
    let h = w.serve(&[]);
    let r = h.invoke_event(kv_event(&w, "SecretNearExpiry", 0, "t-pat"));
    assert!(logs(&r).iter().any(|l| l.starts_with("t: rotated (expiring)")), "{:?}", logs(&r));
    assert_eq!(kv_writes(&w, 0), 1);
    // Key Vault raises SecretNewVersionCreated for the version pat-rotator just wrote, and a
    // near-expiry event for the old one may still be in flight: both read, neither writes.
    let before_lists = ws_count(&w, 0, "list");
    for kind in ["SecretNewVersionCreated", "SecretNearExpiry"] {
        let r = h.invoke_event(kv_event(&w, kind, 0, "t-pat"));
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(logs(&r).iter().any(|l| l.starts_with("t: unchanged (fresh)")), "{kind}: {:?}", logs(&r));
    }
    assert_eq!(kv_writes(&w, 0), 1, "no second version: no loop");
    assert_eq!(ws_count(&w, 0, "list"), before_lists + 2, "each event was evaluated (read)");
    assert_eq!(ws_count(&w, 0, "create"), 1);
}

#[test]
fn the_three_shapes_of_data_event() {
    let mut w = World::new();
    let (a, b) = (w.target("a", 0, 0), w.target("b", 0, 0));
    w.targets(&[a, b]);
    let (ra, _) = w.rotate(&["--target", "a", "--target", "b"], &[]);
    assert_eq!(ra, 0);
    let h = w.serve(&[]);
    let ev = kv_event(&w, "SecretNewVersionCreated", 0, "a-pat");
    let shapes = [
        ("object", ev.clone(), 1),
        ("string holding its JSON", Value::String(ev.to_string()), 1),
        ("array, one event per element", json!([ev, kv_event(&w, "SecretNewVersionCreated", 0, "b-pat")]), 2),
    ];
    for (shape, event, targets) in shapes {
        w.reset_calls();
        let r = h.invoke_event(event);
        assert_eq!(r.status, 200, "{shape}: {}", r.text);
        let evaluated: Vec<String> = logs(&r).into_iter().filter(|l| l.contains(": unchanged (fresh)")).collect();
        assert_eq!(evaluated.len(), targets, "{shape}: {:?}", logs(&r));
        assert_eq!(ws_count(&w, 0, "list"), targets, "{shape}: each matching target read once");
    }
    // The same secret twice in one invocation is evaluated once.
    w.reset_calls();
    let r = h.invoke_event(json!([ev.clone(), ev.clone()]));
    assert_eq!(r.status, 200);
    assert_eq!(ws_count(&w, 0, "list"), 1, "{:?}", logs(&r));
}

#[test]
fn an_event_for_no_configured_secret_reads_nothing() {
    let w = World::one_target(&[]);
    let h = w.serve(&[]);
    let mut other_secret = kv_event(&w, "SecretNearExpiry", 0, "someone-elses-secret");
    let mut other_vault = kv_event(&w, "SecretNearExpiry", 0, "t-pat");
    other_vault["data"]["Id"] =
        json!("https://kv-elsewhere.vault.azure.net/secrets/t-pat/0123456789abcdef0123456789abcdef");
    other_vault["data"]["VaultName"] = json!("kv-elsewhere");
    let mut other_port = kv_event(&w, "SecretNearExpiry", 0, "t-pat");
    let mut id = url::Url::parse(other_port["data"]["Id"].as_str().unwrap()).unwrap();
    id.set_port(Some(free_port())).unwrap();
    other_port["data"]["Id"] = json!(id.to_string());
    let key = kv_event(&w, "KeyNearExpiry", 0, "t-pat");
    let mut certificate = kv_event(&w, "SecretNearExpiry", 0, "t-pat");
    certificate["data"]["ObjectType"] = json!("Certificate");
    w.reset_calls();
    for ev in [&mut other_secret, &mut other_vault, &mut other_port] {
        let r = h.invoke_event(ev.clone());
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(logs(&r).iter().any(|l| l.contains("no configured target holds this secret")), "{:?}", logs(&r));
    }
    for ev in [key, certificate] {
        let r = h.invoke_event(ev);
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(logs(&r).iter().any(|l| l.contains("is not acted on")), "{:?}", logs(&r));
    }
    assert_eq!(
        w.upstream_calls(),
        0,
        "nothing read: {:?}",
        w.emu.all_faults().iter().flat_map(|f| f.calls()).collect::<Vec<_>>()
    );
    assert!(!h.log().contains("ERROR"), "{}", h.log());
}

#[test]
fn a_malformed_event_is_logged_at_error_and_answered_200() {
    let w = World::one_target(&[]);
    let h = w.serve(&[("PAT_LOG_FORMAT", "json")]);
    let good = kv_event(&w, "SecretNearExpiry", 0, "t-pat");
    let mut renamed = good.clone();
    // An ObjectName that differs from the name in Id, carrying a forged log line.
    renamed["data"]["ObjectName"] = json!("t-pat\n{\"level\":\"ERROR\",\"message\":\"forged\"}");
    let mut bad_id = good.clone();
    bad_id["data"]["Id"] = json!("https://127.0.0.1/keys/t-pat/1");
    let mut no_data = good.clone();
    no_data.as_object_mut().unwrap().remove("data");
    w.reset_calls();
    for (what, event) in [
        ("ObjectName differs", renamed),
        ("not a secret version URL", bad_id),
        ("no data", no_data),
        ("a string that is not JSON", json!("{not json")),
        ("an empty array", json!([])),
        ("a number", json!(7)),
    ] {
        let r = h.invoke_event(event);
        assert_eq!(r.status, 200, "{what}: {}", r.text);
        assert!(logs(&r).iter().any(|l| l.contains("malformed event")), "{what}: {:?}", logs(&r));
    }
    let r = h.post_raw("/SecretEvent", "application/json", "not json".into());
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(w.upstream_calls(), 0, "a malformed event reads nothing");
    let malformed =
        |log: &str| log.lines().filter(|l| l.contains("\"ERROR\"") && l.contains("malformed event")).count();
    assert!(common::eventually(Duration::from_secs(5), || malformed(&h.log()) >= 7), "{}", h.log());
    let lines: Vec<Value> = h.log().lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let errors: Vec<&Value> = lines
        .iter()
        .filter(|l| l["level"] == "ERROR" && l["message"].as_str().unwrap().contains("malformed event"))
        .collect();
    assert_eq!(errors.len(), 7, "{}", h.log());
    assert!(errors.iter().all(|l| l["invocation_id"].is_string() && l["code"] == "invalid_request"));
    // The event's strings reach the log escaped: no line of its own.
    assert!(h.log().lines().all(|l| serde_json::from_str::<Value>(l).is_ok()), "{}", h.log());
    assert!(!lines.iter().any(|l| l["message"] == "forged"), "a forged line: {}", h.log());
    assert!(errors.iter().any(|l| l["message"].as_str().unwrap().contains("t-pat\\n{")), "{}", h.log());
}

#[test]
fn events_for_a_target_are_coalesced_while_its_event_run_is_in_flight() {
    let w = World::one_target(&[]);
    let (code, _) = w.rotate(&[], &[]);
    assert_eq!(code, 0);
    let h = w.serve(&[]);
    // The first run's listing is slow; the second delivery arrives meanwhile.
    w.reset_calls();
    w.emu.workspace(0).faults().inject("list", Fault::delay(Duration::from_millis(1500)), 1);
    let ev = kv_event(&w, "SecretNewVersionCreated", 0, "t-pat");
    let replies = h.invoke_events_concurrently(vec![ev.clone(), ev.clone(), ev.clone()]);
    assert!(replies.iter().all(|r| r.status == 200), "{:?}", replies.iter().map(|r| &r.text).collect::<Vec<_>>());
    let coalesced = replies.iter().filter(|r| logs(r).iter().any(|l| l.contains("coalesced"))).count();
    let ran = replies.iter().filter(|r| logs(r).iter().any(|l| l.contains("t: unchanged (fresh)"))).count();
    assert_eq!((ran, coalesced), (1, 2), "{:?}", replies.iter().map(|r| &r.text).collect::<Vec<_>>());
    assert_eq!(ws_count(&w, 0, "list"), 1, "one run, one read");
    // Once it is done, the next event runs again.
    let r = h.invoke_event(ev);
    assert!(logs(&r).iter().any(|l| l.contains("t: unchanged (fresh)")), "{:?}", logs(&r));
    assert_eq!(ws_count(&w, 0, "list"), 2);
}

/// Two writers subscribed to one vault would answer each other's events: an event-started run
/// never writes over a managed latest version another identity wrote (contract §10). It warns
/// `rotated_by_another_identity` and leaves the target to RotatePat and ProvisionPat.
#[test]
fn an_event_never_writes_over_another_identitys_version() {
    const PERSON: &str = "0e0e0e0e-1111-4111-8111-eeeeeeeeeeee";
    let w = World::one_target(&[]);
    let person = w.emu.aad().add_service_principal(PERSON, CLIENT_SECRET);
    w.emu.workspace(0).add_member(&person);
    let h = w.serve(&[]);
    assert_eq!(h.invoke_timer(true).status, 200);
    // Someone else writes the latest version (their own token, which the service cannot see).
    let as_person = [
        ("IDENTITY_ENDPOINT", ""),
        ("IDENTITY_HEADER", ""),
        ("PAT_CREDENTIAL", "client_secret"),
        ("AZURE_CLIENT_ID", PERSON),
        ("AZURE_CLIENT_SECRET", CLIENT_SECRET),
    ];
    let (code, r) = w.rotate(&["--target", "t", "--force", "--take-ownership"], &as_person);
    assert_eq!(code, 0, "{r:?}");
    let tags = w.emu.vault(0).latest("t-pat").unwrap().tags;
    assert_eq!(tags["rotated-by"], person);
    let (writes, creates) = (kv_writes(&w, 0), ws_count(&w, 0, "create"));
    for kind in ["SecretNewVersionCreated", "SecretNearExpiry"] {
        let r = h.invoke_event(kv_event(&w, kind, 0, "t-pat"));
        assert_eq!(r.status, 200, "{kind}: {}", r.text);
        assert!(logs(&r).iter().any(|l| l.starts_with("t: unchanged")), "{kind}: {:?}", logs(&r));
    }
    assert_eq!(kv_writes(&w, 0), writes, "no version written");
    assert_eq!(ws_count(&w, 0, "create"), creates, "no token created");
    assert_eq!(w.emu.vault(0).latest("t-pat").unwrap().tags["rotated-by"], person);
    assert!(h.log().contains("rotated_by_another_identity") && h.log().contains(&person), "{}", h.log());
    // The timer, by contrast, writes as itself.
    assert_eq!(h.invoke_timer(true).status, 200);
    assert_eq!(kv_writes(&w, 0), writes + 1);
    // And the service's own new version raises an event that is evaluated and left alone.
    let r = h.invoke_event(kv_event(&w, "SecretNewVersionCreated", 0, "t-pat"));
    assert!(logs(&r).iter().any(|l| l.starts_with("t: unchanged (fresh)")), "{:?}", logs(&r));
    assert_eq!(kv_writes(&w, 0), writes + 1);
}

#[test]
fn a_failed_event_run_answers_500() {
    let (w, old) = expiring_world();
    let h = w.serve(&[]);
    w.emu.vault(0).set_role(w.emu.identity().principal(), Role::User);
    let r = h.invoke_event(kv_event(&w, "SecretNearExpiry", 0, "t-pat"));
    assert_eq!(r.status, 500, "{}", r.text);
    assert_eq!(r.json()["error"]["code"], "keyvault_forbidden", "{}", r.text);
    assert!(
        h.log().contains("SecretEvent failed: 1 event-started run(s) failed: t (keyvault_forbidden)"),
        "{}",
        h.log()
    );
    assert_eq!(w.live_tokens(0), vec![old], "the new token was deleted; the old one still works");
}

/// An event arriving while a timer pass has filled the vault's write queue is served before the
/// pass's queued writes, like ProvisionPat (contract §11): its write goes in the next window.
#[test]
fn an_event_is_served_before_a_passs_queue() {
    use pat_rotator_emulators::{EmulatorOptions, KeyVaultOptions, KvThrottle};
    use std::time::Instant;
    let window = Duration::from_secs(1);
    let throttle = KvThrottle { window, write_limit: 2, other_limit: 4_000, retry_after: false };
    let mut w = World::with(EmulatorOptions {
        keyvault: KeyVaultOptions { throttle: Some(throttle), ..Default::default() },
        ..Default::default()
    });
    let mut targets: Vec<Value> = (0..16).map(|i| w.target(&format!("p{i:02}"), 0, 0)).collect();
    targets.push(w.target("vip", 0, 0));
    w.targets(&targets);
    let h = w.serve(&[
        ("PAT_KV_WRITES_PER_10S", "2"),
        ("PAT_KV_WINDOW_MS", "1000"),
        ("PAT_MAX_CONCURRENCY", "8"),
        ("PAT_RETRY_ATTEMPTS", "8"),
    ]);
    let base = h.base.clone();
    let pass = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let r = reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap()
                .post(format!("{base}/RotatePat"))
                .header("Content-Type", "application/json")
                .body(r#"{"Data":{"timer":{"ScheduleStatus":null,"IsPastDue":false}},"Metadata":{}}"#)
                .timeout(Duration::from_secs(120))
                .send()
                .await
                .expect("RotatePat answered");
            r.status().as_u16()
        })
    });
    // The pass is in its steady state: every slot busy, waiting for the vault's budget.
    let started = Instant::now();
    while kv_writes(&w, 0) < 3 {
        assert!(started.elapsed() < Duration::from_secs(20), "the pass wrote {} versions", kv_writes(&w, 0));
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = Instant::now();
    let r = h.invoke_event(kv_event(&w, "SecretNewVersionCreated", 0, "vip-pat"));
    let took = sent.elapsed();
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(logs(&r).iter().any(|l| l.starts_with("vip: created (no_secret)")), "{:?}", logs(&r));
    let written = kv_writes(&w, 0);
    assert!(!pass.is_finished(), "the pass must still be running for this to show anything");
    // Behind the pass's queue (up to 8 writes at 2 per window) it would wait about 4 windows.
    assert!(took < 2 * window, "SecretEvent took {took:?} while the pass had written {written} of 17");
    assert_eq!(pass.join().unwrap(), 200);
    assert_eq!(w.emu.kv_throttled_total(), 0);
}
