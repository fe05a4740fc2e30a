//! `status` as a health check and the `Status` function (contract §1, §3, §10 "Health") through
//! the real binary: every field, every attention reason `status` judges, the exit codes, what a
//! person running it can and cannot see, and what a function-key holder is told.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use pat_rotator::error::Code;
use pat_rotator::handler::public::sentence;
use serde_json::{Value, json};

/// The keys of every `status --json` object (contract §1).
const KEYS: [&str; 15] = [
    "target",
    "kind",
    "secret_version",
    "token_id",
    "expires_at",
    "days_left",
    "token_exists",
    "rotated_at",
    "next_rotation_at",
    "rotated_by",
    "last_used_day",
    "healthy",
    "attention",
    "details",
    "error",
];

const PERSON: &str = "0e0e0e0e-1111-4111-8111-eeeeeeeeeeee";
const AS_PERSON: [(&str, &str); 5] = [
    ("IDENTITY_ENDPOINT", ""),
    ("IDENTITY_HEADER", ""),
    ("PAT_CREDENTIAL", "client_secret"),
    ("AZURE_CLIENT_ID", PERSON),
    ("AZURE_CLIENT_SECRET", CLIENT_SECRET),
];

fn status(w: &World, extra: &[(&str, &str)]) -> (i32, Vec<Value>) {
    let o = w.cli(&["status", "--json"], extra);
    let v = o.json();
    let rows = v.as_array().cloned().unwrap_or_else(|| panic!("not an array: {v}\n{}", o.stderr));
    for r in &rows {
        for k in KEYS {
            assert!(
                r.as_object().unwrap().contains_key(k),
                "{k} missing (unknown fields are null, never omitted): {r}"
            );
        }
    }
    (o.code, rows)
}

fn row<'a>(rows: &'a [Value], target: &str) -> &'a Value {
    rows.iter().find(|r| r["target"] == target).unwrap_or_else(|| panic!("{target} not in {rows:?}"))
}

fn attention(r: &Value) -> Vec<String> {
    r["attention"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect()
}

fn rfc3339(s: &Value) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(s.as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap()
}

#[test]
fn a_healthy_target_and_the_exit_codes() {
    let w = World::one_target(&[]);
    let (code, rows) = status(&w, &[]);
    assert_eq!(code, 1, "no secret yet needs attention");
    assert_eq!(attention(&rows[0]), ["no_secret"]);
    assert_eq!((rows[0]["error"].clone(), rows[0]["healthy"].clone()), (Value::Null, json!(false)));

    assert_eq!(w.rotate(&[], &[]).0, 0);
    let (code, rows) = status(&w, &[]);
    let r = &rows[0];
    assert_eq!(code, 0, "{r}");
    assert_eq!(
        (r["healthy"].as_bool(), r["attention"].clone(), r["details"].clone()),
        (Some(true), json!([]), json!({}))
    );
    assert_eq!(r["token_exists"], true);
    assert_eq!(r["days_left"], 89);
    assert_eq!(r["rotated_by"], w.emu.identity().principal());
    // The verification used the new token: its last use is today (Token Management API; the
    // emulators' identity is a workspace admin).
    assert_eq!(r["last_used_day"], json!(time::OffsetDateTime::now_utc().date().to_string()));
    assert_eq!(rfc3339(&r["expires_at"]) - rfc3339(&r["next_rotation_at"]), time::Duration::days(30));
    let age = time::OffsetDateTime::now_utc() - rfc3339(&r["rotated_at"]);
    assert!(age >= time::Duration::ZERO && age < time::Duration::minutes(5), "{r}");
    let table = w.cli(&["status"], &[]);
    assert_eq!(table.code, 0);
    assert!(table.stdout.contains("HEALTH") && table.stdout.contains(" ok "), "{}", table.stdout);

    // 2: configuration or usage error.
    assert_eq!(w.cli(&["status", "--target", "nope"], &[]).code, 2);
    assert_eq!(w.cli(&["status"], &[("PAT_TARGETS", "[]")]).code, 2);
    assert_eq!(w.cli(&["status"], &[("PAT_SERVICE_OBJECT_ID", "not-a-guid")]).code, 2);
}

/// One target per reason, judged in one run; then the reads that fail.
#[test]
fn every_attention_reason_status_judges() {
    let mut w = World::new();
    let names = ["fresh", "gone", "foreign", "off", "old", "orphans", "many"];
    let targets: Vec<Value> = names.iter().map(|n| w.target(n, 0, 0)).collect();
    w.targets(&targets);
    let kv = w.emu.vault(0);
    // fresh: no secret; an old token with its comment is not judged unrecorded (the read said
    // absent, which proves nothing).
    w.seed_token(0, &w.comment("fresh", 0, "lost"), 30 * HOUR, 90 * DAY);
    // gone: the token the vault names was revoked.
    let gone = w.seed_managed(0, 0, "gone", 2 * DAY, 90 * DAY, None);
    w.emu.workspace(0).revoke(&gone);
    // foreign: written by hand.
    kv.seed_secret("foreign-pat", "hand-made", None, &[], None);
    // off: the latest version is disabled.
    w.seed_managed(0, 0, "off", 2 * DAY, 90 * DAY, None);
    let v = kv.latest("off-pat").unwrap().version;
    assert!(kv.set_enabled("off-pat", &v, false));
    // old: 80 days into a 90-day token renewed 30 days before expiry: 20 days overdue.
    w.seed_managed(0, 0, "old", 80 * DAY, 90 * DAY, None);
    // orphans: three versions, the oldest token named only by the first; one orphan of 30 h
    // (reported) and one of 2 h (a rotation may be in flight).
    let first = w.seed_managed(0, 0, "orphans", 70 * DAY, 90 * DAY, None);
    let second = w.seed_managed(0, 0, "orphans", 40 * DAY, 90 * DAY, Some(&first));
    w.seed_managed(0, 0, "orphans", 2 * DAY, 90 * DAY, Some(&second));
    let (orphan, _) = w.seed_token(0, &w.comment("orphans", 0, "o1"), 30 * HOUR, 90 * DAY);
    w.seed_token(0, &w.comment("orphans", 0, "o2"), 2 * HOUR, 90 * DAY);
    // many: seven live tokens of the target, one of them the vault's.
    let current = w.seed_managed(0, 0, "many", DAY, 90 * DAY, None);
    let mut extra: Vec<String> =
        (0..6).map(|i| w.seed_token(0, &w.comment("many", 0, &format!("m{i}")), HOUR, 90 * DAY).0).collect();

    let (code, rows) = status(&w, &[]);
    assert_eq!(code, 1);
    let want = [
        ("fresh", vec!["no_secret"]),
        ("gone", vec!["token_missing"]),
        ("foreign", vec!["foreign_secret"]),
        ("off", vec!["disabled_secret"]),
        ("old", vec!["expires_soon"]),
        ("orphans", vec!["unrecorded"]),
        ("many", vec!["over_cap"]),
    ];
    for (t, reasons) in want {
        let r = row(&rows, t);
        assert_eq!(attention(r), reasons, "{t}: {r}");
        assert_eq!(r["healthy"], false, "{t}");
        assert_eq!(r["error"], Value::Null, "{t}: {r}");
    }
    assert_eq!(row(&rows, "fresh")["details"], json!({}));
    assert_eq!(row(&rows, "gone")["token_exists"], false);
    assert_eq!(row(&rows, "orphans")["details"], json!({ "unrecorded": [orphan] }));
    extra.sort();
    let mut capped: Vec<String> = serde_json::from_value(row(&rows, "many")["details"]["over_cap"].clone()).unwrap();
    capped.sort();
    assert_eq!(capped, extra, "the ids over the cap, not the vault's {current}");

    // The issuer's listing fails: credentials_unlisted, with its code.
    let forbidden = Fault::status(403).json(json!({"error_code": "PERMISSION_DENIED", "message": "no"}));
    w.emu.workspace(0).faults().inject("list", forbidden, usize::MAX);
    let (code, rows) = status(&w, &[]);
    assert_eq!(code, 1);
    let r = row(&rows, "many");
    assert_eq!(attention(r), ["credentials_unlisted"], "{r}");
    assert_eq!(r["error"]["code"], "databricks_forbidden");
    assert_eq!(r["token_exists"], Value::Null);
    w.emu.workspace(0).faults().clear();

    // The secret cannot be read: secret_unreadable, with its code.
    w.emu.vault(0).set_role(w.emu.identity().principal(), Role::None);
    let (code, rows) = status(&w, &[]);
    assert_eq!(code, 1);
    for r in &rows {
        assert_eq!(attention(r), ["secret_unreadable"], "{r}");
        assert_eq!(r["error"]["code"], "keyvault_forbidden");
    }
    assert_eq!(kv_writes(&w, 0), 0, "status never writes");
}

/// OAuth secrets (contract §9): a secret of the principal that no version records is reported
/// once an hour old — but not after a read that said "absent", which proves nothing (§10
/// "Inventory follows §7.4"); a full principal is over the cap.
#[test]
fn oauth_secrets_unrecorded_only_after_a_read_that_found_the_secret() {
    const APP: &str = "0c0c0c0c-2222-4222-8222-cccccccccccc";
    let mut w = World::new();
    w.emu.add_oauth_service_principal(APP, "etl principal");
    let mut t = w.target("sp", 0, 0);
    t["kind"] = json!("sp_oauth_secret");
    t["service_principal"] = json!(APP);
    w.targets(&[t]);
    let (stray, _) = w.emu.workspace(0).seed_sp_secret(APP, std::time::SystemTime::now() - 3 * DAY, 90 * DAY);
    let (code, rows) = status(&w, &[]);
    assert_eq!(code, 1);
    assert_eq!(attention(&rows[0]), ["no_secret"], "{}", rows[0]);
    assert_eq!(rows[0]["details"], json!({}));

    assert_eq!(w.rotate(&[], &[]).0, 0);
    let (_, rows) = status(&w, &[]);
    assert_eq!(attention(&rows[0]), ["unrecorded"], "{}", rows[0]);
    assert_eq!(rows[0]["details"]["unrecorded"], json!([stray.id]));
    // Five secrets: the principal is full.
    for _ in 0..3 {
        w.emu.workspace(0).seed_sp_secret(APP, std::time::SystemTime::now(), 90 * DAY);
    }
    let (_, rows) = status(&w, &[]);
    assert_eq!(attention(&rows[0]), ["unrecorded", "over_cap"], "{}", rows[0]);
    assert_eq!(rows[0]["details"]["over_cap"].as_array().unwrap().len(), 4, "{}", rows[0]);
}

/// Contract §10 "Running as someone else": a person's `status` cannot see the service's PAT, so
/// its existence is unknown (not missing) and nothing is judged unrecorded or over the cap;
/// `rotated_by_another_identity` compares with PAT_SERVICE_OBJECT_ID when set, otherwise with the
/// identity status runs as. `tokens` says which identity it lists as.
#[test]
fn status_and_tokens_run_as_someone_else() {
    let w = World::one_target(&[]);
    let person = w.emu.aad().add_service_principal(PERSON, CLIENT_SECRET);
    w.emu.workspace(0).add_member(&person);
    let service = w.emu.identity().principal().to_string();
    assert_eq!(w.rotate(&[], &[]).0, 0);
    // Seven live tokens of the service for this target: over the cap, as the service sees it.
    for i in 0..6 {
        w.seed_token(0, &w.comment("t", 0, &format!("m{i}")), HOUR, 90 * DAY);
    }
    let (_, rows) = status(&w, &[]);
    assert_eq!(attention(&rows[0]), ["over_cap"]);

    // As the person, judged against the person: another identity wrote it.
    let (code, rows) = status(&w, &AS_PERSON);
    let r = &rows[0];
    assert_eq!(code, 1);
    assert_eq!(attention(r), ["rotated_by_another_identity"], "not token_missing, not over_cap: {r}");
    assert_eq!((r["token_exists"].clone(), r["rotated_by"].clone()), (Value::Null, json!(service)));
    // Judged against the service: healthy, though the token's existence is unknown.
    let with_service = [&AS_PERSON[..], &[("PAT_SERVICE_OBJECT_ID", service.as_str())]].concat();
    let (code, rows) = status(&w, &with_service);
    assert_eq!((code, rows[0]["healthy"].clone(), rows[0]["token_exists"].clone()), (0, json!(true), Value::Null));

    let o = w.cli(&["tokens"], &AS_PERSON);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.starts_with(&format!("identity: {person}")), "{}", o.stdout);
    let o = w.cli(&["tokens", "--json"], &[]);
    assert_eq!(o.json()[0]["identity"], service.as_str());

    // The person takes ownership: now the service cannot list the token, but as a workspace
    // admin it looks it up in the Token Management API (contract §10).
    assert_eq!(w.rotate(&["--target", "t", "--take-ownership"], &AS_PERSON).0, 0);
    for extra in [&[][..], &[("PAT_SERVICE_OBJECT_ID", service.as_str())]] {
        let (code, rows) = status(&w, extra);
        let r = &rows[0];
        assert_eq!(code, 1);
        assert_eq!(attention(r), ["rotated_by_another_identity"], "{r}");
        assert_eq!((r["token_exists"].clone(), r["rotated_by"].clone()), (json!(true), json!(person)));
    }
    // Revoked by its owner: the lookup says it is gone.
    let person_token = w.emu.vault(0).latest("t-pat").unwrap().tags["databricks-token-id"].clone();
    assert!(w.emu.workspace(0).revoke(&person_token));
    let (_, rows) = status(&w, &[]);
    assert_eq!(rows[0]["token_exists"], false, "{}", rows[0]);
    assert_eq!(attention(&rows[0]), ["token_missing", "rotated_by_another_identity"]);
    // Without workspace admin the existence is unknown again, not missing.
    let me = w.emu.workspace(0).principal().to_string();
    w.emu.workspace(0).remove_member(&me);
    w.emu.workspace(0).add_member(&me);
    let (_, rows) = status(&w, &[]);
    assert_eq!(
        (rows[0]["token_exists"].clone(), attention(&rows[0])),
        (Value::Null, vec!["rotated_by_another_identity".to_string()])
    );
    let (_, rows) = status(&w, &with_service);
    assert_eq!(attention(&rows[0]), ["token_missing", "rotated_by_another_identity"]);
    assert_eq!(rows[0]["token_exists"], false, "the person lists the person's tokens");
}

fn status_fn(h: &Handler) -> Reply {
    h.get("/api/Status?code=FUNCTION-KEY-must-not-leak")
}

/// `GET /api/Status`: the array with the three changes of contract §3, no object id, no secret
/// id, no upstream text; cached per instance; 405 for other methods; the envelope form too.
#[test]
fn the_status_function_says_what_a_function_key_holder_may_know() {
    let mut w = World::with(pat_rotator_emulators::EmulatorOptions { vaults: 2, ..Default::default() });
    let targets = vec![w.target("good", 0, 0), w.target("locked", 0, 1)];
    w.targets(&targets);
    assert_eq!(w.rotate(&["--target", "good"], &[]).0, 0);
    let service = w.emu.identity().principal().to_string();
    w.emu.vault(1).set_role(&service, Role::None);
    let h = w.serve(&[]);
    let r = status_fn(&h);
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.headers["content-type"].to_str().unwrap().starts_with("application/json"));
    let rows = r.json();
    let rows = rows.as_array().unwrap();
    let want: BTreeSet<&str> = KEYS.iter().copied().chain(["managed"]).collect();
    for row in rows {
        let keys: BTreeSet<&str> = row.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, want, "no secret_id, no owner: {row}");
    }
    let good = row(rows, "good");
    assert_eq!((good["healthy"].as_bool(), good["rotated_by"].as_str()), (Some(true), Some("self")), "{good}");
    let locked = row(rows, "locked");
    assert_eq!(attention(locked), ["secret_unreadable"]);
    assert_eq!(locked["error"], json!({"code": "keyvault_forbidden", "message": sentence(Code::KeyvaultForbidden)}));
    for leak in [service.as_str(), "127.0.0.1", "ForbiddenByRbac", "Caller", "https://", "good-pat", "locked-pat"] {
        assert!(!r.text.contains(leak), "the answer names {leak:?}: {}", r.text);
    }
    assert!(!h.log().contains("FUNCTION-KEY"), "function key logged");

    // Cached for 60 s per instance: no upstream call, the same answer although the token is gone.
    w.reset_calls();
    let id = good["token_id"].as_str().unwrap().to_string();
    w.emu.workspace(0).revoke(&id);
    let again = status_fn(&h);
    assert_eq!((again.status, again.text.as_str()), (200, r.text.as_str()));
    assert_eq!(w.upstream_calls(), 0, "served from the cache");

    // Methods and the host's envelope form.
    assert_eq!(h.post_raw("/api/Status", "application/json", "{}".into()).status, 405);
    let env = json!({ "Data": { "req": { "Url": "https://app/api/Status", "Method": "GET", "Query": {}, "Headers": {} } },
        "Metadata": { "sys": { "MethodName": "Status", "UtcNow": "2026-11-26T03:00:00Z" } } });
    let e = h.post_raw("/Status", "application/json", env.to_string());
    assert_eq!(e.status, 200, "{}", e.text);
    assert_eq!(e.json()["Outputs"]["res"]["statusCode"], 200);
    assert_eq!(e.json()["Outputs"]["res"]["body"], r.json(), "the same (cached) array");
    drop(h);

    // A new instance reads afresh: the token is missing now.
    let h = w.serve(&[]);
    let rows = status_fn(&h).json();
    assert_eq!(attention(row(rows.as_array().unwrap(), "good")), ["token_missing"]);
    drop(h);

    // Another identity wrote it: "other", never the object id.
    let person = w.emu.aad().add_service_principal(PERSON, CLIENT_SECRET);
    w.emu.workspace(0).add_member(&person);
    assert_eq!(w.rotate(&["--target", "good", "--take-ownership"], &AS_PERSON).0, 0);
    let h = w.serve(&[]);
    let r = status_fn(&h);
    let good = row(r.json().as_array().unwrap(), "good").clone();
    assert_eq!(good["rotated_by"], "other", "{good}");
    assert!(attention(&good).contains(&"rotated_by_another_identity".to_string()), "{good}");
    assert!(!r.text.contains(&person) && !r.text.contains(&service), "{}", r.text);
}

#[test]
fn the_status_function_on_a_bad_configuration_and_a_hung_vault() {
    let w = World::one_target(&[]);
    let h = w.serve(&[("PAT_TARGETS", "[{\"name\":\"BAD\"}]")]);
    let r = status_fn(&h);
    assert_eq!(r.status, 500, "{}", r.text);
    assert_eq!(r.json(), json!({"error": {"code": "config_invalid", "message": sentence(Code::ConfigInvalid)}}));
    assert!(!r.text.contains("BAD"), "no detail: {}", r.text);
    drop(h);

    // The vault never answers: after the budget (60 s, or a lower PAT_HTTP_BUDGET_SECONDS) the
    // target is reported as a timeout, and the other calls' retries do not hold the answer.
    assert_eq!(w.rotate(&[], &[]).0, 0);
    let h = w.serve(&[("PAT_HTTP_BUDGET_SECONDS", "5"), ("PAT_CALL_TIMEOUT_SECONDS", "60")]);
    w.emu.vault(0).faults().inject("get", Fault::hang(), usize::MAX);
    let started = Instant::now();
    let r = status_fn(&h);
    let took = started.elapsed();
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(took >= Duration::from_secs(5) && took < Duration::from_secs(15), "took {took:?}");
    let row = &r.json()[0];
    assert_eq!(attention(row), ["secret_unreadable"], "{row}");
    assert_eq!(row["error"], json!({"code": "timeout", "message": sentence(Code::Timeout)}));
    w.emu.vault(0).faults().clear();
}

/// Contract §7.4: when the latest version is disabled, every version of its `created` second
/// counts as the latest. Here the newer of two same-second versions is disabled and the older
/// carries the greater id (the one the read settles on): consumers cannot read the latest
/// version, and `status` must say so although the version it shows is enabled.
#[test]
fn a_disabled_version_tied_in_its_second_needs_attention() {
    let mut w = World::new();
    let kv = w.emu.vault(0);
    let url = kv.url().to_string();
    let then = std::time::SystemTime::now() - 2 * DAY;
    let mut attempt = 0;
    let name = loop {
        attempt += 1;
        assert!(attempt < 50, "the version ids never came out in the order wanted");
        let name = format!("t-pat-{attempt}");
        let key = pat_rotator::databricks::pat::secret_key(&url, &name);
        let comment = |att: &str| pat_rotator::databricks::pat::comment("t", &key, att);
        let (a, a_value) = w.seed_token(0, &comment("a"), 2 * DAY, 90 * DAY);
        let (b, b_value) = w.seed_token(0, &comment("b"), 2 * DAY, 90 * DAY);
        kv.freeze_clock(Some(then));
        let older = kv.seed_secret(
            &name,
            &a_value,
            Some("databricks-pat"),
            &[("managed-by", "pat-rotator"), ("databricks-token-id", &a)],
            None,
        );
        let newer = kv.seed_secret(
            &name,
            &b_value,
            Some("databricks-pat"),
            &[("managed-by", "pat-rotator"), ("databricks-token-id", &b)],
            None,
        );
        kv.freeze_clock(None);
        if older > newer {
            kv.set_enabled(&name, &newer, false);
            break name;
        }
    };
    let mut t = w.target("t", 0, 0);
    t["secret_name"] = json!(name);
    w.targets(&[t]);
    let (code, rows) = status(&w, &[]);
    assert_eq!(code, 1, "{rows:?}");
    assert!(attention(&rows[0]).contains(&"disabled_secret".to_string()), "{}", rows[0]);
}
