//! The simulator earns trust by finding bugs: each old defect (`pat_rotator::rotation::bugs`)
//! is switched back on, and the generic schedules — seeds 0, 1, 2, … in order, none written for
//! a defect — run until the checker fails (see `pat_rotator_sim::hunt`). Built only with
//! `--features hunt` (which compiles the defects into the code; every one stays off until a
//! test thread switches it on).

#![cfg(feature = "hunt")]

use pat_rotator::rotation::bugs::Bug;
use pat_rotator_sim::hunt::hunt;

/// Each defect must be found within this many schedules.
const WITHIN: u64 = 600;

fn find(bug: Bug) {
    match hunt(bug, WITHIN) {
        Ok(f) => eprintln!(
            "{bug:?}: found after {} schedule(s), seed {} (invariant {}): {}\n  replay: cargo run -p pat-rotator-sim --release --features hunt -- replay {} --bug {bug:?}",
            f.schedules, f.report.seed, f.report.violations[0].invariant, f.report.violations[0].text, f.report.seed
        ),
        Err(elsewhere) => panic!(
            "{bug:?} was not found in {WITHIN} schedules (failing with and without it, so not counted: {elsewhere:?})"
        ),
    }
}

#[test]
fn absent_is_proof() {
    find(Bug::AbsentIsProof);
}

#[test]
fn owner_by_name() {
    find(Bug::OwnerByName);
}

#[test]
fn retag_unprotected() {
    find(Bug::RetagUnprotected);
}

#[test]
fn timeout_is_failure() {
    find(Bug::TimeoutIsFailure);
}

#[test]
fn no_date_local_clock() {
    find(Bug::NoDateLocalClock);
}

#[test]
fn cap_counts_the_gone() {
    find(Bug::CapCountsTheGone);
}

#[test]
fn age_from_the_answer() {
    find(Bug::AgeFromTheAnswer);
}

#[test]
fn every_defect_is_hunted() {
    // A defect added to the core without a hunt here fails this test.
    assert_eq!(Bug::ALL.len(), 7);
}
