//! A deterministic simulator of pat-rotator's rotation, in the manner of FoundationDB and
//! TigerBeetle: the real logic (`pat_rotator::rotation::rotate::rotate`, the real naming and
//! ownership of `databricks::pat`, the real profiles of both kinds) runs against a simulated
//! world under a seeded scheduler, faults are injected at every call, the invariants are checked
//! after every effect, and a failing seed replays exactly.
//!
//! - [`scenario`]: a seed → one schedule's script (configuration, starting state, faults, runs,
//!   operator actions, consumer reads).
//! - [`world`]: Key Vault and the issuer (a workspace's tokens, or a principal's OAuth secrets),
//!   each with its own clock, and the effects the ports make on them.
//! - [`ports`]: the core's four ports over the world, each call wrapped in seeded delays.
//! - [`checker`]: the oracle — the consumer's invariants with the contract's exceptions.
//! - [`sim`]: one schedule on a paused tokio clock: the acts as tasks, the quiet phase, the
//!   report.
//! - [`capture`]: the core's warnings filed under the run that emitted them.
//! - [`rng`], [`log`]: the seeded stream and the readable event log.
//!
//! See sim/README.md for the models, the actors, the invariants and how to replay a seed.

pub mod capture;
pub mod checker;
pub mod log;
pub mod ports;
pub mod rng;
pub mod scenario;
pub mod sim;
pub mod world;

pub use sim::{Options, Report, run};

/// The cargo features this build has, as a replay command needs them.
pub fn features() -> &'static str {
    if cfg!(feature = "hunt") { " --features hunt" } else { " --features paused-clock" }
}

/// Switches exactly the named old defects of the core on for this thread (`--bug` of the CLI,
/// the hunt test). Without the `hunt` feature there is nothing to switch, and asking is an
/// error.
pub fn set_bugs(names: &[String]) -> Result<(), String> {
    #[cfg(feature = "hunt")]
    {
        use pat_rotator::rotation::bugs::{self, Bug};
        let mut on = Vec::new();
        for n in names {
            let b = Bug::ALL
                .into_iter()
                .find(|b| format!("{b:?}").eq_ignore_ascii_case(n))
                .ok_or_else(|| format!("unknown bug {n:?}; one of {:?}", Bug::ALL))?;
            on.push(b);
        }
        bugs::set(&on);
        Ok(())
    }
    #[cfg(not(feature = "hunt"))]
    {
        if names.is_empty() { Ok(()) } else { Err("old defects need the build with --features hunt".to_string()) }
    }
}
