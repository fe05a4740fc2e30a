//! The engine: one pass of the rotation over the configured targets, and the reads of the
//! inventory. The only place that knows both the domain and the concrete clients.
//!
//! - this file: the pass — bounded concurrency, a lock per target name inside the process, the
//!   invocation's deadline, how `force` is honoured per caller, the [`Spec`] of a target;
//! - [`clients`]: the long-lived clients (token sources, one Databricks client per workspace and
//!   owner, one Key Vault client per vault with its pacers, the issuer of each kind);
//! - [`health`]: `status`, the health check of contract §10 — reads only;
//! - [`inventory`]: `tokens` and `tokens --revoke` — reads, and the one guarded act;
//! - [`guard`]: contract §7.4(a) across targets — the other configured secrets that may name a
//!   target's credentials, read once per pass and shared ([`guard::PassReads`]).
//!
//! Both the custom handler and the CLI drive the rotation only through [`Engine`]. What the
//! engine talks to comes in a [`Runtime`]: production's HTTP client and clock, or a simulated
//! world (`sim/`) answering the same requests in process.

pub mod clients;
pub mod guard;
mod health;
mod inventory;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::time::Instant;

use crate::config::{Config, Kind, Target};
use crate::databricks::tags as db_tags;
use crate::error::{Code, Error};
use crate::rotation::model::Outcome;
use crate::rotation::ports::{Backoff, Clock, SecretStore, SystemClock};
use crate::rotation::rotate::{self, Ports};
use crate::rotation::rules;
use crate::rotation::spec::{Force, OtherWriter, Owner, Request, Spec};
use crate::transport::client::Http;
use crate::transport::retry::{self, Jitter, RetryPolicy};

pub use clients::Clients;
pub use health::{Attention, StatusRow};
pub use inventory::{RevokeReport, TokenRow, TokensRow};

/// Who started a pass: it decides how `force` is honoured (contract §3), what a run does over
/// a version another identity wrote, and the `rotated-via` tag (contract §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// `pat-rotator rotate`: `force` always holds; a version another identity wrote is refused
    /// unless `take_ownership`.
    Cli,
    /// `ProvisionPat`: `force` is subject to the cooldown and the room below the cap.
    Provision,
    /// `RotatePat`: never forced.
    Timer,
    /// `SecretEvent` (contract §10): never forced; `near_expiry` for `SecretNearExpiry` and
    /// `SecretExpired`, which rotate within [`rules::EVENT_EXPIRY_WINDOW`] of the latest
    /// version's `exp` whatever `renew_before_days` says.
    Event { near_expiry: bool },
}

impl Caller {
    /// The `rotated-via` tag of the versions its runs write.
    pub fn via(self) -> &'static str {
        match self {
            Caller::Cli => "cli",
            Caller::Provision => "ProvisionPat",
            Caller::Timer => "RotatePat",
            Caller::Event { .. } => "SecretEvent",
        }
    }

    /// What its runs do over a managed latest version another identity wrote: the deployment
    /// always writes as itself.
    fn other_writer(self, take_ownership: bool) -> OtherWriter {
        match self {
            Caller::Cli if take_ownership => OtherWriter::TakeOwnership,
            Caller::Cli => OtherWriter::Refuse,
            Caller::Provision | Caller::Timer => OtherWriter::Overwrite,
            Caller::Event { .. } => OtherWriter::Leave,
        }
    }
}

/// What a pass was asked to do.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    pub force: bool,
    pub dry_run: bool,
    /// Incident response (CLI only): revoke every other credential of the target once the new
    /// version is written.
    pub revoke_superseded: bool,
    /// CLI only: write although another identity wrote the latest version (contract §10).
    pub take_ownership: bool,
    pub caller: Caller,
    /// The pass's time budget; every target's work ends by then (see [`crate::transport::retry`]).
    pub budget: Duration,
}

/// What the engine talks to and reads time from: the one seam between production and the
/// simulator. Everything above it — clients, SDK, retries, pacing, the rotation — is shared.
#[derive(Clone)]
pub struct Runtime {
    /// Every request of every client.
    pub http: Http,
    /// `rotated-at`, `status`'s "now", attempt ids.
    pub clock: Arc<dyn Clock>,
    /// The back-off's jitter.
    pub jitter: Jitter,
}

impl Runtime {
    /// The real network and the system clock.
    pub fn production(call_timeout: Duration) -> Runtime {
        Runtime {
            http: crate::transport::client::build(call_timeout),
            clock: Arc::new(SystemClock),
            jitter: Jitter::default(),
        }
    }
}

/// The rotation's view of a configured target (contract §6 and §9 decide its tags).
pub fn spec(t: &Target) -> Spec {
    let mut tag_map = BTreeMap::new();
    tag_map.insert(db_tags::HOST.to_string(), t.workspace_host());
    let owner = match &t.kind {
        Kind::Pat { client_id, .. } => {
            if let Some(c) = client_id {
                tag_map.insert(db_tags::CLIENT_ID.to_string(), c.clone());
            }
            Some(Owner { client_id: client_id.clone(), tag: db_tags::CLIENT_ID })
        }
        Kind::SpOauthSecret { service_principal } => {
            tag_map.insert(db_tags::CLIENT_ID.to_string(), service_principal.clone());
            None
        }
    };
    Spec {
        target: t.name.clone(),
        secret_name: t.secret_name.clone(),
        lifetime_days: t.lifetime_days,
        renew_before: time::Duration::days(t.renew_before_days as i64),
        grace: time::Duration::hours(t.revoke_grace_hours as i64),
        tags: tag_map,
        owner,
        keep_while_used: matches!(t.kind, Kind::Pat { keep_while_used: true, .. }),
    }
}

/// The retry policy and the invocation's deadline, as the domain sees them.
struct PolicyBackoff<'a>(&'a RetryPolicy);

impl Backoff for PolicyBackoff<'_> {
    fn next_wait(&self, attempt: u32, err: &Error) -> Option<Duration> {
        self.0.next_wait(attempt, err).ok()
    }

    fn past_deadline(&self) -> bool {
        retry::deadline().is_some_and(|d| Instant::now() >= d)
    }
}

/// Extra time after the deadline before a target's work is abandoned outright (a backstop: the
/// retry layer already stops retrying at the deadline).
const BACKSTOP: Duration = Duration::from_secs(20);

pub struct Engine {
    config: Arc<Config>,
    clients: Clients,
    clock: Arc<dyn Clock>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Targets with an event-started run in flight in this process (contract §10: further
    /// events for them are coalesced into it).
    events_in_flight: Mutex<HashSet<String>>,
}

/// Marks a target's event-started run as in flight until dropped (also when the run's future
/// is dropped midway).
struct EventInFlight<'a> {
    set: &'a Mutex<HashSet<String>>,
    name: String,
}

impl Drop for EventInFlight<'_> {
    fn drop(&mut self) {
        self.set.lock().expect("events lock").remove(&self.name);
    }
}

impl Engine {
    /// Builds the engine on the real network. No I/O happens until the first pass.
    pub fn new(config: Config) -> Engine {
        let runtime = Runtime::production(config.settings.call_timeout);
        Engine::with_runtime(config, runtime)
    }

    /// Builds the engine on `runtime` (the simulator's world, or production's).
    pub fn with_runtime(config: Config, runtime: Runtime) -> Engine {
        let s = &config.settings;
        let retry = RetryPolicy {
            attempts: s.retry_attempts,
            base_delay: s.retry_base_delay,
            max_delay: Duration::from_secs(crate::config::MAX_RETRY_WAIT_SECS),
            call_timeout: s.call_timeout,
            jitter: runtime.jitter,
        };
        Engine {
            clients: Clients::new(s.clone(), runtime.http, retry),
            clock: runtime.clock,
            config: Arc::new(config),
            locks: Mutex::new(HashMap::new()),
            events_in_flight: Mutex::new(HashSet::new()),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    fn lock_for(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks.lock().expect("engine lock").entry(name.to_string()).or_default().clone()
    }

    /// Resolves target names; `None` or empty means all targets.
    pub fn select(&self, names: &[String]) -> std::result::Result<Vec<&Target>, Error> {
        if names.is_empty() {
            return Ok(self.config.targets.iter().collect());
        }
        names
            .iter()
            .map(|n| {
                self.config
                    .target(n)
                    .ok_or_else(|| Error::new(Code::UnknownTarget, format!("\"{n}\" is not a configured target")))
            })
            .collect()
    }

    /// One pass over `targets`, at most `PAT_MAX_CONCURRENCY` at a time. A slot is given to the
    /// next target as soon as any target finishes (a hung workspace holds up only its own
    /// targets); the outcomes are reported in the order of `targets`.
    pub async fn run(&self, targets: &[&Target], opts: RunOptions) -> Vec<Outcome> {
        let deadline = Instant::now() + opts.budget;
        // The reads of other targets' secrets that protect a revocation (contract §7.4(a)) are
        // shared by every target of the pass.
        let reads = guard::PassReads::default();
        let reads = &reads;
        let mut outcomes = self.each_target(targets, |t| self.run_target(t, opts, deadline, reads)).await;
        warn_usage_unreadable(&mut outcomes);
        outcomes
    }

    /// One event-started run of `t` (contract §10, `SecretEvent`): unforced, with the 30-day
    /// rule when `near_expiry`. `None` when an event-started run of the same target is already
    /// in flight in this process: the event is coalesced into it (Event Grid redelivers after
    /// 30 s without an answer, and a vault raises several events for one secret).
    pub async fn run_event(&self, t: &Target, near_expiry: bool, budget: Duration) -> Option<Outcome> {
        if !self.events_in_flight.lock().expect("events lock").insert(t.name.clone()) {
            return None;
        }
        let _in_flight = EventInFlight { set: &self.events_in_flight, name: t.name.clone() };
        let opts = RunOptions {
            force: false,
            dry_run: false,
            revoke_superseded: false,
            take_ownership: false,
            caller: Caller::Event { near_expiry },
            budget,
        };
        let reads = guard::PassReads::default();
        let mut outcomes = vec![self.run_target(t, opts, Instant::now() + budget, &reads).await];
        warn_usage_unreadable(&mut outcomes);
        outcomes.pop()
    }

    /// `work` for every target, at most `PAT_MAX_CONCURRENCY` at a time, a freed slot going to
    /// the next target at once; results in the order of `targets`.
    async fn each_target<'a, T, F, Fut>(&self, targets: &[&'a Target], work: F) -> Vec<T>
    where
        F: Fn(&'a Target) -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        let mut done: Vec<(usize, T)> = futures::stream::iter(targets.iter().copied().enumerate())
            .map(|(i, t)| {
                let fut = work(t);
                async move { (i, fut.await) }
            })
            .buffer_unordered(self.config.settings.max_concurrency)
            .collect()
            .await;
        done.sort_by_key(|(i, _)| *i);
        done.into_iter().map(|(_, o)| o).collect()
    }

    async fn run_target(&self, t: &Target, opts: RunOptions, deadline: Instant, reads: &guard::PassReads) -> Outcome {
        let work = async {
            let lock = self.lock_for(&t.name);
            let _guard = match tokio::time::timeout_at(deadline, lock.lock()).await {
                Ok(g) => g,
                Err(_) => {
                    return Outcome::failed(
                        &t.name,
                        None,
                        Error::new(
                            Code::Timeout,
                            "another rotation of this target was still running when the time budget ran out",
                        ),
                    );
                }
            };
            let (issuer, store) = match (self.clients.issuer(t), self.clients.vault(t)) {
                (Ok(i), Ok(v)) => (i, v),
                (Err(e), _) | (_, Err(e)) => return Outcome::failed(&t.name, None, e),
            };
            let backoff = PolicyBackoff(self.clients.retry());
            let others = guard::Siblings::of(self, t, reads);
            let ports = Ports {
                issuer: issuer.as_ref(),
                store: store.as_ref() as &dyn SecretStore,
                clock: self.clock.as_ref(),
                backoff: &backoff,
                others: &others,
            };
            let force = match (opts.force, opts.caller) {
                (false, _) | (true, Caller::Timer | Caller::Event { .. }) => Force::No,
                (true, Caller::Cli) => Force::Cli,
                (true, Caller::Provision) => Force::Provision {
                    cooldown: time::Duration::try_from(self.config.settings.force_cooldown)
                        .unwrap_or(time::Duration::ZERO),
                },
            };
            let req = Request {
                force,
                dry_run: opts.dry_run,
                revoke_superseded: opts.revoke_superseded && opts.caller == Caller::Cli,
                expiry_window: match opts.caller {
                    Caller::Event { near_expiry: true } => Some(rules::EVENT_EXPIRY_WINDOW),
                    _ => None,
                },
                other_writer: opts.caller.other_writer(opts.take_ownership),
                via: opts.caller.via(),
            };
            let spec = spec(t);
            let (_, outcome) = futures::join!(self.clients.prefetch(t), rotate::rotate(&spec, req, &ports));
            outcome
        };
        let outcome = match tokio::time::timeout_at(deadline + BACKSTOP, retry::within(deadline, work)).await {
            Ok(o) => o,
            Err(_) => Outcome::failed(
                &t.name,
                None,
                Error::new(Code::Timeout, "the target's work did not finish within the time budget"),
            ),
        };
        let (action, reason) = (outcome.action.as_str(), outcome.reason.map(|r| r.as_str()).unwrap_or(""));
        match &outcome.error {
            None => tracing::info!(target_name = %t.name, action, reason, "{}", outcome.log_line()),
            Some(e) => {
                tracing::error!(target_name = %t.name, action, reason, code = e.code.as_str(), "{}", outcome.log_line())
            }
        }
        outcome
    }
}

/// Contract §10 "Usage": a `403` of the usage lookup makes `keep_while_used` targets fall back
/// to the plain grace, with one warning per workspace per pass (not one per target), carried by
/// the first target it concerns.
fn warn_usage_unreadable(outcomes: &mut [Outcome]) {
    let mut warned = BTreeSet::new();
    for o in outcomes.iter_mut() {
        let Some(scope) = o.usage_unreadable.clone() else { continue };
        if !warned.insert(scope.clone()) {
            continue;
        }
        let msg = format!(
            "keep_while_used: the identity cannot read tokens' last use in {scope} (the Token Management API needs workspace admin); superseded tokens of targets there are revoked after the plain grace this pass"
        );
        tracing::warn!(target_name = %o.target, "{msg}");
        o.warnings.push(crate::rotation::model::Warning {
            kind: crate::rotation::model::WarningKind::UsageUnreadable,
            message: msg,
        });
    }
}
