//! The rotation domain: contract §7 for every kind of credential, free of HTTP, Azure types and
//! configuration.
//!
//! - [`model`]: what a credential, a secret version, a kind's [`Profile`] and an outcome are.
//! - [`spec`]: what one rotation is asked to keep and do ([`Spec`], [`Request`]), built by the
//!   engine from the configuration.
//! - [`rules`]: the pure decisions — rotate or not, whose a credential is, which may be revoked.
//!   No I/O, no clock reads: everything arrives as arguments, so every rule is a table test.
//! - [`ports`]: the traits the domain needs from the world — an [`ports::Issuer`] of credentials
//!   (`databricks::pat` for PATs, `databricks::oauth_secret` for OAuth secrets), a secret store,
//!   a clock, the retry policy.
//! - [`rotate`]: one target's rotation — read, decide, create, verify, write, compensate, revoke
//!   — written against the ports, the same order of effects for every kind.
//!
//! Invariants kept here (tested in `tests/rotation_core.rs` against in-memory ports, in `tests/`
//! through the binary, and searched for
//! by the simulator in `sim/`):
//! 1. A credential is revoked only when what the run read proves that no consumer can hold it
//!    ([`rules::revocable`]): never the one the latest version names (whatever its other tags),
//!    nothing while the latest version is inside the grace or its age is unknown, nothing on a
//!    read that said "absent", never an unrecorded one younger than an hour or of unknown age.
//!    The exceptions are the cap ([`rules::over_cap`]) and `--revoke-superseded`.
//! 2. A new credential is written only after it has been proven to work, and only while it is
//!    younger than [`rules::MAX_UNWRITTEN_AGE`].
//! 3. A run that created a credential records it, or deletes it when the write failed
//!    definitively; when a write's outcome is unknown, or the read-back failed, it is kept, and
//!    a later run finds it recorded or proves it an orphan.
//! 4. Only the target's credentials are touched ([`model::Ownership`]): a PAT whose comment
//!    names the target and this secret, or one a version of this secret records.

#[cfg(feature = "sim-bugs")]
pub mod bugs;
pub mod model;
pub mod ports;
pub mod rotate;
pub mod rules;
pub mod spec;

pub use model::{Action, Outcome, Profile, Reason, SecretView};
pub use spec::{Force, OtherWriter, Request, Spec};
