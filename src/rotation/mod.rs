//! The rotation domain: contract §7, free of HTTP and Azure types.
//!
//! - [`model`]: what a token, a stored secret and an outcome are.
//! - [`rules`]: the pure decisions — rotate or not, and which tokens may be revoked. No I/O,
//!   no clock reads: everything arrives as arguments, so every rule is a table-driven unit test.
//! - [`ports`]: the three small traits the domain needs from the world (a workspace's token API,
//!   a secret store, a clock). `databricks` and `azure::keyvault` implement them for real;
//!   tests implement them in memory.
//! - [`rotate`]: one target's rotation — read, decide, create, verify, write, compensate, revoke —
//!   written against the ports.
//!
//! Invariants kept here (and tested in `rotate`'s tests and in `tests/`):
//! 1. A token is revoked only when what the run read proves that no consumer can hold it
//!    ([`rules::revocable`]): never the latest version's token, nothing while the latest version
//!    is inside the grace, never an unrecorded token younger than an hour; the per-target cap
//!    ([`rules::over_cap`]) is the one override.
//! 2. A new token is written to the secret only after it has been proven to work, and only
//!    while it is younger than [`rules::MAX_UNWRITTEN_AGE`].
//! 3. A run that created a token either records it in the secret or deletes it; when it cannot
//!    know (the write's outcome is unknown and the read-back failed), the token carries this
//!    target's comment prefix and a later run revokes it once it is an hour old.
//! 4. Tokens whose comment does not start with `pat-rotator/<target>/` are never touched.

pub mod model;
pub mod ports;
pub mod rotate;
pub mod rules;

pub use model::{Action, Outcome, Reason, SecretView, StoredSecret, TokenInfo};

#[cfg(test)]
mod tests;
