//! Concurrent rotations of one target: forced ProvisionPat calls and a RotatePat at the same
//! time, in one handler process and across two, and two CLI processes. Whatever the
//! interleaving: Key Vault ends holding a working token; no token is revoked while the latest
//! version names it or within its grace after the version naming it was superseded (contract
//! §7 step 4, checked against every revocation the workspace recorded); the target never holds
//! more than 6 live tokens; and once the grace has passed, one ordinary run converges to the
//! latest version's token alone.

mod common;

use std::time::SystemTime;

use common::*;
use serde_json::json;

const GRACE: std::time::Duration = DAY;

fn setup() -> World {
    let mut w = World::one_target(&[]);
    // Forced requests here race on purpose; the ProvisionPat cooldown would turn them away.
    w.set("PAT_FORCE_COOLDOWN_MINUTES", "0");
    // The current version is older than the grace, so everything else it makes provable would
    // be revocable at once: a run that reads a stale version must still not revoke a newer one.
    w.seed_managed(0, 0, "t", 2 * DAY, 90 * DAY, None);
    w
}

/// The rule of contract §7 step 4, over everything that happened.
fn assert_safe(w: &World) {
    w.assert_secret_works(0, 0, "t-pat");
    let bad = w.revocations_inside_grace(0, 0, "t-pat", GRACE);
    assert!(bad.is_empty(), "revoked while protected: {bad:?}");
    let live = w.live_tokens(0);
    assert!(live.len() <= 6, "more than 6 live tokens: {live:?}");
    // Every live token is named by some version, or young enough to be a rotation in flight.
    let named: Vec<String> =
        w.emu.vault(0).versions("t-pat").iter().filter_map(|v| v.tags.get("databricks-token-id").cloned()).collect();
    let ws = w.emu.workspace(0);
    for t in ws.tokens(ws.principal()) {
        let young = SystemTime::now().duration_since(t.created).unwrap_or_default() < HOUR;
        assert!(named.contains(&t.token_id) || young, "live token {} is unrecorded and old", t.token_id);
    }
}

/// Ages everything past the grace and the orphan window and runs once more: only the latest
/// version's token stays.
fn assert_converges(w: &World) {
    w.emu.workspace(0).age_tokens(GRACE + HOUR);
    w.emu.vault(0).age_secret("t-pat", GRACE + HOUR);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0, "{r:?}");
    assert_eq!(r[0]["action"], "unchanged");
    let current = w.assert_secret_works(0, 0, "t-pat");
    assert_eq!(w.live_tokens(0), vec![current]);
}

#[test]
fn one_process_serialises_rotations_of_the_same_target() {
    for _round in 0..3 {
        let w = setup();
        let h = w.serve(&[]);
        let replies =
            h.concurrently(vec![json!({"target":"t","force":true}), json!({"target":"t","force":true})], true);
        for r in &replies {
            assert_eq!(r.status, 200, "{}", r.text);
        }
        assert_safe(&w);
        // Serialised: each forced rotation saw the one before it, so the versions form a chain.
        let versions = w.emu.vault(0).versions("t-pat");
        assert_eq!(versions.len(), 3, "seed + two forced rotations");
        assert_eq!(versions[1].tags["previous-token-id"], versions[0].tags["databricks-token-id"]);
        assert_eq!(versions[2].tags["previous-token-id"], versions[1].tags["databricks-token-id"]);
        // Two rotations a moment apart: the first superseded token is inside its grace.
        assert!(w.emu.workspace(0).is_live(&versions[0].tags["databricks-token-id"]));
        drop(h);
        assert_converges(&w);
    }
}

#[test]
fn two_processes_racing_stay_safe_and_converge() {
    for _round in 0..3 {
        let w = setup();
        let a = w.serve(&[]);
        let b = w.serve(&[]);
        let force = || vec![json!({"target":"t","force":true}), json!({"target":"t","force":true})];
        let (ra, rb) = std::thread::scope(|s| {
            let ja = s.spawn(|| a.concurrently(force(), true));
            let jb = s.spawn(|| b.concurrently(force(), false));
            (ja.join().unwrap(), jb.join().unwrap())
        });
        for r in ra.iter().chain(rb.iter()) {
            assert_eq!(r.status, 200, "{}", r.text);
        }
        assert_safe(&w);
        drop((a, b));
        assert_converges(&w);
    }
}

#[test]
fn two_cli_processes_forcing_at_once() {
    let w = setup();
    let (x, y) = std::thread::scope(|s| {
        let a = s.spawn(|| w.rotate(&["--force", "--target", "t", "--target", "t"], &[]));
        let b = s.spawn(|| w.rotate(&["--force"], &[]));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!((x.0, y.0), (0, 0), "{x:?} {y:?}");
    assert_safe(&w);
    assert_converges(&w);
}

#[test]
fn a_forcing_loop_across_processes_keeps_at_most_six_tokens() {
    let w = setup();
    for _ in 0..4 {
        std::thread::scope(|s| {
            let a = s.spawn(|| w.rotate(&["--force"], &[]));
            let b = s.spawn(|| w.rotate(&["--force"], &[]));
            assert_eq!(a.join().unwrap().0, 0);
            assert_eq!(b.join().unwrap().0, 0);
        });
        w.assert_secret_works(0, 0, "t-pat");
        let live = w.live_tokens(0);
        assert!(live.len() <= 7, "one concurrent run may briefly hold one more: {live:?}");
    }
    // A last run on its own enforces the cap.
    let (code, _) = w.rotate(&["--force"], &[]);
    assert_eq!(code, 0);
    assert!(w.live_tokens(0).len() <= 6, "{:?}", w.live_tokens(0));
    w.assert_secret_works(0, 0, "t-pat");
}
