//! The hunt: an old defect switched back on (`pat_rotator::rotation::bugs`), the generic
//! schedules — seeds 0, 1, 2, … in order, none written for a defect — run until the checker
//! fails. A schedule counts only when it fails with the defect on *and passes with every
//! defect off*: one that fails either way found something else (a defect of today's code,
//! which `tests/schedules.rs` reports), not this one.

use pat_rotator::rotation::bugs::{self, Bug};

use crate::{Options, Report, run};

/// What a hunt found.
pub struct Found {
    pub bug: Bug,
    /// Schedules run with the defect on, this one included.
    pub schedules: u64,
    pub report: Report,
    /// Seeds that failed with the defect on and off alike (not counted).
    pub elsewhere: Vec<u64>,
}

/// Hunts `bug` over seeds `0..max`.
pub fn hunt(bug: Bug, max: u64) -> Result<Found, Vec<u64>> {
    let mut elsewhere = Vec::new();
    for seed in 0..max {
        bugs::set(&[bug]);
        let with = run(seed, Options::default());
        bugs::set(&[]);
        if !with.failed() {
            continue;
        }
        if run(seed, Options::default()).failed() {
            elsewhere.push(seed);
            continue;
        }
        return Ok(Found { bug, schedules: seed + 1, report: with, elsewhere });
    }
    Err(elsewhere)
}
