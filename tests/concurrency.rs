//! Concurrent rotations of one target: two forced ProvisionPat and a RotatePat at the same
//! time, in one handler process and across two. Key Vault must end holding a working token; the
//! workspace may hold no more than current + previous + young orphans; a later run converges
//! to current + previous.

mod common;

use std::collections::BTreeSet;
use std::time::SystemTime;

use common::*;
use serde_json::json;

fn setup() -> (World, String) {
    let w = World::one_target(&[]);
    let seeded = w.seed_managed(0, 0, "t", DAY, 90 * DAY, None);
    (w, seeded)
}

/// Current and previous per the latest secret version.
fn holders(w: &World) -> (String, Option<String>) {
    let v = w.emu.vault(0).latest("t-pat").unwrap();
    (v.tags["databricks-token-id"].clone(), v.tags.get("previous-token-id").cloned())
}

/// The bound of the issue: every live token of the target is current, previous, or younger
/// than an hour.
fn assert_bounded(w: &World) {
    w.assert_secret_works(0, 0, "t-pat");
    let (cur, prev) = holders(w);
    let ws = w.emu.workspace(0);
    for t in ws.tokens(ws.principal()) {
        let young = SystemTime::now().duration_since(t.created).unwrap_or_default() < HOUR;
        assert!(
            t.token_id == cur || Some(&t.token_id) == prev.as_ref() || young,
            "live token {} is neither current, previous nor young",
            t.token_id
        );
    }
}

/// Ages every token past the orphan window and runs once more: only current + previous stay.
fn assert_converges(w: &World) {
    let ws = w.emu.workspace(0);
    ws.age_tokens(2 * HOUR);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0, "{r:?}");
    assert_eq!(r[0]["action"], "unchanged");
    let (cur, prev) = holders(w);
    let mut want: BTreeSet<String> = [cur].into();
    if let Some(p) = prev.filter(|p| ws.is_live(p)) {
        want.insert(p);
    }
    let live: BTreeSet<String> = w.live_tokens(0).into_iter().collect();
    assert_eq!(live, want);
    w.assert_secret_works(0, 0, "t-pat");
}

#[test]
fn one_process_serialises_rotations_of_the_same_target() {
    for _round in 0..3 {
        let (w, seeded) = setup();
        let h = w.serve(&[]);
        let replies =
            h.concurrently(vec![json!({"target":"t","force":true}), json!({"target":"t","force":true})], true);
        for r in &replies {
            assert_eq!(r.status, 200, "{}", r.text);
        }
        assert_bounded(&w);
        // Serialised: each forced rotation saw the one before it, so the versions form a chain.
        let versions = w.emu.vault(0).versions("t-pat");
        assert_eq!(versions.len(), 3, "seed + two forced rotations");
        assert_eq!(versions[1].tags["previous-token-id"], seeded);
        assert_eq!(versions[2].tags["previous-token-id"], versions[1].tags["databricks-token-id"]);
        drop(h);
        assert_converges(&w);
    }
}

#[test]
fn two_processes_racing_stay_safe_and_converge() {
    for _round in 0..3 {
        let (w, _seeded) = setup();
        let a = w.serve(&[]);
        let b = w.serve(&[]);
        let (ra, rb) = std::thread::scope(|s| {
            let ja = s.spawn(|| a.concurrently(vec![json!({"target":"t","force":true})], true));
            let jb = s.spawn(|| b.concurrently(vec![json!({"target":"t","force":true})], false));
            (ja.join().unwrap(), jb.join().unwrap())
        });
        for r in ra.iter().chain(rb.iter()) {
            assert_eq!(r.status, 200, "{}", r.text);
        }
        assert_bounded(&w);
        drop((a, b));
        assert_converges(&w);
    }
}

#[test]
fn two_cli_processes_forcing_at_once() {
    let (w, _) = setup();
    let (x, y) = std::thread::scope(|s| {
        let a = s.spawn(|| w.rotate(&["--force"], &[]));
        let b = s.spawn(|| w.rotate(&["--force"], &[]));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!((x.0, y.0), (0, 0), "{x:?} {y:?}");
    assert_bounded(&w);
    assert_converges(&w);
}
