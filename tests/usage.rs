//! Usage-aware revocation (`keep_while_used`, contract §10 "Usage") through the real binary,
//! against the workspace fake's Token Management API (`GET
//! /api/2.0/token-management/tokens/{id}`, workspace admins only, `last_used_day` = the start of
//! the UTC day of the last successful use, by the workspace's clock).

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use serde_json::{Value, json};

/// Target `t` with `keep_while_used` and the default grace (24 h) and renewal (30 days): a
/// superseded token `prev` (created 60 days ago) and the current one, whose version (naming
/// `prev` as its predecessor) was written `version_age` ago. Returns (world, prev, current).
fn superseded_world(keep: bool, version_age: Duration) -> (World, String, String) {
    let w = World::one_target(&[("keep_while_used", json!(keep))]);
    let (prev, _) = w.seed_token(0, &w.comment("t", 0, "prev"), 60 * DAY, 90 * DAY);
    let current = w.seed_managed(0, 0, "t", version_age, 90 * DAY, Some(&prev));
    (w, prev, current)
}

fn used(w: &World, token: &str, ago: Duration) {
    assert!(w.emu.workspace(0).set_token_last_used(token, Some(SystemTime::now() - ago)));
}

fn warnings(o: &Value) -> Vec<String> {
    o["warnings"].as_array().map(|a| a.iter().map(|w| w.as_str().unwrap().to_string()).collect()).unwrap_or_default()
}

#[test]
fn a_superseded_token_in_use_is_kept_past_its_grace_then_revoked_once_unused() {
    let (w, prev, current) = superseded_world(true, 2 * DAY);
    used(&w, &prev, Duration::from_secs(60));
    let o = w.cli(&["rotate", "--json"], &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let r = &o.json()[0];
    assert_eq!((r["action"].as_str(), r["reason"].as_str()), (Some("unchanged"), Some("fresh")));
    assert_eq!(r["revoked_token_ids"], json!([]), "{r}");
    assert!(w.emu.workspace(0).is_live(&prev));
    let today = time::OffsetDateTime::now_utc().date();
    let ws = warnings(r);
    assert!(ws.iter().any(|m| m.contains(&format!("kept: in use (last_used_day={today})"))), "{ws:?}");
    // The log line the workbook reads (infra/queries/workbook-superseded-in-use.kql).
    assert!(o.stderr.contains("action=\"kept_in_use\"") || o.stderr.contains("action=kept_in_use"), "{}", o.stderr);
    assert_eq!(ws_count(&w, 0, "tm_get"), 1, "one lookup, of the superseded token only");

    // Yesterday still counts (by the workspace's Date) ...
    let now = time::OffsetDateTime::now_utc();
    let yesterday_noon = now.replace_time(time::macros::time!(12:00)) - time::Duration::days(1);
    assert!(w.emu.workspace(0).set_token_last_used(&prev, Some(yesterday_noon.into())));
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0);
    assert_eq!(r[0]["revoked_token_ids"], json!([]), "{}", r[0]);
    // ... the day before yesterday does not.
    used(&w, &prev, 3 * DAY);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0);
    assert_eq!(r[0]["revoked_token_ids"], json!([prev.clone()]), "{}", r[0]);
    assert!(!w.emu.workspace(0).is_live(&prev));
    assert!(w.emu.workspace(0).is_live(&current));
}

#[test]
fn without_keep_while_used_the_grace_alone_decides() {
    let (w, prev, _) = superseded_world(false, 2 * DAY);
    used(&w, &prev, Duration::from_secs(60));
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0);
    assert_eq!(r[0]["revoked_token_ids"], json!([prev]), "{}", r[0]);
    assert_eq!(ws_count(&w, 0, "tm_get"), 0, "no lookup without keep_while_used");
}

#[test]
fn kept_no_longer_than_renew_before_days_after_it_was_superseded() {
    // renew_before_days is 30: superseded 29 days ago and used today, it stays ...
    let (w, prev, _) = superseded_world(true, 29 * DAY);
    used(&w, &prev, Duration::ZERO);
    let (_, r) = w.rotate(&[], &[]);
    assert_eq!(r[0]["revoked_token_ids"], json!([]), "{}", r[0]);
    // ... superseded 31 days ago, it goes however recently it was used.
    w.emu.vault(0).age_latest_version("t-pat", 2 * DAY);
    let (_, r) = w.rotate(&[], &[]);
    assert_eq!(r[0]["revoked_token_ids"], json!([prev.clone()]), "{}", r[0]);
    assert!(!w.emu.workspace(0).is_live(&prev));
}

#[test]
fn an_answer_without_date_or_last_used_day_or_a_failed_lookup_keeps_it_for_that_run() {
    let (w, prev, _) = superseded_world(true, 2 * DAY);
    used(&w, &prev, 10 * DAY);
    // No Date on the Token Management answer: whether "today" is today is unknown.
    w.emu.workspace(0).omit_date("tm_get", 1);
    let (_, r) = w.rotate(&[], &[]);
    assert_eq!(r[0]["revoked_token_ids"], json!([]), "{}", r[0]);
    assert!(warnings(&r[0]).iter().any(|m| m.contains("kept for this run") && m.contains("no Date")), "{}", r[0]);
    // Never used (the answer has no last_used_day).
    assert!(w.emu.workspace(0).set_token_last_used(&prev, None));
    let (_, r) = w.rotate(&[], &[]);
    assert_eq!(r[0]["revoked_token_ids"], json!([]), "{}", r[0]);
    assert!(warnings(&r[0]).iter().any(|m| m.contains("kept for this run")), "{}", r[0]);
    // A lookup that fails otherwise.
    used(&w, &prev, 10 * DAY);
    w.emu.workspace(0).faults().inject("tm_get", Fault::status(400), 1);
    let (_, r) = w.rotate(&[], &[]);
    assert_eq!(r[0]["revoked_token_ids"], json!([]), "{}", r[0]);
    assert!(warnings(&r[0]).iter().any(|m| m.contains("looking up its last use failed")), "{}", r[0]);
    // Once the answer is readable and old, it goes.
    let (_, r) = w.rotate(&[], &[]);
    assert_eq!(r[0]["revoked_token_ids"], json!([prev]), "{}", r[0]);
}

#[test]
fn without_workspace_admin_the_plain_grace_applies_with_one_warning_per_workspace() {
    let mut w = World::new();
    let (a, b) = (w.target("a", 0, 0), w.target("b", 0, 0));
    let keep = |mut t: Value| {
        t["keep_while_used"] = json!(true);
        t
    };
    w.targets(&[keep(a), keep(b)]);
    let mut prevs = Vec::new();
    for t in ["a", "b"] {
        let (prev, _) = w.seed_token(0, &w.comment(t, 0, "prev"), 60 * DAY, 90 * DAY);
        w.seed_managed(0, 0, t, 2 * DAY, 90 * DAY, Some(&prev));
        used(&w, &prev, Duration::ZERO);
        prevs.push(prev);
    }
    // A plain member (token CAN_USE), not an admin: the Token Management API answers 403.
    let me = w.emu.workspace(0).principal().to_string();
    w.emu.workspace(0).remove_member(&me);
    w.emu.workspace(0).add_member(&me);
    let o = w.cli(&["rotate", "--json"], &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let r = o.json();
    assert_eq!(r[0]["revoked_token_ids"], json!([prevs[0].clone()]), "{}", r[0]);
    assert_eq!(r[1]["revoked_token_ids"], json!([prevs[1].clone()]), "{}", r[1]);
    let warned = o.stderr.lines().filter(|l| l.contains("WARN") && l.contains("cannot read tokens' last use")).count();
    assert_eq!(warned, 1, "one warning per workspace per pass:\n{}", o.stderr);
    let carried: usize = (0..2).map(|i| warnings(&r[i]).iter().filter(|m| m.contains("workspace admin")).count()).sum();
    assert_eq!(carried, 1, "{r}");
}

#[test]
fn over_the_cap_tokens_not_in_use_go_first() {
    // Inside the grace (version 2 h old) nothing is proven revocable, but 7 live tokens are one
    // over the cap of 6: the oldest goes, unless it is in use.
    let run = |keep: bool| {
        let w = World::one_target(&[("keep_while_used", json!(keep))]);
        let olds: Vec<String> = (0..6)
            .map(|i| w.seed_token(0, &w.comment("t", 0, &format!("old{i}")), (60 - i) * DAY, 90 * DAY).0)
            .collect();
        w.seed_managed(0, 0, "t", 2 * HOUR, 90 * DAY, Some(&olds[5]));
        used(&w, &olds[0], Duration::ZERO);
        for o in &olds[1..] {
            used(&w, o, 20 * DAY);
        }
        let (code, r) = w.rotate(&[], &[]);
        assert_eq!(code, 0, "{r:?}");
        (olds, r[0]["revoked_token_ids"].clone())
    };
    let (olds, revoked) = run(false);
    assert_eq!(revoked, json!([olds[0].clone()]), "oldest first without keep_while_used");
    let (olds, revoked) = run(true);
    assert_eq!(revoked, json!([olds[1].clone()]), "the oldest not in use first");
}

#[test]
fn revoke_superseded_ignores_usage() {
    let (w, prev, _) = superseded_world(true, 2 * DAY);
    used(&w, &prev, Duration::ZERO);
    let (code, r) = w.rotate(&["--target", "t", "--force", "--revoke-superseded"], &[]);
    assert_eq!(code, 0, "{r:?}");
    let revoked = r[0]["revoked_token_ids"].as_array().unwrap();
    assert!(revoked.contains(&json!(prev)), "{}", r[0]);
    assert_eq!(ws_count(&w, 0, "tm_get"), 0, "no lookup");
}

#[test]
fn the_post_write_sweep_keeps_a_token_a_consumer_still_uses() {
    // Grace 0: a forced rotation supersedes the current token, which a consumer used today; the
    // sweep right after the write keeps it (and the orphan rule's one, never recorded, goes).
    let w = World::one_target(&[("keep_while_used", json!(true)), ("revoke_grace_hours", json!(0))]);
    let current = w.seed_managed(0, 0, "t", 10 * DAY, 90 * DAY, None);
    used(&w, &current, Duration::from_secs(5));
    let (orphan, _) = w.seed_token(0, &w.comment("t", 0, "orphan"), 2 * HOUR, 90 * DAY);
    used(&w, &orphan, Duration::from_secs(5));
    let (code, r) = w.rotate(&["--target", "t", "--force"], &[]);
    assert_eq!(code, 0, "{r:?}");
    assert_eq!(r[0]["action"], "rotated");
    assert_eq!(r[0]["revoked_token_ids"], json!([orphan]), "{}", r[0]);
    assert!(w.emu.workspace(0).is_live(&current));
    assert!(warnings(&r[0]).iter().any(|m| m.contains("kept: in use")), "{}", r[0]);
}

#[test]
fn tokens_shows_last_used_day_where_readable_and_its_revoke_ignores_usage() {
    let (w, prev, current) = superseded_world(true, 2 * DAY);
    used(&w, &prev, 3 * DAY);
    used(&w, &current, Duration::ZERO);
    let (never, _) = w.seed_token(0, "Terraform-generated token", 200 * DAY, 400 * DAY);
    let out = w.cli(&["tokens", "--json"], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let tokens = out.json()[0]["tokens"].clone();
    let day =
        |id: &str| tokens.as_array().unwrap().iter().find(|t| t["token_id"] == id).unwrap()["last_used_day"].clone();
    let today = time::OffsetDateTime::now_utc().date();
    assert_eq!(day(&current), json!(today.to_string()), "{tokens}");
    assert_eq!(day(&prev), json!((today - time::Duration::days(3)).to_string()));
    assert_eq!(day(&never), Value::Null, "never used");
    assert!(
        day(&current).as_str().unwrap().len() == 10 && day(&current).as_str().unwrap().chars().nth(4) == Some('-'),
        "YYYY-MM-DD"
    );
    let table = w.cli(&["tokens"], &[]);
    assert!(table.stdout.contains("LAST USED") && table.stdout.contains(&today.to_string()), "{}", table.stdout);

    // `tokens --revoke` revokes a superseded token however recently it was used.
    used(&w, &prev, Duration::ZERO);
    w.reset_calls();
    let out = w.cli(&["tokens", "--revoke", &prev], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!w.emu.workspace(0).is_live(&prev));
    assert_eq!(ws_count(&w, 0, "tm_get"), 0);

    // Without workspace admin: no day, one refused lookup, and the inventory still answers.
    let me = w.emu.workspace(0).principal().to_string();
    w.emu.workspace(0).remove_member(&me);
    w.emu.workspace(0).add_member(&me);
    w.reset_calls();
    let out = w.cli(&["tokens", "--json"], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.json()[0]["tokens"].as_array().unwrap().iter().all(|t| t["last_used_day"].is_null()), "{}", out.stdout);
    assert_eq!(ws_count(&w, 0, "tm_get"), 1, "one 403, not one per token");
}

fn status_row(w: &World) -> (i32, Value) {
    let o = w.cli(&["status", "--json"], &[]);
    let v = o.json();
    (o.code, v[0].clone())
}

fn attention(r: &Value) -> Vec<String> {
    r["attention"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect()
}

/// `status` (contract §1, §10 "Health"): `last_used_day` of the token the vault names where
/// readable; with `keep_while_used`, `superseded_in_use` naming a superseded token a consumer
/// still uses past its grace, and `usage_unreadable` without workspace admin.
#[test]
fn status_shows_last_use_superseded_in_use_and_usage_unreadable() {
    let (w, prev, current) = superseded_world(true, 2 * DAY);
    let today = time::OffsetDateTime::now_utc().date();
    used(&w, &current, Duration::ZERO);
    used(&w, &prev, 3 * DAY);
    let (code, r) = status_row(&w);
    assert_eq!((code, attention(&r)), (0, Vec::<String>::new()), "{r}");
    assert_eq!(r["last_used_day"], json!(today.to_string()));

    // A consumer still uses the superseded token: attention, and its id in details.
    used(&w, &prev, Duration::ZERO);
    let (code, r) = status_row(&w);
    assert_eq!((code, attention(&r)), (1, vec!["superseded_in_use".to_string()]), "{r}");
    assert_eq!(r["details"]["superseded_in_use"], json!([prev.clone()]));
    assert_eq!(r["healthy"], false);
    let table = w.cli(&["status"], &[]);
    assert!(table.stdout.contains("superseded_in_use"), "{}", table.stdout);

    // Inside the grace a superseded token in use is expected: no attention.
    let (w2, prev2, _) = superseded_world(true, 2 * HOUR);
    used(&w2, &prev2, Duration::ZERO);
    let (code, r) = status_row(&w2);
    assert_eq!((code, attention(&r)), (0, Vec::<String>::new()), "{r}");

    // Without keep_while_used the superseded token's use is not judged.
    let (w3, prev3, _) = superseded_world(false, 2 * DAY);
    used(&w3, &prev3, Duration::ZERO);
    let (code, r) = status_row(&w3);
    assert_eq!((code, attention(&r)), (0, Vec::<String>::new()), "{r}");

    // Without workspace admin: usage_unreadable, and last_used_day is null.
    let me = w.emu.workspace(0).principal().to_string();
    w.emu.workspace(0).remove_member(&me);
    w.emu.workspace(0).add_member(&me);
    let (code, r) = status_row(&w);
    assert_eq!((code, attention(&r)), (1, vec!["usage_unreadable".to_string()]), "{r}");
    assert_eq!(r["last_used_day"], Value::Null);
    // Also with no superseded token at all: the current token's lookup says so.
    let w4 = World::one_target(&[("keep_while_used", json!(true))]);
    assert_eq!(w4.rotate(&[], &[]).0, 0);
    let me4 = w4.emu.workspace(0).principal().to_string();
    w4.emu.workspace(0).remove_member(&me4);
    w4.emu.workspace(0).add_member(&me4);
    let (code, r) = status_row(&w4);
    assert_eq!((code, attention(&r)), (1, vec!["usage_unreadable".to_string()]), "{r}");
    // A target without keep_while_used does not need the right: nothing to attend to.
    let me3 = w3.emu.workspace(0).principal().to_string();
    w3.emu.workspace(0).remove_member(&me3);
    w3.emu.workspace(0).add_member(&me3);
    let (code, r) = status_row(&w3);
    assert_eq!((code, r["last_used_day"].clone()), (0, Value::Null), "{r}");
}
