//! Old defects of the rotation (and of the adapters below it), reintroduced on demand so the simulator can show it finds each
//! (a simulator earns trust by finding bugs). Compiled only with the cargo feature `sim-bugs`,
//! which no release build and no test of this package enables; even then every defect is off
//! until a test switches it on for its own thread.

use std::cell::Cell;

/// One defect a review found, as it was before the fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Bug {
    /// Finding 1: a `404` read counted as "no version names any token".
    AbsentIsProof = 1,
    /// Finding 2: a token was the target's by target name alone, whatever secret it was for.
    OwnerByName = 2,
    /// Finding 3: only a latest version still tagged `managed-by` protected its token.
    RetagUnprotected = 4,
    /// Finding 4: a write that timed out was taken as one that did not land.
    TimeoutIsFailure = 8,
    /// Finding 5: an answer without `Date` was aged on the local clock.
    NoDateLocalClock = 16,
    /// Simulator seeds 577372 and 860212: a cap revocation counted the run's first listing,
    /// whose credentials a concurrent run may have deleted since.
    CapCountsTheGone = 32,
    /// Simulator seed 40900: a new credential's age was measured from the verification's
    /// answer, not from when it was sent.
    AgeFromTheAnswer = 64,
    /// Issue 21 finding 2 (`azure::keyvault`): of versions sharing the newest `created` second,
    /// only the one with the greatest (random) id counted as the latest.
    SameSecondTie = 128,
    /// Issue 21 finding 3 (`azure::keyvault`): a 5xx answer other than 504 to a write was taken
    /// as definitive (only 408 and 504 were unknown outcomes).
    FiveXxIsDefinitive = 256,
}

impl Bug {
    pub const ALL: [Bug; 9] = [
        Bug::AbsentIsProof,
        Bug::OwnerByName,
        Bug::RetagUnprotected,
        Bug::TimeoutIsFailure,
        Bug::NoDateLocalClock,
        Bug::CapCountsTheGone,
        Bug::AgeFromTheAnswer,
        Bug::SameSecondTie,
        Bug::FiveXxIsDefinitive,
    ];
}

thread_local! {
    static ACTIVE: Cell<u32> = const { Cell::new(0) };
}

/// Switches exactly `bugs` on for the calling thread.
pub fn set(bugs: &[Bug]) {
    ACTIVE.with(|a| a.set(bugs.iter().fold(0, |m, b| m | *b as u32)));
}

/// Whether `bug` is on for the calling thread.
pub fn on(bug: Bug) -> bool {
    ACTIVE.with(|a| a.get() & bug as u32 != 0)
}
