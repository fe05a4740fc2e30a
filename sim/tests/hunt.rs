//! The simulator earns trust by finding bugs: each of the five old defects of the core
//! (`pat_rotator::rotation::bugs`, findings 1–5 of the safety review) is switched back on, and
//! the generic schedules — seeds 0, 1, 2, … in order, none written for a defect — run until the
//! checker fails. Built only with `--features hunt` (which compiles the defects into the core;
//! every one stays off until a test thread switches it on).
//!
//! A schedule counts as finding the defect only when it fails with the defect on and passes
//! with every defect off: a schedule that fails either way found something else (a defect of
//! today's core, reported by `tests/schedules.rs`), not this one.

#![cfg(feature = "hunt")]

use pat_rotator::rotation::bugs::{self, Bug};
use pat_rotator_sim::{Options, run};

/// Each defect must be found within this many schedules.
const WITHIN: u64 = 200;

fn hunt(bug: Bug) {
    let mut elsewhere = Vec::new();
    for seed in 0..WITHIN {
        bugs::set(&[bug]);
        let with = run(seed, Options::default());
        assert!(
            with.stats.max_concurrent >= 2 && with.stats.faults >= 1,
            "seed {seed} is not a schedule with two concurrent runs and a fault: {}",
            with.summary()
        );
        if !with.failed() {
            continue;
        }
        bugs::set(&[]);
        let without = run(seed, Options::default());
        if without.failed() {
            elsewhere.push(seed);
            continue;
        }
        eprintln!(
            "{bug:?}: found after {} schedule(s), seed {seed} (invariant {}): {}\n  replay: cargo run -p pat-rotator-sim --release --features hunt -- replay {seed} --bug {bug:?}",
            seed + 1,
            with.violations[0].invariant,
            with.violations[0].text
        );
        return;
    }
    panic!("{bug:?} was not found in {WITHIN} schedules (failing with and without it, so not counted: {elsewhere:?})");
}

#[test]
fn absent_is_proof() {
    hunt(Bug::AbsentIsProof);
}

#[test]
fn owner_by_name() {
    hunt(Bug::OwnerByName);
}

#[test]
fn retag_unprotected() {
    hunt(Bug::RetagUnprotected);
}

#[test]
fn timeout_is_failure() {
    hunt(Bug::TimeoutIsFailure);
}

#[test]
fn no_date_local_clock() {
    hunt(Bug::NoDateLocalClock);
}

#[test]
fn every_defect_is_hunted() {
    // A sixth defect added to the core without a hunt here fails this test.
    assert_eq!(Bug::ALL.len(), 5);
}
