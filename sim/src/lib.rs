//! A deterministic simulator of pat-rotator, in the manner of FoundationDB and TigerBeetle: the
//! real program — the engine with its timer pass, ProvisionPat through the handler, the CLI's
//! `rotate`, `status` and `tokens --revoke`; the Key Vault SDK, the Entra ID credential, the
//! Databricks client and both issuers; the retries, timeouts and pacing — runs against a
//! simulated world behind one transport seam (an `azure_core` `HttpClient` answering every
//! request in process) under a seeded scheduler; faults are injected at every request, the
//! invariants are checked after every effect, and a failing seed replays exactly.
//!
//! - [`scenario`]: a seed → one schedule's script (deployments and targets, settings, starting
//!   state, faults, invocations, operator actions, consumer reads).
//! - [`world`]: Key Vault, the workspaces, the principals' OAuth secrets, the managed-identity
//!   endpoint — each with its own clock and faults — answering HTTP as the services do.
//! - [`wire`]: the seam: the `HttpClient` and the clock of each pat-rotator process.
//! - [`checker`]: the oracle — the consumer's invariants with the contract's exceptions.
//! - [`sim`]: one schedule on a paused tokio clock: the processes, the acts as tasks, the quiet
//!   phase, the report.
//! - [`capture`]: what pat-rotator logs (text and JSON lines, warnings), per invocation.
//! - [`leak`]: every secret the world issued, in every form, for invariant 0.
//! - [`rng`], [`log`]: the seeded stream and the readable event log.
//!
//! See sim/README.md for the models, the actors, the invariants and how to replay a seed.

pub mod capture;
pub mod checker;
pub mod events;
#[cfg(feature = "hunt")]
pub mod hunt;
pub mod leak;
pub mod log;
pub mod rng;
pub mod scenario;
pub mod sim;
pub mod wire;
pub mod world;

pub use sim::{Options, Report, run};

/// The cargo features this build has, as a replay command needs them.
pub fn features() -> &'static str {
    if cfg!(feature = "hunt") { " --features hunt" } else { " --features paused-clock" }
}

/// Switches exactly the named old defects on for this thread (`--bug` of the CLI, the hunt
/// test). Without the `hunt` feature there is nothing to switch, and asking is an error.
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
