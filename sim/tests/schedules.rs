//! The simulator against today's code: 2,000 fixed schedules (seeds 0..2000), each with
//! concurrent invocations under a fault and a quarter of them with a storm of forced runs; the
//! same seed giving the same schedule byte for byte; and the seeds that once found something.
//!
//! A failing schedule is printed whole (scenario, event log, verdict) with the command that
//! replays it.

use std::collections::BTreeMap;

use pat_rotator_sim::checker::Exception;
use pat_rotator_sim::{Options, Report, features, run};

/// What a range of schedules covered, so that a generator that stopped producing a kind of
/// event shows here rather than as a quietly weaker search.
#[derive(Default, Debug)]
struct Coverage {
    kinds: BTreeMap<&'static str, u32>,
    exceptions: BTreeMap<Exception, u32>,
    actions: BTreeMap<String, u32>,
    observations: u32,
    killed: u32,
    unknown_writes: u32,
}

fn sweep(seeds: std::ops::Range<u64>) -> Coverage {
    let mut cov = Coverage::default();
    let mut failed: Vec<Report> = Vec::new();
    let mut tame = Vec::new();
    for seed in seeds.clone() {
        let r = run(seed, Options::default());
        for (k, n) in &r.stats.kinds {
            *cov.kinds.entry(k).or_default() += n;
        }
        for (e, n) in &r.exceptions {
            *cov.exceptions.entry(*e).or_default() += n;
        }
        for (a, n) in &r.stats.actions {
            *cov.actions.entry(a.clone()).or_default() += n;
        }
        cov.observations += r.observations.values().sum::<u32>();
        cov.killed += r.stats.killed;
        cov.unknown_writes += r.stats.unknown_writes;
        if r.stats.max_concurrent < 2 || r.stats.faults == 0 {
            tame.push(seed);
        }
        if r.failed() {
            failed.push(r);
        }
    }
    if let Some(first) = failed.first() {
        let replay = run(first.seed, Options { log: true, ..Options::default() });
        let list: Vec<String> = failed
            .iter()
            .map(|r| format!("  seed {} (invariant {}): {}", r.seed, r.violations[0].invariant, r.violations[0].text))
            .collect();
        panic!(
            "{} of the schedules {seeds:?} broke an invariant:\n{}\n\nThe first, replayed:\n{}",
            failed.len(),
            list.join("\n"),
            replay.render(features())
        );
    }
    assert!(tame.is_empty(), "schedules without two concurrent invocations or without a fault: {tame:?}");
    cov
}

fn assert_covered(cov: &Coverage) {
    for k in [
        "RotatePat",
        "ProvisionPat force",
        "ProvisionPat force dry-run",
        "cli rotate --force",
        "cli rotate --dry-run",
        "cli rotate --force --revoke-superseded",
        "cli status",
        "cli tokens",
        "cli tokens --revoke",
    ] {
        assert!(cov.kinds.get(k).copied().unwrap_or(0) > 0, "no {k} invocation: {cov:?}");
    }
    for e in [Exception::OutOfBand, Exception::TokensRevoke, Exception::Cap, Exception::RevokeSuperseded] {
        assert!(cov.exceptions.get(&e).copied().unwrap_or(0) > 0, "no {e:?} exception was exercised: {cov:?}");
    }
    for a in ["created", "rotated", "unchanged", "reprovisioned", "planned", "failed"] {
        assert!(cov.actions.get(a).copied().unwrap_or(0) > 0, "no target ended {a}: {cov:?}");
    }
    assert!(cov.killed > 0 && cov.unknown_writes > 0, "{cov:?}");
}

#[test]
fn schedules_0_to_500() {
    let cov = sweep(0..500);
    eprintln!("seeds 0..500: {cov:?}");
    assert_covered(&cov);
}

#[test]
fn schedules_500_to_1000() {
    let cov = sweep(500..1000);
    eprintln!("seeds 500..1000: {cov:?}");
    assert_covered(&cov);
}

#[test]
fn schedules_1000_to_1500() {
    let cov = sweep(1000..1500);
    eprintln!("seeds 1000..1500: {cov:?}");
    assert_covered(&cov);
}

#[test]
fn schedules_1500_to_2000() {
    let cov = sweep(1500..2000);
    eprintln!("seeds 1500..2000: {cov:?}");
    assert_covered(&cov);
}

/// Soak seeds beyond the CI range that found a defect of today's code, run on every CI pass
/// (the world they ran in may drift: each is also pinned by a test of the core that fails
/// without its fix).
#[test]
fn soak_seeds_that_found_a_defect_pass() {
    // 15736: a run wrote over a version written after its read, and its sweep took the token
    // that version names for an hour-old orphan (tests/rotation_core.rs
    // a_credential_a_version_written_after_the_read_names_is_no_orphan).
    each_passes(&[15736]);
}

/// Soak seeds beyond the CI range on which the checker raised a false alarm (sim/README
/// "Findings"): each must pass with the checker as it is now.
#[test]
fn soak_seeds_the_checker_misjudged_pass() {
    // 48391: a quiet-phase pass found the service principal full (five live OAuth secrets) and
    // one of them expired before the pass ended; invariant 4 then judged the issuer not full.
    // 61631, 72133: a secret of the principal expired or was revoked while `tokens --revoke`
    // (61631) or `tokens` (72133) listed its secrets in pages; the pages shifted, the listing
    // missed one, and invariant 13 called "found nowhere" or the row untrue.
    // 117393, 132843: both listings of a run shifted (another run revoked secrets between
    // their pages) and missed the secret the latest version names; the run reprovisioned, and
    // invariants 7 and 13 took the listing for a snapshot.
    each_passes(&[48391, 61631, 72133, 117393, 132843]);
}

/// Every one of `seeds` breaks no invariant.
fn each_passes(seeds: &[u64]) {
    for &seed in seeds {
        let r = run(seed, Options::default());
        assert!(!r.failed(), "seed {seed} (invariant {}): {}", r.violations[0].invariant, r.violations[0].text);
    }
}

#[test]
fn a_seed_replays_byte_for_byte() {
    for seed in [7, 8, 1234] {
        let a = run(seed, Options { log: true, ..Options::default() }).render("");
        let b = std::thread::spawn(move || run(seed, Options { log: true, ..Options::default() }).render(""))
            .join()
            .expect("the other thread");
        assert_eq!(a, b, "seed {seed} gave two different schedules");
        assert!(a.lines().count() > 100, "seed {seed} did too little to compare:\n{a}");
        // Keeping the log changes nothing in the schedule.
        let quiet = run(seed, Options::default());
        assert!(a.contains(&quiet.summary()), "seed {seed}: with and without the log differ:\n{}", quiet.summary());
    }
    assert_ne!(run(7, Options::default()).summary(), run(8, Options::default()).summary());
}
