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
//! 1. The token a secret's latest version names is never revoked by the run that read it.
//! 2. A new token is written to the secret only after it has been proven to work.
//! 3. A run that created a token either records it in the secret or deletes it; when it cannot
//!    know (the write's outcome is unknown and the read-back failed), the token carries this
//!    target's comment prefix and is swept as an orphan after one hour.
//! 4. Tokens whose comment does not start with `pat-rotator/<target>/` are never touched.

pub mod model;
pub mod ports;
pub mod rotate;
pub mod rules;

pub use model::{Action, Outcome, Reason, SecretView, StoredSecret, TokenInfo};

#[cfg(test)]
mod tests;
