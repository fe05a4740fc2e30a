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
//!   target's credentials, read once per pass and shared ([`guard::PassReads`]);
//! - [`fleet`]: what a pass over many targets adds (contract §11): the write's pacing reserved
//!   before the create, the order of urgency, progress lines, the shutdown that starts nothing new.
//!
//! Both the custom handler and the CLI drive the rotation only through [`Engine`]. What the
//! engine talks to comes in a [`Runtime`]: production's HTTP client and clock, or a simulated
//! world (`sim/`) answering the same requests in process.
//!
//! **Lifetimes.** The long-lived parts of an engine — its clients and their pacers, the clock,
//! the per-target locks, the shutdown flag, the last copy of the targets blob — live as long as
//! the process and are shared by every engine made from it; the targets list is the engine's own.
//! With `PAT_TARGETS_BLOB` each invocation gets its own engine ([`Engine::for_invocation`]) over
//! the copy of the blob it read, so the targets may change between invocations while the clients,
//! their token caches and the pacing stay one per process.

pub mod clients;
pub mod fleet;
pub mod guard;
mod health;
mod inventory;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::time::Instant;

use crate::config::{Config, ConfigError, Kind, Target};
use crate::databricks::tags as db_tags;
use crate::error::{Code, Error};
use crate::rotation::model::Outcome;
use crate::rotation::ports::{Backoff, Clock, SecretStore, SystemClock};
use crate::rotation::rotate::{self, Ports};
use crate::rotation::rules;
use crate::rotation::spec::{Force, OtherWriter, Owner, Request, Spec};
use crate::transport::client::Http;
use crate::transport::pacing::{self, Priority};
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

/// An engine: one targets list over the process's long-lived parts (see the module docs).
/// Cloning shares everything.
#[derive(Clone)]
pub struct Engine {
    config: Arc<Config>,
    clients: Arc<Clients>,
    clock: Arc<dyn Clock>,
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    /// Targets with an event-started run in flight in this process (contract §10: further
    /// events for them are coalesced into it). Shared by every engine of the process.
    events_in_flight: Arc<Mutex<HashSet<String>>>,
    drain: Arc<fleet::Drain>,
    /// The last copy of `PAT_TARGETS_BLOB` read by this process: its ETag and what it parsed to.
    blob: Arc<Mutex<Option<BlobCopy>>>,
}

struct BlobCopy {
    etag: String,
    parsed: Result<Arc<Config>, ConfigError>,
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
            clients: Arc::new(Clients::new(s.clone(), runtime.http, retry)),
            clock: runtime.clock,
            config: Arc::new(config),
            locks: Arc::new(Mutex::new(HashMap::new())),
            events_in_flight: Arc::new(Mutex::new(HashSet::new())),
            drain: Arc::new(fleet::Drain::default()),
            blob: Arc::new(Mutex::new(None)),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The same long-lived parts over another targets list (the settings must be the same:
    /// the clients were built from them).
    fn with_config(&self, config: Arc<Config>) -> Engine {
        debug_assert_eq!(config.settings, self.config.settings);
        Engine { config, ..self.clone() }
    }

    /// The engine of one invocation or CLI command: with `PAT_TARGETS_BLOB`, over the blob as
    /// read now (revalidated with the ETag of this process's last copy; contract §2), else this
    /// engine. A failed read or an invalid copy is `config_invalid` and nothing may be rotated.
    pub async fn for_invocation(&self) -> std::result::Result<Engine, Error> {
        let Some(url) = self.config.blob() else { return Ok(self.clone()) };
        let etag = self.blob.lock().expect("blob lock").as_ref().map(|c| c.etag.clone());
        let tokens = self.clients.tokens().map_err(|e| {
            Error::new(Code::ConfigInvalid, format!("PAT_TARGETS_BLOB: no credential to read it with ({})", e.message))
        })?;
        let budget = self.config.settings.http_budget;
        let fetched = retry::within(
            Instant::now() + budget,
            crate::azure::blob::fetch(self.clients.http(), &tokens, self.clients.retry(), url, etag.as_deref()),
        )
        .await?;
        let parsed = match fetched {
            crate::azure::blob::Fetched::Unchanged => {
                let held = {
                    let copy = self.blob.lock().expect("blob lock");
                    copy.as_ref().filter(|c| Some(&c.etag) == etag.as_ref()).map(|c| c.parsed.clone())
                };
                match held {
                    Some(parsed) => {
                        tracing::debug!("PAT_TARGETS_BLOB unchanged (304); using this process's copy");
                        parsed
                    }
                    // Another invocation replaced the copy meanwhile: read again, unconditionally.
                    None => {
                        *self.blob.lock().expect("blob lock") = None;
                        return Box::pin(self.for_invocation()).await;
                    }
                }
            }
            crate::azure::blob::Fetched::Body { etag: new_etag, text } => {
                let parsed = self.config.with_blob(&text).map(Arc::new);
                match &parsed {
                    Ok(c) => {
                        tracing::info!(targets = c.targets.len(), "read PAT_TARGETS_BLOB: {} targets", c.targets.len());
                        for w in &c.warnings {
                            tracing::warn!("configuration: {w}");
                        }
                    }
                    Err(e) => tracing::error!("configuration invalid (PAT_TARGETS_BLOB): {e}"),
                }
                if let Some(etag) = new_etag {
                    *self.blob.lock().expect("blob lock") = Some(BlobCopy { etag, parsed: parsed.clone() });
                }
                parsed
            }
        };
        match parsed {
            Ok(c) => Ok(self.with_config(c)),
            Err(e) => Err(Error::new(Code::ConfigInvalid, format!("configuration invalid (PAT_TARGETS_BLOB): {e}"))),
        }
    }

    /// SIGTERM: from now on no pass of this process starts a target and no run creates a
    /// credential; what is in flight finishes its write or its compensation.
    pub fn start_draining(&self) {
        self.drain.start();
    }

    pub fn draining(&self) -> bool {
        self.drain.draining()
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

    /// One pass over `targets`, at most `PAT_MAX_CONCURRENCY` at a time, most urgent first (a
    /// pass of several targets lists their vaults first: [`fleet::urgency_order`]). A slot is
    /// given to the next target as soon as any target finishes (a hung workspace holds up only
    /// its own targets); the outcomes are reported in the order of `targets`. A pass started by
    /// ProvisionPat is served before any pass's queued operations (contract §11). During a
    /// shutdown no further target is started: each is reported failed (`timeout`, not started).
    pub async fn run(&self, targets: &[&Target], opts: RunOptions) -> Vec<Outcome> {
        let deadline = Instant::now() + opts.budget;
        // ProvisionPat and SecretEvent are served before a pass's queued operations (§11).
        let priority = match opts.caller {
            Caller::Provision | Caller::Event { .. } => Priority::Interactive,
            Caller::Cli | Caller::Timer => Priority::Pass,
        };
        // The reads of other targets' secrets that protect a revocation (contract §7.4(a)) are
        // shared by every target of the pass.
        let reads = guard::PassReads::default();
        let reads = &reads;
        let pass = async {
            let order: Vec<usize> = if targets.len() > 1 && !self.draining() {
                retry::within(
                    deadline,
                    fleet::urgency_order(&self.clients, targets, self.config.settings.max_concurrency),
                )
                .await
            } else {
                (0..targets.len()).collect()
            };
            let ordered: Vec<&Target> = order.iter().map(|i| targets[*i]).collect();
            let progress = (targets.len() > 1).then(|| fleet::Progress::new(targets.len()));
            let work = self.each_target(&ordered, |t| {
                let progress = progress.as_ref();
                async move {
                    let o = if self.draining() {
                        let o = Outcome::failed(&t.name, None, fleet::not_started());
                        log_outcome(t, &o);
                        o
                    } else {
                        self.run_target(t, opts, deadline, reads).await
                    };
                    if let Some(p) = progress {
                        p.one_done();
                    }
                    o
                }
            });
            let done = match &progress {
                None => work.await,
                Some(p) => tokio::select! {
                    done = work => done,
                    _ = p.ticker() => unreachable!("the ticker never ends"),
                },
            };
            // Back to the order of `targets`.
            let mut by_index: Vec<(usize, Outcome)> = order.into_iter().zip(done).collect();
            by_index.sort_by_key(|(i, _)| *i);
            by_index.into_iter().map(|(_, o)| o).collect()
        };
        let mut outcomes: Vec<Outcome> = pacing::with_priority(priority, pass).await;
        warn_usage_unreadable(&mut outcomes);
        outcomes
    }

    /// One event-started run of `t` (contract §10, `SecretEvent`): unforced, with the 30-day
    /// rule when `near_expiry`, served before a pass's queued operations like ProvisionPat
    /// (§11). `None` when an event-started run of the same target is already in flight in this
    /// process (in any of its engines): the event is coalesced into it (Event Grid redelivers
    /// after 30 s without an answer, and a vault raises several events for one secret).
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
        self.run(&[t], opts).await.pop()
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
            let paced = fleet::Paced::new(store.as_ref(), issuer.as_ref(), &self.drain);
            let ports = Ports {
                issuer: &paced,
                store: &paced as &dyn SecretStore,
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
        log_outcome(t, &outcome);
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

/// The one line per target of a pass. A result without a reason (a failure before the
/// decision) logs no `reason` key rather than an empty one (contract §2: keys where they apply).
fn log_outcome(t: &Target, outcome: &Outcome) {
    let (action, reason) = (outcome.action.as_str(), outcome.reason.map(|r| r.as_str()));
    match &outcome.error {
        None => tracing::info!(target_name = %t.name, action, reason, "{}", outcome.log_line()),
        Some(e) => {
            tracing::error!(target_name = %t.name, action, reason, code = e.code.as_str(), "{}", outcome.log_line())
        }
    }
}
