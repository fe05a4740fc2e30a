//! The simulator earns trust by finding bugs: each old defect (`pat_rotator::rotation::bugs`)
//! is switched back on, and the generic schedules — seeds 0, 1, 2, … in order, none written for
//! a defect — run until the checker fails (see `pat_rotator_sim::hunt`). Built only with
//! `--features hunt` (which compiles the defects into the code; every one stays off until a
//! test thread switches it on).

#![cfg(feature = "hunt")]

use pat_rotator::rotation::bugs::Bug;
use pat_rotator_sim::hunt::hunt;

/// Each defect must be found within this many schedules.
const WITHIN: u64 = 1000;

fn find(bug: Bug) {
    match hunt(bug, WITHIN) {
        Ok(f) => eprintln!(
            "{bug:?}: found after {} schedule(s), seed {} (invariant {}): {}\n  replay: cargo run -p pat-rotator-sim --profile sim --features hunt -- replay {} --bug {bug:?}",
            f.schedules, f.report.seed, f.report.violations[0].invariant, f.report.violations[0].text, f.report.seed
        ),
        Err(elsewhere) => panic!(
            "{bug:?} was not found in {WITHIN} schedules (failing with and without it, so not counted: {elsewhere:?})"
        ),
    }
}

/// Seeds that reproduce each defect when its fix is reverted: for each, the first three seeds
/// of 0..2000 that fail with the defect on (found by `pat-rotator-sim soak --count 2000 --show 3
/// --bug NAME`); every one passes with the defect off. They are part of the CI schedules, so each
/// is also a regression seed of today's code.
///
/// A schedule is a seed *and* the code's requests: a change above the seam that sends one
/// request more or less re-draws what follows, so a seed may drift off its defect. The test
/// holds while at least one seed of each defect still reproduces it (and says which drifted);
/// when none does, find them again with the command above.
const REGRESSION: &[(Bug, [u64; 3])] = &[
    (Bug::AbsentIsProof, [14, 20, 28]),
    (Bug::OwnerByName, [0, 2, 4]),
    (Bug::RetagUnprotected, [7, 11, 15]),
    (Bug::TimeoutIsFailure, [6, 9, 19]),
    (Bug::NoDateLocalClock, [12, 14, 37]),
    // Old simulator seeds 577372 and 860212: a cap revocation counting a token a concurrent run
    // had deleted since the run's listing.
    (Bug::CapCountsTheGone, [148, 186, 718]),
    // Old simulator seed 40900: a token's age taken from the verification's answer.
    (Bug::AgeFromTheAnswer, [62, 64, 76]),
    // Issue 21 finding 2: a disabled latest version tied with an older one in its second.
    (Bug::SameSecondTie, [424, 441, 552]),
    // Issue 21 finding 3: a 5xx answer to a write that lands later.
    (Bug::FiveXxIsDefinitive, [9, 19, 57]),
];

#[test]
fn regression_seeds_reproduce_each_defect_and_pass_without_it() {
    use pat_rotator::rotation::bugs;
    use pat_rotator_sim::{Options, run};
    let (mut wrong, mut drifted) = (Vec::new(), Vec::new());
    for (bug, seeds) in REGRESSION {
        let mut reproduced = 0;
        for seed in seeds {
            bugs::set(&[*bug]);
            let with = run(*seed, Options::default());
            bugs::set(&[]);
            let without = run(*seed, Options::default());
            if without.failed() {
                wrong.push(format!("{bug:?} seed {seed} fails without the defect"));
            }
            if with.failed() {
                reproduced += 1;
            } else {
                drifted.push(format!("{bug:?} seed {seed}"));
            }
        }
        if reproduced == 0 {
            wrong.push(format!(
                "no regression seed of {bug:?} reproduces it any more: find new ones with `cargo run -p pat-rotator-sim --profile sim --features hunt -- soak --count 2000 --show 3 --bug {bug:?}`"
            ));
        }
    }
    if !drifted.is_empty() {
        eprintln!("regression seeds that drifted off their defect (others still reproduce it): {}", drifted.join(", "));
    }
    assert!(wrong.is_empty(), "regression seeds no longer do what they say:\n{}", wrong.join("\n"));
    assert_eq!(REGRESSION.len(), Bug::ALL.len(), "every defect has its regression seeds");
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
fn same_second_tie() {
    find(Bug::SameSecondTie);
}

#[test]
fn five_xx_is_definitive() {
    find(Bug::FiveXxIsDefinitive);
}

#[test]
fn every_defect_is_hunted() {
    // A defect added to the code without a hunt here fails this test.
    assert_eq!(Bug::ALL.len(), 9);
}
