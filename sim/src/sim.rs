//! One schedule, start to end: a current-thread tokio runtime on a paused clock; pat-rotator's
//! processes (each deployment's Function App instances with their long-lived engine and
//! handler state, and a new engine per CLI command) on the simulated transport; one task per
//! act of the scenario; then a quiet phase and the liveness check.
//!
//! Determinism: one thread, tokio's paused clock (time moves only when every task waits), one
//! seeded stream for every draw, `BTreeMap`s, ids from counters, the back-off's jitter seeded,
//! and nothing of the SDK's own randomness (request ids) reaching a decision. Two runs of a
//! seed give the same log byte for byte (tested).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex, Once};

use futures::future::{Either, select};
use pat_rotator::config::Config;
use pat_rotator::engine::{Caller, Engine, RunOptions, Runtime};
use pat_rotator::handler::{State, provision};
use pat_rotator::rotation::model::tags;
use pat_rotator::transport::retry::Jitter;
use serde_json::{Value, json};
use time::Duration;

use crate::capture::{self, InRun};
use crate::checker::{Exception, Violation};
use crate::rng::Rng;
use crate::scenario::{Invoke, Knobs, Retag, Scenario, VAULTS, What};
use crate::world::{
    self, IDENTITY_ENDPOINT, IDENTITY_HEADER, InvKind, SecretState, Shared, Stats, TENANT, TargetView, Version, World,
    lock,
};

/// How to run a schedule.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Keep the event log (a replay, or a failure being reported).
    pub log: bool,
    /// Let the operator's retag drop the credential-id tags too (sim/README.md, "Findings").
    pub retag_strips_ids: bool,
}

/// What a schedule did and found.
#[derive(Debug)]
pub struct Report {
    pub seed: u64,
    pub scenario: String,
    pub log: Vec<String>,
    pub violations: Vec<Violation>,
    pub exceptions: std::collections::BTreeMap<Exception, u32>,
    pub observations: std::collections::BTreeMap<&'static str, u32>,
    pub stats: Stats,
}

impl Report {
    pub fn failed(&self) -> bool {
        !self.violations.is_empty()
    }

    /// The command that replays this schedule with its log.
    pub fn replay_command(&self, features: &str) -> String {
        format!("cargo run -p pat-rotator-sim --profile sim{features} -- replay {}", self.seed)
    }

    /// The scenario, the event log, the violations and the replay command.
    pub fn render(&self, features: &str) -> String {
        let mut s = String::new();
        s.push_str(&self.scenario);
        s.push_str("--- event log ---\n");
        for l in &self.log {
            s.push_str(l);
            s.push('\n');
        }
        s.push_str("--- verdict ---\n");
        s.push_str(&self.summary());
        s.push('\n');
        for v in &self.violations {
            s.push_str(&format!("invariant {} at {}: {}\n", v.invariant, crate::log::at(v.at), v.text));
        }
        s.push_str(&format!("replay: {}\n", self.replay_command(features)));
        s
    }

    pub fn summary(&self) -> String {
        format!(
            "seed {}: {} invocations ({} killed, at most {} on one target at once), {} requests, {} faults, {} unknown writes, outcomes {:?}, exceptions {:?}, observations {:?}, {} violation(s)",
            self.seed,
            self.stats.invocations,
            self.stats.killed,
            self.stats.max_concurrent,
            self.stats.requests,
            self.stats.faults,
            self.stats.unknown_writes,
            self.stats.actions,
            self.exceptions,
            self.observations,
            self.violations.len()
        )
    }
}

/// The process environment the Azure SDK reads: the managed-identity endpoint, which only the
/// world answers. Set once per process, before any schedule runs.
fn environment() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: called once, before any schedule (and so any reader of the environment) of
        // this process starts; every schedule calls it first and `Once` makes the others wait.
        unsafe {
            std::env::set_var("IDENTITY_ENDPOINT", IDENTITY_ENDPOINT);
            std::env::set_var("IDENTITY_HEADER", IDENTITY_HEADER);
            std::env::remove_var("IDENTITY_SERVER_THUMBPRINT");
            // The SDK's errors capture a backtrace when `RUST_BACKTRACE` asks for one: a tenth
            // of a schedule's time, for nothing the simulator reads.
            std::env::set_var("RUST_LIB_BACKTRACE", "0");
        }
    });
}

/// Runs schedule `seed`.
pub fn run(seed: u64, opts: Options) -> Report {
    environment();
    let sc = Scenario::generate(seed, Knobs { retag_strips_ids: opts.retag_strips_ids });
    let mut builder = tokio::runtime::Builder::new_current_thread();
    paused(builder.enable_time());
    let rt = builder.build().expect("a current-thread runtime");
    let _catching = capture::install();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, simulate(sc, opts.log))
}

/// Every schedule runs on tokio's paused clock (its `test-util`, this crate's feature
/// `paused-clock`: the tests and `--features hunt` have it; see Cargo.toml for why it is not a
/// plain dependency).
#[cfg(feature = "paused-clock")]
fn paused(b: &mut tokio::runtime::Builder) {
    b.start_paused(true);
}

#[cfg(not(feature = "paused-clock"))]
fn paused(_: &mut tokio::runtime::Builder) {
    panic!("pat-rotator-sim runs on tokio's paused clock: build it with `--features paused-clock`");
}

/// A Function App instance: its process, its engine, the handler's state around it.
#[derive(Clone)]
struct Instance {
    process: u32,
    engine: Arc<Engine>,
    state: Arc<State>,
}

/// pat-rotator's processes in one schedule.
struct Procs {
    w: Shared,
    seed: u64,
    /// Per deployment: its instances (rebuilt when its configuration changes).
    deps: RefCell<Vec<Vec<Instance>>>,
}

impl Procs {
    /// The configuration a deployment's processes read (contract §2), from the world's view of
    /// its targets.
    fn config(&self, dep: usize, operator: bool) -> Config {
        let (targets, s) = {
            let g = lock(&self.w);
            (g.deployments[dep].targets.clone(), g.sc.deployments[dep].settings.clone())
        };
        let json: Vec<Value> = targets
            .iter()
            .map(|t| {
                let mut o = json!({
                    "name": t.name,
                    "workspace_url": format!("https://{}", t.ws),
                    "key_vault_url": format!("https://{}/", t.vault),
                    "secret_name": t.secret,
                    "lifetime_days": t.lifetime_days,
                    "renew_before_days": t.renew_before.whole_days(),
                    "revoke_grace_hours": t.grace.whole_hours(),
                });
                if t.kind == crate::scenario::Kind::OAuth {
                    o["kind"] = json!("sp_oauth_secret");
                    o["service_principal"] = json!(t.app);
                }
                if t.keep_while_used {
                    o["keep_while_used"] = json!(true);
                }
                o
            })
            .collect();
        let mut vars: Vec<(String, String)> = [
            ("PAT_TARGETS", Value::Array(json).to_string()),
            ("PAT_CREDENTIAL", "managed_identity".into()),
            ("IDENTITY_ENDPOINT", IDENTITY_ENDPOINT.into()),
            ("IDENTITY_HEADER", IDENTITY_HEADER.into()),
            ("AZURE_TENANT_ID", TENANT.into()),
            ("PAT_FORCE_COOLDOWN_MINUTES", s.cooldown_minutes.to_string()),
            ("PAT_MAX_CONCURRENCY", s.max_concurrency.to_string()),
            ("PAT_CALL_TIMEOUT_SECONDS", s.call_timeout_secs.to_string()),
            ("PAT_RETRY_ATTEMPTS", s.retry_attempts.to_string()),
            ("PAT_RETRY_BASE_DELAY_MS", s.retry_base_ms.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        if operator {
            // The operator's own identity: a user-assigned one, by its client id.
            vars.push(("AZURE_CLIENT_ID".into(), world::OPERATOR_CLIENT_ID.into()));
        }
        Config::from_vars(vars).unwrap_or_else(|e| panic!("the scenario's configuration is invalid: {e}"))
    }

    /// A new pat-rotator process of deployment `dep` and its engine, running as the service's
    /// identity or the operator's.
    fn process(&self, dep: usize, cli: bool, operator: bool) -> Instance {
        let config = self.config(dep, operator);
        let identity = if operator { world::OPERATOR_OID } else { world::SERVICE_OID };
        let process = lock(&self.w).new_process(dep, cli, identity);
        let runtime = Runtime {
            http: crate::wire::http(&self.w, process),
            clock: Arc::new(crate::wire::SimClock { w: self.w.clone(), process }),
            jitter: Jitter::seeded(self.seed.wrapping_mul(31).wrapping_add(process as u64)),
        };
        let engine = Arc::new(Engine::with_runtime(config, runtime));
        let state = State::with_engine(engine.clone());
        Instance { process, engine, state }
    }

    /// (Re)starts a deployment's Function App instances with its current configuration.
    fn deploy(&self, dep: usize) {
        let n = lock(&self.w).sc.deployments[dep].instances;
        let instances: Vec<Instance> = (0..n).map(|_| self.process(dep, false, false)).collect();
        let mut deps = self.deps.borrow_mut();
        while deps.len() <= dep {
            deps.push(Vec::new());
        }
        deps[dep] = instances;
    }

    fn instance(&self, dep: usize, i: usize) -> Instance {
        let deps = self.deps.borrow();
        deps[dep][i.min(deps[dep].len() - 1)].clone()
    }
}

/// What an invocation produced, as [`World::end`] takes it: per target (name, ok, action),
/// its outputs, a caller's body.
pub(crate) type Produced = (Vec<PerOutcome>, Vec<(&'static str, String)>, Option<Value>);

/// One target's outcome: its name, whether it ended well, its action, its error code.
/// Per target: its name, whether it succeeded, its action, its error code, and the result
/// object as a caller reads it (contract §4).
pub(crate) type PerOutcome = (String, bool, String, Option<String>, Value);

/// What an invocation produced: per target (name, ok, action), its outputs, a caller's body.
#[derive(Default)]
struct Out {
    per: Vec<PerOutcome>,
    outputs: Vec<(&'static str, String)>,
    body: Option<Value>,
    /// The `Status` function's body for the rows of a status run.
    status_body: Option<Value>,
}

fn outcomes_out(outcomes: &[pat_rotator::rotation::Outcome]) -> Out {
    let mut out = Out::default();
    for o in outcomes {
        let code = o.error.as_ref().map(|e| e.code.as_str().to_string());
        let mut result = serde_json::to_value(o).unwrap_or_default();
        // (for the checker: the text line the engine logs for it)
        result["_log_line"] = Value::String(o.log_line());
        out.per.push((o.target.clone(), o.ok(), o.action.as_str().to_string(), code, result));
        out.outputs
            .push(("result", format!("{}\n{o:?}\n{}", serde_json::to_string(o).unwrap_or_default(), o.log_line())));
    }
    out.outputs.push(("rotate table", pat_rotator::cli::outcome_table(outcomes)));
    out
}

async fn simulate(sc: Scenario, keep_log: bool) -> Report {
    let runtime_rng = Rng::new(sc.seed ^ 0xA5A5_5A5A_C3C3_3C3C).fork();
    let scenario = sc.describe();
    let (seed, acts) = (sc.seed, sc.acts.clone());
    let later: Vec<(usize, Duration)> =
        sc.deployments.iter().enumerate().filter(|(_, d)| d.from > Duration::ZERO).map(|(i, d)| (i, d.from)).collect();
    let w: Shared = Arc::new(Mutex::new(World::new(sc, runtime_rng, keep_log)));
    let procs = Rc::new(Procs { w: w.clone(), seed, deps: RefCell::new(Vec::new()) });
    let present: Vec<usize> = {
        let g = lock(&w);
        (0..g.deployments.len()).filter(|d| g.deployments[*d].present).collect()
    };
    for d in present {
        procs.deploy(d);
    }
    let deliveries: Deliveries = Rc::new(RefCell::new(Vec::new()));
    let grid = tokio::task::spawn_local(event_grid(procs.clone(), deliveries.clone()));

    let mut tasks = Vec::new();
    for (dep, at) in later {
        let procs = procs.clone();
        tasks.push(tokio::task::spawn_local(async move {
            sleep(at).await;
            lock(&procs.w).deployments[dep].present = true;
            procs.deploy(dep);
            lock(&procs.w).note("operator", |_| format!("deploys pat-rotator {}", ["A", "B"][dep]));
        }));
    }
    for (n, act) in acts.into_iter().enumerate() {
        let procs = procs.clone();
        tasks.push(tokio::task::spawn_local(async move {
            sleep(act.at).await;
            perform(&procs, act.what, n as u32).await;
        }));
    }
    for t in tasks {
        if let Err(e) = t.await {
            panic_report(&w, e);
        }
    }
    // Writes without an answer land within minutes; the events they raise are delivered.
    loop {
        let pending = {
            let g = lock(&w);
            g.last_landing - g.now()
        };
        if pending > Duration::ZERO {
            sleep(pending + Duration::seconds(1)).await;
        }
        let running: Vec<_> = deliveries.borrow_mut().drain(..).collect();
        if running.is_empty() {
            let settled = {
                let g = lock(&w);
                g.events_out.is_empty() && g.last_landing <= g.now()
            };
            if settled {
                break;
            }
            sleep(Duration::seconds(1)).await;
            continue;
        }
        for t in running {
            if let Err(e) = t.await {
                panic_report(&w, e);
            }
        }
    }
    grid.abort();
    quiet(&procs).await;

    let mut g = lock(&w);
    g.absorb();
    Report {
        seed,
        scenario,
        log: std::mem::take(&mut g.log.lines),
        violations: g.checker.violations.clone(),
        exceptions: g.checker.exceptions.clone(),
        observations: g.checker.observations.clone(),
        stats: g.stats.clone(),
    }
}

/// Event Grid's deliveries in flight (awaited before the quiet phase).
type Deliveries = Rc<RefCell<Vec<tokio::task::JoinHandle<()>>>>;

/// Event Grid: every event Key Vault raises goes to each deployment whose configuration names
/// a secret in that vault (infra/ subscribes every vault it configures), to one of its
/// instances, after a delay; now and then twice (at-least-once delivery). A delivery that
/// fails (`500`) or is not answered within 30 s is delivered again, at most 3 times within an
/// hour — the first may still be running (then the handler coalesces).
async fn event_grid(procs: Rc<Procs>, deliveries: Deliveries) {
    let ready = lock(&procs.w).events_ready.clone();
    loop {
        ready.notified().await;
        let mut todo = Vec::new();
        {
            let mut g = lock(&procs.w);
            for ev in std::mem::take(&mut g.events_out) {
                for dep in 0..g.deployments.len() {
                    let d = &g.deployments[dep];
                    if d.present && d.targets.iter().any(|t| t.vault.eq_ignore_ascii_case(&ev.host)) {
                        let copies = 1 + u32::from(g.rng.chance(80));
                        for _ in 0..copies {
                            let delay = if g.rng.chance(800) {
                                Duration::milliseconds(g.rng.range(300, 20_000) as i64)
                            } else {
                                Duration::milliseconds(g.rng.range(20_000, 300_000) as i64)
                            };
                            todo.push((dep, ev.clone(), delay));
                        }
                    }
                }
            }
        }
        for (dep, ev, delay) in todo {
            let p = procs.clone();
            let d = deliveries.clone();
            deliveries.borrow_mut().push(tokio::task::spawn_local(deliver(p, d, dep, ev, delay)));
        }
    }
}

/// One event to one deployment, with Event Grid's redeliveries.
async fn deliver(procs: Rc<Procs>, deliveries: Deliveries, dep: usize, ev: world::KvEvent, delay: Duration) {
    let w = procs.w.clone();
    sleep(delay).await;
    let first = lock(&w).now();
    for _ in 0..3 {
        let invoke = {
            let mut g = lock(&w);
            if !g.deployments[dep].present {
                return;
            }
            let targets = crate::events::matching(&g.deployments[dep].targets, &ev);
            let body = crate::events::body(&mut g, &ev);
            let n = g.sc.deployments[dep].instances as u64;
            let instance = g.rng.below(n) as usize;
            Invoke::Event { kind: ev.kind, body, targets, instance }
        };
        let p = procs.clone();
        let done = Rc::new(std::cell::Cell::new(None));
        let d = done.clone();
        let mut run = tokio::task::spawn_local(async move {
            d.set(Some(invocation(&p, dep, invoke, None).await));
        });
        // Event Grid waits 30 s for the answer.
        let answered = tokio::time::timeout(std::time::Duration::from_secs(30), &mut run).await;
        let ok = match answered {
            Ok(Ok(())) => done.get().and_then(|i| lock(&w).event_status.get(&i).copied()) == Some(200),
            Ok(Err(e)) => {
                panic_report(&w, e);
                return;
            }
            Err(_) => {
                deliveries.borrow_mut().push(run);
                false
            }
        };
        if ok {
            return;
        }
        let again = Duration::milliseconds(lock(&w).rng.range(10_000, 600_000) as i64);
        if lock(&w).now() + again - first > Duration::hours(1) {
            return;
        }
        sleep(again).await;
    }
}

fn panic_report(w: &Shared, e: tokio::task::JoinError) {
    let msg = if e.is_panic() {
        let p = e.into_panic();
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    } else {
        "cancelled".to_string()
    };
    let mut g = w.lock().unwrap_or_else(|p| p.into_inner());
    let now = g.now();
    g.checker.violation(0, now, format!("a task panicked: {msg}"));
}

async fn sleep(d: Duration) {
    if d > Duration::ZERO {
        tokio::time::sleep(d.unsigned_abs()).await;
    }
}

async fn perform(procs: &Rc<Procs>, what: What, n: u32) {
    let w = &procs.w;
    match what {
        What::Run { dep, invoke, kill_after } => {
            if lock(w).deployments[dep].present {
                invocation(procs, dep, invoke, kill_after).await;
            }
        }
        What::Expiry { dep, target, kind } => {
            let mut g = lock(w);
            let t = g.deployments[dep].targets[target].clone();
            let (h, _) = t.secret_key();
            let latest = g
                .secret(&h, &t.secret)
                .filter(|s| s.state == SecretState::Live)
                .and_then(|s| s.versions.last().map(|v| (s.name.clone(), v.clone())));
            if let Some((name, v)) = latest {
                g.note("vault", |_| format!("raises {} for {} {}", kind.event_type(), t.where_(), v.short()));
                g.raise(kind, &h, &name, &v);
            }
        }
        What::StrayEvent { dep, kind } => {
            if lock(w).deployments[dep].present {
                let (body, instance) = {
                    let mut g = lock(w);
                    let n = g.sc.deployments[dep].instances as u64;
                    (crate::events::stray(&mut g, dep, kind), g.rng.below(n) as usize)
                };
                let invoke =
                    Invoke::Event { kind: crate::scenario::EventKind::NewVersion, body, targets: Vec::new(), instance };
                invocation(procs, dep, invoke, None).await;
            }
        }
        What::ForceLoop { dep, target, runs } => {
            lock(w)
                .note("operator", |_| format!("forces target {target} of {} {runs} times in a row", ["A", "B"][dep]));
            for _ in 0..runs {
                let invoke = Invoke::Cli(crate::scenario::CliRotate::forced(vec![target]));
                invocation(procs, dep, invoke, None).await;
            }
            // And once more without `--force`, right after: a target the loop left at its cap,
            // every token inside its grace, is not due — the sweep of an unchanged run must count
            // exactly what is live (no new credential) and revoke none of them.
            let invoke = Invoke::Cli(crate::scenario::CliRotate {
                force: false,
                ..crate::scenario::CliRotate::forced(vec![target])
            });
            invocation(procs, dep, invoke, None).await;
        }
        What::Rename { dep, target } => {
            {
                let mut g = lock(w);
                let cur = g.deployments[dep].targets[target].clone();
                let mut next = cur.clone();
                next.secret = format!("{}-v2", cur.secret.trim_end_matches("-v2"));
                next.key = pat_rotator::databricks::pat::secret_key(&format!("https://{}/", next.vault), &next.secret);
                g.note("operator", |_| {
                    format!("renames the secret of {}: {} → {}", cur.name, cur.where_(), next.where_())
                });
                g.deployments[dep].targets[target] = next;
            }
            procs.deploy(dep);
        }
        What::MoveVault { dep, target } => {
            {
                let mut g = lock(w);
                let cur = g.deployments[dep].targets[target].clone();
                let mut next = cur.clone();
                next.vault = VAULTS[3].to_string();
                next.key = pat_rotator::databricks::pat::secret_key(&format!("https://{}/", next.vault), &next.secret);
                g.note("operator", |_| {
                    format!("moves the secret of {}: {} → {}", cur.name, cur.where_(), next.where_())
                });
                g.deployments[dep].targets[target] = next;
            }
            procs.deploy(dep);
        }
        What::Retag { dep, target, how } => retag(w, dep, target, how),
        What::Disable { dep, target } => {
            let mut g = lock(w);
            let t = g.deployments[dep].targets[target].clone();
            match g.latest_mut(&t) {
                Some(v) => {
                    v.enabled = false;
                    let s = v.short();
                    g.note("operator", |_| format!("disables {} {s}", t.where_()));
                }
                None => g.note("operator", |_| "would disable the latest version: there is none".into()),
            }
        }
        What::SoftDelete { dep, target, recover_after, recovering_for } => {
            let t = lock(w).deployments[dep].targets[target].clone();
            {
                let mut g = lock(w);
                if g.latest_of(&t).is_none() {
                    return;
                }
                g.set_state(&t, SecretState::Deleted);
                g.note("operator", |_| format!("soft-deletes {}", t.where_()));
            }
            sleep(recover_after).await;
            {
                let mut g = lock(w);
                g.set_state(&t, SecretState::Recovering);
                g.note("operator", |_| "recovers it (reads answer 404 a while longer)".into());
            }
            sleep(recovering_for).await;
            let mut g = lock(w);
            g.set_state(&t, SecretState::Live);
            g.note("vault", |_| format!("the recovery of {} is complete", t.where_()));
        }
        What::Copy { dep, from, to } => copy(w, dep, from, to),
        What::OutOfBand => {
            let mut g = lock(w);
            let live: Vec<usize> = (0..g.creds.len()).filter(|i| g.live(&g.creds[*i])).collect();
            if !live.is_empty() {
                let i = *g.rng.pick(&live);
                g.kill_by_world("someone", i, Exception::OutOfBand);
            }
        }
        What::Consume => lock(w).consume(n),
        What::InactivitySweep => {
            let mut g = lock(w);
            let window = g.sc.inactivity.unwrap_or(Duration::MAX);
            let now = g.now();
            let idle: Vec<usize> = (0..g.creds.len())
                .filter(|i| {
                    let c = &g.creds[*i];
                    c.kind() == crate::scenario::Kind::Pat && g.live(c) && now - c.last_used >= window
                })
                .collect();
            for i in idle {
                g.kill_by_world("workspace", i, Exception::Inactivity);
            }
        }
    }
}

fn retag(w: &Shared, dep: usize, target: usize, how: Retag) {
    let mut g = lock(w);
    let t = g.deployments[dep].targets[target].clone();
    let p = t.profile();
    let Some(v) = g.latest_mut(&t) else {
        g.note("operator", |_| "would retag the latest version: there is none".into());
        return;
    };
    let old = std::mem::take(&mut v.tags);
    v.tags = match how {
        Retag::DropManagedBy => old.into_iter().filter(|(k, _)| k != tags::MANAGED_BY).collect(),
        Retag::OtherManager => {
            let mut x = old;
            x.insert(tags::MANAGED_BY.into(), "terraform".into());
            x
        }
        Retag::OnlyIds => old
            .into_iter()
            .filter(|(k, _)| k == p.id_tag || k == p.previous_tag)
            .chain([("owner".to_string(), "data-platform".to_string())])
            .collect(),
        Retag::StripAll => [("owner".to_string(), "data-platform".to_string())].into(),
    };
    let s = v.short();
    g.note("operator", |_| format!("retags {} {s} ({how:?})", t.where_()));
}

/// The operator copies the latest version of one target's secret into another's: value, tags,
/// content type (what a backup restored elsewhere, or a sync tool, leaves).
fn copy(w: &Shared, dep: usize, from: usize, to: usize) {
    let mut g = lock(w);
    let (a, b) = (g.deployments[dep].targets[from].clone(), g.deployments[dep].targets[to].clone());
    let Some(src) = g.latest_of(&a).filter(|v| v.enabled).cloned() else {
        g.note("operator", |_| format!("would copy {}: no version", a.where_()));
        return;
    };
    let alive = g.cred_by_value(&src.value).is_some_and(|i| g.live(&g.creds[i]));
    let (h, n) = b.secret_key();
    let state = g.secret(&h, &n).map(|s| s.state).unwrap_or(SecretState::Live);
    if !alive || state != SecretState::Live {
        g.note("operator", |_| format!("would copy {} into {}: not now", a.where_(), b.where_()));
        return;
    }
    let id = g.new_version_id(&h, &b.secret);
    let v = Version { id, landed: Duration::ZERO, late: false, by: 0, writer: None, ..src };
    let v = g.store_copy(&h, &b.secret, v);
    g.note("operator", |w| format!("copies {} into {}: {}", a.where_(), b.where_(), w.describe_version(&v)));
}

/// The targets an invocation acts on.
fn selected(targets: &[TargetView], invoke: &Invoke) -> Vec<TargetView> {
    match invoke {
        Invoke::Provision { target, .. } => vec![targets[(*target).min(targets.len() - 1)].clone()],
        Invoke::Cli(c) if !c.targets.is_empty() => {
            c.targets.iter().map(|i| targets[(*i).min(targets.len() - 1)].clone()).collect()
        }
        Invoke::Event { targets: ts, .. } => ts.iter().filter_map(|i| targets.get(*i).cloned()).collect(),
        _ => targets.to_vec(),
    }
}

/// One invocation of pat-rotator: on a Function App instance (the timer, ProvisionPat and
/// SecretEvent through the handler) or as a new CLI process; dropped at `kill_after` if it has
/// not ended. Returns its id.
async fn invocation(procs: &Rc<Procs>, dep: usize, invoke: Invoke, kill_after: Option<Duration>) -> u32 {
    let w = &procs.w;
    let kind = InvKind::of(&invoke);
    let inst = match &invoke {
        Invoke::Timer => procs.instance(dep, 0),
        Invoke::Provision { instance, .. } | Invoke::Event { instance, .. } => procs.instance(dep, *instance),
        Invoke::Cli(c) => procs.process(dep, true, c.as_operator),
        Invoke::Status { as_operator } | Invoke::Tokens { as_operator } => procs.process(dep, true, *as_operator),
        Invoke::TokensRevoke { .. } => procs.process(dep, true, false),
    };
    let configured = lock(w).deployments[dep].targets.clone();
    let targets = selected(&configured, &invoke);
    let id = lock(w).begin(dep, inst.process, kind, targets.clone(), configured.clone());
    let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
    let revoke_id =
        if let Invoke::TokensRevoke { protected } = invoke { pick_revoke(w, id, &configured, protected) } else { None };
    let engine = inst.engine.clone();
    let settings = engine.config().settings.clone();
    let work = async {
        let selected: Vec<&pat_rotator::config::Target> =
            names.iter().filter_map(|n| engine.config().target(n)).collect();
        match invoke {
            Invoke::Timer => {
                let opts = RunOptions {
                    force: false,
                    dry_run: false,
                    revoke_superseded: false,
                    take_ownership: false,
                    caller: Caller::Timer,
                    budget: settings.timer_budget,
                };
                let span = tracing::info_span!("RotatePat", invocation_id = %format!("inv-{id}"));
                let outcomes = tracing::Instrument::instrument(engine.run(&selected, opts), span).await;
                outcomes_out(&outcomes)
            }
            Invoke::Provision { force, dry_run, .. } => {
                let body = json!({"target": names[0], "force": force, "dry_run": dry_run}).to_string().into_bytes();
                let inv_id = format!("inv-{id}");
                let span = tracing::info_span!("ProvisionPat", invocation_id = %inv_id);
                let answer = tracing::Instrument::instrument(
                    provision::handle(Some("application/json"), Ok(body), &inst.state, &inv_id),
                    span,
                )
                .await;
                let ok = answer.status.as_u16() == 200 && answer.body["action"].as_str() != Some("failed");
                let action = answer.body["action"].as_str().unwrap_or("failed").to_string();
                let code = answer.body["error"]["code"].as_str().map(str::to_string);
                Out {
                    per: vec![(names[0].clone(), ok, action, code, answer.body.clone())],
                    outputs: vec![("ProvisionPat log", answer.log.clone())],
                    body: Some(answer.body),
                    status_body: None,
                }
            }
            Invoke::Cli(c) => {
                let opts = RunOptions {
                    force: c.force,
                    dry_run: c.dry_run,
                    revoke_superseded: c.revoke_superseded,
                    take_ownership: c.take_ownership,
                    caller: Caller::Cli,
                    budget: settings.timer_budget,
                };
                let outcomes = engine.run(&selected, opts).await;
                outcomes_out(&outcomes)
            }
            Invoke::Status { .. } => {
                let rows = engine.status(&selected, settings.http_budget).await;
                let mut out = Out::default();
                out.outputs.push(("status rows", serde_json::to_string(&rows).unwrap_or_default()));
                out.outputs.push(("status table", pat_rotator::cli::status_table(&rows)));
                // The same rows as the `Status` function's body shapes them for a function-key
                // holder (contract §3): checked as a caller's body.
                let public: Vec<Value> = rows.iter().map(pat_rotator::handler::status::public_row).collect();
                out.status_body = Some(Value::Array(public));
                out
            }
            Invoke::Tokens { .. } => {
                let rows = engine.inventory(&selected, settings.http_budget).await;
                // What `tokens` prints as the identity it runs as (contract §10).
                let me = match selected.first() {
                    Some(t) => engine.identity(t).await,
                    None => None,
                };
                {
                    let mut g = lock(w);
                    g.check_tokens_rows(id, &serde_json::to_value(&rows).unwrap_or_default());
                    let notes: Vec<(String, String)> =
                        rows.iter().flat_map(|r| r.notes.iter().map(|n| (r.target.clone(), n.clone()))).collect();
                    g.check_tokens_notes(id, &notes, me.as_deref());
                }
                let mut out = Out::default();
                out.outputs.push(("tokens rows", serde_json::to_string(&rows).unwrap_or_default()));
                out.outputs.push(("tokens table", pat_rotator::cli::tokens_table(&rows)));
                out
            }
            Invoke::Event { body, .. } => {
                let inv_id = format!("inv-{id}");
                let span = tracing::info_span!("SecretEvent", invocation_id = %inv_id);
                let resp = tracing::Instrument::instrument(
                    pat_rotator::handler::event::secret_event(Ok(body.into_bytes()), &inst.state, &inv_id),
                    span,
                )
                .await;
                let status = resp.status().as_u16();
                let bytes = actix_web::body::to_bytes(resp.into_body()).await.map(|b| b.to_vec()).unwrap_or_default();
                let text = String::from_utf8_lossy(&bytes).into_owned();
                lock(w).event_answered(id, status);
                let mut out = Out::default();
                out.outputs.push(("SecretEvent answer", text));
                out
            }
            Invoke::TokensRevoke { .. } => {
                let mut out = Out::default();
                if let Some(rid) = revoke_id {
                    let report = engine.revoke_ids(&selected, std::slice::from_ref(&rid), settings.http_budget).await;
                    let ids: Vec<String> = report.revoked.iter().map(|(id, _)| id.clone()).collect();
                    lock(w).check_revoke_report(id, &ids, &report.errors);
                    out.outputs.push((
                        "tokens --revoke report",
                        format!("{:?}\n{}", report.revoked, report.errors.join("\n")),
                    ));
                }
                out
            }
        }
    };
    let run = InRun::new(id, work);
    let out = match kill_after {
        None => Some(run.await),
        Some(k) => {
            let killer = Box::pin(sleep(k));
            match select(run, killer).await {
                Either::Left((o, _)) => Some(o),
                Either::Right(((), run)) => {
                    drop(run);
                    None
                }
            }
        }
    };
    let mut w = lock(w);
    if let Some(b) = out.as_ref().and_then(|o| o.status_body.as_ref()) {
        w.check_status_body(id, b);
    }
    w.end(id, out.map(|o| (o.per, o.outputs, o.body)));
    id
}

/// The id `tokens --revoke` is asked for: a live credential of one of the deployment's issuers;
/// with `protected`, one the latest version of a configured secret names if there is one (the
/// guard must refuse it).
fn pick_revoke(w: &Shared, inv: u32, configured: &[TargetView], protected: bool) -> Option<String> {
    let mut g = lock(w);
    let holders: Vec<world::Holder> = configured.iter().map(|t| t.holder()).collect();
    // A secret that reads as absent (soft-deleted, being recovered) first: what its latest
    // version names is what the guard must still refuse.
    let away: Vec<String> = configured
        .iter()
        .filter(|t| {
            let (h, n) = t.secret_key();
            g.secret(&h, &n).is_some_and(|s| s.state != SecretState::Live)
        })
        .filter_map(|t| g.latest_of(t).and_then(|v| world::keyvault_named_id(v)).map(str::to_string))
        .collect();
    let named: Vec<String> = if protected && !away.is_empty() {
        away
    } else {
        configured
            .iter()
            .filter_map(|t| g.latest_of(t).and_then(|v| world::keyvault_named_id(v)).map(str::to_string))
            .collect()
    };
    let live: Vec<String> =
        g.creds.iter().filter(|c| g.live(c) && holders.contains(&c.holder)).map(|c| c.id.clone()).collect();
    let pool: Vec<String> = if protected {
        live.iter().filter(|id| named.contains(id)).cloned().collect()
    } else {
        live.iter().filter(|id| !named.contains(id)).cloned().collect()
    };
    let pool = if pool.is_empty() { live } else { pool };
    if pool.is_empty() {
        return None;
    }
    let id = g.rng.pick(&pool).clone();
    g.note(&World::who(inv), |_| format!("the operator asks to revoke {id}"));
    if let Some(x) = g.invs.get_mut(&inv) {
        x.revoke_id = Some(id.clone());
    }
    Some(id)
}

impl World {
    /// An invocation ended (`None`: it was killed). Its outputs are checked (invariant 0), its
    /// outcomes recorded, and invariants 2 and 3 checked for its targets.
    pub(crate) fn end(&mut self, inv: u32, out: Option<Produced>) {
        self.absorb();
        let now = self.now();
        let killed = out.is_none();
        if let Some(x) = self.invs.get_mut(&inv) {
            x.end = Some(now);
            x.killed = killed;
        }
        match out {
            None => {
                self.stats.killed += 1;
                self.note(&World::who(inv), |_| "killed".to_string());
            }
            Some((per, outputs, body)) => {
                for (what, text) in &outputs {
                    self.check_output(inv, what, text);
                }
                if let Some(b) = &body {
                    self.check_caller_body(inv, b);
                }
                for (name, ok, action, code, result) in per {
                    *self.stats.actions.entry(action.clone()).or_default() += 1;
                    self.check_result(inv, &name, &result);
                    if let Some(x) = self.invs.get_mut(&inv) {
                        if let Some(p) = x.per.get_mut(&name) {
                            p.ok = Some(ok);
                        }
                        if let Some(c) = code {
                            x.codes.insert(name.clone(), c);
                        }
                    }
                    self.note(&World::who(inv), |_| format!("ends: {name} {action}"));
                }
            }
        }
        self.check_inv_end(inv);
    }

    /// A copied version is stored like any other (and checked like a landing).
    fn store_copy(&mut self, host: &str, name: &str, mut v: Version) -> Version {
        v.created = self.vault_now(host).unix_timestamp();
        v.landed = self.now();
        let s = self.secret_mut(host, name);
        s.versions.push(v.clone());
        let stored = s.name.clone();
        self.raise(crate::scenario::EventKind::NewVersion, host, &stored, &v);
        v
    }
}

/// The quiet phase: faults off, the timer of every deployment every period. Each configured
/// target is checked (invariant 4) after the first pass that began once its latest version was
/// past its grace and every orphan past its hour.
async fn quiet(procs: &Rc<Procs>) {
    let w = &procs.w;
    let (q0, period, deps, grace) = {
        let mut g = lock(w);
        g.quiet = true;
        g.note("quiet", |_| "the quiet phase: no faults, no operator, the timers run every period".into());
        let deps: Vec<usize> = (0..g.deployments.len()).filter(|d| g.deployments[*d].present).collect();
        let period = deps.iter().map(|d| g.sc.deployments[*d].period).min().unwrap_or(Duration::hours(24));
        let grace = g.configured().iter().map(|t| t.grace).max().unwrap_or_default();
        (g.now(), period, deps, grace)
    };
    let margin = Duration::minutes(1);
    let mut pending: Vec<TargetView> = lock(w).configured();
    // Enough for a latest version inside its grace when the phase begins, a rotation once that
    // grace has passed (a full issuer may need it), and the new version's grace.
    let rounds = ((grace + period) * 2i32 + Duration::hours(2)).whole_seconds() / period.whole_seconds();
    let rounds = rounds as u32 + 4;
    for round in 1..=rounds {
        for dep in &deps {
            let start = lock(w).now();
            invocation(procs, *dep, Invoke::Timer, None).await;
            let mut g = lock(w);
            let mine: Vec<TargetView> = pending.iter().filter(|t| t.dep == *dep).cloned().collect();
            // What another configured secret's latest version named during the pass was
            // protected (contract §7.4(a)): only a pass in which none of those on the target's
            // issuer changed settles it.
            let configured = g.configured();
            for t in mine {
                let unchanged = configured
                    .iter()
                    .filter(|u| u.holder() == t.holder())
                    .all(|u| g.latest_of(u).is_none_or(|v| v.landed < start));
                // A listing in pages is no snapshot: a credential of the issuer created or
                // revoked during the pass (another target's rotation) shifts the pages, and the
                // pass may miss one. What such a pass left is judged after the next one. So is
                // a pass during which one expired: the pass may have found the issuer full
                // (seed 48391: a create refused at five live secrets, one of them expiring
                // before the pass ended), and the next pass has the room.
                let still = g.issuer_still(&t.holder(), start, None);
                let unchanged = unchanged && (still || (g.quiet_left(&t).1.is_empty() && g.quiet_working(&t)));
                let settled = unchanged
                    && start >= q0 + Duration::hours(1) + margin
                    && g.latest_of(&t).is_none_or(|v| start >= v.landed + t.grace + margin);
                if settled {
                    g.check_quiet_end(&t);
                    pending.retain(|p| !(p.dep == t.dep && p.name == t.name));
                }
            }
        }
        if pending.is_empty() {
            return;
        }
        let now = lock(w).now();
        sleep(q0 + period * round - now).await;
    }
    let mut g = lock(w);
    let now = g.now();
    let left: Vec<String> = pending.iter().map(|t| t.where_()).collect();
    g.checker.violation(
        4,
        now,
        format!(
            "the quiet phase did not settle in {rounds} periods for {}: new versions kept landing",
            left.join(", ")
        ),
    );
}
